"""Report queries. Each returns a pandas DataFrame of summed counters plus rates
computed from those sums (callpulse.metrics), never from averaged rates."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Mapping, Sequence

import msgspec
import pandas as pd
from clickhouse_connect.driver.client import Client

from callpulse.alerts import Alert
from callpulse.metrics import COMPLIANCE_WINDOWS, COUNTERS, RAW_COUNTER_SQL, add_rate_columns, ratio_series

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
    sql = (
        f"SELECT {select + ', ' if select else ''}{_RAW_SUMS if raw else _SUMS} "
        f"FROM {'call_attempts' if raw else 'minute_metrics'} FINAL "
        "WHERE minute >= {start:DateTime} AND minute < {end:DateTime} "
        + ("AND campaign IN {campaigns:Array(String)} " if campaigns else "")
        + (f"GROUP BY {group} ORDER BY {group}" if group else "")
    )
    parameters = {"start": _naive_utc(start), "end": _naive_utc(end), "tz": tz, "campaigns": list(campaigns)}
    frame = _frame(client, sql, parameters)
    if not dimensions and frame.empty:
        frame = pd.DataFrame([{name: 0.0 for name in COUNTERS}])
    if frame.empty and not len(frame.columns):
        frame = pd.DataFrame(columns=[*dimensions, *COUNTERS])
    return add_rate_columns(frame)


def campaign_names(client: Client) -> list[str]:
    """Every campaign with landed buckets, for filters."""
    return [row[0] for row in client.query("SELECT DISTINCT campaign FROM minute_metrics ORDER BY campaign").result_rows]


def campaign_tiles(client: Client, now: datetime, day_start: datetime) -> pd.DataFrame:
    """One row per campaign: today's counters and rates."""
    sql = (
        "SELECT campaign, " + _SUMS + " FROM minute_metrics FINAL "
        "WHERE minute >= {day:DateTime} AND minute <= {now:DateTime} "
        "GROUP BY campaign ORDER BY campaign"
    )
    return add_rate_columns(_frame(client, sql, {"day": _naive_utc(day_start), "now": _naive_utc(now)}))


def compliance_windows(client: Client, now: datetime, campaign: str | None = None) -> pd.DataFrame:
    """Per campaign, for each compliance window ending at ``now``: abandoned, contacts and
    abandon rate. A window of N minutes covers the minute buckets that start at or after
    now - N minutes, the current (filling) minute included."""
    columns = []
    parameters = {"now": _naive_utc(now), "campaign": campaign or ""}
    for window in COMPLIANCE_WINDOWS:
        parameters[window.name] = _naive_utc(now - timedelta(minutes=window.minutes))
        since = f"minute >= {{{window.name}:DateTime}}"
        columns.append(f"sumIf(abandoned, {since}) AS {window.name}_abandoned, "
                       f"sumIf(contacts, {since}) AS {window.name}_contacts")
    longest = max(COMPLIANCE_WINDOWS, key=lambda w: w.minutes).name
    sql = (
        f"SELECT campaign, {', '.join(columns)} FROM minute_metrics FINAL "
        f"WHERE minute >= {{{longest}:DateTime}} AND minute <= {{now:DateTime}} "
        + ("AND campaign = {campaign:String} " if campaign else "")
        + "GROUP BY campaign ORDER BY campaign"
    )
    frame = client.query_df(sql, parameters=parameters)
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
    columns = []
    for window in COMPLIANCE_WINDOWS:
        since = f"m.minute >= q.now - toIntervalMinute({window.minutes})"
        columns.append(f"sumIf(m.abandoned, {since}) AS {window.name}_abandoned, "
                       f"sumIf(m.contacts, {since}) AS {window.name}_contacts")
    longest = max(window.minutes for window in COMPLIANCE_WINDOWS)
    sql = (
        f"SELECT m.campaign, {', '.join(columns)} FROM minute_metrics AS m FINAL "
        "INNER JOIN (SELECT pair.1 AS campaign, pair.2 AS now "
        "FROM (SELECT arrayJoin(arrayZip({campaigns:Array(String)}, {nows:Array(DateTime)})) AS pair)) AS q "
        "ON m.campaign = q.campaign "
        "WHERE m.minute >= {earliest:DateTime} AND m.minute <= {latest:DateTime} AND m.minute <= q.now "
        "AND m.campaign IN {campaigns:Array(String)} "
        "GROUP BY m.campaign"
    )
    moments = [_naive_utc(nows[c]) for c in campaigns]
    result = client.query(sql, parameters={
        "campaigns": campaigns, "nows": moments,
        "earliest": min(moments) - timedelta(minutes=longest), "latest": max(moments)})
    names = result.column_names[1:]
    return {row[0]: dict(zip(names, (int(v) for v in row[1:]))) for row in result.result_rows}


def campaign_baseline(client: Client, campaign: str, slot: str, since: datetime, until: datetime) -> dict:
    """A campaign's summed counters over [since, until): in ``slot`` and over all slots."""
    return campaign_baselines(client, [campaign], slot, since, until)[campaign]


def campaign_baselines(client: Client, campaigns: Sequence[str], slot: str, since: datetime,
                       until: datetime) -> dict[str, dict]:
    """:func:`campaign_baseline` for many campaigns over the same slot and days, in one query;
    a campaign with no calls in the window gets zeros."""
    result = client.query(
        "SELECT campaign, sumIf(dials, slot = {slot:String}), sumIf(contacts, slot = {slot:String}), "
        "sum(cost), sum(orders) FROM minute_metrics FINAL "
        "WHERE campaign IN {campaigns:Array(String)} AND minute >= {since:DateTime} AND minute < {until:DateTime} "
        "GROUP BY campaign",
        parameters={"campaigns": list(campaigns), "slot": slot, "since": _naive_utc(since),
                    "until": _naive_utc(until)},
    )
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
    """Per campaign and minute: counters and rates (for sparklines and trends)."""
    return metrics_by(client, ["campaign", "minute"], since, until)


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


def open_window_attempts(client: Client, window_s: int) -> list[tuple]:
    """Landed attempts inside each campaign's lateness window, to rebuild live buckets."""
    return client.query(
        "SELECT a.event_id, a.campaign, a.segment, toUnixTimestamp64Milli(a.event_time) / 1000.0, "
        "a.outcome, a.is_order, a.cost, a.talk_seconds "
        "FROM call_attempts AS a FINAL "
        "INNER JOIN (SELECT campaign, max(event_time) AS newest FROM call_attempts GROUP BY campaign) AS w "
        "ON a.campaign = w.campaign "
        "WHERE a.minute >= toStartOfMinute(w.newest - toIntervalSecond({lateness:UInt32}))",
        parameters={"lateness": int(window_s)},
    ).result_rows


def landed_event_ids(client: Client, event_ids: list[str]) -> set[str]:
    """Which of these event ids are already in call_attempts."""
    if not event_ids:
        return set()
    rows = client.query("SELECT DISTINCT event_id FROM call_attempts WHERE event_id IN {ids:Array(String)}",
                        parameters={"ids": list(event_ids)}).result_rows
    return {row[0] for row in rows}


def landed_offsets(client: Client, consumer_group: str, topic: str) -> dict[int, int]:
    """Per partition, the next offset the worker has to process, as landed."""
    rows = client.query(
        "SELECT partition, argMax(next_offset, version) FROM consumed_offsets "
        "WHERE consumer_group = {group:String} AND topic = {topic:String} GROUP BY partition",
        parameters={"group": consumer_group, "topic": topic},
    ).result_rows
    return {int(partition): int(offset) for partition, offset in rows}


def _naive_utc(moment: datetime) -> datetime:
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


def _as_utc(value) -> datetime:
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    return pd.Timestamp(value).tz_localize("UTC").to_pydatetime()
