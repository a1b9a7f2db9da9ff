"""What the alerting and the alerts page read: alert transitions and acknowledgements (the
alerts table's columns, shared with landing), the baselines the worker's rules compare with,
recent stop-list violations, and dead letters per reason."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

import msgspec
import pandas as pd
from clickhouse_connect.driver.client import Client

from core.alerts import Alert, latest_by_episode
from warehouse.client import command_int
from warehouse.queries.sums import as_utc, minute_window, naive_utc, summed


def campaign_baseline(client: Client, campaign: str, slot: str, since: datetime, until: datetime) -> dict:
    """A campaign's summed counters over [since, until): in ``slot`` and over all slots."""
    return campaign_baselines(client, [campaign], slot, since, until)[campaign]


def campaign_baselines(
    client: Client, campaigns: Sequence[str], slot: str, since: datetime, until: datetime
) -> dict[str, dict]:
    """:func:`campaign_baseline` for many campaigns over the same slot and days, in one query;
    a campaign with no calls in the window gets zeros."""
    parameters = {"campaigns": list(campaigns), "slot": slot, "since": naive_utc(since), "until": naive_utc(until)}
    campaign_sql = "AND campaign IN {campaigns:Array(String)} "

    def template(rows: str, counted) -> str:
        return (
            "SELECT campaign, sumIf(dials, slot = {slot:String}) AS slot_dials, "
            "sumIf(contacts, slot = {slot:String}) AS slot_contacts, sum(cost) AS cost, sum(orders) AS orders "
            f"FROM {rows} WHERE {campaign_sql.removeprefix('AND ')}"
            f"AND {counted(lambda t: f'{t} >= {{since:DateTime}} AND {t} < {{until:DateTime}}')} "
            "GROUP BY campaign"
        )

    window = minute_window(since, until)
    sql, extra = summed(
        client,
        template,
        ["campaign"],
        ["slot_dials", "slot_contacts", "cost", "orders"],
        [window],
        window,
        campaign_sql=campaign_sql,
        order=False,
    )
    parameters.update(extra)
    result = client.query(sql, parameters=parameters, settings={"prefer_column_name_to_alias": 1})
    found = {row[0]: row[1:] for row in result.result_rows}
    return {
        campaign: dict(
            zip(
                ("slot_dials", "slot_contacts", "cost", "orders"), (float(v) for v in found.get(campaign, (0, 0, 0, 0)))
            )
        )
        for campaign in campaigns
    }


ALERT_COLUMNS = [
    "alert_id",
    "rule",
    "campaign",
    "state",
    "severity",
    "value",
    "threshold",
    "window_minutes",
    "sample",
    "first_seen",
    "event_time",
    "emitted_at",
    "detail",
    "trigger_event_id",
]


def alert_history(client: Client, limit: int = 500) -> pd.DataFrame:
    """Newest transitions first, with who acknowledged each episode."""
    frame = client.query_df(
        f"SELECT {', '.join('a.' + c for c in ALERT_COLUMNS)}, k.acknowledged_by, k.acknowledged_at "
        "FROM (SELECT * FROM alerts FINAL ORDER BY emitted_at DESC LIMIT {limit:UInt32}) AS a "
        "LEFT JOIN (SELECT alert_id, argMax(acknowledged_by, acknowledged_at) AS acknowledged_by, "
        "max(acknowledged_at) AS acknowledged_at FROM alert_acks GROUP BY alert_id) AS k ON a.alert_id = k.alert_id "
        "ORDER BY a.emitted_at DESC",
        parameters={"limit": limit},
        settings={"join_use_nulls": 1, "prefer_column_name_to_alias": 1},
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
    return (
        newest.sort_values(["_rank", "emitted_at"], ascending=[False, False])
        .drop(columns="_rank")
        .reset_index(drop=True)
    )


def alerts_from_frame(frame: pd.DataFrame) -> list[Alert]:
    """Rows of alert_history()/active_alerts() as Alert events, in the frame's order."""
    return [
        msgspec.convert({key: _plain(row[key]) for key in ALERT_COLUMNS}, Alert) for row in frame.to_dict("records")
    ]


def _plain(value):
    """A pandas cell as the plain value msgspec expects (NaN/NaT -> None, Timestamp -> datetime)."""
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    if hasattr(value, "to_pydatetime"):
        return as_utc(value.to_pydatetime())
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
    client.insert(
        "alert_acks",
        [[alert_id, by, note, datetime.now(timezone.utc)]],
        column_names=["alert_id", "acknowledged_by", "note", "acknowledged_at"],
    )


def recent_stop_list_violations(
    client: Client, campaign: str, since: datetime, until: datetime, event_ids: Sequence[str] = ()
) -> int:
    """A campaign's violations with event time in (since, until], plus the given ones however late:
    what the stop_list_violation alert counts (the worker counts them from memory,
    streams.violation_counts; this reads the campaign's whole history of violations)."""
    return command_int(
        client,
        "SELECT count() FROM stop_list_violations FINAL WHERE campaign = {campaign:String} "
        "AND ((event_time > {since:DateTime64(3)} AND event_time <= {until:DateTime64(3)}) "
        "OR has({event_ids:Array(String)}, event_id))",
        parameters={
            "campaign": campaign,
            "since": naive_utc(since),
            "until": naive_utc(until),
            "event_ids": list(event_ids),
        },
    )


#: The tables of violations counted in a window by an alert rule (see newest_violations).
VIOLATION_TABLES = ("stop_list_violations", "calling_hours_violations")


def newest_violations(client: Client, table: str, window_seconds: float) -> list[tuple[str, str, float]]:
    """Each campaign's violations in ``table`` with event time within ``window_seconds`` of its
    newest one, as (campaign, event id, event time in epoch seconds): what a restarted worker
    holds again to count its violation alerts from memory. One scan of the table."""
    if table not in VIOLATION_TABLES:
        raise ValueError(f"unknown violations table {table!r}; expected one of {', '.join(VIOLATION_TABLES)}")
    result = client.query(
        "SELECT campaign, event_id, toUnixTimestamp64Milli(event_time) FROM ("
        "SELECT campaign, event_id, event_time, max(event_time) OVER (PARTITION BY campaign) AS newest "
        f"FROM {table} FINAL) WHERE toUnixTimestamp64Milli(event_time) > "
        "toUnixTimestamp64Milli(newest) - {window_ms:Int64}",
        parameters={"window_ms": int(window_seconds * 1000)},
    )
    return [(str(campaign), str(event_id), millis / 1000) for campaign, event_id, millis in result.result_rows]


def dead_letter_counts(client: Client, now: datetime) -> pd.DataFrame:
    """Refused records per reason: in the last hour, the last 24 hours and ever, newest first."""
    frame = client.query_df(
        "SELECT reason, countIf(rejected_at > {hour_ago:DateTime64(3)}) AS last_hour, "
        "countIf(rejected_at > {day_ago:DateTime64(3)}) AS last_24h, count() AS total, "
        "max(rejected_at) AS newest FROM dead_letters FINAL GROUP BY reason ORDER BY newest DESC",
        parameters={"hour_ago": naive_utc(now - timedelta(hours=1)), "day_ago": naive_utc(now - timedelta(days=1))},
    )
    return frame if len(frame.columns) else pd.DataFrame(columns=["reason", "last_hour", "last_24h", "total", "newest"])
