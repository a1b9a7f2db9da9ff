"""Manager pages in a real browser, checked against `callpulse report` and the raw calls.

Seeded calls for one morning, plus a hand-made day on which one campaign abandons 10 %
of its live calls, go broker -> worker -> chDB. Then:
- `callpulse report` runs while the worker holds the embedded warehouse (it asks the
  running dashboard) and again after the worker stops (it opens chDB itself); both equal
  a pandas computation over the published calls;
- the Reports page's segment x slot heatmap holds the same values, its URL reproduces the
  report, and its CSV download is byte for byte the CLI's CSV;
- the Compliance page marks the over-limit day and exports it.
Screenshots of every page go to test-artifacts/.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
from test_wallboard_browser import PROJECT_ROOT, _require_browser, dashboard_page

from core.metrics import format_metric
from core.schema import SCHEMA_VERSION, CallAttempt, Lead, Outcome
from core.slots import SlotRules
from producers.publisher import EventPublisher
from producers.simulator import DialerSimulator

pytestmark = pytest.mark.browser

ARTIFACTS = PROJECT_ROOT / "test-artifacts"
MORNING = datetime(2026, 11, 20, 0, 0, tzinfo=timezone.utc)  # 09:00 in Tokyo, Friday 20 November
BAD_DAY = "2026-11-19"
DAY = "2026-11-20"


def bad_day_calls() -> list[CallAttempt]:
    """winback-audit on 19 November: 200 dials, 100 live answers, 10 abandoned (10 %)."""
    start = datetime(2026, 11, 19, 3, 0, tzinfo=timezone.utc)
    outcomes = [Outcome.ABANDONED] * 10 + [Outcome.CONNECTED] * 90 + [Outcome.NO_ANSWER] * 100
    return [
        CallAttempt(
            schema_version=SCHEMA_VERSION,
            event_id=str(uuid.uuid4()),
            campaign="winback-audit",
            event_time=start + timedelta(seconds=20 * i),
            outcome=outcome,
            lead=Lead(segment="seniors"),
            talk_seconds=60.0 if outcome is Outcome.CONNECTED else 0.0,
        )
        for i, outcome in enumerate(outcomes)
    ]


def raw_frame(events, rules: SlotRules) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "campaign": [e.campaign for e in events],
            "segment": [e.lead.segment for e in events],
            "slot": [rules.slot_for(e.event_time) for e in events],
            "day": [e.event_time.astimezone(rules.zone).date().isoformat() for e in events],
            "contact": [e.outcome in (Outcome.CONNECTED, Outcome.ABANDONED) for e in events],
            "abandoned": [e.outcome is Outcome.ABANDONED for e in events],
        }
    )


def cli_report(pipeline, *args: str, login: dict[str, str] | None = None) -> str:
    """`callpulse report`; ``login`` (CALLPULSE_API_* variables) for when it asks the running dashboard."""
    result = subprocess.run(
        [sys.executable, "-m", "callpulse", "--config", str(pipeline.config_file), "report", *args],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={"CALLPULSE_HMAC_KEY": "test-key", "PATH": "/usr/bin:/bin", **(login or {})},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def plot_data(page, graph_id: str) -> list[dict]:
    """The traces Plotly drew in a dcc.Graph, once it has drawn some."""
    selector = f"#{graph_id} .js-plotly-plot"
    page.wait_for_function(f"() => (document.querySelector('{selector}')?.data || []).length > 0")
    return page.evaluate(
        f"() => document.querySelector('{selector}').data"
        ".map(t => ({name: t.name, x: t.x, y: t.y, z: t.z, customdata: t.customdata}))"
    )


@pytest.mark.timeout(300)
def test_reports_and_compliance_pages_agree_with_callpulse_report(pipeline, dashboard_login):
    _require_browser()
    from playwright.sync_api import expect

    ARTIFACTS.mkdir(exist_ok=True)
    settings = pipeline.settings
    rules = SlotRules(settings.slots, settings.zone)
    morning = list(DialerSimulator(rules, b"test-key", seed=23, start=MORNING).events(sim_seconds=4 * 3600))
    events = bad_day_calls() + morning
    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events, batch_events=50)
    publisher.publish_all(events)
    publisher.close()
    worker = pipeline.worker()
    assert worker.wait_until_caught_up(timeout_s=120)["counted"] == len(events)

    raw = raw_frame(events, rules)
    on_day = raw[raw["day"] == DAY]
    expected = on_day.groupby(["segment", "slot"]).agg(dials=("contact", "size"), contacts=("contact", "sum"))
    report_args = ["--by", "segment,slot", "--metrics", "contact_rate", "--from", DAY, "--to", DAY]

    # While the worker holds chDB, the CLI answers through the running dashboard.
    manager = dashboard_login.cli_env("manager")
    live_json = json.loads(cli_report(pipeline, *report_args, "--format", "json", login=manager))
    assert len(live_json) == len(expected) >= 8
    for row in live_json:
        want = expected.loc[(row["segment"], row["slot"])]
        assert row["dials"] == want["dials"]
        assert row["contact_rate"] == pytest.approx(want["contacts"] / want["dials"], rel=1e-12)
    live_csv = cli_report(pipeline, *report_args, "--format", "csv", login=manager)
    assert live_csv.splitlines()[0] == "segment,slot,dials,contact_rate"

    page_errors: list[str] = []
    with dashboard_page(settings, page_errors, dashboard_login.http_credentials("manager")) as page:
        base = page.url.rstrip("/")
        page.screenshot(path=str(ARTIFACTS / "page-wallboard.png"), full_page=True)

        page.goto(f"{base}/reports?rows=segment&columns=slot&metric=contact_rate&from={DAY}&to={DAY}")
        summary = page.get_by_test_id("report-summary")
        overall = on_day["contact"].mean()
        expect(summary).to_contain_text(f"{len(on_day):,} dials · overall {format_metric('contact_rate', overall)}")
        heatmap = {trace["name"]: trace for trace in plot_data(page, "report-heatmap")}
        values, thin = heatmap["values"], heatmap[f"under {settings.dashboard.report_min_calls} dials"]
        by_cell = {(r["segment"], r["slot"].replace("_", " ")): r for r in live_json}
        checked = 0
        for y_index, segment in enumerate(values["y"]):
            for x_index, slot in enumerate(values["x"]):
                cell_value, cell_dials = values["customdata"][y_index][x_index]
                row = by_cell.get((segment, slot))
                if row is None:
                    assert cell_dials == 0
                    continue
                assert cell_dials == row["dials"]
                assert cell_value == pytest.approx(row["contact_rate"], rel=1e-12)
                few = row["dials"] < settings.dashboard.report_min_calls
                # A thin cell is drawn grey instead of on the colour scale.
                assert (values["z"][y_index][x_index] is None) == few
                assert (thin["z"][y_index][x_index] == 1) == few
                checked += 1
        assert checked == len(live_json)
        # The pivot's grand total is recomputed from the sums: the overall contact rate.
        pivot = page.locator("#report-pivot")
        expect(pivot.locator("tr").last).to_contain_text(format_metric("contact_rate", overall))

        with page.expect_download() as download:
            page.get_by_role("button", name="Export CSV").click()
        assert Path(download.value.path()).read_text() == live_csv
        page.screenshot(path=str(ARTIFACTS / "page-reports.png"), full_page=True)

        # Change the metric in the page: the URL follows, and opening it again restores the report.
        page.locator("#report-metric").click()
        page.get_by_role("option", name="Abandon rate").click()
        expect(page).to_have_url(re.compile(r"[?&]metric=abandon_rate"))
        shared = page.url
        page.goto("about:blank")
        page.goto(shared)
        expect(page.locator("#report-metric")).to_contain_text("Abandon rate")
        expect(page.get_by_test_id("report-summary")).to_contain_text("Abandon rate by segment × time slot")

        page.goto(f"{base}/compliance?from={BAD_DAY}&to={DAY}")
        expect(page.get_by_test_id("compliance-summary")).to_contain_text("1 campaign-day over the limit")
        bad_row = page.locator("#compliance-table tr", has_text=BAD_DAY)
        expect(bad_row).to_contain_text("winback-audit")
        expect(bad_row).to_contain_text("10.0 %")
        highlighted = bad_row.locator("td").first.evaluate("td => getComputedStyle(td).backgroundColor")
        normal = (
            page.locator("#compliance-table tr", has_text=DAY)
            .first.locator("td")
            .first.evaluate("td => getComputedStyle(td).backgroundColor")
        )
        assert highlighted != normal
        expect(page.locator(".compliance-card[data-campaign='winback-audit']")).to_have_class("compliance-card over")
        with page.expect_download() as download:
            page.get_by_role("button", name="Export CSV").click()
        evidence = pd.read_csv(download.value.path())
        audit = evidence[evidence["campaign"] == "winback-audit"].iloc[0]
        assert (audit["day"], audit["contacts"], audit["abandoned"]) == (BAD_DAY, 100, 10)
        assert audit["abandon_rate"] == pytest.approx(0.10) and bool(audit["day_over_limit"])
        page.screenshot(path=str(ARTIFACTS / "page-compliance.png"), full_page=True)

        for name in ("alerts", "definitions"):
            page.goto(f"{base}/{name}")
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(ARTIFACTS / f"page-{name}.png"), full_page=True)
    assert page_errors == [], page_errors

    # Stopped: the CLI opens the warehouse itself, and the numbers are the same.
    assert worker.stop() == 0
    assert cli_report(pipeline, *report_args, "--format", "csv") == live_csv
    table = cli_report(pipeline, "--by", "campaign", "--from", BAD_DAY, "--to", BAD_DAY)
    assert "winback-audit" in table and "10.0 %" in table
    xlsx = pipeline.data_dir / "report.xlsx"
    cli_report(pipeline, *report_args, "--format", "xlsx", "--output", str(xlsx))
    assert pd.read_excel(io.BytesIO(xlsx.read_bytes()))["dials"].sum() == len(on_day)
