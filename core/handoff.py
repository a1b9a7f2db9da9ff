"""What the worker hands to landing: one LandingBatch per batch, holding the attempts it counted
(with the slot and cost counting gave them), the changed minute buckets, dead letters, stop-list
violations and changes, genuinely late events and the offsets the batch moved. Plain data, so the
warehouse reads it without importing the worker.

A new kind of data to land is a new field of LandingBatch (with an empty default, so every
producer of a batch keeps working), a Lander method that inserts it, and a step in
streams/checkpoint.py that says where in the commit order it lands."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

import numpy as np

from core.config import CostModel
from core.deadletters import DeadLetter
from core.metrics import COUNTERS, attempt_cost
from core.schema import CallAttempt, DialerState, StopListEntry
from core.slots import SlotRules

BucketKey = tuple[str, str, str, int]  # campaign, slot, segment, minute (epoch seconds)
TopicPartition = tuple[str, int]


class BucketRow(NamedTuple):
    """One bucket's full state to land (a tuple: the worker makes one per changed bucket per batch)."""

    campaign: str
    slot: str
    segment: str
    minute: int
    counters: tuple[float, ...]
    version: int


class DirtyBuckets:
    """The full state of the buckets changed in a batch, stamped with one version, as columns:
    the keys' four, and the counters as one matrix (a row per bucket, a column per COUNTERS
    name). Landing writes them as they are, without an object per bucket."""

    __slots__ = ("campaigns", "slots", "segments", "minutes", "counters", "version")

    def __init__(
        self,
        campaigns: list[str],
        slots: list[str],
        segments: list[str],
        minutes: list[int],
        counters: np.ndarray,
        version: int,
    ):
        self.campaigns, self.slots, self.segments, self.minutes = campaigns, slots, segments, minutes
        self.counters = counters
        self.version = version

    @property
    def keys(self) -> list[BucketKey]:
        return list(zip(self.campaigns, self.slots, self.segments, self.minutes))

    @classmethod
    def of(cls, rows: Iterable[BucketRow]) -> DirtyBuckets:
        """Buckets given row by row (tests and tools), all of one version."""
        rows = list(rows)
        versions = {row.version for row in rows}
        if len(versions) > 1:
            raise ValueError(f"one landing is one version; these rows carry {sorted(versions)}")
        return cls(
            [row.campaign for row in rows],
            [row.slot for row in rows],
            [row.segment for row in rows],
            [row.minute for row in rows],
            cls.matrix([row.counters for row in rows]),
            versions.pop() if versions else time.time_ns(),
        )

    @staticmethod
    def matrix(counters: list) -> np.ndarray:
        """Rows of counters (COUNTERS order) as one float matrix, (0, 7) when there are none."""
        return np.array(counters, dtype=np.float64).reshape(len(counters), len(COUNTERS))

    def __len__(self) -> int:
        return len(self.campaigns)

    def __iter__(self) -> Iterator[BucketRow]:
        for key, counters in zip(self.keys, self.counters.tolist()):
            yield BucketRow(*key, tuple(counters), self.version)


@dataclass(frozen=True)
class Violation:
    """A dial placed to a customer who was already on the stop list."""

    attempt: CallAttempt
    dialed_at: datetime
    entry: StopListEntry


@dataclass(frozen=True)
class CallingHoursViolation:
    """A call placed outside the called person's allowed local hours (its campaign's profile)."""

    attempt: CallAttempt
    dialed_at: datetime  # UTC
    local_dialed_at: datetime  # the same moment on the callee's clock (attempt.callee_timezone)
    profile: str  # the [calling_hours] profile in force
    allowed_from: str  # "HH:MM", local
    allowed_until: str


@dataclass(frozen=True)
class StopListChange:
    """A flag or a removal read from the topic, as it lands in the warehouse's stop_list table."""

    entry: StopListEntry  # the flag; for a removal, the flag it took away
    removed_at: datetime | None = None  # when the customer was taken off the list; None while flagged


@dataclass
class CountedAttempts:
    """The attempts a batch counted, each with the time slot and the cost counting gave it
    (three parallel lists). Landing writes the slot and cost as counted, so each is worked
    out once, by the same definitions the minute buckets summed."""

    attempts: list[CallAttempt] = field(default_factory=list)
    slots: list[str] = field(default_factory=list)
    costs: list[float] = field(default_factory=list)

    def add(self, attempt: CallAttempt, slot: str, cost: float) -> None:
        self.attempts.append(attempt)
        self.slots.append(slot)
        self.costs.append(cost)

    def __len__(self) -> int:
        return len(self.attempts)

    @classmethod
    def priced(
        cls, attempts: Iterable[CallAttempt], slot_rules: SlotRules, cost_model_for: Callable[[str], CostModel]
    ) -> CountedAttempts:
        """Attempts given their slot and cost by counting's definitions: for tools and tests
        that land calls they did not count through the minute buckets."""
        counted = cls()
        for attempt in attempts:
            minute = int(attempt.event_time.timestamp() // 60) * 60
            counted.add(
                attempt, slot_rules.slot_for_minute(minute), attempt_cost(attempt, cost_model_for(attempt.campaign))
            )
        return counted


@dataclass
class LandingBatch:
    """Everything one worker batch lands, handed from the worker to landing in one value.
    Every field defaults to empty, so a tool or test fills only what it lands."""

    counted: CountedAttempts = field(default_factory=CountedAttempts)  # newly counted: call_attempts
    buckets: DirtyBuckets | None = None  # changed buckets, full state: minute_metrics
    dead_letters: list[DeadLetter] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)  # dials to stop-listed customers
    # Calls placed outside the callee's allowed local hours: calling_hours_violations.
    calling_hours_violations: list[CallingHoursViolation] = field(default_factory=list)
    late_events: list[CallAttempt] = field(default_factory=list)  # settled as late: dead-lettered and reported
    stop_list_changes: list[StopListChange] = field(default_factory=list)  # read for this batch
    # Agent minutes and statuses, dialer snapshots: agent_minutes, agent_status, dialer_snapshots.
    floor: FloorChanges | None = None
    offsets: dict[TopicPartition, int] = field(default_factory=dict)  # each partition's next offset

    @property
    def attempts(self) -> list[CallAttempt]:
        return self.counted.attempts


@dataclass
class FloorChanges:
    """What the floor changed in a batch, to land beside the call buckets, all of one version:
    agent minutes in full (campaign, team, agent, minute epoch s, AGENT_COUNTERS values, the
    agent's accounted_until epoch s), agent statuses (agent, campaign, team, state, state_since,
    last_event_time, epoch s), the batch's dialer_state snapshots as they came, and the line-up
    of each campaign whose logged-in agents changed (campaign, agents, their states, their
    newest event times epoch s), whole."""

    minutes: list[tuple] = field(default_factory=list)
    statuses: list[tuple] = field(default_factory=list)
    snapshots: list[DialerState] = field(default_factory=list)
    version: int = 0
    lineups: list[tuple] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.minutes) + len(self.statuses) + len(self.snapshots) + len(self.lineups)
