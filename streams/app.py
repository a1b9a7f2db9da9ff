"""The Faust worker: for each batch of calls in the stream, count them into their
campaign's minute buckets, and commit the batch (streams/checkpoint.py: dead letters,
attempts, buckets, the partitions' new offsets, then alerts, in numbered steps).

Every record passes the partition cursor (streams/offsets.py) first, so each offset
is processed exactly once in order even when Faust drops buffered records during a
rebalance. Faust still commits its consumer group for lag tooling, but only offsets
that were processed; a restart resumes from the offsets landed in the warehouse.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import NamedTuple

import faust
from clickhouse_connect.driver.client import Client

from core.config import Settings
from core.slots import SlotRules
from core.topics import WORKER_GROUP, campaign_partition
from streams.alerting import AlertEvaluator
from streams.buckets import MinuteBuckets
from streams.checkpoint import Checkpoint, exit_agent_failed, land_buckets
from streams.kafka_admin import partition_bounds, topic_id
from streams.memory import FreedMemory
from streams.offsets import PartitionCursor, Position, TopicPartition
from streams.processor import CallEventProcessor, SourceRecord
from streams.stoplist import StopListTable
from streams.webhook import WebhookSender
from warehouse.landing import Lander, retry_until_stopped
from warehouse.migrate import apply_retention, migrate
from warehouse.queries.recovery import (
    landed_campaigns,
    landed_floor,
    landed_id_keys,
    landed_id_keys_of,
    landed_offsets,
    landed_stop_list,
    open_window_attempts,
    open_window_attempts_of,
)

log = logging.getLogger("callpulse.worker")

# Between two reads of the stop-list topic when no calls arrive (each batch reads it too).
STOP_LIST_IDLE_SECONDS = 1.0


def tune_garbage_collector() -> None:
    """The live state is hundreds of thousands of small lists, sets and tuples that hold no
    cycles, which the collector would otherwise walk again and again at Python's default
    thresholds. Everything loaded so far is frozen out of collection; new garbage is
    collected less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)


def faust_broker_url(bootstrap_servers: str) -> list[str]:
    return [f"kafka://{server.strip()}" for server in bootstrap_servers.split(",") if server.strip()]


class BucketsHandedOver(NamedTuple):
    """What a rebalance did to the minute buckets (hand_over_buckets)."""

    forgotten: int  # buckets of campaigns no longer owned, or about to be read back
    campaigns: int  # gained campaigns with landed calls, read back
    attempts: int  # their landed attempts in the open window, counted back into buckets
    remembered: int  # ids of their calls within the duplicate horizon newly added to the long memory


def hand_over_buckets(
    client: Client,
    buckets: MinuteBuckets,
    kept: Callable[[str], bool],
    gained: Callable[[str], bool] | None,
    should_stop: Callable[[], bool] = lambda: False,
) -> BucketsHandedOver:
    """A rebalance: the campaigns ``kept`` says are still this worker's keep their minute buckets,
    every other's are forgotten (MinuteBuckets.keep_only), and those ``gained`` says it brought
    (None: none) read theirs back as a start does (prepare), from what their previous owner
    landed: the open window's attempts, with their ids for the lateness window, and the ids of
    their calls within the duplicate horizon into the long memory. Buckets held from before, stale
    by what the other worker has counted since, would otherwise land over its rows.

    Read after the gained partitions' offsets: a record from those offsets on is either in what is
    read back, and found a duplicate by its id, or counted into it. The restored minutes land again
    with the next batch (take_dirty): as they are if the previous owner landed them, whole if it
    stopped between a batch's attempts and its buckets."""
    seen = buckets.seen_ids
    campaigns: list[str] = []
    attempts: list[tuple] = []
    remembered = 0
    if gained is not None:
        owned = gained

        def read_back() -> None:
            nonlocal campaigns, attempts, remembered
            campaigns = [campaign for campaign in landed_campaigns(client) if owned(campaign)]
            # Each window ends no later than the clock, as at a start.
            ceiling = datetime.fromtimestamp(buckets.watermark_ceiling(), timezone.utc)
            attempts = open_window_attempts_of(client, campaigns, buckets.keep_seconds, ceiling)
            # Streamed into the memory as read (filtered by campaign in the warehouse, whose sort
            # key leads with it); a retry adds only the ids the memory lacks.
            ids = landed_id_keys_of(client, campaigns, seen.first_remembered(), seen.span_seconds)
            remembered += seen.remember(ids)

        if not retry_until_stopped(read_back, "reading back the gained campaigns' buckets", should_stop):
            raise RuntimeError("stopped while reading back the buckets of the partitions a rebalance brought")
    # A gained campaign is not a kept one (its partition was not held), so its stale buckets go too.
    forgotten = buckets.keep_only(kept)
    return BucketsHandedOver(forgotten, len(campaigns), buckets.restore(attempts), remembered)


class WorkerPipeline:
    """What the agent needs, built once per worker process."""

    def __init__(self, settings: Settings, client: Client):
        self.settings = settings
        self.client = client
        self.slot_rules = SlotRules(settings.slots, settings.zone)
        self.stop_list = StopListTable(settings.bootstrap_servers, settings.topics.stop_list, keep_changes=True)
        self.processor = CallEventProcessor(settings, self.slot_rules, self.stop_list)
        self.lander = Lander(client, settings, WORKER_GROUP)
        self.cursor = PartitionCursor()
        # The call-events partitions whose campaigns' minute buckets, agents and alert state the
        # worker holds (prepare reads back every campaign's; the first batch keeps the assigned
        # ones), and how many the topic has.
        self.partition_count = settings.topics.partitions
        self.owned_partitions: set[int] = set(range(self.partition_count))
        # Partitions some rebalance left unassigned since the state last followed the assignment:
        # one taken away and given back before the next batch holds state its other owner outdated.
        self.left_partitions: set[int] = set()
        self.alerting = AlertEvaluator(settings, client, self.processor.buckets, self.slot_rules)
        self.processor.on_counted = self.alerting.note_counted
        self.processor.on_future_stamped = self.alerting.note_future_stamped
        self.webhook = (
            WebhookSender(
                settings.alert_webhook_url,
                timeout_s=settings.alerts.webhook_timeout_seconds,
                max_attempts=settings.alerts.webhook_max_attempts,
                zone=settings.zone,
            )
            if settings.alert_webhook_url
            else None
        )
        self.stopping = threading.Event()
        self.ready = threading.Event()
        # The worker's own warehouse calls run here, one at a time and in the order they were
        # made. A batch's alert rules are read here while the next batch is counted, and the
        # next landing waits behind them.
        self.warehouse = ThreadPoolExecutor(max_workers=1, thread_name_prefix="callpulse-warehouse")
        self.checkpoint = Checkpoint(
            lander=self.lander,
            processor=self.processor,
            stop_list=self.stop_list,
            cursor=self.cursor,
            alerting=self.alerting,
            webhook=self.webhook,
            warehouse=self.warehouse,
            stopping=self.stopping,
        )

    @property
    def landed_offsets(self) -> dict[TopicPartition, int]:
        return self.checkpoint.landed_offsets

    def prepare(self) -> None:
        """Migrate the warehouse and rebuild open buckets from what already landed."""
        applied = migrate(self.client)
        if applied:
            log.info("warehouse migrations applied: %s", ", ".join(applied))
        apply_retention(self.client, self.settings.pipeline.raw_attempts_retention_days)
        live = self.processor.buckets
        seen = live.seen_ids
        remembered = seen.rebuild(landed_id_keys(self.client, seen.first_remembered(), seen.span_seconds))
        log.info("remembered %d event ids landed within the duplicate horizon (%s)", remembered, seen.held())
        # Each campaign's window ends no later than its watermark may be, so rows an earlier
        # version landed in the future (a dialer's wrong clock) leave the calls before them open.
        rows = open_window_attempts(
            self.client, live.keep_seconds, datetime.fromtimestamp(live.watermark_ceiling(), timezone.utc)
        )
        restored = live.restore(rows)
        if restored:
            buckets = self.processor.buckets.take_dirty()

            def land_restored() -> None:
                # Their totals at once: the totals a stopped worker had queued are among them.
                land_buckets(self.lander, buckets)
                self.lander.land_queued_campaign_totals()

            retry_until_stopped(land_restored, f"landing {len(buckets)} restored buckets")
            log.info("restored %d landed attempts into %d open buckets", restored, len(buckets))
        agents = self.processor.floor.restore(*landed_floor(self.client))
        if agents:
            log.info("restored the floor: %d agents (%s)", agents, self.processor.floor.counts())
        firing = self.alerting.restore()
        if firing:
            log.info("%d alert(s) still firing from before the restart", firing)
        stop_list_held, calling_hours_held = self.alerting.restore_violations()
        log.info(
            "holding %d stop-list and %d calling-hours violations landed within their alert windows",
            stop_list_held,
            calling_hours_held,
        )
        self.restore_stop_list()
        self.cursor.start(self.start_offsets())
        tune_garbage_collector()
        self.ready.set()

    def restore_stop_list(self) -> None:
        """The stop list from the warehouse's copy and the topic, the topic's word winning.
        Landed flags the topic lacks (the embedded broker came back empty) are published
        into it again, so `callpulse stoplist status` and every other reader see them."""
        landed, newest_version = landed_stop_list(self.client)
        self.lander.stop_list_version = max(self.lander.stop_list_version, newest_version)
        missing = self.stop_list.rebuild(landed)
        self.checkpoint.land_stop_list()
        if missing:
            log.warning(
                "the stop-list topic %s lacks %d flag(s) the warehouse holds (a broker that restarted "
                "empty); publishing them again",
                self.settings.topics.stop_list,
                len(missing),
            )
            self.stop_list.republish(missing)
            self.checkpoint.land_stop_list()
        log.info(
            "stop list loaded: %d flagged customers (%d landed before this start)", len(self.stop_list), len(landed)
        )

    def start_offsets(self) -> dict[TopicPartition, int]:
        """Where each partition starts: its landed offset if it belongs to this incarnation of
        the topic, else the earliest offset kept. An offset landed for an earlier incarnation
        (the embedded broker restarted, or the topic was recreated) says nothing about this
        one, whatever the producers have published meanwhile."""
        topic = self.settings.topics.call_events
        incarnation = topic_id(self.settings, topic)
        if self.lander.topic_ids.get(topic, incarnation) != incarnation:
            self.landed_offsets.clear()
        self.lander.topic_ids[topic] = incarnation
        landed = landed_offsets(self.client, WORKER_GROUP, topic)
        starts = {}
        bounds = partition_bounds(self.settings, topic)
        self.partition_count = len(bounds) or self.partition_count
        for partition, (earliest, end) in bounds.items():
            offset, landed_incarnation = landed.get(partition, (earliest, incarnation))
            if landed_incarnation != incarnation:
                log.warning(
                    "partition %d: the warehouse's offset %d belongs to another incarnation of %s "
                    "(topic id %s, now %s); reading this one from its start",
                    partition,
                    offset,
                    topic,
                    landed_incarnation or "unknown",
                    incarnation or "unknown",
                )
                offset = earliest
            elif offset > end:
                log.warning(
                    "partition %d: the warehouse has read up to offset %d but the topic ends at %d; "
                    "the topic was recreated, so reading it from the start",
                    partition,
                    offset,
                    end,
                )
                offset = earliest
            elif offset < earliest:
                log.error(
                    "partition %d: records %d..%d expired from Kafka before they were counted",
                    partition,
                    offset,
                    earliest - 1,
                )
                offset = earliest
            starts[(topic, partition)] = offset
            self.landed_offsets.setdefault((topic, partition), offset)
        return starts

    def owner_of(self, partitions: set[int]) -> Callable[[str], bool]:
        """Whether a campaign's events go to one of ``partitions`` (core.topics.campaign_partition)."""
        count = self.partition_count
        return lambda campaign: campaign_partition(campaign, count) in partitions

    def own_alerts(self, kept: set[int], gained: set[int]) -> None:
        """The alert state follows the partitions as the floor does: the campaigns of ``kept``
        keep theirs, those of ``gained`` read theirs back (AlertEvaluator.hand_over). Run on the
        warehouse thread, after the previous batch's alerts were observed there."""
        moved = self.alerting.hand_over(self.owner_of(kept), self.owner_of(gained) if gained else None)
        log.info(
            "the alerts follow partitions %s: %d open alert(s) and %d violation(s) forgotten; %d open alert(s), "
            "%d stop-list and %d calling-hours violation(s) read back from the warehouse",
            sorted(kept | gained),
            *moved,
        )

    def own_buckets(self, kept: set[int], gained: set[int]) -> BucketsHandedOver:
        """The minute buckets and the ids that guard them follow the partitions (hand_over_buckets).
        Run on the warehouse thread, before the batch is counted."""
        return hand_over_buckets(
            self.client,
            self.processor.buckets,
            self.owner_of(kept),
            self.owner_of(gained) if gained else None,
            self.stopping.is_set,
        )

    def rewind_target(self, tp: TopicPartition) -> int | None:
        """Where to seek a partition whose records went missing; None if a seek is under way."""
        target = self.cursor.rewind_to(tp)
        if target is None:
            return None
        earliest, _ = partition_bounds(self.settings, tp[0])[tp[1]]
        if earliest > target:
            log.error(
                "partition %d: records %d..%d expired from Kafka before they were counted", tp[1], target, earliest - 1
            )
            self.cursor.jump(tp, earliest)
            return earliest
        log.warning(
            "partition %d: records from offset %d were skipped by the consumer; reading them again", tp[1], target
        )
        return target


def create_app(settings: Settings, pipeline: WorkerPipeline, *, web_port: int | None = None) -> faust.App:
    topics = settings.topics
    embedded = settings.embedded_broker
    app = faust.App(
        "callpulse-worker",
        broker=faust_broker_url(settings.bootstrap_servers),
        store="memory://",
        datadir=str(settings.data_dir / "faust"),
        # Topics are created by `callpulse topics` / `callpulse up` with explicit partitions.
        topic_allow_declare=False,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        # Group joins on tansu wait out these timeouts; Faust's defaults made it 30 s.
        broker_session_timeout=6.0 if embedded else 60.0,
        broker_rebalance_timeout=6.0 if embedded else 60.0,
        broker_heartbeat_interval=1.0 if embedded else 3.0,
        broker_commit_interval=1.0,
        stream_buffer_maxsize=max(4096, settings.worker.batch_max_messages * 2),
        web_enabled=web_port is not None,
        web_port=web_port or 6066,
        web_bind="127.0.0.1",
    )
    call_events = app.topic(
        topics.call_events,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=topics.partitions,
    )
    dead_letters = app.topic(
        topics.dead_letters,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=1,
    )
    alerts_topic = app.topic(
        topics.alerts, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw", partitions=1
    )
    checkpoint = pipeline.checkpoint
    checkpoint.send_to(dead_letters, alerts_topic)

    async def admit(events) -> list[SourceRecord]:
        """The batch's records that are due, in offset order; seek back over any hole."""
        loop = asyncio.get_running_loop()
        assignment = app.consumer.assignment()
        due: list[SourceRecord] = []
        holes = set()
        for event in events:
            message = event.message
            tp = (message.topic, message.partition)
            if message.tp not in assignment:
                # Buffered before a rebalance moved the partition away; its new owner reads it.
                message.acked = True  # done for Faust, but its offset is never committed
                continue
            position = pipeline.cursor.place(tp, message.offset)
            if position is Position.UNKNOWN:
                pipeline.cursor.start(await loop.run_in_executor(pipeline.warehouse, pipeline.start_offsets))
                position = pipeline.cursor.place(tp, message.offset)
            if position is Position.DUE:
                due.append(SourceRecord(message.topic, message.partition, message.offset, message.value))
            elif position is Position.AHEAD:
                message.acked = True
                holes.add(message.tp)
        for tp in holes:
            target = await loop.run_in_executor(None, pipeline.rewind_target, (tp.topic, tp.partition))
            if target is not None:
                await app.consumer.seek_wait({tp: target})
        await own_partitions({tp.partition for tp in assignment if tp.topic == topics.call_events})
        return due

    async def own_partitions(assigned: set[int]) -> None:
        """Hold the state of the assigned partitions' campaigns only, before the batch is counted:
        their minute buckets and the ids that guard them, their agents and their alert state. Forget
        those of partitions a rebalance took away, and read back those of partitions it brought
        from what their previous owner landed, after their offsets, so a record from those offsets
        on is never older than the state read back, nor counted twice."""
        if not assigned:
            return  # nothing assigned (mid-rebalance): nothing is counted, the state stays as it is
        stale = pipeline.owned_partitions & pipeline.left_partitions
        if assigned == pipeline.owned_partitions and not stale:
            return
        pipeline.left_partitions = set()  # a rebalance during the reads below starts a new set
        gained = assigned - (pipeline.owned_partitions - stale)
        kept = assigned - gained
        loop = asyncio.get_running_loop()
        call_events = topics.call_events
        # The cursor holds the assigned partitions only (a start placed every one): a partition left
        # there would start from a stale offset when assigned again, and read its records twice.
        pipeline.cursor.keep_only((call_events, partition) for partition in assigned)
        unplaced = {(call_events, partition) for partition in gained} - pipeline.cursor.next_offsets.keys()
        if unplaced:  # no record of theirs in this batch yet: their offsets are read first
            starts = await loop.run_in_executor(pipeline.warehouse, pipeline.start_offsets)
            pipeline.cursor.start({tp: offset for tp, offset in starts.items() if tp in unplaced})
        # The previous batch's alerts may still be read and observed on the warehouse thread: the
        # alert state changes there, after them.
        await loop.run_in_executor(pipeline.warehouse, pipeline.own_alerts, kept, gained)
        moved = await loop.run_in_executor(pipeline.warehouse, pipeline.own_buckets, kept, gained)
        log.info(
            "the minute buckets follow partitions %s: %d bucket(s) forgotten; %d campaign(s) read back, "
            "%d attempt(s) in their open windows, %d id(s) newly remembered within the duplicate horizon",
            sorted(assigned),
            *moved,
        )
        floor = pipeline.processor.floor
        forgotten = floor.keep_only(pipeline.owner_of(kept))
        restored = 0
        if gained:
            landed = await loop.run_in_executor(pipeline.warehouse, landed_floor, pipeline.client)
            restored = floor.restore(*landed, owns=pipeline.owner_of(gained))
        pipeline.owned_partitions = assigned
        log.info(
            "the floor follows partitions %s: %d agents forgotten, %d read back from the warehouse",
            sorted(assigned),
            forgotten,
            restored,
        )

    @app.agent(call_events, name="count_call_attempts")
    async def count_call_attempts(stream):
        try:
            await count_batches(stream)
        except asyncio.CancelledError:
            raise
        except BaseException:
            # A crashed Faust agent leaves a live worker that consumes nothing; exit instead,
            # so a supervisor restarts it from the landed offsets.
            exit_agent_failed("the worker's agent")

    async def count_batches(stream):
        """Admit each batch's due records, check them against the stop list, count them, and commit."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(pipeline.warehouse, pipeline.prepare)
        batch_size = settings.worker.batch_max_messages
        freed_memory = FreedMemory(settings.worker.release_memory_seconds)
        try:
            async for events in stream.take_events(batch_size, within=settings.worker.batch_max_seconds):
                records = await admit(events)
                # Every flag produced before these dials were read is applied before they are checked.
                await loop.run_in_executor(None, pipeline.stop_list.catch_up)
                await checkpoint.commit(pipeline.processor.process(records))
                if freed_memory.due(batch_full=len(events) >= batch_size):
                    loop.run_in_executor(None, freed_memory.release)
        except asyncio.CancelledError:
            await checkpoint.finish()
            raise

    @app.timer(interval=STOP_LIST_IDLE_SECONDS)
    async def land_stop_list_while_idle():
        """Flags and removals made while no calls arrive reach the warehouse too, so a
        restart soon after `callpulse stoplist add` still has them."""
        if not pipeline.ready.is_set():
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, pipeline.stop_list.catch_up)
        except Exception as exc:  # noqa: BLE001 - the broker's hiccup; the next tick or batch reads again
            log.warning("reading the stop-list topic failed: %s", exc)
            return
        if pipeline.stop_list.unlanded:
            await loop.run_in_executor(pipeline.warehouse, pipeline.checkpoint.land_stop_list)

    @app.timer(interval=1.0)
    async def land_queued_campaign_totals():
        """The wallboard's totals of hours whose buckets landed in a batch that found the queue
        not yet due (worker.campaign_totals_seconds), when no later batch comes to sum them."""
        lander = pipeline.lander
        if not pipeline.ready.is_set() or not lander.pending_totals or not lander.totals_due():
            return
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(pipeline.warehouse, lander.land_queued_campaign_totals)
        except Exception as exc:  # noqa: BLE001 - they stay queued: the next tick or batch sums them
            log.warning("summing the wallboard's campaign totals failed: %s", exc)

    # mode types a signal's receivers as (sender, *args, signal=...); Faust sends this one the
    # assigned partitions as a second positional argument.
    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def forget_moved_partitions(app, assigned, **kwargs):
        pipeline.cursor.keep_only((tp.topic, tp.partition) for tp in assigned)
        kept = {tp.partition for tp in assigned if tp.topic == topics.call_events}
        pipeline.left_partitions |= set(range(pipeline.partition_count)) - kept

    @app.page("/health")
    async def health(web, request):
        landed = {str(partition): offset for (_, partition), offset in sorted(pipeline.landed_offsets.items())}
        webhook = pipeline.webhook
        assigned = sorted(tp.partition for tp in app.consumer.assignment() if tp.topic == topics.call_events)
        return web.json(
            {
                "ready": pipeline.ready.is_set(),
                "assigned_partitions": assigned,
                "topic_id": pipeline.lander.topic_ids.get(topics.call_events, ""),
                **pipeline.processor.stats.as_dict(),
                "landed_offsets": landed,
                "alerts_sent": checkpoint.alerts_sent,
                "alerts_firing": len(pipeline.alerting.book.firing),
                "stop_list_size": len(pipeline.stop_list),
                "live_state": pipeline.processor.buckets.held(),
                "remembered_ids": pipeline.processor.buckets.seen_ids.held(),
                "agents": pipeline.processor.floor.counts(),
                "stop_list_unlanded": pipeline.stop_list.unlanded,
                # Campaign hours whose buckets landed and whose wallboard totals are not summed yet.
                "campaign_totals_queued": len(pipeline.lander.pending_totals),
                "webhook": None
                if webhook is None
                else {"delivered": webhook.delivered, "failed": webhook.failed, "queued": webhook.queue.qsize()},
            }
        )

    return app


def run_worker(app: faust.App, loglevel: str = "info", stopping: threading.Event | None = None) -> None:
    """Run the Faust worker in this thread until SIGINT/SIGTERM.

    ``stopping`` is set the moment a stop signal arrives. Faust first waits for the agent to
    finish its batch, and a batch the warehouse refuses would hold that wait for as long as
    the warehouse is down; once set, a failing landing gives up after its try in flight and
    the worker exits unacknowledged, so Kafka keeps the batch."""
    from faust.worker import Worker

    class SignalledWorker(Worker):
        def _on_sigint(self) -> None:
            if stopping is not None:
                stopping.set()
            super()._on_sigint()

        def _on_sigterm(self) -> None:
            if stopping is not None:
                stopping.set()
            super()._on_sigterm()

    SignalledWorker(app, loglevel=loglevel, quiet=True).execute_from_commandline()
