"""Run a Python module (the worker) with its memory watched from inside: what grows, and where.

    .venv/bin/python bench/memory_probe.py --out probe.jsonl [--every 60] [--settle 120] [--frames 1] \\
        [--collect-every 0] [--young-every 0] [--top 25] -m callpulse --config my.toml worker --dashboard

A diagnostic for bench/soak.py --probe, not for production: tracemalloc slows the process and
adds to its memory. The module runs as `python -m` would run it. Every --every seconds a
thread appends one JSON line to --out with:

    rss_mb, anon_mb       the process's VmRSS and RssAnon
    traced_mb             what Python objects hold now (tracemalloc)
    heap                  glibc's view (mallinfo2) of its main arena: arena_mb obtained from the
                          system by brk, in_use_mb handed out, free_mb kept free inside the heap,
                          mmapped_mb (the other threads' arenas are not in it)
    pymalloc              Python's allocator for objects of up to 512 bytes (its own mmapped
                          arenas): arenas_mb held, allocated_mb in live blocks, available_mb free
                          blocks in pools in use
    objects               the most numerous kinds of object the garbage collector tracks (garbage
                          in reference cycles not collected yet among them)
    gc                    the collector's pending counts and collections so far, per generation
    chdb_mb               what chDB's own allocator says it holds (system.metrics MemoryTracking),
                          read on a client of the warehouse the worker's --config names
    grown                 the source lines whose allocations grew most since the baseline,
                          taken --settle seconds after start (so imports and start-up are not counted)
    full_collection       with --collect-every K, every K-th line: a full gc.collect() after the
                          line is taken, what it found unreachable, and the memory after it

--frames 0 leaves tracemalloc off (no traced_mb, no grown): the process runs at its own speed.
--young-every S collects the youngest generation every S seconds (gc.collect(0)) in another
thread: what collecting young garbage promptly would change.

RssAnon growing with traced_mb is Python objects; with in_use_mb but not traced_mb, C code
using malloc (chDB, librdkafka-like libraries); with free_mb, memory freed but kept by glibc;
with chdb_mb, chDB; with none of them, Python's own arenas (mmap) or another allocator.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import itertools
import json
import os
import runpy
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import Counter
from pathlib import Path


class MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def heap() -> dict | None:
    """glibc's heap figures in MB, or None where the C library has no mallinfo2."""
    try:
        mallinfo2 = ctypes.CDLL(ctypes.util.find_library("c")).mallinfo2
    except (OSError, AttributeError, TypeError):
        return None
    mallinfo2.restype = MallInfo2
    info = mallinfo2()
    mb = 1024 * 1024
    return {
        "arena_mb": round(info.arena / mb, 1),
        "in_use_mb": round(info.uordblks / mb, 1),
        "free_mb": round(info.fordblks / mb, 1),
        "mmapped_mb": round(info.hblkhd / mb, 1),
    }


def status_mb(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(f"{field}:"):
                return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def pymalloc() -> dict | None:
    """Python's small-object allocator, from sys._debugmallocstats() (which writes to stderr)."""
    figures = {
        "# arenas allocated current": "arenas",
        "# bytes in allocated blocks": "allocated_mb",
        "# bytes in available blocks": "available_mb",
    }
    with tempfile.TemporaryFile() as capture:
        saved = os.dup(2)
        try:
            os.dup2(capture.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        capture.seek(0)
        text = capture.read().decode(errors="replace")
    found = {}
    for line in text.splitlines():
        name, _, value = line.partition("=")
        key = figures.get(name.strip())
        if key:
            number = int(value.strip().replace(",", ""))
            found[key] = number if key == "arenas" else round(number / 2**20, 1)
    arena_bytes = next(
        (int(line.split("*")[1].split()[0]) for line in text.splitlines() if "bytes/arena" in line), None
    )
    if "arenas" in found and arena_bytes:
        found["arenas_mb"] = round(found["arenas"] * arena_bytes / 2**20, 1)
    return found or None


def collect_young(every_s: float) -> None:
    while True:
        time.sleep(every_s)
        gc.collect(0)


def most_numerous(top: int = 12) -> dict[str, int]:
    return dict(Counter(type(o).__name__ for o in gc.get_objects()).most_common(top))


class ChdbMemory:
    """chDB's MemoryTracking, on a warehouse client of its own, opened once the worker has one."""

    def __init__(self, module_args: list[str]):
        self.config = module_args[module_args.index("--config") + 1] if "--config" in module_args else None
        self.client = None

    def mb(self) -> float | None:
        try:
            if self.client is None:
                from core.config import load_settings
                from warehouse.client import connect

                self.client = connect(load_settings(self.config).warehouse_url)
            rows = self.client.query("SELECT value FROM system.metrics WHERE metric = 'MemoryTracking'").result_rows
            return round(rows[0][0] / 2**20, 1) if rows else None
        except Exception:  # a diagnostic: a warehouse it cannot read is a missing figure
            return None


def full_collection() -> dict:
    """A full collection; what it found unreachable (kept in gc.garbage for the moment it takes
    to count them by kind, then let go) and the memory after it."""
    started = time.perf_counter()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        found = gc.collect()
        kinds = Counter(type(o).__qualname__ for o in gc.garbage).most_common(8)
        gc.garbage.clear()
    finally:
        gc.set_debug(0)
    return {
        "unreachable": found,
        "kinds": dict(kinds),
        "seconds": round(time.perf_counter() - started, 2),
        "rss_mb": status_mb("VmRSS"),
        "anon_mb": status_mb("RssAnon"),
        "heap": heap(),
        "objects": most_numerous(5),
    }


def watch(out: Path, every_s: float, settle_s: float, top: int, collect_every: int, chdb: ChdbMemory) -> None:
    started = time.monotonic()
    baseline, settled = None, False
    tracing = tracemalloc.is_tracing()
    ignored = [
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
        tracemalloc.Filter(False, "<unknown>"),
    ]
    for number in itertools.count(1):
        time.sleep(every_s)
        snapshot = tracemalloc.take_snapshot().filter_traces(ignored) if tracing else None
        line = {
            "seconds": round(time.monotonic() - started),
            "rss_mb": status_mb("VmRSS"),
            "anon_mb": status_mb("RssAnon"),
            "traced_mb": round(tracemalloc.get_traced_memory()[0] / 2**20, 1) if tracing else None,
            "heap": heap(),
            "pymalloc": pymalloc(),
            "chdb_mb": chdb.mb(),
            "objects": most_numerous(),
            "gc": {
                "pending": gc.get_count(),
                "collections": [g["collections"] for g in gc.get_stats()],
                "frozen": gc.get_freeze_count(),
            },
        }
        if not settled and time.monotonic() - started >= settle_s:
            baseline, settled = snapshot, True
            line["baseline"] = True
        elif baseline is not None:
            line["grown"] = [
                {
                    "where": str(stat.traceback),
                    "mb": round(stat.size_diff / 2**20, 2),
                    "blocks": stat.count_diff,
                    "now_mb": round(stat.size / 2**20, 2),
                }
                for stat in snapshot.compare_to(baseline, "lineno")[:top]
            ]
        if collect_every and number % collect_every == 0:
            line["full_collection"] = full_collection()
        with out.open("a") as file:
            file.write(json.dumps(line) + "\n")


def main() -> None:
    argv = sys.argv[1:]
    if "-m" not in argv:
        raise SystemExit(__doc__)
    split = argv.index("-m")
    options, module, module_args = argv[:split], argv[split + 1], argv[split + 2 :]
    settings = {
        "--out": None,
        "--every": "60",
        "--settle": "120",
        "--top": "25",
        "--frames": "1",
        "--collect-every": "0",
        "--young-every": "0",
    }
    for name, value in zip(options[::2], options[1::2]):
        if name not in settings:
            raise SystemExit(f"unknown option {name}\n{__doc__}")
        settings[name] = value
    if settings["--out"] is None:
        raise SystemExit(f"--out is needed\n{__doc__}")
    if int(settings["--frames"]) > 0:
        tracemalloc.start(int(settings["--frames"]))
    sys.path[0] = str(Path(__file__).resolve().parents[1])  # where `python -m` from the checkout would look
    if float(settings["--young-every"]) > 0:
        threading.Thread(
            target=collect_young, args=(float(settings["--young-every"]),), name="young-collector", daemon=True
        ).start()
    threading.Thread(
        target=watch,
        name="memory-probe",
        daemon=True,
        args=(
            Path(settings["--out"]),
            float(settings["--every"]),
            float(settings["--settle"]),
            int(settings["--top"]),
            int(settings["--collect-every"]),
            ChdbMemory(module_args),
        ),
    ).start()
    sys.argv = [module, *module_args]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
