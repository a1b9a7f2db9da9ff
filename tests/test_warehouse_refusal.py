"""A call the warehouse refuses while it answers cannot stall the stream: after its tries the
worker lands the batch's calls in halves, sets the refused call aside as a warehouse_refused
dead letter (uncounted, its record named) and counts everything else, the calls of the same
record included (real broker, real worker, real chDB refusing an insert by a constraint)."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta, timezone

import msgspec
import pytest

from core.deadletters import DeadLetter
from core.schema import CallAttempt, Lead, Outcome, encode_batch
from producers.publisher import EventPublisher
from streams.kafka_admin import read_topic
from warehouse.client import connect

pytestmark = pytest.mark.integration

REFUSED = "refused-call-7"


def call(event_id: str, campaign: str, at: datetime) -> CallAttempt:
    return CallAttempt(
        schema_version=1,
        event_id=event_id,
        campaign=campaign,
        event_time=at,
        outcome=Outcome.CONNECTED,
        lead=Lead(segment="seniors"),
        ring_seconds=6.0,
        wait_seconds=0.4,
        talk_seconds=75.0,
    )


def refuse_one_call(warehouse_url: str) -> None:
    """A real refusal: a constraint on call_attempts that one event id breaks, set in a process
    of its own (only one process may open the embedded warehouse, and this one stays free)."""
    script = (
        "import sys; from warehouse.client import connect; from warehouse.migrate import migrate; "
        "client = connect(sys.argv[1]); migrate(client); "
        f"client.command(\"ALTER TABLE call_attempts ADD CONSTRAINT refuse_one CHECK event_id != '{REFUSED}'\")"
    )
    subprocess.run([sys.executable, "-c", script, warehouse_url], check=True, timeout=120)


@pytest.mark.timeout(300)
def test_a_call_the_warehouse_refuses_is_set_aside_and_the_rest_of_the_stream_counts(pipeline):
    settings = pipeline.settings
    refuse_one_call(settings.warehouse_url)
    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=30)
    before = [call(f"before-{n}", f"campaign-{n % 3}", start + timedelta(seconds=n)) for n in range(300)]
    # One record: the refused call between two calls of its campaign and minute.
    record = [
        call("same-record-1", "campaign-0", start + timedelta(seconds=400)),
        call(REFUSED, "campaign-0", start + timedelta(seconds=401)),
        call("same-record-2", "campaign-0", start + timedelta(seconds=402)),
    ]
    after = [call(f"after-{n}", f"campaign-{n % 3}", start + timedelta(seconds=500 + n)) for n in range(300)]
    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events, batch_events=50)
    publisher.publish_all(before)
    publisher.producer.send(settings.topics.call_events, key=b"campaign-0", value=encode_batch(record))
    publisher.publish_all(after)
    publisher.close()

    worker = pipeline.worker()
    health = worker.wait_until_caught_up(timeout_s=180)
    assert worker.stop() == 0
    assert health["counted"] == 602
    assert health["dead_letters"] == {"warehouse_refused": 1}

    letters = [msgspec.json.decode(raw, type=DeadLetter) for raw in read_topic(settings, settings.topics.dead_letters)]
    assert [letter.reason for letter in letters] == ["warehouse_refused"]
    (letter,) = letters
    assert REFUSED in letter.detail and "refuse_one" in letter.detail  # what the warehouse said
    assert msgspec.json.decode(letter.original)["event_id"] == REFUSED
    assert letter.source_topic == settings.topics.call_events and letter.source_offset >= 0

    client = connect(settings.warehouse_url)
    try:
        dials = client.query("SELECT sum(dials) FROM minute_metrics FINAL").result_rows[0][0]
        refused_minute = client.query(
            "SELECT sum(dials) FROM minute_metrics FINAL WHERE campaign = 'campaign-0' AND minute = {m:DateTime}",
            parameters={"m": (start + timedelta(seconds=401)).replace(second=0, tzinfo=None)},
        ).result_rows[0][0]
        attempts = client.query(
            "SELECT count(), countIf(event_id = {id:String}) FROM call_attempts FINAL", parameters={"id": REFUSED}
        ).result_rows[0]
        stored = client.query("SELECT reason FROM dead_letters").result_rows
    finally:
        client.close()
    assert dials == 602 and tuple(attempts) == (602, 0)
    # The refused call's minute counts the two calls of its record that landed, not three.
    expected_in_minute = 2 + sum(
        1
        for event in before + after
        if event.campaign == "campaign-0"
        and event.event_time.replace(second=0) == (start + timedelta(seconds=401)).replace(second=0)
    )
    assert refused_minute == expected_in_minute
    assert stored == [("warehouse_refused",)]
