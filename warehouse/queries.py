"""Report queries. Each returns a pandas DataFrame of summed counters plus rates
computed from those sums (core.metrics), never from averaged rates."""

from __future__ import annotations

import bisect
import math
from datetime import datetime, timedelta, timezone
from typing import Mapping, Sequence
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
import pandas as pd
from clickhouse_connect.driver.client import Client

from core.alerts import Alert, latest_by_episode
from core.schema import StopListEntry
from core.metrics import (COMPLIANCE_WINDOWS, COUNTERS, RATES, RAW_COUNTER_SQL, add_rate_columns, rate_sql,
                               ratio_series)
from warehouse import rollup

_SUMS = ", ".join(f"sum({name}) AS {name}" for name in COUNTERS)

# Dimensions a report may group by, mapped to their SQL. Hours and days are local to
# the configured zone ({tz}), like the time slots; any combination rolls up at query
# time from the minute buckets. Every expression also reads call_attempts, which has
# the same columns plus ``team``.
DIMENSIONS = {
    "campaign": "campaign",
    "slot": "slot",
    "segment": "segment",
    "team": "if(team = '', '(none)', team)",
    "day": "toString(toDate(minute, {tz:String}))",
    "hour": "toHour(minute, {tz:String})",
    "weekday": "toDayOfWeek(minute, 0, {tz:String})",
    "hour_start": "formatDateTime(toStartOfHour(minute, {tz:String}), '%Y-%m-%d %H:00', {tz:String})",
    "minute": "minute",
}

# Buckets are kept per campaign, slot, segment and minute only; a report by team sums
# the landed raw attempts instead (same totals, slower on big ranges).
_RAW_SUMS = ", ".join(f"{RAW_COUNTER_SQL[name]} AS {name}" for name in COUNTERS)
_NEEDS_RAW_ATTEMPTS = frozenset({"team"})
# Dimensions that depend on the local time: a rollup hour serves them only where the whole UTC
# hour is one local hour (not in +05:30 zones); "minute" never comes from the rollup.
_LOCAL_TIME_DIMENSIONS = frozenset({"day", "hour", "weekday", "hour_start"})
_FINER_THAN_HOURS = frozenset({"minute"})

# -- the hourly rollup (warehouse/rollup.py) ------------------------------------------------
#
# Each read of minute_metrics below is written once, as a template over its rows:
# ``template(rows, counted)`` is the SQL aggregating ``rows`` (a table or subquery with the
# columns campaign, slot, segment, minute and the counters), where ``counted(within)`` is the SQL
# condition for a row to count in a window of minutes ``within(t)``. Read plainly, rows is
# minute_metrics FINAL and counted(within) is within(minute): the query as it always was.
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
_NO_VERSION = 2 ** 64 - 1
_MINUTE_METRICS = "minute_metrics FINAL"


def _minute_window(start: datetime, end: datetime, end_inclusive: bool = False) -> tuple[datetime, datetime]:
    """The minute buckets m with start <= m < end (m <= end if ``end_inclusive``) as [first, stop)
    in whole minutes; the bounds are cut to seconds first, as a DateTime parameter is."""
    start, end = _naive_utc(start).replace(microsecond=0), _naive_utc(end).replace(microsecond=0)
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


def _whole_hour_offsets(tz: str, *moments: datetime) -> bool:
    """Whether ``tz`` is a whole number of hours from UTC at these moments. Only saves asking
    the warehouse about a zone like Asia/Kolkata, whose hours never line up with UTC hours: which
    hours may come from the rollup, ClickHouse's own zone data decides (rollup.current_builds)."""
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        return True
    return all((moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc))
               .astimezone(zone).utcoffset() % _HOUR == timedelta(0) for moment in moments)


def _merge_hours(ranges: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """Closed ranges of hour starts [first, last], merged where they overlap or touch."""
    merged: list[list[datetime]] = []
    for first, last in sorted(ranges):
        if merged and first <= merged[-1][1] + _HOUR:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    return [(first, last) for first, last in merged]


def _summed(client: Client, template, keys: Sequence[str], values: Sequence[str],
            windows: Sequence[tuple[datetime, datetime]], span: tuple[datetime, datetime], *,
            column: str = "minute", tz: str | None = None, campaign_sql: str = "",
            by_slot_and_segment: bool = True, order: bool = True) -> tuple[str, dict]:
    """(SQL, extra parameters) of ``template`` over minute_metrics, through the rollup where it has
    current hours wholly inside one of ``windows``.

    The template's output columns are ``keys`` then ``values``, which must be sums (the partial
    sums of both reads are added). ``windows`` are the windows its conditions count, ``span``
    every minute its WHERE can take, both as [first, stop) whole minutes (_minute_window).
    ``column`` names the minute column as the template's conditions see it; ``tz``: its keys
    are local times in that zone (only whole local hours then come from the rollup);
    ``campaign_sql`` filters rows before the template (its parameters are the caller's);
    without ``by_slot_and_segment`` the rows have no slot and segment and the rollup read is the
    per-campaign one. ``order`` orders the result by ``keys``."""
    group = ", ".join(keys)
    tail = f" ORDER BY {group}" if order and keys else ""
    plan = _rollup_plan(client, windows, span, tz, campaign_sql, by_slot_and_segment)
    if plan is None:  # the query as it always was
        return template(_MINUTE_METRICS, lambda within: within(column)) + tail, {}
    rollup_rows, minute_rows, parameters = plan

    def whole(hour: str, within) -> str:  # every minute of the hour is within: its first and its last
        return f"({within(hour)}) AND ({within(f'({hour} + 3540)')})"

    def from_minutes(within) -> str:
        # The minute rows hold no used hour but the edge ones (see _rollup_plan): only those can
        # have been counted from the rollup instead.
        if not parameters["rollup_edges"]:
            return within(column)
        hour = f"toStartOfHour({column})"
        return (f"({within(column)}) AND NOT ({hour} IN {{rollup_edges:Array(DateTime)}} "
                f"AND {whole(hour, within)})")

    parts = [template(rollup_rows, lambda within: whole(column, within))]
    if minute_rows:
        parts.append(template(minute_rows, from_minutes))
    sums = ", ".join(f"sum({value}) AS {value}" for value in values)
    sql = (f"SELECT {group + ', ' if group else ''}{sums} FROM ({' UNION ALL '.join(parts)})"
           + (f" GROUP BY {group}" if group else "") + tail)
    return sql, parameters


def _rollup_plan(client: Client, windows: Sequence[tuple[datetime, datetime]], span: tuple[datetime, datetime],
                 tz: str | None, campaign_sql: str, by_slot_and_segment: bool) -> tuple[str, str, dict] | None:
    """(rollup rows, minute rows or "", parameters) for :func:`_summed`; None if no current rollup
    hour lies wholly inside a window (or no window holds MIN_ROLLUP_HOURS whole hours, or the
    range's months hold fewer than rollup.MIN_MINUTE_ROWS minute rows)."""
    windows = {(first, stop) for first, stop in windows if first < stop}
    # Per window, the hours wholly inside it: from its first whole hour to the one ending by stop.
    wholes = _merge_hours([(_ceil_hour(first), _floor_hour(stop - _HOUR)) for first, stop in windows
                           if _ceil_hour(first) + _HOUR <= stop])
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
    edges = {_floor_hour(moment) for window in windows for moment in window if moment != _floor_hour(moment)}
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
    parameters = {"rollup_lo": lo, "rollup_last": max(used), "rollup_edges": sorted(edges.intersection(used)),
                  "rollup_versions": versions}
    keys, table = ("campaign, slot, segment", "hour_metrics") if by_slot_and_segment else \
        ("campaign", "campaign_hour_metrics")
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
        selects.append(_minute_rows([f"{{rollup_from_{number}:DateTime}}", f"{{rollup_to_{number}:DateTime}}"],
                                    by_slot_and_segment, campaign_sql))
    # One read per range: each then prunes to its own partitions and granules.
    minute_rows = selects[0] if len(selects) == 1 else f"({' UNION ALL '.join(s[1:-1] for s in selects)})"
    return rollup_rows, minute_rows if selects else "", parameters


def _minute_rows(bounds: Sequence[str], by_slot_and_segment: bool, campaign_sql: str) -> str:
    """A subquery of minute_metrics FINAL rows with minute in [bounds) (SQL of two DateTimes).

    PREWHERE, not WHERE: minute is in the sorting key, so it keeps or drops all versions of a
    bucket together and FINAL still sees each bucket whole, but then only merges the rows in
    range. A WHERE is applied after FINAL, which merges every granule the key condition could not
    rule out: with the key (campaign, minute, ...) a short time range touches a granule of every
    campaign, and the read cost as much as the whole table."""
    keys = "campaign, slot, segment" if by_slot_and_segment else "campaign"
    return (f"(SELECT {keys}, minute, {', '.join(COUNTERS)} FROM minute_metrics FINAL "
            f"PREWHERE minute >= {bounds[0]} AND minute < {bounds[1]} {campaign_sql})")


def _frame(client: Client, sql: str, parameters: dict) -> pd.DataFrame:
    # Sums are aliased to their column names; make expressions read the columns.
    frame = client.query_df(sql, parameters=parameters, settings={"prefer_column_name_to_alias": 1})
    for name in COUNTERS:
        if name in frame:
            frame[name] = frame[name].astype("float64")
    return frame


def metrics_by(client: Client, dimensions: Sequence[str], start: datetime, end: datetime,
               tz: str = "UTC", campaigns: Sequence[str] = ()) -> pd.DataFrame:
    """Counters and rates grouped by ``dimensions`` over [start, end); hours and days in ``tz``.

    Dimension names come from the DIMENSIONS allow-list; every other input is a bound
    parameter, so nothing a user types is spliced into SQL.
    """
    unknown = [d for d in dimensions if d not in DIMENSIONS]
    if unknown:
        raise ValueError(f"unknown dimension(s) {unknown}; choose from {sorted(DIMENSIONS)}")
    raw = bool(_NEEDS_RAW_ATTEMPTS.intersection(dimensions))
    select = ", ".join(f"{DIMENSIONS[d]} AS {d}" for d in dimensions)
    group = ", ".join(dimensions)
    parameters = {"start": _naive_utc(start), "end": _naive_utc(end), "tz": tz, "campaigns": list(campaigns)}
    campaign_sql = "AND campaign IN {campaigns:Array(String)} " if campaigns else ""
    if raw:
        sql = (
            f"SELECT {select + ', ' if select else ''}{_RAW_SUMS} FROM call_attempts FINAL "
            "WHERE minute >= {start:DateTime} AND minute < {end:DateTime} " + campaign_sql
            + (f"GROUP BY {group} ORDER BY {group}" if group else "")
        )
    else:
        def template(rows: str, counted) -> str:
            return (f"SELECT {select + ', ' if select else ''}{_SUMS} FROM {rows} "
                    f"WHERE {counted(lambda t: f'{t} >= {{start:DateTime}} AND {t} < {{end:DateTime}}')} "
                    + campaign_sql + (f"GROUP BY {group}" if group else ""))

        window = _minute_window(start, end)
        local = _LOCAL_TIME_DIMENSIONS.intersection(dimensions)
        # A minute dimension cannot come from hours, nor local hours from UTC ones in a +05:30 zone.
        windows = [] if _FINER_THAN_HOURS.intersection(dimensions) or \
            (local and not _whole_hour_offsets(tz, start, end)) else [window]
        sql, extra = _summed(client, template, dimensions, COUNTERS, windows, window, campaign_sql=campaign_sql,
                             tz=tz if local else None,
                             by_slot_and_segment=bool({"slot", "segment"}.intersection(dimensions)))
        parameters.update(extra)
    frame = _frame(client, sql, parameters)
    if not dimensions and frame.empty:
        frame = pd.DataFrame([{name: 0.0 for name in COUNTERS}])
    if frame.empty and not len(frame.columns):
        frame = pd.DataFrame(columns=[*dimensions, *COUNTERS])
    return add_rate_columns(frame)


def campaign_names(client: Client) -> list[str]:
    """Every campaign with landed buckets, for filters."""
    return [row[0] for row in client.query("SELECT DISTINCT campaign FROM minute_metrics ORDER BY campaign").result_rows]


def busiest_campaigns(client: Client, now: datetime, day_start: datetime, limit: int,
                      recent: timedelta = timedelta(minutes=15)) -> tuple[list[str], int]:
    """The ``limit`` campaigns with the most dials in the ``recent`` minutes up to ``now`` (then
    the most today, then by name), and how many campaigns have calls today: what the wallboard
    shows, cut in the warehouse so that a board of 100,000 campaigns ships ``limit`` names."""
    def template(rows: str, counted) -> str:
        today = counted(lambda t: f"{t} >= {{day:DateTime}} AND {t} <= {{now:DateTime}}")
        lately = counted(lambda t: f"{t} >= {{recent:DateTime}} AND {t} <= {{now:DateTime}}")
        return (f"SELECT campaign, sumIf(dials, {lately}) AS recent_dials, sum(dials) AS day_dials FROM {rows} "
                f"WHERE {today} GROUP BY campaign")

    day = _minute_window(day_start, now, end_inclusive=True)
    lately = _minute_window(max(now - recent, day_start), now, end_inclusive=True)
    ranked, parameters = _summed(client, template, ["campaign"], ["recent_dials", "day_dials"], [day, lately], day,
                                 by_slot_and_segment=False, order=False)
    parameters.update({"day": _naive_utc(day_start), "now": _naive_utc(now),
                       "recent": _naive_utc(max(now - recent, day_start)), "limit": int(limit)})
    rows = client.query(f"SELECT campaign, count() OVER () FROM ({ranked}) "
                        "ORDER BY recent_dials DESC, day_dials DESC, campaign LIMIT {limit:UInt32}",
                        parameters=parameters, settings={"prefer_column_name_to_alias": 1}).result_rows
    return [campaign for campaign, _ in rows], int(rows[0][1]) if rows else 0


def campaign_tiles(client: Client, now: datetime, day_start: datetime,
                   campaigns: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per campaign (each of ``campaigns`` with calls today, if given): today's counters and rates."""
    campaign_sql = "AND campaign IN {campaigns:Array(String)} " if campaigns is not None else ""

    def template(rows: str, counted) -> str:
        return (f"SELECT campaign, {_SUMS} FROM {rows} "
                f"WHERE {counted(lambda t: f'{t} >= {{day:DateTime}} AND {t} <= {{now:DateTime}}')} "
                + campaign_sql + "GROUP BY campaign")

    window = _minute_window(day_start, now, end_inclusive=True)
    sql, parameters = _summed(client, template, ["campaign"], COUNTERS, [window], window, campaign_sql=campaign_sql,
                              by_slot_and_segment=False)
    parameters.update({"day": _naive_utc(day_start), "now": _naive_utc(now), "campaigns": list(campaigns or ())})
    frame = _frame(client, sql, parameters)
    if not len(frame.columns):  # nothing landed today; the embedded warehouse then names no columns
        frame = pd.DataFrame(columns=["campaign", *COUNTERS])
    return add_rate_columns(frame)


def compliance_windows(client: Client, now: datetime, campaign: str | None = None,
                       campaigns: Sequence[str] | None = None) -> pd.DataFrame:
    """Per campaign (``campaign`` alone, or each of ``campaigns``, if given), for each compliance
    window ending at ``now``: abandoned, contacts and abandon rate. A window of N minutes covers
    the minute buckets that start at or after now - N minutes, the current (filling) minute included."""
    parameters = {"now": _naive_utc(now), "campaign": campaign or "", "campaigns": list(campaigns or ())}
    windows = []
    for window in COMPLIANCE_WINDOWS:
        parameters[window.name] = _naive_utc(now - timedelta(minutes=window.minutes))
        windows.append(_minute_window(now - timedelta(minutes=window.minutes), now, end_inclusive=True))
    longest = max(COMPLIANCE_WINDOWS, key=lambda w: w.minutes).name
    campaign_sql = "AND campaign = {campaign:String} " if campaign else ""
    if campaigns is not None:
        campaign_sql += "AND campaign IN {campaigns:Array(String)} "
    names = [f"{window.name}_{part}" for window in COMPLIANCE_WINDOWS for part in ("abandoned", "contacts")]

    def template(rows: str, counted) -> str:
        columns = []
        for window in COMPLIANCE_WINDOWS:
            since = counted(lambda t, name=window.name: f"{t} >= {{{name}:DateTime}} AND {t} <= {{now:DateTime}}")
            columns.append(f"sumIf(abandoned, ({since}) AS in_{window.name}) AS {window.name}_abandoned, "
                           f"sumIf(contacts, in_{window.name}) AS {window.name}_contacts")
        return (f"SELECT campaign, {', '.join(columns)} FROM {rows} "
                f"WHERE minute >= {{{longest}:DateTime}} AND minute <= {{now:DateTime}} " + campaign_sql
                + "GROUP BY campaign")

    sql, extra = _summed(client, template, ["campaign"], names, windows, min(windows), campaign_sql=campaign_sql,
                         by_slot_and_segment=False)
    parameters.update(extra)
    frame = client.query_df(sql, parameters=parameters, settings={"prefer_column_name_to_alias": 1})
    if not len(frame.columns):  # nothing landed in the windows; the embedded warehouse then names no columns
        frame = pd.DataFrame(columns=["campaign", *names])
    for window in COMPLIANCE_WINDOWS:
        frame[f"{window.name}_abandon_rate"] = ratio_series(frame[f"{window.name}_abandoned"],
                                                            frame[f"{window.name}_contacts"])
    return frame


def compliance_windows_at(client: Client, nows: Mapping[str, datetime]) -> dict[str, dict[str, int]]:
    """:func:`compliance_windows` for many campaigns, each at its own ``now``, in one query:
    campaign -> {"<window>_abandoned": n, "<window>_contacts": n}. A worker catching up on
    a backlog of 1,000 campaigns would otherwise ask once per campaign per event minute."""
    if not nows:
        return {}
    campaigns = sorted(nows)
    moments = [_naive_utc(nows[c]) for c in campaigns]
    longest = max(window.minutes for window in COMPLIANCE_WINDOWS)
    parameters = {"campaigns": campaigns, "nows": moments,
                  "earliest": min(moments) - timedelta(minutes=longest), "latest": max(moments)}
    names = [f"{window.name}_{part}" for window in COMPLIANCE_WINDOWS for part in ("abandoned", "contacts")]

    def template(rows: str, counted) -> str:
        columns = []
        for window in COMPLIANCE_WINDOWS:
            since = counted(lambda t, minutes=window.minutes:
                            f"{t} >= q.now - toIntervalMinute({minutes}) AND {t} <= q.now")
            columns.append(f"sumIf(m.abandoned, ({since}) AS in_{window.name}) AS {window.name}_abandoned, "
                           f"sumIf(m.contacts, in_{window.name}) AS {window.name}_contacts")
        aliased = "minute_metrics AS m FINAL" if rows == _MINUTE_METRICS else f"{rows} AS m"
        return (
            f"SELECT m.campaign AS campaign, {', '.join(columns)} FROM {aliased} "
            "INNER JOIN (SELECT pair.1 AS campaign, pair.2 AS now "
            "FROM (SELECT arrayJoin(arrayZip({campaigns:Array(String)}, {nows:Array(DateTime)})) AS pair)) AS q "
            "ON m.campaign = q.campaign "
            "WHERE m.minute >= {earliest:DateTime} AND m.minute <= {latest:DateTime} AND m.minute <= q.now "
            "AND m.campaign IN {campaigns:Array(String)} "
            "GROUP BY m.campaign"
        )

    sql, extra = _summed(
        client, template, ["campaign"], names,
        [_minute_window(moment - timedelta(minutes=window.minutes), moment, end_inclusive=True)
         for moment in set(moments) for window in COMPLIANCE_WINDOWS],
        _minute_window(parameters["earliest"], parameters["latest"], end_inclusive=True), column="m.minute",
        campaign_sql="AND campaign IN {campaigns:Array(String)} ", by_slot_and_segment=False, order=False)
    parameters.update(extra)
    result = client.query(sql, parameters=parameters, settings={"prefer_column_name_to_alias": 1})
    names = result.column_names[1:]
    return {row[0]: dict(zip(names, (int(v) for v in row[1:]))) for row in result.result_rows}


def campaign_baseline(client: Client, campaign: str, slot: str, since: datetime, until: datetime) -> dict:
    """A campaign's summed counters over [since, until): in ``slot`` and over all slots."""
    return campaign_baselines(client, [campaign], slot, since, until)[campaign]


def campaign_baselines(client: Client, campaigns: Sequence[str], slot: str, since: datetime,
                       until: datetime) -> dict[str, dict]:
    """:func:`campaign_baseline` for many campaigns over the same slot and days, in one query;
    a campaign with no calls in the window gets zeros."""
    parameters = {"campaigns": list(campaigns), "slot": slot, "since": _naive_utc(since), "until": _naive_utc(until)}
    campaign_sql = "AND campaign IN {campaigns:Array(String)} "

    def template(rows: str, counted) -> str:
        return ("SELECT campaign, sumIf(dials, slot = {slot:String}) AS slot_dials, "
                "sumIf(contacts, slot = {slot:String}) AS slot_contacts, sum(cost) AS cost, sum(orders) AS orders "
                f"FROM {rows} WHERE {campaign_sql.removeprefix('AND ')}"
                f"AND {counted(lambda t: f'{t} >= {{since:DateTime}} AND {t} < {{until:DateTime}}')} "
                "GROUP BY campaign")

    window = _minute_window(since, until)
    sql, extra = _summed(client, template, ["campaign"], ["slot_dials", "slot_contacts", "cost", "orders"],
                         [window], window, campaign_sql=campaign_sql, order=False)
    parameters.update(extra)
    result = client.query(sql, parameters=parameters, settings={"prefer_column_name_to_alias": 1})
    found = {row[0]: row[1:] for row in result.result_rows}
    return {campaign: dict(zip(("slot_dials", "slot_contacts", "cost", "orders"),
                               (float(v) for v in found.get(campaign, (0, 0, 0, 0)))))
            for campaign in campaigns}


ALERT_COLUMNS = ["alert_id", "rule", "campaign", "state", "severity", "value", "threshold", "window_minutes",
                 "sample", "first_seen", "event_time", "emitted_at", "detail", "trigger_event_id"]


def alert_history(client: Client, limit: int = 500) -> pd.DataFrame:
    """Newest transitions first, with who acknowledged each episode."""
    frame = client.query_df(
        f"SELECT {', '.join('a.' + c for c in ALERT_COLUMNS)}, k.acknowledged_by, k.acknowledged_at "
        "FROM (SELECT * FROM alerts FINAL ORDER BY emitted_at DESC LIMIT {limit:UInt32}) AS a "
        "LEFT JOIN (SELECT alert_id, argMax(acknowledged_by, acknowledged_at) AS acknowledged_by, "
        "max(acknowledged_at) AS acknowledged_at FROM alert_acks GROUP BY alert_id) AS k ON a.alert_id = k.alert_id "
        "ORDER BY a.emitted_at DESC",
        parameters={"limit": limit}, settings={"join_use_nulls": 1, "prefer_column_name_to_alias": 1},
    )
    if not len(frame.columns):
        frame = pd.DataFrame(columns=[*ALERT_COLUMNS, "acknowledged_by", "acknowledged_at"])
    return frame


def active_alerts(client: Client) -> pd.DataFrame:
    """Episodes still firing: their newest transition, most severe and newest first."""
    history = alert_history(client, limit=100_000)
    if history.empty:
        return history
    resolved = set(history.loc[history["state"] == "resolved", "alert_id"])
    firing = history[(history["state"] == "firing") & ~history["alert_id"].isin(resolved)]
    # An episode only escalates, so among transitions decided in the same millisecond
    # the more severe one is the newer.
    firing = firing.assign(_rank=firing["severity"].map({"warning": 0, "critical": 1}))
    newest = firing.sort_values(["event_time", "emitted_at", "_rank"]).groupby("alert_id").tail(1)
    return newest.sort_values(["_rank", "emitted_at"], ascending=[False, False]) \
        .drop(columns="_rank").reset_index(drop=True)


def alerts_from_frame(frame: pd.DataFrame) -> list[Alert]:
    """Rows of alert_history()/active_alerts() as Alert events, in the frame's order."""
    return [msgspec.convert({key: _plain(row[key]) for key in ALERT_COLUMNS}, Alert)
            for row in frame.to_dict("records")]


def _plain(value):
    """A pandas cell as the plain value msgspec expects (NaN/NaT -> None, Timestamp -> datetime)."""
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    if hasattr(value, "to_pydatetime"):
        return _as_utc(value.to_pydatetime())
    return value


ALERT_VIEWS = ("active", "episodes", "transitions")


def listed_alerts(client: Client, view: str = "active", limit: int = 100_000) -> list[Alert]:
    """The alerts as `callpulse alerts list` and ``/api/alerts`` give them, from the alerts table:

    - ``active``: episodes still firing, as the dashboard lists them (most severe, then newest, first);
    - ``episodes``: each episode's newest transition, newest first;
    - ``transitions``: every transition, newest first.
    """
    if view not in ALERT_VIEWS:
        raise ValueError(f"unknown alert view {view!r}; expected one of {', '.join(ALERT_VIEWS)}")
    if view == "active":
        return alerts_from_frame(active_alerts(client))
    transitions = alerts_from_frame(alert_history(client, limit=limit))
    return transitions if view == "transitions" else latest_by_episode(transitions)


def acknowledge_alert(client: Client, alert_id: str, by: str, note: str = "") -> None:
    client.insert("alert_acks", [[alert_id, by, note, datetime.now(timezone.utc)]],
                  column_names=["alert_id", "acknowledged_by", "note", "acknowledged_at"])


def late_event_counts(client: Client, start: datetime, end: datetime) -> pd.DataFrame:
    """Per campaign: distinct events with event time in [start, end) that arrived too late to count."""
    frame = client.query_df(
        "SELECT campaign, count() AS late_events, countIf(outcome = 'abandoned') AS late_abandoned "
        "FROM late_events FINAL WHERE event_time >= {start:DateTime64(3)} AND event_time < {end:DateTime64(3)} "
        "GROUP BY campaign ORDER BY campaign",
        parameters={"start": _naive_utc(start), "end": _naive_utc(end)},
    )
    return frame if len(frame.columns) else pd.DataFrame(columns=["campaign", "late_events", "late_abandoned"])


STOP_LIST_VIOLATION_COLUMNS = ["event_time", "dialed_at", "flagged_at", "campaign", "agent", "team", "segment",
                               "outcome", "reason", "event_id"]


def stop_list_violations(client: Client, start: datetime, end: datetime,
                         campaigns: Sequence[str] = ()) -> pd.DataFrame:
    """Dials to stop-listed customers placed in [start, end), newest first; no personal data."""
    frame = client.query_df(
        f"SELECT {', '.join(STOP_LIST_VIOLATION_COLUMNS)} FROM stop_list_violations FINAL "
        "WHERE dialed_at >= {start:DateTime64(3)} AND dialed_at < {end:DateTime64(3)} "
        "AND (empty({campaigns:Array(String)}) OR has({campaigns:Array(String)}, campaign)) "
        "ORDER BY dialed_at DESC",
        parameters={"start": _naive_utc(start), "end": _naive_utc(end), "campaigns": list(campaigns)},
    )
    return frame if len(frame.columns) else pd.DataFrame(columns=STOP_LIST_VIOLATION_COLUMNS)


def recent_stop_list_violations(client: Client, campaign: str, since: datetime, until: datetime,
                                event_ids: Sequence[str] = ()) -> int:
    """A campaign's violations with event time in (since, until], plus the given ones however late."""
    return int(client.command(
        "SELECT count() FROM stop_list_violations FINAL WHERE campaign = {campaign:String} "
        "AND ((event_time > {since:DateTime64(3)} AND event_time <= {until:DateTime64(3)}) "
        "OR has({event_ids:Array(String)}, event_id))",
        parameters={"campaign": campaign, "since": _naive_utc(since), "until": _naive_utc(until),
                    "event_ids": list(event_ids)},
    ))


def dead_letter_counts(client: Client, now: datetime) -> pd.DataFrame:
    """Refused records per reason: in the last hour, the last 24 hours and ever, newest first."""
    frame = client.query_df(
        "SELECT reason, countIf(rejected_at > {hour_ago:DateTime64(3)}) AS last_hour, "
        "countIf(rejected_at > {day_ago:DateTime64(3)}) AS last_24h, count() AS total, "
        "max(rejected_at) AS newest FROM dead_letters FINAL GROUP BY reason ORDER BY newest DESC",
        parameters={"hour_ago": _naive_utc(now - timedelta(hours=1)), "day_ago": _naive_utc(now - timedelta(days=1))},
    )
    return frame if len(frame.columns) else pd.DataFrame(columns=["reason", "last_hour", "last_24h", "total", "newest"])


def minute_series(client: Client, since: datetime, until: datetime) -> pd.DataFrame:
    """Per campaign and minute: counters and rates (for trends)."""
    return metrics_by(client, ["campaign", "minute"], since, until)


SPARKLINE_RATE = RATES["abandon_rate"]


def sparklines(client: Client, since: datetime, until: datetime,
               campaigns: Sequence[str] | None = None) -> dict[str, dict[str, list]]:
    """Per campaign (each of ``campaigns``, if given), its minutes in [since, until) in order, as
    the wallboard draws them:
    {"minutes": ["2026-12-02T06:49:00", ...], "dials": [...], "abandon_rate": [... or None]}.

    Cut per campaign, ordered and formatted in the warehouse, which hands each campaign's
    points over as arrays: a big board's 120,000 points sorted and converted one by one in
    Python were most of its model's time. Its rows are _minute_rows(): FINAL merges only the
    range. Campaigns with nothing landed in the range are left out."""
    first, stop = _minute_window(since, until)
    counters = sorted({"dials", SPARKLINE_RATE.numerator, SPARKLINE_RATE.denominator})
    campaign_sql = "AND campaign IN {campaigns:Array(String)}" if campaigns is not None else ""
    rows = _minute_rows(["{first:DateTime}", "{stop:DateTime}"], by_slot_and_segment=False, campaign_sql=campaign_sql)
    per_minute = (f"SELECT campaign, minute, {', '.join(f'sum({name}) AS {name}' for name in counters)} "
                  f"FROM {rows} GROUP BY campaign, minute")
    points = (f"SELECT campaign, arraySort(groupArray((minute, toInt64(dials), {rate_sql(SPARKLINE_RATE.name)}))) "
              f"AS points FROM ({per_minute}) GROUP BY campaign")
    sql = ("SELECT campaign, arrayMap(p -> formatDateTime(p.1, '%Y-%m-%dT%H:%i:%S', 'UTC'), points), "
           f"arrayMap(p -> p.2, points), arrayMap(p -> p.3, points) FROM ({points})")
    result = client.query(sql, parameters={"first": first, "stop": stop, "campaigns": list(campaigns or ())},
                          settings={"prefer_column_name_to_alias": 1})
    return {campaign: {"minutes": minutes, "dials": dials, SPARKLINE_RATE.name: rates}
            for campaign, minutes, dials, rates in result.result_rows}


def freshness(client: Client) -> dict:
    """When data last landed and the newest event minute: what 'updated N s ago' shows."""
    row = client.query(
        "SELECT max(landed_at), max(minute), count() FROM minute_metrics"
    ).result_rows[0]
    landed_at, newest_minute, rows = row
    return {
        "landed_at": _as_utc(landed_at) if rows else None,
        "newest_minute": _as_utc(newest_minute) if rows else None,
        "bucket_rows": int(rows),
    }


def open_window_attempts(client: Client, window_s: int, newest_allowed: datetime | None = None) -> list[tuple]:
    """Landed attempts inside each campaign's lateness window, to rebuild live buckets.

    With ``newest_allowed``, a campaign's window ends there at the latest: rows landed in the
    future (by an earlier version, from a dialer with a wrong clock) do not move it past the
    calls landed before them, which a new call may still reach. Those rows are returned too."""
    newest = "max(event_time)" if newest_allowed is None else "least(max(event_time), {newest_allowed:DateTime64(3)})"
    parameters = {"lateness": int(window_s)}
    if newest_allowed is not None:
        parameters["newest_allowed"] = _naive_utc(newest_allowed)
    return client.query(
        "SELECT a.event_id, a.campaign, a.segment, toUnixTimestamp64Milli(a.event_time) / 1000.0, "
        "a.outcome, a.is_order, a.cost, a.talk_seconds "
        "FROM call_attempts AS a FINAL "
        f"INNER JOIN (SELECT campaign, {newest} AS newest FROM call_attempts GROUP BY campaign) AS w "
        "ON a.campaign = w.campaign "
        "WHERE a.minute >= toStartOfMinute(w.newest - toIntervalSecond({lateness:UInt32}))",
        parameters=parameters,
    ).result_rows


def landed_calls(client: Client, event_ids: list[str]) -> dict[str, tuple]:
    """Which of these event ids are already in call_attempts, each with what it was counted
    as: (campaign, event time in epoch ms, outcome, is_order, talk_seconds, segment)."""
    if not event_ids:
        return {}
    rows = client.query("SELECT event_id, campaign, toUnixTimestamp64Milli(event_time), outcome, is_order, "
                        "talk_seconds, segment FROM call_attempts FINAL WHERE event_id IN {ids:Array(String)}",
                        parameters={"ids": list(event_ids)}).result_rows
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


def _naive_utc(moment: datetime) -> datetime:
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


def _as_utc(value) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    return pd.Timestamp(value).tz_localize("UTC").to_pydatetime()


def landed_stop_list(client: Client) -> tuple[list[StopListEntry], int]:
    """The customers the warehouse holds as flagged (removals left out), and the newest
    version landed, so the next landing can order after it whatever the clock says."""
    rows = client.query("SELECT phone_hash, flagged_at, reason, source FROM stop_list FINAL "
                        "WHERE removed_at IS NULL").result_rows
    newest = client.command("SELECT max(version) FROM stop_list")
    return ([StopListEntry(phone_hash, _as_utc(flagged_at), reason, source)
             for phone_hash, flagged_at, reason, source in rows], int(newest or 0))
