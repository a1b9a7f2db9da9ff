"""The calling-hours rule: a call placed outside the called person's allowed local hours is a
violation (US FTC TSR 16 CFR 310.4(c): not before 8 a.m. or after 9 p.m. at the called person's
location; each campaign's hours come from its [calling_hours] profile).

The callee's zone comes with the event (``callee_timezone``, found from the number by the
producer before it hashed it). A call without one is not judged, and counted apart on the
compliance page; a zone tzdata lacks never gets here (dead-lettered as unknown_timezone).
Checked like the stop list, on every counted or late call: a violation is one however late.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

from core.config import CallingHoursConfig
from core.handoff import CallingHoursViolation
from core.schema import CallAttempt
from streams.stoplist import dialed_at


class CallingHours:
    """Each campaign's allowed hours, worked out once per campaign and zone."""

    def __init__(self, config: CallingHoursConfig):
        self.config = config
        self._campaigns: dict[str, tuple[str, int, int, str, str]] = {}
        self._zones: dict[str, ZoneInfo] = {}

    def _hours_for(self, campaign: str) -> tuple[str, int, int, str, str]:
        hours = self._campaigns.get(campaign)
        if hours is None:
            name, profile = self.config.profile_for(campaign)
            start, end = profile.minutes()
            hours = self._campaigns[campaign] = (name, start * 60, end * 60, profile.start, profile.end)
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
        name, start, end, allowed_from, allowed_until = self._hours_for(attempt.campaign)
        second_of_day = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
        # Both ends are allowed: "after 9 p.m." begins once 21:00:00 has passed.
        if start <= second_of_day <= end:
            return None
        return CallingHoursViolation(attempt, placed, local, name, allowed_from, allowed_until)
