"""`callpulse simulate`: the dialer simulator, publishing or writing call events."""

from __future__ import annotations

import signal
import sys
import threading
import time
from datetime import datetime, timedelta, timezone

import click

from callpulse.cli.common import console, settings_of


@click.command()
@click.option("--rate", type=float, default=None, help="Cap on events published per real second.")
@click.option("--duration", type=float, default=None, help="Stop after this many real seconds.")
@click.option("--count", type=int, default=None, help="Stop after this many events.")
@click.option("--seed", type=int, default=7, show_default=True, help="Same seed, same calls.")
@click.option(
    "--speed",
    type=float,
    default=1.0,
    show_default=True,
    help="Simulated seconds per real second (600 replays a 10-hour day in a minute; 0 = as fast as "
    "possible). Simulated time never passes the clock: a faster run is a backfill, starting "
    "duration x (speed - 1) seconds ago with --duration (its simulated window ends as the run "
    "does), 10 hours ago without; once it reaches now it goes on in real time.",
)
@click.option(
    "--start",
    default=None,
    help="Simulated start, ISO 8601, not in the future (default: now, or the backfill's start; see --speed).",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Start just after the newest call already sent (the call-events topic) or landed (a warehouse "
    "server, or `up`'s query endpoint), when that is later than the start --speed would pick, so a "
    "restarted demo goes on instead of sending calls the worker has moved past (they would be "
    "dead-lettered as late). `callpulse up` uses it.",
)
@click.option("--agents-scale", type=float, default=1.0, show_default=True, help="Multiply every campaign's agents.")
@click.option(
    "--batch-events",
    type=int,
    default=1,
    show_default=True,
    help="Pack this many events of one campaign into one Kafka record.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True),
    default=None,
    help="Write JSON lines here instead of publishing to Kafka ('-' for stdout).",
)
@click.pass_context
def simulate(ctx, rate, duration, count, seed, speed, start, resume, agents_scale, batch_events, output) -> None:
    """Simulate a predictive dialer and publish its call attempts to Kafka."""
    from core.privacy import load_hmac_key
    from core.schema import encode_event
    from core.slots import SlotRules
    from producers.run_simulator import parse_start, run_simulation, simulation_start
    from producers.simulator import DialerSimulator

    settings = settings_of(ctx)
    try:
        begins = simulation_start(speed, duration, parse_start(start))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--start") from None
    if resume and not output:
        newest = _newest_call(settings)
        if newest is not None and newest > begins:
            begins = min(newest, datetime.now(timezone.utc))
            console.print(f"resuming after the newest call already sent or landed: {newest.isoformat()}")
    simulator = DialerSimulator(
        SlotRules(settings.slots, settings.zone),
        load_hmac_key(settings.data_dir),
        seed=seed,
        start=begins,
        agents_scale=agents_scale,
        floor=True,
        calling_hours=settings.calling_hours,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    if output:
        stream = sys.stdout.buffer if output == "-" else open(output, "wb")
        try:
            sent = run_simulation(
                simulator,
                lambda e: stream.write(encode_event(e) + b"\n"),
                speed=speed,
                duration_s=duration,
                max_events=count,
                max_rate=rate,
                should_stop=stop.is_set,
            )
        finally:
            if stream is not sys.stdout.buffer:
                stream.close()
        console.print(f"wrote {sent} events to {output}")
        return

    from producers.publisher import EventPublisher

    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events, batch_events=batch_events)
    console.print(
        f"simulating {len(simulator.campaigns)} campaigns from {simulator.start.isoformat()} "
        f"at {speed:g}x into {settings.topics.call_events} @ {settings.bootstrap_servers}"
    )
    last_report = [time.monotonic()]

    def progress(sent: int) -> None:
        if time.monotonic() - last_report[0] >= 10:
            last_report[0] = time.monotonic()
            console.print(f"published {sent} events (simulated {simulator.now / 3600:.2f} h)")

    try:
        sent = run_simulation(
            simulator,
            publisher.publish,
            speed=speed,
            duration_s=duration,
            max_events=count,
            max_rate=rate,
            on_progress=progress,
            should_stop=stop.is_set,
        )
    finally:
        publisher.close()
    console.print(f"published {sent} events in {publisher.sent_records} records")


def _newest_call(settings) -> datetime | None:
    """Where a resumed simulation starts: after the newest call in the call-events topic, or
    after the newest landed minute when the warehouse is a server (the worker's query endpoint
    in `callpulse up`): an embedded broker keeps no topic across restarts, and an embedded
    warehouse is the worker's alone, so this process never opens one."""
    from producers.run_simulator import newest_published_time
    from warehouse.client import connect
    from warehouse.queries.live import freshness

    found = []
    published = newest_published_time(settings.bootstrap_servers, settings.topics.call_events)
    if published is not None:
        found.append(published + timedelta(seconds=1))
    if settings.warehouse_url.startswith(("http://", "https://")):
        try:
            client = connect(settings.warehouse_url)
            try:
                newest_minute = freshness(client)["newest_minute"]
            finally:
                client.close()
        except Exception as exc:  # noqa: BLE001 - resuming is a convenience: say so and start as asked
            console.print(f"[yellow]could not ask the warehouse for its newest call ({exc}); not resuming from it")
        else:
            if newest_minute is not None:
                found.append(newest_minute + timedelta(minutes=1))
    return max(found) if found else None
