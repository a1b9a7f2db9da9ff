"""Peer implementations for the throughput benchmark ("callpulse bench"): the same minute
bucket metrics as the CallPulse worker, computed by other stream processors, so CallPulse's
events/s can be read against them.

    run_quix(...)         Quix Streams app (bench/peer_quix.py)
    run_naive_faust(...)  Faust, one event at a time, one table write per event (bench/peer_naive_faust.py)

Each peer runs in its own process, reads the topic from the earliest offset with a fresh
consumer group, stops after ``expected_events`` call events and prints one JSON line.
The clock runs from the first record consumed to the last event counted, so group joins
and startup (reported apart as ``startup_s``) do not count against a peer.

The per-event helpers below are shared by both peers so they do the same work: parse the
event time, find the slot in the configured zone (CallPulse's SlotRules, the same cached
per-minute lookup the worker uses) and add the CallPulse counters (core/metrics.py).
This module is imported by the peer processes, so it imports nothing heavy at the top.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent

#: The counters of core.metrics.COUNTERS, in that order.
COUNTERS = ("dials", "contacts", "connected", "abandoned", "orders", "cost", "talk_seconds")
LIVE_ANSWERS = frozenset({"connected", "abandoned"})


def slot_lookup() -> Callable[[int], str]:
    """CallPulse's slot for a UTC minute (epoch s), from the configured slots and zone."""
    sys.path.insert(0, str(ROOT))
    from core.config import load_settings
    from core.slots import SlotRules

    settings = load_settings()
    return SlotRules(settings.slots, settings.zone).slot_for_minute


def bucket_key(event: dict[str, Any], slot_for_minute: Callable[[int], str]) -> str:
    """campaign|slot|segment|minute for one decoded call event, by its event time."""
    minute = int(datetime.fromisoformat(event["event_time"]).timestamp() // 60) * 60
    return f"{event['campaign']}|{slot_for_minute(minute)}|{event['lead']['segment']}|{minute}"


def add_event(counters: dict[str, float] | None, event: dict[str, Any]) -> dict[str, float]:
    """A new counters dict: ``counters`` plus one call, as core.metrics.counters_for counts it.

    Cost is the event's ``cost`` field (0 when absent): the peers do not price calls
    with the campaign cost model.
    """
    outcome = event["outcome"]
    connected = outcome == "connected"
    old = counters or dict.fromkeys(COUNTERS, 0.0)
    return {
        "dials": old["dials"] + 1,
        "contacts": old["contacts"] + (outcome in LIVE_ANSWERS),
        "connected": old["connected"] + connected,
        "abandoned": old["abandoned"] + (outcome == "abandoned"),
        "orders": old["orders"] + (connected and bool(event.get("order", False))),
        "cost": old["cost"] + float(event.get("cost") or 0.0),
        "talk_seconds": old["talk_seconds"] + (float(event.get("talk_seconds", 0.0)) if connected else 0.0),
    }


def events_of(value: Any) -> list[dict[str, Any]]:
    """The call events in one decoded record value: a JSON array (batch) or one object."""
    items = value if isinstance(value, list) else [value]
    return [item for item in items if isinstance(item, dict) and item.get("type") == "call_attempt"]


def memory_mb(pid: int | str = "self", field: str = "VmHWM") -> float:
    """A process's memory figure from /proc/PID/status in MiB: its peak resident set
    (VmHWM) by default, its resident set now with field="VmRSS"."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    return float("nan")


class RunClock:
    """Startup and processing times of one peer process, and its one-line JSON result."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.first_record: float | None = None
        self.events = 0
        self.last_counted: float | None = None
        self.counted_events: int | None = None

    def record_seen(self) -> None:
        if self.first_record is None:
            self.first_record = time.monotonic()

    def counted(self) -> None:
        """The last expected event is counted (in memory: not yet committed anywhere)."""
        self.last_counted = time.monotonic()
        self.counted_events = self.events  # the stopping app may count a few more after these

    def result(self, committed: bool = False) -> str:
        """The JSON line; with ``committed``, also the figures up to now, when the peer's
        state and offsets are committed (its checkpoint: what CallPulse's landing is)."""
        now = time.monotonic()
        first = self.first_record if self.first_record is not None else now
        counted_at = self.last_counted if self.last_counted is not None else now
        events = self.counted_events if self.counted_events is not None else self.events
        seconds = counted_at - first
        result = {
            "events": events,
            "seconds": round(seconds, 4),
            "events_per_s": round(events / seconds, 1) if seconds > 0 else None,
            "startup_s": round(first - self.started, 3),
            "child_peak_rss_mb": round(memory_mb(), 1),
        }
        if committed:
            result["committed_seconds"] = round(now - first, 4)
            result["committed_events_per_s"] = round(events / (now - first), 1) if now > first else None
        return json.dumps(result)


def _run_peer(script: str, args: list[str], workdir: Path, timeout_s: float) -> dict:
    """Run a peer script; return its JSON line plus the child's peak RSS (from wait4)."""
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"{Path(script).stem}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, str(BENCH / script), *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
        )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    result: dict | None = None
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while result is None and time.monotonic() < deadline:
            if not selector.select(timeout=0.5):
                continue
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:  # the peer exited (its stdout closed); never proc.poll(), which would reap it
                break
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                start = line.find(b'{"events"')  # Faust's worker may put terminal codes before it
                if start >= 0:
                    result = json.loads(line[start:])
    if result is None:
        os.kill(proc.pid, signal.SIGKILL)  # not proc.kill(): it polls, which reaps the child first
    # wait4 gives this child's own rusage; RUSAGE_CHILDREN would be the max over all children.
    # Polled, so a peer that hangs in its shutdown is killed rather than waited on forever.
    exit_deadline = time.monotonic() + 30
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > exit_deadline:
            os.kill(proc.pid, signal.SIGKILL)
            exit_deadline = float("inf")
        time.sleep(0.1)
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stdout.close()
    if result is None:
        raise RuntimeError(f"{script} gave no result within {timeout_s:.0f} s (exit {proc.returncode}); see {log_path}")
    result["rss_mb"] = round(usage.ru_maxrss / 1024, 1)  # KiB on Linux
    return result


def run_quix(bootstrap_servers: str, topic: str, expected_events: int, workdir: Path, timeout_s: float = 300) -> dict:
    """Quix Streams peer: a stateful per-campaign update into campaign|slot|segment|minute buckets."""
    return _run_peer(
        "peer_quix.py",
        [
            "--bootstrap",
            bootstrap_servers,
            "--topic",
            topic,
            "--expected",
            str(expected_events),
            "--workdir",
            str(workdir / "quix"),
            "--group",
            f"bench-quix-{uuid.uuid4().hex[:8]}",
        ],
        workdir,
        timeout_s,
    )


def run_naive_faust(
    bootstrap_servers: str, topic: str, partitions: int, expected_events: int, workdir: Path, timeout_s: float = 300
) -> dict:
    """Naive Faust peer: json.loads per record, one Table write per event."""
    return _run_peer(
        "peer_naive_faust.py",
        [
            "--bootstrap",
            bootstrap_servers,
            "--topic",
            topic,
            "--partitions",
            str(partitions),
            "--expected",
            str(expected_events),
            "--workdir",
            str(workdir / "faust"),
            "--app-id",
            f"bench-faust-{uuid.uuid4().hex[:8]}",
        ],
        workdir,
        timeout_s,
    )
