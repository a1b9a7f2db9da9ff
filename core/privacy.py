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
import unicodedata
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


def callee_timezone(number: str, region: str = DEFAULT_REGION, country_code: str | None = None) -> str | None:
    """The IANA zone of the line a number reaches, from libphonenumber's time-zone data, read
    at the edge before the number is hashed; the zone alone is not personal data.

    None when the number cannot be read or its zone is ambiguous: a toll-free +1 800 number
    maps to some forty zones, and a guess would judge the call's hours against the wrong clock.
    """
    from phonenumbers import timezone as number_zones

    written = number.strip()
    if country_code and not written.startswith("+"):
        code = _NON_DIGITS.sub("", country_code)
        region = phonenumbers.region_code_for_country_code(int(code)) if code else region
    try:
        parsed = phonenumbers.parse(written, region)
    except phonenumbers.NumberParseException:
        return None
    zones = number_zones.time_zones_for_number(parsed)
    if len(zones) != 1 or zones[0] == number_zones.UNKNOWN_TIMEZONE:
        return None
    return zones[0]


# What detection reads instead of the text as written, one character for one, so a match
# maps straight back onto the text: NFKC's ASCII form of full-width digits and signs
# (０９０－８８７２ -> 090-8872), every script's decimal digits as ASCII ones, every dash and
# the katakana long mark as "-", middle dots as ".", and spaces and invisible format
# characters (zero-width space, word joiner) as " ", so nothing hides a number between its digits.
_DASHES = frozenset("\u2010\u2011\u2012\u2013\u2014\u2015\u2043\u2212\u30fc\ufe58\ufe63\uff0d")
_DOTS = frozenset("\u00b7\u2022\u2024\u30fb\uff0e\uff65")


class _FoldTable(dict):
    """str.translate's table for detection: each character's folded form, worked out once."""

    def __missing__(self, code: int) -> str:
        char = chr(code)
        folded = char
        digit = unicodedata.decimal(char, None)
        if digit is not None:
            folded = str(digit)
        elif char in _DASHES or unicodedata.category(char) == "Pd":
            folded = "-"
        elif char in _DOTS:
            folded = "."
        elif unicodedata.category(char) in ("Zs", "Zl", "Zp", "Cf"):
            folded = " "
        else:
            nfkc = unicodedata.normalize("NFKC", char)
            if len(nfkc) == 1 and nfkc.isascii():
                folded = nfkc
        self[code] = folded
        return folded


_FOLD = _FoldTable()
# A JSON string may spell a digit as \u0030 (and Python's repr a space as \xa0): decoded,
# that is a number all the same.
_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})|\\x([0-9a-fA-F]{2})")


def _fold(text: str) -> tuple[str, list[int] | None]:
    """``text`` as detection reads it, and where each of its characters starts in ``text``
    (None when every character stands for one of ``text``'s, at the same place)."""
    if "\\u" not in text and "\\x" not in text:
        return (text if text.isascii() else text.translate(_FOLD)), None
    pieces: list[str] = []
    starts: list[int] = []
    last = 0
    for escape in _ESCAPE.finditer(text):
        pieces.append(text[last : escape.start()])
        starts.extend(range(last, escape.start()))
        pieces.append(chr(int(escape.group(1) or escape.group(2), 16)))
        starts.append(escape.start())
        last = escape.end()
    pieces.append(text[last:])
    starts.extend(range(last, len(text) + 1))
    return "".join(pieces).translate(_FOLD), starts


# Runs of digits with the separators people write numbers with: the candidates
# libphonenumber then judges. Cheaper than its PhoneNumberMatcher on a 64 KiB record.
# Not glued to letters or digits: "0123456789abcdef" is a hex id, not a number.
_CANDIDATE = re.compile(r"(?<![0-9A-Za-z])\+?\(?\d[\d\-\s().]{7,20}\d(?![0-9A-Za-z])")
_SEPARATORS = re.compile(r"[\s\-().]")
_GAPS = re.compile(r"\s+")
# A UUID is an id (the simulator's event ids), even when one of its groups is all digits.
# One with no hex letter at all is read like any other text: that is a number in disguise.
_UUID = re.compile(
    r"(?<![0-9A-Za-z])[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
    r"(?![0-9A-Za-z])"
)
_HEX_LETTER = re.compile("[A-Fa-f]")
_BARE_DECIMAL = re.compile(r"[1-9]\d*\.\d+")
_LETTERED_UUID = re.compile(r"(?=[^A-Fa-f]*[A-Fa-f])" + _UUID.pattern)
REDACTED = "[phone number removed]"
# "2026-11-16 10" is a valid Japanese number to libphonenumber; a date is not personal data.
# Only real calendar dates count ("0120-12-1234" is a toll-free number, "81.90.8872" part of one).
_YEAR, _MONTH, _DAY = r"(?:19|20)\d{2}", r"(?:0?[1-9]|1[0-2])", r"(?:0?[1-9]|[12]\d|3[01])"
_DATE = re.compile(
    rf"(?<!\d){_YEAR}([-./]){_MONTH}\1{_DAY}(?!\d)|(?<!\d){_DAY}([./]){_MONTH}\2{_YEAR}(?!\d)"
    r"|\d{1,2}:\d{2}"
)
# A bare run of digits (no +, no trunk prefix, no separators) shorter than this is an id,
# a count or a JSON number: VICIdial's lead_ids, an epoch minute. A number of the region
# with its trunk 0 dropped is ten digits in Japan, the US and the UK, so those are caught.
MIN_BARE_DIGITS = 10
# Spans of a candidate worth judging hold this many digits (E.164 has at most 15, and an
# international prefix such as 010 adds a few).
_DIGITS_IN_A_NUMBER = range(6, 20)
# The most spans of one text libphonenumber judges (each a full parse). Past it, every remaining
# candidate that could be a number is removed unjudged: a flood of digit groups must neither stall
# the worker nor slip a number through.
MAX_JUDGED_SPANS = 2_000


def _region_metadata(region: str) -> phonenumbers.PhoneMetadata:
    """libphonenumber's metadata of ``region`` (config checks pipeline.phone_region against
    phonenumbers.SUPPORTED_REGIONS, so a missing one is a caller's mistake)."""
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None:
        raise ValueError(f"{region!r} is not a region libphonenumber knows")
    return metadata


class _Detector:
    """Finds the valid phone numbers of one region in text, as libphonenumber reads them:
    the reading the stop list hashes numbers by (normalize_phone)."""

    def __init__(self, region: str):
        self.region = region
        metadata = _region_metadata(region)
        calling_code = phonenumbers.country_code_for_region(region)
        self.national_prefix = metadata.national_prefix or "+"
        self.country_code = str(calling_code)
        self.metadata = metadata
        self.prefix_for_parsing = (
            re.compile(metadata.national_prefix_for_parsing) if metadata.national_prefix_for_parsing else None
        )
        self.international_prefix = re.compile(metadata.international_prefix) if metadata.international_prefix else None
        # Every national number valid anywhere under this country code (+1 is the US, Canada
        # and the Caribbean): is_valid_number accepts none that matches no pattern here.
        patterns = []
        for sharing in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(calling_code, (region,)):
            shared = _region_metadata(sharing)
            for desc in (
                shared.fixed_line,
                shared.mobile,
                shared.toll_free,
                shared.premium_rate,
                shared.shared_cost,
                shared.personal_number,
                shared.voip,
                shared.pager,
                shared.uan,
                shared.voicemail,
            ):
                if desc is not None and desc.national_number_pattern:
                    patterns.append(desc.national_number_pattern)
        self.valid_national = re.compile("|".join(f"(?:{pattern})" for pattern in patterns)) if patterns else None
        # The same question as one regular expression over the digits: this country's code,
        # then up to two national prefixes, then a valid national number. Without its $
        # anchors the prefix pattern matches more, never less, so the answer stays sound.
        # Regions whose prefix rule rewrites the number (Argentina's 15 -> 9) keep the
        # reading-by-reading check.
        transform = metadata.national_prefix_transform_rule
        self.quick = None
        if self.valid_national is not None and (
            not transform or _keeps_the_number(metadata.national_prefix_for_parsing or "", transform)
        ):
            prefix = (metadata.national_prefix_for_parsing or "").replace("$", "")
            optional_prefix = f"(?:{prefix})?" if prefix else ""
            self.quick = re.compile(
                f"(?:{self.country_code})?{optional_prefix}{optional_prefix}(?:{self.valid_national.pattern})"
            )

    def as_number(self, written: str) -> str | None:
        """``written`` as libphonenumber should judge it, or None when it cannot be a number."""
        if _DATE.search(written):
            return None
        dots = written.count(".")
        if dots == 1:
            # A decimal, or VICIdial's uniqueid (epoch.sequence: "1763618745.6880", in the UK
            # a valid number before its dot). Only a whole part written as a number counts:
            # "090-8872-1495.5".
            written = written.partition(".")[0]
            return written if self.written_as_number(written) else None
        if dots:  # +81.90.8872.1495, 202.555.0143
            written = written.replace(".", " ")
        # Written as a phone number, or a bare run of digits long enough to be one.
        if not self.written_as_number(written) and len(written) < MIN_BARE_DIGITS:
            return None
        return written

    def written_as_number(self, written: str) -> bool:
        """With +, a bracket, the trunk prefix or separators: as people write phone numbers."""
        return written.startswith(("+", "(", self.national_prefix)) or _SEPARATORS.search(written) is not None

    def could_be_valid(self, readable: str) -> bool:
        """False when libphonenumber cannot find ``readable`` valid, judged without its full
        parse: every national number its parse could make of these digits
        (as written, less the national prefix, less this country's code) matches none of
        the region's number patterns (tests/test_phone_numbers.py checks this against
        libphonenumber in every region). Numbers written with + or an international prefix
        are left to libphonenumber."""
        if readable.startswith("+") or self.valid_national is None:
            return True
        digits = _NON_DIGITS.sub("", readable)
        if self.international_prefix is not None and self.international_prefix.match(digits):
            return True
        if self.quick is not None:
            return self.quick.fullmatch(digits) is not None
        readings = [digits]
        if digits.startswith(self.country_code):
            readings.append(digits[len(self.country_code) :])
        # A prefix may be stripped twice: once after the country code, once more in parse.
        for _ in range(2):
            readings += [less for reading in readings for less in self._less_national_prefix(reading)]
        return any(self.valid_national.fullmatch(reading) for reading in set(readings))

    def _less_national_prefix(self, digits: str) -> list[str]:
        """What libphonenumber's national-prefix stripping can make of ``digits``
        (phonenumberutil._maybe_strip_national_prefix_carrier_code, without its viability checks)."""
        if self.prefix_for_parsing is None:
            return []
        match = self.prefix_for_parsing.match(digits)
        if not match:
            return []
        readings = [digits[match.end() :]]
        transform = self.metadata.national_prefix_transform_rule
        if transform and match.groups() and match.groups()[-1] is not None:
            readings.append(self.prefix_for_parsing.sub(transform, digits, count=1))
        return readings

    def is_valid(self, readable: str) -> bool:
        try:
            return phonenumbers.is_valid_number(phonenumbers.parse(readable, self.region))
        except phonenumbers.NumberParseException:
            return False

    def verdict_on_a_plain_id(self, value: str, match: re.Match) -> bool | None:
        """The answer for the ids every event carries, in a few steps where it is plain:
        one run of bare digits (a zero-padded counter "s7-000012345"; a number is judged by
        numbers_in) or a bare decimal (VICIdial's uniqueid). ``match`` is the first
        candidate in ``value``. None: ask numbers_in."""
        if _CANDIDATE.search(value, match.end()) is not None:
            return None
        candidate = match.group(0)
        if candidate.isdigit():
            if len(candidate) < MIN_BARE_DIGITS and not candidate.startswith(self.national_prefix):
                return False
            if self.quick is not None and not (
                self.international_prefix and self.international_prefix.match(candidate)
            ):
                return None if self.quick.fullmatch(candidate) else False
            return None if self.could_be_valid(candidate) else False
        if _BARE_DECIMAL.fullmatch(candidate):
            return False
        return None

    def numbers_in(self, folded: str) -> list[tuple[int, int]]:
        """(start, end) of each number in folded text, in order."""
        if folded.count("-") >= 4:
            folded = _UUID.sub(
                lambda m: "x" * len(m.group(0)) if _HEX_LETTER.search(m.group(0)) else m.group(0), folded
            )
        spans: list[tuple[int, int]] = []
        budget = MAX_JUDGED_SPANS

        def judged_a_number(written: str) -> bool:
            nonlocal budget
            if len(_NON_DIGITS.sub("", written)) not in _DIGITS_IN_A_NUMBER:
                return False
            readable = self.as_number(written)
            if readable is None or not self.could_be_valid(readable):
                return False
            budget -= 1
            return budget < 0 or self.is_valid(readable)

        for match in _CANDIDATE.finditer(folded):
            candidate, offset = match.group(0), match.start()
            gaps = list(_GAPS.finditer(candidate))
            if not gaps:
                if judged_a_number(candidate):
                    spans.append((offset, offset + len(candidate)))
                continue
            # A number may stand among other figures ("42 09012345678 7"): try the spans
            # between gaps, longest first from each start.
            cuts = [0, *(gap.end() for gap in gaps)]
            ends = [*(gap.start() for gap in gaps), len(candidate)]
            first = 0
            for start in cuts:
                if start < first:
                    continue
                for end in reversed(ends):
                    if end <= start:
                        break
                    if judged_a_number(candidate[start:end]):
                        spans.append((offset + start, offset + end))
                        first = end
                        break
        return spans


def _keeps_the_number(prefix: str, transform: str) -> bool:
    """Whether a national-prefix rule leaves the number as it is: Japan's
    "(000[2569]\\d{4,6})$|…" with transform "\\1" keeps a whole 0002… number, and its other
    alternatives capture nothing."""
    if transform != "\\1" or not prefix.startswith("("):
        return False
    depth, index, in_class = 0, 0, False
    while index < len(prefix):
        char = prefix[index]
        if char == "\\":
            index += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char in "()":
            depth += 1 if char == "(" else -1
            if depth == 0:
                rest = prefix[index + 1 :]
                return (rest == "$" or rest.startswith("$|")) and re.search(r"(?<!\\)\((?!\?)", rest) is None
        index += 1
    return False


_DETECTORS: dict[str, _Detector] = {}


def _detector(region: str) -> _Detector:
    if region not in _DETECTORS:
        _DETECTORS[region] = _Detector(region)
    return _DETECTORS[region]


def redact_phone_numbers(text: str, region: str = DEFAULT_REGION) -> tuple[str, int]:
    """``text`` with every valid phone number in it replaced, and how many there were.

    For what the pipeline keeps of records it refuses: a producer that gets the contract
    wrong and sends raw numbers must not have them copied into the dead-letter topic.
    Numbers are found however they are written: grouped with spaces, dashes, brackets or
    dots, with + or the trunk prefix or bare, in full-width or other scripts' digits, or
    spelled as JSON escapes. Timestamps, epochs, decimals, uniqueids, UUIDs, hashes and
    bare runs of fewer than MIN_BARE_DIGITS digits are not numbers, so they stay readable.
    """
    folded, starts = _fold(text)
    spans = _detector(region).numbers_in(folded)
    if not spans:
        return text, 0
    pieces, last = [], 0
    for start, end in spans:
        if starts is not None:
            start, end = starts[start], starts[end]
        pieces += [text[last:start], REDACTED]
        last = end
    pieces.append(text[last:])
    return "".join(pieces), len(spans)


def looks_like_phone_number(value: str, region: str = DEFAULT_REGION) -> bool:
    """Whether an id or a name (a campaign, an agent, a lead id) holds a phone number, by
    the reading redact_phone_numbers uses. Every event's ids pass here: plain ASCII with no
    run of digits long enough (most names, UUIDs) is answered at once, and digits no
    number of the region could be (a zero-padded counter) in a few microseconds."""
    detector = _DETECTORS.get(region) or _detector(region)
    if value.isascii() and "\\" not in value:
        if _LETTERED_UUID.fullmatch(value):
            return False
        match = _CANDIDATE.search(value)
        if match is None:
            return False
        verdict = detector.verdict_on_a_plain_id(value, match)
        return verdict if verdict is not None else bool(detector.numbers_in(value))
    return bool(detector.numbers_in(_fold(value)[0]))


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
