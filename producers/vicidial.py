"""VICIdial in: rows of ``vicidial_log`` (an export file or the live table) become call
attempts in the project's event contract; rows of a ``vicidial_agent_log`` export become
agent_state events (AgentLogMapper).

Mapping (see README "VICIdial"):
- uniqueid -> event_id, so a re-ingested row is the same event and counts once
- campaign_id -> campaign; call_date (the dialer's local time, pipeline.timezone) -> event time;
  one that lands more than pipeline.max_future_seconds ahead of this machine's clock is refused
  (future_event_time) with how far ahead it is: usually pipeline.timezone is not the dialer's zone
- length_in_sec -> talk seconds of a connected call, the hold before the drop of an
  abandoned one, the ring time otherwise; the campaign cost model prices all three
- status -> outcome and order through the configured status table
- phone_number -> keyed HMAC before anything leaves this module; user -> agent,
  user_group -> team, lead_id -> lead id, list_id -> segment ("list-<id>")
"""

from __future__ import annotations

import csv
import gzip
import io
import math
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import msgspec

from core.alerts import format_seconds
from core.config import Settings, StatusRule
from core.privacy import DEFAULT_REGION, callee_timezone, hash_phone, looks_like_phone_number, redact_phone_numbers
from core.schema import SCHEMA_VERSION, AgentState, AgentStateChange, CallAttempt, Lead, Outcome

REQUIRED_COLUMNS = ("uniqueid", "campaign_id", "call_date", "length_in_sec", "status")
# vicidial_agent_log: one row per agent call cycle, its seconds in each state in this order.
AGENT_LOG_SPANS: tuple[tuple[str, AgentState], ...] = (
    ("pause_sec", "paused"),
    ("wait_sec", "available"),
    ("talk_sec", "on_call"),
    ("dispo_sec", "wrap_up"),
)
AGENT_LOG_COLUMNS = ("user", "event_time", "campaign_id", *(column for column, _ in AGENT_LOG_SPANS))
# An agent who moves straight to another campaign is logged out of the old one this long before
# its first state in the new one: with several workers (each owning some campaigns' partitions)
# the newest event, which the warehouse keeps as the agent's state, is then the new campaign's.
SWITCH_GAP = timedelta(milliseconds=1)
NO_AGENT = {"", "VDAD", "VDCL", "NULL"}  # VICIdial's placeholders when no human agent took the call
# Columns that become ids or names of the event, or are echoed in a row's error: a phone
# number in one refuses the row (personal_data) before anything can repeat it.
NAME_COLUMNS = ("uniqueid", "campaign_id", "user", "user_group", "lead_id", "status", "call_date", "length_in_sec")
# A row read live is minutes old: a call_date up to this much short of a whole number of
# hours ahead of the clock is taken for one read in the wrong zone.
ZONE_OFFSET_SLACK_SECONDS = 15 * 60


class RowError(ValueError):
    """A row that cannot become an event; ``reason`` is a short stable code."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason


class FileFormatError(ValueError):
    """The file as a whole cannot be read (no header, missing columns, wrong delimiter)."""


@dataclass
class StatusTable:
    statuses: Mapping[str, StatusRule]
    campaign_statuses: Mapping[str, Mapping[str, StatusRule]]

    @classmethod
    def from_settings(cls, settings: Settings) -> StatusTable:
        return cls(settings.vicidial.statuses, settings.vicidial.campaign_statuses)

    def resolve(self, campaign: str, status: str) -> tuple[Outcome, bool]:
        """(outcome, is_order) for a status; RowError("unknown_status") when the table lacks it."""
        rule = self.campaign_statuses.get(campaign, {}).get(status) or self.statuses.get(status)
        if rule is None:
            raise RowError(
                "unknown_status",
                f"status {status!r} of campaign {campaign!r} is not in the status "
                "table; add it under [vicidial.campaign_statuses] with its flags",
            )
        return outcome_of(rule), bool(rule.sale and rule.human_answered and not rule.dropped)


def outcome_of(rule: StatusRule) -> Outcome:
    if rule.dropped:
        return Outcome.ABANDONED
    if rule.human_answered:
        return Outcome.CONNECTED
    return Outcome(rule.outcome or Outcome.NO_ANSWER.value)


@dataclass
class RowMapper:
    settings: Settings
    hmac_key: bytes
    table: StatusTable = field(init=False)

    def __post_init__(self):
        self.table = StatusTable.from_settings(self.settings)

    def attempt(self, row: Mapping[str, str]) -> CallAttempt:
        """One vicidial_log row as a call attempt, or RowError saying what is wrong with it."""

        def value(name: str) -> str:
            return (row.get(name) or "").strip()

        for name in REQUIRED_COLUMNS:
            if not value(name):
                raise RowError("missing_field", f"{name} is empty")
        region = self.settings.pipeline.phone_region
        for name in (*NAME_COLUMNS, self.settings.vicidial.segment_column):
            if value(name) and looks_like_phone_number(value(name), region):
                raise RowError(
                    "personal_data",
                    f"{name} looks like a phone number; only phone_number may hold "
                    "one (it is hashed): check the export's columns",
                )
        campaign, status = value("campaign_id"), value("status").upper()
        outcome, is_order = self.table.resolve(campaign, status)
        try:
            length = float(value("length_in_sec"))
        except ValueError:
            raise RowError("bad_number", f"length_in_sec {value('length_in_sec')!r} is not a number") from None
        if length < 0:
            raise RowError("negative_duration", f"length_in_sec is {length:g}")
        event_time = self._event_time(value("call_date"))
        phone = value("phone_number")
        segment_column = self.settings.vicidial.segment_column
        segment = (
            f"{segment_column.removesuffix('_id')}-{value(segment_column)}" if value(segment_column) else "unknown"
        )
        agent = value("user")
        # An abandoned call's length is its hold before the drop. vicidial_log keeps no queue wait for
        # an outbound call, so a connected call's is unknown: null, which the FTC figure shows beside
        # its rate, never 0, which would pass the call as connected in time.
        wait: float | None = {Outcome.ABANDONED: length, Outcome.CONNECTED: None}.get(outcome, 0.0)
        try:
            attempt = CallAttempt(
                schema_version=SCHEMA_VERSION,
                event_id=value("uniqueid"),
                campaign=campaign,
                event_time=event_time,
                outcome=outcome,
                lead=Lead(
                    segment=segment[:128],
                    lead_id=value("lead_id") or None,
                    phone_hash=hash_phone(
                        phone, self.hmac_key, self.settings.pipeline.phone_region, value("phone_code")
                    )
                    if phone
                    else None,
                ),
                ring_seconds=length if outcome not in (Outcome.CONNECTED, Outcome.ABANDONED) else 0.0,
                wait_seconds=wait,
                talk_seconds=length if outcome is Outcome.CONNECTED else 0.0,
                order=is_order,
                agent=None if agent.upper() in NO_AGENT else agent[:128],
                team=value("user_group")[:128] or None,
                # Read from the number before it is hashed, for the calling-hours rule.
                callee_timezone=callee_timezone(phone, self.settings.pipeline.phone_region, value("phone_code"))
                if phone
                else None,
            )
        except (msgspec.ValidationError, TypeError, ValueError) as exc:
            raise RowError("schema_violation", str(exc)) from None
        refused = self.settings.event_screen(attempt)  # the worker's checks: [limits], no number in an id
        if refused is not None:
            raise RowError(*refused)
        return attempt

    def _event_time(self, call_date: str) -> datetime:
        try:
            local = datetime.fromisoformat(call_date)
        except ValueError:
            raise RowError("bad_timestamp", f"call_date {call_date!r} is not 'YYYY-MM-DD HH:MM:SS'") from None
        if local.tzinfo is None:  # VICIdial writes the server's local time
            local = local.replace(tzinfo=self.settings.zone)
        event_time = local.astimezone(timezone.utc)
        now = datetime.now(timezone.utc)
        if event_time > now + timedelta(seconds=self.settings.pipeline.max_future_seconds):
            raise RowError("future_event_time", self._skew_explained(call_date, event_time, now))
        return event_time

    def _skew_explained(self, call_date: str, event_time: datetime, now: datetime) -> str:
        """Why a call_date lands ahead of the clock, and what to fix. A call_date is when the call
        started, so read in the right zone it is never ahead; just under a whole number of hours
        ahead is a call_date read in the wrong zone."""
        zone = self.settings.pipeline.timezone
        ahead = (event_time - now).total_seconds()
        read_as = f"call_date {call_date!r} read in pipeline.timezone ({zone}) is {event_time.isoformat()}"
        hours = math.ceil(ahead / 3600)  # a zone offset, less the row's age
        if hours * 3600 - ahead <= ZONE_OFFSET_SLACK_SECONDS:
            return (
                f"{read_as}, {hours} hour{'s' if hours > 1 else ''} ahead of this machine's clock; "
                f"is pipeline.timezone ({zone}) the dialer's zone?"
            )
        told = f"{ahead / 3600:.1f} hours" if ahead >= 3600 else format_seconds(ahead)
        return (
            f"{read_as}, {told} ahead of this machine's clock (pipeline.max_future_seconds allows "
            f"{self.settings.pipeline.max_future_seconds} s); is the dialer's clock right, and is "
            f"pipeline.timezone ({zone}) the dialer's zone?"
        )


# -- reading export files ---------------------------------------------------------------


def open_text(path: Path) -> io.TextIOBase:
    """A text stream over a plain or gzip file (by its magic bytes, not its name)."""
    with path.open("rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    raw = gzip.open(path, "rb") if gzipped else path.open("rb")
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")


def _header(header_line: str) -> tuple[str, list[str]]:
    """(delimiter, lower-case column names) of an export's header line."""
    delimiter = max(("\t", ",", ";", "|"), key=header_line.count)
    return delimiter, [name.strip().strip('"').lower() for name in next(csv.reader([header_line], delimiter=delimiter))]


def export_table(path: Path) -> str:
    """Which VICIdial table an export holds, by its header: ``vicidial_agent_log`` (agent
    time: pause_sec, wait_sec, talk_sec, dispo_sec) or ``vicidial_log`` (calls)."""
    with open_text(path) as stream:
        _, header = _header(stream.readline())
    return "vicidial_agent_log" if set(AGENT_LOG_COLUMNS) <= set(header) else "vicidial_log"


def read_rows(
    stream: io.TextIOBase, required: tuple[str, ...] = REQUIRED_COLUMNS, table: str = "vicidial_log"
) -> Iterator[tuple[int, dict[str, str] | RowError]]:
    """(line number, row) for each data line of a CSV or TSV export of ``table`` with a header row.

    The delimiter is whichever of tab, comma or semicolon the header uses; a header
    without the ``required`` columns raises FileFormatError naming what is missing.
    """
    header_line = stream.readline()
    if not header_line.strip():
        raise FileFormatError(f"the file is empty: expected a header row naming the {table} columns")
    delimiter, header = _header(header_line)
    missing = [name for name in required if name not in header]
    if missing and len(header) == 1:
        raise FileFormatError(
            f"line 1: found no tab, comma, semicolon or pipe between column names, so the header lacks "
            f"{', '.join(missing)}. Expected a {table} export with a header row, comma- or tab-separated."
        )
    if missing:
        raise FileFormatError(
            f"line 1: the header lacks {', '.join(missing)} (read {len(header)} column(s) split on "
            f"{_delimiter_name(delimiter)}: {', '.join(header[:6])}{'…' if len(header) > 6 else ''}). "
            f"Expected a {table} export with a header row, comma- or tab-separated."
        )
    reader = csv.reader(stream, delimiter=delimiter)
    line = 1
    for fields in reader:
        line = reader.line_num + 1
        if not fields or all(not f.strip() for f in fields):
            continue
        if len(fields) != len(header):
            yield line, RowError("wrong_column_count", f"{len(fields)} field(s) where the header has {len(header)}")
            continue
        # mysql -e writes SQL NULL as the word NULL
        yield line, {name: ("" if v == "NULL" else v) for name, v in zip(header, fields)}


def _delimiter_name(delimiter: str) -> str:
    return {"\t": "tabs", ",": "commas", ";": "semicolons", "|": "pipes"}[delimiter]


@dataclass
class IngestSummary:
    read: int = 0
    published: int = 0
    duplicates: int = 0
    rejected: Counter = field(default_factory=Counter)
    unknown_statuses: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)  # the first few problems, with line numbers
    phone_region: str = DEFAULT_REGION  # a number a row's error repeats is taken out of its example

    def reject(self, line: int, error: RowError, row: Mapping[str, str] | None = None) -> None:
        self.rejected[error.reason] += 1
        if error.reason == "unknown_status" and row is not None:
            self.unknown_statuses[(row.get("status") or "").strip().upper()] += 1
        if len(self.examples) < 10:
            self.examples.append(redact_phone_numbers(f"line {line}: {error.reason}: {error}", self.phone_region)[0])


# -- vicidial_agent_log: agent time ---------------------------------------------------------


@dataclass(frozen=True)
class AgentCycle:
    """One vicidial_agent_log row, read: an agent's call cycle from ``start`` (UTC)."""

    line: int
    user: str
    campaign: str
    team: str | None
    start: datetime
    seconds: tuple[float, ...]  # per AGENT_LOG_SPANS

    @property
    def end(self) -> datetime:
        return self.start + timedelta(seconds=sum(self.seconds))


@dataclass
class AgentLogMapper:
    """vicidial_agent_log rows -> agent_state events whose spans hold the row's seconds.

    A row is one call cycle of one agent: ``pause_sec`` paused, then ``wait_sec`` available,
    ``talk_sec`` on call (dead time after the customer hung up included, as VICIdial counts
    it) and ``dispo_sec`` in wrap-up, from ``event_time`` (the dialer's local time). Each
    state with seconds starts with an event; a long one is sent again every half of
    agents.timeout_seconds (the worker takes an agent silent that long for logged out).
    After an agent's last row, or before a gap to its next, a logged_out event ends the
    cycle. A row that starts before the previous one of its agent ended starts where that
    one ended: the agent's seconds add up to the rows' sums either way.

    Event ids are the user, the state and its time, so a file ingested again is the same
    events.
    """

    settings: Settings

    def cycle(self, line: int, row: Mapping[str, str]) -> AgentCycle:
        """One row read, or RowError saying what is wrong with it."""

        def value(name: str) -> str:
            return (row.get(name) or "").strip()

        for name in ("user", "event_time", "campaign_id"):
            if not value(name):
                raise RowError("missing_field", f"{name} is empty")
        seconds = []
        for column, _ in AGENT_LOG_SPANS:
            text = value(column) or "0"
            try:
                number = float(text)
            except ValueError:
                raise RowError("bad_number", f"{column} {text!r} is not a number") from None
            if not math.isfinite(number) or number < 0:
                raise RowError("negative_duration", f"{column} is {text}")
            if number > self.settings.limits.max_call_seconds:
                raise RowError(
                    "out_of_range",
                    f"{column} is {number:g}, above [limits].max_call_seconds "
                    f"({self.settings.limits.max_call_seconds:g})",
                )
            seconds.append(number)
        try:
            local = datetime.fromisoformat(value("event_time"))
        except ValueError:
            raise RowError(
                "bad_timestamp", f"event_time {value('event_time')!r} is not 'YYYY-MM-DD HH:MM:SS'"
            ) from None
        if local.tzinfo is None:
            local = local.replace(tzinfo=self.settings.zone)
        return AgentCycle(
            line,
            value("user")[:128],
            value("campaign_id")[:128],
            value("user_group")[:128] or None,
            local.astimezone(timezone.utc),
            tuple(seconds),
        )

    def events(self, cycles: list[AgentCycle]) -> Iterator[tuple[AgentCycle, AgentStateChange]]:
        """Every agent's events in time order, each with the row it came from."""
        keepalive = timedelta(seconds=max(1.0, self.settings.agents.timeout_seconds / 2))
        by_agent: dict[str, list[AgentCycle]] = {}
        for cycle in cycles:
            by_agent.setdefault(cycle.user, []).append(cycle)
        for rows in by_agent.values():
            rows = sorted((cycle for cycle in rows if any(cycle.seconds)), key=lambda cycle: (cycle.start, cycle.line))
            ended: datetime | None = None
            for index, cycle in enumerate(rows):
                at = cycle.start if ended is None else max(cycle.start, ended)
                for (_, state), seconds in zip(AGENT_LOG_SPANS, cycle.seconds):
                    if seconds <= 0:
                        continue
                    span_end = at + timedelta(seconds=seconds)
                    while at < span_end:
                        yield cycle, self._event(cycle, state, at)
                        at += keepalive
                    at = span_end
                ended = at
                following = rows[index + 1] if index + 1 < len(rows) else None
                if following is None or following.start > ended:
                    yield cycle, self._event(cycle, "logged_out", ended)
                elif following.campaign != cycle.campaign:
                    # Straight on to another campaign: logged out of this one a moment before the
                    # first state there. Events are keyed by campaign, so this one's worker (maybe
                    # not the next one's) stops counting the agent here, and the newest event is
                    # the next campaign's whichever worker lands last.
                    yield cycle, self._event(cycle, "logged_out", max(cycle.start, ended - SWITCH_GAP))

    @staticmethod
    def _event(cycle: AgentCycle, state: AgentState, at: datetime) -> AgentStateChange:
        return AgentStateChange(
            schema_version=SCHEMA_VERSION,
            event_id=f"vicidial_agent_log/{cycle.user}/{state}/{at.strftime('%Y%m%dT%H%M%S.%f')[:-3]}",
            campaign=cycle.campaign,
            event_time=at,
            agent=cycle.user,
            state=state,
            team=cycle.team,
        )
