"""The wallboard fits the screen it is on, in real Chromium: at 1920x1080 and 1280x720 a
board of 4 and of 12 campaigns shows every tile without scrolling, its big numbers still
readable; a phone 390 px wide gets one column and no sideways scrolling; beyond what fits,
the board turns pages every dashboard.rotate_seconds with a page indicator. Each tile's
floor strip shows its agents by state, calls waiting, dial level and drops. Screenshots go
to test-artifacts/wallboard-<width>x<height>-<campaigns>.png.

Needs Debian's chromium at /usr/bin/chromium, as tests/test_wallboard_browser.py does."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from test_wallboard_browser import CHROMIUM, CHROMIUM_ARGS, _require_browser, wait_for_dashboard

from core.schema import AgentStateChange, CallAttempt, DialerState, Lead, Outcome
from producers.publisher import EventPublisher

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
SCREENS = [(1920, 1080), (1280, 720)]
PHONE = (390, 844)
ROTATE_SECONDS = 4
# Readable across a room: the live abandon rate at least this tall (CSS px) on each TV size.
SMALLEST_BIG_NUMBER = {(1920, 1080): 44, (1280, 720): 28}
OUTCOMES = [
    Outcome.NO_ANSWER,
    Outcome.CONNECTED,
    Outcome.BUSY,
    Outcome.CONNECTED,
    Outcome.MACHINE,
    Outcome.CONNECTED,
    Outcome.ABANDONED,
    Outcome.NO_ANSWER,
    Outcome.CONNECTED,
    Outcome.NO_ANSWER,
]


def campaign_name(index: int) -> str:
    return f"campaign-{chr(ord('a') + index)}"


def floor_events(campaign: str, index: int, now: datetime) -> list:
    """A campaign's calls over the last 20 minutes, its agents (1 + index % 3 ready, 2 on a
    call, 1 in wrap-up, index % 2 paused) and a dialer snapshot."""
    events: list = []
    for n in range(40 + index):
        outcome = OUTCOMES[n % len(OUTCOMES)]
        events.append(
            CallAttempt(
                schema_version=1,
                event_id=f"{campaign}-call-{n}",
                campaign=campaign,
                event_time=now - timedelta(seconds=30 * n + index),
                outcome=outcome,
                lead=Lead(segment="seniors"),
                ring_seconds=12.0,
                wait_seconds=1.0 if outcome in (Outcome.CONNECTED, Outcome.ABANDONED) else None,
                talk_seconds=90.0 if outcome is Outcome.CONNECTED else 0.0,
                order=outcome is Outcome.CONNECTED and n % 4 == 1,
                agent=f"{campaign}-agent-0" if outcome is Outcome.CONNECTED else None,
            )
        )
    states = ["available"] * (1 + index % 3) + ["on_call"] * 2 + ["wrap_up"] + ["paused"] * (index % 2)
    for number, state in enumerate(states):
        events.append(
            AgentStateChange(
                schema_version=1,
                event_id=f"{campaign}-agent-{number}-{state}",
                campaign=campaign,
                event_time=now - timedelta(seconds=20 + number),
                agent=f"{campaign}-agent-{number}",
                state=state,
                team="floor-1",
            )
        )
    events.append(
        DialerState(
            schema_version=1,
            event_id=f"{campaign}-dialer",
            campaign=campaign,
            event_time=now - timedelta(seconds=2),
            dial_level=1.5 + index / 10,
            calls_ringing=3,
            calls_waiting=index % 3,
            longest_wait_seconds=4.0 * (index % 3),
        )
    )
    return events


def publish_campaigns(settings, indices: range, now: datetime) -> None:
    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events, batch_events=50)
    for index in indices:
        publisher.publish_all(floor_events(campaign_name(index), index, now))
    publisher.close()


def measure(page) -> dict:
    """The page's scroll size against its viewport, and every tile's box."""
    return page.evaluate("""() => ({
        scrollWidth: document.documentElement.scrollWidth, scrollHeight: document.documentElement.scrollHeight,
        innerWidth: window.innerWidth, innerHeight: window.innerHeight,
        tiles: [...document.querySelectorAll('.tile[data-campaign]')].map(t => {
            const box = t.getBoundingClientRect();
            const big = t.querySelector('[data-testid=live-abandon-rate]');
            return {campaign: t.dataset.campaign, top: box.top, bottom: box.bottom, left: box.left, right: box.right,
                    bigNumberPx: big ? big.getBoundingClientRect().height : 0,
                    overflowing: t.scrollHeight > t.clientHeight + 1};
        }),
    })""")


def check_board(browser, base_url: str, login: dict, size: tuple[int, int], campaigns: int) -> None:
    from playwright.sync_api import expect

    width, height = size
    context = browser.new_context(viewport={"width": width, "height": height}, http_credentials=login)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(base_url + "/", wait_until="domcontentloaded")
    expect(page.locator(".tile[data-campaign]")).to_have_count(campaigns, timeout=30_000)
    # Each campaign has two agents on a call.
    expect(page.locator(".tile[data-campaign] [data-testid=agents-on_call]").first).to_have_text("2", timeout=30_000)
    expect(page.get_by_test_id("centre-total").get_by_test_id("agents-on_call")).to_have_text(str(2 * campaigns))
    page.wait_for_timeout(500)  # fonts and the sparklines settle
    shape = measure(page)
    page.screenshot(path=str(ARTIFACTS / f"wallboard-{width}x{height}-{campaigns}.png"))
    context.close()
    assert errors == [], errors
    assert shape["scrollWidth"] <= width, f"{size}: the page is {shape['scrollWidth']} px wide"
    if size == PHONE:
        lefts = {round(tile["left"]) for tile in shape["tiles"]}
        assert len(lefts) == 1, f"a phone shows one column, not {len(lefts)}"
        return
    assert shape["scrollHeight"] <= height, f"{size} with {campaigns}: the page is {shape['scrollHeight']} px tall"
    for tile in shape["tiles"]:
        assert tile["bottom"] <= height and tile["right"] <= width, f"{tile['campaign']} is cut off at {size}"
        assert tile["bigNumberPx"] >= SMALLEST_BIG_NUMBER[size], (
            f"{tile['campaign']}'s abandon rate is {tile['bigNumberPx']:.0f} px tall at {size}"
        )
        assert not tile["overflowing"], f"{tile['campaign']}'s tile cuts off its own content at {size}"


@pytest.mark.timeout(300)
def test_the_board_fits_tvs_and_phones_and_turns_pages_beyond_twelve(pipeline, dashboard_login):
    _require_browser()
    from playwright.sync_api import expect, sync_playwright

    with pipeline.config_file.open("a") as config:
        config.write(f"\n[dashboard]\nrotate_seconds = {ROTATE_SECONDS}\n")
    settings = pipeline.settings
    now = datetime.now(timezone.utc)
    worker = pipeline.worker()
    worker.wait_until(lambda health: health["ready"], timeout_s=90)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    base_url = f"http://{settings.embedded.dashboard_host}:{settings.embedded.dashboard_port}"
    wait_for_dashboard(base_url)
    login = dashboard_login.http_credentials("supervisor")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            publish_campaigns(settings, range(4), now)
            worker.wait_until_caught_up(timeout_s=60)
            for size in [*SCREENS, PHONE]:
                check_board(browser, base_url, login, size, 4)

            publish_campaigns(settings, range(4, 12), now)
            worker.wait_until_caught_up(timeout_s=60)
            for size in [*SCREENS, PHONE]:
                check_board(browser, base_url, login, size, 12)

            # Fifteen: two pages of 8 and 7 tiles, turned every ROTATE_SECONDS.
            publish_campaigns(settings, range(12, 15), now)
            worker.wait_until_caught_up(timeout_s=60)
            context = browser.new_context(viewport={"width": 1920, "height": 1080}, http_credentials=login)
            page = context.new_page()
            page.goto(base_url + "/", wait_until="domcontentloaded")
            indicator = page.get_by_test_id("page-indicator")
            seen: dict[str, set[str]] = {}
            for _ in range(2):
                expect(indicator).to_contain_text("/ 2", timeout=30_000)
                label = indicator.locator(".page-number").inner_text()
                tiles = page.locator(".tile[data-campaign]")
                seen[label] = {tiles.nth(i).get_attribute("data-campaign") for i in range(tiles.count())}
                shape = measure(page)
                assert shape["scrollHeight"] <= 1080 and shape["scrollWidth"] <= 1920
                page.screenshot(path=str(ARTIFACTS / f"wallboard-1920x1080-15-{label.replace(' / ', '-of-')}.png"))
                expect(indicator.locator(".page-number")).not_to_have_text(label, timeout=(ROTATE_SECONDS + 8) * 1000)
            context.close()
        finally:
            browser.close()
    assert sorted(seen) == ["page 1 / 2", "page 2 / 2"]
    assert len(seen["page 1 / 2"]) == 8 and len(seen["page 2 / 2"]) == 7
    assert seen["page 1 / 2"] | seen["page 2 / 2"] == {campaign_name(index) for index in range(15)}
    assert worker.stop() == 0
