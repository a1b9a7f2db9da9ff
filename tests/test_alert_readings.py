"""The worker's minute readings skip campaigns that cannot have enough data for any rule
(a backlog of thin campaigns takes a reading at almost every event otherwise). Skipping
must never change an alert: the same backlog, read by the worker's evaluator and by one
that takes every reading, raises the same transitions at the same event times."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest
from warehouse_helpers import migrated_warehouse

from core.config import load_settings
from core.schema import CallAttempt, Lead, Outcome, encode_batch
from core.slots import SlotRules
from streams.alerting import AlertEvaluator, triggers_of
from streams.processor import CallEventProcessor, SourceRecord
from warehouse.landing import Lander

START = (datetime.now(timezone.utc) - timedelta(hours=3)).replace(second=0, microsecond=0)


class EveryMinuteEvaluator(AlertEvaluator):
    """The readings as they were before the shortcut: every campaign at every new minute."""

    def note_counted(self, attempt) -> None:
        watermark = self.buckets.watermarks[attempt.campaign]
        minute = int(watermark // 60)
        if self._last_minute.get(attempt.campaign) == minute:
            return
        self._last_minute[attempt.campaign] = minute
        at = datetime.fromtimestamp(watermark, timezone.utc)
        rules = self.settings.alert_rules_for(attempt.campaign)
        self._pending.append(
            (attempt.campaign, at, self.live_checks(attempt.campaign, at, rules, fetch=False), attempt.event_id)
        )


def backlog() -> list[CallAttempt]:
    """Two busy campaigns whose abandon rate climbs past 3 % and falls back, every few
    seconds, among 150 thin ones with a call every ten minutes or so: two hours."""
    rng = random.Random(3)
    events = []
    for second in range(0, 2 * 3600, 2):
        at = START + timedelta(seconds=second)
        for campaign in ("busy-a", "busy-b"):
            spike = 1800 <= second < 3000 if campaign == "busy-a" else 4000 <= second < 4600
            roll = rng.random()
            outcome = (
                Outcome.ABANDONED
                if roll < (0.06 if spike else 0.004)
                else Outcome.CONNECTED
                if roll < 0.45
                else Outcome.NO_ANSWER
            )
            events.append(
                CallAttempt(
                    schema_version=1,
                    event_id=f"{campaign}-{second}",
                    campaign=campaign,
                    event_time=at,
                    outcome=outcome,
                    lead=Lead(segment="seniors"),
                    ring_seconds=10.0,
                    order=outcome is Outcome.CONNECTED and roll < 0.1,
                )
            )
        if second % 4 == 0:
            campaign = f"thin-{rng.randrange(150):03d}"
            events.append(
                CallAttempt(
                    schema_version=1,
                    event_id=f"{campaign}-{second}",
                    campaign=campaign,
                    event_time=at,
                    outcome=rng.choice(list(Outcome)),
                    lead=Lead(segment="students"),
                    ring_seconds=12.0,
                )
            )
    return events


@pytest.fixture
def client(tmp_path):
    with migrated_warehouse(tmp_path / "warehouse") as warehouse:
        yield warehouse


def test_skipped_readings_change_no_alert(tmp_path, client):
    settings = load_settings(pipeline__data_dir=str(tmp_path))
    slot_rules = SlotRules(settings.slots, settings.zone)
    processor = CallEventProcessor(settings, slot_rules)
    worker_rules = AlertEvaluator(settings, client, processor.buckets, slot_rules)
    every_minute = EveryMinuteEvaluator(settings, client, processor.buckets, slot_rules)
    readings = {"worker": 0, "every minute": 0}

    def note(attempt):
        worker_rules.note_counted(attempt)
        every_minute.note_counted(attempt)

    processor.on_counted = note
    lander = Lander(client, settings)
    events = backlog()
    records = [
        SourceRecord("calls", 0, n, encode_batch(events[i : i + 200])) for n, i in enumerate(range(0, len(events), 200))
    ]
    raised: dict[str, list[tuple]] = {"worker": [], "every minute": []}
    for first in range(0, len(records), 40):  # a backlog read in big batches
        result = processor.process(records[first : first + 40])
        lander.land(result)
        processor.landed()
        for name, evaluator in (("worker", worker_rules), ("every minute", every_minute)):
            readings[name] += len(evaluator._pending)
            found = evaluator.observe(evaluator.read(triggers_of(result.attempts)))
            raised[name] += [
                (a.rule.value, a.campaign, a.state, a.severity, a.event_time, round(a.value, 9), a.sample, a.detail)
                for a in found
            ]
    assert raised["worker"] == raised["every minute"]
    abandon = [(campaign, state) for rule, campaign, state, *_ in raised["worker"] if rule == "abandon_rate"]
    assert ("busy-a", "firing") in abandon and ("busy-a", "resolved") in abandon
    assert ("busy-b", "firing") in abandon
    assert not any(campaign.startswith("thin-") for _, campaign, *_ in raised["worker"])
    # The point of the shortcut: the thin campaigns' minutes are no readings at all.
    assert readings["worker"] < readings["every minute"] / 2


def _alerts_of_backlog(tmp_path, overlapped: bool) -> list[tuple]:
    """The backlog's transitions, read batch by batch in order, or as the worker reads them:
    each batch's live half at once, its warehouse half while the next batch is counted."""
    settings = load_settings(pipeline__data_dir=str(tmp_path))
    slot_rules = SlotRules(settings.slots, settings.zone)
    events = backlog()
    records = [
        SourceRecord("calls", 0, n, encode_batch(events[i : i + 200])) for n, i in enumerate(range(0, len(events), 200))
    ]
    raised: list[tuple] = []
    with migrated_warehouse(tmp_path / "warehouse") as client:
        processor = CallEventProcessor(settings, slot_rules)
        evaluator = AlertEvaluator(settings, client, processor.buckets, slot_rules)
        processor.on_counted = evaluator.note_counted
        lander = Lander(client, settings)
        unfinished = None

        def finish(reading):
            raised.extend(
                (a.rule.value, a.campaign, a.state, a.severity, a.event_time, round(a.value, 9), a.sample, a.detail)
                for a in evaluator.observe(evaluator.read_landed(reading))
            )

        for first in range(0, len(records), 3):  # about five minutes of event time a batch
            result = processor.process(records[first : first + 3])
            if unfinished is not None:
                finish(unfinished)  # the earlier batch's warehouse half, after this batch was counted
            lander.land(result)
            processor.landed()
            unfinished = evaluator.read_live(triggers_of(result.attempts))
            if not overlapped:
                finish(unfinished)
                unfinished = None
        if unfinished is not None:
            finish(unfinished)
    return raised


def test_reading_the_warehouse_half_while_the_next_batch_is_counted_changes_no_alert(tmp_path):
    in_order = _alerts_of_backlog(tmp_path / "in-order", overlapped=False)
    overlapped = _alerts_of_backlog(tmp_path / "overlapped", overlapped=True)
    assert overlapped == in_order
    assert ("abandon_rate", "busy-a", "firing") in [alert[:3] for alert in in_order]
    assert ("abandon_rate", "busy-b", "resolved") in [alert[:3] for alert in in_order]
