"""Cross-tab reports for managers: rows x columns of one metric, as a heatmap, a pivot
table with totals and a trend; exports to CSV and Excel. The URL holds the report's
state, so a bookmark or a pasted link opens the same report.

Every number comes from analytics.reports, the code behind `callpulse report` too.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from urllib.parse import urlencode

import dash
import numpy as np
import plotly.graph_objects as go
from dash import Input, Output, State, callback, dcc, html, no_update
from dash.dash_table.DataTable import DataTable

from analytics import reports
from core.metrics import RATES, format_metric, higher_is_better, metric_label
from dashboards import theme
from dashboards.controls import Export, control, day_range, download, export_buttons
from dashboards.data import context, newest_day, parse_day
from warehouse.queries.reports import campaign_names

dash.register_page(__name__, path="/reports", name="Reports", title="CallPulse · Reports", order=20)

DEFAULTS = {"rows": "segment", "columns": "slot", "metric": "contact_rate"}
NO_COLUMNS = "none"
MAX_TREND_SERIES = 12
CAMPAIGN_OPTIONS = 50  # the campaign filter's options at a time; typing finds the others
TIME_DIMENSIONS = {"day", "hour", "weekday"}


def _options(names, labels) -> list[dict]:
    return [{"label": labels(name), "value": name} for name in names]


def _pick(value: str | None, allowed, default: str) -> str:
    return value if value is not None and value in allowed else default


def _campaign_options(chosen: list[str], matching: str = "") -> list[str]:
    """The campaigns chosen (a shared link may name one with no calls: the dropdown would drop
    it, and the report would quietly widen to every campaign), then the first
    CAMPAIGN_OPTIONS landed campaigns whose name holds what the user typed."""
    found = campaign_names(context().client, matching, CAMPAIGN_OPTIONS)
    return [*chosen, *(name for name in found if name not in chosen)]


@callback(
    Output("report-campaigns", "options"),
    Input("report-campaigns", "search_value"),
    State("report-campaigns", "value"),
    prevent_initial_call=True,
)
def search_campaigns(typed, chosen):
    """As the user types, the campaigns whose name holds it: a few dozen options at a time,
    however many campaigns there are."""
    if not isinstance(typed, str) or not isinstance(chosen, (list, type(None))):
        return no_update
    return _campaign_options([name for name in chosen or [] if isinstance(name, str)], typed[:200])


def layout(rows=None, columns=None, metric=None, **query):
    end = parse_day(query.get("to")) or newest_day()
    start = parse_day(query.get("from")) or end - timedelta(days=reports.DEFAULT_DAYS - 1)
    chosen_campaigns = [c for c in (query.get("campaigns") or "").split(",") if c]
    dimension_options = _options(reports.REPORT_DIMENSIONS, reports.REPORT_DIMENSIONS.get)
    return html.Div(
        [
            dcc.Location(id="report-url", refresh=False),
            html.Div(
                [
                    control(
                        "Rows",
                        dcc.Dropdown(
                            id="report-rows",
                            options=dimension_options,
                            clearable=False,
                            value=_pick(rows, reports.REPORT_DIMENSIONS, DEFAULTS["rows"]),
                        ),
                    ),
                    control(
                        "Columns",
                        dcc.Dropdown(
                            id="report-columns",
                            clearable=False,
                            options=[*dimension_options, {"label": "(none)", "value": NO_COLUMNS}],
                            value=_pick(columns, [*reports.REPORT_DIMENSIONS, NO_COLUMNS], DEFAULTS["columns"]),
                        ),
                    ),
                    control(
                        "Metric",
                        dcc.Dropdown(
                            id="report-metric",
                            clearable=False,
                            options=_options(reports.REPORT_METRICS, metric_label),
                            value=_pick(metric, reports.REPORT_METRICS, DEFAULTS["metric"]),
                        ),
                    ),
                    day_range("report-dates", start, end),
                    control(
                        "Campaigns",
                        dcc.Dropdown(
                            id="report-campaigns",
                            multi=True,
                            value=chosen_campaigns,
                            options=_campaign_options(chosen_campaigns),
                            placeholder="all campaigns (type to find one)",
                        ),
                    ),
                    export_buttons("report"),
                ],
                className="controls",
            ),
            html.Div(id="report-summary", className="report-summary", **theme.data_attributes(testid="report-summary")),
            dcc.Loading(theme.graph("report-heatmap"), type="dot"),
            html.H3("Pivot table", className="section-title"),
            DataTable(id="report-pivot", sort_action="none", **theme.TABLE_STYLE),
            html.H3("Trend", className="section-title"),
            theme.graph("report-trend"),
        ],
        className="report-page",
    )


def _request(rows, columns, metric, start, end, campaigns) -> reports.ReportRequest:
    by = [rows] if columns in (None, NO_COLUMNS) else [rows, columns]
    settings = context().settings
    return reports.ReportRequest.parse(
        by, metric, parse_day(start), parse_day(end), campaigns, today=datetime.now(settings.zone).date()
    )


def _dimension_order() -> dict:
    return {"slot": context().slot_rules.names, "weekday": list(reports.WEEKDAYS)}


CONTROLS = [
    Input("report-rows", "value"),
    Input("report-columns", "value"),
    Input("report-metric", "value"),
    Input("report-dates", "start_date"),
    Input("report-dates", "end_date"),
    Input("report-campaigns", "value"),
]


@callback(
    Output("report-heatmap", "figure"),
    Output("report-pivot", "data"),
    Output("report-pivot", "columns"),
    Output("report-pivot", "style_data_conditional"),
    Output("report-trend", "figure"),
    Output("report-summary", "children"),
    Output("report-url", "search"),
    *CONTROLS,
)
def build_report(rows, columns, metric, start, end, campaigns):
    # The dropdowns send one name each; anything else was crafted, and ReportRequest
    # would read a comma in it as a list.
    if not (
        isinstance(rows, str)
        and rows in reports.REPORT_DIMENSIONS
        and isinstance(columns, str)
        and (columns == NO_COLUMNS or columns in reports.REPORT_DIMENSIONS)
        and isinstance(metric, str)
        and metric in reports.REPORT_METRICS
    ):
        message = "Choose rows, columns and a metric from the lists."
        return theme.empty_figure(message), [], [], [], theme.empty_figure(""), message, no_update
    if not isinstance(campaigns, (list, type(None))) or not all(isinstance(c, str) for c in campaigns or []):
        message = "Choose campaigns from the list."
        return theme.empty_figure(message), [], [], [], theme.empty_figure(""), message, no_update
    columns = None if columns == NO_COLUMNS else columns
    if columns == rows:
        message = "Rows and columns are the same dimension: pick a different one for columns."
        return theme.empty_figure(message), [], [], [], theme.empty_figure(""), message, no_update
    try:
        request = _request(rows, columns, metric, start, end, campaigns)
    except reports.ReportError as exc:
        return theme.empty_figure(str(exc)), [], [], [], theme.empty_figure(""), str(exc), no_update
    settings = context().settings
    counters = reports.counters_frame(context().client, request, settings.zone, settings.compliance.ftc_connect_seconds)
    search = "?" + urlencode(
        {
            "rows": rows,
            "columns": columns or NO_COLUMNS,
            "metric": metric,
            "from": request.start_day.isoformat(),
            "to": request.end_day.isoformat(),
            **({"campaigns": ",".join(request.campaigns)} if request.campaigns else {}),
        }
    )
    if counters.empty:
        message = f"No calls landed between {request.start_day} and {request.end_day}."
        return theme.empty_figure(message), [], [], [], theme.empty_figure(""), message, search
    min_calls = settings.dashboard.report_min_calls
    values, samples = (
        _total_last(table) for table in reports.pivot(counters, rows, columns, metric, order=_dimension_order())
    )
    data, table_columns, styles = _pivot_table(values, samples, rows, columns, metric, min_calls)
    total_dials = int(samples.loc["Total", "Total"])
    summary = (
        f"{metric_label(metric)} by {reports.REPORT_DIMENSIONS[rows].lower()}"
        + (f" × {reports.REPORT_DIMENSIONS[columns].lower()}" if columns else "")
        + f" · {request.start_day} to {request.end_day} ({settings.pipeline.timezone}) · "
        f"{total_dials:,} dials · overall {format_metric(metric, values.loc['Total', 'Total'])} · "
        f"cells under {min_calls} dials are greyed"
    )
    return (
        _heatmap(values, samples, rows, columns, metric, min_calls),
        data,
        table_columns,
        styles,
        _trend(request, rows, columns, metric),
        summary,
        search,
    )


def _total_last(table):
    """The pivot with its Total row at the bottom, where a reader looks for a sum."""
    return table.reindex([*(label for label in table.index if label != "Total"), "Total"])


def _heatmap(values, samples, rows, columns, metric, min_calls) -> go.Figure:
    # Without columns the one column is the rows' own value (the pivot names it Total).
    cells = values.drop(index="Total", columns="Total" if columns else [])
    counts = samples.drop(index="Total", columns="Total" if columns else [])
    x = [reports.label_value(columns, c) if columns else metric_label(metric) for c in cells.columns]
    y = [reports.label_value(rows, r) for r in cells.index]
    value_grid = cells.to_numpy(dtype="float64")
    count_grid = np.nan_to_num(counts.to_numpy(dtype="float64"))
    too_few = count_grid < min_calls
    text = [
        [_cell_text(metric, v, n, few) for v, n, few in zip(vr, nr, fr)]
        for vr, nr, fr in zip(value_grid, count_grid, too_few)
    ]
    customdata = _plain(np.dstack([value_grid, count_grid]))
    hover = "%{y} · %{x}<br>" + metric_label(metric) + ": %{text}<br>%{customdata[1]:,.0f} dials<extra></extra>"
    trusted = np.where(too_few, np.nan, value_grid)
    top = _scale_top(metric, trusted)  # the scale runs from 0, the calm colour, to the largest value
    figure = go.Figure(
        [
            go.Heatmap(
                name="values",
                z=_plain(trusted),
                x=x,
                y=y,
                text=text,
                texttemplate="%{text}",
                customdata=customdata,
                hovertemplate=hover,
                xgap=2,
                ygap=2,
                **theme.rate_colour_scale(higher_is_better(metric), top),
                colorbar={
                    "title": metric_label(metric) + _better_note(metric),
                    **({"tickformat": ".0%" if top >= 0.1 else ".1%"} if _unit(metric) == "percent" else {}),
                },
            ),
            go.Heatmap(
                name=f"under {min_calls} dials",
                z=_plain(np.where(too_few, 1.0, np.nan)),
                x=x,
                y=y,
                text=text,
                texttemplate="%{text}",
                customdata=customdata,
                hovertemplate=hover,
                showscale=False,
                zmin=0,
                zmax=1,
                colorscale=[[0, theme.TOO_FEW], [1, theme.TOO_FEW]],
                xgap=2,
                ygap=2,
            ),
        ]
    )
    figure.update_layout(
        **theme.figure_layout(
            title=f"{metric_label(metric)} by {reports.REPORT_DIMENSIONS[rows].lower()}"
            + (f" × {reports.REPORT_DIMENSIONS[columns].lower()}" if columns else ""),
            height=max(320, 60 + 48 * len(y)),
            yaxis={"autorange": "reversed", "type": "category"},
            xaxis={"type": "category", "side": "top"},
        )
    )
    return figure


#: The smallest top of a colour scale or axis, per unit: a report of all zeros still reads as
#: zero (the calm end), not as a scale from -40 % to +40 %.
MIN_SCALE_TOP = {"percent": 0.01, "currency": 1.0, "seconds": 1.0, "count": 1.0}


def _scale_top(metric: str, values) -> float:
    """Where a sequential scale for ``metric`` ends: the largest value shown (never below 0)."""
    finite = np.asarray(values, dtype="float64")
    finite = finite[np.isfinite(finite)]
    largest = float(finite.max()) if finite.size else 0.0
    return max(largest, MIN_SCALE_TOP.get(_unit(metric), 1.0))


def _better_note(metric: str) -> str:
    better = higher_is_better(metric)
    return "" if better is None else f"<br><sub>{'higher' if better else 'lower'} is better</sub>"


def _plain(grid: np.ndarray) -> list:
    """Nested lists with None for NaN: what the browser reads back is then the exact number,
    not a base64 typed array, and a gap stays a gap."""
    plain = grid.astype(object)
    plain[np.isnan(grid)] = None
    return plain.tolist()


def _unit(metric: str) -> str:
    return RATES[metric].unit if metric in RATES else "count"


def _cell_text(metric: str, value: float, dials: float, too_few: bool) -> str:
    shown = format_metric(metric, None if math.isnan(value) else value)
    return f"{shown}<br>n={dials:,.0f}" if too_few else shown


def _pivot_table(values, samples, rows, columns, metric, min_calls):
    column_ids = [str(c) for c in values.columns]
    table_columns = [{"name": reports.REPORT_DIMENSIONS[rows], "id": "__row"}] + [
        {
            "name": reports.label_value(columns, c)
            if columns and c != "Total"
            else (c if c == "Total" else metric_label(metric)),
            "id": cid,
        }
        for c, cid in zip(values.columns, column_ids)
    ]
    data, styles = (
        [],
        [
            {"if": {"column_id": "__row"}, "textAlign": "left", "fontWeight": "bold"},
            {"if": {"column_id": "Total"}, "fontWeight": "bold"},
            {"if": {"filter_query": '{__row} = "Total"'}, "fontWeight": "bold", "borderTop": "2px solid #95a5a6"},
        ],
    )
    for index, (label, row) in enumerate(values.iterrows()):
        record = {"__row": "Total" if label == "Total" else reports.label_value(rows, label)}
        for column, cid in zip(values.columns, column_ids):
            value, dials = row[column], samples.loc[label, column]
            dials = 0 if dials is None or (isinstance(dials, float) and math.isnan(dials)) else dials
            few = dials < min_calls
            record[cid] = _cell_text(metric, float(value), dials, few).replace("<br>", " ")
            if few:
                styles.append(
                    {
                        "if": {"row_index": index, "column_id": cid},
                        "backgroundColor": theme.TOO_FEW,
                        "color": theme.MUTED,
                    }
                )
        data.append(record)
    return data, table_columns, styles


def _trend(request: reports.ReportRequest, rows, columns, metric) -> go.Figure:
    """The metric over time: by day for a range, by hour for one day; a line per row value."""
    one_day = request.start_day == request.end_day
    time_dimension = "hour_start" if one_day else "day"
    series = next((d for d in (rows, columns) if d and d not in TIME_DIMENSIONS), None)
    trend_request = request.with_(by=tuple(d for d in (series, time_dimension) if d))
    settings = context().settings
    frame = reports.counters_frame(
        context().client, trend_request, settings.zone, settings.compliance.ftc_connect_seconds
    )
    figure = go.Figure()
    if series:
        leaders = frame.groupby(series)["dials"].sum().sort_values(ascending=False).index[:MAX_TREND_SERIES]
        for name in sorted(leaders, key=str):
            part = frame[frame[series] == name]
            figure.add_trace(
                go.Scatter(
                    x=part[time_dimension], y=part[metric], mode="lines+markers", name=reports.label_value(series, name)
                )
            )
    else:
        figure.add_trace(
            go.Scatter(x=frame[time_dimension], y=frame[metric], mode="lines+markers", name=metric_label(metric))
        )
    figure.update_layout(
        **theme.figure_layout(
            title=f"{metric_label(metric)} by {'hour' if one_day else 'day'}"
            + (f", per {reports.REPORT_DIMENSIONS[series].lower()}" if series else ""),
            height=380,
            yaxis={
                "title": _better_note(metric).removeprefix("<br>"),
                "range": [0, _scale_top(metric, frame[metric] if len(frame) else []) * 1.1],
                **({"tickformat": ".1%"} if _unit(metric) == "percent" else {}),
            },
            xaxis={"type": "category", "categoryorder": "category ascending"}
            if not one_day
            else {"tickformat": "%H:%M"},
            legend={"orientation": "h", "y": -0.2},
        )
    )
    return figure


@callback(
    Output("report-download", "data"),
    Input("report-csv", "n_clicks"),
    Input("report-xlsx", "n_clicks"),
    *[State(c.component_id, c.component_property) for c in CONTROLS],
    prevent_initial_call=True,
)
def export(_csv, _xlsx, rows, columns, metric, start, end, campaigns):
    columns = None if columns in (NO_COLUMNS, rows) else columns
    try:
        request = _request(rows, columns, metric, start, end, campaigns)
    except reports.ReportError:
        return no_update
    settings = context().settings
    frame = _as_on_screen(
        reports.run_report(context().client, request, settings.zone, settings.compliance.ftc_connect_seconds)
    )
    return download(
        "report",
        Export(
            frame,
            f"callpulse-{metric}-by-{'-'.join(request.by)}-{request.start_day}-{request.end_day}",
            title=f"CallPulse report {request.query_string()}",
        ),
    )


def _as_on_screen(frame):
    """The export's hours as the page shows them ("08:00", not 8), so a file and the screen agree."""
    if "hour" in frame.columns:
        frame = frame.assign(hour=[reports.label_value("hour", hour) for hour in frame["hour"]])
    return frame
