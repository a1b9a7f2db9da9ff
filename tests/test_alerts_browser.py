"""The alert banner and the Alerts page in a real browser: a campaign's abandon rate is
pushed to 5 % and stays there; the banner appears on the wallboard, the Alerts page lists
the episode, and acknowledging it takes the banner down."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from test_wallboard_browser import _require_browser, dashboard_page

from producers.publisher import EventPublisher
from producers.scenarios import Phase, abandon_rate_phases

pytestmark = pytest.mark.browser


@pytest.mark.timeout(180)
def test_banner_shows_a_firing_alert_until_it_is_acknowledged(pipeline, dashboard_login):
    _require_browser()
    from playwright.sync_api import expect

    with pipeline.config_file.open("a") as config:  # one alert: the live abandon rule, not compliance too
        config.write('\n[alerts.rules.winback]\ncompliance_limit = 0.5\n')
    settings = pipeline.settings
    start = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(minutes=40)
    events = list(abandon_rate_phases("winback", start, (Phase(20, 0.01), Phase(15, 0.05)), dials_per_minute=150))
    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events)
    publisher.publish_all(events)
    publisher.close()

    worker = pipeline.worker()
    worker.wait_until_caught_up(timeout_s=90)
    health = worker.wait_until(lambda h: h["alerts_firing"] >= 1, timeout_s=30)
    assert health["alerts_firing"] == 1

    page_errors: list[str] = []
    with dashboard_page(settings, page_errors, dashboard_login.http_credentials("supervisor")) as page:
        banner = page.get_by_test_id("alert-banner")
        expect(banner).to_be_visible()
        expect(banner).to_have_class(re.compile(r"\bcritical\b"))
        # The value that crossed the 3 % line, and the sample behind it.
        expect(banner).to_contain_text(
            re.compile(r"CRITICAL · winback · abandon rate 3\.\d % · \d+ abandoned of \d+ live"))
        page.screenshot(path=str(pipeline.data_dir / "banner.png"))

        banner.get_by_role("link", name="open alerts").click()
        card = page.locator(".alert-card")
        expect(card).to_have_count(1)
        expect(card).to_contain_text("winback")
        expect(page.locator("#alert-history")).to_contain_text("firing")
        page.locator("#ack-by").fill("dana")
        page.locator("#ack-by").press("Enter")
        card.get_by_role("button", name="Acknowledge").click()
        expect(card).to_contain_text("acknowledged by dana")
        expect(banner).to_be_hidden()

        # Still acknowledged on another page: the banner stays down.
        page.get_by_role("link", name="Wallboard").click()
        expect(page.locator(".tile[data-campaign='winback']")).to_be_visible()
        expect(banner).to_be_hidden()
    assert page_errors == [], page_errors
    assert worker.stop() == 0
