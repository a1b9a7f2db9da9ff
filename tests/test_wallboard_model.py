"""The wallboard's sparklines, cut from the minute series in whole columns."""

from __future__ import annotations

import math

import pandas as pd

from dashboards.data import _sparklines


def test_each_campaign_gets_its_minutes_in_order_with_gaps_as_none():
    series = pd.DataFrame({
        "campaign": ["b", "a", "a", "b"],
        "minute": pd.to_datetime(["2026-12-02 06:51:00", "2026-12-02 06:50:00", "2026-12-02 06:49:00",
                                  "2026-12-02 06:49:00"]),
        "dials": [7, 3, 12, 0],
        "abandon_rate": [0.25, math.nan, 0.0625, math.nan],
    })
    assert _sparklines(series) == {
        "a": {"minutes": ["2026-12-02T06:49:00", "2026-12-02T06:50:00"], "dials": [12, 3],
              "abandon_rate": [0.0625, None]},
        "b": {"minutes": ["2026-12-02T06:49:00", "2026-12-02T06:51:00"], "dials": [0, 7],
              "abandon_rate": [None, 0.25]},
    }
    # The same text the board showed before: Timestamp.isoformat() of each minute.
    assert _sparklines(series)["a"]["minutes"] == [m.isoformat() for m in sorted(series["minute"][1:3])]
    assert _sparklines(series.iloc[0:0]) == {}
