"""Setting up: create the topics, migrate the warehouse, write the event schema file."""

from __future__ import annotations

import json
from pathlib import Path

import click

from callpulse.cli.common import SCHEMA_FILE, console, open_warehouse, settings_of


@click.command()
@click.pass_context
def topics(ctx: click.Context) -> None:
    """Create the Kafka topics (partitions and retention from the config)."""
    from streams.kafka_admin import ensure_topics

    created = ensure_topics(settings_of(ctx))
    console.print(f"created: {', '.join(created) or 'none (all exist)'}")


@click.command()
@click.pass_context
def migrate(ctx: click.Context) -> None:
    """Apply pending warehouse migrations and the raw-attempt retention (TTL)."""
    from warehouse.migrate import apply_retention
    from warehouse.migrate import migrate as apply

    settings = settings_of(ctx)
    client = open_warehouse(settings)
    applied = apply(client)
    console.print(f"applied: {', '.join(applied) or 'nothing (up to date)'}")
    days = settings.pipeline.raw_attempts_retention_days
    changed = apply_retention(client, days)
    console.print(f"raw call attempts kept {days} days" + (" (changed now)" if changed else ""))


@click.command()
@click.option("--check", is_flag=True, help="Fail if the committed schema file is out of date.")
@click.option("--output", type=click.Path(dir_okay=False), default=str(SCHEMA_FILE), show_default=True)
def schema(check: bool, output: str) -> None:
    """Write the JSON Schema of the event contract."""
    from core.schema import json_schema

    text = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    path = Path(output)
    if check:
        if not path.is_file() or path.read_text() != text:
            raise click.ClickException(f"{path} is out of date; run `callpulse schema`")
        console.print(f"{path} is up to date")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    console.print(f"wrote {path}")
