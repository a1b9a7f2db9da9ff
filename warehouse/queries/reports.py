"""What reports read: counters and rates by any allowed dimension (summed counters, rates
recomputed from the sums, never averaged), the campaign list for filters, late events and
stop-list violations for the compliance report."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import pandas as pd
from clickhouse_connect.driver.client import Client

from core.metrics import AGENT_COUNTERS, COUNTERS, FTC_CONNECT_SECONDS, add_rate_columns, raw_counter_sql
from warehouse.queries.sums import SUMS, counter_frame, minute_window, naive_utc, summed, whole_hour_offsets

# Dimensions a report may group by, mapped to their SQL. Hours and days are local to
# the configured zone ({tz}), like the time slots; any combination rolls up at query
# time from the minute buckets. Every expression also reads call_attempts, which has
# the same columns plus ``team``.
DIMENSIONS = {
    "campaign": "campaign",
    "slot": "slot",
    "segment": "segment",
    "team": "if(team = '', '(none)', team)",
    "agent": "if(agent = '', '(none)', agent)",
    "day": "toString(toDate(minute, {tz:String}))",
    "hour": "toHour(minute, {tz:String})",
    "weekday": "toDayOfWeek(minute, 0, {tz:String})",
    "hour_start": "formatDateTime(toStartOfHour(minute, {tz:String}), '%Y-%m-%d %H:00', {tz:String})",
    "minute": "minute",
}


# Buckets are kept per campaign, slot, segment and minute only; a report by team sums
# the landed raw attempts instead (same totals, slower on big ranges).
_NEEDS_RAW_ATTEMPTS = frozenset({"team", "agent"})
# Agent seconds (agent_minutes) are kept per campaign, team, agent and minute: no slot or segment.
AGENT_DIMENSIONS = frozenset(DIMENSIONS) - {"slot", "segment"}


# Dimensions that depend on the local time: a rollup hour serves them only where the whole UTC
# hour is one local hour (not in +05:30 zones); "minute" never comes from the rollup.
_LOCAL_TIME_DIMENSIONS = frozenset({"day", "hour", "weekday", "hour_start"})
_FINER_THAN_HOURS = frozenset({"minute"})


def metrics_by(
    client: Client,
    dimensions: Sequence[str],
    start: datetime,
    end: datetime,
    tz: str = "UTC",
    campaigns: Sequence[str] = (),
    agent_seconds: bool = False,
    ftc_connect_seconds: float = FTC_CONNECT_SECONDS,
) -> pd.DataFrame:
    """Counters and rates grouped by ``dimensions`` over [start, end); hours and days in ``tz``.
    With ``agent_seconds``, the agent seconds (AGENT_COUNTERS) of the same groups beside them,
    and the agent rates. ``ftc_connect_seconds`` (compliance.ftc_connect_seconds) is how a
    dimension read from raw attempts (team, agent) counts abandoned_ftc; the minute buckets
    were counted with it as the worker counted them.

    Dimension names come from the DIMENSIONS allow-list; every other input is a bound
    parameter, so nothing a user types is spliced into SQL.
    """
    unknown = [d for d in dimensions if d not in DIMENSIONS]
    if unknown:
        raise ValueError(f"unknown dimension(s) {unknown}; choose from {sorted(DIMENSIONS)}")
    if agent_seconds:
        calls = metrics_by(client, dimensions, start, end, tz, campaigns, ftc_connect_seconds=ftc_connect_seconds)[
            [*dimensions, *COUNTERS]
        ]
        return add_rate_columns(_with_agent_seconds(client, calls, dimensions, start, end, tz, campaigns))
    raw = bool(_NEEDS_RAW_ATTEMPTS.intersection(dimensions))
    select = ", ".join(f"{DIMENSIONS[d]} AS {d}" for d in dimensions)
    group = ", ".join(dimensions)
    parameters = {"start": naive_utc(start), "end": naive_utc(end), "tz": tz, "campaigns": list(campaigns)}
    campaign_sql = "AND campaign IN {campaigns:Array(String)} " if campaigns else ""
    if raw:
        raw_sql = raw_counter_sql(ftc_connect_seconds)
        sums = ", ".join(f"{raw_sql[name]} AS {name}" for name in COUNTERS)
        sql = (
            f"SELECT {select + ', ' if select else ''}{sums} FROM call_attempts FINAL "
            "WHERE minute >= {start:DateTime} AND minute < {end:DateTime} "
            + campaign_sql
            + (f"GROUP BY {group} ORDER BY {group}" if group else "")
        )
    else:

        def template(rows: str, counted) -> str:
            return (
                f"SELECT {select + ', ' if select else ''}{SUMS} FROM {rows} "
                f"WHERE {counted(lambda t: f'{t} >= {{start:DateTime}} AND {t} < {{end:DateTime}}')} "
                + campaign_sql
                + (f"GROUP BY {group}" if group else "")
            )

        window = minute_window(start, end)
        local = _LOCAL_TIME_DIMENSIONS.intersection(dimensions)
        # A minute dimension cannot come from hours, nor local hours from UTC ones in a +05:30 zone.
        windows = (
            []
            if _FINER_THAN_HOURS.intersection(dimensions) or (local and not whole_hour_offsets(tz, start, end))
            else [window]
        )
        sql, extra = summed(
            client,
            template,
            dimensions,
            COUNTERS,
            windows,
            window,
            campaign_sql=campaign_sql,
            tz=tz if local else None,
            by_slot_and_segment=bool({"slot", "segment"}.intersection(dimensions)),
        )
        parameters.update(extra)
    frame = counter_frame(client, sql, parameters)
    if not dimensions and frame.empty:
        frame = pd.DataFrame([{name: 0.0 for name in COUNTERS}])
    if frame.empty and not len(frame.columns):
        frame = pd.DataFrame(columns=[*dimensions, *COUNTERS])
    return add_rate_columns(frame)


def agent_seconds_by(
    client: Client,
    dimensions: Sequence[str],
    start: datetime,
    end: datetime,
    tz: str = "UTC",
    campaigns: Sequence[str] = (),
) -> pd.DataFrame:
    """The agent seconds (AGENT_COUNTERS) grouped by ``dimensions`` over [start, end)."""
    unknown = [d for d in dimensions if d not in AGENT_DIMENSIONS]
    if unknown:
        raise ValueError(f"agent seconds are not kept by {unknown}; choose from {sorted(AGENT_DIMENSIONS)}")
    select = ", ".join(f"{DIMENSIONS[d]} AS {d}" for d in dimensions)
    group = ", ".join(dimensions)
    sums = ", ".join(f"sum({name}) AS {name}" for name in AGENT_COUNTERS)
    frame = client.query_df(
        f"SELECT {select + ', ' if select else ''}{sums} FROM agent_minutes FINAL "
        "WHERE minute >= {start:DateTime} AND minute < {end:DateTime} "
        + ("AND campaign IN {campaigns:Array(String)} " if campaigns else "")
        + (f"GROUP BY {group}" if group else ""),
        parameters={"start": naive_utc(start), "end": naive_utc(end), "tz": tz, "campaigns": list(campaigns)},
        settings={"prefer_column_name_to_alias": 1},
    )
    if not len(frame.columns):
        frame = pd.DataFrame(columns=[*dimensions, *AGENT_COUNTERS])
    return frame


def _with_agent_seconds(
    client: Client,
    calls: pd.DataFrame,
    dimensions: Sequence[str],
    start: datetime,
    end: datetime,
    tz: str,
    campaigns: Sequence[str],
) -> pd.DataFrame:
    """The call counters and the agent seconds of the same groups, side by side: a group with
    calls and no agent seconds (or the reverse) reads zeros for what it lacks."""
    agents = agent_seconds_by(client, dimensions, start, end, tz, campaigns)
    if not dimensions:
        merged = pd.concat([calls.reset_index(drop=True), agents.reset_index(drop=True)], axis=1)
    else:
        merged = calls.merge(agents, on=list(dimensions), how="outer")
    for name in (*COUNTERS, *AGENT_COUNTERS):
        merged[name] = pd.to_numeric(merged[name], errors="coerce").fillna(0.0)
    if not dimensions and merged.empty:
        merged = pd.DataFrame([{name: 0.0 for name in (*COUNTERS, *AGENT_COUNTERS)}])
    return merged.sort_values(list(dimensions)).reset_index(drop=True) if dimensions else merged


def campaign_names(client: Client, matching: str = "", limit: int | None = None) -> list[str]:
    """The campaigns with landed buckets, for filters: those whose name holds ``matching`` (any
    case), in name order, the first ``limit`` of them (a filter's options stay a few dozen
    whatever the number of campaigns; the user types to find the others)."""
    sql = (
        "SELECT DISTINCT campaign FROM minute_metrics "
        "WHERE positionCaseInsensitiveUTF8(campaign, {matching:String}) > 0 ORDER BY campaign"
    )
    parameters: dict = {"matching": matching}
    if limit is not None:
        sql += " LIMIT {limit:UInt32}"
        parameters["limit"] = limit
    return [row[0] for row in client.query(sql, parameters=parameters).result_rows]


def late_event_counts(client: Client, start: datetime, end: datetime) -> pd.DataFrame:
    """Per campaign: distinct events with event time in [start, end) that arrived too late to count."""
    frame = client.query_df(
        "SELECT campaign, count() AS late_events, countIf(outcome = 'abandoned') AS late_abandoned "
        "FROM late_events FINAL WHERE event_time >= {start:DateTime64(3)} AND event_time < {end:DateTime64(3)} "
        "GROUP BY campaign ORDER BY campaign",
        parameters={"start": naive_utc(start), "end": naive_utc(end)},
    )
    return frame if len(frame.columns) else pd.DataFrame(columns=["campaign", "late_events", "late_abandoned"])


STOP_LIST_VIOLATION_COLUMNS = [
    "event_time",
    "dialed_at",
    "flagged_at",
    "campaign",
    "agent",
    "team",
    "segment",
    "outcome",
    "reason",
    "event_id",
]


def stop_list_violations(client: Client, start: datetime, end: datetime, campaigns: Sequence[str] = ()) -> pd.DataFrame:
    """Dials to stop-listed customers placed in [start, end), newest first; no personal data."""
    frame = client.query_df(
        f"SELECT {', '.join(STOP_LIST_VIOLATION_COLUMNS)} FROM stop_list_violations FINAL "
        "WHERE dialed_at >= {start:DateTime64(3)} AND dialed_at < {end:DateTime64(3)} "
        "AND (empty({campaigns:Array(String)}) OR has({campaigns:Array(String)}, campaign)) "
        "ORDER BY dialed_at DESC",
        parameters={"start": naive_utc(start), "end": naive_utc(end), "campaigns": list(campaigns)},
    )
    return frame if len(frame.columns) else pd.DataFrame(columns=STOP_LIST_VIOLATION_COLUMNS)
