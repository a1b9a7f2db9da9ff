"""What the command groups share: the consoles, the settings the main group loaded, the
warehouse client, and asking the running dashboard when another process holds chDB."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console

from core.config import Settings

console = Console(stderr=True)


SCHEMA_FILE = Path("schemas") / "call-event.v1.schema.json"


def stdout_console(file=None) -> Console:
    """Tables for stdout. Piped or written to a file nothing limits the width, so never
    fold a campaign name or a reason to fit 80 columns."""
    wide = file is not None or not sys.stdout.isatty()
    return Console(file=file, width=1000 if wide else None)


def settings_of(ctx: click.Context) -> Settings:
    return ctx.obj["settings"]


def ask_dashboard(settings: Settings, path: str, locked: Exception, *, what: str, least_role: str) -> str:
    """GET ``path`` from the running dashboard with the login from the environment (or asked
    for on a terminal), as ``least_role`` or a higher role; its body, or a ClickException
    that says what to set."""
    import httpx

    roles = {"supervisor": "supervisor, manager or admin", "manager": "manager or admin"}.get(least_role, least_role)
    host = settings.embedded.dashboard_host
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    url = f"http://{host}:{settings.embedded.dashboard_port}{path}"
    login = dashboard_login()
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
            "CALLPULSE_API_PASSWORD"
        )
    if response.status_code != 200:
        raise click.ClickException(
            f"the running dashboard refused the request for {what} ({response.status_code}): {response.text[:300]}"
        )
    return response.text


def dashboard_login() -> dict:
    """httpx arguments carrying the login for the running dashboard, from the environment."""
    import os

    if os.environ.get("CALLPULSE_API_TOKEN"):
        return {"headers": {"Authorization": f"Bearer {os.environ['CALLPULSE_API_TOKEN']}"}}
    if os.environ.get("CALLPULSE_API_USER"):
        return {"auth": (os.environ["CALLPULSE_API_USER"], os.environ.get("CALLPULSE_API_PASSWORD", ""))}
    return {}


def open_warehouse(settings: Settings):
    from warehouse.client import WarehouseUnavailable, connect

    try:
        return connect(settings.warehouse_url)
    except WarehouseUnavailable as exc:
        raise click.ClickException(str(exc)) from None
