from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from core.config import ConfigError, load_settings
from core.slots import SlotRules


def rules(zone="Asia/Tokyo") -> SlotRules:
    settings = load_settings()
    return SlotRules(settings.slots, ZoneInfo(zone))


@pytest.mark.parametrize(
    "utc_hour, utc_minute, slot",
    [
        (23, 59, "off_hours"),  # 08:59 in Tokyo
        (0, 0, "morning"),  # 09:00
        (2, 59, "morning"),  # 11:59
        (3, 0, "midday"),  # 12:00
        (7, 0, "evening"),  # 16:00
        (9, 0, "night"),  # 18:00
        (10, 59, "night"),  # 19:59
        (11, 0, "off_hours"),  # 20:00
    ],
)
def test_slots_follow_local_time_in_the_configured_zone(utc_hour, utc_minute, slot):
    moment = datetime(2026, 11, 23 if utc_hour < 23 else 22, utc_hour, utc_minute, tzinfo=timezone.utc)
    assert rules().slot_for(moment) == slot
    assert rules().slot_for_minute(int(moment.timestamp()) // 60 * 60) == slot


def test_slots_move_with_daylight_saving_time():
    london = rules("Europe/London")
    # 08:30 UTC is 09:30 in London summer time (morning) but 08:30 in winter (off hours).
    assert london.slot_for(datetime(2026, 7, 1, 8, 30, tzinfo=timezone.utc)) == "morning"
    assert london.slot_for(datetime(2026, 12, 1, 8, 30, tzinfo=timezone.utc)) == "off_hours"


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError):
        rules().slot_for(datetime(2026, 11, 23, 10, 0))


def test_a_wrong_time_zone_is_a_clear_config_error(monkeypatch):
    monkeypatch.setenv("CALLPULSE_TIMEZONE", "Mars/Olympus")
    with pytest.raises(ConfigError, match="IANA"):
        load_settings()
