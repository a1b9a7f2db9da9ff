"""Dashboard login and roles, over real HTTP against a worker serving the dashboard.

Simulated calls go broker -> worker -> chDB, so every refused request below had data it
could have leaked. The worker knows one user and one token per role through the environment
(conftest's `dashboard_accounts`), plus a user and a token that `callpulse users` made and
that sit, as hashes, in its config file. Expectations are the role table in the README:
supervisor: Wallboard, Alerts, Pacing advisor, Definitions; manager: also Reports, Compliance,
Best time to call, Response model and /api/report; admin: everything.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import Message
from pathlib import Path

import pytest
from conftest import Pipeline
from test_wallboard_browser import CHROMIUM, CHROMIUM_ARGS, _require_browser, wait_for_dashboard

from callpulse.embedded import free_port
from core.config import load_settings
from core.slots import SlotRules
from dashboards.auth import LoginLimiter, hash_password
from producers.publisher import EventPublisher
from producers.simulator import DialerSimulator
from streams.kafka_admin import ensure_topics

pytestmark = pytest.mark.integration

PROJECT_ROOT = Path(__file__).resolve().parents[1]
START = datetime(2026, 11, 20, 0, 0, tzinfo=timezone.utc)  # 09:00 in Tokyo
DAY = "2026-11-20"
PAGES = {
    "/": "Wallboard",
    "/alerts": "Alerts",
    "/floor": "Floor",
    "/reports": "Reports",
    "/compliance": "Compliance",
    "/best-time": "Best time to call",
    "/model": "Response model",
    "/pacing": "Pacing advisor",
    "/definitions": "Definitions",
}
SUPERVISOR_PAGES = ["/", "/alerts", "/floor", "/pacing", "/definitions"]
ALLOWED = {"supervisor": set(SUPERVISOR_PAGES), "manager": set(PAGES), "admin": set(PAGES)}
DASHBOARD_ENV = ("CALLPULSE_DASHBOARD_USERS", "CALLPULSE_DASHBOARD_TOKENS")
DANA_PASSWORD = "dana-" + uuid.uuid4().hex[:12]
CASEY_PASSWORD = "casey-" + uuid.uuid4().hex[:12]
# The served dashboard's login limits: short, so that a test can wait its lockout out.
USER_ALLOWANCE, CLIENT_ALLOWANCE, LOCKOUT_SECONDS = 5, 40, 3
# The served dashboard trusts this loopback address as its reverse proxy; requests come from it,
# or from another loopback address, by binding the client's end of the connection.
TRUSTED_PROXY, UNTRUSTED_PEER = "127.0.0.2", "127.0.0.3"
# What only a manager's page layout holds: the ids of its charts.
MANAGER_LAYOUT_MARKERS = {
    "/reports": "report-heatmap",
    "/compliance": "compliance-chart",
    "/best-time": "best-time-heatmap",
    "/model": "model-calibration",
}


@dataclass
class Served:
    url: str
    accounts: object  # conftest.DashboardAccounts
    config_file: Path
    wall_tv_token: str
    dials: int


def get(url: str, headers: dict | None = None, data: bytes | None = None) -> tuple[int, Message, str]:
    """Status, headers (any case) and body, whatever the status."""
    request = urllib.request.Request(
        url, headers={**(headers or {}), **({"Content-Type": "application/json"} if data else {})}, data=data
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


def basic(user: str, password: str) -> dict:
    import base64

    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def cli(*args: str, env: dict | None = None, stdin: str | None = None, config: Path | None = None):
    # A session of its own and no terminal on stdin: prompts read what a piped script would give them.
    return subprocess.run(
        [sys.executable, "-m", "callpulse", *(["--config", str(config)] if config else []), *args],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
        input=stdin,
        stdin=subprocess.DEVNULL if stdin is None else None,
        start_new_session=True,
        env={"PATH": "/usr/bin:/bin", "CALLPULSE_HMAC_KEY": "test-key", **(env or {})},
    )


@pytest.fixture(scope="module")
def served(broker, tmp_path_factory, dashboard_accounts):
    tmp = tmp_path_factory.mktemp("auth")
    made = cli("users", "new-token", "wall-tv", "--role", "supervisor")
    assert made.returncode == 0, made.stderr
    token, *config_lines = made.stdout.splitlines()
    hashed = cli("users", "hash-password", "dana", "--role", "manager", stdin=f"{DANA_PASSWORD}\n{DANA_PASSWORD}\n")
    assert hashed.returncode == 0, hashed.stderr
    assert DANA_PASSWORD not in hashed.stdout + hashed.stderr
    suffix = uuid.uuid4().hex[:8]
    config_file = tmp / "callpulse.toml"
    casey = f'[dashboard.users.casey]\nrole = "supervisor"\npassword_hash = "{hash_password(CASEY_PASSWORD)}"\n'
    config_file.write_text(
        f"""
[pipeline]
data_dir = "{tmp / "var"}"

[topics]
call_events = "auth-{suffix}.call-events"
dead_letters = "auth-{suffix}.dead-letters"
alerts = "auth-{suffix}.alerts"
stop_list = "auth-{suffix}.stop-list"
partitions = 1

[embedded]
broker_port = {broker.port}
dashboard_port = {free_port()}

[dashboard]
failed_logins_per_user_per_minute = {USER_ALLOWANCE}
failed_logins_per_client_per_minute = {CLIENT_ALLOWANCE}
login_lockout_seconds = {LOCKOUT_SECONDS}
trusted_proxies = ["{TRUSTED_PROXY}"]

"""
        + "\n".join(config_lines)
        + "\n\n"
        + hashed.stdout
        + "\n"
        + casey
    )
    settings = load_settings(config_file)
    ensure_topics(settings)
    events = list(
        DialerSimulator(SlotRules(settings.slots, settings.zone), b"test-key", seed=5, start=START).events(
            sim_seconds=20 * 60
        )
    )
    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events, batch_events=100)
    publisher.publish_all(events)
    publisher.close()
    pipeline = Pipeline(settings, config_file, tmp / "var")
    with dashboard_accounts.in_environment():
        worker = pipeline.worker()
    try:
        worker.wait_until_caught_up(timeout_s=120)
        url = f"http://127.0.0.1:{settings.embedded.dashboard_port}"
        wait_for_dashboard(url, timeout_s=60)
        yield Served(url, dashboard_accounts, config_file, token, len(events))
    finally:
        pipeline.stop_all()


def test_without_a_login_only_healthz_answers(served):
    for path in ("/", "/reports", "/definitions", "/api/wallboard", "/_dash-layout", "/_dash-dependencies"):
        status, headers, body = get(served.url + path)
        assert status == 401, path
        assert headers["WWW-Authenticate"] == 'Basic realm="CallPulse"'
        assert body.startswith("401 Unauthorized: log in to CallPulse.")
    assert get(served.url + "/_dash-update-component", data=b"{}")[0] == 401
    assert get(served.url + "/healthz")[0] == 200


def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(served):
    password = served.accounts.passwords["supervisor"]
    answers = [
        get(served.url + "/", headers)
        for headers in (
            basic("supervisor", "not-" + password),  # right user, wrong password
            basic("nobody", password),  # wrong user, a password that works for someone
            basic("", ""),
            {},
        )
    ]
    assert {status for status, _, _ in answers} == {401}
    assert len({body for _, _, body in answers}) == 1, "the message must not say which part was wrong"
    assert "user name" in answers[0][2] and "password" in answers[0][2]
    assert all(headers["WWW-Authenticate"] == 'Basic realm="CallPulse"' for _, headers, _ in answers)
    status, headers, body = get(served.url + "/", {"Authorization": "Bearer cpt_not-a-token"})
    assert (status, body) == (401, answers[0][2])
    assert headers["WWW-Authenticate"] == 'Bearer realm="CallPulse"'


@pytest.mark.parametrize("role", ["supervisor", "manager", "admin"])
def test_each_role_opens_its_pages_and_gets_403_for_the_others(served, role):
    login = served.accounts.basic(role)
    for path, name in PAGES.items():
        status, _, body = get(served.url + path, login)
        if path in ALLOWED[role]:
            assert status == 200, (role, path, body)
        else:
            assert status == 403, (role, path)
            assert body == (
                f"403 Forbidden: {role} has the {role} role, which may not open the {name} page. "
                "Ask an admin for the manager role.\n"
            )
    # The nav lists what the role may open, no more.
    status, _, layout = get(served.url + "/_dash-layout", login)
    assert status == 200
    links = re.findall(r'"href": "([^"]+)"', json.dumps(json.loads(layout)))
    assert sorted(set(links)) == sorted(ALLOWED[role])
    status, _, board = get(served.url + "/api/wallboard", login)
    assert status == 200 and sum(c["dials"] for c in json.loads(board)["campaigns"]) == served.dials


def test_api_report_is_for_managers_and_admins(served):
    query = f"/api/report?by=campaign&metrics=dials&from={DAY}&to={DAY}"
    status, _, body = get(served.url + query, served.accounts.basic("supervisor"))
    assert status == 403 and "dials" not in body.replace("may not open", "")
    for role in ("manager", "admin"):
        status, _, body = get(served.url + query, served.accounts.basic(role))
        assert status == 200
        assert sum(row["dials"] for row in json.loads(body)) == served.dials


def _callback_request(dependencies: list[dict], output_part: str, values: dict) -> bytes:
    """The body a browser posts to run the callback whose outputs include ``output_part``."""
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


def test_a_supervisor_cannot_run_the_reports_callbacks_by_posting_to_dash(served):
    supervisor, manager = served.accounts.basic("supervisor"), served.accounts.basic("manager")
    # The callback list is open to any login (it holds ids, not data): what a curious user would read.
    status, _, listed = get(served.url + "/_dash-dependencies", supervisor)
    assert status == 200
    dependencies = json.loads(listed)
    report = _callback_request(
        dependencies,
        "report-heatmap.figure",
        {
            "report-rows.value": "segment",
            "report-columns.value": "slot",
            "report-metric.value": "contact_rate",
            "report-dates.start_date": DAY,
            "report-dates.end_date": DAY,
            "report-campaigns.value": [],
        },
    )
    endpoint = served.url + "/_dash-update-component"

    status, _, body = get(endpoint, supervisor, data=report)
    assert status == 403
    assert body == (
        "403 Forbidden: supervisor has the supervisor role, which may not open the Reports page's "
        "data. Ask an admin for the manager role.\n"
    )
    status, _, body = get(endpoint, manager, data=report)
    assert status == 200 and f"{served.dials:,} dials" in body  # the same request carries data for a manager

    export = _callback_request(
        dependencies,
        "report-download.data",
        {
            "report-csv.n_clicks": 1,
            "report-rows.value": "segment",
            "report-columns.value": "slot",
            "report-metric.value": "contact_rate",
            "report-dates.start_date": DAY,
            "report-dates.end_date": DAY,
        },
    )
    assert get(endpoint, supervisor, data=export)[0] == 403

    # Changing page without a reload asks Dash's router for the page: checked by the path asked for.
    def route(pathname: str) -> bytes:
        return _callback_request(
            dependencies,
            "_pages_content.children",
            {"_pages_location.pathname": pathname, "_pages_location.search": ""},
        )

    assert get(endpoint, supervisor, data=route("/reports"))[0] == 403
    assert get(endpoint, supervisor, data=route("/pacing"))[0] == 200
    assert get(endpoint, manager, data=route("/reports"))[0] == 200
    # A callback Dash does not know is refused before Dash sees it, never run as someone else's.
    forged = json.dumps({"output": "report-heatmap.figure", "inputs": [], "state": []}).encode()
    assert get(endpoint, supervisor, data=forged)[0] == 403


def _router_request(dependencies: list[dict], inputs: list[dict]) -> bytes:
    """A page-router callback request with ``inputs`` exactly as given, in that order."""
    body = json.loads(_callback_request(dependencies, "_pages_content.children", {}))
    return json.dumps({**body, "inputs": inputs}).encode()


def test_no_route_gives_a_supervisor_a_manager_page_layout(served):
    """Dash hands the router its inputs by position: a request naming the location's hash where
    its pathname is declared once got a supervisor the manager pages' layouts, byte for byte."""
    supervisor, manager = served.accounts.basic("supervisor"), served.accounts.basic("manager")
    endpoint = served.url + "/_dash-update-component"
    dependencies = json.loads(get(served.url + "/_dash-dependencies", supervisor)[2])

    def location(**values) -> list[dict]:
        return [{"id": "_pages_location", "property": prop, "value": value} for prop, value in values.items()]

    for path, marker in MANAGER_LAYOUT_MARKERS.items():
        status, _, body = get(endpoint, manager, data=_router_request(dependencies, location(pathname=path, search="")))
        assert status == 200 and marker in body, path  # the marker is what a manager's layout holds
        forgeries = {
            "hash where the pathname goes": location(hash=path, pathname="/"),
            "the pathname second": location(search="", pathname=path),
            "another component's pathname": [
                {"id": "report-url", "property": "pathname", "value": path},
                *location(search=""),
            ],
            "a pathname too many": location(pathname=path, search="", hash=""),
            "the path asked for": location(pathname=path, search=""),
            "with a trailing slash": location(pathname=path + "/", search=""),
            "with a query": location(pathname=path, search="?campaign=x"),
        }
        for name, inputs in forgeries.items():
            status, _, body = get(endpoint, supervisor, data=_router_request(dependencies, inputs))
            assert status in (400, 403), (path, name, status)
            assert marker not in body and "figure" not in body, (path, name)
    status, _, body = get(
        endpoint, supervisor, data=_router_request(dependencies, location(pathname="/pacing", search=""))
    )
    assert status == 200 and "pacing-chart" in body  # the supervisor's own pages still route


def test_a_page_layout_built_for_a_role_below_its_page_is_a_refusal(tmp_path):
    """The role check sits on the layouts themselves, so a route nobody thought of (a Dash
    upgrade's, a later page's) still hands a supervisor no manager layout."""
    import dash
    from flask import g
    from warehouse_helpers import migrated_warehouse

    from core.config import DashboardUser
    from dashboards.app import create_app
    from dashboards.auth import PAGE_ROLES, Credentials, Principal
    from dashboards.data import DashboardContext

    with migrated_warehouse(tmp_path / "warehouse") as client:
        app = create_app(
            DashboardContext(load_settings(), client),
            Credentials({"sam": DashboardUser("supervisor", hash_password("pw"))}, {}),
        )
        pages = {page["path"]: page for page in dash.page_registry.values()}
        for who in (Principal("sam", "supervisor", "password"), Principal("mo", "manager", "password"), None):
            for path, role in PAGE_ROLES.items():
                with app.server.test_request_context(path):
                    if who is not None:
                        g.flask_httpauth_user = who
                    built = str(pages[path]["layout"]())
                refused = "403 Forbidden" in built
                assert refused == (who is None or (role == "manager" and who.role == "supervisor")), (who, path)
                if path in MANAGER_LAYOUT_MARKERS:
                    assert (MANAGER_LAYOUT_MARKERS[path] in built) == (not refused), (who, path)


def test_every_response_carries_the_security_headers(served):
    supervisor = served.accounts.basic("supervisor")
    dependencies = json.loads(get(served.url + "/_dash-dependencies", supervisor)[2])
    pacing = _router_request(
        dependencies,
        [
            {"id": "_pages_location", "property": "pathname", "value": "/pacing"},
            {"id": "_pages_location", "property": "search", "value": ""},
        ],
    )
    answers = {
        "a page": get(served.url + "/", supervisor),
        "an API": get(served.url + "/api/wallboard", supervisor),
        "a callback": get(served.url + "/_dash-update-component", supervisor, data=pacing),
        "the shell layout": get(served.url + "/_dash-layout", supervisor),
        "a refusal": get(served.url + "/reports", supervisor),
        "no login": get(served.url + "/api/wallboard"),
    }
    for name, (status, headers, _) in answers.items():
        assert status == {"a refusal": 403, "no login": 401}.get(name, 200), name
        policy = dict(directive.strip().split(" ", 1) for directive in headers["Content-Security-Policy"].split(";"))
        assert policy["frame-ancestors"] == "'none'" and policy["object-src"] == "'none'", name
        assert policy["default-src"] == "'self'" and policy["connect-src"] == "'self'", name
        scripts = policy["script-src"].split()
        assert scripts[0] == "'self'" and all(source.startswith("'sha256-") for source in scripts[1:]), name
        assert headers["X-Content-Type-Options"] == "nosniff", name
        assert headers["X-Frame-Options"] == "DENY", name
        assert headers["Referrer-Policy"] == "no-referrer", name
        assert headers["Cache-Control"] == "no-store", name
    # Dash's script bundles hold no data: they keep their long caching, and the other headers.
    bundle = re.search(r'<script src="(/_dash-component-suites/[^"]+)"', answers["a page"][2]).group(1)
    status, headers, _ = get(served.url + bundle, supervisor)
    assert status == 200 and "no-store" not in headers["Cache-Control"]
    assert headers["X-Content-Type-Options"] == "nosniff" and "Content-Security-Policy" in headers


def test_a_successful_login_is_checked_once_and_a_wrong_one_costs_the_same_for_any_name(served):
    """scrypt (about 0.1 s) runs for every wrong password, a known user's or an unknown name's
    alike, so timing tells nobody which names exist; a right one is checked once, then remembered."""
    url = served.url + "/_dash-dependencies"  # needs a login, and is cheap to answer

    def timed(headers: dict) -> float:
        started = time.perf_counter()
        status = get(url, headers)[0]
        elapsed = time.perf_counter() - started
        return elapsed if status == 401 else -status

    known, unknown = [], []
    for n in range(USER_ALLOWANCE - 1):  # in turn, so that a busy moment of the machine weighs on both
        for user in ("manager", "admin"):
            known.append(timed(basic(user, f"wrong-{n}")))
            unknown.append(timed(basic(f"nobody-{uuid.uuid4().hex[:8]}", "wrong")))
    known.sort()
    unknown.sort()
    assert min(known + unknown) > 0, "every wrong login is a 401"
    assert 0.5 < known[len(known) // 2] / unknown[len(unknown) // 2] < 2, (known, unknown)
    right = served.accounts.basic("admin")
    assert get(url, right)[0] == 200
    remembered = []
    for _ in range(5):
        started = time.perf_counter()
        assert get(url, right)[0] == 200
        remembered.append(time.perf_counter() - started)
    assert sorted(remembered)[2] < unknown[len(unknown) // 2] / 3, (remembered, unknown)


def test_wrong_passwords_lock_the_user_out_even_with_the_right_one_until_the_lockout_ends(served):
    """The attack of the report: wrong passwords in a row, then the right one. Now the user is
    locked out after USER_ALLOWANCE wrong ones a minute, the right password included, until the
    lockout ends; an unknown name is locked out the same way, and other users are not."""
    url = served.url + "/api/wallboard"
    wrong, right = basic("casey", "not-" + CASEY_PASSWORD), basic("casey", CASEY_PASSWORD)
    assert [get(url, wrong)[0] for _ in range(USER_ALLOWANCE)] == [401] * USER_ALLOWANCE
    status, headers, body = get(url, wrong)
    locked_at = time.monotonic()
    assert status == 429, body
    retry_after = int(headers["Retry-After"])
    assert 1 <= retry_after <= LOCKOUT_SECONDS
    assert (
        body == f"429 Too Many Requests: too many wrong logins from this address or for this user. "
        f"Try again in {retry_after} s.\n"
    )
    assert get(url, right)[0] == 429  # the right password too: guessing it now confirms nothing
    assert get(url, served.accounts.basic("supervisor"))[0] == 200  # the same address, another user
    ghost = basic(f"ghost-{uuid.uuid4().hex[:8]}", "guess")
    assert [get(url, ghost)[0] for _ in range(USER_ALLOWANCE + 1)] == [401] * USER_ALLOWANCE + [429]

    time.sleep(max(0.0, locked_at + retry_after - time.monotonic()) + 0.2)
    status, _, body = get(url, right)
    assert status == 200 and json.loads(body)["campaign_count"] > 0


def test_wrong_tokens_from_one_address_lock_that_address_out(served):
    """Per client: wrong tokens (or passwords for any names) from one address use up its allowance;
    then every login from it is refused, a right token or password included, until the lockout ends."""
    url = served.url + "/api/wallboard"
    statuses = []
    while not statuses or statuses[-1] != 429:
        status, headers, _ = get(url, {"Authorization": f"Bearer cpt_wrong-{len(statuses)}"})
        statuses.append(status)
        assert len(statuses) <= CLIENT_ALLOWANCE + 1, "no lockout after the client's allowance"
    locked_at = time.monotonic()
    assert set(statuses[:-1]) == {401}  # the module's other tests used some of this address's allowance
    retry_after = int(headers["Retry-After"])
    tv = {"Authorization": f"Bearer {served.wall_tv_token}"}
    assert get(url, tv)[0] == 429
    assert get(url, served.accounts.basic("admin"))[0] == 429
    time.sleep(max(0.0, locked_at + retry_after - time.monotonic()) + 0.2)
    assert get(url, tv)[0] == 200
    assert get(url, served.accounts.basic("admin"))[0] == 200


class _Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_login_limiter_counts_per_user_across_addresses_and_per_address_across_users():
    clock = _Clock()
    limiter = LoginLimiter(per_user=3, per_client=5, lockout_seconds=30, clock=clock)
    # One name guessed from three addresses: the fourth attempt, from anywhere, is refused.
    assert [limiter.attempt(f"10.0.0.{n}", "dana") for n in range(3)] == [0, 0, 0]
    assert limiter.attempt("10.0.0.9", "dana") == 30
    clock.now += 10
    assert limiter.retry_after("203.0.113.7", "dana") == 20  # right password or not, from anywhere
    assert limiter.retry_after("10.0.0.1", "erin") == 0  # those addresses may still log in as others
    # One address guessing five names: the sixth attempt is refused, whatever the name, tokens too.
    assert [limiter.attempt("192.0.2.1", f"user-{n}") for n in range(5)] == [0] * 5
    assert limiter.attempt("192.0.2.1", "user-new") == 30
    assert limiter.attempt("192.0.2.1") == 30 and limiter.retry_after("192.0.2.1", "erin") == 30
    assert limiter.retry_after("192.0.2.2", "user-new") == 0
    # Right logins use up nothing.
    for _ in range(20):
        assert limiter.attempt("198.51.100.1", "frank") == 0
        limiter.succeeded("198.51.100.1", "frank")
    # Wrong ones are forgotten after a minute; a lockout ends, with a fresh allowance.
    assert [limiter.attempt("198.51.100.2", "gail") for _ in range(2)] == [0, 0]
    clock.now += 61
    assert [limiter.attempt("198.51.100.2", "gail") for _ in range(3)] == [0, 0, 0]
    assert limiter.retry_after("10.0.0.9", "dana") == 0
    assert [limiter.attempt("10.0.0.9", "dana") for _ in range(3)] == [0, 0, 0]
    assert limiter.attempt("10.0.0.9", "dana") == 30


def status_from(source: str, url: str, headers: dict) -> int:
    """The status of GET ``url`` over a connection from loopback address ``source``."""
    parsed = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30, source_address=(source, 0))
    try:
        connection.request("GET", parsed.path, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_behind_a_trusted_proxy_each_client_has_its_own_allowance_and_a_forged_header_counts_for_nothing(served):
    url = served.url + "/api/wallboard"
    wrong = {"Authorization": "Bearer cpt_not-a-token"}
    right = {"Authorization": f"Bearer {served.wall_tv_token}"}
    # Through the proxy, one client guesses until it is locked out ...
    guesses = [status_from(TRUSTED_PROXY, url, {**wrong, "X-Forwarded-For": "203.0.113.7"}) for _ in range(41)]
    assert guesses == [401] * CLIENT_ALLOWANCE + [429]
    # ... while the other clients behind the same proxy, and the proxy itself, still log in.
    assert status_from(TRUSTED_PROXY, url, {**right, "X-Forwarded-For": "203.0.113.8"}) == 200
    assert status_from(TRUSTED_PROXY, url, right) == 200
    # The locked client cannot slip out by writing another address in front of the proxy's.
    assert status_from(TRUSTED_PROXY, url, {**right, "X-Forwarded-For": "198.51.100.1, 203.0.113.7"}) == 429
    # From a peer that is no trusted proxy the header is ignored: a new address on every guess is
    # still one client, locked out after its allowance whatever address it claims next.
    forged = [
        status_from(UNTRUSTED_PEER, url, {**wrong, "X-Forwarded-For": f"192.0.2.{n}"})
        for n in range(CLIENT_ALLOWANCE + 1)
    ]
    assert forged == [401] * CLIENT_ALLOWANCE + [429]
    assert status_from(UNTRUSTED_PEER, url, {**right, "X-Forwarded-For": "192.0.2.200"}) == 429


def test_the_client_address_is_read_from_x_forwarded_for_only_behind_trusted_proxies(tmp_path):
    from core.config import ConfigError
    from dashboards.auth import ClientAddress

    behind = ClientAddress(["10.0.0.5", "10.1.0.0/16", "2001:db8::/32"])
    assert behind("10.0.0.5", ["203.0.113.9"]) == "203.0.113.9"
    # Each proxy appends who reached it; the client's own entries, left of it, prove nothing.
    assert behind("10.0.0.5", ["198.51.100.1, 203.0.113.9, 10.1.2.3"]) == "203.0.113.9"
    assert behind("10.0.0.5", ["198.51.100.1", "203.0.113.9"]) == "203.0.113.9"  # the header sent twice
    assert behind("10.0.0.5", []) == "10.0.0.5"
    assert behind("10.0.0.5", ["not-an-address, 10.1.0.1"]) == "10.1.0.1"
    assert behind("2001:db8::7", ["2001:0db8:0:0::1, 2a00::9"]) == "2a00::9"
    assert behind("192.0.2.1", ["203.0.113.9"]) == "192.0.2.1"  # not a trusted proxy
    assert ClientAddress()("10.0.0.5", ["203.0.113.9"]) == "10.0.0.5"  # none trusted: the default
    config = tmp_path / "callpulse.toml"
    config.write_text('[dashboard]\ntrusted_proxies = ["10.0.0.0/33"]\n')
    with pytest.raises(ConfigError, match="dashboard.trusted_proxies: '10.0.0.0/33' is not an address or a network"):
        load_settings(config)


def test_the_login_limiter_remembers_a_bounded_number_of_names():
    from dashboards.auth import TRACKED_LOGIN_KEYS

    limiter = LoginLimiter(per_user=3, per_client=10**9, lockout_seconds=30, clock=_Clock())
    for n in range(2 * TRACKED_LOGIN_KEYS):
        limiter.attempt("192.0.2.1", f"name-{n}-" + "x" * 1000)
    assert len(limiter) <= TRACKED_LOGIN_KEYS


def test_tokens_and_users_made_by_the_cli_log_in_and_the_config_holds_only_hashes(served):
    tv = {"Authorization": f"Bearer {served.wall_tv_token}"}
    assert get(served.url + "/api/wallboard", tv)[0] == 200
    assert get(served.url + "/", tv)[0] == 200
    assert get(served.url + "/reports", tv)[0] == 403
    assert get(served.url + "/reports", basic("dana", DANA_PASSWORD))[0] == 200
    assert get(served.url + "/reports", basic("dana", DANA_PASSWORD + "x"))[0] == 401
    assert get(served.url + f"/api/report?by=campaign&from={DAY}&to={DAY}", served.accounts.bearer("manager"))[0] == 200
    config = served.config_file.read_text()
    assert served.wall_tv_token not in config and DANA_PASSWORD not in config
    assert re.search(r'password_hash = "scrypt:[^"]+\$[^"]+\$[0-9a-f]+"', config)
    assert re.search(r'token_sha256 = "[0-9a-f]{64}"', config)
    assert not any(
        password in "\n".join(os.environ.get(name, "") for name in DASHBOARD_ENV)
        for password in served.accounts.passwords.values()
    )


def test_callpulse_report_asks_the_running_dashboard_with_a_login(served):
    args = ("report", "--by", "campaign", "--metrics", "dials", "--from", DAY, "--to", DAY, "--format", "json")
    anonymous = cli(*args, config=served.config_file)
    assert anonymous.returncode == 1
    assert "answers reports only with a login: set CALLPULSE_API_TOKEN" in " ".join(anonymous.stderr.split())
    as_supervisor = cli(*args, config=served.config_file, env=served.accounts.cli_env("supervisor"))
    assert as_supervisor.returncode == 1 and "(403)" in as_supervisor.stderr
    with_token = cli(*args, config=served.config_file, env={"CALLPULSE_API_TOKEN": served.accounts.tokens["manager"]})
    assert with_token.returncode == 0, with_token.stderr
    assert sum(row["dials"] for row in json.loads(with_token.stdout)) == served.dials


def test_a_plaintext_password_in_the_config_or_the_environment_is_refused_unechoed(tmp_path):
    config = tmp_path / "callpulse.toml"
    config.write_text('[dashboard.users.dana]\nrole = "manager"\npassword_hash = "hunter22"\n')
    refused = cli("users", "new-token", "x", "--role", "admin", config=config)
    assert refused.returncode == 1
    assert "[dashboard.users.dana]: password_hash must be a hash from `callpulse users hash-password`" in refused.stderr
    assert "hunter22" not in refused.stderr
    config.write_text('[dashboard.users.dana]\nrole = "manager"\npassword = "hunter22"\n')
    assert cli("users", "new-token", "x", "--role", "admin", config=config).returncode == 1
    # Environment logins are read where the dashboard starts, which then refuses to.
    for entry, reason in (
        ("dana:hunter22", "entry 1 is not name:role:hash"),
        ("dana:manager:hunter22", "entry dana: password_hash must be a hash"),
    ):
        started = cli("--data-dir", str(tmp_path / "var"), "dashboard", env={"CALLPULSE_DASHBOARD_USERS": entry})
        assert started.returncode == 1
        assert reason in " ".join(started.stderr.split()), started.stderr
        assert "hunter22" not in started.stderr


def _start_dashboard(config: Path, data_dir: Path, log_path: Path) -> subprocess.Popen:
    env = {
        k: v for k, v in os.environ.items() if k not in (*DASHBOARD_ENV, "KAFKA_BOOTSTRAP_SERVERS", "CLICKHOUSE_URL")
    }
    return subprocess.Popen(
        [sys.executable, "-m", "callpulse", "--config", str(config), "--data-dir", str(data_dir), "dashboard"],
        stdout=open(log_path, "wb"),
        stderr=subprocess.STDOUT,
        cwd=PROJECT_ROOT,
        env=env,
    )


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.mark.timeout(180)
def test_the_first_start_creates_an_admin_shows_its_password_once_and_stores_only_its_hash(tmp_path):
    port = free_port()
    config = tmp_path / "callpulse.toml"
    config.write_text(f"[embedded]\ndashboard_port = {port}\n")
    data_dir = tmp_path / "var"
    url = f"http://127.0.0.1:{port}"
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    proc = _start_dashboard(config, data_dir, first_log)
    try:
        wait_for_dashboard(url, timeout_s=90)
        shown = re.search(r"user admin, password (\S+)", first_log.read_text())
        assert shown, first_log.read_text()
        password = shown.group(1)
        assert get(url + "/", basic("admin", password))[0] == 200
        assert get(url + "/reports", basic("admin", password))[0] == 200
        assert get(url + "/", basic("admin", password + "x"))[0] == 401
    finally:
        _stop(proc)
    users_file = data_dir / "dashboard-users.toml"
    assert stat.S_IMODE(users_file.stat().st_mode) == 0o600
    stored = users_file.read_text()
    assert password not in stored
    assert re.search(r'password_hash = "scrypt:', stored)
    assert [p.name for p in data_dir.iterdir() if p.name.startswith(".dashboard-users")] == []

    proc = _start_dashboard(config, data_dir, second_log)
    try:
        wait_for_dashboard(url, timeout_s=90)
        assert get(url + "/", basic("admin", password))[0] == 200
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:  # anything it would print comes before it serves
            time.sleep(0.2)
        assert "password" not in second_log.read_text()
    finally:
        _stop(proc)
    assert users_file.read_text() == stored


@pytest.mark.browser
@pytest.mark.timeout(120)
def test_a_supervisor_sees_only_the_pages_of_the_role_in_the_browser(served):
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(http_credentials=served.accounts.http_credentials("supervisor"))
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            expect.set_options(timeout=20_000)
            page.goto(served.url + "/")
            expect(page.locator(".tile[data-campaign]").first).to_be_visible()
            expect(page.locator(".top-nav .nav-link")).to_have_text([PAGES[p] for p in SUPERVISOR_PAGES])
            page.get_by_role("link", name="Pacing advisor").click()
            expect(page).to_have_url(served.url + "/pacing")
            response = page.goto(served.url + "/reports")
            assert response.status == 403
            expect(page.locator("body")).to_contain_text("may not open the Reports page")
            assert errors == [], errors

            manager = browser.new_context(http_credentials=served.accounts.http_credentials("manager")).new_page()
            manager.goto(served.url + "/")
            expect(manager.locator(".top-nav .nav-link")).to_have_count(len(PAGES))
        finally:
            browser.close()


# What shows that a page has rendered in the browser: its charts drawn, its tables filled.
RENDERED = {
    "/": ".tile[data-campaign] .floor-agents-row",  # tiles drawn (a small tile leaves its sparkline out)
    "/alerts": "#alert-history",
    "/floor": "#floor-summary:has-text('agent')",
    "/reports": "#report-heatmap .main-svg",
    "/compliance": "#compliance-chart .main-svg",
    "/best-time": "#best-time-heatmap .main-svg",
    "/model": "#model-calibration .main-svg",
    "/pacing": "#pacing-chart .main-svg",
    "/definitions": "[data-testid=metric-definitions]",
}
WATCH_POLICY = """window.__violations = [];
document.addEventListener('securitypolicyviolation',
    e => window.__violations.push(e.violatedDirective + ' ' + (e.blockedURI || '') + ' ' + (e.sample || '')));"""


@pytest.mark.browser
@pytest.mark.timeout(240)
def test_every_page_renders_under_the_content_security_policy_in_the_browser(served):
    """Chromium enforces the policy: every page draws its charts and tables with no violation and
    no console error, while a script injected into the page is refused."""
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    assert set(RENDERED) == set(PAGES)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(http_credentials=served.accounts.http_credentials("admin"))
            context.add_init_script(WATCH_POLICY)
            expect.set_options(timeout=30_000)
            for path, rendered in RENDERED.items():
                page = context.new_page()
                problems: list[str] = []
                page.on(
                    "console",
                    lambda message, problems=problems: (
                        problems.append(message.text) if message.type == "error" else None
                    ),
                )
                page.on("pageerror", lambda error, problems=problems: problems.append(str(error)))
                response = page.goto(served.url + path)
                assert "script-src 'self' 'sha256-" in response.headers["content-security-policy"]
                expect(page.locator(rendered).first).to_be_visible()
                page.wait_for_load_state("networkidle")
                assert page.evaluate("window.__violations") == [], path
                assert problems == [], (path, problems)
                page.close()

            page = context.new_page()
            page.goto(served.url + "/definitions")
            injected = page.evaluate("""() => { const s = document.createElement('script');
                s.textContent = 'window.__injected = true'; document.body.appendChild(s);
                return window.__injected === true; }""")
            assert injected is False
            page.wait_for_function("window.__violations.length > 0")
            assert page.evaluate("window.__violations")[0].startswith("script-src")
        finally:
            browser.close()
