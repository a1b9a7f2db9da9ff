"""An event id is one call. Re-sent with other content (another time, an order added) it
is refused as a conflicting duplicate, in another minute, after a restart, and when the
re-send is itself late and only the warehouse still knows the id."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import msgspec
import pytest

from core.deadletters import DeadLetter
from core.schema import CallAttempt, Lead, Outcome
from producers.publisher import EventPublisher
from streams.kafka_admin import read_topic
from warehouse.client import connect

pytestmark = pytest.mark.integration


def call(event_id: str, at: datetime, *, order: bool = False) -> CallAttempt:
    return CallAttempt(
        schema_version=1,
        event_id=event_id,
        campaign="winback",
        event_time=at,
        outcome=Outcome.CONNECTED,
        lead=Lead(segment="seniors"),
        ring_seconds=6.0,
        wait_seconds=0.4,
        talk_seconds=75.0,
        order=order,
        order_value=900.0 if order else 0.0,
    )


def publish(settings, events) -> None:
    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events)
    publisher.publish_all(events)
    publisher.close()


@pytest.mark.timeout(240)
def test_a_re_sent_event_id_with_other_content_is_never_counted_again(pipeline):
    settings = pipeline.settings
    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=40)
    first = call("dup-1", start, order=True)
    publish(
        settings,
        [
            first,
            call("dup-1", start + timedelta(seconds=120), order=True),  # the case
            first,  # an exact replay: a duplicate, as before
            *[call(f"ok-{n}", start + timedelta(seconds=130 + n)) for n in range(20)],
        ],
    )
    worker = pipeline.worker()
    health = worker.wait_until_caught_up()
    assert (health["counted"], health["duplicates"]) == (21, 1)
    assert health["dead_letters"] == {"conflicting_duplicate": 1}
    assert worker.stop() == 0

    # After a restart the id is restored with the call it was counted for; a re-send twenty
    # minutes on, and one so late that only the warehouse still knows the id, are refused too.
    publish(
        settings,
        [
            call("dup-1", start + timedelta(minutes=20), order=False),
            *[call(f"later-{n}", start + timedelta(minutes=40, seconds=n)) for n in range(20)],
        ],
    )
    worker = pipeline.worker()
    worker.wait_until_caught_up()
    publish(settings, [call("dup-1", start - timedelta(hours=2))])  # late: older than every kept minute
    health = worker.wait_until_caught_up()
    assert health["dead_letters"] == {"conflicting_duplicate": 2}
    assert health["counted"] == 20
    assert worker.stop() == 0

    letters = [msgspec.json.decode(raw, type=DeadLetter) for raw in read_topic(settings, settings.topics.dead_letters)]
    conflicts = [letter for letter in letters if letter.reason == "conflicting_duplicate"]
    assert len(conflicts) == 3 and all("dup-1" in letter.detail for letter in conflicts)
    client = connect(settings.warehouse_url)
    try:
        dials, orders = client.query("SELECT sum(dials), sum(orders) FROM minute_metrics FINAL").result_rows[0]
        landed = client.query("SELECT count() FROM call_attempts FINAL WHERE event_id = 'dup-1'").result_rows[0][0]
    finally:
        client.close()
    assert (dials, orders, landed) == (41, 1, 1)
