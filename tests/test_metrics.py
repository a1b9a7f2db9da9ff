from datetime import datetime, timezone

import pandas as pd
import pytest

from core.config import CostModel
from core.metrics import (
    COUNTERS,
    add_rate_columns,
    attempt_cost,
    attempt_counters,
    compute_rates,
    counter_increments,
    counters_for,
    format_metric,
)
from core.schema import CallAttempt, Lead, Outcome

MODEL = CostModel(cost_per_attempt=0.02, cost_per_minute=0.03, agent_cost_per_hour=24.0)


def attempt(outcome, **changes) -> CallAttempt:
    return CallAttempt(
        schema_version=1,
        event_id="e",
        campaign="c",
        outcome=outcome,
        lead=Lead(segment="s"),
        event_time=datetime(2026, 11, 23, tzinfo=timezone.utc),
        **changes,
    )


def test_abandon_rate_divides_by_live_answers_not_dials():
    rates = compute_rates(
        {
            "dials": 1000,
            "contacts": 200,
            "connected": 194,
            "abandoned": 6,
            "orders": 20,
            "cost": 500.0,
            "talk_seconds": 194 * 120.0,
        }
    )
    assert rates["abandon_rate"] == pytest.approx(0.03)
    assert rates["contact_rate"] == pytest.approx(0.2)
    assert rates["conversion_rate"] == pytest.approx(0.1)
    assert rates["cpo"] == pytest.approx(25.0)
    assert rates["aht_seconds"] == pytest.approx(120.0)


def test_zero_denominators_give_null_and_show_a_dash():
    rates = compute_rates(
        {"dials": 0, "contacts": 0, "connected": 0, "abandoned": 0, "orders": 0, "cost": 3.0, "talk_seconds": 0.0}
    )
    assert all(value is None for value in rates.values())
    assert format_metric("cpo", rates["cpo"]) == "—"
    assert format_metric("abandon_rate", 0.0312) == "3.1 %"


def test_totals_are_sums_over_sums_never_averages_of_rates():
    rows = pd.DataFrame(
        {
            "dials": [100.0, 900.0],
            "contacts": [50.0, 90.0],
            "connected": [49.0, 81.0],
            "abandoned": [1.0, 9.0],
            "orders": [5.0, 0.0],
            "cost": [10.0, 80.0],
            "talk_seconds": [4900.0, 8100.0],
        }
    )
    total = add_rate_columns(rows.sum().to_frame().T)
    assert total["abandon_rate"].iloc[0] == pytest.approx(10 / 140)
    assert total["abandon_rate"].iloc[0] != pytest.approx(add_rate_columns(rows)["abandon_rate"].mean())
    assert pd.isna(add_rate_columns(rows)["cpo"].iloc[1])


def test_counters_of_each_outcome():
    assert attempt_counters(attempt(Outcome.NO_ANSWER, ring_seconds=25), MODEL)[:5] == (1, 0, 0, 0, 0)
    assert attempt_counters(attempt(Outcome.ABANDONED, ring_seconds=10, wait_seconds=2), MODEL)[:5] == (1, 1, 0, 1, 0)
    connected = attempt_counters(attempt(Outcome.CONNECTED, talk_seconds=120, order=True), MODEL)
    assert connected[:5] == (1, 1, 1, 0, 1)
    assert connected[6] == 120
    # An order flag on a call nobody talked to cannot be an order.
    assert attempt_counters(attempt(Outcome.MACHINE, order=True), MODEL)[4] == 0


@pytest.mark.parametrize("outcome", list(Outcome) + ["connected", "abandoned"])  # recovery passes names
@pytest.mark.parametrize("is_order", [False, True, 1])
@pytest.mark.parametrize("cost, talk_seconds", [(0.0, 0.0), (0.35, 0.0), (0.0, 95.5), (1.25, 300.0)])
@pytest.mark.parametrize("wait_seconds", [0.0, 2.0, 2.5, None])
def test_the_workers_sparse_increments_are_the_counters_without_their_zeros(
    outcome, is_order, cost, talk_seconds, wait_seconds
):
    """The worker adds counter_increments(); reports and recovery define a call by counters_for()."""
    increments = counter_increments(outcome, is_order, cost, talk_seconds, wait_seconds)
    full = [0.0] * len(COUNTERS)
    for index, value in increments:
        full[index] += value
    assert full == list(counters_for(outcome, is_order, cost, talk_seconds, wait_seconds))
    assert all(value for _, value in increments) and len({index for index, _ in increments}) == len(increments)


def test_cost_model_and_event_costs():
    # 0.02 per attempt + 3 billed minutes * 0.03 + 2 agent minutes at 24/h
    priced = attempt_cost(attempt(Outcome.CONNECTED, ring_seconds=50, wait_seconds=10, talk_seconds=120), MODEL)
    assert priced == pytest.approx(0.02 + 3 * 0.03 + 0.8)
    assert attempt_cost(attempt(Outcome.BUSY, cost=0.5), MODEL) == 0.5
    assert attempt_cost(attempt(Outcome.BUSY, telephony_cost=0.1, agent_cost=0.2), MODEL) == pytest.approx(0.3)
