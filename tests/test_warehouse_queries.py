"""Warehouse queries on a real chDB: compliance windows against a hand computation,
local-time rollups, corrected (not appended) buckets, and null for zero denominators."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest
from warehouse_helpers import migrated_warehouse

from core.config import load_settings
from core.handoff import BucketRow, DirtyBuckets, LandingBatch
from core.metrics import COUNTERS
from core.slots import SlotRules
from warehouse.client import connect
from warehouse.landing import Lander
from warehouse.queries.alerts import campaign_baseline, campaign_baselines
from warehouse.queries.live import compliance_windows, compliance_windows_at
from warehouse.queries.reports import metrics_by

SETTINGS = load_settings()
NOW = datetime(2026, 11, 23, 12, 0, 30, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with migrated_warehouse(tmp_path_factory.mktemp("warehouse")) as client:
        yield client


@pytest.fixture
def lander(client):
    for table in ("minute_metrics", "call_attempts", "consumed_offsets"):
        client.command(f"TRUNCATE TABLE {table}")
    return Lander(client, SETTINGS)


def bucket(
    campaign: str,
    minute: datetime,
    *,
    dials=0,
    contacts=0,
    abandoned=0,
    orders=0,
    cost=0.0,
    segment="seniors",
    version=1,
) -> BucketRow:
    counters = dict(
        dials=dials or contacts,
        contacts=contacts,
        connected=contacts - abandoned,
        abandoned=abandoned,
        orders=orders,
        cost=cost,
        talk_seconds=0.0,
        abandoned_ftc=abandoned,
        live_answers_unjudged=0,
        machines=0,
    )
    return BucketRow(
        campaign, "midday", segment, int(minute.timestamp()), tuple(counters[c] for c in COUNTERS), version
    )


def test_compliance_windows_match_a_hand_computation(client, lander):
    minute = lambda delta: (NOW - delta).replace(second=0)  # noqa: E731 - start of that minute
    lander.land_buckets(
        DirtyBuckets.of(
            [
                bucket("winback", minute(timedelta(minutes=5)), contacts=100, abandoned=5),
                bucket("winback", minute(timedelta(minutes=15)), contacts=50, abandoned=4),  # 11:45:00: outside 15 min
                bucket("winback", minute(timedelta(hours=10)), contacts=150, abandoned=3),
                bucket("winback", minute(timedelta(days=10)), contacts=700, abandoned=2),
                bucket("winback", minute(timedelta(days=40)), contacts=1000, abandoned=500),  # outside 30 days
                bucket("quiet", minute(timedelta(minutes=1)), dials=40),  # nobody answered
            ]
        )
    )
    frame = compliance_windows(client, NOW).set_index("campaign")

    winback = frame.loc["winback"]
    # By hand: 15 min = 5 / 100; 24 h = (5 + 4 + 3) / (100 + 50 + 150); 30 d adds 2 / 700.
    assert (winback["live_15m_abandoned"], winback["live_15m_contacts"]) == (5, 100)
    assert winback["live_15m_abandon_rate"] == pytest.approx(0.05)
    assert winback["uk_24h_abandon_rate"] == pytest.approx(12 / 300)
    assert winback["us_30d_abandon_rate"] == pytest.approx(14 / 1000)
    assert math.isnan(frame.loc["quiet", "uk_24h_abandon_rate"])  # no live answers: null, not 0


def test_many_campaigns_each_at_its_own_time_read_in_one_query_match_one_at_a_time(client, lander):
    """The worker's catch-up path (compliance_windows_at) must give what the per-campaign
    query gives, each campaign at its own event time, edges included."""
    minute = lambda delta: (NOW - delta).replace(second=0)  # noqa: E731
    lander.land_buckets(
        DirtyBuckets.of(
            [
                bucket("winback", minute(timedelta(minutes=5)), contacts=100, abandoned=5),
                bucket("winback", minute(timedelta(hours=23, minutes=59)), contacts=60, abandoned=6),
                bucket("winback", minute(timedelta(days=29)), contacts=700, abandoned=2),
                bucket("winback", minute(timedelta(minutes=-3)), contacts=500, abandoned=400),  # after winback's now
                bucket("charity", minute(timedelta(hours=2)), contacts=80, abandoned=8),
                bucket("charity", minute(timedelta(days=31)), contacts=900, abandoned=90),  # outside 30 days
                bucket("quiet", minute(timedelta(minutes=1)), dials=40),
            ]
        )
    )
    nows = {"winback": NOW, "charity": NOW + timedelta(hours=22, minutes=30), "quiet": NOW, "nothing-landed": NOW}
    together = compliance_windows_at(client, nows)
    assert "nothing-landed" not in together
    for campaign in ("winback", "charity", "quiet"):
        alone = compliance_windows(client, nows[campaign], campaign).iloc[0]
        for window in ("live_15m", "uk_24h", "us_30d"):
            for part in ("abandoned", "contacts"):
                assert together[campaign][f"{window}_{part}"] == alone[f"{window}_{part}"], (campaign, window)
    assert (together["winback"]["uk_24h_abandoned"], together["winback"]["uk_24h_contacts"]) == (11, 160)
    assert (together["charity"]["uk_24h_abandoned"], together["charity"]["us_30d_contacts"]) == (0, 80)


def test_baselines_of_many_campaigns_in_one_query_match_one_at_a_time(client, lander):
    minute = lambda delta: (NOW - delta).replace(second=0)  # noqa: E731
    lander.land_buckets(
        DirtyBuckets.of(
            [
                bucket("winback", minute(timedelta(days=1)), dials=200, contacts=50, orders=5, cost=40.0),
                bucket(
                    "winback", minute(timedelta(days=9)), dials=999, contacts=999, orders=9, cost=9.0
                ),  # before since
                bucket("charity", minute(timedelta(days=2)), dials=80, contacts=20, orders=0, cost=12.0),
            ]
        )
    )
    since, until = NOW - timedelta(days=7), NOW
    together = campaign_baselines(client, ["winback", "charity", "silent"], "midday", since, until)
    for campaign in ("winback", "charity", "silent"):
        assert together[campaign] == campaign_baseline(client, campaign, "midday", since, until)
    assert together["winback"] == {"slot_dials": 200.0, "slot_contacts": 50.0, "cost": 40.0, "orders": 5.0}
    assert together["silent"] == {"slot_dials": 0.0, "slot_contacts": 0.0, "cost": 0.0, "orders": 0.0}
    assert campaign_baselines(client, ["winback"], "morning", since, until)["winback"]["slot_dials"] == 0.0


def test_a_relanded_bucket_replaces_the_old_state(client, lander):
    minute = datetime(2026, 11, 23, 3, 0, tzinfo=timezone.utc)
    lander.land_buckets(DirtyBuckets.of([bucket("winback", minute, contacts=10, abandoned=1, version=1)]))
    lander.land_buckets(DirtyBuckets.of([bucket("winback", minute, contacts=12, abandoned=1, version=2)]))
    totals = metrics_by(client, [], minute, minute + timedelta(minutes=1))
    assert totals.loc[0, "contacts"] == 12
    assert totals.loc[0, "abandon_rate"] == pytest.approx(1 / 12)


def test_hours_and_days_roll_up_in_local_time(client, lander):
    # 14:59 and 15:00 UTC fall on different local days in Tokyo (23:59 and 00:00).
    lander.land_buckets(
        DirtyBuckets.of(
            [
                bucket("winback", datetime(2026, 11, 23, 14, 59, tzinfo=timezone.utc), contacts=10, abandoned=1),
                bucket("winback", datetime(2026, 11, 23, 15, 0, tzinfo=timezone.utc), contacts=30, orders=3, cost=60.0),
                bucket("winback", datetime(2026, 11, 23, 15, 30, tzinfo=timezone.utc), contacts=20, segment="students"),
            ]
        )
    )
    start, end = datetime(2026, 11, 23, tzinfo=timezone.utc), datetime(2026, 11, 24, tzinfo=timezone.utc)
    by_day = metrics_by(client, ["day"], start, end, tz="Asia/Tokyo")
    assert [str(day) for day in by_day["day"]] == ["2026-11-23", "2026-11-24"]
    assert by_day["contacts"].tolist() == [10, 50]
    by_hour = metrics_by(client, ["hour_start", "segment"], start, end, tz="Asia/Tokyo")
    assert by_hour[["hour_start", "segment", "contacts"]].values.tolist() == [
        ["2026-11-23 23:00", "seniors", 10],
        ["2026-11-24 00:00", "seniors", 30],
        ["2026-11-24 00:00", "students", 20],
    ]
    assert by_hour["cpo"].tolist()[1] == pytest.approx(20.0)
    assert math.isnan(by_hour["cpo"].tolist()[0])  # no orders: CPO is null


def test_an_unknown_dimension_is_a_clear_error(client):
    with pytest.raises(ValueError, match="choose from"):
        metrics_by(client, ["colour"], NOW, NOW)


def test_a_chdb_path_held_by_another_process_is_detected_before_opening(tmp_path):
    import subprocess
    import sys
    import time

    from warehouse.client import WarehouseUnavailable, chdb_path_in_use

    path = tmp_path / "held"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; from warehouse.client import connect; from warehouse.migrate import migrate; "
            f"c = connect('chdb://{path}'); migrate(c); "
            "c.command('CREATE TABLE probe (x UInt8) ENGINE = MergeTree ORDER BY x'); "
            "print('open', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        # chDB creates and locks its status file lazily (a CREATE TABLE does it), maybe in the background.
        deadline = time.monotonic() + 15
        while not chdb_path_in_use(path) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert chdb_path_in_use(path)
        with pytest.raises(WarehouseUnavailable, match="open in another process"):
            connect(f"chdb://{path}")
    finally:
        holder.kill()
        holder.wait()
    assert not chdb_path_in_use(path)


def test_landed_attempts_and_buckets_read_back_as_the_worker_counted_them(client, lander):
    """Landing writes columns (times as epoch integers, counts as integers): every field
    must read back as the event and the bucket held it, optional fields included."""
    from core.metrics import attempt_cost
    from core.schema import CallAttempt, Lead, Outcome
    from streams.buckets import MinuteBuckets

    events = [
        CallAttempt(
            schema_version=1,
            event_id="e1",
            campaign="winback",
            outcome=Outcome.CONNECTED,
            event_time=datetime(2026, 11, 23, 3, 4, 5, 678_901, tzinfo=timezone.utc),
            lead=Lead(segment="seniors", response_score=0.25, phone_hash="a" * 64, lead_id="L-9"),
            ring_seconds=7.5,
            talk_seconds=95.5,
            order=True,
            order_value=49.9,
            agent="ann",
            team="north",
        ),
        CallAttempt(
            schema_version=1,
            event_id="e2",
            campaign="winback",
            outcome=Outcome.ABANDONED,
            event_time=datetime(2026, 11, 23, 3, 4, 59, 999_999, tzinfo=timezone.utc),
            lead=Lead(segment="seniors"),
            ring_seconds=3.0,
            wait_seconds=4.0,
        ),
        CallAttempt(
            schema_version=1,
            event_id="e3",
            campaign="charity",
            outcome=Outcome.NO_ANSWER,
            event_time=datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc),
            lead=Lead(segment="students"),
            ring_seconds=25.0,
            cost=0.31,
        ),
    ]
    state = MinuteBuckets(SETTINGS, SlotRules(SETTINGS.slots, SETTINGS.zone))
    for event in events:
        state.add(event)
    dirty = state.take_dirty()
    lander.land(LandingBatch(state.take_counted(), dirty))

    landed = client.query(
        "SELECT event_id, campaign, toUnixTimestamp64Milli(event_time), toUnixTimestamp(minute), slot, segment, "
        "outcome, ring_seconds, wait_seconds, talk_seconds, is_order, order_value, cost, response_score, "
        "phone_hash, lead_id, agent, team FROM call_attempts ORDER BY event_id"
    ).result_rows
    slot_rules = SlotRules(SETTINGS.slots, SETTINGS.zone)
    expected = []
    for event in events:
        ms = int(event.event_time.timestamp() * 1000)
        minute = int(event.event_time.timestamp()) // 60 * 60
        expected.append(
            (
                event.event_id,
                event.campaign,
                ms,
                minute,
                slot_rules.slot_for_minute(minute),
                event.lead.segment,
                event.outcome.value,
                event.ring_seconds,
                event.wait_seconds,
                event.talk_seconds,
                int(event.order),
                event.order_value,
                pytest.approx(attempt_cost(event, SETTINGS.cost_model_for(event.campaign))),
                None if event.lead.response_score is None else pytest.approx(event.lead.response_score),
                event.lead.phone_hash or "",
                event.lead.lead_id or "",
                event.agent or "",
                event.team or "",
            )
        )
    assert landed == expected
    assert landed[1][2] == 1795403099999  # 03:04:59.999999 truncates to .999, in the same minute as e1
    assert landed[2][12] == pytest.approx(0.31)  # its own cost, not the model's

    buckets = client.query(
        f"SELECT campaign, slot, segment, toUnixTimestamp(minute), {', '.join(COUNTERS)}, version "
        "FROM minute_metrics FINAL ORDER BY campaign"
    ).result_rows
    assert sorted(buckets) == sorted(
        (row.campaign, row.slot, row.segment, row.minute, *row.counters, row.version) for row in dirty
    )
    winback = next(row for row in buckets if row[0] == "winback")
    # dials, contacts, connected, abandoned, orders: both calls in one minute bucket.
    assert winback[4:9] == (2, 2, 1, 1, 1)


def test_sparklines_give_each_campaign_the_minute_series_dials_and_abandon_rate_in_order(client, lander):
    """The wallboard's sparklines, cut and ordered in the warehouse, must agree with the general
    minute series: the newest version of a re-landed bucket, segments summed, [since, until)
    by whole minutes, gaps left out, a rate with no live answers as None."""
    from warehouse.queries.live import minute_series, sparklines

    at = datetime(2026, 11, 23, 10, 0, tzinfo=timezone.utc)
    lander.land_buckets(
        DirtyBuckets.of(
            [
                bucket("winback", at + timedelta(minutes=1), dials=30, contacts=20, abandoned=2, version=1),
                bucket("winback", at, contacts=10, abandoned=1, version=1),
                bucket("winback", at + timedelta(minutes=1), contacts=5, abandoned=5, segment="students", version=1),
                bucket("winback", at + timedelta(minutes=4), dials=7, version=1),  # after a gap
                bucket("charity", at + timedelta(minutes=2), dials=40, version=1),  # nobody answered
                bucket("charity", at + timedelta(minutes=5), contacts=9, abandoned=3, version=1),  # at until: outside
                bucket("charity", at - timedelta(minutes=1), contacts=9, abandoned=3, version=1),  # before since
            ]
        )
    )
    lander.land_buckets(DirtyBuckets.of([bucket("winback", at, contacts=12, abandoned=3, version=2)]))  # re-landed
    since, until = at, at + timedelta(minutes=5)
    lines = sparklines(client, since, until)
    assert lines == {
        "charity": {"minutes": ["2026-11-23T10:02:00"], "dials": [40], "abandon_rate": [None]},
        "winback": {
            "minutes": ["2026-11-23T10:00:00", "2026-11-23T10:01:00", "2026-11-23T10:04:00"],
            "dials": [12, 35, 7],
            "abandon_rate": [3 / 12, 7 / 25, None],
        },
    }
    full = minute_series(client, since, until)
    for campaign, line in lines.items():
        rows = full[full["campaign"] == campaign].sort_values("minute")
        assert line["minutes"] == [minute.isoformat() for minute in rows["minute"]]
        assert line["dials"] == rows["dials"].astype(int).tolist()
        assert line["abandon_rate"] == [None if math.isnan(rate) else rate for rate in rows["abandon_rate"]]
    # A range with nothing landed: no campaigns.
    assert sparklines(client, at - timedelta(days=3), at - timedelta(days=2)) == {}


def test_a_rate_in_sql_is_the_rate_ratio_gives(client):
    """rate_sql() hands rates out of the warehouse ready to show; they must be ratio()'s, None included."""
    from core.metrics import RATES, rate_sql, ratio

    for name, rate in RATES.items():
        for numerator, denominator in ((3, 12), (0, 5), (7, 0), (0, 0), (2.5, 4)):
            row = client.query(
                f"SELECT {rate_sql(name)} FROM (SELECT toFloat64({numerator}) AS {rate.numerator}, "
                f"toFloat64({denominator}) AS {rate.denominator})"
            ).result_rows[0]
            assert row[0] == ratio(numerator, denominator), (name, numerator, denominator)
