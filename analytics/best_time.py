"""Best time to call: the contact rate of each customer segment by time slot and by hour
of day, with a 95 % Wilson score interval, and a recommended calling window per segment.

Everything here is pure pandas over summed counters except best_time(), which reads them
through the same warehouse query as the cross-tab reports (analytics.reports), so a rate
here equals the Reports page's segment x slot contact rate.

Contact rate = contacts (live answers) / dials (core.metrics). A slot with fewer
than ``min_calls`` dials (settings.dashboard.report_min_calls) is marked "not enough
data": it is shown, but never recommended.

Recommendation rule, per segment:

1. Candidates are the configured calling slots (or the hours inside them) with at least
   ``min_calls`` dials. Off-hours is shown but never recommended: it is not a calling
   window anyone plans, and in many places calling then is restricted.
2. The best slot is the candidate with the highest Wilson *lower* bound. That is the
   rate we can vouch for, so a slot that looks great on 40 dials does not beat one that
   is nearly as good on 4,000.
3. The window is the best slot plus every candidate that is not significantly worse than
   it: the 95 % interval for (best rate - candidate rate), by Newcombe's hybrid score
   method built from the two Wilson intervals, reaches zero. We compare the difference
   rather than asking whether the two Wilson intervals overlap, because overlapping 95 %
   intervals still admit slots that are significantly worse (29 % vs 26.5 % on 3,000 dials
   each overlap, yet differ at p = 0.03); a planner should not be sent to those.
4. By hour of day the window must be one block of consecutive hours (a shift is planned
   as one block): it grows from the best hour to each neighbouring hour while that hour
   qualifies as in 3, and stops at the first hour that does not or has too few dials.

The window's own contact rate and interval are computed from its summed counters
(sum of contacts / sum of dials), never by averaging the slots' rates.

References: E. B. Wilson (1927), JASA 22:209-212; R. G. Newcombe (1998), Statistics in
Medicine 17:857-872 (single proportion) and 17:873-890 (difference, method 10).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date

import pandas as pd

from analytics import reports
from core.metrics import Z_95, format_metric, ratio_series, wilson_interval
from core.slots import OFF_HOURS, SlotRules

NOT_ENOUGH_DATA = "not enough data"
#: Four whole weeks: enough dials per segment and slot, and every weekday counted equally.
DEFAULT_DAYS = 28
SEGMENT = "segment"
INTERVAL_COLUMNS = [SEGMENT, "dials", "contacts", "contact_rate", "ci_low", "ci_high", "enough_data"]
WINDOW_COLUMNS = [SEGMENT, "best", "window", "dials", "contacts", "contact_rate", "ci_low", "ci_high"]
PLANNING_COLUMNS = [
    SEGMENT,
    "slot",
    "dials",
    "contacts",
    "contact_rate",
    "ci_low",
    "ci_high",
    "recommended",
    "data_note",
]


def difference_interval(
    successes_a: float, trials_a: float, successes_b: float, trials_b: float, z: float = Z_95
) -> tuple[float, float] | None:
    """Interval for rate_a - rate_b by Newcombe's hybrid score method (his method 10),
    from the two Wilson intervals; None when either side has no trials."""
    interval_a = wilson_interval(successes_a, trials_a, z)
    interval_b = wilson_interval(successes_b, trials_b, z)
    if interval_a is None or interval_b is None:
        return None
    rate_a, rate_b = successes_a / trials_a, successes_b / trials_b
    (low_a, high_a), (low_b, high_b) = interval_a, interval_b
    difference = rate_a - rate_b
    return (
        difference - math.hypot(rate_a - low_a, high_b - rate_b),
        difference + math.hypot(high_a - rate_a, rate_b - low_b),
    )


def contact_rate_intervals(
    counters: pd.DataFrame, time_column: str, min_calls: int, levels: Sequence | None = None
) -> pd.DataFrame:
    """Per segment and ``time_column`` ("slot" or "hour"): dials, contacts, contact_rate,
    ci_low, ci_high and enough_data (dials >= min_calls).

    ``counters`` is any frame of summed counters with those two columns (finer rows, e.g.
    per campaign, are summed first). ``levels`` lists the time values every segment gets a
    row for, in display order (SlotRules.names for slots); a combination never dialled
    gets 0 dials, so a planner sees the gap instead of missing it. Without ``levels``,
    the observed values, sorted.
    """
    keys = [SEGMENT, time_column]
    summed = (
        counters.groupby(keys, as_index=False)[["dials", "contacts"]].sum()
        if len(counters)
        else pd.DataFrame(columns=[*keys, "dials", "contacts"])
    )
    observed = sorted(summed[time_column].unique().tolist())
    wanted = list(levels) if levels is not None else observed
    wanted += [value for value in observed if value not in wanted]
    grid = pd.MultiIndex.from_product([sorted(summed[SEGMENT].unique().tolist()), wanted], names=keys)
    frame = summed.set_index(keys).reindex(grid, fill_value=0).reset_index()
    frame["dials"] = frame["dials"].astype("int64")
    frame["contacts"] = frame["contacts"].astype("int64")
    frame["contact_rate"] = ratio_series(frame["contacts"], frame["dials"])
    intervals = [wilson_interval(contacts, dials) for contacts, dials in zip(frame["contacts"], frame["dials"])]
    frame["ci_low"] = [math.nan if bounds is None else bounds[0] for bounds in intervals]
    frame["ci_high"] = [math.nan if bounds is None else bounds[1] for bounds in intervals]
    frame["enough_data"] = frame["dials"] >= min_calls
    return frame[[SEGMENT, time_column, *INTERVAL_COLUMNS[1:]]]


def recommend(
    intervals: pd.DataFrame, time_column: str, candidates: Iterable | None = None, contiguous: bool = False
) -> pd.DataFrame:
    """One row per segment: the best time value, the recommended window (a list, in the
    frame's order) and the window's summed dials, contacts, contact_rate and interval.

    ``intervals`` is contact_rate_intervals() output. ``candidates`` limits which time
    values may be recommended (None: all). ``contiguous`` makes the window one run of
    consecutive integers (hours). A segment with no candidate with enough data gets
    best None and an empty window. The rule is in this module's docstring.
    """
    allowed = None if candidates is None else set(candidates)
    rows = []
    for segment, part in intervals.groupby(SEGMENT, sort=False):
        eligible = part[part["enough_data"]]
        if allowed is not None:
            eligible = eligible[eligible[time_column].isin(allowed)]
        if eligible.empty:
            rows.append(
                {
                    SEGMENT: segment,
                    "best": None,
                    "window": [],
                    "dials": 0,
                    "contacts": 0,
                    "contact_rate": math.nan,
                    "ci_low": math.nan,
                    "ci_high": math.nan,
                }
            )
            continue
        best = eligible.loc[eligible["ci_low"].idxmax()]
        as_good = {row[time_column] for row in eligible.to_dict("records") if _not_worse(row, best)}
        if contiguous:
            window = _run_around(best[time_column], as_good)
        else:
            window = [value for value in part[time_column] if value in as_good]
        chosen = part[part[time_column].isin(window)]
        dials, contacts = int(chosen["dials"].sum()), int(chosen["contacts"].sum())
        interval = wilson_interval(contacts, dials)
        assert interval is not None, "an eligible window has enough dials"
        low, high = interval
        rows.append(
            {
                SEGMENT: segment,
                "best": _plain(best[time_column]),
                "window": [_plain(v) for v in window],
                "dials": dials,
                "contacts": contacts,
                "contact_rate": contacts / dials,
                "ci_low": low,
                "ci_high": high,
            }
        )
    frame = pd.DataFrame(rows, columns=WINDOW_COLUMNS)
    # Object dtype keeps an hour an int and a missing best None, instead of 18.0 and NaN.
    frame["best"] = pd.Series([row["best"] for row in rows], index=frame.index, dtype=object)
    return frame


def _plain(value):
    return value.item() if hasattr(value, "item") else value


def _not_worse(candidate: dict, best) -> bool:
    """True unless the candidate's contact rate is significantly below the best's."""
    interval = difference_interval(best["contacts"], best["dials"], candidate["contacts"], candidate["dials"])
    assert interval is not None, "eligible slots have enough dials"
    return interval[0] <= 0


def _run_around(best: int, qualifying: set) -> list[int]:
    first = last = int(best)
    while first - 1 in qualifying:
        first -= 1
    while last + 1 in qualifying:
        last += 1
    return list(range(first, last + 1))


@dataclass(frozen=True)
class BestTime:
    """What the Best-time page shows and exports."""

    slots: pd.DataFrame  # contact_rate_intervals by segment x slot, slots in the day's order
    hours: pd.DataFrame  # contact_rate_intervals by segment x local hour of day
    slot_windows: pd.DataFrame  # recommend() over slots
    hour_windows: pd.DataFrame  # recommend() over hours, one block of consecutive hours
    min_calls: int


def calling_hours(slot_rules: SlotRules) -> list[int]:
    """The local hours inside a configured calling slot (not off-hours)."""
    return sorted({hour for slot in slot_rules.slots for hour in range(slot.start_hour, slot.end_hour)})


def analyse(
    slot_counters: pd.DataFrame, hour_counters: pd.DataFrame, slot_rules: SlotRules, min_calls: int
) -> BestTime:
    """Intervals and recommendations from counters by (segment, slot) and (segment, hour)."""
    slots = contact_rate_intervals(slot_counters, "slot", min_calls, levels=slot_rules.names)
    dialled_hours = sorted(hour_counters["hour"].unique().tolist()) if len(hour_counters) else []
    # Fill the hours between the first and last dialled one, so a silent hour shows (and breaks a run).
    hour_levels = list(range(int(dialled_hours[0]), int(dialled_hours[-1]) + 1)) if dialled_hours else []
    hours = contact_rate_intervals(hour_counters, "hour", min_calls, levels=hour_levels)
    calling_slots = [slot.name for slot in slot_rules.slots if slot.name != OFF_HOURS]
    return BestTime(
        slots=slots,
        hours=hours,
        slot_windows=recommend(slots, "slot", candidates=calling_slots),
        hour_windows=recommend(hours, "hour", candidates=calling_hours(slot_rules), contiguous=True),
        min_calls=min_calls,
    )


def best_time(
    client, start_day: date, end_day: date, slot_rules: SlotRules, min_calls: int, campaigns: Sequence[str] = ()
) -> BestTime:
    """Contact rates with intervals and recommended windows over whole local days
    [start_day, end_day] in the slot rules' zone, optionally for some campaigns only."""
    by_slot = reports.ReportRequest(("segment", "slot"), ("contact_rate",), start_day, end_day, tuple(campaigns))
    by_hour = by_slot.with_(by=("segment", "hour"))
    return analyse(
        reports.counters_frame(client, by_slot, slot_rules.zone),
        reports.counters_frame(client, by_hour, slot_rules.zone),
        slot_rules,
        min_calls,
    )


def planning_frame(result: BestTime) -> pd.DataFrame:
    """The per-slot table for list planning (the CSV/Excel export): every segment x slot,
    its contact rate and 95 % interval as fractions, whether the slot is in the segment's
    recommended window, and "not enough data" where it has fewer than min_calls dials."""
    frame = result.slots.copy()
    windows = dict(zip(result.slot_windows[SEGMENT], result.slot_windows["window"]))
    frame["recommended"] = [slot in windows.get(segment, []) for segment, slot in zip(frame[SEGMENT], frame["slot"])]
    frame["data_note"] = ["" if enough else NOT_ENOUGH_DATA for enough in frame["enough_data"]]
    return frame[PLANNING_COLUMNS].reset_index(drop=True)


# -- how a page shows it -----------------------------------------------------------------


def format_interval(low: float | None, high: float | None) -> str:
    """A 95 % interval as people read it: "25.5 % – 36.6 %", or "—" without one."""
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return "—"
    return f"{format_metric('contact_rate', low)} – {format_metric('contact_rate', high)}"


def window_label(window: Sequence, time_column: str) -> str:
    """ "morning + midday" for slots, "09:00–12:00" for a run of hours, or "not enough data"."""
    if not len(window):
        return NOT_ENOUGH_DATA
    if time_column == "hour":
        return f"{int(window[0]):02d}:00–{int(window[-1]) + 1:02d}:00"
    return " + ".join(reports.label_value(time_column, value) for value in window)
