"""One way to reach the warehouse: clickhouse-connect, embedded (chdb://) or server (http://)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client

log = logging.getLogger(__name__)


class WarehouseUnavailable(RuntimeError):
    pass


_opened_here: set[str] = set()  # chDB paths this process has opened


def connect(url: str) -> Client:
    """Open the warehouse at ``url``: ``chdb:///abs/path`` or ``http(s)://user:pass@host:port/db``.

    Only one process may open a chDB path at a time; a second one fails here with
    an explanation rather than chDB's bare 'Error initializing EmbeddedServer'.
    """
    parsed = urlparse(url)
    if parsed.scheme == "chdb":
        Path(parsed.path).mkdir(parents=True, exist_ok=True)
        # This process's own engine holds the lock too; a second client here is fine.
        if parsed.path not in _opened_here and chdb_path_in_use(Path(parsed.path)):
            raise WarehouseUnavailable(_in_use_message(parsed.path))
        try:
            client = clickhouse_connect.get_client(dsn=url)
            _opened_here.add(parsed.path)
            _discard_failed_output(client)
            return client
        except Exception as exc:
            if "EmbeddedServer" in str(exc):
                raise WarehouseUnavailable(_in_use_message(parsed.path)) from exc
            raise
    if parsed.scheme in ("http", "https"):
        # On this machine (a ClickHouse server here, or the worker's query endpoint, which takes
        # no compression) compressing costs CPU and saves nothing.
        loopback = parsed.hostname in ("127.0.0.1", "::1", "localhost")
        # Passed only on loopback: elsewhere a compression named in the URL still applies.
        options: dict[str, Any] = {"compress": False} if loopback else {}
        # No session unless the URL names one: the dashboard shares one client among its server's
        # threads, and clickhouse-connect refuses a second query in a session that is still
        # answering one (a page's callbacks failed with 500s when two of them overlapped).
        # Nothing here keeps state in a session (no SET, no temporary tables).
        if "session_id" not in parsed.query:
            options["autogenerate_session_id"] = False
        try:
            return clickhouse_connect.get_client(dsn=url, **options)
        except Exception as exc:
            raise WarehouseUnavailable(f"cannot reach ClickHouse at {parsed.hostname}:{parsed.port}: {exc}") from exc
    raise WarehouseUnavailable(f"unsupported warehouse URL {url!r}: use chdb:///path or http(s)://host:8123")


# What a drain query answers once a failed query's leftover output is gone.
_DRAINED = b"drained\n"


def _discard_failed_output(client: Client) -> None:
    """Keep a failed query's output out of the next answer on ``client``'s chDB handle.

    chDB keeps what a query had written before it failed (the blocks of a SELECT that failed
    half way, say at a time or memory limit) and hands it out in front of the next answer on
    the same handle: a ``SELECT 1`` after such a failure answered the failed query's rows, then
    its 1. So after any failed statement, throwaway queries take the leftover in the same hold
    of the client's lock, before anyone else may use the handle, until one answers clean (the
    second at the latest); if none does, the handle is replaced by a fresh one on the engine.

    This reaches into clickhouse-connect's chDB backend (``_query_locked``, pinned version)
    because the lock that must cover the drain is the backend's own. Streamed reads
    (``query_*_stream``), which nothing here uses, are not covered."""
    backend = getattr(client, "_backend", None)
    run_locked = getattr(backend, "_query_locked", None)
    if backend is None or run_locked is None:
        return

    def query_locked(sql, fmt, params=None):
        try:
            return run_locked(sql, fmt, params)
        except Exception:
            _drain(backend)
            raise

    backend._query_locked = query_locked


def _drain(backend: Any) -> None:
    handle = backend._handle
    try:
        # The first answer carries the leftover, if there was one; the second is clean.
        for _ in range(2):
            if handle.conn.query("SELECT 'drained'", "TabSeparated").bytes() == _DRAINED:
                return
    except Exception:  # noqa: BLE001 - a handle that cannot answer this is replaced below
        log.debug("draining a chDB handle after a failed query failed", exc_info=True)
    import chdb

    log.warning("a chDB handle still held a failed query's output; replacing it")
    stale, handle.conn = handle.conn, chdb.connect(backend.connection_string)
    handle.active_database = None  # the fresh handle has had no USE
    try:
        stale.close()
    except Exception:  # noqa: BLE001 - the stale handle goes either way
        log.debug("closing a stale chDB handle failed", exc_info=True)


def command_int(client: Client, query: str, parameters: dict[str, Any] | None = None) -> int:
    """The one number a query answers (a count, a version), NULL or empty as 0.

    ``client.command`` is typed with every shape a command can answer; a query of one value
    answers an int, or a str from some transports."""
    value = client.command(query, parameters=parameters)
    if not isinstance(value, int | str):
        raise TypeError(f"expected one value from {query[:60]!r}, got {type(value).__name__}")
    return int(value or 0)


def _in_use_message(path: str) -> str:
    return (
        f"the embedded warehouse at {path} is open in another process "
        "(chDB allows one process per path). Stop `callpulse up`/`callpulse worker`, "
        "or point CLICKHOUSE_URL at a ClickHouse server."
    )


def chdb_path_in_use(path: Path) -> bool:
    """Whether another process holds the chDB at ``path``: its engine keeps an exclusive
    lock on the ``status`` file. Probing first spares the user chDB's own stderr noise.
    chDB creates that file lazily, so a False here is not a promise: connect() still
    turns chDB's own refusal into the same message."""
    import fcntl

    status = path / "status"
    if not status.exists():
        return False
    with status.open("rb") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False
