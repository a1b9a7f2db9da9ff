"""The worker's batch step on its own: every record either counts or becomes a dead letter
with a reason, and one bad record never costs its neighbours."""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime, timedelta, timezone

from core.config import load_settings
from core.deadletters import KEPT_BYTES
from core.schema import CallAttempt, Lead, Outcome, encode_event
from core.slots import SlotRules
from streams.processor import CallEventProcessor, SourceRecord

NOW = datetime.now(timezone.utc).replace(microsecond=0)


def attempt(event_id: str, event_time: datetime = NOW) -> CallAttempt:
    return CallAttempt(
        schema_version=1,
        event_id=event_id,
        campaign="home-insurance",
        event_time=event_time,
        outcome=Outcome.NO_ANSWER,
        lead=Lead(segment="seniors"),
        ring_seconds=20.0,
    )


def processor(**overrides) -> CallEventProcessor:
    settings = load_settings(**overrides)
    return CallEventProcessor(settings, SlotRules(settings.slots, settings.zone))


def records(*values: bytes) -> list[SourceRecord]:
    return [SourceRecord("calls", 0, offset, value) for offset, value in enumerate(values)]


def test_a_record_over_the_size_limit_is_dead_lettered_truncated_and_its_neighbours_count():
    worker = processor(worker__max_record_bytes=200_000)
    huge = json.dumps([json.loads(encode_event(attempt(f"big-{i}"))) for i in range(2000)]).encode()
    assert len(huge) > 200_000
    result = worker.process(records(encode_event(attempt("before")), huge, encode_event(attempt("after"))))
    assert [a.event_id for a in result.attempts] == ["before", "after"]
    [letter] = result.dead_letters
    assert (letter.reason, letter.source_offset, letter.original_bytes, letter.truncated) == (
        "too_large",
        1,
        len(huge),
        True,
    )
    assert len(letter.original) == KEPT_BYTES and huge.startswith(letter.original.encode())
    assert "limit is 200,000 (worker.max_record_bytes)" in letter.detail
    assert worker.stats.dead_letters == {"too_large": 1}


def test_events_stamped_over_five_minutes_ahead_are_dead_lettered_and_do_not_move_the_watermark():
    worker = processor()
    now = datetime.now(timezone.utc).replace(microsecond=0)  # not NOW: a long suite run leaves it behind
    ahead = attempt("in-three-hours", now + timedelta(hours=3, seconds=30))
    just_ahead = attempt("in-two-minutes", now + timedelta(minutes=2))  # clocks drift; minutes are tolerated
    result = worker.process(records(encode_event(attempt("now", now)), encode_event(ahead), encode_event(just_ahead)))
    assert sorted(a.event_id for a in result.attempts) == ["in-two-minutes", "now"]
    [letter] = result.dead_letters
    assert (letter.reason, letter.source_offset, letter.batch_index) == ("future_event_time", 1, None)
    assert json.loads(letter.original)["event_id"] == "in-three-hours"
    # The dead letter says how far ahead, which setting allows how much, and whose clock to check.
    assert " is 3.0 h ahead of the worker's clock" in letter.detail
    assert "pipeline.max_future_seconds allows 300 s" in letter.detail and "home-insurance" in letter.detail
    # The call two minutes ahead counts, but moves the campaign's watermark only as far as the clock.
    assert now.timestamp() <= worker.buckets.watermarks["home-insurance"] <= time.time()


def test_bytes_that_are_not_text_are_kept_as_base64():
    worker = processor()
    junk = b"\xff\xfe\x00binary"
    [letter] = worker.process(records(junk)).dead_letters
    assert (letter.reason, letter.original_encoding, letter.truncated) == ("invalid_json", "base64", False)
    assert base64.b64decode(letter.original) == junk and letter.original_bytes == len(junk)
