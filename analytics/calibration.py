"""Response-model monitoring: does a lead's predicted response score still match what happens?

Leads carry ``response_score``, the model's P(order | the person talks to an agent).
When the model decays, orders stop following the score, and the list should be
re-scored. This module measures that, per campaign and period.

Definitions (the same for every caller: the worker's drift alert, the Response model
page, and anyone with arrays):

- **Population.** Live-answered calls that reached an agent (outcome ``connected``)
  and carry a ``response_score``. Abandoned calls never talked to an agent, so the
  score says nothing about them; unscored leads are not the model's. Actual = the
  call's ``is_order`` (1 or 0).
- **Deciles.** Within one campaign and period, calls are ranked by score and cut into
  ``bins`` (10) equal-count bins: a call at 0-based rank position ``i`` of ``n`` goes
  to bin ``floor(i * bins / n)``. Calls with the same score must share a bin (which
  one must not depend on row order), so a group of ties is placed by its middle
  position, ``(first + last) / 2``. Bins therefore hold equal counts up to ties, and
  with fewer than ``bins`` calls, or many ties, some bins stay empty and are left out.
  Decile 1 holds the lowest scores.
- **Calibration error.** Expected calibration error,
  ``ECE = sum over bins of (n_bin / n) * |mean predicted - actual order rate|``,
  which equals ``sum |orders_bin - expected orders_bin| / n``. It is an absolute
  difference of rates, kept as a fraction like every rate in CallPulse: 0.03 reads
  "3 rate points". 0 is perfect. Even a perfect model shows some ECE from sampling
  noise alone, roughly 0.8 * sqrt(p (1 - p) * bins / n) at order rate p, which is
  what the Hosmer-Lemeshow test below accounts for.
- **AUC.** How well the score ranks buyers above non-buyers, as the Mann-Whitney
  statistic: over every (order, no order) pair, the share where the order had the
  higher score, a tie counting one half. 0.5 is no better than chance. None when
  the calls hold only orders or only non-orders. AUC ignores calibration: a model
  whose scores are all twice too high keeps its AUC but not its ECE.
- **Hosmer-Lemeshow.** ``HL = sum over bins of (O - E)^2 / (E * (1 - E / n_bin))``
  with O the bin's orders and E the sum of its scores (its expected orders),
  compared with a chi-square distribution with ``bins`` degrees of freedom
  (non-empty bins). A small p-value says the gaps are larger than chance gives at
  this sample size: real miscalibration, not a small sample. A bin whose expected
  rate is exactly 0 or 1 adds nothing when it matches and makes HL infinite when it
  does not. Why ``bins`` and not the textbook ``bins - 2``: the textbook df is for a
  model fitted on the same calls; our scores come from a model fitted elsewhere
  (external validation), where HL follows ``bins`` df. Simulated under a perfectly
  calibrated model HL averages 10.0 over 10 bins; with ``bins - 2`` df p < 0.01
  came up in 3 % of calibrated weeks, with ``bins`` in 0.9-1.9 %.

The warehouse's reads (warehouse.queries.model) let ClickHouse do the heavy part: they
return, per campaign and period, one row per distinct score with its calls and orders (scores carry four
decimals, so a week is at most ~10 k rows however many calls it holds). Binning,
ECE, AUC and HL then run on those counts here, with the same code as the array
functions, so the page, the alert and a notebook agree to the last digit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from functools import cached_property
from typing import NamedTuple
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from core.metrics import wilson_interval
from warehouse.queries.model import trailing_score_counts, trailing_score_counts_at, weekly_score_counts

DEFAULT_BINS = 10
#: Degrees of freedom Hosmer-Lemeshow takes off the bin count (see the caveat above).
HL_DF_LOST = 0

TABLE_COLUMNS = [
    "decile",
    "calls",
    "orders",
    "score_min",
    "score_max",
    "predicted",
    "actual",
    "actual_low",
    "actual_high",
    "gap",
]


# -- the math, on arrays ------------------------------------------------------------------


class _ScoreCounts(NamedTuple):
    """Calls grouped by distinct score, ascending: what both arrays and SQL reduce to."""

    score: np.ndarray  # float64, strictly increasing
    calls: np.ndarray  # int64, calls with that score
    orders: np.ndarray  # int64, of which ordered

    @property
    def n(self) -> int:
        return int(self.calls.sum())

    @property
    def total_orders(self) -> int:
        return int(self.orders.sum())


def _counts_from_arrays(scores, orders) -> _ScoreCounts:
    scores = np.asarray(scores, dtype="float64")
    orders = np.asarray(orders, dtype="float64")
    if scores.shape != orders.shape or scores.ndim != 1:
        raise ValueError(f"scores and orders must be 1-d and the same length, got {scores.shape} and {orders.shape}")
    scored = ~np.isnan(scores)  # an unscored lead is not in the population
    scores, orders = scores[scored], orders[scored]
    if ((scores < 0) | (scores > 1)).any():
        raise ValueError("response scores are probabilities and must lie in [0, 1]")
    if not np.isin(orders, (0.0, 1.0)).all():
        raise ValueError("orders must be 0/1 (or booleans), one per call")
    distinct, position = np.unique(scores, return_inverse=True)
    calls = np.bincount(position, minlength=len(distinct)).astype("int64")
    ordered = np.bincount(position, weights=orders, minlength=len(distinct)).round().astype("int64")
    return _ScoreCounts(distinct, calls, ordered)


def _bin_of_each_score(counts: _ScoreCounts, bins: int) -> np.ndarray:
    """Equal-count bin of each distinct score, ties placed by their middle rank position.

    Integer arithmetic on twice the middle position, so a boundary case never depends
    on floating-point rounding: bin = floor((2 * first + calls - 1) * bins / (2 * n)).
    """
    if bins < 1:
        raise ValueError("bins must be at least 1")
    n = counts.n
    first = np.cumsum(counts.calls) - counts.calls
    return ((2 * first + counts.calls - 1) * bins) // (2 * n)


class _Bins(NamedTuple):
    """The calibration table's numbers, one entry per non-empty bin (numpy, no frame)."""

    decile: np.ndarray
    calls: np.ndarray
    orders: np.ndarray
    score_min: np.ndarray
    score_max: np.ndarray
    predicted: np.ndarray


_NO_BINS = _Bins(*(np.empty(0, dtype="int64") for _ in range(3)), *(np.empty(0, dtype="float64") for _ in range(3)))


def _bins(counts: _ScoreCounts, bins: int) -> _Bins:
    if counts.n == 0:
        return _NO_BINS
    bin_index = _bin_of_each_score(counts, bins)
    # Scores are sorted, so each bin is a run of consecutive scores: sum the runs in
    # numpy (the page and the weekly trend build dozens of these tables at a time, and
    # the drift alert one per live campaign at each event hour).
    starts = np.flatnonzero(np.r_[True, bin_index[1:] != bin_index[:-1]])
    ends = np.r_[starts[1:], len(bin_index)] - 1
    calls = np.add.reduceat(counts.calls, starts)
    return _Bins(
        bin_index[starts] + 1,
        calls,
        np.add.reduceat(counts.orders, starts),
        counts.score[starts],
        counts.score[ends],
        np.add.reduceat(counts.score * counts.calls, starts) / calls,
    )


def _order_rate_interval(orders: int, calls: int) -> tuple[float, float]:
    """The Wilson interval of a bin's order rate (every bin holds calls)."""
    interval = wilson_interval(orders, calls)
    assert interval is not None, "a score bin holds calls"
    return interval


def _frame_of(table: _Bins) -> pd.DataFrame:
    if not len(table.calls):
        return pd.DataFrame(
            {
                column: pd.Series(dtype="int64" if column in ("decile", "calls", "orders") else "float64")
                for column in TABLE_COLUMNS
            }
        )
    actual = table.orders / table.calls
    bounds = [_order_rate_interval(int(ordered), int(called)) for ordered, called in zip(table.orders, table.calls)]
    low = np.array([bound[0] for bound in bounds], dtype="float64")
    high = np.array([bound[1] for bound in bounds], dtype="float64")
    return pd.DataFrame(
        {
            "decile": table.decile,
            "calls": table.calls,
            "orders": table.orders,
            "score_min": table.score_min,
            "score_max": table.score_max,
            "predicted": table.predicted,
            "actual": actual,
            "actual_low": low,
            "actual_high": high,
            "gap": actual - table.predicted,
        },
        columns=TABLE_COLUMNS,
    )


def _table(counts: _ScoreCounts, bins: int) -> pd.DataFrame:
    return _frame_of(_bins(counts, bins))


def _ece(table: _Bins) -> float | None:
    n = table.calls.sum()
    if not n:
        return None
    return float((table.calls * np.abs(table.predicted - table.orders / table.calls)).sum() / n)


def _auc(counts: _ScoreCounts) -> float | None:
    negatives = counts.calls - counts.orders
    total_orders, total_negatives = counts.orders.sum(), negatives.sum()
    if not total_orders or not total_negatives:
        return None
    # Each order beats every non-order with a lower score and half-beats those with its score.
    negatives_below = np.cumsum(negatives) - negatives
    wins = (counts.orders * (negatives_below + negatives / 2.0)).sum()
    return float(wins / (float(total_orders) * float(total_negatives)))


class HosmerLemeshow(NamedTuple):
    statistic: float
    df: int
    pvalue: float | None  # None when fewer than 3 non-empty bins leave no degree of freedom


def _hosmer_lemeshow(table: _Bins) -> HosmerLemeshow:
    expected = table.predicted * table.calls
    observed = table.orders.astype("float64")
    variance = expected * (1 - table.predicted)
    statistic = 0.0
    for o, e, v in zip(observed, expected, variance):
        if v > 0:
            statistic += float((o - e) ** 2 / v)
        elif not math.isclose(o, e, abs_tol=1e-9):
            statistic = math.inf  # a bin predicted certain (0 % or 100 %) and wrong
    df = max(0, len(table.calls) - HL_DF_LOST)
    return HosmerLemeshow(statistic, df, chi2_sf(statistic, df) if df >= 1 else None)


def chi2_sf(x: float, df: int) -> float:
    """P(X >= x) for a chi-square variable with integer ``df``, in closed form (no scipy).

    Even df = 2k: exp(-x/2) * sum_{i<k} (x/2)^i / i!.
    Odd df = 2k+1: erfc(sqrt(x/2)) + sqrt(2x/pi) exp(-x/2) * sum_{i=1..k} x^(i-1) / (1*3*...*(2i-1)).
    """
    if df < 1 or int(df) != df:
        raise ValueError("df must be a positive integer")
    if x <= 0:
        return 1.0
    if math.isinf(x):
        return 0.0
    df = int(df)
    if df % 2 == 0:
        term, total = 1.0, 1.0
        for i in range(1, df // 2):
            term *= (x / 2) / i
            total += term
        return min(1.0, math.exp(-x / 2) * total)
    term, total = 1.0, 0.0
    for i in range(1, (df - 1) // 2 + 1):
        total += term
        term *= x / (2 * i + 1)
    return min(1.0, math.erfc(math.sqrt(x / 2)) + math.sqrt(2 * x / math.pi) * math.exp(-x / 2) * total)


def calibration_table(scores, orders, bins: int = DEFAULT_BINS) -> pd.DataFrame:
    """Per score bin (decile 1 = lowest scores): calls, orders, score range, mean predicted
    rate, actual order rate with its 95 % (Wilson) interval, and gap = actual - predicted.

    ``scores`` are the calls' response scores (NaN = unscored, left out), ``orders``
    0/1 per call. Empty bins are left out."""
    return _table(_counts_from_arrays(scores, orders), bins)


def expected_calibration_error(scores, orders, bins: int = DEFAULT_BINS) -> float | None:
    """ECE as a fraction (0.03 = 3 rate points); None without calls."""
    return _ece(_bins(_counts_from_arrays(scores, orders), bins))


def auc(scores, orders) -> float | None:
    """Mann-Whitney AUC, ties counting one half; None when only one class is present."""
    return _auc(_counts_from_arrays(scores, orders))


def hosmer_lemeshow(scores, orders, bins: int = DEFAULT_BINS) -> HosmerLemeshow:
    """Hosmer-Lemeshow statistic over the score bins, with df = non-empty bins and its p-value."""
    return _hosmer_lemeshow(_bins(_counts_from_arrays(scores, orders), bins))


# -- one campaign over one period ----------------------------------------------------------


@dataclass(frozen=True)
class Calibration:
    """The response model's calibration for one campaign over [period_start, period_end)."""

    campaign: str
    period_start: datetime
    period_end: datetime
    n: int  # scored conversations
    orders: int
    ece: float | None
    auc: float | None
    hl_statistic: float
    hl_df: int
    hl_pvalue: float | None
    bins: _Bins = field(repr=False, compare=False)

    @cached_property
    def table(self) -> pd.DataFrame:
        """calibration_table(): built when read, since the drift alert needs only the figures."""
        return _frame_of(self.bins)

    @property
    def predicted_rate(self) -> float | None:
        """Mean score: the order rate the model expected."""
        return float((self.bins.predicted * self.bins.calls).sum() / self.n) if self.n else None

    @property
    def actual_rate(self) -> float | None:
        return self.orders / self.n if self.n else None

    def summary(self) -> dict:
        """Everything but the table, as one flat row (for frames, JSON and alert details)."""
        return {
            "campaign": self.campaign,
            "period_start": self.period_start,
            "period_end": self.period_end,
            "n": self.n,
            "orders": self.orders,
            "predicted_rate": self.predicted_rate,
            "actual_rate": self.actual_rate,
            "ece": self.ece,
            "auc": self.auc,
            "hl_statistic": self.hl_statistic,
            "hl_df": self.hl_df,
            "hl_pvalue": self.hl_pvalue,
        }

    @classmethod
    def from_scores(
        cls, campaign: str, period_start: datetime, period_end: datetime, scores, orders, bins: int = DEFAULT_BINS
    ) -> Calibration:
        """From one call per element: its response score and whether it ordered."""
        return _calibration(campaign, period_start, period_end, _counts_from_arrays(scores, orders), bins)


SUMMARY_COLUMNS = [
    "campaign",
    "period_start",
    "period_end",
    "n",
    "orders",
    "predicted_rate",
    "actual_rate",
    "ece",
    "auc",
    "hl_statistic",
    "hl_df",
    "hl_pvalue",
]


def calibration_frame(results: Sequence[Calibration]) -> pd.DataFrame:
    """One row per result (Calibration.summary()), e.g. the weekly trend."""
    frame = pd.DataFrame([result.summary() for result in results], columns=SUMMARY_COLUMNS)
    for column in ("ece", "auc", "hl_pvalue", "predicted_rate", "actual_rate"):
        frame[column] = frame[column].astype("float64")  # None -> NaN, shown as "—"
    return frame


def _calibration(campaign: str, start: datetime, end: datetime, counts: _ScoreCounts, bins: int) -> Calibration:
    table = _bins(counts, bins)
    hl = _hosmer_lemeshow(table)
    return Calibration(
        campaign=campaign,
        period_start=start,
        period_end=end,
        n=counts.n,
        orders=counts.total_orders,
        ece=_ece(table),
        auc=_auc(counts),
        hl_statistic=hl.statistic,
        hl_df=hl.df,
        hl_pvalue=hl.pvalue,
        bins=table,
    )


# -- from the warehouse --------------------------------------------------------------------


def week_start(moment: datetime | date, zone: tzinfo | str) -> datetime:
    """Local midnight of the Monday that starts the (ISO) week holding ``moment``, in ``zone``."""
    zone = ZoneInfo(zone) if isinstance(zone, str) else zone
    day = moment.astimezone(zone).date() if isinstance(moment, datetime) else moment
    return datetime.combine(day - timedelta(days=day.weekday()), time(0), tzinfo=zone)


def weekly_calibration(
    client, start: datetime, end: datetime, zone: tzinfo | str, campaigns: Sequence[str] = (), bins: int = DEFAULT_BINS
) -> list[Calibration]:
    """Per campaign and week (Monday 00:00 local in ``zone``) of calls ending in [start, end):
    sorted by campaign, then week. A week cut by ``start`` or ``end`` covers only its part
    (its period says which); week_start() gives whole-week bounds. Campaign names are
    bound parameters, never spliced into SQL."""
    zone = ZoneInfo(zone) if isinstance(zone, str) else zone
    columns = weekly_score_counts(client, start, end, str(zone), campaigns)
    if not columns or not len(columns[0]):
        return []
    frame = pd.DataFrame(dict(zip(("campaign", "week", "score", "calls", "ordered"), columns)))
    start_utc, end_utc = _aware_utc(start), _aware_utc(end)
    results = []
    for (campaign, week), part in frame.groupby(["campaign", "week"], sort=True):
        monday = datetime.combine(week, time(0), tzinfo=zone)
        period_start = max(monday, start_utc.astimezone(zone))
        period_end = min(monday + timedelta(days=7), end_utc.astimezone(zone))
        results.append(_calibration(campaign, period_start, period_end, _counts_from_rows(part), bins))
    return results


def trailing_calibration(
    client, campaign: str, until: datetime, days: float = 7, bins: int = DEFAULT_BINS
) -> Calibration | None:
    """``campaign``'s calibration over calls that ended in [until - days, until); None when
    no scored conversation landed in that window. What the drift alert checks."""
    until = _aware_utc(until)
    since = until - timedelta(days=days)
    columns = trailing_score_counts(client, campaign, since, until)
    if not columns or not len(columns[0]):
        return None
    frame = pd.DataFrame(dict(zip(("score", "calls", "ordered"), columns)))
    return _calibration(campaign, since, until, _counts_from_rows(frame), bins)


class TooFewCalls(NamedTuple):
    """A campaign with fewer scored conversations than a check needs: counted, not binned."""

    campaign: str
    n: int
    orders: int


def trailing_calibrations(
    client, untils: Mapping[str, datetime], days: float = 7, bins: int = DEFAULT_BINS, min_calls: int = 0
) -> dict[str, Calibration | TooFewCalls | None]:
    """:func:`trailing_calibration` for many campaigns, each up to its own time, in one
    query. At each event-time hour every live campaign's drift check falls due at once;
    one query each stalled a 1,000-campaign worker for minutes. A campaign with fewer
    than ``min_calls`` scored conversations gets only its counts (TooFewCalls)."""
    if not untils:
        return {}
    campaigns = sorted(untils)
    span = timedelta(days=days)
    columns = trailing_score_counts_at(client, untils, span)
    results: dict[str, Calibration | TooFewCalls | None] = {campaign: None for campaign in campaigns}
    if columns and len(columns[0]):
        # Rows come sorted by campaign: cut the arrays at each new name, rather than a
        # pandas groupby per hour, which is slow over many campaigns.
        names = np.asarray(columns[0], dtype=object)
        score, calls, ordered = (
            np.asarray(column, dtype=dtype) for column, dtype in zip(columns[1:], ("float64", "int64", "int64"))
        )
        starts = np.flatnonzero(np.r_[True, names[1:] != names[:-1]])
        for first, last in zip(starts, np.r_[starts[1:], len(names)]):
            campaign = names[first]
            until = _aware_utc(untils[campaign])
            counts = _ScoreCounts(score[first:last], calls[first:last], ordered[first:last])
            if counts.n < min_calls:
                results[campaign] = TooFewCalls(campaign, counts.n, counts.total_orders)
                continue
            results[campaign] = _calibration(campaign, until - span, until, counts, bins)
    return results


def _counts_from_rows(frame: pd.DataFrame) -> _ScoreCounts:
    return _ScoreCounts(
        frame["score"].to_numpy(dtype="float64"),
        frame["calls"].to_numpy(dtype="int64"),
        frame["ordered"].to_numpy(dtype="int64"),
    )


def _aware_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
