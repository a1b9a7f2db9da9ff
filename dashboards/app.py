"""The Dash app: a multi-page app whose pages live in dashboards/pages/."""

from __future__ import annotations

import logging
from pathlib import Path

import dash
from dash import Dash, dcc, html
from flask import jsonify

from dashboards.data import DashboardContext, context, set_context, wallboard_model

log = logging.getLogger(__name__)
HERE = Path(__file__).parent


def create_app(ctx: DashboardContext) -> Dash:
    set_context(ctx)
    app = Dash(
        __name__,
        use_pages=True,
        pages_folder=str(HERE / "pages"),
        assets_folder=str(HERE / "assets"),
        title="CallPulse",
        update_title=None,  # no "Updating..." tab title flicker on every refresh
        suppress_callback_exceptions=True,
    )
    app.layout = html.Div(
        [
            html.Nav(
                [
                    html.Span("CallPulse", className="brand"),
                    *[dcc.Link(page["name"], href=page["relative_path"], className="nav-link")
                      for page in dash.page_registry.values()],
                ],
                className="top-nav",
            ),
            dash.page_container,
        ],
        className="app-shell",
    )

    @app.server.get("/api/wallboard")
    def wallboard_json():
        return jsonify(wallboard_model())

    @app.server.get("/healthz")
    def healthz():
        context().client.query("SELECT 1")
        return jsonify({"ok": True})

    return app


def serve(app: Dash, host: str, port: int) -> None:
    """Serve with waitress (a production WSGI server), blocking this thread."""
    from waitress import serve as waitress_serve

    log.info("dashboard on http://%s:%d", host, port)
    waitress_serve(app.server, host=host, port=port, threads=8, _quiet=True)
