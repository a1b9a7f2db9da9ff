"""A query that fails leaves nothing behind on its client: the next answer is exactly the next
query's, its settings are back as they were, for the worker's own chDB client and for the
dashboard's client of the worker's warehouse endpoint (real chDB, real HTTP).

chDB keeps what a query had written before it failed and hands it out with the next answer on
the same handle, so these failures are ones that fail half way through their output."""

from __future__ import annotations

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from warehouse.client import connect
from warehouse.endpoint import EndpointLimits, QueryEndpoint

# Fails after chDB has written its first blocks (about 65,000 rows).
FAILS_HALF_WAY = "SELECT throwIf(number = 500000, 'failed half way') AS x FROM numbers(1000000)"


@pytest.fixture
def owner(tmp_path):
    client = connect(f"chdb://{tmp_path / 'warehouse'}")
    client.command("CREATE TABLE calls (campaign String, dials UInt32) ENGINE = MergeTree ORDER BY campaign")
    client.insert("calls", [["north", 3], ["south", 4]], column_names=["campaign", "dials"])
    yield client, str(tmp_path / "warehouse")
    client.close()


def test_the_worker_s_client_answers_exactly_after_a_query_failed_half_way(owner, caplog):
    client, _ = owner
    handle = client._backend._handle.conn
    for fail in (
        lambda: client.query(FAILS_HALF_WAY),
        lambda: client.query_df(FAILS_HALF_WAY),
        lambda: client.command(FAILS_HALF_WAY),
        lambda: client.query(FAILS_HALF_WAY, settings={"max_threads": 1}),
    ):
        with pytest.raises(DatabaseError, match="failed half way"):
            fail()
        assert client.query("SELECT campaign, dials FROM calls ORDER BY campaign").result_rows == [
            ("north", 3),
            ("south", 4),
        ]
    with pytest.raises(DatabaseError, match="failed half way"):
        client.query(FAILS_HALF_WAY)
    assert client.command("SELECT sum(dials) FROM calls") == 7
    with pytest.raises(DatabaseError, match="failed half way"):
        client.query(FAILS_HALF_WAY)
    assert client.query_df("SELECT campaign FROM calls ORDER BY campaign")["campaign"].tolist() == ["north", "south"]
    # The leftover was drained on the same chDB handle, not by opening another.
    assert client._backend._handle.conn is handle
    assert "replacing it" not in caplog.text


def test_a_failed_query_s_settings_do_not_outlive_it(owner):
    client, _ = owner
    before = client.command("SELECT getSetting('max_execution_time')")
    with pytest.raises(DatabaseError, match="failed half way"):
        client.command(FAILS_HALF_WAY, settings={"max_execution_time": 7})
    with pytest.raises(DatabaseError, match="TOO_MANY_ROWS"):
        client.query("SELECT number FROM numbers(100000)", settings={"max_result_rows": 10})
    assert client.command("SELECT getSetting('max_execution_time')") == before
    assert len(client.query("SELECT number FROM numbers(100000)").result_rows) == 100000  # no row limit left


def test_the_endpoint_answers_exactly_after_a_query_failed_half_way(owner):
    client, path = owner
    # One chDB handle, so the query after the failure runs where the failure did.
    limits = EndpointLimits(concurrent_queries=1, query_seconds=1)
    endpoint = QueryEndpoint(path, "a-secret-of-this-run-0123456789", limits=limits)
    endpoint.start()
    try:
        remote = connect(endpoint.url)
        for _ in range(2):
            with pytest.raises(DatabaseError, match="failed half way"):
                remote.query(FAILS_HALF_WAY)
            assert remote.query("SELECT campaign, dials FROM calls ORDER BY campaign").result_rows == [
                ("north", 3),
                ("south", 4),
            ]
            with pytest.raises(DatabaseError, match="failed half way"):
                remote.command(FAILS_HALF_WAY)
            assert remote.command("SELECT sum(dials) FROM calls") == 7
            with pytest.raises(DatabaseError, match="TIMEOUT_EXCEEDED"):
                remote.query("SELECT sum(cityHash64(number)) FROM numbers(100000000000)", settings={"max_threads": 4})
            assert remote.query("SELECT getSetting('max_threads') AS threads").result_rows == [(1,)]
        assert client.command("SELECT sum(dials) FROM calls") == 7  # the owner's own client is untouched
        remote.close()
    finally:
        endpoint.close()
