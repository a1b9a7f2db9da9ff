"""The worker's long memory of event ids: which ids it may have counted within the duplicate
horizon (pipeline.duplicate_horizon_hours, by the call's own time).

The minute buckets remember the ids they counted, and what each stood for, only for the
lateness window (10 minutes by default); an event older than that is late and looked up in the
warehouse anyway. An id re-sent later than the window with a *current* time is not late, so
without this memory it would be counted a second time. Here each id is kept as a bit pattern
in a Bloom filter (rbloom): it answers "certainly never counted" or "may have been counted", in
about 1.2 bytes an id at a 1 % false-positive rate. "May have been" is settled against the
warehouse (checkpoint step 1); a false positive costs one lookup, never a lost or a double count.

The filter is split into generations by the call's time, each covering a quarter of the
horizon, so old ids leave a whole generation at a time and memory stays bounded: at most
GENERATIONS_PER_HORIZON + 2 generations live at once (the horizon, the part-filled newest,
and one ahead of the clock for calls stamped a little in the future; a call stamped further
ahead is not remembered).

An id is remembered by id_key(), a 64-bit xxHash64 of its UTF-8 bytes, the same figure
ClickHouse's ``xxHash64(event_id)`` gives, so the warehouse hashes the ids for a start's
rebuild and sends 8 bytes an id instead of the id.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable

from rbloom import Bloom
from xxhash import xxh64_intdigest

log = logging.getLogger("callpulse.worker")

# How many generations the horizon is split into: more cost a membership test each, fewer
# keep more ids past the horizon (a generation leaves only once all of it is past).
GENERATIONS_PER_HORIZON = 4
# Per generation. The filter's memory grows with log(1/rate); its lookups with the rate.
FALSE_POSITIVE_RATE = 0.01
# A start's rebuild logs how far it has got this often.
REBUILD_PROGRESS_SECONDS = 5.0


def id_key(event_id: str) -> int:
    """An event id as the long memory and the warehouse's rebuild query both hash it."""
    return xxh64_intdigest(event_id.encode())


class _Generation:
    """The ids of calls whose time falls in one span of the horizon."""

    __slots__ = ("index", "filter", "added")

    def __init__(self, index: int, capacity: int) -> None:
        self.index = index  # floor(call epoch / span)
        self.filter = Bloom(capacity, FALSE_POSITIVE_RATE)
        self.added = 0  # ids added: each id counts once, so about the ids it holds


class SeenIds:
    """The event ids counted within the duplicate horizon, as a rotating set of Bloom filters.

    ``ids_per_hour`` sizes each generation: a generation holding more ids than that still
    works, at a higher false-positive rate (more lookups); the log says so once."""

    def __init__(self, horizon_hours: float, ids_per_hour: int) -> None:
        self.horizon_seconds = horizon_hours * 3600.0
        # Whole minutes: a call's generation by its time and by its landed minute (a start's
        # rebuild) are then the same, and so are the hours a lookup searches.
        self.span_seconds = float(max(60, int(self.horizon_seconds / GENERATIONS_PER_HORIZON // 60 * 60)))
        self.capacity = max(1, math.ceil(ids_per_hour * self.span_seconds / 3600.0))
        self.ids_per_hour = ids_per_hour
        self.generations: list[_Generation] = []  # oldest first
        self._overfull: set[int] = set()  # generations the log has said are over capacity
        now = time.time()
        self._oldest_index = self._index(now - self.horizon_seconds)
        # The newest generation a call may fall in: the clock's, or the next for a call stamped a
        # little ahead. A call further ahead is not remembered (the worker refuses those anyway),
        # so a tool counting simulated days to come does not make a generation a day.
        self._newest_index = self._index(now) + 1

    def _index(self, epoch: float) -> int:
        return int(epoch // self.span_seconds)

    def __contains__(self, key: int) -> bool:
        """Whether the id (its id_key) may have been counted within the horizon."""
        for generation in self.generations:
            if key in generation.filter:
                return True
        return False

    def add(self, key: int, epoch: float) -> None:
        """Remember an id counted for a call at ``epoch``; a call older than the horizon, or more
        than a generation ahead of the clock, is not remembered."""
        index = int(epoch // self.span_seconds)  # self._index(), inline: this runs for every counted call
        if index < self._oldest_index:
            return
        if index > self._newest_index:
            self._newest_index = max(self._newest_index, self._index(time.time()) + 1)
            if index > self._newest_index:
                return
        generations = self.generations
        generation = generations[-1] if generations else None
        if generation is None or generation.index != index:
            generation = self._generation(index)
        generation.filter.add(key)
        generation.added += 1

    def add_many(self, keys: list[int], index: int) -> None:
        """Remember many ids of calls in generation ``index`` at once (a start's rebuild)."""
        if index < self._oldest_index:
            return
        generation = self._generation(index)
        generation.filter.update(keys)
        generation.added += len(keys)

    def rebuild(self, landed: Iterable[tuple[int, list[int]]]) -> int:
        """Remember the ids landed within the horizon (warehouse.queries.recovery.landed_id_keys);
        how many. A long rebuild says in the log how far it has got."""
        started = time.monotonic()
        said_at = started
        remembered = 0
        for index, keys in landed:
            self.add_many(keys, index)
            remembered += len(keys)
            if time.monotonic() - said_at >= REBUILD_PROGRESS_SECONDS:
                said_at = time.monotonic()
                log.info(
                    "remembering landed event ids: %d so far (%.0f s); the worker starts counting after",
                    remembered,
                    said_at - started,
                )
        self.rotate()
        return remembered

    def remember(self, landed: Iterable[tuple[int, list[int]]]) -> int:
        """Remember the landed ids of the campaigns a rebalance brought (landed_id_keys_of): those a
        generation may hold already (the worker owned the campaign before, or a false positive) are
        not added again, so a partition moving back and forth does not count its ids twice against
        a generation's capacity. How many were added."""
        added = 0
        for index, keys in landed:
            if index < self._oldest_index:
                continue
            held = self._generation(index).filter
            new = [key for key in keys if key not in held]
            self.add_many(new, index)
            added += len(new)
        self._check_capacity()
        return added

    def _generation(self, index: int) -> _Generation:
        for generation in self.generations:
            if generation.index == index:
                return generation
        generation = _Generation(index, self.capacity)
        self.generations.append(generation)
        self.generations.sort(key=lambda kept: kept.index)
        return generation

    def _check_capacity(self) -> None:
        """Say once when a generation holds more ids than it was sized for."""
        for generation in self.generations:
            if generation.added > self.capacity and generation.index not in self._overfull:
                self._overfull.add(generation.index)
                log.warning(
                    "the duplicate memory holds %d ids for %g h of calls, more than "
                    "pipeline.duplicate_horizon_calls_per_hour (%d) sizes it for: more new calls are looked "
                    "up in the warehouse before they count",
                    generation.added,
                    self.span_seconds / 3600.0,
                    self.ids_per_hour,
                )

    def rotate(self, now: float | None = None) -> int:
        """Drop the generations wholly past the horizon; how many went. Called after each landed
        batch: the newest generation is the one added to, and re-checked for its size here."""
        now = time.time() if now is None else now
        self._oldest_index = self._index(now - self.horizon_seconds)
        self._newest_index = self._index(now) + 1
        before = len(self.generations)
        self.generations = [kept for kept in self.generations if kept.index >= self._oldest_index]
        self._overfull = {index for index in self._overfull if index >= self._oldest_index}
        self._check_capacity()
        return before - len(self.generations)

    def times_holding(self, keys: Iterable[int]) -> list[tuple[float, float]]:
        """The spans of call time (epoch s, start inclusive, end exclusive, in order, adjacent ones
        merged) of the generations that may hold any of these ids: where in the warehouse a
        lookup of them needs to search."""
        indexes = sorted(
            {generation.index for key in keys for generation in self.generations if key in generation.filter}
        )
        spans: list[tuple[float, float]] = []
        for index in indexes:
            start, end = index * self.span_seconds, (index + 1) * self.span_seconds
            if spans and spans[-1][1] == start:
                spans[-1] = (spans[-1][0], end)
            else:
                spans.append((start, end))
        return spans

    def first_remembered(self) -> float:
        """The earliest call time (epoch s) whose id may still be remembered: a lookup of an id
        the memory knows needs to search no further back in the warehouse."""
        return self._oldest_index * self.span_seconds

    def held(self) -> dict[str, int]:
        """For /health: generations alive, ids added to them, and their bytes."""
        return {
            "generations": len(self.generations),
            "ids": sum(kept.added for kept in self.generations),
            "id_bytes": sum(kept.filter.size_in_bits // 8 for kept in self.generations),
        }
