"""Nothing valid can stall landing: a batch whose calls span more months than the
warehouse takes in one insert lands in blocks, and a stop during a failing landing is
not held by the backoff."""

from __future__ import annotations

import signal
import time
import uuid
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from core.schema import CallAttempt, Lead, Outcome, encode_batch
from producers.publisher import EventPublisher
from warehouse.client import connect
from warehouse.faults import SWITCH_NAME
from warehouse.landing import MONTHS_PER_INSERT, month_blocks, months_of_epoch_seconds

pytestmark = pytest.mark.integration


def call(campaign: str, at: datetime, *, order: bool = False) -> CallAttempt:
    return CallAttempt(
        schema_version=1,
        event_id=str(uuid.uuid4()),
        campaign=campaign,
        event_time=at,
        outcome=Outcome.CONNECTED,
        lead=Lead(segment="seniors"),
        ring_seconds=8.0,
        wait_seconds=0.5,
        talk_seconds=90.0,
        order=order,
        order_value=1200.0 if order else 0.0,
    )


def test_month_blocks_keep_each_insert_within_the_partition_limit():
    start = datetime(2000, 1, 15, tzinfo=timezone.utc)
    minutes = [int((start + timedelta(days=30.44 * n)).timestamp()) // 60 * 60 for n in range(250)]
    months = months_of_epoch_seconds(minutes)
    blocks = month_blocks(months)
    assert blocks is not None and len(blocks) == 3
    assert all(len(np.unique(months[indices])) <= MONTHS_PER_INSERT for indices in blocks)
    assert sorted(np.concatenate(blocks).tolist()) == list(range(250)), "every row in exactly one block"
    assert month_blocks(months[:MONTHS_PER_INSERT]) is None  # one insert will do


@pytest.mark.timeout(300)
def test_one_record_spanning_150_months_lands_and_the_calls_after_it_count(pipeline):
    settings = pipeline.settings
    old = [
        call("archive-replay", datetime(2000 + n // 12, n % 12 + 1, 10, 3, tzinfo=timezone.utc), order=n % 10 == 0)
        for n in range(150)
    ]  # 2000-01 to 2012-06, one month apart, in one record
    now = datetime.now(timezone.utc).replace(microsecond=0)
    recent = [
        call(f"campaign-{n % 4}", now - timedelta(minutes=50) + timedelta(seconds=3 * n), order=n % 7 == 0)
        for n in range(1000)
    ]
    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events, batch_events=50)
    publisher.producer.send(settings.topics.call_events, key=b"archive-replay", value=encode_batch(old))
    publisher.publish_all(recent)
    publisher.close()

    worker = pipeline.worker()
    health = worker.wait_until_caught_up(timeout_s=180)
    assert worker.stop() == 0
    assert health["counted"] == 1150 and not health["dead_letters"]

    client = connect(settings.warehouse_url)
    try:
        months, dials, orders = client.query(
            "SELECT uniqExact(toYYYYMM(minute)), sum(dials), sum(orders) FROM minute_metrics FINAL "
            "WHERE campaign = 'archive-replay'"
        ).result_rows[0]
        recent_dials = client.query(
            "SELECT sum(dials) FROM minute_metrics FINAL WHERE campaign LIKE 'campaign-%'"
        ).result_rows[0][0]
    finally:
        client.close()
    assert (months, dials, orders) == (150, 150, 15)
    assert recent_dials == 1000


@pytest.mark.timeout(180)
def test_a_stop_while_landing_fails_is_not_held_by_the_backoff(pipeline, tmp_path, monkeypatch):
    fault_dir = tmp_path / "faults"
    fault_dir.mkdir()
    monkeypatch.setenv("CALLPULSE_FAULT_DIR", str(fault_dir))
    settings = pipeline.settings
    worker = pipeline.worker()
    worker.wait_until(lambda h: h["ready"])
    (fault_dir / SWITCH_NAME).touch()
    now = datetime.now(timezone.utc)
    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events)
    publisher.publish_all(call("outage", now - timedelta(seconds=n)) for n in range(20))
    publisher.close()
    deadline = time.monotonic() + 60
    while worker.log().count("retrying in") < 5:  # the backoff has grown to several seconds
        assert time.monotonic() < deadline, worker.log()
        time.sleep(0.5)
    stopping = time.monotonic()
    worker.proc.send_signal(signal.SIGTERM)
    try:
        code = worker.proc.wait(60)
    except Exception:
        print(worker.log())
        raise
    took = time.monotonic() - stopping
    print(f"\nSIGTERM during a failing landing: exited {code} after {took:.1f} s")
    assert code != 0, "the unlanded batch is never acknowledged"
    assert took < 12
