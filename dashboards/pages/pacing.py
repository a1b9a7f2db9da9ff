"""Pacing advisor: the dial ratio (lines kept ringing per free agent) that keeps a
campaign's abandon rate under a target, from the last hour's live figures.

The model, its assumptions and why it is conservative are in analytics/pacing.py. Beside
the recommendation, the ratio the dialer runs now, from its latest dialer_state snapshot.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import dash
import plotly.graph_objects as go
from dash import Input, Output, callback, dcc, html
from dash.dash_table.DataTable import DataTable
from plotly.subplots import make_subplots

from analytics import pacing
from core.metrics import format_metric
from dashboards import theme
from dashboards.controls import control
from dashboards.data import board_time, context, shared_wallboard_model
from warehouse.queries.live import freshness, sparklines
from warehouse.queries.reports import campaign_names

dash.register_page(__name__, path="/pacing", name="Pacing advisor", title="CallPulse · Pacing advisor", order=50)

#: The design notes: aim for about 1 %, never above the regulators' 3 %.
TARGETS = (0.01, 0.02, 0.03)
DEFAULT_TARGET = 0.01
WINDOW_MINUTES = 60
#: The figures move minute by minute; the model takes about a second, so not every 3 s.
REFRESH_MS = 60_000
RECOMMENDED, UNDER, OVER = "recommended", "under target", "not advised"
#: Candidate ratios listed on each side of the recommendation before "show all".
AROUND = 3
SHOW_ALL = "all"
TABLE_COLUMNS = [
    ("ratio", "Lines per free agent"),
    ("abandon_rate", "Expected abandon rate"),
    ("abandon_rate_upper", "Upper bound (95 %)"),
    ("idle_share", "Agents idle"),
    ("verdict", "Verdict"),
]


def layout(campaign=None, target=None, **_query):
    campaigns = campaign_names(context().client)
    chosen_target = _target(target)
    return html.Div(
        [
            html.Div(
                [
                    control(
                        "Campaign",
                        dcc.Dropdown(
                            id="pacing-campaign",
                            options=campaigns,
                            clearable=False,
                            value=campaign if campaign in campaigns else (campaigns[0] if campaigns else None),
                        ),
                    ),
                    control(
                        "Target abandon rate",
                        dcc.RadioItems(
                            id="pacing-target",
                            value=chosen_target,
                            inline=True,
                            options=[{"label": f" {t:.0%}", "value": t} for t in TARGETS],
                            inputStyle={"marginLeft": "1rem"},
                        ),
                    ),
                    control(
                        "Agents taking calls (empty: as measured)",
                        dcc.Input(id="pacing-agents", type="number", min=1, step=1, debounce=True),
                    ),
                    control(
                        "Wrap-up per call, s (not in the call events)",
                        dcc.Input(
                            id="pacing-wrap",
                            type="number",
                            min=0,
                            step=1,
                            debounce=True,
                            placeholder=f"{pacing.DEFAULT_WRAP_SECONDS:g} assumed",
                        ),
                    ),
                ],
                className="controls",
            ),
            html.Div(id="pacing-summary", className="report-summary", **theme.data_attributes(testid="pacing-summary")),
            dcc.Loading(html.Div(id="pacing-cards", className="compliance-cards"), type="dot"),
            theme.graph("pacing-chart"),
            html.Div(
                "The curve climbs in steps: the dialer rounds the lines it keeps up to whole lines, so a "
                "ratio just above a whole number (2.1 rather than 2.0) already rings one more line for a "
                "single free agent. Whole and half numbers get the most talk for their risk.",
                className="report-summary",
            ),
            html.H3("Candidate ratios", className="section-title"),
            html.Div(
                [
                    html.Span(id="pacing-table-note", className="stat-label"),
                    dcc.Checklist(
                        id="pacing-all-ratios",
                        options=[{"label": " show every candidate ratio", "value": SHOW_ALL}],
                        value=[],
                        inline=True,
                        className="toggle",
                    ),
                ],
                className="table-toggle",
            ),
            DataTable(
                id="pacing-table",
                columns=[{"name": label, "id": key} for key, label in TABLE_COLUMNS],
                sort_action="none",
                page_size=80,
                style_data_conditional=[
                    {
                        "if": {"filter_query": f'{{verdict}} = "{RECOMMENDED}"'},
                        "backgroundColor": "#1e5631",
                        "fontWeight": "bold",
                    },
                    {"if": {"filter_query": f'{{verdict}} = "{OVER}"'}, "color": theme.MUTED},
                ],
                **theme.TABLE_STYLE,
            ),
            dcc.Interval(id="pacing-refresh", interval=REFRESH_MS),
        ],
        className="report-page",
    )


def _target(value) -> float:
    try:
        return float(value) if float(value) in TARGETS else DEFAULT_TARGET
    except (TypeError, ValueError):
        return DEFAULT_TARGET


def _agents_override(value) -> int | None:
    try:
        agents = int(value)
    except (TypeError, ValueError):
        return None
    return agents if agents >= 1 else None


def _wrap_seconds(value) -> float:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return pacing.DEFAULT_WRAP_SECONDS
    return seconds if 0 <= seconds <= 3600 else pacing.DEFAULT_WRAP_SECONDS


@callback(
    Output("pacing-summary", "children"),
    Output("pacing-cards", "children"),
    Output("pacing-chart", "figure"),
    Output("pacing-table", "data"),
    Output("pacing-table-note", "children"),
    Output("pacing-agents", "placeholder"),
    Input("pacing-campaign", "value"),
    Input("pacing-target", "value"),
    Input("pacing-agents", "value"),
    Input("pacing-wrap", "value"),
    Input("pacing-refresh", "n_intervals"),
    Input("pacing-all-ratios", "value"),
)
def build(campaign, target, agents, wrap, _n, show_all):
    if not campaign:
        message = "No calls have landed yet."
        return message, [], theme.empty_figure(message), [], "", ""
    ctx = context()
    target = _target(target)
    at = board_time(freshness(ctx.client), datetime.now(timezone.utc))
    figures = pacing.live_figures(ctx.client, campaign, at, WINDOW_MINUTES, assumed_wrap_seconds=_wrap_seconds(wrap))
    placeholder = f"{figures.agents} measured"
    inputs = figures.inputs(agents=_agents_override(agents))
    window = _window_label(figures)
    if inputs is None:
        message = (
            f"{campaign}: not enough calls {window} to advise on "
            f"({figures.dials:,} dials, {figures.connected:,} connected, {figures.agents} agents)."
        )
        return message, [_figures_card(figures, None)], theme.empty_figure(message), [], "", placeholder
    started = time.perf_counter()
    advice = pacing.advise(inputs.rounded(), target)
    elapsed = time.perf_counter() - started
    summary = (
        f"{campaign} · figures {window} · target {target:.0%} · model run {elapsed:.2f} s (cached for the same figures)"
    )
    rows = _rows(advice)
    shown = rows if SHOW_ALL in (show_all or []) else _around_recommendation(rows)
    note = (
        f"{len(shown)} of {len(rows)} candidate ratios: the recommendation and the {AROUND} on each side"
        if len(shown) < len(rows)
        else f"all {len(rows)} candidate ratios"
    )
    return (
        summary,
        [_advice_card(advice, inputs, _running_dial_level(campaign)), _figures_card(figures, inputs)],
        _chart(advice),
        shown,
        note,
        placeholder,
    )


def _around_recommendation(rows: list[dict]) -> list[dict]:
    """The recommended ratio and the AROUND candidates on each side of it."""
    at = next((index for index, row in enumerate(rows) if row["verdict"] == RECOMMENDED), 0)
    return rows[max(0, at - AROUND) : at + AROUND + 1]


def _window_label(figures: pacing.LiveFigures) -> str:
    """The local minutes the campaign's calls cover within the model's window: a window that
    began before the first call would claim data the page does not have."""
    zone = context().settings.zone
    start, end = figures.start, figures.end
    minutes = (
        sparklines(context().client, figures.start, figures.end, [figures.campaign])
        .get(figures.campaign, {})
        .get("minutes", [])
    )
    if minutes:
        first = datetime.fromisoformat(minutes[0]).replace(tzinfo=timezone.utc)
        last = datetime.fromisoformat(minutes[-1]).replace(tzinfo=timezone.utc) + timedelta(minutes=1)
        start, end = max(start, first), min(end, last)
    covered = f"{start.astimezone(zone):%H:%M}–{end.astimezone(zone):%H:%M} ({context().settings.pipeline.timezone})"
    if end - start >= figures.end - figures.start:
        return covered
    return f"{covered}, the calls in the last {WINDOW_MINUTES} min"


def _percent(value, digits: int = 2) -> str:
    return "—" if value is None or value != value else f"{value * 100:.{digits}f} %"


def _line(label: str, value: str, test_id: str | None = None) -> html.Div:
    extra = theme.data_attributes(testid=test_id) if test_id else {}
    return html.Div([html.Span(label, className="stat-label"), " ", html.Span(value, **extra)])


def _running_dial_level(campaign: str) -> float | None:
    """The dial level the dialer runs now (its latest dialer_state snapshot, as the wallboard
    model carries it); None without one."""
    entry = next((c for c in shared_wallboard_model()["campaigns"] if c["campaign"] == campaign), None)
    return None if entry is None else entry.get("dial_level")


def _advice_card(advice: pacing.Advice, inputs: pacing.PacingInputs, running: float | None = None) -> html.Div:
    best = advice.recommended
    if advice.meets_target:
        headline = "Recommended dial ratio"
        note = f"lines kept ringing per free agent, for {inputs.agents} agents"
    else:
        headline = "No candidate ratio meets the target"
        note = "dial no faster than this, and add agents"
    return html.Div(
        [
            html.Div(headline, className="tile-title"),
            html.Div(
                f"{advice.recommended_ratio:.1f}",
                className="abandon-value",
                **theme.data_attributes(testid="pacing-ratio"),
            ),
            html.Div(note, className="stat-label", style={"whiteSpace": "normal"}),
            _line("The dialer runs now", "—" if running is None else f"{running:.1f}", "pacing-running-ratio"),
            _line(
                "Expected abandon rate",
                f"{_percent(best['abandon_rate'])} "
                f"(at most {_percent(best['abandon_rate_upper'])} at 95 %; target {advice.target_abandon_rate:.0%})",
                "pacing-expected-abandon",
            ),
            _line("Agents idle", _percent(best["idle_share"], 1), "pacing-idle"),
        ],
        className=f"compliance-card{'' if advice.meets_target else ' over'}",
        **theme.data_attributes(testid="pacing-advice"),
    )


def _figures_card(figures: pacing.LiveFigures, inputs: pacing.PacingInputs | None) -> html.Div:
    planned = f" · planned with {_percent(inputs.contact_rate, 1)} (upper 95 % bound)" if inputs else ""
    lines = [
        _line("Dials", format_metric("dials", figures.dials)),
        _line("Contact rate", format_metric("contact_rate", figures.contact_rate) + planned, "pacing-contact-rate"),
        _line(
            "Abandon rate",
            f"{_percent(figures.abandon_rate)} ({figures.abandoned:,} of {figures.contacts:,} live answers)",
            "pacing-live-abandon",
        ),
        _line(
            "Agents who took calls",
            f"{figures.agents}"
            + (f" · advising for {inputs.agents}" if inputs and inputs.agents != figures.agents else ""),
            "pacing-measured-agents",
        ),
        _line(
            "Avg handle time",
            format_metric("aht_seconds", figures.talk_seconds) + " talk + "
            f"{figures.wrap_seconds:.0f} s wrap-up ({figures.wrap_source})",
        ),
        _line(
            "Ring before an answer / otherwise",
            f"{_seconds(figures.contact_ring_seconds)} / {_seconds(figures.other_ring_seconds)}",
        ),
    ]
    return html.Div(
        [html.Div(f"Live figures, last {WINDOW_MINUTES} min", className="tile-title"), *lines],
        className="compliance-card",
        **theme.data_attributes(testid="pacing-figures"),
    )


def _seconds(value) -> str:
    return "—" if value is None else f"{value:.1f} s"


def _chart(advice: pacing.Advice) -> go.Figure:
    table = advice.candidates
    figure = make_subplots(specs=[[{"secondary_y": True}]])
    figure.add_trace(
        go.Scatter(
            x=table["ratio"],
            y=table["abandon_rate_upper"],
            mode="lines",
            name="Upper bound (95 %)",
            line={"color": "#e67e22", "width": 1, "dash": "dot"},
            hovertemplate="%{x:.1f} · at most %{y:.2%}<extra></extra>",
        ),
        secondary_y=False,
    )
    figure.add_trace(
        go.Scatter(
            x=table["ratio"],
            y=table["abandon_rate"],
            mode="lines+markers",
            name="Expected abandon rate",
            line={"color": "#e67e22", "width": 3},
            hovertemplate="%{x:.1f} lines per free agent · %{y:.2%} abandoned<extra></extra>",
        ),
        secondary_y=False,
    )
    figure.add_trace(
        go.Scatter(
            x=table["ratio"],
            y=table["idle_share"],
            mode="lines",
            name="Agents idle",
            line={"color": "#5dade2", "width": 3},
            hovertemplate="%{x:.1f} · %{y:.1%} of agent time idle<extra></extra>",
        ),
        secondary_y=True,
    )
    figure.add_hline(
        y=advice.target_abandon_rate,
        line={"color": "#e74c3c", "dash": "dash"},
        annotation_text=f"target {advice.target_abandon_rate:.0%}",
        annotation_position="top left",
    )
    figure.add_vline(
        x=advice.recommended_ratio,
        line={"color": "#2ecc71", "width": 2},
        annotation_text=f"recommended {advice.recommended_ratio:.1f}",
        annotation_position="top right",
    )
    top = max(advice.target_abandon_rate * 2.5, float(table["abandon_rate"].min()) * 1.1)
    figure.update_layout(
        **theme.figure_layout(
            title="Expected abandon rate and agent idle share by dial ratio",
            height=440,
            hovermode="x unified",
            legend={"orientation": "h", "y": -0.2},
            xaxis={"title": "lines kept ringing per free agent"},
        )
    )
    figure.update_yaxes(title_text="abandoned / live answers", tickformat=".1%", range=[0, top], secondary_y=False)
    figure.update_yaxes(
        title_text="agent time idle", tickformat=".0%", rangemode="tozero", secondary_y=True, showgrid=False
    )
    return figure


def _rows(advice: pacing.Advice) -> list[dict]:
    rows = []
    for row in advice.candidates.to_dict("records"):
        verdict = RECOMMENDED if row["ratio"] == advice.recommended_ratio else UNDER if row["safe"] else OVER
        rows.append(
            {
                "ratio": f"{row['ratio']:.1f}",
                "abandon_rate": _percent(row["abandon_rate"]),
                "abandon_rate_upper": _percent(row["abandon_rate_upper"]),
                "idle_share": _percent(row["idle_share"], 1),
                "verdict": verdict,
            }
        )
    return rows
