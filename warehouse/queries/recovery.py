"""What a starting worker reads back: the attempts of each campaign's open window (to rebuild
its minute buckets), the ids of the calls within the duplicate horizon (to rebuild its long
memory of ids), calls already landed, the offsets landed per partition, and the stop list.
A worker a rebalance brings partitions reads the first two back for their campaigns only."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from clickhouse_connect.driver.client import Client

from core.metrics import AGENT_COUNTERS
from core.schema import StopListEntry
from warehouse.client import command_int
from warehouse.queries.floor import LATEST_STATUS
from warehouse.queries.sums import as_utc, naive_utc


def open_window_attempts(client: Client, window_s: int, newest_allowed: datetime | None = None) -> list[tuple]:
    """Landed attempts inside each campaign's lateness window, to rebuild live buckets.

    With ``newest_allowed``, a campaign's window ends there at the latest: rows landed in the
    future (by an earlier version, from a dialer with a wrong clock) do not move it past the
    calls landed before them, which a new call may still reach. Those rows are returned too."""
    return _open_window_attempts(client, window_s, newest_allowed, None)


def open_window_attempts_of(
    client: Client, campaigns: Sequence[str], window_s: int, newest_allowed: datetime | None = None
) -> list[tuple]:
    """open_window_attempts() for ``campaigns`` only (those a rebalance brought a worker), read
    by the table's sort key instead of every campaign's rows."""
    if not campaigns:
        return []
    return _open_window_attempts(client, window_s, newest_allowed, campaigns)


def _open_window_attempts(
    client: Client, window_s: int, newest_allowed: datetime | None, campaigns: Sequence[str] | None
) -> list[tuple]:
    newest = "max(event_time)" if newest_allowed is None else "least(max(event_time), {newest_allowed:DateTime64(3)})"
    parameters: dict[str, Any] = {"lateness": int(window_s)}
    if newest_allowed is not None:
        parameters["newest_allowed"] = naive_utc(newest_allowed)
    only = ""
    if campaigns is not None:
        parameters["campaigns"] = list(campaigns)
        only = "WHERE campaign IN {campaigns:Array(String)} "
    rows = client.query(
        "SELECT a.event_id, a.campaign, a.segment, toUnixTimestamp64Milli(a.event_time) / 1000.0, "
        "a.outcome, a.is_order, a.cost, a.talk_seconds, a.wait_seconds "
        "FROM call_attempts AS a FINAL "
        f"INNER JOIN (SELECT campaign, {newest} AS newest FROM call_attempts {only}GROUP BY campaign) AS w "
        "ON a.campaign = w.campaign "
        "WHERE a.minute >= toStartOfMinute(w.newest - toIntervalSecond({lateness:UInt32}))"
        + (" AND a.campaign IN {campaigns:Array(String)}" if campaigns is not None else ""),
        parameters=parameters,
    ).result_rows
    return [tuple(row) for row in rows]


def landed_campaigns(client: Client) -> list[str]:
    """Every campaign with calls in call_attempts: those a rebalance may bring a worker, whose
    open buckets and ids it reads back (open_window_attempts_of, landed_id_keys_of). Reads the
    campaign column alone, the first of the table's sort key."""
    return [str(row[0]) for row in client.query("SELECT DISTINCT campaign FROM call_attempts").result_rows]


def landed_id_keys(client: Client, since_epoch: float, span_seconds: float) -> Iterator[tuple[int, list[int]]]:
    """The ids of the calls landed from ``since_epoch`` on (by the call's minute), as the long
    memory of ids keeps them: (generation, their xxHash64s) a block at a time, the generation
    being floor(call epoch / ``span_seconds``). The warehouse hashes the ids, so a block is 16
    bytes a call, and nothing is sorted or deduplicated (a call landed twice is added twice)."""
    return _landed_id_keys(client, since_epoch, span_seconds, None)


def landed_id_keys_of(
    client: Client, campaigns: Sequence[str], since_epoch: float, span_seconds: float
) -> Iterator[tuple[int, list[int]]]:
    """landed_id_keys() of ``campaigns``' calls only (those a rebalance brought a worker): the
    table is sorted by campaign first, so only their rows are read."""
    if not campaigns:
        return iter(())
    return _landed_id_keys(client, since_epoch, span_seconds, campaigns)


def _landed_id_keys(
    client: Client, since_epoch: float, span_seconds: float, campaigns: Sequence[str] | None
) -> Iterator[tuple[int, list[int]]]:
    parameters: dict[str, Any] = {"span": int(span_seconds), "since": max(0, int(since_epoch))}
    only = ""
    if campaigns is not None:
        parameters["campaigns"] = list(campaigns)
        only = " AND campaign IN {campaigns:Array(String)}"
    with client.query_np_stream(
        "SELECT toUInt64(intDiv(toUnixTimestamp(minute), {span:UInt32})), xxHash64(event_id) FROM call_attempts "
        f"WHERE minute >= toStartOfMinute(toDateTime({{since:UInt32}}, 'UTC')){only}",
        parameters=parameters,
    ) as blocks:
        for block in blocks:
            generations, keys = block[:, 0], block[:, 1]  # one UInt64 matrix
            for generation in np.unique(generations):
                yield int(generation), keys[generations == generation].tolist()


def landed_calls(
    client: Client, event_ids: list[str], within: Sequence[tuple[float, float]] | None = None
) -> dict[str, tuple]:
    """Which of these event ids are already in call_attempts, each with what it was counted
    as: (campaign, event time in epoch ms, outcome, is_order, talk_seconds, segment).
    ``within``: spans of call time (epoch s, start inclusive, end exclusive) that hold every one
    of them that landed; only those minutes are searched (call_attempts is ordered by campaign
    and minute, not by event id, so a search without them reads every id ever landed)."""
    if not event_ids or within == []:
        return {}
    parameters: dict[str, Any] = {"ids": list(event_ids)}
    spans = ""
    if within is not None:
        ranges = []
        for number, (start, end) in enumerate(within):
            ranges.append(
                f"(minute >= toStartOfMinute(toDateTime({{start_{number}:UInt32}}, 'UTC')) "
                f"AND minute < toDateTime({{end_{number}:UInt32}}, 'UTC'))"
            )
            parameters[f"start_{number}"], parameters[f"end_{number}"] = max(0, int(start)), max(0, math.ceil(end))
        spans = f" AND ({' OR '.join(ranges)})"
    rows = client.query(
        "SELECT event_id, campaign, toUnixTimestamp64Milli(event_time), outcome, is_order, "
        f"talk_seconds, segment FROM call_attempts FINAL WHERE event_id IN {{ids:Array(String)}}{spans}",
        parameters=parameters,
    ).result_rows
    return {row[0]: tuple(row[1:]) for row in rows}


def landed_offsets(client: Client, consumer_group: str, topic: str) -> dict[int, tuple[int, str]]:
    """Per partition, the next offset the worker has to process, as landed, and the id of
    the topic incarnation that offset belongs to."""
    rows = client.query(
        "SELECT partition, argMax(next_offset, version), argMax(topic_id, version) FROM consumed_offsets "
        "WHERE consumer_group = {group:String} AND topic = {topic:String} GROUP BY partition",
        parameters={"group": consumer_group, "topic": topic},
    ).result_rows
    return {int(partition): (int(offset), str(incarnation)) for partition, offset, incarnation in rows}


def landed_stop_list(client: Client) -> tuple[list[StopListEntry], int]:
    """The customers the warehouse holds as flagged (removals left out), and the newest
    version landed, so the next landing can order after it whatever the clock says."""
    rows = client.query(
        "SELECT phone_hash, flagged_at, reason, source FROM stop_list FINAL WHERE removed_at IS NULL"
    ).result_rows
    newest = command_int(client, "SELECT max(version) FROM stop_list")
    return (
        [
            StopListEntry(phone_hash, as_utc(flagged_at), reason, source)
            for phone_hash, flagged_at, reason, source in rows
        ],
        newest,
    )


def landed_floor(client: Client) -> tuple[list[tuple], list[tuple], int]:
    """What a starting worker rebuilds its floor from: every agent's landed status (agent,
    campaign, team, state, state_since, last_event_time, times in epoch s), the latest minutes of
    the agents still logged in (campaign, team, agent, minute epoch s, the AGENT_COUNTERS values,
    accounted_until epoch s), from the minute of their oldest last event on, and the newest
    version landed."""
    statuses = client.query(
        "SELECT agent, campaign, team, state, toUnixTimestamp64Milli(state_since) / 1000.0, "
        f"toUnixTimestamp64Milli(last_event_time) / 1000.0 FROM ({LATEST_STATUS})"  # by event time, not version
    ).result_rows
    logged_in = [row[0] for row in statuses if row[3] != "logged_out"]
    minutes: Sequence[Sequence[Any]] = []
    if logged_in:
        earliest = min(row[5] for row in statuses if row[3] != "logged_out")
        minutes = client.query(
            f"SELECT campaign, team, agent, toUnixTimestamp(minute), {', '.join(AGENT_COUNTERS)}, "
            "toUnixTimestamp64Milli(accounted_until) / 1000.0 FROM agent_minutes FINAL "
            "WHERE minute >= toStartOfMinute(toDateTime(toUInt32({earliest:Float64}))) "
            "AND agent IN {agents:Array(String)}",
            parameters={"earliest": float(earliest), "agents": logged_in},
        ).result_rows
    newest = command_int(
        client, "SELECT greatest((SELECT max(version) FROM agent_status), (SELECT max(version) FROM agent_minutes))"
    )
    return [tuple(row) for row in statuses], [tuple(row) for row in minutes], newest
