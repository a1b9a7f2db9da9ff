"""What the live wallboard reads: the busiest campaigns, today's tiles, the compliance windows
(also the worker's abandon-rate alert), the sparklines and how fresh the data is."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from clickhouse_connect.driver.client import Client

from core.metrics import (
    COMPLIANCE_COUNTERS,
    COMPLIANCE_WINDOWS,
    COUNTERS,
    RATES,
    WINDOW_DEFINITION,
    ComplianceWindow,
    add_rate_columns,
    counter_sum,
    rate_inputs,
    rate_sql,
)
from warehouse.queries.reports import metrics_by
from warehouse.queries.sums import (
    MINUTE_METRICS,
    SUMS,
    as_utc,
    counter_frame,
    minute_rows_sql,
    minute_window,
    naive_utc,
    summed,
)


def busiest_campaigns(
    client: Client, now: datetime, day_start: datetime, limit: int, recent: timedelta = timedelta(minutes=15)
) -> tuple[list[str], int]:
    """The ``limit`` campaigns with the most dials in the ``recent`` minutes up to ``now`` (then
    the most today, then by name), and how many campaigns have calls today: what the wallboard
    shows, cut in the warehouse so that a board of 100,000 campaigns ships ``limit`` names."""

    def template(rows: str, counted) -> str:
        today = counted(lambda t: f"{t} >= {{day:DateTime}} AND {t} <= {{now:DateTime}}")
        lately = counted(lambda t: f"{t} >= {{recent:DateTime}} AND {t} <= {{now:DateTime}}")
        # Each window counts by its own condition and the WHERE keeps a row either counts: through
        # the rollup, the last minutes of a rolled-up hour count in the recent window but not in the
        # day (the hour's rollup row holds them), so a WHERE of the day alone would drop them.
        return (
            f"SELECT campaign, sumIf(dials, {lately}) AS recent_dials, sumIf(dials, {today}) AS day_dials "
            f"FROM {rows} WHERE ({today}) OR ({lately}) GROUP BY campaign"
        )

    day = minute_window(day_start, now, end_inclusive=True)
    lately = minute_window(max(now - recent, day_start), now, end_inclusive=True)
    ranked, parameters = summed(
        client,
        template,
        ["campaign"],
        ["recent_dials", "day_dials"],
        [day, lately],
        day,
        by_slot_and_segment=False,
        order=False,
    )
    parameters.update(
        {
            "day": naive_utc(day_start),
            "now": naive_utc(now),
            "recent": naive_utc(max(now - recent, day_start)),
            "limit": int(limit),
        }
    )
    rows = client.query(
        f"SELECT campaign, count() OVER () FROM ({ranked}) "
        "ORDER BY recent_dials DESC, day_dials DESC, campaign LIMIT {limit:UInt32}",
        parameters=parameters,
        settings={"prefer_column_name_to_alias": 1},
    ).result_rows
    return [campaign for campaign, _ in rows], int(rows[0][1]) if rows else 0


def campaign_tiles(
    client: Client, now: datetime, day_start: datetime, campaigns: Sequence[str] | None = None
) -> pd.DataFrame:
    """One row per campaign (each of ``campaigns`` with calls today, if given): today's counters and rates."""
    campaign_sql = "AND campaign IN {campaigns:Array(String)} " if campaigns is not None else ""

    def template(rows: str, counted) -> str:
        return (
            f"SELECT campaign, {SUMS} FROM {rows} "
            f"WHERE {counted(lambda t: f'{t} >= {{day:DateTime}} AND {t} <= {{now:DateTime}}')} "
            + campaign_sql
            + "GROUP BY campaign"
        )

    window = minute_window(day_start, now, end_inclusive=True)
    sql, parameters = summed(
        client, template, ["campaign"], COUNTERS, [window], window, campaign_sql=campaign_sql, by_slot_and_segment=False
    )
    parameters.update({"day": naive_utc(day_start), "now": naive_utc(now), "campaigns": list(campaigns or ())})
    frame = counter_frame(client, sql, parameters)
    if not len(frame.columns):  # nothing landed today; the embedded warehouse then names no columns
        frame = pd.DataFrame(columns=["campaign", *COUNTERS])
    return add_rate_columns(frame)


#: The windows compliance_windows() sums: the regulators' and the last hour, whose pace the
#: compliance budget's forecast extrapolates.
FORECAST_WINDOW = ComplianceWindow("last_1h", "Last hour", 60, "the pace the compliance forecast extrapolates")
SUMMED_WINDOWS = (*COMPLIANCE_WINDOWS, FORECAST_WINDOW)


def window_columns(window: str) -> list[str]:
    return [f"{window}_{counter}" for counter in COMPLIANCE_COUNTERS]


def compliance_windows(
    client: Client,
    now: datetime,
    campaign: str | None = None,
    campaigns: Sequence[str] | None = None,
    amd_rate_for: Callable[[str], float] | None = None,
) -> pd.DataFrame:
    """Per campaign (``campaign`` alone, or each of ``campaigns``, if given), for each compliance
    window ending at ``now`` (and the last hour): its counters (COMPLIANCE_COUNTERS, as
    "<window>_<counter>") and its abandon rate under each definition ("<window>_abandon_rate_dialer",
    "_ftc" with "_ftc_upper" beside it, "_ofcom", the Ofcom one with ``amd_rate_for(campaign)``, 0
    without it), and
    "<window>_abandon_rate" under the window's own (WINDOW_DEFINITION). A window of N minutes covers
    the minute buckets that start at or after now - N minutes, the current (filling) minute included."""
    parameters = {"now": naive_utc(now), "campaign": campaign or "", "campaigns": list(campaigns or ())}
    windows = []
    for window in SUMMED_WINDOWS:
        parameters[window.name] = naive_utc(now - timedelta(minutes=window.minutes))
        windows.append(minute_window(now - timedelta(minutes=window.minutes), now, end_inclusive=True))
    longest = max(SUMMED_WINDOWS, key=lambda w: w.minutes).name
    campaign_sql = "AND campaign = {campaign:String} " if campaign else ""
    if campaigns is not None:
        campaign_sql += "AND campaign IN {campaigns:Array(String)} "
    names = [name for window in SUMMED_WINDOWS for name in window_columns(window.name)]

    def template(rows: str, counted) -> str:
        columns = []
        for window in SUMMED_WINDOWS:
            since = counted(lambda t, name=window.name: f"{t} >= {{{name}:DateTime}} AND {t} <= {{now:DateTime}}")
            columns.append(
                f"sumIf({COMPLIANCE_COUNTERS[0]}, ({since}) AS in_{window.name}) AS "
                f"{window.name}_{COMPLIANCE_COUNTERS[0]}"
            )
            columns.extend(
                f"sumIf({counter}, in_{window.name}) AS {window.name}_{counter}" for counter in COMPLIANCE_COUNTERS[1:]
            )
        return (
            f"SELECT campaign, {', '.join(columns)} FROM {rows} "
            f"WHERE minute >= {{{longest}:DateTime}} AND minute <= {{now:DateTime}} "
            + campaign_sql
            + "GROUP BY campaign"
        )

    sql, extra = summed(
        client,
        template,
        ["campaign"],
        names,
        windows,
        min(windows),
        campaign_sql=campaign_sql,
        by_slot_and_segment=False,
    )
    parameters.update(extra)
    frame = client.query_df(sql, parameters=parameters, settings={"prefer_column_name_to_alias": 1})
    if not len(frame.columns):  # nothing landed in the windows; the embedded warehouse then names no columns
        frame = pd.DataFrame(columns=["campaign", *names])
    return add_compliance_rates(frame, amd_rate_for)


def campaign_first_minutes(
    client: Client, now: datetime, campaigns: Sequence[str] | None = None, since: datetime | None = None
) -> dict[str, float]:
    """Per campaign (each of ``campaigns``, if given), its first landed minute (epoch seconds) in
    the longest compliance window ending at ``now`` (or from ``since``): how old the campaign is,
    so that a window it is younger than is not read as a full one (core.metrics.AbandonBudget).
    Campaigns with nothing landed are left out. Read through the rollup, a first minute there is
    its hour's start: a campaign can look up to an hour older than it is."""
    longest = max(window.minutes for window in SUMMED_WINDOWS)
    since = since or now - timedelta(minutes=longest)
    window = minute_window(since, now, end_inclusive=True)
    campaign_sql = "AND campaign IN {campaigns:Array(String)} " if campaigns is not None else ""

    def template(rows: str, counted) -> str:
        inside = counted(lambda t: f"{t} >= {{since:DateTime}} AND {t} <= {{now:DateTime}}")
        return (
            f"SELECT campaign, minOrNullIf(toUnixTimestamp(minute), {inside}) AS first_minute FROM {rows} "
            "WHERE minute >= {since:DateTime} AND minute <= {now:DateTime} " + campaign_sql + "GROUP BY campaign"
        )

    sql, parameters = summed(
        client,
        template,
        ["campaign"],
        [],
        [window],
        window,
        campaign_sql=campaign_sql,
        by_slot_and_segment=False,
        order=False,
        minimums=["first_minute"],
    )
    parameters.update({"since": naive_utc(since), "now": naive_utc(now), "campaigns": list(campaigns or ())})
    rows = client.query(sql, parameters=parameters).result_rows
    return {campaign: float(first) for campaign, first in rows if first is not None}


def add_compliance_rates(frame: pd.DataFrame, amd_rate_for: Callable[[str], float] | None = None) -> pd.DataFrame:
    """The rate columns of compliance_windows() from its counter columns (made float), after them.
    Column by column in numpy and the frame built once: pandas' per-column arithmetic and inserts
    cost a wallboard of 60 campaigns more than its read of their windows."""
    counts = {
        name: frame[name].to_numpy("float64") for window in SUMMED_WINDOWS for name in window_columns(window.name)
    }
    amd = _amd_rates(frame["campaign"].tolist(), amd_rate_for)
    columns: dict[str, object] = {name: frame[name] for name in frame.columns}
    columns.update(counts)
    columns.update(compliance_rates(counts, amd))
    return pd.DataFrame(columns, index=frame.index)


def compliance_rates(counts: Mapping[str, np.ndarray], amd: np.ndarray | float) -> dict[str, np.ndarray]:
    """For each of SUMMED_WINDOWS, from its counter columns ("<window>_<counter>", float) and the
    campaigns' AMD false-positive rates: "<window>_amd_estimate", its abandon rate under each
    definition ("<window>_abandon_rate_dialer", "_ftc", "_ftc_upper", "_ofcom") and under its own
    ("<window>_abandon_rate"), NaN where there were no live answers."""
    columns: dict[str, np.ndarray] = {}
    for window in SUMMED_WINDOWS:
        name = window.name
        abandoned, contacts = counts[f"{name}_abandoned"], counts[f"{name}_contacts"]
        abandoned_ftc = counts[f"{name}_abandoned_ftc"]
        estimate = counts[f"{name}_machines"] * amd
        rates = {
            "dialer": _ratio(abandoned, contacts),
            # The FTC's over every live answer (a lower bound), and had its unjudged calls been late.
            "ftc": _ratio(abandoned_ftc, contacts),
            "ftc_upper": _ratio(abandoned_ftc + counts[f"{name}_live_answers_unjudged"], contacts),
            "ofcom": _ratio(abandoned + estimate, contacts + estimate),
        }
        columns[f"{name}_amd_estimate"] = estimate
        columns.update({f"{name}_abandon_rate_{definition}": rate for definition, rate in rates.items()})
        columns[f"{name}_abandon_rate"] = rates[WINDOW_DEFINITION.get(name, "dialer")]
    return columns


def _amd_rates(campaigns: Sequence[str], amd_rate_for: Callable[[str], float] | None) -> np.ndarray | float:
    """Each campaign's AMD false-positive rate (``amd_rate_for``), or 0 for all without it."""
    if amd_rate_for is None or not len(campaigns):
        return 0.0
    return np.array([amd_rate_for(campaign) for campaign in campaigns], dtype="float64")


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """core.metrics.ratio_series on arrays: NaN where the denominator is zero."""
    return np.divide(numerator, denominator, out=np.full(len(numerator), np.nan), where=denominator != 0)


def wallboard_counters(
    client: Client,
    now: datetime,
    day_start: datetime,
    limit: int,
    recent: timedelta = timedelta(minutes=15),
    amd_rate_for: Callable[[str], float] | None = None,
    newest_minute: datetime | None = None,
) -> tuple[list[str], int, pd.DataFrame, pd.DataFrame]:
    """What the wallboard counts: :func:`busiest_campaigns` (the ``limit`` shown, in rank order,
    and how many campaigns have calls today), with the shown campaigns' :func:`campaign_tiles` and
    :func:`compliance_windows` frames, each as those functions give it (and "first_minute" in the
    compliance frame, as :func:`campaign_first_minutes` gives it): :func:`wallboard_ranking`, then
    :func:`wallboard_windows` of the campaigns it picks."""
    shown, campaign_count = wallboard_ranking(client, now, day_start, limit, recent, newest_minute)
    tiles, compliance = wallboard_windows(client, now, day_start, shown, amd_rate_for, newest_minute)
    return shown, campaign_count, tiles, compliance


def wallboard_ranking(
    client: Client,
    now: datetime,
    day_start: datetime,
    limit: int,
    recent: timedelta = timedelta(minutes=15),
    newest_minute: datetime | None = None,
) -> tuple[list[str], int]:
    """:func:`busiest_campaigns` read from the per-campaign totals the worker keeps
    (campaign_hour_totals and campaign_day_totals: whole UTC hours and days), with the minute
    buckets only at the windows' edges (:class:`WindowPieces`); the cut is made in the warehouse.
    Scanning every campaign's minute buckets of the day was most of a big board's time.
    ``newest_minute`` (live.freshness()'s, if known) before ``now`` spares reading the minutes
    after it."""
    now = naive_utc(now)
    parameters: dict = {"limit": int(limit)}
    ranking = window_rows_sql(
        [
            _pieces(day_start, now, newest_minute),
            _pieces(max(now - recent, naive_utc(day_start)), now, newest_minute),
        ],
        ["dials"],
        parameters,
    )
    rows = client.query(
        "SELECT campaign, count() OVER () FROM (SELECT campaign, sumIf(dials, window_index = 0) AS today, "
        f"sumIf(dials, window_index = 1) AS lately FROM ({ranking}) GROUP BY campaign) WHERE today > 0 "
        "ORDER BY lately DESC, today DESC, campaign LIMIT {limit:UInt32}",
        parameters=parameters,
    ).result_rows
    return [campaign for campaign, _ in rows], int(rows[0][1]) if rows else 0


def wallboard_windows(
    client: Client,
    now: datetime,
    day_start: datetime,
    shown: Sequence[str],
    amd_rate_for: Callable[[str], float] | None = None,
    newest_minute: datetime | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``shown`` campaigns' :func:`campaign_tiles` and :func:`compliance_windows` frames (with
    "first_minute", epoch seconds, NaN for none), in name order, read as :func:`wallboard_ranking`
    reads, in one query (``newest_minute`` as there)."""
    now = naive_utc(now)
    # Today's window (every counter), then each compliance window's.
    windows = [
        _pieces(day_start, now, newest_minute),
        *(_pieces(now - timedelta(minutes=w.minutes), now, newest_minute) for w in SUMMED_WINDOWS),
    ]
    return window_frames(_window_sums(client, windows, shown), shown, amd_rate_for)


def _window_sums(client: Client, windows: Sequence[WindowPieces], shown: Sequence[str]) -> WindowSums:
    """The ``shown`` campaigns' sums of each of ``windows``: (campaign, window index) -> its
    COUNTERS and first minute (None for none); a pair with no rows is left out."""
    if not shown:
        return {}
    parameters: dict = {"campaigns": list(shown)}
    sql = window_rows_sql(windows, COUNTERS, parameters, "AND campaign IN {campaigns:Array(String)}")
    return {(row[0], row[1]): tuple(row[2:]) for row in client.query(sql, parameters=parameters).result_rows}


#: (campaign, window index) -> the window's COUNTERS summed, then its first minute with calls.
WindowSums = dict[tuple[str, int], tuple]


@dataclass(frozen=True)
class WindowArrays:
    """The sums of :func:`wallboard_windows`' windows as columns (numpy float arrays, a value per
    campaign in ``campaigns``' order): the tiles' (today's COUNTERS and the rates of them) and the
    compliance windows' (as :func:`window_frames` names them)."""

    campaigns: list[str]
    tiles: dict[str, np.ndarray]
    compliance: dict[str, np.ndarray]


def window_arrays(
    parts: Sequence[WindowSums], shown: Sequence[str], amd_rate_for: Callable[[str], float] | None = None
) -> WindowArrays:
    """The ``shown`` campaigns' sums of :func:`wallboard_windows`' windows (today's, then each of
    SUMMED_WINDOWS'), in name order, from ``parts`` of them (the closed hours' and the open
    hour's, say) added: counters summed, a window's first minute the first part's that has one.
    A whole array per window and part, with its rates in numpy: pandas' per-row and per-column
    work cost a 60-campaign board more than its reads."""
    names = sorted(shown)
    window_count = 1 + len(SUMMED_WINDOWS)
    zero = (0,) * (len(COUNTERS) + 1)
    summed = np.zeros((window_count, len(names), len(COUNTERS)))
    for number, sums in enumerate(parts):
        counted = np.array(
            [sums.get((name, window), zero)[:-1] for window in range(window_count) for name in names], dtype="float64"
        ).reshape(summed.shape)
        summed = counted if number == 0 else summed + counted
    today = {counter: summed[0][:, index] for index, counter in enumerate(COUNTERS)}
    tile_rates = {
        name: _ratio(
            np.asarray(counter_sum(today, rate.numerator), dtype="float64"),
            np.asarray(counter_sum(today, rate.denominator), dtype="float64"),
        )
        for name, rate in RATES.items()
        if rate_inputs(name) <= today.keys()
    }
    counts = {
        f"{window.name}_{counter}": summed[number][:, COUNTERS.index(counter)]
        for number, window in enumerate(SUMMED_WINDOWS, start=1)
        for counter in COMPLIANCE_COUNTERS
    }
    longest = 1 + max(range(len(SUMMED_WINDOWS)), key=lambda index: SUMMED_WINDOWS[index].minutes)
    firsts = [_first_minute(parts, (name, longest)) for name in names]
    compliance = {
        **counts,
        # When each campaign's first call in the longest window landed, as
        # campaign_first_minutes() gives it (to the minute here): a young window's budget is
        # not read as a full one's.
        "first_minute": np.array(
            [as_utc(first).timestamp() if isinstance(first, datetime) else np.nan for first in firsts],
            dtype="float64",
        ),
        **compliance_rates(counts, _amd_rates(names, amd_rate_for)),
    }
    return WindowArrays(names, {**today, **tile_rates}, compliance)


def _first_minute(parts: Sequence[WindowSums], key: tuple[str, int]):
    """A window's first minute with calls: the first of ``parts`` with one (None for none)."""
    for sums in parts:
        row = sums.get(key)
        if row is not None and row[-1] is not None:
            return row[-1]
    return None


def window_frames(
    sums: WindowSums, shown: Sequence[str], amd_rate_for: Callable[[str], float] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`wallboard_windows`' frames from the sums of its windows (today's, then each of
    SUMMED_WINDOWS'): :func:`window_arrays`' columns, after "campaign"."""
    arrays = window_arrays([sums], shown, amd_rate_for)
    return (
        pd.DataFrame({"campaign": arrays.campaigns, **arrays.tiles}),
        pd.DataFrame({"campaign": arrays.campaigns, **arrays.compliance}),
    )


def wallboard_window_starts(now: datetime, day_start: datetime) -> tuple[list[datetime], datetime]:
    """The first minute of each window :func:`wallboard_windows` reads (today's, then each of
    SUMMED_WINDOWS'), and the minute they all stop before (naive UTC)."""
    firsts = [minute_window(day_start, now, end_inclusive=True)[0]]
    firsts.extend(
        minute_window(now - timedelta(minutes=window.minutes), now, end_inclusive=True)[0] for window in SUMMED_WINDOWS
    )
    return firsts, minute_window(now, now, end_inclusive=True)[1]


def closed_window_sums(
    client: Client, firsts: Sequence[datetime], open_hour: datetime, shown: Sequence[str]
) -> WindowSums:
    """The ``shown`` campaigns' sums of each window from its first minute to ``open_hour``: the
    part of :func:`wallboard_window_starts`' windows that is in closed hours (read as
    :func:`wallboard_windows` reads them), which only a late call changes."""
    return _window_sums(client, [WindowPieces.of(first, open_hour) for first in firsts], shown)


@dataclass(frozen=True)
class OpenHour:
    """The shown campaigns' minute buckets of the open hour (the newest minute's) up to the
    windows' stop, as :func:`open_hour_minutes` sums them."""

    #: Each window's sums over its minutes in the open hour, as :func:`closed_window_sums` gives
    #: them (the first minute: the campaign's first in the open hour's part of the window).
    window_sums: WindowSums
    #: :func:`sparklines` of the open hour's minutes in the sparkline's range.
    sparklines: dict[str, dict[str, list]]


#: The tables of per-campaign totals, with whether their parts are told apart by hour or by day.
TOTALS_PARTS = {"campaign_hour_totals": timedelta(hours=1), "campaign_day_totals": timedelta(days=1)}


def closed_totals_version(parts: Sequence[tuple[str, str, int]], open_hour: datetime) -> tuple[str, ...]:
    """What tells whether the closed hours' and days' totals changed: among the active
    ``parts`` of the totals tables ((table, name, earliest hour or day in it as epoch seconds),
    :func:`wallboard_freshness`), the names of those holding an hour before ``open_hour`` or a
    day before its UTC day.

    A late call in a closed hour re-derives that hour's row and its day's (within
    worker.campaign_totals_seconds of its bucket): an insert, so a new part holding that hour,
    and the names change. The open hour's and today's rows, re-derived every few seconds, go to
    parts of their own, left out; a merge of one of them with an older part changes the names
    too, which costs a read again, never a stale figure."""
    open_hour = naive_utc(open_hour)
    before = {table: _epoch(_floor(open_hour, step)) for table, step in TOTALS_PARTS.items()}
    return tuple(sorted(f"{table}/{name}" for table, name, earliest in parts if earliest < before[table]))


def open_hour_minutes(
    client: Client,
    firsts: Sequence[datetime],
    stop: datetime,
    shown: Sequence[str],
    sparkline_range: tuple[datetime, datetime],
) -> OpenHour:
    """The ``shown`` campaigns' minute buckets of the open hour (that of the minute before
    ``stop``), summed in the warehouse for each window from its first minute (``firsts``) to
    ``stop`` and drawn as :func:`sparklines` draws them over ``sparkline_range`` ([first, stop)
    minutes). A row per campaign and part of the hour comes back."""
    stop = naive_utc(stop)
    open_hour = _floor(stop - timedelta(minutes=1), timedelta(hours=1))
    if not shown:
        return OpenHour({}, {})
    # The open hour cut at each window's start inside it: a row per campaign and part, summed
    # plainly (a conditional sum per window and counter cost the warehouse more than the read).
    starts = sorted({max(naive_utc(first), open_hour) for first in firsts})
    part = " + ".join(f"(minute >= {_epoch(start)})" for start in starts[1:]) or "0"
    spark_first, spark_stop = (_epoch(max(naive_utc(moment), open_hour)) for moment in sparkline_range)
    per_minute = (
        f"SELECT campaign, minute, {', '.join(f'sum({c}) AS {c}' for c in COUNTERS)} FROM minute_metrics FINAL "
        "PREWHERE toStartOfHour(minute) = {hour:DateTime} AND minute < {stop:DateTime} "
        "AND campaign IN {campaigns:Array(String)} GROUP BY campaign, minute"
    )
    # The sparkline's points as they come (sorted and drawn below: formatting them in the
    # warehouse cost it more than the sums).
    inside = f"minute >= {spark_first} AND minute < {spark_stop}"
    numerator, denominator = SPARKLINE_RATE.numerator, SPARKLINE_RATE.denominator
    rows = client.query(
        f"SELECT campaign, toUInt8({part}) AS part, {', '.join(f'sum({c})' for c in COUNTERS)}, min(minute), "
        f"groupArrayIf((toUnixTimestamp(minute), dials, {numerator}, {denominator}), {inside}) "
        f"FROM ({per_minute}) GROUP BY campaign, part",  # in no order: sorting cost more than the rest
        parameters={"hour": open_hour, "stop": stop, "campaigns": list(shown)},
    ).result_rows
    # Each window is the parts from the one its start begins on; its first minute their first.
    part_of = [starts.index(max(naive_utc(first), open_hour)) for first in firsts]
    sums: WindowSums = {}
    points: dict[str, list[tuple]] = {}
    for row in rows:
        campaign, number, counted = row[0], row[1], tuple(row[2 : 3 + len(COUNTERS)])
        for index, first_part in enumerate(part_of):
            if number >= first_part:
                before = sums.get((campaign, index))
                sums[(campaign, index)] = (
                    counted
                    if before is None
                    else (*(a + b for a, b in zip(before[:-1], counted[:-1])), min(before[-1], counted[-1]))
                )
        if row[-1]:
            points.setdefault(campaign, []).extend(row[-1])
    labels: dict[int, str] = {}
    lines: dict[str, dict[str, list]] = {}
    for campaign, campaign_points in points.items():
        campaign_points.sort()
        lines[campaign] = {
            "minutes": [
                labels.get(epoch) or labels.setdefault(epoch, _minute_label(epoch)) for epoch, *_ in campaign_points
            ],
            "dials": [int(dials) for _, dials, _, _ in campaign_points],
            SPARKLINE_RATE.name: [None if below == 0 else above / below for _, _, above, below in campaign_points],
        }
    return OpenHour(sums, lines)


def _minute_label(epoch: int) -> str:
    """A minute as :func:`sparklines` labels it ("2026-12-02T06:49:00", UTC)."""
    return (datetime(1970, 1, 1) + timedelta(seconds=epoch)).strftime("%Y-%m-%dT%H:%M:%S")


def _pieces(since: datetime, now: datetime, newest_minute: datetime | None = None) -> WindowPieces:
    """The window of minute buckets from ``since`` to ``now``, the current minute included. With
    the newest minute landed before the window's end, none lands after it in its last hour: its
    hour row is then all of that hour the window holds, and nothing is taken away."""
    first, stop = minute_window(since, now, end_inclusive=True)
    pieces = WindowPieces.of(first, stop)
    if newest_minute is not None and naive_utc(newest_minute) < stop:
        pieces = WindowPieces(pieces.days, pieces.hours, pieces.minutes, ())
    return pieces


#: The tables of per-campaign totals the worker keeps beside the minute buckets (migration 0020):
#: a campaign's whole UTC day or hour in one row, by their time column.
DAY_TOTALS = ("campaign_day_totals", "day")
HOUR_TOTALS = ("campaign_hour_totals", "hour")


@dataclass(frozen=True)
class WindowPieces:
    """A window of minutes [first, stop) as the rows that sum to it: whole UTC days from
    campaign_day_totals, whole hours from campaign_hour_totals, and minute buckets added (the
    partial hour it starts in) or taken away (the rest of the hour it ends in, after ``stop``:
    nothing, for a window that ends at the newest minute). Its edges read at most an hour of
    minute buckets each; the rest is a row per campaign and hour or day."""

    days: tuple[tuple[datetime, datetime], ...]
    hours: tuple[tuple[datetime, datetime], ...]
    minutes: tuple[tuple[datetime, datetime], ...]
    minutes_after: tuple[tuple[datetime, datetime], ...]

    @classmethod
    def of(cls, first: datetime, stop: datetime) -> WindowPieces:
        day, hour = timedelta(days=1), timedelta(hours=1)
        whole_from, whole_to = _ceil(first, hour), _ceil(stop, hour)
        if whole_from >= whole_to:  # inside one hour: its minutes
            return cls((), (), ((first, stop),) if first < stop else (), ())
        days_from, days_to = _ceil(whole_from, day), _floor(whole_to, day)
        days: tuple[tuple[datetime, datetime], ...]
        hours: tuple[tuple[datetime, datetime], ...]
        if days_from >= days_to:
            days, hours = (), ((whole_from, whole_to),)
        else:
            days = ((days_from, days_to),)
            hours = tuple((lo, hi) for lo, hi in ((whole_from, days_from), (days_to, whole_to)) if lo < hi)
        return cls(
            days,
            hours,
            ((first, whole_from),) if first < whole_from else (),
            ((stop, whole_to),) if stop < whole_to else (),
        )


def _floor(moment: datetime, step: timedelta) -> datetime:
    return datetime.min + (moment - datetime.min) // step * step


def _ceil(moment: datetime, step: timedelta) -> datetime:
    floor = _floor(moment, step)
    return floor if floor == moment else floor + step


def _in_ranges(column: str, ranges: Sequence[tuple[datetime, datetime]]) -> str:
    """SQL for ``column`` in any of ``ranges`` ([start, end), naive UTC), the bounds written as
    epoch seconds: the same range in several windows is then the same expression, evaluated once,
    and a literal costs the warehouse less than a parameter in every condition."""
    return (
        " OR ".join(f"({column} >= {_epoch(lo)} AND {column} < {_epoch(hi)})" for lo, hi in sorted(set(ranges))) or "0"
    )


def _epoch(moment: datetime) -> int:
    return int((moment - datetime(1970, 1, 1)) // timedelta(seconds=1))


def window_rows_sql(
    windows: Sequence[WindowPieces], counters: Sequence[str], parameters: dict, campaigns_sql: str = ""
) -> str:
    """SQL of each campaign's ``counters`` summed over each window: a row per campaign and window
    (its index in ``windows``) with the counters (calls as Int64) and the campaign's first minute
    with calls in the window. One scan of each totals table and of the minute buckets the edges
    need (``campaigns_sql``, a condition on campaign, narrows each); a row counts in every window
    it falls in, tagged with it (its index + 1, negative where the window takes it away), so the
    query stays small whatever the number of windows."""
    scans = []
    for (table, column), spans in (
        (DAY_TOTALS, [pieces.days for pieces in windows]),
        (HOUR_TOTALS, [pieces.hours for pieces in windows]),
        (("minute_metrics", "minute"), [pieces.minutes for pieces in windows]),
    ):
        taken = [pieces.minutes_after for pieces in windows] if column == "minute" else [() for _ in windows]
        tags = [
            f"({_in_ranges(column, ranges)}) * {sign * (number + 1)}"
            for sign, by_window in ((1, spans), (-1, taken))
            for number, ranges in enumerate(by_window)
            if ranges
        ]
        if not tags:
            continue
        every = [span for by_window in (spans, taken) for ranges in by_window for span in ranges]
        covered = _in_ranges(column, every)
        if column == "minute":  # the sorting key starts with the hour: name the hours, so the index narrows
            hours = sorted({_floor(lo, timedelta(hours=1)) for lo, _ in every})
            covered = f"toStartOfHour(minute) IN {{edge_hours:Array(DateTime)}} AND ({covered})"
            parameters["edge_hours"] = hours
        first = "first_minute" if column != "minute" else "minute"
        scans.append(
            f"SELECT campaign, arrayJoin(arrayFilter(tag -> tag != 0, [{', '.join(tags)}])) AS tag, "
            f"{', '.join(counters)}, {first} AS first_minute "
            f"FROM {table} FINAL PREWHERE ({covered}) {campaigns_sql}"
        )
    if not scans:
        scans.append(
            f"SELECT '' AS campaign, toInt16(0) AS tag, {', '.join(f'0 AS {c}' for c in counters)}, "
            "toDateTime(0, 'UTC') AS first_minute WHERE 0"
        )
    sums = ", ".join(f"sum({counter} * sign(tag)) AS {counter}" for counter in counters)
    return (
        f"SELECT campaign, toUInt8(abs(tag) - 1) AS window_index, {sums}, "
        "minOrNullIf(first_minute, tag > 0) AS first_minute "
        f"FROM ({' UNION ALL '.join(scans)}) GROUP BY campaign, window_index"
    )


def compliance_windows_at(client: Client, nows: Mapping[str, datetime]) -> dict[str, dict[str, int]]:
    """:func:`compliance_windows`' counters for many campaigns, each at its own ``now``, in one query:
    campaign -> {"<window>_<counter>": n} (COMPLIANCE_COUNTERS, the compliance windows and the last
    hour). A worker catching up on a backlog of 1,000 campaigns would otherwise ask once per
    campaign per event minute."""
    if not nows:
        return {}
    campaigns = sorted(nows)
    moments = [naive_utc(nows[c]) for c in campaigns]
    longest = max(window.minutes for window in SUMMED_WINDOWS)
    earliest, latest = min(moments) - timedelta(minutes=longest), max(moments)
    parameters = {"campaigns": campaigns, "nows": moments, "earliest": earliest, "latest": latest}
    names = [name for window in SUMMED_WINDOWS for name in window_columns(window.name)]

    def template(rows: str, counted) -> str:
        columns = []
        for window in SUMMED_WINDOWS:
            since = counted(
                lambda t, minutes=window.minutes: f"{t} >= q.now - toIntervalMinute({minutes}) AND {t} <= q.now"
            )
            columns.append(
                f"sumIf(m.{COMPLIANCE_COUNTERS[0]}, ({since}) AS in_{window.name}) AS "
                f"{window.name}_{COMPLIANCE_COUNTERS[0]}"
            )
            columns.extend(
                f"sumIf(m.{counter}, in_{window.name}) AS {window.name}_{counter}"
                for counter in COMPLIANCE_COUNTERS[1:]
            )
        aliased = "minute_metrics AS m FINAL" if rows == MINUTE_METRICS else f"{rows} AS m"
        return (
            f"SELECT m.campaign AS campaign, {', '.join(columns)} FROM {aliased} "
            "INNER JOIN (SELECT pair.1 AS campaign, pair.2 AS now "
            "FROM (SELECT arrayJoin(arrayZip({campaigns:Array(String)}, {nows:Array(DateTime)})) AS pair)) AS q "
            "ON m.campaign = q.campaign "
            "WHERE m.minute >= {earliest:DateTime} AND m.minute <= {latest:DateTime} AND m.minute <= q.now "
            "AND m.campaign IN {campaigns:Array(String)} "
            "GROUP BY m.campaign"
        )

    sql, extra = summed(
        client,
        template,
        ["campaign"],
        names,
        [
            minute_window(moment - timedelta(minutes=window.minutes), moment, end_inclusive=True)
            for moment in set(moments)
            for window in SUMMED_WINDOWS
        ],
        minute_window(earliest, latest, end_inclusive=True),
        column="m.minute",
        campaign_sql="AND campaign IN {campaigns:Array(String)} ",
        by_slot_and_segment=False,
        order=False,
    )
    parameters.update(extra)
    result = client.query(sql, parameters=parameters, settings={"prefer_column_name_to_alias": 1})
    counted_names = result.column_names[1:]
    return {row[0]: dict(zip(counted_names, (int(v) for v in row[1:]))) for row in result.result_rows}


def minute_series(client: Client, since: datetime, until: datetime) -> pd.DataFrame:
    """Per campaign and minute: counters and rates (for trends)."""
    return metrics_by(client, ["campaign", "minute"], since, until)


SPARKLINE_RATE = RATES["abandon_rate"]


def sparklines(
    client: Client, since: datetime, until: datetime, campaigns: Sequence[str] | None = None
) -> dict[str, dict[str, list]]:
    """Per campaign (each of ``campaigns``, if given), its minutes in [since, until) in order, as
    the wallboard draws them:
    {"minutes": ["2026-12-02T06:49:00", ...], "dials": [...], "abandon_rate": [... or None]}.

    Cut per campaign, ordered and formatted in the warehouse, which hands each campaign's
    points over as arrays: a big board's 120,000 points sorted and converted one by one in
    Python were most of its model's time. Its rows are minute_rows_sql(): FINAL merges only the
    range. Campaigns with nothing landed in the range are left out."""
    first, stop = minute_window(since, until)
    counters = sorted({"dials", SPARKLINE_RATE.numerator, SPARKLINE_RATE.denominator})
    campaign_sql = "AND campaign IN {campaigns:Array(String)}" if campaigns is not None else ""
    rows = minute_rows_sql(
        ["{first:DateTime}", "{stop:DateTime}"], by_slot_and_segment=False, campaign_sql=campaign_sql
    )
    per_minute = (
        f"SELECT campaign, minute, {', '.join(f'sum({name}) AS {name}' for name in counters)} "
        f"FROM {rows} GROUP BY campaign, minute"
    )
    points = (
        f"SELECT campaign, arraySort(groupArray((minute, toInt64(dials), {rate_sql(SPARKLINE_RATE.name)}))) "
        f"AS points FROM ({per_minute}) GROUP BY campaign"
    )
    sql = (
        "SELECT campaign, arrayMap(p -> formatDateTime(p.1, '%Y-%m-%dT%H:%i:%S', 'UTC'), points), "
        f"arrayMap(p -> p.2, points), arrayMap(p -> p.3, points) FROM ({points})"
    )
    result = client.query(
        sql,
        parameters={"first": first, "stop": stop, "campaigns": list(campaigns or ())},
        settings={"prefer_column_name_to_alias": 1},
    )
    return {
        campaign: {"minutes": minutes, "dials": dials, SPARKLINE_RATE.name: rates}
        for campaign, minutes, dials, rates in result.result_rows
    }


def wallboard_freshness(client: Client) -> tuple[dict, list[tuple[str, str, int]]]:
    """:func:`freshness`, and the active parts of the per-campaign totals tables (table, name,
    the earliest hour or day in it as epoch seconds: :func:`closed_totals_version`), from one
    read of the warehouse's metadata."""
    row = client.query(
        "SELECT (SELECT max(landed_at) FROM minute_metrics_changes), maxIf(max_time, table = 'minute_metrics'), "
        "sumIf(rows, table = 'minute_metrics'), "
        "groupArrayIf((table, name, toUnixTimestamp(min_time)), table != 'minute_metrics') FROM system.parts "
        "WHERE database = currentDatabase() AND active AND table IN {tables:Array(String)}",
        parameters={"tables": ["minute_metrics", *TOTALS_PARTS]},
    ).result_rows[0]
    landed_at, newest_minute, rows, parts = row
    fresh = {
        "landed_at": as_utc(landed_at) if rows else None,
        "newest_minute": as_utc(newest_minute) if rows else None,
        "bucket_rows": int(rows),
    }
    return fresh, [(str(table), str(name), int(earliest)) for table, name, earliest in parts]


def freshness(client: Client) -> dict:
    """When data last landed and the newest event minute: what 'updated N s ago' shows.

    From metadata, not minute_metrics' rows (a scan of two columns of every bucket was a tenth
    of a big board's refresh): the newest minute and the row count from its active parts (the
    minmax of its partition key, and their rows: every version, as count() without FINAL), and
    the last landing from the change log the rollup keeps (migration 0008: each insert's
    landed_at in every hour it touched)."""
    row = client.query(
        "SELECT (SELECT max(landed_at) FROM minute_metrics_changes), max(max_time), sum(rows) FROM system.parts "
        "WHERE database = currentDatabase() AND table = 'minute_metrics' AND active"
    ).result_rows[0]
    landed_at, newest_minute, rows = row
    return {
        "landed_at": as_utc(landed_at) if rows else None,
        "newest_minute": as_utc(newest_minute) if rows else None,
        "bucket_rows": int(rows),
    }
