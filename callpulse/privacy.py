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

import phonenumbers

_NON_DIGITS = re.compile(r"[^0-9]")
# The region a number written without its country code belongs to (pipeline.phone_region).
DEFAULT_REGION = "JP"


class MissingHmacKey(RuntimeError):
    pass


def normalize_phone(number: str, region: str = DEFAULT_REGION, country_code: str | None = None) -> str:
    """The number's E.164 digits, so every way of writing one line hashes alike.

    Digits alone are not enough: a dialer logs the national form (VICIdial: phone_code 81,
    phone_number 09088721495) while a do-not-call list usually holds the international one
    (+81 90-8872-1495). Unless both become 819088721495, the dial to a customer who opted
    out is never matched to the flag. libphonenumber knows each country's trunk prefix.
    A number it cannot read keeps its bare digits, so the call is not lost, only unlinked.
    """
    digits = _NON_DIGITS.sub("", number)
    if not digits:
        raise ValueError("phone number has no digits")
    written = number.strip()
    if country_code and not written.startswith("+"):
        code = _NON_DIGITS.sub("", country_code)
        region = phonenumbers.region_code_for_country_code(int(code)) if code else region
    try:
        parsed = phonenumbers.parse(written, region)
    except phonenumbers.NumberParseException:
        return digits
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164).lstrip("+")


# Runs of digits with the separators people write numbers with: the candidates
# libphonenumber then judges. Cheaper than its PhoneNumberMatcher on a 64 KiB record.
# No dots: "1234.56789012" is a duration far more often than a number written the
# French way, and a false match would corrupt the record an operator wants to replay.
# Not glued to letters or digits: "0123456789abcdef" is a hex id, not a number.
_CANDIDATE = re.compile(r"(?<![0-9A-Za-z])\+?\(?\d[\d\-\s()]{7,20}\d(?![0-9A-Za-z])")
_SEPARATORS = re.compile(r"[\s\-()]")
REDACTED = "[phone number removed]"
# "2026-11-16 10" is a valid Japanese number to libphonenumber; a date is not personal data.
_DATE = re.compile(r"\d{4}-\d{1,2}-\d{1,2}|\d{1,2}:\d{2}")


def redact_phone_numbers(text: str, region: str = DEFAULT_REGION) -> tuple[str, int]:
    """``text`` with every valid phone number in it replaced, and how many there were.

    For what the pipeline keeps of records it refuses: a producer that gets the contract
    wrong and sends raw numbers must not have them copied into the dead-letter topic.
    Timestamps, epoch ids and hashes are not valid numbers, so they stay readable.
    """
    found = 0
    national_prefix = phonenumbers.PhoneMetadata.metadata_for_region(region).national_prefix or "+"

    def is_number(candidate: str) -> bool:
        if _DATE.search(candidate):
            return False
        # Written as a phone number: with +, grouped, or with the trunk prefix. A bare run
        # of digits without one is a JSON number, an epoch or an id (JSON numbers never
        # start with 0), and must stay as sent.
        if not (candidate.startswith(("+", "(", national_prefix)) or _SEPARATORS.search(candidate)):
            return False
        try:
            return phonenumbers.is_valid_number(phonenumbers.parse(candidate, region))
        except phonenumbers.NumberParseException:
            return False

    def replace(match: re.Match) -> str:
        nonlocal found
        candidate = match.group(0)
        # A number written after another figure and a space ("42 09012345678") is found
        # by trying what follows each gap.
        for gap in (None, *re.finditer(r"\s+", candidate)):
            start = gap.end() if gap else 0
            if is_number(candidate[start:]):
                found += 1
                return candidate[:start] + REDACTED
        return candidate

    return _CANDIDATE.sub(replace, text), found


def hash_phone(number: str, key: bytes, region: str = DEFAULT_REGION, country_code: str | None = None) -> str:
    return hmac.new(key, normalize_phone(number, region, country_code).encode(), hashlib.sha256).hexdigest()


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
