"""The warehouse owner's query endpoint: ClickHouse's HTTP interface on loopback, for the dashboard.

Only one process may open a chDB path, and in embedded mode that is the worker. The dashboard
runs in a process of its own and reaches the warehouse through this endpoint, served by the
worker, with the same clickhouse-connect client it uses against a ClickHouse server: its
warehouse URL is ``http://callpulse:<secret>@127.0.0.1:<port>``. The dashboard's Python work
(Dash, logins, JSON) then never shares the worker's interpreter; what runs here is chDB's SQL,
which releases the GIL, and a little request handling.

What the endpoint speaks, as far as clickhouse-connect's HTTP client needs it: the query in the
body or the ``query`` URL parameter, its ``FORMAT`` answered as chDB writes it (the client asks
for ``Native``), ``param_<name>`` bind parameters, settings as URL parameters, ``database``, an
INSERT's data in the body (after the statement's line, or with the statement in the URL), a
plain or chunked body, ``/ping``; errors as ClickHouse sends them (status 500, the code in
``X-ClickHouse-Exception-Code``, the message in the body).

The dashboard cannot queue unbounded work on the worker (EndpointLimits): a few queries at once,
each on one thread of chDB's, with a time limit, a memory limit and a result-size limit that the
caller cannot override; a request that finds no free slot within a short wait is refused (503,
TOO_MANY_SIMULTANEOUS_QUERIES) rather than queued; bodies and connections are bounded too.
Every request but /ping needs the per-run secret (HTTP basic auth's password, or
``X-ClickHouse-Key``), and only loopback addresses are served.
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import os
import queue
import re
import socket
import tempfile
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlparse

if TYPE_CHECKING:
    from chdb.state.sqlitelike import Connection

log = logging.getLogger(__name__)

#: Environment variables through which `callpulse up` hands the endpoint's secret to the worker
#: (never on a command line, which any local user can read).
SECRET_ENV = "CALLPULSE_WAREHOUSE_SECRET"
USER = "callpulse"

# URL parameters that are the HTTP transport's own, not engine settings.
_TRANSPORT_PARAMS = frozenset(
    {
        "query",
        "database",
        "query_id",
        "session_id",
        "session_timeout",
        "session_check",
        "quota_key",
        "compress",
        "decompress",
        "wait_end_of_query",
        "client_protocol_version",
        "role",
        "buffer_size",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "enable_http_compression",
        "default_format",
        "user",
        "password",
        "max_result_bytes",
        "max_result_rows",
    }
)
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_DATABASE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
_INSERT_WITH_DATA = re.compile(
    r"^\s*INSERT\s+INTO\s+(?P<target>.+?)\s+FORMAT\s+(?P<format>\w+)\s*$", re.IGNORECASE | re.DOTALL
)
_ERROR_CODE = re.compile(r"Code:\s*(\d+)")

AUTHENTICATION_FAILED = 516
TOO_MANY_SIMULTANEOUS_QUERIES = 202
TOO_MANY_ROWS_OR_BYTES = 396
BAD_ARGUMENTS = 36
UNKNOWN_EXCEPTION = 1002


@dataclass(frozen=True)
class EndpointLimits:
    """What one caller may ask of the worker's warehouse. Settings the engine enforces go with
    every query, and a caller's own values for them are ignored."""

    concurrent_queries: int = 2  # chDB handles; a request past them waits for one ...
    slot_wait_seconds: float = 2.0  # ... this long, then is refused
    query_seconds: float = 30.0  # max_execution_time
    threads_per_query: int = 1  # max_threads: the worker's counting keeps a core
    memory_bytes: int = 384 * 1024 * 1024  # max_memory_usage, per query
    result_bytes: int = 64 * 1024 * 1024  # max_result_bytes, and checked on the answer
    body_bytes: int = 64 * 1024 * 1024  # a request's body (an insert's data)
    connections: int = 32  # open HTTP connections; more are closed at once

    def engine_settings(self) -> dict[str, str]:
        return {
            "max_execution_time": str(self.query_seconds),
            "max_threads": str(self.threads_per_query),
            "max_memory_usage": str(self.memory_bytes),
            "max_result_bytes": str(self.result_bytes),
            "result_overflow_mode": "throw",
        }


class EndpointError(Exception):
    """A refusal sent back the way ClickHouse sends one."""

    def __init__(self, status: int, code: int, message: str):
        super().__init__(message)
        self.status, self.code = status, code


@dataclass(eq=False)  # found in the list of handles by identity
class _Handle:
    """One chDB connection to the worker's engine, with the session state applied on it."""

    connection: Connection
    settings: dict[str, str]
    database: str | None = None


class QueryEndpoint:
    """Serves the chDB at ``path`` (which this process has opened) on ``host``:``port``, from a
    thread of its own, until close(). ``port`` 0 takes a free one (see ``address``)."""

    def __init__(
        self,
        path: str | Path,
        secret: str,
        host: str = "127.0.0.1",
        port: int = 0,
        limits: EndpointLimits = EndpointLimits(),
    ):
        import chdb

        if not secret:
            raise ValueError("the query endpoint needs a secret")
        if host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError(f"the query endpoint serves loopback only, not {host!r}")
        self.secret = secret
        self.limits = limits
        self.path = os.path.realpath(path)
        self._handles: queue.Queue[_Handle] = queue.Queue()
        self._opened: list[_Handle] = []
        for _ in range(limits.concurrent_queries):
            handle = _Handle(chdb.connect(self.path), {})
            self._opened.append(handle)
            self._handles.put(handle)
        self._scratch = Path(tempfile.mkdtemp(prefix="callpulse-endpoint-"))
        self._server = _Server((host, port), _RequestHandler, self)
        self._thread = threading.Thread(target=self._server.serve_forever, name="warehouse-endpoint", daemon=True)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        assert isinstance(host, str), "an AF_INET server's address is a str"
        return host, port

    @property
    def url(self) -> str:
        """The warehouse URL a client of this endpoint connects with."""
        host, port = self.address
        return f"http://{USER}:{self.secret}@{host}:{port}"

    def start(self) -> QueryEndpoint:
        self._thread.start()
        log.info("warehouse endpoint on http://%s:%d", *self.address)
        return self

    def close(self, wait_seconds: float = 10.0) -> None:
        """Stop taking requests, let those in flight finish (a bounded wait), close the handles."""
        self._server.shutdown()
        self._server.server_close()
        closable = []
        for _ in self._opened:
            try:
                closable.append(self._handles.get(timeout=wait_seconds))
            except queue.Empty:
                break  # a query still running: its handle goes with the process
        for handle in closable:
            try:
                handle.connection.close()
            except Exception:  # noqa: BLE001 - closing at exit, nothing to do about it
                log.debug("closing a chDB handle failed", exc_info=True)
        for leftover in self._scratch.glob("*"):
            leftover.unlink(missing_ok=True)
        self._scratch.rmdir()

    # -- one request ----------------------------------------------------------------------

    def authorised(self, headers) -> bool:
        offered = headers.get("X-ClickHouse-Key")
        basic = headers.get("Authorization", "")
        if basic.startswith("Basic "):
            try:
                offered = base64.b64decode(basic[6:], validate=True).decode().partition(":")[2]
            except (ValueError, UnicodeDecodeError):
                return False
        return offered is not None and hmac.compare_digest(offered.encode(), self.secret.encode())

    def answer(self, params: dict[str, str], body: bytes) -> tuple[bytes, dict[str, str]]:
        """Run what the request asks; the response body and headers, or an EndpointError."""
        statement, data = _statement_and_data(params.get("query"), body)
        bind = {name[6:]: value for name, value in params.items() if name.startswith("param_")}
        settings = {
            name: value
            for name, value in params.items()
            if name not in _TRANSPORT_PARAMS and not name.startswith("param_")
        }
        for name in settings:
            if not _SETTING_NAME.match(name):
                raise EndpointError(400, BAD_ARGUMENTS, f"Code: {BAD_ARGUMENTS}. Invalid setting name {name!r}")
        settings.update(self.limits.engine_settings())
        database = params.get("database") or None
        if database is not None and not _DATABASE_NAME.match(database):
            raise EndpointError(400, BAD_ARGUMENTS, f"Code: {BAD_ARGUMENTS}. Invalid database name {database!r}")
        try:
            handle = self._handles.get(timeout=self.limits.slot_wait_seconds)
        except queue.Empty:
            raise EndpointError(
                503,
                TOO_MANY_SIMULTANEOUS_QUERIES,
                f"Code: {TOO_MANY_SIMULTANEOUS_QUERIES}. Too many simultaneous queries: "
                f"{self.limits.concurrent_queries} run and none finished within "
                f"{self.limits.slot_wait_seconds:g} s",
            ) from None
        try:
            self._prepare(handle, settings, database)
            return self._run(handle, statement, data, bind)
        except EndpointError:
            # chDB keeps what a failed query had written (a TabSeparatedWithNames header) and
            # hands it out with the next answer on that handle: a failed handle is replaced.
            handle = self._renewed(handle)
            raise
        finally:
            self._handles.put(handle)

    def _renewed(self, handle: _Handle) -> _Handle:
        import chdb

        fresh = _Handle(chdb.connect(self.path), {})
        self._opened[self._opened.index(handle)] = fresh
        try:
            handle.connection.close()
        except Exception:  # noqa: BLE001 - the old handle goes either way
            log.debug("closing a failed chDB handle failed", exc_info=True)
        return fresh

    def _prepare(self, handle: _Handle, settings: dict[str, str], database: str | None) -> None:
        """The session state this request wants on ``handle``: only what differs from the last is SET."""
        for name in [name for name in handle.settings if name not in settings]:
            _query(handle, f"SET {name} = DEFAULT")
            del handle.settings[name]
        for name, value in settings.items():
            if handle.settings.get(name) != value:
                _query(handle, f"SET {name} = {_quoted(value)}")
                handle.settings[name] = value
        if database is not None and database != handle.database:
            _query(handle, f"USE {database}")
            handle.database = database

    def _run(
        self, handle: _Handle, statement: str, data: bytes | None, bind: dict[str, str]
    ) -> tuple[bytes, dict[str, str]]:
        headers: dict[str, str] = {}
        if data is not None:
            insert = _INSERT_WITH_DATA.match(statement)
            if insert is None:
                statement, data = f"{statement}\n{data.decode('utf-8', 'replace')}", None
            else:
                scratch = self._scratch / f"insert-{threading.get_ident()}-{os.urandom(4).hex()}"
                scratch.write_bytes(data)
                try:
                    result = _query(
                        handle,
                        f"INSERT INTO {insert['target']} FROM INFILE {_quoted(str(scratch))} FORMAT {insert['format']}",
                    )
                finally:
                    scratch.unlink(missing_ok=True)
                headers["X-ClickHouse-Summary"] = json.dumps(_summary(result, written=True))
                return b"", headers
        asked = _TRAILING_FORMAT.search(statement)
        if asked is not None:
            result = _query(handle, statement, asked.group(1), bind)
            answer = result.bytes() or b""
            headers["X-ClickHouse-Format"] = asked.group(1)
        else:
            # As a server: a statement that makes a result set answers TabSeparated and says so;
            # one that makes none answers nothing. Asked with names, the first kind always
            # writes at least the names' line.
            result = _query(handle, statement, "TabSeparatedWithNames", bind)
            answer = result.bytes() or b""
            if answer:
                answer = answer[answer.find(b"\n") + 1 :]
                headers["X-ClickHouse-Format"] = "TabSeparated"
        if len(answer) > self.limits.result_bytes:
            raise EndpointError(
                500,
                TOO_MANY_ROWS_OR_BYTES,
                f"Code: {TOO_MANY_ROWS_OR_BYTES}. The result is {len(answer):,} bytes, more "
                f"than the endpoint's {self.limits.result_bytes:,}",
            )
        headers["X-ClickHouse-Summary"] = json.dumps(_summary(result, written=False))
        return answer, headers


def _statement_and_data(query_param: str | None, body: bytes) -> tuple[str, bytes | None]:
    """The SQL, and an INSERT's data if the request carries some: with the statement in the URL
    the body is the data; otherwise the body is the statement, and an ``INSERT ... FORMAT x``
    line may be followed by its data."""
    if query_param is not None:
        return query_param, (body or None)
    line_end = body.find(b"\n")
    if line_end >= 0 and _INSERT_WITH_DATA.match(body[:line_end].decode("utf-8", "replace")):
        return body[:line_end].decode(), body[line_end + 1 :]
    try:
        return body.decode("utf-8"), None
    except UnicodeDecodeError:
        raise EndpointError(400, BAD_ARGUMENTS, f"Code: {BAD_ARGUMENTS}. The query is not UTF-8") from None


def _query(handle: _Handle, sql: str, output_format: str = "TabSeparated", bind: dict[str, str] | None = None):
    try:
        return handle.connection.query(sql, output_format, params=bind or {})
    except Exception as exc:  # chDB raises RuntimeError with the server's message
        message = str(exc)
        found = _ERROR_CODE.search(message)
        start = message.find("Code: ")
        raise EndpointError(
            500, int(found.group(1)) if found else UNKNOWN_EXCEPTION, message[start:] if start > 0 else message
        ) from None


def _quoted(value: str) -> str:
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _summary(result, written: bool) -> dict[str, str]:
    try:
        rows, size = str(result.rows_read()), str(result.bytes_read())
    except Exception:  # noqa: BLE001 - a summary is a courtesy
        return {}
    return {"written_rows": rows, "written_bytes": size} if written else {"read_rows": rows, "read_bytes": size}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 16

    def __init__(self, address: tuple[str, int], handler, endpoint: QueryEndpoint):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.endpoint = endpoint
        self._connections = threading.BoundedSemaphore(endpoint.limits.connections)
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:
        if not self._connections.acquire(blocking=False):
            log.warning("warehouse endpoint: %d connections open, one more closed", self.endpoint.limits.connections)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._connections.release()


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the client's pool reuses its connections
    timeout = 120  # an idle connection's thread ends after this
    server: _Server

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        log.debug("warehouse endpoint: " + format, *args)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._handle()

    def do_POST(self) -> None:  # noqa: N802
        self._handle()

    def _handle(self) -> None:
        endpoint = self.server.endpoint
        url = urlparse(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        try:
            body = self._body(endpoint.limits.body_bytes)
            if url.path == "/ping" or (url.path == "/" and "query" not in params and not body):
                self._send(200, b"Ok.\n", {"Content-Type": "text/plain; charset=UTF-8"})
                return
            if not endpoint.authorised(self.headers):
                raise EndpointError(
                    401,
                    AUTHENTICATION_FAILED,
                    f"Code: {AUTHENTICATION_FAILED}. {USER}: Authentication failed: password is incorrect",
                )
            encoding = self.headers.get("Content-Encoding", "identity")
            if encoding not in ("", "identity"):
                raise EndpointError(
                    400,
                    BAD_ARGUMENTS,
                    f"Code: {BAD_ARGUMENTS}. Content-Encoding {encoding!r} is not served here: "
                    "connect without compression",
                )
            answer, headers = endpoint.answer(params, body)
            self._send(200, answer, {"Content-Type": "application/octet-stream", **headers})
        except EndpointError as refused:
            if refused.code in (AUTHENTICATION_FAILED, TOO_MANY_SIMULTANEOUS_QUERIES):
                log.warning(
                    "warehouse endpoint refused a request from %s: %s", self.client_address[0], str(refused)[:200]
                )
            self._send(
                refused.status,
                (str(refused) + "\n").encode(),
                {"Content-Type": "text/plain; charset=UTF-8", "X-ClickHouse-Exception-Code": str(refused.code)},
            )

    def _body(self, limit: int) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._chunked_body(limit)
        length = int(self.headers.get("Content-Length") or 0)
        if length > limit:
            self.close_connection = True
            raise EndpointError(
                413,
                BAD_ARGUMENTS,
                f"Code: {BAD_ARGUMENTS}. The body is {length:,} bytes, more than the endpoint's {limit:,}",
            )
        return self.rfile.read(length) if length > 0 else b""

    def _chunked_body(self, limit: int) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline(1024).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            total += size
            if total > limit:
                self.close_connection = True
                raise EndpointError(
                    413, BAD_ARGUMENTS, f"Code: {BAD_ARGUMENTS}. The body is more than the endpoint's {limit:,} bytes"
                )
            parts.append(self.rfile.read(size))
            self.rfile.readline(1024)  # the CRLF after the chunk

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
