"""Every metric CallPulse shows is defined here, once; every stage imports it.

The stored truth is additive counters per minute bucket. Rates are never stored and
never averaged: each rate is ``sum(numerator) / sum(denominator)`` over whatever
rows a question covers, and a zero denominator gives ``None`` (shown as "—").
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Mapping

import numpy as np
import pandas as pd

from core.config import CostModel
from core.schema import CallAttempt, Outcome

#: The additive counters landed per (campaign, time slot, segment, minute).
COUNTERS: tuple[str, ...] = ("dials", "contacts", "connected", "abandoned", "orders", "cost", "talk_seconds")
#: The counters that count calls (whole numbers, UInt64 in the warehouse); the rest are money and seconds.
CALL_COUNTS: frozenset[str] = frozenset(("dials", "contacts", "connected", "abandoned", "orders"))


@dataclass(frozen=True)
class Rate:
    name: str
    numerator: str
    denominator: str
    label: str
    unit: str  # "percent", "currency" or "seconds": how a page formats it
    description: str


RATES: dict[str, Rate] = {
    rate.name: rate
    for rate in (
        Rate("contact_rate", "contacts", "dials", "Contact rate", "percent",
             "live human answers (connected + abandoned) / dial attempts"),
        Rate("abandon_rate", "abandoned", "contacts", "Abandon rate", "percent",
             "abandoned / live answers (connected + abandoned); never / all dials"),
        Rate("conversion_rate", "orders", "contacts", "Conversion", "percent",
             "orders / live answers"),
        Rate("cpo", "cost", "orders", "Cost per order", "currency",
             "total cost / orders"),
        Rate("aht_seconds", "talk_seconds", "connected", "Avg handle time", "seconds",
             "talk seconds / connected calls"),
    )
}

#: Names a user may ask a report for: the rates and the plain counters.
METRIC_NAMES: tuple[str, ...] = tuple(RATES) + COUNTERS

#: Short names people type ("conversion", "aht") for the canonical metric names.
METRIC_ALIASES: dict[str, str] = {"conversion": "conversion_rate", "aht": "aht_seconds"}

#: The counters of counters_for(), as ClickHouse aggregates over raw ``call_attempts`` rows.
#: Reports by agent team read raw attempts (buckets are not kept per team); a test holds
#: these to the same totals as the minute buckets.
RAW_COUNTER_SQL: dict[str, str] = {
    "dials": "count()",
    "contacts": "countIf(outcome IN ('connected', 'abandoned'))",
    "connected": "countIf(outcome = 'connected')",
    "abandoned": "countIf(outcome = 'abandoned')",
    "orders": "countIf(outcome = 'connected' AND is_order = 1)",
    "cost": "sum(cost)",
    "talk_seconds": "sumIf(talk_seconds, outcome = 'connected')",
}


def metric_label(name: str) -> str:
    """A metric's human name: "Contact rate", "Dials"."""
    return RATES[name].label if name in RATES else name.replace("_", " ").capitalize()


@dataclass(frozen=True)
class ComplianceWindow:
    """A rolling abandon-rate window per campaign, ending now, over whole minute buckets."""

    name: str
    label: str
    minutes: int
    rule: str


#: The abandon rate over each window is abandoned / contacts (live answers), as RATES says.
COMPLIANCE_WINDOWS: tuple[ComplianceWindow, ...] = (
    ComplianceWindow("live_15m", "Last 15 min", 15,
                     "live abandon rate over the last 15 minutes: what a supervisor can still fix"),
    ComplianceWindow("uk_24h", "UK 24 h", 24 * 60,
                     "UK Ofcom: abandoned calls at most 3 % of live calls per campaign over 24 hours"),
    ComplianceWindow("us_30d", "US 30 days", 30 * 24 * 60,
                     "US FTC Telemarketing Sales Rule: abandoned calls at most 3 % of calls answered "
                     "by a live person per campaign over 30 days"),
)


def ratio(numerator: float, denominator: float) -> float | None:
    """numerator / denominator, or None where the denominator is zero."""
    if not denominator:
        return None
    return numerator / denominator


def compute_rates(sums: Mapping[str, float]) -> dict[str, float | None]:
    """All rates from one row of summed counters."""
    return {name: ratio(sums[r.numerator], sums[r.denominator]) for name, r in RATES.items()}


def rate_sql(name: str) -> str:
    """A rate as a ClickHouse expression over columns of its summed counters (named after
    them), NULL where ratio() gives None: for queries that hand out rates ready to show."""
    rate = RATES[name]
    return f"if({rate.denominator} = 0, NULL, {rate.numerator} / {rate.denominator})"


def ratio_series(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    """Element-wise ``ratio``: NaN (null) where the denominator is zero."""
    denominator = denominator.astype("float64")
    return numerator.astype("float64").div(denominator.where(denominator != 0, np.nan))


def add_rate_columns(frame: pd.DataFrame, rates: Iterable[str] = RATES) -> pd.DataFrame:
    """Add rate columns to a frame of summed counters; zero denominators give NaN (null)."""
    frame = frame.copy()
    for name in rates:
        rate = RATES[name]
        frame[name] = ratio_series(frame[rate.numerator], frame[rate.denominator])
    return frame


#: Shown in the UI next to the configured numbers; attempt_cost() below is its code.
COST_FORMULA = ("cost = cost_per_attempt + (ring + wait + talk seconds) / 60 × cost_per_minute "
                "+ talk seconds / 3600 × agent_cost_per_hour, unless the event carries its own cost")


def attempt_cost(attempt: CallAttempt, model: CostModel) -> float:
    """What one attempt cost: its own cost fields if it carries any, else the campaign model.

    Model: cost_per_attempt
         + (ring + wait + talk seconds) / 60 * cost_per_minute      (billed telephony)
         + talk_seconds / 3600 * agent_cost_per_hour                (agent labour)
    """
    if attempt.cost is not None:
        return attempt.cost
    if attempt.telephony_cost is not None or attempt.agent_cost is not None:
        return (attempt.telephony_cost or 0.0) + (attempt.agent_cost or 0.0)
    billed_seconds = attempt.ring_seconds + attempt.wait_seconds + attempt.talk_seconds
    return (
        model.cost_per_attempt
        + billed_seconds / 60.0 * model.cost_per_minute
        + attempt.talk_seconds / 3600.0 * model.agent_cost_per_hour
    )


def counters_for(outcome: Outcome | str, is_order: bool, cost: float, talk_seconds: float) -> tuple[float, ...]:
    """The increments one attempt adds to its bucket, in COUNTERS order.

    Takes plain fields so the worker (from events) and recovery (from landed rows)
    share one definition.
    """
    if not isinstance(outcome, Outcome):  # recovery reads the outcome's name; Outcome() on a member is slow
        outcome = Outcome(outcome)
    connected = outcome is Outcome.CONNECTED
    abandoned = outcome is Outcome.ABANDONED
    return (
        1,                                   # dials
        int(connected or abandoned),         # contacts: live answers
        int(connected),                      # connected
        int(abandoned),                      # abandoned
        int(connected and bool(is_order)),   # orders: only a call an agent talked to can order
        float(cost),                         # cost
        float(talk_seconds) if connected else 0.0,  # talk_seconds
    )


def attempt_counters(attempt: CallAttempt, model: CostModel) -> tuple[float, ...]:
    return counters_for(attempt.outcome, attempt.order, attempt_cost(attempt, model), attempt.talk_seconds)


# counters_for()'s call counts for each outcome and order flag, without the zeros.
_CALL_COUNT_INCREMENTS = {
    (outcome, is_order): tuple((index, value) for index, value in enumerate(counters_for(outcome, is_order, 0, 0))
                               if value)
    for outcome in Outcome for is_order in (False, True)
}
_COST_INDEX, _TALK_INDEX = COUNTERS.index("cost"), COUNTERS.index("talk_seconds")


def counter_increments(outcome: Outcome | str, is_order: bool, cost: float,
                       talk_seconds: float) -> tuple[tuple[int, float], ...]:
    """counters_for() as (COUNTERS index, increment) pairs, zeros left out: the worker adds
    only what a call changes, and a dial nobody answered changes two counters of seven."""
    if not isinstance(outcome, Outcome):
        outcome = Outcome(outcome)
    increments = _CALL_COUNT_INCREMENTS[outcome, bool(is_order)]
    if cost:
        increments += ((_COST_INDEX, float(cost)),)
    if talk_seconds and outcome is Outcome.CONNECTED:
        increments += ((_TALK_INDEX, float(talk_seconds)),)
    return increments


def attempt_increments(attempt: CallAttempt, model: CostModel) -> tuple[tuple[int, float], ...]:
    return counter_increments(attempt.outcome, attempt.order, attempt_cost(attempt, model), attempt.talk_seconds)


def format_metric(name: str, value: float | None) -> str:
    """How a page or a table shows a value: "—" for null."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "—"
    unit = RATES[name].unit if name in RATES else "count"
    if unit == "percent":
        return f"{value * 100:.1f} %"
    if unit == "currency":
        return f"{value:,.2f}"
    if unit == "seconds":
        return f"{value:,.0f} s"
    if name in ("cost", "talk_seconds"):
        return f"{value:,.2f}"
    return f"{value:,.0f}"


# z for a two-sided 95 % interval.
Z_95 = 1.959963984540054


def wilson_interval(successes: float, trials: float, z: float = Z_95) -> tuple[float, float] | None:
    """The Wilson score interval for successes / trials; None when there are no trials.

    Unlike the textbook p ± z·sqrt(p(1-p)/n), it stays inside [0, 1] and does not collapse
    to a zero width at 0 or n successes, which is exactly where thin slots end up.
    """
    if trials < 0 or successes < 0 or successes > trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes} of {trials}")
    if trials == 0:
        return None
    share = successes / trials
    z2_over_n = z * z / trials
    centre = (share + z2_over_n / 2) / (1 + z2_over_n)
    half_width = z / (1 + z2_over_n) * math.sqrt(share * (1 - share) / trials + z2_over_n / (4 * trials))
    # At 0 or n successes the bound is exactly 0 or 1; rounding must not leave it a hair inside.
    low = 0.0 if successes == 0 else max(0.0, centre - half_width)
    high = 1.0 if successes == trials else min(1.0, centre + half_width)
    return low, high
