"""The Best-time page in a real browser: a hand-made calling day goes broker -> worker ->
chDB, and the page shows the recommendation, the interval and the greyed thin slot that
a manager would read off it, and exports the planning table.

The calls are few and their counts round, so every expectation follows from the events.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from test_reports_browser import ARTIFACTS, plot_data
from test_wallboard_browser import _require_browser, dashboard_page

from analytics.best_time import format_interval
from core.metrics import format_metric, wilson_interval
from core.schema import SCHEMA_VERSION, CallAttempt, Lead, Outcome
from producers.publisher import EventPublisher

pytestmark = pytest.mark.browser

DAY = "2026-11-20"
# Local (Tokyo) slot starts on 20 November, in UTC.
MORNING = datetime(2026, 11, 20, 0, 0, tzinfo=timezone.utc)  # 09:00
MIDDAY = datetime(2026, 11, 20, 3, 0, tzinfo=timezone.utc)  # 12:00
NIGHT = datetime(2026, 11, 20, 9, 0, tzinfo=timezone.utc)  # 18:00


def calls(segment: str, start: datetime, hours: float, dials: int, contacts: int) -> list[CallAttempt]:
    """``dials`` attempts spread evenly over the slot, ``contacts`` of them answered, spread evenly too."""
    step = hours * 3600 / dials
    answered = {round(i * dials / contacts) for i in range(contacts)} if contacts else set()
    return [
        CallAttempt(
            schema_version=SCHEMA_VERSION,
            event_id=str(uuid.uuid4()),
            campaign="home-insurance",
            event_time=start + timedelta(seconds=step * i),
            outcome=Outcome.CONNECTED if i in answered else Outcome.NO_ANSWER,
            lead=Lead(segment=segment),
            talk_seconds=60.0 if i in answered else 0.0,
        )
        for i in range(dials)
    ]


@pytest.mark.timeout(240)
def test_best_time_page_recommends_and_greys_thin_slots(pipeline, dashboard_login):
    _require_browser()
    from playwright.sync_api import expect

    settings = pipeline.settings
    min_calls = settings.dashboard.report_min_calls
    events = sorted(
        calls("seniors", MORNING, 3, 200, 80)
        + calls("seniors", MIDDAY, 4, 200, 40)
        + calls("salaried", MORNING, 3, 10, 1)
        + calls("salaried", NIGHT, 2, 150, 60),
        key=lambda e: e.event_time,
    )
    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events, batch_events=100)
    publisher.publish_all(events)
    publisher.close()
    worker = pipeline.worker()
    assert worker.wait_until_caught_up(timeout_s=90)["counted"] == len(events)

    page_errors: list[str] = []
    with dashboard_page(settings, page_errors, dashboard_login.http_credentials("manager")) as page:
        base = page.url.rstrip("/")
        # No dates in the URL: four weeks ending on the newest landed day.
        page.goto(f"{base}/best-time")
        expect(page.get_by_test_id("best-time-summary")).to_contain_text(
            f"to {DAY} ({settings.pipeline.timezone}) · {len(events):,} dials"
        )
        windows = page.locator("#best-time-windows")
        seniors = windows.locator("tr", has_text="seniors")
        # 40 % in the morning against 20 % at midday: a clear difference, so morning alone.
        expect(seniors.locator("td").nth(1)).to_have_text("morning")
        expect(seniors).to_contain_text(format_metric("contact_rate", 0.40))
        expect(seniors).to_contain_text(format_interval(*wilson_interval(80, 200)))
        expect(seniors).to_contain_text("09:00–12:00")
        salaried = windows.locator("tr", has_text="salaried")
        expect(salaried.locator("td").nth(1)).to_have_text("night")
        expect(salaried).to_contain_text(format_interval(*wilson_interval(60, 150)))

        heatmap = {trace["name"]: trace for trace in plot_data(page, "best-time-heatmap")}
        rates, thin = heatmap["contact rate"], heatmap["not enough data"]
        row, column = rates["y"].index("salaried"), rates["x"].index("morning")
        assert rates["customdata"][row][column][:2] == [0.1, 10]  # 1 of 10 dials, shown...
        assert rates["z"][row][column] is None and thin["z"][row][column] == 1  # ...but greyed
        assert rates["z"][rates["y"].index("seniors")][column] == pytest.approx(0.40)

        with page.expect_download() as download:
            page.get_by_role("button", name="Export CSV").click()
        planning = pd.read_csv(download.value.path()).set_index(["segment", "slot"])
        assert planning.loc[("salaried", "morning"), "data_note"] == "not enough data"
        assert planning.loc[("seniors", "morning"), ["dials", "contacts"]].tolist() == [200, 80]
        assert bool(planning.loc[("seniors", "morning"), "recommended"])
        assert (planning.loc[planning["dials"] >= min_calls, "data_note"].isna()).all()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(Path(ARTIFACTS) / "page-best-time.png"), full_page=True)
    assert page_errors == [], page_errors
    assert worker.stop() == 0
