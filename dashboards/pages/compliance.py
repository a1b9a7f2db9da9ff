"""Compliance: each campaign's abandon rate against the regulators' limits, now and day by
day, with the days over the limit marked and an export to hand an auditor.

UK (Ofcom): at most 3 % of live calls abandoned per campaign over 24 hours.
US (FTC TSR): at most 3 % of live-answered calls per campaign over 30 days.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import dash
import pandas as pd
import plotly.graph_objects as go
from dash import Input, Output, State, callback, dcc, html, no_update
from dash.dash_table.DataTable import DataTable

from analytics import reports
from core.alerts import format_seconds
from core.config import DAY_OFF
from core.metrics import (
    COMPLIANCE_DEFINITIONS,
    COMPLIANCE_WINDOWS,
    campaign_minutes,
    compliance_figures,
    format_metric,
    ratio,
    window_budgets,
)
from dashboards import theme
from dashboards.controls import Export, control, day_range, download, export_buttons
from dashboards.data import board_time, context, newest_day, parse_day
from warehouse.queries.compliance import (
    calling_hours_violations,
    calls_without_callee_timezone,
    customers_abandoned_more_than_once,
    repeat_calls_after_abandon,
)
from warehouse.queries.live import busiest_campaigns, campaign_first_minutes, compliance_windows, freshness
from warehouse.queries.reports import campaign_names, stop_list_violations

dash.register_page(__name__, path="/compliance", name="Compliance", title="CallPulse · Compliance", order=30)

DEFAULT_DAYS = 30
# The campaigns the page shows at once (cards, chart, history): the busiest, unless the user
# chooses; the filter offers CAMPAIGN_OPTIONS names at a time and typing finds the others.
MAX_CAMPAIGNS = 60
CAMPAIGN_OPTIONS = 50
TABLE_COLUMNS = [
    ("campaign", "Campaign"),
    ("day", "Day"),
    ("dials", "Dials"),
    ("contacts", "Live answers"),
    ("abandoned", "Dropped"),
    ("abandon_rate", "Day's rate (dialer)"),
    ("abandon_rate_ofcom", "Day's rate (Ofcom)"),
    ("rolling_30d_abandon_rate", "30-day rate (FTC)"),
    ("rolling_30d_unjudged", "FTC: no wait (30 d)"),
    ("rolling_30d_abandon_rate_upper", "FTC if those were late"),
    ("limit", "Limit"),
    ("over_limit", "Over the limit"),
]
WINDOWS = {w.name: w for w in COMPLIANCE_WINDOWS}
VIOLATION_COLUMNS = [
    ("dialed_at", "Dialled (local)"),
    ("campaign", "Campaign"),
    ("agent", "Agent"),
    ("team", "Team"),
    ("segment", "Segment"),
    ("outcome", "Outcome"),
    ("flagged_at", "On the stop list since"),
    ("after_flag", "Dialled after the flag"),
    ("reason", "Reason"),
    ("event_id", "Call (event id)"),
]

CALLING_HOURS_COLUMNS = [
    ("dialed_at", "Dialled (local)"),
    ("local_dialed_at", "Callee's clock"),
    ("callee_timezone", "Callee's zone"),
    ("allowed", "Allowed"),
    ("campaign", "Campaign"),
    ("agent", "Agent"),
    ("team", "Team"),
    ("outcome", "Outcome"),
    ("event_id", "Call (event id)"),
]
REPEAT_COLUMNS = [
    ("dialed_at", "Dialled again (local)"),
    ("campaign", "Campaign"),
    ("agent", "Agent"),
    ("outcome", "Outcome"),
    ("event_id", "Call (event id)"),
    ("abandoned_at", "Abandoned (local)"),
    ("abandoned_campaign", "Abandoned in"),
    ("abandoned_event_id", "Abandoned call"),
    ("hours_after_abandon", "After"),
]


def layout(**query):
    end = parse_day(query.get("to")) or newest_day()
    start = parse_day(query.get("from")) or end - timedelta(days=DEFAULT_DAYS - 1)
    return html.Div(
        [
            _definitions(),
            html.Div(id="compliance-now", className="compliance-cards"),
            html.Div(
                [
                    day_range("compliance-dates", start, end),
                    control(
                        "Campaigns",
                        dcc.Dropdown(
                            id="compliance-campaigns",
                            multi=True,
                            options=[],
                            placeholder=f"the {MAX_CAMPAIGNS} busiest (type to find others)",
                        ),
                    ),
                    export_buttons("compliance"),
                ],
                className="controls",
            ),
            html.Div(
                id="compliance-summary",
                className="report-summary",
                **theme.data_attributes(testid="compliance-summary"),
            ),
            theme.graph("compliance-chart"),
            html.H3("Daily history", className="section-title"),
            DataTable(
                id="compliance-table",
                columns=[{"name": label, "id": key} for key, label in TABLE_COLUMNS],
                page_size=31,
                sort_action="native",
                filter_action="native",
                style_data_conditional=[
                    {
                        "if": {"filter_query": '{over_limit} contains "UK"'},
                        "backgroundColor": theme.OVER_LIMIT,
                        "fontWeight": "bold",
                    },
                    {
                        "if": {"filter_query": '{over_limit} contains "US"', "column_id": "rolling_30d_abandon_rate"},
                        "backgroundColor": theme.OVER_LIMIT,
                        "fontWeight": "bold",
                    },
                    {"if": {"column_id": ["campaign", "day"]}, "textAlign": "left"},
                ],
                **theme.TABLE_STYLE,
            ),
            html.H3("Stop-list violations", className="section-title"),
            html.Div(
                id="stop-list-summary", className="report-summary", **theme.data_attributes(testid="stop-list-summary")
            ),
            # Names the call, campaign and agent, never the customer: the list is for audits.
            DataTable(
                id="stop-list-table",
                columns=[{"name": label, "id": key} for key, label in VIOLATION_COLUMNS],
                page_size=20,
                sort_action="native",
                export_format="csv",
                export_headers="display",
                **theme.TABLE_STYLE,
            ),
            *_regulator_violation_sections(),
        ],
        className="compliance-page",
    )


def _limit_for(campaign: str) -> float:
    return context().settings.alert_rules_for(campaign).compliance_limit


def _history(start, end, chosen):
    """The days asked for, the campaigns shown (what the user chose, else the busiest
    MAX_CAMPAIGNS), how many have calls, and those campaigns' daily history."""
    settings = context().settings
    end_day = parse_day(end) or datetime.now(settings.zone).date()
    start_day = parse_day(start) or end_day - timedelta(days=DEFAULT_DAYS - 1)
    campaigns, total = _shown_campaigns(start_day, chosen)
    if not campaigns:  # none with calls (an empty list would mean every campaign below)
        return start_day, end_day, campaigns, total, pd.DataFrame(columns=reports.COMPLIANCE_COLUMNS)
    return (
        start_day,
        end_day,
        campaigns,
        total,
        reports.compliance_days(
            context().client,
            start_day,
            end_day,
            settings.zone,
            _limit_for,
            campaigns=campaigns,
            amd_rate_for=_amd_rate_for,
        ),
    )


def _shown_campaigns(start_day, chosen) -> tuple[list[str], int]:
    if isinstance(chosen, list) and chosen and all(isinstance(name, str) for name in chosen):
        return chosen[:MAX_CAMPAIGNS], len(chosen)
    zone = context().settings.zone
    now = board_time(freshness(context().client), datetime.now(timezone.utc))
    since = min(datetime.combine(start_day, datetime.min.time(), zone), now - timedelta(minutes=1))
    return busiest_campaigns(context().client, now, since, MAX_CAMPAIGNS)


@callback(
    Output("compliance-campaigns", "options"),
    Input("compliance-campaigns", "search_value"),
    State("compliance-campaigns", "value"),
    prevent_initial_call=True,
)
def search_campaigns(typed, chosen):
    """As the user types, the campaigns whose name holds it, a few dozen at a time."""
    if not isinstance(typed, str) or not isinstance(chosen, (list, type(None))):
        return no_update
    chosen = [name for name in chosen or [] if isinstance(name, str)]
    found = campaign_names(context().client, typed[:200], CAMPAIGN_OPTIONS)
    return [*chosen, *(name for name in found if name not in chosen)]


@callback(
    Output("compliance-now", "children"),
    Output("compliance-chart", "figure"),
    Output("compliance-table", "data"),
    Output("compliance-summary", "children"),
    Output("stop-list-table", "data"),
    Output("stop-list-summary", "children"),
    Input("compliance-dates", "start_date"),
    Input("compliance-dates", "end_date"),
    Input("compliance-campaigns", "value"),
)
def build(start, end, chosen):
    start_day, end_day, campaigns, total, history = _history(start, end, chosen)
    cards = _now_cards(campaigns)
    rows = []
    for row in history.to_dict("records"):
        shown = {key: row.get(key) for key, _ in TABLE_COLUMNS}
        for key in ("abandon_rate", "abandon_rate_ofcom", "rolling_30d_abandon_rate", "limit"):
            shown[key] = format_metric("abandon_rate", row[key])
        # The FTC rate counts calls without a wait as connected in time; the bound only where there are some.
        unjudged = row["rolling_30d_unjudged"]
        shown["rolling_30d_abandon_rate_upper"] = (
            format_metric("abandon_rate", row["rolling_30d_abandon_rate_upper"]) if unjudged else ""
        )
        for key in ("dials", "contacts", "abandoned", "rolling_30d_unjudged"):
            shown[key] = format_metric("dials", row[key])
        shown["over_limit"] = ", ".join(
            label
            for flag, label in (("day_over_limit", "UK day"), ("rolling_30d_over_limit", "US 30 days"))
            if row[flag]
        )
        rows.append(shown)
    over_days = int(history["day_over_limit"].sum()) if len(history) else 0
    summary = (
        f"{start_day} to {end_day} · {history['campaign'].nunique() if len(history) else 0} campaigns · "
        f"{over_days} campaign-day{'s' if over_days != 1 else ''} over the limit (highlighted)"
    )
    if total > len(campaigns):
        summary += (
            f" · showing {len(campaigns)} of {total:,} campaigns, the busiest: choose campaigns to see "
            "others (`callpulse compliance export` covers them all)"
        )
    violations, violations_summary = _violations(start_day, end_day)
    return cards, _chart(history), rows, summary, violations, violations_summary


def _violations(start_day, end_day) -> tuple[list[dict], str]:
    zone = context().settings.zone
    start = datetime.combine(start_day, datetime.min.time(), zone)
    end = datetime.combine(end_day + timedelta(days=1), datetime.min.time(), zone)
    frame = stop_list_violations(context().client, start, end)
    rows = []
    for row in frame.to_dict("records"):
        dialed, flagged = (
            row[key].tz_localize("UTC") if row[key].tzinfo is None else row[key] for key in ("dialed_at", "flagged_at")
        )
        rows.append(
            {
                **{key: row.get(key) for key, _ in VIOLATION_COLUMNS},
                "dialed_at": dialed.tz_convert(zone).strftime("%Y-%m-%d %H:%M:%S"),
                "flagged_at": flagged.tz_convert(zone).strftime("%Y-%m-%d %H:%M:%S"),
                "after_flag": _duration(dialed - flagged),
            }
        )
    if not rows:
        return rows, f"No dials to stop-listed customers from {start_day} to {end_day}."
    return rows, (
        f"{len(rows)} dial{'s' if len(rows) != 1 else ''} to stop-listed customers from {start_day} "
        f"to {end_day} in {frame['campaign'].nunique()} campaign(s)"
    )


def _regulator_violation_sections() -> list:
    """Calls outside the callee's allowed hours and repeat dials after an abandon: like the
    stop-list list, they name the call, campaign and agent, never the customer."""
    sections = []
    for key, title, columns in (
        ("calling-hours", "Calls outside the allowed hours", CALLING_HOURS_COLUMNS),
        ("repeat-calls", "Repeat calls within 72 h of an abandoned call", REPEAT_COLUMNS),
    ):
        sections += [
            html.H3(title, className="section-title"),
            html.Div(id=f"{key}-summary", className="report-summary", **theme.data_attributes(testid=f"{key}-summary")),
            DataTable(
                id=f"{key}-table",
                columns=[{"name": label, "id": name} for name, label in columns],
                page_size=20,
                sort_action="native",
                export_format="csv",
                export_headers="display",
                **theme.TABLE_STYLE,
            ),
        ]
    return sections


@callback(
    Output("calling-hours-table", "data"),
    Output("calling-hours-summary", "children"),
    Output("repeat-calls-table", "data"),
    Output("repeat-calls-summary", "children"),
    Input("compliance-dates", "start_date"),
    Input("compliance-dates", "end_date"),
)
def build_regulator_violations(start, end):
    end_day = parse_day(end) or datetime.now(context().settings.zone).date()
    start_day = parse_day(start) or end_day - timedelta(days=DEFAULT_DAYS - 1)
    return (*_calling_hours_section(start_day, end_day), *_repeat_calls_section(start_day, end_day))


def _local_days(start_day, end_day) -> tuple[datetime, datetime]:
    zone = context().settings.zone
    return (
        datetime.combine(start_day, datetime.min.time(), zone),
        datetime.combine(end_day + timedelta(days=1), datetime.min.time(), zone),
    )


def _local(moment, zone) -> str:
    moment = moment.tz_localize("UTC") if moment.tzinfo is None else moment
    return moment.tz_convert(zone).strftime("%Y-%m-%d %H:%M:%S")


def allowed_hours_text(row: dict) -> str:
    """What the campaign's profile allowed on the callee's day of a violation: "08:00-21:00 (ftc)";
    for a profile whose hours differ by weekday, with the day: "Sun 12:00-21:00 (texas)",
    "no calls on Sun (rhode-island)"."""
    profile = context().settings.calling_hours.profiles.get(row["profile"])
    day = pd.Timestamp(row["local_dialed_at"]).strftime("%a") if row.get("local_dialed_at") else ""
    if row["allowed_from"] == DAY_OFF:
        return f"no calls on {day} ({row['profile']})"
    hours = f"{row['allowed_from']}-{row['allowed_until']}"
    return (
        f"{day} {hours} ({row['profile']})"
        if profile is not None and profile.days and day
        else f"{hours} ({row['profile']})"
    )


def _calling_hours_section(start_day, end_day) -> tuple[list[dict], str]:
    start, end = _local_days(start_day, end_day)
    client, zone = context().client, context().settings.zone
    frame = calling_hours_violations(client, start, end)
    unjudged = int(calls_without_callee_timezone(client, start, end)["without_timezone"].sum())
    rows = [
        {
            **{key: row.get(key) for key, _ in CALLING_HOURS_COLUMNS},
            "dialed_at": _local(row["dialed_at"], zone),
            "allowed": allowed_hours_text(row),
        }
        for row in frame.to_dict("records")
    ]
    not_judged = f"{unjudged:,} call{' had' if unjudged == 1 else 's had'} no callee time zone and could not be judged"
    if not rows:
        return rows, f"No calls outside the allowed hours from {start_day} to {end_day}. {not_judged}."
    return rows, (
        f"{len(rows):,} call{'s' if len(rows) != 1 else ''} outside the callee's allowed hours from "
        f"{start_day} to {end_day} in {frame['campaign'].nunique()} campaign(s). {not_judged}."
    )


def _repeat_calls_section(start_day, end_day) -> tuple[list[dict], str]:
    start, end = _local_days(start_day, end_day)
    client, zone = context().client, context().settings.zone
    frame = repeat_calls_after_abandon(client, start, end)
    twice = customers_abandoned_more_than_once(client, start, end)
    rows = [
        {
            **{key: row.get(key) for key, _ in REPEAT_COLUMNS},
            "dialed_at": _local(row["dialed_at"], zone),
            "abandoned_at": _local(row["abandoned_at"], zone),
            "hours_after_abandon": f"{row['hours_after_abandon']:.1f} h",
        }
        for row in frame.to_dict("records")
    ]
    again = f"{twice:,} customer{' abandoned' if twice == 1 else 's abandoned'} more than once"
    if not rows:
        return rows, f"No repeat calls within 72 h of an abandoned call from {start_day} to {end_day}; {again}."
    return rows, (
        f"{len(rows)} repeat call{'s' if len(rows) != 1 else ''} within 72 h of an abandoned call from "
        f"{start_day} to {end_day}; {again}."
    )


def _duration(delta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h" if seconds < 2 * 86400 else f"{seconds // 86400} days"


# -- the regulators' definitions, side by side, with each window's budget ----------------------

#: Each card's figures: (window, definition), the regulators' first.
CARD_FIGURES = (("uk_24h", "ofcom"), ("us_30d", "ftc"), ("uk_24h", "dialer"))


def _amd_rate_for(campaign: str) -> float:
    return context().settings.compliance.amd_for(campaign)[0]


def _definitions() -> html.Div:
    """What each figure on the cards counts, with the settings in force."""
    compliance = context().settings.compliance
    settings_in_force = {
        "ftc": f"compliance.ftc_connect_seconds = {compliance.ftc_connect_seconds:g} s",
        "ofcom": f"compliance.amd_false_positive_rate = {compliance.amd_false_positive_rate:g} "
        + (f"({compliance.amd_basis}) " if compliance.amd_basis else "")
        + (
            f"by default, {len(compliance.campaigns)} campaign(s) with their own"
            if compliance.campaigns
            else "for every campaign"
        ),
        "dialer": "what the dialer itself reports",
    }
    return html.Div(
        [
            html.Div(
                [
                    html.Span(COMPLIANCE_DEFINITIONS[name].label, className="definition-name"),
                    html.Span(f" {COMPLIANCE_DEFINITIONS[name].rule} ", className="definition-rule"),
                    html.Span(f"[{settings_in_force[name]}]", className="stat-label"),
                ],
                className="compliance-definition",
                **theme.data_attributes(definition=name),
            )
            for name in ("ofcom", "ftc", "dialer")
        ]
        + [
            html.Div(
                "Budget: how many more abandoned calls the window allows at its current live answers; "
                "while a campaign is younger than the window, at its live answers projected over the whole "
                'window at the pace seen so far ("window holds 2 h of 24 h"). The forecast extrapolates '
                "the last hour's pace: a young window loses no calls until it is full, a full one's oldest "
                f"hours leave at its average; alerts.forecast_hours ({context().settings.alerts.forecast_hours:g} h) "
                "raises compliance_forecast.",
                className="compliance-definition",
            )
        ],
        className="compliance-definitions",
        **theme.data_attributes(testid="compliance-definitions"),
    )


def _figure_lines(figure, amd_rate: float) -> list[str]:
    """The counts behind one figure, as a card shows them under its rate."""
    if figure.definition == "ofcom" and (figure.estimate or amd_rate):
        return [
            f"{figure.abandoned:,.1f} of {figure.live_answers:,.1f} live calls",
            f"incl. {figure.estimate:,.1f} estimated at AMD {amd_rate:.1%}",
        ]
    if figure.definition == "ofcom":
        return [f"{figure.abandoned:,.0f} of {figure.live_answers:,.0f} live calls", "no AMD estimate set"]
    lines = [f"{figure.abandoned:,.0f} of {figure.live_answers:,.0f} live answers"]
    if figure.definition == "ftc":
        lines.append(figure.unjudged_note or "every connected call's wait known")
    return lines


def _budget_line(window: str, budget) -> html.Div:
    label = WINDOWS[window].label
    allowed = max(0, math.floor(budget.remaining + 1e-9))
    pace = ratio(budget.last_hour_abandoned, budget.last_hour_live_answers)
    if budget.hours_to_breach is not None and budget.hours_to_breach <= 0:
        forecast = "over the limit now"
    elif budget.hours_to_breach is not None:
        forecast = (
            f"at the last hour's pace ({budget.last_hour_abandoned:,.0f} of "
            f"{budget.last_hour_live_answers:,.0f}, {format_metric('abandon_rate', pace)}) the limit is "
            f"crossed in {format_seconds(budget.hours_to_breach * 3600)}"
        )
    elif budget.last_hour_live_answers:
        forecast = f"the last hour's pace ({format_metric('abandon_rate', pace)}) stays under the limit"
    else:
        forecast = "no live answers in the last hour"
    return html.Div(
        [
            html.B(f"{label}: {allowed:,} more abandon{'s' if allowed != 1 else ''} allowed"),
            f" {budget.budget_basis} · {forecast}",
        ],
        className="compliance-budget",
        **theme.data_attributes(testid=f"{window}-budget"),
    )


def _now_cards(campaigns: list[str]) -> list:
    """Each of ``campaigns``' abandon rate under each definition (Ofcom's over 24 h, the FTC's over
    30 days, the dialer's own over 24 h) ending at the newest landed minute, the counts behind each,
    and each regulator window's budget and forecast."""
    now = board_time(freshness(context().client), datetime.now(timezone.utc))
    windows = compliance_windows(context().client, now, campaigns=campaigns, amd_rate_for=_amd_rate_for)
    first_minutes = campaign_first_minutes(context().client, now, campaigns)
    cards = []
    for row in windows.to_dict("records"):
        campaign = row["campaign"]
        limit, amd_rate = _limit_for(campaign), _amd_rate_for(campaign)
        figures = {window: compliance_figures(row, amd_rate, prefix=f"{window}_") for window in ("uk_24h", "us_30d")}
        over = any((figures[window][definition].rate or 0) > limit for window, definition in CARD_FIGURES[:2])
        shown = []
        for window, definition in CARD_FIGURES:
            figure = figures[window][definition]
            rate = figure.rate
            shown.append(
                html.Div(
                    [
                        html.Div(
                            f"{WINDOWS[window].label} · {COMPLIANCE_DEFINITIONS[definition].label}",
                            className="stat-label",
                        ),
                        html.Div(
                            format_metric("abandon_rate", rate),
                            className=f"window-value{' over' if (rate or 0) > limit else ''}",
                            **theme.data_attributes(testid=f"{window}-{definition}-rate"),
                        ),
                        *(html.Div(line, className="stat-label") for line in _figure_lines(figure, amd_rate)),
                    ],
                    className="compliance-figure",
                    title=COMPLIANCE_DEFINITIONS[definition].rule,
                )
            )
        age = campaign_minutes(first_minutes.get(campaign), now.timestamp())
        budgets = window_budgets(row, limit, amd_rate, campaign_minutes=age)
        cards.append(
            html.Div(
                [
                    html.Div(campaign, className="tile-title"),
                    html.Div(shown, className="compliance-figures"),
                    *(_budget_line(window, budget) for window, budget in budgets.items()),
                    html.Div(f"limit {format_metric('abandon_rate', limit)}", className="stat-label"),
                ],
                className=f"compliance-card{' over' if over else ''}",
                **theme.data_attributes(campaign=campaign),
            )
        )
    return cards or [html.Div("No calls have landed yet.", className="empty")]


def _chart(history) -> go.Figure:
    figure = go.Figure()
    for campaign, part in history.groupby("campaign") if len(history) else []:
        figure.add_trace(
            go.Scatter(
                x=part["day"],
                y=part["abandon_rate_ofcom"],
                mode="lines+markers",
                name=campaign,
                marker={
                    "size": [13 if over else 7 for over in part["day_over_limit"]],
                    "line": {"width": [2 if over else 0 for over in part["day_over_limit"]], "color": "#e74c3c"},
                },
                customdata=part[["abandoned", "contacts"]].to_numpy(),
                hovertemplate="%{x} · %{y:.2%}<br>%{customdata[0]} abandoned / %{customdata[1]} live<extra>"
                + campaign
                + "</extra>",
            )
        )
    limits = sorted({_limit_for(c) for c in history["campaign"].unique()}) if len(history) else [_limit_for("default")]
    for limit in limits:
        figure.add_hline(
            y=limit,
            line={"color": "#e74c3c", "dash": "dash"},
            annotation_text=f"limit {limit:.0%}",
            annotation_position="top left",
        )
    # The rate axis runs from 0 to a little above the highest of the limits and the rates drawn,
    # also with nothing to draw (Plotly's own empty axis ran from 0 to 400 %).
    rates = history["abandon_rate_ofcom"].dropna().tolist() if len(history) else []
    top = max([*limits, *rates]) * 1.15
    figure.update_layout(
        **theme.figure_layout(
            title="Daily abandon rate, UK Ofcom's definition (with the AMD estimate); ringed points are over the limit",
            height=420,
            yaxis={"tickformat": ".1%", "range": [0, top]},
            xaxis={"type": "category", "categoryorder": "category ascending"},
            legend={"orientation": "h", "y": -0.2},
        )
    )
    return figure


@callback(
    Output("compliance-download", "data"),
    Input("compliance-csv", "n_clicks"),
    Input("compliance-xlsx", "n_clicks"),
    State("compliance-dates", "start_date"),
    State("compliance-dates", "end_date"),
    State("compliance-campaigns", "value"),
    prevent_initial_call=True,
)
def export(_csv, _xlsx, start, end, chosen):
    start_day, end_day, _, _, history = _history(start, end, chosen)
    if history.empty:
        return no_update
    return download(
        "compliance",
        Export(
            history,
            f"callpulse-abandon-compliance-{start_day}-{end_day}",
            title=f"CallPulse abandon-rate evidence {start_day} to {end_day}",
            sheet="abandon rate",
            percent=("abandon_limit",),
            excel_frame=history.rename(columns={"limit": "abandon_limit"}),
        ),
    )
