"""Naive Faust peer for the throughput benchmark (run by bench/peers.py:run_naive_faust).

The baseline a first Faust app would be: ``json.loads`` per record, then for every event
a read and a write of a changelogged Table keyed by campaign|slot|segment|minute, so each
event costs a table lookup, a JSON encode and a changelog send. Broker settings follow
streams/app.py (short group timeouts for tansu, no topic declaring); the changelog topic
is created here with the source's partition count, as Faust would otherwise let tansu
auto-create it with its default count and then fail with PartitionsMismatch.
Prints one JSON line (see peers.RunClock) once ``--expected`` call events are counted.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import faust  # noqa: E402
from kafka.admin import KafkaAdminClient, NewTopic  # noqa: E402
from kafka.errors import TopicAlreadyExistsError  # noqa: E402

from bench.peers import RunClock, add_event, bucket_key, events_of, slot_lookup  # noqa: E402

TABLE = "buckets"


def create_changelog(bootstrap: str, name: str, partitions: int) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="bench-faust-admin")
    try:
        admin.create_topics(
            [
                NewTopic(
                    name,
                    num_partitions=partitions,
                    replication_factor=1,
                    topic_configs={"cleanup.policy": "compact", "retention.ms": "3600000"},
                )
            ]
        )
    except TopicAlreadyExistsError:
        pass
    finally:
        admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--partitions", type=int, required=True)
    parser.add_argument("--expected", type=int, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--app-id", required=True)
    args = parser.parse_args()

    clock = RunClock()
    slot_for_minute = slot_lookup()
    create_changelog(args.bootstrap, f"{args.app_id}-{TABLE}-changelog", args.partitions)
    app = faust.App(
        args.app_id,  # also the consumer group: fresh per run, so it reads from the earliest offset
        broker=[f"kafka://{server}" for server in args.bootstrap.split(",")],
        store="memory://",
        datadir=str(args.workdir),
        topic_allow_declare=False,
        topic_disable_leader=True,
        topic_partitions=args.partitions,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=6.0,
        broker_rebalance_timeout=6.0,
        broker_heartbeat_interval=1.0,
        broker_commit_interval=1.0,
        web_enabled=False,
    )
    source = app.topic(
        args.topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=args.partitions,
    )
    table = app.Table(TABLE, default=None, partitions=args.partitions)

    @app.agent(source)
    async def count(stream: faust.StreamT) -> None:
        async for value in stream:
            clock.record_seen()
            for event in events_of(json.loads(value)):
                key = bucket_key(event, slot_for_minute)
                table[key] = add_event(table.get(key), event)
                clock.events += 1
                if clock.events == args.expected:
                    clock.counted()
                    # Straight to fd 1: the Faust worker sends sys.stdout to its logger.
                    os.write(1, clock.result().encode() + b"\n")
                    os._exit(0)  # the result is out; Faust's orderly shutdown only adds seconds

    from faust.worker import Worker

    Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
