"""The worker's query endpoint: a dashboard in another process reads and writes the embedded
warehouse with clickhouse-connect's HTTP client, exactly as the owner's client sees it, and
cannot queue unbounded work on the worker (real chDB, real HTTP)."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import httpx
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from warehouse.client import WarehouseUnavailable, connect
from warehouse.endpoint import EndpointLimits, QueryEndpoint

SECRET = "a-secret-of-this-run-0123456789"


@pytest.fixture
def owner(tmp_path):
    client = connect(f"chdb://{tmp_path / 'warehouse'}")
    client.command(
        "CREATE TABLE calls (campaign LowCardinality(String), at DateTime64(3, 'UTC'), talk Float64, "
        "outcome String) ENGINE = MergeTree ORDER BY (campaign, at)"
    )
    client.insert(
        "calls",
        [
            ["north", datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc), 61.5, "answered"],
            ["north", datetime(2026, 3, 1, 9, 1, tzinfo=timezone.utc), 0.0, "no_answer"],
            ["south", datetime(2026, 3, 1, 9, 2, tzinfo=timezone.utc), 12.25, "answered"],
        ],
        column_names=["campaign", "at", "talk", "outcome"],
    )
    yield client, str(tmp_path / "warehouse")
    client.close()


DEFAULT_LIMITS = EndpointLimits()


def serve(path: str, limits: EndpointLimits = DEFAULT_LIMITS) -> QueryEndpoint:
    return QueryEndpoint(path, SECRET, limits=limits).start()


def test_a_client_of_the_endpoint_sees_what_the_owner_sees_and_writes_what_it_reads(owner):
    client, path = owner
    endpoint = serve(path)
    try:
        remote = connect(endpoint.url)
        sql = (
            "SELECT campaign, count() AS dials, sum(talk) AS talk, min(at) AS first FROM calls "
            "WHERE outcome = {outcome:String} GROUP BY campaign ORDER BY campaign"
        )
        mine = client.query(sql, parameters={"outcome": "answered"}).result_rows
        assert (
            remote.query(sql, parameters={"outcome": "answered"}).result_rows
            == mine
            == [("north", 1, 61.5, datetime(2026, 3, 1, 9, 0)), ("south", 1, 12.25, datetime(2026, 3, 1, 9, 2))]
        )
        frame = remote.query_df(
            "SELECT campaign AS c, talk FROM calls ORDER BY at", settings={"prefer_column_name_to_alias": 1}
        )
        assert frame.to_dict("list") == {"c": ["north", "north", "south"], "talk": [61.5, 0.0, 12.25]}
        assert remote.command("SELECT count() FROM calls WHERE campaign = %(c)s", parameters={"c": "north"}) == 2
        # A write from the dashboard's side (an alert's acknowledgement is one) lands in the owner's warehouse.
        remote.insert(
            "calls",
            [["east", datetime(2026, 3, 1, 10, 0, tzinfo=timezone.utc), 5.0, "answered"]],
            column_names=["campaign", "at", "talk", "outcome"],
        )
        remote.command("CREATE TABLE IF NOT EXISTS acks (id String) ENGINE = MergeTree ORDER BY id")
        assert client.query("SELECT campaign, talk FROM calls WHERE campaign = 'east'").result_rows == [("east", 5.0)]
        assert client.command("EXISTS TABLE acks") == 1
        remote.close()
    finally:
        endpoint.close()


def test_only_the_runs_secret_opens_it(owner):
    _, path = owner
    endpoint = serve(path)
    try:
        with pytest.raises(WarehouseUnavailable, match="516"):
            connect(endpoint.url.replace(SECRET, "a-guess"))
        host, port = endpoint.address
        anonymous = httpx.post(f"http://{host}:{port}/", content=b"SELECT campaign FROM calls")
        assert anonymous.status_code == 401 and "north" not in anonymous.text
        assert anonymous.headers["X-ClickHouse-Exception-Code"] == "516"
        assert httpx.get(f"http://{host}:{port}/ping").text == "Ok.\n"  # as ClickHouse: health needs no login
        with pytest.raises(ValueError, match="loopback"):
            QueryEndpoint(path, SECRET, host="0.0.0.0")
    finally:
        endpoint.close()


def test_a_query_has_a_time_limit_and_a_result_limit_the_caller_cannot_lift(owner):
    _, path = owner
    endpoint = serve(path, EndpointLimits(query_seconds=1, result_bytes=1_000_000))
    try:
        remote = connect(endpoint.url)
        started = time.monotonic()
        with pytest.raises(DatabaseError, match="TIMEOUT_EXCEEDED"):
            remote.query(
                "SELECT sum(cityHash64(number)) FROM numbers(100000000000)", settings={"max_execution_time": 600}
            )
        assert time.monotonic() - started < 10
        with pytest.raises(DatabaseError, match="TOO_MANY_ROWS_OR_BYTES"):
            remote.query("SELECT toString(number) FROM numbers(10000000)", settings={"max_result_bytes": 0})
        assert remote.command("SELECT count() FROM calls") == 3  # the endpoint still answers
    finally:
        endpoint.close()


def test_a_request_past_the_concurrency_cap_is_refused_not_queued(owner):
    _, path = owner
    endpoint = serve(path, EndpointLimits(concurrent_queries=1, slot_wait_seconds=0.2, query_seconds=3))
    host, port = endpoint.address
    auth = ("callpulse", SECRET)
    try:
        slow = threading.Thread(
            target=httpx.post,
            args=(f"http://{host}:{port}/",),
            kwargs={
                "content": b"SELECT sum(cityHash64(number)) FROM numbers(100000000000)",
                "auth": auth,
                "timeout": 30,
            },
        )
        slow.start()
        time.sleep(0.5)
        refused = httpx.post(f"http://{host}:{port}/", content=b"SELECT 1", auth=auth, timeout=30)
        assert refused.status_code == 503
        assert refused.headers["X-ClickHouse-Exception-Code"] == "202"
        slow.join(30)
        answered = httpx.post(f"http://{host}:{port}/", content=b"SELECT 1", auth=auth, timeout=30)
        assert (answered.status_code, answered.text) == (200, "1\n")
    finally:
        endpoint.close()


def test_a_body_past_the_limit_is_refused(owner):
    _, path = owner
    endpoint = serve(path, EndpointLimits(body_bytes=1000))
    host, port = endpoint.address
    try:
        response = httpx.post(
            f"http://{host}:{port}/?query=INSERT%20INTO%20calls%20FORMAT%20TSV",
            content=b"x" * 5000,
            auth=("callpulse", SECRET),
        )
        assert response.status_code == 413
    finally:
        endpoint.close()


def test_one_client_answers_queries_from_several_threads_at_once(owner):
    """The dashboard's server threads share one client: a callback's query while another's is
    still running is answered, not refused as a second query in the same session."""
    _, path = owner
    endpoint = serve(path, EndpointLimits(concurrent_queries=2, query_seconds=3))
    try:
        shared = connect(endpoint.url)
        slow_result: list = []
        slow = threading.Thread(
            target=lambda: slow_result.append(shared.command("SELECT count() FROM calls WHERE sleepEachRow(0.4) = 0"))
        )
        slow.start()
        time.sleep(0.3)  # the slow query (3 rows x 0.4 s) is running
        assert slow.is_alive()
        assert shared.command("SELECT count() FROM calls WHERE campaign = 'north'") == 2
        slow.join(10)
        assert slow_result == [3]
        shared.close()
    finally:
        endpoint.close()
