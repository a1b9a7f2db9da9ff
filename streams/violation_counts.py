"""The landed violations of one count-in-a-window rule (stop_list_violation, calling_hours_violation),
held per campaign for the rule's window, so each reading counts them from memory.

Counting them with a warehouse query read the campaign's whole history of violations at every
reading (the tables are ordered by campaign and event id, not time), which grew without bound
while a dialer kept violating. The worker lands every violation itself, so it can keep them:
note() what a batch landed, count() at each reading. A restart fills the memory once from the
warehouse (fill(); see the query newest_violations); with several workers, a rebalance forgets
the campaigns of the partitions it took away (keep_only()) and fills those of the partitions it
brought, as their previous owner landed them.

Each campaign's violations are kept in event-time minutes, an event id as its 64-bit string
hash (within this process) next to its event time in numpy arrays: 16 bytes a violation, so
an hour of a dialer violating at every one of 500 calls a second holds about 30 MB. Two ids
sharing a hash would count once: for a million violations in a window, about one chance in
thirty million.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import numpy as np


class _Minute:
    """One event-time minute's violations: hashes sorted, event times (epoch s) alongside."""

    __slots__ = ("hashes", "times")

    def __init__(self) -> None:
        self.hashes = np.empty(0, dtype=np.int64)
        self.times = np.empty(0, dtype=np.float64)

    def add(self, hashes: np.ndarray, times: np.ndarray) -> None:
        """Add those not held yet: a replayed batch finds the same violations again."""
        if len(self.hashes):
            new = ~np.isin(hashes, self.hashes, assume_unique=True)
            hashes, times = hashes[new], times[new]
            if not len(hashes):
                return
            hashes = np.concatenate((self.hashes, hashes))
            times = np.concatenate((self.times, times))
        order = np.argsort(hashes, kind="stable")
        self.hashes, self.times = hashes[order], times[order]

    def count_within(self, since: float, until: float) -> int:
        return int(np.count_nonzero((self.times > since) & (self.times <= until)))


class RecentViolations:
    """One rule's violations per campaign, each event id once, pruned to the window of the
    campaign's newest reading."""

    def __init__(self) -> None:
        self._campaigns: dict[str, dict[int, _Minute]] = {}

    def note(self, campaign: str, violations: Mapping[str, float]) -> None:
        """Hold a campaign's landed violations (event id -> event time, epoch s)."""
        by_minute: dict[int, tuple[list[int], list[float]]] = {}
        for event_id, event_time in violations.items():
            hashes, times = by_minute.setdefault(int(event_time // 60), ([], []))
            hashes.append(hash(event_id))
            times.append(event_time)
        minutes = self._campaigns.setdefault(campaign, {})
        for minute, (hashes, times) in by_minute.items():
            unique, first = np.unique(np.array(hashes, dtype=np.int64), return_index=True)
            minutes.setdefault(minute, _Minute()).add(unique, np.array(times, dtype=np.float64)[first])

    def count(self, campaign: str, at: float, window_seconds: float, batch: Mapping[str, float]) -> int:
        """The campaign's violations with event time in (at - window, at], plus the batch's own
        ones (event id -> event time) however late: a late violation still counts once, in the
        reading of the batch that found it. Forgets the violations before the window."""
        since = at - window_seconds
        minutes = self._campaigns.get(campaign, {})
        for minute in [minute for minute in minutes if (minute + 1) * 60 <= since]:
            del minutes[minute]
        held = 0
        for minute, violations in minutes.items():
            start = minute * 60
            if start > since and start + 60 <= at:
                held += len(violations.hashes)
            elif start <= at:
                held += violations.count_within(since, at)
        return held + sum(1 for event_time in batch.values() if not since < event_time <= at)

    def fill(self, rows: Iterable[tuple[str, str, float]]) -> int:
        """Hold landed violations read back from the warehouse: (campaign, event id, event time)."""
        by_campaign: dict[str, dict[str, float]] = {}
        for campaign, event_id, event_time in rows:
            by_campaign.setdefault(campaign, {})[event_id] = event_time
        for campaign, violations in by_campaign.items():
            self.note(campaign, violations)
        return sum(len(violations) for violations in by_campaign.values())

    def keep_only(self, owns: Callable[[str], bool]) -> int:
        """Forget the campaigns ``owns`` says are not this worker's; returns how many violations
        were forgotten."""
        gone = [campaign for campaign in self._campaigns if not owns(campaign)]
        forgotten = 0
        for campaign in gone:
            forgotten += sum(len(minute.hashes) for minute in self._campaigns.pop(campaign).values())
        return forgotten

    def held(self) -> int:
        """How many violations are held, over all campaigns."""
        return sum(len(minute.hashes) for minutes in self._campaigns.values() for minute in minutes.values())
