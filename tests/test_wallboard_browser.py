"""The wallboard in a real browser: recent seeded calls -> broker -> worker -> chDB -> Dash -> Chromium.

Checks what a supervisor reads off the TV: one tile per campaign, today's dials and
contact rate, the live abandon rate and its colour level, a fresh "updated N s ago",
and tiles that refresh by themselves when more calls land. The expectations are
computed independently from the published events, not from the warehouse.

Needs Debian's chromium at /usr/bin/chromium (``apt-get install -y chromium``); the
test fails, rather than skips, without it. It never runs ``playwright install``.
"""

from __future__ import annotations

import re
import time
import urllib.request
from collections import defaultdict
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from core.config import Settings
from core.metrics import COST_FORMULA, format_metric
from core.schema import CallAttempt, Outcome
from core.slots import SlotRules
from dashboards.data import abandon_level, local_day_start
from producers.publisher import EventPublisher
from producers.simulator import DialerSimulator

pytestmark = pytest.mark.browser

PROJECT_ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = PROJECT_ROOT / "test-artifacts" / "wallboard.png"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CAMPAIGNS = {"home-insurance", "broadband-upgrade", "charity-giving", "credit-card-winback"}
FRESHNESS = re.compile(r"^updated \d+ s ago$")


def _require_browser():
    """Fail (not skip) when the browser pieces are missing: a skipped UI test hides a broken setup."""
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium first "
            "(apt-get update && apt-get install -y chromium); this test does not use `playwright install`",
            pytrace=False,
        )
    try:
        from playwright.sync_api import sync_playwright  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        pytest.fail(f"playwright is not installed ({exc}): pip install -e '.[test]'", pytrace=False)


def recent_start(settings: Settings, now: datetime) -> datetime:
    """About 40 minutes ago, but never before today's local midnight, so every event is 'today'.

    Just after local midnight this puts the calls slightly in the future; the board follows
    event time and freshness follows landing time, so the checks hold either way.
    """
    day_start = local_day_start(now, settings)
    return max(now - timedelta(minutes=40), day_start + timedelta(minutes=1))


def _minute(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(second=0, microsecond=0)


def expected_tiles(events: list[CallAttempt], settings: Settings, today) -> dict[str, dict]:
    """Per campaign, what the tile should show: computed from the raw events alone."""
    todays = [e for e in events if e.event_time.astimezone(settings.zone).date() == today]
    # The board's "now" is the newest event minute plus one; the live window is the 15 minutes before it.
    board_now = max(_minute(e.event_time) for e in todays) + timedelta(minutes=1)
    live_start = board_now - timedelta(minutes=15)
    ftc_connect_seconds = settings.compliance.ftc_connect_seconds
    sums: dict[str, dict] = defaultdict(lambda: defaultdict(int))
    for event in todays:
        row = sums[event.campaign]
        connected = event.outcome is Outcome.CONNECTED
        abandoned = event.outcome is Outcome.ABANDONED
        row["dials"] += 1
        row["contacts"] += connected or abandoned
        row["abandoned"] += abandoned
        # The US 30 days are the FTC's: dropped, or connected after more than its seconds (a
        # connected call without a wait counts as in time, the figure's lower bound).
        late = connected and event.wait_seconds is not None and event.wait_seconds > ftc_connect_seconds
        row["abandoned_ftc"] += abandoned or late
        row["orders"] += connected and event.order
        if _minute(event.event_time) >= live_start:
            row["live_contacts"] += connected or abandoned
            row["live_abandoned"] += abandoned
    tiles = {}
    for campaign, row in sums.items():
        live_rate = row["live_abandoned"] / row["live_contacts"] if row["live_contacts"] else None
        gauge_top = 2 * settings.alert_rules_for(campaign).abandon_critical
        tiles[campaign] = {
            "dials": format_metric("dials", row["dials"]),
            "dials_n": row["dials"],
            "contact_rate": format_metric("contact_rate", row["contacts"] / row["dials"]),
            "abandon_today": format_metric(
                "abandon_rate", row["abandoned"] / row["contacts"] if row["contacts"] else None
            ),
            "orders": format_metric("orders", row["orders"]),
            "live_abandon_rate": format_metric("abandon_rate", live_rate),
            "live_contacts": row["live_contacts"],
            "uk_24h": format_metric("abandon_rate", row["abandoned"] / row["contacts"] if row["contacts"] else None),
            "us_30d": format_metric(
                "abandon_rate", row["abandoned_ftc"] / row["contacts"] if row["contacts"] else None
            ),
            "level": abandon_level(live_rate, settings, campaign),
            # The gauge spans 0 to twice the critical line.
            "gauge_fill": f"{min((live_rate or 0.0) / gauge_top, 1):.4f}",
        }
    return tiles


def wait_for_dashboard(url: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"dashboard at {url} did not answer /healthz in {timeout_s} s")
        time.sleep(0.3)


@contextmanager
def dashboard_page(settings: Settings, page_errors: list[str], login: dict[str, str]):
    """The dashboard's wallboard open in headless Chromium at TV size, logged in with ``login``
    (Playwright's http_credentials, e.g. ``dashboard_login.http_credentials("supervisor")``);
    JS errors are collected."""
    from playwright.sync_api import expect, sync_playwright

    url = f"http://{settings.embedded.dashboard_host}:{settings.embedded.dashboard_port}"
    wait_for_dashboard(url)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1920, "height": 1080}, http_credentials=login).new_page()
            page.on("pageerror", lambda exc: page_errors.append(str(exc)))
            expect.set_options(timeout=20_000)
            page.goto(url + "/", wait_until="domcontentloaded")
            yield page
        finally:
            browser.close()


@pytest.mark.timeout(180)
def test_wallboard_shows_todays_calls_and_refreshes_itself(pipeline, dashboard_login):
    _require_browser()
    from playwright.sync_api import expect

    settings = pipeline.settings
    now = datetime.now(timezone.utc)
    today = now.astimezone(settings.zone).date()
    simulator = DialerSimulator(
        SlotRules(settings.slots, settings.zone), b"test-key", seed=11, start=recent_start(settings, now)
    )
    events = list(simulator.events(sim_seconds=30 * 60))
    more = list(simulator.events(sim_seconds=32 * 60))  # published later, to watch the board refresh
    assert {e.campaign for e in events} == CAMPAIGNS
    assert {e.campaign for e in more} == CAMPAIGNS, "every campaign should get a few more calls"
    assert all(e.event_time.astimezone(settings.zone).date() == today for e in events + more), (
        "the seeded calls must all fall in today's local day"
    )

    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events)
    publisher.publish_all(events)
    publisher.flush()

    worker = pipeline.worker()
    health = worker.wait_until_caught_up(timeout_s=60)
    assert health["counted"] == len(events), health
    first = expected_tiles(events, settings, today)

    page_errors: list[str] = []
    with dashboard_page(settings, page_errors, dashboard_login.http_credentials("supervisor")) as page:
        tiles = page.locator(".tile[data-campaign]")
        expect(tiles).to_have_count(len(CAMPAIGNS))
        shown = sorted(tiles.nth(i).get_attribute("data-campaign") for i in range(tiles.count()))
        assert shown == sorted(CAMPAIGNS)

        for campaign, want in first.items():
            tile = page.locator(f'.tile[data-campaign="{campaign}"]')
            expect(tile.get_by_test_id("dials")).to_have_text(want["dials"])
            expect(tile.get_by_test_id("contact-rate")).to_have_text(want["contact_rate"])
            expect(tile.get_by_test_id("abandon-today")).to_have_text(want["abandon_today"])
            expect(tile.get_by_test_id("orders")).to_have_text(want["orders"])
            expect(tile.get_by_test_id("live-abandon-rate")).to_have_text(want["live_abandon_rate"])
            expect(tile).to_contain_text(f"{want['live_contacts']} live answers")
            expect(tile).to_have_class(re.compile(rf"\blevel-{want['level']}\b"))
            expect(tile.get_by_test_id("abandon-gauge")).to_have_attribute("data-fill", want["gauge_fill"])
            # All the seeded calls are within 24 hours and 30 days, so both windows equal today's.
            expect(tile.get_by_test_id("uk_24h")).to_have_text(want["uk_24h"])
            expect(tile.get_by_test_id("us_30d")).to_have_text(want["us_30d"])
            expect(tile.get_by_test_id("cpo")).to_have_text(re.compile(r"^[\d,]+\.\d\d$"))

        freshness = page.locator(".freshness")
        expect(freshness).to_have_text(FRESHNESS)
        expect(freshness).to_have_class(re.compile(r"\bfresh\b"))
        expect(freshness).not_to_have_class(re.compile(r"\bstale\b"))

        # More calls land; the open page must pick them up by itself, with no reload.
        page.evaluate("window.__callpulse_no_reload = true")
        publisher.publish_all(more)
        publisher.close()
        second = expected_tiles(events + more, settings, today)
        for campaign, want in second.items():
            assert want["dials_n"] > first[campaign]["dials_n"]
            tile = page.locator(f'.tile[data-campaign="{campaign}"]')
            expect(tile.get_by_test_id("dials")).to_have_text(want["dials"], timeout=30_000)
            expect(tile.get_by_test_id("contact-rate")).to_have_text(want["contact_rate"])
        assert page.evaluate("window.__callpulse_no_reload === true"), "the page reloaded instead of refreshing"
        expect(freshness).to_have_text(FRESHNESS)
        expect(freshness).to_have_class(re.compile(r"\bfresh\b"))

        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)

        # The definitions page states the formulas the numbers above were computed with.
        page.get_by_role("link", name="Definitions").click()
        expect(page.get_by_test_id("cost-formula")).to_have_text(COST_FORMULA)
        expect(page.get_by_test_id("metric-definitions")).to_contain_text("abandoned / contacts")
        expect(page.get_by_test_id("compliance-definitions").locator("tbody tr")).to_have_count(3)
        expect(page.get_by_test_id("cost-models")).to_contain_text("default")

    assert page_errors == [], f"JavaScript errors on the wallboard: {page_errors}"
    health = worker.wait_until_caught_up(timeout_s=30)
    assert health["counted"] == len(events) + len(more)
    assert health["dead_letters"] == {}
    assert worker.stop() == 0
