"""Controls the manager pages share, so a date range or an export reads the same on each."""

from __future__ import annotations

from dataclasses import dataclass

import dash
import pandas as pd
from dash import dcc, html

from analytics.reports import to_csv, to_xlsx


def control(label: str, component) -> html.Div:
    return html.Div([html.Label(label), component], className="control")


def day_range(component_id: str, start, end) -> html.Div:
    """Whole local days, both included, Monday-first like a call-centre rota."""
    return control(
        "Days",
        dcc.DatePickerRange(
            id=component_id, start_date=start, end_date=end, display_format="YYYY-MM-DD", first_day_of_week=1
        ),
    )


def export_buttons(prefix: str) -> html.Div:
    """ "Export CSV" / "Export Excel" buttons ({prefix}-csv, {prefix}-xlsx) and their {prefix}-download."""
    return html.Div(
        [
            html.Button("Export CSV", id=f"{prefix}-csv", className="button"),
            html.Button("Export Excel", id=f"{prefix}-xlsx", className="button"),
            dcc.Download(id=f"{prefix}-download"),
        ],
        className="control exports",
    )


@dataclass(frozen=True)
class Export:
    """A table a page offers for download, and how its Excel workbook reads."""

    frame: pd.DataFrame
    name: str  # the file name, without its extension
    title: str  # the heading above the Excel sheet's table
    sheet: str = "report"
    percent: tuple[str, ...] = ()  # more columns the Excel sheet shows as percentages
    excel_frame: pd.DataFrame | None = None  # what the Excel sheet holds, when not ``frame``


def download(prefix: str, export: Export) -> dict:
    """What a page's export callback returns for its {prefix}-csv / {prefix}-xlsx buttons: the
    workbook when Excel was clicked, the CSV otherwise. The callback itself stays in the page,
    whose module decides which roles may run it."""
    if dash.ctx.triggered_id == f"{prefix}-xlsx":
        frame = export.frame if export.excel_frame is None else export.excel_frame
        return dcc.send_bytes(
            to_xlsx(frame, sheet=export.sheet, title=export.title, percent=export.percent), f"{export.name}.xlsx"
        )
    return dcc.send_string(to_csv(export.frame), f"{export.name}.csv")
