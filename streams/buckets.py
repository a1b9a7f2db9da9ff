"""Minute buckets: the worker's live state, one bucket per (campaign, slot, segment, minute).

For each call in the stream we find its campaign's minute bucket by *event* time and
add the call's counters, unless that campaign minute has already counted the event id
(an id names one call, so its replay falls in the same minute).

Exactness across restarts does not rely on Faust's at-least-once delivery: every
counted event lands in ``call_attempts`` before its offset is committed, and on
start the open buckets are rebuilt from those landed rows, event ids included. A
replayed event then finds its id already in its minute and counts once.

Past the lateness window an id is kept only in the long memory of ids (streams/seen_ids.py,
rebuilt from the warehouse on start): a call it may hold is HELD and looked up in the
warehouse before it counts, so an id re-sent hours later with a current time counts once too.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from enum import Enum
from operator import sub

from core.config import Settings
from core.handoff import BucketKey, CountedAttempts, DirtyBuckets
from core.metrics import COUNTERS, attempt_cost, counter_increments
from core.schema import CallAttempt
from core.slots import SlotRules
from streams.seen_ids import SeenIds, id_key


def longest_alert_window_minutes(settings: Settings) -> int:
    rules = [settings.alert_rules_for(campaign) for campaign in settings.alerts.rules]
    return max(max(r.abandon_window_minutes, r.cpo_window_minutes, r.abandon_evidence_minutes) for r in rules)


class Verdict(Enum):
    COUNTED = "counted"
    DUPLICATE = "duplicate"  # the same call again: counted once
    CONFLICT = "conflict"  # an id already counted for a different call: never counted again
    LATE = "late"
    # Not counted in the lateness window, but the long memory of ids (SeenIds) may hold it: held
    # until the warehouse says whether it landed (a duplicate or a conflict) or not (counted).
    HELD = "held"


def call_fingerprint(
    campaign: str, event_ms: int, outcome: str, is_order: bool, talk_seconds: float, segment: str
) -> int:
    """What an event id stands for: one call's campaign, time (to the millisecond the warehouse
    keeps), outcome, order, talk time and segment. A replay carries the same; a re-send with
    other content under the same id does not, and is refused rather than counted again."""
    return hash((campaign, event_ms, outcome, bool(is_order), float(talk_seconds), segment))


def attempt_fingerprint(attempt: CallAttempt) -> int:
    moment = attempt.event_time
    event_ms = (math.floor(moment.timestamp()) * 1_000_000 + moment.microsecond) // 1000
    return call_fingerprint(
        attempt.campaign, event_ms, attempt.outcome.value, attempt.order, attempt.talk_seconds, attempt.lead.segment
    )


class CampaignMinute:
    """One campaign's minute: its buckets, one counter list per segment (the slot follows
    from the minute), their totals, and the keys (seen_ids.id_key: a 64-bit hash, an int rather
    than the string; a collision among the ids of one lateness window is about as likely as 1 in
    10^8) of the event ids counted in it, until
    the minute passes the lateness window. A plain slotted class, not a dataclass: tens of
    thousands live at once.

    While the minute holds one segment, its totals are that segment's counter list itself:
    most minutes of a big, thin campaign list hold one call, and a second list for them
    cost an allocation per minute and a second addition per call."""

    __slots__ = ("campaign", "minute", "slot", "segments", "totals", "event_ids", "changed")

    def __init__(self, campaign: str, minute: int, slot: str) -> None:
        self.campaign = campaign
        self.minute = minute
        self.slot = slot
        self.segments: dict[str, list[float]] = {}
        self.totals = [0.0] * len(COUNTERS)  # the first segment's counters, until a second one comes
        self.event_ids: list[int] = []  # their id_key()s; emptied once the minute is past lateness
        # Counted into since its buckets last landed. The whole minute lands again, not only the
        # segments that changed: a full state re-landed is harmless, and a set per minute was not.
        self.changed = False

    def key(self, segment: str) -> BucketKey:
        return (self.campaign, self.slot, segment, self.minute)


def _take_away(totals: list[float], leaving: list[float]) -> None:
    """Subtract a minute's totals, or several minutes' summed, from a window's, in place (the
    window's list is live state). In C, column by column: subtracting a zero leaves a float
    exactly as it was."""
    totals[:] = map(sub, totals, leaving)


class MinuteBuckets:
    def __init__(self, settings: Settings, slot_rules: SlotRules):
        self.settings = settings
        self.slot_rules = slot_rules
        self.lateness = settings.pipeline.allowed_lateness_seconds
        # The FTC's connect time, as the abandoned_ftc counter is counted (compliance.ftc_connect_seconds).
        self.ftc_connect_seconds = settings.compliance.ftc_connect_seconds
        # Buckets stay in memory for the lateness window, or longer where a live alert
        # window needs them (alert rules read their windows from here).
        self.keep_seconds = max(self.lateness, 60 * longest_alert_window_minutes(settings))
        # campaign -> minute (epoch s) -> its buckets. Grouped by campaign minute because
        # that is how everything reads them: the alert windows sum whole minutes, and
        # eviction drops whole minutes (one object, not a bucket at a time).
        self.minutes: dict[str, dict[int, CampaignMinute]] = {}
        self._changed: list[CampaignMinute] = []  # minutes with buckets not landed since they changed
        self._counted = CountedAttempts()  # attempts counted since the last take_counted(), to land
        self._moved: set[str] = set()  # campaigns whose watermark moved since the last eviction
        # Running window sums per campaign and window length: [first minute, totals]. A
        # backlog moves a campaign's minute at almost every event, so the windows are kept
        # running instead of re-summing up to an hour of minutes at each move.
        self._windows: dict[str, dict[int, list]] = {}
        # campaign -> newest event time seen (epoch s), but never ahead of the worker's clock.
        # A call may be stamped up to pipeline.max_future_seconds ahead and still count in its
        # own minute, but lateness is measured from no later than now: a call stamped ahead
        # (a dialer's wrong clock or zone) then never makes a correct call late that the
        # correct calls themselves would not have.
        self.watermarks: dict[str, float] = {}
        # id_key(event id) -> the fingerprint of the call it was counted for, whatever its campaign
        # or minute, while that minute is within the lateness window: a replay is a duplicate, a
        # re-send with other content a conflict. An event older than the window is late, and late
        # events are compared with what the warehouse landed (processor.resolve_late), so the
        # minutes kept longer for the alert windows need not remember their ids.
        self.fingerprints: dict[int, int] = {}
        # Every id counted within pipeline.duplicate_horizon_hours, beyond the lateness window:
        # an id it may hold is looked up in the warehouse before it counts (Verdict.HELD).
        self.seen_ids = SeenIds(
            settings.pipeline.duplicate_horizon_hours, settings.pipeline.duplicate_horizon_calls_per_hour
        )
        self._ceiling = self.watermark_ceiling()  # cached; read again only when an event reaches it

    @staticmethod
    def watermark_ceiling() -> float:
        """The furthest a watermark may be at this moment (epoch s): the worker's clock."""
        return time.time()

    def _clamped(self, epoch: float) -> float:
        """``epoch`` as a watermark: no further ahead than the clock allows. The cached ceiling
        only falls behind the true one, so the clock is read only when an event reaches it."""
        if epoch <= self._ceiling:
            return epoch
        self._ceiling = self.watermark_ceiling()
        return min(epoch, self._ceiling)

    def key_for(self, campaign: str, segment: str, epoch: float) -> BucketKey:
        minute = int(epoch // 60) * 60
        return (campaign, self.slot_rules.slot_for_minute(minute), segment, minute)

    def held(self) -> dict[str, int]:
        """How much the live state holds, each figure a len(): campaigns with minutes in memory,
        campaigns ever given a watermark, and event ids remembered for replays in the lateness
        window (the long memory of ids has its own, seen_ids.held()). The worker's
        /health shows it, so a long run can tell whether what it keeps grows or levels off."""
        return {
            "campaigns": len(self.minutes),
            "campaign_watermarks": len(self.watermarks),
            "event_ids": len(self.fingerprints),
        }

    @property
    def buckets(self) -> dict[BucketKey, list[float]]:
        """Every live bucket's counters by key (a new dict: for tests and tools, not the hot path)."""
        return {
            kept.key(segment): counters
            for minutes in self.minutes.values()
            for kept in minutes.values()
            for segment, counters in kept.segments.items()
        }

    def add(self, attempt: CallAttempt, *, not_landed: bool = False) -> Verdict:
        """Count a call unless its id was counted already (DUPLICATE or CONFLICT), it is too old
        for its campaign's lateness window (LATE), or the long memory of ids may hold it (HELD).
        ``not_landed``: a HELD call the warehouse does not have, counted now (in the batch it was
        held in, whose minutes are all still kept)."""
        fingerprint = attempt_fingerprint(attempt)
        key = id_key(attempt.event_id)
        known = self.fingerprints.get(key)
        if known is not None:
            return Verdict.DUPLICATE if known == fingerprint else Verdict.CONFLICT
        epoch = attempt.event_time.timestamp()
        campaign = attempt.campaign
        minute = int(epoch // 60) * 60
        minutes = self.minutes.get(campaign)
        kept = minutes.get(minute) if minutes is not None else None
        watermark = self.watermarks.get(campaign)
        if not not_landed:
            if watermark is not None and epoch < watermark - self.lateness:
                return Verdict.LATE
            if key in self.seen_ids:
                return Verdict.HELD
        if kept is None:
            kept = self._new_minute(campaign, minute, minutes)
        cost = attempt_cost(attempt, self.settings.cost_model_for(campaign))
        self._count(
            kept,
            attempt.lead.segment,
            key,
            fingerprint,
            counter_increments(
                attempt.outcome,
                attempt.order,
                cost,
                attempt.talk_seconds,
                attempt.wait_seconds,
                self.ftc_connect_seconds,
            ),
        )
        self.seen_ids.add(key, epoch)
        self._counted.add(attempt, kept.slot, cost)
        if watermark is None or epoch > watermark:
            moved = epoch if epoch <= self._ceiling else self._clamped(epoch)
            if watermark is None or moved > watermark:
                self.watermarks[campaign] = moved
                self._moved.add(campaign)
        return Verdict.COUNTED

    def _new_minute(self, campaign: str, minute: int, minutes: dict[int, CampaignMinute] | None) -> CampaignMinute:
        kept = CampaignMinute(campaign, minute, self.slot_rules.slot_for_minute(minute))
        if minutes is None:
            minutes = self.minutes[campaign] = {}
        minutes[minute] = kept
        return kept

    def _count(
        self,
        kept: CampaignMinute,
        segment: str,
        key: int,
        fingerprint: int,
        increments: tuple[tuple[int, float], ...],
    ) -> None:
        kept.event_ids.append(key)
        self.fingerprints[key] = fingerprint
        segments = kept.segments
        counters = segments.get(segment)
        if counters is None:
            if not segments:
                counters = segments[segment] = kept.totals
            else:
                if len(segments) == 1:  # the totals become a list of their own
                    kept.totals = list(kept.totals)
                counters = segments[segment] = [0.0] * len(COUNTERS)
        if not kept.changed:
            kept.changed = True
            self._changed.append(kept)
        totals = kept.totals
        if totals is counters:
            for index, value in increments:
                counters[index] += value
        else:
            for index, value in increments:
                counters[index] += value
                totals[index] += value
        windows = self._windows.get(kept.campaign)
        if windows:
            minute = kept.minute
            for first_minute, summed in windows.values():
                if minute >= first_minute:
                    for index, value in increments:
                        summed[index] += value

    def uncount(self, attempt: CallAttempt, cost: float) -> None:
        """Take a counted call back out, as if it had never come: its counters (its minute lands
        again at take_dirty(), a segment left without calls goes) and its id. For a call the
        warehouse refused to store; the campaign's watermark stays where the call moved it. The
        long memory of ids cannot forget one: a re-send of the call is looked up, and counts."""
        key = id_key(attempt.event_id)
        self.fingerprints.pop(key, None)
        minutes = self.minutes.get(attempt.campaign)
        kept = minutes.get(int(attempt.event_time.timestamp() // 60) * 60) if minutes else None
        counters = kept.segments.get(attempt.lead.segment) if kept is not None else None
        if kept is None or counters is None:
            return
        if key in kept.event_ids:
            kept.event_ids.remove(key)
        leaving = counter_increments(
            attempt.outcome, attempt.order, cost, attempt.talk_seconds, attempt.wait_seconds, self.ftc_connect_seconds
        )
        totals = kept.totals
        for index, value in leaving:
            counters[index] -= value
            if totals is not counters:
                totals[index] -= value
        for first_minute, summed in self._windows.get(kept.campaign, {}).values():
            if kept.minute >= first_minute:
                for index, value in leaving:
                    summed[index] -= value
        if not counters[0]:  # no dials left in the segment: it goes, and lands no row of zeros
            del kept.segments[attempt.lead.segment]
            if not kept.segments:
                kept.totals = [0.0] * len(COUNTERS)
        if not kept.changed:
            kept.changed = True
            self._changed.append(kept)

    def restore(self, landed_attempts: Iterable[tuple]) -> int:
        """Rebuild buckets from landed rows (event_id, campaign, segment, epoch, outcome,
        is_order, cost, talk_seconds, wait_seconds); every restored bucket is re-landed. The long
        memory of ids is rebuilt apart (SeenIds.rebuild), from every call within its horizon.

        Watermarks are clamped to the clock as in add(): rows an earlier version landed hours
        in the future keep their buckets, but do not make the correct calls after the restart late."""
        restored = 0
        self._ceiling = self.watermark_ceiling()
        for event_id, campaign, segment, epoch, outcome, is_order, cost, talk_seconds, wait_seconds in landed_attempts:
            minute = int(epoch // 60) * 60
            minutes = self.minutes.get(campaign)
            kept = (minutes.get(minute) if minutes is not None else None) or self._new_minute(campaign, minute, minutes)
            key = id_key(event_id)
            if key in self.fingerprints:
                continue  # the same event landed twice before a merge; count it once
            fingerprint = call_fingerprint(campaign, round(epoch * 1000), outcome, is_order, talk_seconds, segment)
            self._count(
                kept,
                segment,
                key,
                fingerprint,
                counter_increments(outcome, is_order, cost, talk_seconds, wait_seconds, self.ftc_connect_seconds),
            )
            self.watermarks[campaign] = max(self.watermarks.get(campaign, -math.inf), min(epoch, self._ceiling))
            self._moved.add(campaign)
            restored += 1
        return restored

    def keep_only(self, owns: Callable[[str], bool]) -> int:
        """Forget every campaign ``owns`` says is not this worker's (a rebalance took its partition
        away, or brought it and its buckets are about to be read back): its minutes, their running
        windows, its watermark and the ids its minutes remember for the lateness window. Its next
        owner lands its buckets, and a bucket held past that would land over them, stale, should the
        partition come back. The long memory of ids keeps its ids: they were counted, and an id
        there costs at most a lookup. Returns how many buckets were forgotten."""
        leaving = [campaign for campaign in {*self.minutes, *self.watermarks} if not owns(campaign)]
        forgotten = 0
        for campaign in leaving:
            minutes = self.minutes.pop(campaign, {})
            for kept in minutes.values():
                for key in kept.event_ids:
                    self.fingerprints.pop(key, None)
                forgotten += len(kept.segments)
            self._windows.pop(campaign, None)
            self.watermarks.pop(campaign, None)
            self._moved.discard(campaign)
        if leaving and self._changed:
            gone = set(leaving)
            self._changed = [kept for kept in self._changed if kept.campaign not in gone]
        return forgotten

    def take_counted(self) -> CountedAttempts:
        """The attempts counted since the last call, each with the slot and cost it was counted with."""
        counted, self._counted = self._counted, CountedAttempts()
        return counted

    def take_dirty(self) -> DirtyBuckets:
        """The full state of every bucket in a minute changed since the last call, stamped with a version
        (a copy: the live counters go on changing)."""
        campaigns: list[str] = []
        slots: list[str] = []
        segments: list[str] = []
        minutes: list[int] = []
        counters: list[list[float]] = []
        for kept in self._changed:
            campaign, slot, minute = kept.campaign, kept.slot, kept.minute
            for segment, values in kept.segments.items():
                campaigns.append(campaign)
                slots.append(slot)
                segments.append(segment)
                minutes.append(minute)
                counters.append(values)
            kept.changed = False
        self._changed = []
        return DirtyBuckets(campaigns, slots, segments, minutes, DirtyBuckets.matrix(counters), time.time_ns())

    def window_totals(self, campaign: str, first_minute: int) -> dict[str, float]:
        """Summed counters of a campaign's buckets from ``first_minute`` (epoch s) on."""
        return dict(zip(COUNTERS, self._sum_from(campaign, first_minute)))

    def _sum_from(self, campaign: str, first_minute: int) -> list[float]:
        rows = [kept.totals for minute, kept in self.minutes.get(campaign, {}).items() if minute >= first_minute]
        # Column by column in C: a full re-sum happens at every read of a window left behind.
        return [float(sum(column)) for column in zip(*rows)] if rows else [0.0] * len(COUNTERS)

    def kept_totals(self, campaign: str) -> list[float]:
        """Counters summed over every minute kept for ``campaign``: a bound on any window's."""
        return self.window_sums(campaign, 0, -1)  # a "window" that starts before every minute

    def window_sums(self, campaign: str, minutes: int, first_minute: int) -> list[float]:
        """window_totals() for a window ``minutes`` long, kept running: moving the window
        forward subtracts the minutes it leaves; every count adds to the windows it falls in.
        Read only; the list is the live state."""
        windows = self._windows.get(campaign)
        if windows is None:
            windows = self._windows[campaign] = {}
        window = windows.get(minutes)
        if window is not None and window[0] == first_minute:
            return window[1]
        kept = self.minutes.get(campaign, {})
        if window is None or first_minute < window[0] or (first_minute - window[0]) // 60 > len(kept):  # a long gap
            windows[minutes] = window = [first_minute, self._sum_from(campaign, first_minute)]
            return window[1]
        totals = window[1]
        for minute in range(window[0], first_minute, 60):
            leaving = kept.get(minute)
            if leaving is not None:
                _take_away(totals, leaving.totals)
        window[0] = first_minute
        if not totals[0]:  # no dials left: start again from exact zeros, not rounding residue
            window[1] = [0.0] * len(COUNTERS)
        return window[1]

    def evict_closed(self) -> int:
        """Forget the buckets no event can reach and no alert window reads any more.

        Their final state is already landed, so memory stays bounded by that horizon
        whatever the run length. Only campaigns whose watermark moved can have minutes
        newly past it; a minute with buckets not landed yet waits for the next eviction.
        """
        evicted = 0
        unfinished = set()
        for campaign in self._moved:
            minutes = self.minutes.get(campaign)
            if minutes is None:
                continue
            horizon = self.watermarks[campaign] - self.keep_seconds
            ids_horizon = self.watermarks[campaign] - self.lateness
            leaving = []
            fingerprints = self.fingerprints
            for minute in [minute for minute in minutes if minute + 60 <= ids_horizon]:
                kept = minutes[minute]
                if kept.changed:
                    unfinished.add(campaign)
                    continue
                if kept.event_ids:  # past lateness: a replay of its calls is late, and looked up
                    for key in kept.event_ids:
                        fingerprints.pop(key, None)
                    kept.event_ids = []
                if minute + 60 <= horizon:
                    leaving.append(minutes.pop(minute))
            # Each window still holding evicted minutes (the kept totals always do, and a window
            # left behind by a campaign gone quiet) loses their sum at once, not one minute at a
            # time: a backlog evicts dozens of a campaign's minutes together.
            for first_minute, totals in self._windows.get(campaign, {}).values():
                rows = [kept.totals for kept in leaving if kept.minute >= first_minute]
                if rows:
                    _take_away(totals, rows[0] if len(rows) == 1 else [sum(column) for column in zip(*rows)])
            evicted += sum(len(kept.segments) for kept in leaving)
            if not minutes:
                del self.minutes[campaign]
                self._windows.pop(campaign, None)
        self._moved = unfinished
        return evicted
