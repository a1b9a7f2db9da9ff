"""The ``callpulse`` command line."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from pathlib import Path

import click
from rich.console import Console

from core.config import ConfigError, Settings, load_settings

console = Console(stderr=True)
SCHEMA_FILE = Path("schemas") / "call-event.v1.schema.json"


def _stdout_console(file=None) -> Console:
    """Tables for stdout. Piped or written to a file nothing limits the width, so never
    fold a campaign name or a reason to fit 80 columns."""
    wide = file is not None or not sys.stdout.isatty()
    return Console(file=file, width=1000 if wide else None)


def _settings(ctx: click.Context) -> Settings:
    return ctx.obj["settings"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_file", type=click.Path(dir_okay=False), envvar="CALLPULSE_CONFIG",
              help="TOML file overriding the defaults (default: ./callpulse.toml if present).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Where the embedded broker log, warehouse and HMAC key live (default ./var).")
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
@click.pass_context
def main(ctx: click.Context, config_file: str | None, data_dir: str | None, verbose: bool) -> None:
    """CallPulse: live contact rate, abandon rate and cost per order for predictive dialers."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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


@main.command()
@click.pass_context
def topics(ctx: click.Context) -> None:
    """Create the Kafka topics (partitions and retention from the config)."""
    from streams.kafka_admin import ensure_topics

    created = ensure_topics(_settings(ctx))
    console.print(f"created: {', '.join(created) or 'none (all exist)'}")


@main.command()
@click.pass_context
def migrate(ctx: click.Context) -> None:
    """Apply pending warehouse migrations and the raw-attempt retention (TTL)."""
    from warehouse.migrate import apply_retention, migrate as apply

    settings = _settings(ctx)
    client = _warehouse(settings)
    applied = apply(client)
    console.print(f"applied: {', '.join(applied) or 'nothing (up to date)'}")
    days = settings.pipeline.raw_attempts_retention_days
    changed = apply_retention(client, days)
    console.print(f"raw call attempts kept {days} days" + (" (changed now)" if changed else ""))


@main.group()
def alerts() -> None:
    """Alerts raised by the worker (read from the warehouse's alerts table)."""


@alerts.command("list")
@click.option("--active", is_flag=True, help="Only episodes still firing.")
@click.option("--all-transitions", is_flag=True, help="Every transition, not just each episode's newest.")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def alerts_list(ctx: click.Context, active: bool, all_transitions: bool, output_format: str) -> None:
    """List alerts, newest first (--active: most severe first, as the dashboard lists them).

    Reads the warehouse's alerts table, which keeps every transition across restarts. While
    `callpulse up` runs it asks the running dashboard (only one process may open the
    embedded warehouse), with a supervisor's login or higher from CALLPULSE_API_TOKEN or
    CALLPULSE_API_USER/CALLPULSE_API_PASSWORD."""
    import msgspec
    from rich.table import Table

    view = "active" if active else "transitions" if all_transitions else "episodes"
    shown = _listed_alerts(_settings(ctx), view)
    if output_format == "json":
        click.echo(msgspec.json.encode(shown).decode())
        return
    table = Table(title=f"{'active ' if active else ''}alerts ({len(shown)})")
    for column in ("since (event time)", "campaign", "rule", "state", "severity", "value", "threshold", "detail"):
        table.add_column(column)
    for alert in shown:
        value = "—" if alert.value is None else f"{alert.value:.4g}"
        colour = "green" if alert.state == "resolved" else "red" if alert.severity == "critical" else "yellow"
        table.add_row(alert.first_seen.strftime("%Y-%m-%d %H:%M:%S"), alert.campaign, alert.rule.value,
                      f"[{colour}]{alert.state}[/]", alert.severity, value, f"{alert.threshold:.4g}", alert.detail)
    _stdout_console().print(table)


@main.command()
@click.option("--by", default="campaign", show_default=True,
              help="Comma-separated dimensions: campaign, slot, segment, team, day, hour, weekday.")
@click.option("--metrics", default=",".join(("contact_rate", "abandon_rate", "conversion_rate", "cpo", "orders")),
              show_default=True, help="Comma-separated: contact_rate, abandon_rate, cpo, conversion_rate, "
                                      "aht_seconds, dials, orders, contacts, abandoned, cost, ...")
@click.option("--from", "start", default=None, help="First day, YYYY-MM-DD, local time (default: 6 days before --to).")
@click.option("--to", "end", default=None, help="Last day included, YYYY-MM-DD (default: today).")
@click.option("--campaign", "campaigns", multiple=True, help="Only these campaigns (repeat or comma-separate).")
@click.option("--format", "output_format", type=click.Choice(["table", "csv", "json", "xlsx"]), default="table",
              show_default=True, help="Rates are fractions (0-1) in csv, json and xlsx.")
@click.option("--output", type=click.Path(dir_okay=False, allow_dash=True), default=None,
              help="Write to this file (default: stdout; required for xlsx).")
@click.pass_context
def report(ctx, by, metrics, start, end, campaigns, output_format, output) -> None:
    """Cross-tab report from the warehouse: the numbers the Reports page shows.

    Works while `callpulse up` runs (it asks the running dashboard, since only one
    process may open the embedded warehouse) and after it has stopped.
    """
    from datetime import datetime

    from analytics import reports
    from core.metrics import metric_label

    settings = _settings(ctx)
    try:
        request = reports.ReportRequest.parse(by, metrics, start, end, campaigns,
                                              today=datetime.now(settings.zone).date())
    except reports.ReportError as exc:
        raise click.UsageError(str(exc)) from None
    if output_format == "xlsx" and output in (None, "-"):
        raise click.UsageError("--format xlsx writes a binary workbook: give --output FILE.xlsx")
    frame = _report_frame(settings, request)
    if output_format == "table":
        from rich.table import Table

        start_day, end_day = request.start_day, request.end_day
        table = Table(title=f"by {', '.join(request.by)} · {start_day} to {end_day} ({settings.pipeline.timezone})")
        for column in request.columns:
            table.add_column(reports.REPORT_DIMENSIONS.get(column) or metric_label(column),
                             justify="left" if column in request.by else "right")
        for row in reports.table_rows(frame):
            table.add_row(*row)
        if output and output != "-":
            with open(output, "w") as handle:
                _stdout_console(handle).print(table)
        else:
            _stdout_console().print(table)
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
        text = _ask_dashboard(settings, f"/api/alerts?view={view}", exc, what="alerts", least_role="supervisor")
        return msgspec.json.decode(text, type=list[Alert])
    from warehouse.migrate import migrate as apply
    from warehouse.queries.alerts import listed_alerts

    apply(client)
    return listed_alerts(client, view)


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
    return reports.run_report(client, request, settings.zone)


def _report_from_dashboard(settings: Settings, request, locked: Exception):
    from analytics import reports
    text = _ask_dashboard(settings, f"/api/report?{request.query_string()}", locked, what="reports",
                          least_role="manager")
    return reports.frame_from_json(text, request)


def _ask_dashboard(settings: Settings, path: str, locked: Exception, *, what: str, least_role: str) -> str:
    """GET ``path`` from the running dashboard with the login from the environment (or asked
    for on a terminal), as ``least_role`` or a higher role; its body, or a ClickException
    that says what to set."""
    import httpx

    roles = {"supervisor": "supervisor, manager or admin", "manager": "manager or admin"}.get(least_role, least_role)
    host = settings.embedded.dashboard_host
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    url = f"http://{host}:{settings.embedded.dashboard_port}{path}"
    login = _dashboard_login()
    try:
        response = httpx.get(url, timeout=60, **login)
        if response.status_code == 401 and not login and sys.stdin.isatty():
            user = click.prompt(f"The running dashboard asks for a login ({roles}). User", err=True)
            password = click.prompt("Password", hide_input=True, err=True)
            response = httpx.get(url, timeout=60, auth=(user, password))
    except httpx.HTTPError as exc:
        raise click.ClickException(f"{locked}\nThe running dashboard did not answer either ({url}: {exc}).") from None
    if response.status_code == 401:
        said = "refused the login it was given" if login else f"answers {what} only with a login"
        raise click.ClickException(
            f"the running dashboard {said}: set CALLPULSE_API_TOKEN to a token "
            f"(`callpulse users new-token NAME --role {least_role}`), or CALLPULSE_API_USER and "
            "CALLPULSE_API_PASSWORD")
    if response.status_code != 200:
        raise click.ClickException(f"the running dashboard refused the request for {what} "
                                   f"({response.status_code}): {response.text[:300]}")
    return response.text


def _dashboard_login() -> dict:
    """httpx arguments carrying the login for the running dashboard, from the environment."""
    import os

    if os.environ.get("CALLPULSE_API_TOKEN"):
        return {"headers": {"Authorization": f"Bearer {os.environ['CALLPULSE_API_TOKEN']}"}}
    if os.environ.get("CALLPULSE_API_USER"):
        return {"auth": (os.environ["CALLPULSE_API_USER"], os.environ.get("CALLPULSE_API_PASSWORD", ""))}
    return {}


@main.group()
def users() -> None:
    """Dashboard logins: hash a password, make a token. See "Dashboard access" in the README."""


def _check_login_name(name: str) -> None:
    if not all(c.isalnum() or c in "._@-" for c in name):
        raise click.UsageError(f"{name!r}: a login name may hold only letters, digits and . _ @ -")


@users.command("hash-password")
@click.argument("name", required=False)
@click.option("--role", type=click.Choice(["supervisor", "manager", "admin"]), default="supervisor",
              show_default=True, help="The role to write into the printed config table.")
def users_hash_password(name: str | None, role: str) -> None:
    """Ask for a password twice (hidden) and print its hash for the config; the password is never stored."""
    from dashboards.auth import hash_password

    _check_login_name(name or "user")
    password = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    if len(password) < 8:
        raise click.ClickException("use at least 8 characters")
    hashed = hash_password(password)
    if name:
        click.echo(f'[dashboard.users.{name}]\nrole = "{role}"\npassword_hash = "{hashed}"')
        click.echo(f"# or, in CALLPULSE_DASHBOARD_USERS (single-quoted: the hash holds $): {name}:{role}:{hashed}")
    else:
        click.echo(f'password_hash = "{hashed}"')


@users.command("new-token")
@click.argument("name")
@click.option("--role", type=click.Choice(["supervisor", "manager", "admin"]), required=True,
              help="What the token may open.")
def users_new_token(name: str, role: str) -> None:
    """Make a bearer token for a wallboard TV or a script: the token once, then its hash for the config."""
    from dashboards.auth import hash_token, new_token

    _check_login_name(name)
    token = new_token()
    console.print("The token, shown only now (send it as `Authorization: Bearer <token>`):")
    click.echo(token)
    console.print("Add this to the config (or the entry to CALLPULSE_DASHBOARD_TOKENS); it holds only the hash:")
    click.echo(f'[dashboard.tokens.{name}]\nrole = "{role}"\ntoken_sha256 = "{hash_token(token)}"')
    click.echo(f"# CALLPULSE_DASHBOARD_TOKENS entry: {name}:{role}:{hash_token(token)}")


@main.group()
def ingest() -> None:
    """Replay files into Kafka: VICIdial exports or CallPulse JSON-lines events."""


@ingest.command("vicidial")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option("--mysql-dsn", default=None, envvar="CALLPULSE_VICIDIAL_DSN",
              help="Poll the live vicidial_log table instead: mysql://user:pass@host:3306/asterisk.")
@click.option("--poll-seconds", type=float, default=2.0, show_default=True, help="Live mode: time between polls.")
@click.option("--overlap-minutes", type=float, default=30.0, show_default=True,
              help="Live mode: re-read this far behind the newest call_date, for rows finished late.")
@click.option("--checkpoint", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Live mode: checkpoint file (default: <data dir>/vicidial/<host>-<db>.json).")
@click.option("--duration", type=float, default=None, help="Live mode: stop after this many seconds.")
@click.option("--worker-health-url", default=None,
              help="Live mode: the worker's health URL, where rows are seen landed (default: "
                   "http://127.0.0.1:<embedded.worker_health_port>/health; 'none' trusts Kafka's acknowledgement).")
@click.option("--batch-events", type=int, default=100, show_default=True,
              help="Pack this many events of one campaign into one Kafka record.")
@click.pass_context
def ingest_vicidial(ctx, file: Path | None, mysql_dsn: str | None, poll_seconds: float, overlap_minutes: float,
                    checkpoint: Path | None, duration: float | None, worker_health_url: str | None,
                    batch_events: int) -> None:
    """Publish a vicidial_log export (CSV or TSV with a header row, gzip accepted), or
    with --mysql-dsn poll the live table.

    Re-ingesting never double-counts: uniqueid is the event id.
    """
    from core.privacy import load_hmac_key

    settings = _settings(ctx)
    key = load_hmac_key(settings.data_dir)
    if mysql_dsn:
        if file:
            raise click.UsageError("give a FILE or --mysql-dsn, not both")
        _poll_vicidial(settings, key, mysql_dsn, poll_seconds, overlap_minutes, checkpoint, duration, batch_events,
                       worker_health_url or f"http://127.0.0.1:{settings.embedded.worker_health_port}/health")
        return
    if file is None:
        raise click.UsageError("give the export FILE to read, or --mysql-dsn to poll the live table")
    from producers.ingest import ingest_vicidial_file

    _run_ingest(file, settings, batch_events,
                lambda publisher, progress: ingest_vicidial_file(file, settings, key, publisher, progress))


def _poll_vicidial(settings, key, dsn, poll_seconds, overlap_minutes, checkpoint, duration, batch_events,
                   health_url: str) -> None:
    from datetime import timedelta

    from streams.kafka_admin import admin_client, topic_id
    from producers.publisher import EventPublisher
    from producers.vicidial_live import VicidialPoller, connect_mysql, default_checkpoint, worker_landing_status

    checkpoint = checkpoint or default_checkpoint(settings.data_dir, dsn)
    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events, batch_events=batch_events)
    # Until the worker is seen to land a row, a recreated topic (a restarted embedded broker) means
    # the row is read from the dialer again.
    tracking = health_url.lower() != "none"
    admin = admin_client(settings.bootstrap_servers) if tracking else None
    poller = VicidialPoller(settings, key, publisher, lambda: connect_mysql(dsn), checkpoint,
                            overlap=timedelta(minutes=overlap_minutes),
                            current_topic_id=(lambda: topic_id(settings, admin=admin)) if tracking else None,
                            landing_status=worker_landing_status(health_url) if tracking else None)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    deadline = time.monotonic() + duration if duration else None
    console.print(f"polling vicidial_log every {poll_seconds:g} s; checkpoint {checkpoint}")
    try:
        poller.run(poll_seconds, lambda: stop.is_set() or (deadline is not None and time.monotonic() > deadline),
                   on_poll=lambda n: n and console.print(f"published {n} new row(s) "
                                                         f"({poller.summary.published:,} so far)"))
    finally:
        publisher.close()
        if admin is not None:
            admin.close()
    summary = poller.summary
    console.print(f"stopped: read {summary.read:,} rows · published {summary.published:,} · "
                  f"rejected {sum(summary.rejected.values()):,}")


@ingest.command("events")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--rate", type=float, default=None, help="Replay at this many events per second (default: as fast as possible).")
@click.option("--batch-events", type=int, default=1, show_default=True,
              help="Pack this many events of one campaign into one Kafka record.")
@click.pass_context
def ingest_events(ctx, file: Path, rate: float | None, batch_events: int) -> None:
    """Replay a JSON-lines file of CallPulse events (FILE.jsonl or FILE.jsonl.gz)."""
    from producers.ingest import ingest_event_file

    settings = _settings(ctx)
    _run_ingest(file, settings, batch_events,
                lambda publisher, progress: ingest_event_file(file, settings, publisher, rate, progress))


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
        raise click.ClickException(f"cannot reach Kafka at {settings.bootstrap_servers}: {exc}. "
                                   "Is `callpulse up` (or your broker) running?") from None
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed:,} rows"),
               TimeElapsedColumn())
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
    console.print(f"read {summary.read:,} rows · published {summary.published:,} · rejected {rejected:,} · "
                  f"skipped duplicates {summary.duplicates:,}")
    for reason, count in summary.rejected.most_common():
        console.print(f"  rejected {count:,} × {reason}" + (
            ": " + ", ".join(f"{s} ({n})" for s, n in summary.unknown_statuses.most_common())
            if reason == "unknown_status" else ""))
    for example in summary.examples:
        console.print(f"  [yellow]{example}[/]")
    if rejected:
        console.print(f"rejected rows went to the dead-letters topic {settings.topics.dead_letters}")
    if summary.published == 0 and summary.duplicates == 0:
        raise click.ClickException(f"{file}: no usable rows" + (" (see the reasons above)" if rejected else ""))


@main.command()
@click.option("--reason", default=None, help="Only this reason code (e.g. invalid_json, unknown_status, late_event).")
@click.option("--limit", type=int, default=20, show_default=True, help="Newest N.")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def deadletters(ctx: click.Context, reason: str | None, limit: int, output_format: str) -> None:
    """Recent dead letters (records nobody could use) with their reasons, newest first."""
    from collections import Counter

    import msgspec
    from rich.table import Table

    from streams.kafka_admin import read_topic
    from core.deadletters import DeadLetter

    settings = _settings(ctx)
    decoder = msgspec.json.Decoder(DeadLetter)
    letters = []
    for raw in read_topic(settings, settings.topics.dead_letters):
        try:
            letters.append(decoder.decode(raw))
        except msgspec.DecodeError as exc:
            console.print(f"[yellow]skipping a record that is not a dead letter: {exc}[/]")
    by_reason = Counter(letter.reason for letter in letters)
    shown = sorted((l for l in letters if reason is None or l.reason == reason),
                   key=lambda l: l.rejected_at, reverse=True)[:limit]
    if output_format == "json":
        click.echo(msgspec.json.encode(shown).decode())
        return
    console.print("by reason: " + (", ".join(f"{r} {n:,}" for r, n in by_reason.most_common()) or "none"))
    table = Table(title=f"dead letters in {settings.topics.dead_letters} ({len(shown)} of {len(letters)})")
    for column in ("rejected at (UTC)", "reason", "source", "detail", "original"):
        table.add_column(column, overflow="fold")
    for letter in shown:
        table.add_row(f"{letter.rejected_at:%Y-%m-%d %H:%M:%S}", letter.reason,
                      f"{letter.source_topic}[{letter.source_partition}]@{letter.source_offset}"
                      + (f" #{letter.batch_index}" if letter.batch_index is not None else ""),
                      letter.detail[:160], letter.original[:120])
    _stdout_console().print(table)


@main.group()
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
        return StopListPublisher(settings.bootstrap_servers, settings.topics.stop_list,
                                 load_hmac_key(settings.data_dir), settings.pipeline.phone_region)
    except KafkaError as exc:
        raise click.ClickException(f"cannot reach Kafka at {settings.bootstrap_servers}: {exc}. "
                                   "Is `callpulse up` (or your broker) running?") from None


def _flagged_at(value: str | None):
    from datetime import datetime, timezone

    if value is None:
        return datetime.now(timezone.utc)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO timestamp, e.g. 2026-11-23T10:00:00+09:00",
                                 param_hint="--at") from None
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
    publisher = _stop_list_publisher(_settings(ctx))
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
    publisher = _stop_list_publisher(_settings(ctx))
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
    settings = _settings(ctx)
    publisher = _stop_list_publisher(settings)
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TextColumn("{task.completed:,} rows"),
               TimeElapsedColumn())
    try:
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task(f"importing {file.name}", total=None)
            summary = publisher.import_rows(read_stop_list_file(file), reason=reason, source=f"file:{file.name}",
                                            progress=lambda n: bar.advance(task, n))
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

    settings = _settings(ctx)
    table = StopListTable(settings.bootstrap_servers, settings.topics.stop_list)
    try:
        table.catch_up()
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        table.close()
    by_reason = Counter(entry.reason for entry in table.entries.values())
    newest = max((entry.flagged_at for entry in table.entries.values()), default=None)
    click.echo(f"{len(table):,} customer(s) on the stop list in {settings.topics.stop_list}"
               + (f"; newest flag {newest.isoformat()}" if newest else ""))
    for reason, count in by_reason.most_common():
        click.echo(f"  {reason}: {count:,}")


@main.command()
@click.option("--health-url", default=None,
              help="The worker's health URL (default: http://127.0.0.1:<embedded.worker_health_port>/health).")
@click.option("--format", "output_format", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.pass_context
def status(ctx: click.Context, health_url: str | None, output_format: str) -> None:
    """Is the worker up and keeping up? Its counters, dead letters by reason and lag per partition."""
    import httpx
    from rich.table import Table

    from core.schema import REJECTION_REASONS
    from streams.kafka_admin import partition_bounds

    settings = _settings(ctx)
    url = health_url or f"http://127.0.0.1:{settings.embedded.worker_health_port}/health"
    try:
        health = httpx.get(url, timeout=5).raise_for_status().json()
    except httpx.HTTPError as exc:
        raise click.ClickException(f"no worker answered at {url} ({exc}). Is `callpulse up` or "
                                   "`callpulse worker` running? (--health-url for another host)") from None
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
    out = _stdout_console()
    out.print(f"worker {'ready' if health['ready'] else 'starting'} · counted {health['counted']:,} · "
              f"duplicates {health['duplicates']:,} · late {health['late_events']:,} · "
              f"last landed {health.get('last_landed_at') or 'never'}")
    out.print(f"lag {sum(lag.values()):,} record(s) on {settings.topics.call_events}"
              + (" (" + ", ".join(f"p{p} {n:,}" for p, n in lag.items()) + ")" if lag else ""))
    out.print(f"alerts sent {health.get('alerts_sent', 0):,}, firing {health.get('alerts_firing', 0):,} · "
              f"stop list {health.get('stop_list_size', 0):,} customer(s), "
              f"{health.get('stop_list_violations', 0):,} violation(s)")
    letters = health.get("dead_letters", {})
    table = Table(title=f"dead letters since the worker started ({sum(letters.values()):,})")
    for column in ("reason", "count", "meaning"):
        table.add_column(column)
    for reason, count in sorted(letters.items(), key=lambda item: -item[1]):
        table.add_row(reason, f"{count:,}", REJECTION_REASONS.get(reason, ""))
    out.print(table)


@main.command()
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


@main.command()
@click.option("--rate", type=float, default=None, help="Cap on events published per real second.")
@click.option("--duration", type=float, default=None, help="Stop after this many real seconds.")
@click.option("--count", type=int, default=None, help="Stop after this many events.")
@click.option("--seed", type=int, default=7, show_default=True, help="Same seed, same calls.")
@click.option("--speed", type=float, default=1.0, show_default=True,
              help="Simulated seconds per real second (600 replays a 10-hour day in a minute; 0 = as fast as "
                   "possible). Simulated time never passes the clock: a faster run is a backfill, starting "
                   "duration x (speed - 1) seconds ago with --duration (its simulated window ends as the run "
                   "does), 10 hours ago without; once it reaches now it goes on in real time.")
@click.option("--start", default=None,
              help="Simulated start, ISO 8601, not in the future (default: now, or the backfill's start; see --speed).")
@click.option("--agents-scale", type=float, default=1.0, show_default=True, help="Multiply every campaign's agents.")
@click.option("--batch-events", type=int, default=1, show_default=True,
              help="Pack this many events of one campaign into one Kafka record.")
@click.option("--output", type=click.Path(dir_okay=False, allow_dash=True), default=None,
              help="Write JSON lines here instead of publishing to Kafka ('-' for stdout).")
@click.pass_context
def simulate(ctx, rate, duration, count, seed, speed, start, agents_scale, batch_events, output) -> None:
    """Simulate a predictive dialer and publish its call attempts to Kafka."""
    from core.privacy import load_hmac_key
    from core.schema import encode_event
    from core.slots import SlotRules
    from producers.run_simulator import parse_start, run_simulation, simulation_start
    from producers.simulator import DialerSimulator

    settings = _settings(ctx)
    try:
        begins = simulation_start(speed, duration, parse_start(start))
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--start") from None
    simulator = DialerSimulator(SlotRules(settings.slots, settings.zone), load_hmac_key(settings.data_dir),
                                seed=seed, start=begins, agents_scale=agents_scale)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    if output:
        stream = sys.stdout.buffer if output == "-" else open(output, "wb")
        try:
            sent = run_simulation(simulator, lambda e: stream.write(encode_event(e) + b"\n"), speed=speed,
                                  duration_s=duration, max_events=count, max_rate=rate, should_stop=stop.is_set)
        finally:
            if stream is not sys.stdout.buffer:
                stream.close()
        console.print(f"wrote {sent} events to {output}")
        return

    from producers.publisher import EventPublisher

    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events, batch_events=batch_events)
    console.print(f"simulating {len(simulator.campaigns)} campaigns from {simulator.start.isoformat()} "
                  f"at {speed:g}x into {settings.topics.call_events} @ {settings.bootstrap_servers}")
    last_report = [time.monotonic()]

    def progress(sent: int) -> None:
        if time.monotonic() - last_report[0] >= 10:
            last_report[0] = time.monotonic()
            console.print(f"published {sent} events (simulated {simulator.now / 3600:.2f} h)")

    try:
        sent = run_simulation(simulator, publisher.publish, speed=speed, duration_s=duration, max_events=count,
                              max_rate=rate, on_progress=progress, should_stop=stop.is_set)
    finally:
        publisher.close()
    console.print(f"published {sent} events in {publisher.sent_records} records")


def _warehouse(settings: Settings):
    from warehouse.client import WarehouseUnavailable, connect

    try:
        return connect(settings.warehouse_url)
    except WarehouseUnavailable as exc:
        raise click.ClickException(str(exc)) from None


def _dash_app(settings: Settings):
    """The Dash app on its own warehouse client, with the schema migrated so pages can query."""
    from dashboards.app import create_app as create_dash
    from dashboards.data import DashboardContext
    from warehouse.migrate import migrate as apply

    client = _warehouse(settings)
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


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                "help_option_names": []})
@click.argument("bench_args", nargs=-1, type=click.UNPROCESSED)
def bench(bench_args: tuple[str, ...]) -> None:
    """CallPulse end to end against Quix Streams and a naive Faust agent, plus the warehouse
    queries (bench/pipeline.py; `callpulse bench --help` for its options, `--smoke` for a check)."""
    import runpy

    script = Path(__file__).resolve().parents[1] / "bench" / "pipeline.py"
    if not script.is_file():
        raise click.ClickException(f"{script} is not there: the benchmark runs from a checkout of the repository")
    sys.argv = ["callpulse bench", *bench_args]
    runpy.run_path(str(script), run_name="__main__")


@main.command()
@click.option("--dashboard/--no-dashboard", default=None,
              help="Serve the dashboard from this process (default: yes with the embedded warehouse, "
                   "which only one process may open).")
@click.option("--health-port", type=int, default=None,
              help="Serve worker health JSON at /health on this port (default: embedded.worker_health_port).")
@click.pass_context
def worker(ctx: click.Context, dashboard: bool | None, health_port: int | None) -> None:
    """Run the Faust worker: call events -> minute buckets -> warehouse."""
    from streams.app import WorkerPipeline, create_app, run_worker

    settings = _settings(ctx)
    pipeline = WorkerPipeline(settings, _warehouse(settings))
    if dashboard if dashboard is not None else settings.embedded_warehouse:
        from dashboards.app import serve  # only here: Dash and its pages weigh on a worker without them

        host, port = settings.embedded.dashboard_host, settings.embedded.dashboard_port
        threading.Thread(target=serve, args=(_dash_app(settings), host, port), name="dashboard", daemon=True).start()
    app = create_app(settings, pipeline, web_port=health_port or settings.embedded.worker_health_port)
    console.print(f"worker: {settings.topics.call_events} @ {settings.bootstrap_servers} -> {settings.warehouse_url}")
    run_worker(app, loglevel="debug" if ctx.obj["verbose"] else "warning", stopping=pipeline.stopping)


@main.command()
@click.option("--host", default=None, help="Bind address (default from config: 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default from config: 8050).")
@click.pass_context
def dashboard(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Serve the Dash dashboards (server mode; embedded mode serves them from the worker)."""
    from dashboards.app import serve

    settings = _settings(ctx)
    serve(_dash_app(settings), host or settings.embedded.dashboard_host, port or settings.embedded.dashboard_port)


@main.command()
@click.option("--duration", type=float, default=None, help="Stop everything after this many seconds.")
@click.option("--no-simulator", is_flag=True, help="Do not start the dialer simulator.")
@click.option("--speed", type=float, default=1.0, show_default=True,
              help="Simulated seconds per real second. Never ahead of the clock: a faster run is a backfill "
                   "whose duration x speed simulated seconds end as the run does (with --duration), or that "
                   "starts 10 hours back and goes on in real time once it reaches now (see `simulate`).")
@click.option("--seed", type=int, default=None, help="Simulator seed (default: random).")
@click.option("--data-dir", type=click.Path(file_okay=False), default=None,
              help="Where the warehouse, logs and HMAC key live (default ./var); the same as "
                   "`callpulse --data-dir DIR up`.")
@click.pass_context
def up(ctx: click.Context, duration: float | None, no_simulator: bool, speed: float, seed: int | None,
       data_dir: str | None) -> None:
    """Run the whole pipeline on this machine: broker, topics, worker, warehouse, dashboard, simulator."""
    from callpulse.supervisor import Supervisor

    if data_dir is not None:  # `make up ARGS="--data-dir /srv/callpulse"` puts it after `up`
        try:
            ctx.obj["settings"] = load_settings(ctx.obj["config_file"], pipeline__data_dir=data_dir)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
    first = _first_admin(_settings(ctx))
    supervisor = Supervisor(_settings(ctx), console=console, config_file=ctx.obj["config_file"],
                            notes=(first.message(),) if first else ())
    sys.exit(supervisor.run(duration=duration, simulator=not no_simulator, speed=speed, seed=seed))


if __name__ == "__main__":
    main()
