"""Kafka topics: their names come from the configuration, their partitions and retention
are declared here.

Auto-created topics take the broker's default partition count, which breaks Faust
(PartitionsMismatch) and hides capacity decisions, so every topic is declared here and
created explicitly (streams.kafka_admin.ensure_topics).
"""

from __future__ import annotations

from dataclasses import dataclass

from kafka.partitioner.default import murmur2

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


def campaign_partition(campaign: str, partitions: int) -> int:
    """The call-events partition a campaign's events go to: every event (calls, agent_state,
    dialer_state) is keyed by its campaign (producers.publisher), and Kafka clients' default
    partitioner puts a key at murmur2(key) mod partitions (kafka-python computes it as the Java
    client does). So an agent's events in one campaign stay in order on one partition, and a
    worker knows which campaigns' agents are its own from the partitions it is assigned."""
    return (murmur2(campaign.encode()) & 0x7FFFFFFF) % partitions
