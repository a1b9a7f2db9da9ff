"""The banner above every page: what is firing and not yet acknowledged, each alert with the
value it fired at and, where the warehouse has it, the value now, each labelled.

An alert keeps the reading that crossed the threshold (3.1 %, 2 of 65 live answers); the
wallboard's tile shows the live window minutes later (5.1 % of 78). Both are right, so the
banner says which is which rather than showing one number that disagrees with the tile.
"""

from __future__ import annotations

from datetime import datetime, timezone

from dash import html

from core.alerts import RULE_LABELS, Alert, Rule, format_alert_value
from core.localtime import local_time, zone_name
from core.metrics import COMPLIANCE_WINDOWS, WINDOW_DEFINITION
from dashboards import theme
from dashboards.data import board_time, context
from warehouse.queries.live import compliance_windows, freshness

#: The rules whose value is a campaign's abandon rate over one of the compliance windows: the
#: banner reads the same window now, as the wallboard's tiles do.
ABANDON_RULES = {Rule.ABANDON_RATE, Rule.COMPLIANCE_UK_24H, Rule.COMPLIANCE_US_30D}
SHOWN = 3


def banner_items(alerts: list[Alert]) -> list:
    """One line per alert (the SHOWN most severe), then "and N more"."""
    shown = alerts[:SHOWN]
    now = _current_abandon_rates(shown)
    zone = context().settings.zone
    items = [_line(alert, now.get((alert.campaign, alert.window_minutes)), zone) for alert in shown]
    if len(alerts) > SHOWN:
        items.append(html.Div(f"and {len(alerts) - SHOWN} more", className="banner-item"))
    return items


def _line(alert: Alert, current: tuple[int, int] | None, zone) -> html.Div:
    label = RULE_LABELS[alert.rule]
    fired = format_alert_value(alert.rule, alert.value)
    parts = [
        html.Strong(f"{alert.severity.upper()} · {alert.campaign} · {label}"),
        html.Span(f" fired at {fired}", className="banner-fired", **theme.data_attributes(testid="banner-fired")),
        html.Span(
            f" ({alert.detail}; since {local_time(alert.first_seen, zone, '%H:%M')} {zone_name(zone)})",
            className="banner-detail",
        ),
    ]
    if current is not None:
        abandoned, contacts = current
        value = format_alert_value(alert.rule, abandoned / contacts if contacts else None)
        parts.append(
            html.Span(
                f" · now {value} ({abandoned:,} of {contacts:,} live answers, "
                f"last {_window_label(alert.window_minutes)})",
                className="banner-now",
                **theme.data_attributes(testid="banner-now"),
            )
        )
    return html.Div(parts, className="banner-item", **theme.data_attributes(alert_id=alert.alert_id))


def _window_label(minutes: int) -> str:
    return (
        f"{minutes // (24 * 60)} days"
        if minutes >= 2 * 24 * 60
        else f"{minutes // 60} h"
        if minutes >= 60
        else f"{minutes} min"
    )


def _current_abandon_rates(alerts: list[Alert]) -> dict[tuple[str, int], tuple[int, int]]:
    """(campaign, window minutes) -> (abandoned, live answers) now, for the abandon-rate alerts
    whose window is a compliance window; read at the boards' time (the newest landed minute)."""
    windows = {window.minutes: window.name for window in COMPLIANCE_WINDOWS}
    wanted = [alert for alert in alerts if alert.rule in ABANDON_RULES and alert.window_minutes in windows]
    if not wanted:
        return {}
    client = context().client
    now = board_time(freshness(client), datetime.now(timezone.utc))
    frame = compliance_windows(client, now, campaigns=sorted({alert.campaign for alert in wanted}))
    rows = {row["campaign"]: row for row in frame.to_dict("records")}
    current = {}
    for alert in wanted:
        row = rows.get(alert.campaign)
        name = windows[alert.window_minutes]
        if row is not None:
            # Counted as the window's rule counts them: the US window's abandons are the FTC's.
            abandoned = f"{name}_abandoned_ftc" if WINDOW_DEFINITION[name] == "ftc" else f"{name}_abandoned"
            current[(alert.campaign, alert.window_minutes)] = (
                int(row[abandoned] or 0),
                int(row[f"{name}_contacts"] or 0),
            )
        else:
            current[(alert.campaign, alert.window_minutes)] = (0, 0)
    return current
