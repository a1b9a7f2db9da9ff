"""An evidence bundle's figures, from its per-call rows alone: each campaign-day's abandon counts
under the dialer's own definition, the FTC's and Ofcom's, beside the calling-hours violations,
the repeat calls after an abandon and the calls whose hours could not be judged.

Frames in, frames out (no SQL): the export computes the daily counts from exactly the rows it
writes, so an auditor who recomputes them from the bundle reaches the same figures."""

from __future__ import annotations

from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pandas as pd

from core.metrics import ratio_series
from core.schema import LIVE_ANSWER_OUTCOMES, Outcome

LIVE_ANSWERS = sorted(outcome.value for outcome in LIVE_ANSWER_OUTCOMES)

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
    "machine",
    "ofcom_estimated_live_machines",
    "ofcom_abandoned",
    "ofcom_live_calls",
    "ofcom_abandon_rate",
    "calling_hours_violations",
    "calls_without_callee_timezone",
    "repeat_calls_after_abandon",
]


@dataclass(frozen=True)
class Definitions:
    """The settings the definitions take, as in force for the exported campaign."""

    ftc_connect_seconds: float = 2.0
    amd_false_positive_rate: float = 0.0


def local_day(moments: pd.Series, zone: ZoneInfo) -> pd.Series:
    """Each UTC moment's calendar day in ``zone``, as YYYY-MM-DD."""
    moments = pd.to_datetime(moments)
    if moments.dt.tz is None:
        moments = moments.dt.tz_localize("UTC")
    return moments.dt.tz_convert(str(zone)).dt.strftime("%Y-%m-%d")


def daily_counts(
    calls: pd.DataFrame,
    zone: ZoneInfo,
    definitions: Definitions,
    calling_hours: pd.DataFrame | None = None,
    repeats: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per campaign and local day of the call's end: the counts under each definition.

    dialer: abandoned = outcome abandoned (the dialer dropped it) / live answers.
    FTC: abandoned also = connected with wait_seconds above ftc_connect_seconds; a connected
         call without wait_seconds cannot be judged and is counted apart (ftc_unjudged).
    Ofcom: abandoned plus amd_false_positive_rate x machine-classified calls, over live calls
         plus the same estimate (the live answers the detector took for machines)."""
    if calls.empty:
        return pd.DataFrame(columns=DAILY_COLUMNS)
    frame = pd.DataFrame({"campaign": calls["campaign"], "day": local_day(calls["event_time"], zone)})
    outcome = calls["outcome"]
    wait = pd.to_numeric(calls["wait_seconds"], errors="coerce")
    connected = outcome == Outcome.CONNECTED.value
    frame["dials"] = 1
    frame["live_answers"] = outcome.isin(LIVE_ANSWERS).astype(int)
    frame["connected"] = connected.astype(int)
    frame["dialer_abandoned"] = (outcome == Outcome.ABANDONED.value).astype(int)
    frame["ftc_abandoned"] = (
        frame["dialer_abandoned"].astype(bool) | (connected & (wait > definitions.ftc_connect_seconds))
    ).astype(int)
    frame["ftc_unjudged"] = (connected & wait.isna()).astype(int)
    frame["machine"] = (outcome == Outcome.MACHINE.value).astype(int)
    frame["calls_without_callee_timezone"] = (calls["callee_timezone"].fillna("") == "").astype(int)
    daily = frame.groupby(["campaign", "day"], as_index=False).sum(numeric_only=True)
    daily["ofcom_estimated_live_machines"] = daily["machine"] * definitions.amd_false_positive_rate
    daily["ofcom_abandoned"] = daily["dialer_abandoned"] + daily["ofcom_estimated_live_machines"]
    daily["ofcom_live_calls"] = daily["live_answers"] + daily["ofcom_estimated_live_machines"]
    daily["dialer_abandon_rate"] = ratio_series(daily["dialer_abandoned"], daily["live_answers"])
    # Unjudged calls are left out of the FTC denominator as well as its numerator.
    daily["ftc_abandon_rate"] = ratio_series(daily["ftc_abandoned"], daily["live_answers"] - daily["ftc_unjudged"])
    daily["ofcom_abandon_rate"] = ratio_series(daily["ofcom_abandoned"], daily["ofcom_live_calls"])
    # Violations count on the local day their dial was placed; a day may hold one and no call's end.
    for name, rows in (("calling_hours_violations", calling_hours), ("repeat_calls_after_abandon", repeats)):
        daily = daily.merge(_per_day(rows, name, zone), on=["campaign", "day"], how="outer")
    daily = daily.fillna({name: 0 for name in DAILY_COLUMNS if not name.endswith("_rate")})
    for name in DAILY_COLUMNS[2:]:
        if not name.endswith("_rate") and not name.startswith("ofcom_"):
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
