"""VICIdial live mode against a real MariaDB server (Debian's mariadb-server, a private
instance per test module): rows inserted while the poller runs, a call that becomes final
after newer ones, a stop, rows inserted while it is down, and a restart. Every row
reaches Kafka exactly once. The floor: agents in vicidial_live_agents become agent_state
events as they change, and vicidial_auto_calls with vicidial_campaigns one dialer_state
snapshot per campaign per poll."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import msgspec
import pytest

from callpulse.embedded import free_port
from core.schema import AgentStateChange, CallAttempt, DialerState, decode_record
from producers.vicidial import SWITCH_GAP
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

# The floor's tables, with VICIdial's column types for every column the poller reads and the
# columns around them (the full tables have dozens more the poller never reads).
FLOOR_TABLES = [
    """
CREATE TABLE vicidial_live_agents (
  live_agent_id INT(9) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL,
  user VARCHAR(20),
  server_ip VARCHAR(15) NOT NULL,
  conf_exten VARCHAR(20),
  extension VARCHAR(100),
  status ENUM('READY','QUEUE','INCALL','PAUSED','CLOSER','MQUEUE') default 'PAUSED',
  lead_id INT(9) UNSIGNED NOT NULL,
  campaign_id VARCHAR(8),
  uniqueid VARCHAR(20),
  callerid VARCHAR(20),
  channel VARCHAR(100),
  random_id INT(8) UNSIGNED,
  last_call_time DATETIME,
  last_update_time TIMESTAMP,
  last_call_finish DATETIME,
  closer_campaigns TEXT,
  user_level INT(2) default '0',
  comments VARCHAR(20),
  calls_today SMALLINT(5) UNSIGNED default '0',
  agent_log_id INT(9) UNSIGNED default '0',
  last_state_change DATETIME,
  outbound_autodial ENUM('Y','N') default 'N',
  pause_code VARCHAR(6) default '',
  index (random_id),
  index (last_call_time),
  index (last_update_time),
  index (last_call_finish)
) ENGINE=MyISAM
""",
    """
CREATE TABLE vicidial_auto_calls (
  auto_call_id INT(9) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL,
  server_ip VARCHAR(15) NOT NULL,
  campaign_id VARCHAR(20),
  status ENUM('SENT','RINGING','LIVE','XFER','PAUSED','CLOSER','BUSY','DISCONNECT','IVR') default 'PAUSED',
  lead_id INT(9) UNSIGNED NOT NULL,
  uniqueid VARCHAR(20),
  callerid VARCHAR(20),
  channel VARCHAR(100),
  phone_code VARCHAR(10),
  phone_number VARCHAR(18),
  call_time DATETIME,
  call_type ENUM('IN','OUT','OUTBALANCE') default 'OUT',
  stage VARCHAR(20) default 'START',
  last_update_time TIMESTAMP,
  alt_dial VARCHAR(6) default 'NONE',
  queue_priority TINYINT(2) default '0',
  agent_only VARCHAR(20) default '',
  queue_position SMALLINT(4) UNSIGNED default '1',
  index (uniqueid),
  index (callerid),
  index (call_time),
  index (last_update_time)
) ENGINE=MyISAM
""",
    """
CREATE TABLE vicidial_campaigns (
  campaign_id VARCHAR(8) PRIMARY KEY NOT NULL,
  campaign_name VARCHAR(40),
  active ENUM('Y','N'),
  hopper_level INT(8) UNSIGNED default '1',
  auto_dial_level VARCHAR(6) default '0',
  dial_method ENUM('MANUAL','RATIO','ADAPT_HARD_LIMIT','ADAPT_TAPERED','ADAPT_AVERAGE','INBOUND_MAN')
    default 'MANUAL',
  adaptive_dropped_percentage VARCHAR(4) default '3'
) ENGINE=MyISAM
""",
    """
CREATE TABLE vicidial_campaign_stats (
  campaign_id VARCHAR(20) PRIMARY KEY NOT NULL,
  update_time TIMESTAMP,
  dialable_leads INT(9) UNSIGNED default '0',
  calls_today INT(9) UNSIGNED default '0',
  answers_today INT(9) UNSIGNED default '0',
  drops_today DOUBLE(12,3) UNSIGNED default '0'
) ENGINE=MyISAM
""",
    """
CREATE TABLE vicidial_users (
  user_id INT(9) UNSIGNED AUTO_INCREMENT PRIMARY KEY NOT NULL,
  user VARCHAR(20) NOT NULL,
  pass VARCHAR(100) NOT NULL,
  full_name VARCHAR(50),
  user_level TINYINT(3) UNSIGNED default '1',
  user_group VARCHAR(20),
  unique index user (user)
) ENGINE=MyISAM
""",
]
# The dialer's clock runs in its own zone, the pipeline's (Asia/Tokyo in the test config).
DIALER_UTC_OFFSET = "+09:00"


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory):
    """A private MariaDB server with VICIdial's asterisk database and its usual cron user."""
    if not MARIADBD.exists():
        pytest.fail(
            "mariadb-server is missing: `make test` installs it (apt-get install mariadb-server)", pytrace=False
        )
    import pymysql

    base = tmp_path_factory.mktemp("mariadb")
    datadir, socket, port = base / "data", base / "mysqld.sock", free_port()
    subprocess.run(
        [
            "mariadb-install-db",
            "--user=root",
            f"--datadir={datadir}",
            "--auth-root-authentication-method=socket",
            "--skip-test-db",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    server = subprocess.Popen(
        [
            str(MARIADBD),
            "--no-defaults",
            "--user=root",
            f"--datadir={datadir}",
            f"--socket={socket}",
            f"--port={port}",
            "--bind-address=127.0.0.1",
            f"--pid-file={base / 'mysqld.pid'}",
            f"--log-error={base / 'error.log'}",
            f"--default-time-zone={DIALER_UTC_OFFSET}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            admin = pymysql.connect(unix_socket=str(socket), user="root", autocommit=True)
            break
        except pymysql.err.OperationalError:
            if time.monotonic() > deadline or server.poll() is not None:
                raise AssertionError(f"MariaDB did not start:\n{(base / 'error.log').read_text()[-3000:]}") from None
            time.sleep(0.3)
    with admin.cursor() as cursor:
        cursor.execute("CREATE DATABASE asterisk")
        cursor.execute("CREATE USER 'cron'@'127.0.0.1' IDENTIFIED BY '1234'")
        cursor.execute("GRANT SELECT, INSERT, UPDATE ON asterisk.* TO 'cron'@'127.0.0.1'")
        cursor.execute("USE asterisk")
        cursor.execute(VICIDIAL_LOG)
        for table in FLOOR_TABLES:
            cursor.execute(table)
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
            (
                uniqueid,
                number,
                ["HOMEINS", "BBAND"][number % 2],
                call_date.strftime("%Y-%m-%d %H:%M:%S"),
                int(call_date.timestamp()),
                int(call_date.timestamp()) + 30,
                30 + number % 90,
                status,
                f"0901234{number:04d}",
                "VDAD" if status in ("NA", "B", "A") else f"agent{number % 5}",
                "TOKYO",
            ),
        )
    return uniqueid


class Poller:
    def __init__(self, pipeline, dsn: str, log: Path, *extra: str):
        self.log = log
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "callpulse",
                "--config",
                str(pipeline.config_file),
                "ingest",
                "vicidial",
                "--mysql-dsn",
                dsn,
                "--poll-seconds",
                "0.3",
                "--batch-events",
                "7",
                *extra,
            ],
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            cwd=PROJECT_ROOT,
            env={"CALLPULSE_HMAC_KEY": "test-key", "PATH": "/usr/bin:/bin"},
        )

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


def published(settings, kind: type = CallAttempt) -> list:
    events = []
    for value in read_topic(settings, settings.topics.call_events):
        decoded, rejected = decode_record(value)
        assert not rejected
        events.extend(event for event in decoded if isinstance(event, kind))
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
        cursor.execute(
            "UPDATE asterisk.vicidial_log SET status = 'SALE', length_in_sec = 240 WHERE uniqueid = %s", (in_progress,)
        )
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
        return client.query(
            "SELECT (SELECT uniqExact(event_id) FROM call_attempts), (SELECT sum(dials) FROM minute_metrics FINAL)"
        ).result_rows[0]
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
        landed = [insert(admin, n, start + timedelta(seconds=10 * n), STATUSES[n % len(STATUSES)]) for n in range(30)]
        worker = pipeline.worker(health_port=health_port)
        poller = Poller(pipeline, mariadb["dsn"], log)
        pollers.append(poller)
        worker.wait_until(lambda h: h["ready"] and h["counted"] == 30)
        time.sleep(1.5)  # a few polls see them landed
        worker.proc.kill()  # the worker dies; the poller goes on publishing into Kafka
        worker.proc.wait()
        acknowledged = [
            insert(admin, n, start + timedelta(seconds=10 * n), STATUSES[n % len(STATUSES)]) for n in range(30, 60)
        ]
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


def floor_sql(admin, *statements: str) -> None:
    with admin.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def state_changed_at(admin, user: str) -> datetime:
    """vicidial_live_agents.last_state_change of a user, as the UTC instant it means."""
    from zoneinfo import ZoneInfo

    with admin.cursor() as cursor:
        cursor.execute("SELECT last_state_change FROM asterisk.vicidial_live_agents WHERE user = %s", (user,))
        (changed,) = cursor.fetchone()
    return changed.replace(tzinfo=ZoneInfo("Asia/Tokyo")).astimezone(timezone.utc)


def wait_for_floor(settings, poller: Poller, done, what: str, timeout_s: float = 60):
    deadline = time.monotonic() + timeout_s
    while True:
        agents, snapshots = published(settings, AgentStateChange), published(settings, DialerState)
        if done(agents, snapshots):
            return agents, snapshots
        if poller.proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(
                f"{what} never arrived ({len(agents)} agent events, {len(snapshots)} snapshots):\n"
                f"{poller.log.read_text()[-3000:]}"
            )
        time.sleep(0.3)


def states(agents: list[AgentStateChange]) -> dict[str, list[str]]:
    by_agent: dict[str, list[str]] = {}
    for event in sorted(agents, key=lambda event: event.event_time):
        by_agent.setdefault(event.agent, []).append(event.state)
    return by_agent


@pytest.mark.timeout(240)
def test_floor_agents_calls_waiting_and_dial_level(pipeline, mariadb):
    admin, settings = mariadb["admin"], pipeline.settings
    floor_sql(
        admin,
        "USE asterisk",
        "INSERT INTO vicidial_users (user, pass, full_name, user_group) VALUES "
        "('1001', 'x', 'Aiko', 'TOKYO-A'), ('1002', 'x', 'Ben', 'TOKYO-A'), ('1003', 'x', 'Chie', 'OSAKA'), "
        "('1004', 'x', 'Dai', 'OSAKA')",
        "INSERT INTO vicidial_campaigns (campaign_id, campaign_name, active, auto_dial_level, dial_method) VALUES "
        "('HOMEINS', 'Home insurance', 'Y', '2.5', 'ADAPT_TAPERED'), ('BBAND', 'Broadband', 'Y', '1.0', 'RATIO'), "
        "('OLDCAMP', 'Closed', 'N', '3.0', 'RATIO')",
        "INSERT INTO vicidial_campaign_stats (campaign_id, dialable_leads) VALUES ('HOMEINS', 1200)",
        # 1005 has no vicidial_users row: no team.
        "INSERT INTO vicidial_live_agents (user, server_ip, status, lead_id, campaign_id, last_state_change, "
        "calls_today) VALUES "
        "('1001', '10.0.0.5', 'READY', 0, 'HOMEINS', NOW() - INTERVAL 40 SECOND, 12), "
        "('1002', '10.0.0.5', 'INCALL', 55, 'HOMEINS', NOW() - INTERVAL 90 SECOND, 9), "
        "('1003', '10.0.0.5', 'PAUSED', 56, 'HOMEINS', NOW() - INTERVAL 20 SECOND, 7), "
        "('1004', '10.0.0.5', 'PAUSED', 0, 'BBAND', NOW() - INTERVAL 600 SECOND, 3), "
        "('1005', '10.0.0.5', 'QUEUE', 57, 'BBAND', NOW() - INTERVAL 2 SECOND, 5)",
        # HOMEINS: two answered calls waiting (12 s and 4 s), three ringing, one with an agent
        # (XFER); an inbound call waiting in an in-group of the same name is not the campaign's.
        "INSERT INTO vicidial_auto_calls (server_ip, campaign_id, status, lead_id, phone_code, phone_number, "
        "call_time, call_type) VALUES "
        "('10.0.0.5', 'HOMEINS', 'LIVE', 60, '81', '09012345678', NOW() - INTERVAL 12 SECOND, 'OUT'), "
        "('10.0.0.5', 'HOMEINS', 'LIVE', 61, '81', '09012345679', NOW() - INTERVAL 4 SECOND, 'OUT'), "
        "('10.0.0.5', 'HOMEINS', 'RINGING', 62, '81', '09012345670', NOW() - INTERVAL 3 SECOND, 'OUT'), "
        "('10.0.0.5', 'HOMEINS', 'SENT', 63, '81', '09012345671', NOW(), 'OUT'), "
        "('10.0.0.5', 'HOMEINS', 'RINGING', 64, '81', '09012345672', NOW(), 'OUTBALANCE'), "
        "('10.0.0.5', 'HOMEINS', 'XFER', 65, '81', '09012345673', NOW() - INTERVAL 30 SECOND, 'OUT'), "
        "('10.0.0.5', 'HOMEINS', 'LIVE', 66, '81', '09012345674', NOW() - INTERVAL 50 SECOND, 'IN'), "
        "('10.0.0.5', 'BBAND', 'SENT', 67, '81', '09012345675', NOW(), 'OUT')",
    )
    log = pipeline.data_dir / "floor-poller.log"
    pipeline.data_dir.mkdir(parents=True, exist_ok=True)
    poller = Poller(pipeline, mariadb["dsn"], log, "--floor-seconds", "0.3", "--worker-health-url", "none")
    try:
        agents, snapshots = wait_for_floor(
            settings,
            poller,
            lambda agents, snapshots: (
                len(agents) >= 5 and len({s.campaign for s in snapshots}) >= 2 and len(snapshots) >= 6
            ),
            "the first floor",
        )
        assert states(agents) == {
            "1001": ["available"],
            "1002": ["on_call"],
            "1003": ["wrap_up"],
            "1004": ["paused"],
            "1005": ["on_call"],
        }
        by_agent = {event.agent: event for event in agents}
        assert {agent: (event.campaign, event.team) for agent, event in by_agent.items()} == {
            "1001": ("HOMEINS", "TOKYO-A"),
            "1002": ("HOMEINS", "TOKYO-A"),
            "1003": ("HOMEINS", "OSAKA"),
            "1004": ("BBAND", "OSAKA"),
            "1005": ("BBAND", None),
        }
        # Each state starts when the dialer says it did (its local time, read in pipeline.timezone).
        for agent in ("1001", "1002", "1004"):
            assert by_agent[agent].event_time == state_changed_at(admin, agent)

        assert {snapshot.campaign for snapshot in snapshots} == {"HOMEINS", "BBAND"}, (
            "no snapshot of an idle, inactive campaign"
        )
        homeins = max((s for s in snapshots if s.campaign == "HOMEINS"), key=lambda s: s.event_time)
        assert (homeins.dial_level, homeins.calls_ringing, homeins.calls_waiting, homeins.dialable_leads) == (
            2.5,
            3,
            2,
            1200,
        )
        assert 12 <= homeins.longest_wait_seconds < 25
        bband = max((s for s in snapshots if s.campaign == "BBAND"), key=lambda s: s.event_time)
        assert (
            bband.dial_level,
            bband.calls_ringing,
            bband.calls_waiting,
            bband.longest_wait_seconds,
            bband.dialable_leads,
        ) == (1.0, 1, 0, 0.0, None)
        assert len({s.event_id for s in snapshots}) == len(snapshots), "a snapshot per poll, each its own event"

        # The call ends: 1002 goes to dispo; 1001 logs out; the last waiting call is answered.
        floor_sql(
            admin,
            "USE asterisk",
            "UPDATE vicidial_live_agents SET status = 'PAUSED', last_state_change = NOW() WHERE user = '1002'",
            "DELETE FROM vicidial_live_agents WHERE user = '1001'",
            "UPDATE vicidial_auto_calls SET status = 'XFER' WHERE campaign_id = 'HOMEINS' AND status = 'LIVE' "
            "AND call_type = 'OUT'",
        )
        dispo_started = state_changed_at(admin, "1002")
        agents, snapshots = wait_for_floor(
            settings, poller, lambda agents, snapshots: len(agents) >= 7, "the agents' changes"
        )
        # Dispo done: the status stays PAUSED, only the lead goes, and last_state_change does not move.
        floor_sql(admin, "UPDATE asterisk.vicidial_live_agents SET lead_id = 0 WHERE user = '1002'")
        agents, snapshots = wait_for_floor(
            settings, poller, lambda agents, snapshots: len(agents) >= 8, "the end of the dispo"
        )
        time.sleep(1.0)  # more polls: an agent that did not change sends nothing
        agents, snapshots = published(settings, AgentStateChange), published(settings, DialerState)

        # 1004 moves from BBAND to HOMEINS: logged out of BBAND, whose partition's worker then stops
        # counting it there, a moment before its first state in HOMEINS.
        floor_sql(
            admin,
            "UPDATE asterisk.vicidial_live_agents SET campaign_id = 'HOMEINS', status = 'READY', "
            "last_state_change = NOW() WHERE user = '1004'",
        )
        moved_at, before_move = state_changed_at(admin, "1004"), len(agents)
        moved, _ = wait_for_floor(settings, poller, lambda found, _: len(found) >= before_move + 2, "the move")
    finally:
        assert poller.stop() == 0
        floor_sql(
            admin,
            "USE asterisk",
            *(
                f"DELETE FROM {table}"
                for table in (
                    "vicidial_live_agents",
                    "vicidial_auto_calls",
                    "vicidial_campaigns",
                    "vicidial_campaign_stats",
                    "vicidial_users",
                )
            ),
        )

    assert states(agents) == {
        "1001": ["available", "logged_out"],
        "1002": ["on_call", "wrap_up", "paused"],
        "1003": ["wrap_up"],
        "1004": ["paused"],
        "1005": ["on_call"],
    }
    timeline = {event.event_id: event for event in agents}
    wrap_up = next(e for e in timeline.values() if e.agent == "1002" and e.state == "wrap_up")
    paused = next(e for e in timeline.values() if e.agent == "1002" and e.state == "paused")
    assert wrap_up.event_time == dispo_started
    assert paused.event_time > wrap_up.event_time, "a dispo ending without a status change is timed by the poll"
    latest = max((s for s in snapshots if s.campaign == "HOMEINS"), key=lambda s: s.event_time)
    assert (latest.calls_waiting, latest.longest_wait_seconds) == (0, 0.0)
    records = b"".join(read_topic(settings, settings.topics.call_events))
    assert b"0901234" not in records, "vicidial_auto_calls.phone_number is never read"
    assert not list(read_topic(settings, settings.topics.dead_letters))
    move = sorted((event for event in moved if event.agent == "1004"), key=lambda event: event.event_time)
    assert [(event.campaign, event.state) for event in move[-3:]] == [
        ("BBAND", "paused"),
        ("BBAND", "logged_out"),
        ("HOMEINS", "available"),
    ]
    assert move[-1].event_time == moved_at
    assert move[-1].event_time - move[-2].event_time == SWITCH_GAP
