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

from callpulse.config import Settings
from producers.ingest import dead_letter_row, without_phone
from producers.publisher import EventPublisher
from producers.vicidial import IngestSummary, RowError, RowMapper

log = logging.getLogger(__name__)

COLUMNS = ("uniqueid", "lead_id", "list_id", "campaign_id", "call_date", "length_in_sec", "status",
           "phone_number", "user", "user_group")
NOT_FINAL = {"", "INCALL", "QUEUE", "DISPO", "NEW", "DEAD"}  # VICIdial placeholders while a call is live
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass
class Checkpoint:
    newest_call_date: str = "1970-01-01 00:00:00"
    published: dict[str, str] = field(default_factory=dict)  # uniqueid -> call_date, inside the overlap

    @classmethod
    def load(cls, path: Path) -> "Checkpoint":
        if not path.exists():
            return cls()
        data = json.loads(path.read_text())
        return cls(data["newest_call_date"], dict(data["published"]))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"newest_call_date": self.newest_call_date, "published": self.published}))
        os.replace(temporary, path)  # atomic: a crash leaves the old checkpoint or the new one

    def window_start(self, overlap: timedelta) -> str:
        newest = datetime.strptime(self.newest_call_date, TIME_FORMAT)
        return (newest - overlap).strftime(TIME_FORMAT)

    def forget_before(self, since: str) -> None:
        self.published = {uid: when for uid, when in self.published.items() if when >= since}


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


class VicidialPoller:
    def __init__(self, settings: Settings, hmac_key: bytes, publisher: EventPublisher, connection_factory,
                 checkpoint_path: Path, overlap: timedelta = timedelta(minutes=30), batch_rows: int = 5000):
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

    def _rows(self) -> list[dict]:
        if self._connection is None:
            self._connection = self.connection_factory()
        since = self.checkpoint.window_start(self.overlap)
        with self._connection.cursor() as cursor:
            # Values are bound parameters; the column list is this module's constant.
            cursor.execute(f"SELECT {', '.join(COLUMNS)} FROM vicidial_log WHERE call_date >= %s "
                           "ORDER BY call_date, uniqueid", (since,))
            return cursor.fetchall()

    def poll_once(self) -> int:
        """Publish every final row not yet published; returns how many were published."""
        try:
            rows = self._rows()
        except Exception:
            self._connection = None  # reconnect next time
            raise
        published_now = 0
        newest = self.checkpoint.newest_call_date
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
            except RowError as error:
                self.summary.reject(0, error, text)
                log.warning("vicidial_log %s: %s: %s", uid, error.reason, error)
                dead_letter_row(self.publisher, self.settings, "mysql:vicidial_log", -1, error, without_phone(text))
            self.checkpoint.published[uid] = text["call_date"]
            newest = max(newest, text["call_date"])
        if published_now or newest != self.checkpoint.newest_call_date:
            self.publisher.flush()  # Kafka has the rows before the checkpoint says so
            self.checkpoint.newest_call_date = newest
            self.checkpoint.forget_before(self.checkpoint.window_start(self.overlap))
            self.checkpoint.save(self.checkpoint_path)
        return published_now

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
