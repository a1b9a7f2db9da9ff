"""Time that cannot be poisoned: a call stamped hours ahead (a dialer with a wrong clock or
zone) is refused and raises a clock_skew warning, and never makes the correct calls after it
late; a warehouse where an earlier version landed such calls recovers on the next start; a
sped-up simulator never stamps a call ahead of the clock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

import pytest

from core.alerts import decode_alert
from core.config import load_settings
from core.schema import CallAttempt, Lead, Outcome
from core.slots import SlotRules
from producers.publisher import EventPublisher
from producers.run_simulator import run_simulation, simulation_start
from producers.simulator import DialerSimulator
from streams.kafka_admin import read_topic
from warehouse.client import connect
from warehouse.queries.alerts import alert_history
from warehouse.queries.reports import metrics_by

CAMPAIGN = "wrong-clock"


def call(event_id: str, moment: datetime, outcome: Outcome = Outcome.NO_ANSWER) -> CallAttempt:
    return CallAttempt(
        schema_version=1,
        event_id=event_id,
        campaign=CAMPAIGN,
        event_time=moment,
        outcome=outcome,
        lead=Lead(segment="seniors"),
        ring_seconds=20.0,
    )


def publish(settings, events: list[CallAttempt]) -> None:
    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events)
    publisher.publish_all(events)
    publisher.close()


def correct_calls(prefix: str, count: int, until: datetime, spacing_s: float = 1.0) -> list[CallAttempt]:
    """``count`` calls stamped right, one every ``spacing_s`` seconds up to ``until``, oldest first."""
    return [call(f"{prefix}-{n}", until - timedelta(seconds=spacing_s * (count - 1 - n))) for n in range(count)]


def dials_landed(settings) -> int:
    now = datetime.now(timezone.utc)
    client = connect(settings.warehouse_url)
    try:
        frame = metrics_by(client, ["campaign"], now - timedelta(days=1), now + timedelta(days=1))
    finally:
        client.close()
    return int(frame.loc[frame["campaign"] == CAMPAIGN, "dials"].sum())


@pytest.mark.integration
def test_one_call_stamped_three_hours_ahead_is_refused_warned_about_and_silences_nothing(pipeline):
    with pipeline.config_file.open("a") as config:  # a quiet period short enough to wait for
        config.write("\n[alerts.rules.default]\nclock_skew_quiet_minutes = 0.1\n")
    settings = pipeline.settings
    now = datetime.now(timezone.utc)
    skewed = call("three-hours-ahead", now + timedelta(hours=3))
    publish(settings, [skewed, *correct_calls("right", 200, now)])

    worker = pipeline.worker()
    health = worker.wait_until_caught_up()
    assert health["counted"] == 200, json.dumps(health)
    assert health["late_events"] == 0
    assert health["dead_letters"] == {"future_event_time": 1}
    firing = worker.wait_until(lambda h: h["alerts_firing"] == 1, timeout_s=30)

    # `callpulse status` shows the refused call by its reason.
    status = subprocess.run(
        [
            sys.executable,
            "-m",
            "callpulse",
            "--config",
            str(pipeline.config_file),
            "status",
            "--health-url",
            f"http://127.0.0.1:{worker.health_port}/health",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 0, status.stderr
    assert "future_event_time" in status.stdout and "counted 200" in status.stdout, status.stdout

    # The campaign's clock is right again: its calls go on for the quiet period (6 s here) with
    # no call stamped ahead, and the warning resolves.
    time.sleep(7)
    publish(settings, correct_calls("later", 10, datetime.now(timezone.utc)))
    health = worker.wait_until(lambda h: h["counted"] == 210 and h["alerts_firing"] == 0, timeout_s=60)
    assert worker.stop() == 0
    assert health["late_events"] == 0 and firing["alerts_sent"] == 1

    alerts = [decode_alert(raw) for raw in read_topic(settings, settings.topics.alerts)]
    assert [(a.rule.value, a.campaign, a.state, a.severity) for a in alerts] == [
        ("clock_skew", CAMPAIGN, "firing", "warning"),
        ("clock_skew", CAMPAIGN, "resolved", "warning"),
    ]
    raised, resolved = alerts
    assert raised.value == pytest.approx(3 * 3600, abs=120) and raised.threshold == 300
    assert raised.trigger_event_id == "three-hours-ahead"
    # The detail says how far ahead the clock was and names the setting.
    assert "up to 3.0 h ahead of the worker's clock" in raised.detail
    assert "pipeline.max_future_seconds = 300 s" in raised.detail
    assert raised.headline().startswith(f"WARNING · {CAMPAIGN} · clock skew 3.0 h ahead")
    assert resolved.value == 0 and resolved.alert_id == raised.alert_id
    assert (resolved.event_time - raised.event_time).total_seconds() == pytest.approx(6, abs=0.01)

    client = connect(settings.warehouse_url)
    try:
        history = alert_history(client)
    finally:
        client.close()
    assert sorted(zip(history["rule"], history["state"])) == [("clock_skew", "firing"), ("clock_skew", "resolved")]
    assert dials_landed(settings) == 210


@pytest.mark.integration
def test_a_warehouse_with_calls_landed_in_the_future_recovers_on_the_next_start(pipeline):
    """An earlier version accepted calls stamped up to a day ahead and landed them; its
    restart then took the campaign's watermark from them and refused every correct call as
    late. Here a worker with that day's tolerance lands 20 correct calls and one three hours
    ahead; the next start, with today's defaults, counts the correct calls that follow, into
    the same minutes as the first 20."""
    settings = pipeline.settings
    default_config = pipeline.config_file.read_text()
    pipeline.config_file.write_text(default_config.replace("[pipeline]\n", "[pipeline]\nmax_future_seconds = 86400\n"))
    now = datetime.now(timezone.utc)
    publish(
        settings,
        [
            *correct_calls("before", 20, now - timedelta(seconds=60), spacing_s=3),
            call("three-hours-ahead", now + timedelta(hours=3)),
        ],
    )
    earlier = pipeline.worker()
    health = earlier.wait_until_caught_up()
    assert earlier.stop() == 0
    assert health["counted"] == 21 and health["dead_letters"] == {}, json.dumps(health)

    pipeline.config_file.write_text(default_config)  # max_future_seconds back to its default, 300
    assert load_settings(pipeline.config_file).pipeline.max_future_seconds == 300
    publish(settings, correct_calls("after", 200, datetime.now(timezone.utc), spacing_s=0.3))
    restarted = pipeline.worker()
    health = restarted.wait_until_caught_up()
    assert restarted.stop() == 0
    assert health["counted"] == 200, json.dumps(health)
    assert health["late_events"] == 0 and health["dead_letters"] == {}
    # The first run's minutes were restored before the new calls counted into them.
    assert dials_landed(settings) == 221


def test_a_sped_up_simulation_with_a_duration_never_stamps_a_call_ahead_of_the_clock():
    settings = load_settings()
    speed, duration = 600.0, 3.0
    start = simulation_start(speed, duration)
    simulator = DialerSimulator(SlotRules(settings.slots, settings.zone), b"k" * 32, seed=3, start=start)
    published: list[tuple[datetime, datetime]] = []
    run_simulation(
        simulator,
        lambda event: published.append((event.event_time, datetime.now(timezone.utc))),
        speed=speed,
        duration_s=duration,
    )
    assert len(published) > 1000
    assert all(event_time <= sent_at for event_time, sent_at in published)
    # A window of duration x speed simulated seconds that ends as the run does.
    assert (datetime.now(timezone.utc) - start).total_seconds() == pytest.approx(duration * speed, abs=15)
    assert published[-1][0] > datetime.now(timezone.utc) - timedelta(minutes=5)


def test_a_sped_up_simulation_without_a_duration_backfills_then_goes_on_in_real_time():
    settings = load_settings()
    start = simulation_start(3600.0, None, backfill=timedelta(minutes=20))
    assert (datetime.now(timezone.utc) - start).total_seconds() == pytest.approx(1200, abs=2)
    simulator = DialerSimulator(SlotRules(settings.slots, settings.zone), b"k" * 32, seed=4, start=start)
    published: list[tuple[datetime, datetime]] = []
    # 20 simulated minutes take a third of a second at 3600x; the rest of the run is real time.
    run_simulation(
        simulator,
        lambda event: published.append((event.event_time, datetime.now(timezone.utc))),
        speed=3600.0,
        duration_s=4.0,
    )
    assert all(event_time <= sent_at for event_time, sent_at in published)
    assert published[-1][0] > datetime.now(timezone.utc) - timedelta(seconds=30)
    with pytest.raises(ValueError, match="in the future"):
        simulation_start(10.0, None, start=datetime.now(timezone.utc) + timedelta(hours=1))


def test_the_simulate_command_at_speed_writes_no_call_ahead_of_the_clock(tmp_path):
    began = datetime.now(timezone.utc)
    out = tmp_path / "calls.jsonl"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "callpulse",
            "--data-dir",
            str(tmp_path / "var"),
            "simulate",
            "--speed",
            "600",
            "--duration",
            "3",
            "--output",
            str(out),
        ],
        check=True,
        capture_output=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "CALLPULSE_HMAC_KEY": "test-key"},
    )
    ended = datetime.now(timezone.utc)
    times = [datetime.fromisoformat(json.loads(line)["event_time"]) for line in out.read_text().splitlines()]
    assert len(times) > 1000 and max(times) <= ended
    assert min(times) >= began - timedelta(seconds=3 * 600 + 5)
