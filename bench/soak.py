"""Soak: a steady stream of call events into the embedded pipeline for a long time, to see
whether the worker's memory levels off and whether every event is counted.

    .venv/bin/python bench/soak.py                          # 500 events/s for an hour, 20 campaigns
    .venv/bin/python bench/soak.py --duration 5400          # an hour and a half
    .venv/bin/python bench/soak.py --smoke                  # 20 s at 200 events/s, a sample every 2 s: a check

What runs is what `callpulse up` runs in embedded mode: the tansu broker, the real worker
(`callpulse worker --serve-warehouse`, its own process) counting into chDB, and the dashboard in
a process of its own asking the worker's query endpoint (no dashboard client connects). This script
takes the simulator's place: it publishes the dialer simulator's calls (agents, teams, leads; --source workload for
bench/workload.py's) spread over --campaigns campaigns, each stamped with the moment it is
sent, one event per record as the simulator sends them, at --rate events/s.

Every --sample-seconds (a minute) it records the worker's resident set (VmRSS) and anonymous
memory (RssAnon: the RSS without mapped files, chDB's library among them), its CPU over the
interval, the events sent and counted, the records not landed yet, and what the worker's live
state holds (/health's live_state: campaigns and event ids kept for the alert windows and replays).

At the end it waits for every record to land, checks the worker counted each event once (its
/health, then the warehouse itself once the worker has stopped), and says whether memory levelled
off: the RSS growth per minute (least squares) over the last --window-minutes against the first.

The worker keeps each minute's buckets for its longest alert window (an hour by default:
alerts.cpo_window_minutes) and the event ids counted in them for the lateness window (10
minutes: pipeline.allowed_lateness_seconds), so what it holds grows through the first 10
minutes of a steady stream by design, and a little (the buckets) through the first hour.

The table is printed and written to bench/results/soak.txt with the machine's description.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shlex
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import msgspec  # noqa: E402
from peers import memory_mb  # noqa: E402
from pipeline import HMAC_KEY, Worker, console, cpu_seconds, fresh_pipeline, landed_all, write_results  # noqa: E402
from rich.table import Table  # noqa: E402
from workload import call_events  # noqa: E402

from core.config import load_settings  # noqa: E402
from core.schema import CallAttempt  # noqa: E402
from core.slots import SlotRules  # noqa: E402
from producers.publisher import EventPublisher  # noqa: E402

RESULTS_FILE = ROOT / "bench" / "results" / "soak.txt"
SHARED_MACHINE = "; its cores were shared with other work during the run"


@dataclass
class Sample:
    """The worker at one moment of the soak."""

    minute: float
    sent: int
    counted: int
    unlanded_records: int
    rss_mb: float
    anon_mb: float
    cpu_share: float  # of one core, since the previous sample
    event_ids: int
    campaigns: int


def stamped_calls(source: str, campaigns: int, seed: int, total: int) -> Iterator[CallAttempt]:
    """Call events for the soak, each still to be stamped with its send time: the simulator's
    (its calls spread round robin over ``campaigns`` names) or bench/workload.py's."""
    if source == "workload":
        yield from call_events(total, seed=seed, campaigns=campaigns)
        return
    from producers.simulator import DialerSimulator

    settings = load_settings()
    simulator = DialerSimulator(SlotRules(settings.slots, settings.zone), HMAC_KEY.encode(), seed=seed)
    names = [f"soak-{number:03d}" for number in range(campaigns)]
    for number, event in enumerate(itertools.islice(simulator.events(), total)):
        yield msgspec.structs.replace(event, campaign=names[number % campaigns])


def growth_per_minute(samples: list[Sample], first: float, last: float, field: str = "rss_mb") -> float:
    """MB per minute over the samples from minute ``first`` to ``last``: the least-squares slope,
    so one noisy sample (a merge in chDB, a page-cache swing) weighs little."""
    window = [s for s in samples if first <= s.minute <= last]
    if len(window) < 2:
        return float("nan")
    return statistics.linear_regression([s.minute for s in window], [getattr(s, field) for s in window]).slope


class Soak:
    def __init__(self, args, settings, worker: Worker):
        self.args = args
        self.settings = settings
        self.worker = worker
        self.samples: list[Sample] = []
        self.ends: dict[int, int] = {}  # partition -> one past the last acknowledged offset
        self.sent = 0
        self._cpu = (time.monotonic(), cpu_seconds(worker.proc.pid))

    def _delivered(self, _event_ids, partition: int, offset: int) -> None:
        if offset + 1 > self.ends.get(partition, 0):
            self.ends[partition] = offset + 1

    def sample(self, started: float) -> Sample:
        state = self.worker.health() or {}
        landed = {int(p): int(o) for p, o in state.get("landed_offsets", {}).items()}
        now, cpu = time.monotonic(), cpu_seconds(self.worker.proc.pid)
        cpu_share = (cpu - self._cpu[1]) / max(now - self._cpu[0], 1e-9)
        self._cpu = (now, cpu)
        held = state.get("live_state", {})
        sample = Sample(
            minute=(now - started) / 60,
            sent=self.sent,
            counted=state.get("counted", -1),
            unlanded_records=sum(max(0, end - landed.get(p, 0)) for p, end in list(self.ends.items())),
            rss_mb=memory_mb(self.worker.proc.pid, "VmRSS"),
            anon_mb=memory_mb(self.worker.proc.pid, "RssAnon"),
            cpu_share=cpu_share,
            event_ids=held.get("event_ids", -1),
            campaigns=held.get("campaigns", -1),
        )
        self.samples.append(sample)
        console.print(
            f"{sample.minute:6.1f} min · sent {sample.sent:,} · counted {sample.counted:,} · "
            f"unlanded records {sample.unlanded_records:,} · RSS {sample.rss_mb:.0f} MB · "
            f"anon {sample.anon_mb:.0f} MB · CPU {sample.cpu_share * 100:.0f} % · "
            f"event ids kept {sample.event_ids:,}"
        )
        return sample

    def run(self) -> None:
        """Publish at a steady rate for the duration, sampling the worker as it goes."""
        args = self.args
        publisher = EventPublisher(
            self.settings.bootstrap_servers, self.settings.topics.call_events, batch_events=args.batch_events
        )
        publisher.on_delivered = self._delivered
        total = int(args.rate * args.duration)
        calls = stamped_calls(args.source, args.campaigns, args.seed, total)
        started = time.monotonic()
        self._cpu = (started, cpu_seconds(self.worker.proc.pid))
        self.sample(started)
        next_sample = started + args.sample_seconds
        ends_at = started + args.duration
        try:
            while self.sent < total:
                now = time.monotonic()
                due = total if now >= ends_at else int((now - started) * args.rate)
                if self.sent < due:
                    stamp = datetime.now(timezone.utc)
                    for call in itertools.islice(calls, due - self.sent):
                        publisher.publish(msgspec.structs.replace(call, event_time=stamp))
                        self.sent += 1
                if now >= next_sample:
                    self.sample(started)
                    next_sample += args.sample_seconds
                time.sleep(0.01)
        finally:
            publisher.close()  # flushes: every event sent is acknowledged or this raises
        # The last records land within a batch or two; then the final sample.
        self.worker.wait(landed_all(self.ends), timeout_s=300, poll_s=0.5)
        self.sample(started)


def check_counts(soak: Soak, state: dict) -> list[str]:
    """What the worker's /health says against what was sent: empty when every event counted once."""
    problems = []
    if state["counted"] != soak.sent:
        problems.append(f"the worker counted {state['counted']:,} of {soak.sent:,} events")
    for key in ("duplicates", "late_events"):
        if state.get(key):
            problems.append(f"{key}: {state[key]:,}")
    if state.get("dead_letters"):
        problems.append(f"dead letters: {state['dead_letters']}")
    return problems


def warehouse_counts(settings) -> tuple[int, int]:
    """(attempts landed, dials in the minute buckets) from the warehouse, read after the worker stopped."""
    from warehouse.client import connect

    client = connect(settings.warehouse_url)
    try:
        attempts = client.query("SELECT count() FROM (SELECT DISTINCT event_id FROM call_attempts)").result_rows[0][0]
        dials = client.query("SELECT sum(dials) FROM minute_metrics FINAL").result_rows[0][0]
        return int(attempts), int(dials or 0)
    finally:
        client.close()


def render(soak: Soak, summary: list[tuple[str, str]], width: int = 150) -> str:
    args = soak.args
    table = Table(
        title=f"soak · {args.rate:,.0f} events/s for {args.duration / 60:,.1f} min, {args.campaigns} "
        f"campaigns ({args.source} events), {args.batch_events} per record"
        + (f", with {args.extra_config!r}" if args.extra_config else "")
        + " · "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"
    )
    for column in (
        "minute",
        "sent",
        "counted",
        "unlanded records",
        "RSS MB",
        "RssAnon MB",
        "CPU % of a core",
        "event ids kept",
    ):
        table.add_column(column, justify="right")
    for s in soak.samples:
        table.add_row(
            f"{s.minute:.1f}",
            f"{s.sent:,}",
            f"{s.counted:,}",
            f"{s.unlanded_records:,}",
            f"{s.rss_mb:.0f}",
            f"{s.anon_mb:.0f}",
            f"{s.cpu_share * 100:.0f}",
            f"{s.event_ids:,}",
        )
    recorder = console.__class__(record=True, width=width, file=open("/dev/null", "w"), color_system=None)
    recorder.print(table)
    for label, text in summary:
        recorder.print(f"{label}: {text}", soft_wrap=True)
    return recorder.export_text()


def summarise(soak: Soak, final_state: dict, warehouse: tuple[int, int], peak_rss: float) -> tuple[list, dict]:
    samples = soak.samples
    span = samples[-1].minute
    window = min(soak.args.window_minutes, span / 3)
    first, last = growth_per_minute(samples, 0, window), growth_per_minute(samples, span - window, span)
    first_anon = growth_per_minute(samples, 0, window, "anon_mb")
    last_anon = growth_per_minute(samples, span - window, span, "anon_mb")
    # Levelled off: the last window grows at most a quarter as fast as the first, or by under
    # 0.5 MB a minute (30 MB an hour), whichever is looser.
    levelled = last <= max(first / 4, 0.5)
    problems = check_counts(soak, final_state)
    attempts, dials = warehouse
    if (attempts, dials) != (soak.sent, soak.sent):
        problems.append(f"the warehouse holds {attempts:,} attempts and {dials:,} dials for {soak.sent:,} sent")

    def at(minute: float) -> str:
        nearest = min(samples, key=lambda s: abs(s.minute - minute))
        return f"{nearest.rss_mb:.0f} MB (anon {nearest.anon_mb:.0f}) at {nearest.minute:.0f} min"

    marks = sorted({0, *range(20, int(span) + 1, 20), round(span)})
    summary = [
        ("RSS", "; ".join(at(minute) for minute in marks) + f"; peak {peak_rss:.0f} MB"),
        (
            "growth, first vs last",
            f"{first:+.2f} MB/min over minutes 0-{window:.0f}, {last:+.2f} MB/min over "
            f"minutes {span - window:.0f}-{span:.0f} (RssAnon {first_anon:+.2f} vs "
            f"{last_anon:+.2f} MB/min)",
        ),
        (
            "levelled off",
            ("yes" if levelled else "NO") + " (the last window grows at most a quarter as fast as "
            "the first, or under 0.5 MB/min)",
        ),
        (
            "event ids kept",
            f"{samples[1 if len(samples) > 1 else 0].event_ids:,} after the first sample, "
            f"{max(s.event_ids for s in samples):,} at most, {samples[-1].event_ids:,} at the end",
        ),
        (
            "counted",
            f"{final_state['counted']:,} of {soak.sent:,} sent by the worker's /health; the warehouse: "
            f"{attempts:,} attempts, {dials:,} dials; "
            + ("every event counted once" if not problems else "; ".join(problems)),
        ),
        ("mean worker CPU", f"{statistics.fmean(s.cpu_share for s in samples[1:] or samples) * 100:.0f} % of a core"),
    ]
    numbers = {
        "sent": soak.sent,
        "counted": final_state["counted"],
        "warehouse_attempts": attempts,
        "warehouse_dials": dials,
        "first_growth_mb_per_min": first,
        "last_growth_mb_per_min": last,
        "first_anon_growth_mb_per_min": first_anon,
        "last_anon_growth_mb_per_min": last_anon,
        "levelled_off": levelled,
        "peak_rss_mb": peak_rss,
        "counted_exactly": not problems,
        "samples": [asdict(s) for s in samples],
    }
    return summary, numbers


def probe_summary(path: Path, top: int = 8) -> list[tuple[str, str]]:
    """What bench/memory_probe.py saw: the heap at its baseline and at its last line, and the
    source lines whose Python allocations grew most in between."""
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    base = next((line for line in lines if line.get("baseline")), None)
    if base is None or lines[-1] is base:
        return [("probe", f"no line after the baseline in {path}")]
    last = lines[-1]

    def figures(line: dict) -> str:
        heap = line.get("heap") or {}
        traced = "" if line.get("traced_mb") is None else f", Python objects {line['traced_mb']:.0f}"
        chdb = "" if line.get("chdb_mb") is None else f", chDB {line['chdb_mb']:.0f}"
        small = line.get("pymalloc") or {}
        if "arenas_mb" in small:
            chdb += (
                f", Python's small-object arenas {small['arenas_mb']:.0f} ({small['allocated_mb']:.0f} in live blocks)"
            )
        return (
            f"RSS {line['rss_mb']:.0f} MB, anon {line['anon_mb']:.0f}{traced}{chdb}, glibc heap in use "
            f"{heap.get('in_use_mb', float('nan')):.0f}, free in it {heap.get('free_mb', float('nan')):.0f}, "
            f"mmapped {heap.get('mmapped_mb', float('nan')):.0f}; tracked objects "
            + ", ".join(f"{k} {v:,}" for k, v in list(line["objects"].items())[:3])
        )

    said = [
        ("probe at its baseline", f"{base['seconds'] / 60:.0f} min: {figures(base)}"),
        ("probe at the end", f"{last['seconds'] / 60:.0f} min: {figures(last)}"),
    ]
    if last.get("grown"):
        said.append(
            (
                "grew most (Python, tracemalloc)",
                "; ".join(f"{g['where']} {g['mb']:+.1f} MB ({g['blocks']:+,} blocks)" for g in last["grown"][:top]),
            )
        )
    for line in lines:
        collected = line.get("full_collection")
        if collected:
            said.append(
                (
                    f"full collection at {line['seconds'] / 60:.0f} min",
                    f"{collected['unreachable']:,} unreachable objects in {collected['seconds']} s ("
                    + ", ".join(f"{kind} {count:,}" for kind, count in collected.get("kinds", {}).items())
                    + f"); RSS "
                    f"{line['rss_mb']:.0f} -> {collected['rss_mb']:.0f} MB, anon {line['anon_mb']:.0f} -> "
                    f"{collected['anon_mb']:.0f} MB",
                )
            )
    return said


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=500, help="events published per second")
    parser.add_argument("--duration", type=float, default=3600, help="seconds of publishing")
    parser.add_argument("--campaigns", type=int, default=20)
    parser.add_argument(
        "--source",
        choices=("simulator", "workload"),
        default="simulator",
        help="whose call events: the dialer simulator's or bench/workload.py's",
    )
    parser.add_argument("--batch-events", type=int, default=1, help="events per Kafka record (the simulator's: 1)")
    parser.add_argument("--sample-seconds", type=float, default=60)
    parser.add_argument(
        "--window-minutes",
        type=float,
        default=20,
        help="the first and last windows compared for growth (at most a third of the run)",
    )
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--extra-config",
        default="",
        help="more TOML for the worker's config, e.g. shorter alert windows to reach the plateau "
        "sooner: '[alerts.rules.default]\\nabandon_window_minutes = 10\\ncpo_window_minutes = 10'",
    )
    parser.add_argument(
        "--probe",
        type=Path,
        default=None,
        help="run the worker under bench/memory_probe.py (tracemalloc: slower, more memory), its "
        "JSON lines to this file, and say what grew most",
    )
    parser.add_argument(
        "--probe-options",
        default="",
        help='more options for bench/memory_probe.py, e.g. "--frames 0 --collect-every 5"',
    )
    parser.add_argument("--smoke", action="store_true", help="20 s at 200 events/s, a sample every 2 s")
    parser.add_argument("--results", type=Path, default=None, help=f"where to write the table ({RESULTS_FILE})")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rate, args.duration, args.sample_seconds = 200, 20, 2
    with fresh_pipeline("soak", args.partitions, args.extra_config.replace("\\n", "\n")) as (workdir, config, settings):
        launcher = (
            ()
            if args.probe is None
            else (
                str(ROOT / "bench" / "memory_probe.py"),
                "--out",
                str(args.probe),
                "--every",
                str(args.sample_seconds),
                "--settle",
                str(2 * args.sample_seconds),
                *shlex.split(args.probe_options),
            )
        )
        worker = Worker(config, workdir, dashboard=True, launcher=launcher)
        try:
            worker.wait(lambda h: h.get("ready") and h.get("assigned_partitions"), timeout_s=180, poll_s=0.1)
            soak = Soak(args, settings, worker)
            soak.run()
            final_state = worker.health()
        finally:
            peak_rss, _ = worker.stop()
        summary, numbers = summarise(soak, final_state, warehouse_counts(settings), peak_rss)
        if args.probe is not None:
            summary += probe_summary(args.probe)
    text = render(soak, summary)
    print(text)
    target = args.results or (None if args.smoke else RESULTS_FILE)
    if target:
        write_results(target, text, "bench/soak.py", argv, numbers, SHARED_MACHINE)
    return 0 if numbers["counted_exactly"] else 1


if __name__ == "__main__":
    sys.exit(main())
