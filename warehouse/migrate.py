"""Versioned schema: apply warehouse/migrations/NNNN_name.sql in order, once each."""

from __future__ import annotations

import logging
import re
from importlib import resources

from clickhouse_connect.driver.client import Client

log = logging.getLogger(__name__)

_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


def available_migrations() -> list[tuple[int, str, str]]:
    folder = resources.files("warehouse") / "migrations"
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), match.group(2), entry.read_text()))
    return sorted(found)


def applied_versions(client: Client) -> set[int]:
    client.command(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version UInt32, name String, applied_at DateTime('UTC') DEFAULT now()) "
        "ENGINE = ReplacingMergeTree ORDER BY version"
    )
    return {row[0] for row in client.query("SELECT version FROM schema_migrations FINAL").result_rows}


def migrate(client: Client) -> list[str]:
    """Apply pending migrations; return the names applied."""
    done = applied_versions(client)
    applied = []
    for version, name, sql in available_migrations():
        if version in done:
            continue
        for statement in (part.strip() for part in sql.split(";")):
            if statement and not all(line.startswith("--") for line in statement.splitlines()):
                client.command(statement)
        client.insert("schema_migrations", [[version, name]], column_names=["version", "name"])
        log.info("applied migration %04d_%s", version, name)
        applied.append(f"{version:04d}_{name}")
    return applied


def apply_retention(client: Client, raw_attempts_days: int) -> bool:
    """Keep raw attempts ``raw_attempts_days`` days after their minute (a TTL); True if it changed.

    The TTL comes from the configuration rather than a migration so each site sets its
    own. Minute buckets carry no personal or per-call data and are kept: every report
    reads them, so deleting raw attempts loses no figure.
    """
    if raw_attempts_days <= 0:
        raise ValueError("pipeline.raw_attempts_retention_days must be a positive number of days")
    wanted = f"TTL minute + toIntervalDay({int(raw_attempts_days)})"
    current = client.command(
        "SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = 'call_attempts'"
    )
    found = re.search(r"TTL minute \+ toIntervalDay\((\d+)\)", str(current))
    if found and int(found.group(1)) == int(raw_attempts_days):
        return False
    # Altering the TTL rewrites it into every existing part: only when it changed.
    client.command(f"ALTER TABLE call_attempts MODIFY {wanted}")
    log.info("raw call attempts are now kept %d days", raw_attempts_days)
    return True
