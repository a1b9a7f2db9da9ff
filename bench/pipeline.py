"""`callpulse bench`: CallPulse end to end against its peers on the same topic, and the
warehouse queries people wait for. One run, one machine, one seeded workload.

    .venv/bin/callpulse bench                  # the full run, about 10 minutes on 2 cores
    .venv/bin/callpulse bench --smoke          # 10 k events, a few seconds per stage: a check

Stages, each printed as it finishes and collected in one table:

1. **Publish** the workload (bench/workload.py: 1,000 campaigns, 6 segments, every slot)
   to a fresh topic on the embedded tansu broker, 100 events of one campaign per record.
2. **CallPulse, throughput.** The real worker (`callpulse worker`, its own process, chDB)
   starts on the backlog; events/s runs from its first counted record until the landed
   offsets (written after the attempts and buckets) reach the end of every partition.
   Peak RSS is the worker's VmHWM; its RSS is also taken as its partitions are assigned,
   and its anonymous memory (RssAnon) at every poll of its health.
   Two floors, each a fresh interpreter, say what that RSS starts from: the worker's
   imports alone, and an embedded chDB client alone.
3. **CallPulse, freshness.** Events stamped with their send time are published at a steady
   rate (5,000/s) to the running worker. An event is visible to a wallboard query once its
   record's offset is in the landed offsets, because the wallboard reads the warehouse with
   no cache and offsets land after the buckets; freshness is that moment minus event time,
   sampled every 50 ms from the worker's /health.
4. **Quix Streams** and a **naive Faust** agent compute the same counters from the same
   topic (bench/peers.py). The naive agent reads only the first --naive-events events: at
   about 1 k events/s the whole topic would take most of the run.
5. **Warehouse queries** on chDB: the wallboard's model on what the worker landed, and the
   30-day segment x slot x campaign cross-tab over --crosstab-attempts attempts landed
   into a fresh warehouse, with minute buckets built from those attempts and the hourly
   rollup built from the buckets (its one-time cost is in the note).

The table goes to bench/results/pipeline.txt with the machine's description.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from peers import memory_mb  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: E402
from rich.table import Table  # noqa: E402
from workload import call_events  # noqa: E402

from callpulse.embedded import EmbeddedBroker, die_with_parent, free_port  # noqa: E402
from core.config import Settings, load_settings  # noqa: E402
from core.schema import encode_batch  # noqa: E402
from producers.publisher import COMPRESSION, EventPublisher  # noqa: E402
from streams.kafka_admin import ensure_topics, partition_bounds  # noqa: E402

RESULTS_FILE = ROOT / "bench" / "results" / "pipeline.txt"
RECORD_EVENTS = 100
HMAC_KEY = "bench-hmac-key"
console = Console(stderr=True)


@dataclass
class Row:
    stage: str
    figure: str
    value: str
    note: str = ""


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    numbers: dict[str, float] = field(default_factory=dict)

    def add(self, stage: str, figure: str, key: str, value: float, shown: str, note: str = "") -> None:
        self.numbers[key] = value
        self.rows.append(Row(stage, figure, shown, note))
        console.print(f"[bold]{stage}[/] · {figure}: {shown} {note}")


# -- helpers -------------------------------------------------------------------------------


def health(port: int) -> dict | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            return json.loads(response.read())
    except OSError:
        return None


def cpu_seconds(pid: int) -> float:
    """A process's user + system CPU time so far, in seconds (utime and stime of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def write_config(workdir: Path, broker_port: int, prefix: str, partitions: int, extra: str = "") -> Path:
    """A config for a bench run on its own topics and data dir; ``extra`` is more TOML after it."""
    config = workdir / f"{prefix}.toml"
    config.write_text(f"""
[pipeline]
data_dir = "{workdir / prefix}"
[topics]
call_events = "{prefix}.call-events"
dead_letters = "{prefix}.dead-letters"
alerts = "{prefix}.alerts"
stop_list = "{prefix}.stop-list"
partitions = {partitions}
[embedded]
broker_port = {broker_port}
dashboard_port = {free_port()}
{extra}""")
    return config


@contextmanager
def fresh_pipeline(prefix: str, partitions: int, extra_config: str = "") -> Iterator[tuple[Path, Path, Settings]]:
    """A fresh data dir and embedded broker with the run's topics created: (its directory, the
    config file a worker is started with, its settings). Both go when the block ends."""
    with (
        tempfile.TemporaryDirectory(prefix=f"callpulse-{prefix}-") as tmp,
        EmbeddedBroker(free_port(), Path(tmp) / "broker") as broker,
    ):
        workdir = Path(tmp)
        config = write_config(workdir, broker.port, prefix, partitions, extra_config)
        settings = load_settings(config)
        ensure_topics(settings)
        yield workdir, config, settings


def publish(settings: Settings, events, total: int, label: str) -> float:
    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events, batch_events=RECORD_EVENTS)
    started = time.perf_counter()
    with Progress(
        TextColumn(f"[bold]{label}[/]"),
        BarColumn(),
        TextColumn("{task.completed:,} of {task.total:,}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task(label, total=total)
        for number, event in enumerate(events, 1):
            publisher.publish(event)
            if number % 10_000 == 0:
                progress.update(task, completed=number)
        publisher.close()
    return time.perf_counter() - started


class Worker:
    """The real worker in its own process and session, as `callpulse up` runs it (with
    ``dashboard``, also the dashboard in a process and session of its own, at a lower priority,
    that asks the worker's query endpoint, as `up` does with the embedded warehouse;
    ``self.dashboard`` is that process). ``launcher`` goes between the
    interpreter and ``-m callpulse`` for the worker: a script that runs the module, such as
    bench/memory_probe.py and its options."""

    def __init__(self, config: Path, workdir: Path, dashboard: bool = False, launcher: Sequence[str] = ()):
        import secrets

        self.health_port = free_port()
        self.ready_rss_mb = float("nan")  # its resident set as its partitions were assigned
        self.peak_anon_mb = 0.0
        self.log = (workdir / "worker.log").open("w")
        env = dict(os.environ, CALLPULSE_HMAC_KEY=HMAC_KEY)
        secret, warehouse_port = secrets.token_urlsafe(32), free_port()
        serving = ["--serve-warehouse", str(warehouse_port)] if dashboard else []
        self.proc = subprocess.Popen(
            [
                sys.executable,
                *launcher,
                "-m",
                "callpulse",
                "--config",
                str(config),
                "worker",
                "--health-port",
                str(self.health_port),
                "--no-dashboard",
                *serving,
            ],
            cwd=ROOT,
            env=dict(env, CALLPULSE_WAREHOUSE_SECRET=secret),
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        self.dashboard: subprocess.Popen | None = None
        self.dashboard_peak_rss_mb = float("nan")
        if dashboard:
            from callpulse.embedded import lower_priority, wait_for_port
            from callpulse.supervisor import DASHBOARD_NICENESS

            wait_for_port("127.0.0.1", warehouse_port, 180, self.proc)
            self.dashboard_log = (workdir / "dashboard.log").open("w")
            self.dashboard = subprocess.Popen(
                [sys.executable, "-m", "callpulse", "--config", str(config), "dashboard"],
                cwd=ROOT,
                env=dict(env, CLICKHOUSE_URL=f"http://callpulse:{secret}@127.0.0.1:{warehouse_port}"),
                stdout=self.dashboard_log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=lambda: lower_priority(DASHBOARD_NICENESS),
            )

    def health(self) -> dict | None:
        if self.proc.poll() is not None:
            raise SystemExit(f"the worker exited with {self.proc.returncode}; see {self.log.name}")
        if self.dashboard is not None and self.dashboard.poll() is not None:
            raise SystemExit(f"the dashboard exited with {self.dashboard.returncode}; see {self.dashboard_log.name}")
        # The kernel keeps no peak of anonymous memory, so it is sampled at every poll.
        self.peak_anon_mb = max(self.peak_anon_mb, memory_mb(self.proc.pid, "RssAnon"))
        return health(self.health_port)

    def wait(self, predicate, timeout_s: float, poll_s: float = 0.05) -> dict:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            state = self.health()
            if state and predicate(state):
                return state
            time.sleep(poll_s)
        raise SystemExit(f"the worker did not get there in {timeout_s:.0f} s; last health {state}")

    def rss_mb(self) -> float:
        return memory_mb(self.proc.pid, "VmRSS")

    def stop(self) -> tuple[float, float]:
        """Stop the worker; its (peak RSS, RSS at the end) in MB."""
        peak, now = memory_mb(self.proc.pid), self.rss_mb()
        if self.dashboard is not None:
            self.dashboard_peak_rss_mb = memory_mb(self.dashboard.pid)
            self.dashboard.terminate()
            self.dashboard.wait(60)
            self.dashboard_log.close()
        self.proc.terminate()
        self.proc.wait(60)
        self.log.close()
        return peak, now


# What the worker's memory starts from, each measured in a fresh interpreter: its own code's
# imports (Faust, aiokafka, clickhouse-connect, pandas, numpy), and the embedded warehouse
# alone (chDB's engine, its 555 MB library and the Arrow it loads, behind one client).
MEMORY_FLOORS = {
    "worker_imports_rss_mb": ("the worker's imports, no warehouse", "import streams.app"),
    "chdb_client_rss_mb": (
        "an embedded chDB client, nothing else",
        "import sys, clickhouse_connect; clickhouse_connect.get_client(dsn='chdb://' + sys.argv[1]).query('SELECT 1')",
    ),
}


def memory_floors(workdir: Path, results: Results) -> None:
    for key, (figure, code) in MEMORY_FLOORS.items():
        probe = f"{code}\nfrom peers import memory_mb\nprint(memory_mb('self', 'VmRSS'))"
        run = subprocess.run(
            [sys.executable, "-c", probe, str(workdir / "floor-warehouse")],
            cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{ROOT / 'bench'}"),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if run.returncode != 0:
            raise SystemExit(f"measuring {figure} failed: {run.stderr[-2000:]}")
        rss = float(run.stdout.split()[-1])
        results.add("CallPulse", f"RSS floor: {figure}", key, rss, f"{rss:.0f} MB", "(a fresh Python process)")


def landed_all(ends: dict[int, int]):
    return lambda h: all(int(h["landed_offsets"].get(str(p), 0)) >= end for p, end in ends.items())


# -- stages --------------------------------------------------------------------------------


def callpulse_throughput(
    settings: Settings, config: Path, workdir: Path, events: int, results: Results, published: int | None = None
) -> Worker:
    """``events`` calls among ``published`` events (the floor's too); events/s counts them all."""
    published = published or events
    ends = {p: end for p, (_, end) in partition_bounds(settings, settings.topics.call_events).items()}
    worker = Worker(config, workdir)
    # From the moment its partitions are assigned (the group join on tansu takes seconds
    # and is not throughput) until every offset has landed.
    worker.wait(lambda h: h.get("ready") and h.get("assigned_partitions"), timeout_s=180, poll_s=0.01)
    started = time.perf_counter()
    worker.ready_rss_mb = worker.rss_mb()
    done = worker.wait(landed_all(ends), timeout_s=1800, poll_s=0.02)
    seconds = time.perf_counter() - started
    if done["counted"] != events:
        raise SystemExit(f"the worker counted {done['counted']:,} of {events:,} events: {done}")
    rate = published / seconds
    results.add(
        "CallPulse",
        "end to end, sustained",
        "callpulse_events_per_s",
        rate,
        f"{rate:,.0f} events/s",
        f"({published:,} events landed in {seconds:.1f} s, 1 worker process)",
    )
    return worker


def callpulse_freshness(settings: Settings, worker: Worker, rate: float, seconds: float, results: Results) -> None:
    """Publish at a steady ``rate`` with event_time = send time; sample when each record lands."""
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=5, compression_type=COMPRESSION
    )
    sent: list[tuple[float, object]] = []  # (event time as epoch seconds, send future)
    campaigns = [f"fresh-{n:03d}" for n in range(50)]
    per_record = 50  # 100 records/s at 5,000 events/s
    interval = per_record / rate
    workload = call_events(int(rate * seconds) + per_record, seed=11, campaigns=len(campaigns))
    sampler = LandedSampler(worker)
    cpu_at_start = cpu_seconds(worker.proc.pid)
    next_send = time.monotonic()
    started = next_send
    ends_at = next_send + seconds
    number = 0
    while time.monotonic() < ends_at:
        now = time.monotonic()
        if now < next_send:
            time.sleep(next_send - now)
        next_send += interval
        stamp = datetime.now(timezone.utc)
        batch = [event_with(next(workload), campaigns[number % len(campaigns)], stamp) for _ in range(per_record)]
        future = producer.send(settings.topics.call_events, key=batch[0].campaign.encode(), value=encode_batch(batch))
        sent.append((stamp.timestamp(), future))
        number += 1
    producer.flush()
    # What a steady load costs the box: the worker's CPU while the events arrived.
    cpu_share = (cpu_seconds(worker.proc.pid) - cpu_at_start) / (time.monotonic() - started)
    where = [(stamp, future.get(timeout=30)) for stamp, future in sent]
    ends = {}
    for _, meta in where:
        ends[meta.partition] = max(ends.get(meta.partition, 0), meta.offset + 1)
    sampler.wait_for(lambda landed: all(landed.get(p, 0) >= end for p, end in ends.items()), timeout_s=120)
    sampler.stop()
    visible_at: dict[tuple[int, int], float] = {}
    for _, meta in where:
        seen = sampler.first_time(meta.partition, meta.offset + 1)
        if seen is not None:
            visible_at[(meta.partition, meta.offset)] = seen
    lags = [visible_at[(m.partition, m.offset)] - stamp for stamp, m in where if (m.partition, m.offset) in visible_at]
    if len(lags) < len(where):
        raise SystemExit(f"only {len(lags)} of {len(where)} freshness records landed")
    p50, p95 = statistics.median(lags), percentile(lags, 0.95)
    results.add("CallPulse", f"freshness at {rate:,.0f} events/s, p50", "freshness_p50_s", p50, f"{p50:.2f} s")
    results.add(
        "CallPulse",
        f"freshness at {rate:,.0f} events/s, p95",
        "freshness_p95_s",
        p95,
        f"{p95:.2f} s",
        f"({len(lags) * per_record:,} events over {seconds:.0f} s; event time -> landed, sampled every 50 ms)",
    )
    results.add(
        "CallPulse",
        f"worker CPU at {rate:,.0f} events/s",
        "worker_cpu_share",
        cpu_share,
        f"{cpu_share * 100:.0f} % of a core",
        "(user + system time while those events arrived)",
    )


class LandedSampler:
    """Polls the worker's landed offsets every 50 ms in a thread while records are still
    being published, so each record's landing is timed when it happens, not after."""

    def __init__(self, worker: Worker, poll_s: float = 0.05):
        import threading

        self.worker = worker
        self.poll_s = poll_s
        self.samples: list[tuple[float, dict[int, int]]] = []  # (wall time, partition -> next offset)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            state = health(self.worker.health_port)
            if state:
                self.samples.append((time.time(), {int(p): int(o) for p, o in state["landed_offsets"].items()}))
            time.sleep(self.poll_s)

    def wait_for(self, predicate, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.samples and predicate(self.samples[-1][1]):
                return
            time.sleep(self.poll_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def first_time(self, partition: int, next_offset: int) -> float | None:
        """When the landed offset of ``partition`` first reached ``next_offset``."""
        return next((at for at, landed in self.samples if landed.get(partition, 0) >= next_offset), None)


def event_with(event, campaign: str, stamp: datetime):
    import msgspec

    return msgspec.structs.replace(event, campaign=campaign, event_time=stamp, event_id=f"fresh-{event.event_id}")


def peers(settings: Settings, workdir: Path, events: int, naive_events: int, results: Results) -> None:
    import importlib.util

    if importlib.util.find_spec("quixstreams") is None:
        raise SystemExit(
            "Quix Streams is not installed: `make bench` installs it "
            "(or .venv/bin/pip install -e '.[bench]'); --skip-peers runs without it"
        )
    from peers import run_naive_faust, run_quix

    quix = run_quix(settings.bootstrap_servers, settings.topics.call_events, events, workdir / "quix")
    results.add(
        "Quix Streams",
        "same counters, same topic",
        "quix_events_per_s",
        quix["events_per_s"],
        f"{quix['events_per_s']:,.0f} events/s",
        f"({quix['events']:,} events counted in memory, RSS {quix['rss_mb']:.0f} MB)",
    )
    # CallPulse's clock stops when its results are landed; Quix's above, when the last event
    # is counted in memory, before its checkpoint. This one stops when that is committed.
    results.add(
        "Quix Streams",
        "same counters, state committed",
        "quix_committed_events_per_s",
        quix["committed_events_per_s"],
        f"{quix['committed_events_per_s']:,.0f} events/s",
        f"(to its last checkpoint: state in RocksDB and its changelog topic, offsets committed; "
        f"{quix['committed_seconds'] - quix['seconds']:.1f} s after the last event counted)",
    )
    naive = run_naive_faust(
        settings.bootstrap_servers,
        settings.topics.call_events,
        settings.topics.partitions,
        naive_events,
        workdir / "naive",
    )
    results.add(
        "Naive Faust",
        "per-event table updates",
        "naive_events_per_s",
        naive["events_per_s"],
        f"{naive['events_per_s']:,.0f} events/s",
        f"({naive['events']:,} events, RSS {naive['rss_mb']:.0f} MB)",
    )


def wallboard_query(settings: Settings, results: Results, repeats: int) -> None:
    from dashboards.data import DashboardContext, set_context, wallboard_model
    from warehouse.client import connect

    client = connect(settings.warehouse_url)
    dashboard = DashboardContext(settings, client, warehouse_url=settings.warehouse_url)  # as `callpulse up` builds it
    set_context(dashboard)
    for _ in range(3):
        wallboard_model()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        wallboard_model()
        samples.append((time.perf_counter() - started) * 1000)
    p50 = statistics.median(samples)
    results.add(
        "Warehouse",
        "wallboard query (model), p50",
        "wallboard_ms",
        p50,
        f"{p50:.0f} ms",
        f"(every query of one refresh, {repeats} runs, p95 {percentile(samples, 0.95):.0f} ms)",
    )
    dashboard.close()
    client.close()


# Attempts spread evenly over 30 days ending now, 200 campaigns, six segments, the outcome
# mix roughly a dialer's; the slot comes from the configured slots in the configured zone.
CROSSTAB_FILL = """
INSERT INTO call_attempts (event_id, campaign, event_time, minute, slot, segment, outcome, ring_seconds,
                           wait_seconds, talk_seconds, is_order, order_value, cost, phone_hash, lead_id, agent,
                           team, landed_at)
SELECT concat('x', toString(number)) AS event_id,
       concat('bench-', leftPad(toString(number % 200), 4, '0')) AS campaign,
       {end:DateTime64(3)} - toIntervalMillisecond(intDiv(number * {span_ms:UInt64}, {total:UInt64})) AS t,
       toStartOfMinute(t), {slot_expression},
       ['seniors', 'homemakers', 'students', 'salaried', 'self-employed', 'retired-abroad'][1 + intHash32(number) % 6],
       ['no_answer', 'busy', 'machine', 'connected', 'connected', 'abandoned', 'no_answer', 'connected']
           [1 + intHash32(number + 1) % 8],
       8, 0, 60, intHash32(number + 2) % 25 = 0, 0, 0.2, '', '', '', '', now64(3)
FROM numbers({total:UInt64})
"""


def crosstab_query(workdir: Path, attempts: int, results: Results, repeats: int) -> None:
    """Land ``attempts`` over 30 days into a fresh warehouse, buckets built from them by SQL and
    their hourly rollup, then time the 30-day segment x slot x campaign report that the Reports
    page runs."""
    from analytics import reports
    from core.slots import OFF_HOURS
    from warehouse.client import connect
    from warehouse.migrate import migrate

    settings = load_settings(pipeline__data_dir=str(workdir / "crosstab"))
    client = connect(settings.warehouse_url)
    migrate(client)
    end = datetime.now(timezone.utc).replace(microsecond=0)
    console.print(f"landing {attempts:,} attempts over 30 days for the cross-tab …")
    hour = "toHour(toTimeZone(t, {tz:String}))"
    slot = (
        "multiIf("
        + "".join(
            f"{hour} >= {rule.start_hour} AND {hour} < {rule.end_hour}, '{rule.name}', " for rule in settings.slots
        )
        + f"'{OFF_HOURS}')"
    )
    client.command(
        CROSSTAB_FILL.replace("{slot_expression}", slot),
        parameters={"end": end, "span_ms": 30 * 86_400_000, "total": attempts, "tz": settings.pipeline.timezone},
    )
    # The buckets the worker would have landed for those attempts.
    from core.metrics import COUNTERS, raw_counter_sql

    raw_sql = raw_counter_sql(settings.compliance.ftc_connect_seconds)
    client.command(
        f"INSERT INTO minute_metrics (campaign, slot, segment, minute, {', '.join(COUNTERS)}, version, landed_at) "
        f"SELECT campaign, slot, segment, minute, {', '.join(raw_sql[name] for name in COUNTERS)}, 1, "
        "now64(3) FROM call_attempts GROUP BY campaign, slot, segment, minute"
    )
    landed = client.query("SELECT sum(dials), count() FROM minute_metrics").result_rows[0]
    # The hourly rollup a deployment builds as hours close (warehouse/rollup.py): all of it here,
    # since these 30 days landed at once. The reads below still take the open hour from minutes.
    from warehouse.rollup import refresh_rollup

    started = time.perf_counter()
    rolled_up = refresh_rollup(client, settle=timedelta(0))
    rollup_s = time.perf_counter() - started
    today = datetime.now(settings.zone).date()
    request = reports.ReportRequest.parse(
        "segment,slot,campaign", "contact_rate,abandon_rate,cpo", today - timedelta(days=29), today, today=today
    )
    for _ in range(2):
        reports.counters_frame(client, request, settings.zone)
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        frame = reports.counters_frame(client, request, settings.zone)
        samples.append((time.perf_counter() - started) * 1000)
    p50 = statistics.median(samples)
    results.add(
        "Warehouse",
        "30-day cross-tab, segment x slot x campaign, p50",
        "crosstab_ms",
        p50,
        f"{p50:.0f} ms",
        f"({int(landed[0]):,} attempts in {int(landed[1]):,} minute buckets -> {len(frame):,} cells; "
        f"p95 {percentile(samples, 0.95):.0f} ms; rollup of {rolled_up:,} hours built in {rollup_s:.1f} s "
        "before)",
    )
    client.close()


# -- the run -------------------------------------------------------------------------------


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory = next(
        int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
    )
    return (
        f"{cpu}, {os.cpu_count()} cores, {memory / 1024 / 1024:.0f} GiB; {platform.platform()}; "
        f"Python {platform.python_version()}"
    )


def write_results(target: Path, text: str, program: str, argv: list[str] | None, numbers: dict, note: str = "") -> None:
    """The table, the machine it ran on (and ``note`` about it), the command and its figures as
    one JSON line (the line tests read), to ``target``."""
    target.parent.mkdir(parents=True, exist_ok=True)
    command = " ".join([program, *(argv if argv is not None else sys.argv[1:])])
    target.write_text(f"{text}\nmachine: {machine()}{note}\ncommand: {command}\nnumbers: {json.dumps(numbers)}\n")
    console.print(f"written to {target}")


def render(results: Results, args) -> str:
    table = Table(title=f"callpulse bench · {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC")
    for column in ("stage", "figure", "value", "note"):
        table.add_column(column)
    for row in results.rows:
        table.add_row(row.stage, row.figure, row.value, row.note)
    buffer = Console(record=True, width=160, file=open(os.devnull, "w"))
    buffer.print(table)
    return buffer.export_text()


def main(argv: list[str] | None = None) -> Results:
    parser = argparse.ArgumentParser(
        prog="callpulse bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000, help="events in the throughput workload")
    parser.add_argument("--naive-events", type=int, default=60_000, help="events the naive Faust agent reads")
    parser.add_argument("--fresh-rate", type=float, default=5_000, help="events/s for the freshness stage")
    parser.add_argument("--fresh-seconds", type=float, default=30)
    parser.add_argument("--crosstab-attempts", type=int, default=10_000_000)
    parser.add_argument("--campaigns", type=int, default=1000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--agents",
        type=int,
        default=0,
        help="agents per campaign: with them the workload carries the floor's agent_state and "
        "dialer_state events (bench/workload.py); --events counts the calls alone",
    )
    parser.add_argument("--skip-peers", action="store_true", help="CallPulse and the warehouse only")
    parser.add_argument("--skip-warehouse", action="store_true", help="leave out the warehouse query stages")
    parser.add_argument(
        "--smoke", action="store_true", help="10 k events, short stages; checks that every stage works (make test)"
    )
    parser.add_argument("--results", type=Path, default=None, help=f"where to write the table ({RESULTS_FILE})")
    args = parser.parse_args(argv)
    if args.smoke:
        args.events, args.naive_events, args.fresh_seconds, args.crosstab_attempts = 10_000, 2_000, 3, 200_000
        args.campaigns = 100
    results = Results()
    with fresh_pipeline("bench", args.partitions) as (workdir, config, settings):
        published = sum(
            1 for _ in call_events(args.events, seed=args.seed, campaigns=args.campaigns, agents=args.agents)
        )
        seconds = publish(
            settings,
            call_events(args.events, seed=args.seed, campaigns=args.campaigns, agents=args.agents),
            published,
            "publishing the workload",
        )
        floor_note = (
            f"; {published - args.events:,} of them agent_state and dialer_state events of "
            f"{args.agents} agents per campaign"
            if args.agents
            else ""
        )
        results.add(
            "Workload",
            "published",
            "published_events",
            published,
            f"{published:,} events",
            f"({args.campaigns:,} campaigns x 6 segments, every slot; "
            f"{RECORD_EVENTS} events per record; {published / seconds:,.0f} events/s with kafka-python"
            f"{floor_note})",
        )
        worker = callpulse_throughput(settings, config, workdir, args.events, results, published)
        try:
            callpulse_freshness(settings, worker, args.fresh_rate, args.fresh_seconds, results)
        finally:
            rss, steady_rss = worker.stop()
        results.add(
            "CallPulse",
            "worker RSS when ready",
            "worker_ready_rss_mb",
            worker.ready_rss_mb,
            f"{worker.ready_rss_mb:.0f} MB",
            "(as its partitions were assigned, the backlog waiting)",
        )
        results.add(
            "CallPulse",
            "worker peak RSS",
            "worker_rss_mb",
            rss,
            f"{rss:.0f} MB",
            f"({args.campaigns:,} campaigns x 6 segments live; the peak is during the backlog)",
        )
        # Whether the backlog's memory comes back once the load is steady: the RSS at the end.
        results.add(
            "CallPulse",
            "worker RSS at the end",
            "worker_steady_rss_mb",
            steady_rss,
            f"{steady_rss:.0f} MB",
            f"(after the backlog, then {args.fresh_seconds:,.0f} s at {args.fresh_rate:,.0f} events/s)",
        )
        # RSS also counts the library pages mapped (chDB's most of all), and how many of those are
        # mapped moves with the page cache: the same process measured 120 MB apart on one day.
        results.add(
            "CallPulse",
            "worker peak anonymous memory",
            "worker_peak_anon_mb",
            worker.peak_anon_mb,
            f"{worker.peak_anon_mb:.0f} MB",
            "(RssAnon, sampled every 20 ms through the backlog: the RSS without mapped files)",
        )
        memory_floors(workdir, results)
        if not args.skip_peers:
            peers(settings, workdir, args.events, args.naive_events, results)
        if not args.skip_warehouse:
            wallboard_query(settings, results, repeats=5 if args.smoke else 30)
            crosstab_query(workdir, args.crosstab_attempts, results, repeats=3 if args.smoke else 10)
    numbers = results.numbers
    if "quix_events_per_s" in numbers:
        for key, name in (
            ("quix_events_per_s", "Quix Streams"),
            ("quix_committed_events_per_s", "Quix Streams, state committed"),
            ("naive_events_per_s", "naive Faust"),
        ):
            ratio = numbers["callpulse_events_per_s"] / numbers[key]
            results.add("Ratio", f"CallPulse / {name}", f"ratio_{key}", ratio, f"{ratio:.2f} x")
    text = render(results, args)
    print(text)
    target = args.results or (None if args.smoke else RESULTS_FILE)
    if target:
        write_results(target, text, "callpulse bench", argv, {k: round(v, 3) for k, v in numbers.items()})
    return results


if __name__ == "__main__":
    main()
