"""The stop list as a table every worker holds whole, read from its compacted topic.

Call events are keyed by campaign and stop flags by phone hash, so a Faust table
(partitioned and co-partitioned with the stream) would need every dial re-keyed by
phone hash through a repartition topic first. The stop list is small beside the call
stream, so each worker keeps all of it instead, as Kafka Streams does with a global
table: the compacted topic is its own changelog, read from the beginning at start.

The race that matters is an opt-out seconds before a dial. Before each batch of calls
the worker calls ``catch_up()``, which reads the stop-list topic up to the end offsets
the broker reports at that moment. A flag produced before a dial's record was consumed
is therefore always in the table when that dial is checked.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from kafka import KafkaConsumer, TopicPartition

from callpulse.schema import CallAttempt, StopListEntry, decode_stop_list_entry

log = logging.getLogger("callpulse.stoplist")


@dataclass(frozen=True)
class Violation:
    """A dial placed to a customer who was already on the stop list."""

    attempt: CallAttempt
    dialed_at: datetime
    entry: StopListEntry


def dialed_at(attempt: CallAttempt) -> datetime:
    """When the dial was placed: the event marks the attempt's end, after ring, wait and talk."""
    return attempt.event_time - timedelta(seconds=attempt.ring_seconds + attempt.wait_seconds
                                          + attempt.talk_seconds)


class StopListTable:
    def __init__(self, bootstrap_servers: str, topic: str, *, catch_up_timeout_s: float = 30.0):
        self.topic = topic
        self.catch_up_timeout_s = catch_up_timeout_s
        self.entries: dict[str, StopListEntry] = {}
        self.bad_records = 0
        self._consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, client_id="callpulse-stop-list",
                                       enable_auto_commit=False, auto_offset_reset="earliest")
        self._partitions: list[TopicPartition] = []

    def __len__(self) -> int:
        return len(self.entries)

    def _assign(self) -> None:
        partitions = self._consumer.partitions_for_topic(self.topic)
        if not partitions:
            raise RuntimeError(f"the stop-list topic {self.topic} does not exist; run `callpulse topics`")
        self._partitions = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        self._consumer.assign(self._partitions)
        self._consumer.seek_to_beginning(*self._partitions)

    def catch_up(self) -> int:
        """Apply every record up to the topic's end as of now; return how many were read."""
        if not self._partitions:
            self._assign()
        ends = self._consumer.end_offsets(self._partitions)
        deadline = time.monotonic() + self.catch_up_timeout_s
        read = 0
        while any(self._consumer.position(tp) < ends[tp] for tp in self._partitions):
            if time.monotonic() > deadline:
                raise TimeoutError(f"the stop list did not catch up within {self.catch_up_timeout_s:.0f} s")
            for records in self._consumer.poll(timeout_ms=200).values():
                for record in records:
                    self._apply(record.key, record.value)
                    read += 1
        return read

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        if value is None:  # a tombstone: the customer was taken off the list
            if key is not None:
                self.entries.pop(key.decode(errors="replace"), None)
            return
        try:
            entry = decode_stop_list_entry(value)
        except Exception as exc:  # the producer edge validates; a stray record must not stop dial checks
            self.bad_records += 1
            log.error("ignoring an unreadable stop-list record (key %r): %s", key, exc)
            return
        self.entries[entry.phone_hash] = entry

    def check(self, attempt: CallAttempt) -> Violation | None:
        phone_hash = attempt.lead.phone_hash
        if phone_hash is None:
            return None
        entry = self.entries.get(phone_hash)
        if entry is None:
            return None
        placed = dialed_at(attempt)
        # An opt-out during the call itself (the customer asks the agent) is not a violation.
        return Violation(attempt, placed, entry) if entry.flagged_at <= placed else None

    def close(self) -> None:
        self._consumer.close()
