"""Quix Streams peer for the throughput benchmark (run by bench/peers.py:run_quix).

Records are keyed by campaign, and Quix scopes state by message key, so a stateful
update per event can keep campaign|slot|segment|minute buckets without a repartition
topic (a group_by would re-produce every event). Batched records (JSON arrays) are
expanded into one row per event, so the per-event work matches the other peers.
Prints one JSON line (see peers.RunClock) once ``--expected`` call events are counted and
its state is committed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quixstreams import Application, State  # noqa: E402

from bench.peers import RunClock, add_event, bucket_key, events_of, slot_lookup  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--expected", type=int, required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--group", required=True)
    args = parser.parse_args()

    clock = RunClock()
    slot_for_minute = slot_lookup()
    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.workdir / "state",
        loglevel="WARNING",
        # Group joins on tansu wait out these timeouts (librdkafka sends max.poll.interval.ms
        # as the rebalance timeout), so keep them short as the real worker does.
        consumer_extra_config={"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000, "max.poll.interval.ms": 6000},
    )
    sdf = app.dataframe(app.topic(args.topic, value_deserializer="json"))

    def expand(value: Any) -> list[dict[str, Any]]:
        clock.record_seen()
        return events_of(value)

    def count(event: dict[str, Any], state: State) -> None:
        key = bucket_key(event, slot_for_minute)
        state.set(key, add_event(state.get(key), event))

    def done(_event: dict[str, Any]) -> None:
        clock.events += 1
        if clock.events == args.expected:
            clock.counted()
            app.stop()

    sdf = sdf.apply(expand, expand=True)
    sdf = sdf.update(count, stateful=True)
    sdf = sdf.update(done)
    # Returns once stopped, after its last checkpoint: the state flushed to RocksDB and its
    # changelog topic, the offsets committed. Events counted before a checkpoint are not
    # yet durable, so both times are reported.
    app.run()
    print(clock.result(committed=True), flush=True)


if __name__ == "__main__":
    main()
