import json
from datetime import datetime, timezone
from pathlib import Path

import jsonschema
import pytest

from callpulse.config import load_settings
from callpulse.schema import (REJECTION_REASONS, CallAttempt, Lead, Outcome, decode_record, encode_batch, encode_event,
                              json_schema)
from callpulse.slots import SlotRules
from producers.simulator import DialerSimulator

ROOT = Path(__file__).resolve().parents[1]


def attempt(**changes) -> CallAttempt:
    fields = dict(schema_version=1, event_id="e-1", campaign="home-insurance",
                  event_time=datetime(2026, 11, 23, 1, 2, 3, tzinfo=timezone.utc), outcome=Outcome.CONNECTED,
                  lead=Lead(segment="seniors", response_score=0.2, phone_hash="a" * 64), talk_seconds=95.5)
    fields.update(changes)
    return CallAttempt(**fields)


def test_an_event_round_trips_through_json():
    events, rejections = decode_record(encode_event(attempt()))
    assert rejections == []
    assert events == [attempt()]


def test_a_batch_record_rejects_only_its_bad_items():
    good = json.loads(encode_event(attempt()))
    bad = dict(good, event_id="e-2", outcome="hung_up")
    negative = dict(good, event_id="e-3", talk_seconds=-5)
    events, rejections = decode_record(json.dumps([good, bad, negative]).encode())
    assert [e.event_id for e in events] == ["e-1"]
    assert [(r.reason, r.index) for r in rejections] == [("unknown_outcome", 1), ("negative_duration", 2)]
    assert "outcome" in rejections[0].detail
    assert "talk_seconds" in rejections[1].detail


@pytest.mark.parametrize("value, reason", [
    (b"{oops", "invalid_json"),
    (b"", "invalid_json"),
    (b'{"type": "call_attempt", "schema_version": 2}', "missing_field"),
    (b'"just a string"', "wrong_type"),
    (b'{"type": "hangup", "schema_version": 1}', "unknown_event_type"),
])
def test_unusable_records_are_rejected_with_a_reason(value, reason):
    events, rejections = decode_record(value)
    assert events == []
    assert rejections[0].reason == reason
    assert rejections[0].raw == value


def test_unknown_schema_version_is_its_own_reason():
    raw = encode_event(attempt()).replace(b'"schema_version":1', b'"schema_version":3')
    _, rejections = decode_record(raw)
    assert rejections[0].reason == "unsupported_schema_version"


def test_naive_timestamps_and_raw_phone_numbers_are_refused():
    body = json.loads(encode_event(attempt()))
    _, rejections = decode_record(json.dumps(dict(body, event_time="2026-11-23T01:02:03")).encode())
    assert rejections[0].reason == "invalid_value" and "timezone" in rejections[0].detail
    _, rejections = decode_record(json.dumps(dict(body, lead={"segment": "x", "phone": "+81312345678"})).encode())
    assert rejections[0].reason == "unknown_field" and "phone" in rejections[0].detail
    _, rejections = decode_record(json.dumps(dict(body, lead={"segment": "x", "phone_hash": "0312345678"})).encode())
    assert rejections[0].reason == "invalid_value" and "phone_hash" in rejections[0].detail


@pytest.mark.parametrize("change, reason", [
    ({"order_value": -1.0}, "negative_value"),
    ({"wait_seconds": -0.5}, "negative_duration"),
    ({"campaign": 7}, "wrong_type"),
    ({"outcome": "hung_up"}, "unknown_outcome"),
])
def test_each_kind_of_schema_breach_has_its_own_reason(change, reason):
    body = dict(json.loads(encode_event(attempt())), **change)
    _, rejections = decode_record(json.dumps(body).encode())
    assert rejections[0].reason == reason
    assert reason in REJECTION_REASONS


def test_an_event_more_than_the_allowed_future_is_rejected_and_its_batch_neighbours_pass():
    from datetime import timedelta

    now = attempt().event_time
    soon, far = (json.loads(encode_event(attempt())) for _ in range(2))
    far.update(event_id="e-far", event_time=(now + timedelta(days=2)).isoformat())
    events, rejections = decode_record(json.dumps([soon, far]).encode(), newest_allowed=now + timedelta(days=1))
    assert [e.event_id for e in events] == ["e-1"]
    assert [(r.reason, r.index) for r in rejections] == [("future_event_time", 1)]
    assert json.loads(rejections[0].raw)["event_id"] == "e-far"


def test_committed_json_schema_matches_the_code_and_validates_simulated_events():
    committed = json.loads((ROOT / "schemas" / "call-event.v1.schema.json").read_text())
    assert committed == json.loads(json.dumps(json_schema())), "run `callpulse schema` and commit the file"
    settings = load_settings()
    simulator = DialerSimulator(SlotRules(settings.slots, settings.zone), b"k", seed=1,
                                start=datetime(2026, 11, 23, tzinfo=timezone.utc))
    events = list(simulator.events(count=200))
    validator = jsonschema.Draft202012Validator(committed)
    for event in events[:50]:
        validator.validate(json.loads(encode_event(event)))
    validator.validate(json.loads(encode_batch(events[50:])))
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(dict(json.loads(encode_event(events[0])), outcome="hung_up"))
