"""The dark theme shared by every page's tables and charts, so pages look like one product."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

import plotly.graph_objects as go
import plotly.io as pio

if TYPE_CHECKING:
    from dash import dcc

TEXT = "#e6e6e6"
MUTED = "#95a5a6"
PANEL = "#1b242c"
HEADER = "#161d24"
GRID = "#2c3e50"
TOO_FEW = "#3b4650"  # report cells with too few calls to trust
OVER_LIMIT = "#7b241c"  # compliance days over the regulator's limit


class TableStyle(TypedDict):
    """The dash_table.DataTable keyword arguments of the dark theme (``**TABLE_STYLE``)."""

    style_table: dict[str, str]
    style_header: dict[str, str]
    style_cell: dict[str, str]


TABLE_STYLE: TableStyle = {
    "style_table": {"overflowX": "auto"},
    "style_header": {"backgroundColor": HEADER, "color": TEXT, "fontWeight": "bold", "border": f"1px solid {GRID}"},
    "style_cell": {
        "backgroundColor": PANEL,
        "color": TEXT,
        "textAlign": "right",
        "padding": "6px 10px",
        "border": f"1px solid {GRID}",
        "fontFamily": "DejaVu Sans, Arial, sans-serif",
        "fontSize": "15px",
    },
}


CALM = "#263542"  # zero on a rate's colour scale: nothing to look at
GOOD = "#2ecc71"
BAD = "#e74c3c"
NEUTRAL = "#5dade2"

#: The dashboard's Plotly template, the default for every figure a page builds (plotly.io's
#: default template), so an empty, thin or error figure is dark like the rest of the page.
TEMPLATE_NAME = "callpulse"
FIGURE_BASICS = {
    "paper_bgcolor": "rgba(0,0,0,0)",
    "plot_bgcolor": "rgba(0,0,0,0)",
    "font": {"family": "DejaVu Sans, Arial, sans-serif", "size": 14, "color": TEXT},
    "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
}
_template = go.layout.Template(pio.templates["plotly_dark"])
_template.layout.update(**FIGURE_BASICS)
pio.templates[TEMPLATE_NAME] = _template
pio.templates.default = TEMPLATE_NAME


def figure_layout(**overrides) -> dict:
    """Plotly layout defaults: transparent on the dark page, readable type, no clutter."""
    layout = {"template": TEMPLATE_NAME, **FIGURE_BASICS}
    layout.update(overrides)
    return layout


def rate_colour_scale(higher_is_better: bool | None, top: float) -> dict:
    """A sequential colour scale from 0 (the calm colour) to ``top``: its loud end is good
    (green) when more is better, bad (red) when less is better, plain blue when neither.
    For a heatmap trace: colorscale, zmin and zmax."""
    loud = NEUTRAL if higher_is_better is None else GOOD if higher_is_better else BAD
    middle = "#1f6f5c" if higher_is_better else "#b9770e" if higher_is_better is False else "#2e6a8e"
    return {"colorscale": [[0.0, CALM], [0.5, middle], [1.0, loud]], "zmin": 0.0, "zmax": float(top)}


def blank_figure() -> go.Figure:
    """What a dcc.Graph shows before its callback answers: the theme's dark, with no axes."""
    return empty_figure("")


def empty_figure(message: str) -> go.Figure:
    """A blank chart that says why it is blank (no data, a bad filter) where the chart would be."""
    figure = go.Figure()
    figure.update_layout(
        **figure_layout(
            height=240,
            xaxis={"visible": False},
            yaxis={"visible": False},
            annotations=[{"text": message, "showarrow": False, "font": {"size": 18}}] if message else [],
        )
    )
    return figure


def graph(component_id: str) -> dcc.Graph:
    """A page's chart: dark from the first paint (a dcc.Graph without a figure draws Plotly's
    white default until its callback answers), with Plotly's logo left off the mode bar."""
    from dash import dcc

    return dcc.Graph(id=component_id, figure=blank_figure(), config={"displaylogo": False})


def data_attributes(**attributes: str) -> dict[str, Any]:
    """HTML data-* attributes for a Dash component, ``testid="cards"`` -> ``data-testid="cards"``
    (an underscore becomes a hyphen: ``alert_id`` -> ``data-alert-id``). Dash takes them through
    its untyped ``**kwargs``; the values are typed Any so a type checker does not match them
    against the component's named props."""
    return {f"data-{name.replace('_', '-')}": value for name, value in attributes.items()}
