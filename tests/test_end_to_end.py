"""End to end on real parts: tansu broker -> Faust worker -> chDB, checked against pandas."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import msgspec
import numpy as np
import pandas as pd
import pytest

from core.config import Settings
from core.schema import Outcome, encode_event
from core.slots import SlotRules
from producers.publisher import EventPublisher
from producers.simulator import DialerSimulator
from warehouse.client import connect
from warehouse.queries.alerts import dead_letter_counts
from warehouse.queries.reports import late_event_counts, metrics_by

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 23, 2, 30, tzinfo=timezone.utc)  # 11:30 in Tokyo: morning, then midday
END = datetime(2026, 11, 24, tzinfo=timezone.utc)


def seeded_events(settings: Settings, seed: int, hours: float):
    simulator = DialerSimulator(SlotRules(settings.slots, settings.zone), b"test-key", seed=seed, start=START)
    return list(simulator.events(sim_seconds=hours * 3600))


def expected_by_campaign_and_slot(events, settings: Settings) -> pd.DataFrame:
    """An independent pandas computation of the landed metrics from the raw events."""
    frame = pd.DataFrame(
        {
            "campaign": [e.campaign for e in events],
            "event_time": pd.to_datetime([e.event_time for e in events], utc=True),
            "outcome": [e.outcome.value for e in events],
            "ring": [e.ring_seconds for e in events],
            "wait": [e.wait_seconds for e in events],
            "talk": [e.talk_seconds for e in events],
            "order": [e.order for e in events],
        }
    )
    local_hour = frame["event_time"].dt.tz_convert(settings.pipeline.timezone).dt.hour
    frame["slot"] = "off_hours"
    for slot in settings.slots:
        frame.loc[(local_hour >= slot.start_hour) & (local_hour < slot.end_hour), "slot"] = slot.name
    model = settings.cost_model["default"]
    connected = frame["outcome"] == "connected"
    abandoned = frame["outcome"] == "abandoned"
    frame["dials"] = 1
    frame["connected"] = connected.astype(int)
    frame["abandoned"] = abandoned.astype(int)
    frame["contacts"] = frame["connected"] + frame["abandoned"]
    frame["orders"] = (connected & frame["order"]).astype(int)
    frame["talk_seconds"] = frame["talk"].where(connected, 0.0)
    frame["cost"] = (
        model.cost_per_attempt
        + (frame["ring"] + frame["wait"] + frame["talk"]) / 60 * model.cost_per_minute
        + frame["talk"] / 3600 * model.agent_cost_per_hour
    )
    sums = frame.groupby(["campaign", "slot"])[
        ["dials", "contacts", "connected", "abandoned", "orders", "cost", "talk_seconds"]
    ].sum()
    sums["contact_rate"] = sums["contacts"] / sums["dials"]
    sums["abandon_rate"] = sums["abandoned"] / sums["contacts"]
    return sums.sort_index()


def landed_by_campaign_and_slot(settings: Settings) -> pd.DataFrame:
    client = connect(settings.warehouse_url)
    try:
        landed = metrics_by(client, ["campaign", "slot"], START, END)
    finally:
        client.close()
    return landed.set_index(["campaign", "slot"]).sort_index()


def assert_same_metrics(landed: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(landed.index) == list(expected.index)
    for column in ("dials", "contacts", "connected", "abandoned", "orders"):
        assert landed[column].astype(int).tolist() == expected[column].astype(int).tolist(), column
    for column in ("cost", "talk_seconds", "contact_rate", "abandon_rate"):
        np.testing.assert_allclose(
            landed[column].to_numpy(float), expected[column].to_numpy(float), rtol=1e-9, err_msg=column
        )


def test_seeded_events_land_exactly_as_pandas_computes_them(pipeline):
    settings = pipeline.settings
    events = seeded_events(settings, seed=42, hours=1.5)
    assert len(events) > 5000
    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events)
    publisher.publish_all(events[:3000])
    publisher.flush()  # else the replay below can overtake the tail and make it genuinely late
    # A producer retry: the same 500 events again, packed as one batch record per campaign.
    replay = EventPublisher(settings.bootstrap_servers, settings.topics.call_events, batch_events=100)
    replay.publish_all(events[2500:3000])
    replay.close()
    publisher.publish_all(events[3000:])
    publisher.close()
    assert publisher.sent_records == len(events)

    worker = pipeline.worker()
    health = worker.wait_until_caught_up()
    assert worker.stop() == 0
    assert health["counted"] == len(events), json.dumps(health)
    assert health["duplicates"] == 500
    assert health["dead_letters"] == {}

    expected = expected_by_campaign_and_slot(events, settings)
    assert set(expected.index.get_level_values("slot")) >= {"morning", "midday"}
    assert_same_metrics(landed_by_campaign_and_slot(settings), expected)


def test_killed_worker_restarts_without_double_counting(pipeline):
    """SIGKILL mid-stream, three times: no flush, no commit. Each restart resumes from the
    offsets landed in the warehouse and rebuilds its open buckets, so every event counts
    exactly once."""
    settings = pipeline.settings
    events = seeded_events(settings, seed=3, hours=1.0)
    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events)
    quarter = len(events) // 4
    for round_ in range(3):
        publisher.publish_all(events[round_ * quarter : (round_ + 1) * quarter])
        publisher.flush()
        worker = pipeline.worker()
        # Killed once it has landed part of what is waiting, so a batch is in flight.
        worker.wait_until(lambda h: h["records"] >= quarter // 3 and h["last_landed_at"])
        worker.stop(signal.SIGKILL)

    publisher.publish_all(events[3 * quarter :])
    publisher.close()
    last = pipeline.worker()
    health = last.wait_until_caught_up()
    assert last.stop() == 0
    assert health["dead_letters"] == {}
    assert_same_metrics(landed_by_campaign_and_slot(settings), expected_by_campaign_and_slot(events, settings))


def test_bad_records_go_to_dead_letters_and_valid_ones_still_count(pipeline):
    settings = pipeline.settings
    events = seeded_events(settings, seed=5, hours=0.2)
    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events)
    producer = publisher.producer
    producer.send(settings.topics.call_events, key=b"x", value=b"{not json")
    producer.send(settings.topics.call_events, key=b"x", value=b"\xff\xfe binary")
    wrong_version = encode_event(events[0]).replace(b'"schema_version":1', b'"schema_version":9')
    producer.send(settings.topics.call_events, key=b"x", value=wrong_version)
    negative = encode_event(events[1]).replace(b'"ring_seconds":', b'"ring_seconds":-')
    producer.send(settings.topics.call_events, key=b"x", value=b"[" + negative + b"," + encode_event(events[1]) + b"]")
    publisher.publish_all(events[2:])
    # An abandoned call an hour older than its campaign's newest: past the 10-minute lateness.
    newest = max(e.event_time for e in events if e.campaign == events[-1].campaign)
    straggler = msgspec.structs.replace(
        events[-1],
        event_id="straggler-1",
        outcome=Outcome.ABANDONED,
        talk_seconds=0.0,
        order=False,
        event_time=newest - timedelta(hours=1),
    )
    publisher.publish(straggler)
    publisher.close()

    worker = pipeline.worker()
    health = worker.wait_until_caught_up()
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
    assert worker.stop() == 0
    assert status.returncode == 0, status.stderr
    assert "lag 0 record(s)" in status.stdout and "dead letters since the worker started (5)" in status.stdout
    assert re.search(r"invalid_json\s+│\s+2\s+│\s+not JSON", status.stdout), status.stdout
    assert health["counted"] == len(events) - 1  # events[0] only came with a wrong version
    assert health["dead_letters"] == {
        "invalid_json": 2,
        "unsupported_schema_version": 1,
        "negative_duration": 1,
        "late_event": 1,
    }
    letters = read_dead_letters(settings)
    assert sorted(letter["reason"] for letter in letters) == [
        "invalid_json",
        "invalid_json",
        "late_event",
        "negative_duration",
        "unsupported_schema_version",
    ]
    assert all(letter["source_topic"] == settings.topics.call_events for letter in letters)
    violation = next(letter for letter in letters if letter["reason"] == "negative_duration")
    assert violation["batch_index"] == 0 and "ring_seconds" in violation["detail"]

    client = connect(settings.warehouse_url)
    try:
        late = late_event_counts(client, START - timedelta(days=1), END)
        refused = dead_letter_counts(client, datetime.now(timezone.utc))
    finally:
        client.close()
    # What the Alerts page's "Rejected records" table shows.
    assert dict(zip(refused["reason"], refused["last_hour"])) == {
        "invalid_json": 2,
        "unsupported_schema_version": 1,
        "negative_duration": 1,
        "late_event": 1,
    }
    assert late[["campaign", "late_events", "late_abandoned"]].values.tolist() == [[straggler.campaign, 1, 1]]


def read_dead_letters(settings: Settings) -> list[dict]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, consumer_timeout_ms=3000, enable_auto_commit=False
    )
    try:
        consumer.assign([TopicPartition(settings.topics.dead_letters, 0)])
        consumer.seek_to_beginning()
        return [json.loads(record.value) for record in consumer]
    finally:
        consumer.close()


def test_a_sigterm_stop_lands_what_it_holds_and_the_restart_is_exact(pipeline):
    """SIGTERM mid-stream is a graceful stop: exit 0, and everything consumed is landed
    together with its offsets, so the warehouse holds exactly one attempt per consumed
    record; the restart carries on from there and the totals are exact."""
    settings = pipeline.settings
    events = seeded_events(settings, seed=8, hours=1.0)
    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events)
    cut = len(events) * 3 // 5
    publisher.publish_all(events[:cut])
    publisher.flush()
    worker = pipeline.worker()
    worker.wait_until(lambda h: h["records"] >= len(events) // 5 and h["last_landed_at"])
    assert worker.stop(signal.SIGTERM) == 0

    client = connect(settings.warehouse_url)
    try:
        landed_attempts = client.command("SELECT count() FROM call_attempts FINAL")
        offsets = client.query(
            "SELECT partition, argMax(next_offset, version) FROM consumed_offsets GROUP BY partition"
        ).result_rows
    finally:
        client.close()
    # One event per record here: every consumed record is a landed attempt, and no more.
    assert landed_attempts == sum(offset for _, offset in offsets) > 0

    publisher.publish_all(events[cut:])
    publisher.close()
    restarted = pipeline.worker()
    health = restarted.wait_until_caught_up()
    assert restarted.stop(signal.SIGTERM) == 0
    assert health["counted"] == len(events) - landed_attempts and health["duplicates"] == 0
    assert_same_metrics(landed_by_campaign_and_slot(settings), expected_by_campaign_and_slot(events, settings))
