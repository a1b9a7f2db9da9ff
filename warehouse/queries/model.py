"""What the models read: the pacing model's figures for one campaign's recent window, and the
scored conversations the response-model calibration bins.

The calibration reads return, per campaign and period, one row per distinct score with its
calls and orders (scores carry four decimals, so a week is at most ~10 k rows however many
calls it holds); analytics.calibration bins them. Columns come back as the driver's lists."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from clickhouse_connect.driver.client import Client

from core.metrics import COUNTERS, FTC_CONNECT_SECONDS, raw_counter_sql
from warehouse.queries.sums import naive_utc

# -- the pacing model's window ---------------------------------------------------------------

_LIVE = "outcome IN ('connected', 'abandoned')"
_WINDOW = (
    "campaign = {campaign:String} AND minute >= toStartOfMinute({start:DateTime64(3)}) "
    "AND event_time >= {start:DateTime64(3)} AND event_time < {end:DateTime64(3)}"
)


def _window_parameters(campaign: str, start: datetime, end: datetime) -> dict:
    return {"campaign": campaign, "start": naive_utc(start), "end": naive_utc(end)}


def pacing_window(client: Client, campaign: str, start: datetime, end: datetime, levels: Sequence[float]) -> dict:
    """The campaign's attempts that ended in [start, end): every counter summed as core.metrics
    defines it, the mean ring of live answers (contact_ring) and of the rest (other_ring), the
    talk and ring quantiles at ``levels`` (talk_q, contact_ring_q, other_ring_q), and the
    distinct agents who took a call (agents)."""
    raw_sql = raw_counter_sql(FTC_CONNECT_SECONDS)  # pacing reads no FTC figure: the law's seconds will do
    counters = ", ".join(f"{raw_sql[name]} AS {name}" for name in COUNTERS)
    quantiles = ", ".join(repr(level) for level in levels)
    return next(
        client.query(
            f"SELECT {counters}, "
            f"avgIf(ring_seconds, {_LIVE}) AS contact_ring, avgIf(ring_seconds, NOT {_LIVE}) AS other_ring, "
            f"quantilesExactIf({quantiles})(talk_seconds, outcome = 'connected') AS talk_q, "
            f"quantilesExactIf({quantiles})(ring_seconds, {_LIVE}) AS contact_ring_q, "
            f"quantilesExactIf({quantiles})(ring_seconds, NOT {_LIVE}) AS other_ring_q, "
            "uniqExactIf(agent, agent != '') AS agents "
            f"FROM call_attempts FINAL WHERE {_WINDOW}",
            parameters=_window_parameters(campaign, start, end),
            settings={"prefer_column_name_to_alias": 1},
        ).named_results()
    )


def agent_gaps(client: Client, campaign: str, start: datetime, end: datetime, edge: float) -> tuple[int, float]:
    """Gaps between the end of one of an agent's connected calls and the start of their next,
    among the campaign's calls that ended in [start, end): how many, and their ``edge`` quantile.
    Each agent's first call (no gap) and overlapping records are left out."""
    gaps, quantile = client.query(
        "SELECT count(), quantileExact({edge:Float64})(gap) FROM ("
        "  SELECT start_s - lagInFrame(end_s, 1, nan) OVER (PARTITION BY agent ORDER BY end_s "
        "         ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS gap"
        "  FROM (SELECT agent, toUnixTimestamp64Milli(event_time) / 1000.0 AS end_s, end_s - talk_seconds AS start_s"
        f"        FROM call_attempts FINAL WHERE {_WINDOW} AND outcome = 'connected' AND agent != '')"
        ") WHERE gap > 0",
        parameters={**_window_parameters(campaign, start, end), "edge": edge},
    ).result_rows[0]
    return int(gaps), float(quantile)


# -- the response model's scored conversations -------------------------------------------------

# Scores land as Float32; rounding the widened value to 6 decimals gives back the
# producer's number (0.1234, not 0.12340000271797180), so the warehouse and the raw
# events agree exactly. A score carries no meaning beyond 6 decimals.
_SCORE_SQL = "round(toFloat64(response_score), 6)"
# The population the calibration judges: live-answered calls that reached an agent, with a score.
_POPULATION_SQL = "outcome = 'connected' AND response_score IS NOT NULL"


def weekly_score_counts(
    client: Client, start: datetime, end: datetime, zone: str, campaigns: Sequence[str] = ()
) -> Sequence[Sequence[Any]]:
    """Columns (campaign, week, score, calls, ordered) of the scored conversations in [start, end),
    per campaign and week (its Monday in ``zone``) and distinct score, sorted by all three.
    Campaign names are bound parameters, never spliced into SQL."""
    sql = (
        f"SELECT campaign, toMonday(minute, {{tz:String}}) AS week, {_SCORE_SQL} AS score, "
        "count() AS calls, sum(is_order) AS ordered "
        "FROM call_attempts FINAL "
        "WHERE minute >= {start:DateTime} AND minute < {end:DateTime} "
        f"AND {_POPULATION_SQL} "
        + ("AND campaign IN {campaigns:Array(String)} " if campaigns else "")
        + "GROUP BY campaign, week, score ORDER BY campaign, week, score"
    )
    return client.query(
        sql, parameters={"tz": zone, "start": naive_utc(start), "end": naive_utc(end), "campaigns": list(campaigns)}
    ).result_columns


def trailing_score_counts(client: Client, campaign: str, since: datetime, until: datetime) -> Sequence[Sequence[Any]]:
    """Columns (score, calls, ordered) of ``campaign``'s scored conversations that ended in
    [since, until), per distinct score, sorted by score."""
    sql = (
        f"SELECT {_SCORE_SQL} AS score, count() AS calls, sum(is_order) AS ordered "
        "FROM call_attempts FINAL "
        # minute (the sort key) narrows the read; event_time makes the edges exact
        "WHERE campaign = {campaign:String} "
        "AND minute >= toStartOfMinute({since:DateTime64(3)}) AND minute <= {until:DateTime64(3)} "
        "AND event_time >= {since:DateTime64(3)} AND event_time < {until:DateTime64(3)} "
        f"AND {_POPULATION_SQL} "
        "GROUP BY score ORDER BY score"
    )
    return client.query(
        sql, parameters={"campaign": campaign, "since": naive_utc(since), "until": naive_utc(until)}
    ).result_columns


def trailing_score_counts_at(
    client: Client, untils: Mapping[str, datetime], span: timedelta
) -> Sequence[Sequence[Any]]:
    """:func:`trailing_score_counts` for many campaigns, each over the ``span`` before its own
    time in ``untils``, in one query: columns (campaign, score, calls, ordered), sorted by
    campaign and score."""
    campaigns = sorted(untils)
    moments = [naive_utc(untils[c]) for c in campaigns]
    sql = (
        f"SELECT a.campaign, {_SCORE_SQL.replace('response_score', 'a.response_score')} AS score, "
        "count() AS calls, sum(a.is_order) AS ordered "
        "FROM call_attempts AS a FINAL "
        "INNER JOIN (SELECT pair.1 AS campaign, pair.2 AS until "
        "FROM (SELECT arrayJoin(arrayZip({campaigns:Array(String)}, {untils:Array(DateTime64(3))})) AS pair)) AS q "
        "ON a.campaign = q.campaign "
        "WHERE a.campaign IN {campaigns:Array(String)} "
        "AND a.minute >= toStartOfMinute({earliest:DateTime64(3)}) AND a.minute <= {latest:DateTime64(3)} "
        "AND a.event_time >= q.until - toIntervalMillisecond({span_ms:UInt64}) AND a.event_time < q.until "
        f"AND {_POPULATION_SQL.replace('outcome', 'a.outcome').replace('response_score', 'a.response_score')} "
        "GROUP BY a.campaign, score ORDER BY a.campaign, score"
    )
    return client.query(
        sql,
        parameters={
            "campaigns": campaigns,
            "untils": moments,
            "earliest": min(moments) - span,
            "latest": max(moments),
            "span_ms": int(span.total_seconds() * 1000),
        },
    ).result_columns
