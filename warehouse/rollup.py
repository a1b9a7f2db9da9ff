"""The hourly rollup of minute_metrics (migration 0008): which hours are current, and their builds.

``minute_metrics`` is a ReplacingMergeTree: the worker re-lands a bucket's full state with a
higher version and reads use FINAL, so nothing can be summed on insert. Instead a closed, quiet
hour is rebuilt from ``minute_metrics FINAL`` into ``hour_metrics`` (and, summed per campaign,
into ``campaign_hour_metrics``), and a reader (warehouse/queries/sums.py) takes from them only hours
whose newest build is *current*:

- the build is done (all its rows landed before its done mark),
- it saw the change log's current version of the hour (``minute_metrics_changes``, which a
  materialized view sets to the warehouse clock on every insert into minute_metrics), and
- minute_metrics and the two rollup tables still have the same parts (a TRUNCATE, DROP
  PARTITION or DELETE adds nothing to the log but changes this fingerprint).

Every other minute of a range is read from ``minute_metrics FINAL``, so no figure depends on
whether, when or how often the rollup was built.

Builds. Each build has a version above every earlier one (microseconds, or the last + 1). It
marks its hours not done (``hour_metrics_builds``), writes their rows, all with that version,
then marks them done. A reader takes an hour's rows with FINAL, of the current build's version or
newer, so a build that crashed, one still running, or two racing each other are never counted
twice: at worst the hour is read from the minute buckets. The change-log version and fingerprint
a build records are read before it reads minute_metrics, so a row landing meanwhile makes the
build look stale, never current.

When. An hour is built once it ended and nothing has landed in it for ``ROLLUP_SETTLE``
(10 minutes, the default allowed lateness, after which live buckets stop changing; a replayed
backlog then does not rebuild an hour at every batch). Readers build the settled hours of their
range themselves (at most ``LAZY_BUILD_HOURS`` per read, and not while this process is already
building); :func:`refresh_rollup` builds them all.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from clickhouse_connect.driver.client import Client

from core.metrics import COUNTERS
from warehouse.client import command_int

log = logging.getLogger(__name__)

HOUR = timedelta(hours=1)
#: An hour is built once it ended this long ago and nothing has landed in it for as long.
ROLLUP_SETTLE = timedelta(minutes=10)
#: A read builds at most this many due hours itself (newest first); the rest of its range is read
#: from the minute buckets until a later read or refresh_rollup() builds them.
LAZY_BUILD_HOURS = 24 * 7
#: Hours per build (one INSERT ... SELECT each).
BUILD_CHUNK_HOURS = 24 * 7
#: A read whose months of minute_metrics hold fewer rows than this reads them directly: the
#: rollup's check costs more than it saves.
MIN_MINUTE_ROWS = 100_000
SIZES_TTL_S = 60.0
_sizes: dict[int, tuple[float, dict[str, int]]] = {}  # id(client) -> (when counted, partition -> rows)
_EPOCH = datetime(1970, 1, 1)
_FAR_FUTURE = datetime(2106, 1, 1)

# One build at a time in this process; a reader that finds one running reads without waiting.
_build_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class HourState:
    hour: datetime  # UTC, naive
    change: int  # the change log's version: when minute rows last landed in the hour
    minute_fingerprint: str  # minute_metrics' parts under the hour now
    fingerprint: str  # ... and those of the two rollup tables
    version: int  # the newest build's (0: never built)
    done: bool
    source_change: int  # what that build saw
    source_fingerprint: str
    due: bool  # ended and quiet for the settle time
    aligned: bool  # the whole UTC hour is one local hour in the zone asked about

    @property
    def current(self) -> bool:
        return self.done and self.source_change == self.change and self.source_fingerprint == self.fingerprint

    @property
    def needs_build(self) -> bool:
        return self.due and not self.current


# Fingerprints of a table's partition, from its active parts: the first block number (a TRUNCATE or
# DROP PARTITION takes the old parts away and new ones get new numbers; merges keep it) and the
# newest mutation applied (a DELETE rewrites the parts with a new data version; inserts and merges
# do not). minute_metrics' tells that its buckets changed other than by an insert; the rollup
# tables' that someone emptied them (they are a cache: truncating them loses nothing).
_TABLES = ("minute_metrics", "hour_metrics", "campaign_hour_metrics")
_PARTS = """
SELECT 1 + indexOf(['minute_metrics', 'hour_metrics', 'campaign_hour_metrics'], table) AS kind, toUInt32(0) AS at,
       toUInt64(min_block_number) AS n, toUInt8(0) AS due, toUInt8(0) AS aligned,
       if(data_version = toUInt64(min_block_number), 0, data_version) AS v, toUInt8(0) AS done, toUInt64(rows) AS m,
       partition_id AS s
FROM system.parts
WHERE database = currentDatabase() AND table IN ('minute_metrics', 'hour_metrics', 'campaign_hour_metrics') AND active
"""
# The change log, each hour's newest build mark and the parts, in one round trip (joined in
# Python: a join costs chDB more than these few rows).
_STATUS = (
    """
SELECT toUInt8(0) AS kind, toUInt32(hour) AS at, version AS n,
       toUInt8(hour + 3600 <= now() - toIntervalSecond({settle:UInt32})
               AND version + {settle:UInt32} * 1000000000 <= toUnixTimestamp64Nano(now64(9))) AS due,
       toUInt8({aligned}) AS aligned, toUInt64(0) AS v, toUInt8(0) AS done, toUInt64(0) AS m, '' AS s
FROM minute_metrics_changes WHERE hour >= {lo:DateTime} AND hour < {hi:DateTime}
UNION ALL
SELECT 1, toUInt32(hour), 0, 0, 0, argMax(version, revision), argMax(done, revision),
       argMax(source_version, revision), argMax(fingerprint, revision)
FROM hour_metrics_builds WHERE hour >= {lo:DateTime} AND hour < {hi:DateTime} GROUP BY hour
UNION ALL"""
    + _PARTS
)
# The whole UTC hour falls in one local hour (so in one local day and weekday): not in a +05:30
# zone, nor across a transition inside the hour. ClickHouse's own zone data decides.
_ALIGNED = "toStartOfHour(hour, {tz:String}) = hour AND toStartOfHour(hour + 3540, {tz:String}) = hour"


def _fingerprints(rows) -> dict[tuple[int, str], str]:
    """(table number 2-4, partition id) -> that partition's fingerprint, from _PARTS rows."""
    first: dict[tuple[int, str], int] = {}
    mutated: dict[tuple[int, str], int] = {}
    for kind, _, block, _, _, mutation, _, _, partition in rows:
        key = (kind, partition)
        first[key] = min(first.get(key, block), block)
        mutated[key] = max(mutated.get(key, 0), mutation)
    return {key: f"{first[key]}/{mutated[key]}" for key in first}


def minute_rows(client: Client, lo: datetime, hi: datetime) -> int:
    """About how many rows (all versions) minute_metrics holds in the months that [lo, hi)
    touches, from its parts as counted at most SIZES_TTL_S ago: enough to tell a read that its
    range is small, and the minute buckets cheaper than the rollup's bookkeeping."""
    cached = _sizes.get(id(client))
    if cached is None or time.monotonic() - cached[0] > SIZES_TTL_S:
        _remember_sizes(client, [row for row in client.query(_PARTS).result_rows if row[0] == 2])
        cached = _sizes[id(client)]
    months, month = set(), (lo.year, lo.month)
    while month <= (hi.year, hi.month):
        months.add(f"{month[0]:04d}{month[1]:02d}")
        month = (month[0] + month[1] // 12, month[1] % 12 + 1)
    return sum(rows for partition, rows in cached[1].items() if partition in months)


def _remember_sizes(client: Client, parts) -> None:
    sizes: dict[str, int] = {}
    for kind, _, _, _, _, _, _, rows, partition in parts:
        if kind == 2:
            sizes[partition] = sizes.get(partition, 0) + rows
    _sizes[id(client)] = (time.monotonic(), sizes)


def _partition(hour: datetime) -> str:
    return f"{hour.year:04d}{hour.month:02d}"  # toYYYYMM, as all three tables are partitioned


def hour_states(
    client: Client,
    lo: datetime | None = None,
    hi: datetime | None = None,
    tz: str | None = None,
    settle: timedelta | None = None,
) -> list[HourState]:
    """The change log's hours in [lo, hi) with their newest build (naive UTC datetimes); due
    after ``settle`` (default ROLLUP_SETTLE)."""
    settle = ROLLUP_SETTLE if settle is None else settle
    result = client.query(
        _STATUS.replace("{aligned}", _ALIGNED if tz else "1"),
        parameters={
            "lo": lo or _EPOCH,
            "hi": hi or _FAR_FUTURE,
            "settle": max(0, int(settle.total_seconds())),
            "tz": tz or "UTC",
        },
    )
    log: list[tuple] = []
    builds: dict[Any, Sequence[Any]] = {}
    parts: list[Sequence[Any]] = []
    for row in result.result_rows:
        if row[0] == 0:
            log.append(tuple(row))
        elif row[0] == 1:
            builds[row[1]] = row
        else:
            parts.append(row)
    fingerprints = _fingerprints(parts)
    _remember_sizes(client, parts)
    by_month: dict[tuple[int, int], tuple[str, str]] = {}
    states = []
    for _, at, change, due, aligned, _, _, _, _ in sorted(log):
        hour = _EPOCH + timedelta(seconds=at)
        month = by_month.get((hour.year, hour.month))
        if month is None:
            partition = _partition(hour)
            found = [fingerprints.get((number, partition), "0/0") for number in range(2, 2 + len(_TABLES))]
            month = by_month[(hour.year, hour.month)] = (found[0], "|".join(found))
        _, _, _, _, _, version, done, source_change, source_fingerprint = builds.get(at, (0,) * 5 + (0, 0, 0, ""))
        states.append(
            HourState(
                hour,
                change,
                month[0],
                month[1],
                version,
                done == 1,
                source_change,
                source_fingerprint,
                due == 1,
                aligned == 1,
            )
        )
    return states


def refresh_rollup(
    client: Client,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    settle: timedelta | None = None,
    limit: int | None = None,
    wait: bool = True,
) -> int:
    """Build every hour in [since, until) that changed since its last build (or never had one)
    and has settled (for ``settle``, default ROLLUP_SETTLE); return how many hours were built.
    ``limit`` builds only the newest that many; ``wait=False`` returns 0 at once if this process
    is already building."""
    if not _build_lock.acquire(blocking=wait):
        return 0
    try:
        states = hour_states(client, _naive(since) if since else None, _naive(until) if until else None, settle=settle)
        return _build(client, [s for s in states if s.needs_build], limit)
    finally:
        _build_lock.release()


def current_builds(
    client: Client, lo: datetime, hi: datetime, tz: str | None = None, *, build: bool = True
) -> dict[datetime, int]:
    """Hours in [lo, hi) whose rollup is current -> the build version to read (naive UTC).

    With ``build``, first builds the due hours of the range (at most LAZY_BUILD_HOURS, and only
    if no other thread of this process is building). With ``tz``, only hours that are whole
    local hours there."""
    states = hour_states(client, lo, hi, tz)
    if build and any(s.needs_build for s in states) and _build_lock.acquire(blocking=False):
        try:
            states = hour_states(client, lo, hi, tz)
            if _build(client, [s for s in states if s.needs_build], LAZY_BUILD_HOURS):
                states = hour_states(client, lo, hi, tz)
        finally:
            _build_lock.release()
    return {s.hour: s.version for s in states if s.current and s.aligned}


def _build(client: Client, due: list[HourState], limit: int | None) -> int:
    due = sorted(due, key=lambda s: s.hour, reverse=True)[:limit] if limit is not None else due
    due.sort(key=lambda s: s.hour)
    for first in range(0, len(due), BUILD_CHUNK_HOURS):
        _build_chunk(client, due[first : first + BUILD_CHUNK_HOURS])
    if due:
        log.info("rolled up %d hour(s) of minute_metrics, %s to %s", len(due), due[0].hour, due[-1].hour)
    return len(due)


def _build_chunk(client: Client, chunk: list[HourState]) -> None:
    version = command_int(
        client,
        "SELECT greatest(toUInt64(toUnixTimestamp64Micro(now64(6))), "
        "(SELECT max(version) + 1 FROM hour_metrics_builds))",
    )

    def mark(done: int, fingerprints: dict[datetime, str]) -> None:
        at = datetime.now(timezone.utc)
        client.insert(
            "hour_metrics_builds",
            [[s.hour, version, done, s.change, fingerprints.get(s.hour, ""), 2 * version + done, at] for s in chunk],
            column_names=["hour", "version", "done", "source_version", "fingerprint", "revision", "built_at"],
        )

    mark(0, {})
    hours = [s.hour for s in chunk]
    conditions, parameters = minute_ranges(_merge([(h, h + HOUR) for h in hours]))
    parameters.update({"hours": hours, "version": version})
    sums = ", ".join(f"sum({name})" for name in COUNTERS)
    client.command(
        f"INSERT INTO hour_metrics (hour, campaign, slot, segment, {', '.join(COUNTERS)}, version, built_at) "
        f"SELECT toStartOfHour(minute) AS hour, campaign, slot, segment, {sums}, {{version:UInt64}}, now64(3) "
        # PREWHERE on the sorting key: FINAL then merges only the rows of these hours.
        f"FROM minute_metrics FINAL PREWHERE ({conditions}) AND toStartOfHour(minute) IN {{hours:Array(DateTime)}} "
        "GROUP BY hour, campaign, slot, segment",
        parameters=parameters,
    )
    client.command(
        f"INSERT INTO campaign_hour_metrics (hour, campaign, {', '.join(COUNTERS)}, version, built_at) "
        # This build's rows, once each even if another build drew the same version meanwhile.
        f"SELECT hour, campaign, {sums}, {{version:UInt64}}, now64(3) FROM ("
        "SELECT * FROM hour_metrics WHERE hour >= {lo:DateTime} AND hour <= {hi:DateTime} "
        "AND hour IN {hours:Array(DateTime)} AND version = {version:UInt64} LIMIT 1 BY hour, campaign, slot, segment"
        ") GROUP BY hour, campaign",
        parameters={"lo": hours[0], "hi": hours[-1], "hours": hours, "version": version},
    )
    # Done, with the minute_metrics parts seen before reading them and the rollup's parts now.
    parts = _fingerprints(client.query(_PARTS).result_rows)
    mark(
        1,
        {
            s.hour: "|".join(
                [s.minute_fingerprint, *(parts.get((number, _partition(s.hour)), "0/0") for number in (3, 4))]
            )
            for s in chunk
        },
    )


def minute_ranges(
    ranges: list[tuple[datetime, datetime]], column: str = "minute", prefix: str = "r"
) -> tuple[str, dict]:
    """SQL for ``column`` in any of the [start, end) ranges (the primary key can use it), with
    its parameters; ranges must be non-empty."""
    if not ranges:
        return "0", {}
    parts, parameters = [], {}
    for number, (start, end) in enumerate(ranges):
        parts.append(f"({column} >= {{{prefix}{number}a:DateTime}} AND {column} < {{{prefix}{number}b:DateTime}})")
        parameters[f"{prefix}{number}a"] = start
        parameters[f"{prefix}{number}b"] = end
    return " OR ".join(parts), parameters


def _merge(ranges: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[list[datetime]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(start, end) for start, end in merged]


def _naive(moment: datetime) -> datetime:
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment
