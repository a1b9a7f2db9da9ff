"""Calling-hours profiles with days of the week: a profile's hours may differ on a weekday of the
callee's clock (Texas: noon on Sundays) or a day may allow no call ("off"); the config refuses a
day or hours it cannot read, the worker's check goes by the callee's local weekday, and the
definitions page and the compliance page's violations say which hours held that day."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from core.config import ConfigError, load_settings
from core.schema import CallAttempt, Lead, Outcome
from streams.calling_hours import CallingHours

CONFIG = """
[calling_hours.profiles.no-sundays]
start = "08:00"
end = "20:00"
days = { sat = "10:00-17:00", sun = "off" }
source = "house rule for a state without Sunday calls"

[calling_hours.campaigns]
austin-solar = "texas"
tulsa-roofing = "no-sundays"
"""


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    config = tmp_path_factory.mktemp("config") / "callpulse.toml"
    config.write_text(CONFIG)
    return load_settings(config)


def dialled(campaign: str, at_utc: datetime, zone: str) -> CallAttempt:
    """A call dialled at ``at_utc`` (no ring, wait or talk: the event time is the dial) to ``zone``."""
    return CallAttempt(
        schema_version=1,
        event_id=f"{campaign}-{at_utc.isoformat()}",
        campaign=campaign,
        outcome=Outcome.NO_ANSWER,
        lead=Lead(segment="seniors"),
        event_time=at_utc,
        ring_seconds=0.0,
        talk_seconds=0.0,
        callee_timezone=zone,
    )


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=timezone.utc)  # type: ignore[misc]


def test_the_default_profiles_hold_every_day_and_texas_starts_at_noon_on_sundays():
    profiles = load_settings(None).calling_hours.profiles
    assert profiles["ftc"].describe() == "08:00-21:00 every day"
    assert [profiles["ftc"].hours_on(day) for day in range(7)] == [("08:00", "21:00")] * 7
    assert profiles["texas"].describe() == "09:00-21:00; Sun 12:00-21:00"
    assert profiles["texas"].hours_on(5) == ("09:00", "21:00") and profiles["texas"].hours_on(6) == ("12:00", "21:00")


def test_a_call_is_judged_by_the_callees_weekday(settings):
    hours = CallingHours(settings.calling_hours)
    # 2026-12-06 is a Sunday. Chicago is UTC-6 in December.
    sunday_10_chicago = utc(2026, 12, 6, 16, 0)
    saturday_10_chicago = utc(2026, 12, 5, 16, 0)
    found = hours.check(dialled("austin-solar", sunday_10_chicago, "America/Chicago"))
    assert found is not None and (found.profile, found.allowed_from, found.allowed_until) == ("texas", "12:00", "21:00")
    assert found.local_dialed_at.strftime("%a %H:%M") == "Sun 10:00"
    assert hours.check(dialled("austin-solar", saturday_10_chicago, "America/Chicago")) is None
    assert hours.check(dialled("austin-solar", utc(2026, 12, 6, 18, 0), "America/Chicago")) is None  # Sun 12:00
    # Both ends of a day's own hours are allowed, a second past the end is not.
    assert hours.check(dialled("austin-solar", utc(2026, 12, 7, 3, 0), "America/Chicago")) is None  # Sun 21:00
    assert hours.check(dialled("austin-solar", utc(2026, 12, 7, 3, 0, 1), "America/Chicago")) is not None
    # Other campaigns keep the FTC's 08:00-21:00 on Sundays too.
    assert hours.check(dialled("anything-else", sunday_10_chicago, "America/Chicago")) is None


def test_a_day_off_allows_no_call_and_the_day_is_the_callees_not_utcs(settings):
    hours = CallingHours(settings.calling_hours)
    # Saturday 23:00 UTC is Sunday 08:00 in Tokyo: inside 08:00-20:00, but on the callee's day off.
    found = hours.check(dialled("tulsa-roofing", utc(2026, 12, 5, 23, 0), "Asia/Tokyo"))
    assert found is not None and (found.allowed_from, found.allowed_until) == ("off", "off")
    assert found.local_dialed_at.strftime("%a %H:%M") == "Sun 08:00"
    # Saturday has its own shorter hours: 10:00 is in, 09:59 and 17:01 are out.
    assert hours.check(dialled("tulsa-roofing", utc(2026, 12, 5, 1, 0), "Asia/Tokyo")) is None  # Sat 10:00
    early = hours.check(dialled("tulsa-roofing", utc(2026, 12, 5, 0, 59), "Asia/Tokyo"))
    assert early is not None and (early.allowed_from, early.allowed_until) == ("10:00", "17:00")
    assert hours.check(dialled("tulsa-roofing", utc(2026, 12, 5, 8, 1), "Asia/Tokyo")) is not None  # Sat 17:01
    # A weekday the profile does not name has its start-end: Monday 19:00 is in.
    assert hours.check(dialled("tulsa-roofing", utc(2026, 12, 7, 10, 0), "Asia/Tokyo")) is None


@pytest.mark.parametrize(
    "days, message",
    [
        ('{ sunday = "off" }', "days.sunday is not a weekday; name days mon, tue, wed, thu, fri, sat, sun"),
        ('{ sun = "noon" }', 'days.sun = \'noon\': write the day\'s hours "HH:MM-HH:MM", or "off"'),
        ('{ sun = "21:00-12:00" }', "days.sun: start 21:00 must come before end 12:00"),
        ('{ sat = "10:00-25:00" }', "days.sat: '25:00' is not a time of day between 00:00 and 24:00"),
        ('{ mon = "9-17" }', "days.mon: '9' is not a time of day written HH:MM"),
    ],
)
def test_a_day_the_config_cannot_read_is_refused_with_its_place(tmp_path, days, message):
    config = tmp_path / "callpulse.toml"
    config.write_text(f'[calling_hours.profiles.odd]\nstart = "08:00"\nend = "21:00"\ndays = {days}\n')
    with pytest.raises(ConfigError) as refused:
        load_settings(config)
    assert str(refused.value).startswith("[calling_hours.profiles.odd]: ")
    assert message in str(refused.value)


def test_the_pages_show_each_profiles_days_and_a_violations_hours_that_day(settings, tmp_path):
    from warehouse_helpers import migrated_warehouse

    from dashboards.app import create_app
    from dashboards.data import DashboardContext

    with migrated_warehouse(tmp_path) as client:
        create_app(DashboardContext(settings, client))
        from dashboards.pages import compliance, definitions

        page = str(definitions.layout())
        assert "calling-hours-definitions" in page
        assert all(text in page for text in ("08:00-20:00; Sat 10:00-17:00; Sun no calls", "tulsa-roofing"))
        assert "09:00-21:00; Sun 12:00-21:00" in page and "austin-solar" in page
        assert "08:00-21:00 every day" in page and "every other campaign" in page

        row = {"profile": "no-sundays", "local_dialed_at": "2026-12-06 08:00:00"}
        assert compliance.allowed_hours_text({**row, "allowed_from": "off", "allowed_until": "off"}) == (
            "no calls on Sun (no-sundays)"
        )
        texas = {"profile": "texas", "local_dialed_at": "2026-12-06 10:00:00", "allowed_from": "12:00"}
        assert compliance.allowed_hours_text({**texas, "allowed_until": "21:00"}) == "Sun 12:00-21:00 (texas)"
        ftc = {"profile": "ftc", "local_dialed_at": "2026-12-06 06:00:00", "allowed_from": "08:00"}
        assert compliance.allowed_hours_text({**ftc, "allowed_until": "21:00"}) == "08:00-21:00 (ftc)"
