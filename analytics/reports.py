"""Cross-tab reports: one definition shared by `callpulse report`, the Reports page,
its exports and /api/report, so a number reads the same wherever a manager looks.

A report is summed counters grouped by the chosen dimensions over whole local days,
with every rate recomputed from those sums (core.metrics). Totals in a pivot are
recomputed from the sums too, never averaged from cells.
"""

from __future__ import annotations

import io
import json
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, timezone
from urllib.parse import urlencode

import pandas as pd

from core.metrics import (
    AGENT_COUNTERS,
    COUNTERS,
    FTC_CONNECT_SECONDS,
    METRIC_ALIASES,
    METRIC_COMPANIONS,
    METRIC_NAMES,
    RATES,
    add_rate_columns,
    format_metric,
    needs_agent_seconds,
    ratio_series,
)
from core.schema import MAX_IDENTIFIER_LENGTH as MAX_CAMPAIGN_LENGTH

#: What a manager may group by (the warehouse maps each to SQL from an allow-list).
REPORT_DIMENSIONS: dict[str, str] = {
    "campaign": "Campaign",
    "slot": "Time slot",
    "segment": "Segment",
    "team": "Agent team",
    "agent": "Agent",
    "day": "Day",
    "hour": "Hour of day",
    "weekday": "Weekday",
}
#: The metrics offered on the Reports page, in the order people ask for them.
REPORT_METRICS: tuple[str, ...] = (
    "contact_rate",
    "abandon_rate",
    "cpo",
    "conversion_rate",
    "orders",
    "dials",
    "aht_seconds",
    "occupancy",
    "calls_per_agent_hour",
    "orders_per_agent_hour",
    "aht_with_wrap_up_seconds",
)
#: Dimensions agent seconds are kept by (not per time slot or segment: an agent works every slot).
AGENT_SECONDS_DIMENSIONS = frozenset(REPORT_DIMENSIONS) - {"slot", "segment"}
DEFAULT_METRICS: tuple[str, ...] = ("contact_rate", "abandon_rate", "conversion_rate", "cpo", "orders")
DEFAULT_DAYS = 7
FORMATS = ("table", "csv", "json", "xlsx")
WEEKDAYS = {1: "Mon", 2: "Tue", 3: "Wed", 4: "Thu", 5: "Fri", 6: "Sat", 7: "Sun"}
#: The sample-size column every report carries: greying and trust start from it.
SAMPLE_COLUMN = "dials"


class ReportError(ValueError):
    """A report request a user can fix; the message says how."""


@dataclass(frozen=True)
class ReportRequest:
    by: tuple[str, ...]
    metrics: tuple[str, ...]
    start_day: date
    end_day: date  # inclusive, like a date picker
    campaigns: tuple[str, ...] = field(default=())

    @classmethod
    def parse(
        cls,
        by: str | Sequence[str] | None,
        metrics: str | Sequence[str] | None,
        start: str | date | None,
        end: str | date | None,
        campaigns: str | Sequence[str] | None = None,
        *,
        today: date,
    ) -> ReportRequest:
        """Validate what a user typed or clicked; raises ReportError with a fixable message."""
        dimensions = _names(by) or ["campaign"]
        unknown = [d for d in dimensions if d not in REPORT_DIMENSIONS]
        if unknown:
            raise ReportError(
                f"unknown --by dimension(s) {', '.join(unknown)}; choose from {', '.join(REPORT_DIMENSIONS)}"
            )
        if len(set(dimensions)) != len(dimensions):
            raise ReportError("each dimension may appear in --by only once")
        chosen = [METRIC_ALIASES.get(m, m) for m in (_names(metrics) or list(DEFAULT_METRICS))]
        unknown = [m for m in chosen if m not in METRIC_NAMES]
        if unknown:
            raise ReportError(
                f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join([*METRIC_NAMES, *METRIC_ALIASES])}"
            )
        end_day = _day(end, "--to") if end else today
        start_day = _day(start, "--from") if start else end_day - timedelta(days=DEFAULT_DAYS - 1)
        if start_day > end_day:
            raise ReportError(f"--from {start_day} is after --to {end_day}")
        if needs_agent_seconds(chosen) and not AGENT_SECONDS_DIMENSIONS.issuperset(dimensions):
            raise ReportError(
                "the agent metrics (occupancy, per agent hour, AHT with wrap-up) come from agent "
                "seconds, which are not kept per time slot or segment; group them by "
                f"{', '.join(sorted(AGENT_SECONDS_DIMENSIONS))}"
            )
        named = _names(campaigns)
        if any(len(name) > MAX_CAMPAIGN_LENGTH for name in named):
            raise ReportError(
                f"a campaign name is at most {MAX_CAMPAIGN_LENGTH} characters (the event schema's "
                "limit); check the --campaign value"
            )
        return cls(tuple(dimensions), tuple(dict.fromkeys(chosen)), start_day, end_day, tuple(named))

    def bounds(self, zone) -> tuple[datetime, datetime]:
        """[start, end) in UTC: local midnight of the first day to local midnight after the last."""
        start = datetime.combine(self.start_day, time(0), tzinfo=zone).astimezone(timezone.utc)
        end = datetime.combine(self.end_day + timedelta(days=1), time(0), tzinfo=zone).astimezone(timezone.utc)
        return start, end

    @property
    def columns(self) -> list[str]:
        """The output columns: dimensions, the sample size, then the metrics asked for, each
        followed by the figures it is not shown without (METRIC_COMPANIONS: the FTC rate's calls
        without a wait and its upper bound)."""
        shown = [m for metric in self.metrics for m in (metric, *METRIC_COMPANIONS.get(metric, ()))]
        return [*self.by, SAMPLE_COLUMN, *dict.fromkeys(m for m in shown if m != SAMPLE_COLUMN)]

    def query_params(self) -> dict[str, str]:
        """The request as URL parameters (for /api/report and a bookmarkable page)."""
        params = {
            "by": ",".join(self.by),
            "metrics": ",".join(self.metrics),
            "from": self.start_day.isoformat(),
            "to": self.end_day.isoformat(),
        }
        if self.campaigns:
            params["campaigns"] = ",".join(self.campaigns)
        return params

    def query_string(self) -> str:
        return urlencode(self.query_params())

    def with_(self, **changes) -> ReportRequest:
        return replace(self, **changes)


def _names(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    parts = value.split(",") if isinstance(value, str) else [p for v in value for p in str(v).split(",")]
    return [p.strip() for p in parts if p.strip()]


def _day(value: str | date, flag: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ReportError(f"{flag} {value!r} is not a date; use YYYY-MM-DD") from None


def counters_frame(
    client, request: ReportRequest, zone, ftc_connect_seconds: float = FTC_CONNECT_SECONDS
) -> pd.DataFrame:
    """Summed counters and every rate for the request's dimensions (the warehouse query);
    ``ftc_connect_seconds`` is compliance.ftc_connect_seconds (for dimensions read from raw attempts)."""
    from warehouse.queries.reports import metrics_by

    start, end = request.bounds(zone)
    return metrics_by(
        client,
        request.by,
        start,
        end,
        tz=str(zone),
        campaigns=request.campaigns,
        agent_seconds=needs_agent_seconds(request.metrics),
        ftc_connect_seconds=ftc_connect_seconds,
    )


def report_frame(counters: pd.DataFrame, request: ReportRequest) -> pd.DataFrame:
    """The report as users see it: the request's columns, rates as fractions (0-1)."""
    frame = counters.reindex(columns=request.columns)
    for column in request.columns:
        if column in COUNTERS and column not in ("cost", "talk_seconds"):
            frame[column] = frame[column].astype("int64")
    return frame.reset_index(drop=True)


def run_report(client, request: ReportRequest, zone, ftc_connect_seconds: float = FTC_CONNECT_SECONDS) -> pd.DataFrame:
    return report_frame(counters_frame(client, request, zone, ftc_connect_seconds), request)


def pivot(
    counters: pd.DataFrame, rows: str, columns: str | None, metric: str, order: Mapping[str, Sequence] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A rows x columns table of ``metric`` with a Total row and column, and the dials behind each cell.

    Totals sum the counters first and recompute the metric from those sums.
    """
    keys = [rows] if columns is None else [rows, columns]
    summed = [name for name in (*COUNTERS, *AGENT_COUNTERS) if name in counters.columns] or list(COUNTERS)
    base = (
        counters.groupby(keys, as_index=False)[summed].sum()
        if len(counters)
        else pd.DataFrame(columns=[*keys, *summed])
    )
    if columns is None:
        # Once each: a report of dials itself would otherwise get two "dials" columns.
        cells = add_rate_columns(base).set_index(rows)[list(dict.fromkeys([metric, SAMPLE_COLUMN]))]
        total = add_rate_columns(base[summed].sum().to_frame().T)
        values = cells[[metric]].rename(columns={metric: "Total"})
        values.loc["Total"] = total[metric].iloc[0]
        samples = cells[[SAMPLE_COLUMN]].rename(columns={SAMPLE_COLUMN: "Total"})
        samples.loc["Total"] = total[SAMPLE_COLUMN].iloc[0]
        return _ordered(values, rows, None, order), _ordered(samples, rows, None, order)
    cells = add_rate_columns(base)
    row_totals = add_rate_columns(base.groupby(rows)[summed].sum())
    col_totals = add_rate_columns(base.groupby(columns)[summed].sum())
    grand = add_rate_columns(base[summed].sum().to_frame().T)
    tables = []
    for measure in (metric, SAMPLE_COLUMN):
        table = cells.pivot(index=rows, columns=columns, values=measure)
        table = _ordered(table, rows, columns, order)
        table["Total"] = row_totals[measure].reindex(table.index)
        table.loc["Total"] = [*col_totals[measure].reindex(table.columns[:-1]), grand[measure].iloc[0]]
        table.columns.name = columns
        tables.append(table)
    return tables[0], tables[1]


def _ordered(table: pd.DataFrame, rows: str, columns: str | None, order: Mapping[str, Sequence] | None):
    """Natural order for dimensions that have one (time slots in the day's order), else sorted."""
    order = order or {}

    def arrange(labels, dimension):
        labels = list(labels)
        wanted = [v for v in order.get(dimension, []) if v in labels]
        rest = [v for v in labels if v not in wanted]
        # Hours and weekdays are numbers: 9 before 10, not after.
        return wanted + sorted(rest, key=lambda v: (0, v, "") if isinstance(v, numbers.Number) else (1, 0, str(v)))

    table = table.reindex(arrange(table.index, rows))
    table.index.name = rows
    if columns is not None:
        table = table.reindex(columns=arrange(table.columns, columns))
    return table


def label_value(dimension: str, value) -> str:
    """A dimension value as a person reads it: 'Tue', '09:00', 'early_evening' -> 'early evening'."""
    if dimension == "weekday" and value in WEEKDAYS:
        return WEEKDAYS[value]
    if dimension == "hour" and not isinstance(value, str):
        return f"{int(value):02d}:00"
    return str(value).replace("_", " ") if dimension == "slot" else str(value)


# -- output formats ------------------------------------------------------------------


def with_readable_hours(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its hours as people read them ("08:00", not 8), as the table and the Reports
    page's exports show them: for the files people open (CSV, Excel). JSON keeps the number."""
    if "hour" not in frame.columns:
        return frame
    return frame.assign(hour=[None if _is_null(hour) else label_value("hour", hour) for hour in frame["hour"]])


def to_csv(frame: pd.DataFrame) -> str:
    """CSV with rates as fractions and nulls (no denominator) as empty cells."""
    return frame.to_csv(index=False, float_format="%.10g", lineterminator="\n")


def to_json(frame: pd.DataFrame) -> str:
    """A JSON array of rows; rates as fractions, null where a rate has no denominator or a figure
    is not finite. Never Infinity or NaN, which are not JSON."""
    records = [{key: _json_value(value) for key, value in row.items()} for row in frame.to_dict("records")]
    return json.dumps(records, indent=2, allow_nan=False)


def _json_value(value):
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def to_xlsx(frame: pd.DataFrame, sheet: str = "report", title: str | None = None, percent: Iterable[str] = ()) -> bytes:
    """An Excel workbook: rates as fractions formatted as percentages, so sums and charts still work.

    Columns named like a rate (``*_rate``) or listed in ``percent`` get the percent format."""
    percent = set(percent)
    from openpyxl.utils import get_column_letter

    buffer = io.BytesIO()
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        frame.to_excel(writer, index=False, sheet_name=sheet)
        worksheet = writer.sheets[sheet]
        for position, column in enumerate(frame.columns, start=1):
            unit = (
                RATES[column].unit
                if column in RATES
                else "percent"
                if column in percent or str(column).endswith("_rate")
                else None
            )
            number_format = (
                {"percent": "0.0%", "currency": "#,##0.00", "seconds": "0"}.get(unit) if unit is not None else None
            )
            letter = get_column_letter(position)
            worksheet.column_dimensions[letter].width = max(12, len(str(column)) + 2)
            if number_format:
                for cell in worksheet[letter][1:]:
                    cell.number_format = number_format
        if title:
            worksheet.oddHeader.center.text = title
    return buffer.getvalue()


def table_rows(frame: pd.DataFrame) -> Iterable[list[str]]:
    """Each row as display strings: percentages, money, "—" for null."""
    for row in frame.to_dict("records"):
        yield [
            format_metric(column, None if _is_null(value) else value)
            if column in METRIC_NAMES
            else label_value(column, value)
            for column, value in row.items()
        ]


def _is_null(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def frame_from_json(text: str, request: ReportRequest) -> pd.DataFrame:
    """Rebuild a report frame from to_json() output (what /api/report serves)."""
    frame = pd.DataFrame(json.loads(text), columns=request.columns)
    for column in request.columns:
        if column in RATES or column in ("cost", "talk_seconds", *AGENT_COUNTERS):
            frame[column] = frame[column].astype("float64")
    return frame


# -- compliance evidence ----------------------------------------------------------------

COMPLIANCE_COLUMNS = [
    "campaign",
    "day",
    "dials",
    "contacts",
    "abandoned",
    "abandon_rate",
    "amd_estimate",
    "abandon_rate_ofcom",
    "rolling_30d_contacts",
    "rolling_30d_abandoned",
    "rolling_30d_unjudged",
    "rolling_30d_abandon_rate",
    "rolling_30d_abandon_rate_upper",
    "limit",
    "day_over_limit",
    "rolling_30d_over_limit",
]
ROLLING_DAYS = 30


def compliance_days(
    client, start_day: date, end_day: date, zone, limit_for, campaigns: Sequence[str] = (), amd_rate_for=None
) -> pd.DataFrame:
    """Per campaign and local day: the day's abandon rate, the dialer's (abandon_rate) and UK
    Ofcom's (abandon_rate_ofcom: with ``amd_rate_for(campaign)`` of the machine-classified calls
    counted abandoned, 0 without it; the 24-hour rule by calendar day), and the rolling 30-day
    rate ending that day under the US FTC's definition (the US rule: rolling_30d_abandoned counts
    the FTC's abandoned calls, rolling_30d_contacts every live answer, rolling_30d_unjudged the
    connected calls without a wait, which the rate counts as connected in time and
    rolling_30d_abandon_rate_upper as late), against the campaign's limit.
    Rolling sums cover calendar days, days without calls counting as zero."""
    from warehouse.queries.reports import metrics_by

    history_start = start_day - timedelta(days=ROLLING_DAYS - 1)
    start = datetime.combine(history_start, time(0), tzinfo=zone).astimezone(timezone.utc)
    end = datetime.combine(end_day + timedelta(days=1), time(0), tzinfo=zone).astimezone(timezone.utc)
    daily = metrics_by(client, ["campaign", "day"], start, end, tz=str(zone), campaigns=campaigns)
    if daily.empty:
        return pd.DataFrame(columns=COMPLIANCE_COLUMNS)
    every_day = pd.date_range(history_start, end_day, freq="D").strftime("%Y-%m-%d")
    frames = []
    for campaign, part in daily.groupby("campaign"):
        part = part.set_index("day")[
            ["dials", "contacts", "abandoned", "abandoned_ftc", "live_answers_unjudged", "machines"]
        ].reindex(every_day, fill_value=0.0)
        rolling = (
            part[["contacts", "abandoned_ftc", "live_answers_unjudged"]].rolling(ROLLING_DAYS, min_periods=1).sum()
        )
        part["rolling_30d_contacts"] = rolling["contacts"]
        part["rolling_30d_abandoned"] = rolling["abandoned_ftc"]
        part["rolling_30d_unjudged"] = rolling["live_answers_unjudged"]
        part = part.assign(campaign=campaign).rename_axis("day").reset_index()
        frames.append(part[part["day"] >= start_day.isoformat()])
    frame = pd.concat(frames, ignore_index=True)
    frame = add_rate_columns(frame, ["abandon_rate"])
    amd = frame["campaign"].map(amd_rate_for).astype("float64") if amd_rate_for is not None else 0.0
    frame["amd_estimate"] = frame["machines"] * amd
    frame["abandon_rate_ofcom"] = ratio_series(
        frame["abandoned"] + frame["amd_estimate"], frame["contacts"] + frame["amd_estimate"]
    )
    # The FTC's rate (core.metrics' abandon_rate_ftc, a lower bound) and its upper bound.
    frame["rolling_30d_abandon_rate"] = ratio_series(frame["rolling_30d_abandoned"], frame["rolling_30d_contacts"])
    frame["rolling_30d_abandon_rate_upper"] = ratio_series(
        frame["rolling_30d_abandoned"] + frame["rolling_30d_unjudged"], frame["rolling_30d_contacts"]
    )
    frame["limit"] = frame["campaign"].map(limit_for)
    # The rules say "at most" the limit: a breach is strictly above it.
    frame["day_over_limit"] = frame["abandon_rate_ofcom"] > frame["limit"]
    frame["rolling_30d_over_limit"] = frame["rolling_30d_abandon_rate"] > frame["limit"]
    frame = frame[frame["dials"] > 0].copy()  # a day without calls has nothing to show or defend
    for column in (
        "dials",
        "contacts",
        "abandoned",
        "rolling_30d_contacts",
        "rolling_30d_abandoned",
        "rolling_30d_unjudged",
    ):
        frame[column] = frame[column].astype("int64")
    return frame[COMPLIANCE_COLUMNS].sort_values(["campaign", "day"]).reset_index(drop=True)
