"""The Faust worker: for each batch of calls in the stream, count them into their
campaign's minute buckets, land attempts and buckets in ClickHouse, then let Faust
commit the offsets.

Faust acks the events of a ``take_events`` batch only after the loop body returns,
so an offset is committed only once its batch is durable in the warehouse.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading

import faust
from clickhouse_connect.driver.client import Client

from callpulse.config import Settings
from callpulse.slots import SlotRules
from streams.deadletters import encode_dead_letter
from streams.processor import CallEventProcessor, SourceRecord
from warehouse.landing import Lander
from warehouse.migrate import migrate
from warehouse.queries import landed_event_ids, open_window_attempts

log = logging.getLogger("callpulse.worker")

# Exit code when a batch could not be landed during shutdown: exiting hard keeps
# Faust from committing its offsets, so the batch is consumed again on restart.
EXIT_UNLANDED = 70


def faust_broker_url(bootstrap_servers: str) -> list[str]:
    return [f"kafka://{server.strip()}" for server in bootstrap_servers.split(",") if server.strip()]


class WorkerPipeline:
    """What the agent needs, built once per worker process."""

    def __init__(self, settings: Settings, client: Client):
        self.settings = settings
        self.client = client
        self.slot_rules = SlotRules(settings.slots, settings.zone)
        self.processor = CallEventProcessor(settings, self.slot_rules)
        self.lander = Lander(client, settings, self.slot_rules)
        self.stopping = threading.Event()
        self.ready = threading.Event()

    def prepare(self) -> None:
        """Migrate the warehouse and rebuild open buckets from what already landed."""
        applied = migrate(self.client)
        if applied:
            log.info("warehouse migrations applied: %s", ", ".join(applied))
        rows = open_window_attempts(self.client, self.settings.pipeline.allowed_lateness_seconds)
        restored = self.processor.buckets.restore(rows)
        if restored:
            buckets = self.processor.buckets.take_dirty()
            self.lander.land_with_retry([], buckets)
            log.info("restored %d landed attempts into %d open buckets", restored, len(buckets))
        self.ready.set()

    def land(self, result) -> bool:
        """Settle late events against the warehouse, then land the batch (blocking)."""
        if result.late:
            ids = [event.event_id for event, _ in result.late]
            while True:
                try:
                    found = landed_event_ids(self.client, ids)
                    break
                except Exception as exc:
                    if self.stopping.is_set():
                        return False
                    log.warning("checking late events failed (%s); retrying", exc)
                    self.stopping.wait(1.0)
            self.processor.resolve_late(result, found)
        return self.lander.land_with_retry(result.attempts, result.buckets, should_stop=self.stopping.is_set)


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
    call_events = app.topic(topics.call_events, key_type=bytes, value_type=bytes,
                            key_serializer="raw", value_serializer="raw", partitions=topics.partitions)
    dead_letters = app.topic(topics.dead_letters, key_type=bytes, value_type=bytes,
                             key_serializer="raw", value_serializer="raw", partitions=1)

    @app.agent(call_events, name="count_call_attempts")
    async def count_call_attempts(stream):
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, pipeline.prepare)
        batch_size = settings.worker.batch_max_messages
        async for events in stream.take_events(batch_size, within=settings.worker.batch_max_seconds):
            records = [
                SourceRecord(e.message.topic, e.message.partition, e.message.offset, e.message.value)
                for e in events
            ]
            result = pipeline.processor.process(records)
            landing = loop.run_in_executor(None, pipeline.land, result)
            try:
                landed = await asyncio.shield(landing)
            except asyncio.CancelledError:
                # Stopping mid-landing: let the insert finish, or never ack the batch.
                pipeline.stopping.set()
                landed = await landing
                if not landed:
                    os._exit(EXIT_UNLANDED)
                raise
            if not landed:
                os._exit(EXIT_UNLANDED)
            for letter in result.dead_letters:
                await dead_letters.send(key=letter.reason.encode(), value=encode_dead_letter(letter))
            pipeline.processor.landed()

    @app.on_partitions_assigned.connect
    async def reread_from_committed(app, assigned, **kwargs):
        # On revocation Faust clears its stream buffers; when the same partitions come
        # back, the fetcher can carry on past the dropped messages and a later commit
        # skips them (seen as lost events under load). Re-reading from the committed
        # offset makes a rebalance cost duplicates, which the buckets absorb, never loss.
        if assigned:
            await app.consumer.seek_to_committed()

    @app.page("/health")
    async def health(web, request):
        return web.json({"ready": pipeline.ready.is_set(), **pipeline.processor.stats.as_dict()})

    return app


def run_worker(app: faust.App, loglevel: str = "info") -> None:
    """Run the Faust worker in this thread until SIGINT/SIGTERM."""
    from faust.worker import Worker

    Worker(app, loglevel=loglevel, quiet=True).execute_from_commandline()
