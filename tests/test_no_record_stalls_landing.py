"""No record can stall a landing step: a value the warehouse's column would refuse is refused
first, as a dead letter with its reason, and every valid event after it is counted and landed
(the real pipeline: tansu, a Faust worker, chDB)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from core.schema import CallAttempt, DialerState, Lead, Outcome, decode_record, encode_batch
from producers.publisher import EventPublisher
from warehouse.client import connect

pytestmark = pytest.mark.integration

UINT64_MAX = 2**64 - 1


def snapshot(campaign: str, at: datetime, **counts: int) -> bytes:
    """A dialer_state record, written by hand: the encoder would refuse counts this large."""
    fields = {"calls_ringing": 4, "calls_waiting": 1, **counts}
    numbers = ",".join(f'"{name}":{value}' for name, value in fields.items())
    return (
        f'{{"type":"dialer_state","schema_version":1,"event_id":"{uuid.uuid4()}","campaign":"{campaign}",'
        f'"event_time":"{at.isoformat().replace("+00:00", "Z")}","dial_level":2.5,{numbers}}}'
    ).encode()


def test_a_dialer_count_no_column_holds_is_refused_with_its_reason():
    now = datetime.now(timezone.utc)
    for counts in ({"calls_ringing": UINT64_MAX + 1}, {"calls_waiting": 10**30}, {"dialable_leads": 2**70}):
        events, rejections = decode_record(snapshot("floor-x", now, **counts))
        assert events == [] and [r.reason for r in rejections] == ["out_of_range"], counts
        (name,) = counts
        assert name in rejections[0].detail
    events, rejections = decode_record(snapshot("floor-x", now, dialable_leads=250_000))
    assert rejections == [] and isinstance(events[0], DialerState) and events[0].dialable_leads == 250_000


@pytest.mark.timeout(300)
def test_a_dialer_snapshot_with_a_count_past_uint64_does_not_stall_the_floor(pipeline):
    settings = pipeline.settings
    now = datetime.now(timezone.utc).replace(microsecond=0)
    calls = [
        CallAttempt(
            schema_version=1,
            event_id=str(uuid.uuid4()),
            campaign=f"campaign-{n % 3}",
            event_time=now - timedelta(minutes=20) + timedelta(seconds=2 * n),
            outcome=Outcome.CONNECTED if n % 4 else Outcome.NO_ANSWER,
            lead=Lead(segment="seniors"),
            ring_seconds=8.0,
            talk_seconds=60.0 if n % 4 else 0.0,
        )
        for n in range(300)
    ]
    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events, batch_events=50)
    topic = settings.topics.call_events
    publisher.producer.send(topic, key=b"huge", value=snapshot("huge", now - timedelta(minutes=21)))
    publisher.producer.send(
        topic, key=b"huge", value=snapshot("huge", now - timedelta(minutes=20), calls_ringing=UINT64_MAX + 1)
    )
    publisher.producer.send(
        topic, key=b"huge", value=snapshot("huge", now - timedelta(minutes=19), dialable_leads=10**25)
    )
    publisher.publish_all(calls)
    publisher.producer.send(topic, key=b"huge", value=snapshot("huge", now - timedelta(minutes=5), calls_waiting=3))
    publisher.producer.send(topic, key=b"tail", value=encode_batch(calls[:1]))  # a replay: counted once
    publisher.close()

    worker = pipeline.worker()
    health = worker.wait_until_caught_up(timeout_s=180)
    assert worker.stop() == 0
    assert health["counted"] == 300
    assert health["dead_letters"] == {"out_of_range": 2}

    client = connect(settings.warehouse_url)
    try:
        assert client.command("SELECT sum(dials) FROM minute_metrics FINAL WHERE campaign LIKE 'campaign-%'") == 300
        assert client.query(
            "SELECT calls_ringing, calls_waiting FROM dialer_snapshots WHERE campaign = 'huge' ORDER BY event_time"
        ).result_rows == [(4, 1), (4, 3)]
        reasons = client.query(
            "SELECT reason, detail FROM dead_letters FINAL WHERE source_topic = {topic:String} ORDER BY source_offset",
            parameters={"topic": topic},
        ).result_rows
        assert [reason for reason, _ in reasons] == ["out_of_range", "out_of_range"]
        assert "calls_ringing" in reasons[0][1] and "dialable_leads" in reasons[1][1]
    finally:
        client.close()
