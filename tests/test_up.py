"""`callpulse up` as a new user runs it: the dashboard login it prints once, live numbers on the
wallboard, clean Ctrl-C."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from callpulse.embedded import free_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]


def processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{proc.name}: {cmdline}")
    return found


def test_up_shows_live_numbers_and_ctrl_c_leaves_no_process(tmp_path):
    broker_port, dashboard_port = free_port(), free_port()
    config = tmp_path / "callpulse.toml"
    config.write_text(f"[embedded]\nbroker_port = {broker_port}\ndashboard_port = {dashboard_port}\n")
    data_dir = tmp_path / "var"
    # A fresh machine: no dashboard login configured anywhere, so `up` makes one and prints it.
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in ("KAFKA_BOOTSTRAP_SERVERS", "CLICKHOUSE_URL", "CALLPULSE_DASHBOARD_USERS", "CALLPULSE_DASHBOARD_TOKENS")
    }
    console = tmp_path / "up.out"
    up = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "callpulse",
            "--config",
            str(config),
            "--data-dir",
            str(data_dir),
            "up",
            "--speed",
            "20",
            "--seed",
            "1",
            "--duration",
            "170",
        ],
        stdout=open(console, "wb"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env=env,
    )
    board = None
    login = None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert up.poll() is None, console.read_text()
            shown = re.search(r"user admin, password (\S+)", console.read_text())
            if shown is None:
                time.sleep(1)
                continue
            password = shown.group(1)
            login = {"Authorization": "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()}
            try:
                request = urllib.request.Request(f"http://127.0.0.1:{dashboard_port}/api/wallboard", headers=login)
                with urllib.request.urlopen(request, timeout=5) as r:
                    board = json.loads(r.read())
                if len(board["campaigns"]) == 4 and sum(c["dials"] for c in board["campaigns"]) > 100:
                    break
            except OSError:
                pass
            time.sleep(1)
        assert login is not None, f"no dashboard login on the console:\n{console.read_text()}"
        assert board is not None and len(board["campaigns"]) == 4, board
        assert not board["stale"]
        with urllib.request.urlopen(
            urllib.request.Request(f"http://127.0.0.1:{dashboard_port}/", headers=login), timeout=5
        ) as r:
            assert r.status == 200
        assert processes_mentioning(str(data_dir)), "children should be running"
    finally:
        up.send_signal(signal.SIGINT)
        up.wait(timeout=90)
    output = console.read_text()
    assert up.returncode == 0, output
    # Shown once on the console; only its hash is on disk, the logs included.
    assert output.count(password) == 1
    assert (data_dir / "dashboard-users.toml").read_text().count('password_hash = "scrypt:') == 1
    assert not [p for p in data_dir.rglob("*") if p.is_file() and password.encode() in p.read_bytes()]
    assert "CallPulse is up" in output and f"http://127.0.0.1:{dashboard_port}/" in output
    time.sleep(1)
    assert processes_mentioning(str(data_dir)) == []
    assert processes_mentioning(f"tcp://127.0.0.1:{broker_port}") == []
