"""`callpulse up` after a crash, restarted at once as systemd's Restart=always does, and a
second `up` on a data directory that is in use.

A SIGKILLed supervisor's broker and worker get SIGTERM through their parent-death signal
and take a second or two to exit, holding the broker's port and the warehouse meanwhile;
the next run must wait for them, not fail on "port already in use" or a chDB lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import pytest

from callpulse.embedded import free_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[1]
BOUND_S = 90  # from SIGKILL to counting again; it measured about 10 s on a 2-core box


def running(pid: int) -> bool:
    """Whether process ``pid`` is still there and has not exited (a zombie has)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


class UpRun:
    """One `callpulse up` in a session of its own (so a test can SIGKILL its process group)."""

    def __init__(self, config: Path, data_dir: Path, seed: int, console: Path, *, data_dir_after_up: bool = False):
        env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "CLICKHOUSE_URL")}
        where = ["up", "--data-dir", str(data_dir)] if data_dir_after_up else ["--data-dir", str(data_dir), "up"]
        self.console = console
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "callpulse", "--config", str(config), *where, "--speed", "2", "--seed", str(seed)],
            stdout=open(console, "wb"),
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )

    def output(self) -> str:
        return " ".join(self.console.read_text(errors="replace").split())  # the console folds long lines

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(90)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def recorded_run(data_dir: Path) -> dict:
    try:
        return json.loads((data_dir / "run" / "up.json").read_text())
    except (OSError, ValueError):
        return {}


def recorded_worker(data_dir: Path, supervisor_pid: int) -> int | None:
    """The worker pid that the `up` with this pid recorded, once it has started one."""
    record = recorded_run(data_dir)
    if (record.get("supervisor") or {}).get("pid") != supervisor_pid:
        return None
    return next((child["pid"] for child in reversed(record["children"]) if child["name"] == "worker"), None)


def get_json(url: str, headers: dict | None = None) -> dict | None:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=3) as response:
            return json.loads(response.read())
    except (OSError, ValueError):
        return None


def wait_until_counting(
    up: UpRun, data_dir: Path, health_url: str, timeout_s: float, previous: int | None = None
) -> tuple[int, dict]:
    """Until the worker this `up` started has counted calls: its pid and its health. A run
    started after a killed one records that run's children first, while it waits for them:
    ``previous``, the killed run's worker, is not this run's."""
    deadline = time.monotonic() + timeout_s
    health = None
    while time.monotonic() < deadline:
        assert up.proc.poll() is None, f"callpulse up exited with {up.proc.returncode}:\n{up.output()}"
        worker = recorded_worker(data_dir, up.proc.pid)
        # Only once this run's own worker is recorded: until then a previous run's worker,
        # still shutting down, may be the one answering on the health port.
        if worker is not None and worker != previous:
            health = get_json(health_url)
            if health and health["counted"] > 0 and health["last_landed_at"]:
                return worker, health
        time.sleep(0.2)
    raise AssertionError(f"no counting after {timeout_s} s; health {health}\n{up.output()}")


@pytest.fixture
def up_config(tmp_path):
    config = tmp_path / "callpulse.toml"
    ports = {"broker_port": free_port(), "dashboard_port": free_port(), "worker_health_port": free_port()}
    config.write_text("[embedded]\n" + "".join(f"{name} = {port}\n" for name, port in ports.items()))
    return config, ports


@pytest.mark.timeout(360)
def test_sigkill_of_up_and_an_immediate_restart_counts_again(tmp_path, up_config, dashboard_login):
    config, ports = up_config
    data_dir = tmp_path / "var"
    health_url = f"http://127.0.0.1:{ports['worker_health_port']}/health"
    board_url = f"http://127.0.0.1:{ports['dashboard_port']}/api/wallboard"
    tv = dashboard_login.bearer("supervisor")
    first = UpRun(config, data_dir, 1, tmp_path / "up1.out")
    second = None
    try:
        old_worker, _ = wait_until_counting(first, data_dir, health_url, 180)
        old_broker = next(c["pid"] for c in recorded_run(data_dir)["children"] if c["name"] == "broker")

        os.killpg(first.proc.pid, signal.SIGKILL)  # the supervisor only: its children run in sessions of their own
        killed = time.monotonic()
        killed_at = datetime.now(timezone.utc)
        second = UpRun(config, data_dir, 2, tmp_path / "up2.out")  # at once, same data dir and ports
        first.proc.wait(5)
        assert running(old_broker) or running(old_worker), (
            "the killed run's children should still be shutting down when the next run starts"
        )

        new_worker, health = wait_until_counting(second, data_dir, health_url, BOUND_S, previous=old_worker)
        seconds = time.monotonic() - killed
        print(
            f"\nSIGKILL of callpulse up to counting again with an immediate restart: {seconds:.1f} s "
            f"(counted {health['counted']})"
        )
        assert new_worker != old_worker
        assert not running(old_worker) and not running(old_broker)

        # New calls land and reach the wallboard.
        deadline = time.monotonic() + 60
        board = None
        while time.monotonic() < deadline:
            board = get_json(board_url, tv)
            if (
                board
                and board["landed_at"]
                and datetime.fromisoformat(board["landed_at"]) > killed_at
                and board["campaigns"]
            ):
                break
            time.sleep(1)
        else:
            raise AssertionError(f"no calls landed on the wallboard after the restart: {board}")
        assert not board["stale"]
        output = second.output()
        assert "already in use" not in output and "CallPulse is up" in output, output
    finally:
        for run in (second, first):
            if run is not None:
                run.stop()
    assert second.proc.returncode == 0, second.output()
    assert not (data_dir / "run" / "up.json").exists(), "a clean stop leaves no run for the next start to wait for"


@pytest.mark.timeout(300)
def test_a_second_up_on_a_data_dir_in_use_says_already_running(tmp_path, up_config, dashboard_login):
    config, ports = up_config
    data_dir = tmp_path / "var"
    health_url = f"http://127.0.0.1:{ports['worker_health_port']}/health"
    first = UpRun(config, data_dir, 1, tmp_path / "up1.out")
    try:
        wait_until_counting(first, data_dir, health_url, 180)
        record = recorded_run(data_dir)
        # --data-dir after `up` this time, as `make up ARGS="--data-dir ..."` passes it.
        second = UpRun(config, data_dir, 2, tmp_path / "up2.out", data_dir_after_up=True)
        second.proc.wait(60)
        output = second.output()
        assert second.proc.returncode != 0, output
        assert f"already running (pid {first.proc.pid})" in output, output
        assert "EmbeddedServer" not in output and "already in use" not in output, output
        # The running one is untouched: still counting, still the one on record.
        assert first.proc.poll() is None
        assert recorded_run(data_dir) == record
        before = get_json(health_url)["counted"]
        deadline = time.monotonic() + 30
        while (get_json(health_url) or {"counted": before})["counted"] <= before:
            assert time.monotonic() < deadline, "the running pipeline stopped counting"
            time.sleep(0.5)
    finally:
        first.stop()
    assert first.proc.returncode == 0, first.output()


def test_a_port_held_by_something_else_keeps_its_clear_error(tmp_path):
    """Only the previous run's own children are waited for; a stranger on the broker's port
    is reported as before, at once."""
    import socket

    with socket.socket() as stranger:
        stranger.bind(("127.0.0.1", 0))
        stranger.listen()
        port = stranger.getsockname()[1]
        config = tmp_path / "callpulse.toml"
        config.write_text(f"[embedded]\nbroker_port = {port}\ndashboard_port = {free_port()}\n")
        env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "CLICKHOUSE_URL")}
        started = time.monotonic()
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "callpulse",
                "--config",
                str(config),
                "up",
                "--data-dir",
                str(tmp_path / "var"),
                "--no-simulator",
            ],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            timeout=60,
        )
    output = " ".join((done.stdout + done.stderr).split())
    assert done.returncode != 0, output
    assert f"port {port} is already in use" in output, output
    assert time.monotonic() - started < 30


def test_the_previous_runs_children_are_waited_for_then_stopped_and_a_reused_pid_is_left_alone(tmp_path):
    """What a killed run leaves in its record: a child that exits on SIGTERM, one that ignores
    it, and a pid that an unrelated process (this test) took over since. The next run stops
    the first two, in that order of force, and never signals the third."""
    from callpulse.supervisor import DataDirInUse, RunRecord

    obeys = subprocess.Popen(["sleep", "120"])
    ignores = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, "
            "signal.SIG_IGN); print('ignoring', flush=True); time.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert ignores.stdout.readline() == "ignoring\n"
    (tmp_path / "run").mkdir()
    ticks = {
        pid: int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        for pid in (obeys.pid, ignores.pid, os.getpid())
    }
    (tmp_path / "run" / "up.json").write_text(
        json.dumps(
            {
                "supervisor": {"name": "supervisor", "pid": 999_999_999, "started": 1},
                "children": [
                    {"name": "worker", "pid": obeys.pid, "started": ticks[obeys.pid]},
                    {"name": "broker", "pid": ignores.pid, "started": ticks[ignores.pid]},
                    {"name": "simulator", "pid": os.getpid(), "started": ticks[os.getpid()] - 1},
                ],
            }
        )
    )
    try:
        record = RunRecord(tmp_path)
        leftovers = record.claim()
        assert sorted(child.name for child in leftovers) == ["broker", "worker"]

        with pytest.raises(DataDirInUse, match=rf"already running \(pid {os.getpid()}\)"):
            RunRecord(tmp_path).claim()

        from callpulse.embedded import stop_leftovers

        outcomes = stop_leftovers(leftovers, grace_s=0.5, term_s=1.0)
        assert sorted(outcomes) == [
            f"broker (pid {ignores.pid}) killed with SIGKILL",
            f"worker (pid {obeys.pid}) stopped with SIGTERM",
        ]
        assert obeys.wait(5) == -signal.SIGTERM and ignores.wait(5) == -signal.SIGKILL
        record.release()
        assert not (tmp_path / "run" / "up.json").exists()
        again = RunRecord(tmp_path)
        assert again.claim() == []  # free again, nothing left to wait for
        again.release()
    finally:
        for proc in (obeys, ignores):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        ignores.stdout.close()
