"""Retention: raw call attempts expire by a ClickHouse TTL from the configuration;
the minute buckets every report reads stay."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from warehouse.client import connect
from warehouse.migrate import apply_retention, migrate


def test_raw_attempts_expire_after_the_configured_retention_and_buckets_stay(tmp_path):
    client = connect(f"chdb://{tmp_path}")
    try:
        migrate(client)
        assert apply_retention(client, 30) is True
        assert apply_retention(client, 30) is False  # unchanged: no ALTER on every start
        now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
        for age_days, event_id in ((45, "old"), (29, "recent")):
            minute = now - timedelta(days=age_days)
            client.insert(
                "call_attempts",
                [[event_id, "c", minute, minute, "morning", "seniors", "no_answer", now]],
                column_names=[
                    "event_id",
                    "campaign",
                    "event_time",
                    "minute",
                    "slot",
                    "segment",
                    "outcome",
                    "landed_at",
                ],
            )
            client.insert(
                "minute_metrics",
                [["c", "morning", "seniors", minute, 1, 1, now]],
                column_names=["campaign", "slot", "segment", "minute", "dials", "version", "landed_at"],
            )
        client.command("OPTIMIZE TABLE call_attempts FINAL")
        client.command("OPTIMIZE TABLE minute_metrics FINAL")
        kept = [row[0] for row in client.query("SELECT event_id FROM call_attempts").result_rows]
        assert kept == ["recent"]
        assert client.command("SELECT count() FROM minute_metrics") == 2
    finally:
        client.close()
