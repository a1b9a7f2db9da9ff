"""`callpulse ingest`: VICIdial call logs (a file, or live from its database) and event files."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path

import click

from callpulse.cli.common import console, settings_of
from core.config import Settings


@click.group()
def ingest() -> None:
    """Replay files into Kafka: VICIdial exports or CallPulse JSON-lines events."""


@ingest.command("vicidial")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option(
    "--mysql-dsn",
    default=None,
    envvar="CALLPULSE_VICIDIAL_DSN",
    help="Poll the live vicidial_log table instead: mysql://user:pass@host:3306/asterisk.",
)
@click.option("--poll-seconds", type=float, default=2.0, show_default=True, help="Live mode: time between polls.")
@click.option(
    "--overlap-minutes",
    type=float,
    default=30.0,
    show_default=True,
    help="Live mode: re-read this far behind the newest call_date, for rows finished late.",
)
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Live mode: checkpoint file (default: <data dir>/vicidial/<host>-<db>.json).",
)
@click.option("--duration", type=float, default=None, help="Live mode: stop after this many seconds.")
@click.option(
    "--worker-health-url",
    default=None,
    help="Live mode: the worker's health URL, where rows are seen landed (default: "
    "http://127.0.0.1:<embedded.worker_health_port>/health; 'none' trusts Kafka's acknowledgement).",
)
@click.option(
    "--batch-events",
    type=int,
    default=100,
    show_default=True,
    help="Pack this many events of one campaign into one Kafka record.",
)
@click.option(
    "--floor-seconds",
    type=float,
    default=5.0,
    show_default=True,
    help="Live mode: read the agents (vicidial_live_agents) and each campaign's calls waiting and "
    "dial level this often; 0 reads only vicidial_log.",
)
@click.pass_context
def ingest_vicidial(
    ctx,
    file: Path | None,
    mysql_dsn: str | None,
    poll_seconds: float,
    overlap_minutes: float,
    checkpoint: Path | None,
    duration: float | None,
    worker_health_url: str | None,
    batch_events: int,
    floor_seconds: float,
) -> None:
    """Publish a vicidial_log export (CSV or TSV with a header row, gzip accepted), or
    with --mysql-dsn poll the live table. A vicidial_agent_log export (pause_sec, wait_sec,
    talk_sec, dispo_sec) becomes the agents' time in each state.

    Re-ingesting never double-counts: uniqueid is the event id.
    """
    from core.privacy import load_hmac_key

    settings = settings_of(ctx)
    key = load_hmac_key(settings.data_dir)
    if mysql_dsn:
        if file:
            raise click.UsageError("give a FILE or --mysql-dsn, not both")
        _poll_vicidial(
            settings,
            key,
            mysql_dsn,
            poll_seconds,
            overlap_minutes,
            checkpoint,
            duration,
            batch_events,
            worker_health_url or f"http://127.0.0.1:{settings.embedded.worker_health_port}/health",
            floor_seconds,
        )
        return
    if file is None:
        raise click.UsageError("give the export FILE to read, or --mysql-dsn to poll the live table")
    from producers.ingest import ingest_vicidial_agent_log, ingest_vicidial_file
    from producers.vicidial import export_table

    if file.is_file() and export_table(file) == "vicidial_agent_log":
        _run_ingest(
            file,
            settings,
            batch_events,
            lambda publisher, progress: ingest_vicidial_agent_log(file, settings, publisher, progress),
        )
        return
    _run_ingest(
        file,
        settings,
        batch_events,
        lambda publisher, progress: ingest_vicidial_file(file, settings, key, publisher, progress),
    )


def _poll_vicidial(
    settings,
    key,
    dsn,
    poll_seconds,
    overlap_minutes,
    checkpoint,
    duration,
    batch_events,
    health_url: str,
    floor_seconds: float = 0.0,
) -> None:
    from datetime import timedelta

    from producers.publisher import EventPublisher
    from producers.vicidial_live import (
        FloorPoller,
        VicidialPoller,
        connect_mysql,
        default_checkpoint,
        worker_landing_status,
    )
    from streams.kafka_admin import admin_client, topic_id

    checkpoint = checkpoint or default_checkpoint(settings.data_dir, dsn)
    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events, batch_events=batch_events)
    # Until the worker is seen to land a row, a recreated topic (a restarted embedded broker) means
    # the row is read from the dialer again.
    tracking = health_url.lower() != "none"
    admin = admin_client(settings.bootstrap_servers) if tracking else None
    poller = VicidialPoller(
        settings,
        key,
        publisher,
        lambda: connect_mysql(dsn),
        checkpoint,
        overlap=timedelta(minutes=overlap_minutes),
        current_topic_id=(lambda: topic_id(settings, admin=admin)) if tracking else None,
        landing_status=worker_landing_status(health_url) if tracking else None,
    )
    # The floor's events are snapshots, sent again on change: no landing to track.
    floor_publisher = (
        EventPublisher(settings.bootstrap_servers, settings.topics.call_events, batch_events=batch_events)
        if floor_seconds > 0
        else None
    )
    floor = FloorPoller(settings, floor_publisher, lambda: connect_mysql(dsn)) if floor_publisher else None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    deadline = time.monotonic() + duration if duration else None
    console.print(
        f"polling vicidial_log every {poll_seconds:g} s; checkpoint {checkpoint}"
        + (f"; the floor every {floor_seconds:g} s" if floor else "")
    )

    def report_poll(published: int) -> None:
        if published:
            console.print(f"published {published} new row(s) ({poller.summary.published:,} so far)")

    try:
        poller.run(
            poll_seconds,
            lambda: stop.is_set() or (deadline is not None and time.monotonic() > deadline),
            on_poll=report_poll,
            floor=floor,
            floor_seconds=floor_seconds,
        )
    finally:
        publisher.close()
        if floor_publisher is not None:
            floor_publisher.close()
        if admin is not None:
            admin.close()
    summary = poller.summary
    console.print(
        f"stopped: read {summary.read:,} rows · published {summary.published:,} · "
        f"rejected {sum(summary.rejected.values()):,}"
    )


@ingest.command("events")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--rate", type=float, default=None, help="Replay at this many events per second (default: as fast as possible)."
)
@click.option(
    "--batch-events",
    type=int,
    default=1,
    show_default=True,
    help="Pack this many events of one campaign into one Kafka record.",
)
@click.pass_context
def ingest_events(ctx, file: Path, rate: float | None, batch_events: int) -> None:
    """Replay a JSON-lines file of CallPulse events (FILE.jsonl or FILE.jsonl.gz)."""
    from producers.ingest import ingest_event_file

    settings = settings_of(ctx)
    _run_ingest(
        file,
        settings,
        batch_events,
        lambda publisher, progress: ingest_event_file(file, settings, publisher, rate, progress),
    )


def _run_ingest(file: Path, settings: Settings, batch_events: int, run) -> None:
    """Progress bar, the summary, and a clear error (never a traceback) for a bad file."""
    from kafka.errors import KafkaError
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from producers.publisher import EventPublisher
    from producers.vicidial import FileFormatError

    if not file.is_file():
        raise click.ClickException(f"{file}: no such file")
    try:
        publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events, batch_events=batch_events)
    except KafkaError as exc:
        raise click.ClickException(
            f"cannot reach Kafka at {settings.bootstrap_servers}: {exc}. Is `callpulse up` (or your broker) running?"
        ) from None
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed:,} rows"),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task(f"ingesting {file.name}", total=None)
            summary = run(publisher, lambda rows: bar.update(task, completed=rows))
    except FileFormatError as exc:
        raise click.ClickException(f"{file}: {exc}") from None
    except UnicodeError as exc:
        raise click.ClickException(f"{file}: not a text file ({exc})") from None
    except (OSError, EOFError) as exc:
        raise click.ClickException(f"{file}: cannot be read ({exc})") from None
    except KafkaError as exc:
        raise click.ClickException(f"publishing to Kafka at {settings.bootstrap_servers} failed: {exc}") from None
    finally:
        try:
            publisher.producer.close(timeout=10)
        except Exception:  # noqa: BLE001 - closing after a failure must not hide it
            pass
    rejected = sum(summary.rejected.values())
    console.print(
        f"read {summary.read:,} rows · published {summary.published:,} · rejected {rejected:,} · "
        f"skipped duplicates {summary.duplicates:,}"
    )
    for reason, count in summary.rejected.most_common():
        console.print(
            f"  rejected {count:,} × {reason}"
            + (
                ": " + ", ".join(f"{s} ({n})" for s, n in summary.unknown_statuses.most_common())
                if reason == "unknown_status"
                else ""
            )
        )
    for example in summary.examples:
        console.print(f"  [yellow]{example}[/]")
    if rejected:
        console.print(f"rejected rows went to the dead-letters topic {settings.topics.dead_letters}")
    if summary.published == 0 and summary.duplicates == 0:
        raise click.ClickException(f"{file}: no usable rows" + (" (see the reasons above)" if rejected else ""))
