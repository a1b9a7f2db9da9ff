"""One customer, one hash; and no readable number in what the pipeline keeps of a refused record."""

from __future__ import annotations

import pytest

from callpulse.config import ConfigError, load_settings
from callpulse.privacy import REDACTED, hash_phone, normalize_phone, redact_phone_numbers

KEY = b"k"


@pytest.mark.parametrize("written, country_code", [
    ("09088721495", "81"),          # VICIdial: national number, phone_code beside it
    ("090-8872-1495", None),        # typed in Japan
    ("+81 90-8872-1495", None),     # a do-not-call list
    ("+81 (0)90 8872 1495", None),  # the trunk 0 kept in brackets, as people do
    ("819088721495", None),
    ("9088721495", "81"),           # a dialer that strips the trunk 0
])
def test_every_way_of_writing_one_line_is_one_number(written, country_code):
    assert normalize_phone(written, "JP", country_code) == "819088721495"
    assert hash_phone(written, KEY, "JP", country_code) == hash_phone("+819088721495", KEY)


def test_the_country_code_decides_over_the_configured_region():
    assert normalize_phone("4155550100", "JP", "1") == "14155550100"
    assert normalize_phone("020 7946 0958", "GB") == "442079460958"
    assert normalize_phone("020 7946 0958", "JP") != normalize_phone("020 7946 0958", "GB")


def test_a_number_libphonenumber_cannot_read_keeps_its_digits_and_one_without_digits_is_refused():
    assert normalize_phone("12", "JP") == "8112"  # short codes parse; kept, not lost
    with pytest.raises(ValueError, match="no digits"):
        normalize_phone("not a number")


def test_an_unknown_region_is_a_configuration_error():
    with pytest.raises(ConfigError, match="pipeline.phone_region = 'XX' is not a region"):
        load_settings(pipeline__phone_region="XX")


@pytest.mark.parametrize("text, expected, count", [
    ('{"phone_hash": "08055550102"}', f'{{"phone_hash": "{REDACTED}"}}', 1),
    ("81,+81 80 5555 0103", f"81,{REDACTED}", 1),
    ("tel:080-5555-0104 or (03) 5555-6666", f"tel:{REDACTED} or {REDACTED}", 2),
    ("10:21:42 09012345678", f"10:21:42 {REDACTED}", 1),
    # Not numbers: they must stay readable for whoever fixes the record.
    ("call_date 2026-11-16 10:21:42", "call_date 2026-11-16 10:21:42", 0),
    ('"event_time": "2026-11-16T02:00:00Z"', '"event_time": "2026-11-16T02:00:00Z"', 0),
    ("uniqueid 1794787200.1000 lead 500000", "uniqueid 1794787200.1000 lead 500000", 0),
    ("score 0.3996874512", "score 0.3996874512", 0),
])
def test_numbers_are_taken_out_of_text_and_dates_ids_and_scores_are_not(text, expected, count):
    assert redact_phone_numbers(text, "JP") == (expected, count)


@pytest.mark.parametrize("text", [
    '{"schema_version": 174870114}', '{"ring_seconds": 4123.456789012}', '"lead_id": "9039968745"',
    "epoch 1794787200 and 17948 72000",
])
def test_numbers_in_json_fields_durations_and_ids_stay_as_sent(text):
    """A replayable dead letter must stay byte-exact unless it really carried a number."""
    assert redact_phone_numbers(text, "JP") == (text, 0)


@pytest.mark.parametrize("text", ['"team": "0123456789abcdef"', "hash a09012345678b", "id X09012345678"])
def test_digits_glued_to_letters_are_an_id_not_a_number(text):
    assert redact_phone_numbers(text, "JP") == (text, 0)


def test_a_file_ingest_dead_letter_loses_numbers_written_the_configured_regions_way(pipeline, tmp_path):
    """`callpulse ingest events` refuses a row carrying a raw US number; with phone_region US
    its dead letter must not keep it (read as Japanese, (650) 253-0000 is not a number)."""
    import msgspec

    from callpulse.topics import read_records
    from producers.ingest import ingest_event_file
    from producers.publisher import EventPublisher
    from streams.deadletters import DeadLetter

    settings = load_settings(pipeline.config_file, pipeline__phone_region="US")
    events = tmp_path / "events.jsonl"
    events.write_text('{"schema_version": 1, "phone": "(650) 253-0000", "campaign": "x"}\n')
    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events)
    summary = ingest_event_file(events, settings, publisher)
    publisher.close()
    assert summary.read == 1
    (record,) = read_records(settings, settings.topics.dead_letters)
    letter = msgspec.json.decode(record.value, type=DeadLetter)
    assert "253-0000" not in letter.original and REDACTED in letter.original
    assert letter.numbers_removed == 1
