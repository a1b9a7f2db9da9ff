"""The wallboard of a first start, in a real browser: before any call lands it says it is
waiting for the first calls (and /api/wallboard answers an empty board), then the first
calls to land turn into tiles on the open page.

Needs Debian's chromium at /usr/bin/chromium, as tests/test_wallboard_browser.py does."""

from __future__ import annotations

import json
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest
from test_wallboard_browser import _require_browser, dashboard_page

from core.schema import CallAttempt, Lead, Outcome

pytestmark = pytest.mark.browser


@pytest.mark.timeout(180)
def test_a_first_start_says_it_waits_for_the_first_calls_then_shows_them(pipeline, dashboard_login):
    _require_browser()
    from playwright.sync_api import expect

    from producers.publisher import EventPublisher

    settings = pipeline.settings
    worker = pipeline.worker()
    worker.wait_until(lambda health: health["ready"], timeout_s=90)

    url = f"http://{settings.embedded.dashboard_host}:{settings.embedded.dashboard_port}/api/wallboard"
    request = urllib.request.Request(url, headers=dashboard_login.bearer("supervisor"))
    page_errors: list[str] = []
    with dashboard_page(settings, page_errors, dashboard_login.http_credentials("supervisor")) as page:
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
            board = json.loads(response.read())
        assert board["campaigns"] == [] and board["landed_at"] is None

        waiting = page.get_by_test_id("waiting-for-calls")
        expect(waiting).to_contain_text("Waiting for the first calls to land")
        expect(page.locator(".freshness")).to_have_text("no data yet")

        now = datetime.now(timezone.utc)
        publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events)
        publisher.publish_all(
            [
                CallAttempt(
                    schema_version=1,
                    event_id=f"first-{n}",
                    campaign="winback",
                    outcome=Outcome.CONNECTED,
                    event_time=now - timedelta(seconds=n),
                    lead=Lead(segment="seniors"),
                )
                for n in range(3)
            ]
        )
        publisher.close()
        expect(page.locator('.tile[data-campaign="winback"]').get_by_test_id("dials")).to_have_text("3", timeout=30_000)
        expect(waiting).to_have_count(0)
    assert page_errors == [], f"JavaScript errors on the wallboard: {page_errors}"
    assert worker.stop() == 0
