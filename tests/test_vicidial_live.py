"""VICIdial live mode against a real MariaDB server (Debian's mariadb-server, a private
instance per test module): rows inserted while the poller runs, a call that becomes final
after newer ones, a stop, rows inserted while it is down, and a restart. Every row
reaches Kafka exactly once."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from callpulse.embedded import free_port
from core.schema import CallAttempt, decode_record
from streams.kafka_admin import read_topic

pytestmark = pytest.mark.integration

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MARIADBD = Path("/usr/sbin/mariadbd")

# VICIdial's own layout of vicidial_log (MySQL_AST_CREATE_tables.sql).
VICIDIAL_LOG = """
CREATE TABLE vicidial_log (
  uniqueid VARCHAR(20) PRIMARY KEY NOT NULL,
  lead_id INT(9) UNSIGNED NOT NULL,
  list_id BIGINT(14) UNSIGNED,
  campaign_id VARCHAR(8),
  call_date DATETIME,
  start_epoch INT(10) UNSIGNED,
  end_epoch INT(10) UNSIGNED,
  length_in_sec INT(10),
  status VARCHAR(6),
  phone_code VARCHAR(10),
  phone_number VARCHAR(18),
  user VARCHAR(20),
  comments VARCHAR(255),
  processed ENUM('Y','N'),
  user_group VARCHAR(20),
  term_reason ENUM('CALLER','AGENT','QUEUETIMEOUT','ABANDON','AFTERHOURS','NONE','SYSTEM') DEFAULT 'NONE',
  alt_dial VARCHAR(6) DEFAULT 'NONE',
  called_count SMALLINT UNSIGNED DEFAULT '0',
  INDEX (lead_id),
  INDEX (call_date)
) ENGINE=MyISAM
"""
STATUSES = ["NA", "B", "A", "SALE", "NI", "DROP", "CALLBK", "AFAX", "DC", "XFER"]


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory):
    """A private MariaDB server with VICIdial's asterisk database and its usual cron user."""
    if not MARIADBD.exists():
        pytest.fail("mariadb-server is missing: `make test` installs it (apt-get install mariadb-server)",
                    pytrace=False)
    import pymysql

    base = tmp_path_factory.mktemp("mariadb")
    datadir, socket, port = base / "data", base / "mysqld.sock", free_port()
    subprocess.run(["mariadb-install-db", "--user=root", f"--datadir={datadir}",
                    "--auth-root-authentication-method=socket", "--skip-test-db"],
                   check=True, capture_output=True, timeout=120)
    server = subprocess.Popen([str(MARIADBD), "--no-defaults", "--user=root", f"--datadir={datadir}",
                               f"--socket={socket}", f"--port={port}", "--bind-address=127.0.0.1",
                               f"--pid-file={base / 'mysqld.pid'}", f"--log-error={base / 'error.log'}"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            admin = pymysql.connect(unix_socket=str(socket), user="root", autocommit=True)
            break
        except pymysql.err.OperationalError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise AssertionError(f"MariaDB did not start:\n{(base / 'error.log').read_text()[-3000:]}")
            time.sleep(0.3)
    with admin.cursor() as cursor:
        cursor.execute("CREATE DATABASE asterisk")
        cursor.execute("CREATE USER 'cron'@'127.0.0.1' IDENTIFIED BY '1234'")
        cursor.execute("GRANT SELECT, INSERT, UPDATE ON asterisk.* TO 'cron'@'127.0.0.1'")
        cursor.execute("USE asterisk")
        cursor.execute(VICIDIAL_LOG)
    yield {"admin": admin, "dsn": f"mysql://cron:1234@127.0.0.1:{port}/asterisk"}
    admin.close()
    server.terminate()
    server.wait(30)
    shutil.rmtree(datadir, ignore_errors=True)


def insert(admin, number: int, call_date: datetime, status: str) -> str:
    uniqueid = f"{int(call_date.timestamp())}.{number}"
    with admin.cursor() as cursor:
        cursor.execute(
            "INSERT INTO asterisk.vicidial_log (uniqueid, lead_id, list_id, campaign_id, call_date, start_epoch, "
            "end_epoch, length_in_sec, status, phone_code, phone_number, user, processed, user_group) "
            "VALUES (%s, %s, 1001, %s, %s, %s, %s, %s, %s, '81', %s, %s, 'N', %s)",
            (uniqueid, number, ["HOMEINS", "BBAND"][number % 2], call_date.strftime("%Y-%m-%d %H:%M:%S"),
             int(call_date.timestamp()), int(call_date.timestamp()) + 30, 30 + number % 90, status,
             f"0901234{number:04d}", "VDAD" if status in ("NA", "B", "A") else f"agent{number % 5}", "TOKYO"))
    return uniqueid


class Poller:
    def __init__(self, pipeline, dsn: str, log: Path):
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "callpulse", "--config", str(pipeline.config_file), "ingest", "vicidial",
             "--mysql-dsn", dsn, "--poll-seconds", "0.3", "--batch-events", "7"],
            stdout=log.open("ab"), stderr=subprocess.STDOUT, cwd=PROJECT_ROOT,
            env={"CALLPULSE_HMAC_KEY": "test-key", "PATH": "/usr/bin:/bin"})

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


def published(settings) -> list[CallAttempt]:
    events = []
    for value in read_topic(settings, settings.topics.call_events):
        decoded, rejected = decode_record(value)
        assert not rejected
        events.extend(decoded)
    return events


def wait_for(settings, count: int, poller: Poller, timeout_s: float = 60) -> list[CallAttempt]:
    deadline = time.monotonic() + timeout_s
    while True:
        events = published(settings)
        if len(events) >= count:
            return events
        if poller.proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{len(events)} of {count} rows arrived:\n{poller.log.read_text()[-3000:]}")
        time.sleep(0.3)


@pytest.mark.timeout(240)
def test_live_rows_arrive_once_across_late_finals_and_a_restart(pipeline, mariadb):
    admin, settings = mariadb["admin"], pipeline.settings
    start = datetime(2026, 11, 23, 9, 0, 0)
    inserted = [insert(admin, n, start + timedelta(seconds=10 * n), STATUSES[n % len(STATUSES)]) for n in range(40)]
    # A call still in progress: placed early, final only after newer calls were read.
    in_progress = insert(admin, 1000, start + timedelta(seconds=5), "INCALL")

    log = pipeline.data_dir / "poller.log"
    pipeline.data_dir.mkdir(parents=True, exist_ok=True)
    poller = Poller(pipeline, mariadb["dsn"], log)
    wait_for(settings, 40, poller)
    for n in range(40, 70):  # inserted while the poller runs
        inserted.append(insert(admin, n, start + timedelta(seconds=10 * n), STATUSES[n % len(STATUSES)]))
        if n % 10 == 0:
            time.sleep(0.5)
    with admin.cursor() as cursor:
        cursor.execute("UPDATE asterisk.vicidial_log SET status = 'SALE', length_in_sec = 240 WHERE uniqueid = %s",
                       (in_progress,))
    inserted.append(in_progress)
    wait_for(settings, 71, poller)
    assert poller.stop() == 0

    for n in range(70, 100):  # while the poller is down
        inserted.append(insert(admin, n, start + timedelta(seconds=10 * n), STATUSES[n % len(STATUSES)]))
    poller = Poller(pipeline, mariadb["dsn"], log)
    events = wait_for(settings, 101, poller)
    time.sleep(1.5)  # a few more polls: nothing may arrive twice
    events = published(settings)
    assert poller.stop() == 0

    ids = [event.event_id for event in events]
    assert sorted(ids) == sorted(inserted), "every row once, no more"
    late = next(event for event in events if event.event_id == in_progress)
    assert (late.outcome.value, late.order, late.talk_seconds) == ("connected", True, 240.0)
    assert all("0901234" not in msgspec.json.encode(event).decode() for event in events)


def landed_counts(settings) -> tuple[int, int]:
    from warehouse.client import connect

    client = connect(settings.warehouse_url)
    try:
        return client.query("SELECT (SELECT uniqExact(event_id) FROM call_attempts), "
                            "(SELECT sum(dials) FROM minute_metrics FINAL)").result_rows[0]
    finally:
        client.close()


@pytest.mark.timeout(300)
def test_rows_kafka_acknowledged_but_never_landed_are_counted_once_after_the_pipeline_restarts(tmp_path, mariadb):
    """Kill the pipeline after Kafka acknowledged rows and before they landed: the embedded
    broker comes back empty, and the poller must publish those rows again."""
    from conftest import new_pipeline
    from callpulse.embedded import EmbeddedBroker
    from streams.kafka_admin import ensure_topics

    admin = mariadb["admin"]
    with admin.cursor() as cursor:
        cursor.execute("DELETE FROM asterisk.vicidial_log")
    port = free_port()
    broker = EmbeddedBroker(port, tmp_path / "broker-1").start()
    pipeline = new_pipeline(broker, tmp_path)
    settings = pipeline.settings
    health_port = settings.embedded.worker_health_port  # where the poller looks
    start = datetime(2026, 11, 23, 10, 0, 0)
    log = tmp_path / "poller.log"
    pollers: list[Poller] = []
    try:
        landed = [insert(admin, n, start + timedelta(seconds=10 * n), STATUSES[n % len(STATUSES)])
                  for n in range(30)]
        worker = pipeline.worker(health_port=health_port)
        poller = Poller(pipeline, mariadb["dsn"], log)
        pollers.append(poller)
        worker.wait_until(lambda h: h["ready"] and h["counted"] == 30)
        time.sleep(1.5)  # a few polls see them landed
        worker.proc.kill()  # the worker dies; the poller goes on publishing into Kafka
        worker.proc.wait()
        acknowledged = [insert(admin, n, start + timedelta(seconds=10 * n), STATUSES[n % len(STATUSES)])
                        for n in range(30, 60)]
        wait_for(settings, 60, poller)
        time.sleep(1.0)  # the checkpoint is written after the flush that covers them
        poller.proc.kill()
        poller.proc.wait()
    finally:
        pipeline.stop_all()
        for running in pollers:
            if running.proc.poll() is None:
                running.proc.kill()
        broker.stop()  # the rest of the pipeline dies: the embedded broker keeps nothing

    broker = EmbeddedBroker(port, tmp_path / "broker-2").start()
    try:
        ensure_topics(settings)
        worker = pipeline.worker(health_port=health_port)
        poller = Poller(pipeline, mariadb["dsn"], log)
        pollers.append(poller)
        health = worker.wait_until(lambda h: h["ready"] and h["counted"] >= 30, timeout_s=120)
        time.sleep(2.0)  # more polls: nothing more may arrive
        health = worker.health()
        assert poller.stop() == 0
        assert worker.stop() == 0
    finally:
        pipeline.stop_all()
        for running in pollers:
            if running.proc.poll() is None:
                running.proc.kill()
        broker.stop()
    assert health["counted"] == len(acknowledged), "only the rows that never landed were sent again"
    assert "never landed" in log.read_text()
    assert landed_counts(settings) == (len(landed) + len(acknowledged), len(landed) + len(acknowledged))
