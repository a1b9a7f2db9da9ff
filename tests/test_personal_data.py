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
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from callpulse.config import Settings
from callpulse.topics import read_records

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
    ("090-3996-8745", "dnc_request", ON_THE_16TH),       # fixture row 1, national form: as VICIdial has it
    ("+81 90-8872-1495", "dnc_request", ON_THE_16TH),    # fixture row 2, international form
]
STOP_LIST_PLAIN = ["0312349876", "+81-6-6123-4567"]
ADDED_THEN_REMOVED = "+81 90-4444-5555"
# A second export with numbers formatted, and a row for each way a row can be refused.
CRAFTED_HEADER = ["uniqueid", "lead_id", "list_id", "campaign_id", "call_date", "length_in_sec", "status",
                  "phone_code", "phone_number", "user", "user_group"]
CRAFTED_ROWS = [
    ["9000000001.1", "70001", "501", "PRIVACY", "2026-11-16 11:00:00", "30", "NA", "81", "090-7777-0001", "VDAD", ""],
    ["9000000002.1", "70002", "501", "PRIVACY", "2026-11-16 11:01:00", "95", "SALE", "81", "+81 90 7777 0002",
     "agent01", "TOKYO"],
    ["9000000003.1", "70003", "501", "PRIVACY", "2026-11-16 11:02:00", "-4", "NA", "81", "090-7777-0003", "VDAD", ""],
    ["9000000004.1", "70004", "501", "PRIVACY", "2026-11-16 11:03:00", "abc", "NA", "81", "09077770004", "VDAD", ""],
    ["9000000005.1", "70005", "501", "PRIVACY", "16/11/2026 11:04", "10", "NA", "81", "(090) 7777-0005", "VDAD", ""],
    ["9000000006.1", "70006", "501", "PRIVACY", "2026-11-16 11:05:00", "10", "WHATEVER", "81", "090 7777 0006",
     "VDAD", ""],
    ["", "70007", "501", "PRIVACY", "2026-11-16 11:06:00", "10", "NA", "81", "0907777-0007", "VDAD", ""],
    ["9000000008.1", "09077770008", "501", "PRIVACY", "2026-11-16 11:07:00"],  # wrong column count
]
CRAFTED_REJECTED = 6
# A producer that gets the contract wrong and sends raw numbers on the call-events topic:
# the worker refuses each record, and its dead letter must not keep the number either.
MISTAKES = {
    "08055550101": json.dumps({"type": "call_attempt", "schema_version": 1, "event_id": "m1", "campaign": "PRIVACY",
                               "event_time": "2026-11-16T02:00:00Z", "outcome": "busy",
                               "lead": {"segment": "list-501", "phone_number": "080-5555-0101"}}).encode(),
    "08055550102": json.dumps({"type": "call_attempt", "schema_version": 1, "event_id": "m2", "campaign": "PRIVACY",
                               "event_time": "2026-11-16T02:00:00Z", "outcome": "busy",
                               "lead": {"segment": "list-501", "phone_hash": "08055550102"}}).encode(),
    "+81 80 5555 0103": b"9000000009.1,PRIVACY,2026-11-16 11:00:00,30,NA,81,+81 80 5555 0103",  # a CSV line
    "080-5555-0104": b"\xff\xfe tel:080-5555-0104",  # not UTF-8: the dead letter keeps it as base64
}


# -- reading everything back ------------------------------------------------------------

def digits(text: str) -> str:
    return re.sub(r"\D", "", text)


def e164_digits(number: str) -> str:
    """Japan's rule written out here rather than taken from callpulse.privacy: the national
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
        self.long: dict[str, str] = {}   # 10+ digit forms -> the number as typed
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
                    if run[start:start + size] in self.long:
                        found.add(self.long[run[start:start + size]])
        for token in self.HEX.findall(text.lower()):
            for size in (32, 40, 64):
                for start in range(0, len(token) - size + 1):
                    if token[start:start + size] in self.digests:
                        found.add(self.digests[token[start:start + size]])
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
    configured = {settings.topics.call_events, settings.topics.dead_letters, settings.topics.alerts,
                  settings.topics.stop_list}
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
        "'information_schema') AND NOT is_temporary ORDER BY database, name").result_rows
    for database, table in tables:
        columns = [row[0] for row in client.query(
            "SELECT name FROM system.columns WHERE database = {d:String} AND table = {t:String} ORDER BY position",
            parameters={"d": database, "t": table}).result_rows]
        cells = ", ".join(f"ifNull(toString({quote_identifier(c)}), '')" for c in columns)
        # No FINAL: superseded row versions are stored data too.
        rows = client.query(f"SELECT {cells} FROM {quote_identifier(database)}.{quote_identifier(table)}").result_rows
        scanned.table_rows[f"{database}.{table}"] = len(rows)
        scanned.cells += len(rows) * len(columns)
        for number, row in enumerate(rows):
            scanned.blobs.append((f"table {database}.{table} row {number}",
                                  "\x1f".join(f"{c}={v}" for c, v in zip(columns, row)).encode()))


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
    result = subprocess.run([sys.executable, "-m", "callpulse", "--config", str(config_file), *args],
                            capture_output=True, cwd=PROJECT_ROOT, timeout=120,
                            env={"CALLPULSE_HMAC_KEY": KEY.decode(), "PATH": "/usr/bin:/bin"})
    return result


@pytest.fixture(scope="module")
def run(broker, tmp_path_factory) -> Run:
    import producers.simulator as simulator_module
    from callpulse.slots import SlotRules
    from producers.publisher import EventPublisher
    from warehouse.client import connect

    from conftest import new_pipeline

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
            events = list(simulator_module.DialerSimulator(SlotRules(settings.slots, settings.zone), KEY, seed=17,
                                                           start=start).events(count=600))
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
        assert b"flagged 6 customer(s)" in imported.stderr and b"rejected 1 row(s)" in imported.stderr, \
            imported.stderr
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
            fixture_numbers = {row["phone_number"] for row in csv.DictReader(handle, delimiter="\t")
                               if row.get("phone_number")}
        edge_numbers = (fixture_numbers | {row[8] for row in CRAFTED_ROWS if len(row) > 8} | {CRAFTED_ROWS[-1][1]}
                        | {n for n, _, _ in STOP_LIST_CSV if digits(n)} | set(STOP_LIST_PLAIN) | {ADDED_THEN_REMOVED}
                        | set(simulated))
        yield Run(settings, edge_numbers, simulated, vicidial_rows, stop_list, attempts, violations, health,
                  scanned, outputs)
    finally:
        pipeline.stop_all()


def test_no_number_from_the_edges_is_in_any_topic_table_or_output(run):
    scanned = run.scanned
    print(f"\nscanned {sum(scanned.topic_records.values())} Kafka records in {len(scanned.topic_records)} topics "
          f"({scanned.topic_records}), {sum(scanned.table_rows.values())} rows and {scanned.cells} cells in "
          f"{len(scanned.table_rows)} tables ({scanned.table_rows}), {len(run.outputs)} command outputs and logs, "
          f"for {len(run.edge_numbers)} numbers")
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
        b'{"phone":"09039968745"}': "09039968745", b"call +819039968745 now": "09039968745",
        b"tel 090-3996-8745.": "09039968745", b"(090) 3996 8745": "09039968745", b"x=39968745;": "09039968745",
        b"id 9039968745": "09039968745", b"81-90-1234-5678": "+81 90-1234-5678", b"090 1234 5678": "+81 90-1234-5678",
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
    wrong = {uid: (phone, run.attempts[uid]) for uid, phone in run.vicidial_rows.items()
             if run.attempts[uid] != hmac_of(phone)}
    assert not wrong, list(wrong.items())[:5]
    # The simulator's calls: the hashes it sent are the HMACs of the numbers it dialed, and they landed.
    assert all(phone_hash == hmac_of(number) for number, phone_hash in run.simulated.items())
    landed = set(run.attempts.values())
    assert len(set(run.simulated.values()) & landed) >= 100
    # The stop list is keyed by the HMAC; the removed number is a tombstone under its own HMAC.
    flagged = [n for n, _, _ in STOP_LIST_CSV if digits(n)] + STOP_LIST_PLAIN
    assert {hmac_of(n) for n in flagged} | {hmac_of(ADDED_THEN_REMOVED)} == \
        set(run.stop_list) - {hmac_of(next(iter(run.simulated)))}
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
        "stop-list violation was recorded: callpulse.privacy.normalize_phone keeps the country code of one "
        "form and the trunk 0 of the other, so the two hash differently")


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
