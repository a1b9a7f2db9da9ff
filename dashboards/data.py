"""The dashboard's read side: one warehouse client per process, and the wallboard model.

In embedded mode the dashboard runs inside the worker process, because only one
process may open a chDB path; it then shares the worker's warehouse.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from functools import cached_property
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pandas as pd
from cachetools import TTLCache, cached
from clickhouse_connect.driver.client import Client

from callpulse.config import Settings
from callpulse.metrics import COMPLIANCE_WINDOWS, RATES
from callpulse.slots import SlotRules
from warehouse import queries

SPARKLINE_WINDOW = timedelta(hours=2)


@dataclass
class DashboardContext:
    settings: Settings
    client: Client

    @cached_property  # built once per process, not on every 3-second refresh
    def slot_rules(self) -> SlotRules:
        return SlotRules(self.settings.slots, self.settings.zone)

    @cached_property
    def shared_wallboard(self):
        """wallboard_model(), computed at most once per dashboard.wallboard_cache_seconds; a
        board asking while it is being computed waits for that one (the condition)."""
        cache = TTLCache(maxsize=1, ttl=self.settings.dashboard.wallboard_cache_seconds)
        return cached(cache, key=lambda: "wallboard", condition=threading.Condition())(wallboard_model)


_context: DashboardContext | None = None


def set_context(context: DashboardContext) -> None:
    global _context
    _context = context


def context() -> DashboardContext:
    if _context is None:
        raise RuntimeError("dashboard context not set; build the app with dashboards.app.create_app()")
    return _context


def _clean(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value)


NO_SPARKLINE = {"minutes": [], "dials": [], "abandon_rate": []}


def _sparklines(series: pd.DataFrame) -> dict[str, dict]:
    """Each campaign's sparkline from the minute series, converted in whole columns and cut
    per campaign once: slicing the frame and formatting each minute per campaign was most
    of a 1,000-campaign board's time. Sorted on integer codes, and each distinct minute
    formatted once (a board's two hours hold 120 of them, in tens of thousands of rows)."""
    if series.empty:
        return {}
    codes, names = pd.factorize(series["campaign"])
    seconds = series["minute"].to_numpy(dtype="datetime64[s]").astype(np.int64)
    order = np.lexsort((seconds, codes))
    codes = codes[order]
    distinct, which = np.unique(seconds[order], return_inverse=True)
    # The minutes arrive as naive UTC whole seconds: the same text as Timestamp.isoformat() gives.
    texts = np.datetime_as_string(distinct.astype("datetime64[s]"), unit="s").astype(object)
    minutes = texts[which].tolist()
    dials = series["dials"].to_numpy(dtype="int64")[order].tolist()
    rates = series["abandon_rate"].to_numpy(dtype="float64", na_value=np.nan)[order]
    abandon_rate = [None if math.isnan(value) else value for value in rates.tolist()]
    names = np.asarray(names, dtype=object)
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    ends = np.r_[starts[1:], len(codes)]
    return {names[codes[first]]: {"minutes": minutes[first:last], "dials": dials[first:last],
                                  "abandon_rate": abandon_rate[first:last]}
            for first, last in zip(starts.tolist(), ends.tolist())}


def board_time(fresh: dict, now: datetime) -> datetime:
    """The boards follow event time: with replayed or accelerated data "now" is just after
    the newest landed minute (``fresh`` is queries.freshness()); with no data, ``now``."""
    return fresh["newest_minute"] + timedelta(minutes=1) if fresh["newest_minute"] else now


def newest_day() -> date:
    """The local day of the newest landed minute (today, in live use), so pages over a
    replayed day open on its data rather than on an empty today."""
    settings = context().settings
    newest = queries.freshness(context().client)["newest_minute"]
    return (newest or datetime.now(timezone.utc)).astimezone(settings.zone).date()


def parse_day(value) -> date | None:
    """A date picker's or URL's day ("2026-11-23" or "2026-11-23T00:00:00"), or None."""
    try:
        return date.fromisoformat(str(value)[:10]) if value else None
    except ValueError:
        return None


def local_day_start(now: datetime, settings: Settings) -> datetime:
    local = now.astimezone(settings.zone)
    return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(timezone.utc)


def wallboard_model(now: datetime | None = None) -> dict:
    """Everything the wallboard shows, as plain JSON-able data (also served at /api/wallboard)."""
    ctx = context()
    now = now or datetime.now(timezone.utc)
    fresh = queries.freshness(ctx.client)
    board_now = board_time(fresh, now)
    tiles = queries.campaign_tiles(ctx.client, board_now, local_day_start(board_now, ctx.settings))
    compliance = queries.compliance_windows(ctx.client, board_now).set_index("campaign")
    # Stop the sparkline before the newest minute: it is still filling, and drawn
    # as complete it would look as if dialling had collapsed.
    series = queries.sparkline_series(ctx.client, board_now - SPARKLINE_WINDOW, board_now - timedelta(minutes=1))
    compliance_by = compliance.to_dict("index")
    sparklines = _sparklines(series)
    campaigns = []
    for row in tiles.to_dict("records"):
        windows = compliance_by.get(row["campaign"])
        campaigns.append({
            "campaign": row["campaign"],
            "dials": int(row["dials"]),
            "contacts": int(row["contacts"]),
            "abandoned": int(row["abandoned"]),
            "orders": int(row["orders"]),
            "cost": float(row["cost"]),
            **{name: _clean(row[name]) for name in RATES},
            "compliance": {
                window.name: {
                    "label": window.label,
                    "abandoned": int(windows[f"{window.name}_abandoned"]) if windows is not None else 0,
                    "contacts": int(windows[f"{window.name}_contacts"]) if windows is not None else 0,
                    "abandon_rate": _clean(windows[f"{window.name}_abandon_rate"]) if windows is not None else None,
                }
                for window in COMPLIANCE_WINDOWS
            },
            "sparkline": sparklines.get(row["campaign"], NO_SPARKLINE),
        })
    landed_at = fresh["landed_at"]
    return {
        "generated_at": now.isoformat(),
        "board_time": board_now.isoformat(),
        "current_slot": ctx.slot_rules.slot_for(board_now),
        "landed_at": landed_at.isoformat() if landed_at else None,
        **_freshness(landed_at, now, ctx.settings),
        "thresholds": {
            "abandon_warning": ctx.settings.alert_rules_for("default").abandon_warning,
            "abandon_critical": ctx.settings.alert_rules_for("default").abandon_critical,
        },
        "campaigns": campaigns,
    }


def shared_wallboard_model() -> dict:
    """The wallboard model every board is served (the page's refresh and /api/wallboard).

    Each TV and browser refreshes every few seconds and a big board's model is a few hundred
    ms of warehouse reads, so boards refreshing within dashboard.wallboard_cache_seconds of
    each other share one. Only its age is brought up to date: a board never shows an old
    model as newer than it is."""
    ctx = context()
    if ctx.settings.dashboard.wallboard_cache_seconds <= 0:
        return wallboard_model()
    model = ctx.shared_wallboard()
    landed_at = datetime.fromisoformat(model["landed_at"]) if model["landed_at"] else None
    return {**model, **_freshness(landed_at, datetime.now(timezone.utc), ctx.settings)}


def _freshness(landed_at: datetime | None, now: datetime, settings: Settings) -> dict:
    age = (now - landed_at).total_seconds() if landed_at else None
    return {"age_seconds": age, "stale": age is None or age > settings.dashboard.stale_after_seconds}


def abandon_level(rate: float | None, settings: Settings, campaign: str = "default") -> str:
    """The colour level of an abandon rate, on the campaign's alert thresholds."""
    rules = settings.alert_rules_for(campaign)
    if rate is None:
        return "none"
    if rate >= rules.abandon_critical:
        return "critical"
    if rate >= rules.abandon_warning:
        return "warning"
    return "ok"
