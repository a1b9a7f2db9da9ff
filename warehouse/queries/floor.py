"""What the floor's readers read: each agent's state (the /floor page) and each campaign's agents
by state and newest dialer snapshot (the wallboard's floor strip).

The worker times out a silent agent by its campaign's event time; a reader also times it out
against its own ``now``: a campaign whose events stopped altogether sends nothing that would.
That ``now`` is the floor's own clock (floor_clock), not the call minutes' board time: agents
keep sending their states while no call lands, and a paused agent's time in state must keep
counting up on the wall clock."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import pandas as pd
from clickhouse_connect.driver.client import Client

from warehouse.queries.sums import as_utc, naive_utc

FLOOR_STATES = ("available", "on_call", "wrap_up", "paused")
AGENT_COLUMNS = ["agent", "campaign", "team", "state", "state_since", "seconds_in_state", "calls_today", "orders_today"]
SNAPSHOT_COLUMNS = ["campaign", "calls_waiting", "longest_wait_seconds", "dial_level", "snapshot_time"]

# An agent's state as of {now}: logged_out once silent for {timeout} seconds, from that moment.
_STATUS_AT_NOW = (
    "SELECT agent, campaign, team, "
    "if(state != 'logged_out' AND last_event_time < {now:DateTime64(3)} - toIntervalMillisecond({timeout_ms:UInt64}), "
    "'logged_out', state) AS state_now, "
    "if(state_now != state, last_event_time + toIntervalMillisecond({timeout_ms:UInt64}), state_since) AS since_now "
    "FROM agent_status FINAL"
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
    counts = ", ".join(f"countIf(state_now = '{state}') AS {state}" for state in FLOOR_STATES)
    agents = client.query_df(
        f"SELECT campaign, countIf(state_now != 'logged_out') AS logged_in, {counts} FROM ({_STATUS_AT_NOW}) "
        "WHERE campaign IN {campaigns:Array(String)} GROUP BY campaign",
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
