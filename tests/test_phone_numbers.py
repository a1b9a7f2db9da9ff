"""One customer, one hash; and no readable number in what the pipeline keeps of a refused record."""

from __future__ import annotations

import pytest

from core.config import ConfigError, load_settings
from core.privacy import (
    MAX_JUDGED_SPANS,
    REDACTED,
    hash_phone,
    looks_like_phone_number,
    normalize_phone,
    redact_phone_numbers,
)

KEY = b"k"


@pytest.mark.parametrize(
    "written, country_code",
    [
        ("09088721495", "81"),  # VICIdial: national number, phone_code beside it
        ("090-8872-1495", None),  # typed in Japan
        ("+81 90-8872-1495", None),  # a do-not-call list
        ("+81 (0)90 8872 1495", None),  # the trunk 0 kept in brackets, as people do
        ("819088721495", None),
        ("9088721495", "81"),  # a dialer that strips the trunk 0
    ],
)
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


@pytest.mark.parametrize(
    "text, expected, count",
    [
        ('{"phone_hash": "08055550102"}', f'{{"phone_hash": "{REDACTED}"}}', 1),
        ("81,+81 80 5555 0103", f"81,{REDACTED}", 1),
        ("tel:080-5555-0104 or (03) 5555-6666", f"tel:{REDACTED} or {REDACTED}", 2),
        ("10:21:42 09012345678", f"10:21:42 {REDACTED}", 1),
        # Not numbers: they must stay readable for whoever fixes the record.
        ("call_date 2026-11-16 10:21:42", "call_date 2026-11-16 10:21:42", 0),
        ('"event_time": "2026-11-16T02:00:00Z"', '"event_time": "2026-11-16T02:00:00Z"', 0),
        ("uniqueid 1794787200.1000 lead 500000", "uniqueid 1794787200.1000 lead 500000", 0),
        ("score 0.3996874512", "score 0.3996874512", 0),
    ],
)
def test_numbers_are_taken_out_of_text_and_dates_ids_and_scores_are_not(text, expected, count):
    assert redact_phone_numbers(text, "JP") == (expected, count)


@pytest.mark.parametrize(
    "text",
    [
        '{"schema_version": 174870114}',
        '{"ring_seconds": 4123.456789012}',
        '"lead_id": "903996874"',
        "epoch 1794787200 and 17948 72000",
    ],
)
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

    from core.deadletters import DeadLetter
    from producers.ingest import ingest_event_file
    from producers.publisher import EventPublisher
    from streams.kafka_admin import read_records

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


# One Japanese mobile and one US number, written the twelve ways a hostile or careless
# producer sent them (issue 25). The last four got through before: bare with its country
# code, dotted, full width, and a bare ten digits (in Japan an 020 number; in the US a DC one).
TWELVE_FORMATS = [
    "09088721495",
    "090-8872-1495",
    "090 8872 1495",
    "(090) 8872-1495",
    "+81 90-8872-1495",
    "+819088721495",
    "tel:+81-90-8872-1495",
    "+1 (202) 555-0143",
    "819088721495",
    "+81.90.8872.1495",
    "\uff10\uff19\uff10\uff18\uff18\uff17\uff12\uff11\uff14\uff19\uff15",
    "2025550143",
]


@pytest.mark.parametrize("written", TWELVE_FORMATS)
def test_every_format_is_taken_out_of_text_and_is_a_phone_number_in_an_id(written):
    for text in (written, f'{{"campaign": "{written}", "order_value": 12}}', f"agent {written}, team 7"):
        redacted, count = redact_phone_numbers(text, "JP")
        assert count == 1 and REDACTED in redacted, text
        assert "8872" not in redacted and "555" not in redacted and "\uff18" not in redacted
    assert looks_like_phone_number(written, "JP")


def test_a_bare_ten_digit_number_is_read_in_the_configured_region():
    assert redact_phone_numbers("lead 2025550143", "US") == (f"lead {REDACTED}", 1)
    assert looks_like_phone_number("2025550143", "US") and looks_like_phone_number("2025550143", "JP")
    # A mobile number that lost its trunk 0 is still that customer's number.
    assert redact_phone_numbers('"lead_id": "9039968745"', "JP") == (f'"lead_id": "{REDACTED}"', 1)


@pytest.mark.parametrize(
    "text",
    [
        # full width, katakana long marks
        "\uff10\uff19\uff10\u30fc\uff18\uff18\uff17\uff12\u30fc\uff11\uff14\uff19\uff15",
        "\uff0b\uff18\uff11\u3000\uff19\uff10\uff0d\uff18\uff18\uff17\uff12\uff0d\uff11\uff14\uff19\uff15",
        "090\u200b8872\u200b1495",  # zero-width spaces between the groups
        "090\u20138872\u20131495",  # en dashes
        "\u0660\u0669\u0660\u0668\u0668\u0667\u0662\u0661\u0664\u0669\u0665",  # Arabic-Indic digits
        "090\u30fb8872\u30fb1495",  # katakana middle dots
    ],
)
def test_numbers_in_other_scripts_widths_and_separators_are_found(text):
    assert redact_phone_numbers(f"x {text} y", "JP") == (f"x {REDACTED} y", 1)
    assert looks_like_phone_number(text, "JP")


def test_a_number_spelled_as_json_escapes_is_found_and_the_text_around_it_kept():
    escaped = '{"team": "\\u0030\\u0039\\u0030-8872-1495", "x": "\\u00e9t\\u00e9"}'
    assert redact_phone_numbers(escaped, "JP") == (f'{{"team": "{REDACTED}", "x": "\\u00e9t\\u00e9"}}', 1)


def test_full_width_text_around_a_number_is_kept_as_written():
    text = (
        "\u9867\u5ba2\uff21\u3000\uff08\uff10\uff19\uff10\uff09\uff18\uff18\uff17\uff12\uff0d\uff11\uff14\uff19"
        "\uff15\u69d8"
    )
    assert redact_phone_numbers(text, "JP") == (f"\u9867\u5ba2\uff21\u3000{REDACTED}\u69d8", 1)


@pytest.mark.parametrize(
    "value",
    [
        "1763618745.6880",
        "1794787200.1000",  # VICIdial uniqueids (epoch.sequence)
        "550e8400-e29b-41d4-a716-446655440000",
        "7d444840-9dc0-11d1-b245-819088721495",  # UUIDs, one ending in digits
        "credit-card-winback",
        "osaka-floor",
        "list-1001",
        "list-20251116",
        "home-insurance-01",
        "agent01",
        "VDAD",
        "500000",
        "174870114",
        "TOKYO",
        "sim-17-000123",
        "2026-11-16 10:21:42",
        "0.3996874512",
        "v1.2.3",
        "home-insurance-29876543-12",
        "a" * 64,
        "0123456789abcdef",
    ],
)
def test_ordinary_ids_and_names_are_not_phone_numbers(value):
    assert not looks_like_phone_number(value, "JP")
    assert redact_phone_numbers(value, "JP") == (value, 0)


def test_numbers_among_other_figures_are_found_wherever_they_stand():
    text = "42 09012345678 7 and 090 8872 1495 2026"
    assert redact_phone_numbers(text, "JP") == (f"42 {REDACTED} 7 and {REDACTED} 2026", 2)


def test_a_flood_of_digit_groups_costs_a_bounded_time_and_loses_nothing():
    """Past MAX_JUDGED_SPANS libphonenumber calls, what is left is removed unjudged: a
    hostile record cannot buy seconds of the worker's time, nor slip a number through."""
    import time

    text = " ".join(["1 2 3 4 5 6 7 8 9 0"] * 3000) + " 090-8872-1495"
    started = time.perf_counter()
    redacted, count = redact_phone_numbers(text, "JP")
    took = time.perf_counter() - started
    assert "8872" not in redacted and count >= 1
    assert took < 2.0, f"{took:.2f} s for {len(text):,} characters (at most {MAX_JUDGED_SPANS} judged spans)"


def test_the_quick_judgement_of_digit_ids_agrees_with_libphonenumber_in_every_region():
    """Ids are judged on every event, so runs of digits are first matched against the
    region's number patterns and only the possible ones are parsed. That shortcut must
    never call a valid number invalid: checked here against libphonenumber itself, in
    every region, on its example numbers and on random runs of digits."""
    import random

    import phonenumbers

    rng = random.Random(20261205)
    disagreements, numbers = [], 0
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
        national_prefix = metadata.national_prefix or "+"
        runs = []
        for number_type in range(11):
            example = phonenumbers.example_number_for_type(region, number_type)
            if example is not None:
                nsn = phonenumbers.national_significant_number(example)
                runs += [nsn, str(example.country_code) + nsn, (metadata.national_prefix or "") + nsn]
        prefixes = ["", "0", "00", "1", str(metadata.country_code), metadata.national_prefix or ""]
        runs += [
            rng.choice(prefixes) + "".join(rng.choice("0123456789") for _ in range(rng.randint(8, 13)))
            for _ in range(150)
        ]
        for run in runs:
            if not 9 <= len(run) <= 22:
                continue
            try:
                valid = phonenumbers.is_valid_number(phonenumbers.parse(run, region))
            except phonenumbers.NumberParseException:
                valid = False
            expected = valid and (len(run) >= 10 or run.startswith(national_prefix))
            numbers += expected
            if looks_like_phone_number(f"id-{run}", region) != expected:
                disagreements.append((region, run, expected))
    assert numbers > 500  # the check saw valid numbers, not only noise
    assert not disagreements, disagreements[:10]
