"""Running the pipeline: `up` (everything on this machine), `worker`, `dashboard`, `bench`."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import click

from callpulse.cli.common import console, open_warehouse, settings_of
from core.config import ConfigError, Settings, load_settings
from warehouse.endpoint import SECRET_ENV


def _dash_app(settings: Settings):
    """The Dash app on its own warehouse client, with the schema migrated so pages can query."""
    from dashboards.app import create_app as create_dash
    from dashboards.data import DashboardContext
    from warehouse.migrate import migrate as apply

    client = open_warehouse(settings)
    apply(client)
    first = _first_admin(settings)
    if first:
        click.echo(first.message(), err=True)
    return create_dash(DashboardContext(settings, client, warehouse_url=settings.warehouse_url))


def _first_admin(settings: Settings):
    from dashboards.auth import ensure_first_admin

    try:
        return ensure_first_admin(settings)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot store the first dashboard login under {settings.data_dir}: {exc}") from None


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []})
@click.argument("bench_args", nargs=-1, type=click.UNPROCESSED)
def bench(bench_args: tuple[str, ...]) -> None:
    """CallPulse end to end against Quix Streams and a naive Faust agent, plus the warehouse
    queries (bench/pipeline.py; `callpulse bench --help` for its options, `--smoke` for a check)."""
    import runpy

    script = Path(__file__).resolve().parents[2] / "bench" / "pipeline.py"
    if not script.is_file():
        raise click.ClickException(f"{script} is not there: the benchmark runs from a checkout of the repository")
    sys.argv = ["callpulse bench", *bench_args]
    runpy.run_path(str(script), run_name="__main__")


@click.command()
@click.option(
    "--dashboard/--no-dashboard",
    default=None,
    help="Serve the dashboard from this process (default: yes with the embedded warehouse, "
    "which only one process may open).",
)
@click.option(
    "--health-port",
    type=int,
    default=None,
    help="Serve worker health JSON at /health on this port (default: embedded.worker_health_port).",
)
@click.option(
    "--serve-warehouse",
    "warehouse_port",
    type=int,
    default=None,
    metavar="PORT",
    help="Serve the embedded warehouse to a dashboard in another process on 127.0.0.1:PORT "
    f"(ClickHouse's HTTP interface; the password from ${SECRET_ENV}). `up` does this.",
)
@click.pass_context
def worker(ctx: click.Context, dashboard: bool | None, health_port: int | None, warehouse_port: int | None) -> None:
    """Run the Faust worker: call events -> minute buckets -> warehouse."""
    from streams.app import WorkerPipeline, create_app, run_worker

    settings = settings_of(ctx)
    client = open_warehouse(settings)
    pipeline = WorkerPipeline(settings, client)
    endpoint = _serve_warehouse(settings, client, warehouse_port) if warehouse_port is not None else None
    if dashboard if dashboard is not None else (settings.embedded_warehouse and endpoint is None):
        from dashboards.app import serve  # only here: Dash and its pages weigh on a worker without them

        host, port = settings.embedded.dashboard_host, settings.embedded.dashboard_port
        threading.Thread(target=serve, args=(_dash_app(settings), host, port), name="dashboard", daemon=True).start()
    app = create_app(settings, pipeline, web_port=health_port or settings.embedded.worker_health_port)
    console.print(f"worker: {settings.topics.call_events} @ {settings.bootstrap_servers} -> {settings.warehouse_url}")
    try:
        run_worker(app, loglevel="debug" if ctx.obj["verbose"] else "warning", stopping=pipeline.stopping)
    finally:
        if endpoint is not None:
            endpoint.close()


def _serve_warehouse(settings: Settings, client, port: int):
    """The query endpoint for the dashboard's process, on the schema migrated first (so that the
    dashboard, which migrates too, finds nothing left to do)."""
    import os

    from warehouse.endpoint import QueryEndpoint
    from warehouse.migrate import migrate as apply

    if not settings.embedded_warehouse:
        raise click.UsageError(
            "--serve-warehouse serves the embedded warehouse; with a ClickHouse server "
            "the dashboard connects to it itself"
        )
    secret = os.environ.get(SECRET_ENV, "")
    if len(secret) < 16:
        raise click.UsageError(f"--serve-warehouse needs a secret of 16 characters or more in ${SECRET_ENV}")
    apply(client)
    try:
        return QueryEndpoint(settings.warehouse_url.removeprefix("chdb://"), secret, port=port).start()
    except OSError as exc:
        raise click.ClickException(f"cannot serve the warehouse on 127.0.0.1:{port}: {exc}") from None


@click.command()
@click.option("--host", default=None, help="Bind address (default from config: 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default from config: 8050).")
@click.pass_context
def dashboard(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Serve the Dash dashboards (server mode; embedded mode serves them from the worker)."""
    from dashboards.app import serve

    settings = settings_of(ctx)
    serve(_dash_app(settings), host or settings.embedded.dashboard_host, port or settings.embedded.dashboard_port)


@click.command()
@click.option("--duration", type=float, default=None, help="Stop everything after this many seconds.")
@click.option("--no-simulator", is_flag=True, help="Do not start the dialer simulator.")
@click.option(
    "--speed",
    type=float,
    default=1.0,
    show_default=True,
    help="Simulated seconds per real second. Never ahead of the clock: a faster run is a backfill "
    "whose duration x speed simulated seconds end as the run does (with --duration), or that "
    "starts 10 hours back and goes on in real time once it reaches now (see `simulate`).",
)
@click.option("--seed", type=int, default=None, help="Simulator seed (default: random).")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where the warehouse, logs and HMAC key live (default ./var); the same as `callpulse --data-dir DIR up`.",
)
@click.pass_context
def up(
    ctx: click.Context, duration: float | None, no_simulator: bool, speed: float, seed: int | None, data_dir: str | None
) -> None:
    """Run the whole pipeline on this machine: broker, topics, worker, warehouse, dashboard, simulator."""
    from callpulse.supervisor import Supervisor

    if data_dir is not None:  # `make up ARGS="--data-dir /srv/callpulse"` puts it after `up`
        try:
            ctx.obj["settings"] = load_settings(ctx.obj["config_file"], pipeline__data_dir=data_dir)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
    first = _first_admin(settings_of(ctx))
    supervisor = Supervisor(
        settings_of(ctx), console=console, config_file=ctx.obj["config_file"], notes=(first.message(),) if first else ()
    )
    sys.exit(supervisor.run(duration=duration, simulator=not no_simulator, speed=speed, seed=seed))
