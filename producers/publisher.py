"""Publishing call events to Kafka with kafka-python, keyed by campaign.

Keying by campaign keeps each campaign's events in order on one partition, which is
what the worker's per-campaign event-time watermark relies on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from kafka import KafkaProducer
from kafka.errors import KafkaError

from core.schema import Event, encode_batch, encode_event

log = logging.getLogger(__name__)

#: Record compression for every CallPulse producer; the worker (aiokafka) and Kafka's own
#: tools read it transparently.
COMPRESSION = "lz4"


class EventPublisher:
    def __init__(self, bootstrap_servers: str, topic: str, *, batch_events: int = 1):
        """``batch_events`` > 1 packs that many events of one campaign into one record."""
        self.topic = topic
        self.batch_events = max(1, batch_events)
        self.producer = KafkaProducer(
            bootstrap_servers=bootstrap_servers,
            client_id="callpulse-producer",
            acks="all",
            linger_ms=20,
            retries=10,
            max_in_flight_requests_per_connection=1,  # retries must not reorder a campaign's events
            # Call-event JSON shrinks about 4x; uncompressed, the embedded broker took ~8.6 k
            # events/s from one producer, with LZ4 ~36 k (bench/pipeline.py's publish stage).
            compression_type=COMPRESSION,
        )
        self._pending: dict[str, list[Event]] = {}
        self.sent_events = 0
        self.sent_records = 0
        self._failures: list[BaseException] = []
        # Called with (event ids, partition, offset) once Kafka has acknowledged a record: a
        # producer that must see its rows landed (VICIdial live) learns where they went.
        self.on_delivered: Callable[[list[str], int, int], None] | None = None

    def _on_error(self, exc: BaseException) -> None:
        self._failures.append(exc)

    def _send(self, campaign: str, value: bytes, events: list[Event]) -> None:
        future = self.producer.send(self.topic, key=campaign.encode(), value=value)
        future.add_errback(self._on_error)
        if self.on_delivered is not None:
            event_ids = [event.event_id for event in events]
            future.add_callback(lambda metadata: self.on_delivered(event_ids, metadata.partition, metadata.offset))
        self.sent_events += len(events)
        self.sent_records += 1

    def publish(self, event: Event) -> None:
        if self.batch_events == 1:
            self._send(event.campaign, encode_event(event), [event])
            return
        pending = self._pending.setdefault(event.campaign, [])
        pending.append(event)
        if len(pending) >= self.batch_events:
            self._send(event.campaign, encode_batch(pending), pending)
            self._pending[event.campaign] = []

    def send_raw(self, topic: str, value: bytes | None, key: bytes | None = None) -> None:
        """Another topic's record (a dead letter from an adapter; None: a tombstone for ``key``),
        with the same delivery checks."""
        self.producer.send(topic, key=key, value=value).add_errback(self._on_error)

    def publish_all(self, events: Iterable[Event]) -> int:
        count = 0
        for event in events:
            self.publish(event)
            count += 1
        return count

    def flush(self, timeout_s: float = 30.0) -> None:
        for campaign, pending in self._pending.items():
            if pending:
                self._send(campaign, encode_batch(pending), pending)
        self._pending = {}
        self.producer.flush(timeout=timeout_s)
        if self._failures:
            first = self._failures[0]
            self._failures = []
            raise KafkaError(f"{len(self._failures) + 1} record(s) could not be delivered: {first}")

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self.producer.close(timeout=10)
