"""Cross-tab reports on a real chDB, against pandas over the raw simulated calls.

The calls are counted by the worker's own bucket code and landed by the real lander;
the expectations come from the events alone.
"""

from __future__ import annotations

import io
import json
from datetime import date, datetime, timezone

import pandas as pd
import pytest
from openpyxl import load_workbook
from warehouse_helpers import land_counted, migrated_warehouse

from analytics import reports
from analytics.reports import ReportError, ReportRequest
from core.config import load_settings
from core.schema import Outcome
from core.slots import SlotRules
from producers.simulator import DialerSimulator

SETTINGS = load_settings()
ZONE = SETTINGS.zone
RULES = SlotRules(SETTINGS.slots, ZONE)
START = datetime(2026, 11, 20, 0, 30, tzinfo=timezone.utc)  # 09:30 in Tokyo, a Friday
DAY = START.astimezone(ZONE).date()


@pytest.fixture(scope="module")
def events():
    simulator = DialerSimulator(RULES, b"k" * 32, seed=11, start=START)
    return list(simulator.events(sim_seconds=5 * 3600))


@pytest.fixture(scope="module")
def client(tmp_path_factory, events):
    with migrated_warehouse(tmp_path_factory.mktemp("reports")) as client:
        land_counted(client, events, SETTINGS, RULES)
        yield client


@pytest.fixture(scope="module")
def raw(events) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "campaign": [e.campaign for e in events],
            "segment": [e.lead.segment for e in events],
            "team": [e.team for e in events],
            "slot": [RULES.slot_for(e.event_time) for e in events],
            "hour": [e.event_time.astimezone(ZONE).hour for e in events],
            "contact": [e.outcome in (Outcome.CONNECTED, Outcome.ABANDONED) for e in events],
            "abandoned": [e.outcome is Outcome.ABANDONED for e in events],
            "order": [e.outcome is Outcome.CONNECTED and e.order for e in events],
        }
    )


def request(by, metrics="contact_rate,abandon_rate,orders", **kw) -> ReportRequest:
    return ReportRequest.parse(by, metrics, kw.get("start", DAY), kw.get("end", DAY), kw.get("campaigns"), today=DAY)


def test_segment_by_slot_contact_rate_equals_pandas(client, raw):
    frame = reports.run_report(client, request("segment,slot"), ZONE)
    expected = raw.groupby(["segment", "slot"]).agg(dials=("contact", "size"), contacts=("contact", "sum"))
    assert len(frame) == len(expected)
    for row in frame.to_dict("records"):
        want = expected.loc[(row["segment"], row["slot"])]
        assert row["dials"] == want["dials"]
        assert row["contact_rate"] == pytest.approx(want["contacts"] / want["dials"], rel=1e-12)
    assert list(frame.columns) == ["segment", "slot", "dials", "contact_rate", "abandon_rate", "orders"]


def test_team_reports_read_raw_attempts_and_agree_with_the_buckets(client, raw):
    by_team = reports.run_report(client, request("team,campaign"), ZONE)
    by_campaign = reports.run_report(client, request("campaign"), ZONE)
    assert set(by_team["team"]) == set(raw["team"])
    summed = by_team.groupby("campaign")[["dials", "orders"]].sum()
    for row in by_campaign.to_dict("records"):
        assert summed.loc[row["campaign"]].tolist() == [row["dials"], row["orders"]]
    charity = by_team[by_team["campaign"] == "charity-giving"]
    assert charity["team"].tolist() == ["remote"]  # the simulator staffs charity from the remote team only


def test_pivot_totals_are_recomputed_from_sums_not_averaged(client, raw):
    counters = reports.counters_frame(client, request("segment,slot"), ZONE)
    values, samples = reports.pivot(
        counters, "segment", "slot", "contact_rate", order={"slot": [s.name for s in SETTINGS.slots]}
    )
    assert list(values.columns)[:2] == ["morning", "midday"]  # the day's order, not alphabetical
    assert values.loc["Total", "Total"] == pytest.approx(raw["contact"].mean(), rel=1e-12)
    seniors = raw[raw["segment"] == "seniors"]
    assert values.loc["seniors", "Total"] == pytest.approx(seniors["contact"].mean(), rel=1e-12)
    assert samples.loc["seniors", "Total"] == len(seniors)
    cells = values.drop(index="Total", columns="Total")
    assert values.loc["Total", "Total"] != pytest.approx(cells.stack().mean(), rel=1e-6)


def test_json_export_writes_null_for_figures_that_are_not_finite():
    """A campaign whose talk time was absurd has an infinite AHT; Infinity and NaN are not JSON."""
    import numpy as np

    frame = pd.DataFrame(
        {
            "campaign": ["huge", "none", "fine"],
            "aht": [float("inf"), float("nan"), 61.5],
            "cost": [np.float64("-inf"), np.float64(2.5), np.float64(1.0)],
            "dials": [2, 0, 3],
        }
    )

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    rows = json.loads(reports.to_json(frame), parse_constant=refuse)
    assert rows == [
        {"campaign": "huge", "aht": None, "cost": None, "dials": 2},
        {"campaign": "none", "aht": None, "cost": 2.5, "dials": 0},
        {"campaign": "fine", "aht": 61.5, "cost": 1.0, "dials": 3},
    ]


def test_exports_carry_fractions_and_the_same_rows(client):
    frame = reports.run_report(client, request("campaign", "contact_rate,cpo,dials"), ZONE)
    parsed = pd.read_csv(io.StringIO(reports.to_csv(frame)))
    assert parsed["contact_rate"].between(0, 1).all()
    assert parsed["contact_rate"].tolist() == pytest.approx(frame["contact_rate"].tolist(), rel=1e-9)
    assert list(parsed.columns) == ["campaign", "dials", "contact_rate", "cpo"]  # dials once, first
    rows = json.loads(reports.to_json(frame))
    assert [r["campaign"] for r in rows] == frame["campaign"].tolist()
    pd.testing.assert_frame_equal(
        reports.frame_from_json(reports.to_json(frame), request("campaign", "contact_rate,cpo,dials")),
        frame,
        check_dtype=False,
    )
    sheet = load_workbook(io.BytesIO(reports.to_xlsx(frame))).active
    assert [c.value for c in sheet[1]] == list(frame.columns)
    assert sheet["C2"].value == pytest.approx(frame.loc[0, "contact_rate"])
    assert sheet["C2"].number_format == "0.0%"


def test_a_day_range_is_whole_local_days_and_campaign_filters_bind(client, raw):
    nothing = reports.run_report(client, request("campaign", start=date(2026, 11, 21), end=date(2026, 11, 22)), ZONE)
    assert nothing.empty
    one = reports.run_report(client, request("campaign", campaigns="charity-giving"), ZONE)
    assert one["campaign"].tolist() == ["charity-giving"]
    assert one.loc[0, "dials"] == (raw["campaign"] == "charity-giving").sum()
    hostile = reports.run_report(client, request("campaign", campaigns="x' OR 1=1 --"), ZONE)
    assert hostile.empty


@pytest.mark.parametrize(
    "by, metrics, start, message",
    [
        ("campaign,colour", None, None, "unknown --by dimension(s) colour"),
        ("campaign;DROP TABLE call_attempts", None, None, "unknown --by"),
        ("campaign", "contact_rate,happiness", None, "unknown metric(s) happiness"),
        ("campaign", None, "23/11/2026", "is not a date; use YYYY-MM-DD"),
        ("campaign", None, "2026-12-01", "is after --to"),
    ],
)
def test_bad_requests_say_how_to_fix_them(by, metrics, start, message):
    with pytest.raises(ReportError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ReportRequest.parse(by, metrics, start, "2026-11-23", None, today=DAY)


def test_aliases_and_defaults():
    parsed = ReportRequest.parse(None, "conversion,aht", None, None, None, today=date(2026, 11, 23))
    assert parsed.by == ("campaign",)
    assert parsed.metrics == ("conversion_rate", "aht_seconds")
    assert (parsed.start_day, parsed.end_day) == (date(2026, 11, 17), date(2026, 11, 23))


def test_compliance_days_roll_30_calendar_days_from_sums(client, raw):
    limits = {"credit-card-winback": 0.001}  # tight enough that winback's day is over it
    days = reports.compliance_days(client, date(2026, 11, 19), DAY, ZONE, lambda c: limits.get(c, 0.03))
    assert sorted(days["campaign"]) == sorted(raw["campaign"].unique())  # 19 Nov had no calls: no rows
    winback = days[days["campaign"] == "credit-card-winback"].iloc[0]
    mine = raw[raw["campaign"] == "credit-card-winback"]
    assert (winback["day"], winback["contacts"], winback["abandoned"]) == (
        DAY.isoformat(),
        mine["contact"].sum(),
        mine["abandoned"].sum(),
    )
    assert winback["abandon_rate"] == pytest.approx(mine["abandoned"].sum() / mine["contact"].sum())
    assert winback["rolling_30d_abandon_rate"] == pytest.approx(winback["abandon_rate"])  # only day with calls
    assert bool(winback["day_over_limit"]) and bool(winback["rolling_30d_over_limit"])
    assert not days[days["campaign"] != "credit-card-winback"]["day_over_limit"].any()
