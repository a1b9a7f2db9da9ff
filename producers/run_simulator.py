"""Drive the simulator against the wall clock: ``speed`` simulated seconds per real second."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Callable

from producers.simulator import DialerSimulator

log = logging.getLogger(__name__)


def run_simulation(simulator: DialerSimulator, publish: Callable, *, speed: float = 1.0,
                   duration_s: float | None = None, max_events: int | None = None,
                   max_rate: float | None = None, on_progress: Callable[[int], None] | None = None,
                   should_stop: Callable[[], bool] = lambda: False) -> int:
    """Publish events as simulated time passes; return how many were published.

    ``duration_s`` is real seconds. ``speed`` 0 means as fast as possible (replay).
    ``max_rate`` caps events per real second.
    """
    began = time.monotonic()
    sent = 0
    tick = 1.0 if speed == 0 else max(1.0, speed * 0.5)  # simulated seconds per loop
    while not should_stop():
        elapsed = time.monotonic() - began
        if duration_s is not None and elapsed >= duration_s:
            break
        horizon = simulator.now + tick if speed == 0 else max(simulator.now, elapsed * speed)
        for event in simulator.events_until(horizon + 1):
            publish(event)
            sent += 1
            if max_rate and sent > max_rate * (time.monotonic() - began):
                time.sleep(1.0 / max_rate)
            if max_events is not None and sent >= max_events:
                return sent
        if on_progress:
            on_progress(sent)
        if speed:
            time.sleep(0.2)
    return sent


def parse_start(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment
