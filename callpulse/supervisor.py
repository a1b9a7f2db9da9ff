"""``callpulse up``: one process tree that runs the whole pipeline on this machine.

Children run in their own sessions, so Ctrl-C reaches only this supervisor, which
then stops them in dependency order: simulator, worker (flushes to the warehouse),
dashboard, broker. Each child also gets a parent-death signal, so even a killed
supervisor leaves no broker behind.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from callpulse.config import Settings
from callpulse.embedded import EmbeddedBroker, die_with_parent, port_is_open, wait_for_port
from callpulse.topics import ensure_topics


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    log_path: Path


class Supervisor:
    def __init__(self, settings: Settings, console: Console, config_file: str | None = None,
                 notes: tuple[str, ...] = ()):
        self.settings = settings
        self.notes = notes  # shown under the table, e.g. the first-start dashboard login
        self.console = console
        self.config_file = config_file
        self.log_dir = settings.data_dir / "logs"
        self.children: list[Child] = []
        self.broker: EmbeddedBroker | None = None
        self.stop_requested = threading.Event()

    def _spawn(self, name: str, *args: str, env: dict | None = None) -> Child:
        log_path = self.log_dir / f"{name}.log"
        log_file = open(log_path, "ab")
        config = ["--config", str(self.config_file)] if self.config_file else []
        command = [sys.executable, "-m", "callpulse", *config, "--data-dir", str(self.settings.data_dir), *args]
        proc = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **(env or {})}, preexec_fn=die_with_parent,
                                start_new_session=True)
        log_file.close()
        child = Child(name, proc, log_path)
        self.children.append(child)
        return child

    def run(self, *, duration: float | None, simulator: bool, speed: float, seed: int | None) -> int:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stop_requested.set())
        self.log_dir.mkdir(parents=True, exist_ok=True)
        settings = self.settings
        started = Table(title="CallPulse is up", show_header=True)
        started.add_column("part")
        started.add_column("where")
        try:
            if settings.embedded_broker:
                self.broker = EmbeddedBroker(settings.embedded.broker_port, self.log_dir).start()
                started.add_row("Kafka broker (embedded tansu)", self.broker.bootstrap_servers)
            else:
                started.add_row("Kafka broker", settings.bootstrap_servers)
            created = ensure_topics(settings)
            started.add_row("topics", ", ".join(spec for spec in (settings.topics.call_events,
                                                                  settings.topics.dead_letters,
                                                                  settings.topics.alerts))
                            + (f" (created {len(created)})" if created else ""))
            host, port = settings.embedded.dashboard_host, settings.embedded.dashboard_port
            if port_is_open(host, port):
                raise RuntimeError(f"port {port} is already in use; stop what serves http://{host}:{port}/ "
                                   "or set [embedded] dashboard_port")
            env = {"KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers} if not settings.embedded_broker else {}
            worker = self._spawn("worker", "worker", "--dashboard" if settings.embedded_warehouse else "--no-dashboard",
                                 env=env)
            started.add_row("Faust worker", f"pid {worker.proc.pid}, log {worker.log_path}")
            started.add_row("warehouse", settings.warehouse_url)
            if not settings.embedded_warehouse:
                self._spawn("dashboard", "dashboard", env=env)
            wait_for_port(host, port, 60, worker.proc if settings.embedded_warehouse else None)
            started.add_row("dashboard", f"http://{host}:{port}/")
            if simulator:
                seed = seed if seed is not None else random.randrange(1_000_000)
                sim = self._spawn("simulator", "simulate", "--speed", str(speed), "--seed", str(seed),
                                  *(("--duration", str(duration)) if duration else ()), env=env)
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
        order = {"simulator": 0, "worker": 1, "dashboard": 2}
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
        self.console.print("stopped.")
