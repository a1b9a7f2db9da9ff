"""Best time to call: when each customer segment answers, with how sure we are, and the
calling window to plan each segment's list into.

A heatmap of contact rate by segment x time slot (the 95 % Wilson interval in the hover,
slots with too few dials greyed), the recommended windows per segment, and the contact
rate by hour of day with error bars. The per-slot table exports for list planning.

Every number comes from analytics.best_time; the rule behind a recommendation is in its
docstring.
"""

from __future__ import annotations

import math
from datetime import timedelta
from urllib.parse import urlencode

import dash
import numpy as np
import plotly.graph_objects as go
from dash import Input, Output, State, callback, dcc, html, no_update
from dash.dash_table.DataTable import DataTable
from plotly.subplots import make_subplots

from analytics import best_time, reports
from core.metrics import format_metric, higher_is_better
from core.slots import OFF_HOURS
from dashboards import theme
from dashboards.controls import Export, control, day_range, download, export_buttons
from dashboards.data import context, newest_day, parse_day
from warehouse.queries.reports import campaign_names

dash.register_page(
    __name__, path="/best-time", name="Best time to call", title="CallPulse · Best time to call", order=40
)

RECOMMENDED_MARK = "★"
#: How a recommendation that cannot be made yet starts: what it needs follows.
NEEDS = "needs"
# Small multiples stay readable up to about this many segments; the busiest are drawn.
MAX_HOUR_CHARTS = 12
HOUR_CHART_COLUMNS = 3
WINDOW_COLUMNS = [
    ("segment", "Segment"),
    ("slots", "Call in"),
    ("slot_rate", "Contact rate"),
    ("slot_interval", "95 % interval"),
    ("slot_dials", "Dials in those slots"),
    ("hours", "Best hours"),
    ("hour_rate", "Contact rate in those hours"),
    ("hour_interval", "95 % interval (hours)"),
]


def layout(**query):
    end = parse_day(query.get("to")) or newest_day()
    start = parse_day(query.get("from")) or end - timedelta(days=best_time.DEFAULT_DAYS - 1)
    chosen_campaigns = [c for c in (query.get("campaigns") or "").split(",") if c]
    return html.Div(
        [
            dcc.Location(id="best-time-url", refresh=False),
            html.Div(
                [
                    day_range("best-time-dates", start, end),
                    control(
                        "Campaigns",
                        dcc.Dropdown(
                            id="best-time-campaigns",
                            multi=True,
                            value=chosen_campaigns,
                            options=campaign_names(context().client),
                            placeholder="all campaigns",
                        ),
                    ),
                    export_buttons("best-time"),
                ],
                className="controls",
            ),
            html.Div(
                id="best-time-summary", className="report-summary", **theme.data_attributes(testid="best-time-summary")
            ),
            dcc.Loading(theme.graph("best-time-heatmap"), type="dot"),
            html.H3("Recommended calling windows", className="section-title"),
            DataTable(
                id="best-time-windows",
                columns=[{"name": label, "id": key} for key, label in WINDOW_COLUMNS],
                sort_action="none",
                # The advice columns keep a readable width on a phone (the table scrolls sideways)
                # rather than one word a line.
                style_cell_conditional=[{"if": {"column_id": ["slots", "hours"]}, "minWidth": "220px"}],
                style_data_conditional=[
                    {"if": {"column_id": ["segment", "slots", "hours"]}, "textAlign": "left"},
                    {
                        "if": {"filter_query": f'{{slots}} contains "{NEEDS}"'},
                        "backgroundColor": theme.TOO_FEW,
                        "color": theme.MUTED,
                    },
                    {
                        "if": {"column_id": ["slots", "hours"], "filter_query": f'{{slots}} contains "{NEEDS}"'},
                        "whiteSpace": "normal",
                    },
                ],
                **theme.TABLE_STYLE,
            ),
            html.H3("Contact rate by hour of day", className="section-title"),
            theme.graph("best-time-hours"),
        ],
        className="report-page best-time-page",
    )


def _result(start, end, campaigns):
    settings = context().settings
    end_day = parse_day(end) or newest_day()
    start_day = parse_day(start) or end_day - timedelta(days=best_time.DEFAULT_DAYS - 1)
    start_day, end_day = min(start_day, end_day), max(start_day, end_day)
    result = best_time.best_time(
        context().client, start_day, end_day, context().slot_rules, settings.dashboard.report_min_calls, campaigns or ()
    )
    return start_day, end_day, result


CONTROLS = [
    Input("best-time-dates", "start_date"),
    Input("best-time-dates", "end_date"),
    Input("best-time-campaigns", "value"),
]


@callback(
    Output("best-time-heatmap", "figure"),
    Output("best-time-windows", "data"),
    Output("best-time-hours", "figure"),
    Output("best-time-summary", "children"),
    Output("best-time-url", "search"),
    *CONTROLS,
)
def build(start, end, campaigns):
    start_day, end_day, result = _result(start, end, campaigns)
    search = "?" + urlencode(
        {
            "from": start_day.isoformat(),
            "to": end_day.isoformat(),
            **({"campaigns": ",".join(campaigns)} if campaigns else {}),
        }
    )
    dials = int(result.slots["dials"].sum())
    if not dials:
        message = f"No calls landed between {start_day} and {end_day}."
        return theme.empty_figure(message), [], theme.empty_figure(""), message, search
    headline = (
        f"Contact rate (live answers / dials) by segment × time slot · {start_day} to {end_day} "
        f"({context().settings.pipeline.timezone}) · {dials:,} dials · {RECOMMENDED_MARK} recommended · "
        f"cells under {result.min_calls} dials are greyed: {best_time.NOT_ENOUGH_DATA}"
    )
    summary: str | list[str | html.Div] = headline
    calling = result.slots[result.slots["slot"] != OFF_HOURS]
    if not int(calling["dials"].sum()):
        summary = [
            headline,
            html.Div(
                f"Every call in these days was off-hours, which is never recommended. A calling window needs at "
                f"least {result.min_calls} dials per segment in one of the calling slots: {_calling_slots()}.",
                className="needs-data",
                **theme.data_attributes(testid="best-time-needs"),
            ),
        ]
    return _heatmap(result), _window_rows(result), _hour_charts(result), summary, search


def _calling_slots() -> str:
    """The configured calling slots as people read them: "morning 09:00–12:00, midday 12:00–16:00"."""
    return ", ".join(
        f"{reports.label_value('slot', slot.name)} {slot.start_hour:02d}:00–{slot.end_hour:02d}:00"
        for slot in context().slot_rules.slots
        if slot.name != OFF_HOURS
    )


def _needs(result: best_time.BestTime, segment: str, time_column: str) -> str:
    """What a segment without a window is missing: which slots (or hours) and how many dials,
    with the most it has in any of them."""
    if time_column == "slot":
        part = result.slots[(result.slots["segment"] == segment) & (result.slots["slot"] != OFF_HOURS)]
        where = "one calling slot"
    else:
        hours = best_time.calling_hours(context().slot_rules)
        part = result.hours[(result.hours["segment"] == segment) & result.hours["hour"].isin(hours)]
        where = f"one hour {hours[0]:02d}:00–{hours[-1] + 1:02d}:00" if hours else "one calling hour"
    most = int(part["dials"].max()) if len(part) else 0
    return f"{NEEDS} {result.min_calls}+ dials in {where}; most so far {most:,}"


def _heatmap(result: best_time.BestTime) -> go.Figure:
    slots = result.slots
    order = [s for s in context().slot_rules.names if s in set(slots["slot"])]
    windows = dict(zip(result.slot_windows["segment"], result.slot_windows["window"]))

    def grid(column):
        return slots.pivot(index="segment", columns="slot", values=column).reindex(columns=order)

    rates, dials, lows, highs = (
        grid(c).to_numpy(dtype="float64") for c in ("contact_rate", "dials", "ci_low", "ci_high")
    )
    segments = list(grid("dials").index)
    too_few = dials < result.min_calls
    text: list[list[str]] = []
    hover: list[list[str]] = []
    for i, segment in enumerate(segments):
        text.append([])
        hover.append([])
        for j, slot in enumerate(order):
            rate = None if math.isnan(rates[i, j]) else rates[i, j]
            shown = format_metric("contact_rate", rate)
            if slot in windows.get(segment, []):
                shown += f" {RECOMMENDED_MARK}"
            if too_few[i, j]:
                shown += f"<br>n={dials[i, j]:,.0f}"
            text[i].append(shown)
            hover[i].append(
                f"{segment} · {reports.label_value('slot', slot)}<br>contact rate {format_metric('contact_rate', rate)}"
                f"<br>95 % interval {best_time.format_interval(lows[i, j], highs[i, j])}"
                f"<br>{dials[i, j]:,.0f} dials"
                + (f"<br>{best_time.NOT_ENOUGH_DATA} (under {result.min_calls} dials)" if too_few[i, j] else "")
            )
    x = [reports.label_value("slot", slot) for slot in order]
    customdata = _plain(np.dstack([rates, dials, lows, highs]))

    # Each layer labels and hovers only its own cells: two labels drawn on one cell blur.
    def only(mask, grid):
        return [[value if keep else "" for value, keep in zip(values, keeps)] for values, keeps in zip(grid, mask)]

    trusted = np.where(too_few, np.nan, rates)
    # Sequential from 0 (the calm colour) up to the best rate shown; a page of zeros stays calm.
    top = max(float(np.nanmax(trusted)) if np.isfinite(trusted).any() else 0.0, 0.01)
    common = {
        "x": x,
        "y": segments,
        "texttemplate": "%{text}",
        "hovertemplate": "%{hovertext}<extra></extra>",
        "hoverongaps": False,
        "customdata": customdata,
        "xgap": 2,
        "ygap": 2,
    }
    figure = go.Figure(
        [
            go.Heatmap(
                name="contact rate",
                z=_plain(trusted),
                text=only(~too_few, text),
                **theme.rate_colour_scale(higher_is_better("contact_rate"), top),
                colorbar={
                    "title": "Contact rate<br><sub>higher is better</sub>",
                    "tickformat": ".0%" if top >= 0.1 else ".1%",
                },
                hovertext=only(~too_few, hover),
                **common,
            ),
            go.Heatmap(
                name=best_time.NOT_ENOUGH_DATA,
                z=_plain(np.where(too_few, 1.0, np.nan)),
                showscale=False,
                zmin=0,
                zmax=1,
                colorscale=[[0, theme.TOO_FEW], [1, theme.TOO_FEW]],
                text=only(too_few, text),
                hovertext=only(too_few, hover),
                **common,
            ),
        ]
    )
    figure.update_layout(
        **theme.figure_layout(
            title="Contact rate by segment × time slot",
            height=max(320, 60 + 48 * len(segments)),
            yaxis={"autorange": "reversed", "type": "category"},
            xaxis={"type": "category", "side": "top"},
        )
    )
    return figure


def _plain(grid: np.ndarray) -> list:
    """Nested lists with None for NaN, so the browser holds exact numbers and gaps stay gaps."""
    plain = grid.astype(object)
    plain[np.isnan(grid)] = None
    return plain.tolist()


def _window_rows(result: best_time.BestTime) -> list[dict]:
    hours = result.hour_windows.set_index("segment")
    rows = []
    for window in result.slot_windows.to_dict("records"):
        found = hours.loc[window["segment"]] if window["segment"] in hours.index else None
        # The segment's hour window, None when it has none (or an empty one).
        hour_window = found if found is not None and len(found["window"]) else None
        rows.append(
            {
                "segment": window["segment"],
                "slots": (
                    best_time.window_label(window["window"], "slot")
                    if len(window["window"])
                    else _needs(result, window["segment"], "slot")
                ),
                "slot_rate": format_metric("contact_rate", window["contact_rate"]),
                "slot_interval": best_time.format_interval(window["ci_low"], window["ci_high"]),
                "slot_dials": format_metric("dials", window["dials"]),
                "hours": (
                    best_time.window_label(hour_window["window"], "hour")
                    if hour_window is not None
                    else _needs(result, window["segment"], "hour")
                ),
                "hour_rate": format_metric(
                    "contact_rate", hour_window["contact_rate"] if hour_window is not None else None
                ),
                "hour_interval": best_time.format_interval(
                    *((hour_window["ci_low"], hour_window["ci_high"]) if hour_window is not None else (None, None))
                ),
            }
        )
    return rows


def _hour_charts(result: best_time.BestTime) -> go.Figure:
    hours = result.hours
    busiest = hours.groupby("segment")["dials"].sum().sort_values(ascending=False).index[:MAX_HOUR_CHARTS]
    segments = sorted(busiest)
    columns = min(HOUR_CHART_COLUMNS, len(segments))
    rows = math.ceil(len(segments) / columns)
    figure = make_subplots(
        rows=rows,
        cols=columns,
        shared_yaxes=True,
        subplot_titles=segments,
        horizontal_spacing=0.04,
        vertical_spacing=0.12,
    )
    windows = dict(zip(result.hour_windows["segment"], result.hour_windows["window"]))
    all_hours = sorted(hours["hour"].unique().tolist())
    for index, segment in enumerate(segments):
        row, col = index // columns + 1, index % columns + 1
        part = hours[(hours["segment"] == segment) & (hours["dials"] > 0)]
        for enough, colour in ((True, "#5dade2"), (False, theme.MUTED)):
            points = part[part["enough_data"] == enough]
            figure.add_trace(
                go.Scatter(
                    x=points["hour"],
                    y=points["contact_rate"],
                    mode="markers",
                    name=segment if enough else f"{segment}: {best_time.NOT_ENOUGH_DATA}",
                    showlegend=False,
                    marker={"color": colour, "size": 8},
                    error_y={
                        "type": "data",
                        "symmetric": False,
                        "color": colour,
                        "array": (points["ci_high"] - points["contact_rate"]).tolist(),
                        "arrayminus": (points["contact_rate"] - points["ci_low"]).tolist(),
                    },
                    customdata=np.column_stack([points["ci_low"], points["ci_high"], points["dials"]]).tolist(),
                    hovertemplate=f"{segment} · %{{x:02d}}:00<br>contact rate %{{y:.1%}}"
                    "<br>95 % interval %{customdata[0]:.1%} – %{customdata[1]:.1%}"
                    "<br>%{customdata[2]:,.0f} dials"
                    + ("" if enough else f"<br>{best_time.NOT_ENOUGH_DATA}")
                    + "<extra></extra>",
                ),
                row=row,
                col=col,
            )
        window = windows.get(segment) or []
        if len(window):
            figure.add_vrect(
                x0=window[0] - 0.5,
                x1=window[-1] + 0.5,
                row=row,
                col=col,
                fillcolor="#2ecc71",
                opacity=0.15,
                line_width=0,
            )
    # The same hours on every small chart, so segments compare at a glance.
    figure.update_xaxes(
        tickvals=all_hours,
        ticktext=[f"{h:02d}" for h in all_hours],
        showgrid=False,
        range=[all_hours[0] - 0.6, all_hours[-1] + 0.6],
    )
    figure.update_yaxes(tickformat=".0%", rangemode="tozero")
    figure.update_layout(
        **theme.figure_layout(
            title=(
                f"Contact rate by hour of day with 95 % intervals · green: recommended hours · "
                f"grey: under {result.min_calls} dials"
                + (f" · the {MAX_HOUR_CHARTS} busiest segments" if hours["segment"].nunique() > MAX_HOUR_CHARTS else "")
            ),
            height=80 + 260 * rows,
            showlegend=False,
        )
    )
    return figure


@callback(
    Output("best-time-download", "data"),
    Input("best-time-csv", "n_clicks"),
    Input("best-time-xlsx", "n_clicks"),
    *[State(c.component_id, c.component_property) for c in CONTROLS],
    prevent_initial_call=True,
)
def export(_csv, _xlsx, start, end, campaigns):
    start_day, end_day, result = _result(start, end, campaigns)
    if not result.slots["dials"].sum():
        return no_update
    return download(
        "best-time",
        Export(
            best_time.planning_frame(result),
            f"callpulse-best-time-{start_day}-{end_day}",
            title=f"CallPulse best time to call {start_day} to {end_day}",
            sheet="best time to call",
            percent=("ci_low", "ci_high"),
        ),
    )
