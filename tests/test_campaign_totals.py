"""The per-campaign totals the wallboard reads (migration 0020): the worker lands them beside the
minute buckets, and they hold the buckets' sums through a restart and late calls; the wallboard's
counters read from them equal the same figures read from the minute buckets."""

from __future__ import annotations

import signal
from datetime import datetime, timedelta, timezone

import msgspec
import numpy as np
import pandas as pd
import pytest

from core.config import load_settings
from core.metrics import COUNTERS
from core.schema import CallAttempt, Lead, Outcome
from core.slots import SlotRules
from producers.publisher import EventPublisher
from producers.simulator import DialerSimulator
from warehouse.client import connect

SUMS = ", ".join(f"sum({name}) AS {name}" for name in COUNTERS)


def totals_and_buckets(client, span: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """campaign_<span>_totals, and minute_metrics summed per campaign and UTC <span>, both sorted."""
    start = {"hour": "toStartOfHour", "day": "toStartOfDay"}[span]
    totals = client.query_df(
        f"SELECT campaign, {span} AS at, {SUMS} FROM campaign_{span}_totals FINAL "
        "GROUP BY campaign, at ORDER BY campaign, at",
        settings={"prefer_column_name_to_alias": 1},
    )
    buckets = client.query_df(
        f"SELECT campaign, {start}(minute) AS at, {SUMS} FROM minute_metrics FINAL "
        "GROUP BY campaign, at ORDER BY campaign, at",
        settings={"prefer_column_name_to_alias": 1},
    )
    return totals, buckets


def assert_same_sums(totals: pd.DataFrame, buckets: pd.DataFrame) -> None:
    assert (
        totals[["campaign", "at"]].astype(str).values.tolist()
        == buckets[["campaign", "at"]].astype(str).values.tolist()
    )
    for name in COUNTERS:
        np.testing.assert_allclose(totals[name].to_numpy(float), buckets[name].to_numpy(float), rtol=1e-9, err_msg=name)


def totals_equal_to_buckets(warehouse_url: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The hour and day totals, each checked equal to the minute buckets' sums."""
    client = connect(warehouse_url)
    try:
        hours, hour_buckets = totals_and_buckets(client, "hour")
        days, day_buckets = totals_and_buckets(client, "day")
    finally:
        client.close()
    assert_same_sums(hours, hour_buckets)
    assert_same_sums(days, day_buckets)
    return hours, days


@pytest.mark.integration
def test_the_totals_equal_the_minute_buckets_after_a_kill_a_restart_and_late_calls(pipeline):
    """A stream that crosses midnight UTC, the worker SIGKILLed while it lands and restarted, then
    two calls out of order: one 8 minutes behind its campaign (counted: in the hour and the day
    before the newest call's), one an hour behind (past the lateness: a dead letter, not counted).
    Every campaign's hour and day totals equal its minute buckets' sums, and count every call once."""
    settings = pipeline.settings
    start = datetime(2026, 11, 23, 23, 5, tzinfo=timezone.utc)
    simulator = DialerSimulator(SlotRules(settings.slots, settings.zone), b"test-key", seed=11, start=start)
    events = list(simulator.events(sim_seconds=3600))
    assert events[0].event_time.day == 23 and events[-1].event_time.day == 24
    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events)
    half = len(events) // 2
    publisher.publish_all(events[:half])
    publisher.flush()
    worker = pipeline.worker()
    worker.wait_until(lambda h: h["records"] >= half // 3 and h["last_landed_at"])
    worker.stop(signal.SIGKILL)

    last = events[-1]
    newest = max(e.event_time for e in events if e.campaign == last.campaign)
    assert newest.minute < 8  # so the call 8 minutes behind falls in the hour and day before
    behind = msgspec.structs.replace(last, event_id="behind-8-min", event_time=newest - timedelta(minutes=8))
    straggler = msgspec.structs.replace(last, event_id="behind-1-h", event_time=newest - timedelta(hours=1))
    publisher.publish_all([*events[half:], behind, straggler])
    publisher.close()
    restarted = pipeline.worker()
    health = restarted.wait_until_caught_up()
    assert restarted.stop() == 0
    assert health["dead_letters"] == {"late_event": 1}

    hours, days = totals_equal_to_buckets(settings.warehouse_url)
    assert int(hours["dials"].sum()) == int(days["dials"].sum()) == len(events) + 1
    assert days["at"].astype(str).str[:10].unique().tolist() == ["2026-11-23", "2026-11-24"]
    behind_hour = hours[(hours["campaign"] == last.campaign) & (hours["at"].astype(str).str[:13] == "2026-11-23 23")]
    assert len(behind_hour) == 1


def test_the_wallboard_counts_from_the_totals_what_the_minute_buckets_hold(tmp_path):
    """Three campaigns' calls over 33 days, in a +05:30 zone (its local day starts on the half
    hour): at several board times - the newest minute, mid-hour with later calls landed, on the
    hour - the wallboard's busiest campaigns, tiles and compliance windows (24 hours, 30 days, the
    last hour and 15 minutes) read from the totals equal those read from the minute buckets."""
    from warehouse_helpers import land_counted, migrated_warehouse

    from dashboards.data import local_day_start
    from warehouse.queries.live import (
        busiest_campaigns,
        campaign_tiles,
        compliance_windows,
        freshness,
        wallboard_counters,
    )

    settings = load_settings(pipeline__timezone="Asia/Kolkata")
    newest = datetime(2026, 11, 30, 9, 47, 20, tzinfo=timezone.utc)
    outcomes = [Outcome.CONNECTED, Outcome.ABANDONED, Outcome.NO_ANSWER, Outcome.MACHINE, Outcome.CONNECTED]
    events = [
        CallAttempt(
            schema_version=1,
            event_id=f"{campaign}-{n}",
            campaign=campaign,
            outcome=outcomes[n % len(outcomes)],
            event_time=newest - timedelta(minutes=n * (7 + 4 * number)),
            lead=Lead(segment=("seniors", "students")[n % 2]),
            ring_seconds=12.0,
            wait_seconds=(None, 1.0, 3.5)[n % 3],
            talk_seconds=60.0 + n % 40,
            order=n % 7 == 0,
        )
        for number, campaign in enumerate(("debt-relief", "solar-leads", "winback"))
        for n in reversed(range(33 * 24 * 60 // (7 + 4 * number)))
    ]
    events.sort(key=lambda event: event.event_time)  # in time order: none is late
    amd_rate = {"debt-relief": 0.05, "solar-leads": 0.0, "winback": 0.1}.get
    with migrated_warehouse(tmp_path / "warehouse") as client:
        land_counted(client, events, settings, SlotRules(settings.slots, settings.zone))
        for now in (
            newest.replace(second=0) + timedelta(minutes=1),
            newest - timedelta(days=3, minutes=13),
            datetime(2026, 11, 29, 18, 0, tzinfo=timezone.utc),
        ):
            day_start = local_day_start(now, settings)
            shown, count, tiles, compliance = wallboard_counters(
                client, now, day_start, 2, recent=timedelta(minutes=15), amd_rate_for=amd_rate
            )
            assert (shown, count) == busiest_campaigns(client, now, day_start, 2)
            assert len(shown) == 2 and count == 3
            # Told the newest landed minute (as the board is), a window ending after it reads no
            # minutes after its end; one ending before it still takes them away: the same counts.
            told = wallboard_counters(
                client, now, day_start, 2, timedelta(minutes=15), amd_rate, freshness(client)["newest_minute"]
            )
            assert told[:2] == (shown, count)
            pd.testing.assert_frame_equal(told[2], tiles)
            pd.testing.assert_frame_equal(told[3], compliance)
            expected_tiles = campaign_tiles(client, now, day_start, shown)
            expected_compliance = compliance_windows(client, now, campaigns=shown, amd_rate_for=amd_rate)
            for got, expected in ((tiles, expected_tiles), (compliance, expected_compliance)):
                got = got.assign(campaign=got["campaign"].astype(str)).set_index("campaign").sort_index()
                expected = expected.assign(campaign=expected["campaign"].astype(str)).set_index("campaign").sort_index()
                columns = [name for name in expected.columns if name not in ("campaign_minutes", "first_minute")]
                assert list(got.index) == list(expected.index)
                assert expected["dials" if "dials" in expected else "us_30d_contacts"].sum() > 0
                pd.testing.assert_frame_equal(got[columns], expected[columns], check_dtype=False, obj=str(now))


@pytest.mark.integration
def test_totals_queued_when_the_worker_dies_are_summed_at_its_restart(pipeline):
    """With worker.campaign_totals_seconds at a minute, the batches after the first queue their
    hours' totals instead of summing them: /health counts the queue, and a worker SIGKILLed then
    leaves totals behind its buckets. The restarted worker sums them while it restores its open
    buckets, before it reads on: the totals equal the buckets again and count every call once."""
    with pipeline.config_file.open("a") as config:
        config.write("\n[worker]\nbatch_max_messages = 500\nbatch_max_seconds = 0.25\ncampaign_totals_seconds = 60\n")
    settings = pipeline.settings
    start = datetime(2026, 11, 24, 9, 0, tzinfo=timezone.utc)
    simulator = DialerSimulator(SlotRules(settings.slots, settings.zone), b"test-key", seed=5, start=start)
    events = list(simulator.events(sim_seconds=1200))
    half = len(events) // 2
    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events)
    worker = pipeline.worker("--no-dashboard")
    publisher.publish_all(events[:half])
    publisher.flush()
    worker.wait_until(lambda h: h["counted"] >= half and h["last_landed_at"])
    publisher.publish_all(events[half:])
    publisher.flush()
    health = worker.wait_until(lambda h: h["counted"] >= len(events) and h["campaign_totals_queued"] > 0, 60)
    worker.wait_until(lambda h: sum(h["landed_offsets"].values()) >= health["records"])
    worker.stop(signal.SIGKILL)

    client = connect(settings.warehouse_url)
    try:
        hours, hour_buckets = totals_and_buckets(client, "hour")
    finally:
        client.close()
    assert int(hour_buckets["dials"].sum()) == len(events)
    assert int(hours["dials"].sum()) < len(events)  # behind: the queue died with the worker

    restarted = pipeline.worker("--no-dashboard")
    health = restarted.wait_until_caught_up()
    assert health["campaign_totals_queued"] == 0
    assert restarted.stop() == 0
    hours, days = totals_equal_to_buckets(settings.warehouse_url)
    assert int(hours["dials"].sum()) == int(days["dials"].sum()) == len(events)
