"""One way to reach the warehouse: clickhouse-connect, embedded (chdb://) or server (http://)."""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client

log = logging.getLogger(__name__)


class WarehouseUnavailable(RuntimeError):
    pass


def connect(url: str) -> Client:
    """Open the warehouse at ``url``: ``chdb:///abs/path`` or ``http(s)://user:pass@host:port/db``.

    Only one process may open a chDB path at a time; a second one fails here with
    an explanation rather than chDB's bare 'Error initializing EmbeddedServer'.
    """
    parsed = urlparse(url)
    if parsed.scheme == "chdb":
        Path(parsed.path).mkdir(parents=True, exist_ok=True)
        try:
            return clickhouse_connect.get_client(dsn=url)
        except Exception as exc:
            if "EmbeddedServer" in str(exc):
                raise WarehouseUnavailable(
                    f"the embedded warehouse at {parsed.path} is open in another process "
                    "(chDB allows one process per path). Stop `callpulse up`/`callpulse worker`, "
                    "or point CLICKHOUSE_URL at a ClickHouse server."
                ) from exc
            raise
    if parsed.scheme in ("http", "https"):
        try:
            return clickhouse_connect.get_client(dsn=url)
        except Exception as exc:
            raise WarehouseUnavailable(f"cannot reach ClickHouse at {parsed.hostname}:{parsed.port}: {exc}") from exc
    raise WarehouseUnavailable(f"unsupported warehouse URL {url!r}: use chdb:///path or http(s)://host:8123")
