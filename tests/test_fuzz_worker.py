"""Hypothesis-generated bad payloads, interleaved with valid events, fed to the real worker
over the embedded broker: the worker survives, dead-letters every bad item with a reason
that points back at its record, and counts every valid event exactly once.

How Hypothesis is used, and why: a worker run takes seconds, so Hypothesis cannot run
(and shrink) the property once per example. Instead it generates the records: an inner
``@given`` function with ``max_examples=RECORDS``, a fixed ``@seed`` and the generate
phase only collects one record per example, in order, so every category is interleaved
with the others. All of them then go to one broker topic and one worker, and the
property is checked once over the whole lot. The seed makes the records reproducible
(event times are relative to yesterday, so the worker's wall-clock checks see the same
thing on any day); there is no shrinking, so a failure names the record's key, its
category and its bytes instead.
"""

from __future__ import annotations

import base64
import json
import string
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, Phase, given, seed
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from core import schema
from core.config import load_settings
from core.privacy import REDACTED, redact_phone_numbers
from core.schema import Outcome
from producers.publisher import EventPublisher
from streams.kafka_admin import read_records, read_topic
from warehouse.client import connect

pytestmark = pytest.mark.integration

SEED = 20261123
RECORDS = 1500
START = (datetime.now(timezone.utc) - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
# Every valid event falls within five minutes, well inside the 10-minute lateness, so
# no valid event is "late" whichever partition the worker happens to read first.
SPREAD_MS = 300_000
CAMPAIGNS = ("fuzz-alpha", "fuzz-beta", "fuzz-ガンマ")
SEGMENTS = ("seniors", "homemakers", "students", "salaried")
OUTCOMES = tuple(o.value for o in Outcome)
REQUIRED = ("type", "schema_version", "event_id", "campaign", "event_time", "outcome", "lead")
DURATIONS = ("ring_seconds", "wait_seconds", "talk_seconds")
# Small enough that a too-large record is cheap to send (kafka-python refuses records over
# 1 MiB, the production default); the worker takes the same branch whatever the limit.
MAX_RECORD_BYTES = 16_384
# What the worker may call an item that is valid JSON but not a valid event.
NOT_JSON = "invalid_json"
REASONS = set(getattr(schema, "REJECTION_REASONS", ()))
HAS = {reason: reason in REASONS for reason in ("future_event_time", "too_large", "missing_field", "wrong_type")}


def reason(specific: str, *also: str) -> frozenset[str]:
    """The reason code a category must get: the specific one once the worker has it, else
    the generic one it used before the codes were split."""
    return frozenset({specific, *also}) if specific in REASONS or not REASONS else frozenset({"schema_violation"})


ANY_SCHEMA_REASON = frozenset(
    REASONS - {NOT_JSON, "too_large", "late_event", "future_event_time"}
    or {"schema_violation", "unsupported_schema_version"}
)
ANY_REASON = frozenset(REASONS or {NOT_JSON, "schema_violation", "unsupported_schema_version"})


# -- what one record is ----------------------------------------------------------------


@dataclass
class Bad:
    index: int | None  # position in a batch record, None for a whole record
    raw: bytes  # what the dead letter's original must decode to
    reasons: frozenset[str]
    prefix_only: bool = False  # a too-large record may be kept truncated


@dataclass
class Sent:
    category: str
    value: bytes
    bad: list[Bad] = field(default_factory=list)
    good_ids: list[str] = field(default_factory=list)  # call attempts the worker must count
    agent_states: int = 0


# -- strategies ------------------------------------------------------------------------


def iso(moment: datetime, offset_hours: int) -> str:
    text = moment.astimezone(timezone(timedelta(hours=offset_hours))).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


names = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=24)
seconds = st.floats(0, 5_000, allow_nan=False)
event_times = st.builds(
    lambda ms, tz: iso(START + timedelta(milliseconds=ms), tz),
    st.integers(0, SPREAD_MS),
    st.sampled_from([0, 0, 9, -5, 5]),
)


@st.composite
def call_attempts(draw) -> dict:
    outcome = draw(st.sampled_from(OUTCOMES))
    event = {
        "type": "call_attempt",
        "schema_version": 1,
        "event_id": None,
        "campaign": draw(st.sampled_from(CAMPAIGNS)),
        "event_time": draw(event_times),
        "outcome": outcome,
        "lead": {"segment": draw(st.sampled_from(SEGMENTS))},
    }
    lead = event["lead"]
    if draw(st.booleans()):
        lead["response_score"] = draw(st.floats(0, 1))
    if draw(st.booleans()):
        lead["phone_hash"] = draw(st.text("0123456789abcdef", min_size=64, max_size=64))
    if draw(st.booleans()):
        lead["lead_id"] = draw(names)
    for name in DURATIONS:
        if draw(st.booleans()):
            event[name] = draw(seconds)
    if outcome == "connected" and draw(st.booleans()):
        event["order"] = True
        event["order_value"] = draw(seconds)
    if draw(st.integers(0, 3)) == 0:
        event["cost"] = draw(seconds)
    for name in ("agent", "team"):
        if draw(st.booleans()):
            event[name] = draw(names)
    return event


@st.composite
def agent_states(draw) -> dict:
    return {
        "type": "agent_state",
        "schema_version": 1,
        "event_id": None,
        "campaign": draw(st.sampled_from(CAMPAIGNS)),
        "event_time": draw(event_times),
        "agent": draw(names),
        "state": draw(st.sampled_from(["available", "on_call", "wrap_up", "paused", "logged_out"])),
    }


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=("Cs",)), max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)
# Wrong in type only: never an int where a float belongs (msgspec rightly takes that).
ILL_TYPED = {
    "event_id": [7, True, None, ["x"]],
    "campaign": [42, {"name": "x"}, False],
    "event_time": [1_794_787_200, True, ["2026-11-23T01:00:00Z"]],
    "schema_version": ["1", 1.5, True, None],
    "ring_seconds": ["10", True, [1.0], {"s": 1}],
    "talk_seconds": ["60", False],
    "order": [1, "true", None],
    "lead": ["seniors", 3, [], None],
    "agent": [5, ["a"]],
    "outcome": [3, None, ["connected"]],
}
# The right type, outside its range or format.
RAW_NUMBER = b"09012345678"  # a producer that sends the number where its HMAC belongs
INVALID = {
    "campaign": ["", "c" * 129],
    "event_id": [""],
    "event_time": ["2026-11-23T01:00:00", "yesterday", "2026-13-45T00:00:00Z"],
    "lead.response_score": [1.5, -0.1],
    "lead.phone_hash": [RAW_NUMBER.decode(), "A" * 64, "xyz"],
    "lead.segment": [""],
}
ALMOST_JSON = [
    b"{'type': 'call_attempt'}",
    b'{"type": "call_attempt",}',
    b"{not json",
    b"NaN",
    b"undefined",
    b"[1,2,,3]",
    b'{"event_time": 2026-11-23}',
    b"nul",
    b"tru",
    b'"unterminated',
    b"{",
    b"}",
    b"",
    b" ",
    b"[",
    b"]",
    b'{"type":"call_attempt" "schema_version":1}',
]


def set_path(event: dict, path: str, value) -> dict:
    event = json.loads(json.dumps(event))
    *parents, leaf = path.split(".")
    node = event
    for part in parents:
        node = node[part]
    node[leaf] = value
    return event


GOOD_EVENTS = call_attempts()


@st.composite
def bad_event(draw, base=GOOD_EVENTS) -> tuple[str, object, frozenset[str]]:
    """A JSON value that is one bad event: (category, value, the reasons it may get)."""
    kinds = [
        "missing_fields",
        "extra_fields",
        "wrong_schema_version",
        "negative_duration",
        "negative_cost",
        "unknown_outcome",
        "ill_typed",
        "invalid_value",
        "wrong_shape",
    ]
    if HAS["future_event_time"]:
        kinds.append("future_event_time")
    kind = draw(st.sampled_from(kinds))
    event = draw(base)
    event["event_id"] = "bad"
    if kind == "missing_fields":
        gone = draw(st.sets(st.sampled_from(REQUIRED + ("lead.segment",)), min_size=1))
        for name in gone:
            if name == "lead.segment":
                if "lead" in event:
                    event["lead"] = {k: v for k, v in event["lead"].items() if k != "segment"}
            else:
                event.pop(name, None)
        return kind, event, reason("missing_field")
    if kind == "extra_fields":
        extra = draw(
            st.sampled_from(["phone_number", "customer_name", "Campaign", "ring", "x"])
            | st.text(string.ascii_letters, min_size=1, max_size=10).filter(lambda k: k not in event)
        )
        where = draw(st.sampled_from(["", "lead."]))
        if where and extra in ("segment", "response_score", "phone_hash", "lead_id"):
            where = ""
        if not where and extra in schema.CallAttempt.__struct_fields__ + ("type",):
            extra = "x_" + extra
        return kind, set_path(event, where + extra, draw(json_values)), reason("unknown_field")
    if kind == "wrong_schema_version":
        version = draw(st.integers(-(2**63), 2**63 - 1).filter(lambda v: v not in schema.SUPPORTED_SCHEMA_VERSIONS))
        return kind, {**event, "schema_version": version}, frozenset({"unsupported_schema_version"})
    if kind == "negative_duration":
        name = draw(st.sampled_from(DURATIONS))
        return (
            kind,
            {**event, name: draw(st.floats(max_value=-1e-6, allow_infinity=False))},
            reason("negative_duration"),
        )
    if kind == "negative_cost":
        name = draw(st.sampled_from(["cost", "order_value", "telephony_cost", "agent_cost"]))
        return kind, {**event, name: draw(st.floats(max_value=-1e-6, allow_infinity=False))}, reason("negative_value")
    if kind == "unknown_outcome":
        outcome = draw(st.sampled_from(["CONNECTED", "answered", "", "dropped", " busy"]) | names)
        if outcome in OUTCOMES:
            outcome += "!"
        return kind, {**event, "outcome": outcome}, reason("unknown_outcome")
    if kind == "ill_typed":
        name = draw(st.sampled_from(sorted(ILL_TYPED)))
        return kind, {**event, name: draw(st.sampled_from(ILL_TYPED[name]))}, reason("wrong_type")
    if kind == "invalid_value":
        path = draw(st.sampled_from(sorted(INVALID)))
        return (
            kind,
            set_path(event, path, draw(st.sampled_from(INVALID[path]))),
            reason("invalid_value", "schema_violation", "negative_value"),
        )
    if kind == "future_event_time":
        ahead = draw(st.integers(86_400 + 3_600, 3_000 * 365 * 86_400))
        moment = min(datetime.now(timezone.utc) + timedelta(seconds=ahead), datetime(9999, 1, 1, tzinfo=timezone.utc))
        return kind, {**event, "event_time": iso(moment, 0)}, frozenset({"future_event_time"})
    value = draw(json_values)
    if isinstance(value, dict) and "type" in value:
        value.pop("type")  # never a well-formed event by accident
    return kind, value, ANY_SCHEMA_REASON


def dumps(value, indent) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=indent).encode()


def utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def named(event: dict) -> dict:
    """A valid event with an id, for payloads that are never counted, so need no unique one."""
    return {**event, "event_id": "uncounted"}


def looks_like_batch(raw: bytes) -> bool:
    return raw.lstrip()[:1] == b"["


@st.composite
def records(draw) -> tuple[str, dict]:
    """One record as (category, spec); ids are assigned in order afterwards."""
    kinds = {
        "valid": 6,
        "valid_agent_state": 1,
        "random_bytes": 1,
        "non_utf8": 1,
        "truncated_json": 1,
        "almost_json": 1,
        "bad_event": 5,
        "wrong_shape_batch": 1,
        "mixed_batch": 3,
        **({"too_large": 1} if HAS["too_large"] else {}),
    }
    kind = draw(st.sampled_from([k for k, weight in kinds.items() for _ in range(weight)]))
    indent = draw(st.sampled_from([None, None, 1]))
    if kind == "valid":
        return kind, {"events": [draw(call_attempts())], "indent": indent}
    if kind == "valid_agent_state":
        return kind, {"events": [draw(agent_states())], "indent": indent}
    if kind == "random_bytes":
        return kind, {"raw": draw(st.binary(max_size=300).filter(lambda b: not looks_like_batch(b)))}
    if kind == "non_utf8":
        head, tail = draw(st.binary(max_size=100)), draw(st.binary(max_size=100))
        broken = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80"]))
        return kind, {"raw": b"{" + head + broken + tail}
    if kind == "truncated_json":
        # Cut from valid events: msgspec validates as it reads, so a type error before the
        # cut would be reported instead of the truncation.
        batch = (
            [named(e) for e in draw(st.lists(call_attempts(), min_size=1, max_size=4))] if draw(st.booleans()) else None
        )
        whole = dumps(batch if batch is not None else named(draw(call_attempts())), indent)
        at = draw(st.integers(0, len(whole) - 1))
        while at and whole[at - 1 : at] in b"0123456789.eE+-":
            at -= 1  # not inside a number: a cut one changes its value, which may then fail validation first
        return kind, {"truncate": whole, "at": at}
    if kind == "almost_json":
        text = draw(st.sampled_from(ALMOST_JSON))
        if draw(st.booleans()):  # a whole valid event, then garbage after it
            text = dumps(named(draw(call_attempts())), indent) + b" x"
        return kind, {"raw": text, "reasons": frozenset({NOT_JSON})}
    if kind == "bad_event":
        category, value, reasons = draw(bad_event())
        if isinstance(value, list):
            return category, {
                "items": [("bad", item, ANY_SCHEMA_REASON) for item in value] or [("bad", {}, ANY_SCHEMA_REASON)],
                "indent": indent,
            }
        return category, {"value": value, "reasons": reasons, "indent": indent}
    if kind == "wrong_shape_batch":
        items = draw(
            st.lists(json_values.filter(lambda v: not (isinstance(v, dict) and "type" in v)), min_size=1, max_size=6)
        )
        return kind, {"items": [("bad", item, ANY_SCHEMA_REASON) for item in items], "indent": indent}
    if kind == "mixed_batch":
        items = []
        for _ in range(draw(st.integers(1, 8))):
            if draw(st.booleans()):
                items.append(("good", draw(call_attempts()), None))
            else:
                _, value, reasons = draw(bad_event())
                items.append(("bad", value, reasons))
        return kind, {"items": items, "indent": indent}
    size = draw(st.integers(MAX_RECORD_BYTES + 1, 3 * MAX_RECORD_BYTES))
    if draw(st.booleans()):  # valid events, just too many in one record: none of them counts
        event = draw(call_attempts())
        count = size // len(dumps(event, None)) + 1
        return kind, {"too_large": [event] * count}
    return kind, {"raw": (draw(st.binary(min_size=1, max_size=64)) * size)[:size], "too_large_raw": True}


def materialize(category: str, spec: dict, ids) -> Sent:
    """The record's bytes and what the worker must make of them; event ids are unique, in order."""

    def with_id(event: dict, good: bool) -> dict:
        if isinstance(event, dict) and "event_id" in event and (good or event["event_id"] == "bad"):
            return {**event, "event_id": f"{'ok' if good else 'bad'}-{next(ids)}"}
        return event

    if "events" in spec:
        event = with_id(spec["events"][0], True)
        sent = Sent(category, dumps(event, spec["indent"]))
        if event["type"] == "call_attempt":
            sent.good_ids.append(event["event_id"])
        else:
            sent.agent_states += 1
        return sent
    if "truncate" in spec:
        cut = spec["truncate"][: spec["at"]]
        return Sent(category, cut, [Bad(None, cut, frozenset({NOT_JSON}))])
    if "too_large" in spec:
        events = [with_id(e, True) for e in spec["too_large"]]
        raw = dumps(events, None)
        return Sent(category, raw, [Bad(None, raw, frozenset({"too_large"}), prefix_only=True)])
    if spec.get("too_large_raw"):
        return Sent(category, spec["raw"], [Bad(None, spec["raw"], frozenset({"too_large"}), prefix_only=True)])
    if "raw" in spec:
        return Sent(category, spec["raw"], [Bad(None, spec["raw"], spec.get("reasons", ANY_REASON))])
    if "value" in spec:
        raw = dumps(with_id(spec["value"], False), spec["indent"])
        return Sent(category, raw, [Bad(None, raw, spec["reasons"])])
    parts, sent = [], Sent(category, b"")
    for index, (kind, value, reasons) in enumerate(spec["items"]):
        value = with_id(value, kind == "good")
        raw = dumps(value, spec["indent"])
        parts.append(raw)
        if kind == "good":
            sent.good_ids.append(value["event_id"])
        else:
            sent.bad.append(Bad(index, raw, reasons))
    sent.value = b"[" + b",\n ".join(parts) + b"]"
    return sent


def generate() -> list[Sent]:
    drawn: list[tuple[str, dict]] = []

    @seed(SEED)
    @hsettings(
        max_examples=RECORDS,
        phases=[Phase.generate],
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(records())
    def collect(record):
        drawn.append(record)

    collect()
    ids = iter(range(10**9))
    return [materialize(category, spec, ids) for category, spec in drawn]


# -- the run ---------------------------------------------------------------------------


def original_bytes(letter: dict) -> bytes:
    if letter["original_encoding"] == "base64":
        return base64.b64decode(letter["original"])
    assert letter["original_encoding"] == "utf-8", letter
    return letter["original"].encode("utf-8")


@pytest.mark.timeout(240)
def test_fuzzed_records_are_dead_lettered_and_valid_ones_all_count(pipeline):
    if HAS["too_large"]:
        with pipeline.config_file.open("a") as config:
            config.write(f"\n[worker]\nmax_record_bytes = {MAX_RECORD_BYTES}\n")
    settings = load_settings(pipeline.config_file)
    sent = generate()
    per_category = Counter(s.category for s in sent)
    print(f"\n{len(sent)} records: " + ", ".join(f"{k} {v}" for k, v in sorted(per_category.items())))
    bad_items = sum(len(s.bad) for s in sent)
    good_ids = [event_id for s in sent for event_id in s.good_ids]
    print(
        f"{bad_items} bad items, {len(good_ids)} valid call attempts, {sum(s.agent_states for s in sent)} agent states"
    )
    # A run that drew too little of anything proves little about it.
    assert len(sent) >= RECORDS * 0.9
    assert all(per_category[k] >= 5 for k in ("valid", "random_bytes", "non_utf8", "truncated_json", "mixed_batch")), (
        per_category
    )
    if HAS["too_large"]:
        assert per_category["too_large"] >= 10, per_category
    assert len(set(good_ids)) == len(good_ids)

    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events)
    by_key = {}
    for number, record in enumerate(sent):
        key = f"r{number:05d}".encode()
        by_key[key] = record
        publisher.send_raw(settings.topics.call_events, record.value, key=key)
    publisher.close()

    worker = pipeline.worker()
    health = worker.wait_until_caught_up(timeout_s=150)
    assert worker.proc.poll() is None, "the worker died"
    assert worker.stop() == 0

    # Where each record landed on the broker: its key is unique.
    where = {}
    for message in read_records(settings, settings.topics.call_events):
        assert by_key[message.key].value == message.value, message.key
        where[(message.partition, message.offset)] = by_key[message.key]
    assert len(where) == len(sent)

    letters = [json.loads(raw) for raw in read_topic(settings, settings.topics.dead_letters)]
    by_source = defaultdict(list)
    for letter in letters:
        assert letter["source_topic"] == settings.topics.call_events, letter
        assert letter["reason"] and letter["detail"], letter
        by_source[(letter["source_partition"], letter["source_offset"])].append(letter)
    problems = []
    for position, record in where.items():
        got = sorted(
            by_source.pop(position, []), key=lambda item: -1 if item["batch_index"] is None else item["batch_index"]
        )
        if [g["batch_index"] for g in got] != [b.index for b in record.bad]:
            problems.append(
                f"{record.category} at {position}: expected letters for items "
                f"{[b.index for b in record.bad]}, got {[(g['batch_index'], g['reason']) for g in got]}; "
                f"record {record.value[:300]!r}"
            )
            continue
        for bad, letter in zip(record.bad, got):
            original = original_bytes(letter)
            if letter["reason"] not in bad.reasons:
                problems.append(
                    f"{record.category} at {position}[{bad.index}]: reason {letter['reason']!r} "
                    f"not in {sorted(bad.reasons)} ({letter['detail']}); item {bad.raw[:200]!r}"
                )
            if letter["original_encoding"] != ("utf-8" if utf8(original) else "base64"):
                problems.append(f"{record.category} at {position}: text kept as {letter['original_encoding']}")
            # The raw number sent as a phone_hash is personal data: the dead letter keeps
            # everything else byte for byte and says how many numbers it took out.
            expected = bad.raw.replace(RAW_NUMBER, REDACTED.encode())
            if letter["numbers_removed"] > bad.raw.count(RAW_NUMBER) and utf8(bad.raw):
                # Generated text that happens to hold a valid number (rare; the draw is not
                # the same on every run) loses it too: tests/test_phone_numbers.py pins the rule.
                expected, _ = redact_phone_numbers(bad.raw.decode(), "JP")
                expected = expected.encode()
            elif letter["numbers_removed"] != bad.raw.count(RAW_NUMBER):
                problems.append(
                    f"{record.category} at {position}[{bad.index}]: numbers_removed is "
                    f"{letter['numbers_removed']}, the item had {bad.raw.count(RAW_NUMBER)}"
                )
            kept_whole = original == expected
            if not (kept_whole or (bad.prefix_only and original and expected.startswith(original))):
                at = next(
                    (i for i, (a, b) in enumerate(zip(original, expected)) if a != b), min(len(original), len(expected))
                )
                problems.append(
                    f"{record.category} at {position}[{bad.index}]: original differs from the item "
                    f"sent at byte {at}: kept {original[max(0, at - 40) : at + 60]!r}, sent "
                    f"{expected[max(0, at - 40) : at + 60]!r}"
                )
    assert not by_source, f"dead letters for records that had nothing wrong: {dict(by_source)}"
    assert not problems, f"{len(problems)} problem(s):\n" + "\n".join(problems[:20])
    assert len(letters) == bad_items

    reasons_seen = Counter(letter["reason"] for letter in letters)
    print("dead letters by reason: " + ", ".join(f"{k} {v}" for k, v in sorted(reasons_seen.items())))
    assert health["dead_letters"] == dict(reasons_seen)
    assert health["counted"] == len(good_ids)
    assert health["agent_state_events"] == sum(s.agent_states for s in sent)
    assert (health["records"], health["duplicates"], health["late_events"]) == (len(sent), 0, 0)

    client = connect(settings.warehouse_url)
    try:
        landed = [row[0] for row in client.query("SELECT event_id FROM call_attempts FINAL").result_rows]
        dials = client.query("SELECT sum(dials) FROM minute_metrics FINAL").result_rows[0][0]
    finally:
        client.close()
    assert sorted(landed) == sorted(good_ids)
    assert dials == len(good_ids)


def valid_bytes(event_id: str, campaign: str = "fuzz-alpha", event_time: str | None = None) -> bytes:
    return json.dumps(
        {
            "type": "call_attempt",
            "schema_version": 1,
            "event_id": event_id,
            "campaign": campaign,
            "event_time": event_time or iso(START, 0),
            "outcome": "connected",
            "lead": {"segment": "seniors"},
            "talk_seconds": 60.0,
        }
    ).encode()


# Records found by hand while writing the generator above: each is one small record that
# a producer bug or a hostile client can send.
POISON = {
    "deeply_nested_array": b"[" * 3000 + b"]" * 3000,
    "deeply_nested_object": b'{"a":' * 3000 + b"1" + b"}" * 3000,
    "null_value": None,  # a tombstone: Kafka allows a record without a value on any topic
    "event_time_before_1970": valid_bytes("poison-1969", "fuzz-new-campaign", "1969-12-31T23:59:00Z"),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", sorted(POISON))
def test_one_poison_record_neither_kills_nor_stalls_the_worker(pipeline, name):
    """A record the worker cannot use must cost one dead letter (or count, if it is valid),
    never the worker: a crash replays the same record on every restart, and a landing that
    can never succeed is retried forever, so either stops every campaign's numbers."""
    settings = pipeline.settings
    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events)
    publisher.send_raw(settings.topics.call_events, valid_bytes("before"), key=b"fuzz-alpha")
    publisher.send_raw(settings.topics.call_events, POISON[name], key=b"poison")
    publisher.send_raw(settings.topics.call_events, valid_bytes("after"), key=b"fuzz-alpha")
    publisher.close()

    worker = pipeline.worker()
    health = worker.wait_until_caught_up(timeout_s=60)
    assert worker.proc.poll() is None
    assert worker.stop() == 0
    letters = [json.loads(raw) for raw in read_topic(settings, settings.topics.dead_letters)]
    counted_poison = health["counted"] - 2
    assert health["counted"] >= 2 and counted_poison + len(letters) == 1, (health, letters)
    assert all(letter["reason"] and letter["source_topic"] == settings.topics.call_events for letter in letters)
