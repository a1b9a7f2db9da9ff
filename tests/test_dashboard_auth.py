"""Dashboard login and roles, over real HTTP against a worker serving the dashboard.

Simulated calls go broker -> worker -> chDB, so every refused request below had data it
could have leaked. The worker knows one user and one token per role through the environment
(conftest's `dashboard_accounts`), plus a user and a token that `callpulse users` made and
that sit, as hashes, in its config file. Expectations are the role table in the README:
supervisor: Wallboard, Alerts, Pacing advisor, Definitions; manager: also Reports, Compliance,
Best time to call, Response model and /api/report; admin: everything.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from email.message import Message
from pathlib import Path

import pytest
from conftest import Pipeline
from test_wallboard_browser import CHROMIUM, CHROMIUM_ARGS, _require_browser, wait_for_dashboard

from callpulse.config import load_settings
from callpulse.embedded import free_port
from callpulse.slots import SlotRules
from callpulse.topics import ensure_topics
from producers.publisher import EventPublisher
from producers.simulator import DialerSimulator

pytestmark = pytest.mark.integration

PROJECT_ROOT = Path(__file__).resolve().parents[1]
START = datetime(2026, 11, 20, 0, 0, tzinfo=timezone.utc)  # 09:00 in Tokyo
DAY = "2026-11-20"
PAGES = {"/": "Wallboard", "/alerts": "Alerts", "/reports": "Reports", "/compliance": "Compliance",
         "/best-time": "Best time to call", "/model": "Response model", "/pacing": "Pacing advisor",
         "/definitions": "Definitions"}
SUPERVISOR_PAGES = ["/", "/alerts", "/pacing", "/definitions"]
ALLOWED = {"supervisor": set(SUPERVISOR_PAGES), "manager": set(PAGES), "admin": set(PAGES)}
DASHBOARD_ENV = ("CALLPULSE_DASHBOARD_USERS", "CALLPULSE_DASHBOARD_TOKENS")
DANA_PASSWORD = "dana-" + uuid.uuid4().hex[:12]


@dataclass
class Served:
    url: str
    accounts: object  # conftest.DashboardAccounts
    config_file: Path
    wall_tv_token: str
    dials: int


def get(url: str, headers: dict | None = None, data: bytes | None = None) -> tuple[int, Message, str]:
    """Status, headers (any case) and body, whatever the status."""
    request = urllib.request.Request(url, headers={**(headers or {}),
                                                   **({"Content-Type": "application/json"} if data else {})},
                                     data=data)
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
    return subprocess.run([sys.executable, "-m", "callpulse", *(["--config", str(config)] if config else []), *args],
                          capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=120, input=stdin,
                          stdin=subprocess.DEVNULL if stdin is None else None, start_new_session=True,
                          env={"PATH": "/usr/bin:/bin", "CALLPULSE_HMAC_KEY": "test-key", **(env or {})})


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
    config_file.write_text(f"""
[pipeline]
data_dir = "{tmp / 'var'}"

[topics]
call_events = "auth-{suffix}.call-events"
dead_letters = "auth-{suffix}.dead-letters"
alerts = "auth-{suffix}.alerts"
stop_list = "auth-{suffix}.stop-list"
partitions = 1

[embedded]
broker_port = {broker.port}
dashboard_port = {free_port()}

""" + "\n".join(config_lines) + "\n\n" + hashed.stdout)
    settings = load_settings(config_file)
    ensure_topics(settings)
    events = list(DialerSimulator(SlotRules(settings.slots, settings.zone), b"test-key", seed=5,
                                  start=START).events(sim_seconds=20 * 60))
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
    answers = [get(served.url + "/", headers) for headers in (
        basic("supervisor", "not-" + password),   # right user, wrong password
        basic("nobody", password),                # wrong user, a password that works for someone
        basic("", ""),
        {},
    )]
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
            assert body == (f"403 Forbidden: {role} has the {role} role, which may not open the {name} page. "
                            "Ask an admin for the manager role.\n")
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
    outputs = [dict(zip(("id", "property"), key.rsplit(".", 1)))
               for key in spec["output"].strip(".").split("...")]

    def filled(items):
        return [{"id": i["id"], "property": i["property"], "value": values.get(f"{i['id']}.{i['property']}")}
                for i in items]

    return json.dumps({"output": spec["output"], "outputs": outputs, "inputs": filled(spec["inputs"]),
                       "state": filled(spec["state"]), "changedPropIds": []}).encode()


def test_a_supervisor_cannot_run_the_reports_callbacks_by_posting_to_dash(served):
    supervisor, manager = served.accounts.basic("supervisor"), served.accounts.basic("manager")
    # The callback list is open to any login (it holds ids, not data): what a curious user would read.
    status, _, listed = get(served.url + "/_dash-dependencies", supervisor)
    assert status == 200
    dependencies = json.loads(listed)
    report = _callback_request(dependencies, "report-heatmap.figure", {
        "report-rows.value": "segment", "report-columns.value": "slot", "report-metric.value": "contact_rate",
        "report-dates.start_date": DAY, "report-dates.end_date": DAY, "report-campaigns.value": []})
    endpoint = served.url + "/_dash-update-component"

    status, _, body = get(endpoint, supervisor, data=report)
    assert status == 403
    assert body == ("403 Forbidden: supervisor has the supervisor role, which may not open the Reports page's "
                    "data. Ask an admin for the manager role.\n")
    status, _, body = get(endpoint, manager, data=report)
    assert status == 200 and f"{served.dials:,} dials" in body  # the same request carries data for a manager

    export = _callback_request(dependencies, "report-download.data", {
        "report-csv.n_clicks": 1, "report-rows.value": "segment", "report-columns.value": "slot",
        "report-metric.value": "contact_rate", "report-dates.start_date": DAY, "report-dates.end_date": DAY})
    assert get(endpoint, supervisor, data=export)[0] == 403

    # Changing page without a reload asks Dash's router for the page: checked by the path asked for.
    def route(pathname: str) -> bytes:
        return _callback_request(dependencies, "_pages_content.children",
                                 {"_pages_location.pathname": pathname, "_pages_location.search": ""})

    assert get(endpoint, supervisor, data=route("/reports"))[0] == 403
    assert get(endpoint, supervisor, data=route("/pacing"))[0] == 200
    assert get(endpoint, manager, data=route("/reports"))[0] == 200
    # A callback Dash does not know is refused before Dash sees it, never run as someone else's.
    forged = json.dumps({"output": "report-heatmap.figure", "inputs": [], "state": []}).encode()
    assert get(endpoint, supervisor, data=forged)[0] == 403


def test_tokens_and_users_made_by_the_cli_log_in_and_the_config_holds_only_hashes(served):
    tv = {"Authorization": f"Bearer {served.wall_tv_token}"}
    assert get(served.url + "/api/wallboard", tv)[0] == 200
    assert get(served.url + "/", tv)[0] == 200
    assert get(served.url + "/reports", tv)[0] == 403
    assert get(served.url + "/reports", basic("dana", DANA_PASSWORD))[0] == 200
    assert get(served.url + "/reports", basic("dana", DANA_PASSWORD + "x"))[0] == 401
    assert get(served.url + f"/api/report?by=campaign&from={DAY}&to={DAY}",
               served.accounts.bearer("manager"))[0] == 200
    config = served.config_file.read_text()
    assert served.wall_tv_token not in config and DANA_PASSWORD not in config
    assert re.search(r'password_hash = "scrypt:[^"]+\$[^"]+\$[0-9a-f]+"', config)
    assert re.search(r'token_sha256 = "[0-9a-f]{64}"', config)
    assert not any(password in "\n".join(os.environ.get(name, "") for name in DASHBOARD_ENV)
                   for password in served.accounts.passwords.values())


def test_callpulse_report_asks_the_running_dashboard_with_a_login(served):
    args = ("report", "--by", "campaign", "--metrics", "dials", "--from", DAY, "--to", DAY, "--format", "json")
    anonymous = cli(*args, config=served.config_file)
    assert anonymous.returncode == 1
    assert "answers reports only with a login: set CALLPULSE_API_TOKEN" in " ".join(anonymous.stderr.split())
    as_supervisor = cli(*args, config=served.config_file, env=served.accounts.cli_env("supervisor"))
    assert as_supervisor.returncode == 1 and "(403)" in as_supervisor.stderr
    with_token = cli(*args, config=served.config_file,
                     env={"CALLPULSE_API_TOKEN": served.accounts.tokens["manager"]})
    assert with_token.returncode == 0, with_token.stderr
    assert sum(row["dials"] for row in json.loads(with_token.stdout)) == served.dials


def test_a_plaintext_password_in_the_config_or_the_environment_is_refused_unechoed(tmp_path):
    config = tmp_path / "callpulse.toml"
    config.write_text('[dashboard.users.dana]\nrole = "manager"\npassword_hash = "hunter22"\n')
    refused = cli("users", "new-token", "x", "--role", "admin", config=config)
    assert refused.returncode == 1
    assert "[dashboard.users.dana]: password_hash must be a hash from `callpulse users hash-password`" \
        in refused.stderr
    assert "hunter22" not in refused.stderr
    config.write_text('[dashboard.users.dana]\nrole = "manager"\npassword = "hunter22"\n')
    assert cli("users", "new-token", "x", "--role", "admin", config=config).returncode == 1
    # Environment logins are read where the dashboard starts, which then refuses to.
    for entry, reason in (("dana:hunter22", "entry 1 is not name:role:hash"),
                          ("dana:manager:hunter22", "entry dana: password_hash must be a hash")):
        started = cli("--data-dir", str(tmp_path / "var"), "dashboard", env={"CALLPULSE_DASHBOARD_USERS": entry})
        assert started.returncode == 1
        assert reason in " ".join(started.stderr.split()), started.stderr
        assert "hunter22" not in started.stderr


def _start_dashboard(config: Path, data_dir: Path, log_path: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items()
           if k not in (*DASHBOARD_ENV, "KAFKA_BOOTSTRAP_SERVERS", "CLICKHOUSE_URL")}
    return subprocess.Popen([sys.executable, "-m", "callpulse", "--config", str(config), "--data-dir", str(data_dir),
                             "dashboard"], stdout=open(log_path, "wb"), stderr=subprocess.STDOUT, cwd=PROJECT_ROOT,
                            env=env)


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
