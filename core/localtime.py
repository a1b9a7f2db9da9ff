"""Times as people read them: in the configured zone (pipeline.timezone), the zone named.

Events and the warehouse carry UTC; every page, the CLI's tables and the alert webhook's
text show the configured zone's wall clock, so a supervisor in Tokyo never converts in
their head. Machine outputs (JSON) keep ISO 8601 with the offset instead.
"""

from __future__ import annotations

from datetime import datetime, timezone, tzinfo

DEFAULT_FORMAT = "%Y-%m-%d %H:%M:%S"


def as_utc(moment) -> datetime | None:
    """``moment`` (datetime or pandas Timestamp; naive means UTC, as the warehouse hands it
    back) as an aware datetime; None for a missing value (None, NaT, NaN)."""
    if moment is None or moment != moment:  # NaN and NaT are not equal to themselves
        return None
    if hasattr(moment, "to_pydatetime"):
        moment = moment.to_pydatetime()
    if not isinstance(moment, datetime):
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def local_time(moment, zone: tzinfo, fmt: str = DEFAULT_FORMAT) -> str:
    """``moment`` on ``zone``'s wall clock ("2026-11-20 09:15:02"); "—" when missing. Name the
    zone once, in the column or line it is shown in (zone_name)."""
    aware = as_utc(moment)
    return "—" if aware is None else aware.astimezone(zone).strftime(fmt)


def local_time_named(moment, zone: tzinfo, fmt: str = DEFAULT_FORMAT) -> str:
    """local_time() with the zone after it: "2026-11-20 09:15:02 JST (Asia/Tokyo)"."""
    aware = as_utc(moment)
    if aware is None:
        return "—"
    local = aware.astimezone(zone)
    return f"{local.strftime(fmt)} {local.tzname()} ({zone_name(zone)})".replace(
        f" {zone_name(zone)} ({zone_name(zone)})", f" ({zone_name(zone)})"
    )


def local_iso(moment, zone: tzinfo) -> str | None:
    """ISO 8601 with the zone's offset ("2026-11-20T09:15:02+09:00"): for JSON."""
    aware = as_utc(moment)
    return None if aware is None else aware.astimezone(zone).isoformat()


def zone_name(zone: tzinfo) -> str:
    """The zone's IANA name ("Asia/Tokyo"), or what it calls itself."""
    return getattr(zone, "key", None) or str(zone)
