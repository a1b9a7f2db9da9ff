"""Who may open the dashboards: a login (HTTP basic or a bearer token) and a role, checked on the server.

**Login.** Flask-HTTPAuth guards the Dash app's Flask server: ``HTTPBasicAuth`` for people (the
browser asks once, then resends the login with every request) and ``HTTPTokenAuth`` for wallboard
TVs and scripts (``Authorization: Bearer <token>``), combined with ``MultiAuth``. Every request
needs one except ``/healthz``, which holds no data. A missing or wrong login gets 401 with a
``WWW-Authenticate`` header and one message for every case; an unknown user name costs the same
scrypt check as a wrong password, so neither the answer nor its timing tells which part was wrong.

**Where logins come from**, a later source replacing a login of the same name:

1. ``<data_dir>/dashboard-users.toml``: the first-start admin (below), mode 0600;
2. the configuration: ``[dashboard.users.<name>]`` with ``role`` and ``password_hash``, and
   ``[dashboard.tokens.<name>]`` with ``role`` and ``token_sha256``;
3. the environment, for deployments: ``CALLPULSE_DASHBOARD_USERS`` and
   ``CALLPULSE_DASHBOARD_TOKENS``, ``name:role:hash`` entries separated by commas or whitespace.

Only hashes are ever stored or configured: passwords as werkzeug.security hashes (scrypt), tokens
as SHA-256 hex. A token is 256 random bits, so one fast hash is enough; a password is not, so it
gets a slow salted one. ``callpulse users hash-password`` and ``callpulse users new-token`` make them.

**Roles**, least to most; each may open what the roles before it may:

- supervisor: Wallboard ``/``, Alerts, Pacing advisor, Definitions, ``/api/wallboard``, ``/api/alerts``;
- manager: also Reports, Compliance, Best time to call, Response model and ``/api/report``;
- admin: everything, including any page or route not named here. A new page is admin-only
  until it gets a role in ``PAGE_ROLES``, so forgetting it never leaks data.

**How the roles are enforced.** One ``before_request`` hook decides what each request needs:

- a page (``GET /reports``): that page's role; the nav lists only pages the role may open;
- a Dash callback (``POST /_dash-update-component``): the body names the callback by its outputs,
  the same key Dash dispatches on (``app.callback_map``), so the check is on the function that
  would run. Its module is a page module, which the page registry maps to the page's path and
  so its role. Dash's page router (it sends a page's layout when the browser changes page
  without a reload) is checked by the pathname it is asked for. The app shell's own callback
  (the alert banner) is open to every role; a callback from anywhere else is admin-only;
- a route marked with :func:`requires` or :func:`public` in ``dashboards/app.py``;
- Dash's own files (scripts, the shell layout, the callback list): a login, no role; no data;
- anything else: admin.

A refused role gets 403 with a plain sentence and no data.

Every page layout is also guarded where it is built, whatever asks for it: a layout built for a
role that may not open its page is a refusal with no data. And a callback request whose inputs
are not the ones its callback declares, in order, is refused with 400: Dash hands a callback its
inputs by position, so the check must read the values Dash will.

**Speed.** Checking a scrypt hash takes about 0.1 s, and a browser resends the login with each of
the dozens of requests a page makes, so a successful check is remembered in memory (at most
``REMEMBERED_LOGINS`` of them, each for ``REMEMBER_LOGIN_SECONDS``) under a keyed hash of name and
password, for as long as the user's stored hash is the same. Failures are never remembered.

**Guessing.** :class:`LoginLimiter` allows ``dashboard.failed_logins_per_user_per_minute`` wrong
logins per user name (known or not, so a lockout tells nothing about who exists) and
``dashboard.failed_logins_per_client_per_minute`` per client address (wrong tokens included)
within a minute. The next attempt is refused with 429 and a ``Retry-After``, even with the right
password, and that name or address stays locked out for ``dashboard.login_lockout_seconds``.
A refused attempt runs no hash at all, so guessing cannot take the process's CPU either.

**Behind a reverse proxy** every request comes from the proxy's address, so the per-client
allowance would be one bucket for everybody. :class:`ClientAddress` reads the client from
``X-Forwarded-For`` only when the peer is one of ``dashboard.trusted_proxies`` (addresses or
networks): the nearest address in it that is not a trusted proxy itself, as each proxy appends
the address it was reached from. From any other peer the header is ignored, so a client cannot
pick the address it is limited under.

**First start.** ``callpulse up`` (and any process that serves the dashboard) must work on a fresh
machine with one command, so when no user and no token is configured anywhere,
:func:`ensure_first_admin` creates user ``admin`` with a random password, writes only its hash to
``<data_dir>/dashboard-users.toml`` (mode 0600) and returns the password for the console to show
once, as Jupyter shows its token. Delete the file to drop that admin; with no other login
configured the next start makes a new one.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
import math
import os
import secrets
import threading
import time
import tomllib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path

import dash
import msgspec
from cachetools import TTLCache
from dash import html
from dash._pages import _path_to_page
from dash.dash import _ID_CONTENT, _ID_LOCATION
from flask import Response, abort, current_app, g, has_request_context, request
from flask_httpauth import HTTPBasicAuth, HTTPTokenAuth, MultiAuth
from werkzeug.security import check_password_hash, generate_password_hash

from core.config import DASHBOARD_ROLES, ConfigError, DashboardToken, DashboardUser, Settings, check_dashboard_logins
from dashboards import theme

log = logging.getLogger(__name__)

SUPERVISOR, MANAGER, ADMIN = DASHBOARD_ROLES
ROLE_RANK = {role: rank for rank, role in enumerate(DASHBOARD_ROLES)}
REALM = "CallPulse"
USERS_ENV = "CALLPULSE_DASHBOARD_USERS"
TOKENS_ENV = "CALLPULSE_DASHBOARD_TOKENS"
USERS_FILE = "dashboard-users.toml"
TOKEN_PREFIX = "cpt_"  # makes a leaked token easy to spot in logs and to match in secret scanners

# By the page's public path (the README and bookmarks use these), not by module name.
PAGE_ROLES = {
    "/": SUPERVISOR,
    "/alerts": SUPERVISOR,
    "/pacing": SUPERVISOR,
    "/floor": SUPERVISOR,
    "/definitions": SUPERVISOR,
    "/reports": MANAGER,
    "/compliance": MANAGER,
    "/best-time": MANAGER,
    "/model": MANAGER,
}

UNAUTHORIZED_MESSAGE = (
    "401 Unauthorized: log in to CallPulse. The user name and password, or the token, were missing or wrong.\n"
)

APP_MODULE = "dashboards.app"  # the shell's callbacks (the alert banner) serve every page
_ROLE_MARK = "_callpulse_role"
_GUARDED_LAYOUT = "_callpulse_guarded_layout"
_PUBLIC = "public"
_EXTENSION = "callpulse_auth"
REMEMBERED_LOGINS = 1024
REMEMBER_LOGIN_SECONDS = 15 * 60
FAILURE_WINDOW_SECONDS = 60.0
TRACKED_LOGIN_KEYS = 10_000  # user names and addresses whose failures are remembered: bounds memory


@dataclass(frozen=True)
class Principal:
    """Who made the request: a user (by password) or a token, and the role it has."""

    name: str
    role: str
    via: str  # "password" or "token"

    def may(self, needed: str) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[needed]


def hash_password(password: str) -> str:
    return generate_password_hash(password)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def users_file(settings: Settings) -> Path:
    return settings.data_dir / USERS_FILE


class Credentials:
    """Every login the dashboard accepts, by hash; checks a name and password, or a token."""

    def __init__(self, users: dict[str, DashboardUser], tokens: dict[str, DashboardToken]):
        self.users = dict(users)
        self.tokens = dict(tokens)
        self._by_token_hash = {t.token_sha256: Principal(name, t.role, "token") for name, t in tokens.items()}
        self._pepper = secrets.token_bytes(32)
        # Keyed hash of name and password -> the stored hash it was checked against.
        self._verified: TTLCache = TTLCache(REMEMBERED_LOGINS, REMEMBER_LOGIN_SECONDS)
        self._lock = threading.Lock()

    @classmethod
    def load(cls, settings: Settings) -> Credentials:
        users: dict[str, DashboardUser] = {}
        tokens: dict[str, DashboardToken] = {}
        file_users, file_tokens = _read_users_file(users_file(settings))
        env_users = {name: DashboardUser(role, secret) for name, (role, secret) in _env_entries(USERS_ENV).items()}
        check_dashboard_logins(env_users, {}, f"{USERS_ENV} entry {{name}}")
        env_tokens = {name: DashboardToken(role, secret) for name, (role, secret) in _env_entries(TOKENS_ENV).items()}
        check_dashboard_logins({}, env_tokens, f"{TOKENS_ENV} entry {{name}}")
        for source_users, source_tokens in (
            (file_users, file_tokens),
            (settings.dashboard.users, settings.dashboard.tokens),
            (env_users, env_tokens),
        ):
            users.update(source_users)
            tokens.update(source_tokens)
        return cls(users, tokens)

    def __bool__(self) -> bool:
        return bool(self.users or self.tokens)

    @cached_property
    def _decoy_hash(self) -> str:
        return generate_password_hash(secrets.token_urlsafe(16))

    def _remembered_key(self, name: str, password: str) -> bytes:
        return hmac.new(self._pepper, f"{name}\0{password}".encode(), hashlib.sha256).digest()

    def remembered(self, name: str, password: str) -> Principal | None:
        """The user, if this name and password passed the scrypt check lately; else None (no hash run)."""
        user = self.users.get(name)
        if user is None or not password:
            return None
        with self._lock:
            stored = self._verified.get(self._remembered_key(name, password))
        return Principal(name, user.role, "password") if stored == user.password_hash else None

    def check_password(self, name: str, password: str) -> Principal | None:
        if not name or not password:
            return None
        remembered = self.remembered(name, password)
        if remembered is not None:
            return remembered
        user = self.users.get(name)
        if user is None:
            check_password_hash(self._decoy_hash, password)  # as slow as a real check: no user enumeration
            return None
        if not check_password_hash(user.password_hash, password):
            return None
        with self._lock:
            self._verified[self._remembered_key(name, password)] = user.password_hash
        return Principal(name, user.role, "password")

    def check_token(self, token: str) -> Principal | None:
        return self._by_token_hash.get(hash_token(token)) if token else None


class _Failures:
    """One user name's or client's wrong logins within the last minute, and its lockout."""

    __slots__ = ("times", "locked_until")

    def __init__(self):
        self.times: deque[float] = deque()
        self.locked_until = 0.0


class ClientAddress:
    """The address a request's client is known by: the peer's, or, when the peer is a trusted
    proxy, the nearest address in its ``X-Forwarded-For`` that is not a trusted proxy too.

    Read right to left because each proxy appends the address it was reached from: entries to
    the left of the first untrusted one were written by the client and prove nothing. An entry
    that is not an address stops the walk at the trusted hop that forwarded it."""

    def __init__(self, trusted_proxies: Iterable[str] = ()):
        self.trusted = tuple(ipaddress.ip_network(proxy.strip(), strict=False) for proxy in trusted_proxies)

    def is_trusted(self, address: str) -> bool:
        try:
            parsed = ipaddress.ip_address(address.strip())
        except ValueError:
            return False
        return any(parsed in network for network in self.trusted)

    def __call__(self, peer: str, forwarded_for: Iterable[str] = ()) -> str:
        """The client of a request from ``peer`` carrying these ``X-Forwarded-For`` header values."""
        if not self.trusted or not self.is_trusted(peer):
            return peer
        client = peer
        hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
        for hop in reversed(hops):
            try:
                address = str(ipaddress.ip_address(hop))
            except ValueError:
                break
            client = address
            if not self.is_trusted(address):
                break
        return client


class LoginLimiter:
    """Wrong logins allowed per user name and per client address within a minute; past either
    allowance, a lockout of ``lockout_seconds`` for that name or address.

    An attempt is counted before its password is checked and withdrawn when it was right, so
    requests arriving at once cannot run more checks than the allowance. Names and addresses
    are remembered by a hash, at most ``TRACKED_LOGIN_KEYS`` of them: memory stays bounded
    whatever names a guesser sends."""

    def __init__(
        self,
        per_user: int,
        per_client: int,
        lockout_seconds: float,
        clock=time.monotonic,
        client_address: ClientAddress | None = None,
    ):
        self.allowances = {"user": per_user, "client": per_client}
        self.client_address = client_address or ClientAddress()
        self.lockout_seconds = lockout_seconds
        self._clock = clock
        ttl = max(FAILURE_WINDOW_SECONDS, lockout_seconds)
        self._failures: TTLCache = TTLCache(TRACKED_LOGIN_KEYS, ttl, timer=clock)
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginLimiter:
        dashboard = settings.dashboard
        return cls(
            dashboard.failed_logins_per_user_per_minute,
            dashboard.failed_logins_per_client_per_minute,
            dashboard.login_lockout_seconds,
            client_address=ClientAddress(dashboard.trusted_proxies),
        )

    def client_of_request(self) -> str:
        """The current request's client address, as the allowances count it."""
        return self.client_address(request.remote_addr or "", request.headers.getlist("X-Forwarded-For"))

    def __len__(self) -> int:
        """How many user names and client addresses it remembers failures of."""
        return len(self._failures)

    @staticmethod
    def _keys(client: str, user: str | None) -> list[tuple[str, bytes]]:
        keys = [("client", hashlib.blake2b(client.encode(), digest_size=16).digest())]
        if user is not None:
            keys.append(("user", hashlib.blake2b(user.encode(errors="surrogatepass"), digest_size=16).digest()))
        return keys

    def _failures_of(self, key, now: float) -> _Failures:
        failures = self._failures.get(key) or _Failures()
        while failures.times and failures.times[0] <= now - FAILURE_WINDOW_SECONDS:
            failures.times.popleft()
        self._failures[key] = failures  # (re)starts its time to live
        return failures

    def retry_after(self, client: str, user: str | None = None) -> float:
        """Seconds until ``client`` (and ``user``) may log in again; 0 when they may now."""
        now = self._clock()
        with self._lock:
            found = [self._failures.get(key) for key in self._keys(client, user)]
            return max([0.0] + [failures.locked_until - now for failures in found if failures is not None])

    def attempt(self, client: str, user: str | None = None) -> float:
        """Count a login attempt as wrong until :meth:`succeeded` says otherwise. 0 when it may be
        checked; else the seconds until it may (an attempt past an allowance starts the lockout)."""
        now = self._clock()
        with self._lock:
            records = [(kind, self._failures_of((kind, digest), now)) for kind, digest in self._keys(client, user)]
            for kind, failures in records:
                if failures.locked_until <= now and len(failures.times) >= self.allowances[kind]:
                    failures.locked_until = now + self.lockout_seconds
                    failures.times.clear()  # after the lockout, a fresh allowance
            wait = max(failures.locked_until - now for _, failures in records)
            if wait > 0:
                return wait
            for _, failures in records:
                failures.times.append(now)
            return 0.0

    def succeeded(self, client: str, user: str | None = None) -> None:
        """The attempt just counted was right: only wrong logins use up an allowance."""
        with self._lock:
            for key in self._keys(client, user):
                failures = self._failures.get(key)
                if failures is not None and failures.times:
                    failures.times.pop()


def _read_users_file(path: Path) -> tuple[dict[str, DashboardUser], dict[str, DashboardToken]]:
    try:
        with path.open("rb") as handle:
            raw = tomllib.load(handle).get("dashboard", {})
        users = msgspec.convert(raw.get("users", {}), dict[str, DashboardUser])
        tokens = msgspec.convert(raw.get("tokens", {}), dict[str, DashboardToken])
    except FileNotFoundError:
        return {}, {}
    except (tomllib.TOMLDecodeError, msgspec.ValidationError, AttributeError) as exc:
        raise ConfigError(f"{path}: not a dashboard users file ({exc})") from None
    check_dashboard_logins(users, tokens, f"{path} [dashboard.{{kind}}.{{name}}]")
    return users, tokens


def _env_entries(variable: str) -> dict[str, tuple[str, str]]:
    """name -> (role, hash) of the "name:role:hash" entries in environment ``variable``."""
    entries: dict[str, tuple[str, str]] = {}
    for entry in os.environ.get(variable, "").replace(",", " ").split():
        name, _, rest = entry.partition(":")
        role, _, secret = rest.partition(":")
        if not (name and role and secret):
            # Never echo the entry: it may be a password pasted by mistake.
            raise ConfigError(f"{variable}: entry {len(entries) + 1} is not name:role:hash")
        entries[name] = (role, secret)
    return entries


@dataclass(frozen=True)
class FirstLogin:
    user: str
    password: str
    path: Path

    def message(self) -> str:
        return (
            f"No dashboard user was configured, so one was created: user {self.user}, password "
            f"{self.password}\nThe password is shown only this once; only its hash is kept, in {self.path}. "
            'See "Dashboard access" in the README to add users.'
        )


def ensure_first_admin(settings: Settings) -> FirstLogin | None:
    """With no login configured anywhere, create user admin with a random password; the caller
    shows the password once. None when a login exists (or another process just made one)."""
    if Credentials.load(settings):
        return None
    path = users_file(settings)
    if path.exists():
        log.warning("%s lists no login and none is configured: nobody can open the dashboard", path)
        return None
    password = secrets.token_urlsafe(16)
    text = (
        f"# Created by CallPulse on first start, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, because no\n"
        "# dashboard user was configured. Only the password's hash is kept here. Delete this file to\n"
        "# drop this admin; with no other login configured, the next start makes a new one.\n"
        "[dashboard.users.admin]\n"
        f'role = "{ADMIN}"\n'
        f'password_hash = "{hash_password(password)}"\n'
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
        # link() refuses an existing name: of two processes starting at once, one admin wins.
        os.link(scratch, path)
    except FileExistsError:
        return None
    finally:
        scratch.unlink(missing_ok=True)
    return FirstLogin("admin", password, path)


def requires(role: str):
    """Mark a Flask view as open to ``role`` and the roles above it."""

    def mark(view):
        setattr(view, _ROLE_MARK, role)
        return view

    return mark


def public(view):
    """Mark a Flask view as open without a login: only for views that show no data."""
    setattr(view, _ROLE_MARK, _PUBLIC)
    return view


def current_principal() -> Principal | None:
    """Who is asking, inside a request that passed the login; else None."""
    if not has_request_context():
        return None
    principal = g.get("flask_httpauth_user")
    return principal if isinstance(principal, Principal) else None


def page_role(page: dict) -> str:
    return PAGE_ROLES.get(page.get("path", ""), ADMIN)


def pages_for(principal: Principal | None) -> list[dict]:
    """The registered pages ``principal`` may open, in nav order."""
    if principal is None:
        return []
    return [page for page in dash.page_registry.values() if principal.may(page_role(page))]


def protect(app: dash.Dash, credentials: Credentials, limiter: LoginLimiter) -> None:
    """Require a login on every route of ``app`` but the public ones, and the role each needs;
    ``limiter`` bounds the wrong logins. Also guards every page layout by its role."""
    if not credentials:
        log.warning("no dashboard login is configured: every request will get 401")
    basic = HTTPBasicAuth(realm=REALM)
    bearer = HTTPTokenAuth(scheme="Bearer", realm=REALM)

    @basic.verify_password
    def verify_password(name: str, password: str) -> Principal | None:
        if not name or not password:
            return None  # no login sent yet (a browser's first request): nothing was guessed
        client = limiter.client_of_request()
        _refuse_while_locked(limiter.retry_after(client, name))
        remembered = credentials.remembered(name, password)
        if remembered is not None:
            return remembered
        _refuse_while_locked(limiter.attempt(client, name))
        principal = credentials.check_password(name, password)
        if principal is not None:
            limiter.succeeded(client, name)
        return principal

    @bearer.verify_token
    def verify_token(token: str) -> Principal | None:
        if not token:
            return None
        client = limiter.client_of_request()
        _refuse_while_locked(limiter.attempt(client))
        principal = credentials.check_token(token)
        if principal is not None:
            limiter.succeeded(client)
        return principal

    for method in (basic, bearer):
        method.error_handler(_unauthorized)
    login = MultiAuth(basic, bearer)
    prefix = app.config.routes_pathname_prefix
    app.server.extensions[_EXTENSION] = credentials
    _guard_page_layouts()

    def authorize():
        principal = current_principal()
        needed, what = _requirement(app, prefix)
        if principal is None or principal.may(needed):
            return None
        return _forbidden(principal, what, needed)

    guarded = login.login_required(authorize)

    @app.server.before_request
    def require_login():
        view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
        if request.method == "OPTIONS" or getattr(view, _ROLE_MARK, None) == _PUBLIC:
            return None
        return guarded()


def _refuse_while_locked(wait_seconds: float) -> None:
    if wait_seconds > 0:
        seconds = math.ceil(wait_seconds)
        abort(
            Response(
                f"429 Too Many Requests: too many wrong logins from this address or for this user. "
                f"Try again in {seconds} s.\n",
                status=429,
                mimetype="text/plain",
                headers={"Retry-After": str(seconds)},
            )
        )


def _forbidden(principal: Principal, what: str, needed: str) -> Response:
    return Response(
        f"403 Forbidden: {principal.name} has the {principal.role} role, which may not open "
        f"{what}. Ask an admin for the {needed} role.\n",
        status=403,
        mimetype="text/plain",
    )


def _guard_page_layouts() -> None:
    """Make every registered page's layout refuse a role that may not open the page, wherever it
    is built (a page load, Dash's page router, anything later): the role check sits on the data
    itself, not only on the routes known to lead to it."""
    for page in dash.page_registry.values():
        layout = page.get("layout")
        if layout is None or getattr(layout, _GUARDED_LAYOUT, False):
            continue
        page["layout"] = _guarded_layout(layout, page_role(page), page["name"])


def _guarded_layout(layout, needed: str, name: str):
    def guarded_layout(**arguments):
        principal = current_principal()
        if principal is None or not principal.may(needed):
            who = f"{principal.name} has the {principal.role} role, which" if principal else "this login"
            return html.Div(
                f"403 Forbidden: {who} may not open the {name} page. Ask an admin for the {needed} role.",
                className="forbidden",
                **theme.data_attributes(testid="forbidden"),
            )
        return layout(**arguments) if callable(layout) else layout

    setattr(guarded_layout, _GUARDED_LAYOUT, True)
    return guarded_layout


def _unauthorized(_status):
    return Response(UNAUTHORIZED_MESSAGE, status=401, mimetype="text/plain")


def _requirement(app: dash.Dash, prefix: str) -> tuple[str, str]:
    """The least role this request needs, and what it opens in words."""
    endpoint = request.endpoint
    marked = getattr(current_app.view_functions.get(endpoint) if endpoint else None, _ROLE_MARK, None)
    if marked is not None:
        return marked, request.path
    if endpoint in (prefix, f"{prefix}<path:path>"):
        return _pathname_requirement(app, request.path)
    if endpoint == f"{prefix}_dash-update-component":
        return _callback_requirement(app)
    if (
        endpoint is None
        or endpoint in ("static", "_dash_assets.static")
        or (endpoint.startswith(f"{prefix}_dash-") or endpoint in (f"{prefix}_reload-hash", f"{prefix}_favicon.ico"))
    ):
        # Dash's scripts, styles, shell layout and callback list, or a 404: no data in any of them.
        return SUPERVISOR, request.path
    return ADMIN, request.path


def _pathname_requirement(app: dash.Dash, pathname: str) -> tuple[str, str]:
    # The same lookup Dash's page router makes, so both agree on which page a path is.
    page, _ = _path_to_page(app.strip_relative_path(pathname) or "")
    if not page:
        return SUPERVISOR, pathname  # Dash answers with its "page not found" layout
    return page_role(page), f"the {page['name']} page"


def _callback_requirement(app: dash.Dash) -> tuple[str, str]:
    payload = request.get_json(silent=True)
    body: dict = payload if isinstance(payload, dict) else {}
    output = body.get("output")
    declared = app.callback_map.get(output, {}) if isinstance(output, str) else {}
    callback = declared.get("callback")
    if callback is None or not isinstance(output, str):
        return ADMIN, "an unknown callback"
    for part in ("inputs", "state"):
        if not _matches_declaration(body.get(part) or [], declared.get(part) or []):
            abort(
                Response(
                    f"400 Bad Request: the callback's {part} are not the ones it declares, in order.\n",
                    status=400,
                    mimetype="text/plain",
                )
            )
    if f"{_ID_CONTENT}.children" in output:
        pathname = _input_value(body.get("inputs"), _ID_LOCATION, "pathname")
        return _pathname_requirement(app, pathname) if isinstance(pathname, str) else (ADMIN, "a page")
    module = callback.__module__
    if module == APP_MODULE:
        return SUPERVISOR, "the alert banner"
    page = dash.page_registry.get(module)
    if page is None:
        return ADMIN, f"a callback of {module}"
    return page_role(page), f"the {page['name']} page's data"


def _matches_declaration(sent, declared: list[dict]) -> bool:
    """Whether a callback request's inputs (or state) name the declared components and properties
    in the declared order. Dash binds them to the function's arguments by position alone, so a
    request naming one component where another is declared would pass one value as another."""
    if not isinstance(sent, list) or len(sent) != len(declared):
        return False
    for item, spec in zip(sent, declared):
        if spec["id"].startswith("{"):  # a pattern (ALL, MATCH): a list of matching components, or one
            items = item if isinstance(item, list) else [item]
            if not all(
                isinstance(each, dict) and isinstance(each.get("id"), dict) and each.get("property") == spec["property"]
                for each in items
            ):
                return False
        elif not (isinstance(item, dict) and item.get("id") == spec["id"] and item.get("property") == spec["property"]):
            return False
    return True


def _input_value(inputs, component_id: str, prop: str):
    for item in inputs or []:
        if isinstance(item, list):
            found = _input_value(item, component_id, prop)
            if found is not None:
                return found
        elif isinstance(item, dict) and item.get("id") == component_id and item.get("property") == prop:
            return item.get("value")
    return None
