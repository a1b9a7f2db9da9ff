"""Minute buckets: the worker's live state, one bucket per (campaign, slot, segment, minute).

For each call in the stream we find its campaign's minute bucket by *event* time and
add the call's counters, unless the bucket has already counted that event id.

Exactness across restarts does not rely on Faust's at-least-once delivery: every
counted event lands in ``call_attempts`` before its offset is committed, and on
start the open buckets are rebuilt from those landed rows, event ids included. A
replayed event then finds its id already in its bucket and counts once.
"""

from __future__ import annotations

import time
from enum import Enum
from typing import Iterable, Iterator, NamedTuple

import numpy as np

from callpulse.config import Settings
from callpulse.metrics import COUNTERS, attempt_counters, counters_for
from callpulse.schema import CallAttempt
from callpulse.slots import SlotRules

BucketKey = tuple[str, str, str, int]  # campaign, slot, segment, minute (epoch seconds)


def longest_alert_window_minutes(settings: Settings) -> int:
    rules = [settings.alert_rules_for(campaign) for campaign in settings.alerts.rules]
    return max(max(r.abandon_window_minutes, r.cpo_window_minutes) for r in rules)


class Verdict(Enum):
    COUNTED = "counted"
    DUPLICATE = "duplicate"
    LATE = "late"


class Bucket:
    """One bucket's counters and the ids it counted (a plain slotted class: hundreds of
    thousands live at once, and dataclass default factories cost a call each)."""

    __slots__ = ("counters", "event_ids")

    def __init__(self) -> None:
        self.counters = [0.0] * len(COUNTERS)
        self.event_ids: set[str] = set()


class BucketRow(NamedTuple):
    """One bucket's full state to land (a tuple: the worker makes one per changed bucket per batch)."""

    campaign: str
    slot: str
    segment: str
    minute: int
    counters: tuple[float, ...]
    version: int


class DirtyBuckets:
    """The full state of the buckets changed in a batch, stamped with one version: the keys,
    and their counters as one matrix (a row per key, a column per COUNTERS name). Landing
    writes the matrix's columns as they are; one object per bucket cost more than counting."""

    __slots__ = ("keys", "counters", "version")

    def __init__(self, keys: list[BucketKey], counters: np.ndarray, version: int):
        self.keys = keys
        self.counters = counters
        self.version = version

    @classmethod
    def of(cls, rows: Iterable[BucketRow]) -> DirtyBuckets:
        """Buckets given row by row (tests and tools), all of one version."""
        rows = list(rows)
        versions = {row.version for row in rows}
        if len(versions) > 1:
            raise ValueError(f"one landing is one version; these rows carry {sorted(versions)}")
        return cls([tuple(row[:4]) for row in rows], cls.matrix([row.counters for row in rows]),
                   versions.pop() if versions else time.time_ns())

    @staticmethod
    def matrix(counters: list) -> np.ndarray:
        """Rows of counters (COUNTERS order) as one float matrix, (0, 7) when there are none."""
        return np.array(counters, dtype=np.float64).reshape(len(counters), len(COUNTERS))

    def __len__(self) -> int:
        return len(self.keys)

    def __iter__(self) -> Iterator[BucketRow]:
        for key, counters in zip(self.keys, self.counters.tolist()):
            yield BucketRow(*key, tuple(counters), self.version)


class MinuteBuckets:
    def __init__(self, settings: Settings, slot_rules: SlotRules):
        self.settings = settings
        self.slot_rules = slot_rules
        self.lateness = settings.pipeline.allowed_lateness_seconds
        # Buckets stay in memory for the lateness window, or longer where a live alert
        # window needs them (alert rules read their windows from here).
        self.keep_seconds = max(self.lateness, 60 * longest_alert_window_minutes(settings))
        self.buckets: dict[BucketKey, Bucket] = {}
        # Counters summed over slots and segments, per campaign and minute: alert windows
        # are read per campaign at every minute boundary, and summing them from the buckets
        # (every campaign's, at first) was most of the worker's time.
        self.minute_totals: dict[str, dict[int, list[float]]] = {}
        # The bucket keys of each campaign minute, so eviction visits only what it removes
        # (scanning every bucket after every batch was a tenth of the worker's time).
        self._keys_in_minute: dict[tuple[str, int], list[BucketKey]] = {}
        self._moved: set[str] = set()  # campaigns whose watermark moved since the last eviction
        # Running window sums per campaign and window length: [first minute, totals]. A
        # backlog moves a campaign's minute at almost every event, and re-summing up to
        # an hour of minutes at each one was the worker's biggest cost.
        self._windows: dict[str, dict[int, list]] = {}
        self.watermarks: dict[str, float] = {}  # campaign -> newest event time seen (epoch s)
        self.dirty: set[BucketKey] = set()

    def key_for(self, campaign: str, segment: str, epoch: float) -> BucketKey:
        minute = int(epoch // 60) * 60
        return (campaign, self.slot_rules.slot_for_minute(minute), segment, minute)

    def add(self, attempt: CallAttempt) -> Verdict:
        epoch = attempt.event_time.timestamp()
        campaign = attempt.campaign
        watermark = self.watermarks.get(campaign, epoch)
        key = self.key_for(campaign, attempt.lead.segment, epoch)
        bucket = self.buckets.get(key)
        if bucket is not None and attempt.event_id in bucket.event_ids:
            return Verdict.DUPLICATE
        if epoch < watermark - self.lateness:
            return Verdict.LATE
        if bucket is None:
            bucket = self._new_bucket(key)
        model = self.settings.cost_model_for(campaign)
        self._count(key, bucket, attempt.event_id, attempt_counters(attempt, model))
        self.dirty.add(key)
        if epoch > watermark or campaign not in self.watermarks:
            self.watermarks[campaign] = max(epoch, watermark)
            self._moved.add(campaign)
        return Verdict.COUNTED

    def _new_bucket(self, key: BucketKey) -> Bucket:
        bucket = self.buckets[key] = Bucket()
        campaign_minute = (key[0], key[3])
        keys = self._keys_in_minute.get(campaign_minute)
        if keys is None:
            self.minute_totals.setdefault(key[0], {})[key[3]] = [0.0] * len(COUNTERS)
            self._keys_in_minute[campaign_minute] = [key]
        else:
            keys.append(key)
        return bucket

    def _count(self, key: BucketKey, bucket: Bucket, event_id: str, increments: Iterable[float]) -> None:
        bucket.event_ids.add(event_id)
        counters = bucket.counters
        totals = self.minute_totals[key[0]][key[3]]
        windows = [window[1] for window in self._windows.get(key[0], {}).values() if key[3] >= window[0]]
        for index, value in enumerate(increments):
            if not value:  # most counters of most calls: a dial that nobody answered adds to two of seven
                continue
            counters[index] += value
            totals[index] += value
            for window_totals in windows:
                window_totals[index] += value

    def restore(self, landed_attempts: Iterable[tuple]) -> int:
        """Rebuild buckets from landed rows (event_id, campaign, segment, epoch, outcome,
        is_order, cost, talk_seconds); every restored bucket is re-landed."""
        restored = 0
        for event_id, campaign, segment, epoch, outcome, is_order, cost, talk_seconds in landed_attempts:
            key = self.key_for(campaign, segment, epoch)
            bucket = self.buckets.get(key) or self._new_bucket(key)
            if event_id in bucket.event_ids:
                continue  # the same event landed twice before a merge; count it once
            self._count(key, bucket, event_id, counters_for(outcome, is_order, cost, talk_seconds))
            self.dirty.add(key)
            self.watermarks[campaign] = max(self.watermarks.get(campaign, epoch), epoch)
            self._moved.add(campaign)
            restored += 1
        return restored

    def take_dirty(self) -> DirtyBuckets:
        """The full state of every bucket changed since the last call, stamped with a version
        (a copy: the live counters go on changing)."""
        keys = list(self.dirty)
        buckets = self.buckets
        counters = DirtyBuckets.matrix([buckets[key].counters for key in keys])
        self.dirty = set()
        return DirtyBuckets(keys, counters, time.time_ns())

    def window_totals(self, campaign: str, first_minute: int) -> dict[str, float]:
        """Summed counters of a campaign's buckets from ``first_minute`` (epoch s) on."""
        return dict(zip(COUNTERS, self._sum_from(campaign, first_minute)))

    def _sum_from(self, campaign: str, first_minute: int) -> list[float]:
        totals = [0.0] * len(COUNTERS)
        for minute, minute_totals in self.minute_totals.get(campaign, {}).items():
            if minute >= first_minute:
                for index, value in enumerate(minute_totals):
                    totals[index] += value
        return totals

    def kept_totals(self, campaign: str) -> list[float]:
        """Counters summed over every minute kept for ``campaign``: a bound on any window's."""
        return self.window_sums(campaign, 0, -1)  # a "window" that starts before every minute

    def window_sums(self, campaign: str, minutes: int, first_minute: int) -> list[float]:
        """window_totals() for a window ``minutes`` long, kept running: moving the window
        forward subtracts the minutes it leaves; every count adds to the windows it falls in.
        Read only; the list is the live state."""
        windows = self._windows.setdefault(campaign, {})
        window = windows.get(minutes)
        if (window is None or first_minute < window[0]
                or (first_minute - window[0]) // 60 > len(self.minute_totals.get(campaign, ()))):  # a long gap
            windows[minutes] = window = [first_minute, self._sum_from(campaign, first_minute)]
        elif first_minute > window[0]:
            kept = self.minute_totals.get(campaign, {})
            totals = window[1]
            for minute in range(window[0], first_minute, 60):
                leaving = kept.get(minute)
                if leaving is not None:
                    for index, value in enumerate(leaving):
                        totals[index] -= value
            window[0] = first_minute
            if not totals[0]:  # no dials left: start again from exact zeros, not rounding residue
                window[1] = [0.0] * len(COUNTERS)
        return window[1]

    def evict_closed(self) -> int:
        """Forget buckets no event can reach and no alert window reads any more.

        Their final state is already landed, so memory stays bounded by that horizon
        whatever the run length. Only campaigns whose watermark moved can have minutes
        newly past it.
        """
        evicted = 0
        unfinished = set()  # campaigns with changed buckets past the horizon: evicted once landed
        buckets, dirty, keys_in_minute = self.buckets, self.dirty, self._keys_in_minute
        for campaign in self._moved:
            campaign_totals = self.minute_totals.get(campaign)
            if campaign_totals is None:
                continue
            horizon = self.watermarks[campaign] - self.keep_seconds
            windows = self._windows.get(campaign, {}).values()
            for minute in [minute for minute in campaign_totals if minute + 60 <= horizon]:
                keys = keys_in_minute.pop((campaign, minute))
                kept = [key for key in keys if key in dirty] if dirty else None  # changed, not yet landed
                if kept:
                    keys_in_minute[(campaign, minute)] = kept
                    unfinished.add(campaign)
                    keys = [key for key in keys if key not in dirty]
                for key in keys:
                    del buckets[key]
                evicted += len(keys)
                if kept:
                    continue
                leaving = campaign_totals.pop(minute)
                for window in windows:
                    if minute >= window[0]:  # a window left behind by a campaign gone quiet
                        totals = window[1]
                        for index, value in enumerate(leaving):
                            if value:
                                totals[index] -= value
            if not campaign_totals:
                del self.minute_totals[campaign]
                self._windows.pop(campaign, None)
        self._moved = unfinished
        return evicted
