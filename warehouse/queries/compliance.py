"""The compliance reader's violations and evidence: calls placed outside the callee's allowed
hours, repeat dials after an abandoned call, and the per-call rows an evidence export holds.

No query here returns a phone number or its hash: a hash only links rows inside the warehouse
(repeat calls are found by it), and what leaves names calls by their event id."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import pandas as pd
from clickhouse_connect.driver.client import Client

from warehouse.client import command_int
from warehouse.queries.sums import naive_utc

#: Ofcom: a number whose call was abandoned may not be dialled again within this many hours
#: (without a guaranteed live operator, which the events cannot show).
REPEAT_AFTER_ABANDON_HOURS = 72
#: The longest a call lasts (core.schema.Limits.max_call_seconds' default): a call dialled in a
#: range ends at most this long after it.
LONGEST_CALL = timedelta(days=1)

# When the dial was placed: the event marks the attempt's end (streams.stoplist.dialed_at).
DIALED_AT_SQL = (
    "event_time - toIntervalMillisecond(toInt64(round((ring_seconds + ifNull(wait_seconds, 0) + talk_seconds) * 1000)))"
)

CALLING_HOURS_COLUMNS = [
    "dialed_at",
    "local_dialed_at",
    "callee_timezone",
    "allowed_from",
    "allowed_until",
    "profile",
    "campaign",
    "agent",
    "team",
    "segment",
    "outcome",
    "event_id",
    "event_time",
]
REPEAT_CALL_COLUMNS = [
    "dialed_at",
    "campaign",
    "agent",
    "team",
    "outcome",
    "event_id",
    "abandoned_at",
    "abandoned_campaign",
    "abandoned_event_id",
    "hours_after_abandon",
]
EVIDENCE_CALL_COLUMNS = [
    "event_id",
    "campaign",
    "event_time",
    "dialed_at",
    "outcome",
    "ring_seconds",
    "wait_seconds",
    "talk_seconds",
    "segment",
    "agent",
    "team",
    "callee_timezone",
]


def _campaign_filter(column: str = "campaign") -> str:
    return f"(empty({{campaigns:Array(String)}}) OR has({{campaigns:Array(String)}}, {column}))"


def calling_hours_violations(
    client: Client, start: datetime, end: datetime, campaigns: Sequence[str] = ()
) -> pd.DataFrame:
    """Calls dialled in [start, end) outside the callee's allowed local hours, newest first."""
    frame = client.query_df(
        f"SELECT {', '.join(CALLING_HOURS_COLUMNS)} FROM calling_hours_violations FINAL "
        "WHERE dialed_at >= {start:DateTime64(3)} AND dialed_at < {end:DateTime64(3)} "
        f"AND {_campaign_filter()} ORDER BY dialed_at DESC, event_id",
        parameters={"start": naive_utc(start), "end": naive_utc(end), "campaigns": list(campaigns)},
    )
    return frame if len(frame.columns) else pd.DataFrame(columns=CALLING_HOURS_COLUMNS)


def recent_calling_hours_violations(
    client: Client, campaign: str, since: datetime, until: datetime, event_ids: Sequence[str] = ()
) -> int:
    """A campaign's calling-hours violations with event time in (since, until], plus the given
    ones however late: what the calling_hours_violation alert counts (the worker counts them
    from memory, streams.violation_counts; this reads the campaign's whole history of violations)."""
    return command_int(
        client,
        "SELECT count() FROM calling_hours_violations FINAL WHERE campaign = {campaign:String} "
        "AND ((event_time > {since:DateTime64(3)} AND event_time <= {until:DateTime64(3)}) "
        "OR has({event_ids:Array(String)}, event_id))",
        parameters={
            "campaign": campaign,
            "since": naive_utc(since),
            "until": naive_utc(until),
            "event_ids": list(event_ids),
        },
    )


def calls_without_callee_timezone(
    client: Client, start: datetime, end: datetime, campaigns: Sequence[str] = ()
) -> pd.DataFrame:
    """Per campaign, the calls that ended in [start, end) and how many came without a
    callee_timezone: those the calling-hours rule could not judge."""
    frame = client.query_df(
        "SELECT campaign, count() AS calls, countIf(callee_timezone = '') AS without_timezone "
        "FROM call_attempts FINAL WHERE event_time >= {start:DateTime64(3)} AND event_time < {end:DateTime64(3)} "
        f"AND {_campaign_filter()} GROUP BY campaign ORDER BY campaign",
        parameters={"start": naive_utc(start), "end": naive_utc(end), "campaigns": list(campaigns)},
    )
    return frame if len(frame.columns) else pd.DataFrame(columns=["campaign", "calls", "without_timezone"])


def repeat_calls_after_abandon(
    client: Client,
    start: datetime,
    end: datetime,
    campaigns: Sequence[str] = (),
    hours: int = REPEAT_AFTER_ABANDON_HOURS,
) -> pd.DataFrame:
    """Dials placed in [start, end) to a number whose call (in any campaign) was abandoned in the
    ``hours`` before, newest first: one row per such dial, naming the latest abandon before it.

    Read from the landed attempts by phone hash, so it is exact across restarts, late events
    and workers (each holds only its partitions' campaigns); the hash never leaves the query.
    ``campaigns`` filters the redials; the abandon may be in any campaign."""
    frame = client.query_df(
        f"""
        SELECT redial.dialed_at AS dialed_at, redial.campaign AS campaign, redial.agent AS agent,
               redial.team AS team, redial.outcome AS outcome, redial.event_id AS event_id,
               abandon.event_time AS abandoned_at, abandon.campaign AS abandoned_campaign,
               abandon.event_id AS abandoned_event_id,
               dateDiff('millisecond', abandon.event_time, redial.dialed_at) / 3600000 AS hours_after_abandon
        FROM (
            SELECT event_id, campaign, agent, team, outcome, phone_hash, {DIALED_AT_SQL} AS dialed_at
            FROM call_attempts FINAL
            WHERE phone_hash != '' AND event_time >= {{start:DateTime64(3)}}
              AND event_time < {{end:DateTime64(3)}} + toIntervalSecond({{longest_call:UInt32}})
              AND {_campaign_filter()}
        ) AS redial
        ASOF INNER JOIN (
            SELECT event_id, campaign, phone_hash, event_time
            FROM call_attempts FINAL
            WHERE outcome = 'abandoned' AND phone_hash != ''
              AND event_time >= {{start:DateTime64(3)}} - toIntervalHour({{hours:UInt32}})
              AND event_time < {{end:DateTime64(3)}}
        ) AS abandon
        ON redial.phone_hash = abandon.phone_hash AND redial.dialed_at > abandon.event_time
        WHERE redial.dialed_at >= {{start:DateTime64(3)}} AND redial.dialed_at < {{end:DateTime64(3)}}
          AND redial.dialed_at <= abandon.event_time + toIntervalHour({{hours:UInt32}})
        ORDER BY dialed_at DESC, event_id
        """,
        parameters={
            "start": naive_utc(start),
            "end": naive_utc(end),
            "campaigns": list(campaigns),
            "hours": int(hours),
            "longest_call": int(LONGEST_CALL.total_seconds()),
        },
    )
    return frame if len(frame.columns) else pd.DataFrame(columns=REPEAT_CALL_COLUMNS)


def customers_abandoned_more_than_once(
    client: Client, start: datetime, end: datetime, campaigns: Sequence[str] = ()
) -> int:
    """How many customers (phone hashes, across campaigns unless ``campaigns`` narrows it) had
    more than one call abandoned in [start, end). A count only: no customer is named."""
    return command_int(
        client,
        "SELECT count() FROM (SELECT phone_hash FROM call_attempts FINAL "
        "WHERE outcome = 'abandoned' AND phone_hash != '' "
        "AND event_time >= {start:DateTime64(3)} AND event_time < {end:DateTime64(3)} "
        f"AND {_campaign_filter()} GROUP BY phone_hash HAVING count() > 1)",
        parameters={"start": naive_utc(start), "end": naive_utc(end), "campaigns": list(campaigns)},
    )


def evidence_calls(client: Client, campaign: str, start: datetime, end: datetime) -> pd.DataFrame:
    """One campaign's calls that ended in [start, end), oldest first, with what each abandon-rate
    definition judges a call by (outcome, wait) and nothing that names the customer."""
    frame = client.query_df(
        f"SELECT event_id, campaign, event_time, {DIALED_AT_SQL} AS dialed_at, outcome, ring_seconds, "
        "wait_seconds, talk_seconds, segment, agent, team, callee_timezone "
        "FROM call_attempts FINAL WHERE campaign = {campaign:String} "
        "AND event_time >= {start:DateTime64(3)} AND event_time < {end:DateTime64(3)} "
        "ORDER BY event_time, event_id",
        parameters={"campaign": campaign, "start": naive_utc(start), "end": naive_utc(end)},
    )
    return frame if len(frame.columns) else pd.DataFrame(columns=EVIDENCE_CALL_COLUMNS)
