"""The floor: the agents, a page at a time, for the supervisor walking it.

Each agent's campaign, team, state and time in that state (red when a pause runs past
``agents.pause_limit_seconds``), and today's calls and orders in its campaign (today in
pipeline.timezone). Agents silent for ``agents.timeout_seconds`` read as logged out. The counts
by state head the page; the agents can be narrowed to a campaign, a team, a state or an agent id
and are ordered, by default, with the pauses past the limit first.

A floor may hold tens of thousands of agents, so paging, ordering and filtering happen in the
warehouse (``warehouse.queries.floor.floor_page``): a refresh ships and draws one page of
PAGE_SIZE rows whatever the floor's size, and the campaign and team filters offer only the
names matching what is typed.
"""

from __future__ import annotations

import dash
import pandas as pd
from dash import Input, Output, State, callback, dcc, html

from dashboards import data, theme
from dashboards.controls import control
from dashboards.data import context
from warehouse.queries.floor import OVER_LIMIT, FloorFilter, FloorPage

dash.register_page(__name__, path="/floor", name="Floor", title="CallPulse · Floor", order=10)

PAGE_SIZE = 50  # agents on a page: about two screens of a TV, a few of a phone
STATE_LABELS = {
    "paused": "paused",
    "wrap_up": "wrap-up",
    "available": "ready",
    "on_call": "on call",
    "logged_out": "logged out",
}
SORT_LABELS = {
    "attention": "Long pauses first",
    "time_in_state": "Longest in state",
    "campaign": "Campaign",
    "agent": "Agent",
}
COLUMNS = ("Agent", "Campaign", "Team", "State", "Time in state", "Calls today", "Orders today")
FILTERS = ("floor-campaign", "floor-team", "floor-state", "floor-agent", "floor-sort")


def layout(**_query):
    refresh_ms = int(context().settings.dashboard.refresh_seconds * 1000)
    limit = time_in_state(context().settings.agents.pause_limit_seconds)
    state_options = [{"label": f"paused over {limit}", "value": OVER_LIMIT}] + [
        {"label": label, "value": state} for state, label in STATE_LABELS.items()
    ]
    return html.Div(
        [
            html.Div(id="floor-summary", className="floor-summary", **theme.data_attributes(testid="floor-summary")),
            html.Div(
                [
                    control(
                        "Campaign",
                        dcc.Dropdown(id="floor-campaign", placeholder="all campaigns"),
                    ),
                    control("Team", dcc.Dropdown(id="floor-team", placeholder="all teams")),
                    control("State", dcc.Dropdown(id="floor-state", options=state_options, placeholder="any state")),
                    control(
                        "Agent",
                        dcc.Input(id="floor-agent", type="search", placeholder="id contains", debounce=True, value=""),
                    ),
                    control(
                        "Order",
                        dcc.Dropdown(
                            id="floor-sort",
                            options=[{"label": label, "value": sort} for sort, label in SORT_LABELS.items()],
                            value="attention",
                            clearable=False,
                        ),
                    ),
                ],
                className="controls floor-controls",
            ),
            html.Div(
                [
                    html.Button("‹ Previous", id="floor-previous", className="button", disabled=True),
                    html.Span(id="floor-position", **theme.data_attributes(testid="floor-position")),
                    html.Button("Next ›", id="floor-next", className="button", disabled=True),
                ],
                className="floor-pager",
            ),
            html.Div(id="floor-table", className="floor-table-wrap"),
            dcc.Store(id="floor-page-number", data=0),
            dcc.Interval(id="floor-refresh", interval=refresh_ms),
        ],
        className="floor-page",
    )


def time_in_state(seconds: float | None) -> str:
    """h:mm:ss or m:ss."""
    if seconds is None or pd.isna(seconds):
        return "—"
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _row(agent, pause_limit: str) -> html.Tr:
    state = agent.state
    over = bool(agent.over_limit)
    cells = [agent.agent, agent.campaign, agent.team or "", STATE_LABELS.get(state, state)]
    return html.Tr(
        [
            *[html.Td(value) for value in cells],
            html.Td(
                time_in_state(agent.seconds_in_state),
                className="over-limit" if over else None,
                title=f"paused longer than {pause_limit}" if over else None,
                **theme.data_attributes(testid="time-in-state"),
            ),
            html.Td(f"{int(agent.calls_today):,}", className="number"),
            html.Td(f"{int(agent.orders_today):,}", className="number"),
        ],
        className=f"floor-row state-{state}" + (" over-limit" if over else ""),
        **theme.data_attributes(agent=agent.agent, state=state),
    )


def _summary(page: FloorPage, pause_limit: str) -> list:
    """The agents by state (under the campaign, team and agent chosen), the pauses past the limit
    last and in red when there are any."""
    items = [
        html.Span(
            [html.B(f"{page.counts.get(state, 0):,}"), f" {label}"],
            className=f"floor-state-count state-{state}",
            **theme.data_attributes(state=state),
        )
        for state, label in STATE_LABELS.items()
    ]
    over = page.counts.get(OVER_LIMIT, 0)
    if over:
        items.append(
            html.Span(
                [html.B(f"{over:,}"), f" paused longer than {pause_limit}"],
                className="floor-state-count over-limit",
                **theme.data_attributes(state=OVER_LIMIT),
            )
        )
    return items


@callback(
    Output("floor-campaign", "options"), Input("floor-campaign", "search_value"), State("floor-campaign", "value")
)
def campaign_options(search, chosen):
    return _options("campaign", search, chosen)


@callback(Output("floor-team", "options"), Input("floor-team", "search_value"), State("floor-team", "value"))
def team_options(search, chosen):
    return _options("team", search, chosen)


def _options(column: str, search: str | None, chosen: str | None) -> list[str]:
    """The names matching what was typed (a few dozen at most), and the one chosen."""
    names = data.floor_choices(column, search or "")
    return names if not chosen or chosen in names else [chosen, *names]


@callback(
    Output("floor-table", "children"),
    Output("floor-summary", "children"),
    Output("floor-position", "children"),
    Output("floor-previous", "disabled"),
    Output("floor-next", "disabled"),
    Output("floor-page-number", "data"),
    Input("floor-refresh", "n_intervals"),
    Input("floor-previous", "n_clicks"),
    Input("floor-next", "n_clicks"),
    *(Input(component, "value") for component in FILTERS),
    State("floor-page-number", "data"),
)
def refresh(_n, _previous, _next, campaign, team, state, agent, sort, page_number):
    moved = dash.ctx.triggered_id
    number = int(page_number or 0)
    if moved == "floor-previous":
        number -= 1
    elif moved == "floor-next":
        number += 1
    elif moved in FILTERS:
        number = 0  # a new filter or order starts at its first page
    number = max(0, number)
    which = FloorFilter(campaign=campaign or None, team=team or None, state=state or None, agent=(agent or "").strip())
    page = data.floor_page(which, sort or "attention", number * PAGE_SIZE, PAGE_SIZE)
    if page.matching and number * PAGE_SIZE >= page.matching:  # the floor shrank under this page
        number = (page.matching - 1) // PAGE_SIZE
        page = data.floor_page(which, sort or "attention", number * PAGE_SIZE, PAGE_SIZE)
    pause_limit = time_in_state(context().settings.agents.pause_limit_seconds)
    last = max(0, (page.matching - 1) // PAGE_SIZE)
    if not page.counts:
        message = "No agent has sent a state yet: rows appear here as agent_state events land."
        return [], message, "", True, True, 0
    if not page.matching:
        table: object = html.P("No agent matches these filters.", className="floor-empty")
        position = ""
    else:
        first = number * PAGE_SIZE + 1
        shown = f"agents {first:,}–{first + len(page.rows) - 1:,} of {page.matching:,}"
        position = f"{shown} · page {number + 1:,} of {last + 1:,}"
        table = html.Table(
            [
                html.Thead(html.Tr([html.Th(name) for name in COLUMNS])),
                html.Tbody([_row(agent, pause_limit) for agent in page.rows.itertuples(index=False)]),
            ],
            className="floor-table",
            **theme.data_attributes(testid="floor-table"),
        )
    return table, _summary(page, pause_limit), position, number == 0, number >= last, number
