"""Every dashboard page in a real browser, in the three states a user meets: an empty
warehouse (a first start), one simulated hour (08:00-09:00 local: off-hours only, thin
for the response model), and three simulated days (every time slot, a firing alert).

For each page and state, logged in as a manager (who may open every page):
- no response of 500 or above, Dash's callback requests included;
- no console error and no uncaught JavaScript error;
- every figure uses the dashboard's dark theme (no white default Plotly figure);
- no rate axis (a percent axis, or any value axis) and no heatmap colour scale starts below 0;
- a screenshot goes to test-artifacts/every-page/<state>-<page>.png for a reviewer.

The warehouse is filled the quick way (simulated calls counted and landed as the worker
does, tests/warehouse_helpers.py); a worker then opens it and serves the dashboard.

Needs Debian's chromium at /usr/bin/chromium, as tests/test_wallboard_browser.py does.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import new_pipeline
from test_wallboard_browser import CHROMIUM, CHROMIUM_ARGS, PROJECT_ROOT, _require_browser, wait_for_dashboard
from warehouse_helpers import land_counted, migrated_warehouse

from core.alerts import Alert, Rule
from core.slots import SlotRules
from producers.simulator import DialerSimulator
from warehouse.queries.alerts import ALERT_COLUMNS

pytestmark = pytest.mark.browser

ARTIFACTS = PROJECT_ROOT / "test-artifacts" / "every-page"
PAGES_FOLDER = PROJECT_ROOT / "dashboards" / "pages"
#: 08:00 in Tokyo on Friday 20 November: the hour before the first time slot opens.
OFF_HOURS = datetime(2026, 11, 19, 23, 0, tzinfo=timezone.utc)
#: The three days: one simulated hour at the start of each time slot (09, 12, 16, 18 local).
DAYS = [datetime(2026, 11, 18, tzinfo=timezone.utc) + timedelta(days=day) for day in range(3)]
SLOT_HOURS_UTC = (0, 3, 7, 9)
STATES = ("empty", "one-hour", "three-days")
#: Reports the issue found wrong, opened by URL beside every page's default view: an abandon
#: rate (lower is better) and CPO with no columns, whose heatmap was blank.
MORE_VIEWS = {
    "/reports?rows=segment&columns=slot&metric=abandon_rate": "reports-abandon-rate",
    "/reports?rows=segment&columns=none&metric=cpo": "reports-cpo-by-segment",
}
HEATMAP_CELLS_JS = """() => [...document.querySelectorAll('#report-heatmap .js-plotly-plot')].flatMap(plot =>
  (plot.data || []).filter(trace => trace.name === 'values').flatMap(trace => (trace.z || []).flat())
    .filter(value => value !== null).length)"""

# Every figure on the page: its value axes' ranges, its heatmaps' colour ranges and its background.
FIGURES_JS = """() => [...document.querySelectorAll('.js-plotly-plot')].map(plot => {
  const layout = plot._fullLayout || {};
  const axes = Object.keys(layout).filter(key => /^[xy]axis\\d*$/.test(key)).map(key => ({
    name: key, type: layout[key].type, visible: layout[key].visible, range: layout[key].range,
    tickformat: layout[key].tickformat || ''}));
  const heatmaps = (plot._fullData || []).filter(trace => trace.type === 'heatmap' && trace.showscale)
    .map(trace => ({name: trace.name, zmin: trace.zmin, zmax: trace.zmax}));
  const title = (layout.title && layout.title.text) || '';
  return {id: plot.parentElement && plot.parentElement.id, title: title, paper: layout.paper_bgcolor,
          axes: axes, heatmaps: heatmaps};
})"""
WHITE = {"#fff", "#ffffff", "white", "rgb(255, 255, 255)", "rgba(255, 255, 255, 1)"}


def registered_pages() -> dict[str, str]:
    """path -> module name of every page registered in dashboards/pages/."""
    pages = {}
    for module in sorted(PAGES_FOLDER.glob("*.py")):
        match = re.search(r"register_page\(\s*__name__\s*,\s*path=\"([^\"]+)\"", module.read_text())
        if match:
            pages[match.group(1)] = module.stem
    return pages


def simulated(start: datetime, seconds: float, settings, seed: int) -> list:
    rules = SlotRules(settings.slots, settings.zone)
    return list(DialerSimulator(rules, b"test-key", seed=seed, start=start).events(sim_seconds=seconds))


def fill(state: str, settings) -> None:
    """Land the state's calls straight into the pipeline's warehouse, before a worker opens it."""
    if state == "empty":
        return
    if state == "one-hour":
        events = simulated(OFF_HOURS, 3600, settings, seed=5)
    else:
        events = [
            event
            for number, day in enumerate(DAYS)
            for hour in SLOT_HOURS_UTC
            for event in simulated(day + timedelta(hours=hour), 3600, settings, seed=10 * number + hour)
        ]
    path = settings.warehouse_url.removeprefix("chdb://")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with migrated_warehouse(path) as client:
        rules = SlotRules(settings.slots, settings.zone)
        land_counted(client, events, settings, rules)
        if state == "three-days":
            newest = max(event.event_time for event in events)
            campaign = sorted({event.campaign for event in events})[0]
            # An abandon-rate alert that fired on 2 of 65 live answers and still fires.
            land_alert(
                client,
                Alert(
                    alert_id="every-page-test",
                    rule=Rule.ABANDON_RATE,
                    campaign=campaign,
                    state="firing",
                    severity="critical",
                    value=2 / 65,
                    threshold=0.03,
                    window_minutes=15,
                    sample=65,
                    first_seen=newest - timedelta(minutes=20),
                    event_time=newest - timedelta(minutes=20),
                    emitted_at=newest - timedelta(minutes=20),
                    detail="2 of 65 live answers abandoned",
                ),
            )


def land_alert(client, alert: Alert) -> None:
    """One alert transition into the alerts table, as the worker's landing writes it."""
    row = [alert.rule.value if column == "rule" else getattr(alert, column) for column in ALERT_COLUMNS]
    client.insert("alerts", [row], column_names=ALERT_COLUMNS)


def rate_axis_problems(figures: list[dict]) -> list[str]:
    problems = []
    for figure in figures:
        where = f"figure {figure['id'] or figure['title']!r}"
        if str(figure["paper"]).replace(" ", "") in {w.replace(" ", "") for w in WHITE}:
            problems.append(f"{where} has a white background: not the dashboard's theme")
        for axis in figure["axes"]:
            value_axis = axis["name"].startswith("y") or "%" in axis["tickformat"]
            if (
                axis["visible"]
                and axis["type"] not in ("category", "multicategory", "date")
                and value_axis
                and axis["range"]
                and float(axis["range"][0]) < -1e-9
            ):
                problems.append(f"{where}: {axis['name']} runs from {axis['range'][0]:.3g}, below 0")
        for heatmap in figure["heatmaps"]:
            if heatmap["zmin"] is not None and heatmap["zmin"] < -1e-9:
                problems.append(f"{where}: heatmap {heatmap['name']!r} colour scale starts at {heatmap['zmin']:.3g}")
    return problems


def settle(page) -> None:
    """Until Dash has answered the page's callbacks and Plotly has drawn what they returned."""
    page.wait_for_load_state("networkidle")
    page.wait_for_function("() => !document.querySelector('[data-dash-is-loading=\"true\"]')")
    page.wait_for_timeout(600)


def visit_every_page(settings, login: dict[str, str], state: str) -> list[str]:
    """Open each page; what went wrong on any of them."""
    from playwright.sync_api import sync_playwright

    url = f"http://{settings.embedded.dashboard_host}:{settings.embedded.dashboard_port}"
    wait_for_dashboard(url, timeout_s=90)
    problems: list[str] = []
    pages = registered_pages()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context(viewport={"width": 1440, "height": 900}, http_credentials=login).new_page()
            current = {"path": "/"}
            page.on(
                "response",
                lambda response: (
                    response.status >= 500
                    and problems.append(
                        f"{state} {current['path']}: {response.status} from {response.request.method} {response.url}"
                    )
                ),
            )
            page.on(
                "console",
                lambda message: (
                    message.type == "error"
                    and problems.append(f"{state} {current['path']}: console error: {message.text}")
                ),
            )
            page.on("pageerror", lambda error: problems.append(f"{state} {current['path']}: page error: {error}"))
            page.goto(url + "/", wait_until="domcontentloaded")
            settle(page)
            nav = sorted(page.locator(".top-nav a.nav-link").evaluate_all("links => links.map(a => a.pathname)"))
            assert nav == sorted(pages), f"a manager's nav lists {nav}, the pages folder registers {sorted(pages)}"
            for path, name in {**pages, **MORE_VIEWS}.items():
                current["path"] = path
                page.goto(url + path, wait_until="domcontentloaded")
                settle(page)
                problems.extend(
                    f"{state} {path}: {problem}" for problem in rate_axis_problems(page.evaluate(FIGURES_JS))
                )
                if path in MORE_VIEWS and state != "empty" and not sum(page.evaluate(HEATMAP_CELLS_JS)):
                    problems.append(f"{state} {path}: the heatmap draws no cell")
                page.screenshot(path=str(ARTIFACTS / f"{state}-{name}.png"), full_page=True)
        finally:
            browser.close()
    return problems


@pytest.mark.timeout(420)
def test_every_page_in_every_state(broker, dashboard_login, tmp_path):
    _require_browser()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    for state in STATES:
        (tmp_path / state).mkdir()
        pipeline = new_pipeline(broker, tmp_path / state)
        try:
            fill(state, pipeline.settings)
            worker = pipeline.worker()
            worker.wait_until(lambda health: health["ready"], timeout_s=120)
            problems += visit_every_page(pipeline.settings, dashboard_login.http_credentials("manager"), state)
            assert worker.stop() == 0, worker.log()
        finally:
            pipeline.stop_all()
    assert not problems, "\n".join(problems)
