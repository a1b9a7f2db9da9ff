"""Handing the memory a burst of calls freed back to the operating system.

A backlog is counted in batches of tens of thousands of events. Their decoded events and
rows are freed once a batch lands, but glibc's allocator keeps the freed pages for the
process, between the objects that live on (a minute's buckets, the event ids kept for
replays), so the worker stayed at its backlog size for as long as it ran. Once it has caught
up, ``malloc_trim`` gives those pages back.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from collections.abc import Callable


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none (musl, macOS)."""
    library = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(library).malloc_trim if library else None
    except (OSError, AttributeError):
        return None
    if trim is not None:
        trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


class FreedMemory:
    """Gives freed heap pages back after a burst: at the first batch smaller than the largest
    that follows a full one, and at most once every ``every_seconds`` (0: never).

    Not while a backlog is read: the next batch would only fault the pages in again. ctypes
    releases the GIL around the call, so it runs in a thread beside the worker's loop."""

    def __init__(self, every_seconds: float, clock: Callable[[], float] = time.monotonic):
        self.every_seconds = every_seconds
        self.clock = clock
        self._trim = _malloc_trim() if every_seconds > 0 else None
        self._last = float("-inf")
        self._burst = False  # a full batch came since memory last went back

    def due(self, batch_full: bool) -> bool:
        """Whether to release now, given whether this batch was a full one."""
        if batch_full:
            self._burst = True
            return False
        now = self.clock()
        if self._trim is None or not self._burst or now - self._last < self.every_seconds:
            return False
        self._burst = False
        self._last = now
        return True

    def release(self) -> bool:
        """Whether any memory went back."""
        return bool(self._trim(0)) if self._trim is not None else False
