"""The worker's commit of one counted batch, in numbered steps.

The order is what makes a restart exact: a dead letter is delivered before the offsets that
pass its record move (a crash repeats a dead letter, never loses one); raw attempts land
before the buckets that count them; the offsets land after everything the batch holds, so
an offset in the warehouse means all before it is there; alerts go out only for what landed.

    step                   lands                                            if it fails
    1  late events         nothing: asks the warehouse which too-old        retry; at a stop, exit 70
                           events already landed (replays) - the rest
                           become dead letters and late_events rows -
                           and which held events (ids the long memory
                           of ids may hold) landed: duplicates or
                           conflicts; the rest are counted into the
                           batch, before anything of it lands
    2  dead letters        the dead-letter topic                            exit 71
    3  stop list           flags and removals read for the batch: stop_list retry; at a stop, exit 70
    4  dead letters        dead_letters                                     retry; at a stop, exit 70
    5  violations          stop_list_violations, then                       retry; at a stop, exit 70
                           calling_hours_violations (two inserts)
    6  attempts            call_attempts (slot and cost as counted)         retry; at a stop, exit 70;
                                                                            refused while the warehouse
                                                                            answers: those calls set aside
    7  buckets             minute_metrics (full state of changed buckets),  retry; at a stop, exit 70
                           then campaign_hour_totals and campaign_day_totals
                           of their campaigns' hours and days, summed again
                           from minute_metrics at most every
                           worker.campaign_totals_seconds (queued between;
                           a queue lost with the worker is summed at its
                           restart, which lands the open buckets again)
    8  late events         late_events                                      retry; at a stop, exit 70
    9  floor               agent_minutes, agent_status, dialer_snapshots    retry; at a stop, exit 70
                           dialer_latest, campaign_agents (the floor's changed
                           rows, full state, versioned; each campaign's newest
                           snapshot and its changed line-ups of logged-in agents)
    10 offsets             consumed_offsets                                 retry; at a stop, exit 70
    11 alert readings      nothing: the live alert rules read from memory,  retry; at a stop, exit 70
                           before the next batch changes the buckets
    12 alerts              the alerts topic, then alerts, then the webhook; retry; at a stop, exit 70;
                           in the background, after the earlier batch's     anything else, exit 71

"retry" is retry_until_stopped: a growing backoff until the warehouse answers. A warehouse
that answers but refuses an insert would stall the stream for good, so the attempts step,
after REFUSAL_TRIES tries, asks whether the warehouse answers at all (a ping): if it does,
the step lands its calls in halves until each refused call stands alone, and those calls are
set aside (CallEventProcessor.set_aside: uncounted from the live state, their minutes'
buckets restated, a warehouse_refused dead letter each, sent to the dead-letter topic before
the offsets pass their records); if it does not, it is an outage and the step retries as
any other. While a step
retries, the worker reads nothing more and no offset moves, so Kafka keeps every unlanded
event. A stop signal ends the backoff: the step in flight gets its one try, and if that fails
the worker exits with EXIT_UNLANDED without acknowledging the batch, so a restart reads it
again from the landed offsets. Steps 3-10 run as one call on the warehouse thread that a stop
signal does not cancel: once they have begun, the batch lands or the worker exits unlanded.
EXIT_AGENT_FAILED is for what retrying cannot mend; a supervisor restarts the worker.

Adding data to land (say agent minutes): give core.handoff.LandingBatch a field with an empty
default, fill it where the worker counts, add a ``land_<what>`` method to warehouse.landing.Lander,
and add a LandingStep to LANDING_STEPS at its place in the order (before "offsets", which stays
last; numbering follows the position). A step of another kind (a read, a message to a topic) is
a line in Checkpoint.commit; keep the table above in step with it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import threading
import time
from collections.abc import Callable, Sized
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any, NoReturn, Protocol

from core.alerts import Alert, encode_alert, log_lines
from core.deadletters import encode_dead_letter
from core.handoff import CountedAttempts, DirtyBuckets, LandingBatch, StopListChange, TopicPartition
from streams.alerting import AlertEvaluator, BatchReading, triggers_of
from streams.offsets import PartitionCursor
from streams.processor import BatchResult, CallEventProcessor
from streams.seen_ids import id_key
from streams.stoplist import StopListTable
from streams.webhook import WebhookSender
from warehouse.landing import Lander, retry_until_stopped
from warehouse.queries.recovery import landed_calls

log = logging.getLogger("callpulse.worker")

# The batch could not be landed before the worker stopped: exiting hard keeps Faust from
# committing its offsets, so the batch is consumed again on restart.
EXIT_UNLANDED = 70
# Something retrying cannot mend failed; a supervisor restarts the worker from the landed offsets.
EXIT_AGENT_FAILED = 71
# Alert headlines logged per batch; the rest are counted in one line (see alerts.log_lines).
ALERT_LINES_PER_BATCH = 20
# Tries of the attempts step before asking whether the warehouse answers or refuses the calls.
REFUSAL_TRIES = 3
# The youngest generation of garbage is collected at least this often (see collect_young_garbage).
YOUNG_GARBAGE_SECONDS = 10.0


class Topic(Protocol):
    """A Faust topic, as far as the checkpoint sends to it."""

    async def send(self, *, key: bytes, value: bytes) -> Any: ...


@dataclass(frozen=True)
class LandingStep:
    """One warehouse insert of the commit: what of the batch it lands and the Lander method
    that lands it. Skipped when there is nothing to land; retried on its own until it works."""

    name: str  # as the log says it: "landing 12 attempts"
    rows: Callable[[LandingBatch], Sized]
    land: Callable[[Lander, Any], None]


def land_buckets(lander: Lander, buckets: DirtyBuckets) -> None:
    """Step 7: the changed buckets, then the per-campaign totals the wallboard reads, derived from
    them in the warehouse: their hours are queued and summed at most every
    worker.campaign_totals_seconds (Lander.queue_campaign_totals; the worker's timer sums a queue
    no later batch comes for)."""
    lander.land_buckets(buckets)
    lander.queue_campaign_totals(buckets)


# Steps 4-10, in order (step 3, the stop list, also marks its changes landed, so it is run by
# Checkpoint.land_stop_list). The offsets stay last.
LANDING_STEPS: tuple[LandingStep, ...] = (
    LandingStep("dead letters", lambda batch: batch.dead_letters, Lander.land_dead_letters),
    LandingStep("stop-list violations", lambda batch: batch.violations, Lander.land_violations),
    LandingStep(
        "calling-hours violations", lambda batch: batch.calling_hours_violations, Lander.land_calling_hours_violations
    ),
    LandingStep("attempts", lambda batch: batch.counted, Lander.land_attempts),
    LandingStep("buckets", lambda batch: batch.buckets or (), land_buckets),
    LandingStep("late events", lambda batch: batch.late_events, Lander.land_late_events),
    LandingStep("floor changes", lambda batch: batch.floor or (), Lander.land_floor),
    LandingStep("offsets", lambda batch: batch.offsets, Lander.land_offsets),
)
ATTEMPTS_STEP = next(step for step in LANDING_STEPS if step.name == "attempts")
OFFSETS_STEP = LANDING_STEPS[-1]


def exit_unlanded(what: str) -> NoReturn:
    log.critical("%s did not reach the warehouse before the worker stopped; exiting unacknowledged", what)
    os._exit(EXIT_UNLANDED)


def exit_agent_failed(what: str) -> NoReturn:
    log.critical("%s failed; exiting", what, exc_info=True)
    os._exit(EXIT_AGENT_FAILED)


class Checkpoint:
    """Commits the worker's batches, each in the numbered steps of the module docstring.

    The warehouse steps run on ``warehouse``, the worker's one warehouse thread, in the order
    they were asked for; a batch's alerts are read there while the next batch is counted."""

    def __init__(
        self,
        *,
        lander: Lander,
        processor: CallEventProcessor,
        stop_list: StopListTable,
        cursor: PartitionCursor,
        alerting: AlertEvaluator,
        webhook: WebhookSender | None,
        warehouse: ThreadPoolExecutor,
        stopping: threading.Event,
    ):
        self.lander = lander
        self.processor = processor
        self.stop_list = stop_list
        self.cursor = cursor
        self.alerting = alerting
        self.webhook = webhook
        self.warehouse = warehouse
        self.stopping = stopping
        self.landed_offsets: dict[TopicPartition, int] = {}
        self.alerts_sent = 0
        self.alerts_in_flight: asyncio.Task | None = None  # the latest batch's alerts, still being read or sent
        self.dead_letter_topic: Topic | None = None
        self.alert_topic: Topic | None = None
        self.refused_letters: list = []  # dead letters of calls the warehouse refused, sent before the offsets
        self.young_collected_at = time.monotonic()

    def send_to(self, dead_letter_topic: Topic, alert_topic: Topic) -> None:
        """The topics the checkpoint sends to (they belong to the Faust app, made after the pipeline)."""
        self.dead_letter_topic, self.alert_topic = dead_letter_topic, alert_topic

    async def commit(self, batch: BatchResult) -> None:
        """Steps 1-12 for one batch. Returns once it has landed; its alerts follow in the
        background, after the earlier batch's."""
        loop = asyncio.get_running_loop()
        if batch.late or batch.held:  # 1
            found = await loop.run_in_executor(self.warehouse, self.look_up_landed, batch)
            if found is None:
                exit_unlanded("checking late events")
            self.processor.resolve_late(batch, found)
        await self.send(
            self.dead_letter_topic,
            [
                (letter.reason.encode(), encode_dead_letter(letter))  # 2
                for letter in batch.dead_letters
            ],
        )
        batch.offsets = self.cursor.take_unlanded()
        await self.land_unless_failing(batch, self.land)  # 3-10
        if self.refused_letters:  # 6 set calls aside: their dead letters go out before 10 passes their records
            letters, self.refused_letters = self.refused_letters, []
            await self.send(
                self.dead_letter_topic, [(letter.reason.encode(), encode_dead_letter(letter)) for letter in letters]
            )
            await self.land_unless_failing(batch, self.land_offsets)  # 10
        self.processor.landed()
        self.collect_young_garbage()
        reading = await loop.run_in_executor(self.warehouse, self.read_live_alerts, batch)  # 11
        if reading is None:
            exit_unlanded("reading the live alert rules")
        evaluation = loop.run_in_executor(self.warehouse, self.evaluate_alerts, reading)  # 12
        self.alerts_in_flight = asyncio.ensure_future(self.raise_alerts(evaluation, self.alerts_in_flight))

    def collect_young_garbage(self) -> None:
        """Every insert leaves a clickhouse-connect InsertContext behind in a reference cycle (it
        holds a bound method of itself) with the last block of rows it inserted, which only the
        collector frees. The worker collects its youngest generation after 50,000 new objects
        (streams.app.tune_garbage_collector), which a slow stream takes minutes to reach, so every
        batch's inserted rows stayed in memory that long; collecting it every few seconds frees
        them at the cost of a pass over the objects made since."""
        now = time.monotonic()
        if now - self.young_collected_at >= YOUNG_GARBAGE_SECONDS:
            gc.collect(0)
            self.young_collected_at = now

    async def finish(self) -> None:
        """At a stop: the last landed batch's alerts go out before the worker stops."""
        if self.alerts_in_flight is not None:
            self.stopping.set()
            await self.alerts_in_flight

    async def land_unless_failing(self, batch: LandingBatch, land: Callable[[LandingBatch], bool]) -> None:
        """Steps 3-10 (``land``) on the warehouse thread. A stop signal arriving meanwhile lets the
        landing finish (a failing step then gives up after its try in flight), never acknowledging
        a batch that did not land."""
        landing = asyncio.get_running_loop().run_in_executor(self.warehouse, land, batch)
        try:
            landed = await asyncio.shield(landing)
        except asyncio.CancelledError:
            self.stopping.set()
            if not await landing:
                exit_unlanded("the batch")
            raise
        if not landed:
            exit_unlanded("the batch")

    def land(self, batch: LandingBatch) -> bool:
        """Steps 3-10 (blocking): the stop list, then each LANDING_STEPS insert, each retried on
        its own; False if one was given up at a stop."""
        batch.stop_list_changes = self.stop_list.unlanded_changes()
        if not self.land_stop_list(batch.stop_list_changes):
            return False
        for step in LANDING_STEPS:
            if step is OFFSETS_STEP and self.refused_letters:
                return True  # commit() sends the refused calls' dead letters, then lands the offsets
            rows = step.rows(batch)
            if not rows:
                continue
            if step is ATTEMPTS_STEP and isinstance(batch, BatchResult):
                if not self.land_attempts(batch):
                    return False
            elif not retry_until_stopped(
                partial(step.land, self.lander, rows), f"landing {len(rows)} {step.name}", self.stopping.is_set
            ):
                return False
        self.landed_offsets.update(batch.offsets)
        return True

    def land_offsets(self, batch: LandingBatch) -> bool:
        """Step 10 alone (blocking), after the refused calls' dead letters went out."""
        if batch.offsets and not retry_until_stopped(
            partial(OFFSETS_STEP.land, self.lander, batch.offsets),
            f"landing {len(batch.offsets)} offsets",
            self.stopping.is_set,
        ):
            return False
        self.landed_offsets.update(batch.offsets)
        return True

    def land_attempts(self, batch: BatchResult) -> bool:
        """Step 6 (blocking): the batch's calls; those the warehouse refuses while it answers are
        set aside, one by one, and the rest land."""
        what = f"landing {len(batch.counted)} attempts"
        for attempt in range(REFUSAL_TRIES):
            try:
                self.lander.land_attempts(batch.counted)
                return True
            except Exception as exc:  # noqa: BLE001 - an outage or a refusal, told apart below
                log.warning("%s failed (%s)", what, str(exc)[:300])
                if self.stopping.is_set():
                    break
                if attempt + 1 < REFUSAL_TRIES:
                    self.stopping.wait(0.5 * 2**attempt)
        answering = not self.stopping.is_set() and self.warehouse_answers()
        refused = self.refused_calls(batch.counted) if answering else None
        if refused is None:  # an outage (or a stop): keep every call, retry as any step
            return retry_until_stopped(partial(self.lander.land_attempts, batch.counted), what, self.stopping.is_set)
        if refused:
            log.error(
                "the warehouse refused %d of %d calls while it answered; set aside as warehouse_refused dead "
                "letters: %s",
                len(refused),
                len(batch.counted),
                next(iter(refused.values()))[:300],
            )
            letters = self.processor.set_aside(batch, refused)
            if not retry_until_stopped(
                partial(self.lander.land_dead_letters, letters),
                f"landing {len(letters)} dead letters",
                self.stopping.is_set,
            ):
                return False
            self.refused_letters.extend(letters)
        return True

    def warehouse_answers(self) -> bool:
        """Whether the warehouse answers at all (an outage drill's fault switch says no)."""
        try:
            self.lander.faults.check("asking whether the warehouse answers")
            return bool(self.lander.client.ping())
        except Exception:  # noqa: BLE001 - not answering is the answer
            return False

    def refused_calls(self, counted: CountedAttempts) -> dict[int, str] | None:
        """Lands ``counted`` in halves, each part the warehouse takes landed; the index of each call
        it refuses on its own, with what it said. None if it stops answering meanwhile."""
        refused: dict[int, str] = {}
        parts = [(0, len(counted))]
        while parts:
            start, end = parts.pop()
            part = CountedAttempts(counted.attempts[start:end], counted.slots[start:end], counted.costs[start:end])
            try:
                self.lander.land_attempts(part)
            except Exception as exc:  # noqa: BLE001
                if not self.warehouse_answers():
                    return None
                if end - start == 1:
                    refused[start] = str(exc)
                else:
                    middle = (start + end) // 2
                    parts += [(middle, end), (start, middle)]
        return refused

    def land_stop_list(self, changes: list[StopListChange] | None = None) -> bool:
        """Step 3 (blocking): the stop-list flags and removals read since the last landing.
        Also run between batches, so flags made while no calls arrive reach the warehouse."""
        if changes is None:
            changes = self.stop_list.unlanded_changes()
        if not changes:
            return True
        landed = retry_until_stopped(
            lambda: self.lander.land_stop_list(changes),
            f"landing {len(changes)} stop-list change(s)",
            self.stopping.is_set,
        )
        if landed:
            self.stop_list.mark_landed(changes)
        return landed

    def look_up_landed(self, batch: BatchResult) -> dict[str, tuple] | None:
        """Step 1's warehouse half (blocking): which of the batch's late and held events already
        landed, and as what (CallEventProcessor.resolve_late then settles them on the event loop,
        where calls are counted); None if the warehouse failed through a stop. A held id can
        only have landed for a call in a generation of the long memory that holds it, so only
        those hours are searched."""
        late = [event.event_id for event, _ in batch.late]
        held = [event.event_id for event, _ in batch.held]
        within = self.processor.buckets.seen_ids.times_holding(id_key(event_id) for event_id in held)
        found: dict[str, tuple] = {}

        def look_up() -> None:
            found.clear()
            found.update(landed_calls(self.lander.client, late))
            found.update(landed_calls(self.lander.client, held, within))

        return found if retry_until_stopped(look_up, "checking late events", self.stopping.is_set) else None

    def read_live_alerts(self, batch: LandingBatch) -> BatchReading | None:
        """Step 11 (blocking): the batch's alert readings held in memory (AlertEvaluator.read_live),
        taken before the next batch is counted; None if the warehouse failed through a stop."""
        reading: list[BatchReading] = []

        def read() -> None:
            reading[:] = [
                self.alerting.read_live(triggers_of(batch.attempts), batch.violations, batch.calling_hours_violations)
            ]

        return reading[0] if retry_until_stopped(read, "reading live alert rules", self.stopping.is_set) else None

    def evaluate_alerts(self, reading: BatchReading) -> list[Alert] | None:
        """Step 12's warehouse half (blocking): the alert transitions a landed batch causes; None
        if the warehouse failed through a stop."""
        if not reading.pending and not reading.campaigns:
            return []
        readings: list = []

        def read() -> None:
            readings[:] = self.alerting.read_landed(reading)  # a retry starts over, never appends twice

        ok = retry_until_stopped(read, "reading alert rules", self.stopping.is_set)
        return self.alerting.observe(readings) if ok else None

    async def raise_alerts(self, evaluation: asyncio.Future, earlier: asyncio.Task | None) -> None:
        """Step 12: each transition goes to the alerts topic, then the alerts table, then the
        webhook, after the earlier batch's."""
        loop = asyncio.get_running_loop()
        try:
            alerts = await evaluation
            if earlier is not None:
                await earlier
            if alerts is None:
                exit_unlanded("reading alert rules")  # the batch landed; a restart re-reads the rules
            if not alerts:
                return
            await self.send(self.alert_topic, [(alert.campaign.encode(), encode_alert(alert)) for alert in alerts])
            for line in log_lines(alerts, ALERT_LINES_PER_BATCH):
                log.warning("alert: %s", line)
            self.alerts_sent += len(alerts)
            if not await loop.run_in_executor(self.warehouse, self.land_alerts, alerts):
                exit_unlanded(f"{len(alerts)} alerts")
            if self.webhook is not None:
                self.webhook.submit(alerts)
        except asyncio.CancelledError:
            raise
        except BaseException:
            exit_agent_failed("raising the worker's alerts")

    def land_alerts(self, alerts: list[Alert]) -> bool:
        return retry_until_stopped(
            lambda: self.lander.land_alerts(alerts), f"landing {len(alerts)} alerts", self.stopping.is_set
        )

    @staticmethod
    async def send(topic: Topic | None, messages: list[tuple[bytes, bytes]]) -> None:
        """Send every message, then wait until the broker has acknowledged them all: one round
        trip per batch, not per message. The producer keeps a partition's messages in the order
        they were sent."""
        if not messages:
            return
        if topic is None:
            raise RuntimeError("the checkpoint has no topics to send to (Checkpoint.send_to)")
        acknowledgements = [await topic.send(key=key, value=value) for key, value in messages]
        await asyncio.gather(*acknowledgements)
