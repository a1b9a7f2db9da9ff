"""The response-model drift alert, read by the worker's own evaluator from a real chDB:
a campaign whose orders stopped following the lead scores raises it, a calibrated one
does not."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from warehouse_helpers import land_counted, migrated_warehouse

from core.alerts import Rule
from core.config import load_settings
from core.slots import SlotRules
from producers.simulator import CampaignProfile, DialerSimulator
from streams.alerting import AlertEvaluator, triggers_of

SETTINGS = load_settings()
RULES = SlotRules(SETTINGS.slots, SETTINGS.zone)
START = datetime(2026, 11, 20, 3, 0, tzinfo=timezone.utc)  # 12:00 in Tokyo
PROFILES = (
    CampaignProfile(
        "calibrated", agents=40, lines_per_free_agent=2.0, list_quality=1.2, conversion=0.15, mean_talk_seconds=110
    ),
    # Orders drift to the campaign average over the first hour: the scores stop ranking buyers.
    CampaignProfile(
        "decayed",
        agents=40,
        lines_per_free_agent=2.0,
        list_quality=1.2,
        conversion=0.15,
        mean_talk_seconds=110,
        model_decay_hours=1,
    ),
)


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory):
    events = list(
        DialerSimulator(RULES, b"k" * 32, seed=3, start=START, campaigns=PROFILES).events(sim_seconds=5 * 3600)
    )
    with migrated_warehouse(tmp_path_factory.mktemp("drift")) as client:
        buckets = land_counted(client, events, SETTINGS, RULES)
        evaluator = AlertEvaluator(SETTINGS, client, buckets, RULES)
        readings = evaluator.read(triggers_of(events))
        yield readings, evaluator.observe(readings)


def drift_check(readings, campaign):
    return next(
        check
        for name, _, checks, _ in readings
        if name == campaign
        for check in checks
        if check.rule is Rule.MODEL_DRIFT
    )


def test_a_decayed_response_model_raises_a_drift_alert_and_a_calibrated_one_does_not(evaluation):
    readings, alerts = evaluation
    drift_alerts = [(a.campaign, a.state) for a in alerts if a.rule is Rule.MODEL_DRIFT]
    assert drift_alerts == [("decayed", "firing")]

    decayed, calibrated = drift_check(readings, "decayed"), drift_check(readings, "calibrated")
    assert decayed.sample >= SETTINGS.alert_rules_for("decayed").model_drift_min_calls
    assert decayed.value >= 0.02 and "re-score the list" in decayed.detail
    assert calibrated.enough_data and calibrated.value == 0.0  # its gap is within chance
    alert = next(a for a in alerts if a.rule is Rule.MODEL_DRIFT)
    assert alert.window_minutes == 7 * 24 * 60
    assert alert.headline().startswith(f"{alert.severity.upper()} · decayed · response-model calibration error")
