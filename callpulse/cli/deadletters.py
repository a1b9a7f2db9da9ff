"""`callpulse deadletters`: the records the pipeline refused, with their reasons."""

from __future__ import annotations

import click

from callpulse.cli.common import console, settings_of, stdout_console


@click.command()
@click.option("--reason", default=None, help="Only this reason code (e.g. invalid_json, unknown_status, late_event).")
@click.option("--limit", type=int, default=20, show_default=True, help="Newest N.")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def deadletters(ctx: click.Context, reason: str | None, limit: int, output_format: str) -> None:
    """Recent dead letters (records nobody could use) with their reasons, newest first.
    Times are on the configured zone's clock (pipeline.timezone); --format json keeps ISO 8601
    with the offset."""
    from collections import Counter

    import msgspec
    from rich.table import Table

    from core.deadletters import DeadLetter
    from core.localtime import local_time, zone_name
    from streams.kafka_admin import read_topic

    settings = settings_of(ctx)
    decoder = msgspec.json.Decoder(DeadLetter)
    letters = []
    for raw in read_topic(settings, settings.topics.dead_letters):
        try:
            letters.append(decoder.decode(raw))
        except msgspec.DecodeError as exc:
            console.print(f"[yellow]skipping a record that is not a dead letter: {exc}[/]")
    by_reason = Counter(letter.reason for letter in letters)
    shown = sorted(
        (letter for letter in letters if reason is None or letter.reason == reason),
        key=lambda letter: letter.rejected_at,
        reverse=True,
    )[:limit]
    if output_format == "json":
        click.echo(msgspec.json.encode(shown).decode())
        return
    console.print("by reason: " + (", ".join(f"{r} {n:,}" for r, n in by_reason.most_common()) or "none"))
    zone = settings.zone
    table = Table(
        title=f"dead letters in {settings.topics.dead_letters} ({len(shown)} of {len(letters)})"
        f" · times in {zone_name(zone)}"
    )
    for column in (f"rejected at ({zone_name(zone)})", "reason", "source", "detail", "original"):
        table.add_column(column, overflow="fold")
    for letter in shown:
        table.add_row(
            local_time(letter.rejected_at, zone),
            letter.reason,
            f"{letter.source_topic}[{letter.source_partition}]@{letter.source_offset}"
            + (f" #{letter.batch_index}" if letter.batch_index is not None else ""),
            letter.detail[:160],
            letter.original[:120],
        )
    stdout_console().print(table)
