"""Creating, describing and reading the Kafka topics core.topics declares: the worker, the
`up` supervisor and the CLI's readers share these admin and read helpers."""

from __future__ import annotations

import logging
import time

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, KafkaTimeoutError, TopicAlreadyExistsError

from core.config import Settings
from core.topics import TopicSpec, topic_specs

log = logging.getLogger(__name__)


def admin_client(bootstrap_servers: str, timeout_s: float = 30.0) -> KafkaAdminClient:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return KafkaAdminClient(
                bootstrap_servers=bootstrap_servers, client_id="callpulse-admin", request_timeout_ms=10000
            )
        except KafkaTimeoutError:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"no Kafka broker answered at {bootstrap_servers} within {timeout_s:.0f} s; "
                    "is KAFKA_BOOTSTRAP_SERVERS right, or is the embedded broker running?"
                ) from None
            time.sleep(0.3)


def ensure_topics(settings: Settings) -> list[str]:
    """Create missing topics; return the names created. Existing topics are checked."""
    admin = admin_client(settings.bootstrap_servers)
    try:
        existing = set(admin.list_topics())
        created = []
        for spec in topic_specs(settings):
            if spec.name in existing:
                _check_partitions(admin, spec)
                continue
            try:
                admin.create_topics(
                    [
                        NewTopic(
                            spec.name, num_partitions=spec.partitions, replication_factor=1, topic_configs=spec.config
                        )
                    ]
                )
                created.append(spec.name)
            except TopicAlreadyExistsError:
                _check_partitions(admin, spec)
        return created
    finally:
        admin.close()


def _check_partitions(admin: KafkaAdminClient, spec: TopicSpec) -> None:
    try:
        description = admin.describe_topics([spec.name])[0]
    except KafkaError as exc:  # pragma: no cover - broker-specific metadata gaps
        log.warning("could not describe topic %s: %s", spec.name, exc)
        return
    actual = len(description.get("partitions", []))
    if actual and actual != spec.partitions:
        log.warning(
            "topic %s has %d partitions, configuration says %d; keeping the topic as it is",
            spec.name,
            actual,
            spec.partitions,
        )


def topic_id(settings: Settings, topic: str | None = None, admin: KafkaAdminClient | None = None) -> str:
    """The identity Kafka gives ``topic`` (call events by default) when it is created.

    Offsets mean something only within one incarnation of a topic: the embedded broker
    keeps nothing across a restart, and a topic deleted and created again on a server
    starts again at offset 0. So every offset the worker lands, and every record a
    producer must see landed, is tied to this id. "" when the broker reports none.
    Give ``admin`` to reuse a client when asking often.
    """
    topic = topic or settings.topics.call_events
    client = admin_client(settings.bootstrap_servers) if admin is None else admin
    try:
        description = client.describe_topics([topic])[0]
    finally:
        if admin is None:
            client.close()
    if description.get("error_code"):
        raise RuntimeError(
            f"Kafka does not know the topic {topic} (error {description['error_code']}); run `callpulse topics`"
        )
    found = description.get("topic_id")
    return "" if found in (None, "00000000-0000-0000-0000-000000000000") else str(found)


def partition_bounds(settings: Settings, topic: str | None = None) -> dict[int, tuple[int, int]]:
    """Per partition of ``topic`` (call events by default): (earliest offset, end offset).

    tansu answers ListOffsets(latest) with the base offset of the partition's last
    record batch, not one past its last record, so the reported end is only a lower
    bound. Reading forward from it finds the real end on any broker.
    """
    from kafka import KafkaConsumer, TopicPartition

    topic = topic or settings.topics.call_events
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id="callpulse-bounds",
        enable_auto_commit=False,
        max_partition_fetch_bytes=1 << 20,
    )
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        earliest = consumer.beginning_offsets(partitions)
        ends = dict(consumer.end_offsets(partitions))
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, ends[tp])
        quiet_polls = 0
        for _ in range(10):  # bounded: with producers running there is always more
            fetched = consumer.poll(timeout_ms=200)
            quiet_polls = 0 if fetched else quiet_polls + 1
            if quiet_polls == 2:
                break
            for tp, records in fetched.items():
                ends[tp] = max(ends[tp], records[-1].offset + 1)
        return {tp.partition: (earliest[tp], ends[tp]) for tp in partitions}
    finally:
        consumer.close()


def read_records(settings: Settings, topic: str) -> list:
    """Every record of ``topic`` (all partitions: keys, values, headers, offsets) from the
    beginning to its end now. Raises if a partition does not reach its end."""
    from kafka import KafkaConsumer, TopicPartition

    bounds = partition_bounds(settings, topic)
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, client_id="callpulse-reader", enable_auto_commit=False
    )
    try:
        partitions = [TopicPartition(topic, p) for p, (earliest, end) in bounds.items() if end > earliest]
        if not partitions:
            return []
        consumer.assign(partitions)
        for tp in partitions:
            consumer.seek(tp, bounds[tp.partition][0])
        found: list = []
        remaining = set(partitions)
        idle_polls = 0
        while remaining and idle_polls < 50:  # 10 s without a record: the broker is not answering
            fetched = consumer.poll(timeout_ms=200)
            idle_polls = 0 if fetched else idle_polls + 1
            for tp, records in fetched.items():
                found.extend(record for record in records if record.offset < bounds[tp.partition][1])
                if records and records[-1].offset + 1 >= bounds[tp.partition][1]:
                    remaining.discard(tp)
        if remaining:
            raise RuntimeError(
                f"{topic}: partitions {sorted(tp.partition for tp in remaining)} did not reach their end"
            )
        return found
    finally:
        consumer.close()


def read_topic(settings: Settings, topic: str) -> list[bytes]:
    """Every record value in ``topic`` (all partitions) from the beginning to its end now."""
    return [record.value for record in read_records(settings, topic)]
