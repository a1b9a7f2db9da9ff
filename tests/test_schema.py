import json
from datetime import datetime, timezone
from pathlib import Path

import jsonschema
import pytest

from core.config import load_settings
from core.schema import (
    REJECTION_REASONS,
    CallAttempt,
    Lead,
    Outcome,
    decode_record,
    encode_batch,
    encode_event,
    json_schema,
)
from core.slots import SlotRules
from producers.simulator import DialerSimulator

ROOT = Path(__file__).resolve().parents[1]


def attempt(**changes) -> CallAttempt:
    fields = dict(
        schema_version=1,
        event_id="e-1",
        campaign="home-insurance",
        event_time=datetime(2026, 11, 23, 1, 2, 3, tzinfo=timezone.utc),
        outcome=Outcome.CONNECTED,
        lead=Lead(segment="seniors", response_score=0.2, phone_hash="a" * 64),
        talk_seconds=95.5,
    )
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


@pytest.mark.parametrize(
    "value, reason",
    [
        (b"{oops", "invalid_json"),
        (b"", "invalid_json"),
        (b'{"type": "call_attempt", "schema_version": 2}', "missing_field"),
        (b'"just a string"', "wrong_type"),
        (b'{"type": "hangup", "schema_version": 1}', "unknown_event_type"),
    ],
)
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


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"order_value": -1.0}, "negative_value"),
        ({"wait_seconds": -0.5}, "negative_duration"),
        ({"campaign": 7}, "wrong_type"),
        ({"outcome": "hung_up"}, "unknown_outcome"),
    ],
)
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
    simulator = DialerSimulator(
        SlotRules(settings.slots, settings.zone), b"k", seed=1, start=datetime(2026, 11, 23, tzinfo=timezone.utc)
    )
    events = list(simulator.events(count=200))
    validator = jsonschema.Draft202012Validator(committed)
    for event in events[:50]:
        validator.validate(json.loads(encode_event(event)))
    validator.validate(json.loads(encode_batch(events[50:])))
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(dict(json.loads(encode_event(events[0])), outcome="hung_up"))


# -- personal data in ids and names, numbers beyond [limits] ------------------------------

from test_phone_numbers import TWELVE_FORMATS  # noqa: E402

from core.schema import EventScreen, Limits  # noqa: E402

NAME_FIELDS = ("event_id", "campaign", "agent", "team", "lead.segment", "lead.lead_id")


def with_field(body: dict, field: str, value) -> dict:
    body = json.loads(json.dumps(body))
    if field.startswith("lead."):
        body["lead"][field.removeprefix("lead.")] = value
    else:
        body[field] = value
    return body


@pytest.mark.parametrize("field", NAME_FIELDS)
@pytest.mark.parametrize("written", TWELVE_FORMATS)
def test_a_phone_number_in_any_id_or_name_is_refused_without_repeating_it(field, written):
    body = json.loads(encode_event(attempt()))
    raw = json.dumps(with_field(body, field, written), ensure_ascii=False).encode()
    for value in (raw, b"[" + encode_event(attempt(event_id="e-ok")) + b"," + raw + b"]"):
        events, rejections = decode_record(value)
        assert [e.event_id for e in events] == (["e-ok"] if value.startswith(b"[") else [])
        (rejection,) = rejections
        assert rejection.reason == "personal_data"
        assert rejection.detail.startswith(f"{field} looks like a phone number")
        assert "phone_hash" in rejection.detail
        assert not any(run in rejection.detail for run in ("8872", "1495", "555", "０"))


def test_an_agent_state_event_with_a_number_for_its_agent_is_refused():
    state = {
        "type": "agent_state",
        "schema_version": 1,
        "event_id": "s-1",
        "campaign": "osaka",
        "event_time": "2026-11-23T01:00:00Z",
        "agent": "090-8872-1495",
        "state": "available",
    }
    _, rejections = decode_record(json.dumps(state).encode())
    assert [(r.reason, r.detail.split()[0]) for r in rejections] == [("personal_data", "agent")]


@pytest.mark.parametrize(
    "field, value",
    [
        ("event_id", "1763618745.6880"),
        ("event_id", "550e8400-e29b-41d4-a716-446655440000"),
        ("event_id", "7d444840-9dc0-11d1-b245-819088721495"),
        ("campaign", "credit-card-winback"),
        ("team", "osaka-floor"),
        ("lead.segment", "list-1001"),
        ("lead.lead_id", "500000"),
        ("agent", "agent01"),
        ("lead.lead_id", "174870114"),
        ("campaign", "\u6771\u4eac\u30ad\u30e3\u30f3\u30da\u30fc\u30f3 2026"),
    ],
)
def test_ordinary_ids_and_names_are_counted(field, value):
    body = with_field(json.loads(encode_event(attempt())), field, value)
    events, rejections = decode_record(json.dumps(body).encode())
    assert rejections == [] and len(events) == 1


@pytest.mark.parametrize(
    "field, value, setting",
    [
        ("talk_seconds", 1.7e308, "limits.max_call_seconds"),
        ("ring_seconds", 86_401.0, "limits.max_call_seconds"),
        ("wait_seconds", 1e9, "limits.max_call_seconds"),
        ("cost", 2.4e306, "limits.max_cost"),
        ("telephony_cost", 10_000.5, "limits.max_cost"),
        ("agent_cost", 1e12, "limits.max_cost"),
        ("order_value", 1e7 + 1, "limits.max_order_value"),
    ],
)
def test_a_number_above_its_limit_is_out_of_range_naming_field_value_and_setting(field, value, setting):
    body = dict(json.loads(encode_event(attempt(talk_seconds=0.0))), **{field: value})
    events, rejections = decode_record(json.dumps([json.loads(encode_event(attempt(event_id="e-ok"))), body]).encode())
    assert [e.event_id for e in events] == ["e-ok"]
    (rejection,) = rejections
    assert rejection.reason == "out_of_range" and rejection.index == 1
    assert rejection.detail == f"{field} {value:.6g} is above {setting} ({dict(limits_defaults())[setting]:g})"


def limits_defaults():
    limits = Limits()
    return {f"limits.{name}": getattr(limits, name) for name in Limits.__struct_fields__}.items()


def test_a_call_whose_parts_add_up_to_more_than_a_day_is_out_of_range_and_a_days_call_counts():
    parts = dict(ring_seconds=30_000.0, wait_seconds=30_000.0, talk_seconds=30_000.0)
    _, rejections = decode_record(encode_event(attempt(**parts)))
    assert [r.reason for r in rejections] == ["out_of_range"]
    assert rejections[0].detail.startswith("ring_seconds + wait_seconds + talk_seconds = 90000 is above")
    events, _ = decode_record(
        encode_event(attempt(ring_seconds=400.0, talk_seconds=86_000.0, order=True, order_value=1e7, cost=10_000.0))
    )
    assert len(events) == 1


def test_numbers_json_cannot_hold_and_non_finite_ones_built_in_code_are_out_of_range():
    body = encode_event(attempt()).replace(b'"talk_seconds":95.5', b'"talk_seconds":1e400')
    _, rejections = decode_record(body)
    assert [(r.reason, r.detail) for r in rejections] == [("out_of_range", "Number out of range - at `$.talk_seconds`")]
    screen = EventScreen()
    for value in (float("nan"), float("inf")):
        assert screen(attempt(talk_seconds=value)) == (
            "out_of_range",
            f"talk_seconds is {value!r}, not a finite number",
        )
        assert screen(attempt(cost=value))[0] == "out_of_range"


def test_limits_are_configurable_and_must_be_positive(tmp_path):
    from core.config import ConfigError

    settings = load_settings(limits__max_call_seconds=3600, limits__max_order_value=500)
    assert settings.limits == Limits(max_call_seconds=3600, max_order_value=500)
    _, rejections = decode_record(encode_event(attempt(talk_seconds=3601.0)), screen=settings.event_screen)
    assert rejections[0].detail == "talk_seconds 3601 is above limits.max_call_seconds (3600)"
    assert decode_record(encode_event(attempt(talk_seconds=3601.0)))[1] == []  # the default allows a day
    for bad in (0, -1, float("inf")):
        with pytest.raises(ConfigError, match="limits.max_cost .* must be a finite number above 0"):
            load_settings(limits__max_cost=bad)
