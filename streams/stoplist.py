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

The embedded broker keeps nothing across a restart, so the topic alone is not a durable
record. The worker lands every flag and removal it reads (``unlanded_changes()``) in the
warehouse's ``stop_list`` table, and on start ``rebuild()`` begins from the flags landed
there and applies the topic on top. Landed flags the topic no longer holds are published
into it again (``republish()``), with their original ``flagged_at`` and reason, so every
other reader of the topic sees the list too. A removal that landed stays removed: only
active flags are ever republished.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from core.handoff import StopListChange, Violation
from core.schema import CallAttempt, StopListEntry, decode_stop_list_entry, encode_stop_list_entry

log = logging.getLogger("callpulse.stoplist")


def dialed_at(attempt: CallAttempt) -> datetime:
    """When the dial was placed: the event marks the attempt's end, after ring, wait and talk."""
    return attempt.event_time - timedelta(
        seconds=attempt.ring_seconds + (attempt.wait_seconds or 0.0) + attempt.talk_seconds
    )


def record_time(timestamp_ms: int | None) -> datetime:
    """When a record was produced, by its Kafka timestamp; now if the broker gave none."""
    if timestamp_ms is None or timestamp_ms <= 0:
        return datetime.now(timezone.utc)
    return datetime.fromtimestamp(timestamp_ms / 1000, timezone.utc)


class StopListTable:
    """The whole stop list of one process, read from its compacted topic.

    ``keep_changes`` makes it remember every flag and removal it applies, per customer
    the newest, until ``mark_landed()`` says they are in the warehouse (the worker does;
    `callpulse stoplist status` only counts). One lock serialises reading the topic, so
    the worker's batch loop and its idle-time catch-up can share one table.
    """

    def __init__(
        self, bootstrap_servers: str, topic: str, *, catch_up_timeout_s: float = 30.0, keep_changes: bool = False
    ):
        self.topic = topic
        self.bootstrap_servers = bootstrap_servers
        self.catch_up_timeout_s = catch_up_timeout_s
        self.entries: dict[str, StopListEntry] = {}
        self.bad_records = 0
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            client_id="callpulse-stop-list",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        self._partitions: list[TopicPartition] = []
        self._lock = threading.Lock()
        self._changes: dict[str, StopListChange] | None = {} if keep_changes else None
        # While republish() re-reads the topic: the offset of each flag it sent, and any
        # record for the same customer that another producer wrote just before it.
        self._republished_at: dict[str, int] = {}
        self._overtaken: dict[str, bytes | None] = {}

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def unlanded(self) -> int:
        """Flags and removals read and not yet marked landed."""
        return len(self._changes or ())

    def unlanded_changes(self) -> list[StopListChange]:
        """The flags and removals read and not yet landed, the newest per customer."""
        with self._lock:
            return list(self._changes.values()) if self._changes else []

    def mark_landed(self, changes: Iterable[StopListChange]) -> None:
        """Forget ``changes`` once they are in the warehouse; a newer change read for the
        same customer meanwhile stays, for the next landing."""
        with self._lock:
            for change in changes:
                phone_hash = change.entry.phone_hash
                if self._changes is not None and self._changes.get(phone_hash) is change:
                    del self._changes[phone_hash]

    def _assign(self) -> None:
        partitions = self._consumer.partitions_for_topic(self.topic)
        if not partitions:
            raise RuntimeError(f"the stop-list topic {self.topic} does not exist; run `callpulse topics`")
        self._partitions = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        self._consumer.assign(self._partitions)
        self._consumer.seek_to_beginning(*self._partitions)

    def catch_up(self) -> int:
        """Apply every record up to the topic's end as of now; return how many were read."""
        with self._lock:
            return self._catch_up()

    def _catch_up(self) -> int:
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
                    self._apply(record.key, record.value, record.timestamp, record.offset)
                    read += 1
        return read

    def rebuild(self, landed: Iterable[StopListEntry]) -> list[StopListEntry]:
        """Start from the active flags the warehouse holds, then apply the whole topic.

        Returns the landed flags the topic does not mention at all: after a restart of the
        embedded broker, all of them. Call it once, before any other read of the topic.
        """
        with self._lock:
            landed_by_hash = {entry.phone_hash: entry for entry in landed}
            self.entries.update(landed_by_hash)
            # Read the topic into a change set of its own: its keys are what the topic mentions.
            recording, self._changes = self._changes, {}
            try:
                self._catch_up()
                mentioned = set(self._changes)
            finally:
                if recording is not None:
                    recording.update(self._changes)
                self._changes = recording
            return [entry for phone_hash, entry in landed_by_hash.items() if phone_hash not in mentioned]

    def republish(self, entries: list[StopListEntry], timeout_s: float = 30.0) -> int:
        """Publish ``entries`` into the topic again, keyed and encoded as the producers do,
        then read them back. Returns how many were sent.

        A flag or removal another producer wrote for the same customer after the topic was
        read and before these sends now sits before the copy and would lose to it; it is
        sent once more, so the newest word stays the newest."""
        if not entries:
            return 0
        producer = KafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            client_id="callpulse-stop-list-restore",
            acks="all",
            retries=10,
            max_in_flight_requests_per_connection=1,
        )
        try:
            sent = {
                entry.phone_hash: producer.send(
                    self.topic, key=entry.phone_hash.encode(), value=encode_stop_list_entry(entry)
                )
                for entry in entries
            }
            producer.flush(timeout_s)
            offsets = {phone_hash: future.get(timeout=timeout_s).offset for phone_hash, future in sent.items()}
            with self._lock:
                self._republished_at = offsets
                try:
                    self._catch_up()
                    overtaken = self._overtaken
                finally:
                    self._republished_at, self._overtaken = {}, {}
            if overtaken:
                log.warning(
                    "%d stop-list change(s) arrived while the list was being restored; sending them again",
                    len(overtaken),
                )
                for phone_hash, value in overtaken.items():
                    producer.send(self.topic, key=phone_hash.encode(), value=value)
                producer.flush(timeout_s)
                self.catch_up()
            return len(sent)
        finally:
            producer.close()

    def _apply(self, key: bytes | None, value: bytes | None, timestamp_ms: int | None = None, offset: int = -1) -> None:
        phone_hash = key.decode(errors="replace") if key is not None else None
        if phone_hash in self._republished_at and offset < self._republished_at[phone_hash]:
            self._overtaken[phone_hash] = value
        if value is None:  # a tombstone: the customer was taken off the list
            if phone_hash is None:
                return
            removed = self.entries.pop(phone_hash, None)
            if removed is not None and self._changes is not None:
                self._changes[phone_hash] = StopListChange(removed, record_time(timestamp_ms))
            return
        try:
            entry = decode_stop_list_entry(value)
        except Exception as exc:  # the producer edge validates; a stray record must not stop dial checks
            self.bad_records += 1
            log.error("ignoring an unreadable stop-list record (key %r): %s", key, exc)
            return
        self.entries[entry.phone_hash] = entry
        if self._changes is not None:
            self._changes[entry.phone_hash] = StopListChange(entry)

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
