"""For each campaign a landed batch touched, read its alert rules on event time.

Live windows (abandon rate, contact rate, CPO) are summed from the worker's minute
buckets, which stay in memory for the longest window. The compliance windows (UK 24 h,
US 30 d) and the baselines come from the warehouse: the compliance figures once per
event-time minute, the baselines once per campaign, slot and local day. Clock skew is read
from the calls the worker refused as stamped too far ahead (note_future_stamped). The stop-list
and calling-hours violations are counted from those the worker landed, held for their windows
(streams.violation_counts; read back from the warehouse once at a start: restore_violations).

With several workers, each holds the alert state of its partitions' campaigns only: a rebalance
forgets that of the campaigns it took away (keep_only) and reads back that of the campaigns it
brought, open alerts and recent violations, as at a start (restore and restore_violations with
``owns``), so an alert fires, stays open and resolves on whichever worker counts its campaign.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, NamedTuple

from clickhouse_connect.driver.client import Client

from analytics.calibration import TooFewCalls, trailing_calibration, trailing_calibrations
from core.alerts import (
    NO_BREACH_HOURS,
    RULE_LABELS,
    Alert,
    AlertBook,
    Check,
    Evidence,
    Rule,
    SequentialEvidence,
    format_seconds,
)
from core.config import AlertRules, Settings
from core.handoff import CallingHoursViolation, Violation
from core.metrics import (
    COUNTERS,
    LONGEST_WINDOW_MINUTES,
    WINDOW_DEFINITION,
    abandon_budget,
    campaign_minutes,
    compliance_figures,
    confidence_z,
    format_interval,
    format_metric,
    ratio,
    wilson_interval,
    window_held_minutes,
)
from core.schema import Event
from core.slots import SlotRules
from streams.buckets import MinuteBuckets
from streams.violation_counts import RecentViolations
from warehouse.queries.alerts import (
    alert_history,
    alerts_from_frame,
    campaign_baseline,
    campaign_baselines,
    newest_violations,
)
from warehouse.queries.live import campaign_first_minutes, compliance_windows, compliance_windows_at

log = logging.getLogger("callpulse.alerts")
_DIALS, _CONTACTS, _ORDERS, _ABANDONED = (COUNTERS.index(name) for name in ("dials", "contacts", "orders", "abandoned"))


class Reading(NamedTuple):
    """A campaign's checks at one event time, for AlertEvaluator.observe(), and the event that
    took it (None for a skewed clock read as gone quiet before any call of this batch)."""

    campaign: str
    at: datetime
    checks: list[Check]
    trigger_event_id: str | None


class BaselineKey(NamedTuple):
    """Which usual rates a baseline holds: a campaign's, in one slot, over the days before one local day."""

    campaign: str
    slot: str
    day: str  # the local day, ISO


class CampaignReading(NamedTuple):
    """A campaign's rules at its newest event time, as far as memory holds them."""

    campaign: str
    at: datetime
    live: list[Check]
    trigger_event_id: str
    # The batch's dials to stop-listed customers, if any: event id -> event time (epoch s).
    violation_ids: dict[str, float] | None
    # The batch's calls outside the callee's allowed hours, if any: event id -> event time (epoch s).
    calling_hours_ids: dict[str, float] | None = None


class HandedOver(NamedTuple):
    """What a rebalance changed in a worker's alert state (AlertEvaluator.hand_over)."""

    forgotten_alerts: int  # open alerts of campaigns taken away
    forgotten_violations: int  # violations held for them
    open_alerts: int  # open alerts of campaigns brought, read back
    stop_list_violations: int  # their violations read back
    calling_hours_violations: int


class BatchReading(NamedTuple):
    """What read_live() took from memory for one batch; read_landed() completes it."""

    pending: list[Reading]  # taken at minute boundaries while counting
    campaigns: list[CampaignReading]


@dataclass
class SkewedClock:
    """A campaign whose calls came stamped too far ahead of the worker's clock: what its
    clock_skew rule reads, from the first such call until a quiet period without one."""

    since: float  # the campaign's event time (epoch s) at its latest future-stamped call
    ahead_seconds: float  # the furthest ahead of the worker's clock any of them was
    calls: int  # how many came since the last quiet period
    quiet_read: bool = False  # the quiet period's reading was taken: nothing to read until the next one
    last_minute: int = -1  # event minute of the latest reading taken at such a call


def window_start(epoch: float, minutes: int) -> int:
    """The first minute (epoch s) of an N-minute window ending at ``epoch``: the buckets that
    start at or after epoch - N minutes, as in compliance_windows."""
    return math.ceil((epoch - minutes * 60) / 60) * 60


class AlertEvaluator:
    def __init__(self, settings: Settings, client: Client, buckets: MinuteBuckets, slot_rules: SlotRules):
        self.settings = settings
        self.client = client
        self.buckets = buckets
        self.slot_rules = slot_rules
        self.book = AlertBook()
        self._compliance: dict[str, tuple[int, list[Check]]] = {}  # campaign -> (event minute, checks)
        # campaign -> (event hour read at, its first landed minute in the longest compliance window)
        self._first_minutes: dict[str, tuple[int, float]] = {}
        self._model_drift: dict[str, tuple[int, Check]] = {}  # campaign -> (event hour, check)
        self._baselines: dict[BaselineKey, dict] = {}
        self._last_minute: dict[str, int] = {}  # campaign -> event minute of its last reading
        self._pending: list[Reading] = []
        self._skewed: dict[str, SkewedClock] = {}  # campaign -> its calls stamped too far ahead
        # The landed violations the stop_list_violation and calling_hours_violation rules count.
        self._stop_list_violations = RecentViolations()
        self._calling_hours_violations = RecentViolations()
        # Per event-time minute, not per reading: a backlog takes a reading at almost every event.
        self._slot_and_day = lru_cache(maxsize=4096)(self._slot_and_day_of)

    def restore(self, owns: Callable[[str], bool] | None = None) -> int:
        """Rebuild which alerts are firing from the alerts table, so a restart neither
        repeats a firing alert nor forgets to resolve it. ``owns``: only the campaigns it says are
        this worker's (those a rebalance brought). Returns how many of them are firing."""
        history = alert_history(self.client, limit=100_000).sort_values("emitted_at")
        if owns is not None:
            history = history[history["campaign"].map(_memo(owns)).astype(bool)]
        for alert in alerts_from_frame(history):
            self.book.restore(alert)
            if alert.rule is Rule.CLOCK_SKEW and alert.state == "firing":
                # A skewed clock still firing resolves after a quiet period from its last transition.
                self._skewed[alert.campaign] = SkewedClock(
                    alert.event_time.timestamp(), alert.value or 0.0, alert.sample
                )
            elif alert.rule is Rule.CLOCK_SKEW:
                self._skewed.pop(alert.campaign, None)
        return sum(1 for _, campaign in self.book.firing if owns is None or owns(campaign))

    def restore_violations(self, owns: Callable[[str], bool] | None = None) -> tuple[int, int]:
        """Hold again the landed stop-list and calling-hours violations within their rules' windows
        (of each campaign's newest violation), so a violation just before a restart still counts
        and an alert firing from before it resolves when they leave the window. One scan of each
        table; from then on the worker counts what it lands. ``owns``: only the campaigns it says
        are this worker's. Returns how many of each it read back."""
        campaigns = ["default", *self.settings.alerts.rules]
        stop_list_window = max(self.settings.alert_rules_for(c).stop_list_window_minutes for c in campaigns)
        calling_hours_window = max(self.settings.alert_rules_for(c).calling_hours_window_minutes for c in campaigns)
        stop_list = newest_violations(self.client, "stop_list_violations", stop_list_window * 60)
        calling_hours = newest_violations(self.client, "calling_hours_violations", calling_hours_window * 60)
        if owns is not None:
            owned = _memo(owns)
            stop_list = [row for row in stop_list if owned(row[0])]
            calling_hours = [row for row in calling_hours if owned(row[0])]
        return self._stop_list_violations.fill(stop_list), self._calling_hours_violations.fill(calling_hours)

    def hand_over(self, kept: Callable[[str], bool], gained: Callable[[str], bool] | None) -> HandedOver:
        """A rebalance: keep the alert state of the campaigns ``kept`` says are still this worker's,
        forget every other campaign's, then read back, as a start does, the state of those
        ``gained`` says a rebalance brought (None: none), as their previous owner landed it: which
        alerts are open and when each last resolved, and the violations within their windows."""
        forgotten_alerts, forgotten_violations = self.keep_only(kept)
        if gained is None:
            return HandedOver(forgotten_alerts, forgotten_violations, 0, 0, 0)
        open_alerts = self.restore(owns=gained)
        return HandedOver(forgotten_alerts, forgotten_violations, open_alerts, *self.restore_violations(owns=gained))

    def keep_only(self, owns: Callable[[str], bool]) -> tuple[int, int]:
        """Forget all alert state of the campaigns ``owns`` says are not this worker's (a rebalance
        took their partition away): which of their alerts are open and when they last resolved,
        their recent violations, skewed clocks, cached figures and readings not observed yet. Their
        new owner reads back what it needs (restore, restore_violations), and this worker can
        neither fire nor resolve their alerts from a memory their new owner no longer updates.
        Returns how many open alerts and held violations were forgotten."""
        owned = _memo(owns)
        book = self.book
        open_alerts = sum(1 for _, campaign in book.firing if not owned(campaign))
        for states in (book.firing, book.resolved_at):
            for key in [key for key in states if not owned(key[1])]:
                del states[key]
        caches: tuple[dict[str, Any], ...] = (
            self._compliance,
            self._first_minutes,
            self._model_drift,
            self._last_minute,
            self._skewed,
        )
        for cache in caches:
            for campaign in [campaign for campaign in cache if not owned(campaign)]:
                del cache[campaign]
        for baseline in [baseline for baseline in self._baselines if not owned(baseline.campaign)]:
            del self._baselines[baseline]
        self._pending = [reading for reading in self._pending if owned(reading.campaign)]
        violations = self._stop_list_violations.keep_only(owned) + self._calling_hours_violations.keep_only(owned)
        return open_alerts, violations

    def note_future_stamped(self, event: Event, ahead_seconds: float) -> None:
        """Called for each event refused as stamped more than pipeline.max_future_seconds ahead.

        The campaign's skew is read at its own event time (its watermark, which such a call does
        not move; the worker's clock for a campaign with no calls yet), at most once an event
        minute, so a dialer sending thousands of them takes few readings."""
        campaign = event.campaign
        rules = self.settings.alert_rules_for(campaign)
        watermark = self.buckets.watermarks.get(campaign)
        at = watermark if watermark is not None else time.time()
        state = self._skewed.get(campaign)
        if state is not None and not state.quiet_read and at >= self._quiet_from(state, rules):
            # The previous episode went quiet before this call came: resolve it first.
            self._pending.append(self._quiet_reading(campaign, state, rules, event.event_id))
        if state is None or state.quiet_read:
            state = self._skewed[campaign] = SkewedClock(at, ahead_seconds, 1)
        else:
            state.since = max(state.since, at)
            state.ahead_seconds = max(state.ahead_seconds, ahead_seconds)
            state.calls += 1
        minute = int(at // 60)
        if state.calls >= rules.clock_skew_min_calls and (
            state.last_minute != minute or state.calls == rules.clock_skew_min_calls
        ):
            state.last_minute = minute
            self._pending.append(
                Reading(
                    campaign,
                    datetime.fromtimestamp(at, timezone.utc),
                    [self._clock_skew(state, rules, quiet=False)],
                    event.event_id,
                )
            )

    @staticmethod
    def _quiet_from(state: SkewedClock, rules: AlertRules) -> float:
        """The event time (epoch s) at which the campaign's clock counts as right again."""
        return state.since + rules.clock_skew_quiet_minutes * 60

    def _quiet_reading(
        self, campaign: str, state: SkewedClock, rules: AlertRules, trigger_event_id: str | None
    ) -> Reading:
        state.quiet_read = True
        return Reading(
            campaign,
            datetime.fromtimestamp(self._quiet_from(state, rules), timezone.utc),
            [self._clock_skew(state, rules, quiet=True)],
            trigger_event_id,
        )

    def _quiet_clocks(self, triggers: Mapping[str, str]) -> list[Reading]:
        """A reading for each skewed campaign whose correct calls have now gone on for the quiet
        period without a future-stamped one: it resolves the campaign's clock_skew alert."""
        readings = []
        for campaign, state in self._skewed.items():
            if state.quiet_read:
                continue
            rules = self.settings.alert_rules_for(campaign)
            watermark = self.buckets.watermarks.get(campaign)
            if watermark is not None and watermark >= self._quiet_from(state, rules):
                readings.append(self._quiet_reading(campaign, state, rules, triggers.get(campaign)))
        return readings

    def _clock_skew(self, state: SkewedClock, rules: AlertRules, quiet: bool) -> Check:
        limit = self.settings.pipeline.max_future_seconds
        quiet_minutes = rules.clock_skew_quiet_minutes
        return Check(
            Rule.CLOCK_SKEW,
            0.0 if quiet else state.ahead_seconds,
            float(limit),
            None,
            clear=float(limit),
            higher_is_worse=True,
            enough_data=quiet or state.calls >= rules.clock_skew_min_calls,
            sample=state.calls,
            window_minutes=round(quiet_minutes),
            detail=(
                f"no call stamped ahead of the worker's clock in {quiet_minutes:g} min of the campaign's calls"
                if quiet
                else f"{state.calls:,} call(s) stamped up to {format_seconds(state.ahead_seconds)} ahead of the "
                f"worker's clock were dead-lettered as future_event_time (pipeline.max_future_seconds = "
                f"{limit} s); fix the dialer's clock or time zone"
            ),
        )

    def note_counted(self, attempt) -> None:
        """Called for each counted event: when its campaign's event time enters a new minute,
        read the live rules as they stand, so a backlog read in big batches still raises
        each transition at the minute it happened."""
        campaign = attempt.campaign
        watermark = self.buckets.watermarks[campaign]
        minute = int(watermark // 60)
        if self._last_minute.get(campaign) == minute:
            return
        self._last_minute[campaign] = minute
        rules = self.settings.alert_rules_for(campaign)
        # A check without enough data changes no alert (AlertBook.observe ignores it), and in a
        # backlog of thin campaigns that is most minutes: decide on the running sums, before
        # building anything. First on everything kept, a bound on every window that costs
        # nothing to read; then on the windows themselves. The baselines are only those
        # fetched already (fetch=False below).
        kept = self.buckets.kept_totals(campaign)
        if (
            kept[_CONTACTS] < rules.min_live_answers
            and kept[_DIALS] < rules.contact_min_dials
            and kept[_ORDERS] < rules.cpo_min_orders
        ):
            return
        abandon = self.buckets.window_sums(
            campaign, rules.abandon_window_minutes, window_start(watermark, rules.abandon_window_minutes)
        )
        if not self._abandon_has_data(abandon[_CONTACTS], rules):
            baseline = self._cached_baseline(campaign, minute)
            if baseline is None:
                return
            if not self._contact_has_data(abandon[_DIALS], baseline, rules):
                cpo = self.buckets.window_sums(
                    campaign, rules.cpo_window_minutes, window_start(watermark, rules.cpo_window_minutes)
                )
                if not self._cpo_has_data(cpo[_ORDERS], baseline, rules):
                    return
        at = datetime.fromtimestamp(watermark, timezone.utc)
        live, window, baseline = self._live_windows(campaign, at, rules, fetch=False)
        self._pending.append(
            Reading(campaign, at, self._live_checks_from(live, window, baseline, rules), attempt.event_id)
        )

    def read(self, triggers: Mapping[str, str], violations: Sequence[Violation] = ()) -> list[Reading]:
        """The batch's readings: read_live() then read_landed(), for callers that do both at once."""
        return self.read_landed(self.read_live(triggers, violations))

    def read_live(
        self,
        triggers: Mapping[str, str],
        violations: Sequence[Violation] = (),
        calling_hours: Sequence[CallingHoursViolation] = (),
    ) -> BatchReading:
        """The half of a batch's readings held in memory, taken before the next batch is counted:
        those taken at minute boundaries while counting, then the live rules at each campaign's
        newest event time (``triggers``: campaign -> newest counted event id). It fetches only
        baselines, which read earlier days, so it need not wait for the batch to land. Changes
        nothing until it succeeds, so it can be retried."""
        violating = _by_campaign(violations)
        outside_hours = _by_campaign(calling_hours)
        triggers = {
            **triggers,
            **{campaign: next(reversed(ids)) for campaign, ids in violating.items()},
            **{campaign: next(reversed(ids)) for campaign, ids in outside_hours.items() if campaign not in triggers},
        }
        newest = dict(self._newest_times(triggers))
        self._prefetch_baselines(newest)
        campaigns = []
        for campaign, at in sorted(newest.items()):
            live = self.live_checks(campaign, at, self.settings.alert_rules_for(campaign))
            campaigns.append(
                CampaignReading(
                    campaign, at, live, triggers[campaign], violating.get(campaign), outside_hours.get(campaign)
                )
            )
        # The batch has landed (step 11 follows the landing): its violations count from now on.
        for campaign, found in violating.items():
            self._stop_list_violations.note(campaign, found)
        for campaign, found in outside_hours.items():
            self._calling_hours_violations.note(campaign, found)
        pending, self._pending = self._pending, []
        return BatchReading(pending + self._quiet_clocks(triggers), campaigns)

    def read_landed(self, batch: BatchReading) -> list[Reading]:
        """The rest, once the batch has landed: the compliance windows and model drift, read from
        the warehouse, and the stop-list and calling-hours violations, counted from the landed ones
        held in memory, added to the live checks. Queries the warehouse but changes no alert state,
        so it can be retried."""
        newest = {reading.campaign: reading.at for reading in batch.campaigns}
        self._prefetch_compliance(newest)
        self._prefetch_model_drift(newest)
        readings = list(batch.pending)
        for campaign, at, live, trigger_event_id, violation_ids, calling_hours_ids in batch.campaigns:
            rules = self.settings.alert_rules_for(campaign)
            checks = (
                live + self._compliance_checks(campaign, at, rules) + [self._model_drift_check(campaign, at, rules)]
            )
            if violation_ids is not None or (Rule.STOP_LIST_VIOLATION, campaign) in self.book.firing:
                checks.append(self._stop_list(campaign, at, rules, violation_ids or {}))
            if calling_hours_ids is not None or (Rule.CALLING_HOURS_VIOLATION, campaign) in self.book.firing:
                checks.append(self._calling_hours(campaign, at, rules, calling_hours_ids or {}))
            readings.append(Reading(campaign, at, checks, trigger_event_id))
        return readings

    def observe(self, readings: Iterable[Reading]) -> list[Alert]:
        alerts = []
        for campaign, at, checks, trigger_event_id in readings:
            cooldown = timedelta(seconds=self.settings.alert_rules_for(campaign).cooldown_seconds)
            for check in checks:
                alert = self.book.observe(campaign, check, at, cooldown, trigger_event_id)
                if alert is not None:
                    alerts.append(alert)
        return alerts

    def live_checks(self, campaign: str, at: datetime, rules: AlertRules, fetch: bool = True) -> list[Check]:
        """Rules over windows held in memory; ``fetch=False`` skips baselines not cached yet."""
        return self._live_checks_from(*self._live_windows(campaign, at, rules, fetch), rules)

    def _live_windows(
        self, campaign: str, at: datetime, rules: AlertRules, fetch: bool
    ) -> tuple[dict, dict | None, dict | None]:
        """The abandon window, the CPO window (only read with a baseline) and the baseline."""
        live: dict[str, Any] = self._window(campaign, at, rules.abandon_window_minutes)
        live["evidence"] = self._abandon_evidence(campaign, at, rules)
        baseline = self._baseline(campaign, at, rules, fetch)
        window = self._window(campaign, at, rules.cpo_window_minutes) if baseline is not None else None
        return live, window, baseline

    def _live_checks_from(
        self, live: dict, window: dict | None, baseline: dict | None, rules: AlertRules
    ) -> list[Check]:
        checks = [self._abandon(live, rules)]
        if baseline is not None and window is not None:  # _live_windows reads a window with every baseline
            checks.append(self._contact_drop(live, baseline, rules))
            checks.append(self._cpo_spike(window, baseline, rules))
        return checks

    # Whether each live rule has enough data to act on: shared by its check and by
    # note_counted's shortcut, so the two can never disagree.
    @staticmethod
    def _abandon_has_data(contacts: float, rules: AlertRules) -> bool:
        return int(contacts) >= rules.min_live_answers

    @staticmethod
    def _contact_has_data(dials: float, baseline: dict, rules: AlertRules) -> bool:
        return bool(baseline["contact_rate"]) and int(dials) >= rules.contact_min_dials

    @staticmethod
    def _cpo_has_data(orders: float, baseline: dict, rules: AlertRules) -> bool:
        return bool(baseline["cpo"]) and int(orders) >= rules.cpo_min_orders

    def _window(self, campaign: str, at: datetime, minutes: int) -> dict[str, float]:
        totals = dict(zip(COUNTERS, self.buckets.window_sums(campaign, minutes, window_start(at.timestamp(), minutes))))
        totals["window_minutes"] = minutes
        return totals

    def _abandon_evidence(self, campaign: str, at: datetime, rules: AlertRules) -> SequentialEvidence:
        """The abandon rule's evidence: the campaign's minutes of the last abandon_evidence_minutes,
        read afresh from the minute buckets at each reading (late calls count, and a restart,
        which restores the buckets, loses nothing). The alert book weighs them (SequentialEvidence)."""
        first = window_start(at.timestamp(), rules.abandon_evidence_minutes)
        kept = self.buckets.minutes.get(campaign, {})
        return SequentialEvidence(
            tuple(
                (minute, kept[minute].totals[_ABANDONED], kept[minute].totals[_CONTACTS])
                for minute in sorted(minute for minute in kept if minute >= first)
            ),
            (rules.abandon_warning, rules.abandon_critical),
            (rules.abandon_warning_evidence, rules.abandon_critical_evidence),
            rules.abandon_evidence_ratio,
        )

    @classmethod
    def _abandon(cls, live: dict, rules: AlertRules) -> Check:
        """Fires when a level's sequential test (abandon_evidence) reaches its decision interval:
        the evidence of a breach has built up minute by minute, and chance at a good rate seldom
        builds it (a Wilson bound re-read every minute on overlapping windows did, several times a
        week at 10 live answers a minute). Resolves when the upper bound of the window's Wilson
        interval falls below abandon_resolve.

        A window too thin for even no abandons to bring the upper bound below abandon_resolve (under
        about 190 live answers at 95 % and 2 %) resolves when its rate is back below
        abandon_resolve x clear_ratio instead: otherwise its alert could never resolve."""
        contacts = int(live["contacts"])
        abandoned = int(live["abandoned"])
        z = confidence_z(rules.confidence)
        interval = wilson_interval(abandoned, contacts, z)
        best_case = wilson_interval(0, contacts, z)
        thin = best_case is None or best_case[1] >= rules.abandon_resolve
        rate = ratio(abandoned, contacts)

        def describe_evidence(stretch: Evidence) -> str:
            # A raise says what its evidence rests on: the stretch since the test last stood at zero.
            return (
                f"{stretch.abandoned} abandoned of {stretch.live_answers} live answers in the last {stretch.minutes} "
                f"min, {format_metric('abandon_rate', ratio(stretch.abandoned, stretch.live_answers))} ("
                f"{format_interval(wilson_interval(stretch.abandoned, stretch.live_answers, z), rules.confidence)}); "
                f"{abandoned} of {contacts} in the last {live['window_minutes']} min"
            )

        return Check(
            Rule.ABANDON_RATE,
            rate,
            rules.abandon_warning,
            rules.abandon_critical,
            clear=rules.abandon_resolve * rules.clear_ratio if thin else rules.abandon_resolve,
            higher_is_worse=True,
            enough_data=cls._abandon_has_data(contacts, rules),
            sample=contacts,
            window_minutes=live["window_minutes"],
            interval=interval,
            clear_on_value=thin,
            evidence=live["evidence"],
            describe_evidence=describe_evidence,
            describe=lambda: (
                f"{abandoned} abandoned of {contacts} live answers, {format_metric('abandon_rate', rate)} "
                f"({format_interval(interval, rules.confidence)}) in the last {live['window_minutes']} min"
            ),
        )

    def _newest_times(self, triggers: Iterable[str]) -> Iterable[tuple[str, datetime]]:
        """Each triggering campaign with its newest event time: what every rule reads at."""
        for campaign in triggers:
            watermark = self.buckets.watermarks.get(campaign)
            if watermark is not None:
                yield campaign, datetime.fromtimestamp(watermark, timezone.utc)

    def _prefetch_compliance(self, newest: Mapping[str, datetime]) -> None:
        """Read the compliance windows of every campaign whose event minute moved, in one
        query: one per campaign made a backlog of many campaigns crawl."""
        stale = {}
        for campaign, at in newest.items():
            cached = self._compliance.get(campaign)
            if cached is None or cached[0] != int(at.timestamp() // 60):
                stale[campaign] = at
        if not stale:
            return
        nows = {c: at + timedelta(minutes=1) for c, at in stale.items()}
        sums = compliance_windows_at(self.client, nows)
        ages = self._campaign_ages(nows)
        for campaign, at in stale.items():
            self._compliance[campaign] = (
                int(at.timestamp() // 60),
                self._compliance_from(
                    campaign, sums.get(campaign, {}), self.settings.alert_rules_for(campaign), ages[campaign]
                ),
            )

    def _campaign_ages(self, nows: Mapping[str, datetime]) -> dict[str, float | None]:
        """Each campaign's age in minutes at its ``now`` (since its first landed minute in the
        longest compliance window; None: nothing landed), so the forecast of a window the campaign
        is younger than lets no calls leave it. The first minute is read once an event hour: it only
        moves when the window's oldest calls leave it."""
        stale = {
            c: at for c, at in nows.items() if self._first_minutes.get(c, (None,))[0] != int(at.timestamp() // 3600)
        }
        if stale:
            found = campaign_first_minutes(
                self.client,
                max(stale.values()),
                sorted(stale),
                since=min(stale.values()) - timedelta(minutes=LONGEST_WINDOW_MINUTES),
            )
            for campaign, at in stale.items():
                if campaign in found:  # a campaign with nothing landed yet is asked again
                    self._first_minutes[campaign] = (int(at.timestamp() // 3600), found[campaign])
        return {
            c: campaign_minutes(self._first_minutes[c][1], at.timestamp()) if c in self._first_minutes else None
            for c, at in nows.items()
        }

    def _compliance_checks(self, campaign: str, at: datetime, rules: AlertRules) -> list[Check]:
        minute = int(at.timestamp() // 60)
        cached = self._compliance.get(campaign)
        if cached is not None and cached[0] == minute:
            return cached[1]
        frame = compliance_windows(self.client, at + timedelta(minutes=1), campaign)
        age = self._campaign_ages({campaign: at + timedelta(minutes=1)})[campaign]
        checks = self._compliance_from(campaign, {} if frame.empty else frame.iloc[0].to_dict(), rules, age)
        self._compliance[campaign] = (minute, checks)
        return checks

    def _compliance_from(
        self, campaign: str, sums: Mapping, rules: AlertRules, age_minutes: float | None = None
    ) -> list[Check]:
        """The UK 24 h window under Ofcom's definition, the US 30 d window under the FTC's, and
        the forecast of either crossing its limit within alerts.forecast_hours (a window older than
        the campaign, ``age_minutes``, projected as young)."""
        amd_rate, _ = self.settings.compliance.amd_for(campaign)
        checks, budgets = [], []
        for rule, window, minutes in (
            (Rule.COMPLIANCE_UK_24H, "uk_24h", 24 * 60),
            (Rule.COMPLIANCE_US_30D, "us_30d", 30 * 24 * 60),
        ):
            definition = WINDOW_DEFINITION[window]
            figure = compliance_figures(sums, amd_rate, prefix=f"{window}_")[definition]
            last_hour = compliance_figures(sums, amd_rate, prefix="last_1h_")[definition]
            warning = rules.compliance_limit * rules.compliance_share
            enough = figure.live_answers >= rules.min_live_answers
            checks.append(
                Check(
                    rule,
                    figure.rate,
                    warning,
                    rules.compliance_limit,
                    clear=warning * rules.clear_ratio,
                    higher_is_worse=True,
                    enough_data=enough,
                    sample=int(figure.live_answers),
                    window_minutes=minutes,
                    detail=self._figure_text(figure, amd_rate) + f"; the limit is "
                    f"{format_metric('abandon_rate', rules.compliance_limit)}",
                )
            )
            if enough and last_hour.live_answers > 0:
                budgets.append(
                    (
                        rule,
                        abandon_budget(
                            window,
                            minutes,
                            rules.compliance_limit,
                            figure.abandoned,
                            figure.live_answers,
                            last_hour.abandoned,
                            last_hour.live_answers,
                            held_minutes=window_held_minutes(minutes, age_minutes),
                        ),
                    )
                )
        checks.append(self._forecast(budgets, rules))
        return checks

    def _figure_text(self, figure, amd_rate: float) -> str:
        counts = f"{figure.abandoned:,.0f} abandoned of {figure.live_answers:,.0f} live answers"
        if figure.definition == "ftc":
            # The rate judged is the lower bound (calls without a wait counted in time): the text
            # says how many there were and what they could add.
            unjudged = f", {figure.unjudged_note}" if figure.unjudged else ""
            return (
                f"{counts} under the FTC rule (dropped, or connected after more than "
                f"{self.settings.compliance.ftc_connect_seconds:g} s){unjudged}"
            )
        if figure.definition == "ofcom":
            return (
                f"{figure.abandoned:,.1f} abandoned of {figure.live_answers:,.1f} live calls under Ofcom's rule, "
                f"with {figure.estimate:,.1f} estimated live among the machine-classified calls "
                f"(amd_false_positive_rate {amd_rate:g})"
            )
        return counts

    def _forecast(self, budgets: list, rules: AlertRules) -> Check:
        """compliance_forecast: the soonest projected crossing of a window not over its limit yet
        (one that is over has its own critical alert), warning within alerts.forecast_hours."""
        hours = self.settings.alerts.forecast_hours
        ahead = [
            (budget.hours_to_breach, rule, budget)
            for rule, budget in budgets
            if budget.hours_to_breach is not None and budget.hours_to_breach > 0
        ]
        if not ahead:
            return Check(
                Rule.COMPLIANCE_FORECAST,
                NO_BREACH_HOURS,
                hours,
                None,
                clear=hours / rules.clear_ratio,
                higher_is_worse=False,
                enough_data=bool(budgets),
                sample=0,
                window_minutes=60,
                detail="no window's limit is crossed at the last hour's pace",
            )
        soonest, rule, budget = min(ahead, key=lambda item: item[0])
        now_rate = ratio(budget.abandoned, budget.live_answers)
        pace = ratio(budget.last_hour_abandoned, budget.last_hour_live_answers)
        return Check(
            Rule.COMPLIANCE_FORECAST,
            soonest,
            hours,
            None,
            clear=hours / rules.clear_ratio,
            higher_is_worse=False,
            enough_data=True,
            sample=int(budget.last_hour_live_answers),
            window_minutes=60,
            detail=(
                f"{RULE_LABELS[rule]} {format_metric('abandon_rate', now_rate)} now, "
                f"{max(0.0, budget.remaining):,.1f} more abandons allowed {budget.budget_basis}; "
                f"at the last hour's pace ({budget.last_hour_abandoned:,.0f} of "
                f"{budget.last_hour_live_answers:,.0f}, {format_metric('abandon_rate', pace)})"
                f" it crosses {format_metric('abandon_rate', budget.limit)} in {format_seconds(soonest * 3600)}"
            ),
        )

    def _model_drift_check(self, campaign: str, at: datetime, rules: AlertRules) -> Check:
        # A week of scored calls moves slowly: once an event-time hour is plenty.
        hour = int(at.timestamp() // 3600)
        cached = self._model_drift.get(campaign)
        if cached is not None and cached[0] == hour:
            return cached[1]
        result = trailing_calibration(self.client, campaign, at, days=rules.model_drift_days)
        check = self._drift_check_from(result, rules)
        self._model_drift[campaign] = (hour, check)
        return check

    def _prefetch_model_drift(self, newest: Mapping[str, datetime]) -> None:
        """Every campaign whose event hour moved gets its drift check from one query per
        distinct window length, instead of one query per campaign at each hour."""
        stale: dict[int, dict[str, datetime]] = {}
        for campaign, at in newest.items():
            cached = self._model_drift.get(campaign)
            if cached is None or cached[0] != int(at.timestamp() // 3600):
                days = self.settings.alert_rules_for(campaign).model_drift_days
                stale.setdefault(days, {})[campaign] = at
        for days, untils in stale.items():
            # All campaigns sharing a window length share its minimum too (a per-campaign
            # override of model_drift_days comes with its own rules).
            least = min(self.settings.alert_rules_for(c).model_drift_min_calls for c in untils)
            for campaign, result in trailing_calibrations(self.client, untils, days=days, min_calls=least).items():
                self._model_drift[campaign] = (
                    int(untils[campaign].timestamp() // 3600),
                    self._drift_check_from(result, self.settings.alert_rules_for(campaign)),
                )

    @staticmethod
    def _drift_check_from(result, rules: AlertRules) -> Check:
        calls = result.n if result is not None else 0
        if isinstance(result, TooFewCalls):
            return Check(
                Rule.MODEL_DRIFT,
                0.0,
                rules.model_drift_warning,
                rules.model_drift_critical,
                clear=rules.model_drift_warning * rules.clear_ratio,
                higher_is_worse=True,
                enough_data=False,
                sample=calls,
                window_minutes=rules.model_drift_days * 24 * 60,
                detail=f"{calls:,} scored conversations in {rules.model_drift_days} days; "
                f"the check needs {rules.model_drift_min_calls:,}",
            )
        significant = (
            result is not None and result.hl_pvalue is not None and result.hl_pvalue < rules.model_drift_significance
        )
        # A gap the sample cannot tell from chance counts as no gap, so noise neither fires nor holds an alert.
        error = (result.ece or 0.0) if significant else 0.0
        detail = (
            "no scored conversations"
            if result is None
            else (
                f"predicted and actual order rates differ by {(result.ece or 0) * 100:.1f} points on average "
                f"across score deciles ({calls:,} conversations, {rules.model_drift_days} days; Hosmer-Lemeshow "
                f"p = {'–' if result.hl_pvalue is None else f'{result.hl_pvalue:.2g}'}; "
                f"AUC {'–' if result.auc is None else f'{result.auc:.2f}'}); "
                "re-score the list"
            )
        )
        return Check(
            Rule.MODEL_DRIFT,
            error,
            rules.model_drift_warning,
            rules.model_drift_critical,
            clear=rules.model_drift_warning * rules.clear_ratio,
            higher_is_worse=True,
            enough_data=calls >= rules.model_drift_min_calls,
            sample=calls,
            window_minutes=rules.model_drift_days * 24 * 60,
            detail=detail,
        )

    def _calling_hours(self, campaign: str, at: datetime, rules: AlertRules, batch: Mapping[str, float]) -> Check:
        minutes = rules.calling_hours_window_minutes
        calls = self._calling_hours_violations.count(campaign, at.timestamp(), minutes * 60, batch)
        # Like a stop-list dial, any call outside the allowed hours is a breach: critical at one.
        return Check(
            Rule.CALLING_HOURS_VIOLATION,
            float(calls),
            None,
            1.0,
            clear=1.0,
            higher_is_worse=True,
            enough_data=True,
            sample=calls,
            window_minutes=minutes,
            detail=f"{calls} call(s) outside the callee's allowed local hours in the last {minutes} min",
        )

    def _stop_list(self, campaign: str, at: datetime, rules: AlertRules, batch: Mapping[str, float]) -> Check:
        minutes = rules.stop_list_window_minutes
        dials = self._stop_list_violations.count(campaign, at.timestamp(), minutes * 60, batch)
        # Any dial to a flagged customer is a breach: critical at one, clear at none.
        return Check(
            Rule.STOP_LIST_VIOLATION,
            float(dials),
            None,
            1.0,
            clear=1.0,
            higher_is_worse=True,
            enough_data=True,
            sample=dials,
            window_minutes=minutes,
            detail=f"{dials} dial(s) to stop-listed customers in the last {minutes} min",
        )

    def _baseline_key(self, campaign: str, at: datetime) -> tuple[BaselineKey, datetime]:
        """The baseline's key at ``at``, and the start (UTC) of that local day, where its days end."""
        slot, day, until = self._slot_and_day(int(at.timestamp() // 60))
        return BaselineKey(campaign, slot, day), until

    def _slot_and_day_of(self, minute: int) -> tuple[str, str, datetime]:
        at = datetime.fromtimestamp(minute * 60, timezone.utc)
        local_day = at.astimezone(self.settings.zone).replace(hour=0, minute=0, second=0, microsecond=0)
        return self.slot_rules.slot_for(at), local_day.date().isoformat(), local_day.astimezone(timezone.utc)

    def _cached_baseline(self, campaign: str, minute: int) -> dict | None:
        """The baseline for the campaign's slot and day at ``minute`` (epoch minutes) if it was
        fetched already: _baseline(fetch=False) without building the datetimes it needs."""
        slot, day, _ = self._slot_and_day(minute)
        return self._baselines.get(BaselineKey(campaign, slot, day))

    def _baseline(self, campaign: str, at: datetime, rules: AlertRules, fetch: bool = True) -> dict | None:
        key, until = self._baseline_key(campaign, at)
        if key not in self._baselines:
            if not fetch:
                return None
            sums = campaign_baseline(
                self.client, campaign, key.slot, until - timedelta(days=rules.baseline_days), until
            )
            self._baselines[key] = self._baseline_from(sums, key.slot)
        return self._baselines[key]

    def _prefetch_baselines(self, newest: Mapping[str, datetime]) -> None:
        """The usual rates of every campaign entering a new slot or day, one query per
        (slot, window) rather than one per campaign."""
        due: dict[tuple[str, datetime, datetime], list[BaselineKey]] = {}  # (slot, since, until) -> keys
        for campaign, at in newest.items():
            key, until = self._baseline_key(campaign, at)
            if key not in self._baselines:
                since = until - timedelta(days=self.settings.alert_rules_for(campaign).baseline_days)
                due.setdefault((key.slot, since, until), []).append(key)
        for (slot, since, until), wanted in due.items():
            sums = campaign_baselines(self.client, [key.campaign for key in wanted], slot, since, until)
            for key in wanted:
                self._baselines[key] = self._baseline_from(sums[key.campaign], slot)

    @staticmethod
    def _baseline_from(sums: Mapping, slot: str) -> dict:
        return {
            "contact_rate": ratio(sums["slot_contacts"], sums["slot_dials"]),
            "cpo": ratio(sums["cost"], sums["orders"]),
            "slot": slot,
        }

    @classmethod
    def _contact_drop(cls, live: dict, baseline: dict, rules: AlertRules) -> Check:
        """Fires when even the upper bound of the contact rate's interval is at or below the drop
        level; resolves when its lower bound is back above the clear level."""
        dials = int(live["dials"])
        contacts = int(live["contacts"])
        usual = baseline["contact_rate"]
        level = usual * rules.contact_drop_ratio if usual else 0.0
        interval = wilson_interval(contacts, dials, confidence_z(rules.confidence))
        rate = ratio(contacts, dials)
        return Check(
            Rule.CONTACT_RATE_DROP,
            rate,
            level,
            None,
            clear=level / rules.clear_ratio,
            higher_is_worse=False,
            enough_data=cls._contact_has_data(dials, baseline, rules),
            sample=dials,
            window_minutes=live["window_minutes"],
            interval=interval,
            describe=lambda: (
                f"{contacts} live answers of {dials} dials, {format_metric('contact_rate', rate)} "
                f"({format_interval(interval, rules.confidence)}); usual {baseline['slot']} contact rate is "
                f"{format_metric('contact_rate', usual)} (previous {rules.baseline_days} days)"
            ),
        )

    @classmethod
    def _cpo_spike(cls, window: dict, baseline: dict, rules: AlertRules) -> Check:
        """CPO is cost / orders, and its chance lies in how many live answers ordered: the interval
        is the cost over the conversion interval's ends (live answers x its upper bound orders at
        best). Fires when even its lower bound is past the spike level."""
        orders = int(window["orders"])
        contacts = int(window["contacts"])
        cost = float(window["cost"])
        usual = baseline["cpo"]
        level = usual * rules.cpo_spike_multiple if usual else math.inf
        conversion = wilson_interval(orders, contacts, confidence_z(rules.confidence))
        interval = (
            None
            if conversion is None
            else (
                cost / (contacts * conversion[1]) if conversion[1] > 0 else math.inf,
                cost / (contacts * conversion[0]) if conversion[0] > 0 else math.inf,
            )
        )
        return Check(
            Rule.CPO_SPIKE,
            ratio(cost, orders),
            level,
            None,
            clear=level * rules.clear_ratio,
            higher_is_worse=True,
            enough_data=cls._cpo_has_data(orders, baseline, rules),
            sample=orders,
            window_minutes=window["window_minutes"],
            interval=interval,
            describe=lambda: (
                f"{format_metric('cpo', cost)} for {orders} orders of {contacts} live answers "
                f"({rules.confidence * 100:g} % CI {format_metric('cpo', interval[0] if interval else None)}–"
                f"{format_metric('cpo', interval[1] if interval and math.isfinite(interval[1]) else None)}); "
                f"usual CPO is {format_metric('cpo', usual)} (previous {rules.baseline_days} days)"
            ),
        )


def _by_campaign(violations: Iterable[Violation | CallingHoursViolation]) -> dict[str, dict[str, float]]:
    """A batch's violations per campaign: event id -> event time (epoch s), in the batch's order."""
    found: dict[str, dict[str, float]] = {}
    for violation in violations:
        attempt = violation.attempt
        found.setdefault(attempt.campaign, {})[attempt.event_id] = attempt.event_time.timestamp()
    return found


def _memo(owns: Callable[[str], bool]) -> Callable[[str], bool]:
    """``owns`` asked once per campaign (it hashes the name to a partition)."""
    return lru_cache(maxsize=None)(owns)


def triggers_of(attempts: Iterable) -> dict[str, str]:
    """Per campaign, the newest counted event of a batch: what tipped a rule, if one tips."""
    newest: dict[str, tuple[datetime, str]] = {}
    for attempt in attempts:
        current = newest.get(attempt.campaign)
        if current is None or attempt.event_time >= current[0]:
            newest[attempt.campaign] = (attempt.event_time, attempt.event_id)
    return {campaign: event_id for campaign, (_, event_id) in newest.items()}
