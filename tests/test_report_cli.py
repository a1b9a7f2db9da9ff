"""`callpulse report` by hour: every file format a person opens reads the hour as the table
and the Reports page do ("09:00"), JSON keeps the number (the real CLI on a real chDB)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from openpyxl import load_workbook
from warehouse_helpers import land_counted, migrated_warehouse

from core.config import load_settings
from core.slots import SlotRules
from producers.simulator import DialerSimulator

PROJECT_ROOT = Path(__file__).resolve().parent.parent
START = datetime(2026, 11, 20, 0, 30, tzinfo=timezone.utc)  # 09:30 in Tokyo, a Friday
DAY = "2026-11-20"


def test_report_by_hour_reads_the_same_in_every_format(tmp_path):
    config = tmp_path / "callpulse.toml"
    config.write_text(f'[pipeline]\ndata_dir = "{tmp_path / "var"}"\n')
    settings = load_settings(config)
    rules = SlotRules(settings.slots, settings.zone)
    events = list(DialerSimulator(rules, b"k" * 32, seed=3, start=START).events(sim_seconds=2 * 3600))
    with migrated_warehouse(settings.data_dir / "warehouse") as client:
        land_counted(client, events, settings, rules)
    hours = sorted({event.event_time.astimezone(settings.zone).hour for event in events})
    assert hours[0] == 9 and len(hours) >= 2

    def report(output_format: str, *extra: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "callpulse", "--config", str(config), "report", "--by", "hour"]
            + ["--metrics", "dials", "--from", DAY, "--to", DAY, "--format", output_format, *extra],
            capture_output=True,
            text=True,
            cwd=PROJECT_ROOT,
            timeout=120,
            env={"PATH": "/usr/bin:/bin", "CALLPULSE_HMAC_KEY": "test-key", "COLUMNS": "200"},
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    readable = [f"{hour:02d}:00" for hour in hours]
    rows = list(csv.DictReader(io.StringIO(report("csv"))))
    assert [row["hour"] for row in rows] == readable
    assert sum(int(row["dials"]) for row in rows) == len(events)
    assert [row["hour"] for row in json.loads(report("json"))] == hours
    table = report("table")
    assert all(hour in table for hour in readable)
    workbook = tmp_path / "report.xlsx"
    report("xlsx", "--output", str(workbook))
    sheet = load_workbook(workbook).active
    assert [cell.value for cell in sheet["A"]] == ["hour", *readable]
