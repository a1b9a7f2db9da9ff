"""Kafka topics: their names come from the configuration, their partitions and retention
are declared here.

Auto-created topics take the broker's default partition count, which breaks Faust
(PartitionsMismatch) and hides capacity decisions, so every topic is declared here and
created explicitly (streams.kafka_admin.ensure_topics).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.config import Settings

WORKER_GROUP = "callpulse-worker"  # the Faust app id, which Faust uses as consumer group


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


def topic_specs(settings: Settings) -> list[TopicSpec]:
    topics = settings.topics
    retention = {"retention.ms": str(topics.retention_ms)}
    return [
        # Keyed by campaign, so one campaign's events stay in order on one partition.
        TopicSpec(topics.call_events, topics.partitions, {**retention, "cleanup.policy": "delete"}),
        TopicSpec(topics.dead_letters, 1, {**retention, "cleanup.policy": "delete"}),
        TopicSpec(topics.alerts, 1, {**retention, "cleanup.policy": "delete"}),
        # Compacted: a flag lives until it is removed, whatever the retention.
        TopicSpec(topics.stop_list, 1, {"cleanup.policy": "compact"}),
    ]
