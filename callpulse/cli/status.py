"""`callpulse status`: the worker's health and how far it is behind."""

from __future__ import annotations

import json

import click

from callpulse.cli.common import console, settings_of, stdout_console


@click.command()
@click.option(
    "--health-url",
    default=None,
    help="The worker's health URL (default: http://127.0.0.1:<embedded.worker_health_port>/health).",
)
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def status(ctx: click.Context, health_url: str | None, output_format: str) -> None:
    """Is the worker up and keeping up? Its counters, dead letters by reason and lag per partition."""
    import httpx
    from rich.table import Table

    from core.schema import REJECTION_REASONS
    from streams.kafka_admin import partition_bounds

    settings = settings_of(ctx)
    url = health_url or f"http://127.0.0.1:{settings.embedded.worker_health_port}/health"
    try:
        health = httpx.get(url, timeout=5).raise_for_status().json()
    except httpx.HTTPError as exc:
        raise click.ClickException(
            f"no worker answered at {url} ({exc}). Is `callpulse up` or "
            "`callpulse worker` running? (--health-url for another host)"
        ) from None
    try:
        bounds = partition_bounds(settings)
    except Exception as exc:  # noqa: BLE001 - the worker's own figures are still worth showing
        console.print(f"[yellow]Kafka at {settings.bootstrap_servers} did not answer: {exc}[/]")
        bounds = {}
    landed = {int(p): offset for p, offset in health.get("landed_offsets", {}).items()}
    lag = {p: max(0, end - landed.get(p, earliest)) for p, (earliest, end) in sorted(bounds.items())}
    if output_format == "json":
        click.echo(json.dumps({**health, "lag": {str(p): n for p, n in lag.items()}}, indent=2))
        return
    out = stdout_console()
    out.print(
        f"worker {'ready' if health['ready'] else 'starting'} · counted {health['counted']:,} · "
        f"duplicates {health['duplicates']:,} · late {health['late_events']:,} · "
        f"last landed {health.get('last_landed_at') or 'never'}"
    )
    out.print(
        f"lag {sum(lag.values()):,} record(s) on {settings.topics.call_events}"
        + (" (" + ", ".join(f"p{p} {n:,}" for p, n in lag.items()) + ")" if lag else "")
    )
    out.print(
        f"alerts sent {health.get('alerts_sent', 0):,}, firing {health.get('alerts_firing', 0):,} · "
        f"stop list {health.get('stop_list_size', 0):,} customer(s), "
        f"{health.get('stop_list_violations', 0):,} violation(s)"
    )
    letters = health.get("dead_letters", {})
    table = Table(title=f"dead letters since the worker started ({sum(letters.values()):,})")
    for column in ("reason", "count", "meaning"):
        table.add_column(column)
    for reason, count in sorted(letters.items(), key=lambda item: -item[1]):
        table.add_row(reason, f"{count:,}", REJECTION_REASONS.get(reason, ""))
    out.print(table)
