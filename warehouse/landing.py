"""Batched, idempotent landing of the worker's hand-off (core.handoff.LandingBatch) into ClickHouse.

Order matters for exactness: raw attempts land before the buckets that count them,
and the consumed offsets land last, so an offset in the warehouse always means
everything before it is there too. streams/checkpoint.py numbers that order.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import TypeVar

import numpy as np
from clickhouse_connect.driver.client import Client

from core.alerts import Alert
from core.config import Settings
from core.deadletters import DeadLetter
from core.handoff import (
    CallingHoursViolation,
    CountedAttempts,
    DirtyBuckets,
    FloorChanges,
    LandingBatch,
    StopListChange,
    TopicPartition,
    Violation,
)
from core.metrics import AGENT_COUNTERS, CALL_COUNTS, COUNTERS
from core.schema import CallAttempt
from core.topics import WORKER_GROUP
from warehouse.faults import FaultSwitch
from warehouse.queries.alerts import ALERT_COLUMNS

log = logging.getLogger(__name__)

DialViolation = TypeVar("DialViolation", bound=Violation | CallingHoursViolation)  # a dial that broke a rule

ATTEMPT_COLUMNS = [
    "event_id",
    "campaign",
    "event_time",
    "minute",
    "slot",
    "segment",
    "outcome",
    "ring_seconds",
    "wait_seconds",
    "talk_seconds",
    "is_order",
    "order_value",
    "cost",
    "response_score",
    "phone_hash",
    "lead_id",
    "agent",
    "team",
    "landed_at",
    "callee_timezone",
]
BUCKET_COLUMNS = ["campaign", "slot", "segment", "minute", *COUNTERS, "version", "landed_at"]
LATE_COLUMNS = ["event_id", "campaign", "event_time", "segment", "outcome", "received_at"]
VIOLATION_COLUMNS = [
    "event_id",
    "campaign",
    "event_time",
    "dialed_at",
    "flagged_at",
    "reason",
    "segment",
    "agent",
    "team",
    "outcome",
    "detected_at",
]
CALLING_HOURS_COLUMNS = [
    "event_id",
    "campaign",
    "event_time",
    "dialed_at",
    "callee_timezone",
    "local_dialed_at",
    "allowed_from",
    "allowed_until",
    "profile",
    "segment",
    "agent",
    "team",
    "outcome",
    "detected_at",
]
DEAD_LETTER_COLUMNS = [
    "source_topic",
    "source_partition",
    "source_offset",
    "batch_index",
    "reason",
    "detail",
    "rejected_at",
]
# ClickHouse refuses an insert block that touches more than max_partitions_per_insert_block
# (100) partitions, and the tables are partitioned by month: a batch whose calls span more
# months is landed in blocks of at most this many.
MONTHS_PER_INSERT = 90

OFFSET_COLUMNS = ["consumer_group", "topic", "partition", "topic_id", "next_offset", "version", "landed_at"]
AGENT_MINUTE_COLUMNS = [
    "campaign",
    "team",
    "agent",
    "minute",
    *AGENT_COUNTERS,
    "accounted_until",
    "version",
    "landed_at",
]
AGENT_STATUS_COLUMNS = ["agent", "campaign", "team", "state", "state_since", "last_event_time", "version", "landed_at"]
CAMPAIGN_AGENTS_COLUMNS = ["campaign", "agents", "states", "last_event_times", "version", "landed_at"]
SNAPSHOT_COLUMNS = [
    "campaign",
    "event_time",
    "dial_level",
    "calls_ringing",
    "calls_waiting",
    "longest_wait_seconds",
    "dialable_leads",
    "landed_at",
]
STOP_LIST_COLUMNS = ["phone_hash", "reason", "source", "flagged_at", "removed_at", "version", "landed_at"]


def month_blocks(months: np.ndarray) -> list[np.ndarray] | None:
    """Row indices in blocks of at most MONTHS_PER_INSERT distinct months, or None when one
    insert will do (the usual case, told from the span alone). ``months`` counts months."""
    if len(months) == 0 or int(months.max()) - int(months.min()) < MONTHS_PER_INSERT:
        return None
    distinct = np.unique(months)
    return [
        np.flatnonzero(np.isin(months, distinct[start : start + MONTHS_PER_INSERT]))
        for start in range(0, len(distinct), MONTHS_PER_INSERT)
    ]


def months_of_epoch_seconds(seconds) -> np.ndarray:
    return np.asarray(seconds, dtype="datetime64[s]").astype("datetime64[M]").astype(np.int64)


def months_of(moments: Sequence[datetime]) -> np.ndarray:
    return np.array([moment.year * 12 + moment.month for moment in moments], dtype=np.int64)


def take(column, indices: np.ndarray):
    """The rows ``indices`` of one column, a numpy array or a list."""
    if isinstance(column, np.ndarray):
        return column[indices]
    return [column[index] for index in indices.tolist()]


def _runs(pairs: list[tuple[int, str]], span_seconds: int) -> list[list[tuple[int, str]]]:
    """(start epoch seconds, campaign) pairs, sorted by time, in runs of adjacent spans: each run is
    summed by one read of its time range, so a batch with calls of last year and of today does not
    read the months between. (A run cannot reach the insert's partition limit, 100 months: a batch
    has fewer calls than such a run has hours.)"""
    runs: list[list[tuple[int, str]]] = []
    for pair in pairs:
        if runs and pair[0] - runs[-1][-1][0] <= span_seconds:
            runs[-1].append(pair)
        else:
            runs.append([pair])
    return runs


def _campaign_hours(buckets: DirtyBuckets) -> set[tuple[int, str]]:
    """The (hour start, campaign)s the buckets fall in: the rows of campaign_hour_totals they change."""
    return {(minute // 3600 * 3600, campaign) for minute, campaign in zip(buckets.minutes, buckets.campaigns)}


def _pair_parameters(pairs: list[tuple[int, str]], span_seconds: int) -> dict:
    """The query parameters of land_campaign_totals' reads: the pairs' campaigns and the time range
    they cover. Every campaign's hours (days) in the range are summed again, a few more than the
    pairs where a batch spans several: a sum derived again is the same sum."""
    return {
        "campaigns": sorted({campaign for _, campaign in pairs}),
        "lo": datetime.fromtimestamp(pairs[0][0], timezone.utc).replace(tzinfo=None),
        "hi": datetime.fromtimestamp(pairs[-1][0] + span_seconds, timezone.utc).replace(tzinfo=None),
    }


class Lander:
    """Inserts the worker's hand-off into the warehouse, one table per method. The worker
    calls them one step at a time, in the order streams/checkpoint.py sets out, and retries
    each step on its own; land() runs them all once, in that order, for tools and tests."""

    def __init__(self, client: Client, settings: Settings, consumer_group: str = WORKER_GROUP):
        self.client = client
        self.consumer_group = consumer_group
        self.settings = settings
        self.faults = FaultSwitch()
        # The stop_list table keeps each customer's row with the highest version. Versions
        # only grow, from the newest landed one on (stop_list_version), so a clock set back
        # between two runs cannot make an older flag or removal win.
        self.stop_list_version = 0
        # The (hour, campaign)s whose buckets landed since their totals were last summed, and
        # when that was (queue_campaign_totals): summed at most every worker.campaign_totals_seconds.
        self.pending_totals: set[tuple[int, str]] = set()
        self.totals_landed_at = 0.0
        # The incarnation of each topic whose offsets land (topics.topic_id), set by the worker
        # when it decides where to start; "" for a topic it has not looked up.
        self.topic_ids: dict[str, str] = {}

    @staticmethod
    def attempt_columns(counted: CountedAttempts) -> list:
        """The attempts as columns in ATTEMPT_COLUMNS order, with the slot and cost they were
        counted with. Column-wise, the driver writes them as they are; times go in as epoch
        integers (ms for DateTime64(3), s for DateTime), which it also takes as they are."""
        attempts = counted.attempts
        event_ms = [epoch_ms(attempt.event_time) for attempt in attempts]
        leads = [attempt.lead for attempt in attempts]
        return [
            [attempt.event_id for attempt in attempts],
            [attempt.campaign for attempt in attempts],
            event_ms,
            [ms // 60_000 * 60 for ms in event_ms],
            counted.slots,
            [lead.segment for lead in leads],
            [attempt.outcome.value for attempt in attempts],
            # Numbers as numpy arrays, which the driver copies as they are (see bucket_columns).
            np.array([attempt.ring_seconds for attempt in attempts], dtype=np.float64),
            [attempt.wait_seconds for attempt in attempts],  # null where the dialer sent no wait
            np.array([attempt.talk_seconds for attempt in attempts], dtype=np.float64),
            np.array([attempt.order for attempt in attempts], dtype=np.uint8),
            np.array([attempt.order_value for attempt in attempts], dtype=np.float64),
            np.array(counted.costs, dtype=np.float64),
            [lead.response_score for lead in leads],
            [lead.phone_hash or "" for lead in leads],
            [lead.lead_id or "" for lead in leads],
            [attempt.agent or "" for attempt in attempts],
            [attempt.team or "" for attempt in attempts],
            [epoch_ms(datetime.now(timezone.utc))] * len(attempts),
            [attempt.callee_timezone or "" for attempt in attempts],
        ]

    @staticmethod
    def bucket_columns(buckets: DirtyBuckets) -> list:
        """The changed buckets as columns in BUCKET_COLUMNS order. The counters stay numpy
        arrays, which the driver copies into the insert as they are (lists it packs value by
        value): call counts as unsigned integers, money and seconds as floats."""
        count = len(buckets)
        columns: list = [buckets.campaigns, buckets.slots, buckets.segments, buckets.minutes]
        for index, name in enumerate(COUNTERS):
            column = np.ascontiguousarray(buckets.counters[:, index])
            columns.append(np.rint(column).astype(np.uint64) if name in CALL_COUNTS else column)
        columns.append(np.full(count, buckets.version, dtype=np.uint64))
        columns.append([epoch_ms(datetime.now(timezone.utc))] * count)
        return columns

    def insert_columns(self, table: str, columns: list, column_names: list[str], months: np.ndarray) -> None:
        """A column-oriented insert, in blocks the warehouse's partition limit allows."""
        blocks = month_blocks(months)
        if blocks is None:
            self.client.insert(table, columns, column_names=column_names, column_oriented=True)
            return
        log.info(
            "landing %d rows of %s spanning %d months in %d blocks",
            len(months),
            table,
            len(np.unique(months)),
            len(blocks),
        )
        for indices in blocks:
            self.client.insert(
                table, [take(column, indices) for column in columns], column_names=column_names, column_oriented=True
            )

    def insert_rows(self, table: str, rows: list[list], column_names: list[str], months: np.ndarray) -> None:
        """A row-oriented insert, in blocks the warehouse's partition limit allows."""
        blocks = month_blocks(months)
        for indices in [np.arange(len(rows))] if blocks is None else blocks:
            self.client.insert(table, take(rows, indices), column_names=column_names)

    def land(self, batch: LandingBatch) -> None:
        """Everything in ``batch``, once, in the worker's commit order (no retry)."""
        self.land_stop_list(batch.stop_list_changes)
        self.land_dead_letters(batch.dead_letters)
        self.land_violations(batch.violations)
        self.land_attempts(batch.counted)
        self.land_buckets(batch.buckets)
        self.land_campaign_totals(batch.buckets)
        self.land_late_events(batch.late_events)
        self.land_floor(batch.floor)
        self.land_offsets(batch.offsets)

    def land_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        self.faults.check("landing dead letters")
        rows = [
            [
                letter.source_topic,
                letter.source_partition,
                letter.source_offset,
                -1 if letter.batch_index is None else letter.batch_index,
                letter.reason,
                letter.detail,
                letter.rejected_at,
            ]
            for letter in letters
        ]
        self.client.insert("dead_letters", rows, column_names=DEAD_LETTER_COLUMNS)

    def land_violations(self, violations: Sequence[Violation]) -> None:
        self._land_dial_violations(
            "stop-list violations",
            "stop_list_violations",
            VIOLATION_COLUMNS,
            violations,
            lambda v: [v.entry.flagged_at, v.entry.reason],
        )

    def land_calling_hours_violations(self, violations: Sequence[CallingHoursViolation]) -> None:
        self._land_dial_violations(
            "calling-hours violations",
            "calling_hours_violations",
            CALLING_HOURS_COLUMNS,
            violations,
            lambda v: [
                v.attempt.callee_timezone or "",
                v.local_dialed_at.strftime("%Y-%m-%d %H:%M:%S"),
                v.allowed_from,
                v.allowed_until,
                v.profile,
            ],
        )

    def _land_dial_violations(
        self,
        what: str,
        table: str,
        column_names: list[str],
        violations: Sequence[DialViolation],
        rule_columns: Callable[[DialViolation], list],
    ) -> None:
        """A dial that broke a rule, in the layout both violation tables share: the call and when
        it was dialled, the rule's own columns, then who dialled it, its outcome and when the
        worker found it."""
        if not violations:
            return
        self.faults.check(f"landing {what}")
        detected_at = datetime.now(timezone.utc)
        rows = [
            [
                v.attempt.event_id,
                v.attempt.campaign,
                v.attempt.event_time,
                v.dialed_at,
                *rule_columns(v),
                v.attempt.lead.segment,
                v.attempt.agent or "",
                v.attempt.team or "",
                v.attempt.outcome.value,
                detected_at,
            ]
            for v in violations
        ]
        self.insert_rows(table, rows, column_names, months_of([v.attempt.event_time for v in violations]))

    def land_attempts(self, counted: CountedAttempts) -> None:
        if not counted:
            return
        self.faults.check("landing attempts")
        columns = self.attempt_columns(counted)
        self.insert_columns(
            "call_attempts", columns, ATTEMPT_COLUMNS, months_of_epoch_seconds(columns[ATTEMPT_COLUMNS.index("minute")])
        )

    def land_buckets(self, buckets: DirtyBuckets | None) -> None:
        if not buckets:
            return
        self.faults.check("landing buckets")
        self.insert_columns(
            "minute_metrics", self.bucket_columns(buckets), BUCKET_COLUMNS, months_of_epoch_seconds(buckets.minutes)
        )

    def land_campaign_totals(self, buckets: DirtyBuckets | None) -> None:
        """campaign_hour_totals and campaign_day_totals (migration 0020) of every campaign hour and
        day ``buckets`` fall in, summed again from what minute_metrics holds once they landed: the
        rows are derived, never added to, so landing them again (a retry, a replay after a restart)
        writes the same sums. Each carries the warehouse clock as its version, so the newest
        derivation wins."""
        if buckets:
            self._land_totals(_campaign_hours(buckets))

    def queue_campaign_totals(self, buckets: DirtyBuckets | None) -> None:
        """The worker's way to land_campaign_totals: ``buckets``' hours join the queue, and the
        queue is summed once worker.campaign_totals_seconds have passed since it last was (0: at
        once). Summing costs the same for one batch's hours as for a few seconds' worth, and the
        wallboard reads them every few seconds, so the worker does not pay it for every batch. A
        queue lost with the worker is summed again at its restart, which lands the open buckets
        again (WorkerPipeline.prepare)."""
        if buckets:
            self.pending_totals |= _campaign_hours(buckets)
        if self.totals_due():
            self.land_queued_campaign_totals()

    def totals_due(self) -> bool:
        """Whether worker.campaign_totals_seconds have passed since the queue was last summed."""
        return time.monotonic() - self.totals_landed_at >= self.settings.worker.campaign_totals_seconds

    def land_queued_campaign_totals(self) -> None:
        """Sum the queued hours' and days' totals now (the queue empties only once they landed)."""
        pairs = set(self.pending_totals)
        if pairs:
            self._land_totals(pairs)
            self.pending_totals -= pairs
        self.totals_landed_at = time.monotonic()

    def _land_totals(self, pairs: set[tuple[int, str]]) -> None:
        self.faults.check("landing campaign totals")
        hours = sorted(pairs)
        days = sorted({(hour // 86_400 * 86_400, campaign) for hour, campaign in hours})
        sums = ", ".join(f"sum({name})" for name in COUNTERS)
        columns = ", ".join(COUNTERS)
        version = "toUInt64(toUnixTimestamp64Nano(now64(9)))"
        for chunk in _runs(hours, 3600):
            self.client.command(
                f"INSERT INTO campaign_hour_totals (hour, campaign, {columns}, first_minute, version, landed_at) "
                f"SELECT toStartOfHour(minute) AS hour, campaign, {sums}, min(minute), {version}, now64(3) "
                "FROM minute_metrics FINAL "
                "PREWHERE minute >= {lo:DateTime} AND minute < {hi:DateTime} AND campaign IN {campaigns:Array(String)} "
                "GROUP BY hour, campaign",
                parameters=_pair_parameters(chunk, 3600),
            )
        for chunk in _runs(days, 86_400):
            self.client.command(
                f"INSERT INTO campaign_day_totals (day, campaign, {columns}, first_minute, version, landed_at) "
                f"SELECT toStartOfDay(hour) AS day, campaign, {sums}, min(first_minute), {version}, now64(3) "
                "FROM campaign_hour_totals FINAL "
                "PREWHERE hour >= {lo:DateTime} AND hour < {hi:DateTime} AND campaign IN {campaigns:Array(String)} "
                "GROUP BY day, campaign",
                parameters=_pair_parameters(chunk, 86_400),
            )

    def land_late_events(self, late_events: Sequence[CallAttempt]) -> None:
        if not late_events:
            return
        self.faults.check("landing late events")
        received_at = datetime.now(timezone.utc)
        rows = [
            [event.event_id, event.campaign, event.event_time, event.lead.segment, event.outcome.value, received_at]
            for event in late_events
        ]
        self.insert_rows("late_events", rows, LATE_COLUMNS, months_of([event.event_time for event in late_events]))

    def land_floor(self, floor: FloorChanges | None) -> None:
        """The floor's changed agent minutes and statuses (full state, one version: a re-landing
        replaces) and the batch's dialer snapshots."""
        if not floor:
            return
        self.faults.check("landing the floor")
        landed_at = epoch_ms(datetime.now(timezone.utc))
        if floor.minutes:
            campaigns, teams, agents, minutes, counters, accounted = zip(*floor.minutes)
            matrix = np.array(counters, dtype=np.float64).reshape(len(minutes), len(AGENT_COUNTERS))
            columns = [
                list(campaigns),
                list(teams),
                list(agents),
                list(minutes),
                *(np.ascontiguousarray(matrix[:, index]) for index in range(len(AGENT_COUNTERS))),
                [round(moment * 1000) for moment in accounted],
                np.full(len(minutes), floor.version, dtype=np.uint64),
                [landed_at] * len(minutes),
            ]
            self.insert_columns("agent_minutes", columns, AGENT_MINUTE_COLUMNS, months_of_epoch_seconds(minutes))
        if floor.statuses:
            rows = [
                [agent, campaign, team, state, round(since * 1000), round(last * 1000), floor.version, landed_at]
                for agent, campaign, team, state, since, last in floor.statuses
            ]
            self.client.insert("agent_status", rows, column_names=AGENT_STATUS_COLUMNS)
        if floor.lineups:
            rows = [
                [campaign, agents, states, [round(moment * 1000) for moment in newest], floor.version, landed_at]
                for campaign, agents, states, newest in floor.lineups
            ]
            self.client.insert("campaign_agents", rows, column_names=CAMPAIGN_AGENTS_COLUMNS)
        if floor.snapshots:
            rows = [
                [
                    s.campaign,
                    epoch_ms(s.event_time),
                    s.dial_level,
                    s.calls_ringing,
                    s.calls_waiting,
                    s.longest_wait_seconds,
                    s.dialable_leads,
                    landed_at,
                ]
                for s in floor.snapshots
            ]
            self.insert_rows(
                "dialer_snapshots", rows, SNAPSHOT_COLUMNS, months_of([s.event_time for s in floor.snapshots])
            )
            # Each campaign's newest of the batch, for the wallboard (dialer_latest keeps the newest).
            newest: dict[str, list] = {}
            for row in rows:
                if row[0] not in newest or row[1] >= newest[row[0]][1]:
                    newest[row[0]] = row
            self.client.insert("dialer_latest", list(newest.values()), column_names=SNAPSHOT_COLUMNS)

    def land_offsets(self, offsets: Mapping[TopicPartition, int]) -> None:
        if not offsets:
            return
        self.faults.check("landing offsets")
        landed_at = datetime.now(timezone.utc)
        version = time.time_ns()
        rows = [
            [self.consumer_group, topic, partition, self.topic_ids.get(topic, ""), next_offset, version, landed_at]
            for (topic, partition), next_offset in offsets.items()
        ]
        self.client.insert("consumed_offsets", rows, column_names=OFFSET_COLUMNS)

    def land_stop_list(self, changes: Sequence[StopListChange]) -> None:
        """Flags and removals read from the stop-list topic, one row per customer: the
        warehouse's copy the worker rebuilds its list from after a restart."""
        if not changes:
            return
        self.faults.check("landing the stop list")
        version = max(time.time_ns(), self.stop_list_version + 1)
        landed_at = datetime.now(timezone.utc)
        rows = [
            [
                change.entry.phone_hash,
                change.entry.reason,
                change.entry.source,
                change.entry.flagged_at,
                change.removed_at,
                version,
                landed_at,
            ]
            for change in changes
        ]
        self.client.insert("stop_list", rows, column_names=STOP_LIST_COLUMNS)
        self.stop_list_version = version

    def land_alerts(self, alerts: Sequence[Alert]) -> None:
        self.faults.check("landing alerts")
        rows = [[getattr(alert, column) for column in ALERT_COLUMNS] for alert in alerts]
        for row in rows:
            row[1] = row[1].value  # Rule enum -> its name
        self.client.insert("alerts", rows, column_names=ALERT_COLUMNS)


def epoch_ms(moment: datetime) -> int:
    """DateTime64(3) ticks, truncated to the millisecond exactly as the driver does for a datetime."""
    return (math.floor(moment.timestamp()) * 1_000_000 + moment.microsecond) // 1000


def retry_until_stopped(
    action, what: str, should_stop=lambda: False, first_delay_s: float = 0.5, max_delay_s: float = 10.0
) -> bool:
    """Run ``action`` until it works (True) or ``should_stop()`` says give up (False).

    The wait between tries ends as soon as ``should_stop()`` turns true, so a stopping
    worker is held by one more try at most, never by a whole backoff."""
    delay = first_delay_s
    while True:
        try:
            action()
            return True
        except Exception as exc:  # any failure of the warehouse: keep the data, retry
            if should_stop():
                log.error("%s still failing at shutdown; it stays unlanded and unconsumed in Kafka: %s", what, exc)
                return False
            log.warning("%s failed (%s); retrying in %.1f s", what, exc, delay)
            deadline = time.monotonic() + delay
            while time.monotonic() < deadline and not should_stop():
                time.sleep(min(0.1, delay))
            delay = min(max_delay_s, delay * 2)
