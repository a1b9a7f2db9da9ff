"""The warehouse's read side, one module per reader: reports, the live wallboard, alerts and dead
letters, a starting worker's recovery, the pacing and response models; sums holds the
minute-bucket and rollup summing they share.

Every reader's names are also importable from here."""

from __future__ import annotations

from warehouse.queries.alerts import (
    ALERT_COLUMNS,
    ALERT_VIEWS,
    acknowledge_alert,
    active_alerts,
    alert_history,
    alerts_from_frame,
    campaign_baseline,
    campaign_baselines,
    dead_letter_counts,
    listed_alerts,
    recent_stop_list_violations,
)
from warehouse.queries.live import (
    SPARKLINE_RATE,
    busiest_campaigns,
    campaign_tiles,
    compliance_windows,
    compliance_windows_at,
    freshness,
    minute_series,
    sparklines,
)
from warehouse.queries.model import (
    agent_gaps,
    pacing_window,
    trailing_score_counts,
    trailing_score_counts_at,
    weekly_score_counts,
)
from warehouse.queries.recovery import landed_calls, landed_offsets, landed_stop_list, open_window_attempts
from warehouse.queries.reports import (
    DIMENSIONS,
    STOP_LIST_VIOLATION_COLUMNS,
    campaign_names,
    late_event_counts,
    metrics_by,
    stop_list_violations,
)
from warehouse.queries.sums import MIN_ROLLUP_HOURS

__all__ = [
    "DIMENSIONS",
    "metrics_by",
    "campaign_names",
    "late_event_counts",
    "STOP_LIST_VIOLATION_COLUMNS",
    "stop_list_violations",
    "busiest_campaigns",
    "campaign_tiles",
    "compliance_windows",
    "compliance_windows_at",
    "minute_series",
    "SPARKLINE_RATE",
    "sparklines",
    "freshness",
    "campaign_baseline",
    "campaign_baselines",
    "ALERT_COLUMNS",
    "alert_history",
    "active_alerts",
    "alerts_from_frame",
    "ALERT_VIEWS",
    "listed_alerts",
    "acknowledge_alert",
    "recent_stop_list_violations",
    "dead_letter_counts",
    "open_window_attempts",
    "landed_calls",
    "landed_offsets",
    "landed_stop_list",
    "MIN_ROLLUP_HOURS",
    "pacing_window",
    "agent_gaps",
    "weekly_score_counts",
    "trailing_score_counts",
    "trailing_score_counts_at",
]
