"""What the worker's long memory of event ids (streams/seen_ids.py) costs: per event, and at a start.

    .venv/bin/python bench/seen_ids.py [--rebuild-ids 1000000] [--out bench/results/seen_ids.txt]

Measures, on this machine:

- a membership test of a new id against the memory as sized by the default config (48 h at
  1,800,000 calls an hour), its generations filled to what they are sized for: four full, the
  newest half full (the worst a new id meets: it is tested against every generation);
- the same test against a fresh memory (one generation, a thousand ids), as a new worker meets it;
- MinuteBuckets.add() per new call, with a fresh memory and with it switched off (a stand-in that
  holds nothing): what the check, the id's hash and the add cost a counted call in all;
- a start's rebuild: the ids of ``--rebuild-ids`` calls landed in a fresh chDB warehouse within
  the horizon, read, hashed by the warehouse and added (warehouse.queries.recovery.landed_id_keys);
- step 1's lookup of a batch's held ids in that warehouse, searching the newest generation's
  hours (as a re-send of a recent call is), the whole horizon, and everything;
- the memory's bytes and the process's RSS growth when it is full.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from core.config import load_settings
from core.schema import CallAttempt, Lead, Outcome
from core.slots import SlotRules
from streams.buckets import MinuteBuckets
from streams.seen_ids import SeenIds, id_key
from warehouse.client import connect
from warehouse.migrate import migrate
from warehouse.queries.recovery import landed_calls, landed_id_keys

# Each figure is the least of this many runs, in CPU time (time.process_time): the machine is shared.
ROUNDS = 5


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) / 1024


def filled_memory() -> tuple[SeenIds, float]:
    """The default-sized memory, four generations full and the newest half full; its RSS growth."""
    settings = load_settings()
    before = rss_mb()
    seen = SeenIds(settings.pipeline.duplicate_horizon_hours, settings.pipeline.duplicate_horizon_calls_per_hour)
    now = time.time()
    for back in range(4, -1, -1):  # oldest first
        epoch = now - back * seen.span_seconds
        count = seen.capacity if back else seen.capacity // 2
        base = (back + 1) << 40
        seen.add_many(list(range(base, base + count)), int(epoch // seen.span_seconds))
    return seen, rss_mb() - before


def per_test_ns(seen: SeenIds, keys: list[int]) -> float:
    started = time.process_time()
    hits = sum(key in seen for key in keys)
    elapsed = time.process_time() - started
    assert hits < len(keys) * 0.1, hits
    return elapsed / len(keys) * 1e9


def per_id_ns(hashing, ids: list[str]) -> float:
    started = time.process_time()
    for event_id in ids:
        hashing(event_id)
    return (time.process_time() - started) / len(ids) * 1e9


def fresh_memory() -> SeenIds:
    settings = load_settings()
    return SeenIds(settings.pipeline.duplicate_horizon_hours, settings.pipeline.duplicate_horizon_calls_per_hour)


def calls(count: int, prefix: str) -> list[CallAttempt]:
    start = datetime.now(timezone.utc) - timedelta(minutes=5)
    return [
        CallAttempt(
            schema_version=1,
            event_id=f"{prefix}-{number:09d}-{number * 7919 % 100_000:05d}",
            campaign=f"campaign-{number % 50}",
            event_time=start + timedelta(milliseconds=3 * number),
            outcome=Outcome.CONNECTED,
            lead=Lead(segment=f"segment-{number % 6}"),
            ring_seconds=6.0,
            wait_seconds=0.4,
            talk_seconds=75.0,
        )
        for number in range(count)
    ]


class NothingRemembered:
    """The memory switched off: nothing is in it, nothing is added."""

    def __contains__(self, key: int) -> bool:
        return False

    def add(self, key: int, epoch: float) -> None:
        pass


def add_ns(events: list[CallAttempt], memory: SeenIds | None) -> float:
    settings = load_settings()
    live = MinuteBuckets(settings, SlotRules(settings.slots, settings.zone))
    if memory is None:
        live.seen_ids = NothingRemembered()  # type: ignore[assignment]
    else:
        live.seen_ids = memory
    started = time.process_time()
    for event in events:
        live.add(event)
    return (time.process_time() - started) / len(events) * 1e9


def lookup_spans(seen: SeenIds) -> dict[str, list[tuple[float, float]] | None]:
    newest = time.time() // seen.span_seconds * seen.span_seconds
    return {
        "the newest generation": [(newest, newest + seen.span_seconds)],
        "the whole horizon": [(seen.first_remembered(), newest + seen.span_seconds)],
        "unbounded": None,
    }


def lookup_ms(client, within: list[tuple[float, float]] | None) -> float:
    """Step 1's lookup of a batch's 20 held ids (none landed: false positives), least of ROUNDS."""
    ids = [f"never-landed-{number}" for number in range(20)]
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        landed_calls(client, ids, within)
        best = min(best, time.perf_counter() - started)
    return best * 1000


def rebuild_seconds(ids: int) -> tuple[float, float, int, float, dict[str, float]]:
    """Seconds (wall, and CPU of this process: chDB's threads included) to rebuild the memory from
    ``ids`` landed calls, how many it read, and the seconds the warehouse took to hold them (the
    insert, not part of a start)."""
    with tempfile.TemporaryDirectory(prefix="seen-ids-bench-") as directory:
        client = connect(f"chdb://{Path(directory) / 'warehouse'}")
        migrate(client)
        started = time.perf_counter()
        client.command(
            "INSERT INTO call_attempts (event_id, campaign, event_time, minute, slot, segment, outcome, landed_at) "
            "SELECT concat('call-', toString(number), '-', hex(cityHash64(number))), concat('campaign-', "
            "toString(number % 5)), now64(3) - toIntervalSecond(number % 86400), "
            "toStartOfMinute(now() - toIntervalSecond(number % 86400)), 'morning', 'seniors', 'connected', now64(3) "
            f"FROM numbers({int(ids)})"
        )
        inserted = time.perf_counter() - started
        settings = load_settings()
        seen = SeenIds(settings.pipeline.duplicate_horizon_hours, settings.pipeline.duplicate_horizon_calls_per_hour)
        started = time.perf_counter()
        cpu = time.process_time()
        remembered = seen.rebuild(landed_id_keys(client, seen.first_remembered(), seen.span_seconds))
        took = time.perf_counter() - started
        cpu = time.process_time() - cpu
        lookups = {name: lookup_ms(client, within) for name, within in lookup_spans(seen).items()}
        client.close()
        return took, cpu, remembered, inserted, lookups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rebuild-ids", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    lines = [f"callpulse bench: the long memory of event ids · {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"]

    seen, grown = filled_memory()
    held = seen.held()
    new_keys = [id_key(f"new-{number}") for number in range(300_000)]
    tested = min(per_test_ns(seen, new_keys) for _ in range(ROUNDS))
    lines.append(
        f"membership test of a new id, memory full (default size, {held['generations']} generations, "
        f"{held['ids']:,} ids): {tested:.0f} ns"
    )
    ids = [f"new-{number:09d}-{number * 7919 % 100_000:05d}" for number in range(300_000)]
    hashing = min(per_id_ns(id_key, ids) for _ in range(ROUNDS))
    builtin = min(per_id_ns(hash, ids) for _ in range(ROUNDS))
    lines.append(
        f"id_key (xxHash64 of the id's UTF-8 bytes): {hashing:.0f} ns; Python's hash(), as before: {builtin:.0f} ns"
    )
    lines.append(
        f"memory bytes (default size, full): {held['id_bytes'] / 1e6:.0f} MB; the process's RSS grew {grown:.0f} MB"
    )

    one = fresh_memory()
    one.add_many(new_keys[:1000], int(time.time() // one.span_seconds))
    tested_fresh = min(per_test_ns(one, new_keys[1000:]) for _ in range(ROUNDS))
    lines.append(f"membership test of a new id, memory fresh (1 generation, 1,000 ids): {tested_fresh:.0f} ns")
    events = calls(200_000, "bench")
    rounds: dict[str, list[float]] = {"off": [], "on": []}
    for _ in range(ROUNDS):  # alternating, so a busy spell of the machine falls on each alike
        rounds["off"].append(add_ns(events, None))
        rounds["on"].append(add_ns(events, fresh_memory()))
    without, with_memory = min(rounds["off"]), min(rounds["on"])
    lines.append(
        f"MinuteBuckets.add() per new call (200,000 calls, 50 campaigns): {without:.0f} ns with the memory off, "
        f"{with_memory:.0f} ns with it (fresh, filling: +{with_memory - without:.0f} ns)"
    )
    del seen

    took, cpu, remembered, inserted, lookups = rebuild_seconds(args.rebuild_ids)
    lines.append(
        f"start's rebuild from chDB: {remembered:,} landed ids in {took:.2f} s wall, {cpu:.2f} s CPU "
        f"({remembered / took / 1e6:.1f} M ids/s; inserting them took {inserted:.1f} s, not part of a start)"
    )
    lines.append(
        "step 1's lookup of 20 held ids in that warehouse (a day of calls), wall: "
        + "; ".join(f"{name} {ms:.1f} ms" for name, ms in lookups.items())
    )
    lines.append(f"load average at the end (2 cores, shared): {os.getloadavg()[0]:.1f}")
    lines.append(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    lines.append("command: .venv/bin/python bench/seen_ids.py" + (f" --out {args.out}" if args.out else ""))
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if args.out is not None:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
