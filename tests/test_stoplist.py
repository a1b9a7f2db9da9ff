"""The stop list on real parts: `callpulse stoplist` -> compacted topic -> the worker's
table -> violations, a critical alert and the compliance list, with the late opt-out race."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from core.alerts import decode_alert
from core.privacy import hash_phone
from core.schema import CallAttempt, Lead, Outcome
from dashboards.app import create_app
from dashboards.data import DashboardContext
from producers.publisher import EventPublisher
from producers.stoplist import read_stop_list_file
from streams.kafka_admin import read_topic
from warehouse.client import connect
from warehouse.queries.reports import stop_list_violations

pytestmark = pytest.mark.integration

KEY = b"test-key"  # the workers' CALLPULSE_HMAC_KEY (tests/conftest.py)
START = datetime(2026, 11, 23, 1, 0, tzinfo=timezone.utc)


def dial(event_id: str, phone: str, placed: datetime, outcome=Outcome.CONNECTED, talk: float = 60.0) -> CallAttempt:
    """An attempt placed at ``placed``: ring 10 s, then ``talk`` seconds if someone talked."""
    talk = talk if outcome is Outcome.CONNECTED else 0.0
    return CallAttempt(
        schema_version=1,
        event_id=event_id,
        campaign="home-insurance",
        event_time=placed + timedelta(seconds=10 + talk),
        outcome=outcome,
        lead=Lead(segment="seniors", phone_hash=hash_phone(phone, KEY)),
        ring_seconds=10.0,
        talk_seconds=talk,
        agent="agent-07",
        team="tokyo-floor",
    )


def cli(pipeline, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CALLPULSE_HMAC_KEY": KEY.decode()}
    return subprocess.run(
        [sys.executable, "-m", "callpulse", "--config", str(pipeline.config_file), "stoplist", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def publish(settings, events) -> None:
    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events)
    publisher.publish_all(events)
    publisher.close()


def test_dials_to_stop_listed_customers_are_violations_even_seconds_after_the_opt_out(pipeline, tmp_path):
    settings = pipeline.settings
    listed = tmp_path / "dnc.csv"
    listed.write_text("phone_number,reason\n+81 90-1111-0001,complaint\n090 1111 0002,\nnot a number,\n")
    imported = cli(pipeline, "import", str(listed), "--reason", "dnc_request")
    assert imported.returncode == 0, imported.stderr
    assert "flagged 2 customer(s) · rejected 1 row(s)" in imported.stderr
    assert cli(pipeline, "add", "+819011110003", "--at", START.isoformat()).returncode == 0
    assert cli(pipeline, "add", "+819011110004", "--at", START.isoformat()).returncode == 0
    assert cli(pipeline, "remove", "+819011110004").returncode == 0  # consented again

    worker = pipeline.worker()
    worker.wait_until(lambda h: h["ready"], timeout_s=120)
    # Imported flags carry the import time (now), after every dial below: no violation from them.
    publish(
        settings,
        [
            dial("after-flag", "+819011110003", START + timedelta(minutes=5)),
            dial("during-call-opt-out", "+819011110003", START - timedelta(seconds=30)),  # asked during the call
            dial("re-consented", "+819011110004", START + timedelta(minutes=6)),
            dial("never-listed", "+819011110099", START + timedelta(minutes=6)),
            dial("imported-earlier-dial", "+819011110001", START + timedelta(minutes=7), Outcome.NO_ANSWER),
        ],
    )
    worker.wait_until_caught_up()

    # The race: the customer opts out, and two seconds later (event time) the dialer calls
    # them; the opt-out reaches Kafka only just before the dial's own record does.
    race_flag = START + timedelta(minutes=10)
    assert cli(pipeline, "add", "+819011110005", "--at", race_flag.isoformat()).returncode == 0
    publish(settings, [dial("race", "+819011110005", race_flag + timedelta(seconds=2), Outcome.ABANDONED)])
    health = worker.wait_until_caught_up()
    health = worker.wait_until(lambda h: h["alerts_sent"] >= 1, timeout_s=30)
    assert health["stop_list_violations"] == 2
    assert health["stop_list_size"] == 4  # two imported, 0003 and 0005; 0004 was removed
    assert worker.stop() == 0

    alerts = [decode_alert(raw) for raw in read_topic(settings, settings.topics.alerts)]
    stop_alerts = [a for a in alerts if a.rule.value == "stop_list_violation"]
    assert [(a.campaign, a.state, a.severity, a.trigger_event_id) for a in stop_alerts] == [
        ("home-insurance", "firing", "critical", "after-flag")
    ]
    assert stop_alerts[0].headline().startswith("CRITICAL · home-insurance · stop-list violation 1 dial")

    client = connect(settings.warehouse_url)
    try:
        violations = stop_list_violations(client, START - timedelta(days=1), START + timedelta(days=1))
        phone_hashes = {row[0] for row in client.query("SELECT phone_hash FROM call_attempts").result_rows}
        create_app(DashboardContext(settings, client))
        from dashboards.pages import compliance as compliance_page

        page_rows, page_summary = compliance_page._violations(START.date(), START.date())
    finally:
        client.close()
    # The compliance page's list, in Tokyo time, newest first.
    assert page_summary == "2 dials to stop-listed customers from 2026-11-23 to 2026-11-23 in 1 campaign(s)"
    assert [(r["dialed_at"], r["event_id"], r["after_flag"]) for r in page_rows] == [
        ("2026-11-23 10:10:02", "race", "2 s"),
        ("2026-11-23 10:05:00", "after-flag", "5 min"),
    ]
    assert sorted(violations["event_id"]) == ["after-flag", "race"]
    race = violations.set_index("event_id").loc["race"]
    assert (race["reason"], race["agent"], race["outcome"]) == ("opt_out", "agent-07", "abandoned")
    assert (race["dialed_at"] - race["flagged_at"]).total_seconds() == pytest.approx(2.0)
    # The compliance list names the call and the agent, never the customer.
    listed_text = violations.to_csv()
    assert not any(phone_hash in listed_text for phone_hash in phone_hashes)
    assert "9011110005" not in listed_text

    status = cli(pipeline, "status")
    assert status.returncode == 0, status.stderr
    assert "4 customer(s) on the stop list" in status.stdout
    assert "dnc_request: 1" in status.stdout and "complaint: 1" in status.stdout and "opt_out: 2" in status.stdout


def test_a_stop_list_file_without_a_phone_column_is_refused_with_the_columns_found(tmp_path):
    bad = tmp_path / "list.csv"
    bad.write_text("name,city\nTaro,Osaka\n")
    with pytest.raises(ValueError, match="no phone column; expected one of phone_number.*found name, city"):
        list(read_stop_list_file(bad))
    plain = tmp_path / "numbers.txt"
    plain.write_text("0311112222\n\n0633334444\n")
    assert [(line, phone) for line, phone, _, _ in read_stop_list_file(plain)] == [(1, "0311112222"), (3, "0633334444")]
