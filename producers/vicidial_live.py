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
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlparse

from core.config import Settings
from core.schema import SCHEMA_VERSION, AgentState, AgentStateChange, DialerState, encode_event
from producers.ingest import dead_letter_row, without_phone
from producers.publisher import EventPublisher
from producers.vicidial import SWITCH_GAP, IngestSummary, RowError, RowMapper

log = logging.getLogger(__name__)

COLUMNS = (
    "uniqueid",
    "lead_id",
    "list_id",
    "campaign_id",
    "call_date",
    "length_in_sec",
    "status",
    "phone_number",
    "user",
    "user_group",
)
NOT_FINAL = {"", "INCALL", "QUEUE", "DISPO", "NEW", "DEAD"}  # VICIdial placeholders while a call is live
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# How far behind the newest call a row may wait to be seen landed. Past this the worker's
# health is probably unreachable, and a poll that reads a day back on every call is worse.
PENDING_AT_MOST = timedelta(days=1)


class DialerConnection(Protocol):
    """A DB-API connection to VICIdial's MySQL whose cursors return rows as dicts
    (PyMySQL's with DictCursor): what the poller reads through."""

    def cursor(self) -> Any: ...


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
    def load(cls, path: Path) -> Checkpoint:
        if not path.exists():
            return cls()
        data = json.loads(path.read_text())
        pending = {uid: PendingRow(*row) for uid, row in data.get("pending", {}).items()}
        return cls(data["newest_call_date"], dict(data["published"]), pending)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        pending = {uid: [row.call_date, row.topic_id, row.partition, row.offset] for uid, row in self.pending.items()}
        temporary.write_text(
            json.dumps({"newest_call_date": self.newest_call_date, "published": self.published, "pending": pending})
        )
        os.replace(temporary, path)  # atomic: a crash leaves the old checkpoint or the new one

    def window_start(self, overlap: timedelta) -> str:
        newest = datetime.strptime(self.newest_call_date, TIME_FORMAT)
        return (newest - overlap).strftime(TIME_FORMAT)

    def read_from(self, overlap: timedelta) -> str:
        """Where a poll starts reading: the overlap window, or further back to a pending row."""
        return min([self.window_start(overlap), *(row.call_date for row in self.pending.values())])

    def forget_before(self, since: str) -> None:
        self.published = {uid: when for uid, when in self.published.items() if when >= since or uid in self.pending}


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
    return pymysql.connect(
        host=host,
        port=parsed.port or 3306,
        user=unquote(parsed.username or ""),
        password=unquote(parsed.password or ""),
        database=database,
        unix_socket=options.get("unix_socket"),
        charset="utf8mb4",
        autocommit=True,
        connect_timeout=10,
        cursorclass=pymysql.cursors.DictCursor,
    )


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
        return LandingStatus(
            str(health.get("topic_id", "")), {int(p): int(o) for p, o in health.get("landed_offsets", {}).items()}
        )

    return read


class VicidialPoller:
    def __init__(
        self,
        settings: Settings,
        hmac_key: bytes,
        publisher: EventPublisher,
        connection_factory: Callable[[], DialerConnection],
        checkpoint_path: Path,
        overlap: timedelta = timedelta(minutes=30),
        batch_rows: int = 5000,
        *,
        current_topic_id: Callable[[], str] | None = None,
        landing_status: Callable[[], LandingStatus | None] | None = None,
    ):
        self.settings = settings
        self.mapper = RowMapper(settings, hmac_key)
        self.publisher = publisher
        self.connection_factory = connection_factory
        self.checkpoint_path = checkpoint_path
        self.checkpoint = Checkpoint.load(checkpoint_path)
        self.overlap = overlap
        self.batch_rows = batch_rows
        self.summary = IngestSummary()
        self._connection: DialerConnection | None = None
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
        connection = self._connection
        if connection is None:
            connection = self._connection = self.connection_factory()
        since = self.checkpoint.read_from(self.overlap)
        with connection.cursor() as cursor:
            # Values are bound parameters; the column list is this module's constant.
            cursor.execute(
                f"SELECT {', '.join(COLUMNS)} FROM vicidial_log WHERE call_date >= %s ORDER BY call_date, uniqueid",
                (since,),
            )
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
                log.warning(
                    "no worker has answered for a minute; %d row(s) wait to be seen landed", len(checkpoint.pending)
                )
                self._worker_silent_since = time.monotonic()
        else:
            self._worker_silent_since = None
            for uid in [uid for uid, row in checkpoint.pending.items() if status.has_landed(row)]:
                del checkpoint.pending[uid]
        horizon = (datetime.strptime(checkpoint.newest_call_date, TIME_FORMAT) - PENDING_AT_MOST).strftime(TIME_FORMAT)
        expired = [uid for uid, row in checkpoint.pending.items() if row.call_date < horizon]
        if expired:
            log.warning(
                "%d row(s) were never seen landed within %s of the newest call; no longer tracking them "
                "(is the worker's health URL right?)",
                len(expired),
                PENDING_AT_MOST,
            )
            for uid in expired:
                del checkpoint.pending[uid]
        lost = [uid for uid, row in checkpoint.pending.items() if row.topic_id != current]
        if lost:
            log.warning(
                "the call-events topic was recreated (topic id now %s): %d row(s) Kafka had acknowledged "
                "were never landed; reading them from vicidial_log again",
                current or "unknown",
                len(lost),
            )
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
            text = {
                k: "" if v is None else (v.strftime(TIME_FORMAT) if isinstance(v, datetime) else str(v))
                for k, v in row.items()
            }
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

    def run(
        self,
        poll_seconds: float,
        should_stop: Callable[[], bool],
        on_poll: Callable[[int], None] = lambda n: None,
        *,
        floor: FloorPoller | None = None,
        floor_seconds: float = 5.0,
    ) -> None:
        """Poll until ``should_stop``; with ``floor``, read the agents and the dialer every ``floor_seconds`` too."""
        floor_due = 0.0
        while not should_stop():
            if floor is not None and time.monotonic() >= floor_due:
                floor_due = time.monotonic() + floor_seconds
                floor = floor.poll_safely()
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


# -- the floor: agents' states and each campaign's dialer -----------------------------------

# vicidial_live_agents.status -> agent_state, as VICIdial's real-time report reads it
# (AST_timeonVDADall.php): READY or PAUSED with a lead still attached is the agent in
# dispo (wrap-up); QUEUE (a call being routed to the agent) and MQUEUE (a manual dial
# queued) count with INCALL; CLOSER is an agent ready for inbound.
ON_CALL_STATUSES = {"INCALL", "QUEUE", "MQUEUE"}
AVAILABLE_STATUSES = {"READY", "CLOSER"}
# vicidial_auto_calls.status: LIVE is answered and waiting for an agent; XFER is with one
# already (transferred), CLOSER an inbound call; the report counts every other status as ringing.
NOT_RINGING_STATUSES = {"LIVE", "XFER", "CLOSER"}
# Times in event ids, to the millisecond: no run of digits an id screen could take for a phone number.
FLOOR_ID_TIME = "%Y%m%dT%H%M%S.%f"


def agent_state_of(status: str, lead_id: int | None) -> AgentState | None:
    """The agent_state of a vicidial_live_agents row; None for a status VICIdial has not defined."""
    status = status.upper()
    if status in ON_CALL_STATUSES:
        return "on_call"
    if status in AVAILABLE_STATUSES or status == "PAUSED":
        if lead_id:  # the call is over but its lead is still on the agent's screen: dispo
            return "wrap_up"
        return "available" if status in AVAILABLE_STATUSES else "paused"
    return None


@dataclass(frozen=True)
class AgentNow:
    """One agent as last published: what a change is measured against."""

    campaign: str
    team: str | None
    state: AgentState
    since: datetime  # UTC event time of the state


@dataclass
class CampaignCalls:
    """One campaign's calls in vicidial_auto_calls at one poll."""

    ringing: int = 0
    waiting: int = 0
    longest_wait_seconds: float = 0.0


class FloorPoller:
    """Polls VICIdial's live floor: ``vicidial_live_agents`` (one row per logged-in agent)
    into agent_state events, published when an agent's state changes, and
    ``vicidial_auto_calls`` with ``vicidial_campaigns.auto_dial_level`` into one
    dialer_state snapshot per campaign per poll.

    A state's event time is the row's ``last_state_change`` (the dialer's local time) when
    that is newer than the state published before, else the dialer's clock at the poll: a
    dispo that ends without a status change (PAUSED with a lead, then PAUSED without) moves
    no ``last_state_change``. An agent whose row disappears has logged out. Every agent's
    state is sent again every ``refresh_seconds`` (a third of agents.timeout_seconds by
    default), so an agent paused longer than the timeout is not taken for logged out.

    Nothing is checkpointed: these are snapshots, and a restart publishes the floor as it
    is. Event ids are made of the agent, the state and its time, so a state published again
    after a restart is the same event.
    """

    def __init__(
        self,
        settings: Settings,
        publisher: EventPublisher,
        connection_factory: Callable[[], DialerConnection],
        refresh_seconds: float | None = None,
    ):
        self.settings = settings
        self.publisher = publisher
        self.connection_factory = connection_factory
        self.refresh_seconds = refresh_seconds if refresh_seconds is not None else settings.agents.timeout_seconds / 3
        self.agents: dict[str, AgentNow] = {}
        self._refreshed_at: dict[str, float] = {}
        self._connection: DialerConnection | None = None
        self._refused: set[tuple[str, str]] = set()  # (user, status) dead-lettered once, not every poll
        self._no_campaign_stats = False

    # ---- reading the dialer's tables

    def _query(self, sql: str, args: tuple = ()) -> list[dict]:
        connection = self._connection
        if connection is None:
            connection = self._connection = self.connection_factory()
        with connection.cursor() as cursor:
            cursor.execute(sql, args)
            return cursor.fetchall()

    def _dialer_now(self) -> datetime:
        """The dialer database's clock, which wrote last_state_change and call_time."""
        return self._query("SELECT NOW(3) AS now")[0]["now"]

    def _agent_rows(self) -> list[dict]:
        # The team is the agent's user group, kept in vicidial_users.
        return self._query(
            "SELECT vla.user, vla.campaign_id, vla.status, vla.lead_id, vla.last_state_change, vu.user_group "
            "FROM vicidial_live_agents vla LEFT JOIN vicidial_users vu ON vu.user = vla.user "
            "ORDER BY vla.user"
        )

    def _calls(self) -> dict[str, CampaignCalls]:
        """Outbound calls in progress per campaign. phone_number is never read."""
        rows = self._query(
            "SELECT campaign_id, status, GREATEST(TIMESTAMPDIFF(SECOND, call_time, NOW()), 0) AS waited "
            "FROM vicidial_auto_calls WHERE call_type IN ('OUT', 'OUTBALANCE')"
        )
        calls: dict[str, CampaignCalls] = {}
        for row in rows:
            campaign = (row["campaign_id"] or "").strip()
            if not campaign:
                continue
            tally = calls.setdefault(campaign, CampaignCalls())
            status = (row["status"] or "").upper()
            if status == "LIVE":
                tally.waiting += 1
                tally.longest_wait_seconds = max(tally.longest_wait_seconds, float(row["waited"] or 0))
            elif status not in NOT_RINGING_STATUSES:
                tally.ringing += 1
        return calls

    def _campaigns(self) -> dict[str, dict]:
        """campaign_id -> its row of vicidial_campaigns (active, auto_dial_level) and, where
        vicidial_campaign_stats has it, dialable_leads."""
        campaigns = {
            row["campaign_id"]: row
            for row in self._query("SELECT campaign_id, active, auto_dial_level FROM vicidial_campaigns")
        }
        if not self._no_campaign_stats:
            try:
                for row in self._query("SELECT campaign_id, dialable_leads FROM vicidial_campaign_stats"):
                    if row["campaign_id"] in campaigns:
                        campaigns[row["campaign_id"]]["dialable_leads"] = row["dialable_leads"]
            except Exception as exc:  # noqa: BLE001 - an older or trimmed schema: go on without it
                if getattr(exc, "args", (None,))[0] != 1146:  # MySQL's "table doesn't exist"
                    raise
                log.warning("vicidial_campaign_stats is missing: dialer snapshots go without dialable leads")
                self._no_campaign_stats = True
        return campaigns

    # ---- events

    def _utc(self, local: datetime) -> datetime:
        return local.replace(tzinfo=self.settings.zone).astimezone(timezone.utc)

    def _agent_event(self, user: str, agent: AgentNow) -> AgentStateChange:
        return AgentStateChange(
            schema_version=SCHEMA_VERSION,
            event_id=f"vicidial/{user}/{agent.state}/{agent.since.strftime(FLOOR_ID_TIME)[:-3]}",
            campaign=agent.campaign,
            event_time=agent.since,
            agent=user,
            state=agent.state,
            team=agent.team,
        )

    def _publish(self, event, source: str) -> bool:
        refused = self.settings.event_screen(event)
        if refused is not None:
            error = RowError(*refused)
            log.warning("%s %s: %s: %s", source, event.event_id, error.reason, error)
            dead_letter_row(self.publisher, self.settings, f"mysql:{source}", -1, error, encode_event(event))
            return False
        self.publisher.publish(event)
        return True

    def poll_once(self) -> tuple[int, int]:
        """Publish the agents whose state changed (or is due to be sent again) and one dialer
        snapshot per campaign; returns (agent events, snapshots)."""
        try:
            local_now = self._dialer_now()
            rows = self._agent_rows()
            calls = self._calls()
            campaigns = self._campaigns()
        except Exception:
            self._connection = None  # reconnect next time
            raise
        now = self._utc(local_now)
        clock = time.monotonic()
        agent_events = 0
        seen: set[str] = set()
        staffed: set[str] = set()
        for row in rows:
            user, campaign = (row["user"] or "").strip(), (row["campaign_id"] or "").strip()
            status = (row["status"] or "").strip()
            if not user or not campaign:
                continue
            seen.add(user)
            staffed.add(campaign)
            state = agent_state_of(status, row["lead_id"])
            if state is None:
                if (user, status) not in self._refused:
                    self._refused.add((user, status))
                    error = RowError(
                        "unknown_state",
                        f"vicidial_live_agents.status {status!r} of user {user!r} is not a status VICIdial defines",
                    )
                    log.warning("vicidial_live_agents %s: %s", user, error)
                    dead_letter_row(
                        self.publisher,
                        self.settings,
                        "mysql:vicidial_live_agents",
                        -1,
                        error,
                        repr({"user": user, "campaign_id": campaign, "status": status}).encode(),
                    )
                continue
            team = (row["user_group"] or "").strip() or None
            before = self.agents.get(user)
            if before is not None and (before.state, before.campaign, before.team) == (state, campaign, team):
                if clock - self._refreshed_at.get(user, clock) < self.refresh_seconds:
                    continue
                # Sent again, the same state at the poll's time: the worker sees the agent is still there.
                current = AgentNow(campaign, team, state, max(now, before.since))
            else:
                changed = row["last_state_change"]
                since = self._utc(changed) if isinstance(changed, datetime) else now
                if before is not None and since <= before.since:
                    since = now
                current = AgentNow(campaign, team, state, min(since, now))
                if before is not None and before.campaign != campaign:
                    # Moved to another campaign: logged out of the old one a moment before the
                    # first state in the new one (see producers.vicidial.SWITCH_GAP).
                    left = max(before.since, current.since - SWITCH_GAP)
                    if self._publish(
                        self._agent_event(user, AgentNow(before.campaign, before.team, "logged_out", left)),
                        "vicidial_live_agents",
                    ):
                        agent_events += 1
            if self._publish(self._agent_event(user, current), "vicidial_live_agents"):
                agent_events += 1
            self.agents[user] = current
            self._refreshed_at[user] = clock
        for user in [user for user in self.agents if user not in seen]:
            gone = self.agents.pop(user)
            self._refreshed_at.pop(user, None)
            if self._publish(
                self._agent_event(user, AgentNow(gone.campaign, gone.team, "logged_out", max(now, gone.since))),
                "vicidial_live_agents",
            ):
                agent_events += 1
        snapshots = 0
        for campaign in sorted(
            {c for c, row in campaigns.items() if (row["active"] or "") == "Y"} | staffed | set(calls)
        ):
            snapshot = self._snapshot(campaign, now, calls.get(campaign, CampaignCalls()), campaigns.get(campaign))
            if snapshot is not None and self._publish(snapshot, "vicidial_auto_calls"):
                snapshots += 1
        self.publisher.flush()
        return agent_events, snapshots

    def poll_safely(self) -> FloorPoller | None:
        """One poll that never ends the caller's loop: itself to poll again, or None when the
        dialer has no floor tables (the call log is polled on without them)."""
        try:
            self.poll_once()
        except Exception as exc:  # noqa: BLE001 - a dialer database restart must not end the poller
            if getattr(exc, "args", (None,))[0] == 1146:  # MySQL's "table doesn't exist"
                log.warning("%s: the floor (agents, calls waiting, dial level) is not polled", exc.args[-1])
                return None
            log.warning("polling the floor (vicidial_live_agents, vicidial_auto_calls) failed (%s)", exc)
        return self

    def _snapshot(self, campaign: str, now: datetime, calls: CampaignCalls, row: dict | None) -> DialerState | None:
        level_text = str((row or {}).get("auto_dial_level") or "0").strip()
        try:
            dial_level = float(level_text)
            if not math.isfinite(dial_level) or dial_level < 0:
                raise ValueError(level_text)
        except ValueError:
            if (campaign, level_text) not in self._refused:
                self._refused.add((campaign, level_text))
                log.warning("vicidial_campaigns %s: auto_dial_level %r is not a dial level", campaign, level_text)
            return None
        leads = (row or {}).get("dialable_leads")
        return DialerState(
            schema_version=SCHEMA_VERSION,
            event_id=f"vicidial/{campaign}/dialer/{now.strftime(FLOOR_ID_TIME)[:-3]}",
            campaign=campaign,
            event_time=now,
            dial_level=dial_level,
            calls_ringing=calls.ringing,
            calls_waiting=calls.waiting,
            longest_wait_seconds=calls.longest_wait_seconds,
            dialable_leads=int(leads) if leads is not None else None,
        )
