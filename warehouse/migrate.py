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
