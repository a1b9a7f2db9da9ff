"""The dashboard's Content-Security-Policy: it lets exactly the page's own inline scripts run
(by their hashes), and it is built once, again only when Dash's set of inline scripts changes,
not on every response (the real app on a real warehouse, through Flask's test client; the
browser test in test_dashboard_auth.py has Chromium enforce it on every page)."""

from __future__ import annotations

import base64
import hashlib
import re

from dash import Input, Output
from warehouse_helpers import migrated_warehouse

from core.config import DashboardUser, load_settings
from dashboards.app import create_app
from dashboards.auth import Credentials, hash_password
from dashboards.data import DashboardContext
from dashboards.hardening import POLICY_EXTENSION

LOGIN = {"Authorization": "Basic " + base64.b64encode(b"ada:a-password").decode()}


def script_hashes(header: str) -> list[str]:
    policy = dict(directive.strip().split(" ", 1) for directive in header.split(";"))
    sources = policy["script-src"].split()
    assert sources[0] == "'self'"
    return sources[1:]


def inline_scripts(page: str) -> list[str]:
    """The scripts a browser runs from the page's own text: not those in comments (Dash's note
    for Internet Explorer), not those loaded by src, not JSON data."""
    page = re.sub(r"<!--.*?-->", "", page, flags=re.S)
    return [
        body
        for attributes, body in re.findall(r"<script([^>]*)>(.*?)</script>", page, re.S)
        if "src=" not in attributes and "application/json" not in attributes
    ]


def sha256_source(script: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"


def test_the_policy_hashes_the_page_s_inline_scripts_and_is_built_once(tmp_path):
    with migrated_warehouse(tmp_path / "warehouse") as client:
        app = create_app(
            DashboardContext(load_settings(), client),
            Credentials({"ada": DashboardUser("admin", hash_password("a-password"))}, {}),
        )
        browser = app.server.test_client()
        policy = app.server.extensions[POLICY_EXTENSION]
        page = browser.get("/", headers=LOGIN)
        assert page.status_code == 200
        inline = inline_scripts(page.get_data(as_text=True))
        assert inline, "Dash renders its inline scripts into the page"
        header = page.headers["Content-Security-Policy"]
        assert set(script_hashes(header)) == {sha256_source(script) for script in inline}

        for path in ("/reports", "/_dash-layout", "/_dash-dependencies", "/api/wallboard", "/", "/nowhere"):
            response = browser.get(path, headers=LOGIN)
            assert response.headers["Content-Security-Policy"] == header, path
        assert policy.builds == 1

        # A clientside callback registered later is a new inline script: the policy takes it in
        # once, and the page that carries it may run it.
        app.clientside_callback(
            "function(n) { return n; }", Output("csp-probe-out", "children"), Input("csp-probe-in", "value")
        )
        page = browser.get("/", headers=LOGIN)
        inline = inline_scripts(page.get_data(as_text=True))
        assert any("return n;" in script for script in inline)
        header_after = page.headers["Content-Security-Policy"]
        assert header_after != header
        assert set(script_hashes(header_after)) == {sha256_source(script) for script in inline}
        browser.get("/alerts", headers=LOGIN)
        assert policy.builds == 2
