"""What every dashboard response carries besides its content: security headers, no caching of
data, and JSON that any parser reads.

**Headers**, on every response (pages, APIs, callbacks, files, errors):

- ``Content-Security-Policy``: scripts only from this server, plus Dash's own inline scripts by
  their hashes (``Dash.csp_hashes()``); no plugins, no other origin to fetch from or post to, and
  no page may frame the dashboard (``frame-ancestors 'none'``). Styles also allow inline ones:
  Dash's components and plotly.js add theirs as ``<style>`` elements (Chromium refused dozens of
  them on every page without it). Nothing needs ``'unsafe-eval'``: every page renders, charts
  drawn, with no policy violation in Chromium;
- ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY`` (for browsers without
  frame-ancestors), ``Referrer-Policy: no-referrer``;
- ``Cache-Control: no-store`` on everything but Dash's script bundles and the static assets, so
  no browser or proxy keeps a copy of figures, layouts or API answers.

**Strict JSON.** Python's ``json`` writes ``NaN`` and ``Infinity``, which are not JSON: a campaign
whose AHT overflowed to infinity made ``/api/wallboard`` unreadable to every strict client.
:class:`StrictJSONProvider` is the app's JSON encoder (``jsonify``), built on msgspec, which writes
NaN and ±infinity as ``null``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, cast

import dash
import msgspec
import numpy as np
from dash._callback import GLOBAL_INLINE_SCRIPTS
from flask import Response, request
from flask.json.provider import DefaultJSONProvider

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
CSP_BASE = {
    "default-src": ["'self'"],
    "style-src": ["'self'", "'unsafe-inline'"],
    "img-src": ["'self'", "data:"],
    "font-src": ["'self'", "data:"],
    "connect-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}


def _encode_other(value: Any) -> Any:
    """What msgspec does not know natively: numpy and pandas scalars."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dt.datetime):  # pandas.Timestamp
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def strict_json(value: Any) -> bytes:
    """``value`` as standard JSON: NaN and ±infinity become null."""
    return msgspec.json.encode(value, enc_hook=_encode_other)


class StrictJSONProvider(DefaultJSONProvider):
    """The Flask app's JSON (``jsonify``, ``app.json``), always standard JSON."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return strict_json(obj).decode()

    def response(self, *args: Any, **kwargs: Any) -> Response:
        # Flask types App.response_class as werkzeug's sans-IO Response; a Flask app's is flask.Response.
        response_class = cast(type[Response], self._app.response_class)
        return response_class(strict_json(self._prepare_response_obj(args, kwargs)), mimetype=self.mimetype)


@dataclass
class CachedPolicy:
    """The Content-Security-Policy header last built, the inline scripts it hashes (how many the
    app holds, how many wait in Dash's global list, and the renderer script) and how many times
    it was built: it is built again only when those change, not on every response."""

    scripts: tuple[int, int, str] | None = None
    value: str = ""
    builds: int = 0


POLICY_EXTENSION = "callpulse_csp"  # app.server.extensions key of the app's CachedPolicy


def harden(app: dash.Dash) -> None:
    """Give every response of ``app`` the headers above, and the app strict JSON."""
    server = app.server
    server.json = StrictJSONProvider(server)
    prefix = app.config.routes_pathname_prefix
    # Files with no data in them, which Dash and Flask already give their own caching headers.
    files = {
        "static",
        "_dash_assets.static",
        f"{prefix}_dash-component-suites/<string:package_name>/<path:fingerprinted_path>",
        f"{prefix}_favicon.ico",
    }
    policy = server.extensions[POLICY_EXTENSION] = CachedPolicy()

    def inline_scripts() -> tuple[int, int, str]:
        # Dash only ever appends inline scripts (one per clientside callback, the page router's
        # among them, registered on the app or in Dash's global list until the app takes them
        # in), so their counts and the renderer say whether the set changed.
        return len(app._inline_scripts), len(GLOBAL_INLINE_SCRIPTS), app.renderer

    def content_security_policy() -> str:
        if policy.scripts != inline_scripts():
            hashes = app.csp_hashes()  # takes the global ones into the app's own list
            directives = {**CSP_BASE, "script-src": ["'self'", *hashes]}
            policy.value = "; ".join(f"{name} {' '.join(sources)}" for name, sources in directives.items())
            policy.scripts = inline_scripts()
            policy.builds += 1
        return policy.value

    @server.after_request
    def add_security_headers(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = content_security_policy()
        response.headers.update(SECURITY_HEADERS)
        if request.endpoint not in files:
            response.headers["Cache-Control"] = "no-store"
        return response
