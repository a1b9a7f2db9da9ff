"""VICIdial in: the status table, file reading and its errors, and a fixture export run
end to end (CLI -> broker -> worker -> chDB -> `callpulse report`) against an independent
computation over the file, twice, to show that a re-ingest never double-counts."""

from __future__ import annotations

import csv
import gzip
import io
import json
import shutil
import subprocess
import sys
from collections import defaultdict
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from core.config import load_settings
from core.schema import Outcome
from producers.vicidial import FileFormatError, RowError, RowMapper, read_rows
from streams.kafka_admin import read_topic

PROJECT_ROOT = Path(__file__).resolve().parents[1]
FIXTURE = PROJECT_ROOT / "tests" / "fixtures" / "vicidial_log_export.tsv"
KEY = b"test-key"
CUSTOM_STATUS = "\n[vicidial.campaign_statuses.HOMEINS]\nBOOKED = { human_answered = true, sale = true }\n"

# The test's own reading of VICIdial's statuses (from the design notes), not the adapter's table.
HUMAN = {"SALE", "NI", "NP", "CALLBK", "DNC", "XFER", "BOOKED"}
DROPPED = {"DROP", "XDROP", "PDROP"}
NOT_HUMAN = {"NA", "N", "B", "AB", "A", "AA", "AM", "AL", "AFAX", "DC", "ADC"}
SALES = {"SALE", "BOOKED"}


def row(**fields) -> dict:
    base = {
        "uniqueid": "1794787200.1",
        "campaign_id": "HOMEINS",
        "call_date": "2026-11-16 09:00:00",
        "length_in_sec": "120",
        "status": "SALE",
        "phone_number": "09012345678",
        "user": "agent01",
        "user_group": "TOKYO",
        "list_id": "1001",
        "lead_id": "77",
    }
    return base | fields


@pytest.fixture(scope="module")
def mapper(tmp_path_factory):
    config = tmp_path_factory.mktemp("vicidial") / "callpulse.toml"
    config.write_text(CUSTOM_STATUS)
    return RowMapper(load_settings(config), KEY)


@pytest.mark.parametrize(
    "status, outcome, order",
    [
        ("NA", Outcome.NO_ANSWER, False),
        ("AB", Outcome.BUSY, False),
        ("AL", Outcome.MACHINE, False),
        ("AFAX", Outcome.FAX, False),
        ("ADC", Outcome.INVALID_NUMBER, False),
        ("PDROP", Outcome.ABANDONED, False),
        ("SALE", Outcome.CONNECTED, True),
        ("NI", Outcome.CONNECTED, False),
        ("xfer", Outcome.CONNECTED, False),
    ],
)
def test_default_statuses(mapper, status, outcome, order):
    attempt = mapper.attempt(row(status=status))
    assert (attempt.outcome, attempt.order) == (outcome, order)


def test_a_row_becomes_an_attempt_in_utc_with_a_hashed_phone(mapper):
    attempt = mapper.attempt(row())
    assert attempt.event_id == "1794787200.1"
    assert attempt.event_time.isoformat() == "2026-11-16T00:00:00+00:00"  # 09:00 in Tokyo
    assert (attempt.talk_seconds, attempt.agent, attempt.team, attempt.lead.segment) == (
        120.0,
        "agent01",
        "TOKYO",
        "list-1001",
    )
    assert attempt.wait_seconds is None  # vicidial_log has no queue wait for an outbound call: unknown, not 0
    assert len(attempt.lead.phone_hash) == 64 and "09012345678" not in repr(attempt)
    dropped = mapper.attempt(row(status="DROP", length_in_sec="3", user="VDAD"))
    assert (dropped.wait_seconds, dropped.talk_seconds, dropped.agent) == (3.0, 0.0, None)


def test_campaign_statuses_come_from_config_and_unknown_ones_are_refused(mapper):
    assert mapper.attempt(row(status="BOOKED")).order is True
    with pytest.raises(RowError, match="'BOOKED' of campaign 'CHARITY' is not in the status table") as refused:
        mapper.attempt(row(status="BOOKED", campaign_id="CHARITY"))
    assert refused.value.reason == "unknown_status"


@pytest.mark.parametrize(
    "fields, reason",
    [
        ({"length_in_sec": "-4"}, "negative_duration"),
        ({"length_in_sec": "abc"}, "bad_number"),
        ({"call_date": "16/11/2026"}, "bad_timestamp"),
        ({"uniqueid": ""}, "missing_field"),
    ],
)
def test_bad_rows_say_why(mapper, fields, reason):
    with pytest.raises(RowError) as refused:
        mapper.attempt(row(**fields))
    assert refused.value.reason == reason


def test_a_call_date_read_in_the_wrong_zone_is_refused_with_the_skew_and_the_setting_to_fix(tmp_path):
    """A Tokyo dialer's call_date read as New York time lands 13 or 14 hours ahead of the clock:
    the row is refused, and the reason says how far ahead and which setting to check."""
    config = tmp_path / "callpulse.toml"
    config.write_text('[pipeline]\ntimezone = "America/New_York"\n')
    new_york = RowMapper(load_settings(config), KEY)
    two_minutes_ago_in_tokyo = datetime.now(ZoneInfo("Asia/Tokyo")) - timedelta(minutes=2)
    with pytest.raises(RowError) as refused:
        new_york.attempt(row(call_date=two_minutes_ago_in_tokyo.strftime("%Y-%m-%d %H:%M:%S")))
    hours = round(
        (
            two_minutes_ago_in_tokyo.utcoffset()
            - two_minutes_ago_in_tokyo.astimezone(ZoneInfo("America/New_York")).utcoffset()
        ).total_seconds()
        / 3600
    )
    assert refused.value.reason == "future_event_time"
    assert (
        f"{hours} hours ahead of this machine's clock; is pipeline.timezone (America/New_York) the dialer's zone?"
        in str(refused.value)
    )
    # Read in the dialer's own zone, the same row is two minutes old and counts.
    tokyo = RowMapper(load_settings(), KEY)
    assert tokyo.attempt(row(call_date=two_minutes_ago_in_tokyo.strftime("%Y-%m-%d %H:%M:%S"))).event_id


def test_a_wrong_delimiter_or_missing_columns_is_a_clear_file_error():
    with pytest.raises(FileFormatError, match=r"line 1: the header lacks .*split on semicolons"):
        list(read_rows(io.StringIO("uniqueid;campaign_id;call_date\n1;X;2026-11-16\n")))
    with pytest.raises(FileFormatError, match="the file is empty"):
        list(read_rows(io.StringIO("")))
    lines = list(
        read_rows(
            io.StringIO("uniqueid,campaign_id,call_date,length_in_sec,status\n1,X\n2,X,2026-11-16 09:00:00,4,NA\n")
        )
    )
    assert lines[0][0] == 2 and lines[0][1].reason == "wrong_column_count"
    assert lines[1] == (
        3,
        {"uniqueid": "2", "campaign_id": "X", "call_date": "2026-11-16 09:00:00", "length_in_sec": "4", "status": "NA"},
    )


def expected_report(settings) -> pd.DataFrame:
    """Per campaign, straight from the fixture file with the csv module and the documented cost formula."""
    model = settings.cost_model_for("default")
    seen, sums = set(), defaultdict(lambda: defaultdict(float))
    with FIXTURE.open(newline="") as fh:
        reader = csv.reader(fh, delimiter="\t")
        header = next(reader)
        for fields in reader:
            if len(fields) != len(header):
                continue
            record = dict(zip(header, fields))
            status = record["status"]
            if record["uniqueid"] in seen or status not in HUMAN | DROPPED | NOT_HUMAN | {"BOOKED"}:
                continue
            if status == "BOOKED" and record["campaign_id"] != "HOMEINS":
                continue
            seen.add(record["uniqueid"])
            length = float(record["length_in_sec"])
            total = sums[record["campaign_id"]]
            total["dials"] += 1
            total["contacts"] += status in HUMAN | DROPPED
            total["abandoned"] += status in DROPPED
            total["orders"] += status in SALES
            total["cost"] += (
                model.cost_per_attempt
                + length / 60 * model.cost_per_minute
                + (length / 3600 * model.agent_cost_per_hour if status in HUMAN else 0.0)
            )
    frame = pd.DataFrame.from_dict(sums, orient="index").rename_axis("campaign").reset_index()
    frame["contact_rate"] = frame["contacts"] / frame["dials"]
    frame["abandon_rate"] = frame["abandoned"] / frame["contacts"]
    frame["cpo"] = frame["cost"] / frame["orders"]
    return frame.sort_values("campaign").reset_index(drop=True)


def callpulse(pipeline, *args: str, login: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``login``: the CALLPULSE_API_* variables `callpulse report` needs to ask a running dashboard."""
    return subprocess.run(
        [sys.executable, "-m", "callpulse", "--config", str(pipeline.config_file), *args],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        timeout=180,
        stdin=subprocess.DEVNULL,
        env={"CALLPULSE_HMAC_KEY": KEY.decode(), "PATH": "/usr/bin:/bin", **(login or {})},
    )


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_a_vicidial_export_end_to_end_and_a_reingest_counts_once(pipeline, tmp_path, dashboard_login):
    with pipeline.config_file.open("a") as config:
        config.write(CUSTOM_STATUS)
    settings = load_settings(pipeline.config_file)
    worker = pipeline.worker()
    first = callpulse(pipeline, "ingest", "vicidial", str(FIXTURE))
    assert first.returncode == 0, first.stderr
    assert "read 422 rows · published 418 · rejected 3 · skipped duplicates 1" in first.stderr
    assert "rejected 2 × unknown_status: ZZTOP (2)" in first.stderr
    assert "line 201: wrong_column_count" in first.stderr  # the broken line, counting the header as line 1
    worker.wait_until_caught_up(timeout_s=120)

    report_args = (
        "report",
        "--by",
        "campaign",
        "--metrics",
        "dials,contacts,abandoned,orders,contact_rate,abandon_rate,cpo",
        "--from",
        "2026-11-16",
        "--to",
        "2026-11-16",
        "--format",
        "csv",
    )
    shown = callpulse(pipeline, *report_args, login=dashboard_login.cli_env("manager"))
    assert shown.returncode == 0, shown.stderr
    got = pd.read_csv(io.StringIO(shown.stdout))
    want = expected_report(settings)
    assert got["campaign"].tolist() == want["campaign"].tolist() == ["BBAND", "CHARITY", "HOMEINS"]
    for column in ("dials", "contacts", "abandoned", "orders"):
        assert got[column].tolist() == want[column].astype(int).tolist(), column
    for column in ("contact_rate", "abandon_rate", "cpo"):
        assert got[column].tolist() == pytest.approx(want[column].tolist(), rel=1e-9), column

    # The same export again, gzipped: every row is a duplicate downstream, the report is unchanged.
    gzipped = tmp_path / "vicidial_log_export.tsv.gz"
    with FIXTURE.open("rb") as src, gzip.open(gzipped, "wb") as dst:
        shutil.copyfileobj(src, dst)
    again = callpulse(pipeline, "ingest", "vicidial", str(gzipped))
    assert again.returncode == 0, again.stderr
    worker.wait_until_caught_up(timeout_s=120)
    assert callpulse(pipeline, *report_args, login=dashboard_login.cli_env("manager")).stdout == shown.stdout

    letters = [letter.decode() for letter in read_topic(settings, settings.topics.dead_letters)]
    assert sum('"reason":"unknown_status"' in letter for letter in letters) == 4  # two rows, two ingests
    assert sum('"source_topic":"file:vicidial_log_export.tsv"' in letter for letter in letters) == 3
    listed = callpulse(pipeline, "deadletters", "--reason", "unknown_status", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    assert [item["reason"] for item in json.loads(listed.stdout)] == ["unknown_status"] * 4
    table = callpulse(pipeline, "deadletters", "--limit", "2")
    assert "by reason: unknown_status 4, wrong_column_count 2" in table.stderr
    assert "file:vicidial_log_export.tsv" in table.stdout
    phones = {fields[10] for fields in csv.reader(FIXTURE.open(), delimiter="\t") if len(fields) > 10}
    published = b"\n".join(read_topic(settings, settings.topics.call_events)).decode()
    dead = "\n".join(letters)
    assert not [p for p in phones if p in published or p in dead], "a raw phone number reached Kafka"
    assert worker.stop() == 0


@pytest.mark.integration
def test_a_file_with_nothing_usable_fails_with_reasons_and_no_traceback(pipeline, tmp_path):
    bad = tmp_path / "export.csv"
    bad.write_text("uniqueid campaign_id call_date length_in_sec status\n1 X 2026-11-16T09:00:00 4 NA\n")
    result = callpulse(pipeline, "ingest", "vicidial", str(bad))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert (
        "line 1: found no tab, comma, semicolon or pipe between column names, so the header lacks uniqueid"
        in " ".join(result.stderr.split())
    )
    only_unknown = tmp_path / "unknown.tsv"
    only_unknown.write_text(
        "uniqueid\tcampaign_id\tcall_date\tlength_in_sec\tstatus\n1\tX\t2026-11-16 09:00:00\t4\tWHAT\n"
    )
    result = callpulse(pipeline, "ingest", "vicidial", str(only_unknown))
    assert result.returncode == 1 and "no usable rows" in result.stderr and "Traceback" not in result.stderr
    missing = callpulse(pipeline, "ingest", "vicidial", str(tmp_path / "nope.tsv"))
    assert missing.returncode == 1 and "no such file" in missing.stderr


def test_a_status_with_a_made_up_outcome_is_a_config_error(tmp_path):
    from core.config import ConfigError

    config = tmp_path / "callpulse.toml"
    config.write_text('[vicidial.statuses]\nWEIRD = { outcome = "teleported" }\n')
    with pytest.raises(ConfigError, match=r"\[vicidial.statuses\] WEIRD: outcome must be one of busy, fax"):
        load_settings(config)


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_replaying_an_events_file_counts_every_valid_line_and_dead_letters_the_rest(pipeline, tmp_path):
    from core.schema import encode_event
    from core.slots import SlotRules
    from producers.simulator import DialerSimulator

    settings = pipeline.settings
    start = pd.Timestamp("2026-11-18T01:00:00Z").to_pydatetime()
    events = list(DialerSimulator(SlotRules(settings.slots, settings.zone), KEY, seed=5, start=start).events(count=400))
    lines = [encode_event(e) for e in events]
    lines.insert(100, b'{"type": "call_attempt", "schema_version": 1')  # cut short
    lines.insert(250, b'{"type": "call_attempt", "schema_version": 9, "event_id": "x"}')
    replay = tmp_path / "calls.jsonl.gz"
    with gzip.open(replay, "wb") as out:
        out.write(b"\n".join(lines) + b"\n")

    worker = pipeline.worker()
    result = callpulse(pipeline, "ingest", "events", str(replay), "--rate", "2000")
    assert result.returncode == 0, result.stderr
    assert "read 402 rows · published 400 · rejected 2" in result.stderr
    assert "line 101: invalid_json" in result.stderr and "line 251: missing_field" in result.stderr
    health = worker.wait_until_caught_up(timeout_s=120)
    assert health["counted"] == 400
    letters = read_topic(settings, settings.topics.dead_letters)
    assert sorted(msgspec_json(letter)["source_offset"] for letter in letters) == [101, 251]
    assert worker.stop() == 0


def msgspec_json(raw: bytes) -> dict:
    import json

    return json.loads(raw)


# -- vicidial_agent_log: agent time ---------------------------------------------------------

AGENT_LOG = PROJECT_ROOT / "tests" / "fixtures" / "vicidial_agent_log_export.tsv"
SPANS = {"pause_sec": "paused", "wait_sec": "available", "talk_sec": "on_call", "dispo_sec": "wrap_up"}


def agent_seconds_in_file() -> pd.DataFrame:
    """The export's own sums per campaign and agent (its rows with numbers), by state."""
    frame = pd.read_csv(AGENT_LOG, sep="\t", dtype=str, keep_default_na=False)
    for column in SPANS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame = frame.dropna(subset=list(SPANS)).rename(columns=SPANS)
    sums = frame.groupby(["campaign_id", "user"])[list(SPANS.values())].sum()
    sums["logged_in"] = sums.sum(axis=1)
    return sums.astype(float)


def test_agent_log_rows_become_state_spans_holding_the_rows_seconds():
    from producers.vicidial import AgentLogMapper

    settings = load_settings(None)
    mapper = AgentLogMapper(settings)
    with AGENT_LOG.open() as stream:
        rows = list(read_rows(stream, ("user", "event_time", "campaign_id"), "vicidial_agent_log"))
    cycles, refused = [], []
    for line, text in rows:
        try:
            cycles.append(mapper.cycle(line, text))
        except RowError as error:
            refused.append((line, error.reason))
    assert refused == [(13, "bad_number")]
    events = [event for _, event in mapper.events(cycles)]
    by_agent: dict[str, list] = defaultdict(list)
    for event in events:
        by_agent[event.agent].append(event)
    spans: dict[tuple[str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for agent, timeline in by_agent.items():
        assert timeline == sorted(timeline, key=lambda event: event.event_time), "each agent's events in order"
        assert timeline[-1].state == "logged_out"
        for event, following in zip(timeline, timeline[1:]):
            gap = (following.event_time - event.event_time).total_seconds()
            if event.state != "logged_out":
                assert gap < settings.agents.timeout_seconds, "a long pause is not taken for a logout"
                spans[(event.campaign, agent)][event.state] += gap
    want = agent_seconds_in_file()
    for (campaign, agent), expected in want.iterrows():
        got = spans[(campaign, agent)]
        assert {state: got.get(state, 0.0) for state in SPANS.values()} == {
            state: expected[state] for state in SPANS.values()
        }, (campaign, agent)
    first = by_agent["1001"][0]
    assert (first.state, first.event_time.isoformat(), first.team) == ("paused", "2026-11-16T00:00:00+00:00", "TOKYO-A")
    # 1002 logs out for lunch between its HOMEINS and BBAND cycles; 1001's cycles follow each other.
    assert [e.state for e in by_agent["1002"]].count("logged_out") == 2
    assert [e.state for e in by_agent["1001"]].count("logged_out") == 1
    assert len({event.event_id for event in events}) == len(events)


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_an_agent_log_export_lands_its_agent_seconds_once(pipeline):
    from warehouse.client import connect

    worker = pipeline.worker()
    for _ in range(2):  # ingested twice: the same events, counted once
        result = callpulse(pipeline, "ingest", "vicidial", str(AGENT_LOG))
        assert result.returncode == 0, result.stderr
        assert "read 12 rows" in result.stderr and "rejected 1" in result.stderr
        assert "line 13: bad_number: talk_sec '1O5' is not a number" in result.stderr
        worker.wait_until_caught_up(timeout_s=120)
    assert worker.stop() == 0
    client = connect(pipeline.settings.warehouse_url)
    try:
        landed = client.query_df(
            "SELECT campaign AS campaign_id, agent AS user, sum(paused_seconds) AS paused, "
            "sum(available_seconds) AS available, sum(on_call_seconds) AS on_call, "
            "sum(wrap_up_seconds) AS wrap_up, sum(logged_in_seconds) AS logged_in "
            "FROM agent_minutes FINAL GROUP BY campaign, agent ORDER BY campaign, agent"
        )
    finally:
        client.close()
    want = agent_seconds_in_file().reset_index().sort_values(["campaign_id", "user"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(
        landed[want.columns.tolist()].astype({c: float for c in want.columns[2:]}), want, check_dtype=False
    )
