"""The /floor page in real Chromium: one row per agent with campaign, state, time in state
(red past agents.pause_limit_seconds when paused), calls and orders today, for a supervisor.

Needs Debian's chromium at /usr/bin/chromium, as tests/test_wallboard_browser.py does."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from test_wallboard_browser import CHROMIUM, CHROMIUM_ARGS, _require_browser, wait_for_dashboard

from core.schema import AgentStateChange, CallAttempt, Lead, Outcome
from producers.publisher import EventPublisher

pytestmark = pytest.mark.browser

SCREENSHOT = Path(__file__).resolve().parents[1] / "test-artifacts" / "floor.png"


def agent_event(agent: str, campaign: str, state: str, at: datetime) -> AgentStateChange:
    return AgentStateChange(
        schema_version=1,
        event_id=f"{agent}-{state}-{at.timestamp():.0f}",
        campaign=campaign,
        event_time=at,
        agent=agent,
        state=state,
        team="floor-1",
    )


@pytest.mark.timeout(180)
def test_the_floor_lists_every_agent_and_marks_a_long_pause(pipeline, dashboard_login):
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    settings = pipeline.settings
    now = datetime.now(timezone.utc).replace(microsecond=0)
    events: list = []
    # aiko: paused 20 minutes (past the 15-minute limit), still there: her state is sent again
    # every few minutes, as a dialer does, so she is not taken for logged out.
    events += [
        agent_event("aiko", "home-insurance", "paused", now - timedelta(seconds=s))
        for s in (1200, 960, 720, 480, 240, 5)
    ]
    events += [agent_event("ben", "home-insurance", "on_call", now - timedelta(seconds=s)) for s in (200, 5)]
    events += [agent_event("chie", "broadband", "paused", now - timedelta(seconds=s)) for s in (120, 5)]
    for n in range(5):  # ben's calls today, two of them orders
        events.append(
            CallAttempt(
                schema_version=1,
                event_id=f"ben-call-{n}",
                campaign="home-insurance",
                event_time=now - timedelta(seconds=600 + 60 * n),
                outcome=Outcome.CONNECTED,
                lead=Lead(segment="seniors"),
                talk_seconds=50.0,
                wait_seconds=1.0,
                order=n < 2,
                agent="ben",
            )
        )
    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events)
    publisher.publish_all(sorted(events, key=lambda event: event.event_time))
    publisher.close()
    worker = pipeline.worker()
    worker.wait_until_caught_up(timeout_s=90)

    base_url = f"http://{settings.embedded.dashboard_host}:{settings.embedded.dashboard_port}"
    wait_for_dashboard(base_url)
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(
                viewport={"width": 1280, "height": 720}, http_credentials=dashboard_login.http_credentials("supervisor")
            )
            page = context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(base_url + "/floor", wait_until="domcontentloaded")
            rows = page.locator("tr[data-agent]")
            expect(rows).to_have_count(3, timeout=30_000)
            aiko, ben, chie = (page.locator(f'tr[data-agent="{name}"]') for name in ("aiko", "ben", "chie"))
            expect(aiko).to_have_attribute("data-state", "paused")
            expect(aiko.get_by_test_id("time-in-state")).to_have_text(re.compile(r"^20:\d\d$"))
            expect(aiko.get_by_test_id("time-in-state")).to_have_class(re.compile(r"\bover-limit\b"))
            expect(chie).to_have_attribute("data-state", "paused")
            expect(chie.get_by_test_id("time-in-state")).to_have_text(re.compile(r"^2:\d\d$"))
            expect(chie.get_by_test_id("time-in-state")).not_to_have_class(re.compile(r"\bover-limit\b"))
            expect(ben).to_have_attribute("data-state", "on_call")
            expect(ben.locator("td")).to_have_text(
                ["ben", "home-insurance", "floor-1", "on call", re.compile(r"^3:\d\d$"), "5", "2"]
            )
            expect(page.get_by_test_id("floor-summary")).to_contain_text("1 paused longer than 15:00")
            expect(page.get_by_role("link", name="Floor")).to_be_visible()
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
            context.close()
        finally:
            browser.close()
    assert errors == [], errors
    assert worker.stop() == 0
