"""The ``callpulse`` command line: the main group, one module per command group."""

from __future__ import annotations

import logging

import click

from callpulse.cli.alerts import alerts
from callpulse.cli.compliance import compliance
from callpulse.cli.deadletters import deadletters
from callpulse.cli.ingest import ingest
from callpulse.cli.report import report
from callpulse.cli.run import bench, dashboard, up, worker
from callpulse.cli.setup import migrate, schema, topics
from callpulse.cli.simulate import simulate
from callpulse.cli.status import status
from callpulse.cli.stoplist import stoplist
from callpulse.cli.users import users
from core.config import ConfigError, load_settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    envvar="CALLPULSE_CONFIG",
    help="TOML file overriding the defaults (default: ./callpulse.toml if present).",
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where the embedded broker log, warehouse and HMAC key live (default ./var).",
)
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
@click.pass_context
def main(ctx: click.Context, config_file: str | None, data_dir: str | None, verbose: bool) -> None:
    """CallPulse: live contact rate, abandon rate and cost per order for predictive dialers."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("kafka", "aiokafka", "faust", "mode", "urllib3", "waitress", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # kafka-python logs "Metadata refresh: failed Cancelled" at ERROR whenever a short-lived
    # client closes; a real failure still surfaces as an exception.
    logging.getLogger("kafka.cluster").setLevel(logging.CRITICAL)
    try:
        settings = load_settings(config_file, pipeline__data_dir=data_dir)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    ctx.obj = {"settings": settings, "verbose": verbose, "config_file": config_file}


for command in (
    topics,
    migrate,
    alerts,
    compliance,
    report,
    users,
    ingest,
    deadletters,
    stoplist,
    status,
    schema,
    simulate,
    bench,
    worker,
    dashboard,
    up,
):
    main.add_command(command)
