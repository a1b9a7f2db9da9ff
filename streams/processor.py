"""One batch of Kafka records in, counted attempts and dead letters out.

Kept apart from Faust so the counting rules are plain code: decode and validate each
record, route rejects to dead letters, and add each valid attempt to its minute bucket.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import msgspec
import numpy as np

from core.alerts import format_seconds
from core.config import Settings
from core.deadletters import DeadLetter, dead_letter
from core.handoff import CallingHoursViolation, CountedAttempts, DirtyBuckets, LandingBatch, Violation
from core.schema import AgentStateChange, CallAttempt, Event, Rejection, decode_record, encode_event
from core.slots import SlotRules
from streams.buckets import MinuteBuckets, Verdict, attempt_fingerprint, call_fingerprint
from streams.calling_hours import CallingHours
from streams.floor import FloorState
from streams.stoplist import StopListTable


@dataclass(frozen=True)
class SourceRecord:
    topic: str
    partition: int
    offset: int
    value: bytes


@dataclass
class BatchResult(LandingBatch):
    """A counted batch: what it lands (a LandingBatch; its violations include late dials, since a
    violation is one however late), and the events still to settle before it lands."""

    # Too old for their bucket: either a replay of an event that already landed
    # (a duplicate) or a genuinely late event; resolve_late() decides which.
    late: list[tuple[CallAttempt, SourceRecord]] = field(default_factory=list)
    # In time, but with an id the long memory (buckets.seen_ids) may hold: a re-send of a call
    # counted before the lateness window (a duplicate or a conflict), or a false positive of the
    # memory (a new call, counted in this batch once the warehouse says it never landed).
    held: list[tuple[CallAttempt, SourceRecord]] = field(default_factory=list)
    # Each record that counted calls, with how many the batch had counted once it was done: the
    # record behind each of ``counted``'s attempts, should the warehouse refuse one.
    counted_records: list[tuple[SourceRecord, int]] = field(default_factory=list)


@dataclass
class WorkerStats:
    records: int = 0
    counted: int = 0
    duplicates: int = 0
    late_events: int = 0
    # Calls whose id the long memory of ids may hold, looked up in the warehouse before counting;
    # those found landed are also in duplicates or the conflicting_duplicate dead letters.
    ids_looked_up: int = 0
    agent_state_events: int = 0
    stale_agent_events: int = 0  # older than their agent's newest event: changed nothing
    dialer_state_events: int = 0
    stop_list_violations: int = 0
    calling_hours_violations: int = 0
    dead_letters: Counter = field(default_factory=Counter)
    last_landed_at: datetime | None = None

    def as_dict(self) -> dict:
        return {
            "records": self.records,
            "counted": self.counted,
            "duplicates": self.duplicates,
            "late_events": self.late_events,
            "ids_looked_up": self.ids_looked_up,
            "agent_state_events": self.agent_state_events,
            "stale_agent_events": self.stale_agent_events,
            "dialer_state_events": self.dialer_state_events,
            "stop_list_violations": self.stop_list_violations,
            "calling_hours_violations": self.calling_hours_violations,
            "dead_letters": dict(self.dead_letters),
            "last_landed_at": self.last_landed_at.isoformat() if self.last_landed_at else None,
        }


class CallEventProcessor:
    def __init__(self, settings: Settings, slot_rules: SlotRules, stop_list: StopListTable | None = None):
        self.settings = settings
        self.stop_list = stop_list
        self.calling_hours = CallingHours(settings.calling_hours)
        self.buckets = MinuteBuckets(settings, slot_rules)
        self.floor = FloorState(settings.agents.timeout_seconds)
        self.stats = WorkerStats()
        self.on_counted: Callable[[CallAttempt], None] | None = None  # the alert rules' minute hook
        # Called with each event refused as future_event_time and how many seconds ahead of the
        # worker's clock it was stamped: the clock_skew rule's hook.
        self.on_future_stamped: Callable[[Event, float], None] | None = None

    def process(self, records: Iterable[SourceRecord]) -> BatchResult:
        letters: list[DeadLetter] = []
        late: list[tuple[CallAttempt, SourceRecord]] = []
        held: list[tuple[CallAttempt, SourceRecord]] = []
        violations: list[Violation] = []
        outside_hours: list[CallingHoursViolation] = []
        max_bytes = self.settings.worker.max_record_bytes
        now = datetime.now(timezone.utc)
        newest_allowed = now + timedelta(seconds=self.settings.pipeline.max_future_seconds)
        counted_before = self.stats.counted
        counted_records: list[tuple[SourceRecord, int]] = []
        for record in records:
            self.stats.records += 1
            events: list[Event]
            rejections: list[Rejection]
            if record.value is not None and len(record.value) > max_bytes:
                events, rejections = (
                    [],
                    [
                        Rejection(
                            "too_large",
                            f"{len(record.value):,} bytes; the limit is {max_bytes:,} (worker.max_record_bytes)",
                            record.value,
                        )
                    ],
                )
            else:
                events, rejections = decode_record(record.value, newest_allowed, self.settings.event_screen)
            for event in events:
                if not isinstance(event, CallAttempt):
                    if isinstance(event, AgentStateChange):
                        self.stats.agent_state_events += 1
                        if not self.floor.add(event):
                            self.stats.stale_agent_events += 1
                    else:
                        self.stats.dialer_state_events += 1
                        self.floor.add_snapshot(event)
                    continue
                verdict = self.buckets.add(event)
                if verdict is Verdict.CONFLICT:
                    letters.append(self._conflict(event, record))
                    continue
                if verdict is not Verdict.DUPLICATE and self.stop_list is not None:
                    violation = self.stop_list.check(event)
                    if violation is not None:
                        violations.append(violation)
                        self.stats.stop_list_violations += 1
                if verdict is not Verdict.DUPLICATE and event.callee_timezone is not None:
                    too_early_or_late = self.calling_hours.check(event)
                    if too_early_or_late is not None:
                        outside_hours.append(too_early_or_late)
                        self.stats.calling_hours_violations += 1
                if verdict is Verdict.COUNTED:
                    self.stats.counted += 1
                    if self.on_counted is not None:
                        self.on_counted(event)
                elif verdict is Verdict.DUPLICATE:
                    self.stats.duplicates += 1
                elif verdict is Verdict.HELD:
                    self.stats.ids_looked_up += 1
                    held.append((event, record))
                else:
                    late.append((event, record))
            for rejection in rejections:
                if rejection.reason == "future_event_time":
                    rejection = self._future_stamped(rejection, now)
                self.stats.dead_letters[rejection.reason] += 1
                letters.append(
                    dead_letter(
                        rejection, record.topic, record.partition, record.offset, self.settings.pipeline.phone_region
                    )
                )
            counted = self.stats.counted - counted_before
            if counted and (not counted_records or counted_records[-1][1] < counted):
                counted_records.append((record, counted))
        return BatchResult(
            counted_records=counted_records,
            counted=self.buckets.take_counted(),
            buckets=self.buckets.take_dirty(),
            dead_letters=letters,
            violations=violations,
            late=late,
            held=held,
            calling_hours_violations=outside_hours,
            floor=self.floor.take_changes(),
        )

    def _future_stamped(self, rejection: Rejection, now: datetime) -> Rejection:
        """An event stamped too far ahead: tell the clock_skew rule, and say in the dead letter
        how far ahead it was and which setting allows how much."""
        try:
            event = msgspec.json.decode(rejection.raw, type=Event)
        except msgspec.MsgspecError:  # the decoder refused it for its time only, so this does not happen
            return rejection
        ahead = (event.event_time - now).total_seconds()
        if self.on_future_stamped is not None:
            self.on_future_stamped(event, ahead)
        limit = self.settings.pipeline.max_future_seconds
        return msgspec.structs.replace(
            rejection,
            detail=(
                f"event_time {event.event_time.isoformat()} is {format_seconds(ahead)} ahead of the worker's clock "
                f"({now.isoformat(timespec='seconds')}); pipeline.max_future_seconds allows {limit} s. "
                f"Is campaign {event.campaign}'s dialer clock or time zone wrong?"
            ),
        )

    def _conflict(self, event: CallAttempt, record: SourceRecord, landed: tuple | None = None) -> DeadLetter:
        """A dead letter for an event id already counted for a different call (``landed``: that
        call as the warehouse holds it, call_fingerprint's fields, when it was looked up there)."""
        self.stats.dead_letters["conflicting_duplicate"] += 1
        if landed is None:
            counted_as = "a call with other content (its time, outcome, order, talk time or segment differ"
        else:
            campaign, event_ms, outcome, is_order, talk_seconds, segment = landed
            counted_as = (
                f"another call (the warehouse holds it as campaign {campaign}, "
                f"{datetime.fromtimestamp(event_ms / 1000, timezone.utc).isoformat()}, {outcome}"
                f"{', an order' if is_order else ''}, {talk_seconds:g} s talk, segment {segment}"
            )
        rejection = Rejection(
            "conflicting_duplicate",
            f"event id {event.event_id} was already counted for {counted_as}; this one: campaign "
            f"{event.campaign}, {event.event_time.isoformat()}, {event.outcome.value}"
            f"{', an order' if event.order else ''}). An event id names one call, so it is "
            "not counted again; send a correction under a new id",
            encode_event(event),
            None,
        )
        return dead_letter(
            rejection, record.topic, record.partition, record.offset, self.settings.pipeline.phone_region
        )

    def set_aside(self, batch: BatchResult, refused: Mapping[int, str]) -> list[DeadLetter]:
        """Take the calls the warehouse refused to store (``refused``: their index in
        batch.counted -> what the warehouse said) back out of the batch and the live state, as
        though they had not come; their dead letters (warehouse_refused), to deliver and land."""
        counted = batch.counted
        letters, gone, minutes = [], set(), set()
        for index, said in sorted(refused.items()):
            attempt = counted.attempts[index]
            self.buckets.uncount(attempt, counted.costs[index])
            self.stats.counted -= 1
            self.stats.dead_letters["warehouse_refused"] += 1
            gone.add(attempt.event_id)
            minutes.add((attempt.campaign, int(attempt.event_time.timestamp() // 60) * 60))
            record = next((record for record, upto in batch.counted_records if index < upto), None)
            rejection = Rejection(
                "warehouse_refused",
                (
                    f"the warehouse refused to store call {attempt.event_id} (campaign {attempt.campaign}, "
                    f"{attempt.event_time.isoformat()}) although it answered; it is not counted, the rest of "
                    f"the batch is. The warehouse said: {said[:600]}"
                ),
                encode_event(attempt),
                None,
            )
            letters.append(
                dead_letter(
                    rejection,
                    record.topic if record else self.settings.topics.call_events,
                    record.partition if record else -1,
                    record.offset if record else -1,
                    self.settings.pipeline.phone_region,
                )
            )
        kept = [index for index in range(len(counted)) if index not in refused]
        batch.counted = CountedAttempts(
            [counted.attempts[i] for i in kept], [counted.slots[i] for i in kept], [counted.costs[i] for i in kept]
        )
        batch.violations = [v for v in batch.violations if v.attempt.event_id not in gone]
        batch.calling_hours_violations = [v for v in batch.calling_hours_violations if v.attempt.event_id not in gone]
        batch.buckets = _replaced_minutes(batch.buckets, minutes, self.buckets.take_dirty())
        batch.dead_letters.extend(letters)
        return letters

    def resolve_late(self, result: BatchResult, already_landed: Mapping[str, tuple]) -> None:
        """Late and held events that already landed are duplicates, or conflicts when the landed
        call differs (``already_landed``: id -> the call_fingerprint fields it landed with); the
        other late events are dead-lettered, the other held ones counted into this batch."""
        replayed = [v for v in result.violations if v.attempt.event_id in already_landed]
        if replayed:  # found when the event first landed
            self.stats.stop_list_violations -= len(replayed)
            result.violations = [v for v in result.violations if v.attempt.event_id not in already_landed]
        replayed_hours = [v for v in result.calling_hours_violations if v.attempt.event_id in already_landed]
        if replayed_hours:
            self.stats.calling_hours_violations -= len(replayed_hours)
            result.calling_hours_violations = [
                v for v in result.calling_hours_violations if v.attempt.event_id not in already_landed
            ]
        for event, record in result.late:
            landed = already_landed.get(event.event_id)
            if landed is not None:
                self._landed_again(result, event, record, landed)
                continue
            self.stats.late_events += 1
            self.stats.dead_letters["late_event"] += 1
            result.late_events.append(event)
            rejection = Rejection(
                "late_event",
                f"event_time {event.event_time.isoformat()} is more than "
                f"{self.settings.pipeline.allowed_lateness_seconds} s behind campaign "
                f"{event.campaign}'s newest event",
                encode_event(event),
                None,
            )
            result.dead_letters.append(
                dead_letter(
                    rejection, record.topic, record.partition, record.offset, self.settings.pipeline.phone_region
                )
            )
        result.late = []
        self._count_held(result, already_landed)

    def _landed_again(self, result: BatchResult, event: CallAttempt, record: SourceRecord, landed: tuple) -> None:
        """An event whose id the warehouse holds: a duplicate if it is the landed call, else a conflict."""
        if call_fingerprint(*landed) == attempt_fingerprint(event):
            self.stats.duplicates += 1
        else:
            result.dead_letters.append(self._conflict(event, record, landed))

    def _count_held(self, result: BatchResult, already_landed: Mapping[str, tuple]) -> None:
        """Settle the batch's held events: those landed are duplicates or conflicts; the rest are
        new calls the long memory of ids took for known ones, counted now, into this batch (their
        minutes are still kept: nothing is evicted before the batch has landed)."""
        held, result.held = result.held, []
        not_counted: list[CallAttempt] = []  # a second copy of an id counted just before it, in this batch
        for event, record in held:
            landed = already_landed.get(event.event_id)
            if landed is not None:
                self._landed_again(result, event, record, landed)
                continue
            verdict = self.buckets.add(event, not_landed=True)
            if verdict is Verdict.COUNTED:
                self.stats.counted += 1
                if self.on_counted is not None:
                    self.on_counted(event)
                counted = self.buckets.take_counted()
                batch = result.counted
                batch.attempts += counted.attempts
                batch.slots += counted.slots
                batch.costs += counted.costs
                result.counted_records.append((record, len(batch)))
                continue
            not_counted.append(event)
            if verdict is Verdict.DUPLICATE:
                self.stats.duplicates += 1
            else:
                result.dead_letters.append(self._conflict(event, record))
        if not_counted:  # their violations were found with their first copy's
            before = len(result.violations), len(result.calling_hours_violations)
            result.violations = [v for v in result.violations if not any(v.attempt is e for e in not_counted)]
            result.calling_hours_violations = [
                v for v in result.calling_hours_violations if not any(v.attempt is e for e in not_counted)
            ]
            self.stats.stop_list_violations -= before[0] - len(result.violations)
            self.stats.calling_hours_violations -= before[1] - len(result.calling_hours_violations)
        fresh = self.buckets.take_dirty()
        if len(fresh.campaigns):
            result.buckets = _replaced_minutes(result.buckets, set(zip(fresh.campaigns, fresh.minutes)), fresh)

    def landed(self) -> None:
        self.stats.last_landed_at = datetime.now(timezone.utc)
        self.buckets.evict_closed()
        self.buckets.seen_ids.rotate()


def _replaced_minutes(buckets: DirtyBuckets | None, minutes: set[tuple[str, int]], fresh: DirtyBuckets) -> DirtyBuckets:
    """``buckets`` with every row of the (campaign, minute)s in ``minutes`` replaced by ``fresh``'s
    full state of them (a segment left without calls has no row there any more)."""
    if buckets is None or not buckets.campaigns:
        return fresh
    kept = [
        i
        for i, (campaign, minute) in enumerate(zip(buckets.campaigns, buckets.minutes))
        if (campaign, minute) not in minutes
    ]
    return DirtyBuckets(
        [buckets.campaigns[i] for i in kept] + fresh.campaigns,
        [buckets.slots[i] for i in kept] + fresh.slots,
        [buckets.segments[i] for i in kept] + fresh.segments,
        [buckets.minutes[i] for i in kept] + fresh.minutes,
        np.vstack([buckets.counters[kept], fresh.counters]) if len(fresh.campaigns) else buckets.counters[kept],
        fresh.version,
    )
