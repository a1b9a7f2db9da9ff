"""The worker's stages timed in one process, without Kafka or Faust: where a batch's time goes.

    .venv/bin/python bench/stages.py                    # 200 k bench events, 500-record batches
    .venv/bin/python bench/stages.py --events 50000 --repeats 3

The same seeded workload as `callpulse bench` (bench/workload.py), packed 100 events per
record, goes through the worker's own objects batch by batch, as streams/app.py drives
them: CallEventProcessor.process (decode, validate, count), Lander.land (attempts, buckets
and offsets into a fresh chDB warehouse), eviction, and the alert rules' reading in its two
halves: from memory, and from the warehouse. Here the stages run one after another; the
worker reads the warehouse's half while it counts the next batch. Each stage's seconds are
summed over the run; the best of ``--repeats`` runs is printed,
because shared machines are noisy. End-to-end figures come from `callpulse bench`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from workload import call_events  # noqa: E402

from core.config import load_settings  # noqa: E402
from core.schema import encode_batch  # noqa: E402
from core.slots import SlotRules  # noqa: E402
from streams.alerting import AlertEvaluator, triggers_of  # noqa: E402
from streams.app import tune_garbage_collector  # noqa: E402
from streams.processor import CallEventProcessor, SourceRecord  # noqa: E402
from warehouse.client import connect  # noqa: E402
from warehouse.landing import Lander  # noqa: E402
from warehouse.migrate import migrate  # noqa: E402

RECORD_EVENTS = 100
STAGES = ("process", "land", "evict", "alerts, live", "alerts, warehouse")


def records_of(events: int, campaigns: int, seed: int) -> list[SourceRecord]:
    workload = list(call_events(events, seed=seed, campaigns=campaigns))
    return [
        SourceRecord("bench.call-events", 0, offset, encode_batch(workload[start : start + RECORD_EVENTS]))
        for offset, start in enumerate(range(0, len(workload), RECORD_EVENTS))
    ]


def run_once(records: list[SourceRecord], batch_records: int, workdir: Path) -> dict[str, float]:
    settings = load_settings(pipeline__data_dir=str(workdir))
    slot_rules = SlotRules(settings.slots, settings.zone)
    client = connect(f"chdb://{workdir / 'warehouse'}")
    try:
        migrate(client)
        processor = CallEventProcessor(settings, slot_rules)
        lander = Lander(client, settings)
        alerting = AlertEvaluator(settings, client, processor.buckets, slot_rules)
        processor.on_counted = alerting.note_counted
        tune_garbage_collector()
        seconds: dict[str, float] = defaultdict(float)
        for start in range(0, len(records), batch_records):
            batch = records[start : start + batch_records]
            began = time.perf_counter()
            result = processor.process(batch)
            processed = time.perf_counter()
            result.offsets = {("bench.call-events", 0): batch[-1].offset + 1}
            lander.land(result)
            landed = time.perf_counter()
            processor.landed()
            evicted = time.perf_counter()
            reading = alerting.read_live(triggers_of(result.attempts), result.violations)
            live = time.perf_counter()
            alerting.observe(alerting.read_landed(reading))
            read = time.perf_counter()
            seconds["process"] += processed - began
            seconds["land"] += landed - processed
            seconds["evict"] += evicted - landed
            seconds["alerts, live"] += live - evicted
            seconds["alerts, warehouse"] += read - live
        seconds["counted"] = processor.stats.counted
        return dict(seconds)
    finally:
        client.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--campaigns", type=int, default=1000)
    parser.add_argument("--batch-records", type=int, default=500, help="records per batch (worker.batch_max_messages)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    console = Console()
    records = records_of(args.events, args.campaigns, args.seed)
    runs = []
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="callpulse-stages-") as workdir:
            runs.append(run_once(records, args.batch_records, Path(workdir)))
        total = sum(runs[-1][stage] for stage in STAGES)
        console.print(f"run {repeat + 1}: {total:.2f} s, {args.events / total:,.0f} events/s")
    best = min(runs, key=lambda run: sum(run[stage] for stage in STAGES))
    if best["counted"] != args.events:
        raise SystemExit(f"counted {best['counted']:,} of {args.events:,} events")
    table = Table(
        title=f"worker stages, in process: {args.events:,} events, {args.batch_records} records per batch "
        f"(best of {args.repeats})"
    )
    for column in ("stage", "seconds", "µs per event", "share"):
        table.add_column(column, justify="left" if column == "stage" else "right")
    total = sum(best[stage] for stage in STAGES)
    for stage in STAGES:
        table.add_row(
            stage, f"{best[stage]:.2f}", f"{1e6 * best[stage] / args.events:.1f}", f"{100 * best[stage] / total:.0f} %"
        )
    table.add_row("all", f"{total:.2f}", f"{1e6 * total / args.events:.1f}", f"{args.events / total:,.0f} events/s")
    console.print(table)


if __name__ == "__main__":
    main()
