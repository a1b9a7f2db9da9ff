"""Where the worker stands in each partition: the next offset it has to process.

Faust's own bookkeeping cannot be trusted for exactness. On a rebalance it clears
the agent's buffers while the fetcher carries on past the dropped records, and its
commit logic can treat the hole as done. So the worker keeps its own cursor: a
record is processed only if its offset is exactly the next one due in its
partition. Anything before it was processed already (a re-read); anything after it
means records were skipped upstream, and the worker seeks back to fetch them again.

The cursor starts from ``consumed_offsets`` in the warehouse, which lands together
with the data, so a restart resumes exactly where the warehouse stands.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from enum import Enum

TopicPartition = tuple[str, int]

# How long a seek back may take to show its first record before it is issued again.
REWIND_RETRY_S = 5.0


class Position(Enum):
    DUE = "due"  # exactly the next offset: process it
    SEEN = "seen"  # before the next offset: already processed, a re-read
    AHEAD = "ahead"  # past the next offset: the records in between went missing
    UNKNOWN = "unknown"  # no starting offset for this partition yet


class PartitionCursor:
    def __init__(self) -> None:
        self.next_offsets: dict[TopicPartition, int] = {}
        self.unlanded: dict[TopicPartition, int] = {}  # moved since the last landing
        self._rewinds: dict[TopicPartition, tuple[int, float]] = {}

    def start(self, starts: Mapping[TopicPartition, int]) -> None:
        """Set where partitions start; partitions already being read keep their place."""
        for tp, offset in starts.items():
            self.next_offsets.setdefault(tp, offset)

    def jump(self, tp: TopicPartition, offset: int) -> None:
        """Move past records that no longer exist (expired by retention)."""
        self.next_offsets[tp] = offset
        self.unlanded[tp] = offset

    def keep_only(self, partitions: Iterable[TopicPartition]) -> None:
        """After a rebalance: forget partitions now owned by another worker."""
        keep = set(partitions)
        for tp in [tp for tp in self.next_offsets if tp not in keep]:
            del self.next_offsets[tp]
            self.unlanded.pop(tp, None)
            self._rewinds.pop(tp, None)

    def place(self, tp: TopicPartition, offset: int) -> Position:
        expected = self.next_offsets.get(tp)
        if expected is None:
            return Position.UNKNOWN
        if offset == expected:
            self.next_offsets[tp] = offset + 1
            self.unlanded[tp] = offset + 1
            self._rewinds.pop(tp, None)
            return Position.DUE
        return Position.SEEN if offset < expected else Position.AHEAD

    def rewind_to(self, tp: TopicPartition, now: float | None = None) -> int | None:
        """The offset to seek ``tp`` back to, or None if that seek is already under way."""
        now = time.monotonic() if now is None else now
        target = self.next_offsets[tp]
        previous = self._rewinds.get(tp)
        if previous is not None and previous[0] == target and now - previous[1] < REWIND_RETRY_S:
            return None
        self._rewinds[tp] = (target, now)
        return target

    def take_unlanded(self) -> dict[TopicPartition, int]:
        moved, self.unlanded = self.unlanded, {}
        return moved
