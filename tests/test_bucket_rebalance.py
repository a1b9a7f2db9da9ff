"""The minute buckets with several workers: each worker holds the buckets of its partitions'
campaigns only, and a rebalance hands them over as it hands over the floor and the alerts
(streams/app.py's hand_over_buckets, run by own_partitions before the batch is counted). The
worker that gains a partition reads the open buckets of its campaigns back from the attempts
their previous owner landed, with their ids (the lateness window's, and the long memory's
within the duplicate horizon); the one that loses it forgets them. A minute still open at the
handover then lands with every call either worker counted in it, as one worker counting
everything lands it, and a call re-sent across the handover counts once.

As in tests/test_alert_rebalance.py, the two workers are two in-memory states in this process
(processor and Lander each) landing through the checkpoint's steps into one real chDB
warehouse, since two worker processes cannot share an embedded warehouse."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

from test_floor_workers import PARTITIONS, campaigns_by_partition
from warehouse_helpers import migrated_warehouse

from core.config import load_settings
from core.schema import CallAttempt, Lead, Outcome, encode_batch
from core.slots import SlotRules
from core.topics import campaign_partition
from streams.app import BucketsHandedOver, hand_over_buckets
from streams.checkpoint import LANDING_STEPS, Checkpoint
from streams.offsets import PartitionCursor
from streams.processor import CallEventProcessor, SourceRecord
from warehouse.landing import Lander

BY_PARTITION = campaigns_by_partition(1)
KEPT, MOVED, STAYED = (BY_PARTITION[partition][0] for partition in range(3))  # partitions 0, 1, 2
# Two hours ago, to the minute: every call is in the past, and within the duplicate horizon.
START = datetime.fromtimestamp(int(datetime.now(timezone.utc).timestamp() // 60 * 60), timezone.utc) - timedelta(
    hours=2
)


def call(campaign: str, name: str, minute: float, *, order: bool = False, talk: float = 60.0) -> CallAttempt:
    return CallAttempt(
        schema_version=1,
        event_id=f"{campaign}-{name}",
        campaign=campaign,
        event_time=START + timedelta(minutes=minute),
        outcome=Outcome.CONNECTED,
        lead=Lead(segment="seniors"),
        ring_seconds=8.0,
        wait_seconds=0.5,
        talk_seconds=talk,
        order=order,
        order_value=500.0 if order else 0.0,
    )


EARLY = call(MOVED, "early", 0 + 10 / 60, order=True, talk=200.0)
AT_80 = call(MOVED, "80a", 80 + 5 / 60, talk=81.0)
AT_65 = call(MOVED, "65a", 65 + 10 / 60, talk=65.0)
# The re-send of the first call with a time of now and no order: an id counted before the open
# window (the long memory of ids holds it), refused as a conflicting duplicate.
EARLY_AGAIN = call(MOVED, "early", 80 + 40 / 60, talk=200.0)

BATCHES: list[tuple[str, list[CallAttempt]]] = [
    ("", [EARLY, call(KEPT, "0", 0.2), call(STAYED, "0", 0.3)]),
    ("", [AT_65, call(MOVED, "65b", 65.5, talk=66.0), call(KEPT, "65", 65.2)]),
    # Minute 80 opens on worker b ...
    ("", [AT_80, call(MOVED, "80b", 80 + 20 / 60, talk=82.0), call(STAYED, "80", 80.1)]),
    # ... and goes on on worker a: the moved campaign's partition moves from b to a.
    (
        "to a",
        [
            call(MOVED, "80c", 80 + 35 / 60, talk=83.0),
            AT_80,  # re-sent exactly, within the lateness window: a duplicate
            EARLY_AGAIN,
            call(MOVED, "80d", 80 + 50 / 60, order=True, talk=84.0),
            call(KEPT, "80", 80.3),
        ],
    ),
    # Late by now: looked up in the warehouse, a duplicate.
    ("", [call(MOVED, "90a", 90 + 10 / 60, talk=91.0), AT_65, call(STAYED, "90", 90.2)]),
    # Back to b, in the still open minute 90: b forgets nothing it should keep, and holds nothing stale.
    ("to b", [call(MOVED, "90b", 90 + 40 / 60, talk=92.0), call(KEPT, "90", 90.3), call(STAYED, "90b", 90.5)]),
]


def owner_of(partitions: set[int]):
    return lambda campaign: campaign_partition(campaign, PARTITIONS) in partitions


class Worker:
    """One worker's counting, landing each batch as the checkpoint does: step 1 (late and held
    calls looked up in the warehouse), then steps 4-10."""

    def __init__(self, client, partitions: set[int]):
        settings = load_settings()
        self.client = client
        self.processor = CallEventProcessor(settings, SlotRules(settings.slots, settings.zone))
        self.lander = Lander(client, settings)
        self.checkpoint = Checkpoint(
            lander=self.lander,
            processor=self.processor,
            stop_list=None,  # look_up_landed (step 1) reads none of the Nones
            cursor=PartitionCursor(),
            alerting=None,
            webhook=None,
            warehouse=None,
            stopping=threading.Event(),
        )
        self.partitions = partitions
        self.offset = 0

    def count(self, calls: list[CallAttempt]) -> None:
        mine = [event for event in calls if owner_of(self.partitions)(event.campaign)]
        if not mine:
            return
        result = self.processor.process([SourceRecord("calls", 0, self.offset, encode_batch(mine))])
        self.offset += 1
        if result.late or result.held:
            found = self.checkpoint.look_up_landed(result)
            assert found is not None
            self.processor.resolve_late(result, found)
        for step in LANDING_STEPS:
            rows = step.rows(result)
            if rows:
                step.land(self.lander, rows)
        self.processor.landed()

    def hand_over(self, partitions: set[int]) -> BucketsHandedOver:
        """What own_partitions does to the buckets on a rebalance that assigns ``partitions``."""
        gained = partitions - self.partitions
        handed = hand_over_buckets(
            self.client, self.processor.buckets, owner_of(partitions - gained), owner_of(gained) if gained else None
        )
        self.partitions = partitions
        return handed

    def finish(self) -> None:
        self.lander.land_queued_campaign_totals()


def landed(client) -> dict[str, list[tuple]]:
    """What the reports read: the buckets and the wallboard's campaign totals (versions aside)."""
    return {
        table: [
            tuple(row)
            for row in client.query(f"SELECT * EXCEPT (version, landed_at) FROM {table} FINAL ORDER BY ALL").result_rows
        ]
        for table in ("minute_metrics", "campaign_hour_totals", "campaign_day_totals")
    }


def moved_figures(client) -> tuple[int, int, float, int]:
    """The moved campaign's dials, orders and talk seconds in minute_metrics, and its calls landed."""
    dials, orders, talk = client.query(
        "SELECT sum(dials), sum(orders), sum(talk_seconds) FROM minute_metrics FINAL WHERE campaign = {c:String}",
        parameters={"c": MOVED},
    ).result_rows[0]
    calls = client.query(
        "SELECT count() FROM call_attempts FINAL WHERE campaign = {c:String}", parameters={"c": MOVED}
    ).result_rows[0][0]
    return int(dials), int(orders), float(talk), int(calls)


def one_worker(path: Path) -> dict[str, list[tuple]]:
    with migrated_warehouse(path) as client:
        worker = Worker(client, set(range(PARTITIONS)))
        for _, calls in BATCHES:
            worker.count(calls)
        worker.finish()
        assert worker.processor.stats.duplicates == 2
        assert worker.processor.stats.dead_letters["conflicting_duplicate"] == 1
        return landed(client)


def test_buckets_follow_a_moved_partition_as_one_worker_lands_them(tmp_path):
    expected = one_worker(tmp_path / "one-worker")
    # The moved campaign's nine calls, each once: the three re-sends are not counted.
    moved = [row for row in expected["minute_metrics"] if row[0] == MOVED]
    assert sum(row[4] for row in moved) == 9
    minute_80 = [row for row in moved if row[3] == (START + timedelta(minutes=80)).replace(tzinfo=None)]
    assert [(row[4], row[8], row[10]) for row in minute_80] == [(4, 1, 81.0 + 82.0 + 83.0 + 84.0)]

    with migrated_warehouse(tmp_path / "two-workers") as client:
        workers = {"a": Worker(client, {0}), "b": Worker(client, {1, 2})}
        for handover, calls in BATCHES:
            if handover == "to a":
                handed_b = workers["b"].hand_over({2})
                handed_a = workers["a"].hand_over({0, 1})
                # b forgets minutes 65 and 80 of the moved campaign; a reads back its four calls
                # in the open hour, and the ids of all five landed within the duplicate horizon.
                assert handed_b == BucketsHandedOver(2, 0, 0, 0)
                assert handed_a == BucketsHandedOver(0, 1, 4, 5)
            if handover == "to b":
                assert workers["a"].hand_over({0}) == BucketsHandedOver(3, 0, 0, 0)
                # b reads back the seven calls of the hour before the newest (minutes 65 to 90), and
                # adds to its long memory only the ids it lacks: the three calls a counted.
                assert workers["b"].hand_over({1, 2}) == BucketsHandedOver(0, 1, 7, 3)
            for name in ("b", "a"):
                workers[name].count(calls)
        for worker in workers.values():
            worker.finish()

        assert moved_figures(client) == (9, 2, 200.0 + 65.0 + 66.0 + 81.0 + 82.0 + 83.0 + 84.0 + 91.0 + 92.0, 9)
        # The re-sends across the handover: the exact one a duplicate, the other a conflict.
        assert workers["a"].processor.stats.duplicates == 2
        assert workers["a"].processor.stats.dead_letters["conflicting_duplicate"] == 1
        assert landed(client) == expected
