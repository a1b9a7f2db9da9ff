"""The stop-list and calling-hours alerts with several workers: each worker holds the alert state
of its partitions' campaigns only, and a rebalance hands it over as the floor is handed over
(AlertEvaluator.hand_over, run by streams/app.py's own_partitions before the batch is counted). The
worker that loses a partition forgets its campaigns' open alerts and violations; the one that
gains it reads them back from what the previous owner landed, so the moved campaign's alerts fire,
stay open and resolve as one worker counting everything raises them.

As in tests/test_floor_workers.py, the two workers are two in-memory states in this process
(processor, alert evaluator, Lander each) landing into one real chDB warehouse, since two worker
processes cannot share an embedded warehouse."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from test_floor_workers import PARTITIONS, campaigns_by_partition
from warehouse_helpers import migrated_warehouse

from core.alerts import Alert, Rule
from core.config import load_settings
from core.handoff import Violation
from core.privacy import hash_phone
from core.schema import CallAttempt, Lead, Outcome, StopListEntry, encode_batch
from core.slots import SlotRules
from core.topics import campaign_partition
from streams.alerting import AlertEvaluator, HandedOver, triggers_of
from streams.checkpoint import LANDING_STEPS
from streams.processor import CallEventProcessor, SourceRecord
from streams.stoplist import dialed_at
from warehouse.landing import Lander
from warehouse.queries.alerts import recent_stop_list_violations
from warehouse.queries.compliance import recent_calling_hours_violations

START = datetime(2026, 11, 23, 1, 0, tzinfo=timezone.utc)  # 01:00 in London: a night call there
WINDOW = timedelta(minutes=60)  # alerts.rules.default.stop_list_window_minutes and calling_hours_window_minutes
FLAGGED = hash_phone("+819011110003", b"test-key")
ENTRY = StopListEntry(FLAGGED, START - timedelta(days=1), "opt_out", "test")
VIOLATION_RULES = (Rule.STOP_LIST_VIOLATION, Rule.CALLING_HOURS_VIOLATION)
BY_PARTITION = campaigns_by_partition(1)
KEPT, MOVED, STAYED = (BY_PARTITION[partition][0] for partition in range(3))  # partitions 0, 1, 2


def call(campaign: str, minutes: float, kind: str = "plain") -> CallAttempt:
    """A call placed ``minutes`` after START (its event time 70 s later): to a stop-listed customer
    ("flagged"), to a London callee at night ("night"), or neither."""
    placed = START + timedelta(minutes=minutes)
    return CallAttempt(
        schema_version=1,
        event_id=f"{campaign}-{kind}-{minutes:g}",
        campaign=campaign,
        event_time=placed + timedelta(seconds=70),
        outcome=Outcome.CONNECTED,
        lead=Lead(segment="seniors", phone_hash=FLAGGED if kind == "flagged" else None),
        ring_seconds=10.0,
        talk_seconds=60.0,
        callee_timezone="Europe/London" if kind == "night" else None,
    )


# Batches of calls, each at its minute after START. The moved campaign's stop-list dials at 5 and 30
# (event times 01:06:10 and 01:31:10) and its night call at 10 (01:11:10) leave their windows at
# 02:06:10, 02:31:10 and 02:11:10; its dial at 100 follows the resolve at 91 by more than the cooldown.
BATCHES: list[tuple[float, list[CallAttempt]]] = [
    (5, [call(MOVED, 5, "flagged"), call(KEPT, 5), call(STAYED, 5)]),
    (10, [call(MOVED, 10, "night"), call(STAYED, 10, "flagged")]),
    (20, [call(MOVED, 20), call(KEPT, 20), call(STAYED, 20)]),
    # The first rebalance: the moved campaign's partition goes from worker b to worker a.
    (30, [call(MOVED, 30, "flagged"), call(STAYED, 30)]),
    (40, [call(MOVED, 40), call(KEPT, 40), call(STAYED, 40)]),
    (66, [call(MOVED, 66), call(STAYED, 66)]),
    (71, [call(MOVED, 71), call(KEPT, 71), call(STAYED, 71)]),
    (91, [call(MOVED, 91), call(STAYED, 91)]),
    # The second rebalance: the partition goes back to worker b.
    (100, [call(MOVED, 100, "flagged"), call(STAYED, 100)]),
    (110, [call(MOVED, 110), call(STAYED, 110)]),
]
FIRST_REBALANCE, SECOND_REBALANCE = 30, 100


def owner_of(partitions: set[int]):
    return lambda campaign: campaign_partition(campaign, PARTITIONS) in partitions


class Worker:
    """One worker's counting and alerting, landing each batch, then its alerts, as the checkpoint
    does (streams/checkpoint.py steps 3-12)."""

    def __init__(self, client, partitions: set[int]):
        settings = load_settings()
        slot_rules = SlotRules(settings.slots, settings.zone)
        self.client = client
        self.processor = CallEventProcessor(settings, slot_rules)
        self.alerting = AlertEvaluator(settings, client, self.processor.buckets, slot_rules)
        self.processor.on_counted = self.alerting.note_counted
        self.lander = Lander(client, settings)
        self.partitions = partitions
        self.offset = 0
        self.alerts: list[Alert] = []
        # (campaign, event time, rule) -> the count the rule read, at each reading of a violation rule
        self.counts: dict[tuple[str, datetime, str], float] = {}

    def count(self, calls: list[CallAttempt]) -> None:
        mine = [event for event in calls if owner_of(self.partitions)(event.campaign)]
        if not mine:
            return
        result = self.processor.process([SourceRecord("calls", 0, self.offset, encode_batch(mine))])
        self.offset += 1
        # What the stop list (streams.stoplist.StopListTable.check) finds for a flagged customer.
        result.violations = [
            Violation(attempt, dialed_at(attempt), ENTRY) for attempt in result.attempts if attempt.lead.phone_hash
        ]
        for step in LANDING_STEPS:  # steps 4-10, as Checkpoint.land takes them
            rows = step.rows(result)
            if rows:
                step.land(self.lander, rows)
        self.processor.landed()
        live = self.alerting.read_live(triggers_of(result.attempts), result.violations, result.calling_hours_violations)
        readings = self.alerting.read_landed(live)
        for campaign, at, checks, _ in readings:
            for check in checks:
                if check.rule in VIOLATION_RULES:
                    self.counts[(campaign, at, check.rule.value)] = check.value
        raised = self.alerting.observe(readings)
        self.lander.land_alerts(raised)
        self.alerts += raised

    def hand_over(self, partitions: set[int]) -> HandedOver:
        """What own_partitions does on a rebalance that assigns ``partitions``."""
        gained = partitions - self.partitions
        handed = self.alerting.hand_over(owner_of(partitions - gained), owner_of(gained) if gained else None)
        self.partitions = partitions
        return handed

    def open_alerts(self) -> set[tuple[str, str]]:
        return {(rule.value, campaign) for rule, campaign in self.alerting.book.firing}


def transitions(alerts: list[Alert]) -> list[tuple]:
    return sorted(
        (a.event_time, a.campaign, a.rule.value, a.state, a.severity, a.value, a.alert_id, a.trigger_event_id)
        for a in alerts
    )


def one_worker(path: Path) -> tuple[list[tuple], dict]:
    """The transitions and violation counts of one worker holding every partition."""
    with migrated_warehouse(path) as client:
        worker = Worker(client, set(range(PARTITIONS)))
        for _, calls in BATCHES:
            worker.count(calls)
        return transitions(worker.alerts), worker.counts


def warehouse_count(client, campaign: str, at: datetime, rule: str) -> int:
    """What the rule counted before it counted from memory: the warehouse's violations of the
    campaign in (at - window, at] (none of the batches holds a late one)."""
    query = recent_stop_list_violations if rule == "stop_list_violation" else recent_calling_hours_violations
    return query(client, campaign, at - WINDOW, at)


def test_violation_alerts_follow_a_moved_partition_as_one_worker_raises_them(tmp_path):
    expected_transitions, expected_counts = one_worker(tmp_path / "one-worker")
    # The moved campaign: both alerts fire, the calling-hours one resolves at 71, the stop-list one
    # stays open through its first dial leaving the window (66) and resolves at 91, then fires anew.
    assert [
        (at.strftime("%H:%M"), rule, state)
        for at, campaign, rule, state, *_ in expected_transitions
        if campaign == MOVED
    ] == [
        ("01:06", "stop_list_violation", "firing"),
        ("01:11", "calling_hours_violation", "firing"),
        ("02:12", "calling_hours_violation", "resolved"),
        ("02:32", "stop_list_violation", "resolved"),
        ("02:41", "stop_list_violation", "firing"),
    ]

    with migrated_warehouse(tmp_path / "two-workers") as client:
        workers = {"a": Worker(client, {0}), "b": Worker(client, {1, 2})}
        for minute, calls in BATCHES:
            if minute == FIRST_REBALANCE:
                # b forgets the moved campaign's two open alerts and its two violations; a reads them back.
                assert workers["b"].hand_over({2}) == HandedOver(2, 2, 0, 0, 0)
                assert workers["a"].hand_over({0, 1}) == HandedOver(0, 0, 2, 1, 1)
                assert workers["b"].open_alerts() == {("stop_list_violation", STAYED)}
                assert workers["a"].open_alerts() == {
                    ("stop_list_violation", MOVED),
                    ("calling_hours_violation", MOVED),
                }
                moved_at = len(workers["b"].alerts)
            if minute == SECOND_REBALANCE:
                # Back to b, which reads the two alerts as a resolved them: with the memory it had of
                # them before, the stop-list one would still be open and its new dial raise nothing.
                # a held none of the violations any more (each left its window); b reads back those
                # within the window of the campaign's newest one, as a start does.
                assert workers["a"].hand_over({0}) == HandedOver(0, 0, 0, 0, 0)
                assert workers["b"].hand_over({1, 2}) == HandedOver(0, 0, 0, 2, 1)
                assert workers["b"].open_alerts() == set()
                back_at = len(workers["b"].alerts)
            for name in ("b", "a"):
                workers[name].count(calls)

        # Each reading of a violation rule counted what the warehouse holds, on whichever worker.
        counts = {**workers["a"].counts, **workers["b"].counts}
        for (campaign, at, rule), value in counts.items():
            assert value == warehouse_count(client, campaign, at, rule), (campaign, at, rule)

    # The same counts at the same readings, and the same transitions, as one worker holding everything.
    assert counts == expected_counts
    assert transitions(workers["a"].alerts + workers["b"].alerts) == expected_transitions
    # The moved campaign's alerts were raised by its owner of the moment: b fired them, a resolved
    # them (the same episodes, each resolved once), b fired the new one.
    assert [(a.rule.value, a.state) for a in workers["a"].alerts] == [
        ("calling_hours_violation", "resolved"),
        ("stop_list_violation", "resolved"),
    ]
    assert not any(a.campaign == MOVED for a in workers["b"].alerts[moved_at:back_at])
    assert [(a.rule.value, a.state) for a in workers["b"].alerts[back_at:] if a.campaign == MOVED] == [
        ("stop_list_violation", "firing")
    ]
