"""Stop-list changes into their compacted topic, hashed at this edge.

A phone number never reaches Kafka: it becomes its keyed HMAC here, and the HMAC is
the record key, so compaction keeps exactly one flag per customer. Removing a
customer writes a tombstone. A value that already is an HMAC (64 hex digits, as the
dialer events carry) is taken as it is, so a list exported from the warehouse side
can be re-imported without ever seeing a number.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from core.privacy import DEFAULT_REGION, hash_phone
from core.schema import StopListEntry, encode_stop_list_entry
from producers.publisher import EventPublisher

_HASHED = re.compile(r"^[0-9a-f]{64}$")
PHONE_COLUMNS = ("phone_number", "phone", "phone_hash", "number", "tel")


class StopListFileError(ValueError):
    pass


def phone_hash_of(value: str, key: bytes, region: str = DEFAULT_REGION) -> str:
    value = value.strip()
    if _HASHED.match(value):
        return value
    return hash_phone(value, key, region)  # raises ValueError when there are no digits


@dataclass
class ImportSummary:
    flagged: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line, why), never the number itself


class StopListPublisher:
    def __init__(self, bootstrap_servers: str, topic: str, hmac_key: bytes, region: str = DEFAULT_REGION):
        self.topic = topic
        self.hmac_key = hmac_key
        self.region = region
        self._publisher = EventPublisher(bootstrap_servers, topic)

    def flag(
        self, phone: str, *, reason: str = "opt_out", flagged_at: datetime | None = None, source: str = "cli"
    ) -> str:
        phone_hash = phone_hash_of(phone, self.hmac_key, self.region)
        entry = StopListEntry(
            phone_hash, (flagged_at or datetime.now(timezone.utc)).astimezone(timezone.utc), reason, source
        )
        self._publisher.send_raw(self.topic, encode_stop_list_entry(entry), key=phone_hash.encode())
        return phone_hash

    def unflag(self, phone: str) -> str:
        phone_hash = phone_hash_of(phone, self.hmac_key, self.region)
        self._publisher.send_raw(self.topic, None, key=phone_hash.encode())
        return phone_hash

    def import_rows(
        self,
        rows: Iterable[tuple[int, str, str | None, datetime | None]],
        *,
        reason: str,
        source: str,
        progress: Callable[[int], None] = lambda n: None,
    ) -> ImportSummary:
        summary = ImportSummary()
        for line, phone, row_reason, flagged_at in rows:
            try:
                self.flag(phone, reason=row_reason or reason, flagged_at=flagged_at, source=source)
            except ValueError as exc:
                summary.rejected.append((line, str(exc)))
            else:
                summary.flagged += 1
            progress(1)
        return summary

    def close(self) -> None:
        self._publisher.close()


def read_stop_list_file(path: Path) -> Iterator[tuple[int, str, str | None, datetime | None]]:
    """(line, phone or hash, reason, flagged_at) per row of a CSV with a phone column
    (VICIdial's vicidial_dnc export has ``phone_number``), or of a plain list of numbers."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as handle:
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise StopListFileError(f"{path}: cannot read it as UTF-8 text ({exc})") from None
    lines = text.splitlines()
    if not lines:
        raise StopListFileError(f"{path} is empty")
    header = [name.strip().lower() for name in next(csv.reader([lines[0]]))]
    phone_column = next((name for name in PHONE_COLUMNS if name in header), None)
    if phone_column is None:
        if len(header) == 1 and any(ch.isdigit() for ch in header[0]):
            for line, value in enumerate(lines, start=1):  # no header: one number per line
                if value.strip():
                    yield line, value, None, None
            return
        raise StopListFileError(
            f"{path}: no phone column; expected one of {', '.join(PHONE_COLUMNS)} "
            f"in the header, found {', '.join(header)}"
        )
    reader = csv.DictReader(io.StringIO("\n".join(lines[1:])), fieldnames=header)
    for line, row in enumerate(reader, start=2):
        phone = (row.get(phone_column) or "").strip()
        if not phone:
            continue
        flagged_at = None
        if row.get("flagged_at"):
            try:
                flagged_at = datetime.fromisoformat(row["flagged_at"].strip())
            except ValueError:
                raise StopListFileError(
                    f"{path}:{line}: flagged_at {row['flagged_at']!r} is not an ISO "
                    "timestamp (e.g. 2026-11-23T10:00:00+09:00)"
                ) from None
            if flagged_at.tzinfo is None:
                raise StopListFileError(f"{path}:{line}: flagged_at needs a UTC offset, e.g. +09:00")
        yield line, phone, (row.get("reason") or "").strip() or None, flagged_at
