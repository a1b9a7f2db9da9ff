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


PAGING_SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.mark.timeout(240)
def test_the_floor_pages_filters_and_orders_a_floor_in_the_warehouse(pipeline, dashboard_login):
    """130 agents over three campaigns: 50 to a page with the pauses past the limit first, the
    next page shows the next 50 agents, a campaign, a state or an agent id narrows the rows and
    the counts, and a phone gets the page without scrolling sideways; no CSP or script error."""
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    settings = pipeline.settings
    now = datetime.now(timezone.utc).replace(microsecond=0)
    campaigns = {"home-insurance": 59, "broadband": 49, "energy": 19}  # and one long pause each
    states = ("on_call", "available", "wrap_up", "on_call", "paused")
    events: list = []
    expected_states: dict[str, str] = {}
    for campaign, agents in campaigns.items():
        for number in range(agents):
            name = f"{campaign}-{number:02d}"
            state = states[number % len(states)]
            expected_states[name] = state
            events += [agent_event(name, campaign, state, now - timedelta(seconds=s)) for s in (100 + number, 5)]
    long_pauses = {"energy-19": 1500, "broadband-49": 1320, "home-insurance-59": 1140}  # seconds paused
    for name, seconds in long_pauses.items():
        expected_states[name] = "paused"
        campaign = name.rsplit("-", 1)[0]
        events += [agent_event(name, campaign, "paused", now - timedelta(seconds=s)) for s in range(seconds, 4, -240)]
        events.append(agent_event(name, campaign, "paused", now - timedelta(seconds=4)))
    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events)
    publisher.publish_all(sorted(events, key=lambda event: event.event_time))
    publisher.close()
    worker = pipeline.worker()
    worker.wait_until_caught_up(timeout_s=120)

    base_url = f"http://{settings.embedded.dashboard_host}:{settings.embedded.dashboard_port}"
    wait_for_dashboard(base_url)
    problems: list[str] = []
    paused = sum(1 for state in expected_states.values() if state == "paused")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(
                viewport={"width": 1280, "height": 720}, http_credentials=dashboard_login.http_credentials("supervisor")
            )
            page = context.new_page()
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            page.goto(base_url + "/floor", wait_until="domcontentloaded")
            rows, position = page.locator("tr[data-agent]"), page.get_by_test_id("floor-position")
            expect(position).to_have_text("agents 1–50 of 130 · page 1 of 3", timeout=30_000)
            expect(rows).to_have_count(50)
            summary = page.get_by_test_id("floor-summary")
            expect(summary.locator('[data-state="paused"]')).to_have_text(f"{paused} paused")
            expect(summary.locator('[data-state="over_limit"]')).to_have_text("3 paused longer than 15:00")
            # The pauses past the limit come first, the longest first.
            first = [rows.nth(index).get_attribute("data-agent") for index in range(4)]
            assert first[:3] == list(long_pauses), first
            assert expected_states[first[3]] == "paused"
            expect(rows.nth(0).get_by_test_id("time-in-state")).to_have_text(re.compile(r"^25:\d\d$"))
            first_page = set(rows.evaluate_all("rows => rows.map(row => row.dataset.agent)"))
            page.screenshot(path=str(PAGING_SCREENSHOTS / "floor-paging-1.png"), full_page=True)

            page.get_by_role("button", name="Next ›").click()
            expect(position).to_have_text("agents 51–100 of 130 · page 2 of 3")
            second_page = set(rows.evaluate_all("rows => rows.map(row => row.dataset.agent)"))
            assert len(second_page) == 50 and not first_page & second_page
            page.get_by_role("button", name="Next ›").click()
            expect(position).to_have_text("agents 101–130 of 130 · page 3 of 3")
            expect(rows).to_have_count(30)
            expect(page.get_by_role("button", name="Next ›")).to_be_disabled()
            third_page = set(rows.evaluate_all("rows => rows.map(row => row.dataset.agent)"))
            assert first_page | second_page | third_page == set(expected_states)

            # A campaign, typed into its filter: its 20 agents and its counts, from the first page.
            page.locator("#floor-campaign").click()
            page.keyboard.type("energ")
            page.locator(".dash-dropdown-option", has_text=re.compile(r"^energy$")).click()  # offered by the server
            expect(position).to_have_text("agents 1–20 of 20 · page 1 of 1")
            assert set(rows.evaluate_all("rows => rows.map(row => row.cells[1].innerText)")) == {"energy"}
            energy_paused = sum(1 for n, s in expected_states.items() if n.startswith("energy") and s == "paused")
            expect(summary.locator('[data-state="paused"]')).to_have_text(f"{energy_paused} paused")
            expect(summary.locator('[data-state="over_limit"]')).to_have_text("1 paused longer than 15:00")
            page.screenshot(path=str(PAGING_SCREENSHOTS / "floor-paging-campaign.png"), full_page=True)

            # A state on top of it, then an agent id alone.
            page.locator("#floor-state").click()
            page.locator(".dash-dropdown-option", has_text=re.compile(r"^on call$")).click()
            energy_on_call = sorted(n for n, s in expected_states.items() if n.startswith("energy") and s == "on_call")
            expect(rows).to_have_count(len(energy_on_call))
            assert set(rows.evaluate_all("rows => rows.map(row => row.dataset.state)")) == {"on_call"}
            page.goto(base_url + "/floor", wait_until="domcontentloaded")  # the filters start empty again
            expect(position).to_have_text("agents 1–50 of 130 · page 1 of 3", timeout=30_000)
            page.get_by_placeholder("id contains").fill("broadband-4")
            page.get_by_placeholder("id contains").press("Enter")
            expect(position).to_have_text("agents 1–10 of 10 · page 1 of 1")
            assert {name for name in rows.evaluate_all("rows => rows.map(row => row.dataset.agent)")} == {
                f"broadband-4{digit}" for digit in range(10)
            }
            context.close()

            phone = browser.new_context(
                viewport={"width": 390, "height": 844}, http_credentials=dashboard_login.http_credentials("supervisor")
            )
            page = phone.new_page()
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            page.goto(base_url + "/floor", wait_until="domcontentloaded")
            first_page_text = "agents 1–50 of 130 · page 1 of 3"
            expect(page.get_by_test_id("floor-position")).to_have_text(first_page_text, timeout=30_000)
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            page.screenshot(path=str(PAGING_SCREENSHOTS / "floor-paging-phone.png"))
            phone.close()
        finally:
            browser.close()
    assert problems == [], problems
    assert worker.stop() == 0
