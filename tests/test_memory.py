"""The worker hands memory a backlog freed back once it has caught up (streams/memory.py)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from test_wallboard_browser import PROJECT_ROOT

from core.config import load_settings
from streams.memory import FreedMemory


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_memory_goes_back_after_a_burst_once_caught_up_and_at_most_once_per_interval():
    clock = Clock()
    freed = FreedMemory(30, clock)
    assert not freed.due(batch_full=False)  # a quiet start: nothing was freed
    assert not freed.due(batch_full=True)  # a backlog is being read
    assert not freed.due(batch_full=True)
    assert freed.due(batch_full=False)  # caught up
    assert not freed.due(batch_full=False)  # nothing new to give back
    clock.now += 10
    assert not freed.due(batch_full=True)
    assert not freed.due(batch_full=False)  # another burst, but within the interval
    clock.now += 20
    assert freed.due(batch_full=False)


def test_zero_seconds_turns_it_off_and_the_default_is_thirty():
    freed = FreedMemory(0)
    freed.due(batch_full=True)
    assert not freed.due(batch_full=False)
    assert load_settings().worker.release_memory_seconds == 30


def test_release_gives_freed_heap_pages_back_to_the_operating_system():
    """A fresh interpreter fills 300 MB of the C heap with 2 KB objects and frees them all but
    the last, which keeps the heap from shrinking by itself; release() must take its
    anonymous memory down by most of that."""
    probe = textwrap.dedent("""
        from streams.memory import FreedMemory

        def anonymous_mb():
            with open("/proc/self/status") as status:
                return next(int(line.split()[1]) for line in status if line.startswith("RssAnon:")) / 1024

        chunks = [bytes(2048) for _ in range(150_000)]
        pinned = bytes(2048)
        del chunks
        before = anonymous_mb()
        released = FreedMemory(1).release()
        print(released, before, anonymous_mb())
    """)
    run = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    released, before, after = run.stdout.split()
    assert released == "True"
    assert float(before) - float(after) > 200, run.stdout
