"""The abandon rule's sequential test (core.alerts.abandon_evidence) and the rule as the worker
runs it: its own minute buckets and alert evaluator, in process (the rule reads only the
buckets; tests/test_alert_quality_pipeline.py runs it on the real broker and worker)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest

from core.alerts import Check, Rule, SequentialEvidence, abandon_evidence, evidence_rates
from core.config import ConfigError, load_settings
from core.slots import SlotRules
from producers.scenarios import Phase, abandon_rate_draws, abandon_rate_phases
from streams.alerting import AlertEvaluator
from streams.buckets import MinuteBuckets, Verdict

START = datetime(2026, 11, 23, 0, 0, tzinfo=timezone.utc)  # 09:00 in Tokyo
T0 = datetime(2026, 11, 23, 3, 0, tzinfo=timezone.utc)


def run_rule(events, **overrides) -> list:
    """The abandon-rate transitions the worker's rule raises for ``events``, batch by batch."""
    settings = load_settings(None, pipeline__data_dir="/nonexistent", **overrides)
    slot_rules = SlotRules(settings.slots, settings.zone)
    buckets = MinuteBuckets(settings, slot_rules)
    evaluator = AlertEvaluator(settings, None, buckets, slot_rules)  # type: ignore[arg-type]  # no warehouse read
    alerts = []
    for count, attempt in enumerate(events, 1):
        if buckets.add(attempt) is Verdict.COUNTED:
            evaluator.note_counted(attempt)
        if count % 2000 == 0:
            alerts += evaluator.observe(evaluator._pending)
            evaluator._pending = []
            buckets.take_dirty()
            buckets.take_counted()
            buckets.evict_closed()
    alerts += evaluator.observe(evaluator._pending)
    return [alert for alert in alerts if alert.rule is Rule.ABANDON_RATE]


def minutes_into(alert) -> float:
    return (alert.event_time - START).total_seconds() / 60


def test_the_score_weighs_each_abandon_against_each_kept_call():
    # Critical at 3 %, ratio 2: 1.5 % against 6 %. Each abandon adds ln 4, each kept call ln(0.94 / 0.985).
    assert evidence_rates(0.03, 2.0) == pytest.approx((0.015, 0.06))
    evidence = abandon_evidence([(8, 80)], 0.03, 2.0)
    assert evidence.score == pytest.approx(8 * math.log(4) + 72 * math.log(0.94 / 0.985))
    assert evidence.score == pytest.approx(7.72, abs=0.01)  # past the default decision interval, 7
    assert evidence[1:] == (8, 80, 1)
    assert abandon_evidence([(7, 80)], 0.03, 2.0).score < 7  # one fewer is not


def test_the_score_never_banks_credit_and_its_stretch_starts_after_the_last_zero():
    quiet_hour = [(1, 100)] * 60  # 1 %: each minute takes the score back to zero
    spike = [(6, 100)] * 3
    evidence = abandon_evidence(quiet_hour + spike, 0.03, 2.0)
    # A good hour does not offset the bad minutes: the score is the three spike minutes' alone.
    assert evidence.score == pytest.approx(3 * (6 * math.log(4) + 94 * math.log(0.94 / 0.985)))
    assert evidence[1:] == (18, 300, 3)
    assert abandon_evidence(quiet_hour, 0.03, 2.0) == (0.0, 0, 0, 0)


def test_a_check_decided_by_evidence_weighs_it_from_the_last_resolve_not_its_interval():
    # Ten minutes (03:00-03:09) of 4 abandons in 100 live answers: each minute adds 2.59 to the
    # warning score (1 % against 4 %) and 1.06 to the critical one (1.5 % against 6 %).
    minutes = tuple((int(T0.timestamp()) + 60 * n, 4.0, 100.0) for n in range(10))
    evidence = SequentialEvidence(minutes, (0.02, 0.03), (12.0, 7.0), 2.0)
    # An interval that says nothing either way: the evidence decides.
    check = Check(
        Rule.ABANDON_RATE, 0.04, 0.02, 0.03, 0.02, True, True, 1000, 15, interval=(0.0, 1.0), evidence=evidence
    )
    assert check.level() == "critical"  # 10.6 of 7
    assert check.level(since=T0 + timedelta(minutes=4, seconds=30)) == "warning"  # six minutes: 15.5 of 12, 6.3 of 7
    assert check.level(since=T0 + timedelta(minutes=6)) is None  # four: 10.4 and 4.2


def test_warning_then_critical_then_one_resolve_and_no_second_episode_from_the_same_evidence():
    # 100 live answers a minute: 1 % for 20 min, 3 % for 15, 5 % for 10, then 1 % for 90.
    phases = (Phase(20, 0.01), Phase(15, 0.03), Phase(10, 0.05), Phase(90, 0.01))
    alerts = run_rule(abandon_rate_phases("winback", START, phases, dials_per_minute=100))
    assert [(a.state, a.severity) for a in alerts] == [
        ("firing", "warning"),
        ("firing", "critical"),
        ("resolved", "critical"),
    ]
    warning, critical, resolved = alerts
    # Warning (1 % against 4 %): 3 of 100 add 3 ln 4 + 97 ln(0.96 / 0.99) = 1.17 a minute, 12 after
    # 11 minutes of 3 %. Critical (1.5 % against 6 %) falls at 3 % and climbs 2.49 a minute at 5 %: 7 after 3.
    assert 31 <= minutes_into(warning) < 32
    assert 38 <= minutes_into(critical) < 39
    # The reading is taken at the first call of minute 38, which the stretch includes.
    assert critical.detail == (
        "15 abandoned of 301 live answers in the last 4 min, 5.0 % (95 % CI 3.0–8.1 %); 51 of 1501 in the last 15 min"
    )
    # Its value is that stretch's rate, not the 15-minute window's 3.4 %; it resolves on the window.
    assert (critical.value, critical.sample, critical.window_minutes) == (15 / 301, 301, 15)
    # Resolved once the 15-minute window's upper bound is below 2 %; the hour of evidence the spike
    # left behind raises nothing after it, though the score over that hour is still past 7.
    assert 45 + 12 <= minutes_into(resolved) < 45 + 15 and resolved.value < 0.015


@pytest.mark.parametrize("seed", [1000, 1002, 1008])
def test_quiet_days_the_wilson_rule_raised_a_warning_on_stay_quiet(seed):
    # 24 h at a true 1 %, 10 live answers a minute: the 95 % Wilson lower bound re-read every minute
    # raised a warning on each of these days (7 abandoned of 151 live answers, 4.6 %, CI 2.3-9.3 %).
    events = abandon_rate_draws("steady", START, (Phase(24 * 60, 0.01),), live_answers_per_minute=10, seed=seed)
    assert run_rule(events) == []


def test_an_eight_percent_jump_is_critical_within_minutes_and_says_what_it_saw():
    phases = (Phase(120, 0.01), Phase(30, 0.08), Phase(60, 0.01))
    alerts = run_rule(abandon_rate_draws("spiky", START, phases, live_answers_per_minute=30, seed=2001))
    firing = [alert for alert in alerts if alert.state == "firing"]
    assert firing and firing[0].severity == "critical" and 120 <= minutes_into(firing[0]) <= 132
    # The stretch the evidence rests on is always above the critical level: 7 needs more than
    # 3.26 % + 4.9 abandons' worth (score 7 / ln 4 per abandon over the kept calls' pull).
    abandoned, rest = firing[0].detail.split(" abandoned of ", 1)
    answers = int(rest.split(" live answers")[0])
    assert int(abandoned) / answers > 0.03
    assert [alert.state for alert in alerts].count("resolved") == 1


def test_bad_evidence_settings_are_refused_with_the_key_named():
    with pytest.raises(ConfigError, match="abandon_evidence_ratio"):
        load_settings(None, alerts__rules__default__abandon_evidence_ratio=1.0)
    with pytest.raises(ConfigError, match="abandon_warning_evidence"):
        load_settings(None, alerts__rules__default__abandon_critical_evidence=0)
