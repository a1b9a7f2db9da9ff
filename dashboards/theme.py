"""The dark theme shared by every page's tables and charts, so pages look like one product."""

from __future__ import annotations

import plotly.graph_objects as go

TEXT = "#e6e6e6"
MUTED = "#95a5a6"
PANEL = "#1b242c"
HEADER = "#161d24"
GRID = "#2c3e50"
TOO_FEW = "#3b4650"  # report cells with too few calls to trust
OVER_LIMIT = "#7b241c"  # compliance days over the regulator's limit

TABLE_STYLE = {
    "style_table": {"overflowX": "auto"},
    "style_header": {"backgroundColor": HEADER, "color": TEXT, "fontWeight": "bold", "border": f"1px solid {GRID}"},
    "style_cell": {"backgroundColor": PANEL, "color": TEXT, "textAlign": "right", "padding": "6px 10px",
                   "border": f"1px solid {GRID}", "fontFamily": "DejaVu Sans, Arial, sans-serif",
                   "fontSize": "15px"},
}


def figure_layout(**overrides) -> dict:
    """Plotly layout defaults: transparent on the dark page, readable type, no clutter."""
    layout = {
        "template": "plotly_dark",
        "paper_bgcolor": "rgba(0,0,0,0)",
        "plot_bgcolor": "rgba(0,0,0,0)",
        "font": {"family": "DejaVu Sans, Arial, sans-serif", "size": 14, "color": TEXT},
        "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
    }
    layout.update(overrides)
    return layout


def empty_figure(message: str) -> go.Figure:
    """A blank chart that says why it is blank (no data, a bad filter) where the chart would be."""
    figure = go.Figure()
    figure.update_layout(**figure_layout(height=240, xaxis={"visible": False}, yaxis={"visible": False},
                                         annotations=[{"text": message, "showarrow": False,
                                                       "font": {"size": 18}}] if message else []))
    return figure
