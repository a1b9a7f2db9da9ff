"""Alerts on real parts: a scripted abandon spike -> broker -> worker -> alerts topic, table,
webhook (failing first) and the `callpulse alerts list` command."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core.alerts import decode_alert
from producers.publisher import EventPublisher
from producers.scenarios import Phase, abandon_rate_phases
from streams.kafka_admin import read_topic
from warehouse.client import connect
from warehouse.queries.alerts import alert_history

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 23, 1, 0, tzinfo=timezone.utc)  # 10:00 in Tokyo


class FlakyReceiver:
    """A loopback webhook that answers 500 to its first POST and 200 after that."""

    def __init__(self):
        self.requests: list[tuple[int, dict]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status = 500 if not receiver.requests else 200
                receiver.requests.append((status, body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/callpulse"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def delivered(self) -> list[dict]:
        return [body for status, body in self.requests if status == 200]


def minutes_into(alert) -> float:
    return (alert.event_time - START).total_seconds() / 60


def test_an_abandon_spike_fires_once_escalates_once_and_resolves_once(pipeline, monkeypatch):
    receiver = FlakyReceiver()
    monkeypatch.setenv("CALLPULSE_ALERT_WEBHOOK_URL", receiver.url)
    # The spike also pushes the UK/US compliance figures towards 3 %, which is right, but
    # this test is about the live abandon rule alone.
    with pipeline.config_file.open("a") as config:
        config.write("\n[alerts.rules.winback]\ncompliance_limit = 0.5\n")
    settings = pipeline.settings
    # 1 % for 20 minutes, 3 % for 15, 5 % for 10, then 1 % for 30; 100 live answers a minute.
    phases = (Phase(20, 0.01), Phase(15, 0.03), Phase(10, 0.05), Phase(30, 0.01))
    events = list(abandon_rate_phases("winback", START, phases, dials_per_minute=200))
    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events)
    publisher.publish_all(events)
    publisher.close()

    worker = pipeline.worker()
    worker.wait_until_caught_up()
    health = worker.wait_until(
        lambda h: h["webhook"] and h["webhook"]["delivered"] == h["alerts_sent"] > 0, timeout_s=60
    )
    assert worker.stop() == 0

    alerts = [decode_alert(raw) for raw in read_topic(settings, settings.topics.alerts)]
    transitions = [(a.rule.value, a.state, a.severity) for a in alerts]
    assert transitions == [
        ("abandon_rate", "firing", "warning"),
        ("abandon_rate", "firing", "critical"),
        ("abandon_rate", "resolved", "critical"),
    ], transitions
    warning, critical, resolved = alerts
    assert len({a.alert_id for a in alerts}) == 1 and all(a.campaign == "winback" for a in alerts)
    assert all(a.first_seen == warning.event_time for a in alerts)
    # The rule fires on evidence built minute by minute (core.alerts.abandon_evidence). Warning
    # (1 % against 4 %): a minute of 3 abandons in 100 adds 3 ln 4 + 97 ln(0.96 / 0.99) = 1.17, so
    # 12 after 11 minutes of 3 %. Critical (1.5 % against 6 %): 3 % takes its score down, each
    # minute of 5 % adds 2.49, so 7 after 3. It resolves when the 15-minute window's 95 % Wilson
    # upper bound is below abandon_resolve (2 %): 19 of 1500 (CI 0.8-2.0 %), 14 minutes after.
    # (The worker also reads at the end of each batch, so a level can tip within the minute before.)
    assert 30 <= minutes_into(warning) < 32 and warning.value >= 0.02 and warning.threshold == 0.02
    assert 37.5 <= minutes_into(critical) < 39 and critical.threshold == 0.03
    assert 57 <= minutes_into(resolved) < 60 and resolved.value < 0.015 and resolved.threshold == 0.02
    # A raise reads the calls its evidence rests on (since the 5 % began), not the 15 minutes.
    abandoned = int(critical.detail.split(" abandoned of ")[0])
    assert critical.value == abandoned / critical.sample == pytest.approx(0.05, abs=0.006)
    assert 250 <= critical.sample <= 301 and critical.window_minutes == 15
    assert health["alerts_firing"] == 0

    # The webhook failed once (500), was retried, and each transition arrived exactly once.
    assert [status for status, _ in receiver.requests] == [500, 200, 200, 200]
    delivered = [body["callpulse_alert"] for body in receiver.delivered()]
    assert [(d["state"], d["severity"]) for d in delivered] == [
        ("firing", "warning"),
        ("firing", "critical"),
        ("resolved", "critical"),
    ]
    assert receiver.delivered()[1]["text"].startswith("CRITICAL · winback · abandon rate")

    client = connect(settings.warehouse_url)
    try:
        history = alert_history(client)
    finally:
        client.close()
    assert sorted(zip(history["state"], history["severity"])) == [
        ("firing", "critical"),
        ("firing", "warning"),
        ("resolved", "critical"),
    ]

    listed = subprocess.run(
        [
            sys.executable,
            "-m",
            "callpulse",
            "--config",
            str(pipeline.config_file),
            "alerts",
            "list",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    episodes = json.loads(listed.stdout)
    assert [(e["campaign"], e["state"]) for e in episodes] == [("winback", "resolved")]
    active = subprocess.run(
        [
            sys.executable,
            "-m",
            "callpulse",
            "--config",
            str(pipeline.config_file),
            "alerts",
            "list",
            "--active",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(active.stdout) == []


def test_a_campaign_that_stays_at_one_percent_raises_nothing(pipeline):
    settings = pipeline.settings
    from producers.scenarios import Phase

    events = list(abandon_rate_phases("steady", START, (Phase(30, 0.01),), dials_per_minute=150))
    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events)
    publisher.publish_all(events)
    publisher.close()
    worker = pipeline.worker()
    health = worker.wait_until_caught_up()
    assert worker.stop() == 0
    assert health["alerts_sent"] == 0
    assert read_topic(settings, settings.topics.alerts) == []
