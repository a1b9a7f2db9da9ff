"""Personal data stays at the edge: phone numbers become a keyed HMAC before Kafka.

The key comes from ``CALLPULSE_HMAC_KEY``. In embedded mode a random key is created
once in the data directory (mode 0600) so a fresh machine works with no setup; a
server deployment must set the variable so every producer hashes alike.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

_NON_DIGITS = re.compile(r"[^0-9]")


class MissingHmacKey(RuntimeError):
    pass


def normalize_phone(number: str) -> str:
    """Digits only, so '+81 3-1234-5678' and '81312345678' hash the same."""
    digits = _NON_DIGITS.sub("", number)
    if not digits:
        raise ValueError("phone number has no digits")
    return digits


def hash_phone(number: str, key: bytes) -> str:
    return hmac.new(key, normalize_phone(number).encode(), hashlib.sha256).hexdigest()


def load_hmac_key(data_dir: Path | None, *, create: bool = True) -> bytes:
    from_env = os.environ.get("CALLPULSE_HMAC_KEY")
    if from_env:
        return from_env.encode()
    if data_dir is None:
        raise MissingHmacKey("set CALLPULSE_HMAC_KEY: phone numbers are hashed with it before they leave the producer")
    key_file = Path(data_dir) / "hmac.key"
    if key_file.is_file():
        return key_file.read_bytes().strip()
    if not create:
        raise MissingHmacKey(f"no CALLPULSE_HMAC_KEY and no key file at {key_file}")
    key_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(secrets.token_hex(32).encode())
    return key_file.read_bytes().strip()
