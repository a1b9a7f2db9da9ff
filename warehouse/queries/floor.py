"""What the floor's readers read: each agent's state (the /floor page) and each campaign's agents
by state and newest dialer snapshot (the wallboard's floor strip).

The worker times out a silent agent by its campaign's event time; a reader also times it out
against its own ``now``: a campaign whose events stopped altogether sends nothing that would.
That ``now`` is the floor's own clock (floor_clock), not the call minutes' board time: agents
keep sending their states while no call lands, and a paused agent's time in state must keep
counting up on the wall clock.

An agent's status is its row with the newest event time (the newest version among rows of the
same event time: the worker's own re-landing, such as a timeout): with several workers, one
that still holds an agent an event moved to another worker's partition (a campaign switch
during a rebalance) may land it later, but never with a newer event.

The wallboard's floor strip counts each campaign's line-up instead (campaign_agents: the
logged-in agents its worker holds, landed whole beside agent_status), a row per campaign shown
rather than every agent's latest status. The two agree but in one case: an agent moved to a
campaign of another worker's partition with no logged_out event in the old campaign stays in
the old campaign's line-up until its worker times it out. VICIdial's sources send that
logged_out (producers.vicidial.SWITCH_GAP), and with one worker a move updates both line-ups."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd
from clickhouse_connect.driver.client import Client

from warehouse.queries.sums import as_utc, naive_utc

FLOOR_STATES = ("available", "on_call", "wrap_up", "paused")
AGENT_COLUMNS = ["agent", "campaign", "team", "state", "state_since", "seconds_in_state", "calls_today", "orders_today"]
SNAPSHOT_COLUMNS = ["campaign", "calls_waiting", "longest_wait_seconds", "dial_level", "snapshot_time"]


# Each agent's latest status: the row of its newest event time, the newest version among equals
# (the table is ordered by agent, so this reads in order, about twice the cost of FINAL).
LATEST_STATUS = (
    "SELECT agent, campaign, team, state, state_since, last_event_time FROM agent_status "
    "ORDER BY agent, last_event_time DESC, version DESC LIMIT 1 BY agent"
)

# An agent's state as of {now}: logged_out once silent for {timeout} seconds, from that moment.
_STATUS_AT_NOW = (
    "SELECT agent, campaign, team, "
    "if(state != 'logged_out' AND last_event_time < {now:DateTime64(3)} - "
    "toIntervalMillisecond({timeout_ms:UInt64}), 'logged_out', state) AS state_now, "
    "if(state_now != state, last_event_time + toIntervalMillisecond({timeout_ms:UInt64}), state_since) "
    f"AS since_now FROM ({LATEST_STATUS})"
)


def floor_clock(client: Client, now: datetime, timeout_seconds: float) -> datetime | None:
    """The floor's "now" for a reader whose wall clock reads ``now``; None before any agent_state.

    Live (the newest agent event within ``timeout_seconds`` of ``now``): the wall clock, or the
    newest event if its dialer's clock runs ahead. Otherwise (a backfill or replay, or a floor
    whose events stopped): the newest event time, moved on by the wall time since it landed, so a
    replayed floor reads as of its own time and a stopped one times its agents out as time passes."""
    newest, landed, rows = client.query(
        "SELECT max(last_event_time), argMax(landed_at, last_event_time), count() FROM agent_status"
    ).result_rows[0]
    if not rows:
        return None
    newest, landed = as_utc(newest), as_utc(landed)
    if newest >= now - timedelta(seconds=timeout_seconds):
        return max(now, newest)
    return newest + max(timedelta(0), now - landed)


def floor_agents(
    client: Client, now: datetime, day_start: datetime, timeout_seconds: float, campaigns: Sequence[str] = ()
) -> pd.DataFrame:
    """One row per agent (of ``campaigns``, if given): its campaign, team, state as of ``now``,
    when that began and the seconds since, and its connected calls and orders since ``day_start``."""
    campaign_sql = "WHERE s.campaign IN {campaigns:Array(String)}" if campaigns else ""
    frame = client.query_df(
        f"SELECT s.agent AS agent, s.campaign AS campaign, s.team AS team, s.state_now AS state, "
        "s.since_now AS state_since, "
        "greatest(0, dateDiff('millisecond', s.since_now, {now:DateTime64(3)}) / 1000) AS seconds_in_state, "
        "ifNull(c.calls, 0) AS calls_today, ifNull(c.orders, 0) AS orders_today "
        f"FROM ({_STATUS_AT_NOW}) AS s LEFT JOIN ("
        "SELECT agent, countIf(outcome = 'connected') AS calls, countIf(outcome = 'connected' AND is_order = 1) "
        "AS orders FROM call_attempts WHERE minute >= toStartOfMinute({day:DateTime}) "
        "AND event_time <= {now:DateTime64(3)} AND agent != '' GROUP BY agent) AS c ON s.agent = c.agent "
        f"{campaign_sql} ORDER BY campaign, agent",
        parameters={
            "now": naive_utc(now),
            "day": naive_utc(day_start),
            "timeout_ms": int(timeout_seconds * 1000),
            "campaigns": list(campaigns),
        },
        settings={"join_use_nulls": 1},
    )
    if not len(frame.columns):
        return pd.DataFrame(columns=AGENT_COLUMNS)
    return frame[AGENT_COLUMNS]


def campaign_floor(
    client: Client, now: datetime, timeout_seconds: float, campaigns: Sequence[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """For each of ``campaigns``: its agents by state as of ``now`` (columns campaign,
    logged_in and FLOOR_STATES), and its newest dialer snapshot if no older than ``timeout_seconds``
    (SNAPSHOT_COLUMNS). Campaigns without agents or without a recent snapshot are left out."""
    parameters = {"now": naive_utc(now), "timeout_ms": int(timeout_seconds * 1000), "campaigns": list(campaigns)}
    # Each campaign's line-up (campaign_agents: migration 0023), its agents timed out at ``now``
    # (``live``: an agent's newest event within the timeout) as _STATUS_AT_NOW times them out.
    counts = ", ".join(
        f"arrayCount((state, live) -> live AND state = '{state}', states, live_agents) AS {state}"
        for state in FLOOR_STATES
    )
    agents = client.query_df(
        f"SELECT campaign, arrayCount(live_agents) AS logged_in, {counts} FROM ("
        "SELECT campaign, states, arrayMap(moment -> moment >= {now:DateTime64(3)} - "
        "toIntervalMillisecond({timeout_ms:UInt64}), last_event_times) AS live_agents "
        "FROM campaign_agents FINAL WHERE campaign IN {campaigns:Array(String)})",
        parameters=parameters,
    )
    # Each campaign's newest snapshot (dialer_latest, one row per campaign: migration 0018), if
    # it is recent; one a little ahead of ``now`` is a dialer clock a little ahead, still current.
    snapshots = client.query_df(
        "SELECT campaign, argMax(calls_waiting, event_time) AS calls_waiting, "
        "argMax(longest_wait_seconds, event_time) AS longest_wait_seconds, "
        "argMax(dial_level, event_time) AS dial_level, max(event_time) AS snapshot_time FROM dialer_latest "
        "WHERE campaign IN {campaigns:Array(String)} GROUP BY campaign "
        "HAVING snapshot_time >= {now:DateTime64(3)} - toIntervalMillisecond({timeout_ms:UInt64})",
        parameters=parameters,
    )
    if not len(agents.columns):
        agents = pd.DataFrame(columns=["campaign", "logged_in", *FLOOR_STATES])
    if not len(snapshots.columns):
        snapshots = pd.DataFrame(columns=SNAPSHOT_COLUMNS)
    return agents, snapshots


# -- the /floor page: one page of agents, whatever the floor's size --------------------------------

#: How the /floor page may order agents. "attention": paused past the limit first (longest pause
#: first), then by state (paused, wrap-up, ready, on call, logged out), campaign and agent.
FLOOR_SORTS: dict[str, str] = {
    "attention": "over_limit DESC, if(over_limit, seconds_in_state, 0) DESC, state_rank, campaign, agent",
    "time_in_state": "seconds_in_state DESC, agent",
    "agent": "agent",
    "campaign": "campaign, state_rank, agent",
}
OVER_LIMIT = "over_limit"  # the state filter for agents paused past the pause limit
PAGE_COLUMNS = ["agent", "campaign", "team", "state", "state_since", "seconds_in_state", "over_limit"]
_STATE_RANK = "indexOf(['paused', 'wrap_up', 'available', 'on_call', 'logged_out'], state)"


@dataclass(frozen=True)
class FloorFilter:
    """Which agents the /floor page shows: all of them, or those of one campaign, one team, one
    state (or OVER_LIMIT), whose id contains ``agent``."""

    campaign: str | None = None
    team: str | None = None
    state: str | None = None
    agent: str = ""


@dataclass(frozen=True)
class FloorPage:
    """One page of agents (PAGE_COLUMNS plus calls_today and orders_today), how many agents match
    the filter, and the agents by state (and OVER_LIMIT) under the filter's campaign, team and
    agent: the counts a supervisor chooses a state from."""

    rows: pd.DataFrame
    matching: int
    counts: dict[str, int]


def floor_page(
    client: Client,
    now: datetime,
    day_start: datetime,
    timeout_seconds: float,
    pause_limit_seconds: float,
    which: FloorFilter = FloorFilter(),
    sort: str = "attention",
    offset: int = 0,
    limit: int = 50,
) -> FloorPage:
    """The agents ``which`` picks, ordered by ``sort`` (FLOOR_SORTS), from ``offset``, at most
    ``limit``: their state as of ``now``, the seconds since it began, whether a pause ran past
    ``pause_limit_seconds``, and their connected calls and orders since ``day_start`` in the
    campaign they are in now. Three reads: the state counts and the page, each over every
    agent's latest row (a few milliseconds a read at 20,000 agents), and the calls of the page's
    agents alone (pruned to their campaigns by call_attempts' key). Only ``limit`` rows come back,
    however big the floor."""
    if sort not in FLOOR_SORTS:
        raise ValueError(f"unknown floor sort {sort!r}: one of {', '.join(FLOOR_SORTS)}")
    parameters = {
        "now": naive_utc(now),
        "day": naive_utc(day_start),
        "timeout_ms": int(timeout_seconds * 1000),
        "pause_limit": float(pause_limit_seconds),
        "campaign": which.campaign or "",
        "team": which.team or "",
        "state": which.state or "",
        "agent": which.agent,
        "offset": max(0, int(offset)),
        "limit": max(1, int(limit)),
    }
    agents = (
        "SELECT agent, campaign, team, state_now AS state, since_now AS state_since, "
        "greatest(0, dateDiff('millisecond', since_now, {now:DateTime64(3)}) / 1000) AS seconds_in_state, "
        "state = 'paused' AND seconds_in_state > {pause_limit:Float64} AS over_limit, "
        f"{_STATE_RANK} AS state_rank FROM ({_STATUS_AT_NOW}) WHERE 1"
        + (" AND campaign = {campaign:String}" if which.campaign else "")
        + (" AND team = {team:String}" if which.team else "")
        + (" AND positionCaseInsensitive(agent, {agent:String}) > 0" if which.agent else "")
    )
    counts: dict[str, int] = {}
    for state, agents_in_state, over_limit in client.query(
        f"SELECT state, count(), countIf(over_limit) FROM ({agents}) GROUP BY state", parameters=parameters
    ).result_rows:
        counts[state] = int(agents_in_state)
        counts[OVER_LIMIT] = counts.get(OVER_LIMIT, 0) + int(over_limit)
    if which.state == OVER_LIMIT:
        picked, matching = " WHERE over_limit", counts.get(OVER_LIMIT, 0)
    elif which.state:
        picked, matching = " WHERE state = {state:String}", counts.get(which.state, 0)
    else:
        picked, matching = "", sum(value for state, value in counts.items() if state != OVER_LIMIT)
    rows = client.query_df(
        f"SELECT {', '.join(PAGE_COLUMNS)} FROM ({agents}){picked} ORDER BY {FLOOR_SORTS[sort]} "
        "LIMIT {limit:UInt32} OFFSET {offset:UInt32}",
        parameters=parameters,
    )
    if not len(rows.columns):
        rows = pd.DataFrame(columns=PAGE_COLUMNS)
    rows["calls_today"] = 0
    rows["orders_today"] = 0
    if len(rows):
        calls = client.query(
            "SELECT agent, countIf(outcome = 'connected'), countIf(outcome = 'connected' AND is_order = 1) "
            "FROM call_attempts WHERE campaign IN {campaigns:Array(String)} "
            "AND minute >= toStartOfMinute({day:DateTime}) "
            "AND event_time <= {now:DateTime64(3)} AND agent IN {agents:Array(String)} GROUP BY agent",
            parameters={
                **parameters,
                "campaigns": sorted(set(rows["campaign"])),
                "agents": list(rows["agent"]),
            },
        ).result_rows
        by_agent = {agent: (calls_today, orders_today) for agent, calls_today, orders_today in calls}
        rows["calls_today"] = [by_agent.get(agent, (0, 0))[0] for agent in rows["agent"]]
        rows["orders_today"] = [by_agent.get(agent, (0, 0))[1] for agent in rows["agent"]]
    return FloorPage(rows, matching, counts)


def floor_choices(client: Client, column: str, search: str = "", limit: int = 30) -> list[str]:
    """Up to ``limit`` campaigns or teams (``column``) of the floor's agents containing ``search``,
    in order: what the /floor page's filter offers as a supervisor types."""
    if column not in ("campaign", "team"):
        raise ValueError(f"the floor filters by campaign or team, not {column!r}")
    rows = client.query(
        f"SELECT DISTINCT {column} AS name FROM agent_status WHERE name != '' "
        "AND positionCaseInsensitive(name, {search:String}) > 0 ORDER BY name LIMIT {limit:UInt32}",
        parameters={"search": search, "limit": int(limit)},
    ).result_rows
    return [name for (name,) in rows]
