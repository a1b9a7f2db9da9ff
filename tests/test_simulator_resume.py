"""A restarted demo goes on where the last one stopped: `callpulse simulate --resume` (which
`callpulse up` passes) starts after the newest call already in the call-events topic, so none of
its calls falls behind what the worker has counted (it would dead-letter them as late)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from producers.run_simulator import newest_published_time


def published_times(settings) -> list[datetime]:
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False, group_id=None)
    try:
        partitions = [
            TopicPartition(settings.topics.call_events, p)
            for p in consumer.partitions_for_topic(settings.topics.call_events)
        ]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(partitions)
        times = []
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            for records in consumer.poll(timeout_ms=1000).values():
                for record in records:
                    if record.value.startswith(b"{"):
                        times.append(datetime.fromisoformat(json.loads(record.value)["event_time"]))
        return times
    finally:
        consumer.close()


def simulate(pipeline, *extra: str) -> str:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "callpulse",
            "--config",
            str(pipeline.config_file),
            "simulate",
            "--speed",
            "60",
            "--seed",
            "3",
            *extra,
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CALLPULSE_HMAC_KEY": "test-key"},
    )
    return done.stdout + done.stderr


@pytest.mark.integration
def test_a_resumed_simulation_starts_after_the_newest_call_in_the_topic(pipeline):
    settings = pipeline.settings
    assert newest_published_time(settings.bootstrap_servers, settings.topics.call_events) is None
    # The last run's calls reached 20 minutes ago; its backfill would start 10 hours ago.
    newest = (datetime.now(timezone.utc) - timedelta(minutes=20)).replace(microsecond=0)
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers)
    producer.send(settings.topics.call_events, b"not json: skipped when looking for the newest call")
    producer.close()
    first = simulate(pipeline, "--start", (newest - timedelta(minutes=5)).isoformat(), "--duration", "5")
    assert "resuming" not in first
    before = published_times(settings)
    found = newest_published_time(settings.bootstrap_servers, settings.topics.call_events)
    assert found == max(before)

    # Without --duration a sped-up run backfills 10 hours: resumed, it starts after the newest call.
    out = simulate(pipeline, "--resume", "--count", "800")
    assert "resuming after the newest call" in out
    after = published_times(settings)
    resumed = sorted(set(after) - set(before))
    assert len(resumed) > 100
    assert min(resumed) > max(before)  # none behind the last run's newest call
    assert max(after) <= datetime.now(timezone.utc)
