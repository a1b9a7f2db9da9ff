"""The floor: one row per agent, for the supervisor walking it.

Each agent's campaign, team, state and time in that state (red when a pause runs past
``agents.pause_limit_seconds``), and today's calls and orders (today in pipeline.timezone).
Agents silent for ``agents.timeout_seconds`` read as logged out. The rows come from the
floor query of the read side (``dashboards.data.floor_rows``).
"""

from __future__ import annotations

import dash
from dash import Input, Output, callback, dcc, html

from dashboards import data, theme
from dashboards.data import context

dash.register_page(__name__, path="/floor", name="Floor", title="CallPulse · Floor", order=10)

STATE_LABELS = {
    "available": "ready",
    "on_call": "on call",
    "wrap_up": "wrap-up",
    "paused": "paused",
    "logged_out": "logged out",
}
# Busy first, then the ones a supervisor may need to act on, then those gone.
STATE_ORDER = {"paused": 0, "wrap_up": 1, "available": 2, "on_call": 3, "logged_out": 4}
COLUMNS = ("Agent", "Campaign", "Team", "State", "Time in state", "Calls today", "Orders today")


def layout(**_query):
    refresh_ms = int(context().settings.dashboard.refresh_seconds * 1000)
    return html.Div(
        [
            html.Div(id="floor-summary", className="report-summary", **theme.data_attributes(testid="floor-summary")),
            html.Div(id="floor-table", className="floor-table-wrap"),
            dcc.Interval(id="floor-refresh", interval=refresh_ms),
        ],
        className="floor-page",
    )


def time_in_state(seconds: float | None) -> str:
    """h:mm:ss or m:ss."""
    if seconds is None:
        return "—"
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _row(agent: dict, pause_limit: float) -> html.Tr:
    state = agent["state"]
    seconds = agent.get("seconds_in_state")
    over = state == "paused" and seconds is not None and seconds > pause_limit
    cells = [agent["agent"], agent["campaign"], agent.get("team") or "", STATE_LABELS.get(state, state)]
    return html.Tr(
        [
            *[html.Td(value) for value in cells],
            html.Td(
                time_in_state(seconds),
                className="over-limit" if over else None,
                title=f"paused longer than {time_in_state(pause_limit)}" if over else None,
                **theme.data_attributes(testid="time-in-state"),
            ),
            html.Td(f"{agent.get('calls_today') or 0:,}", className="number"),
            html.Td(f"{agent.get('orders_today') or 0:,}", className="number"),
        ],
        className=f"floor-row state-{state}" + (" over-limit" if over else ""),
        **theme.data_attributes(agent=agent["agent"], state=state),
    )


@callback(Output("floor-table", "children"), Output("floor-summary", "children"), Input("floor-refresh", "n_intervals"))
def refresh(_n):
    settings = context().settings
    read = getattr(data, "floor_rows", None)
    if read is None:
        return [], "The floor query is not in this build: agent rows cannot be shown."
    agents = sorted(read(), key=lambda a: (STATE_ORDER.get(a["state"], 9), a["campaign"], a["agent"]))
    if not agents:
        return [], "No agent has sent a state yet: rows appear here as agent_state events land."
    pause_limit = settings.agents.pause_limit_seconds
    counts = {state: sum(1 for a in agents if a["state"] == state) for state in STATE_LABELS}
    summary = " · ".join(f"{counts[state]} {label}" for state, label in STATE_LABELS.items())
    over = sum(1 for a in agents if a["state"] == "paused" and (a.get("seconds_in_state") or 0) > pause_limit)
    if over:
        summary += f" · {over} paused longer than {time_in_state(pause_limit)}"
    table = html.Table(
        [
            html.Thead(html.Tr([html.Th(name) for name in COLUMNS])),
            html.Tbody([_row(agent, pause_limit) for agent in agents]),
        ],
        className="floor-table",
        **theme.data_attributes(testid="floor-table"),
    )
    return table, summary
