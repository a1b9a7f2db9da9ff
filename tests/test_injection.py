"""SQL injection through every report filter: the CLI, /api/report, the Reports page's URL,
its campaign box and Dash's callback endpoint.

Known calls land through the real broker and worker. Then hostile strings go in through
each way a user can reach a report: a dimension or metric name must be refused with the
allowed names, a bad day with the format, and a campaign filter (free text, a bound
parameter) must match nothing rather than everything. No answer may carry a traceback,
another table's columns, a phone hash, an event id or a ClickHouse user name. Before and
after, a separate process counts and checksums every warehouse table: nothing changed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

import httpx
import pytest
from click.testing import CliRunner
from test_wallboard_browser import PROJECT_ROOT, _require_browser, dashboard_page, wait_for_dashboard

from analytics.reports import REPORT_DIMENSIONS
from callpulse.cli import main
from core.schema import SCHEMA_VERSION, CallAttempt, Lead, Outcome
from core.slots import SlotRules
from producers.publisher import EventPublisher
from producers.simulator import DialerSimulator

pytestmark = [pytest.mark.integration, pytest.mark.browser]

DAY = "2026-11-20"
MORNING = datetime(2026, 11, 20, 0, 0, tzinfo=timezone.utc)  # 09:00 in Tokyo
QUOTED = "o'reilly-insurance"  # a real campaign with a quote in its name: filters must bind it, not break on it
QUOTED_CALLS = 120

INJECTIONS = [
    "campaign; DROP TABLE call_attempts",
    "x' OR '1'='1",
    "') UNION ALL SELECT phone_hash FROM call_attempts --",
    "1; SELECT * FROM system.users",
    "campaign) FROM system.users --",
    "home-insurance' --",
    "home-insurance\\' OR 1=1 --",
    "x\\",
    "\u2019 OR \u20181\u2019=\u20181",  # curly quotes
    "\uff07 OR 1=1 --",  # a fullwidth apostrophe
    "{start:DateTime}) OR 1=1 --",  # a parameter placeholder of the query itself
    "home-insurance,x' OR 1=1 --",  # a comma: the filters split on it
    "2026-11-20' OR '1'='1",
    "'" * 5000,
    "A" * 100_000,
]
# HTTP can carry what argv cannot.
HTTP_ONLY = ["x\x00' OR 1=1 --", "%27%20OR%201%3D1", "home-insurance\r\nX-Injected: 1"]
# Words from the tables and system tables a report must never show.
NEVER_SHOWN = [
    "phone_hash",
    "event_id",
    "lead_id",
    "landed_at",
    "next_offset",
    "consumer_group",
    "response_score",
    "schema_migrations",
    "consumed_offsets",
    "stop_list_violations",
    "acknowledged_by",
    "auth_type",
    "sha256_password",
    "no_password",
    "Traceback",
]

SNAPSHOT = r"""
import json, sys
from clickhouse_connect.driver.binding import quote_identifier
from warehouse.client import connect

client = connect(sys.argv[1])
tables = {}
# The logical content: FINAL, without the bookkeeping a restarted worker rewrites (it
# re-lands its open buckets with a higher version, and merges drop superseded rows).
for name, engine in client.query("SELECT name, engine FROM system.tables WHERE database = currentDatabase() "
                                 "ORDER BY name").result_rows:
    # Float sums are rounded: a bucket rebuilt from its attempts adds them in another order.
    columns = ", ".join(f"round({quote_identifier(c)}, 6)" if kind.startswith("Float") else quote_identifier(c)
                        for c, kind in client.query(
        "SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = {t:String} "
        "AND name NOT IN ('version', 'landed_at') ORDER BY position", parameters={"t": name}).result_rows)
    final = " FINAL" if engine.startswith("Replacing") else ""
    count, digest = client.query(f"SELECT count(), sum(cityHash64({columns})) "
                                 f"FROM {quote_identifier(name)}{final}").result_rows[0]
    tables[name] = [count, str(digest)]
# Who the report queries run as (system.users itself is not readable to it), and the engine's version.
users = list(client.query("SELECT currentUser(), version()").result_rows[0])
secrets = [row[0] for row in client.query(
    "SELECT DISTINCT phone_hash FROM call_attempts WHERE phone_hash != '' LIMIT 100 UNION ALL "
    "SELECT event_id FROM call_attempts LIMIT 100").result_rows]
print(json.dumps({"tables": tables, "users": users, "secrets": secrets}))
"""


def snapshot(settings) -> dict:
    """Row count and checksum of every table's content, read by a separate process (one chDB per process)."""
    result = subprocess.run(
        [sys.executable, "-c", SNAPSHOT, settings.warehouse_url],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def quoted_calls() -> list[CallAttempt]:
    start = MORNING + timedelta(hours=1)
    return [
        CallAttempt(
            schema_version=SCHEMA_VERSION,
            event_id=str(uuid.uuid4()),
            campaign=QUOTED,
            event_time=start + timedelta(seconds=30 * i),
            outcome=Outcome.CONNECTED if i % 3 == 0 else Outcome.NO_ANSWER,
            lead=Lead(segment="seniors"),
            talk_seconds=60.0 if i % 3 == 0 else 0.0,
        )
        for i in range(QUOTED_CALLS)
    ]


def scrubbed(text: str, injected: str) -> str:
    """The answer without the user's own input echoed back in it (a refusal quotes it)."""
    for piece in sorted({injected, *injected.split(",")}, key=len, reverse=True):
        piece = piece.strip()
        if piece:
            for form in (piece, repr(piece), json.dumps(piece), json.dumps(piece)[1:-1], repr(piece)[1:-1]):
                text = text.replace(form, "")
    return text


class Leaks:
    """Collects anything secret an answer shows; the test asserts there is none at the end."""

    def __init__(self, snap: dict):
        self.words = NEVER_SHOWN + snap["users"] + snap["secrets"]
        self.found: list[str] = []
        self.checked = 0

    def check(self, where: str, injected: str, text: str) -> None:
        self.checked += 1
        rest = scrubbed(text, injected)
        for word in self.words:
            if re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", rest):
                self.found.append(f"{where} with {injected[:60]!r}: shows {word!r}: {rest[:300]!r}")


def cli(pipeline, *args: str, login: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "callpulse", "--config", str(pipeline.config_file), "report", *args],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={"CALLPULSE_HMAC_KEY": "test-key", "PATH": "/usr/bin:/bin", **(login or {})},
    )


BASE = ["--from", DAY, "--to", DAY, "--format", "json"]
ALLOWED = {
    "--by": ["campaign", "slot", "segment", "team", "agent", "day", "hour", "weekday"],
    "--metrics": ["contact_rate", "abandon_rate", "cpo", "aht_seconds"],
    "--from": ["YYYY-MM-DD"],
    "--to": ["YYYY-MM-DD"],
}


def refused_cli(result: subprocess.CompletedProcess, flag: str) -> str | None:
    """Why a CLI answer to a hostile --by/--metrics/--from/--to is wrong, or None."""
    if "Traceback" in result.stderr or result.returncode != 2:
        return f"exit {result.returncode}: {result.stderr[-500:]}"
    if not all(name in result.stderr for name in ALLOWED[flag]) or result.stdout:
        return f"no clear refusal naming the allowed values: {result.stderr[-500:]}"
    return None


def matching(injected, campaigns: set[str]) -> set[str]:
    """The campaigns a filter names: the filters split on commas, so a hostile string can
    still name a real campaign beside its junk, and then that campaign, alone, is right."""
    parts = [part for item in ([injected] if isinstance(injected, str) else injected) for part in str(item).split(",")]
    return {part.strip() for part in parts} & campaigns


# A campaign name longer than the event schema allows cannot name a campaign: refusing it
# with this sentence is as safe as matching nothing, and tells the user why.
TOO_LONG = "a campaign name is at most 128 characters"


def too_long(injected) -> bool:
    parts = injected.split(",") if isinstance(injected, str) else [str(p) for p in injected]
    return any(len(part.strip()) > 128 for part in parts)


def filtered_cli(result: subprocess.CompletedProcess, injected: str, campaigns: set[str]) -> str | None:
    """Why a CLI answer to a hostile --campaign is wrong, or None: it must be the rows of the
    campaigns the string names (usually none), never all of them, and never a traceback."""
    if too_long(injected) and result.returncode == 2 and TOO_LONG in result.stderr and not result.stdout:
        return None
    if result.returncode != 0 or "Traceback" in result.stderr:
        return f"exit {result.returncode}: {result.stderr[-500:]}"
    shown = {row["campaign"] for row in json.loads(result.stdout)}
    if shown != matching(injected, campaigns):
        return f"rows for {sorted(shown)}"
    return None


def report_callback(dependencies: list[dict]) -> dict:
    return next(
        c
        for c in dependencies
        if "report-summary.children" in c["output"] and any(i["id"] == "report-rows" for i in c["inputs"])
    )


def callback_body(callback: dict, values: dict) -> dict:
    outputs = [dict(zip(("id", "property"), part.split("."))) for part in callback["output"].strip(".").split("...")]
    return {
        "output": callback["output"],
        "outputs": outputs,
        "inputs": [{"id": i["id"], "property": i["property"], "value": values[i["id"]]} for i in callback["inputs"]],
        "changedPropIds": ["report-campaigns.value"],
        "state": [],
    }


@pytest.mark.timeout(300)
def test_hostile_report_filters_are_refused_or_match_nothing_and_change_nothing(pipeline, dashboard_login):
    _require_browser()
    from playwright.sync_api import expect

    settings = pipeline.settings
    rules = SlotRules(settings.slots, settings.zone)
    events = list(DialerSimulator(rules, b"test-key", seed=31, start=MORNING).events(sim_seconds=3 * 3600))
    events += quoted_calls()
    campaigns = {e.campaign for e in events}
    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events, batch_events=50)
    publisher.publish_all(events)
    publisher.close()
    worker = pipeline.worker()
    assert worker.wait_until_caught_up(timeout_s=120)["counted"] == len(events)
    assert worker.stop() == 0
    before = snapshot(settings)
    assert before["tables"]["call_attempts"][0] == len(events) and before["users"] and before["secrets"]
    leaks = Leaks(before)
    problems: list[str] = []
    tried = {"cli": 0, "api": 0, "callback": 0, "page": 0}

    worker = pipeline.worker()
    worker.wait_until(lambda h: h["ready"], timeout_s=120)
    base = f"http://{settings.embedded.dashboard_host}:{settings.embedded.dashboard_port}"
    wait_for_dashboard(base)
    manager = dashboard_login.cli_env("manager")

    # -- the CLI refuses a hostile --by, --metrics, --from or --to before it reads anything.
    # Every string in every flag runs in this process (click's runner, the same command);
    # one per flag also runs as a real process, to see its exit code and stderr.
    runner = CliRunner()
    for flag in ALLOWED:
        for number, injected in enumerate(INJECTIONS):
            tried["cli"] += 1
            args = ["--by", "campaign", "--metrics", "dials", "--from", DAY, "--to", DAY, "--format", "json"]
            args[args.index(flag) + 1] = injected
            if number == 1:
                result = cli(pipeline, *args, login=manager)
            else:
                invoked = runner.invoke(
                    main,
                    ["--config", str(pipeline.config_file), "report", *args],
                    env={"CALLPULSE_HMAC_KEY": "test-key", **manager},
                )
                if invoked.exception is not None and not isinstance(invoked.exception, SystemExit):
                    problems.append(f"callpulse report {flag} {injected[:60]!r}: raised {invoked.exception!r}")
                    continue
                result = subprocess.CompletedProcess(args, invoked.exit_code, invoked.stdout, invoked.stderr)
            why = refused_cli(result, flag)
            if why:
                problems.append(f"callpulse report {flag} {injected[:60]!r}: {why}")
            leaks.check(f"callpulse report {flag}", injected, result.stdout + result.stderr)

    # -- the CLI while the worker runs: it asks the dashboard's /api/report. A campaign is free
    # text, so a hostile one is a filter that matches nothing.
    for injected in INJECTIONS:
        tried["cli"] += 1
        result = cli(pipeline, "--by", "campaign", "--metrics", "dials", "--campaign", injected, *BASE, login=manager)
        why = filtered_cli(result, injected, campaigns)
        if why:
            problems.append(f"callpulse report --campaign {injected[:60]!r} (via the dashboard): {why}")
        leaks.check("callpulse report --campaign (via the dashboard)", injected, result.stdout + result.stderr)
    quoted = json.loads(
        cli(pipeline, "--by", "campaign", "--metrics", "dials", "--campaign", QUOTED, *BASE, login=manager).stdout
    )
    assert quoted == [{"campaign": QUOTED, "dials": QUOTED_CALLS}]

    # -- /api/report directly, with what the CLI cannot send.
    with httpx.Client(base_url=base, headers=dashboard_login.basic("manager"), timeout=60) as http:
        for injected in INJECTIONS + HTTP_ONLY:
            for name in ("by", "metrics", "from", "to", "campaigns"):
                params = {"by": "campaign", "metrics": "dials", "from": DAY, "to": DAY, name: injected}
                tried["api"] += 1
                try:
                    response = http.get("/api/report", params=params)
                except httpx.InvalidURL:
                    assert len(injected) > 60_000  # httpx's own limit: the request is never sent
                    continue
                except httpx.HTTPError as exc:
                    problems.append(f"/api/report {name}={injected[:60]!r}: {exc!r}")
                    continue
                text = response.text
                leaks.check(f"/api/report {name}", injected, text)
                if name == "campaigns":
                    named = matching(injected, campaigns)
                    if too_long(injected) and response.status_code == 400 and TOO_LONG in response.json()["error"]:
                        continue
                    if response.status_code != 200 or {row["campaign"] for row in response.json()} != named:
                        problems.append(f"/api/report campaigns={injected[:60]!r}: {response.status_code} {text[:200]}")
                elif response.status_code != 400 or "error" not in response.json():
                    problems.append(f"/api/report {name}={injected[:60]!r}: {response.status_code} {text[:200]}")
        # Repeated and odd parameters: the first value counts, the rest change nothing.
        response = http.get(
            "/api/report",
            params=[
                ("by", "campaign"),
                ("by", "phone_hash"),
                ("metrics", "dials"),
                ("from", DAY),
                ("to", DAY),
                ("campaigns", QUOTED),
                ("campaigns", "x' OR '1'='1"),
            ],
        )
        assert response.status_code == 200 and response.json() == [{"campaign": QUOTED, "dials": QUOTED_CALLS}]

        # -- Dash's callback endpoint: the values a browser would send, crafted.
        callback = report_callback(http.get("/_dash-dependencies").json())
        ordinary = {
            "report-rows": "campaign",
            "report-columns": "none",
            "report-metric": "dials",
            "report-dates": DAY,
            "report-campaigns": [],
        }
        crafted = (
            [("report-campaigns", [s]) for s in INJECTIONS + HTTP_ONLY]
            + [("report-campaigns", s) for s in INJECTIONS[:4]]
            + [("report-campaigns", [{"$ne": ""}]), ("report-campaigns", [["home-insurance"], "x' OR 1=1"])]
            + [(i, s) for i in ("report-rows", "report-columns", "report-metric") for s in INJECTIONS]
            + [
                ("report-rows", "campaign,segment"),
                ("report-metric", ["dials", "contact_rate"]),
                ("report-rows", ["campaign"]),
                ("report-metric", {"a": 1}),
            ]
        )
        for target, value in crafted:
            values = dict(ordinary, **{target: value})
            body = callback_body(callback, values)
            for item in body["inputs"]:  # both ends of the day range
                if item["id"] == "report-dates":
                    item["value"] = values["report-dates"]
            tried["callback"] += 1
            response = http.post("/_dash-update-component", json=body)
            shown = json.dumps(value)[:80]
            if response.status_code != 200:
                problems.append(f"callback {target}={shown}: HTTP {response.status_code} {response.text[:200]}")
                continue
            answer = response.json()["response"]
            summary = str(answer["report-summary"]["children"])
            figure = answer["report-heatmap"]["figure"]
            cells = [v for trace in figure.get("data", []) for v in (trace.get("y") or [])]
            leaks.check(
                f"callback {target}",
                json.dumps(value) if not isinstance(value, str) else value,
                json.dumps([summary, answer["report-pivot"]["data"], figure.get("data", [])]),
            )
            if target == "report-campaigns" and not (
                isinstance(value, list) and all(isinstance(v, str) for v in value)
            ):
                # Not what the dropdown sends (a list of names): refused, nothing shown.
                if cells or summary != "Choose campaigns from the list.":
                    problems.append(f"callback campaigns={shown}: rows {cells[:3]}, summary {summary[:120]!r}")
            elif target == "report-campaigns" and too_long(value):
                if cells or not summary.startswith(TOO_LONG):
                    problems.append(f"callback campaigns={shown}: rows {cells[:3]}, summary {summary[:120]!r}")
            elif target == "report-campaigns":
                named = matching(value, campaigns)
                if set(cells) - {"Total"} != named or (not named and not summary.startswith("No calls landed")):
                    problems.append(
                        f"callback campaigns={shown}: rows {answer['report-pivot']['data'][:3]}, "
                        f"heatmap {cells[:5]}, summary {summary[:120]!r}"
                    )
            elif not summary or summary.startswith(("Campaign", "Dials")):
                problems.append(f"callback {target}={shown}: no clear message, summary {summary[:120]!r}")
            elif set(cells) - campaigns - {"Total"}:
                problems.append(f"callback {target}={shown}: shows rows {sorted(set(cells) - campaigns)[:5]}")

    # -- the Reports page in a browser: hostile values in the URL it reads, and typed in its campaign box.
    page_errors: list[str] = []
    with dashboard_page(settings, page_errors, dashboard_login.http_credentials("manager")) as page:
        summary = page.get_by_test_id("report-summary")
        failed_calls: list[str] = []
        page.on(
            "response",
            lambda r: (
                failed_calls.append(f"{r.status} {r.url}")
                if "_dash-update-component" in r.url and r.status != 200
                else None
            ),
        )
        for injected, name in [(s, "campaigns") for s in INJECTIONS[:13]] + [
            (s, n) for s in INJECTIONS[:4] for n in ("rows", "columns", "metric", "from")
        ]:
            params = {"rows": "campaign", "columns": "none", "metric": "dials", "from": DAY, "to": DAY, name: injected}
            tried["page"] += 1
            failed_calls.clear()
            page.goto(f"{base}/reports?{urlencode(params)}")
            try:
                expect(summary).not_to_be_empty(timeout=10_000)
            except AssertionError:
                problems.append(f"/reports?{name}={injected[:60]!r}: the page shows nothing ({failed_calls})")
                continue
            text, table = summary.inner_text(), page.locator("#report-pivot").inner_text()
            leaks.check(f"/reports?{name}=", injected, page.locator("body").inner_text())
            shown = {line.split("\t")[0].strip() for line in table.splitlines()[1:]} - {""}
            named = matching(injected, campaigns) if name == "campaigns" else set()
            if name == "campaigns" and (shown - {"Total"} != named or (not named and not text.startswith("No calls"))):
                problems.append(f"/reports?campaigns={injected[:60]!r}: {text[:120]!r} {sorted(shown)}")
        calls_of = Counter(event.campaign for event in events)
        for injected in INJECTIONS[:6]:
            tried["page"] += 1
            page.goto(f"{base}/reports?rows=campaign&columns=none&metric=dials&from={DAY}&to={DAY}")
            expect(summary).to_contain_text(f"{len(events):,} dials")
            page.locator("#report-campaigns").click()  # Dash 4's dropdown opens a popover with a search box
            search = page.locator("input.dash-dropdown-search:visible")
            expect(search).to_be_focused()  # typed before it has the focus, keys are lost
            search.fill(injected)
            page.keyboard.press("Enter")  # chooses the first option the search still lists, if any
            page.keyboard.press("Escape")
            page.wait_for_load_state("networkidle")
            # Only listed campaigns can be chosen ("home-insurance' --" still lists home-insurance),
            # and the report is then exactly their calls; nothing chosen, it covers every call.
            rows = {
                line.split("\t")[0].strip() for line in page.locator("#report-pivot").inner_text().splitlines()[1:]
            } - {"", "Total"}
            assert rows and rows <= campaigns, (injected, rows)
            expect(summary).to_contain_text(f"{sum(calls_of[campaign] for campaign in rows):,} dials")
        page.screenshot(path=str(PROJECT_ROOT / "test-artifacts" / "reports-injection.png"), full_page=True)
    assert page_errors == [], page_errors

    # -- the CLI with the worker stopped opens the warehouse itself: hostile campaigns there too.
    assert worker.stop() == 0
    for injected in INJECTIONS[:5]:
        tried["cli"] += 1
        result = cli(pipeline, "--by", "campaign,segment", "--metrics", "dials,cpo", "--campaign", injected, *BASE)
        why = filtered_cli(result, injected, campaigns)
        if why:
            problems.append(f"callpulse report --campaign {injected[:60]!r} (own warehouse): {why}")
        leaks.check("callpulse report --campaign (own warehouse)", injected, result.stdout + result.stderr)

    after = snapshot(settings)
    print(
        f"\ntried {sum(tried.values())} hostile inputs ({tried}), {len(INJECTIONS) + len(HTTP_ONLY)} strings; "
        f"{leaks.checked} answers checked; tables {before['tables']}"
    )
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems[:30])
    assert not leaks.found, f"{len(leaks.found)} leak(s):\n" + "\n".join(leaks.found[:30])
    assert after["tables"] == before["tables"]
    assert set(before["tables"]) >= {"call_attempts", "minute_metrics", "consumed_offsets", "schema_migrations"}
    assert set(REPORT_DIMENSIONS) == set(ALLOWED["--by"])
