"""`callpulse deadletters` on a real broker: a supervisor reads when a record was refused on the
configured zone's clock, with the zone named, as `callpulse alerts list` shows its times."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from click.testing import CliRunner

from core.deadletters import DeadLetter, encode_dead_letter
from producers.publisher import EventPublisher


def test_rejection_times_are_on_the_configured_zones_clock_and_named(pipeline):
    settings = pipeline.settings
    assert settings.zone.key == "Asia/Tokyo"  # the default pipeline.timezone
    letter = DeadLetter(
        reason="invalid_json",
        detail="expecting value at line 1",
        source_topic=settings.topics.call_events,
        source_partition=0,
        source_offset=41,
        batch_index=None,
        original="{not json",
        original_encoding="utf-8",
        rejected_at=datetime(2026, 3, 1, 23, 30, 5, tzinfo=timezone.utc),
    )
    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.dead_letters)
    publisher.send_raw(settings.topics.dead_letters, encode_dead_letter(letter))
    publisher.close()

    from callpulse.cli import main

    runner = CliRunner()
    table = runner.invoke(main, ["--config", str(pipeline.config_file), "deadletters"], catch_exceptions=False)
    assert table.exit_code == 0, table.output
    assert "2026-03-02 08:30:05" in table.output  # 23:30:05 UTC is 08:30:05 the next day in Tokyo
    assert "23:30:05" not in table.output and "UTC" not in table.output
    assert "Asia/Tokyo" in table.output
    listed = runner.invoke(main, ["--config", str(pipeline.config_file), "deadletters", "--format", "json"])
    assert [item["rejected_at"] for item in json.loads(listed.stdout)] == ["2026-03-01T23:30:05Z"]
