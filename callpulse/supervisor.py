"""``callpulse up``: one process tree that runs the whole pipeline on this machine.

Children run in their own sessions, so Ctrl-C reaches only this supervisor, which
then stops them in dependency order: simulator, dashboard, worker (flushes to the
warehouse), broker. Each child also gets a parent-death signal, so even a killed
supervisor leaves no broker behind. With the embedded warehouse the dashboard runs in a
process of its own and asks the worker, which alone may open chDB, through the worker's
query endpoint (warehouse/endpoint.py).

A killed supervisor's children take a second or two to exit, holding the broker's port
and the warehouse meanwhile. So each run records itself and its children in the data
directory (RunRecord), and a run started at once after a crash (systemd's
Restart=always) waits for the previous run's children, or stops them, before it starts
its own. A data directory that a running ``callpulse up`` uses is refused plainly.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from callpulse.embedded import (
    EmbeddedBroker,
    RecordedProcess,
    die_with_parent,
    free_port,
    lower_priority,
    port_is_open,
    stop_leftovers,
    wait_for_port,
)
from core.config import Settings
from streams.kafka_admin import ensure_topics
from warehouse.endpoint import SECRET_ENV, USER

#: The dashboard's scheduling priority below the worker's (nice, its session's autogroup too): on
#: a busy machine a page, or a client hammering the login, waits rather than counting.
DASHBOARD_NICENESS = 10


class DataDirInUse(RuntimeError):
    """Another ``callpulse up`` runs on this data directory."""


class RunRecord:
    """Which ``callpulse up`` uses a data directory, and the children it started.

    ``<data_dir>/run/up.lock`` is held (flock) by the running supervisor; the kernel lets go
    of it when the supervisor dies, however it dies. ``<data_dir>/run/up.json`` names the
    supervisor and its children by pid and start time, rewritten whole (write, then rename)
    at every change, so the next run finds a killed run's children and nothing else."""

    def __init__(self, data_dir: Path):
        self.directory = Path(data_dir) / "run"
        self.path = self.directory / "up.json"
        self.children: list[RecordedProcess] = []
        self._lock_fd: int | None = None

    def claim(self) -> list[RecordedProcess]:
        """Take the data directory for this process; the previous run's children still running.
        Raises DataDirInUse if a running ``callpulse up`` holds it."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / "up.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise DataDirInUse(self._in_use()) from None
        self._lock_fd = fd
        leftovers = [child for child in self._read()[1] if child.alive()]
        self.children = list(leftovers)  # still ours to stop if this run is killed while it waits
        self._write()
        return leftovers

    def _in_use(self) -> str:
        """What to say when the lock is held: the running supervisor's pid, from the record
        (written just after the lock is taken, so a moment's retry covers a run that is starting)."""
        deadline = time.monotonic() + 2.0
        while True:
            supervisor, _ = self._read()
            if supervisor is not None and supervisor.alive():
                return (
                    f"callpulse up is already running (pid {supervisor.pid}) on {self.directory.parent}; "
                    "stop it first, or give this one another --data-dir"
                )
            if time.monotonic() > deadline:
                return (
                    f"callpulse up is already running on {self.directory.parent} (it holds "
                    f"{self.directory / 'up.lock'}); stop it first, or give this one another --data-dir"
                )
            time.sleep(0.1)

    def _read(self) -> tuple[RecordedProcess | None, list[RecordedProcess]]:
        try:
            record = json.loads(self.path.read_text())
            supervisor = RecordedProcess(**record["supervisor"]) if record.get("supervisor") else None
            return supervisor, [RecordedProcess(**child) for child in record.get("children", [])]
        except (FileNotFoundError, ValueError, TypeError, KeyError):  # none, or not one this version wrote
            return None, []

    def _write(self) -> None:
        supervisor = RecordedProcess.of("supervisor", os.getpid())
        record = {
            "supervisor": asdict(supervisor) if supervisor else None,
            "children": [asdict(child) for child in self.children],
        }
        scratch = self.path.with_name(f".up.{os.getpid()}.json")
        scratch.write_text(json.dumps(record, indent=1) + "\n")
        os.replace(scratch, self.path)

    def started(self, name: str, proc: subprocess.Popen) -> None:
        child = RecordedProcess.of(name, proc.pid)
        if child is not None:  # None: it has already exited, and the supervisor will see that
            self.children.append(child)
            self._write()

    def forget_leftovers(self, leftovers: list[RecordedProcess]) -> None:
        self.children = [child for child in self.children if child not in leftovers]
        self._write()

    def release(self) -> None:
        """Every child has been stopped: nothing for a next run to wait for."""
        if self._lock_fd is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self._lock_fd)  # lets go of the flock
        self._lock_fd = None


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    log_path: Path


class Supervisor:
    def __init__(
        self, settings: Settings, console: Console, config_file: str | None = None, notes: tuple[str, ...] = ()
    ):
        self.settings = settings
        self.notes = notes  # shown under the table, e.g. the first-start dashboard login
        self.console = console
        self.config_file = config_file
        self.log_dir = settings.data_dir / "logs"
        self.children: list[Child] = []
        self.broker: EmbeddedBroker | None = None
        self.stop_requested = threading.Event()
        self.record = RunRecord(settings.data_dir)

    def _spawn(self, name: str, *args: str, env: dict | None = None, niceness: int = 0) -> Child:
        log_path = self.log_dir / f"{name}.log"
        log_file = open(log_path, "ab")
        config = ["--config", str(self.config_file)] if self.config_file else []
        command = [sys.executable, "-m", "callpulse", *config, "--data-dir", str(self.settings.data_dir), *args]

        def die_with_parent_at_lower_priority() -> None:
            die_with_parent()
            lower_priority(niceness)

        proc = subprocess.Popen(
            command,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            preexec_fn=die_with_parent_at_lower_priority if niceness else die_with_parent,
            start_new_session=True,
        )
        log_file.close()
        self.record.started(name, proc)
        child = Child(name, proc, log_path)
        self.children.append(child)
        return child

    def _claim_data_dir(self) -> None:
        """Take the data directory; first let the children of a killed previous run exit."""
        leftovers = self.record.claim()
        if not leftovers:
            return
        names = ", ".join(f"{child.name} (pid {child.pid})" for child in leftovers)
        self.console.print(f"waiting for the previous run's {names} to exit…")
        for outcome in stop_leftovers(leftovers):
            self.console.print(f"  {outcome}")
        self.record.forget_leftovers(leftovers)

    def run(self, *, duration: float | None, simulator: bool, speed: float, seed: int | None) -> int:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stop_requested.set())
        try:
            self._claim_data_dir()
        except (DataDirInUse, OSError) as exc:  # nothing of this run's to clean up yet
            self.console.print(f"[red]callpulse up failed:[/red] {exc}")
            return 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        settings = self.settings
        started = Table(title="CallPulse is up", show_header=True)
        started.add_column("part")
        started.add_column("where")
        try:
            if settings.embedded_broker:
                self.broker = EmbeddedBroker(settings.embedded.broker_port, self.log_dir).start(
                    spawned=lambda proc: self.record.started("broker", proc)
                )
                started.add_row("Kafka broker (embedded tansu)", self.broker.bootstrap_servers)
            else:
                started.add_row("Kafka broker", settings.bootstrap_servers)
            created = ensure_topics(settings)
            started.add_row(
                "topics",
                ", ".join(
                    spec for spec in (settings.topics.call_events, settings.topics.dead_letters, settings.topics.alerts)
                )
                + (f" (created {len(created)})" if created else ""),
            )
            host, port = settings.embedded.dashboard_host, settings.embedded.dashboard_port
            if port_is_open(host, port):
                raise RuntimeError(
                    f"port {port} is already in use; stop what serves http://{host}:{port}/ "
                    "or set [embedded] dashboard_port"
                )
            env = {"KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers} if not settings.embedded_broker else {}
            dashboard_env = env
            if settings.embedded_warehouse:
                # Only the worker may open the embedded warehouse; the dashboard, in a process of its
                # own so that its work never slows counting, asks the worker's query endpoint.
                secret, warehouse_port = secrets.token_urlsafe(32), free_port()
                worker = self._spawn(
                    "worker",
                    "worker",
                    "--no-dashboard",
                    "--serve-warehouse",
                    str(warehouse_port),
                    env={**env, SECRET_ENV: secret},
                )
                dashboard_env = {**env, "CLICKHOUSE_URL": f"http://{USER}:{secret}@127.0.0.1:{warehouse_port}"}
            else:
                worker = self._spawn("worker", "worker", "--no-dashboard", env=env)
            started.add_row("Faust worker", f"pid {worker.proc.pid}, log {worker.log_path}")
            started.add_row("warehouse", settings.warehouse_url)
            if settings.embedded_warehouse:
                wait_for_port("127.0.0.1", warehouse_port, 120, worker.proc)
                started.add_row(
                    "warehouse queries", f"http://127.0.0.1:{warehouse_port} (the worker's, for the dashboard)"
                )
            dashboard = self._spawn("dashboard", "dashboard", env=dashboard_env, niceness=DASHBOARD_NICENESS)
            wait_for_port(host, port, 60, dashboard.proc)
            started.add_row("dashboard", f"http://{host}:{port}/")
            if simulator:
                seed = seed if seed is not None else random.randrange(1_000_000)
                sim = self._spawn(
                    "simulator",
                    "simulate",
                    "--resume",
                    "--speed",
                    str(speed),
                    "--seed",
                    str(seed),
                    *(("--duration", str(duration)) if duration else ()),
                    env=dashboard_env,  # the warehouse as the dashboard asks it: where to resume
                )
                started.add_row("dialer simulator", f"seed {seed}, {speed:g}x, log {sim.log_path}")
            self.console.print(started)
            self._print_notes()
            self.console.print("Press Ctrl-C to stop." + (f" Stopping after {duration:g} s." if duration else ""))
            return self._wait(duration)
        except Exception as exc:  # report plainly, then clean up below
            self.console.print(f"[red]callpulse up failed:[/red] {exc}")
            self._print_notes()  # a first-start password shown now or never
            return 1
        finally:
            self.shutdown()

    def _print_notes(self) -> None:
        for note in self.notes:
            self.console.print(note, soft_wrap=True, markup=False, highlight=False)
        self.notes = ()

    def _wait(self, duration: float | None) -> int:
        deadline = time.monotonic() + duration if duration else None
        while not self.stop_requested.is_set():
            if deadline and time.monotonic() >= deadline:
                break
            for child in self.children:
                code = child.proc.poll()
                if code is not None and not (child.name == "simulator" and code == 0):
                    self.console.print(f"[red]{child.name} exited with code {code}; see {child.log_path}[/red]")
                    return 1
            time.sleep(0.3)
        return 0

    def shutdown(self) -> None:
        # The dashboard before the worker: the worker's query endpoint then has nothing in
        # flight to wait for while the worker flushes its last batch.
        order = {"simulator": 0, "dashboard": 1, "worker": 2}
        for child in sorted(self.children, key=lambda c: order.get(c.name, 9)):
            if child.proc.poll() is None:
                self.console.print(f"stopping {child.name}…")
                child.proc.send_signal(signal.SIGTERM)
                try:
                    child.proc.wait(30)
                except subprocess.TimeoutExpired:
                    child.proc.kill()
                    child.proc.wait()
        if self.broker is not None:
            self.console.print("stopping broker…")
            self.broker.stop()
        self.record.release()
        self.console.print("stopped.")
