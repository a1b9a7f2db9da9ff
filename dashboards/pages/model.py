"""Response model: does the lead score still predict who orders?

For one campaign and week, a calibration chart puts each score decile's mean predicted
order rate against its actual order rate (a calibrated model sits on the diagonal), with
a table of the deciles (fewer, larger bins when a week is too thin for ten); a trend
shows each campaign's calibration error (ECE) and AUC week by week, so a manager sees when
the model decayed and the list needs re-scoring.
The definitions are in analytics.calibration; the URL holds the campaign and week.
"""

from __future__ import annotations

import math
from datetime import timedelta
from urllib.parse import urlencode

import dash
import plotly.graph_objects as go
from dash import Input, Output, State, callback, dcc, html
from dash.dash_table.DataTable import DataTable
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from analytics import calibration
from core.metrics import format_metric
from dashboards import theme
from dashboards.controls import control
from dashboards.data import context, newest_day, parse_day

dash.register_page(__name__, path="/model", name="Response model", title="CallPulse · Response model", order=45)

TREND_WEEKS = 12
#: Below this p-value a week's gaps count as more than chance: 0.01, not 0.05, because the
#: test's bins - 2 df flag 12 % of calibrated weeks at 0.05 (see analytics.calibration).
HL_SIGNIFICANT = 0.01
CAMPAIGN_COLOURS = qualitative.Plotly
TABLE_COLUMNS = [
    ("decile", "Score bin"),
    ("calls", "Conversations"),
    ("orders", "Orders"),
    ("scores", "Scores"),
    ("predicted", "Predicted"),
    ("actual", "Actual"),
    ("interval", "Actual, 95 % interval"),
    ("gap", "Actual − predicted"),
]


def layout(campaign=None, week=None, **_query):
    weekly = _weekly()
    campaigns = sorted({result.campaign for result in weekly})
    chosen = campaign if campaign in campaigns else (campaigns[0] if campaigns else None)
    return html.Div(
        [
            dcc.Location(id="model-url", refresh=False),
            html.Div(
                [
                    control(
                        "Campaign",
                        dcc.Dropdown(
                            id="model-campaign",
                            options=campaigns,
                            value=chosen,
                            clearable=False,
                            placeholder="no scored calls yet",
                        ),
                    ),
                    control("Week", dcc.Dropdown(id="model-week", value=_week_value(week), clearable=False)),
                ],
                className="controls",
            ),
            html.Div(id="model-summary", className="report-summary", **theme.data_attributes(testid="model-summary")),
            theme.graph("model-calibration"),
            html.H3("Score bins", className="section-title"),
            html.Div(
                id="model-table-note", className="report-summary", **theme.data_attributes(testid="model-table-note")
            ),
            DataTable(
                id="model-table",
                columns=[{"name": label, "id": key} for key, label in TABLE_COLUMNS],
                sort_action="none",
                **theme.TABLE_STYLE,
            ),
            html.H3(f"Trend, last {TREND_WEEKS} weeks", className="section-title"),
            theme.graph("model-trend"),
        ],
        className="report-page model-page",
    )


def _week_value(value) -> str | None:
    day = parse_day(value)
    return day.isoformat() if day else None


def _weekly() -> list[calibration.Calibration]:
    """Every campaign's weekly calibration over the trend window, ending with the newest landed week."""
    settings = context().settings
    newest_week = calibration.week_start(newest_day(), settings.zone)
    return calibration.weekly_calibration(
        context().client,
        newest_week - timedelta(weeks=TREND_WEEKS - 1),
        newest_week + timedelta(weeks=1),
        settings.zone,
    )


def _days(result: calibration.Calibration) -> str:
    last_day = (result.period_end - timedelta(microseconds=1)).date()
    return f"{result.period_start.date()} to {last_day}"


def _week_label(result: calibration.Calibration) -> str:
    return f"{_days(result)} · {result.n:,} conversations"


@callback(
    Output("model-week", "options"),
    Output("model-week", "value"),
    Input("model-campaign", "value"),
    State("model-week", "value"),
)
def weeks_for(campaign, wanted):
    """The campaign's weeks with scored conversations, newest first; keeps the chosen week if it has data."""
    mine = [result for result in _weekly() if result.campaign == campaign]
    options = [
        {"label": _week_label(result), "value": result.period_start.date().isoformat()} for result in reversed(mine)
    ]
    values = [option["value"] for option in options]
    return options, (wanted if wanted in values else (values[0] if values else None))


@callback(
    Output("model-calibration", "figure"),
    Output("model-table", "data"),
    Output("model-table", "style_data_conditional"),
    Output("model-trend", "figure"),
    Output("model-summary", "children"),
    Output("model-table-note", "children"),
    Output("model-url", "search"),
    Input("model-campaign", "value"),
    Input("model-week", "value"),
)
def build(campaign, week):
    weekly = _weekly()
    trend = _trend(calibration.calibration_frame(weekly), campaign)
    chosen = next(
        (result for result in weekly if result.campaign == campaign and result.period_start.date() == parse_day(week)),
        None,
    )
    if chosen is None:
        message = (
            "No scored conversations have landed yet: the response model is checked on connected "
            "calls whose lead carries a response score."
            if not weekly
            else "Pick a campaign and a week with scored conversations."
        )
        return theme.empty_figure(message), [], [], trend, message, "", dash.no_update
    min_calls = context().settings.dashboard.report_min_calls
    chosen = _fewer_bins_when_thin(chosen, min_calls)
    rows, styles = _table(chosen, min_calls)
    search = "?" + urlencode({"campaign": campaign, "week": chosen.period_start.date().isoformat()})
    return (
        _calibration_chart(chosen, min_calls),
        rows,
        styles,
        trend,
        _summary(chosen, min_calls),
        _table_note(chosen, min_calls),
        search,
    )


def _bins(result: calibration.Calibration) -> int:
    return len(result.table)


def _fewer_bins_when_thin(result: calibration.Calibration, min_calls: int) -> calibration.Calibration:
    """The week re-binned so each bin holds about ``min_calls`` conversations when ten would
    not: ten bins of 19 are all too small to judge, six of 31 can be. One bin at least."""
    wanted = max(1, min(calibration.DEFAULT_BINS, result.n // max(min_calls, 1)))
    if wanted >= calibration.DEFAULT_BINS:
        return result
    zone = context().settings.zone
    rebinned = calibration.weekly_calibration(
        context().client, result.period_start, result.period_end, zone, [result.campaign], bins=wanted
    )
    return next((week for week in rebinned if week.campaign == result.campaign), result)


def _table_note(result: calibration.Calibration, min_calls: int) -> str:
    """Why rows are greyed, with n, and how many bins the week was cut into."""
    bins = _bins(result)
    cut = (
        f"{bins} bins (deciles) of the scores"
        if bins == calibration.DEFAULT_BINS
        else f"{bins} bin{'s' if bins != 1 else ''} instead of {calibration.DEFAULT_BINS}: "
        f"{calibration.DEFAULT_BINS} would hold about {result.n // calibration.DEFAULT_BINS:,} each, under the "
        f"{min_calls:,} a bin needs"
    )
    few = int((result.table["calls"] < min_calls).sum())
    greyed = (
        f" · {few} bin{'s are' if few != 1 else ' is'} greyed: under {min_calls:,} conversations "
        f"(n in the Conversations column), too few for its actual rate to say much"
        if few
        else ""
    )
    return f"{result.n:,} scored conversations in {cut}{greyed}."


def _summary(result: calibration.Calibration, min_calls: int) -> str:
    zone = context().settings.pipeline.timezone
    if result.hl_pvalue is None:
        verdict = "too few bins to test against chance"
    elif result.hl_pvalue < HL_SIGNIFICANT:
        verdict = "the gaps are larger than chance gives: the model is off"
    else:
        verdict = "the gaps are within what chance gives at this sample size"
    return (
        f"{result.campaign} · {_days(result)} ({zone}) · {result.n:,} scored conversations, "
        f"{result.orders:,} orders · predicted {_percent(result.predicted_rate)}, actual "
        f"{_percent(result.actual_rate)} · calibration error {_points(result.ece)} · AUC {_number(result.auc)} · "
        f"Hosmer-Lemeshow p = {_number(result.hl_pvalue)}: {verdict}"
        f" · bins under {min_calls} conversations are hollow"
    )


def _calibration_chart(result: calibration.Calibration, min_calls: int) -> go.Figure:
    table = result.table
    top = min(1.0, max(0.05, float(max(table["predicted"].max(), table["actual"].max())) * 1.15))
    few = table["calls"] < min_calls
    figure = go.Figure(
        [
            go.Scatter(
                name="perfect calibration",
                x=[0, top],
                y=[0, top],
                mode="lines",
                hoverinfo="skip",
                line={"color": theme.MUTED, "dash": "dash"},
            ),
            go.Scatter(
                name="actual by score bin",
                x=table["predicted"].tolist(),
                y=table["actual"].tolist(),
                mode="lines+markers+text",
                text=[str(d) for d in table["decile"]],
                textposition="top left",
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "color": theme.MUTED,
                    "thickness": 1,
                    "array": (table["actual_high"] - table["actual"]).tolist(),
                    "arrayminus": (table["actual"] - table["actual_low"]).tolist(),
                },
                marker={
                    "size": 10,
                    "color": "#5dade2",
                    "symbol": ["circle-open" if small else "circle" for small in few],
                },
                customdata=table[["decile", "calls", "orders", "score_min", "score_max"]].to_numpy().tolist(),
                hovertemplate="bin %{customdata[0]} · scores %{customdata[3]:.3f}–%{customdata[4]:.3f}<br>"
                "predicted %{x:.1%} · actual %{y:.1%}<br>"
                "%{customdata[2]:,} orders / %{customdata[1]:,} conversations<extra></extra>",
            ),
        ]
    )
    figure.update_layout(
        **theme.figure_layout(
            title=f"{result.campaign}: actual vs predicted order rate by score bin ({_bins(result)} bins; bars: 95 % "
            "interval)",
            height=480,
            xaxis={"title": "predicted order rate (mean score)", "tickformat": ".0%", "range": [0, top]},
            yaxis={"title": "actual order rate", "tickformat": ".0%", "range": [0, top]},
            legend={"orientation": "h", "y": -0.2},
        )
    )
    return figure


def _trend(frame, selected: str | None) -> go.Figure:
    if not len(frame):  # two empty panels would show a 0-400 % axis and nothing to read
        return theme.empty_figure("No week with scored conversations yet: the trend starts with the first.")
    figure = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.12,
        subplot_titles=(
            f"Calibration error (ECE); ringed weeks fail Hosmer-Lemeshow (p < {HL_SIGNIFICANT})",
            "AUC (0.5 = no better than chance)",
        ),
    )
    for number, (campaign, part) in enumerate(frame.groupby("campaign") if len(frame) else []):
        weeks = [start.date().isoformat() for start in part["period_start"]]
        mine = campaign == selected
        # One colour per campaign in both panels, so a line is followed from ECE to AUC.
        line = {"width": 4 if mine else 1.5, "color": CAMPAIGN_COLOURS[number % len(CAMPAIGN_COLOURS)]}
        significant = (part["hl_pvalue"] < HL_SIGNIFICANT).tolist()
        figure.add_trace(
            go.Scatter(
                x=weeks,
                y=part["ece"].tolist(),
                mode="lines+markers",
                name=campaign,
                legendgroup=campaign,
                line=line,
                opacity=1.0 if mine else 0.6,
                customdata=part[["n", "hl_pvalue"]].to_numpy().tolist(),
                marker={
                    "size": [13 if flag else 7 for flag in significant],
                    "color": line["color"],
                    "line": {"width": [2 if flag else 0 for flag in significant], "color": "#e74c3c"},
                },
                hovertemplate="week of %{x} · ECE %{y:.1%}<br>%{customdata[0]:,} conversations · "
                "HL p = %{customdata[1]:.3g}<extra>" + campaign + "</extra>",
            ),
            row=1,
            col=1,
        )
        figure.add_trace(
            go.Scatter(
                x=weeks,
                y=part["auc"].tolist(),
                mode="lines+markers",
                name=campaign,
                legendgroup=campaign,
                showlegend=False,
                line=line,
                marker={"color": line["color"]},
                opacity=1.0 if mine else 0.6,
                customdata=part[["n"]].to_numpy().tolist(),
                hovertemplate="week of %{x} · AUC %{y:.3f}<br>%{customdata[0]:,} conversations<extra>"
                + campaign
                + "</extra>",
            ),
            row=2,
            col=1,
        )
    figure.add_hline(y=0.5, line={"color": theme.MUTED, "dash": "dash"}, row=2, col=1)
    figure.update_layout(**theme.figure_layout(height=560, legend={"orientation": "h", "y": -0.12}))
    figure.update_xaxes(type="category", categoryorder="category ascending")
    figure.update_yaxes(tickformat=".1%", rangemode="tozero", row=1, col=1)
    figure.update_yaxes(range=[0.3, 1.0], row=2, col=1)
    return figure


def _table(result: calibration.Calibration, min_calls: int) -> tuple[list[dict], list[dict]]:
    rows, styles = [], [{"if": {"column_id": "decile"}, "textAlign": "left", "fontWeight": "bold"}]
    for index, row in enumerate(result.table.to_dict("records")):
        rows.append(
            {
                "decile": int(row["decile"]),
                "calls": format_metric("dials", row["calls"]),
                "orders": format_metric("orders", row["orders"]),
                "scores": f"{row['score_min']:.3f} – {row['score_max']:.3f}",
                "predicted": _percent(row["predicted"]),
                "actual": _percent(row["actual"]),
                "interval": f"{_percent(row['actual_low'])} – {_percent(row['actual_high'])}",
                "gap": _points(row["gap"], signed=True),
            }
        )
        if row["calls"] < min_calls:
            styles.append({"if": {"row_index": index}, "backgroundColor": theme.TOO_FEW, "color": theme.MUTED})
        elif not row["actual_low"] <= row["predicted"] <= row["actual_high"]:
            styles.append(
                {
                    "if": {"row_index": index, "column_id": "gap"},
                    "backgroundColor": theme.OVER_LIMIT,
                    "fontWeight": "bold",
                }
            )
    return rows, styles


def _percent(value) -> str:
    return format_metric("conversion_rate", value)


def _points(value, signed: bool = False) -> str:
    """A difference of two rates, in rate points: 0.031 -> "3.1 pts"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value * 100:{'+' if signed else ''}.1f} pts"


def _number(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.3f}" if value >= 0.001 else f"{value:.1e}"
