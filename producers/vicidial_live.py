"""VICIdial live: poll the dialer's own ``vicidial_log`` table and publish new attempts.

Rows are read in (call_date, uniqueid) order. VICIdial writes a row when the call is
placed and fills in its status when it ends, so a row can appear, or become final,
after newer ones were read. Each poll therefore re-reads an overlap window behind the
newest call_date seen and skips the uniqueids already published. A row whose status
is still a placeholder (INCALL, QUEUE, ...) is left for a later poll.

The checkpoint (the newest call_date and the uniqueids published inside the overlap
window) is written atomically to a file only after Kafka has acknowledged the rows it
covers: a restart resumes without gaps, and at worst re-sends rows the worker then
counts once (uniqueid is the event id).

Kafka's acknowledgement is not landing. The embedded broker keeps nothing across a
restart, so a row it acknowledged but the worker never landed would be gone with it.
Each published row therefore stays *pending* in the checkpoint, with the topic id and
offset it went to, until the worker's health says it has landed that offset of that
topic incarnation. When the call-events topic comes back with another id, every pending
row of the old one is read from the dialer again and republished.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable
from urllib.parse import unquote, urlparse

from core.config import Settings
from producers.ingest import dead_letter_row, without_phone
from producers.publisher import EventPublisher
from producers.vicidial import IngestSummary, RowError, RowMapper

log = logging.getLogger(__name__)

COLUMNS = ("uniqueid", "lead_id", "list_id", "campaign_id", "call_date", "length_in_sec", "status",
           "phone_number", "user", "user_group")
NOT_FINAL = {"", "INCALL", "QUEUE", "DISPO", "NEW", "DEAD"}  # VICIdial placeholders while a call is live
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# How far behind the newest call a row may wait to be seen landed. Past this the worker's
# health is probably unreachable, and a poll that reads a day back on every call is worse.
PENDING_AT_MOST = timedelta(days=1)


@dataclass
class PendingRow:
    """A row Kafka acknowledged that the worker has not yet been seen to land."""

    call_date: str
    topic_id: str
    partition: int
    offset: int


@dataclass
class Checkpoint:
    newest_call_date: str = "1970-01-01 00:00:00"
    published: dict[str, str] = field(default_factory=dict)  # uniqueid -> call_date, inside the overlap
    pending: dict[str, PendingRow] = field(default_factory=dict)  # uniqueid -> where it went, until landed

    @classmethod
    def load(cls, path: Path) -> "Checkpoint":
        if not path.exists():
            return cls()
        data = json.loads(path.read_text())
        pending = {uid: PendingRow(*row) for uid, row in data.get("pending", {}).items()}
        return cls(data["newest_call_date"], dict(data["published"]), pending)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        pending = {uid: [row.call_date, row.topic_id, row.partition, row.offset] for uid, row in self.pending.items()}
        temporary.write_text(json.dumps({"newest_call_date": self.newest_call_date, "published": self.published,
                                         "pending": pending}))
        os.replace(temporary, path)  # atomic: a crash leaves the old checkpoint or the new one

    def window_start(self, overlap: timedelta) -> str:
        newest = datetime.strptime(self.newest_call_date, TIME_FORMAT)
        return (newest - overlap).strftime(TIME_FORMAT)

    def read_from(self, overlap: timedelta) -> str:
        """Where a poll starts reading: the overlap window, or further back to a pending row."""
        return min([self.window_start(overlap), *(row.call_date for row in self.pending.values())])

    def forget_before(self, since: str) -> None:
        self.published = {uid: when for uid, when in self.published.items()
                          if when >= since or uid in self.pending}


def _host_and_database(dsn: str) -> tuple[str, str]:
    """Where a DSN points; VICIdial's database is called asterisk unless the DSN says otherwise."""
    parsed = urlparse(dsn)
    return parsed.hostname or "localhost", (parsed.path or "").strip("/") or "asterisk"


def default_checkpoint(data_dir: Path, dsn: str) -> Path:
    """One checkpoint per dialer database: <data dir>/vicidial/<host>-<db>.json."""
    host, database = _host_and_database(dsn)
    return data_dir / "vicidial" / f"{host}-{database}.json"


def connect_mysql(dsn: str):
    """A PyMySQL connection from mysql://user:pass@host:port/database (or ?unix_socket=/path)."""
    import pymysql

    parsed = urlparse(dsn)
    if parsed.scheme not in ("mysql", "mariadb"):
        raise ValueError(f"--mysql-dsn must look like mysql://user:pass@host:3306/asterisk, not {dsn!r}")
    options = dict(part.split("=", 1) for part in parsed.query.split("&") if "=" in part)
    host, database = _host_and_database(dsn)
    return pymysql.connect(host=host, port=parsed.port or 3306,
                           user=unquote(parsed.username or ""), password=unquote(parsed.password or ""),
                           database=database,
                           unix_socket=options.get("unix_socket"), charset="utf8mb4", autocommit=True,
                           connect_timeout=10, cursorclass=pymysql.cursors.DictCursor)


@dataclass(frozen=True)
class LandingStatus:
    """How far the worker has landed: the topic incarnation it reads and, per partition,
    the next offset it has to process."""

    topic_id: str
    landed_offsets: dict[int, int]

    def has_landed(self, row: PendingRow) -> bool:
        return row.topic_id == self.topic_id and self.landed_offsets.get(row.partition, 0) > row.offset


def worker_landing_status(health_url: str) -> Callable[[], LandingStatus | None]:
    """Reads the worker's /health; None while no worker answers."""
    import httpx

    def read() -> LandingStatus | None:
        try:
            health = httpx.get(health_url, timeout=3).raise_for_status().json()
        except (httpx.HTTPError, ValueError):
            return None
        if not health.get("ready"):
            return None
        return LandingStatus(str(health.get("topic_id", "")),
                             {int(p): int(o) for p, o in health.get("landed_offsets", {}).items()})

    return read


class VicidialPoller:
    def __init__(self, settings: Settings, hmac_key: bytes, publisher: EventPublisher, connection_factory,
                 checkpoint_path: Path, overlap: timedelta = timedelta(minutes=30), batch_rows: int = 5000, *,
                 current_topic_id: Callable[[], str] | None = None,
                 landing_status: Callable[[], LandingStatus | None] | None = None):
        self.settings = settings
        self.mapper = RowMapper(settings, hmac_key)
        self.publisher = publisher
        self.connection_factory = connection_factory
        self.checkpoint_path = checkpoint_path
        self.checkpoint = Checkpoint.load(checkpoint_path)
        self.overlap = overlap
        self.batch_rows = batch_rows
        self.summary = IngestSummary()
        self._connection = None
        # Without these two the poller trusts Kafka's acknowledgement, as a durable broker deserves.
        self.current_topic_id = current_topic_id
        self.landing_status = landing_status
        self._delivered: dict[str, tuple[int, int]] = {}
        self._worker_silent_since: float | None = None
        publisher.on_delivered = self._note_delivered

    def _note_delivered(self, event_ids: list[str], partition: int, offset: int) -> None:
        for event_id in event_ids:
            self._delivered[event_id] = (partition, offset)

    def _rows(self) -> list[dict]:
        if self._connection is None:
            self._connection = self.connection_factory()
        since = self.checkpoint.read_from(self.overlap)
        with self._connection.cursor() as cursor:
            # Values are bound parameters; the column list is this module's constant.
            cursor.execute(f"SELECT {', '.join(COLUMNS)} FROM vicidial_log WHERE call_date >= %s "
                           "ORDER BY call_date, uniqueid", (since,))
            return cursor.fetchall()

    def settle_pending(self, current: str) -> int:
        """Drop pending rows the worker has landed; mark those of a vanished topic incarnation
        (``current`` is the topic id now) for republishing. Returns how many are to be published again."""
        checkpoint = self.checkpoint
        if not checkpoint.pending:
            return 0
        status = self.landing_status() if self.landing_status is not None else None
        if status is None:
            if self._worker_silent_since is None:
                self._worker_silent_since = time.monotonic()
            elif time.monotonic() - self._worker_silent_since > 60:
                log.warning("no worker has answered for a minute; %d row(s) wait to be seen landed",
                            len(checkpoint.pending))
                self._worker_silent_since = time.monotonic()
        else:
            self._worker_silent_since = None
            for uid in [uid for uid, row in checkpoint.pending.items() if status.has_landed(row)]:
                del checkpoint.pending[uid]
        horizon = (datetime.strptime(checkpoint.newest_call_date, TIME_FORMAT) - PENDING_AT_MOST).strftime(TIME_FORMAT)
        expired = [uid for uid, row in checkpoint.pending.items() if row.call_date < horizon]
        if expired:
            log.warning("%d row(s) were never seen landed within %s of the newest call; no longer tracking them "
                        "(is the worker's health URL right?)", len(expired), PENDING_AT_MOST)
            for uid in expired:
                del checkpoint.pending[uid]
        lost = [uid for uid, row in checkpoint.pending.items() if row.topic_id != current]
        if lost:
            log.warning("the call-events topic was recreated (topic id now %s): %d row(s) Kafka had acknowledged "
                        "were never landed; reading them from vicidial_log again", current or "unknown", len(lost))
            for uid in lost:
                checkpoint.published.pop(uid, None)  # the next read publishes it again; it stays pending
        return len(lost)

    def poll_once(self) -> int:
        """Publish every final row not yet published; returns how many were published."""
        # Read before publishing: rows are tracked under the incarnation that was there when
        # they were sent, so a broker restart during this poll makes them pending for a resend.
        incarnation = self.current_topic_id() if self.current_topic_id is not None else None
        lost = self.settle_pending(incarnation) if incarnation is not None else 0
        try:
            rows = self._rows()
        except Exception:
            self._connection = None  # reconnect next time
            raise
        published_now = 0
        newest = self.checkpoint.newest_call_date
        sent: dict[str, str] = {}  # uniqueid -> call_date, published in this poll
        for row in rows:
            uid = str(row["uniqueid"])
            if uid in self.checkpoint.published:
                continue
            text = {k: "" if v is None else (v.strftime(TIME_FORMAT) if isinstance(v, datetime) else str(v))
                    for k, v in row.items()}
            if text["status"].upper() in NOT_FINAL:
                continue
            self.summary.read += 1
            try:
                self.publisher.publish(self.mapper.attempt(text))
                self.summary.published += 1
                published_now += 1
                sent[uid] = text["call_date"]
            except RowError as error:
                self.summary.reject(0, error, text)
                log.warning("vicidial_log %s: %s: %s", uid, error.reason, error)
                dead_letter_row(self.publisher, self.settings, "mysql:vicidial_log", -1, error, without_phone(text))
            self.checkpoint.published[uid] = text["call_date"]
            newest = max(newest, text["call_date"])
        if published_now or lost or newest != self.checkpoint.newest_call_date:
            self.publisher.flush()  # Kafka has the rows before the checkpoint says so
            self._track(sent, incarnation)
            self.checkpoint.newest_call_date = newest
            self.checkpoint.forget_before(self.checkpoint.window_start(self.overlap))
            self.checkpoint.save(self.checkpoint_path)
        return published_now

    def _track(self, sent: dict[str, str], incarnation: str | None) -> None:
        """Keep the rows just acknowledged pending until the worker is seen to land them."""
        if incarnation is not None:
            for uid, call_date in sent.items():
                partition, offset = self._delivered.get(uid, (-1, -1))  # -1: never seen landed, resent if lost
                self.checkpoint.pending[uid] = PendingRow(call_date, incarnation, partition, offset)
        self._delivered.clear()

    def run(self, poll_seconds: float, should_stop: Callable[[], bool],
            on_poll: Callable[[int], None] = lambda n: None) -> None:
        while not should_stop():
            try:
                on_poll(self.poll_once())
            except Exception as exc:  # noqa: BLE001 - a dialer database restart must not end the poller
                log.warning("polling vicidial_log failed (%s); retrying in %.0f s", exc, max(poll_seconds, 5))
                self._sleep(max(poll_seconds, 5), should_stop)
                continue
            self._sleep(poll_seconds, should_stop)

    @staticmethod
    def _sleep(seconds: float, should_stop: Callable[[], bool]) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not should_stop():
            time.sleep(min(0.2, seconds))
