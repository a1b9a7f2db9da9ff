"""What the worker hands to landing: the changed minute buckets, the stop-list violations and
changes it found. Plain data, so the warehouse reads them without importing the worker."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Iterator, NamedTuple

import numpy as np

from core.metrics import COUNTERS
from core.schema import CallAttempt, StopListEntry

BucketKey = tuple[str, str, str, int]  # campaign, slot, segment, minute (epoch seconds)


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
    name). Landing writes them as they are; one object per bucket cost more than counting."""

    __slots__ = ("campaigns", "slots", "segments", "minutes", "counters", "version")

    def __init__(self, campaigns: list[str], slots: list[str], segments: list[str], minutes: list[int],
                 counters: np.ndarray, version: int):
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
        columns = [list(column) for column in zip(*(row[:4] for row in rows))] if rows else [[], [], [], []]
        return cls(*columns, cls.matrix([row.counters for row in rows]), versions.pop() if versions else time.time_ns())

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
class StopListChange:
    """A flag or a removal read from the topic, as it lands in the warehouse's stop_list table."""

    entry: StopListEntry               # the flag; for a removal, the flag it took away
    removed_at: datetime | None = None  # when the customer was taken off the list; None while flagged
