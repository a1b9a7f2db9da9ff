"""Dashboard pressure: how fast the worker counts while its dashboard is under load.

    .venv/bin/python bench/dashboard_pressure.py                 # 200,000 events, 100,000 campaigns, 3 rounds
    .venv/bin/python bench/dashboard_pressure.py --rounds 1      # every condition once
    .venv/bin/python bench/dashboard_pressure.py --smoke         # 20,000 events, 2,000 campaigns: a check

In embedded mode only the worker may open the warehouse; `callpulse up` runs the dashboard in a
process of its own that asks the worker's query endpoint (`callpulse worker --serve-warehouse`,
warehouse/endpoint.py), so the dashboard's queries still run in the worker's process. Each
condition runs on a fresh data dir and broker: --events call events (bench/workload.py, 1,000
campaigns, 100 per record) are published, then the real worker starts with its dashboard.
The worker holds its first batch (the outage drill's
switch, warehouse/faults.py) until the dashboard answers and its clients have started;
events/s runs from that batch's landing to the last, over the events counted in between. The
clients stop once the backlog has landed.

    idle       no dashboard client.
    logins     --login-threads threads (16) sending wrong passwords to the dashboard over HTTP
               basic auth as fast as it answers, for a known user name and unknown ones, all
               from 127.0.0.1 (what the rate limit sees as one client).
    campaigns  --flood-campaigns campaigns (100,000), one call each in the last ten minutes,
               landed into the warehouse before the worker starts (the worker restores them into
               its live state, as if it had counted them); a client polls /api/wallboard every 3 s
               with a token, and a supervisor's browser session loads the wallboard page and runs
               its refresh callback at the page's interval.
    flood      the same campaigns landed, no client: what the worker's own live state of
               100,000 campaigns costs, apart from what the dashboard's clients cost.

The clients run in this process's threads at nice 10, as the dashboard process runs under `up`:
they stand for browsers and scripts on other machines, so their own CPU should not count
against the worker on this one (on a 2-core machine 16 threads of HTTP clients take a core).

Each condition's events/s (the median of its rounds) is set against idle's (the goal: within
10 %), with the worker's peak RSS (VmHWM; the goal: under 1 GB) and what the clients got. On a
machine shared with other work, events/s also moves with what else runs; the worker's CPU time
per event (counting and the dashboard's queries, one process) moves much less, and says what the
dashboard's work costs the process. The table is printed and
written to bench/results/dashboard_pressure.txt.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
import msgspec  # noqa: E402
from peers import memory_mb  # noqa: E402
from pipeline import Worker, console, cpu_seconds, fresh_pipeline, landed_all, percentile, publish, write_results  # noqa: E402
from rich.table import Table  # noqa: E402
from workload import call_events  # noqa: E402

from core.slots import SlotRules  # noqa: E402
from dashboards.auth import hash_password, hash_token, new_token  # noqa: E402
from streams.kafka_admin import partition_bounds  # noqa: E402
from warehouse.faults import SWITCH_NAME  # noqa: E402

RESULTS_FILE = ROOT / "bench" / "results" / "dashboard_pressure.txt"
CONDITIONS = ("idle", "logins", "campaigns", "flood")
VIEWER, VIEWER_PASSWORD = "viewer", secrets.token_urlsafe(12)
TOKEN = new_token()
LAND_CHUNK_EVENTS = 20_000
CLIENT_NICENESS = 10  # the clients' threads, as the dashboard process (callpulse.supervisor.DASHBOARD_NICENESS)


def logins_config() -> str:
    """The dashboard logins the clients use: a supervisor's password and a wall TV's token."""
    return f"""
[dashboard.users.{VIEWER}]
role = "supervisor"
password_hash = "{hash_password(VIEWER_PASSWORD)}"
[dashboard.tokens.wall-tv]
role = "supervisor"
token_sha256 = "{hash_token(TOKEN)}"
"""


# -- the dashboard's clients ---------------------------------------------------------------


@dataclass
class ClientLog:
    """What one kind of client asked and got: status codes, latencies, response sizes."""

    name: str
    statuses: Counter = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    largest_bytes: int = 0
    errors: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def timed(self, http: httpx.Client, method: str, path: str, **kwargs) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            response = http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            with self.lock:
                self.errors[type(exc).__name__] += 1
            return None
        with self.lock:
            self.latencies_ms.append((time.perf_counter() - started) * 1000)
            self.statuses[response.status_code] += 1
            self.largest_bytes = max(self.largest_bytes, len(response.content))
        return response

    def summary(self) -> str:
        if not self.latencies_ms:
            return f"{self.name}: no answer ({dict(self.errors)})"
        codes = ", ".join(f"{count:,} x {status}" for status, count in sorted(self.statuses.items()))
        errors = f", errors {dict(self.errors)}" if self.errors else ""
        return (
            f"{self.name}: {len(self.latencies_ms):,} requests ({codes}{errors}), "
            f"p50 {statistics.median(self.latencies_ms):.0f} ms, p95 {percentile(self.latencies_ms, 0.95):.0f} ms, "
            f"largest {self.largest_bytes / 1e6:.2f} MB"
        )


class Clients:
    """Dashboard clients in threads, started together and stopped together."""

    def __init__(self, base_url: str, max_seconds: float):
        self.base_url = base_url
        self.stop_at = time.monotonic() + max_seconds  # a bound whatever happens to the run
        self.stopping = threading.Event()
        self.logs: list[ClientLog] = []
        self.threads: list[threading.Thread] = []

    def running(self) -> bool:
        return not self.stopping.is_set() and time.monotonic() < self.stop_at

    def start(self, name: str, target, log: ClientLog) -> None:
        if log not in self.logs:
            self.logs.append(log)
        thread = threading.Thread(target=self._niced, args=(target, log), name=name, daemon=True)
        self.threads.append(thread)
        thread.start()

    @staticmethod
    def _niced(target, log: ClientLog) -> None:
        """The clients stand for people and scripts on other machines: on this one their own CPU
        goes below the worker's (this thread alone: Linux schedules threads by their own nice)."""
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), CLIENT_NICENESS)
        target(log)

    def stop(self) -> list[str]:
        self.stopping.set()
        for thread in self.threads:
            thread.join(30)
        return [log.summary() for log in self.logs]

    def http(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=30, **kwargs)

    def guess_passwords(self, log: ClientLog) -> None:
        """Wrong passwords as fast as the dashboard answers: the known user's and unknown users'."""
        names = [VIEWER, "admin", f"guess-{threading.get_ident() % 1000}"]
        with self.http() as http:
            for number in range(10**9):
                if not self.running():
                    return
                log.timed(http, "GET", "/", auth=(names[number % len(names)], f"wrong-{number}"))

    def poll_api(self, log: ClientLog, every_s: float = 3.0) -> None:
        """A script or wall TV reading /api/wallboard with its token every few seconds."""
        with self.http(headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            while self.running():
                log.timed(http, "GET", "/api/wallboard")
                self.stopping.wait(every_s)

    def view_wallboard(self, log: ClientLog, every_s: float = 3.0) -> None:
        """A supervisor's browser: the page, Dash's layout and callbacks, the router's page for /,
        then the wallboard's refresh callback at the page's interval."""
        with self.http(auth=(VIEWER, VIEWER_PASSWORD), headers={"Content-Type": "application/json"}) as http:
            for path in ("/", "/_dash-layout"):
                log.timed(http, "GET", path)
            listed = log.timed(http, "GET", "/_dash-dependencies")
            if listed is None or listed.status_code != 200:
                return
            dependencies = listed.json()
            log.timed(
                http,
                "POST",
                "/_dash-update-component",
                content=callback_request(
                    dependencies,
                    "_pages_content.children",
                    {"_pages_location.pathname": "/", "_pages_location.search": ""},
                ),
            )
            intervals = 0
            while self.running():
                intervals += 1
                log.timed(
                    http,
                    "POST",
                    "/_dash-update-component",
                    content=callback_request(
                        dependencies, "campaign-tiles.children", {"wallboard-refresh.n_intervals": intervals}
                    ),
                )
                self.stopping.wait(every_s)


def callback_request(dependencies: list[dict], output_part: str, values: dict) -> bytes:
    """The body a browser posts to run the Dash callback whose outputs include ``output_part``."""
    spec = next(d for d in dependencies if output_part in d["output"])
    outputs = [dict(zip(("id", "property"), key.rsplit(".", 1))) for key in spec["output"].strip(".").split("...")]

    def filled(items):
        return [
            {"id": i["id"], "property": i["property"], "value": values.get(f"{i['id']}.{i['property']}")} for i in items
        ]

    return json.dumps(
        {
            "output": spec["output"],
            "outputs": outputs,
            "inputs": filled(spec["inputs"]),
            "state": filled(spec["state"]),
            "changedPropIds": [],
        }
    ).encode()


def wait_for_dashboard(base_url: str, worker: Worker, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        worker.health()  # raises if the worker exited
        try:
            if httpx.get(base_url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"the dashboard at {base_url} did not answer within {timeout_s:.0f} s")


# -- a condition ---------------------------------------------------------------------------


def land_flood(settings, campaigns: int) -> float:
    """One call for each of ``campaigns`` campaigns in the last ten minutes, counted and landed
    as the worker would, into the (fresh) warehouse; the seconds it took."""
    from core.handoff import LandingBatch
    from streams.buckets import MinuteBuckets
    from warehouse.client import connect
    from warehouse.landing import Lander
    from warehouse.migrate import migrate

    started = time.perf_counter()
    client = connect(settings.warehouse_url)
    try:
        migrate(client)
        slot_rules = SlotRules(settings.slots, settings.zone)
        lander = Lander(client, settings)
        buckets = MinuteBuckets(settings, slot_rules)
        calls = call_events(campaigns, seed=99, campaigns=1, hours=1 / 6)
        batch = []
        for number, call in enumerate(calls):
            call = msgspec.structs.replace(call, campaign=f"flood-{number:06d}", event_id=f"flood-{number}")
            buckets.add(call)
            batch.append(call)
            if len(batch) == LAND_CHUNK_EVENTS or number == campaigns - 1:
                lander.land(LandingBatch(buckets.take_counted(), buckets.take_dirty()))
                batch = []
    finally:
        client.close()
    return time.perf_counter() - started


@dataclass
class Outcome:
    condition: str
    round: int
    events_per_s: float
    seconds: float
    cpu_share: float
    peak_rss_mb: float
    peak_anon_mb: float
    clients: list[str]
    note: str = ""

    @property
    def cpu_us_per_event(self) -> float:
        """The worker process's CPU time (counting and its dashboard) per event counted, in µs."""
        return self.cpu_share / self.events_per_s * 1e6


def run_condition(condition: str, round_number: int, args) -> Outcome:
    with fresh_pipeline(f"pressure-{condition}", args.partitions, logins_config()) as (workdir, config, settings):
        publish(
            settings,
            call_events(args.events, seed=args.seed, campaigns=args.campaigns),
            args.events,
            f"{condition}: publishing the backlog",
        )
        ends = {p: end for p, (_, end) in partition_bounds(settings, settings.topics.call_events).items()}
        note = ""
        if condition in ("campaigns", "flood"):
            landed_s = land_flood(settings, args.flood_campaigns)
            note = f"{args.flood_campaigns:,} campaigns landed first in {landed_s:.1f} s"
        # The worker holds its first batch (the outage drill's switch) until the dashboard is up and
        # its clients have started: the dashboard's process, at nice 10, can take longer to start
        # than the worker takes to count the backlog.
        held = workdir / "faults" / SWITCH_NAME
        held.parent.mkdir()
        held.touch()
        os.environ["CALLPULSE_FAULT_DIR"] = str(held.parent)
        try:
            worker = Worker(config, workdir, dashboard=True)
        finally:
            del os.environ["CALLPULSE_FAULT_DIR"]
        clients = Clients(f"http://127.0.0.1:{settings.embedded.dashboard_port}", max_seconds=args.max_load_seconds)
        try:
            wait_for_dashboard(clients.base_url, worker)
            if condition == "logins":
                guesses = ClientLog("wrong logins")
                for number in range(args.login_threads):
                    clients.start(f"guess-{number}", clients.guess_passwords, guesses)
            elif condition == "campaigns":
                clients.start("api", clients.poll_api, ClientLog("GET /api/wallboard every 3 s"))
                clients.start("browser", clients.view_wallboard, ClientLog("wallboard page and its refresh callback"))
            released, cpu_at_release = time.perf_counter(), cpu_seconds(worker.proc.pid)
            held.unlink()
            # From the worker's first landing (its held batch) to its last: the events counted between.
            first = worker.wait(lambda h: h.get("last_landed_at"), timeout_s=300, poll_s=0.005)
            started, cpu_at_start = time.perf_counter(), cpu_seconds(worker.proc.pid)
            done = worker.wait(landed_all(ends), timeout_s=1800, poll_s=0.02)
            measured = args.events - first.get("counted", 0)
            if measured < args.events // 10:  # the held batch was (nearly) all of it: a smoke run
                started, cpu_at_start, measured = released, cpu_at_release, args.events
            seconds = time.perf_counter() - started
            cpu_share = (cpu_seconds(worker.proc.pid) - cpu_at_start) / seconds
            summaries = clients.stop()
            anon = max(worker.peak_anon_mb, memory_mb(worker.proc.pid, "RssAnon"))
        finally:
            clients.stop()
            peak_rss, _ = worker.stop()
        note = "; ".join(
            part for part in (note, f"dashboard process peak RSS {worker.dashboard_peak_rss_mb:.0f} MB") if part
        )
        if done["counted"] != args.events:
            raise SystemExit(f"{condition}: the worker counted {done['counted']:,} of {args.events:,} events")
    outcome = Outcome(condition, round_number, measured / seconds, seconds, cpu_share, peak_rss, anon, summaries, note)
    console.print(
        f"[bold]{condition}[/] (round {round_number}): {outcome.events_per_s:,.0f} events/s "
        f"({measured:,} in {seconds:.1f} s), worker CPU {cpu_share * 100:.0f} %, peak RSS "
        f"{peak_rss:.0f} MB" + "".join(f"\n  {line}" for line in summaries)
    )
    return outcome


# -- the run -------------------------------------------------------------------------------


def render(outcomes: list[Outcome], args, width: int = 170) -> tuple[str, dict]:
    idle = statistics.median(o.events_per_s for o in outcomes if o.condition == "idle")
    idle_cpu = statistics.median(o.cpu_us_per_event for o in outcomes if o.condition == "idle")
    table = Table(
        title=f"dashboard pressure · {args.events:,} events (the worker, its dashboard in a process of "
        f"its own) · "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"
    )
    for column in (
        "condition",
        "round",
        "events/s",
        "vs idle",
        "s",
        "worker CPU",
        "CPU µs/event",
        "peak RSS",
        "peak anon",
        "clients",
    ):
        table.add_column(column, justify="left" if column in ("condition", "clients") else "right")
    for o in outcomes:
        table.add_row(
            o.condition,
            str(o.round),
            f"{o.events_per_s:,.0f}",
            f"{o.events_per_s / idle * 100:.0f} %",
            f"{o.seconds:.1f}",
            f"{o.cpu_share * 100:.0f} %",
            f"{o.cpu_us_per_event:.0f}",
            f"{o.peak_rss_mb:.0f} MB",
            f"{o.peak_anon_mb:.0f} MB",
            "\n".join([*o.clients, o.note]).strip() or "none",
        )
    numbers: dict = {"idle_events_per_s": idle}
    lines = []
    for condition in CONDITIONS:
        mine = [o for o in outcomes if o.condition == condition]
        if not mine:
            continue
        rate = statistics.median(o.events_per_s for o in mine)
        peak = max(o.peak_rss_mb for o in mine)
        cpu = statistics.median(o.cpu_us_per_event for o in mine)
        numbers[f"{condition}_cpu_us_per_event"] = cpu
        numbers[f"{condition}_events_per_s"] = rate
        numbers[f"{condition}_vs_idle"] = rate / idle
        numbers[f"{condition}_peak_rss_mb"] = peak
        lines.append(
            f"{condition}: {rate:,.0f} events/s (median of {len(mine)}), {rate / idle * 100:.0f} % of idle "
            f"({'within' if rate >= 0.9 * idle else 'NOT within'} 10 %); worker CPU {cpu:.0f} µs an event, "
            f"{cpu / idle_cpu * 100:.0f} % of idle's; peak RSS {peak:.0f} MB "
            f"({'under' if peak < 1024 else 'NOT under'} 1 GB)"
        )
    recorder = console.__class__(record=True, width=width, file=open("/dev/null", "w"), color_system=None)
    recorder.print(table)
    for line in lines:
        recorder.print(line, soft_wrap=True)
    return recorder.export_text(), numbers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000, help="the backlog counted in each condition")
    parser.add_argument("--campaigns", type=int, default=1000, help="campaigns in the backlog")
    parser.add_argument("--flood-campaigns", type=int, default=100_000, help="campaigns landed before 'campaigns'")
    parser.add_argument("--login-threads", type=int, default=16)
    parser.add_argument("--conditions", default=",".join(CONDITIONS), help="which, in this order (idle is needed)")
    parser.add_argument("--rounds", type=int, default=3, help="run the conditions this many times, in turn")
    parser.add_argument("--max-load-seconds", type=float, default=900, help="clients stop after this whatever happens")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--note", default="", help="said after the machine's description (e.g. what else ran)")
    parser.add_argument("--smoke", action="store_true", help="20,000 events, 2,000 flood campaigns: a check")
    parser.add_argument("--results", type=Path, default=None, help=f"where to write the table ({RESULTS_FILE})")
    args = parser.parse_args(argv)
    if args.smoke:
        args.events, args.flood_campaigns, args.campaigns, args.rounds = 20_000, 2_000, 100, 1
    conditions = [c.strip() for c in args.conditions.split(",")]
    if "idle" not in conditions or not set(conditions) <= set(CONDITIONS):
        parser.error(f"--conditions: a list of {', '.join(CONDITIONS)}, idle among them")
    outcomes = [
        run_condition(condition, number, args) for number in range(1, args.rounds + 1) for condition in conditions
    ]
    text, numbers = render(outcomes, args)
    numbers["runs"] = [{**vars(o), "cpu_us_per_event": o.cpu_us_per_event} for o in outcomes]
    print(text)
    target = args.results or (None if args.smoke else RESULTS_FILE)
    if target:
        note = "; its 2 cores were shared with other work during the run" + (f"; {args.note}" if args.note else "")
        write_results(target, text, "bench/dashboard_pressure.py", argv, numbers, note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
