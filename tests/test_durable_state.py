"""Durable state in embedded mode. The embedded broker keeps its topics in memory, so a
restart brings the stop-list and alerts topics back empty. The warehouse holds both: the
worker rebuilds the stop list from it (and publishes it into the topic again), and
`callpulse alerts list` reads the alerts table, so before and after a restart the stop
list, the alerts list and the dashboard agree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest
from conftest import new_pipeline

from callpulse.embedded import EmbeddedBroker, free_port
from core.privacy import hash_phone
from core.schema import CallAttempt, Lead, Outcome
from producers.publisher import EventPublisher
from streams.kafka_admin import ensure_topics, read_topic
from warehouse.client import connect

pytestmark = pytest.mark.integration

KEY = b"test-key"  # the workers' CALLPULSE_HMAC_KEY (tests/conftest.py)
START = datetime(2026, 11, 23, 1, 0, tzinfo=timezone.utc)
STILL_FLAGGED = "+81 90-1111-2222"
CONSENTED_AGAIN = "+81 90-3333-4444"


def dial(event_id: str, phone: str, campaign: str, placed: datetime) -> CallAttempt:
    """A connected call placed at ``placed``: ring 10 s, talk 60 s."""
    return CallAttempt(
        schema_version=1,
        event_id=event_id,
        campaign=campaign,
        event_time=placed + timedelta(seconds=70),
        outcome=Outcome.CONNECTED,
        lead=Lead(segment="seniors", phone_hash=hash_phone(phone, KEY)),
        ring_seconds=10.0,
        talk_seconds=60.0,
        agent="agent-07",
        team="tokyo-floor",
    )


def publish(settings, events) -> None:
    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events)
    publisher.publish_all(events)
    publisher.close()


def cli(pipeline, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, "CALLPULSE_HMAC_KEY": KEY.decode(), **(env or {})}
    done = subprocess.run(
        [sys.executable, "-m", "callpulse", "--config", str(pipeline.config_file), *args],
        capture_output=True,
        text=True,
        timeout=90,
        env=environment,
    )
    assert done.returncode == 0, done.stderr
    return done


def listed_alerts(pipeline, login: dict[str, str], *options: str) -> list[dict]:
    return json.loads(cli(pipeline, "alerts", "list", "--format", "json", *options, env=login).stdout)


def dashboard_alerts(pipeline, header: dict[str, str]) -> list[dict]:
    url = f"http://127.0.0.1:{pipeline.settings.embedded.dashboard_port}/api/alerts"
    with urllib.request.urlopen(urllib.request.Request(url, headers=header), timeout=30) as response:
        return json.loads(response.read())


def wait_for(predicate, what: str, timeout_s: float = 60.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"{what} did not happen within {timeout_s:.0f} s")


@pytest.mark.timeout(420)
def test_the_stop_list_and_the_alerts_survive_a_broker_that_restarts_empty(tmp_path, dashboard_login):
    port = free_port()
    login = dashboard_login.cli_env("supervisor")
    broker = EmbeddedBroker(port, tmp_path / "broker-1").start()
    try:
        pipeline = new_pipeline(broker, tmp_path)
        settings = pipeline.settings
        cli(pipeline, "stoplist", "add", STILL_FLAGGED, "--reason", "dnc_request", "--at", START.isoformat())
        cli(pipeline, "stoplist", "add", CONSENTED_AGAIN, "--reason", "complaint", "--at", START.isoformat())
        worker = pipeline.worker()
        assert worker.wait_until(lambda h: h["ready"])["stop_list_size"] == 2
        # Removed while the worker runs and no call arrives: it must reach the warehouse all the same.
        cli(pipeline, "stoplist", "remove", CONSENTED_AGAIN)
        worker.wait_until(lambda h: h["stop_list_size"] == 1 and h["stop_list_unlanded"] == 0, timeout_s=30)
        # Two campaigns dial the flagged customer: two critical stop-list alerts fire.
        publish(
            settings,
            [
                dial("first-run-1", STILL_FLAGGED, "home-insurance", START + timedelta(minutes=5)),
                dial("first-run-2", STILL_FLAGGED, "winback", START + timedelta(minutes=5)),
            ],
        )
        worker.wait_until_caught_up()
        worker.wait_until(lambda h: h["alerts_firing"] == 2 and h["stop_list_violations"] == 2, timeout_s=60)
        alerts_before = wait_for(
            lambda: (lambda listed: listed if len(listed) == 2 else None)(listed_alerts(pipeline, login)),
            "two alerts in the table",
        )
        active_before = listed_alerts(pipeline, login, "--active")
        assert sorted((a["campaign"], a["rule"], a["state"], a["severity"]) for a in alerts_before) == [
            ("home-insurance", "stop_list_violation", "firing", "critical"),
            ("winback", "stop_list_violation", "firing", "critical"),
        ]
        assert active_before == dashboard_alerts(pipeline, dashboard_login.bearer("supervisor"))
        assert sorted(a["alert_id"] for a in active_before) == sorted(a["alert_id"] for a in alerts_before)
        status = cli(pipeline, "stoplist", "status").stdout
        assert "1 customer(s) on the stop list" in status and "dnc_request: 1" in status
        assert worker.stop() == 0
    finally:
        pipeline.stop_all()
        broker.stop()

    # Nothing runs: the alerts come straight from the warehouse, as they were.
    assert listed_alerts(pipeline, login) == alerts_before
    assert listed_alerts(pipeline, login, "--all-transitions") == alerts_before

    # The same port and data directory, a new broker: every topic comes back empty.
    broker = EmbeddedBroker(port, tmp_path / "broker-2").start()
    try:
        ensure_topics(settings)
        assert read_topic(settings, settings.topics.stop_list) == []
        assert read_topic(settings, settings.topics.alerts) == []
        worker = pipeline.worker()
        health = worker.wait_until(lambda h: h["ready"])
        assert (health["stop_list_size"], health["stop_list_unlanded"], health["alerts_firing"]) == (1, 0, 2)
        # Every reader of the topic sees the landed list again, with its own flag time and reason.
        status = cli(pipeline, "stoplist", "status").stdout
        assert "1 customer(s) on the stop list" in status and "dnc_request: 1" in status, status
        assert f"newest flag {START.isoformat()}" in status, status
        assert listed_alerts(pipeline, login) == alerts_before
        assert listed_alerts(pipeline, login, "--active") == active_before
        assert dashboard_alerts(pipeline, dashboard_login.bearer("supervisor")) == active_before

        publish(
            settings,
            [
                dial("second-run-flagged", STILL_FLAGGED, "home-insurance", START + timedelta(minutes=20)),
                dial("second-run-consented", CONSENTED_AGAIN, "home-insurance", START + timedelta(minutes=21)),
            ],
        )
        health = worker.wait_until_caught_up()
        assert (health["counted"], health["stop_list_violations"]) == (2, 1)
        assert worker.stop() == 0
    finally:
        pipeline.stop_all()
        broker.stop()

    client = connect(settings.warehouse_url)
    try:
        violations = sorted(
            row[0] for row in client.query("SELECT event_id FROM stop_list_violations FINAL").result_rows
        )
        stop_list = client.query(
            "SELECT phone_hash, reason, flagged_at, removed_at IS NOT NULL FROM stop_list FINAL ORDER BY reason"
        ).result_rows
    finally:
        client.close()
    assert violations == ["first-run-1", "first-run-2", "second-run-flagged"]
    # The warehouse's copy: the flag and the removal, by the phone's HMAC only.
    assert [
        (h, reason, flagged.replace(tzinfo=timezone.utc), removed) for h, reason, flagged, removed in stop_list
    ] == [
        (hash_phone(CONSENTED_AGAIN, KEY), "complaint", START, True),
        (hash_phone(STILL_FLAGGED, KEY), "dnc_request", START, False),
    ]


def test_republishing_keeps_a_removal_that_arrived_meanwhile_and_the_original_flags(pipeline):
    """The worker read a topic that lacks the landed flags and publishes them again; a removal
    for one of them produced in between sits before the copy and must still win."""
    from core.schema import StopListEntry
    from producers.stoplist import StopListPublisher
    from streams.stoplist import StopListTable

    settings = pipeline.settings
    landed = [
        StopListEntry(hash_phone(STILL_FLAGGED, KEY), START, "dnc_request", "cli"),
        StopListEntry(hash_phone(CONSENTED_AGAIN, KEY), START - timedelta(days=3), "complaint", "file:dnc.csv"),
    ]
    table = StopListTable(settings.bootstrap_servers, settings.topics.stop_list, keep_changes=True)
    publisher = StopListPublisher(settings.bootstrap_servers, settings.topics.stop_list, KEY)
    try:
        missing = table.rebuild(landed)
        assert missing == landed and len(table) == 2
        publisher.unflag(CONSENTED_AGAIN)  # the customer consents again just as the worker starts
        publisher.close()
        assert table.republish(missing) == 2
        assert sorted(table.entries) == [hash_phone(STILL_FLAGGED, KEY)]
        changes = {change.entry.phone_hash: change for change in table.unlanded_changes()}
        assert changes[hash_phone(CONSENTED_AGAIN, KEY)].removed_at is not None
        assert changes[hash_phone(STILL_FLAGGED, KEY)].removed_at is None
    finally:
        table.close()
    reader = StopListTable(settings.bootstrap_servers, settings.topics.stop_list)
    try:
        reader.catch_up()
    finally:
        reader.close()
    assert list(reader.entries.values()) == [landed[0]]  # its own flag time, reason and source
