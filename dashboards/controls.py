"""Controls the manager pages share, so a date range or an export reads the same on each."""

from __future__ import annotations

from dash import dcc, html


def control(label: str, component) -> html.Div:
    return html.Div([html.Label(label), component], className="control")


def day_range(component_id: str, start, end) -> html.Div:
    """Whole local days, both included, Monday-first like a call-centre rota."""
    return control("Days", dcc.DatePickerRange(id=component_id, start_date=start, end_date=end,
                                               display_format="YYYY-MM-DD", first_day_of_week=1))


def export_buttons(prefix: str) -> html.Div:
    """"Export CSV" / "Export Excel" buttons ({prefix}-csv, {prefix}-xlsx) and their {prefix}-download."""
    return html.Div([html.Button("Export CSV", id=f"{prefix}-csv", className="button"),
                     html.Button("Export Excel", id=f"{prefix}-xlsx", className="button"),
                     dcc.Download(id=f"{prefix}-download")],
                    className="control exports")
