"""Alert latency: from the call event that tips a campaign over its abandon threshold to
the alert record on the alerts topic, in embedded mode (tansu + Faust worker + chDB).

    .venv/bin/python bench/alert_latency.py [--rate 200] [--runs 3]

A campaign runs at 1 % abandons for 20 event-minutes (published as a backlog), then the
spike at 5 % is published paced in real time at --rate events/s. Each alert names the
newest event of the batch that raised it (trigger_event_id); latency is the alert record's
Kafka timestamp minus the wall-clock time that event was sent.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from callpulse.embedded import EmbeddedBroker, free_port  # noqa: E402
from core.alerts import decode_alert  # noqa: E402
from core.config import load_settings  # noqa: E402
from core.schema import encode_event  # noqa: E402
from producers.publisher import EventPublisher  # noqa: E402
from producers.scenarios import Phase, abandon_rate_phases  # noqa: E402
from streams.kafka_admin import ensure_topics  # noqa: E402


def wait_health(port: int, predicate, timeout_s: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                health = json.loads(resp.read())
                if predicate(health):
                    return health
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("worker did not get there in time")


def one_run(broker_port: int, workdir: Path, rate: float, run: int) -> float:
    config = workdir / f"run{run}.toml"
    config.write_text(f"""
[pipeline]
data_dir = "{workdir / f"var{run}"}"
[topics]
call_events = "bench{run}.call-events"
dead_letters = "bench{run}.dead-letters"
alerts = "bench{run}.alerts"
partitions = 1
[embedded]
broker_port = {broker_port}
dashboard_port = {free_port()}
[alerts.rules.default]
compliance_limit = 0.5
""")
    settings = load_settings(config)
    ensure_topics(settings)
    start = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(minutes=30)
    events = list(abandon_rate_phases("winback", start, (Phase(20, 0.01), Phase(10, 0.05)), dials_per_minute=100))
    backlog, live = events[:2000], events[2000:]
    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events)
    publisher.publish_all(backlog)
    publisher.flush()
    health_port = free_port()
    env = dict(os.environ, CALLPULSE_HMAC_KEY="bench")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "callpulse",
            "--config",
            str(config),
            "worker",
            "--health-port",
            str(health_port),
            "--no-dashboard",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_health(health_port, lambda h: h["ready"] and h["counted"] >= len(backlog))
        sent_at: dict[str, float] = {}
        interval = 1.0 / rate
        next_send = time.monotonic()
        for event in live:
            now = time.monotonic()
            if now < next_send:
                time.sleep(next_send - now)
            next_send += interval
            sent_at[event.event_id] = time.time()
            publisher.producer.send(settings.topics.call_events, key=event.campaign.encode(), value=encode_event(event))
        publisher.close()
        wait_health(health_port, lambda h: h["alerts_sent"] >= 2)
    finally:
        worker.terminate()
        worker.wait(30)
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, consumer_timeout_ms=3000)
    consumer.assign([TopicPartition(settings.topics.alerts, 0)])
    consumer.seek_to_beginning()
    for record in consumer:
        alert = decode_alert(record.value)
        if alert.severity == "critical" and alert.state == "firing":
            latency = record.timestamp / 1000 - sent_at[alert.trigger_event_id]
            print(
                f"run {run}: critical at {alert.value * 100:.2f} % -> on the topic {latency * 1000:.0f} ms "
                "after its trigger event was sent"
            )
            consumer.close()
            return latency
    raise SystemExit("no critical alert on the topic")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200.0, help="events per second during the spike")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker(free_port(), Path(tmp) / "broker") as broker:
        latencies = [one_run(broker.port, Path(tmp), args.rate, run) for run in range(args.runs)]
    print(
        f"alert latency over {args.runs} runs at {args.rate:.0f} events/s: "
        f"median {statistics.median(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
