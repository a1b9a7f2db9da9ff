"""Shared fixtures: a real tansu broker for the session, and a worker process per test."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from callpulse.embedded import EmbeddedBroker, free_port
from core.config import Settings, load_settings
from streams.kafka_admin import ensure_topics

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _dashboard_data():
    return sys.modules.get("dashboards.data")


@pytest.fixture(autouse=True, scope="module")
def _release_module_warehouse_handles():
    """After each test module, let go of what may still hold its embedded warehouse: the
    dashboard context a module's app was built with, and clients in reference cycles. chDB keeps
    one warehouse path per process, so a handle left over makes the next module's path unopenable."""
    yield
    data = _dashboard_data()
    if data is not None:
        data.set_context(None)
    gc.collect()


@pytest.fixture(autouse=True)
def _release_warehouse_handles():
    """After each test, put the dashboard context back as it was before the test: a test that
    built its own app lets go of it, while a module's shared app stays for the module's next test."""
    data = _dashboard_data()
    before = getattr(data, "_context", None) if data is not None else None
    yield
    data = _dashboard_data()
    if data is not None and getattr(data, "_context", None) is not before:
        data.set_context(before)
        gc.collect()


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    with EmbeddedBroker(free_port(), tmp_path_factory.mktemp("broker")) as running:
        yield running


@dataclass
class Pipeline:
    """A test's own topics, data dir and config file on the shared broker."""

    settings: Settings
    config_file: Path
    data_dir: Path
    workers: list = field(default_factory=list)

    def worker(self, *extra: str, health_port: int | None = None) -> WorkerProcess:
        worker = WorkerProcess(self, extra, health_port)
        self.workers.append(worker)
        return worker

    def stop_all(self) -> None:
        for worker in self.workers:
            if worker.proc.poll() is None:
                worker.proc.kill()
                worker.proc.wait()


class WorkerProcess:
    def __init__(self, pipeline: Pipeline, extra: tuple[str, ...], health_port: int | None = None):
        self.pipeline = pipeline
        self.health_port = health_port or free_port()
        pipeline.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = pipeline.data_dir / f"worker-{uuid.uuid4().hex[:6]}.log"
        env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "CLICKHOUSE_URL")}
        env["CALLPULSE_HMAC_KEY"] = "test-key"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "callpulse",
                "--config",
                str(pipeline.config_file),
                "worker",
                "--health-port",
                str(self.health_port),
                *extra,
            ],
            stdout=open(self.log_path, "wb"),
            stderr=subprocess.STDOUT,
            cwd=PROJECT_ROOT,
            env=env,
        )

    def health(self) -> dict | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/health", timeout=2) as resp:
                return json.loads(resp.read())
        except OSError:
            return None

    def wait_until(self, predicate, timeout_s: float = 120.0) -> dict:
        deadline = time.monotonic() + timeout_s
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.log()}")
            last = self.health()
            if last is not None and predicate(last):
                return last
            time.sleep(0.3)
        raise AssertionError(f"worker did not get there in {timeout_s} s; last health {last}\n{self.log()}")

    def wait_until_caught_up(self, timeout_s: float = 180.0) -> dict:
        """Until every published record has landed, by the worker's landed offsets; then its health."""
        from streams.kafka_admin import partition_bounds

        def caught_up(health: dict) -> bool:
            if not health["ready"]:
                return False
            landed = health["landed_offsets"]
            bounds = partition_bounds(self.pipeline.settings)
            if health.get("campaign_totals_queued"):  # the wallboard's totals lag the buckets a moment
                return False
            return all(end - landed.get(str(p), 0) == 0 for p, (_, end) in bounds.items())

        return self.wait_until(caught_up, timeout_s)

    def stop(self, sig=signal.SIGTERM, timeout_s: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError(f"worker ignored {sig!r} for {timeout_s} s:\n{self.log()}") from None
        return self.proc.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]


def new_pipeline(broker, directory: Path) -> Pipeline:
    """A namespace of its own on the shared broker (topics test-<id>.*) and a data directory."""
    suffix = uuid.uuid4().hex[:8]
    config_file = directory / "callpulse.toml"
    config_file.write_text(
        f"""
[pipeline]
data_dir = "{directory / "var"}"

[topics]
call_events = "test-{suffix}.call-events"
dead_letters = "test-{suffix}.dead-letters"
alerts = "test-{suffix}.alerts"
stop_list = "test-{suffix}.stop-list"
partitions = 3

[embedded]
broker_port = {broker.port}
dashboard_port = {free_port()}
worker_health_port = {free_port()}
"""
    )
    os.environ.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    os.environ.pop("CLICKHOUSE_URL", None)
    settings = load_settings(config_file)
    ensure_topics(settings)
    return Pipeline(settings, config_file, directory / "var")


@pytest.fixture
def pipeline(broker, tmp_path) -> Pipeline:
    running = new_pipeline(broker, tmp_path)
    yield running
    running.stop_all()


# Dashboard logins for tests. The dashboard refuses every request without a login, so a test
# that opens it asks for `dashboard_login`: the workers it starts then know one user per role
# (named after the role) and one bearer token per role, through the same environment
# variables a deployment would set.
import base64  # noqa: E402
import secrets  # noqa: E402
from contextlib import contextmanager  # noqa: E402


@dataclass(frozen=True)
class DashboardAccounts:
    passwords: dict[str, str]  # user name (= role) -> password
    tokens: dict[str, str]  # role -> bearer token
    environment: dict[str, str]  # CALLPULSE_DASHBOARD_USERS / _TOKENS, hashes only

    def basic(self, role: str = "admin") -> dict[str, str]:
        """The Authorization header for urllib/httpx."""
        login = base64.b64encode(f"{role}:{self.passwords[role]}".encode()).decode()
        return {"Authorization": f"Basic {login}"}

    def bearer(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def http_credentials(self, role: str = "admin") -> dict[str, str]:
        """For Playwright's browser.new_context(http_credentials=...)."""
        return {"username": role, "password": self.passwords[role]}

    def cli_env(self, role: str = "manager") -> dict[str, str]:
        """What `callpulse report` reads to ask a running dashboard."""
        return {"CALLPULSE_API_USER": role, "CALLPULSE_API_PASSWORD": self.passwords[role]}

    @contextmanager
    def in_environment(self):
        saved = {name: os.environ.get(name) for name in self.environment}
        os.environ.update(self.environment)
        try:
            yield self
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


@pytest.fixture(scope="session")
def dashboard_accounts() -> DashboardAccounts:
    from dashboards.auth import hash_password, hash_token, new_token

    roles = ("supervisor", "manager", "admin")
    passwords = {role: secrets.token_urlsafe(12) for role in roles}
    tokens = {role: new_token() for role in roles}
    environment = {
        "CALLPULSE_DASHBOARD_USERS": ",".join(f"{r}:{r}:{hash_password(passwords[r])}" for r in roles),
        "CALLPULSE_DASHBOARD_TOKENS": ",".join(f"{r}-token:{r}:{hash_token(tokens[r])}" for r in roles),
    }
    return DashboardAccounts(passwords, tokens, environment)


@pytest.fixture
def dashboard_login(dashboard_accounts):
    """Dashboards started during this test accept `dashboard_accounts`' users and tokens."""
    with dashboard_accounts.in_environment():
        yield dashboard_accounts
