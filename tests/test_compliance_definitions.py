"""The regulators' abandon definitions side by side, on a real embedded warehouse: the FTC's
(connected after more than compliance.ftc_connect_seconds counts abandoned; a connected call
without wait_seconds counts as connected in time, with the upper bound beside it), Ofcom's (a
share of machine-classified calls counts abandoned), the budget and forecast of each window, and
where they show: windows, reports, alerts, wallboard, page."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from warehouse_helpers import land_counted, migrated_warehouse

from core.config import ConfigError, load_settings
from core.metrics import COUNTERS, abandon_budget, compliance_figures, raw_counter_sql, window_held_minutes
from core.schema import CallAttempt, Lead, Outcome, decode_record
from core.slots import SlotRules

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def calls(
    campaign: str, outcome: Outcome, count: int, minutes_ago: float, wait: float | None = 0.5, tag: str = ""
) -> list[CallAttempt]:
    """``count`` calls of one kind spread over the minutes before ``minutes_ago``."""
    return [
        CallAttempt(
            schema_version=1,
            event_id=f"{campaign}-{outcome.value}-{tag}{wait}-{minutes_ago}-{n}",
            campaign=campaign,
            outcome=outcome,
            lead=Lead(segment="seniors"),
            event_time=NOW - timedelta(minutes=minutes_ago + 45 * n / count),
            wait_seconds=wait if outcome in (Outcome.CONNECTED, Outcome.ABANDONED) else None,
            talk_seconds=60.0 if outcome is Outcome.CONNECTED else 0.0,
        )
        for n in range(count)
    ]


# winback: 0.9 % dropped, yet 3.9 % for the FTC; Ofcom with a 5 % AMD estimate 1.9 %.
#   950 connected in time, 30 after 3.5 s, 20 without a wait, 9 dropped, 200 machines.
#   dialer 9 / 1009; FTC (9 + 30) / 1009 = 39 / 1009, up to (39 + 20) / 1009 = 5.8 % had the 20
#   calls without a wait been late; Ofcom (9 + 10) / (1009 + 10) = 19 / 1019.
WINBACK = [
    *calls("winback", Outcome.CONNECTED, 950, 5),
    *calls("winback", Outcome.CONNECTED, 30, 5, wait=3.5),
    *calls("winback", Outcome.CONNECTED, 20, 5, wait=None),
    *calls("winback", Outcome.ABANDONED, 9, 5, 2.0),
    *calls("winback", Outcome.MACHINE, 200, 5),
]
# charity: 23 hours ago 2000 connected and 20 dropped (1 %); the last hour 200 connected and 20
# dropped (9.1 %). UK 24 h: 40 / 2240 = 1.8 %, 67.2 allowed, 27.2 more. At the last hour's pace
# (20 of 220 an hour, the window's oldest hours leaving at 40 / 24 and 2240 / 24 an hour) the
# excess -27.2 grows by (20 - 40/24) - 0.03 (220 - 2240/24) = 14.533 an hour: the limit in 1.87 h.
# Its first call, a machine 3 days ago, makes the campaign older than the UK window (full) and
# its US 30-day window young: it holds 3 d of 30 d, and its budget projects the 2,240 live
# answers of 3 days over 30: 0.03 x 22,400 - 40 = 632 more abandons.
CHARITY = [
    *calls("charity", Outcome.MACHINE, 1, 3 * 24 * 60, tag="first"),
    *calls("charity", Outcome.CONNECTED, 2000, 23 * 60),
    *calls("charity", Outcome.ABANDONED, 20, 23 * 60),
    *calls("charity", Outcome.CONNECTED, 200, 5, tag="late"),
    *calls("charity", Outcome.ABANDONED, 20, 5, wait=2.0, tag="late"),
]
# solar: the site's FTC seconds are 3 (CONFIG): 10 calls connected after 2.5 s are in time, 1 dropped.
SOLAR = [
    *calls("solar", Outcome.CONNECTED, 40, 5),
    *calls("solar", Outcome.CONNECTED, 10, 5, wait=2.5),
    *calls("solar", Outcome.ABANDONED, 1, 5, 2.0),
]
CONFIG = """
[compliance]
ftc_connect_seconds = 3

[compliance.campaigns.winback]
amd_false_positive_rate = 0.05
amd_basis = "listened sample of 400 AMD hang-ups"
"""


@pytest.fixture(scope="module")
def landed(tmp_path_factory):
    config = tmp_path_factory.mktemp("config") / "callpulse.toml"
    config.write_text(CONFIG)
    settings = load_settings(config)
    with migrated_warehouse(tmp_path_factory.mktemp("warehouse")) as client:
        land_counted(
            client,
            sorted(WINBACK + CHARITY + SOLAR, key=lambda c: c.event_time),
            settings,
            SlotRules(settings.slots, settings.zone),
        )
        yield settings, client


def test_an_event_without_wait_seconds_is_kept_as_unknown_not_zero():
    raw = (
        b'{"type":"call_attempt","schema_version":1,"event_id":"e1","campaign":"c","event_time":'
        b'"2026-11-23T01:00:00Z","outcome":"connected","lead":{"segment":"s"}}'
    )
    (event,), rejections = decode_record(raw)
    assert rejections == [] and event.wait_seconds is None
    from core.metrics import counters_for

    counted = dict(zip(COUNTERS, counters_for(event.outcome, False, 0.0, 0.0, event.wait_seconds)))
    assert (counted["abandoned_ftc"], counted["live_answers_unjudged"], counted["contacts"]) == (0, 1, 1)


def test_each_window_has_every_definition_with_its_counts(landed):
    from warehouse.queries.live import compliance_windows

    settings, client = landed
    frame = compliance_windows(client, NOW, amd_rate_for=lambda c: settings.compliance.amd_for(c)[0])
    winback = frame.set_index("campaign").loc["winback"]
    assert winback["us_30d_abandon_rate_dialer"] == pytest.approx(9 / 1009)
    assert winback["us_30d_abandon_rate_ftc"] == pytest.approx(39 / 1009)  # the unjudged counted in time
    assert winback["uk_24h_abandon_rate_ofcom"] == pytest.approx(19 / 1019)
    # Each window is judged by its regulator's definition: US by the FTC's, UK by Ofcom's.
    assert winback["us_30d_abandon_rate"] == pytest.approx(39 / 1009)
    assert winback["uk_24h_abandon_rate"] == pytest.approx(19 / 1019)
    assert (winback["us_30d_live_answers_unjudged"], winback["uk_24h_machines"]) == (20, 200)
    figures = compliance_figures(winback.to_dict(), 0.05, prefix="us_30d_")
    assert (figures["ftc"].abandoned, figures["ftc"].live_answers, figures["ftc"].unjudged) == (39, 1009, 20)
    assert figures["ftc"].upper_rate == pytest.approx(59 / 1009)
    assert figures["ftc"].unjudged_note == "up to 5.8 % if the 20 calls without a wait were late"
    assert compliance_figures({"contacts": 10, "abandoned_ftc": 1}, 0.0)["ftc"].unjudged_note == ""
    assert (figures["ofcom"].abandoned, figures["ofcom"].estimate) == (pytest.approx(19), pytest.approx(10))


def test_raw_attempts_recount_the_buckets_and_a_restart_rebuilds_them(landed):
    """The same definitions from the landed calls (wait_seconds null where none came), and the
    worker's recovery path rebuilds the same counters from them."""
    from streams.buckets import MinuteBuckets
    from warehouse.queries.recovery import open_window_attempts

    settings, client = landed
    names = ("abandoned_ftc", "live_answers_unjudged", "machines")
    raw_sql = raw_counter_sql(settings.compliance.ftc_connect_seconds)
    raw = client.query(
        f"SELECT {', '.join(raw_sql[n] for n in names)} FROM call_attempts FINAL WHERE campaign = 'winback'"
    ).result_rows[0]
    assert tuple(raw) == (39, 20, 200)
    assert (
        client.command(
            "SELECT countIf(wait_seconds IS NULL AND outcome = 'connected') FROM call_attempts "
            "WHERE campaign = 'winback'"
        )
        == 20
    )
    restored = MinuteBuckets(settings, SlotRules(settings.slots, settings.zone))
    restored.restore(open_window_attempts(client, 3600))
    totals = dict(zip(COUNTERS, restored.kept_totals("winback")))
    assert (totals["abandoned_ftc"], totals["live_answers_unjudged"], totals["machines"]) == (39, 20, 200)


def test_a_report_asks_for_the_ftc_rate_by_name(landed):
    from analytics.reports import ReportRequest, run_report

    settings, client = landed
    today = NOW.astimezone(settings.zone).date()
    request = ReportRequest.parse(
        "campaign", "abandon_rate,abandon_rate_ftc", today - timedelta(days=2), today, [], today=today
    )
    frame = run_report(client, request, settings.zone, settings.compliance.ftc_connect_seconds)
    # The FTC rate is never shown without the calls it could not judge and its upper bound.
    assert list(frame.columns) == [
        "campaign",
        "dials",
        "abandon_rate",
        "abandon_rate_ftc",
        "live_answers_unjudged",
        "abandon_rate_ftc_upper",
    ]
    frame = frame.set_index("campaign")
    assert frame.loc["winback", "abandon_rate_ftc"] == pytest.approx(39 / 1009)
    assert frame.loc["winback", "live_answers_unjudged"] == 20
    assert frame.loc["winback", "abandon_rate_ftc_upper"] == pytest.approx(59 / 1009)
    assert frame.loc["winback", "abandon_rate"] == pytest.approx(9 / 1009)


def test_reports_by_team_read_raw_attempts_with_the_sites_ftc_seconds(landed):
    """Buckets are not kept per team: a report by team counts the raw attempts, and must count the
    FTC's late calls at compliance.ftc_connect_seconds (3 s here) as the worker did, not the law's 2 s."""
    from analytics.reports import ReportRequest, run_report

    settings, client = landed
    today = NOW.astimezone(settings.zone).date()
    asked = dict(
        metrics="abandon_rate_ftc,abandoned_ftc",
        start=today - timedelta(days=2),
        end=today,
        campaigns=["solar"],
        today=today,
    )
    seconds = settings.compliance.ftc_connect_seconds
    by_team = run_report(client, ReportRequest.parse("campaign,team", **asked), settings.zone, seconds)
    from_buckets = run_report(client, ReportRequest.parse("campaign", **asked), settings.zone, seconds)
    assert by_team["abandoned_ftc"].tolist() == from_buckets["abandoned_ftc"].tolist() == [1]
    assert by_team["abandon_rate_ftc"].tolist() == pytest.approx([1 / 51])
    at_the_law = run_report(client, ReportRequest.parse("campaign,team", **asked), settings.zone, 2.0)
    assert at_the_law["abandoned_ftc"].tolist() == [11]


def test_the_budget_and_forecast_follow_the_last_hours_pace():
    budget = abandon_budget("uk_24h", 24 * 60, 0.03, 40, 2220, 20, 220)
    assert budget.remaining == pytest.approx(26.6)
    assert budget.hours_to_breach == pytest.approx(26.6 / ((20 - 40 / 24) - 0.03 * (220 - 2220 / 24)))
    # A pace under the limit never crosses it; a window already over is over now.
    assert abandon_budget("uk_24h", 24 * 60, 0.03, 40, 2220, 2, 220).hours_to_breach is None
    assert abandon_budget("us_30d", 30 * 24 * 60, 0.03, 90, 2000, 0, 0).hours_to_breach == 0.0


def test_a_young_window_projects_its_live_answers_and_loses_no_calls_until_full():
    # The UK window 2 hours into a campaign's first day: 4 abandoned of 200 live answers, the last
    # hour 4 of 100. Its budget counts the day's live answers at the pace seen: 0.03 x 2,400 - 4 =
    # 68 (2 now). Nothing leaves the window for 22 hours, so the excess -2 grows by 4 - 0.03 x 100 =
    # 1 an hour: the limit in 2 h (a full window's oldest hours leaving would have said 1.85 h).
    budget = abandon_budget("uk_24h", 24 * 60, 0.03, 4, 200, 4, 100, held_minutes=120)
    assert (budget.remaining, budget.remaining_now) == (pytest.approx(68), pytest.approx(2))
    assert budget.projected_live_answers == pytest.approx(2400) and budget.projected
    assert budget.hours_to_breach == pytest.approx(2.0)
    assert budget.held_note == "window holds 2 h of 24 h"
    assert budget.budget_basis == (
        "at 2,400 live answers projected over the window at the pace seen "
        "(window holds 2 h of 24 h; 2 more at its 200 live answers so far)"
    )
    # 20 hours in at 1 % (20 of 2,000), the last hour at 4 % (4 of 100): after 4 hours with nothing
    # leaving the excess is -40 + 4 x 1 = -36; then an hour of the oldest calls (1 of 100) leaves
    # each hour, so it grows by 1 + 40 / 20 = 3 an hour: the limit 12 hours later, in 16 h
    # (then 20 + 64 - 12 = 72 abandoned of 2,000 + 1,600 - 1,200 = 2,400 live answers: 3 %).
    budget = abandon_budget("uk_24h", 24 * 60, 0.03, 20, 2000, 4, 100, held_minutes=20 * 60)
    assert budget.hours_to_breach == pytest.approx(16.0)
    # A full window (its age unknown, or older) reads as before.
    full = abandon_budget("uk_24h", 24 * 60, 0.03, 40, 2220, 20, 220, held_minutes=None)
    assert (full.young, full.held_note, full.remaining) == (False, "", pytest.approx(26.6))
    # Half an hour in: too little to project from; the budget is the live answers so far.
    early = abandon_budget("uk_24h", 24 * 60, 0.03, 0, 50, 0, 50, held_minutes=30)
    assert (early.projected, early.remaining) == (False, pytest.approx(1.5))
    assert early.budget_basis == "at its 50 live answers so far (window holds 30 min of 24 h)"


def test_a_window_is_young_only_while_the_campaign_is_younger_than_it():
    assert window_held_minutes(24 * 60, 150.0) == 150.0
    assert window_held_minutes(24 * 60, 3 * 24 * 60.0) == 24 * 60  # older than the window
    assert window_held_minutes(24 * 60, None) == 24 * 60  # age not known: taken as full
    # The 30-day window: the queries look back no further, so a first call within a week of its
    # start is an older campaign's quiet spell (a weekend, a holiday), not a young campaign.
    assert window_held_minutes(30 * 1440, 3 * 1440.0) == 3 * 1440
    assert window_held_minutes(30 * 1440, 25 * 1440.0) == 30 * 1440
    assert window_held_minutes(30 * 1440, 0.2) == 1.0  # the first minute still counts as one


def test_the_alerts_judge_each_window_by_its_regulator_and_warn_before_the_limit(landed):
    from core.alerts import Rule
    from streams.alerting import AlertEvaluator
    from streams.buckets import MinuteBuckets

    settings, client = landed
    slot_rules = SlotRules(settings.slots, settings.zone)
    evaluator = AlertEvaluator(settings, client, MinuteBuckets(settings, slot_rules), slot_rules)
    rules = settings.alert_rules_for("winback")
    winback = {check.rule: check for check in evaluator._compliance_checks("winback", NOW, rules)}
    us = winback[Rule.COMPLIANCE_US_30D]
    assert us.value == pytest.approx(39 / 1009) and us.level() == "critical"  # on the lower bound
    assert "connected after more than 3 s" in us.explanation()
    assert "up to 5.8 % if the 20 calls without a wait were late" in us.explanation()
    assert winback[Rule.COMPLIANCE_UK_24H].value == pytest.approx(19 / 1019)
    assert winback[Rule.COMPLIANCE_FORECAST].level() is None  # over already: its own alert says so
    charity = {check.rule: check for check in evaluator._compliance_checks("charity", NOW, rules)}
    forecast = charity[Rule.COMPLIANCE_FORECAST]
    assert forecast.value == pytest.approx(27.2 / 14.533333, rel=1e-6) and forecast.level() == "warning"
    assert "27.2 more abandons allowed" in forecast.explanation() and "in 1.9 h" in forecast.explanation()


def test_the_wallboard_and_the_compliance_page_show_the_definitions_and_budgets(landed):
    from dashboards.app import create_app
    from dashboards.data import DashboardContext, wallboard_model

    settings, client = landed
    create_app(DashboardContext(settings, client))
    from dashboards.pages import compliance as compliance_page

    model = {c["campaign"]: c for c in wallboard_model()["campaigns"]}
    us = model["winback"]["compliance"]["us_30d"]
    assert (us["abandon_rate"], us["unjudged"]) == (pytest.approx(39 / 1009), 20)
    assert us["abandon_rate_upper"] == pytest.approx(59 / 1009)
    assert model["charity"]["compliance"]["us_30d"]["unjudged"] == 0
    uk = model["charity"]["compliance"]["uk_24h"]
    assert (uk["abandons_allowed"], uk["hours_to_limit"]) == (27, pytest.approx(1.87, abs=0.01))

    page = str(compliance_page._now_cards(["charity", "winback"]))
    assert "39 of 1,009 live answers" in page and "up to 5.8 % if the 20 calls without a wait were late" in page
    assert "19.0 of 1,019.0 live calls" in page and "incl. 10.0 estimated at AMD 5.0%" in page
    assert "UK 24 h: 27 more abandons allowed" in page and "the limit is crossed in 1.9 h" in page
    young = model["charity"]["compliance"]["us_30d"]
    assert (young["window_held"], young["budget_projected"]) == ("3 d of 30 d", True)
    assert young["abandons_allowed"] == pytest.approx(632, abs=1)
    # The window's age runs from the first call's minute to the newest landed one: a minute or so
    # either way moves the projection by a few live answers.
    budget = re.search(r"US 30 days: (\d+) more abandons allowed.{0,10} at ([\d,]+) live answers projected", page)
    assert budget is not None, page
    allowed, projected = budget.groups()
    assert int(allowed) == pytest.approx(632, abs=1) and int(projected.replace(",", "")) == pytest.approx(22400, abs=40)
    # 0.03 x 2,240 - 40 = 27.2: 27 at the live answers so far, on the page and the tile.
    assert "(window holds 3 d of 30 d; 27 more at its 2,240 live answers so far)" in page
    assert young["abandons_allowed_now"] == 27 and uk["abandons_allowed_now"] == uk["abandons_allowed"]
    from dashboards.pages.wallboard import _budget

    assert str(_budget(young, "us_30d").children).startswith(
        f"27 left now, {young['abandons_allowed']} at this pace (3 d of 30 d)"
    )
    assert uk["window_held"] == "" and uk["budget_projected"] is False
    definitions = str(compliance_page._definitions())
    assert "compliance.ftc_connect_seconds = 3 s" in definitions and "1 campaign(s) with their own" in definitions


@pytest.mark.parametrize(
    "toml, message",
    [
        ("[compliance]\nftc_connect_seconds = -1\n", "compliance.ftc_connect_seconds"),
        ("[compliance.campaigns.x]\namd_false_positive_rate = 1.5\n", "compliance.campaigns.x.amd_false_positive_rate"),
        ("[alerts]\nforecast_hours = 0\n", "alerts.forecast_hours"),
        ("[alerts.rules.default]\nconfidence = 1.0\n", "confidence"),
        ("[alerts.rules.default]\nabandon_resolve = 0.05\n", "abandon_resolve"),
    ],
)
def test_bad_compliance_settings_are_refused_with_the_key(tmp_path, toml, message):
    config = tmp_path / "callpulse.toml"
    config.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_settings(config)


def test_a_negative_wait_is_still_refused():
    raw = (
        b'{"type":"call_attempt","schema_version":1,"event_id":"e1","campaign":"c","event_time":'
        b'"2026-11-23T01:00:00Z","outcome":"connected","lead":{"segment":"s"},"wait_seconds":-1}'
    )
    events, (rejection,) = decode_record(raw)
    assert events == [] and rejection.reason == "negative_duration"


def test_a_campaigns_first_minute_reads_the_same_through_the_hourly_rollup(landed, monkeypatch):
    """How old a campaign is (what makes a window young) comes from its first landed minute in the
    30-day window; through the rollup it is that minute's hour's start, never later. Last in this
    module: it builds the rollup of the module's warehouse."""
    from warehouse import rollup
    from warehouse.queries.live import campaign_first_minutes

    _, client = landed
    first_call = (NOW - timedelta(days=3)).replace(second=0)  # charity's machine, the minute it landed in
    plain = campaign_first_minutes(client, NOW, ["charity", "solar", "nobody"])
    assert plain["charity"] == first_call.timestamp() and "nobody" not in plain
    assert plain["solar"] == min(c.event_time for c in SOLAR).replace(second=0, microsecond=0).timestamp()
    # A window ending before the first call holds none of it.
    assert "charity" not in campaign_first_minutes(client, NOW - timedelta(days=3, minutes=5), ["charity"])
    monkeypatch.setattr(rollup, "MIN_MINUTE_ROWS", 0)
    assert rollup.refresh_rollup(client, settle=timedelta(0)) > 0
    through_rollup = campaign_first_minutes(client, NOW, ["charity", "solar", "nobody"])
    assert through_rollup["charity"] == first_call.replace(minute=0).timestamp()
    # Its hour read from the rollup if closed by now, else from the minute buckets.
    assert through_rollup["solar"] in (plain["solar"], plain["solar"] // 3600 * 3600)
