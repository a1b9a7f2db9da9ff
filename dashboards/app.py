"""The Dash app: a multi-page app whose pages live in dashboards/pages/.

Every route but /healthz needs a login, and each page, callback and API route a role
(dashboards/auth.py); the nav shows only the pages the signed-in role may open.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

import dash
import msgspec
from dash import Dash, Input, Output, dcc, html
from flask import jsonify, request

from analytics import reports
from dashboards import auth, hardening, theme
from dashboards.alert_banner import banner_items
from dashboards.data import DashboardContext, context, set_context, shared_wallboard_model
from warehouse.queries.alerts import ALERT_VIEWS, active_alerts, alerts_from_frame, listed_alerts

log = logging.getLogger(__name__)
HERE = Path(__file__).parent


def create_app(ctx: DashboardContext, credentials: auth.Credentials | None = None) -> Dash:
    """The app, with the logins from ``credentials`` (default: config, environment and data dir)."""
    set_context(ctx)
    credentials = auth.Credentials.load(ctx.settings) if credentials is None else credentials
    app = Dash(
        # The package's name, not this module's: Dash then loads the pages as dashboards.pages.<page>,
        # the name they are imported by, rather than a second copy as pages.<page> whose duplicate
        # paths the page router refuses.
        "dashboards",
        use_pages=True,
        pages_folder=str(HERE / "pages"),
        assets_folder=str(HERE / "assets"),
        title="CallPulse",
        update_title="",  # no "Updating..." tab title flicker on every refresh (Dash: None or "")
        suppress_callback_exceptions=True,
    )
    # A function, so that each signed-in user's nav lists only the pages their role may open.
    app.layout = lambda: html.Div(
        [
            html.Nav(
                [
                    html.Span("CallPulse", className="brand"),
                    *[
                        dcc.Link(page["name"], href=page["relative_path"], className="nav-link")
                        for page in auth.pages_for(auth.current_principal())
                    ],
                ],
                className="top-nav",
            ),
            html.Div(id="alert-banner", className="alert-banner", **theme.data_attributes(testid="alert-banner")),
            dcc.Interval(id="alert-banner-refresh", interval=int(ctx.settings.dashboard.refresh_seconds * 1000)),
            dash.page_container,
        ],
        className="app-shell",
    )
    auth.protect(app, credentials, auth.LoginLimiter.from_settings(ctx.settings))
    hardening.harden(app)  # security headers on every response; strict JSON (NaN, ±inf as null)

    @app.callback(
        Output("alert-banner", "children"),
        Output("alert-banner", "className"),
        Input("alert-banner-refresh", "n_intervals"),
    )
    def alert_banner(_n):
        # On every page: what is firing and not yet acknowledged, most severe first.
        active = active_alerts(context().client)
        if active.empty:
            return [], "alert-banner hidden"
        unacknowledged = active[active["acknowledged_by"].isna() | (active["acknowledged_by"] == "")]
        alerts = alerts_from_frame(unacknowledged)
        if not alerts:
            return [], "alert-banner hidden"
        worst = "critical" if any(a.severity == "critical" for a in alerts) else "warning"
        items = banner_items(alerts)  # each with the value it fired at and the value now
        return [*items, dcc.Link("open alerts", href="/alerts", className="banner-link")], f"alert-banner {worst}"

    @app.server.get("/api/wallboard")
    @auth.requires(auth.SUPERVISOR)
    def wallboard_json():
        return jsonify(shared_wallboard_model())

    @app.server.get("/api/alerts")
    @auth.requires(auth.SUPERVISOR)
    def alerts_json():
        # ?view=active (the default: what is firing, as the Alerts page lists it), episodes
        # (each episode's newest transition) or transitions (all of them): what
        # `callpulse alerts list` asks for while this process holds the embedded warehouse.
        view = request.args.get("view", "active")
        if view not in ALERT_VIEWS:
            return jsonify({"error": f"view must be one of {', '.join(ALERT_VIEWS)}"}), 400
        return app.server.response_class(
            msgspec.json.encode(listed_alerts(context().client, view)), mimetype="application/json"
        )

    @app.server.get("/api/report")
    @auth.requires(auth.MANAGER)
    def report_json():
        # What `callpulse report` asks for while this process holds the embedded warehouse.
        settings = context().settings
        args = request.args
        try:
            wanted = reports.ReportRequest.parse(
                args.get("by"),
                args.get("metrics"),
                args.get("from"),
                args.get("to"),
                args.get("campaigns"),
                today=datetime.now(settings.zone).date(),
            )
        except reports.ReportError as exc:
            return jsonify({"error": str(exc)}), 400
        frame = reports.run_report(context().client, wanted, settings.zone, settings.compliance.ftc_connect_seconds)
        return jsonify(frame.to_dict("records"))  # the app's strict JSON: a rate over no calls is null

    @app.server.get("/healthz")
    @auth.public
    def healthz():
        context().client.query("SELECT 1")
        return jsonify({"ok": True})

    return app


def serve(app: Dash, host: str, port: int) -> None:
    """Serve with waitress (a production WSGI server), blocking this thread."""
    from waitress import serve as waitress_serve

    log.info("dashboard on http://%s:%d", host, port)
    # Waitress drops X-Forwarded-For unless it trusts the peer itself, and it trusts one address
    # at most: the header is passed on, and dashboards/auth.py (ClientAddress) reads it only from
    # the configured dashboard.trusted_proxies. Nothing else here reads a proxy header.
    waitress_serve(app.server, host=host, port=port, threads=8, _quiet=True, clear_untrusted_proxy_headers=False)
