"""An event id is one call across minutes and restarts (issue 25): an id re-sent later than the
lateness window with a *current* time is recognised by the worker's long memory of ids and
looked up in the warehouse, so it is never counted twice; an exact re-send is a duplicate. A
new id the memory takes for a known one (a Bloom filter's false positive) still counts."""

from __future__ import annotations

import signal
from datetime import datetime, timedelta, timezone

import msgspec
import pytest

from core.deadletters import DeadLetter
from core.schema import CallAttempt, Lead, Outcome
from producers.publisher import EventPublisher
from streams.kafka_admin import read_topic
from warehouse.client import connect

pytestmark = pytest.mark.integration


def call(event_id: str, at: datetime, *, order: bool = False, campaign: str = "winback") -> CallAttempt:
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
        order=order,
        order_value=900.0 if order else 0.0,
    )


def publish(settings, events) -> None:
    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events)
    publisher.publish_all(events)
    publisher.close()


def fillers(prefix: str, start: datetime, minutes: int) -> list[CallAttempt]:
    """A live campaign: one new call every 30 s for ``minutes`` from ``start``."""
    return [call(f"{prefix}-{n}", start + timedelta(seconds=30 * n)) for n in range(2 * minutes)]


def warehouse_figures(settings) -> tuple[int, int, int, int]:
    """Dials and orders as the reports sum them, and how many times each re-sent id landed."""
    client = connect(settings.warehouse_url)
    try:
        dials, orders = client.query("SELECT sum(dials), sum(orders) FROM minute_metrics FINAL").result_rows[0]
        landed = dict(
            client.query(
                "SELECT event_id, count() FROM call_attempts FINAL WHERE event_id IN ('dup-1', 'exact-1') "
                "GROUP BY event_id"
            ).result_rows
        )
    finally:
        client.close()
    return int(dials), int(orders), landed.get("dup-1", 0), landed.get("exact-1", 0)


@pytest.mark.timeout(300)
def test_a_re_send_15_minutes_on_is_recognised_while_live_and_after_a_restart(pipeline):
    settings = pipeline.settings
    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=90)
    publish(settings, [call("dup-1", start, order=True), call("exact-1", start), *fillers("a", start, 14)])
    worker = pipeline.worker()
    health = worker.wait_until_caught_up()
    assert health["counted"] == 2 + 28
    # The campaign has moved 14 minutes on: the lateness window no longer holds dup-1's id.

    # dup-1 again, with the time of the campaign's calls now (15 min on) and no order: the issue's
    # case. exact-1 again as it was: a duplicate.
    publish(
        settings,
        [
            *fillers("b", start + timedelta(minutes=14), 2),
            call("dup-1", start + timedelta(minutes=15)),
            call("exact-1", start),
        ],
    )
    health = worker.wait_until_caught_up()
    assert health["counted"] == 30 + 4
    assert health["duplicates"] == 1
    assert health["dead_letters"] == {"conflicting_duplicate": 1}
    assert health["ids_looked_up"] >= 1
    worker.stop(signal.SIGKILL)

    # After a restart the long memory is rebuilt from the warehouse. Calls first, so the restored
    # open window has forgotten dup-1's id before it comes again, 30 min on.
    worker = pipeline.worker()
    publish(settings, fillers("c", start + timedelta(minutes=16), 14))
    worker.wait_until_caught_up()
    publish(
        settings,
        [
            *fillers("d", start + timedelta(minutes=30), 2),
            call("dup-1", start + timedelta(minutes=30), order=True),
            call("exact-1", start),
        ],
    )
    health = worker.wait_until_caught_up()
    assert health["counted"] == 28 + 4
    assert health["duplicates"] == 1
    assert health["dead_letters"] == {"conflicting_duplicate": 1}
    assert worker.stop() == 0

    # The reports count dup-1 and exact-1 once each, dup-1 with its one order.
    assert warehouse_figures(settings) == (2 + 28 + 4 + 28 + 4, 1, 1, 1)
    letters = [msgspec.json.decode(raw, type=DeadLetter) for raw in read_topic(settings, settings.topics.dead_letters)]
    conflicts = [letter for letter in letters if letter.reason == "conflicting_duplicate"]
    assert len(conflicts) == 2
    # Each says what the id was counted for, as the warehouse holds it, and what came again.
    first_call = start.isoformat()
    assert all("dup-1" in letter.detail and first_call in letter.detail for letter in conflicts)
    assert "an order" in conflicts[0].detail and (start + timedelta(minutes=15)).isoformat() in conflicts[0].detail


@pytest.mark.timeout(240)
def test_new_ids_the_memory_takes_for_known_ones_still_count(pipeline):
    """Sized for one call an hour, the memory's filters fill up at once and take almost every new
    id for a known one: each is looked up, found nowhere, and counted in its own batch."""
    tiny = "[pipeline]\nduplicate_horizon_calls_per_hour = 1\n"
    pipeline.config_file.write_text(pipeline.config_file.read_text().replace("[pipeline]\n", tiny))
    settings = pipeline.settings
    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(minutes=30)
    calls = [
        call(f"new-{n}", start + timedelta(seconds=2 * n), order=n % 10 == 0, campaign=f"c{n % 3}") for n in range(300)
    ]
    publish(settings, [*calls, calls[150]])  # and one exact replay
    worker = pipeline.worker()
    health = worker.wait_until_caught_up()
    assert worker.stop() == 0
    assert health["ids_looked_up"] > 100  # the filters answered "may have been counted" that often
    assert (health["counted"], health["duplicates"], health["dead_letters"]) == (300, 1, {})
    client = connect(settings.warehouse_url)
    try:
        dials, orders = client.query("SELECT sum(dials), sum(orders) FROM minute_metrics FINAL").result_rows[0]
        landed = client.query("SELECT count(), uniqExact(event_id) FROM call_attempts FINAL").result_rows[0]
    finally:
        client.close()
    assert (dials, orders, tuple(landed)) == (300, 30, (300, 300))
