"""`callpulse alerts`: the alerts from the warehouse, the same the dashboard shows."""

from __future__ import annotations

import click

from callpulse.cli.common import ask_dashboard, settings_of, stdout_console
from core.config import Settings


@click.group()
def alerts() -> None:
    """Alerts raised by the worker (read from the warehouse's alerts table)."""


@alerts.command("list")
@click.option("--active", is_flag=True, help="Only episodes still firing.")
@click.option("--all-transitions", is_flag=True, help="Every transition, not just each episode's newest.")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def alerts_list(ctx: click.Context, active: bool, all_transitions: bool, output_format: str) -> None:
    """List alerts, newest first (--active: most severe first, as the dashboard lists them).
    Times are on the configured zone's clock (pipeline.timezone); --format json keeps ISO 8601
    with the offset.

    Reads the warehouse's alerts table, which keeps every transition across restarts. While
    `callpulse up` runs it asks the running dashboard (only one process may open the
    embedded warehouse), with a supervisor's login or higher from CALLPULSE_API_TOKEN or
    CALLPULSE_API_USER/CALLPULSE_API_PASSWORD."""
    import msgspec
    from rich.table import Table

    from core.localtime import local_time, zone_name

    view = "active" if active else "transitions" if all_transitions else "episodes"
    settings = settings_of(ctx)
    shown = _listed_alerts(settings, view)
    if output_format == "json":  # ISO 8601 with the offset, for machines
        click.echo(msgspec.json.encode(shown).decode())
        return
    zone = settings.zone
    table = Table(title=f"{'active ' if active else ''}alerts ({len(shown)}) · times in {zone_name(zone)}")
    for column in (
        f"since ({zone_name(zone)}, event time)",
        "campaign",
        "rule",
        "state",
        "severity",
        "value",
        "threshold",
        "detail",
    ):
        table.add_column(column)
    for alert in shown:
        value = "—" if alert.value is None else f"{alert.value:.4g}"
        colour = "green" if alert.state == "resolved" else "red" if alert.severity == "critical" else "yellow"
        table.add_row(
            local_time(alert.first_seen, zone),
            alert.campaign,
            alert.rule.value,
            f"[{colour}]{alert.state}[/]",
            alert.severity,
            value,
            f"{alert.threshold:.4g}",
            alert.detail,
        )
    stdout_console().print(table)


def _listed_alerts(settings: Settings, view: str) -> list:
    """The alerts of ``view`` (warehouse.queries.listed_alerts) from the warehouse, or from the
    running dashboard when another process holds chDB."""
    import msgspec

    from core.alerts import Alert
    from warehouse.client import WarehouseUnavailable, connect

    try:
        client = connect(settings.warehouse_url)
    except WarehouseUnavailable as exc:
        if not settings.embedded_warehouse:
            raise click.ClickException(str(exc)) from None
        text = ask_dashboard(settings, f"/api/alerts?view={view}", exc, what="alerts", least_role="supervisor")
        return msgspec.json.decode(text, type=list[Alert])
    from warehouse.migrate import migrate as apply
    from warehouse.queries.alerts import listed_alerts

    apply(client)
    return listed_alerts(client, view)
