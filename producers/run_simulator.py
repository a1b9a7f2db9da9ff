"""Drive the simulator against the wall clock: ``speed`` simulated seconds per real second.

Simulated time never passes the wall clock: a sped-up run is a backfill that starts in the
past and catches up with now (then goes on in real time), so the simulator never stamps a
call ahead of the clock. A worker refuses calls stamped ahead (future_event_time), and a
demo's calls must leave a data directory that the next real-time run simply continues.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from producers.simulator import DialerSimulator

log = logging.getLogger(__name__)

# Where a sped-up run without --duration starts: this much simulated time before now.
DEFAULT_BACKFILL = timedelta(hours=10)
# Simulated time stays this many seconds behind the clock: the simulator emits a call up
# to a second after the simulated second it reads to, and the call must not be ahead.
CLOCK_MARGIN_SECONDS = 2.0


def simulation_start(
    speed: float,
    duration_s: float | None = None,
    start: datetime | None = None,
    backfill: timedelta = DEFAULT_BACKFILL,
    now: datetime | None = None,
) -> datetime:
    """Where simulated time begins so that it never passes the wall clock.

    - An explicit ``start`` is kept; one in the future is refused (ValueError).
    - Real time or slower (0 < speed <= 1): now.
    - Faster with a duration: now - duration x (speed - 1), so the duration x speed
      simulated seconds end as the run does.
    - Faster without one (or speed 0, as fast as possible): now - ``backfill``; once simulated
      time reaches now, the run goes on in real time.
    """
    now = now or datetime.now(timezone.utc)
    if start is not None:
        if start > now:
            raise ValueError(
                f"start {start.isoformat()} is in the future: the simulator never stamps a call "
                "ahead of the clock (a worker would refuse it as future_event_time)"
            )
        return start
    if 0 < speed <= 1:
        return now
    if speed > 1 and duration_s:
        return now - timedelta(seconds=duration_s * (speed - 1))
    return now - backfill


def run_simulation(
    simulator: DialerSimulator,
    publish: Callable,
    *,
    speed: float = 1.0,
    duration_s: float | None = None,
    max_events: int | None = None,
    max_rate: float | None = None,
    on_progress: Callable[[int], None] | None = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> int:
    """Publish events as simulated time passes; return how many were published.

    ``duration_s`` is real seconds. ``speed`` 0 means as fast as possible (replay).
    ``max_rate`` caps events per real second. Simulated time is held back at the wall
    clock (see the module's docstring): a run that catches up goes on in real time.
    """
    began = time.monotonic()
    sent = 0
    tick = 1.0 if speed == 0 else max(1.0, speed * 0.5)  # simulated seconds per loop
    while not should_stop():
        elapsed = time.monotonic() - began
        if duration_s is not None and elapsed >= duration_s:
            break
        horizon = simulator.now + tick if speed == 0 else max(simulator.now, elapsed * speed)
        # The simulated seconds that have already happened on the wall clock.
        happened = (datetime.now(timezone.utc) - simulator.start).total_seconds() - CLOCK_MARGIN_SECONDS
        caught_up = horizon >= happened
        for event in simulator.events_until(min(horizon, happened) + 1):
            publish(event)
            sent += 1
            if max_rate and sent > max_rate * (time.monotonic() - began):
                time.sleep(1.0 / max_rate)
            if max_events is not None and sent >= max_events:
                return sent
        if on_progress:
            on_progress(sent)
        if speed or caught_up:
            time.sleep(0.2)
    return sent


def parse_start(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment


def newest_published_time(
    bootstrap_servers: str, topic: str, records_per_partition: int = 50, timeout_s: float = 10.0
) -> datetime | None:
    """The newest event_time among the last records of each partition of ``topic`` (None: an
    empty or missing topic). A restarted demo starts its simulated clock there: one starting
    earlier would send calls the worker has moved past, which it dead-letters as late. Records
    that are not call events (a bad record, a foreign producer's) are skipped."""
    import msgspec
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers, enable_auto_commit=False, group_id=None)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not partitions:
            return None
        consumer.assign(partitions)
        ends = consumer.end_offsets(partitions)
        begins = consumer.beginning_offsets(partitions)
        wanted = {tp: ends[tp] for tp in partitions if ends[tp] > begins[tp]}
        for tp in wanted:
            consumer.seek(tp, max(begins[tp], ends[tp] - records_per_partition))
        newest: datetime | None = None
        deadline = time.monotonic() + timeout_s
        while wanted and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=500).items():
                for record in records:
                    for moment in _event_times(record.value, msgspec):
                        newest = moment if newest is None or moment > newest else newest
                if consumer.position(tp) >= wanted.get(tp, 0):
                    wanted.pop(tp, None)
        return newest
    finally:
        consumer.close()


def _event_times(value: bytes | None, msgspec) -> list[datetime]:
    """The event times in one record (an event, or an array of them); none for anything else."""
    try:
        decoded = msgspec.json.decode(value or b"")
    except msgspec.DecodeError:
        return []
    times = []
    for item in decoded if isinstance(decoded, list) else [decoded]:
        stamp = item.get("event_time") if isinstance(item, dict) else None
        if isinstance(stamp, str):
            try:
                moment = parse_start(stamp)
            except ValueError:
                continue
            if moment is not None:
                times.append(moment)
    return times
