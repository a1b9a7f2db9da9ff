"""`callpulse users`: dashboard logins (password hashes and API tokens)."""

from __future__ import annotations

import click

from callpulse.cli.common import console


@click.group()
def users() -> None:
    """Dashboard logins: hash a password, make a token. See "Dashboard access" in the README."""


def _check_login_name(name: str) -> None:
    if not all(c.isalnum() or c in "._@-" for c in name):
        raise click.UsageError(f"{name!r}: a login name may hold only letters, digits and . _ @ -")


@users.command("hash-password")
@click.argument("name", required=False)
@click.option(
    "--role",
    type=click.Choice(["supervisor", "manager", "admin"]),
    default="supervisor",
    show_default=True,
    help="The role to write into the printed config table.",
)
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
@click.option(
    "--role", type=click.Choice(["supervisor", "manager", "admin"]), required=True, help="What the token may open."
)
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
