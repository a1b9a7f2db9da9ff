"""With thousands of campaigns the compliance page and the report's campaign filter stay a few
dozen names: the compliance page shows the busiest (or the ones chosen) and says how many there
are, and the filters find the others as the user types (real chDB, the real Dash app)."""

from __future__ import annotations

from datetime import timedelta, timezone

import pytest
from test_wallboard_model import BOARD_NOW, _bearer_app, _strict

DAY = BOARD_NOW.astimezone(timezone(timedelta(hours=9))).date().isoformat()  # the default zone's day


def _callback(app, headers, output_part: str, values: dict) -> dict:
    """Run the callback whose outputs include ``output_part`` as a browser would; its outputs by id."""
    app.server.test_client().get("/_dash-dependencies", headers=headers)  # Dash registers the pages' callbacks
    key = next(key for key in app.callback_map if output_part in key)
    spec = app.callback_map[key]
    outputs = [dict(zip(("id", "property"), output.rsplit(".", 1))) for output in key.strip(".").split("...")]
    if not key.startswith(".."):  # a callback of one output is sent it alone
        outputs = outputs[0]

    def filled(items):
        return [
            {"id": i["id"], "property": i["property"], "value": values.get(f"{i['id']}.{i['property']}")} for i in items
        ]

    response = app.server.test_client().post(
        "/_dash-update-component",
        headers=headers,
        json={
            "output": key,
            "outputs": outputs,
            "inputs": filled(spec["inputs"]),
            "state": filled(spec["state"]),
            "changedPropIds": list(values),
        },
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return _strict(response.data)["response"]


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    from warehouse_helpers import land_counted, migrated_warehouse

    from core.config import load_settings
    from core.schema import CallAttempt, Lead, Outcome
    from core.slots import SlotRules

    settings = load_settings(dashboard__wallboard_cache_seconds=0)

    def call(event_id: str, campaign: str, ago: timedelta, outcome=Outcome.CONNECTED) -> CallAttempt:
        return CallAttempt(
            schema_version=1,
            event_id=event_id,
            campaign=campaign,
            outcome=outcome,
            event_time=BOARD_NOW - ago,
            lead=Lead(segment="seniors"),
        )

    # busy-k made k+1 calls in the last ten minutes, one of them abandoned; 2,900 quiet campaigns
    # made one call each, 40 minutes ago.
    events = [
        call(
            f"busy-{k}-{n}",
            f"busy-{k:03d}",
            timedelta(seconds=30 + 5 * n),
            Outcome.ABANDONED if n == 0 else Outcome.CONNECTED,
        )
        for k in range(100)
        for n in range(k + 1)
    ]
    events += [call(f"quiet-{n}", f"quiet-{n:04d}", timedelta(minutes=40)) for n in range(2900)]
    with migrated_warehouse(tmp_path_factory.mktemp("warehouse")) as client:
        land_counted(client, events, settings, SlotRules(settings.slots, settings.zone))
        yield _bearer_app(settings, client, role="manager")


def test_the_compliance_page_shows_the_busiest_campaigns_and_says_how_many_there_are(dashboard):
    from dashboards.pages.compliance import MAX_CAMPAIGNS

    app, headers = dashboard
    page = _callback(
        app, headers, "compliance-now.children", {"compliance-dates.start_date": DAY, "compliance-dates.end_date": DAY}
    )
    cards = page["compliance-now"]["children"]
    busiest = {f"busy-{k:03d}" for k in range(100 - MAX_CAMPAIGNS, 100)}
    assert {card["props"]["data-campaign"] for card in cards} == busiest
    assert {row["campaign"] for row in page["compliance-table"]["data"]} == busiest
    assert len(page["compliance-chart"]["figure"]["data"]) == MAX_CAMPAIGNS
    assert f"showing {MAX_CAMPAIGNS} of 3,000 campaigns" in page["compliance-summary"]["children"]


def test_the_compliance_page_shows_the_campaigns_chosen(dashboard):
    app, headers = dashboard
    page = _callback(
        app,
        headers,
        "compliance-now.children",
        {
            "compliance-dates.start_date": DAY,
            "compliance-dates.end_date": DAY,
            "compliance-campaigns.value": ["quiet-0042", "busy-003"],
        },
    )
    assert [card["props"]["data-campaign"] for card in page["compliance-now"]["children"]] == ["busy-003", "quiet-0042"]
    assert sorted((row["campaign"], row["dials"]) for row in page["compliance-table"]["data"]) == [
        ("busy-003", "4"),
        ("quiet-0042", "1"),
    ]
    assert "showing" not in page["compliance-summary"]["children"]


@pytest.mark.parametrize("page", ["compliance", "report"])
def test_the_campaign_filter_offers_a_few_dozen_names_and_finds_the_others_as_one_types(dashboard, page):
    app, headers = dashboard
    found = _callback(
        app,
        headers,
        f"{page}-campaigns.options",
        {f"{page}-campaigns.search_value": "QUIET-01", f"{page}-campaigns.value": ["busy-007"]},
    )
    options = found[f"{page}-campaigns"]["options"]
    assert options[0] == "busy-007"  # what is chosen stays an option
    assert options[1:] == [f"quiet-{n:04d}" for n in range(100, 150)]  # the first 50 that match, any case
    narrow = _callback(app, headers, f"{page}-campaigns.options", {f"{page}-campaigns.search_value": "quiet-2899"})
    assert narrow[f"{page}-campaigns"]["options"] == ["quiet-2899"]


@pytest.mark.parametrize(
    "chosen, days, top",
    [
        (["busy-003"], (DAY, DAY), 0.25),  # 1 of 4 live answers abandoned: above the limit
        (None, (DAY, DAY), 0.03),  # the busiest, all under the 3 % limit
        (None, ("2025-01-01", "2025-01-07"), 0.03),  # days without a call: an empty chart
    ],
)
def test_the_compliance_charts_rate_axis_runs_from_zero_past_the_limit_and_the_rates(dashboard, chosen, days, top):
    app, headers = dashboard
    values = {"compliance-dates.start_date": days[0], "compliance-dates.end_date": days[1]}
    if chosen:
        values["compliance-campaigns.value"] = chosen
    page = _callback(app, headers, "compliance-now.children", values)
    yaxis = page["compliance-chart"]["figure"]["layout"]["yaxis"]
    assert yaxis["range"] == pytest.approx([0, top * 1.15])
    assert yaxis["tickformat"] == ".1%"
