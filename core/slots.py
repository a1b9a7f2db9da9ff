"""Time-slot rules: which part of the calling day a moment falls in, by local time.

Events carry UTC; slots are defined on the wall clock of the configured IANA zone,
so a slot boundary follows daylight-saving changes.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

from core.config import SlotConfig

OFF_HOURS = "off_hours"


class SlotRules:
    def __init__(self, slots: list[SlotConfig], zone: ZoneInfo):
        self.slots = list(slots)
        self.zone = zone
        by_hour = [OFF_HOURS] * 24
        for slot in self.slots:
            for hour in range(slot.start_hour, slot.end_hour):
                by_hour[hour] = slot.name
        self._slot_by_hour = tuple(by_hour)
        # Slots are whole hours, so caching per UTC minute is exact and keeps the
        # per-event cost to a dict lookup on the hot path.
        self.slot_for_minute = lru_cache(maxsize=4096)(self._slot_for_minute)

    @property
    def names(self) -> list[str]:
        return [slot.name for slot in self.slots] + [OFF_HOURS]

    def local_hour(self, moment: datetime) -> int:
        return moment.astimezone(self.zone).hour

    def slot_for(self, moment: datetime) -> str:
        if moment.tzinfo is None:
            raise ValueError("slot_for needs a timezone-aware datetime (events carry UTC)")
        return self._slot_by_hour[self.local_hour(moment)]

    def _slot_for_minute(self, minute_epoch: int) -> str:
        return self._slot_by_hour[datetime.fromtimestamp(minute_epoch, self.zone).hour]
