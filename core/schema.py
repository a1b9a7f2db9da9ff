"""The event contract: versioned JSON events from the dialer, validated with msgspec.

A Kafka record on the call-events topic holds either one event (a JSON object) or a
batch of events (a JSON array), so a producer may pack many events into one record.
Every event names its ``type`` and ``schema_version``. The JSON Schema in
``schemas/call-event.v1.schema.json`` is generated from these classes
(``callpulse schema``) and a test keeps the two identical.
"""

from __future__ import annotations

import enum
import functools
import math
import zoneinfo
from datetime import datetime, timezone
from typing import Annotated, Literal

import msgspec

from core.privacy import DEFAULT_REGION, looks_like_phone_number

SCHEMA_VERSION = 1
SUPPORTED_SCHEMA_VERSIONS = frozenset({1})

NonNegative = Annotated[float, msgspec.Meta(ge=0)]
# Upper bounds are configurable ([limits]), so the worker checks them (EventScreen), not the static schema.
Seconds = Annotated[
    float,
    msgspec.Meta(
        ge=0,
        description="seconds; at most [limits].max_call_seconds "
        "(default 86400), or the event is refused as out_of_range",
    ),
]
Money = Annotated[
    float,
    msgspec.Meta(
        ge=0, description="at most [limits].max_cost (default 10000), or the event is refused as out_of_range"
    ),
]
OrderValue = Annotated[
    float,
    msgspec.Meta(
        ge=0, description="at most [limits].max_order_value (default 1e7), or the event is refused as out_of_range"
    ),
]
MAX_IDENTIFIER_LENGTH = 128  # campaign, event id, segment, agent and team names
Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_IDENTIFIER_LENGTH)]
PhoneHash = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$", description="HMAC-SHA256 of the phone number")]
UtcTime = Annotated[datetime, msgspec.Meta(tz=True, description="RFC 3339 timestamp with offset, normally UTC")]
# The called person's zone, found from the number at the edge before it is hashed (libphonenumber's
# time-zone data); a zone name is not personal data. The worker dead-letters a name tzdata lacks.
IanaZone = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=64,
        description="IANA time zone of the called number (Asia/Tokyo); one that "
        "tzdata does not know is refused as unknown_timezone",
    ),
]


class Outcome(str, enum.Enum):
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    MACHINE = "machine"
    FAX = "fax"
    INVALID_NUMBER = "invalid_number"
    CONNECTED = "connected"
    ABANDONED = "abandoned"


LIVE_ANSWER_OUTCOMES = frozenset({Outcome.CONNECTED, Outcome.ABANDONED})


class Lead(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Who was dialled, without personal data: the phone number only as a keyed HMAC."""

    segment: Identifier
    response_score: Annotated[float, msgspec.Meta(ge=0, le=1)] | None = None
    phone_hash: PhoneHash | None = None
    lead_id: Identifier | None = None


class CallAttempt(msgspec.Struct, frozen=True, tag="call_attempt", tag_field="type", forbid_unknown_fields=True):
    """One outbound dial attempt, emitted when its outcome is final.

    ``event_time`` is when the attempt ended (the record became final), in UTC.
    ``wait_seconds`` is how long a live answer waited for an agent; for an abandoned
    call it is the time until the dialer dropped it. Absent (null) on a connected call, the
    wait is unknown: the US FTC's 2-second rule cannot judge the call, which is counted apart
    (live_answers_unjudged) and shown with the FTC rate, which counts it as connected in time
    (a lower bound), and its upper bound, which counts it late.
    """

    schema_version: int
    event_id: Identifier
    campaign: Identifier
    event_time: UtcTime
    outcome: Outcome
    lead: Lead
    ring_seconds: Seconds = 0.0
    wait_seconds: Seconds | None = None
    talk_seconds: Seconds = 0.0
    order: bool = False
    order_value: OrderValue = 0.0
    # Optional cost fields; when all are absent the campaign cost model prices the attempt.
    cost: Money | None = None
    telephony_cost: Money | None = None
    agent_cost: Money | None = None
    agent: Identifier | None = None
    team: Identifier | None = None
    # Where the called person is, for the calling-hours rule; absent, the call's hours are not judged.
    callee_timezone: IanaZone | None = None

    @property
    def is_live_answer(self) -> bool:
        return self.outcome in LIVE_ANSWER_OUTCOMES


# What an agent is doing, as an agent_state event says it.
AgentState = Literal["available", "on_call", "wrap_up", "paused", "logged_out"]


class AgentStateChange(msgspec.Struct, frozen=True, tag="agent_state", tag_field="type", forbid_unknown_fields=True):
    """An agent moved to a new state; feeds staffing and pacing figures."""

    schema_version: int
    event_id: Identifier
    campaign: Identifier
    event_time: UtcTime
    agent: Identifier
    state: AgentState
    team: Identifier | None = None


AGENT_STATES = ("available", "on_call", "wrap_up", "paused", "logged_out")
# The schema's own counts: calls ringing or waiting, leads left. Never negative.
Count = Annotated[int, msgspec.Meta(ge=0)]


class DialerState(msgspec.Struct, frozen=True, tag="dialer_state", tag_field="type", forbid_unknown_fields=True):
    """A snapshot of one campaign's dialer, sent every few seconds: what a supervisor paces by.

    ``dial_level`` is the lines the dialer keeps ringing per free agent (VICIdial's
    auto_dial_level); ``calls_waiting`` are calls a person answered that wait for an agent
    (each one a drop in the making); ``longest_wait_seconds`` the longest of their waits."""

    schema_version: int
    event_id: Identifier
    campaign: Identifier
    event_time: UtcTime
    dial_level: NonNegative
    calls_ringing: Count
    calls_waiting: Count
    longest_wait_seconds: Seconds | None = None
    dialable_leads: Count | None = None


Event = CallAttempt | AgentStateChange | DialerState


class Rejection(msgspec.Struct, frozen=True):
    """Why (part of) a Kafka record could not be used; becomes a dead letter."""

    reason: str  # a short stable code from REJECTION_REASONS
    detail: str
    raw: bytes
    index: int | None = None  # position inside a batch record


# Every reason a record or batch item can be refused for, so operators can filter
# dead letters and the counters by a code that never changes with the wording.
REJECTION_REASONS = {
    "invalid_json": "not JSON, or not a JSON object or array",
    "unsupported_schema_version": "a schema_version this worker does not read",
    "missing_field": "a required field is missing",
    "wrong_type": "a field has the wrong type (e.g. a string where a number belongs)",
    "invalid_value": "a value outside its range or format (a score above 1, a timestamp without offset, "
    "a phone_hash that is not an HMAC)",
    "negative_duration": "a ring, wait or talk time below zero",
    "negative_value": "a cost or order value below zero",
    "unknown_outcome": "an outcome that is not one of the defined outcomes",
    "unknown_event_type": "a type other than call_attempt, agent_state or dialer_state",
    "unknown_state": "an agent_state whose state is not available, on_call, wrap_up, paused or logged_out",
    "negative_count": "a dialer_state count (calls_ringing, calls_waiting, dialable_leads) below zero",
    "unknown_field": "a field the schema does not define (e.g. a raw phone number)",
    "schema_violation": "any other breach of the event schema",
    "future_event_time": "event_time further ahead of the worker's clock than pipeline.max_future_seconds",
    "event_time_too_old": "event_time before 2000-01-01, which no dialer sends and the warehouse's "
    "DateTime columns cannot all hold",
    "too_large": "a record larger than worker.max_record_bytes",
    "too_deeply_nested": "JSON nested deeper than the decoder follows (a hostile or broken producer)",
    "empty_record": "a record without a value (a tombstone); zero bytes are invalid_json",
    "late_event": "event_time behind its campaign's newest event by more than the allowed lateness",
    "conflicting_duplicate": "an event id already counted for a call with other content (time, outcome, order, "
    "talk time or segment); an id names one call, so it is never counted twice",
    "personal_data": "a phone number in an id or a name (event_id, campaign, agent, team, lead.segment, "
    "lead.lead_id); numbers travel only as their HMAC in lead.phone_hash",
    "out_of_range": "a duration, cost or order value above its [limits] setting, or a number too large to read",
    "unknown_timezone": "a callee_timezone that is not an IANA time zone name tzdata knows; the call's local "
    "hours are never guessed",
    "warehouse_refused": "a call the warehouse refused to store although it answered (its insert failed on "
    "every try); set aside alone, uncounted, so the rest of the stream lands",
}


def schema_reason(detail: str) -> str:
    """The reason code for one of msgspec's validation messages."""
    if detail.startswith("Number out of range"):
        return "out_of_range"
    if "missing required field" in detail:
        return "missing_field"
    if "unknown field" in detail:
        return "unknown_field"
    if "at `$.type`" in detail:
        return "unknown_event_type"
    if "at `$.callee_timezone`" in detail and ", got `" not in detail:
        return "unknown_timezone"
    if "at `$.outcome`" in detail and "Invalid enum value" in detail:
        return "unknown_outcome"
    if "at `$.state`" in detail and "Invalid enum value" in detail:
        return "unknown_state"
    if ">= 0" in detail and detail.startswith("Expected `int`"):
        return "negative_count"
    if ">= 0" in detail:
        return "negative_duration" if "_seconds`" in detail else "negative_value"
    if detail.startswith("Expected `") and ", got `" in detail:
        return "wrong_type"
    if detail.startswith("Expected `"):  # right type, outside its range or format
        return "invalid_value"
    return "schema_violation"


class Limits(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """[limits]: the largest value each number of an event may hold. Anything above is a
    producer's bug (or an attack), and counted it would swamp a campaign's totals: two
    talk_seconds of 1.7e308 made an AHT of inf. Such an event is dead-lettered as out_of_range."""

    # ring_seconds, wait_seconds and talk_seconds, each and together: a call longer than a day is not a call.
    max_call_seconds: float = 86_400.0
    # cost, telephony_cost and agent_cost of one attempt.
    max_cost: float = 10_000.0
    # order_value of one order.
    max_order_value: float = 10_000_000.0


# The limits an EventScreen applies unless given the configured ones.
DEFAULT_LIMITS = Limits()


@functools.cache
def known_timezones() -> frozenset[str]:
    """Every IANA zone name the installed tzdata holds: what callee_timezone may name."""
    return frozenset(zoneinfo.available_timezones())


DURATION_FIELDS = ("ring_seconds", "wait_seconds", "talk_seconds")
COST_FIELDS = ("cost", "telephony_cost", "agent_cost")
# A dialer snapshot's counts: the schema says only "not negative", and JSON's integers have no end.
SNAPSHOT_COUNT_FIELDS = ("calls_ringing", "calls_waiting", "dialable_leads")
MAX_DIALER_COUNT = 1_000_000_000


class EventScreen:
    """What the worker (and each producer at the edge) checks of a decoded event beyond its
    schema: no phone number in an id or a name, and every number finite and within [limits].

    An id holding a phone number is refused (personal_data), not scrubbed: scrubbed, two
    campaigns or two calls would become one, and the producer would never learn that it
    sends numbers where names belong. The reason never repeats the number.
    """

    REMEMBERED_NAMES = 100_000  # verdicts on campaign, agent, team and segment names kept at most

    def __init__(self, limits: Limits = DEFAULT_LIMITS, phone_region: str = DEFAULT_REGION):
        self.limits = limits
        self.phone_region = phone_region
        self._verdicts: dict[str | None, bool] = {None: False, "": False}

    def __call__(self, event: Event) -> tuple[str, str] | None:
        """(reason, detail) for an event to refuse, None for one to count."""
        names: tuple[str, str | None, str | None, str | None]
        if isinstance(event, CallAttempt):
            lead = event.lead
            names = (event.campaign, event.agent, event.team, lead.segment if lead else None)
            ids = (event.event_id, lead.lead_id if lead else None)
        elif isinstance(event, DialerState):  # a dialer snapshot names no agent
            names = (event.campaign, None, None, None)
            ids = (event.event_id, None)
        else:
            names = (event.campaign, event.agent, event.team, None)
            ids = (event.event_id, None)
        # Every event passes here. Names repeat from event to event (campaigns, teams), so
        # their verdicts are kept (None and "" are known clean); ids are new each time and
        # get a quick first look.
        known = self._verdicts.get
        if (
            known(names[0]) is not False
            or known(names[1]) is not False
            or known(names[2]) is not False
            or known(names[3]) is not False
            or looks_like_phone_number(ids[0], self.phone_region)
            or (ids[1] is not None and looks_like_phone_number(ids[1], self.phone_region))
        ):
            refused = self._personal_data(names, ids)
            if refused is not None:
                return refused
        if isinstance(event, DialerState):
            return self._snapshot_out_of_range(event)
        if not isinstance(event, CallAttempt):
            return None
        if event.callee_timezone is not None and event.callee_timezone not in known_timezones():
            return "unknown_timezone", (
                f"callee_timezone {event.callee_timezone!r} is not an IANA time zone "
                "tzdata knows (e.g. Asia/Tokyo, America/New_York); send none when the "
                "number's zone is unknown or ambiguous"
            )
        return self._out_of_range(event)

    def _personal_data(self, names: tuple, ids: tuple) -> tuple[str, str] | None:
        """The event's names and ids judged one by one: the first holding a phone number."""
        verdicts = self._verdicts
        for field, value in zip(("campaign", "agent", "team", "lead.segment"), names):
            if value and value not in verdicts:
                if len(verdicts) >= self.REMEMBERED_NAMES:
                    verdicts.clear()
                    verdicts.update({None: False, "": False})
                verdicts[value] = looks_like_phone_number(value, self.phone_region)
            if value and verdicts.get(value):
                return "personal_data", self._personal(field)
        for field, value in zip(("event_id", "lead.lead_id"), ids):
            if value and looks_like_phone_number(value, self.phone_region):
                return "personal_data", self._personal(field)
        return None

    @staticmethod
    def _personal(name: str) -> str:
        return (
            f"{name} looks like a phone number; personal data never goes in an id or a name: send the "
            "number only as its HMAC (lead.phone_hash) and give this field the dialer's id or name"
        )

    def _snapshot_out_of_range(self, event: DialerState) -> tuple[str, str] | None:
        """A dialer snapshot's dial level must be finite, its counts within what a dialer counts
        (and a UInt64 column holds: one past it made the floor's insert fail on every retry), and
        a wait no longer than a call may be."""
        if not math.isfinite(event.dial_level):
            return "out_of_range", f"dial_level is {event.dial_level!r}, not a finite number"
        for name in SNAPSHOT_COUNT_FIELDS:
            count = getattr(event, name)
            if count is not None and count > MAX_DIALER_COUNT:
                return "out_of_range", f"{name} {count:.6g} is above {MAX_DIALER_COUNT:g}, more than any dialer counts"
        wait = event.longest_wait_seconds
        if wait is not None and not wait <= self.limits.max_call_seconds:
            return "out_of_range", (
                f"longest_wait_seconds {wait:.6g} is above limits.max_call_seconds ({self.limits.max_call_seconds:g})"
            )
        return None

    def _out_of_range(self, event: CallAttempt) -> tuple[str, str] | None:
        limits = self.limits
        # Every event passes here: the common case in a few comparisons (NaN compares false,
        # so a non-finite value always takes the long way).
        if (
            event.ring_seconds + (event.wait_seconds or 0.0) + event.talk_seconds <= limits.max_call_seconds
            and event.order_value <= limits.max_order_value
            and (event.cost is None or event.cost <= limits.max_cost)
            and (event.telephony_cost is None or event.telephony_cost <= limits.max_cost)
            and (event.agent_cost is None or event.agent_cost <= limits.max_cost)
        ):
            return None
        # Values are told to six significant figures: the field and its size are what matter,
        # and a long run of digits in a reason could itself be a phone number.
        checks = [
            (name, getattr(event, name), limits.max_call_seconds, "limits.max_call_seconds") for name in DURATION_FIELDS
        ]
        checks += [(name, getattr(event, name), limits.max_cost, "limits.max_cost") for name in COST_FIELDS]
        checks.append(("order_value", event.order_value, limits.max_order_value, "limits.max_order_value"))
        for name, value, limit, setting in checks:
            if value is None:
                continue
            if not math.isfinite(value):
                return "out_of_range", f"{name} is {value!r}, not a finite number"
            if value > limit:
                return "out_of_range", f"{name} {value:.6g} is above {setting} ({limit:g})"
        total = event.ring_seconds + (event.wait_seconds or 0.0) + event.talk_seconds
        if total > limits.max_call_seconds:
            return "out_of_range", (
                f"ring_seconds + wait_seconds + talk_seconds = {total:.6g} is above "
                f"limits.max_call_seconds ({limits.max_call_seconds:g})"
            )
        return None


DEFAULT_SCREEN = EventScreen()
_event_decoder = msgspec.json.Decoder(Event)
_batch_decoder = msgspec.json.Decoder(list[msgspec.Raw])
_events_decoder = msgspec.json.Decoder(list[Event])
_encoder = msgspec.json.Encoder()


def encode_event(event: Event) -> bytes:
    return _encoder.encode(event)


def encode_batch(events: list[Event]) -> bytes:
    return _encoder.encode(events)


# Older events would land as ClickHouse DateTime values near or before 1970, which fail
# to insert and would stall landing for every campaign.
EARLIEST_EVENT_TIME = datetime(2000, 1, 1, tzinfo=timezone.utc)
TOO_DEEP = "JSON nested deeper than the decoder's recursion limit"


def _decode_one(
    raw: bytes, index: int | None, newest_allowed: datetime | None, screen: EventScreen
) -> Event | Rejection:
    try:
        event = _event_decoder.decode(raw)
    except msgspec.ValidationError as exc:
        return Rejection(schema_reason(str(exc)), str(exc), bytes(raw), index)
    except msgspec.DecodeError as exc:
        return Rejection("invalid_json", str(exc), bytes(raw), index)
    except RecursionError:
        return Rejection("too_deeply_nested", TOO_DEEP, bytes(raw), index)
    if event.schema_version not in SUPPORTED_SCHEMA_VERSIONS:
        return Rejection(
            "unsupported_schema_version",
            f"schema_version {event.schema_version} is not one of {sorted(SUPPORTED_SCHEMA_VERSIONS)}",
            bytes(raw),
            index,
        )
    refused = screen(event)
    if refused is not None:
        return Rejection(*refused, bytes(raw), index)
    if event.event_time < EARLIEST_EVENT_TIME:
        return Rejection(
            "event_time_too_old",
            f"event_time {event.event_time.isoformat()} is before {EARLIEST_EVENT_TIME.date().isoformat()}",
            bytes(raw),
            index,
        )
    if newest_allowed is not None and event.event_time > newest_allowed:
        return Rejection(
            "future_event_time",
            f"event_time {event.event_time.isoformat()} is after "
            f"{newest_allowed.isoformat()}, the worker's clock plus pipeline.max_future_seconds",
            bytes(raw),
            index,
        )
    return event


def _decode_clean_batch(value: bytes, newest_allowed: datetime | None, screen: EventScreen) -> list[Event] | None:
    """The batch's events in one decoder call when every one of them is valid, else None
    (then each item is decoded alone, to refuse only the bad ones with their reasons)."""
    try:
        events = _events_decoder.decode(value)
    except (msgspec.DecodeError, RecursionError):
        return None
    newest = newest_allowed or datetime.max.replace(tzinfo=timezone.utc)
    for event in events:
        if (
            event.schema_version not in SUPPORTED_SCHEMA_VERSIONS
            or not EARLIEST_EVENT_TIME <= event.event_time <= newest
            or screen(event) is not None
        ):
            return None
    return events


def decode_record(
    value: bytes | None, newest_allowed: datetime | None = None, screen: EventScreen = DEFAULT_SCREEN
) -> tuple[list[Event], list[Rejection]]:
    """Decode one Kafka record value into valid events and rejections.

    A bad event inside a batch rejects only that event: the rest still count. With
    ``newest_allowed``, an event stamped after it is rejected as future_event_time.
    ``screen`` refuses phone numbers in ids and numbers beyond the configured limits
    (pass ``EventScreen(settings.limits, settings.pipeline.phone_region)``).
    """
    if value is None:
        return [], [Rejection("empty_record", "the record has no value (a tombstone)", b"")]
    if value[:1] == b"[" or bytes(value[:64]).lstrip()[:1] == b"[":
        whole = _decode_clean_batch(value, newest_allowed, screen)
        if whole is not None:
            return whole, []
        try:
            parsed = _batch_decoder.decode(value)
        except msgspec.DecodeError as exc:
            return [], [Rejection("invalid_json", str(exc), bytes(value))]
        except RecursionError:
            return [], [Rejection("too_deeply_nested", TOO_DEEP, bytes(value))]
        items: list[tuple[msgspec.Raw | bytes, int | None]] = [(raw, index) for index, raw in enumerate(parsed)]
    else:
        items = [(value, None)]
    events: list[Event] = []
    rejections: list[Rejection] = []
    for raw, index in items:
        result = _decode_one(raw, index, newest_allowed, screen)
        if isinstance(result, Rejection):
            rejections.append(result)
        else:
            events.append(result)
    return events, rejections


def json_schema() -> dict:
    """The JSON Schema of one record value: an event, or an array of events."""
    schema = msgspec.json.schema(Event | list[Event])
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = f"CallPulse call-event record, schema_version {SCHEMA_VERSION}"
    return schema


class StopListEntry(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One customer on the stop list, as a record on the compacted stop-list topic.

    The record key is ``phone_hash``; removing a customer is a tombstone (a null value)
    for that key. ``flagged_at`` is when the customer asked not to be called: a dial
    placed after it is a violation.
    """

    phone_hash: PhoneHash
    flagged_at: UtcTime
    reason: Annotated[str, msgspec.Meta(max_length=200)] = "opt_out"
    source: Annotated[str, msgspec.Meta(max_length=200)] = ""


_stop_list_decoder = msgspec.json.Decoder(StopListEntry)


def encode_stop_list_entry(entry: StopListEntry) -> bytes:
    return _encoder.encode(entry)


def decode_stop_list_entry(raw: bytes) -> StopListEntry:
    return _stop_list_decoder.decode(raw)
