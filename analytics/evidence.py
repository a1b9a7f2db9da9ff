"""An evidence bundle's figures, from its per-call rows alone: each campaign-day's abandon counts
under the dialer's own definition, the FTC's and Ofcom's, beside the calling-hours violations,
the repeat calls after an abandon and the calls whose hours could not be judged.

Frames in, frames out (no SQL): the export computes the daily counts from exactly the rows it
writes, so an auditor who recomputes them from the bundle reaches the same figures. The
definitions are core.metrics': each call is counted by counters_for(), as the worker counts it
into its minute bucket, and each day's rates come from compliance_figures()."""

from __future__ import annotations

import math
from zoneinfo import ZoneInfo

import pandas as pd

from core.config import ComplianceConfig
from core.metrics import COUNTERS, compliance_figures, counters_for

#: The counters of counters_for() a bundle's daily counts are made of.
CALL_COUNTERS = ("dials", "contacts", "connected", "abandoned", "abandoned_ftc", "live_answers_unjudged", "machines")

DAILY_COLUMNS = [
    "campaign",
    "day",
    "dials",
    "live_answers",
    "connected",
    "dialer_abandoned",
    "dialer_abandon_rate",
    "ftc_abandoned",
    "ftc_unjudged",
    "ftc_abandon_rate",
    "ftc_abandon_rate_upper",
    "machine",
    "ofcom_estimated_live_machines",
    "ofcom_abandoned",
    "ofcom_live_calls",
    "ofcom_abandon_rate",
    "calling_hours_violations",
    "calls_without_callee_timezone",
    "repeat_calls_after_abandon",
]
# The bundle's names for core.metrics' counters (an auditor reads these, not the warehouse's).
_BUNDLE_NAMES = {
    "contacts": "live_answers",
    "abandoned": "dialer_abandoned",
    "abandoned_ftc": "ftc_abandoned",
    "live_answers_unjudged": "ftc_unjudged",
    "machines": "machine",
}


def local_day(moments: pd.Series, zone: ZoneInfo) -> pd.Series:
    """Each UTC moment's calendar day in ``zone``, as YYYY-MM-DD."""
    moments = pd.to_datetime(moments)
    if moments.dt.tz is None:
        moments = moments.dt.tz_localize("UTC")
    return moments.dt.tz_convert(str(zone)).dt.strftime("%Y-%m-%d")


def call_counters(calls: pd.DataFrame, ftc_connect_seconds: float) -> pd.DataFrame:
    """Per call, what counters_for() adds to its minute bucket (CALL_COUNTERS): a wait that is
    empty stays unknown, so a connected call without one counts in live_answers_unjudged."""
    waits = pd.to_numeric(calls["wait_seconds"], errors="coerce").astype("float64")
    positions = [COUNTERS.index(name) for name in CALL_COUNTERS]
    rows = []
    for outcome, wait in zip(calls["outcome"], waits):
        counted = counters_for(outcome, False, 0.0, 0.0, None if math.isnan(wait) else float(wait), ftc_connect_seconds)
        rows.append([counted[position] for position in positions])
    return pd.DataFrame(rows, columns=list(CALL_COUNTERS), index=calls.index, dtype="int64")


def daily_counts(
    calls: pd.DataFrame,
    zone: ZoneInfo,
    compliance: ComplianceConfig,
    calling_hours: pd.DataFrame | None = None,
    repeats: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per campaign and local day of the call's end: the counts under each definition, with the
    [compliance] settings in force (compliance.ftc_connect_seconds, each campaign's
    amd_false_positive_rate).

    dialer: abandoned = outcome abandoned (the dialer dropped it) / live answers.
    FTC: abandoned also = connected with wait_seconds above ftc_connect_seconds, over all live
         answers; a connected call without wait_seconds cannot be judged (ftc_unjudged): the rate
         counts it connected in time, a lower bound, and ftc_abandon_rate_upper counts it late.
    Ofcom: abandoned plus amd_false_positive_rate x machine-classified calls, over live calls
         plus the same estimate (the live answers the detector took for machines)."""
    if calls.empty:
        return pd.DataFrame(columns=DAILY_COLUMNS)
    frame = pd.concat(
        [
            pd.DataFrame({"campaign": calls["campaign"], "day": local_day(calls["event_time"], zone)}),
            call_counters(calls, compliance.ftc_connect_seconds),
        ],
        axis=1,
    )
    frame["calls_without_callee_timezone"] = (calls["callee_timezone"].fillna("") == "").astype("int64")
    daily = frame.groupby(["campaign", "day"], as_index=False).sum(numeric_only=True)
    figures = [compliance_figures(row, compliance.amd_for(row["campaign"])[0]) for row in daily.to_dict("records")]
    daily["dialer_abandon_rate"] = [figure["dialer"].rate for figure in figures]
    daily["ftc_abandon_rate"] = [figure["ftc"].rate for figure in figures]
    daily["ftc_abandon_rate_upper"] = [figure["ftc"].upper_rate for figure in figures]
    daily["ofcom_estimated_live_machines"] = [figure["ofcom"].estimate for figure in figures]
    daily["ofcom_abandoned"] = [figure["ofcom"].abandoned for figure in figures]
    daily["ofcom_live_calls"] = [figure["ofcom"].live_answers for figure in figures]
    daily["ofcom_abandon_rate"] = [figure["ofcom"].rate for figure in figures]
    daily = daily.rename(columns=_BUNDLE_NAMES)
    # Violations count on the local day their dial was placed; a day may hold one and no call's end.
    for name, rows in (("calling_hours_violations", calling_hours), ("repeat_calls_after_abandon", repeats)):
        daily = daily.merge(_per_day(rows, name, zone), on=["campaign", "day"], how="outer")
    daily = daily.fillna({name: 0 for name in DAILY_COLUMNS if not name.endswith(("_rate", "_rate_upper"))})
    for name in DAILY_COLUMNS[2:]:
        if name.endswith(("_rate", "_rate_upper")):
            daily[name] = daily[name].astype("float64")  # None (no live answers) as NaN: empty in the CSV
        elif not name.startswith("ofcom_"):
            daily[name] = daily[name].astype("int64")
    return daily[DAILY_COLUMNS].sort_values(["campaign", "day"]).reset_index(drop=True)


def _per_day(rows: pd.DataFrame | None, name: str, zone: ZoneInfo) -> pd.DataFrame:
    """How many of ``rows`` fall on each campaign and local day of their dial, as column ``name``."""
    if rows is None or rows.empty:
        return pd.DataFrame(
            {"campaign": pd.Series(dtype=str), "day": pd.Series(dtype=str), name: pd.Series(dtype="int64")}
        )
    days = pd.DataFrame({"campaign": rows["campaign"].to_numpy(), "day": local_day(rows["dialed_at"], zone).to_numpy()})
    return days.value_counts().rename(name).reset_index()
