"""Definitions: every metric, compliance window and the cost model, as the pipeline computes them.

Generated from core.metrics and the running configuration, so it cannot drift from
what the numbers on the other pages mean.
"""

from __future__ import annotations

import dash
from dash import html

from core.config import CallingHoursConfig
from core.metrics import COMPLIANCE_WINDOWS, COST_FORMULA, RATES, format_metric
from dashboards import theme
from dashboards.data import context

dash.register_page(__name__, path="/definitions", name="Definitions", title="CallPulse · Definitions", order=90)


def _breakable(text):
    """``text`` with a line-break opportunity after each underscore, so a long name
    (live_answers_unjudged) wraps on a phone instead of widening the page; copied, it is
    still the name (a <wbr> adds no character)."""
    if not isinstance(text, str) or "_" not in text:
        return text
    parts = text.split("_")
    return [piece for part in parts[:-1] for piece in (f"{part}_", html.Wbr())] + [parts[-1]]


def _table(header: list[str], rows: list[list], test_id: str) -> html.Table:
    return html.Table(
        [
            html.Thead(html.Tr([html.Th(h) for h in header])),
            html.Tbody([html.Tr([html.Td(_breakable(cell)) for cell in row]) for row in rows]),
        ],
        className="definitions-table",
        **theme.data_attributes(testid=test_id),
    )


def _profile_campaigns(config: CallingHoursConfig, name: str) -> str:
    """Which campaigns follow a calling-hours profile, as the table says it."""
    named = sorted(campaign for campaign, profile in config.campaigns.items() if profile == name)
    if name == config.default_profile:
        return (
            "every other campaign" + (f" ({', '.join(named)} too)" if named else "")
            if config.campaigns
            else "every campaign"
        )
    return ", ".join(named) or "none"


def layout(**_query):
    settings = context().settings
    limit = format_metric("abandon_rate", settings.alert_rules_for("default").compliance_limit)
    return html.Div(
        [
            html.H2("Metrics"),
            html.P(
                "Rates are always sum(numerator) / sum(denominator) over the rows asked about, "
                "never an average of rates. A zero denominator shows as —."
            ),
            _table(
                ["metric", "formula", "meaning"],
                [[rate.label, f"{rate.numerator} / {rate.denominator}", rate.description] for rate in RATES.values()],
                "metric-definitions",
            ),
            html.H2("Abandon-rate windows"),
            html.P(f"Per campaign, over whole minute buckets ending now. Limit shown in red: {limit}."),
            _table(
                ["window", "length", "rule"],
                [
                    [
                        w.label,
                        f"{w.minutes // 1440} days"
                        if w.minutes >= 2880
                        else (f"{w.minutes // 60} hours" if w.minutes >= 120 else f"{w.minutes} minutes"),
                        w.rule,
                    ]
                    for w in COMPLIANCE_WINDOWS
                ],
                "compliance-definitions",
            ),
            html.H2("Cost model"),
            html.P(COST_FORMULA, className="formula", **theme.data_attributes(testid="cost-formula")),
            _table(
                ["campaign", "per attempt", "per billed minute", "agent per hour"],
                [
                    [name, f"{m.cost_per_attempt:,.4g}", f"{m.cost_per_minute:,.4g}", f"{m.agent_cost_per_hour:,.4g}"]
                    for name, m in sorted(settings.cost_model.items())
                ],
                "cost-models",
            ),
            html.H2("Planning and monitoring figures"),
            _table(
                ["figure", "definition", "where"],
                [
                    [
                        "Confidence interval of a rate",
                        "95 % Wilson score interval of successes / trials; it stays "
                        "inside 0–100 % and keeps a width at 0 or all successes",
                        "Best time to call, Response model",
                    ],
                    [
                        "Recommended calling window",
                        "the calling slot with the highest lower bound of its contact "
                        "rate, plus every slot not significantly worse (Newcombe's interval of the difference "
                        "includes 0); slots under the report minimum of dials are 'not enough data'",
                        "Best time to call",
                    ],
                    [
                        "Calibration error (ECE)",
                        "Σ over score deciles of (calls in decile / calls) × |mean predicted "
                        "score − actual order rate|, on connected calls with a score",
                        "Response model, model_drift alert",
                    ],
                    [
                        "AUC",
                        "the share of (order, no order) pairs where the order had the higher score, ties counting "
                        "one half; 0.5 is chance",
                        "Response model",
                    ],
                    ["Dial ratio", "lines the dialer keeps ringing per free agent", "Pacing advisor"],
                    [
                        "Agent idle share",
                        "share of staffed agent time spent neither talking nor in wrap-up",
                        "Pacing advisor",
                    ],
                    [
                        "Stop-list violation",
                        "a dial placed (call end minus ring, wait and talk) at or after the "
                        "customer was flagged on the stop list",
                        "Compliance, stop_list_violation alert",
                    ],
                ],
                "planning-definitions",
            ),
            html.H2("Calling hours"),
            html.P(
                "A call is allowed in its campaign's profile's hours on the callee's clock (the zone of the "
                "number), both ends included; a weekday the profile names has its own hours or none."
            ),
            _table(
                ["profile", "hours (callee's local time)", "campaigns", "source"],
                [
                    [name, profile.describe(), _profile_campaigns(settings.calling_hours, name), profile.source]
                    for name, profile in sorted(settings.calling_hours.profiles.items())
                ],
                "calling-hours-definitions",
            ),
            html.H2("Time slots"),
            html.P(f"Local time in {settings.pipeline.timezone}; any other hour is off_hours."),
            _table(
                ["slot", "hours", "who is at home"],
                [[s.name, f"{s.start_hour:02d}:00–{s.end_hour:02d}:00", s.audience] for s in settings.slots],
                "slot-definitions",
            ),
        ],
        className="definitions",
    )
