"""`callpulse stoplist`: flag, remove and import customers who must not be called."""

from __future__ import annotations

from pathlib import Path

import click

from callpulse.cli.common import console, settings_of
from core.config import Settings


@click.group()
def stoplist() -> None:
    """The stop list (do-not-call): customers who must not be dialled.

    Numbers are hashed with the HMAC key before they leave this command; the worker
    checks every dial against the list and raises a critical alert on a violation.
    """


def _stop_list_publisher(settings: Settings):
    from kafka.errors import KafkaError

    from core.privacy import load_hmac_key
    from producers.stoplist import StopListPublisher

    try:
        return StopListPublisher(
            settings.bootstrap_servers,
            settings.topics.stop_list,
            load_hmac_key(settings.data_dir),
            settings.pipeline.phone_region,
        )
    except KafkaError as exc:
        raise click.ClickException(
            f"cannot reach Kafka at {settings.bootstrap_servers}: {exc}. Is `callpulse up` (or your broker) running?"
        ) from None


def _flagged_at(value: str | None):
    from datetime import datetime, timezone

    if value is None:
        return datetime.now(timezone.utc)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO timestamp, e.g. 2026-11-23T10:00:00+09:00", param_hint="--at"
        ) from None
    if moment.tzinfo is None:
        raise click.BadParameter("give a UTC offset, e.g. 2026-11-23T10:00:00+09:00", param_hint="--at")
    return moment


@stoplist.command("add")
@click.argument("phones", nargs=-1, required=True)
@click.option("--reason", default="opt_out", show_default=True, help="Why (opt_out, dnc_request, complaint...).")
@click.option("--at", "at", default=None, help="When the customer asked, ISO with offset (default: now).")
@click.pass_context
def stoplist_add(ctx: click.Context, phones: tuple[str, ...], reason: str, at: str | None) -> None:
    """Flag PHONES (numbers, or their 64-hex HMACs) so they are never dialled."""
    flagged_at = _flagged_at(at)
    publisher = _stop_list_publisher(settings_of(ctx))
    try:
        for phone in phones:
            try:
                publisher.flag(phone, reason=reason, flagged_at=flagged_at)
            except ValueError as exc:
                raise click.BadParameter(f"{exc} (argument {phones.index(phone) + 1})", param_hint="PHONES") from None
    finally:
        publisher.close()
    console.print(f"flagged {len(phones)} customer(s) from {flagged_at.isoformat()} ({reason})")


@stoplist.command("remove")
@click.argument("phones", nargs=-1, required=True)
@click.pass_context
def stoplist_remove(ctx: click.Context, phones: tuple[str, ...]) -> None:
    """Take PHONES off the stop list (the customer consented again)."""
    publisher = _stop_list_publisher(settings_of(ctx))
    try:
        for phone in phones:
            try:
                publisher.unflag(phone)
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="PHONES") from None
    finally:
        publisher.close()
    console.print(f"removed {len(phones)} customer(s) from the stop list")


@stoplist.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--reason", default="opt_out", show_default=True, help="Reason for rows without a reason column.")
@click.pass_context
def stoplist_import(ctx: click.Context, file: Path, reason: str) -> None:
    """Flag every number in FILE: a CSV with a phone_number (or phone) column, optional
    reason and flagged_at columns, or a plain list with one number per line (gzip accepted)."""
    from kafka.errors import KafkaError
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from producers.stoplist import StopListFileError, read_stop_list_file

    if not file.is_file():
        raise click.ClickException(f"{file}: no such file")
    settings = settings_of(ctx)
    publisher = _stop_list_publisher(settings)
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed:,} rows"),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task(f"importing {file.name}", total=None)
            summary = publisher.import_rows(
                read_stop_list_file(file),
                reason=reason,
                source=f"file:{file.name}",
                progress=lambda n: bar.advance(task, n),
            )
        publisher.close()
    except StopListFileError as exc:
        raise click.ClickException(str(exc)) from None
    except KafkaError as exc:
        raise click.ClickException(f"publishing to Kafka at {settings.bootstrap_servers} failed: {exc}") from None
    console.print(f"flagged {summary.flagged:,} customer(s) · rejected {len(summary.rejected):,} row(s)")
    for line, why in summary.rejected[:10]:
        console.print(f"  [yellow]{file.name}:{line}: {why}[/]")
    if not summary.flagged:
        raise click.ClickException(f"{file}: no usable numbers")


@stoplist.command("status")
@click.pass_context
def stoplist_status(ctx: click.Context) -> None:
    """How many customers are flagged now, by reason (read from the topic, as the worker does)."""
    from collections import Counter

    from streams.stoplist import StopListTable

    settings = settings_of(ctx)
    table = StopListTable(settings.bootstrap_servers, settings.topics.stop_list)
    try:
        table.catch_up()
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        table.close()
    by_reason = Counter(entry.reason for entry in table.entries.values())
    newest = max((entry.flagged_at for entry in table.entries.values()), default=None)
    click.echo(
        f"{len(table):,} customer(s) on the stop list in {settings.topics.stop_list}"
        + (f"; newest flag {newest.isoformat()}" if newest else "")
    )
    for reason, count in by_reason.most_common():
        click.echo(f"  {reason}: {count:,}")
