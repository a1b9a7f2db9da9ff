"""Summing the minute buckets, through the hourly rollup where it holds whole current hours.

Every reader of counters (reports, the wallboard, the alert baselines) writes its query once as a
template over rows; :func:`summed` decides which hours come from the rollup and which from the
minute buckets, so every sum is the same as the plain query's."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
from clickhouse_connect.driver.client import Client

from core.metrics import COUNTERS
from warehouse import rollup

SUMS = ", ".join(f"sum({name}) AS {name}" for name in COUNTERS)


# -- the hourly rollup (warehouse/rollup.py) ------------------------------------------------
#
# Each read of minute_metrics below is written once, as a template over its rows:
# ``template(rows, counted)`` is the SQL aggregating ``rows`` (a table or subquery with the
# columns campaign, slot, segment, minute and the counters), where ``counted(within)`` is the SQL
# condition for a row to count in a window of minutes ``within(t)``. Read plainly, rows is
# minute_metrics FINAL over the minutes of the span (minute_rows_sql) and counted(within) is
# within(minute): the query as it always was.
# With current rollup hours in the range, the template runs twice and the partial sums are added:
#   1. over the rollup rows (minute = the hour's start), an hour counting in a window only if all
#      of it is within (its first and its last minute are);
#   2. over minute_metrics FINAL for the other minutes of the range (partial hours at the edges,
#      hours changed since their build, the open recent hours), a bucket counting if it is within
#      and its hour was not counted from the rollup for that window.
# Python only picks which hours to read from where, to read less; whether a row counts is decided
# in SQL from the same parameters as the plain query, so every sum is the same.

#: A read looks at the rollup only if a window holds at least this many whole hours: for shorter
#: ones the bookkeeping costs more than the minute buckets it saves.
MIN_ROLLUP_HOURS = 2
_HOUR = timedelta(hours=1)
_MINUTE = timedelta(minutes=1)
_NO_VERSION = 2**64 - 1
MINUTE_METRICS = "minute_metrics FINAL"


def minute_window(start: datetime, end: datetime, end_inclusive: bool = False) -> tuple[datetime, datetime]:
    """The minute buckets m with start <= m < end (m <= end if ``end_inclusive``) as [first, stop)
    in whole minutes; the bounds are cut to seconds first, as a DateTime parameter is."""
    start, end = naive_utc(start).replace(microsecond=0), naive_utc(end).replace(microsecond=0)
    first = _floor_minute(start) + (_MINUTE if start.second else timedelta(0))
    stop = _floor_minute(end) + (_MINUTE if end_inclusive or end.second else timedelta(0))
    return first, stop


def _floor_minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def _floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _ceil_hour(moment: datetime) -> datetime:
    floor = _floor_hour(moment)
    return floor if floor == moment else floor + _HOUR


def whole_hour_offsets(tz: str, *moments: datetime) -> bool:
    """Whether ``tz`` is a whole number of hours from UTC at these moments. Only saves asking
    the warehouse about a zone like Asia/Kolkata, whose hours never line up with UTC hours: which
    hours may come from the rollup, ClickHouse's own zone data decides (rollup.current_builds)."""
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        return True

    def on_the_hour(moment: datetime) -> bool:
        offset = (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).astimezone(zone).utcoffset()
        return offset is not None and offset % _HOUR == timedelta(0)

    return all(on_the_hour(moment) for moment in moments)


def _merge_hours(ranges: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """Closed ranges of hour starts [first, last], merged where they overlap or touch."""
    merged: list[list[datetime]] = []
    for first, last in sorted(ranges):
        if merged and first <= merged[-1][1] + _HOUR:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    return [(first, last) for first, last in merged]


def summed(
    client: Client,
    template,
    keys: Sequence[str],
    values: Sequence[str],
    windows: Sequence[tuple[datetime, datetime]],
    span: tuple[datetime, datetime],
    *,
    column: str = "minute",
    tz: str | None = None,
    campaign_sql: str = "",
    by_slot_and_segment: bool = True,
    order: bool = True,
    minimums: Sequence[str] = (),
) -> tuple[str, dict]:
    """(SQL, extra parameters) of ``template`` over minute_metrics, through the rollup where it has
    current hours wholly inside one of ``windows``.

    The template's output columns are ``keys`` then ``values``, which must be sums (the partial
    sums of both reads are added). ``windows`` are the windows its conditions count, ``span``
    every minute its WHERE can take, both as [first, stop) whole minutes (minute_window).
    ``column`` names the minute column as the template's conditions see it; ``tz``: its keys
    are local times in that zone (only whole local hours then come from the rollup);
    ``campaign_sql`` filters rows before the template (its parameters are the caller's);
    without ``by_slot_and_segment`` the rows have no slot and segment and the rollup read is the
    per-campaign one. ``order`` orders the result by ``keys``. ``minimums`` are output columns
    after ``values`` that are least values, not sums (a first minute, NULL where a part has none);
    read from the rollup, a minute there is its hour's start."""
    group = ", ".join(keys)
    tail = f" ORDER BY {group}" if order and keys else ""
    plan = _rollup_plan(client, windows, span, tz, campaign_sql, by_slot_and_segment)
    if plan is None:  # the query as it always was, over the span's minute rows
        rows = minute_rows_sql(["{plain_from:DateTime}", "{plain_to:DateTime}"], by_slot_and_segment, campaign_sql)
        return template(rows, lambda within: within(column)) + tail, {
            "plain_from": span[0] - _MINUTE,
            "plain_to": span[1] + _MINUTE,
        }
    rollup_rows, minute_rows, parameters = plan

    def whole(hour: str, within) -> str:  # every minute of the hour is within: its first and its last
        return f"({within(hour)}) AND ({within(f'({hour} + 3540)')})"

    def from_minutes(within) -> str:
        # The minute rows hold no used hour but the edge ones (see _rollup_plan): only those can
        # have been counted from the rollup instead.
        if not parameters["rollup_edges"]:
            return within(column)
        hour = f"toStartOfHour({column})"
        return f"({within(column)}) AND NOT ({hour} IN {{rollup_edges:Array(DateTime)}} AND {whole(hour, within)})"

    parts = [template(rollup_rows, lambda within: whole(column, within))]
    if minute_rows:
        parts.append(template(minute_rows, from_minutes))
    sums = ", ".join([*(f"sum({value}) AS {value}" for value in values), *(f"min({m}) AS {m}" for m in minimums)])
    sql = (
        f"SELECT {group + ', ' if group else ''}{sums} FROM ({' UNION ALL '.join(parts)})"
        + (f" GROUP BY {group}" if group else "")
        + tail
    )
    return sql, parameters


def _rollup_plan(
    client: Client,
    windows: Sequence[tuple[datetime, datetime]],
    span: tuple[datetime, datetime],
    tz: str | None,
    campaign_sql: str,
    by_slot_and_segment: bool,
) -> tuple[str, str, dict] | None:
    """(rollup rows, minute rows or "", parameters) for :func:`summed`; None if no current rollup
    hour lies wholly inside a window (or no window holds MIN_ROLLUP_HOURS whole hours, or the
    range's months hold fewer than rollup.MIN_MINUTE_ROWS minute rows)."""
    spans = {(first, stop) for first, stop in windows if first < stop}  # the non-empty windows, once each
    # Per window, the hours wholly inside it: from its first whole hour to the one ending by stop.
    wholes = _merge_hours(
        [(_ceil_hour(first), _floor_hour(stop - _HOUR)) for first, stop in spans if _ceil_hour(first) + _HOUR <= stop]
    )
    if not any(last - first >= (MIN_ROLLUP_HOURS - 1) * _HOUR for first, last in wholes):
        return None
    lo, hi = _floor_hour(span[0]), span[1]
    if rollup.minute_rows(client, lo, hi) < rollup.MIN_MINUTE_ROWS:
        return None
    builds = rollup.current_builds(client, lo, hi, tz)
    starts = [first for first, _ in wholes]

    def whole_somewhere(hour: datetime) -> bool:
        at = bisect.bisect_right(starts, hour) - 1
        return at >= 0 and hour <= wholes[at][1]

    used = {hour: version for hour, version in builds.items() if whole_somewhere(hour)}
    if not used:
        return None
    # A used hour's buckets are still read where a window has only part of it: the hours holding
    # a window's first or stop minute, when that is not on the hour.
    edges = {_floor_hour(moment) for window in spans for moment in window if moment != _floor_hour(moment)}
    ranges, at = [], span[0]
    for hour in sorted(set(used) - edges):
        if at < hour:
            ranges.append((at, hour))
        at = max(at, hour + _HOUR)
    if at < span[1]:
        ranges.append((at, span[1]))
    # Per hour from lo to the last used one, the build version it was current with (none: above
    # any version), looked up by position: cheaper per row than a set of (hour, version) pairs.
    versions = [_NO_VERSION] * (int((max(used) - lo) / _HOUR) + 1)
    for hour, version in used.items():
        versions[int((hour - lo) / _HOUR)] = version
    parameters = {
        "rollup_lo": lo,
        "rollup_last": max(used),
        "rollup_edges": sorted(edges.intersection(used)),
        "rollup_versions": versions,
    }
    keys, table = (
        ("campaign, slot, segment", "hour_metrics") if by_slot_and_segment else ("campaign", "campaign_hour_metrics")
    )
    counters = ", ".join(COUNTERS)
    # FINAL keeps each key's row of the newest build. That is the current build's, or a newer one's
    # that started since (rebuilding an unchanged hour gives the same rows, and a change would have
    # made the hour stale first); rows of older builds only survive for keys the current build no
    # longer has, and the version bound drops them. FINAL also reads once the rows of two builds
    # that drew the same version (two processes in the same microsecond).
    rollup_rows = (
        f"(SELECT {keys}, hour AS minute, {counters} FROM {table} FINAL "
        "WHERE hour >= {rollup_lo:DateTime} AND hour <= {rollup_last:DateTime} AND version >= "
        "{rollup_versions:Array(UInt64)}[intDiv(toUInt32(hour) - toUInt32({rollup_lo:DateTime}), 3600) + 1] "
        f"{campaign_sql})"
    )
    selects = []
    for number, (start, stop) in enumerate(ranges):
        parameters[f"rollup_from_{number}"] = start - (_MINUTE if start == span[0] else timedelta(0))
        parameters[f"rollup_to_{number}"] = stop + (_MINUTE if stop == span[1] else timedelta(0))
        selects.append(
            minute_rows_sql(
                [f"{{rollup_from_{number}:DateTime}}", f"{{rollup_to_{number}:DateTime}}"],
                by_slot_and_segment,
                campaign_sql,
            )
        )
    # One read per range: each then prunes to its own partitions and granules.
    minute_rows = selects[0] if len(selects) == 1 else f"({' UNION ALL '.join(s[1:-1] for s in selects)})"
    return rollup_rows, minute_rows if selects else "", parameters


def minute_rows_sql(bounds: Sequence[str], by_slot_and_segment: bool, campaign_sql: str) -> str:
    """A subquery of minute_metrics FINAL rows with minute in [bounds) (SQL of two DateTimes).

    PREWHERE, not WHERE: minute is in the sorting key, so it keeps or drops all versions of a
    bucket together and FINAL still sees each bucket whole, but then only merges the rows in
    range. A WHERE is applied after FINAL, which merges every granule the key condition could not
    rule out. The key starts with the row's UTC hour (migration 0019), which the primary key
    index only uses when the condition names it: the hours the range touches, UTC hours of the
    bounds, so a short range of every campaign reads that range's granules alone."""
    keys = "campaign, slot, segment" if by_slot_and_segment else "campaign"
    hour = "toStartOfHour(minute)"
    return (
        f"(SELECT {keys}, minute, {', '.join(COUNTERS)} FROM minute_metrics FINAL "
        f"PREWHERE {hour} >= toStartOfHour({bounds[0]}, 'UTC') AND {hour} <= toStartOfHour({bounds[1]}, 'UTC') "
        f"AND minute >= {bounds[0]} AND minute < {bounds[1]} {campaign_sql})"
    )


def counter_frame(client: Client, sql: str, parameters: dict) -> pd.DataFrame:
    # Sums are aliased to their column names; make expressions read the columns.
    frame = client.query_df(sql, parameters=parameters, settings={"prefer_column_name_to_alias": 1})
    for name in COUNTERS:
        if name in frame:
            frame[name] = frame[name].astype("float64")
    return frame


def naive_utc(moment: datetime) -> datetime:
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


def as_utc(value) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    return pd.Timestamp(value).tz_localize("UTC").to_pydatetime()
