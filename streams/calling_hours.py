"""The calling-hours rule: a call placed outside the called person's allowed local hours is a
violation (US FTC TSR 16 CFR 310.4(c): not before 8 a.m. or after 9 p.m. at the called person's
location; each campaign's hours come from its [calling_hours] profile).

The callee's zone comes with the event (``callee_timezone``, found from the number by the
producer before it hashed it). A call without one is not judged, and counted apart on the
compliance page; a zone tzdata lacks never gets here (dead-lettered as unknown_timezone).
A profile's hours may differ by the callee's weekday, or a day may allow no call ("off": the
violation's allowed hours then read "off").
Checked like the stop list, on every counted or late call: a violation is one however late.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from core.config import DAY_OFF, CallingHoursConfig, clock_minutes
from core.handoff import CallingHoursViolation
from core.schema import CallAttempt
from streams.stoplist import dialed_at

#: A weekday's allowed span on the callee's clock: (first second, last second, "HH:MM", "HH:MM"),
#: None on a day without calls.
DayHours = tuple[int, int, str, str] | None


class CallingHours:
    """Each campaign's allowed hours per weekday, worked out once per campaign and zone."""

    def __init__(self, config: CallingHoursConfig):
        self.config = config
        self._campaigns: dict[str, tuple[str, list[DayHours]]] = {}
        self._zones: dict[str, ZoneInfo] = {}

    def _hours_for(self, campaign: str) -> tuple[str, list[DayHours]]:
        hours = self._campaigns.get(campaign)
        if hours is None:
            name, profile = self.config.profile_for(campaign)
            week: list[DayHours] = []
            for weekday in range(7):
                day = profile.hours_on(weekday)
                week.append(
                    None if day is None else (clock_minutes(day[0]) * 60, clock_minutes(day[1]) * 60, day[0], day[1])
                )
            hours = self._campaigns[campaign] = (name, week)
        return hours

    def check(self, attempt: CallAttempt) -> CallingHoursViolation | None:
        zone_name = attempt.callee_timezone
        if zone_name is None:
            return None
        zone = self._zones.get(zone_name)
        if zone is None:
            zone = self._zones[zone_name] = ZoneInfo(zone_name)
        placed = dialed_at(attempt)
        local = placed.astimezone(zone)
        name, week = self._hours_for(attempt.campaign)
        # The callee's weekday decides the hours: a Sunday in Tokyo can be Saturday in the dialer's zone.
        day = week[local.weekday()]
        if day is None:
            return CallingHoursViolation(attempt, placed, local, name, DAY_OFF, DAY_OFF)
        start, end, allowed_from, allowed_until = day
        second_of_day = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
        # Both ends are allowed: "after 9 p.m." begins once 21:00:00 has passed.
        if start <= second_of_day <= end:
            return None
        return CallingHoursViolation(attempt, placed, local, name, allowed_from, allowed_until)
