"""Dead letters: every record (or batch item) the worker cannot use, with the reason.

The original bytes are kept (as UTF-8 text where they are text, base64 otherwise)
together with where they came from, so a fixed record can be replayed. Valid phone
numbers in them, and in the reason, are removed first, however they are written
(core.privacy.redact_phone_numbers): personal data never leaves the edge in clear,
not even when a producer breaks the contract (the count says a record was changed).
"""

from __future__ import annotations

import base64
from datetime import datetime, timezone

import msgspec

from core.privacy import DEFAULT_REGION, redact_phone_numbers
from core.schema import Rejection


class DeadLetter(msgspec.Struct, frozen=True):
    reason: str
    detail: str
    source_topic: str
    source_partition: int
    source_offset: int
    batch_index: int | None
    original: str
    original_encoding: str  # "utf-8" or "base64"
    rejected_at: datetime
    original_bytes: int = 0  # the size of the original record or item
    truncated: bool = False  # only the first KEPT_BYTES are in ``original`` (too_large records)
    numbers_removed: int = 0  # raw numbers taken out of ``original``: it is no longer byte-exact


_encoder = msgspec.json.Encoder()
# Enough to see what a runaway producer sent, small enough for any broker's message limit.
KEPT_BYTES = 64 * 1024


def dead_letter(
    rejection: Rejection, topic: str, partition: int, offset: int, region: str = DEFAULT_REGION
) -> DeadLetter:
    raw = rejection.raw[:KEPT_BYTES]
    try:
        original, removed = redact_phone_numbers(raw.decode("utf-8"), region)
        encoding = "utf-8"
    except UnicodeDecodeError:
        # Latin-1 maps each byte to one character, so the bytes around a number survive.
        text, removed = redact_phone_numbers(raw.decode("latin-1"), region)
        original, encoding = base64.b64encode(text.encode("latin-1")).decode("ascii"), "base64"
    detail, removed_from_detail = redact_phone_numbers(rejection.detail[:1000], region)
    return DeadLetter(
        reason=rejection.reason,
        detail=detail,
        source_topic=topic,
        source_partition=partition,
        source_offset=offset,
        batch_index=rejection.index,
        original=original,
        original_encoding=encoding,
        rejected_at=datetime.now(timezone.utc),
        original_bytes=len(rejection.raw),
        truncated=len(rejection.raw) > KEPT_BYTES,
        numbers_removed=removed + removed_from_detail,
    )


def encode_dead_letter(letter: DeadLetter) -> bytes:
    return _encoder.encode(letter)
