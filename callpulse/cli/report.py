"""`callpulse report`: metrics by any allowed dimension, as a table, CSV, JSON or Excel."""

from __future__ import annotations

from pathlib import Path

import click

from callpulse.cli.common import ask_dashboard, console, settings_of, stdout_console
from core.config import Settings


@click.command()
@click.option(
    "--by",
    default="campaign",
    show_default=True,
    help="Comma-separated dimensions: campaign, slot, segment, team, agent, day, hour, weekday.",
)
@click.option(
    "--metrics",
    default=",".join(("contact_rate", "abandon_rate", "conversion_rate", "cpo", "orders")),
    show_default=True,
    help="Comma-separated: contact_rate, abandon_rate, cpo, conversion_rate, "
    "aht_seconds, dials, orders, contacts, abandoned, cost; from agent states: "
    "occupancy, calls_per_agent_hour, orders_per_agent_hour, "
    "aht_with_wrap_up_seconds, logged_in_seconds, paused_seconds, ...",
)
@click.option("--from", "start", default=None, help="First day, YYYY-MM-DD, local time (default: 6 days before --to).")
@click.option("--to", "end", default=None, help="Last day included, YYYY-MM-DD (default: today).")
@click.option("--campaign", "campaigns", multiple=True, help="Only these campaigns (repeat or comma-separate).")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "csv", "json", "xlsx"]),
    default="table",
    show_default=True,
    help="Rates are fractions (0-1) in csv, json and xlsx; hours read 08:00 in csv and xlsx, 8 in json.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True),
    default=None,
    help="Write to this file (default: stdout; required for xlsx).",
)
@click.pass_context
def report(ctx, by, metrics, start, end, campaigns, output_format, output) -> None:
    """Cross-tab report from the warehouse: the numbers the Reports page shows.

    Works while `callpulse up` runs (it asks the running dashboard, since only one
    process may open the embedded warehouse) and after it has stopped.
    """
    from datetime import datetime

    from analytics import reports
    from core.metrics import metric_label

    settings = settings_of(ctx)
    try:
        request = reports.ReportRequest.parse(
            by, metrics, start, end, campaigns, today=datetime.now(settings.zone).date()
        )
    except reports.ReportError as exc:
        raise click.UsageError(str(exc)) from None
    if output_format == "xlsx" and output in (None, "-"):
        raise click.UsageError("--format xlsx writes a binary workbook: give --output FILE.xlsx")
    frame = _report_frame(settings, request)
    if output_format in ("csv", "xlsx"):
        frame = reports.with_readable_hours(frame)
    if output_format == "table":
        from rich.table import Table

        start_day, end_day = request.start_day, request.end_day
        table = Table(title=f"by {', '.join(request.by)} · {start_day} to {end_day} ({settings.pipeline.timezone})")
        for column in request.columns:
            table.add_column(
                reports.REPORT_DIMENSIONS.get(column) or metric_label(column),
                justify="left" if column in request.by else "right",
            )
        for row in reports.table_rows(frame):
            table.add_row(*row)
        if output and output != "-":
            with open(output, "w") as handle:
                stdout_console(handle).print(table)
        else:
            stdout_console().print(table)
        return
    if output_format == "xlsx":
        Path(output).write_bytes(reports.to_xlsx(frame, title=f"CallPulse report {request.query_string()}"))
        console.print(f"wrote {len(frame)} rows to {output}")
        return
    text = reports.to_csv(frame) if output_format == "csv" else reports.to_json(frame) + "\n"
    if output and output != "-":
        Path(output).write_text(text)
        console.print(f"wrote {len(frame)} rows to {output}")
    else:
        click.echo(text, nl=False)


def _report_frame(settings: Settings, request):
    """The report from the warehouse, or from the running dashboard when another process holds chDB."""
    from analytics import reports
    from warehouse.client import WarehouseUnavailable, connect

    try:
        client = connect(settings.warehouse_url)
    except WarehouseUnavailable as exc:
        if not settings.embedded_warehouse:
            raise click.ClickException(str(exc)) from None
        return _report_from_dashboard(settings, request, exc)
    from warehouse.migrate import migrate as apply

    apply(client)
    return reports.run_report(client, request, settings.zone, settings.compliance.ftc_connect_seconds)


def _report_from_dashboard(settings: Settings, request, locked: Exception):
    from analytics import reports

    text = ask_dashboard(
        settings, f"/api/report?{request.query_string()}", locked, what="reports", least_role="manager"
    )
    return reports.frame_from_json(text, request)
