"""Where metrics are shown: the Dash app (wallboard now; reports, alerts, compliance next)."""
