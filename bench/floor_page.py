"""The /floor page's cost on a big floor: the time and the response size of its refresh callback,
asked over HTTP as the browser asks it (POST /_dash-update-component through waitress, with a
supervisor's login), on the issue's bench board of --campaigns x --agents agents.

    .venv/bin/python bench/floor_page.py --data-dir DIR [--campaigns 1000] [--agents 20] [--events 300000]
    .venv/bin/python bench/floor_page.py --data-dir DIR --serve   # look at it: serves until Ctrl-C

DIR's warehouse is reused when it holds a board (bench/wallboard_refresh.py --agents N
--data-dir DIR lands the same one), else the board is landed there first. Each run stamps the
live floor anew (every agent's state within the last minute, a fifth paused) and pauses one agent
in 40 for 16-40 minutes, resent every 4 minutes, so some pauses run past the limit. Each case is
timed --repeats times after warm-up runs: the first page in the default order, the 100th page,
one campaign, paused agents by time in state, and an agent search. The table is appended to
bench/results/floor.txt with the command and the machine.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
from rich.console import Console  # noqa: E402
from wallboard_refresh import land_floor_board, land_live_floor, machine_description, served  # noqa: E402
from workload import campaign_names  # noqa: E402

from core.config import DashboardToken, DashboardUser, load_settings  # noqa: E402
from core.schema import SCHEMA_VERSION, AgentStateChange  # noqa: E402
from core.slots import SlotRules  # noqa: E402
from dashboards.app import create_app  # noqa: E402
from dashboards.auth import Credentials, hash_password, hash_token, new_token  # noqa: E402
from dashboards.data import DashboardContext  # noqa: E402
from streams.floor import FloorState  # noqa: E402
from warehouse.client import connect  # noqa: E402
from warehouse.landing import Lander  # noqa: E402
from warehouse.migrate import migrate  # noqa: E402

RESULTS_FILE = ROOT / "bench" / "results" / "floor.txt"
WARM_UP_RUNS = 3
REFRESH_OUTPUTS = (
    ("floor-table", "children"),
    ("floor-summary", "children"),
    ("floor-position", "children"),
    ("floor-previous", "disabled"),
    ("floor-next", "disabled"),
    ("floor-page-number", "data"),
)


def land_long_pauses(lander: Lander, settings, names: list[str], agents: int, seed: int) -> int:
    """One agent in 40 paused for 16-40 minutes, its state resent every 4 minutes as a dialer
    does; returns how many."""
    rng = random.Random(f"long-pauses-{seed}")
    floor = FloorState(settings.agents.timeout_seconds)
    now = datetime.now(timezone.utc)
    paused = 0
    for campaign in names:
        for number in range(agents):
            if rng.random() >= 1 / 40:
                continue
            paused += 1
            minutes = rng.uniform(16, 40)
            for ago in [minutes * 60 - 240 * step for step in range(int(minutes * 60 // 240) + 1)] + [5]:
                floor.add(
                    AgentStateChange(
                        schema_version=SCHEMA_VERSION,
                        event_id=f"long-pause-{campaign}-{number}-{ago:.0f}",
                        campaign=campaign,
                        event_time=now - timedelta(seconds=ago),
                        agent=f"{campaign}-agent-{number:02d}",
                        state="paused",
                        team=f"team-{number % 3}",
                    )
                )
    lander.land_floor(floor.take_changes())
    return paused


def refresh_request(app, case: dict) -> dict:
    """The body Dash's renderer posts for the floor's refresh callback, with ``case``'s values."""
    output = ".." + "...".join(f"{component}.{prop}" for component, prop in REFRESH_OUTPUTS) + ".."
    values = {
        "floor-refresh": 1,
        "floor-previous": None,
        "floor-next": None,
        "floor-campaign": case.get("campaign"),
        "floor-team": None,
        "floor-state": case.get("state"),
        "floor-agent": case.get("agent", ""),
        "floor-sort": case.get("sort", "attention"),
    }
    declared = [(item["id"], item["property"]) for item in app.callback_map[output]["inputs"]]
    return {
        "output": output,
        "outputs": [{"id": component, "property": prop} for component, prop in REFRESH_OUTPUTS],
        "inputs": [{"id": component, "property": prop, "value": values[component]} for component, prop in declared],
        "changedPropIds": ["floor-refresh.n_intervals"],
        "state": [{"id": "floor-page-number", "property": "data", "value": case.get("page", 0)}],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True, help="where the board's warehouse is (or goes)")
    parser.add_argument("--campaigns", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=20, help="agents per campaign")
    parser.add_argument("--events", type=int, default=300_000, help="calls on a board landed afresh")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--serve", action="store_true", help="serve the dashboard on the board until Ctrl-C")
    args = parser.parse_args()

    data_dir = args.data_dir.resolve()
    settings = load_settings(pipeline__data_dir=str(data_dir))
    client = connect(f"chdb://{data_dir / 'warehouse'}")
    migrate(client)
    names = campaign_names(args.campaigns)
    console = Console()
    if not int(client.command("SELECT count() FROM agent_status")):
        land_floor_board(
            client,
            settings,
            SlotRules(settings.slots, settings.zone),
            days=1.0,
            events=args.events,
            campaigns=args.campaigns,
            agents=args.agents,
            snapshot_seconds=5.0,
            snapshot_hours=0.1,
            seed=args.seed,
        )
    lander = Lander(client, settings)
    land_live_floor(lander, FloorState(settings.agents.timeout_seconds), names, args.agents, args.seed)
    long_pauses = land_long_pauses(lander, settings, names, args.agents, args.seed)
    agents = int(client.command("SELECT uniqExact(agent) FROM agent_status"))

    token, password = new_token(), new_token()
    credentials = Credentials(
        {"supervisor": DashboardUser("supervisor", hash_password(password))},
        {"bench": DashboardToken("supervisor", hash_token(token))},
    )
    dashboard = DashboardContext(settings, client, warehouse_url=f"chdb://{data_dir / 'warehouse'}")
    app = create_app(dashboard, credentials)

    with served(app) as base_url:
        if args.serve:
            console.print(f"{base_url}/floor  user supervisor, password {password}  ({agents:,} agents); Ctrl-C ends")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                return
        cases = [
            ("first page, paused over the limit first", {}),
            ("page 100", {"page": 99}),
            ("one campaign", {"campaign": names[len(names) // 2]}),
            ("paused, longest in state first", {"state": "paused", "sort": "time_in_state"}),
            ("agent id contains 'agent-07'", {"agent": "agent-07"}),
        ]
        rows = []
        with httpx.Client(base_url=base_url, timeout=60, headers={"Authorization": f"Bearer {token}"}) as http:
            http.get("/_dash-dependencies").raise_for_status()  # Dash fills its callback map on a first request
            for label, case in cases:
                body = refresh_request(app, case)
                samples, size, shown = [], 0, ""
                for run in range(WARM_UP_RUNS + args.repeats):
                    started = time.perf_counter()
                    response = http.post("/_dash-update-component", json=body)
                    elapsed = (time.perf_counter() - started) * 1000
                    response.raise_for_status()
                    if run >= WARM_UP_RUNS:
                        samples.append(elapsed)
                    size = len(response.content)
                    shown = json.loads(response.content)["response"]["floor-position"]["children"]
                samples.sort()
                rows.append(
                    f"| {label:<42} | {statistics.median(samples):7.1f} | {samples[int(len(samples) * 0.95) - 1]:7.1f} "
                    f"| {size / 1024:8.1f} | {shown}"
                )
    dashboard.close()
    client.close()

    command = "  ".join(["command:", ".venv/bin/python bench/floor_page.py " + " ".join(sys.argv[1:])])
    out = io.StringIO()
    out.write(
        f"\n## /floor page refresh on {agents:,} agents ({args.campaigns:,} campaigns x {args.agents}; "
        f"{long_pauses} paused past the limit), {datetime.now(timezone.utc):%Y-%m-%d}\n{command}\n"
        "POST /_dash-update-component via waitress, kept-alive httpx client, a supervisor's token; "
        f"{args.repeats} runs after {WARM_UP_RUNS} warm-up\n"
        f"| {'case':<42} | p50 ms  | p95 ms  | response KiB | shown\n"
    )
    out.write("\n".join(rows) + f"\nload average at the end: {os.getloadavg()[0]:.1f}\n" + machine_description() + "\n")
    console.print(out.getvalue())
    with RESULTS_FILE.open("a") as results:
        results.write(out.getvalue())
    console.print(f"appended to {RESULTS_FILE.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
