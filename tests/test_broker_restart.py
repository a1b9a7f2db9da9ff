"""The embedded broker keeps nothing across a restart: its topics come back empty, under a
new topic id, and offsets start again at 0. Offsets the warehouse landed for the old
topic must not be applied to the new one, whatever producers publish before the worker
has looked."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from conftest import new_pipeline

from callpulse.embedded import EmbeddedBroker, free_port
from core.slots import SlotRules
from producers.publisher import EventPublisher
from producers.simulator import DialerSimulator
from streams.kafka_admin import ensure_topics, topic_id
from warehouse.client import connect

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 23, 0, 30, tzinfo=timezone.utc)  # 09:30 in Tokyo


def publish(settings, events) -> None:
    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events, batch_events=5)
    publisher.publish_all(events)
    publisher.close()


@pytest.mark.timeout(300)
def test_a_restarted_broker_is_read_from_its_start_when_producers_publish_before_the_worker_looks(tmp_path):
    port = free_port()
    broker = EmbeddedBroker(port, tmp_path / "broker-1").start()
    try:
        pipeline = new_pipeline(broker, tmp_path)
        settings = pipeline.settings
        simulator = DialerSimulator(SlotRules(settings.slots, settings.zone), b"test-key", seed=5, start=START)
        before = list(simulator.events(sim_seconds=3600))
        after = list(simulator.events(sim_seconds=2 * 3600))  # more per partition than before
        first_topic = topic_id(settings)
        publish(settings, before)
        worker = pipeline.worker()
        health = worker.wait_until_caught_up()
        assert health["counted"] == len(before)
        assert health["topic_id"] == first_topic
        assert worker.stop() == 0
    finally:
        broker.stop()

    # The same port and data directory, a new broker: the topics are created again, empty.
    broker = EmbeddedBroker(port, tmp_path / "broker-2").start()
    try:
        ensure_topics(settings)
        assert topic_id(settings) not in ("", first_topic)
        publish(settings, after)  # at once, before the worker has compared anything
        worker = pipeline.worker()
        health = worker.wait_until_caught_up()
        assert health["counted"] == len(after), worker.log()
        assert worker.stop() == 0
    finally:
        pipeline.stop_all()
        broker.stop()

    client = connect(settings.warehouse_url)
    try:
        attempts, dials = client.query(
            "SELECT (SELECT uniqExact(event_id) FROM call_attempts), (SELECT sum(dials) FROM minute_metrics FINAL)"
        ).result_rows[0]
    finally:
        client.close()
    assert (attempts, dials) == (len(before) + len(after), len(before) + len(after))
