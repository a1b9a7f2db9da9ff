"""Supervisor wallboard: one tile per campaign, readable from across the room.

The board fits the screen it is on: up to TILES_PER_PAGE campaigns share the screen
(the tiles shrink, their type scales with the tile), more turn pages every
``dashboard.rotate_seconds`` with a page indicator; a phone gets one column. Above the
tiles, the centre's totals and a clock in the configured zone.
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone

import dash
import plotly.graph_objects as go
from dash import Input, Output, callback, dcc, html

from core.alerts import format_seconds
from core.metrics import compute_rates, format_metric, unjudged_note
from dashboards import theme
from dashboards.data import abandon_level, context, shared_wallboard_model

dash.register_page(__name__, path="/", name="Wallboard", title="CallPulse · Wallboard", order=0)

LEVEL_COLOURS = {"ok": "#2ecc71", "warning": "#f1c40f", "critical": "#e74c3c", "none": "#7f8c8d"}
# The most tiles on one screen: 4 × 3 at 1920×1080 and 1280×720 keeps the big numbers readable.
TILES_PER_PAGE = 12
# Columns for a page of n tiles on a landscape screen (rows follow): near-square tiles.
COLUMNS_FOR = {1: 1, 2: 2, 3: 3, 4: 2, 5: 3, 6: 3, 7: 4, 8: 4, 9: 3, 10: 4, 11: 4, 12: 4}
# The floor strip's agent states, in the order VICIdial's real-time report lists them.
AGENT_STATES = (("available", "ready"), ("on_call", "on call"), ("wrap_up", "wrap"), ("paused", "paused"))
MISSING = "—"  # a floor figure the model does not carry (no agent or dialer events yet)


def layout(**_query):
    refresh_ms = int(context().settings.dashboard.refresh_seconds * 1000)
    return html.Div(
        [
            html.Div(
                [
                    html.Div(id="wallboard-clock", className="clock", **theme.data_attributes(testid="clock")),
                    html.Div(id="slot-strip", className="slot-strip"),
                    html.Div(
                        id="campaign-count",
                        className="campaign-count",
                        **theme.data_attributes(testid="campaign-count"),
                    ),
                    html.Div(
                        id="page-indicator",
                        className="page-indicator",
                        **theme.data_attributes(testid="page-indicator"),
                    ),
                    html.Div(id="freshness", className="freshness"),
                ],
                className="wallboard-header",
            ),
            html.Div(id="centre-total", className="centre-total", **theme.data_attributes(testid="centre-total")),
            html.Div(id="campaign-tiles", className="tiles"),
            dcc.Interval(id="wallboard-refresh", interval=refresh_ms),
        ],
        className="wallboard",
    )


def _sparkline(spark: dict, colour: str) -> dcc.Graph:
    figure = go.Figure(
        go.Scatter(
            x=spark["minutes"],
            y=spark["dials"],
            mode="lines",
            line={"color": colour, "width": 2},
            fill="tozeroy",
            hovertemplate="%{x|%H:%M} · %{y} dials<extra></extra>",
        )
    )
    figure.update_layout(
        margin={"l": 0, "r": 0, "t": 0, "b": 0},
        height=80,
        showlegend=False,
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
        xaxis={"visible": False},
        yaxis={"visible": False, "rangemode": "tozero"},
    )
    return dcc.Graph(figure=figure, config={"displayModeBar": False, "staticPlot": True}, className="sparkline")


def _stat(label: str, value: str, test_id: str) -> html.Div:
    return html.Div(
        [
            html.Div(value, className="stat-value", **theme.data_attributes(testid=test_id)),
            html.Div(label, className="stat-label"),
        ],
        className="stat",
    )


def _compliance(window: dict, name: str, settings, campaign: str) -> html.Div:
    rules = settings.alert_rules_for(campaign)
    rate = window["abandon_rate"]
    level = (
        "none"
        if rate is None
        else "critical"
        if rate >= rules.compliance_limit
        else "warning"
        if rate >= rules.compliance_limit * rules.compliance_share
        else "ok"
    )
    return html.Div(
        [
            html.Span(window["label"], className="stat-label"),
            html.Span(
                format_metric("abandon_rate", window["abandon_rate"]),
                className="window-value",
                style={"color": LEVEL_COLOURS[level]},
                **theme.data_attributes(testid=name),
            ),
            _budget(window, name),
            *_unjudged(window, name),
        ],
        className=f"window window-{level}",
        title=f"{window['abandoned']} abandoned / {window['contacts']} live answers",
    )


def _unjudged(window: dict, name: str) -> list[html.Span]:
    """Under the FTC's rate (a lower bound), the connected calls without a wait and its upper bound."""
    note = unjudged_note(window.get("unjudged") or 0, window.get("abandon_rate_upper"))
    if not note:
        return []
    return [html.Span(note, className="stat-label window-unjudged", **theme.data_attributes(testid=f"{name}-unjudged"))]


def _budget(window: dict, name: str) -> html.Span:
    """The window's budget, small under its rate: abandons still allowed, and when the limit falls
    at the last hour's pace ("12 left · limit in 3.1 h"); a young window says how much of it holds
    calls. When its budget is projected over the whole window, the budget at its calls so far
    leads, since it is what the window's figure would be judged on if calling stopped now, and
    the projection follows ("2 left now, 66 at this pace (2 h of 24 h)")."""
    hours = window.get("hours_to_limit")
    pace = "" if hours is None else " · limit now" if hours <= 0 else f" · limit in {format_seconds(hours * 3600)}"
    held = f" ({window['window_held']})" if window.get("window_held") else ""
    text = f"{window.get('abandons_allowed', 0):,} left{held}{pace}"
    if window.get("budget_projected"):
        text = (
            f"{window.get('abandons_allowed_now', 0):,} left now, "
            f"{window.get('abandons_allowed', 0):,} at this pace{held}{pace}"
        )
    return html.Span(
        text,
        className="stat-label window-budget",
        **theme.data_attributes(testid=f"{name}-budget"),
    )


def _gauge(rate: float | None, colour: str, rules) -> html.Div:
    """A bar from 0 to twice the critical threshold, filled to the live rate, with the warning
    and critical thresholds marked: how close to the line a campaign is, at a glance."""
    scale = 2 * rules.abandon_critical
    filled = 0.0 if rate is None else min(rate / scale, 1.0)
    marks = [
        html.Div(
            className=f"gauge-mark gauge-{name}",
            style={"left": f"{threshold / scale:.1%}"},
            title=f"{name} at {format_metric('abandon_rate', threshold)}",
        )
        for name, threshold in (("warning", rules.abandon_warning), ("critical", rules.abandon_critical))
    ]
    return html.Div(
        [html.Div(className="gauge-fill", style={"width": f"{filled:.1%}", "background": colour}), *marks],
        className="gauge",
        **theme.data_attributes(testid="abandon-gauge", fill=f"{filled:.4f}"),
    )


def _tile(campaign: dict) -> html.Div:
    settings = context().settings
    live = campaign["compliance"]["live_15m"]
    live_rate = live["abandon_rate"]
    level = abandon_level(live_rate, settings, campaign["campaign"])
    colour = LEVEL_COLOURS[level]
    return html.Div(
        [
            html.Div(campaign["campaign"], className="tile-title"),
            html.Div(
                [
                    html.Div(
                        format_metric("abandon_rate", live_rate),
                        className="abandon-value",
                        style={"color": colour},
                        **theme.data_attributes(testid="live-abandon-rate"),
                    ),
                    _gauge(live_rate, colour, settings.alert_rules_for(campaign["campaign"])),
                    html.Div(f"abandon rate · last 15 min · {live['contacts']} live answers", className="stat-label"),
                ],
                className=f"abandon abandon-{level}",
            ),
            _floor_strip(campaign),
            html.Div(
                [
                    _compliance(campaign["compliance"][name], name, settings, campaign["campaign"])
                    for name in ("uk_24h", "us_30d")
                ],
                className="compliance",
            ),
            html.Div(
                [
                    _stat("dials today", format_metric("dials", campaign["dials"]), "dials"),
                    _stat("contact rate", format_metric("contact_rate", campaign["contact_rate"]), "contact-rate"),
                    _stat("abandon today", format_metric("abandon_rate", campaign["abandon_rate"]), "abandon-today"),
                    _stat("orders", format_metric("orders", campaign["orders"]), "orders"),
                    _stat("CPO", format_metric("cpo", campaign["cpo"]), "cpo"),
                ],
                className="stats",
            ),
            _sparkline(campaign["sparkline"], colour),
        ],
        className=f"tile level-{level}",
        **theme.data_attributes(campaign=campaign["campaign"]),
    )


def _seconds(seconds: float | None) -> str:
    """A wait as m:ss, or — when unknown."""
    if seconds is None:
        return MISSING
    whole = int(round(seconds))
    return f"{whole // 60}:{whole % 60:02d}"


def _number(value, digits: int = 0) -> str:
    return MISSING if value is None else f"{value:,.{digits}f}"


def _floor_strip(entry: dict) -> html.Div:
    """Agents by state (coloured counts), calls waiting with the longest wait, the dial level,
    and today's drops against how many more the day's limit allows."""
    agents = entry.get("agents") or {}
    counts = [
        html.Span(
            [
                html.Span(
                    _number(agents.get(state)),
                    className="floor-count",
                    **theme.data_attributes(testid=f"agents-{state}"),
                ),
                html.Span(label, className="floor-label"),
            ],
            className=f"floor-agents state-{state}",
        )
        for state, label in AGENT_STATES
    ]
    waiting, longest = entry.get("calls_waiting"), entry.get("longest_wait_seconds")
    allowance = entry.get("drop_allowance_today")
    allowance_class = "" if allowance is None else " over" if allowance <= 0 else " near" if allowance < 3 else ""
    return html.Div(
        [
            html.Div(counts, className="floor-agents-row"),
            html.Div(
                [
                    html.Span(
                        [
                            html.Span(
                                _number(waiting),
                                className="floor-count",
                                **theme.data_attributes(testid="calls-waiting"),
                            ),
                            html.Span("waiting", className="floor-label"),
                            html.Span(
                                f"max {MISSING if waiting is None else _seconds(longest or 0)}",
                                className="floor-label",
                                **theme.data_attributes(testid="longest-wait"),
                            ),
                        ],
                        className="floor-item" + (" waiting" if waiting else ""),
                        title="calls answered and waiting for an agent · the longest wait (m:ss)",
                    ),
                    html.Span(
                        [
                            html.Span("dial", className="floor-label"),
                            html.Span(
                                _number(entry.get("dial_level"), 1),
                                className="floor-count",
                                **theme.data_attributes(testid="dial-level"),
                            ),
                        ],
                        className="floor-item",
                    ),
                    html.Span(
                        [
                            html.Span("drops", className="floor-label"),
                            html.Span(
                                _number(entry.get("drops_today")),
                                className="floor-count",
                                **theme.data_attributes(testid="drops-today"),
                            ),
                            html.Span(
                                f"· {_number(allowance)} left",
                                className="floor-label",
                                **theme.data_attributes(testid="drop-allowance"),
                            ),
                        ],
                        className="floor-item" + allowance_class,
                        title="dropped today · how many more may drop before today's abandon rate "
                        "passes the campaign's limit",
                    ),
                ],
                className="floor-calls-row",
            ),
        ],
        className="floor-strip",
        **theme.data_attributes(testid="floor-strip"),
    )


def _centre_total(model: dict) -> list:
    """The whole centre: calls today, abandon rate, orders and the floor, over every campaign."""
    total = dict(model.get("total") or {})
    campaigns = model["campaigns"]
    if "dials" not in total and campaigns:  # a model without totals: the sums of what it carries
        sums = {
            name: sum(c.get(name) or 0 for c in campaigns)
            for name in ("dials", "contacts", "abandoned", "orders", "cost")
        }
        total.update(
            sums,
            **{
                name: value
                for name, value in compute_rates(sums).items()
                if name in ("abandon_rate", "contact_rate", "cpo")
            },
        )
    figures = [
        ("dials today", format_metric("dials", total.get("dials")), "total-dials"),
        ("abandon today", format_metric("abandon_rate", total.get("abandon_rate")), "total-abandon"),
        ("orders", format_metric("orders", total.get("orders")), "total-orders"),
    ]
    return [
        html.Div("Centre", className="tile-title"),
        html.Div([_stat(label, value, test_id) for label, value, test_id in figures], className="total-stats"),
        _floor_strip(total),
    ]


def _pages(count: int) -> tuple[int, int]:
    """(pages, tiles per page): as few pages as fit, with the tiles shared evenly among them."""
    pages = max(1, math.ceil(count / TILES_PER_PAGE))
    return pages, max(1, math.ceil(count / pages))


def _clock() -> str:
    zone = context().settings.zone
    return datetime.now(timezone.utc).astimezone(zone).strftime("%H:%M %Z")


@callback(
    Output("campaign-tiles", "children"),
    Output("campaign-tiles", "className"),
    Output("slot-strip", "children"),
    Output("freshness", "children"),
    Output("freshness", "className"),
    Output("campaign-count", "children"),
    Output("page-indicator", "children"),
    Output("centre-total", "children"),
    Output("wallboard-clock", "children"),
    Input("wallboard-refresh", "n_intervals"),
)
def refresh(_n):
    model = shared_wallboard_model()
    shown, count = len(model["campaigns"]), model["campaign_count"]
    # A board cut to the busiest campaigns says so, or a quiet campaign would seem to have gone.
    cut = f"showing {shown:,} of {count:,} campaigns, the busiest in the last 15 min" if count > shown else ""
    pages, per_page = _pages(shown)
    # Every board turns its pages on the same clock, so two TVs side by side show the same page.
    page = int(time.time() // context().settings.dashboard.rotate_seconds) % pages
    on_page = model["campaigns"][page * per_page : (page + 1) * per_page]
    columns = COLUMNS_FOR[max(1, len(on_page))]
    rows = max(1, math.ceil(len(on_page) / columns))
    indicator = (
        []
        if pages == 1
        else [
            html.Span(f"page {page + 1} / {pages}", className="page-number"),
            *[html.Span(className="page-dot current" if index == page else "page-dot") for index in range(pages)],
        ]
    )
    # An empty warehouse (a first start, before the first call lands) is a normal state: say
    # so, rather than leave the wall TV blank.
    tiles = [_tile(c) for c in on_page] or [
        html.Div(
            [
                "Waiting for the first calls to land…",
                html.Div(
                    "Campaign tiles appear here by themselves as soon as the worker lands calls.",
                    className="stat-label",
                ),
            ],
            className="empty",
            **theme.data_attributes(testid="waiting-for-calls"),
        )
    ]
    slot_names = context().slot_rules.names
    strip = [
        html.Span(name.replace("_", " "), className="slot current" if name == model["current_slot"] else "slot")
        for name in slot_names
    ]
    if model["age_seconds"] is None:
        freshness, state = "no data yet", "freshness stale"
    else:
        age = _age(model["age_seconds"])
        # A TV on the wall must never pass old numbers off as live: say so in words.
        freshness = (
            f"STALE · nothing new for {age} · these figures are not live" if model["stale"] else f"updated {age} ago"
        )
        state = "freshness stale" if model["stale"] else "freshness fresh"
    total = _centre_total(model) if model["campaigns"] else []
    return (tiles, f"tiles cols-{columns} rows-{rows}", strip, freshness, state, cut, indicator, total, _clock())


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"
