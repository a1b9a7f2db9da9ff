"""Supervisor wallboard: one tile per campaign, readable from across the room."""

from __future__ import annotations

import dash
import plotly.graph_objects as go
from dash import Input, Output, callback, dcc, html

from core.metrics import format_metric
from dashboards.data import abandon_level, context, shared_wallboard_model

dash.register_page(__name__, path="/", name="Wallboard", title="CallPulse · Wallboard", order=0)

LEVEL_COLOURS = {"ok": "#2ecc71", "warning": "#f1c40f", "critical": "#e74c3c", "none": "#7f8c8d"}


def layout(**_query):
    refresh_ms = int(context().settings.dashboard.refresh_seconds * 1000)
    return html.Div(
        [
            html.Div(
                [
                    html.Div(id="slot-strip", className="slot-strip"),
                    html.Div(id="campaign-count", className="campaign-count", **{"data-testid": "campaign-count"}),
                    html.Div(id="freshness", className="freshness"),
                ],
                className="wallboard-header",
            ),
            html.Div(id="campaign-tiles", className="tiles"),
            dcc.Interval(id="wallboard-refresh", interval=refresh_ms),
        ],
        className="wallboard",
    )


def _sparkline(spark: dict, colour: str) -> dcc.Graph:
    figure = go.Figure(
        go.Scatter(x=spark["minutes"], y=spark["dials"], mode="lines", line={"color": colour, "width": 2},
                   fill="tozeroy", hovertemplate="%{x|%H:%M} · %{y} dials<extra></extra>")
    )
    figure.update_layout(
        margin={"l": 0, "r": 0, "t": 0, "b": 0}, height=80, showlegend=False,
        paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)",
        xaxis={"visible": False}, yaxis={"visible": False, "rangemode": "tozero"},
    )
    return dcc.Graph(figure=figure, config={"displayModeBar": False, "staticPlot": True},
                     className="sparkline")


def _stat(label: str, value: str, test_id: str) -> html.Div:
    return html.Div([html.Div(value, className="stat-value", **{"data-testid": test_id}),
                     html.Div(label, className="stat-label")], className="stat")


def _compliance(window: dict, name: str, settings, campaign: str) -> html.Div:
    rules = settings.alert_rules_for(campaign)
    rate = window["abandon_rate"]
    level = "none" if rate is None else "critical" if rate >= rules.compliance_limit else \
        "warning" if rate >= rules.compliance_limit * rules.compliance_share else "ok"
    return html.Div([html.Span(window["label"], className="stat-label"),
                     html.Span(format_metric("abandon_rate", window["abandon_rate"]), className="window-value",
                               style={"color": LEVEL_COLOURS[level]}, **{"data-testid": name})],
                    className=f"window window-{level}", title=f"{window['abandoned']} abandoned / "
                                                               f"{window['contacts']} live answers")


def _gauge(rate: float | None, colour: str, rules) -> html.Div:
    """A bar from 0 to twice the critical threshold, filled to the live rate, with the warning
    and critical thresholds marked: how close to the line a campaign is, at a glance."""
    scale = 2 * rules.abandon_critical
    filled = 0.0 if rate is None else min(rate / scale, 1.0)
    marks = [html.Div(className=f"gauge-mark gauge-{name}", style={"left": f"{threshold / scale:.1%}"},
                      title=f"{name} at {format_metric('abandon_rate', threshold)}")
             for name, threshold in (("warning", rules.abandon_warning), ("critical", rules.abandon_critical))]
    return html.Div([html.Div(className="gauge-fill", style={"width": f"{filled:.1%}", "background": colour}),
                     *marks], className="gauge", **{"data-testid": "abandon-gauge", "data-fill": f"{filled:.4f}"})


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
                    html.Div(format_metric("abandon_rate", live_rate), className="abandon-value",
                             style={"color": colour}, **{"data-testid": "live-abandon-rate"}),
                    _gauge(live_rate, colour, settings.alert_rules_for(campaign["campaign"])),
                    html.Div(f"abandon rate · last 15 min · {live['contacts']} live answers",
                             className="stat-label"),
                ],
                className=f"abandon abandon-{level}",
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
            html.Div([_compliance(campaign["compliance"][name], name, settings, campaign["campaign"]) for name in ("uk_24h", "us_30d")],
                     className="compliance"),
            _sparkline(campaign["sparkline"], colour),
        ],
        className=f"tile level-{level}",
        **{"data-campaign": campaign["campaign"]},
    )


@callback(
    Output("campaign-tiles", "children"),
    Output("slot-strip", "children"),
    Output("freshness", "children"),
    Output("freshness", "className"),
    Output("campaign-count", "children"),
    Input("wallboard-refresh", "n_intervals"),
)
def refresh(_n):
    model = shared_wallboard_model()
    shown, count = len(model["campaigns"]), model["campaign_count"]
    # A board cut to the busiest campaigns says so, or a quiet campaign would seem to have gone.
    cut = f"showing {shown:,} of {count:,} campaigns, the busiest in the last 15 min" if count > shown else ""
    # An empty warehouse (a first start, before the first call lands) is a normal state: say
    # so, rather than leave the wall TV blank.
    tiles = [_tile(c) for c in model["campaigns"]] or [
        html.Div(["Waiting for the first calls to land…",
                  html.Div("Campaign tiles appear here by themselves as soon as the worker lands calls.",
                           className="stat-label")],
                 className="empty", **{"data-testid": "waiting-for-calls"})
    ]
    slot_names = context().slot_rules.names
    strip = [html.Span(name.replace("_", " "), className="slot current" if name == model["current_slot"] else "slot")
             for name in slot_names]
    if model["age_seconds"] is None:
        freshness, state = "no data yet", "freshness stale"
    else:
        age = _age(model["age_seconds"])
        # A TV on the wall must never pass old numbers off as live: say so in words.
        freshness = (f"STALE · nothing new for {age} · these figures are not live" if model["stale"]
                     else f"updated {age} ago")
        state = "freshness stale" if model["stale"] else "freshness fresh"
    return tiles, strip, freshness, state, cut


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"
