"""No raw phone number anywhere, after a run that saw raw numbers at every edge.

One pipeline run (module scope) takes raw numbers in through `callpulse ingest vicidial`
(the fixture export, some of whose rows are rejected, plus a small export with numbers
written the ways people write them), `callpulse stoplist import/add/remove`, and the
dialer simulator. After the worker has caught up and stopped, every record of every topic
in the test's namespace (keys, values, headers, and base64 originals decoded) and every
cell of every warehouse table is scanned for each number in every normal form: as typed,
digits only, with +81 or 81, the national form with its leading 0 and without it, dashed
and spaced, and its last 8 or 9 digits standing alone. Unkeyed digests (MD5, SHA-1,
SHA-256) of the numbers, which anyone can reverse by trying every number, are looked for
too. The hashes that are kept must be HMAC-SHA256 under the key, so data stays linkable.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import json
import re
import subprocess
import sys
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from core.config import Settings
from streams.kafka_admin import read_records

pytestmark = pytest.mark.integration

PROJECT_ROOT = Path(__file__).resolve().parents[1]
FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "vicidial_log_export.tsv"
KEY = b"test-key"  # the workers' CALLPULSE_HMAC_KEY (tests/conftest.py)
ON_THE_16TH = "2026-11-16T00:00:00+09:00"  # before every call in the fixture export

# Numbers as people type them into a stop-list file; the last two are fixture numbers,
# flagged before the fixture's calls to them, so those dials are violations.
STOP_LIST_CSV = [
    ("+81 90-1234-5678", "complaint", ""),
    ("090 2222 3333", "", ""),
    ("(03) 5555-6666", "dnc_request", ""),
    ("not a number", "", ""),
    ("090-3996-8745", "dnc_request", ON_THE_16TH),  # fixture row 1, national form: as VICIdial has it
    ("+81 90-8872-1495", "dnc_request", ON_THE_16TH),  # fixture row 2, international form
]
STOP_LIST_PLAIN = ["0312349876", "+81-6-6123-4567"]
ADDED_THEN_REMOVED = "+81 90-4444-5555"
# A second export with numbers formatted, and a row for each way a row can be refused.
CRAFTED_HEADER = [
    "uniqueid",
    "lead_id",
    "list_id",
    "campaign_id",
    "call_date",
    "length_in_sec",
    "status",
    "phone_code",
    "phone_number",
    "user",
    "user_group",
]
CRAFTED_ROWS = [
    ["9000000001.1", "70001", "501", "PRIVACY", "2026-11-16 11:00:00", "30", "NA", "81", "090-7777-0001", "VDAD", ""],
    [
        "9000000002.1",
        "70002",
        "501",
        "PRIVACY",
        "2026-11-16 11:01:00",
        "95",
        "SALE",
        "81",
        "+81 90 7777 0002",
        "agent01",
        "TOKYO",
    ],
    ["9000000003.1", "70003", "501", "PRIVACY", "2026-11-16 11:02:00", "-4", "NA", "81", "090-7777-0003", "VDAD", ""],
    ["9000000004.1", "70004", "501", "PRIVACY", "2026-11-16 11:03:00", "abc", "NA", "81", "09077770004", "VDAD", ""],
    ["9000000005.1", "70005", "501", "PRIVACY", "16/11/2026 11:04", "10", "NA", "81", "(090) 7777-0005", "VDAD", ""],
    [
        "9000000006.1",
        "70006",
        "501",
        "PRIVACY",
        "2026-11-16 11:05:00",
        "10",
        "WHATEVER",
        "81",
        "090 7777 0006",
        "VDAD",
        "",
    ],
    ["", "70007", "501", "PRIVACY", "2026-11-16 11:06:00", "10", "NA", "81", "0907777-0007", "VDAD", ""],
    ["9000000008.1", "09077770008", "501", "PRIVACY", "2026-11-16 11:07:00"],  # wrong column count
]
CRAFTED_REJECTED = 6
# A producer that gets the contract wrong and sends raw numbers on the call-events topic:
# the worker refuses each record, and its dead letter must not keep the number either.
MISTAKES = {
    "08055550101": json.dumps(
        {
            "type": "call_attempt",
            "schema_version": 1,
            "event_id": "m1",
            "campaign": "PRIVACY",
            "event_time": "2026-11-16T02:00:00Z",
            "outcome": "busy",
            "lead": {"segment": "list-501", "phone_number": "080-5555-0101"},
        }
    ).encode(),
    "08055550102": json.dumps(
        {
            "type": "call_attempt",
            "schema_version": 1,
            "event_id": "m2",
            "campaign": "PRIVACY",
            "event_time": "2026-11-16T02:00:00Z",
            "outcome": "busy",
            "lead": {"segment": "list-501", "phone_hash": "08055550102"},
        }
    ).encode(),
    "+81 80 5555 0103": b"9000000009.1,PRIVACY,2026-11-16 11:00:00,30,NA,81,+81 80 5555 0103",  # a CSV line
    "080-5555-0104": b"\xff\xfe tel:080-5555-0104",  # not UTF-8: the dead letter keeps it as base64
}


# -- reading everything back ------------------------------------------------------------


def digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def e164_digits(number: str) -> str:
    """Japan's rule written out here rather than taken from core.privacy: the national
    form drops its trunk 0 and gains the country code 81; the international form is kept."""
    all_digits = digits(number)
    if number.strip().startswith("+") or all_digits.startswith("81"):
        return all_digits
    return "81" + all_digits.removeprefix("0")


def hmac_of(number: str) -> str:
    """HMAC-SHA256 of the number's E.164 digits under the workers' key."""
    return hmac.new(KEY, e164_digits(number).encode(), hashlib.sha256).hexdigest()


class NumberScanner:
    """Finds any of a set of phone numbers, in any normal form, in bytes."""

    SEPARATED = re.compile(r"\+?\(?\d[\d\-\s()]{6,}\d")
    RUNS = re.compile(r"\d+")
    HEX = re.compile(r"[0-9a-f]{32,}")

    def __init__(self, numbers):
        self.long: dict[str, str] = {}  # 10+ digit forms -> the number as typed
        self.tails: dict[str, str] = {}  # last 8 and 9 digits
        self.digests: dict[str, str] = {}
        self.typed = set(numbers)
        for number in numbers:
            all_digits = digits(number)
            national = "0" + all_digits[2:] if all_digits.startswith("81") else all_digits
            subscriber = national.lstrip("0")
            for form in {all_digits, national, subscriber, "81" + subscriber}:
                self.long[form] = number
                for algorithm in ("md5", "sha1", "sha256"):
                    self.digests[hashlib.new(algorithm, form.encode()).hexdigest()] = number
            for size in (8, 9):
                self.tails[all_digits[-size:]] = number

    def find(self, blob: bytes) -> set[str]:
        text = blob.decode("latin-1")
        found = {number for number in self.typed if number in text}
        for token in self.SEPARATED.findall(text):  # dashed, spaced, bracketed, +81
            token_digits = digits(token)
            hit = self.long.get(token_digits) or self.tails.get(token_digits)
            if hit:
                found.add(hit)
        for run in self.RUNS.findall(text):
            if len(run) in (8, 9) and run in self.tails:
                found.add(self.tails[run])
            for size in (10, 11, 12):  # a number glued inside a longer run of digits
                for start in range(0, len(run) - size + 1):
                    if run[start : start + size] in self.long:
                        found.add(self.long[run[start : start + size]])
        for token in self.HEX.findall(text.lower()):
            for size in (32, 40, 64):
                for start in range(0, len(token) - size + 1):
                    if token[start : start + size] in self.digests:
                        found.add(self.digests[token[start : start + size]])
        return found


@dataclass
class Scanned:
    topic_records: dict[str, int] = field(default_factory=dict)
    table_rows: dict[str, int] = field(default_factory=dict)
    cells: int = 0
    blobs: list[tuple[str, bytes]] = field(default_factory=list)  # (where, bytes)

    def hits(self, scanner: NumberScanner) -> list[str]:
        found = []
        for where, blob in self.blobs:
            for number in scanner.find(blob):
                found.append(f"{number!r} in {where}: {blob[:300]!r}")
        return found


def scan_topics(settings: Settings, scanned: Scanned) -> None:
    from kafka.admin import KafkaAdminClient

    namespace = settings.topics.call_events.split(".")[0] + "."
    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        topics = sorted(t for t in admin.list_topics() if t.startswith(namespace))
    finally:
        admin.close()
    configured = {
        settings.topics.call_events,
        settings.topics.dead_letters,
        settings.topics.alerts,
        settings.topics.stop_list,
    }
    assert configured <= set(topics), topics
    for topic in topics:
        records = read_records(settings, topic)
        scanned.topic_records[topic] = len(records)
        for record in records:
            where = f"{topic}[{record.partition}]@{record.offset}"
            for part, blob in (("key", record.key), ("value", record.value)):
                if blob:
                    scanned.blobs.append((f"{where} {part}", blob))
            for name, value in record.headers or []:
                scanned.blobs.append((f"{where} header {name}", name.encode() + b"=" + (value or b"")))
            # A dead letter keeps a non-text original as base64, where a plain scan cannot see it.
            if record.value and b'"original_encoding":"base64"' in record.value:
                original = base64.b64decode(json.loads(record.value)["original"])
                scanned.blobs.append((f"{where} original (base64-decoded)", original))


def scan_warehouse(client, scanned: Scanned) -> None:
    from clickhouse_connect.driver.binding import quote_identifier

    tables = client.query(
        "SELECT database, name FROM system.tables WHERE database NOT IN ('system', 'INFORMATION_SCHEMA', "
        "'information_schema') AND NOT is_temporary ORDER BY database, name"
    ).result_rows
    for database, table in tables:
        columns = [
            row[0]
            for row in client.query(
                "SELECT name FROM system.columns WHERE database = {d:String} AND table = {t:String} ORDER BY position",
                parameters={"d": database, "t": table},
            ).result_rows
        ]
        cells = ", ".join(f"ifNull(toString({quote_identifier(c)}), '')" for c in columns)
        # No FINAL: superseded row versions are stored data too.
        rows = client.query(f"SELECT {cells} FROM {quote_identifier(database)}.{quote_identifier(table)}").result_rows
        scanned.table_rows[f"{database}.{table}"] = len(rows)
        scanned.cells += len(rows) * len(columns)
        for number, row in enumerate(rows):
            scanned.blobs.append(
                (
                    f"table {database}.{table} row {number}",
                    "\x1f".join(f"{c}={v}" for c, v in zip(columns, row)).encode(),
                )
            )


# -- the run ------------------------------------------------------------------------------


@dataclass
class Run:
    settings: Settings
    edge_numbers: set[str]
    simulated: dict[str, str]  # phone number -> the hash the simulator put on its events
    vicidial_rows: dict[str, str]  # uniqueid -> phone_number, rows that were published
    stop_list: dict[str, str | None]  # phone hash (record key) -> the newest value, None for a tombstone
    attempts: dict[str, str]  # event_id -> phone_hash, as landed
    violations: set[str]  # event ids of dials to stop-listed customers
    health: dict
    scanned: Scanned
    outputs: list[tuple[str, bytes]]  # command output and the worker log


def cli(config_file: Path, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "callpulse", "--config", str(config_file), *args],
        capture_output=True,
        cwd=PROJECT_ROOT,
        timeout=120,
        env={"CALLPULSE_HMAC_KEY": KEY.decode(), "PATH": "/usr/bin:/bin"},
    )
    return result


@pytest.fixture(scope="module")
def run(broker, tmp_path_factory) -> Run:
    from conftest import new_pipeline

    import producers.simulator as simulator_module
    from core.slots import SlotRules
    from producers.publisher import EventPublisher
    from warehouse.client import connect

    directory = tmp_path_factory.mktemp("personal-data")
    pipeline = new_pipeline(broker, directory)
    settings = pipeline.settings
    outputs: list[tuple[str, bytes]] = []

    def command(*args: str) -> subprocess.CompletedProcess:
        result = cli(pipeline.config_file, *args)
        outputs.append((f"`callpulse {' '.join(args)}`", result.stdout + result.stderr))
        assert result.returncode == 0, result.stderr.decode()
        return result

    try:
        # The simulator dials numbers it makes up; note each one as it is hashed.
        simulated: dict[str, str] = {}

        def noting_hash(number: str, key: bytes) -> str:
            simulated[number] = real_hash(number, key)
            return simulated[number]

        real_hash = simulator_module.hash_phone
        start = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(hours=3)
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(simulator_module, "hash_phone", noting_hash)
            events = list(
                simulator_module.DialerSimulator(
                    SlotRules(settings.slots, settings.zone), KEY, seed=17, start=start
                ).events(count=600)
            )
        assert len(simulated) >= 100
        # One simulated customer opted out before the day's calls: their dials are violations.
        opted_out = next(iter(simulated))

        dnc = directory / "dnc.csv"
        with dnc.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["phone_number", "reason", "flagged_at"])
            writer.writerows([*STOP_LIST_CSV, (opted_out, "opt_out", (start - timedelta(hours=1)).isoformat())])
        plain = directory / "numbers.txt"
        plain.write_text("\n".join(STOP_LIST_PLAIN) + "\n")
        crafted = directory / "crafted_export.csv"
        with crafted.open("w", newline="") as handle:
            csv.writer(handle).writerows([CRAFTED_HEADER, *CRAFTED_ROWS])

        imported = command("stoplist", "import", str(dnc))
        assert b"flagged 6 customer(s)" in imported.stderr and b"rejected 1 row(s)" in imported.stderr, imported.stderr
        command("stoplist", "import", str(plain))
        command("stoplist", "add", ADDED_THEN_REMOVED, "--reason", "complaint")
        command("stoplist", "remove", ADDED_THEN_REMOVED)
        fixture_ingest = command("ingest", "vicidial", str(FIXTURE))
        assert b"rejected 10" in fixture_ingest.stderr, fixture_ingest.stderr  # 9 unknown statuses, 1 broken line
        crafted_ingest = command("ingest", "vicidial", str(crafted))
        assert f"rejected {CRAFTED_REJECTED}".encode() in crafted_ingest.stderr, crafted_ingest.stderr

        publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events, batch_events=20)
        publisher.publish_all(events)
        for value in MISTAKES.values():
            publisher.send_raw(settings.topics.call_events, value, key=b"PRIVACY")
        publisher.close()

        worker = pipeline.worker()
        health = worker.wait_until_caught_up(timeout_s=120)
        health = worker.wait_until(lambda h: h["alerts_sent"] >= 1, timeout_s=30)
        assert worker.stop() == 0
        outputs.append(("the worker's log", worker.log_path.read_bytes()))
        command("deadletters", "--format", "json", "--limit", "1000")
        command("stoplist", "status")

        scanned = Scanned()
        scan_topics(settings, scanned)
        stop_list = {}
        for record in read_records(settings, settings.topics.stop_list):
            stop_list[record.key.decode()] = record.value and record.value.decode()
        client = connect(settings.warehouse_url)
        try:
            scan_warehouse(client, scanned)
            attempts = dict(client.query("SELECT event_id, phone_hash FROM call_attempts FINAL").result_rows)
            violations = {row[0] for row in client.query("SELECT event_id FROM stop_list_violations").result_rows}
        finally:
            client.close()

        vicidial_rows = {}
        for path, delimiter in ((FIXTURE, "\t"), (crafted, ",")):
            with path.open(newline="") as handle:
                for row in csv.DictReader(handle, delimiter=delimiter):
                    if row.get("uniqueid") in attempts:
                        vicidial_rows[row["uniqueid"]] = row["phone_number"]
        with FIXTURE.open(newline="") as handle:
            fixture_numbers = {
                row["phone_number"] for row in csv.DictReader(handle, delimiter="\t") if row.get("phone_number")
            }
        edge_numbers = (
            fixture_numbers
            | {row[8] for row in CRAFTED_ROWS if len(row) > 8}
            | {CRAFTED_ROWS[-1][1]}
            | {n for n, _, _ in STOP_LIST_CSV if digits(n)}
            | set(STOP_LIST_PLAIN)
            | {ADDED_THEN_REMOVED}
            | set(simulated)
        )
        yield Run(
            settings, edge_numbers, simulated, vicidial_rows, stop_list, attempts, violations, health, scanned, outputs
        )
    finally:
        pipeline.stop_all()


def test_no_number_from_the_edges_is_in_any_topic_table_or_output(run):
    scanned = run.scanned
    print(
        f"\nscanned {sum(scanned.topic_records.values())} Kafka records in {len(scanned.topic_records)} topics "
        f"({scanned.topic_records}), {sum(scanned.table_rows.values())} rows and {scanned.cells} cells in "
        f"{len(scanned.table_rows)} tables ({scanned.table_rows}), {len(run.outputs)} command outputs and logs, "
        f"for {len(run.edge_numbers)} numbers"
    )
    # The scan must have seen what the run produced, or finding nothing proves nothing.
    topics = scanned.topic_records
    assert topics[run.settings.topics.call_events] >= 600 // 20 + 2  # the adapters batch events too
    assert topics[run.settings.topics.dead_letters] >= 10 + CRAFTED_REJECTED + len(MISTAKES)
    assert topics[run.settings.topics.stop_list] == 6 + 2 + 2  # flags, then a flag and its tombstone
    assert topics[run.settings.topics.alerts] >= 1
    rows = scanned.table_rows
    assert rows["default.call_attempts"] >= 411 + 2 + 600  # the fixture's usable rows, the crafted ones, simulated
    assert rows["default.stop_list_violations"] >= 2
    assert rows["default.alerts"] >= 1
    assert rows["default.dead_letters"] >= len(MISTAKES)

    scanner = NumberScanner(run.edge_numbers)
    found = scanned.hits(scanner)
    found += [f"{number!r} in {where}" for where, output in run.outputs for number in scanner.find(output)]
    assert not found, f"{len(found)} raw number(s) found:\n" + "\n".join(found[:20])


def test_the_scanner_finds_numbers_in_each_form_it_claims():
    """The scan's own check: a scan that can't see a planted number proves nothing."""
    scanner = NumberScanner({"09039968745", "+81 90-1234-5678"})
    planted = {
        b'{"phone":"09039968745"}': "09039968745",
        b"call +819039968745 now": "09039968745",
        b"tel 090-3996-8745.": "09039968745",
        b"(090) 3996 8745": "09039968745",
        b"x=39968745;": "09039968745",
        b"id 9039968745": "09039968745",
        b"81-90-1234-5678": "+81 90-1234-5678",
        b"090 1234 5678": "+81 90-1234-5678",
        hashlib.sha256(b"819012345678").hexdigest().encode(): "+81 90-1234-5678",
    }
    for blob, number in planted.items():
        assert scanner.find(blob) == {number}, blob
    # Not a number's tail: a longer run of digits, a timestamp, an HMAC.
    for blob in (b"1794787200.1000", b"2026-11-16 09:00:41", hmac_of("09039968745").encode(), b"0.3996874512"):
        assert scanner.find(blob) == set(), blob


def test_phone_hashes_are_the_hmac_of_the_numbers(run):
    # Every VICIdial row that was published carries the HMAC of its number, nothing else.
    assert len(run.vicidial_rows) >= 400
    wrong = {
        uid: (phone, run.attempts[uid])
        for uid, phone in run.vicidial_rows.items()
        if run.attempts[uid] != hmac_of(phone)
    }
    assert not wrong, list(wrong.items())[:5]
    # The simulator's calls: the hashes it sent are the HMACs of the numbers it dialed, and they landed.
    assert all(phone_hash == hmac_of(number) for number, phone_hash in run.simulated.items())
    landed = set(run.attempts.values())
    assert len(set(run.simulated.values()) & landed) >= 100
    # The stop list is keyed by the HMAC; the removed number is a tombstone under its own HMAC.
    flagged = [n for n, _, _ in STOP_LIST_CSV if digits(n)] + STOP_LIST_PLAIN
    assert {hmac_of(n) for n in flagged} | {hmac_of(ADDED_THEN_REMOVED)} == set(run.stop_list) - {
        hmac_of(next(iter(run.simulated)))
    }
    assert run.stop_list[hmac_of(ADDED_THEN_REMOVED)] is None
    for key, value in run.stop_list.items():
        if value is not None:
            assert json.loads(value)["phone_hash"] == key
    # Linkable: the dial to the customer flagged in VICIdial's own (national) form is a violation.
    assert "1794787200.1000" in run.violations
    assert run.health["stop_list_violations"] >= 2


def test_one_customer_has_one_hash_whatever_the_form_of_the_number(run):
    """The stop list and the dialer must agree on who a customer is. VICIdial logs the
    national number (09088721495, phone_code 81); a do-not-call list usually has the
    international one (+81 90-8872-1495). Both are the same line, so both must hash alike,
    or the dial to a customer who opted out is never seen as a violation."""
    fixture_row_2 = "1794787297.1001"  # CHARITY, 2026-11-16 09:02:23, phone_number 09088721495
    assert run.attempts[fixture_row_2] == hmac_of("09088721495")
    assert hmac_of("+81 90-8872-1495") in run.stop_list
    assert fixture_row_2 in run.violations, (
        "the customer flagged as +81 90-8872-1495 was dialled as 09088721495 after the flag, and no "
        "stop-list violation was recorded: core.privacy.normalize_phone keeps the country code of one "
        "form and the trunk 0 of the other, so the two hash differently"
    )


def test_a_number_a_producer_sends_raw_by_mistake_is_not_kept_in_dead_letters(run):
    """Dead letters keep the refused record so it can be fixed and replayed, but a number
    sent raw by a producer that got the contract wrong must not be kept readable there:
    the dead-letter topic is retained for days and read by operators with
    `callpulse deadletters`."""
    assert run.health["dead_letters"], "the worker refused none of the mistaken records"
    scanner = NumberScanner(set(MISTAKES))
    # The mistaken records themselves stay on call-events, where the producer put them;
    # what matters is that the pipeline copies them nowhere else.
    found = [hit for hit in run.scanned.hits(scanner) if f" in {run.settings.topics.call_events}[" not in hit]
    found += [f"{number!r} in {where}" for where, output in run.outputs for number in scanner.find(output)]
    assert not found, f"{len(found)} raw number(s) kept:\n" + "\n".join(found[:20])


# -- a phone number in every field, written every way (issue 25) ---------------------------
#
# Twelve ways of writing a number, thrown into each id and name of an event, through three
# doors: a hostile producer writing straight to the call-events topic (the worker must
# refuse them), `callpulse ingest events` and `callpulse ingest vicidial` (the edge must
# refuse them before Kafka). Every cell gets a number of its own, so a number found later
# names the format and the field that let it through.

FORMATS = {
    "national": lambda jp, us: jp,  # 09088721495
    "dashed": lambda jp, us: f"{jp[:3]}-{jp[3:7]}-{jp[7:]}",  # 090-8872-1495
    "spaced": lambda jp, us: f"{jp[:3]} {jp[3:7]} {jp[7:]}",  # 090 8872 1495
    "bracketed": lambda jp, us: f"({jp[:3]}) {jp[3:7]}-{jp[7:]}",  # (090) 8872-1495
    "international": lambda jp, us: f"+81 {jp[1:3]}-{jp[3:7]}-{jp[7:]}",  # +81 90-8872-1495
    "e164": lambda jp, us: f"+81{jp[1:]}",  # +819088721495
    "tel_uri": lambda jp, us: f"tel:+81-{jp[1:3]}-{jp[3:7]}-{jp[7:]}",  # tel:+81-90-8872-1495
    "us_international": lambda jp, us: f"+1 ({us[:3]}) {us[3:6]}-{us[6:]}",  # +1 (202) 555-0143
    # The four that reached the dead-letters topic before:
    "country_code_bare": lambda jp, us: f"81{jp[1:]}",  # 819088721495
    "dotted": lambda jp, us: f"+81.{jp[1:3]}.{jp[3:7]}.{jp[7:]}",  # +81.90.8872.1495
    "full_width": lambda jp, us: jp.translate(str.maketrans("0123456789", "０１２３４５６７８９")),
    "bare_ten_digits": lambda jp, us: us,  # 2025550143
}
US_FORMATS = {"us_international", "bare_ten_digits"}
FIELDS = ("event_id", "campaign", "agent", "team", "lead.segment", "lead.lead_id")
# Where an error message could repeat what was sent: an unknown field's name, an unknown
# outcome, an unknown event type, an unknown agent state.
ECHOED = ("field_name", "outcome", "type", "agent_state.state", "agent_state.agent")
VICIDIAL_COLUMNS = {
    "event_id": "uniqueid",
    "campaign": "campaign_id",
    "agent": "user",
    "team": "user_group",
    "lead.segment": "list_id",
    "lead.lead_id": "lead_id",
}
ORDINARY = {  # ids and names that must still count
    "vicidial-style": dict(
        event_id="1763618745.6880",
        campaign="credit-card-winback",
        team="osaka-floor",
        agent="agent01",
        segment="list-1001",
        lead_id="500000",
    ),
    "uuid": dict(
        event_id="550e8400-e29b-41d4-a716-446655440000",
        campaign="home-insurance",
        team="tokyo-2",
        agent="home-insurance-07",
        segment="seniors",
        lead_id="174870114",
    ),
    "japanese": dict(
        event_id="f47ac10b-58cc-4372-a567-0e02b2c3d479",
        campaign="東京キャンペーン 2026",
        team="大阪フロア",
        agent="佐藤",
        segment="list-2025",
        lead_id="L-7001",
    ),
}


@dataclass
class Cell:
    door: str  # raw (straight to Kafka), events (ingest events), vicidial (ingest vicidial)
    fmt: str
    field: str
    written: str
    e164: str  # the number's E.164 digits


def cells() -> list[Cell]:
    """Each door x field x format, each with a number no other cell has."""
    made, serial, us_serial = [], 0, 0
    for door, fields in (("raw", FIELDS + ECHOED), ("events", FIELDS), ("vicidial", FIELDS)):
        for field_name in fields:
            for fmt, write in FORMATS.items():
                jp, us = f"0908872{1000 + serial:04d}", f"202555{100 + us_serial:04d}"  # 555-0100 to 0199
                serial += 1
                us_serial += fmt in US_FORMATS
                e164 = ("1" + us) if fmt in US_FORMATS else ("81" + jp[1:])
                if fmt == "bare_ten_digits":  # read in pipeline.phone_region JP: an 020 number
                    e164 = "81" + us
                made.append(Cell(door, fmt, field_name, write(jp, us), e164))
    return made


def hostile_event(cell: Cell, serial: int, event_time: str) -> dict:
    event = {
        "type": "call_attempt",
        "schema_version": 1,
        "event_id": f"hostile-{serial}",
        "campaign": "HOSTILE",
        "event_time": event_time,
        "outcome": "connected",
        "talk_seconds": 60.0,
        "agent": "agent01",
        "team": "osaka-floor",
        "lead": {"segment": "list-1001", "lead_id": f"{serial}"},
    }
    value = cell.written
    if cell.field.startswith("lead."):
        event["lead"][cell.field.removeprefix("lead.")] = value
    elif cell.field in FIELDS:
        event[cell.field] = value
    elif cell.field == "field_name":
        event[value] = 1
    elif cell.field in ("outcome", "type"):
        event[cell.field] = value
    else:  # an agent_state event
        event = {
            "type": "agent_state",
            "schema_version": 1,
            "event_id": f"hostile-{serial}",
            "campaign": "HOSTILE",
            "event_time": event_time,
            "agent": "agent01",
            "state": "available",
        }
        event[cell.field.removeprefix("agent_state.")] = value
    return event


class DigitScanner:
    """Finds each cell's number in bytes, by its digits: the E.164 digits, the national form
    with its trunk 0 and without it, and its last 8 or 9 digits standing alone; after
    NFKC (full-width digits), with JSON escapes decoded, across spaces, dashes, brackets
    and dots."""

    RUNS = re.compile(r"\d(?:[\d\s\-().+/]*\d)?")
    ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")

    def __init__(self, numbers: dict[str, str]):  # e164 digits -> label
        self.long: dict[str, str] = {}
        self.tails: dict[str, str] = {}
        for e164, label in numbers.items():
            country = "81" if e164.startswith("81") else "1"
            national = e164[len(country) :]
            for form in (e164, national, "0" + national if country == "81" else national):
                self.long[form] = label
            for size in (8, 9):
                self.tails[e164[-size:]] = label

    def find(self, blob: bytes) -> set[str]:
        text = unicodedata.normalize("NFKC", blob.decode("utf-8", "replace"))
        text = self.ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)
        found = set()
        for run in self.RUNS.findall(text):
            run_digits = digits(run)
            if len(run_digits) in (8, 9) and run_digits in self.tails:
                found.add(self.tails[run_digits])
            for size in (9, 10, 11, 12):
                for start in range(0, len(run_digits) - size + 1):
                    label = self.long.get(run_digits[start : start + size])
                    if label:
                        found.add(label)
        return found


@dataclass
class HostileRun:
    settings: Settings
    cells: list[Cell]
    leaks: dict[str, list[str]]  # cell label -> where its number was found
    health: dict
    letters: list[dict]
    landed_ids: set[str]
    absurd: tuple  # (dials, talk_seconds, cost, orders, order value landed) of campaign ABSURD
    visible_in_what_was_sent: set[str]  # cells whose number the scanner finds in what the test sent
    scanned: Scanned


def label(cell: Cell) -> str:
    return f"{cell.door}/{cell.field}/{cell.fmt}"


def vicidial_export(path: Path, rows: list[dict]) -> None:
    header = [
        "uniqueid",
        "lead_id",
        "list_id",
        "campaign_id",
        "call_date",
        "length_in_sec",
        "status",
        "phone_code",
        "phone_number",
        "user",
        "user_group",
    ]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, header)
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture(scope="module")
def hostile(broker, tmp_path_factory) -> HostileRun:
    import msgspec
    from conftest import new_pipeline

    from producers.publisher import EventPublisher
    from warehouse.client import connect

    directory = tmp_path_factory.mktemp("hostile-fields")
    pipeline = new_pipeline(broker, directory)
    settings = pipeline.settings
    every_cell = cells()
    now = datetime.now(timezone.utc).replace(microsecond=0)
    event_time = (now - timedelta(minutes=2)).isoformat()
    try:
        sent_raw: set[bytes] = set()
        publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events)

        def send(value: bytes) -> None:
            sent_raw.add(value)
            publisher.send_raw(settings.topics.call_events, value, key=b"HOSTILE")

        events_file, vicidial_rows = [], []
        for serial, cell in enumerate(every_cell):
            if cell.door == "raw":
                send(json.dumps(hostile_event(cell, serial, event_time), ensure_ascii=False).encode())
            elif cell.door == "events":
                events_file.append(json.dumps(hostile_event(cell, serial, event_time), ensure_ascii=False))
            else:
                local = (now - timedelta(minutes=2)).astimezone(settings.zone).strftime("%Y-%m-%d %H:%M:%S")
                row = {
                    "uniqueid": f"1763618745.{serial}",
                    "lead_id": str(700000 + serial),
                    "list_id": "1001",
                    "campaign_id": "HOSTILE",
                    "call_date": local,
                    "length_in_sec": "60",
                    "status": "SALE",
                    "phone_code": "81",
                    "phone_number": "",
                    "user": "agent01",
                    "user_group": "OSAKA",
                }
                row[VICIDIAL_COLUMNS[cell.field]] = cell.written
                vicidial_rows.append(row)
        # Ordinary ids and names, by each door: they must count.
        for name, ids in ORDINARY.items():
            event = {
                "type": "call_attempt",
                "schema_version": 1,
                "event_id": ids["event_id"],
                "campaign": ids["campaign"],
                "event_time": event_time,
                "outcome": "connected",
                "talk_seconds": 60.0,
                "agent": ids["agent"],
                "team": ids["team"],
                "lead": {"segment": ids["segment"], "lead_id": ids["lead_id"]},
            }
            send(json.dumps(event, ensure_ascii=False).encode())
            events_file.append(json.dumps(dict(event, event_id=f"file-{name}"), ensure_ascii=False))
        local = (now - timedelta(minutes=2)).astimezone(settings.zone).strftime("%Y-%m-%d %H:%M:%S")
        vicidial_rows.append(
            {
                "uniqueid": "1763618745.6881",
                "lead_id": "500001",
                "list_id": "1001",
                "campaign_id": "credit-card-winback",
                "call_date": local,
                "length_in_sec": "95",
                "status": "SALE",
                "phone_code": "81",
                "phone_number": "09088720000",
                "user": "agent02",
                "user_group": "osaka-floor",
            }
        )
        # Absurd values: refused as out_of_range; the campaign's figures are the sane calls only.
        absurd = [
            ("talk_seconds", 1.7e308),
            ("talk_seconds", 1.7e308),
            ("cost", 2.4e306),
            ("order_value", 1e12),
            ("ring_seconds", 86_401.0),
        ]
        for index, (name, value) in enumerate(absurd):
            send(
                json.dumps(
                    {
                        "type": "call_attempt",
                        "schema_version": 1,
                        "event_id": f"absurd-{index}",
                        "campaign": "ABSURD",
                        "event_time": event_time,
                        "outcome": "connected",
                        "talk_seconds": 10.0,
                        "order": True,
                        "order_value": 5.0,
                        "lead": {"segment": "s"},
                        name: value,
                    }
                ).encode()
            )
        for index, talk in enumerate((100.0, 200.0, 300.0)):
            send(
                json.dumps(
                    {
                        "type": "call_attempt",
                        "schema_version": 1,
                        "event_id": f"sane-{index}",
                        "campaign": "ABSURD",
                        "event_time": event_time,
                        "outcome": "connected",
                        "talk_seconds": talk,
                        "cost": 1.5,
                        "order": True,
                        "order_value": 40.0,
                        "lead": {"segment": "s"},
                    }
                ).encode()
            )
        publisher.close()

        outputs = []
        jsonl = directory / "hostile.jsonl"
        jsonl.write_text("\n".join(events_file) + "\n", encoding="utf-8")
        export = directory / "hostile_export.csv"
        vicidial_export(export, vicidial_rows)
        for args in (("ingest", "events", str(jsonl)), ("ingest", "vicidial", str(export))):
            result = cli(pipeline.config_file, *args)
            assert result.returncode == 0, result.stderr.decode()
            outputs.append(result.stdout + result.stderr)

        worker = pipeline.worker()
        health = worker.wait_until_caught_up(timeout_s=120)
        assert worker.stop() == 0
        outputs.append(worker.log_path.read_bytes())
        listed = cli(pipeline.config_file, "deadletters", "--format", "json", "--limit", "1000")
        outputs.append(listed.stdout + listed.stderr)

        scanned = Scanned()
        scan_topics(settings, scanned)
        client = connect(settings.warehouse_url)
        try:
            scan_warehouse(client, scanned)
            landed_ids = {row[0] for row in client.query("SELECT event_id FROM call_attempts FINAL").result_rows}
            absurd_figures = client.query(
                "SELECT sum(dials), sum(talk_seconds), sum(cost), sum(orders) FROM minute_metrics FINAL "
                "WHERE campaign = 'ABSURD'"
            ).result_rows[0]
            order_value = client.query(
                "SELECT sum(order_value) FROM call_attempts FINAL WHERE campaign = 'ABSURD'"
            ).result_rows[0][0]
        finally:
            client.close()
        letters = [msgspec.json.decode(r.value) for r in read_records(settings, settings.topics.dead_letters)]

        scanner = DigitScanner({cell.e164: label(cell) for cell in every_cell})
        visible = set().union(*(scanner.find(blob) for blob in (*sent_raw, jsonl.read_bytes(), export.read_bytes())))
        leaks: dict[str, list[str]] = {}
        for where, blob in scanned.blobs:
            # What the hostile producer itself put on call-events stays there; the question
            # is what the pipeline copied anywhere else.
            if where.startswith(settings.topics.call_events) and blob in sent_raw:
                continue
            for found in scanner.find(blob):
                leaks.setdefault(found, []).append(f"{where}: {blob[:200]!r}")
        for number, output in enumerate(outputs):
            for found in scanner.find(output):
                leaks.setdefault(found, []).append(f"command output or log {number}")
        yield HostileRun(
            settings, every_cell, leaks, health, letters, landed_ids, (*absurd_figures, order_value), visible, scanned
        )
    finally:
        pipeline.stop_all()


def test_no_number_in_any_field_written_any_way_is_kept_anywhere(hostile):
    scanned = hostile.scanned
    print(
        f"\nscanned {sum(scanned.topic_records.values())} Kafka records in {len(scanned.topic_records)} topics "
        f"and {sum(scanned.table_rows.values())} rows ({scanned.cells} cells) in {len(scanned.table_rows)} tables"
    )
    caught: dict[tuple[str, str], int] = {}
    for cell in hostile.cells:
        key = (cell.door, cell.field)
        caught[key] = caught.get(key, 0) + (label(cell) not in hostile.leaks)
    print("\nformats kept out of every topic, table and output, by door and field (of 12):")
    for (door, field_name), count in caught.items():
        print(f"  {door:9s} {field_name:18s} {count:2d}")
    by_format = {fmt: sum(label(c) not in hostile.leaks for c in hostile.cells if c.fmt == fmt) for fmt in FORMATS}
    print(f"  by format (of {len(hostile.cells) // len(FORMATS)}): {by_format}")
    total = sum(caught.values())
    print(f"  caught {total} of {len(hostile.cells)} cells")
    # The scan sees every number in what was sent, or finding none afterwards proves nothing.
    assert hostile.visible_in_what_was_sent == {label(cell) for cell in hostile.cells}
    assert scanned.topic_records[hostile.settings.topics.dead_letters] >= len(hostile.cells)
    assert scanned.table_rows["default.call_attempts"] >= len(ORDINARY) * 2 + 1 + 3
    leaked = sorted(hostile.leaks)
    assert not leaked, f"{len(leaked)} of {len(hostile.cells)} numbers kept:\n" + "\n".join(
        f"{name}: {hostile.leaks[name][0]}" for name in leaked[:30]
    )


def test_each_number_in_an_id_is_refused_as_personal_data_with_a_reason_that_does_not_repeat_it(hostile):
    by_reason: dict[str, int] = {}
    for letter in hostile.letters:
        by_reason[letter["reason"]] = by_reason.get(letter["reason"], 0) + 1
    per_door = len(FIELDS) * len(FORMATS)
    # Every door refuses each of its 72 cells as personal data (the worker also an agent_state
    # event's agent); the VICIdial and events doors before Kafka, so none reached the worker.
    assert by_reason.get("personal_data", 0) == 3 * per_door + len(FORMATS), by_reason
    assert hostile.health["dead_letters"].get("personal_data") == per_door + len(FORMATS)
    for letter in hostile.letters:
        if letter["reason"] == "personal_data":
            assert "looks like a phone number" in letter["detail"]
            assert letter["numbers_removed"] >= 1 or letter["source_topic"].startswith("file:")
    # Refused for what an error message repeats; the repeat is taken out of the detail.
    for reason in ("unknown_field", "unknown_outcome", "unknown_event_type", "unknown_state"):
        assert by_reason.get(reason) == len(FORMATS), by_reason


def test_ordinary_ids_names_and_uniqueids_still_count(hostile):
    expected = (
        {ids["event_id"] for ids in ORDINARY.values()}
        | {f"file-{name}" for name in ORDINARY}
        | {"1763618745.6881", "sane-0", "sane-1", "sane-2"}
    )
    assert expected <= hostile.landed_ids, expected - hostile.landed_ids
    assert not {i for i in hostile.landed_ids if i.startswith(("hostile-", "absurd-"))}


def test_absurd_values_are_out_of_range_and_the_campaigns_figures_stay_finite(hostile):
    dials, talk_seconds, cost, orders, order_value = hostile.absurd
    assert (dials, talk_seconds, cost, orders, order_value) == (3, 600.0, 4.5, 3, 120.0)
    out_of_range = sorted(letter["detail"] for letter in hostile.letters if letter["reason"] == "out_of_range")
    assert out_of_range == sorted(
        [
            "talk_seconds 1.7e+308 is above limits.max_call_seconds (86400)",
            "talk_seconds 1.7e+308 is above limits.max_call_seconds (86400)",
            "cost 2.4e+306 is above limits.max_cost (10000)",
            "order_value 1e+12 is above limits.max_order_value (1e+07)",
            "ring_seconds 86401 is above limits.max_call_seconds (86400)",
        ]
    )
