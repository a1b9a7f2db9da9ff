"""Response-model monitoring: the calibration math by hand, and on a real chDB.

The warehouse half lands two simulated campaigns whose leads carry the same kind of
scores: one whose model holds (P(order | conversation) = score), one whose model
decays within the first hour (orders fall to the campaign average whatever the score).
The checks are what a manager would look at: the decayed model's calibration error is
clearly higher and its AUC lower, and the warehouse's numbers equal the same math over
the raw events.
"""

from __future__ import annotations

import itertools
import math
import random
import sys
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
from warehouse_helpers import migrated_warehouse

from analytics.calibration import (
    Calibration,
    auc,
    calibration_table,
    chi2_sf,
    expected_calibration_error,
    hosmer_lemeshow,
    trailing_calibration,
    trailing_calibrations,
    week_start,
    weekly_calibration,
)
from core.config import load_settings
from core.handoff import CountedAttempts, LandingBatch
from core.schema import Outcome
from core.slots import SlotRules
from producers.simulator import DEFAULT_CAMPAIGNS, DialerSimulator
from warehouse.landing import Lander

# -- the math by hand ------------------------------------------------------------------------

# Twelve scored conversations, in four bins of 12 / 4 = 3 by rank. The two calls scored
# 0.20 sit at rank positions 2 and 3; their middle position 2.5 falls in bin 1
# (floor(2.5 * 4 / 12) = 0), so both go there and bin 2 keeps only positions 4 and 5.
#
#   bin  scores                 calls  orders  expected E = sum(scores)  mean predicted  actual
#   1    .05 .10 .20 .20        4      1       0.55                      0.1375          0.25
#   2    .30 .40                2      1       0.70                      0.35            0.50
#   3    .50 .60 .70            3      2       1.80                      0.60            0.6667
#   4    .80 .85 .90            3      2       2.55                      0.85            0.6667
#
# ECE = sum |orders - E| / n = (0.45 + 0.30 + 0.20 + 0.55) / 12 = 1.5 / 12 = 0.125
#
# HL = sum (O - E)^2 / (E (1 - E / calls)):
#   bin 1: 0.2025 / (0.55 * 0.8625) = 0.2025 / 0.474375 = 108/253
#   bin 2: 0.09   / (0.70 * 0.65)   = 0.09 / 0.455      = 18/91
#   bin 3: 0.04   / (1.80 * 0.40)   = 0.04 / 0.72       = 1/18
#   bin 4: 0.3025 / (2.55 * 0.15)   = 0.3025 / 0.3825   = 121/153
#   HL = 10363849 / 7045038 = 1.4710849; df = 4 bins, so p = exp(-HL / 2) * (1 + HL / 2) = 0.831751
#
# AUC: orders scored .20 .40 .60 .70 .80 .90, non-orders .05 .10 .20 .30 .50 .85 (6 x 6 = 36 pairs).
# Non-orders below each order (a tie counts one half): .20 -> 2 + 0.5, .40 -> 4, .60 -> 5,
# .70 -> 5, .80 -> 5, .90 -> 6; sum 27.5, AUC = 27.5 / 36 = 55/72 = 0.763889.
HAND_SCORES = [0.05, 0.10, 0.20, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70, 0.80, 0.85, 0.90]
HAND_ORDERS = [0, 0, 1, 0, 0, 1, 0, 1, 1, 1, 0, 1]
HAND_HL = 10363849 / 7045038


def test_hand_computed_example():
    table = calibration_table(HAND_SCORES, HAND_ORDERS, bins=4)
    assert table["decile"].tolist() == [1, 2, 3, 4]
    assert table["calls"].tolist() == [4, 2, 3, 3]
    assert table["orders"].tolist() == [1, 1, 2, 2]
    assert table["predicted"].tolist() == pytest.approx([0.1375, 0.35, 0.60, 0.85])
    assert table["actual"].tolist() == pytest.approx([0.25, 0.5, 2 / 3, 2 / 3])
    assert table["gap"].tolist() == pytest.approx([0.1125, 0.15, 2 / 3 - 0.6, 2 / 3 - 0.85])
    assert table[["score_min", "score_max"]].values.tolist() == [[0.05, 0.2], [0.3, 0.4], [0.5, 0.7], [0.8, 0.9]]

    assert expected_calibration_error(HAND_SCORES, HAND_ORDERS, bins=4) == pytest.approx(0.125)
    assert auc(HAND_SCORES, HAND_ORDERS) == pytest.approx(55 / 72)
    hl = hosmer_lemeshow(HAND_SCORES, HAND_ORDERS, bins=4)
    assert hl.statistic == pytest.approx(HAND_HL)
    assert hl.df == 4
    assert hl.pvalue == pytest.approx(math.exp(-HAND_HL / 2) * (1 + HAND_HL / 2))
    assert hl.pvalue == pytest.approx(0.831751, abs=1e-6)

    result = Calibration.from_scores(
        "hand",
        datetime(2026, 11, 16, tzinfo=timezone.utc),
        datetime(2026, 11, 23, tzinfo=timezone.utc),
        HAND_SCORES,
        HAND_ORDERS,
        bins=4,
    )
    assert (result.n, result.orders) == (12, 6)
    assert (result.ece, result.auc, result.hl_pvalue) == (
        pytest.approx(0.125),
        pytest.approx(55 / 72),
        pytest.approx(0.831751, abs=1e-6),
    )
    assert result.predicted_rate == pytest.approx(sum(HAND_SCORES) / 12)
    assert result.actual_rate == 0.5


def test_the_bins_do_not_depend_on_row_order_and_unscored_calls_are_left_out():
    shuffled = list(zip(HAND_SCORES, HAND_ORDERS))
    random.Random(3).shuffle(shuffled)
    scores, orders = zip(*shuffled)
    pd.testing.assert_frame_equal(
        calibration_table(scores, orders, bins=4), calibration_table(HAND_SCORES, HAND_ORDERS, bins=4)
    )
    with_unscored = calibration_table([*HAND_SCORES, np.nan, np.nan], [*HAND_ORDERS, 1, 1], bins=4)
    pd.testing.assert_frame_equal(with_unscored, calibration_table(HAND_SCORES, HAND_ORDERS, bins=4))


def test_deciles_hold_equal_counts_and_a_tie_group_never_straddles_a_boundary():
    rng = np.random.default_rng(5)
    scores = rng.uniform(0, 0.5, 1000)
    table = calibration_table(scores, rng.random(1000) < scores)
    assert table["decile"].tolist() == list(range(1, 11))
    assert table["calls"].tolist() == [100] * 10
    assert (table["score_min"].iloc[1:].to_numpy() > table["score_max"].iloc[:-1].to_numpy()).all()

    coarse = np.round(scores, 1)  # six distinct scores for ten bins
    table = calibration_table(coarse, rng.random(1000) < coarse)
    assert table["calls"].sum() == 1000
    assert (table["score_min"] == table["score_max"]).all()  # each bin is one whole tie group
    assert table["score_min"].is_unique


def test_auc_edge_cases():
    assert auc([0.2] * 6, [1, 0, 1, 0, 0, 1]) == 0.5  # every pair tied: half credit each
    assert auc([0.1, 0.2, 0.3], [1, 1, 1]) is None  # only orders: no pair to rank
    assert auc([0.1, 0.2, 0.3], [0, 0, 0]) is None
    assert auc([], []) is None
    assert auc([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == 1.0
    assert auc([0.1, 0.2, 0.8, 0.9], [1, 1, 0, 0]) == 0.0


def test_auc_equals_counting_every_pair():
    rng = np.random.default_rng(11)
    scores = np.round(rng.uniform(0, 1, 150), 1)  # coarse, so many pairs tie
    orders = rng.random(150) < scores
    pairs = [
        (1.0 if s_pos > s_neg else 0.5 if s_pos == s_neg else 0.0)
        for s_pos, s_neg in itertools.product(scores[orders], scores[~orders])
    ]
    assert auc(scores, orders) == pytest.approx(sum(pairs) / len(pairs), rel=1e-12)


def test_chi_square_tail_matches_the_textbook_critical_values():
    # The 5 % critical values printed in every chi-square table.
    for critical, df in [(3.841, 1), (5.991, 2), (7.815, 3), (9.488, 4), (11.070, 5), (15.507, 8), (16.919, 9)]:
        assert chi2_sf(critical, df) == pytest.approx(0.05, abs=2e-4)
    assert chi2_sf(0.0, 8) == 1.0
    assert chi2_sf(math.inf, 8) == 0.0


def test_degenerate_inputs():
    assert expected_calibration_error([], []) is None
    assert hosmer_lemeshow([], []).pvalue is None  # no bins, no degrees of freedom
    assert hosmer_lemeshow(
        [0.0] * 20 + [0.5] * 20 + [0.9] * 20, [0] * 20 + [1] * 10 + [0] * 10 + [1] * 18 + [0] * 2, bins=3
    ).statistic == pytest.approx(0.0)  # a 0 % bin with no orders is no evidence
    assert (
        hosmer_lemeshow([0.0] * 20 + [0.5] * 20 + [0.9] * 20, [1] + [0] * 29 + [1] * 30, bins=3).pvalue == 0.0
    )  # an order where the model said impossible
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        calibration_table([0.2, 1.4], [0, 1])
    with pytest.raises(ValueError, match="0/1"):
        calibration_table([0.2, 0.4], [0, 2])


# -- on a real chDB -----------------------------------------------------------------------------

SETTINGS = load_settings()
ZONE = SETTINGS.zone
RULES = SlotRules(SETTINGS.slots, ZONE)
# Sunday 22:00 in Tokyo (13:00 UTC): six hours run past local midnight into Monday, so the
# calls fall into two local weeks while in UTC they are all in one.
START = datetime(2026, 11, 22, 13, 0, tzinfo=timezone.utc)
HOURS = 6
CALIBRATED, DECAYED = "model-holds", "model-decays"


@pytest.fixture(scope="module")
def events():
    # home-insurance (12 % conversion) with a rich list and gentle pacing: the checks need
    # conversations, and a poor list spends most of the simulation on unanswered dials.
    base = replace(DEFAULT_CAMPAIGNS[0], agents=100, list_quality=4.0, lines_per_free_agent=1.2)
    campaigns = [replace(base, name=CALIBRATED), replace(base, name=DECAYED, model_decay_hours=1.0)]
    simulator = DialerSimulator(RULES, b"k" * 32, seed=21, start=START, campaigns=campaigns)
    return list(simulator.events(sim_seconds=HOURS * 3600))


@pytest.fixture(scope="module")
def client(tmp_path_factory, events):
    with migrated_warehouse(tmp_path_factory.mktemp("calibration")) as client:
        lander = Lander(client, SETTINGS)
        for first in range(0, len(events), 5000):  # several batches, as the worker lands them
            lander.land(
                LandingBatch(CountedAttempts.priced(events[first : first + 5000], RULES, SETTINGS.cost_model_for))
            )
        # A replay: landing is idempotent, and so must the calibration be.
        lander.land(LandingBatch(CountedAttempts.priced(events[:3000], RULES, SETTINGS.cost_model_for)))
        yield client


@pytest.fixture(scope="module")
def conversations(events) -> pd.DataFrame:
    """The population, from the raw events: scored calls that reached an agent."""
    rows = [
        (e.campaign, e.event_time, e.lead.response_score, int(e.order))
        for e in events
        if e.outcome is Outcome.CONNECTED and e.lead.response_score is not None
    ]
    frame = pd.DataFrame(rows, columns=["campaign", "event_time", "score", "order"])
    frame["week"] = [week_start(t, ZONE) for t in frame["event_time"]]
    return frame


def test_warehouse_weekly_calibration_equals_the_math_over_the_raw_events(client, conversations):
    start, end = week_start(START, ZONE), week_start(START, ZONE) + timedelta(weeks=2)
    weekly = weekly_calibration(client, start, end, ZONE)
    expected = conversations.groupby(["campaign", "week"])
    assert [(r.campaign, r.period_start) for r in weekly] == list(expected.groups)
    assert len(weekly) == 4  # two campaigns x two local weeks
    assert [r.period_start.isoformat() for r in weekly[:2]] == [
        "2026-11-16T00:00:00+09:00",
        "2026-11-23T00:00:00+09:00",
    ]
    for result in weekly:
        mine = expected.get_group((result.campaign, result.period_start))
        assert (result.n, result.orders) == (len(mine), mine["order"].sum())  # the replay counted once
        reference = Calibration.from_scores(
            result.campaign, result.period_start, result.period_end, mine["score"], mine["order"]
        )
        assert result.ece == pytest.approx(reference.ece, rel=1e-9)
        assert result.auc == pytest.approx(reference.auc, rel=1e-9)
        assert result.hl_pvalue == pytest.approx(reference.hl_pvalue, rel=1e-6)
        pd.testing.assert_frame_equal(result.table, reference.table, rtol=1e-9)

    only = weekly_calibration(client, start, end, ZONE, campaigns=[CALIBRATED])
    assert {r.campaign for r in only} == {CALIBRATED}
    assert weekly_calibration(client, start, end, ZONE, campaigns=["x' OR 1=1 --"]) == []


def test_a_decayed_model_shows_a_higher_calibration_error_and_a_lower_auc(client, conversations):
    until = START + timedelta(hours=HOURS)
    held = trailing_calibration(client, CALIBRATED, until, days=1)
    decayed = trailing_calibration(client, DECAYED, until, days=1)
    for result in (held, decayed):
        mine = conversations[conversations["campaign"] == result.campaign]
        assert (result.n, result.orders) == (len(mine), mine["order"].sum())
        assert result.n > 6000
    print(
        f"\n{CALIBRATED}: n={held.n} ECE={held.ece:.4f} AUC={held.auc:.3f} HL p={held.hl_pvalue:.3g}"
        f"\n{DECAYED}: n={decayed.n} ECE={decayed.ece:.4f} AUC={decayed.auc:.3f} HL p={decayed.hl_pvalue:.3g}",
        file=sys.stderr,
    )
    # A calibrated model's deciles miss only by sampling noise: ~1 point at these samples.
    assert held.ece < 0.02
    assert held.hl_pvalue > 0.001
    assert decayed.ece > 2.5 * held.ece
    assert decayed.hl_pvalue < 1e-6
    assert decayed.auc < held.auc - 0.08
    # Decayed, the top decile is promised far more than the campaign average it now gets.
    top = decayed.table.iloc[-1]
    assert top["predicted"] - top["actual"] > 0.08
    assert top["actual_high"] < top["predicted"]


def test_the_trailing_window_has_exact_edges(client, conversations):
    until = START + timedelta(hours=HOURS)
    last_hour = trailing_calibration(client, DECAYED, until, days=1 / 24)
    mine = conversations[
        (conversations["campaign"] == DECAYED)
        & (conversations["event_time"] >= until - timedelta(hours=1))
        & (conversations["event_time"] < until)
    ]
    assert (last_hour.n, last_hour.orders) == (len(mine), mine["order"].sum())
    assert last_hour.period_start == until - timedelta(hours=1)
    assert trailing_calibration(client, DECAYED, START, days=7) is None  # nothing before the first call
    assert trailing_calibration(client, "no-such-campaign", until) is None


def test_many_campaigns_each_up_to_its_own_time_in_one_query_match_one_at_a_time(client):
    """The worker's hourly path (trailing_calibrations) must give what the per-campaign
    query gives, each campaign with its own window edges."""
    untils = {
        CALIBRATED: START + timedelta(hours=HOURS),
        DECAYED: START + timedelta(hours=HOURS / 2),
        "no-such-campaign": START + timedelta(hours=HOURS),
    }
    together = trailing_calibrations(client, untils, days=1 / 6)
    assert together["no-such-campaign"] is None
    for campaign in (CALIBRATED, DECAYED):
        alone = trailing_calibration(client, campaign, untils[campaign], days=1 / 6)
        mine = together[campaign]
        assert (mine.n, mine.orders, mine.period_start, mine.period_end) == (
            alone.n,
            alone.orders,
            alone.period_start,
            alone.period_end,
        )
        assert (mine.ece, mine.auc, mine.hl_pvalue) == pytest.approx((alone.ece, alone.auc, alone.hl_pvalue))
        pd.testing.assert_frame_equal(mine.table, alone.table)
        assert mine.n > 1000  # a window with calls in it, not two empty answers agreeing


def test_response_model_page_draws_the_warehouse_numbers(client, conversations):
    from dashboards.app import create_app
    from dashboards.data import DashboardContext

    create_app(DashboardContext(SETTINGS, client))
    page = sys.modules[next(p["module"] for p in __import__("dash").page_registry.values() if p["path"] == "/model")]
    weeks, chosen = page.weeks_for(DECAYED, None)
    assert [w["value"] for w in weeks] == ["2026-11-23", "2026-11-16"]
    assert chosen == "2026-11-23"  # the newest week by default

    figure, rows, _styles, trend, summary, note, search = page.build(DECAYED, chosen)
    expected = next(
        r
        for r in weekly_calibration(client, week_start(START, ZONE), week_start(START, ZONE) + timedelta(weeks=2), ZONE)
        if r.campaign == DECAYED and r.period_start.date().isoformat() == chosen
    )
    deciles = next(t for t in figure.data if t.name == "actual by score bin")
    assert list(deciles.x) == pytest.approx(expected.table["predicted"].tolist())
    assert list(deciles.y) == pytest.approx(expected.table["actual"].tolist())
    diagonal = next(t for t in figure.data if t.name == "perfect calibration")
    assert list(diagonal.x) == list(diagonal.y)
    assert [row["decile"] for row in rows] == expected.table["decile"].tolist()
    assert f"{expected.n:,} scored conversations" in summary
    assert note.startswith(f"{expected.n:,} scored conversations in 10 bins (deciles)")
    assert search == f"?campaign={DECAYED}&week={chosen}"
    ece_lines = {t.name: t for t in trend.data if t.yaxis == "y"}
    assert set(ece_lines) == {CALIBRATED, DECAYED}
    assert list(ece_lines[DECAYED].x) == ["2026-11-16", "2026-11-23"]
    assert ece_lines[DECAYED].y[-1] == pytest.approx(expected.ece)


def test_a_thin_week_gets_fewer_bins_and_the_page_says_why(client, conversations):
    """A week with too few conversations for ten bins of report_min_calls is cut into fewer,
    bigger bins, and the note above the table says so with n."""
    import msgspec

    from dashboards.app import create_app
    from dashboards.data import DashboardContext, set_context
    from dashboards.theme import TOO_FEW

    create_app(DashboardContext(SETTINGS, client))
    page = sys.modules[next(p["module"] for p in __import__("dash").page_registry.values() if p["path"] == "/model")]
    _weeks, chosen = page.weeks_for(DECAYED, None)
    week = next(
        r
        for r in weekly_calibration(client, week_start(START, ZONE), week_start(START, ZONE) + timedelta(weeks=2), ZONE)
        if r.campaign == DECAYED and r.period_start.date().isoformat() == chosen
    )
    min_calls = week.n // 3 + 1  # ten bins would hold a tenth each; three of a third still fall short
    thin = msgspec.structs.replace(
        SETTINGS, dashboard=msgspec.structs.replace(SETTINGS.dashboard, report_min_calls=min_calls)
    )
    set_context(DashboardContext(thin, client))
    try:
        figure, rows, styles, _trend, _summary, note, _search = page.build(DECAYED, chosen)
    finally:
        set_context(DashboardContext(SETTINGS, client))
    two_bins = weekly_calibration(client, week.period_start, week.period_end, ZONE, [DECAYED], bins=2)[0]
    assert [row["calls"] for row in rows] == [f"{calls:,}" for calls in two_bins.table["calls"]]
    assert len(rows) == 2 and sum(two_bins.table["calls"]) == week.n
    assert note.startswith(f"{week.n:,} scored conversations in 2 bins instead of 10")
    # Each of the two bins holds about half the week, over min_calls: none is greyed, and the
    # note says why there are two, with the numbers.
    assert not [style for style in styles if style.get("backgroundColor") == TOO_FEW]
    assert f"10 would hold about {week.n // 10:,} each, under the {min_calls:,} a bin needs" in note
    assert "greyed" not in note


def test_the_model_pages_trend_before_any_scored_week_says_so_instead_of_empty_panels(client):
    """A first start: the trend says there is nothing to follow yet, rather than two empty panels
    on a 0-400 % axis."""
    from analytics.calibration import calibration_frame
    from dashboards.app import create_app
    from dashboards.data import DashboardContext

    create_app(DashboardContext(SETTINGS, client))
    page = sys.modules[next(p["module"] for p in __import__("dash").page_registry.values() if p["path"] == "/model")]
    trend = page._trend(calibration_frame([]), None)
    assert not trend.data
    assert [note.text for note in trend.layout.annotations] == [
        "No week with scored conversations yet: the trend starts with the first."
    ]
