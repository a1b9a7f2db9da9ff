"""Two workers share the partitions of one consumer group on the real broker; one is
killed and its partitions move to the survivor, which ends with exact totals.

chDB lets one process open a path, so each worker lands in its own warehouse here.
The survivor reads a moved partition from the offsets landed in *its* warehouse (none,
so from the start of the partition), and its warehouse alone ends exact. With a
ClickHouse server both workers share one warehouse and its offsets table, and the
survivor resumes where the killed worker's last landed batch ended.
"""

from __future__ import annotations

import signal

import pytest
from conftest import Pipeline
from test_end_to_end import START, assert_same_metrics, expected_by_campaign_and_slot, landed_by_campaign_and_slot

from core.config import load_settings
from core.slots import SlotRules
from producers.publisher import EventPublisher
from producers.simulator import CampaignProfile, DialerSimulator

pytestmark = pytest.mark.integration


# Names chosen so Kafka's partitioner spreads them over all three partitions (0, 2, 1, 1, 2, 0).
CAMPAIGNS = [
    CampaignProfile(name, agents=8, lines_per_free_agent=2.5, list_quality=1.0, conversion=0.1, mean_talk_seconds=150)
    for name in ("home-insurance", "broadband-upgrade", "car-loan", "water-filter", "travel-club", "charity-giving")
]


def second_worker_pipeline(pipeline, tmp_path) -> Pipeline:
    """The same topics and group, its own data dir (and so its own chDB path)."""
    data_dir = tmp_path / "var-b"
    config = tmp_path / "callpulse-b.toml"
    config.write_text(pipeline.config_file.read_text().replace(str(pipeline.data_dir), str(data_dir)))
    return Pipeline(load_settings(config), config, data_dir)


def test_a_killed_workers_partitions_move_to_the_survivor_and_the_totals_are_exact(pipeline, tmp_path):
    settings = pipeline.settings
    other = second_worker_pipeline(pipeline, tmp_path)
    assert other.settings.warehouse_url != settings.warehouse_url
    events = list(
        DialerSimulator(
            SlotRules(settings.slots, settings.zone), b"test-key", seed=17, start=START, campaigns=CAMPAIGNS
        ).events(sim_seconds=3600)
    )
    half = len(events) // 2
    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events)
    publisher.publish_all(events[:half])
    publisher.flush()

    first = pipeline.worker("--no-dashboard")
    survivor = other.worker("--no-dashboard")
    try:
        # Both in the group, each with part of the partitions, both landing.
        first.wait_until(lambda h: h["ready"] and h["assigned_partitions"] and h["counted"] > 0, timeout_s=180)
        survivor.wait_until(lambda h: h["ready"] and h["assigned_partitions"] and h["counted"] > 0, timeout_s=180)
        first.wait_until(lambda h: h["last_landed_at"])
        owned_first = set(first.health()["assigned_partitions"])
        owned_survivor = set(survivor.health()["assigned_partitions"])
        first.stop(signal.SIGKILL)

        publisher.publish_all(events[half:])
        publisher.close()
        health = survivor.wait_until_caught_up(timeout_s=240)
        assert health["assigned_partitions"] == list(range(settings.topics.partitions))
        assert survivor.stop() == 0
    finally:
        other.stop_all()
    assert owned_first and owned_survivor and not owned_first & owned_survivor, (owned_first, owned_survivor)
    assert_same_metrics(landed_by_campaign_and_slot(other.settings), expected_by_campaign_and_slot(events, settings))
