"""A 30-second warehouse outage while calls flow: the worker retries with backoff, stops
consuming and moving offsets, keeps its memory flat, and catches up exactly afterwards."""

from __future__ import annotations

import threading
import time

import pytest
from test_end_to_end import (
    assert_same_metrics,
    expected_by_campaign_and_slot,
    landed_by_campaign_and_slot,
    seeded_events,
)

from producers.publisher import EventPublisher
from warehouse.faults import SWITCH_NAME

pytestmark = pytest.mark.integration


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        line = next(line for line in status if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def test_a_thirty_second_warehouse_outage_loses_and_doubles_nothing(pipeline, tmp_path, monkeypatch):
    fault_dir = tmp_path / "faults"
    fault_dir.mkdir()
    monkeypatch.setenv("CALLPULSE_FAULT_DIR", str(fault_dir))
    settings = pipeline.settings
    events = seeded_events(settings, seed=21, hours=1.5)
    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events)
    worker = pipeline.worker()
    worker.wait_until(lambda h: h["ready"])

    # Calls keep arriving for the whole drill, about 60 seconds.
    def produce():
        per_tick = len(events) // 120
        for start in range(0, len(events), per_tick):
            publisher.publish_all(events[start : start + per_tick])
            publisher.flush()
            time.sleep(0.5)

    producing = threading.Thread(target=produce)
    producing.start()
    before = worker.wait_until(lambda h: h["counted"] > 0 and h["last_landed_at"])
    switch = fault_dir / SWITCH_NAME
    switch.touch()
    time.sleep(3)  # the batch in flight meets the fault
    frozen = worker.health()
    samples = []
    for _ in range(27):
        time.sleep(1)
        health = worker.health()
        samples.append((health["records"], health["landed_offsets"], rss_mb(worker.proc.pid)))
    switch.unlink()
    print(
        f"\noutage: {len(samples)} s sampled, records held at {frozen['records']:,}, "
        f"worker RSS {min(r for *_, r in samples):.0f}-{max(r for *_, r in samples):.0f} MB"
    )

    # While the warehouse was down nothing landed, no offset moved and no more was read.
    assert all(offsets == frozen["landed_offsets"] for _, offsets, _ in samples)
    assert all(records == frozen["records"] for records, _, _ in samples)
    assert max(rss for _, _, rss in samples) - min(rss for _, _, rss in samples) < 30
    assert "retrying in" in worker.log()

    producing.join()
    publisher.close()
    health = worker.wait_until_caught_up(timeout_s=180)
    assert worker.stop() == 0
    assert health["counted"] == len(events) and health["duplicates"] == 0 and health["counted"] > before["counted"]
    assert_same_metrics(landed_by_campaign_and_slot(settings), expected_by_campaign_and_slot(events, settings))
    print(f"after the outage: {len(events):,} events counted exactly")
