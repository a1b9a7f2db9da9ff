"""The dashboard's read side: one warehouse client per process, and the wallboard model.

In embedded mode the dashboard runs inside the worker process, because only one
process may open a chDB path; it then shares the worker's warehouse.
"""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from cachetools import TTLCache, cached
from clickhouse_connect.driver.client import Client

from core.config import Settings
from core.metrics import (
    CALL_RATES,
    COMPLIANCE_WINDOWS,
    RATES,
    WINDOW_DEFINITION,
    AbandonBudget,
    campaign_minutes,
    ratio,
    window_budgets,
)
from core.slots import SlotRules
from warehouse.queries import floor, live
from warehouse.queries.sums import minute_window

SPARKLINE_WINDOW = timedelta(hours=2)
WALLBOARD_QUERIES = 2  # sparklines, the floor: read at once after the counters
FLOOR_FIELDS = ("agents", "calls_waiting", "longest_wait_seconds", "dial_level", "drops_today", "drop_allowance_today")


class QueryPool:
    """Threads that each hold a warehouse client of their own, so a page's independent queries
    run at once. One client runs one query at a time (chDB's handle lock, a ClickHouse
    session's), while the engine itself runs several: the wallboard's three took their sum
    one after another, and about the longest at once."""

    def __init__(self, warehouse_url: str, size: int):
        self.warehouse_url = warehouse_url
        self._executor = ThreadPoolExecutor(size, thread_name_prefix="callpulse-query")
        self._local = threading.local()
        self._clients: list[Client] = []
        self._lock = threading.Lock()

    def _client(self) -> Client:
        client = getattr(self._local, "client", None)
        if client is None:
            from warehouse.client import connect

            client = self._local.client = connect(self.warehouse_url)
            with self._lock:
                self._clients.append(client)
        return client

    def _call(self, call: tuple) -> Any:
        query, *arguments = call
        return query(self._client(), *arguments)

    def run(self, *calls: tuple) -> list:
        """Each (query, *arguments) called with a client first, all at once; their results in order."""
        futures = [self._executor.submit(self._call, call) for call in calls]
        return [future.result() for future in futures]

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        for client in self._clients:
            client.close()


@dataclass
class DashboardContext:
    settings: Settings
    client: Client
    # Where the wallboard's query pool opens its clients; without it (or with
    # dashboard.wallboard_parallel_reads off), its queries run one after another on ``client``.
    warehouse_url: str | None = None

    @cached_property
    def query_pool(self) -> QueryPool | None:
        if not self.warehouse_url or not self.settings.dashboard.wallboard_parallel_reads:
            return None
        return QueryPool(self.warehouse_url, WALLBOARD_QUERIES)

    def run_queries(self, *calls: tuple) -> list:
        """Independent queries, (query, *arguments) each: at once on the pool, else one by one."""
        if self.query_pool is None:
            return [call[0](self.client, *call[1:]) for call in calls]
        return self.query_pool.run(*calls)

    def close(self) -> None:
        """Close the pool's clients (``client`` is the caller's)."""
        if "query_pool" in self.__dict__ and self.query_pool is not None:
            self.query_pool.close()

    @cached_property  # built once per process, not on every 3-second refresh
    def slot_rules(self) -> SlotRules:
        return SlotRules(self.settings.slots, self.settings.zone)

    @cached_property
    def wallboard_reads(self) -> WallboardReads:
        return WallboardReads()

    @cached_property
    def shared_wallboard(self):
        """wallboard_model(), computed at most once per dashboard.wallboard_cache_seconds; a
        board asking while it is being computed waits for that one (the condition)."""
        cache: TTLCache[str, dict] = TTLCache(maxsize=1, ttl=self.settings.dashboard.wallboard_cache_seconds)
        return cached(cache, key=lambda: "wallboard", condition=threading.Condition())(wallboard_model)


class WallboardReads:
    """What the wallboard's model keeps between refreshes, in the dashboard process: the
    ranking of the busiest campaigns (picked again every dashboard.wallboard_ranking_seconds),
    and the shown campaigns' windows and sparklines before the open hour, kept while the
    board's minute, the shown campaigns and the closed totals' version stay the same (a late
    call in a closed hour moves that version: live.closed_totals_version). Each refresh then
    reads the open hour's buckets alone, and the floor."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ranking: tuple[tuple, float, tuple[list[str], int]] | None = None
        self._closed: tuple[tuple, tuple[live.WindowSums, dict[str, dict[str, list]]]] | None = None

    def ranking(self, key: tuple, seconds: float, read) -> tuple[list[str], int]:
        """``read()``'s ranking, or the one read for ``key`` less than ``seconds`` ago."""
        with self._lock:
            kept = self._ranking
        if kept is not None and kept[0] == key and time.monotonic() - kept[1] < seconds:
            return kept[2]
        ranked = read()
        with self._lock:
            self._ranking = (key, time.monotonic(), ranked)
        return ranked

    def closed(self, key: tuple, read) -> tuple[live.WindowSums, dict[str, dict[str, list]]]:
        """``read()``'s closed part of the windows and sparklines, or the one read for ``key``."""
        with self._lock:
            kept = self._closed
        if kept is not None and kept[0] == key:
            return kept[1]
        part = read()
        with self._lock:
            self._closed = (key, part)
        return part


_context: DashboardContext | None = None


def set_context(context: DashboardContext | None) -> None:
    """The context the pages read (None lets go of the last one and its warehouse client)."""
    global _context
    _context = context


def context() -> DashboardContext:
    if _context is None:
        raise RuntimeError("dashboard context not set; build the app with dashboards.app.create_app()")
    return _context


def _counts(column: np.ndarray) -> list[int]:
    """A float column of counts as ints, a missing value (NaN) as 0."""
    return np.where(np.isnan(column), 0.0, column).astype("int64").tolist()


def _floats(column: np.ndarray) -> list[float | None]:
    """A float column of money or rates as floats, a missing value (NaN) as None."""
    return [None if value != value else value for value in column.tolist()]  # NaN alone is not itself


def _by_campaign(frame: pd.DataFrame, names: list[str], columns: tuple[str, ...]) -> dict[str, np.ndarray]:
    """``columns`` of ``frame`` (a row per campaign, in any order) as float arrays in the order of
    ``names``, NaN for a campaign without a row or a missing value."""
    row_of = {campaign: row for row, campaign in enumerate(frame["campaign"].tolist())}
    no_row = len(frame)  # the NaN put after each column
    rows = np.array([row_of.get(name, no_row) for name in names], dtype="int64")
    return {column: np.append(_float_column(frame[column]), np.nan)[rows] for column in columns}


def _float_column(column: pd.Series) -> np.ndarray:
    """A column as floats, a missing value (None, NA) as NaN."""
    if isinstance(column.dtype, np.dtype) and column.dtype.kind in "biuf":  # numpy's own: no None or NA
        return column.to_numpy(dtype="float64")
    return column.to_numpy(dtype="float64", na_value=np.nan)


NO_SPARKLINE: dict[str, list] = {"minutes": [], "dials": [], "abandon_rate": []}


def board_time(fresh: dict, now: datetime) -> datetime:
    """The boards follow event time: with replayed or accelerated data "now" is just after
    the newest landed minute (``fresh`` is live.freshness()); with no data, ``now``."""
    return fresh["newest_minute"] + timedelta(minutes=1) if fresh["newest_minute"] else now


def newest_day() -> date:
    """The local day of the newest landed minute (today, in live use), so pages over a
    replayed day open on its data rather than on an empty today."""
    settings = context().settings
    newest = live.freshness(context().client)["newest_minute"]
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
    # The totals' parts first: the closed hours' part read after them is at least that new.
    fresh, totals_parts = live.wallboard_freshness(ctx.client)
    board_now = board_time(fresh, now)
    day_start = local_day_start(board_now, ctx.settings)
    # The busiest campaigns only, picked in the warehouse: however many campaign names arrive,
    # the board reads, ships and draws at most wallboard_max_campaigns of them.
    limit = ctx.settings.dashboard.wallboard_max_campaigns
    shown, campaign_count = ctx.wallboard_reads.ranking(
        (day_start, limit),
        ctx.settings.dashboard.wallboard_ranking_seconds,
        lambda: live.wallboard_ranking(
            ctx.client,
            board_now,
            day_start,
            limit,
            recent=timedelta(minutes=COMPLIANCE_WINDOWS[0].minutes),
            newest_minute=fresh["newest_minute"],
        ),
    )
    campaigns = _campaigns(ctx, now, board_now, day_start, shown, totals_parts) if shown else []
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
        "campaign_count": campaign_count,  # campaigns with calls today; the board shows the busiest
        "campaigns": campaigns,
        "total": _total(campaigns, ctx.settings),  # the campaigns on the board, summed
    }


def _campaigns(
    ctx: DashboardContext,
    now: datetime,
    board_now: datetime,
    day_start: datetime,
    shown: list[str],
    totals_parts: list[tuple[str, str, int]],
) -> list[dict]:
    """The tiles of the ``shown`` campaigns (their counters as live.wallboard_windows reads them),
    in name order (a tile keeps its place on the wall); their floor as of the floor's time
    (floor_time, from the wall clock ``now``).

    Each window (and the sparkline) is its closed hours' part, kept in ctx.wallboard_reads
    while nothing changes it (``totals_parts``, live.wallboard_freshness', read before it, say
    whether something did: live.closed_totals_version), plus the open hour's buckets, read on
    every refresh."""
    firsts, stop = live.wallboard_window_starts(board_now, day_start)
    open_hour = (stop - timedelta(minutes=1)).replace(minute=0)  # the newest minute's hour
    # Stop the sparkline before the newest minute: it is still filling, and drawn
    # as complete it would look as if dialling had collapsed.
    spark_first, spark_stop = minute_window(board_now - SPARKLINE_WINDOW, board_now - timedelta(minutes=1))
    opened, (agents, snapshots) = ctx.run_queries(
        (live.open_hour_minutes, firsts, stop, shown, (spark_first, spark_stop)),
        (_campaign_floor, now, board_now, ctx.settings, shown),
    )

    def read_closed() -> tuple[live.WindowSums, dict[str, dict[str, list]]]:
        sums, lines = ctx.run_queries(
            (live.closed_window_sums, firsts, open_hour, shown),
            (live.sparklines, spark_first, min(open_hour, spark_stop), shown),
        )
        return sums, lines

    # Kept for the same campaigns (in any order: the ranking's may change), minute and closed parts.
    kept_for = (frozenset(shown), tuple(firsts), open_hour, live.closed_totals_version(totals_parts, open_hour))
    closed_sums, closed_lines = ctx.wallboard_reads.closed(kept_for, read_closed)
    amd_rates = {name: ctx.settings.compliance.amd_for(name)[0] for name in shown}
    limits = {name: ctx.settings.alert_rules_for(name).compliance_limit for name in shown}
    windows = live.window_arrays([closed_sums, opened.window_sums], shown, amd_rates.__getitem__)
    sparklines = _joined_sparklines(closed_lines, opened.sparklines)
    # Whole columns to plain lists, then one dict per campaign.
    names, tiles, compliance = windows.campaigns, windows.tiles, windows.compliance
    counts = {name: _counts(tiles[name]) for name in ("dials", "contacts", "abandoned", "orders")}
    tile_values: dict[str, list[int] | list[float | None]] = {**counts, "cost": _floats(tiles["cost"])}
    tile_values.update({name: _floats(tiles[name]) for name in CALL_RATES})
    tile_fields = [dict(zip(tile_values, values)) for values in zip(*tile_values.values())]
    floor_fields = _floor_fields(names, counts["abandoned"], counts["contacts"], limits, agents, snapshots)
    # The UK and US windows' budgets: abandons still allowed, hours to the limit at the last hour's pace.
    # A campaign younger than a window has its budget projected over the whole window.
    counters = [name for window in live.SUMMED_WINDOWS for name in live.window_columns(window.name)]
    board_seconds = board_now.timestamp()
    budgets = [
        window_budgets(
            dict(zip(counters, row)),
            limits[name],
            amd_rates[name],
            campaign_minutes=campaign_minutes(first_minute, board_seconds),
        )
        for name, first_minute, *row in zip(
            names, compliance["first_minute"].tolist(), *(compliance[counter].tolist() for counter in counters)
        )
    ]
    window_fields = [
        [
            {"label": window.label, "abandoned": abandoned, "contacts": contacts, "abandon_rate": rate}
            for abandoned, contacts, rate in zip(
                _counts(compliance[f"{window.name}_abandoned"]),
                _counts(compliance[f"{window.name}_contacts"]),
                _floats(compliance[f"{window.name}_abandon_rate"]),
            )
        ]
        for window in COMPLIANCE_WINDOWS
    ]
    for window, fields in zip(COMPLIANCE_WINDOWS, window_fields):
        # The FTC's rate counts connected calls without a wait as in time (a lower bound): how many
        # there were and the rate had they been late go beside it.
        if WINDOW_DEFINITION[window.name] == "ftc":
            unjudged = _counts(compliance[f"{window.name}_live_answers_unjudged"])
            upper = _floats(compliance[f"{window.name}_abandon_rate_ftc_upper"])
            for field, campaign_unjudged, campaign_upper in zip(fields, unjudged, upper):
                field.update(unjudged=campaign_unjudged, abandon_rate_upper=campaign_upper)
        for field, campaign_budgets in zip(fields, budgets):
            field.update(budget_fields(campaign_budgets.get(window.name)))
    return [
        {
            "campaign": name,
            **tile_fields[index],
            "compliance": {window.name: fields[index] for window, fields in zip(COMPLIANCE_WINDOWS, window_fields)},
            "sparkline": sparklines.get(name, NO_SPARKLINE),
            **floor_fields[index],
        }
        for index, name in enumerate(names)
    ]


def _joined_sparklines(
    closed: dict[str, dict[str, list]], opened: dict[str, dict[str, list]]
) -> dict[str, dict[str, list]]:
    """Each campaign's sparkline points before the open hour, then those in it."""
    lines = dict(closed)
    for campaign, points in opened.items():
        before = lines.get(campaign)
        lines[campaign] = points if before is None else {name: before[name] + points[name] for name in before}
    return lines


def _campaign_floor(
    client: Client, now: datetime, board_now: datetime, settings: Settings, shown: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """floor.campaign_floor as of the floor's time (the board's before any agent_state landed)."""
    at = floor.floor_clock(client, now, settings.agents.timeout_seconds) or board_now
    return floor.campaign_floor(client, at, settings.agents.timeout_seconds, shown)


def budget_fields(budget: AbandonBudget | None) -> dict:
    """A window's budget as the wallboard model carries it: whole abandons still allowed (never
    below 0), hours until the limit is crossed at the last hour's pace (None: not projected), and
    for a young window how much of it holds calls ("2 h of 24 h"; "" when full), whether
    abandons_allowed counts its live answers projected over the whole window, and the abandons
    allowed at its live answers so far (abandons_allowed_now, the same for a full window)."""
    if budget is None:
        return {}
    return {
        "abandons_allowed": max(0, math.floor(budget.remaining + 1e-9)),
        "hours_to_limit": None if budget.hours_to_breach is None else round(budget.hours_to_breach, 2),
        # A young window (the campaign is younger than it): how much of it holds calls, and whether
        # abandons_allowed counts its live answers projected over the whole window.
        "window_held": budget.held_note.removeprefix("window holds "),
        "budget_projected": budget.projected,
        "abandons_allowed_now": max(0, math.floor(budget.remaining_now + 1e-9)),
    }


def drop_allowance(abandoned: int, contacts: int, limit: float) -> int:
    """How many more calls may be dropped today before the day's abandon rate (abandoned / live
    answers) passes ``limit``, at today's live answers: floor(limit x contacts - abandoned), never
    below 0."""
    return max(0, math.floor(limit * contacts - abandoned + 1e-9))


def _floor_fields(
    names: list[str],
    abandoned: list[int],
    contacts: list[int],
    limits: dict[str, float],
    agents: pd.DataFrame,
    snapshots: pd.DataFrame,
) -> list[dict]:
    """Each campaign's floor strip: agents by state, calls waiting and the longest wait, the dial
    level (None without a recent dialer snapshot), today's drops and how many more today allows
    (at its compliance limit, ``limits``)."""
    by_agents = _by_campaign(agents, names, ("logged_in", *floor.FLOOR_STATES))
    counts = {name: _counts(values) for name, values in by_agents.items()}
    by_snapshots = _by_campaign(snapshots, names, ("calls_waiting", "longest_wait_seconds", "dial_level"))
    waiting = [None if value != value else int(value) for value in by_snapshots["calls_waiting"].tolist()]
    longest, level = _floats(by_snapshots["longest_wait_seconds"]), _floats(by_snapshots["dial_level"])
    return [
        {
            "agents": {name: values[index] for name, values in counts.items()},
            "calls_waiting": waiting[index],
            "longest_wait_seconds": longest[index],
            "dial_level": level[index],
            "drops_today": abandoned[index],
            "drop_allowance_today": drop_allowance(abandoned[index], contacts[index], limits[campaign]),
        }
        for index, campaign in enumerate(names)
    ]


def _total(campaigns: list[dict], settings: Settings) -> dict:
    """The centre's total over the board's campaigns: counters and agents summed, rates from
    the sums, the longest wait the longest; the dial level is the campaigns' own averaged over
    their logged-in agents (centre_dial_level)."""
    sums = {name: sum(c.get(name) or 0 for c in campaigns) for name in ("dials", "contacts", "abandoned", "orders")}
    sums["cost"] = sum(c.get("cost") or 0.0 for c in campaigns)
    agents = {name: sum(c["agents"][name] for c in campaigns) for name in ("logged_in", *floor.FLOOR_STATES)}
    waits = [c["longest_wait_seconds"] for c in campaigns if c.get("longest_wait_seconds") is not None]
    waiting = [c["calls_waiting"] for c in campaigns if c.get("calls_waiting") is not None]
    return {
        "campaigns": len(campaigns),
        **sums,
        **{
            name: ratio(sums[RATES[name].numerator], sums[RATES[name].denominator])
            for name in ("contact_rate", "abandon_rate", "conversion_rate", "cpo")
        },
        "agents": agents,
        "calls_waiting": sum(waiting) if waiting else None,
        "longest_wait_seconds": max(waits) if waits else None,
        "dial_level": centre_dial_level(campaigns),
        "drops_today": sums["abandoned"],
        "drop_allowance_today": sum(c["drop_allowance_today"] for c in campaigns),
    }


def centre_dial_level(campaigns: list[dict]) -> float | None:
    """The centre's dial level: each campaign's (from its newest dialer snapshot) weighted by its
    logged-in agents, as the lines a centre of those campaigns dials per agent would average;
    None without a campaign that has both. Weighted by agents logged in rather than free ones,
    which drop to none between calls and would make the figure jump."""
    weighted = [
        (c["dial_level"], c["agents"]["logged_in"])
        for c in campaigns
        if c.get("dial_level") is not None and c["agents"]["logged_in"]
    ]
    agents = sum(count for _, count in weighted)
    return round(sum(level * count for level, count in weighted) / agents, 2) if agents else None


def floor_time(client: Client, now: datetime, settings: Settings) -> datetime:
    """The floor's "now" (warehouse.queries.floor.floor_clock: the wall clock while agents send
    their states, else their newest event moved on since it landed); the board's time before
    any agent_state has landed."""
    return floor.floor_clock(client, now, settings.agents.timeout_seconds) or board_time(live.freshness(client), now)


def floor_page(
    which: floor.FloorFilter, sort: str, offset: int, limit: int, now: datetime | None = None
) -> floor.FloorPage:
    """One page of the /floor page's agents (warehouse.queries.floor.floor_page) as of the
    floor's time: agents silent for agents.timeout_seconds are logged out, a pause past
    agents.pause_limit_seconds is over the limit, calls and orders are today's."""
    ctx = context()
    at = floor_time(ctx.client, now or datetime.now(timezone.utc), ctx.settings)
    agents = ctx.settings.agents
    return floor.floor_page(
        ctx.client,
        at,
        local_day_start(at, ctx.settings),
        agents.timeout_seconds,
        agents.pause_limit_seconds,
        which,
        sort,
        offset,
        limit,
    )


def floor_choices(column: str, search: str = "") -> list[str]:
    """The campaigns or teams the /floor page's filter offers for what a supervisor typed."""
    return floor.floor_choices(context().client, column, search)


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
