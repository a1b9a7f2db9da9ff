"""A real embedded warehouse for tests: opened, migrated, and closed after.

chDB allows one path per process at a time, so every test that opens one must close it
before the next test opens another."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from clickhouse_connect.driver.client import Client

from core.config import Settings
from core.handoff import LandingBatch
from core.schema import CallAttempt
from core.slots import SlotRules
from streams.buckets import MinuteBuckets
from warehouse.client import connect
from warehouse.landing import Lander
from warehouse.migrate import migrate


@contextmanager
def migrated_warehouse(path: Path | str) -> Iterator[Client]:
    client = connect(f"chdb://{path}")
    try:
        migrate(client)
        yield client
    finally:
        client.close()


def land_counted(
    client: Client, events: Iterable[CallAttempt], settings: Settings, slot_rules: SlotRules
) -> MinuteBuckets:
    """Count ``events`` into minute buckets as the worker does and land them in one batch."""
    events = list(events)
    buckets = MinuteBuckets(settings, slot_rules)
    for event in events:
        buckets.add(event)
    Lander(client, settings).land(LandingBatch(buckets.take_counted(), buckets.take_dirty()))
    return buckets
