"""Best time to call: Wilson intervals against published values, the recommendation rule on
hand-made counters, and a simulated calling day landed in a real chDB.

The simulator's CONTACT_PROBABILITY table puts seniors at home in the morning and
salaried workers at night; the recommendations must find that from the landed counters.
"""

from __future__ import annotations

import io
import math
import uuid
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from openpyxl import load_workbook
from warehouse_helpers import land_counted, migrated_warehouse

from analytics import best_time, reports
from analytics.best_time import difference_interval
from core.config import load_settings
from core.metrics import wilson_interval
from core.schema import SCHEMA_VERSION, CallAttempt, Lead, Outcome
from core.slots import SlotRules
from producers.simulator import DialerSimulator

SETTINGS = load_settings()
ZONE = SETTINGS.zone
RULES = SlotRules(SETTINGS.slots, ZONE)
MIN_CALLS = SETTINGS.dashboard.report_min_calls
SLOTS = ["morning", "midday", "evening", "night", "off_hours"]
DAY_START = datetime(2026, 11, 19, 23, 0, tzinfo=timezone.utc)  # 08:00 in Tokyo, Friday 20 November
DAY = DAY_START.astimezone(ZONE).date()


# -- Wilson score intervals -----------------------------------------------------------------
# Expected values: statsmodels 0.15.0, proportion_confint(x, n, alpha=0.05, method="wilson"),
# run once by hand and written down here. The first four are also Newcombe (1998), Statistics
# in Medicine 17:857-872, Table I, method 3 (to 4 places): 0.2553-0.3662, 0.0624-0.1605,
# 0-0.1611, 0.0061-0.1718.
PUBLISHED_WILSON = [
    (81, 263, 0.2552885198782742, 0.36620957698280004),
    (15, 148, 0.06238639953073628, 0.16048724172330803),
    (0, 20, 0.0, 0.1611251580528194),
    (1, 29, 0.006113214292762667, 0.17175521879320294),
    (20, 20, 0.8388748419471804, 1.0),  # x = n mirrors 0 of 20
    (29, 29, 0.8830302015002592, 1.0),
    (0, 1, 0.0, 0.7934506856227627),
    (1, 1, 0.2065493143772374, 1.0),
    (300, 1000, 0.2724068424770048, 0.3291238609172172),
]


@pytest.mark.parametrize("successes, trials, low, high", PUBLISHED_WILSON)
def test_wilson_interval_matches_published_values(successes, trials, low, high):
    assert wilson_interval(successes, trials) == pytest.approx((low, high), abs=1e-12)


def test_wilson_interval_at_the_edges():
    # Newcombe's worked example, to the four places he printed.
    assert [round(b, 4) for b in wilson_interval(81, 263)] == [0.2553, 0.3662]
    low, high = wilson_interval(0, 20)
    assert low == 0.0 and high > 0.16  # no successes still leaves room above zero
    low, high = wilson_interval(20, 20)
    assert high == 1.0 and low < 0.84
    assert wilson_interval(0, 0) is None  # no dials, no interval
    with pytest.raises(ValueError):
        wilson_interval(5, 4)
    with pytest.raises(ValueError):
        wilson_interval(-1, 4)


def test_difference_interval_matches_newcombe():
    # Newcombe (1998), Statistics in Medicine 17:873-890, Table II example (a), method 10:
    # 56/70 - 48/80 = 0.2, interval 0.0524 to 0.3339. Full precision from statsmodels 0.15.0,
    # confint_proportions_2indep(56, 70, 48, 80, method="newcomb", compare="diff").
    assert difference_interval(56, 70, 48, 80) == pytest.approx((0.05243147240236498, 0.33387265403690614), abs=1e-12)
    # No successes on either side (0/10 - 0/20): the interval still has width. statsmodels likewise.
    assert difference_interval(0, 10, 0, 20) == pytest.approx((-0.1611251580528194, 0.27753279986288926), abs=1e-12)
    assert difference_interval(3, 10, 0, 0) is None


# -- the recommendation rule on hand-made counters ------------------------------------------------


def counters(rows, time_column="slot") -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["segment", time_column, "dials", "contacts"])


def test_recommended_slots_follow_the_conservative_rule():
    frame = counters(
        [
            # A: morning is best; midday is 3 points lower on 300 dials each, which the data
            # cannot tell apart, so it joins; evening is clearly worse. Night looks best (5 of
            # 10) and off-hours is best of all, but night is too thin and off-hours is no window.
            ("A", "morning", 300, 90),
            ("A", "midday", 300, 80),
            ("A", "evening", 300, 30),
            ("A", "night", 10, 5),
            ("A", "off_hours", 400, 200),
            # B: morning's 40 % rests on 100 dials, midday's 35 % on 1,000. The lower bound
            # prefers midday (32.1 % > 30.9 %); morning is not significantly worse, so it joins.
            ("B", "morning", 100, 40),
            ("B", "midday", 1000, 350),
            ("B", "evening", 1000, 200),
            # C: a new list with 20 dials in all.
            ("C", "morning", 20, 10),
        ]
    )
    intervals = best_time.contact_rate_intervals(frame, "slot", MIN_CALLS, levels=SLOTS)
    assert len(intervals) == 3 * len(SLOTS)  # every segment gets every slot, dialled or not
    night = intervals[(intervals["segment"] == "A") & (intervals["slot"] == "night")].iloc[0]
    assert not night["enough_data"] and night["contact_rate"] == 0.5
    never = intervals[(intervals["segment"] == "B") & (intervals["slot"] == "night")].iloc[0]
    assert never["dials"] == 0 and math.isnan(never["contact_rate"]) and math.isnan(never["ci_low"])

    windows = best_time.recommend(intervals, "slot", candidates=SLOTS[:-1]).set_index("segment")
    assert windows.loc["A", "best"] == "morning"
    assert windows.loc["A", "window"] == ["morning", "midday"]
    assert windows.loc["B", "best"] == "midday"
    assert windows.loc["B", "window"] == ["morning", "midday"]  # in the day's order
    assert windows.loc["C", "best"] is None and windows.loc["C", "window"] == []
    assert best_time.window_label(windows.loc["C", "window"], "slot") == "not enough data"
    # The window's rate is its summed counters, not the mean of 30 % and 26.7 %.
    assert (windows.loc["A", "dials"], windows.loc["A", "contacts"]) == (600, 170)
    assert windows.loc["A", "contact_rate"] == pytest.approx(170 / 600)
    assert (windows.loc["A", "ci_low"], windows.loc["A", "ci_high"]) == pytest.approx(wilson_interval(170, 600))

    # Without the candidate list, off-hours' 50 % on 400 dials would win.
    assert best_time.recommend(intervals, "slot").set_index("segment").loc["A", "best"] == "off_hours"


def test_the_hour_window_is_one_block_of_hours():
    frame = counters(
        [
            ("A", 9, 400, 100),  # 25 %: significantly below 10:00's 32.5 %
            ("A", 10, 400, 130),  # best
            ("A", 11, 400, 120),  # 30 %: as good
            ("A", 12, 400, 60),  # 15 %: lunch, breaks the block
            ("A", 13, 400, 125),  # as good as 10:00, but not next to it
            ("B", 18, 400, 120),
            ("B", 19, 20, 8),
            ("B", 20, 400, 118),  # a thin hour breaks the block too
        ],
        "hour",
    )
    intervals = best_time.contact_rate_intervals(frame, "hour", MIN_CALLS)
    windows = best_time.recommend(intervals, "hour", contiguous=True).set_index("segment")
    assert windows.loc["A", "window"] == [10, 11]
    assert best_time.window_label(windows.loc["A", "window"], "hour") == "10:00–12:00"
    assert windows.loc["A", "contact_rate"] == pytest.approx(250 / 800)
    assert windows.loc["B", "window"] == [18]


# -- a simulated day in a real chDB ----------------------------------------------------------------


def new_list_calls() -> list[CallAttempt]:
    """A brand-new list, "trial-list": 12 morning dials, 4 answered; too few to judge."""
    start = DAY_START + timedelta(hours=1, minutes=30)  # 09:30 local
    outcomes = [Outcome.CONNECTED] * 4 + [Outcome.NO_ANSWER] * 8
    return [
        CallAttempt(
            schema_version=SCHEMA_VERSION,
            event_id=str(uuid.uuid4()),
            campaign="home-insurance",
            event_time=start + timedelta(seconds=30 * i),
            outcome=outcome,
            lead=Lead(segment="trial-list"),
            talk_seconds=60.0 if outcome is Outcome.CONNECTED else 0.0,
        )
        for i, outcome in enumerate(outcomes)
    ]


@pytest.fixture(scope="module")
def events():
    # 08:00 to 21:00 local covers every slot and an off-hours hour at each end. Half the
    # agents give about 55,000 calls: over 3,000 per segment and slot, enough that seniors'
    # 32 % vs 28 % (morning vs midday) stands out of the noise for any seed.
    simulator = DialerSimulator(RULES, b"k" * 32, seed=11, start=DAY_START, agents_scale=0.5)
    return list(simulator.events(sim_seconds=13 * 3600)) + new_list_calls()


@pytest.fixture(scope="module")
def client(tmp_path_factory, events):
    with migrated_warehouse(tmp_path_factory.mktemp("best-time")) as client:
        land_counted(client, sorted(events, key=lambda e: e.event_time), SETTINGS, RULES)
        yield client


@pytest.fixture(scope="module")
def result(client):
    return best_time.best_time(client, DAY, DAY, RULES, MIN_CALLS)


@pytest.fixture(scope="module")
def raw(events) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "segment": [e.lead.segment for e in events],
            "slot": [RULES.slot_for(e.event_time) for e in events],
            "hour": [e.event_time.astimezone(ZONE).hour for e in events],
            "contact": [e.outcome in (Outcome.CONNECTED, Outcome.ABANDONED) for e in events],
        }
    )


def test_seniors_are_called_in_the_morning_and_salaried_workers_at_night(result):
    windows = result.slot_windows.set_index("segment")
    assert windows.loc["seniors", "best"] == "morning"
    assert windows.loc["salaried", "best"] == "night"
    assert "night" not in windows.loc["seniors", "window"]
    assert "morning" not in windows.loc["salaried", "window"]
    hours = result.hour_windows.set_index("segment")
    # Salaried workers answer at 18-20 (28 %) far more than at 16-18 (12 %); 20:00 is off-hours.
    assert best_time.window_label(hours.loc["salaried", "window"], "hour") == "18:00–20:00"
    assert hours.loc["seniors", "best"] in range(9, 12)
    assert set(hours.loc["seniors", "window"]) <= set(range(9, 16))
    assert windows.loc["trial-list", "best"] is None and windows.loc["trial-list", "window"] == []


def test_slot_rates_and_intervals_equal_the_raw_calls(result, raw):
    expected = raw.groupby(["segment", "slot"]).agg(dials=("contact", "size"), contacts=("contact", "sum"))
    slots = result.slots
    assert slots[slots["segment"] == "seniors"]["slot"].tolist() == SLOTS  # the day's order
    for row in slots.to_dict("records"):
        key = (row["segment"], row["slot"])
        dials, contacts = (int(v) for v in expected.loc[key]) if key in expected.index else (0, 0)
        assert (row["dials"], row["contacts"]) == (dials, contacts), key
        if dials:
            assert row["contact_rate"] == pytest.approx(contacts / dials, rel=1e-12)
            assert (row["ci_low"], row["ci_high"]) == pytest.approx(wilson_interval(contacts, dials), rel=1e-12)
        assert row["enough_data"] == (dials >= MIN_CALLS)
    by_hour = raw.groupby(["segment", "hour"])["contact"].agg(["size", "sum"])
    seniors_at_ten = result.hours.set_index(["segment", "hour"]).loc[("seniors", 10)]
    assert (seniors_at_ten["dials"], seniors_at_ten["contacts"]) == tuple(by_hour.loc[("seniors", 10)])


def test_the_planning_export_marks_thin_slots(result):
    planning = pd.read_csv(io.StringIO(reports.to_csv(best_time.planning_frame(result))))
    planning["data_note"] = planning["data_note"].fillna("")
    assert list(planning.columns) == [
        "segment",
        "slot",
        "dials",
        "contacts",
        "contact_rate",
        "ci_low",
        "ci_high",
        "recommended",
        "data_note",
    ]
    thin = planning["dials"] < MIN_CALLS
    assert thin.any() and (~thin).any()
    assert (planning.loc[thin, "data_note"] == "not enough data").all()
    assert (planning.loc[~thin, "data_note"] == "").all()
    trial = planning[planning["segment"] == "trial-list"].set_index("slot")
    assert trial.loc["morning", ["dials", "contacts"]].tolist() == [12, 4]
    assert trial.loc["morning", "contact_rate"] == pytest.approx(4 / 12)
    assert trial.loc["night", "dials"] == 0 and pd.isna(trial.loc["night", "contact_rate"])  # an empty cell
    assert not trial["recommended"].any()
    seniors = planning[planning["segment"] == "seniors"].set_index("slot")
    assert seniors.loc["morning", "recommended"] and not seniors.loc["night", "recommended"]
    assert (planning["ci_low"].notna() == (planning["dials"] > 0)).all()

    sheet = load_workbook(
        io.BytesIO(reports.to_xlsx(best_time.planning_frame(result), percent=("ci_low", "ci_high")))
    ).active
    header = [cell.value for cell in sheet[1]]
    assert header == list(planning.columns)
    assert {sheet.cell(2, header.index(c) + 1).number_format for c in ("contact_rate", "ci_low", "ci_high")} == {"0.0%"}
