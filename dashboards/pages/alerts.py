"""Alerts: what is firing now (with acknowledge), and the history of every transition."""

from __future__ import annotations

from datetime import datetime, timezone

import dash
from dash import ALL, Input, Output, State, callback, ctx, dcc, html
from dash.dash_table.DataTable import DataTable

from core.alerts import RULE_LABELS, Rule, format_alert_value
from core.localtime import local_time, zone_name
from core.schema import REJECTION_REASONS
from dashboards import theme
from dashboards.data import context
from warehouse.queries.alerts import (
    acknowledge_alert,
    active_alerts,
    alert_history,
    alerts_from_frame,
    dead_letter_counts,
)

dash.register_page(__name__, path="/alerts", name="Alerts", title="CallPulse · Alerts", order=10)

# Times are on the configured zone's clock; the layout names the zone in the header.
HISTORY_COLUMNS = [
    ("event_time", "event time"),
    ("campaign", "campaign"),
    ("rule", "rule"),
    ("state", "state"),
    ("severity", "severity"),
    ("value", "value"),
    ("threshold", "threshold"),
    ("detail", "detail"),
    ("acknowledged_by", "acknowledged by"),
]


def layout(**_query):
    refresh_ms = int(context().settings.dashboard.refresh_seconds * 1000)
    zone = context().settings.zone
    return html.Div(
        [
            html.H2("Firing now"),
            html.Div(
                [
                    html.Label("Your name, for acknowledgements: "),
                    dcc.Input(id="ack-by", value="supervisor", debounce=True, className="ack-by"),
                ],
                className="ack-row",
            ),
            html.Div(id="active-alerts", className="active-alerts"),
            html.Div(id="ack-result", className="ack-result"),
            html.H2("History"),
            DataTable(
                id="alert-history",
                columns=[
                    {"name": f"{label} ({zone_name(zone)})" if key == "event_time" else label, "id": key}
                    for key, label in HISTORY_COLUMNS
                ],
                page_size=25,
                sort_action="native",
                filter_action="native",
                style_table={"overflowX": "auto"},
                style_header={"backgroundColor": "#161d24", "color": "#e6e6e6", "fontWeight": "bold"},
                style_cell={
                    "backgroundColor": "#1b242c",
                    "color": "#e6e6e6",
                    "textAlign": "left",
                    "border": "1px solid #2c3e50",
                    "fontFamily": "DejaVu Sans, Arial, sans-serif",
                },
            ),
            html.H2("Rejected records"),
            html.P(
                "Records the worker could not use, by reason. Each is on the dead-letters topic with its "
                "original bytes and source offset (callpulse deadletters --reason R shows them).",
                className="stat-label",
            ),
            html.Div(id="rejected-records", **theme.data_attributes(testid="rejected-records")),
            dcc.Interval(id="alerts-refresh", interval=refresh_ms),
        ],
        className="alerts-page",
    )


@callback(
    Output("active-alerts", "children"),
    Output("alert-history", "data"),
    Output("ack-result", "children"),
    Input("alerts-refresh", "n_intervals"),
    Input({"type": "ack", "alert_id": ALL}, "n_clicks"),
    State("ack-by", "value"),
)
def refresh(_n, _clicks, acknowledged_by):
    client = context().client
    zone = context().settings.zone
    message = ""
    trigger = ctx.triggered_id
    if isinstance(trigger, dict) and trigger.get("type") == "ack" and any(_clicks or []):
        who = (acknowledged_by or "").strip() or "supervisor"
        acknowledge_alert(client, trigger["alert_id"], who)
        message = f"acknowledged by {who}"
    active = active_alerts(client)
    cards = []
    for row, alert in zip(active.to_dict("records"), alerts_from_frame(active)):
        acked = isinstance(row.get("acknowledged_by"), str) and row["acknowledged_by"]
        cards.append(
            html.Div(
                [
                    html.Div(alert.headline(), className="alert-headline"),
                    html.Div(
                        f"since {local_time(alert.first_seen, zone, '%Y-%m-%d %H:%M')} ({zone_name(zone)}, "
                        "event time) · "
                        f"{RULE_LABELS[alert.rule]} · threshold {format_alert_value(alert.rule, alert.threshold)}",
                        className="stat-label",
                    ),
                    html.Div(f"acknowledged by {row['acknowledged_by']}", className="acked")
                    if acked
                    else html.Button(
                        "Acknowledge",
                        id={"type": "ack", "alert_id": alert.alert_id},
                        className="ack-button",
                        n_clicks=0,
                    ),
                ],
                className=f"alert-card alert-{alert.severity}",
                **theme.data_attributes(alert_id=alert.alert_id),
            )
        )
    history = alert_history(client)
    rows = []
    for row in history.to_dict("records"):
        rows.append(
            {
                "event_time": local_time(row["event_time"], zone),
                "campaign": row["campaign"],
                "rule": RULE_LABELS[Rule(row["rule"])],  # as the cards above name it, not its code
                "state": row["state"],
                "severity": row["severity"],
                "value": format_alert_value(row["rule"], row["value"]),
                "threshold": format_alert_value(row["rule"], row["threshold"]),
                "detail": row["detail"],
                "acknowledged_by": row["acknowledged_by"] if isinstance(row["acknowledged_by"], str) else "",
            }
        )
    return cards or [html.Div("Nothing is firing.", className="empty")], rows, message


@callback(Output("rejected-records", "children"), Input("alerts-refresh", "n_intervals"))
def rejected_records(_n):
    counts = dead_letter_counts(context().client, datetime.now(timezone.utc))
    if counts.empty:
        return html.Div("No record has been rejected.", className="empty")
    zone = context().settings.zone
    header = ["reason", "meaning", "last hour", "last 24 h", "total", f"newest ({zone_name(zone)})"]
    rows = [
        [
            row["reason"],
            REJECTION_REASONS.get(row["reason"], ""),
            f"{row['last_hour']:,}",
            f"{row['last_24h']:,}",
            f"{row['total']:,}",
            local_time(row["newest"], zone),
        ]
        for row in counts.to_dict("records")
    ]
    return html.Table(
        [
            html.Thead(html.Tr([html.Th(h) for h in header])),
            html.Tbody(
                [html.Tr([html.Td(cell) for cell in row], **theme.data_attributes(reason=row[0])) for row in rows]
            ),
        ],
        className="definitions-table",
    )
