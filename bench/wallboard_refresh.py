"""Wallboard refresh cost: the server-side time of one wallboard refresh on the embedded
warehouse (chDB through clickhouse-connect), with N simulated days of calls landed.

    .venv/bin/python bench/wallboard_refresh.py [--days 3] [--repeats 50] [--seed 7] [--data-dir DIR]
    .venv/bin/python bench/wallboard_refresh.py --smoke     # 0.2 days, 5 repeats: a quick check
    .venv/bin/python bench/wallboard_refresh.py --agents 20 [--campaigns 1000] [--events 1000000]
    .venv/bin/python bench/wallboard_refresh.py --agents 20 --data-dir DIR --reuse   # time DIR's board again

With --agents N the board is the issue's floor board instead: --campaigns of the benchmark
workload's campaigns (bench/workload.py) with --events calls over --days, N agents each whose
states follow their connected calls (and a last state each near the end, so the floor is
staffed), through the worker's own counting (MinuteBuckets, FloorState) and Lander; plus each
campaign's dialer_state snapshot every --snapshot-seconds for the last --snapshot-hours, as
VICIdial live mode sends them. Results then go to bench/results/wallboard_floor.txt.

A fresh warehouse is migrated and filled by the real code (DialerSimulator -> MinuteBuckets
-> Lander) with --days of calls ending now. Each figure is over --repeats runs after
3 warm-up runs, as wall time and as the process's CPU time (chDB's threads included, which
other load on the machine does not inflate):

    model     wallboard_model(): every query a refresh makes (freshness, campaign tiles,
              compliance windows, 2-h minute series, the floor) and shaping them into JSON-able data;
              what it keeps between refreshes (the ranking, the windows' closed hours) kept
    model, cold  the same with nothing kept: what a refresh costs once a minute, when the board's
              minute moves on, or after a late call in a closed hour
    callback  the wallboard page's Dash refresh callback: the model every board shares (computed
              at most once per dashboard.wallboard_cache_seconds, default 1 s) plus tiles and
              sparklines
    http      GET /api/wallboard from waitress over loopback (kept-alive httpx client): the
              shared model plus JSON encoding and the WSGI round trip

The table is printed and written, with a description of the machine, to
bench/results/wallboard_refresh.txt.

--reuse times the warehouse an earlier run landed in --data-dir again (migrated first, and with
--agents its live floor stamped anew), without landing and without writing the results file:
run it from two checkouts in turn to compare code on the same data.
"""

from __future__ import annotations

import argparse
import inspect
import io
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from clickhouse_connect.driver.client import Client  # noqa: E402
from dash import Dash, page_registry  # noqa: E402
from rich import box  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn  # noqa: E402
from rich.table import Table  # noqa: E402
from waitress import create_server  # noqa: E402

from callpulse.embedded import free_port  # noqa: E402
from core.config import DashboardToken, Settings, load_settings  # noqa: E402
from core.handoff import LandingBatch  # noqa: E402
from core.schema import CallAttempt  # noqa: E402
from core.slots import SlotRules  # noqa: E402
from dashboards.app import create_app  # noqa: E402
from dashboards.auth import Credentials, hash_token, new_token  # noqa: E402
from dashboards.data import DashboardContext, set_context, wallboard_model  # noqa: E402
from producers.simulator import DialerSimulator  # noqa: E402
from streams.buckets import MinuteBuckets  # noqa: E402
from warehouse.client import connect  # noqa: E402
from warehouse.landing import Lander  # noqa: E402
from warehouse.migrate import migrate  # noqa: E402

LAND_CHUNK_EVENTS = 20_000  # about what the worker lands per batch under a heavy backlog
WARM_UP_RUNS = 3
HMAC_KEY = b"wallboard-bench-key-32-bytes-long"
RESULTS_FILE = ROOT / "bench" / "results" / "wallboard_refresh.txt"
FLOOR_RESULTS_FILE = ROOT / "bench" / "results" / "wallboard_floor.txt"
SNAPSHOT_CHUNK_SECONDS = 600  # the dialer snapshots are landed ten minutes of every campaign at a time


@dataclass(frozen=True)
class Timing:
    name: str
    what: str
    samples_ms: list[float]
    cpu_ms: list[float]

    @property
    def p50(self) -> float:
        return statistics.median(self.samples_ms)

    @property
    def p95(self) -> float:
        if len(self.samples_ms) < 2:
            return self.samples_ms[0]
        # Inclusive: with few repeats p95 stays inside the measured range.
        return statistics.quantiles(self.samples_ms, n=20, method="inclusive")[18]

    @property
    def max(self) -> float:
        return max(self.samples_ms)

    @property
    def cpu_p50(self) -> float:
        return statistics.median(self.cpu_ms)


def land_simulated_days(client: Client, settings: Settings, slot_rules: SlotRules, days: float, seed: int) -> int:
    """Land ``days`` of simulated calls ending now, as the worker would; return the attempts landed."""
    sim_seconds = days * 86_400
    start = datetime.now(timezone.utc) - timedelta(seconds=sim_seconds)
    simulator = DialerSimulator(slot_rules, HMAC_KEY, seed=seed, start=start)
    buckets = MinuteBuckets(settings, slot_rules)
    lander = Lander(client, settings)
    batch: list[CallAttempt] = []
    landed = 0
    progress = Progress(
        TextColumn("[bold]landing[/]"),
        BarColumn(),
        TextColumn(f"{{task.fields[sim_hours]:.1f}} of {sim_seconds / 3600:.1f} simulated h"),
        TextColumn("· {task.fields[landed]:,} calls"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with progress:
        # Progress is in simulated seconds: the event count is not known in advance.
        task = progress.add_task("landing", total=sim_seconds, sim_hours=0.0, landed=0)

        def land_batch() -> None:
            nonlocal batch, landed
            lander.land(LandingBatch(buckets.take_counted(), buckets.take_dirty()))
            # Keep the in-memory buckets bounded as the worker does; a 3-day run would grow otherwise.
            buckets.evict_closed()
            landed += len(batch)
            batch = []
            done = min(simulator.now, sim_seconds)
            progress.update(task, completed=done, sim_hours=done / 3600, landed=landed)

        for attempt in simulator.events(sim_seconds=sim_seconds):
            buckets.add(attempt)
            batch.append(attempt)
            if len(batch) >= LAND_CHUNK_EVENTS:
                land_batch()
        land_batch()
        progress.update(task, completed=sim_seconds)
    return landed


def land_floor_board(
    client: Client,
    settings: Settings,
    slot_rules: SlotRules,
    *,
    days: float,
    events: int,
    campaigns: int,
    agents: int,
    snapshot_seconds: float,
    snapshot_hours: float,
    seed: int,
) -> dict[str, int]:
    """The floor board: ``events`` calls of ``campaigns`` campaigns over ``days`` ending now, with
    ``agents`` agents per campaign, counted and landed as the worker does, then a last state for
    every agent near the end and every campaign's dialer snapshots; return what landed, by table."""
    import random

    from workload import call_events, campaign_names  # bench/workload.py, beside this script

    from core.handoff import FloorChanges
    from core.schema import SCHEMA_VERSION, AgentStateChange, DialerState
    from streams.floor import FloorState

    end = datetime.now(timezone.utc)
    buckets = MinuteBuckets(settings, slot_rules)
    floor = FloorState(settings.agents.timeout_seconds)
    lander = Lander(client, settings)
    pending = 0

    def land_batch() -> None:
        nonlocal pending
        lander.land(LandingBatch(buckets.take_counted(), buckets.take_dirty(), floor=floor.take_changes()))
        buckets.evict_closed()
        pending = 0

    with Console().status(f"landing {events:,} calls of {campaigns:,} campaigns with {agents} agents each"):
        for event in call_events(events, seed=seed, campaigns=campaigns, hours=days * 24, end=end, agents=agents):
            if isinstance(event, CallAttempt):
                buckets.add(event)
            elif isinstance(event, AgentStateChange):
                floor.add(event)
            else:
                floor.add_snapshot(event)
            pending += 1
            if pending >= LAND_CHUNK_EVENTS:
                land_batch()
        land_batch()

    names = campaign_names(campaigns)
    rng = random.Random(f"snapshots-{seed}")
    first = end - timedelta(hours=snapshot_hours)
    steps = int(snapshot_hours * 3600 / snapshot_seconds)
    per_chunk = max(1, int(SNAPSHOT_CHUNK_SECONDS / snapshot_seconds))
    with Console().status(f"landing {steps * campaigns:,} dialer snapshots"):
        for chunk_start in range(0, steps, per_chunk):
            snapshots = [
                DialerState(
                    schema_version=SCHEMA_VERSION,
                    event_id=f"snap-{campaign}-{step}",
                    campaign=campaign,
                    event_time=first + timedelta(seconds=(step + 1) * snapshot_seconds),
                    dial_level=round(rng.uniform(1.0, 4.0), 2),
                    calls_ringing=rng.randrange(40),
                    calls_waiting=rng.randrange(5),
                    longest_wait_seconds=round(rng.uniform(0, 30), 1),
                    dialable_leads=rng.randrange(100_000),
                )
                for step in range(chunk_start, min(steps, chunk_start + per_chunk))
                for campaign in names
            ]
            lander.land_floor(FloorChanges(snapshots=snapshots, version=time.time_ns()))
    # The hourly rollup of the closed hours, as a deployment that has run through them has it
    # (warehouse/rollup.py): these hours all landed just now, so none would have settled yet.
    from warehouse.rollup import refresh_rollup

    refresh_rollup(client, until=end.replace(minute=0, second=0, microsecond=0), settle=timedelta(0))
    land_live_floor(lander, floor, campaign_names(campaigns), agents, seed)
    return {
        table: int(client.command(f"SELECT count() FROM {table}"))
        for table in ("call_attempts", "minute_metrics", "agent_minutes", "agent_status", "dialer_snapshots")
    }


def land_live_floor(lander: Lander, floor, names: list[str], agents: int, seed: int) -> None:
    """The floor as the timing starts (landing the rest took minutes): every agent's state within
    the last minute, a fifth of them paused, and each campaign's dialer snapshot of a second ago."""
    import random

    from core.handoff import FloorChanges
    from core.schema import SCHEMA_VERSION, AgentStateChange, DialerState

    rng = random.Random(f"floor-board-{seed}")
    now = datetime.now(timezone.utc)
    states = ("available", "on_call", "on_call", "wrap_up", "paused")
    for campaign in names:
        for number in range(agents):
            floor.add(
                AgentStateChange(
                    schema_version=SCHEMA_VERSION,
                    event_id=f"board-{campaign}-{number}",
                    campaign=campaign,
                    event_time=now - timedelta(seconds=rng.uniform(1, 60)),
                    agent=f"{campaign}-agent-{number:02d}",
                    state=rng.choice(states),
                    team=f"team-{number % 3}",
                )
            )
    lander.land_floor(floor.take_changes())
    lander.land_floor(
        FloorChanges(
            snapshots=[
                DialerState(
                    schema_version=SCHEMA_VERSION,
                    event_id=f"snap-{campaign}-now",
                    campaign=campaign,
                    event_time=now - timedelta(seconds=1),
                    dial_level=round(rng.uniform(1.0, 4.0), 2),
                    calls_ringing=rng.randrange(40),
                    calls_waiting=rng.randrange(5),
                    longest_wait_seconds=round(rng.uniform(0, 30), 1),
                    dialable_leads=rng.randrange(100_000),
                )
                for campaign in names
            ],
            version=time.time_ns(),
        )
    )


def time_runs(action: Callable[[], object], repeats: int) -> tuple[list[float], list[float]]:
    """Wall and process CPU milliseconds per call of ``action`` over ``repeats`` runs, after
    warm-up runs that fill chDB's caches and Python's lazy imports."""
    for _ in range(WARM_UP_RUNS):
        action()
    wall, cpu = [], []
    for _ in range(repeats):
        started, cpu_started = time.perf_counter(), time.process_time()
        action()
        wall.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - cpu_started) * 1000)
    return wall, cpu


def forget_kept_reads(dashboard: DashboardContext) -> None:
    """Drop what the wallboard keeps between refreshes (dashboards.data.WallboardReads), so the
    next model reads everything, as when its minute moves on."""
    dashboard.__dict__.pop("wallboard_reads", None)


def wallboard_page_module() -> ModuleType:
    """The wallboard page module the app loaded.

    Dash imports pages under its own module names ('pages.wallboard'), so importing
    dashboards.pages.wallboard here would load a second copy that registers the "/" page
    and its callback again; take the app's copy from the page registry instead.
    """
    for page in page_registry.values():
        if page["path"] == "/":
            return sys.modules[page["module"]]
    raise SystemExit("no wallboard page at / in the Dash page registry")


@contextmanager
def served(app: Dash) -> Iterator[str]:
    """Serve ``app`` with waitress (as dashboards.app.serve does) on a free port; yield its base URL."""
    port = free_port()
    server = create_server(app.server, host="127.0.0.1", port=port, threads=8)  # listening on return
    thread = threading.Thread(target=server.run, name="waitress", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()


def results_table(
    timings: list[Timing],
    attempts: int,
    bucket_rows: int,
    days: float,
    repeats: int,
    table_box: box.Box = box.HEAVY_HEAD,
) -> Table:
    table = Table(
        box=table_box,
        title=f"Wallboard refresh on chDB: {days:g} simulated days, {attempts:,} attempts, "
        f"{bucket_rows:,} minute_metrics rows; {repeats} runs after {WARM_UP_RUNS} warm-up",
    )
    table.add_column("measure")
    table.add_column("p50 ms", justify="right")
    table.add_column("p95 ms", justify="right")
    table.add_column("max ms", justify="right")
    table.add_column("cpu p50 ms", justify="right")
    table.add_column("what it covers")
    for timing in timings:
        table.add_row(
            timing.name,
            f"{timing.p50:.1f}",
            f"{timing.p95:.1f}",
            f"{timing.max:.1f}",
            f"{timing.cpu_p50:.1f}",
            timing.what,
        )
    return table


def machine_description() -> str:
    from importlib.metadata import version

    packages = ", ".join(f"{name} {version(name)}" for name in ("chdb", "clickhouse-connect", "dash", "waitress"))
    return (
        f"machine: {platform.platform()} · {platform.machine()} · {os.cpu_count()} CPUs · "
        f"Python {platform.python_version()}\n"
        f"packages: {packages}\n"
        f"run at: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=float, default=3.0, help="simulated days of calls to land, ending now")
    parser.add_argument("--repeats", type=int, default=50, help="timed runs per measure")
    parser.add_argument("--seed", type=int, default=7, help="simulator seed")
    parser.add_argument("--data-dir", type=Path, help="where the fresh warehouse goes (default: a temp dir)")
    parser.add_argument("--smoke", action="store_true", help="0.2 days and 5 repeats: a quick correctness check")
    parser.add_argument(
        "--agents",
        type=int,
        default=0,
        help="agents per campaign: the floor board (see above) instead of the simulator's days",
    )
    parser.add_argument("--campaigns", type=int, default=1000, help="with --agents: campaigns on the board")
    parser.add_argument("--events", type=int, default=1_000_000, help="with --agents: calls over --days")
    parser.add_argument(
        "--snapshot-seconds",
        type=float,
        default=5.0,
        help="with --agents: each campaign's dialer snapshot every so many seconds",
    )
    parser.add_argument(
        "--snapshot-hours", type=float, default=3.0, help="with --agents: hours of dialer snapshots, ending now"
    )
    parser.add_argument(
        "--reuse", action="store_true", help="time the warehouse an earlier run landed in --data-dir again (see above)"
    )
    args = parser.parse_args()
    if args.reuse and not args.data_dir:
        parser.error("--reuse needs the --data-dir of an earlier run")
    if args.smoke:
        args.days, args.repeats = 0.2, 5
        args.events, args.snapshot_hours = min(args.events, 20_000), min(args.snapshot_hours, 0.1)

    with tempfile.TemporaryDirectory(prefix="wallboard-bench-") as tmp:
        data_dir = (args.data_dir or Path(tmp)).resolve()
        warehouse_dir = data_dir / "warehouse"
        if args.reuse and not (warehouse_dir.exists() and any(warehouse_dir.iterdir())):
            raise SystemExit(f"{warehouse_dir} holds no warehouse to time again")
        if not args.reuse and warehouse_dir.exists() and any(warehouse_dir.iterdir()):
            # Landing again on old data would time a different, unknown warehouse.
            raise SystemExit(f"{warehouse_dir} is not empty: the benchmark needs a fresh warehouse")
        settings = load_settings(pipeline__data_dir=str(data_dir))
        slot_rules = SlotRules(settings.slots, settings.zone)
        # Always chDB, whatever CLICKHOUSE_URL says: this measures the embedded warehouse.
        client = connect(f"chdb://{warehouse_dir}")
        migrate(client)

        landed: dict[str, int] = {}
        if args.reuse:
            if args.agents:
                from workload import campaign_names  # bench/workload.py, beside this script

                from streams.floor import FloorState

                land_live_floor(
                    Lander(client, settings),
                    FloorState(settings.agents.timeout_seconds),
                    campaign_names(args.campaigns),
                    args.agents,
                    args.seed,
                )
            attempts = int(client.command("SELECT count() FROM call_attempts"))
        elif args.agents:
            landed = land_floor_board(
                client,
                settings,
                slot_rules,
                days=args.days,
                events=args.events,
                campaigns=args.campaigns,
                agents=args.agents,
                snapshot_seconds=args.snapshot_seconds,
                snapshot_hours=args.snapshot_hours,
                seed=args.seed,
            )
            attempts = args.events
        else:
            attempts = land_simulated_days(client, settings, slot_rules, args.days, args.seed)
        attempt_rows = client.query("SELECT count() FROM call_attempts").result_rows[0][0]
        bucket_rows = client.query("SELECT count() FROM minute_metrics").result_rows[0][0]
        if attempt_rows != attempts:
            raise SystemExit(f"landed {attempts} attempts but call_attempts holds {attempt_rows}")

        # As `callpulse up` builds it: the model's reads run at once on a pool of clients.
        dashboard = DashboardContext(settings, client, warehouse_url=f"chdb://{warehouse_dir}")
        set_context(dashboard)
        model = wallboard_model()
        if not model["campaigns"]:
            raise SystemExit("the wallboard model shows no campaigns after landing")
        if args.agents and not model["total"]["agents"]["logged_in"]:
            raise SystemExit("the floor board's wallboard model shows no agent logged in")
        if args.agents and all(c["dial_level"] is None for c in model["campaigns"]):
            raise SystemExit("the floor board's wallboard model shows no dial level")

        # create_app sets the context again and imports the pages, the wallboard's among them.
        # The API needs a login like any client's: a supervisor token made for this run.
        token = new_token()
        app = create_app(dashboard, Credentials({}, {"bench": DashboardToken("supervisor", hash_token(token))}))
        # Dash 4's @callback returns the function itself; unwrap in case a later version wraps it.
        page_module = wallboard_page_module()
        refresh_callback = inspect.unwrap(page_module.refresh)
        tiles, *_ = refresh_callback(0)
        _pages, per_page = page_module._pages(len(model["campaigns"]))  # one page of the board per refresh
        if not 0 < len(tiles) <= per_page:
            raise SystemExit(
                f"the refresh callback drew {len(tiles)} tiles for {len(model['campaigns'])} campaigns "
                f"({per_page} to a page)"
            )

        console = Console()
        with (
            served(app) as base_url,
            httpx.Client(base_url=base_url, timeout=30, headers={"Authorization": f"Bearer {token}"}) as http,
        ):

            def get_wallboard_json() -> None:
                response = http.get("/api/wallboard")
                response.raise_for_status()

            if len(http.get("/api/wallboard").json()["campaigns"]) != len(model["campaigns"]):
                raise SystemExit("/api/wallboard disagrees with wallboard_model() on the campaigns")
            with console.status(f"timing {args.repeats} refreshes of each kind"):
                timings = [
                    Timing(
                        "model",
                        "wallboard_model(): freshness, tiles, compliance, 2-h series, floor",
                        *time_runs(wallboard_model, args.repeats),
                    ),
                    Timing(
                        "model, cold",
                        "wallboard_model() with nothing kept from the last refresh (ranking, closed hours): "
                        "once a minute, when the board's minute moves, or after a late call",
                        *time_runs(lambda: forget_kept_reads(dashboard) or wallboard_model(), args.repeats),
                    ),
                    Timing(
                        "callback",
                        "Dash refresh callback: shared model + tiles + sparkline figures",
                        *time_runs(lambda: refresh_callback(0), args.repeats),
                    ),
                    Timing(
                        "http",
                        "GET /api/wallboard (shared model) via waitress, kept-alive httpx client",
                        *time_runs(get_wallboard_json, args.repeats),
                    ),
                ]
        dashboard.close()
        client.close()

    console.print(results_table(timings, attempts, bucket_rows, args.days, args.repeats))
    if args.reuse:
        for model_timing in timings[:2]:
            console.print(
                f"{ROOT.name}: {model_timing.name} p50 {model_timing.p50:.1f} ms  p95 {model_timing.p95:.1f} ms  "
                f"cpu p50 {model_timing.cpu_p50:.1f} ms  (load {os.getloadavg()[0]:.1f})"
            )
        return
    # Wide, colourless and ASCII-boxed, so the file reads the same in any editor or diff.
    recorder = Console(record=True, width=160, file=io.StringIO(), color_system=None)
    recorder.print(results_table(timings, attempts, bucket_rows, args.days, args.repeats, box.ASCII))
    board = ""
    if args.agents:
        board = (
            f"floor board: {args.campaigns:,} campaigns x {args.agents} agents, "
            f"{len(model['campaigns'])} shown; a dialer snapshot per campaign every {args.snapshot_seconds:g} s "
            f"for {args.snapshot_hours:g} h; rows: "
            + ", ".join(f"{table} {count:,}" for table, count in landed.items())
            + "\n"
        )
    results_file = FLOOR_RESULTS_FILE if args.agents else RESULTS_FILE
    results_file.parent.mkdir(parents=True, exist_ok=True)
    results_file.write_text(recorder.export_text() + "\n" + board + machine_description() + "\n")
    console.print(board + f"written to {results_file.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
