"""The dialer simulator keeps to calling hours, as a real dialer does: it dials its Japanese list
only inside each campaign's allowed hours on the callee's clock, calls London or New York while
Japan may not be called, and leaves a line idle when nobody may be called. Judged by the worker's
own rule (streams/calling_hours.py), so `callpulse up` opens without calling-hours alarms."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone

from core.config import load_settings
from core.schema import CallAttempt
from core.slots import SlotRules
from producers.simulator import DEFAULT_CAMPAIGNS, DialerSimulator
from streams.calling_hours import CallingHours
from streams.stoplist import dialed_at

SETTINGS = load_settings(None)
RULES = SlotRules(SETTINGS.slots, SETTINGS.zone)
TOKYO = SETTINGS.zone  # the default pipeline.timezone, and the home list's zone
CHARITY = tuple(profile for profile in DEFAULT_CAMPAIGNS if profile.name == "charity-giving")


def calls(start: datetime, hours: float, calling_hours=None, campaigns=CHARITY, seed: int = 3) -> list[CallAttempt]:
    simulator = DialerSimulator(
        RULES, b"k" * 32, seed=seed, start=start, campaigns=campaigns, calling_hours=calling_hours
    )
    return [event for event in simulator.events(sim_seconds=hours * 3600) if isinstance(event, CallAttempt)]


def violations(attempts: list[CallAttempt], calling_hours=SETTINGS.calling_hours) -> list:
    rule = CallingHours(calling_hours)
    return [found for found in map(rule.check, attempts) if found is not None]


def test_by_day_it_dials_its_japanese_list_and_by_night_london_and_new_york():
    day = calls(datetime(2026, 12, 4, 1, 0, tzinfo=timezone.utc), 1)  # 10:00 in Tokyo
    assert set(Counter(call.callee_timezone for call in day)) <= {"Asia/Tokyo", None}
    night = calls(datetime(2026, 12, 4, 17, 0, tzinfo=timezone.utc), 1)  # 02:00 in Tokyo, 17:00 in London
    zones = Counter(call.callee_timezone for call in night)
    assert zones["Asia/Tokyo"] == 0 and zones["Europe/London"] > 100 and zones["America/New_York"] > 100
    assert zones[None] == 0  # nor the Japanese numbers whose zone the number does not tell
    assert len(night) > 0.8 * len(day)  # the floor keeps working
    assert violations(day) == [] and violations(night) == []


def test_at_nine_in_the_evening_the_japanese_list_stops_on_the_second():
    # 20:30 to 21:30 in Tokyo: Japanese dials until a second before 21:00 (the dialer keeps a
    # second clear of the limit), then abroad.
    attempts = calls(datetime(2026, 12, 4, 11, 30, tzinfo=timezone.utc), 1)
    tokyo = [dialed_at(call).astimezone(TOKYO) for call in attempts if call.callee_timezone == "Asia/Tokyo"]
    assert tokyo and max(tokyo).strftime("%H:%M") == "20:59"
    assert any(call.callee_timezone == "Europe/London" for call in attempts)
    assert violations(attempts) == []


def test_a_campaign_nobody_may_be_called_for_leaves_its_lines_idle(tmp_path):
    config = tmp_path / "callpulse.toml"
    config.write_text(
        '[calling_hours.profiles.weekdays]\nstart = "09:00"\nend = "17:00"\n'
        'days = { sat = "off", sun = "off" }\n'
        '[calling_hours.campaigns]\ncharity-giving = "weekdays"\n'
    )
    hours = load_settings(config).calling_hours
    others = tuple(profile for profile in DEFAULT_CAMPAIGNS if profile.name == "home-insurance")
    # Sunday 6 December, 10:00 in Tokyo: Saturday evening in New York, Sunday 01:00 in London.
    attempts = calls(datetime(2026, 12, 6, 1, 0, tzinfo=timezone.utc), 0.5, hours, CHARITY + others)
    by_campaign = Counter(call.campaign for call in attempts)
    assert by_campaign["charity-giving"] == 0 and by_campaign["home-insurance"] > 100
    assert violations(attempts, hours) == []
    # On a weekday at 10:00 in Tokyo it dials Japan again.
    monday = calls(datetime(2026, 12, 7, 1, 0, tzinfo=timezone.utc), 0.5, hours)
    assert monday and {call.callee_timezone for call in monday} <= {"Asia/Tokyo", None}


def test_the_same_seed_dials_the_same_calls_whatever_the_hour():
    start = datetime(2026, 12, 4, 17, 0, tzinfo=timezone.utc)
    first, again = calls(start, 0.25), calls(start, 0.25)
    assert [(c.event_id, c.lead.phone_hash, c.callee_timezone) for c in first] == [
        (c.event_id, c.lead.phone_hash, c.callee_timezone) for c in again
    ]
    assert first[-1].event_time - first[0].event_time > timedelta(minutes=10)
