"""The hourly rollup (migration 0008, warehouse/rollup.py) on a real chDB: every read gives the
same answer with and without it, and whatever happened to the minute buckets since a build
(a late re-landed bucket, an open hour, a TRUNCATE) or to the rollup itself (emptied, a crashed
or duplicated build, two readers at once)."""

from __future__ import annotations

import random
import threading
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from warehouse_helpers import migrated_warehouse

from core.metrics import COUNTERS
from warehouse import queries, rollup

UTC = timezone.utc
NOW = datetime(2026, 11, 23, 12, 0, 30, 250_000, tzinfo=UTC)  # hours before it are closed by the wall clock
CAMPAIGNS = ("winback", "charity", "solar")
SEGMENTS = ("seniors", "students")
INTEGER_COUNTERS = (
    "dials",
    "contacts",
    "connected",
    "abandoned",
    "orders",
    "abandoned_ftc",
    "live_answers_unjudged",
    "machines",
)
BUCKET_COLUMNS = ["campaign", "slot", "segment", "minute", *COUNTERS, "version", "landed_at"]
ROLLUP_TABLES = (
    "minute_metrics",
    "minute_metrics_changes",
    "hour_metrics",
    "campaign_hour_metrics",
    "hour_metrics_builds",
)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with migrated_warehouse(tmp_path_factory.mktemp("rollup")) as client:
        yield client


@pytest.fixture(autouse=True)
def small_data_too(monkeypatch):
    """These few thousand buckets go through the rollup too (a read skips it below a million)."""
    monkeypatch.setattr(rollup, "MIN_MINUTE_ROWS", 0)


@pytest.fixture
def empty(client):
    for table in ROLLUP_TABLES:
        client.command(f"TRUNCATE TABLE {table}")
    return client


def slot_of(minute: datetime) -> str:
    hour = minute.astimezone(ZoneInfo("Asia/Tokyo")).hour
    return "morning" if 9 <= hour < 12 else "midday" if 12 <= hour < 16 else "off_hours"


def counters(rng: random.Random) -> list:
    dials = rng.randint(1, 30)
    contacts = rng.randint(0, dials)
    connected = rng.randint(0, contacts)
    values = [
        dials,
        contacts,
        connected,
        contacts - connected,
        rng.randint(0, connected),
        round(rng.uniform(0, 9), 3),
        round(rng.uniform(0, 600), 1),
    ]
    # The regulators' counters follow from those without drawing (the same random stream as before
    # they existed): some connected calls waited too long, some came without a wait, some machines.
    unjudged = connected % 3
    return values + [contacts - connected + (connected - unjudged) // 4, unjudged, (dials - contacts) // 2]


class Buckets:
    """What was landed, newest version per bucket: the expected sums come from here."""

    def __init__(self, client):
        self.client = client
        self.state: dict[tuple, tuple[int, list]] = {}

    def land(self, rows: list[tuple[str, str, datetime, list, int]]) -> None:
        at = datetime.now(UTC)
        self.client.insert(
            "minute_metrics",
            [[c, slot_of(m), s, m, *values, version, at] for c, s, m, values, version in rows],
            column_names=BUCKET_COLUMNS,
        )
        for campaign, segment, minute, values, version in rows:
            key = (campaign, slot_of(minute), segment, minute)
            if key not in self.state or self.state[key][0] <= version:
                self.state[key] = (version, values)

    def total(self, name: str, start: datetime, end: datetime, campaign: str | None = None, **match) -> float:
        position = COUNTERS.index(name)
        return sum(
            values[position]
            for (c, slot, segment, minute), (_, values) in self.state.items()
            if start <= minute < end
            and (campaign is None or c == campaign)
            and all({"slot": slot, "segment": segment}[k] == v for k, v in match.items())
        )


def spread(buckets: Buckets, rng: random.Random, first: datetime, last: datetime, count: int) -> None:
    """``count`` buckets per campaign and segment at random minutes in [first, last), some
    re-landed once or twice with a higher version and new counters."""
    span = int((last - first).total_seconds() // 60)
    rows = []
    for campaign in CAMPAIGNS:
        for segment in SEGMENTS:
            for offset in rng.sample(range(span), count):
                rows.append((campaign, segment, first + timedelta(minutes=offset), counters(rng), 1))
    buckets.land(rows)
    for version in (2, 3):
        buckets.land([(c, s, m, counters(rng), version) for c, s, m, _, _ in rng.sample(rows, len(rows) // 5)])


@pytest.fixture
def month(empty):
    """About 35 days of buckets up to 90 minutes after NOW, in the three campaigns."""
    buckets = Buckets(empty)
    spread(
        buckets,
        random.Random(23),
        (NOW - timedelta(days=35)).replace(second=0, microsecond=0),
        NOW + timedelta(minutes=90),
        700,
    )
    return buckets


def refresh(client) -> int:
    """Build every closed hour now (a deployment's reads build them once they have settled)."""
    return rollup.refresh_rollup(client, settle=timedelta(0))


TOKYO_DAYS = (datetime(2026, 10, 24, 15, tzinfo=UTC), datetime(2026, 11, 23, 15, tzinfo=UTC))  # 30 local days
KOLKATA_DAYS = (datetime(2026, 10, 24, 18, 30, tzinfo=UTC), datetime(2026, 11, 23, 18, 30, tzinfo=UTC))


def reads(client) -> dict:
    """Every read the rollup serves, with awkward bounds: seconds, microseconds, half hours."""
    start, end = TOKYO_DAYS
    nows = {
        "winback": NOW,
        "charity": NOW - timedelta(hours=5, minutes=17, seconds=45),
        "solar": NOW + timedelta(minutes=40, seconds=1),
        "nobody": NOW,
    }
    return {
        "segment x slot x campaign, 30 Tokyo days": queries.metrics_by(
            client, ["segment", "slot", "campaign"], start, end, tz="Asia/Tokyo"
        ),
        "campaign x day, Tokyo": queries.metrics_by(client, ["campaign", "day"], start, end, tz="Asia/Tokyo"),
        "hour_start, Tokyo": queries.metrics_by(client, ["hour_start"], start, end, tz="Asia/Tokyo"),
        "campaign x hour, Kolkata days": queries.metrics_by(
            client, ["campaign", "hour"], *KOLKATA_DAYS, tz="Asia/Kolkata"
        ),
        "segment x weekday, Kolkata days": queries.metrics_by(
            client, ["segment", "weekday"], *KOLKATA_DAYS, tz="Asia/Kolkata"
        ),
        "campaign, Kolkata days": queries.metrics_by(client, ["campaign"], *KOLKATA_DAYS, tz="Asia/Kolkata"),
        "totals, odd bounds": queries.metrics_by(
            client, [], NOW - timedelta(days=20, minutes=7, seconds=59, microseconds=5), NOW
        ),
        "two campaigns": queries.metrics_by(
            client, ["campaign", "segment"], start, end, campaigns=["winback", "solar"]
        ),
        "minute series (never from hours)": queries.minute_series(client, NOW - timedelta(hours=3), NOW),
        "tiles": queries.campaign_tiles(client, NOW, datetime(2026, 11, 22, 15, tzinfo=UTC)),
        "tiles, two campaigns": queries.campaign_tiles(
            client, NOW, datetime(2026, 11, 22, 15, tzinfo=UTC), ["solar", "winback"]
        ),
        "the wallboard's busiest two": pd.DataFrame(
            dict(
                zip(
                    ("campaign", "of"),
                    queries.busiest_campaigns(client, NOW, datetime(2026, 11, 22, 15, tzinfo=UTC), 2),
                )
            )
        ),
        "compliance": queries.compliance_windows(client, NOW),
        "compliance, one campaign, on the hour": queries.compliance_windows(
            client, NOW.replace(minute=0, second=0), "charity"
        ),
        "compliance at each campaign's time": queries.compliance_windows_at(client, nows),
        "baselines": queries.campaign_baselines(
            client, [*CAMPAIGNS, "nobody"], "morning", NOW - timedelta(days=28, seconds=30), NOW - timedelta(hours=3)
        ),
    }


def assert_same(before: dict, after: dict) -> None:
    assert before.keys() == after.keys()
    for name in before:
        a, b = before[name], after[name]
        if isinstance(a, pd.DataFrame):
            assert list(a.columns) == list(b.columns), name
            assert len(a) == len(b) > 0, name
            for column in a.columns:
                if column in INTEGER_COUNTERS or a[column].dtype.kind in "iuOM":
                    assert a[column].tolist() == b[column].tolist(), (name, column)  # exactly
                else:
                    pd.testing.assert_series_equal(a[column], b[column], check_exact=False, rtol=1e-9, obj=name)
        else:
            assert a.keys() == b.keys(), name
            for key in a:
                for part, value in a[key].items():
                    assert b[key][part] == pytest.approx(value, rel=1e-9), (name, key, part)
                    if isinstance(value, int):
                        assert b[key][part] == value, (name, key, part)


def current_hours(client, start=NOW - timedelta(days=40), end=NOW + timedelta(days=1)) -> dict:
    return rollup.current_builds(client, start.replace(tzinfo=None), end.replace(tzinfo=None), build=False)


def test_every_read_gives_the_same_answer_from_the_rollup(month):
    client = month.client
    before = reads(client)
    assert not current_hours(client)  # nothing settled yet: all of it came from the minute buckets
    built = refresh(client)
    assert built > 30 * 24
    assert client.command("SELECT count() FROM hour_metrics") > 0
    assert len(current_hours(client)) == built
    after = reads(client)
    assert_same(before, after)

    # And the answers are the landed buckets' (newest versions), summed by hand.
    start, end = TOKYO_DAYS
    by_campaign = queries.metrics_by(client, ["campaign"], start, end, tz="Asia/Tokyo").set_index("campaign")
    for campaign in CAMPAIGNS:
        for name in INTEGER_COUNTERS:
            assert by_campaign.loc[campaign, name] == month.total(name, start, end, campaign)
        assert by_campaign.loc[campaign, "cost"] == pytest.approx(month.total("cost", start, end, campaign))
    frame = after["compliance"].set_index("campaign")
    first_30d = (NOW - timedelta(days=30)).replace(microsecond=0)
    for campaign in CAMPAIGNS:
        upto = NOW.replace(second=0, microsecond=0) + timedelta(minutes=1)
        assert frame.loc[campaign, "us_30d_abandoned"] == month.total(
            "abandoned", first_30d + timedelta(seconds=30), upto, campaign
        )
        assert frame.loc[campaign, "uk_24h_contacts"] == month.total(
            "contacts", NOW - timedelta(hours=24) + timedelta(seconds=29, microseconds=750_000), upto, campaign
        )
    baselines = after["baselines"]
    assert baselines["nobody"] == {"slot_dials": 0.0, "slot_contacts": 0.0, "cost": 0.0, "orders": 0.0}
    assert baselines["solar"]["slot_dials"] == month.total(  # a DateTime parameter drops the microseconds
        "dials",
        (NOW - timedelta(days=28, seconds=30)).replace(microsecond=0),
        NOW - timedelta(hours=3),
        "solar",
        slot="morning",
    )


def test_a_half_hour_zone_reads_its_local_hours_from_minutes_and_its_days_partly_from_hours(month):
    client = month.client
    refresh(client)
    start, end = KOLKATA_DAYS
    by_hour = queries.metrics_by(client, ["hour"], start, end, tz="Asia/Kolkata").set_index("hour")
    for hour in (0, 5, 18, 23):
        expected = sum(
            values[0]
            for (_, _, _, minute), (_, values) in month.state.items()
            if start <= minute < end and minute.astimezone(ZoneInfo("Asia/Kolkata")).hour == hour
        )
        assert by_hour.loc[hour, "dials"] == expected
    # Local midnight is 18:30 UTC: each day's first and last half hours come from the minute buckets.
    totals = queries.metrics_by(client, ["campaign"], start, end, tz="Asia/Kolkata").set_index("campaign")
    assert totals.loc["charity", "dials"] == month.total("dials", start, end, "charity")


def test_a_late_relanded_bucket_in_a_rolled_up_hour_counts_at_once(month):
    client = month.client
    refresh(client)
    (campaign, slot, segment, minute), (version, values) = next(
        (key, state)
        for key, state in sorted(month.state.items())
        if key[0] == "solar" and NOW - timedelta(days=10) < key[3] < NOW - timedelta(days=9)
    )
    hour = minute.replace(minute=0).replace(tzinfo=None)
    assert hour in current_hours(client)
    before = queries.metrics_by(client, ["campaign"], *TOKYO_DAYS, tz="Asia/Tokyo").set_index("campaign")

    month.land([(campaign, segment, minute, [v + 100 if i < 2 else v for i, v in enumerate(values)], version + 5)])
    assert hour not in current_hours(client)  # that hour now comes from the minute buckets
    after = queries.metrics_by(client, ["campaign"], *TOKYO_DAYS, tz="Asia/Tokyo").set_index("campaign")
    assert after.loc["solar", "dials"] == before.loc["solar", "dials"] + 100
    assert after.loc["solar", "contacts"] == before.loc["solar", "contacts"] + 100
    assert after.loc["solar", "dials"] == month.total("dials", *TOKYO_DAYS, "solar")
    assert after.loc["winback", "dials"] == before.loc["winback", "dials"]

    assert refresh(client) == 1  # only that hour is rebuilt
    assert hour in current_hours(client)
    rebuilt = queries.metrics_by(client, ["campaign"], *TOKYO_DAYS, tz="Asia/Tokyo").set_index("campaign")
    pd.testing.assert_frame_equal(rebuilt, after)


def test_a_range_with_the_open_hour_reads_it_from_the_minute_buckets(empty):
    buckets = Buckets(empty)
    now = datetime.now(UTC)
    spread(
        buckets,
        random.Random(3),
        (now - timedelta(hours=30)).replace(second=0, microsecond=0),
        now.replace(second=0, microsecond=0),
        400,
    )
    buckets.land([("winback", "seniors", now.replace(second=0, microsecond=0), [7, 7, 5, 2, 1, 1.5, 30.0, 3, 1, 0], 9)])
    start, end = now - timedelta(days=2), now + timedelta(days=1)
    before = queries.metrics_by(empty, ["campaign", "day"], start, end, tz="Asia/Tokyo")
    tiles_before = queries.campaign_tiles(empty, now, now - timedelta(hours=20))
    built = refresh(empty)
    open_hour = now.replace(minute=0, second=0, microsecond=0, tzinfo=None)
    assert built >= 28 and open_hour not in current_hours(empty, start, end)
    assert (open_hour - timedelta(hours=2)) in current_hours(empty, start, end)
    after = queries.metrics_by(empty, ["campaign", "day"], start, end, tz="Asia/Tokyo")
    pd.testing.assert_frame_equal(before, after, check_exact=False, rtol=1e-9)
    pd.testing.assert_frame_equal(
        tiles_before, queries.campaign_tiles(empty, now, now - timedelta(hours=20)), check_exact=False, rtol=1e-9
    )
    totals = after.groupby("campaign")["dials"].sum()
    assert totals["winback"] == buckets.total("dials", start, end, "winback")


def test_emptying_the_rollup_or_truncating_the_buckets_never_changes_an_answer(month):
    client = month.client
    before = reads(client)
    refresh(client)
    for table in ("hour_metrics", "campaign_hour_metrics"):
        client.command(f"TRUNCATE TABLE {table}")  # a cache: losing it loses nothing
        assert not current_hours(client)
        assert_same(before, reads(client))
        assert refresh(client) > 30 * 24
        assert_same(before, reads(client))

    client.command("TRUNCATE TABLE minute_metrics")  # the change log does not see this
    assert not current_hours(client)
    fresh = Buckets(client)
    fresh.land([("winback", "seniors", NOW - timedelta(days=3, minutes=10), [5, 4, 3, 1, 1, 2.0, 60.0, 1, 0, 1], 1)])
    totals = queries.metrics_by(client, ["campaign"], *TOKYO_DAYS, tz="Asia/Tokyo")
    assert totals[["campaign", "dials", "abandoned"]].values.tolist() == [["winback", 5, 1]]
    compliance = queries.compliance_windows(client, NOW)
    assert compliance[["campaign", "us_30d_abandoned", "uk_24h_abandoned"]].values.tolist() == [["winback", 1, 0]]


def test_crashed_duplicated_and_racing_builds_are_never_counted_twice(month):
    client = month.client
    before = reads(client)
    refresh(client)
    hours = sorted(current_hours(client))
    # A build that died after writing rows: a newer version, marked not done, with made-up rows.
    crashed = hours[len(hours) // 2]
    version = max(current_hours(client).values()) + 1
    client.insert(
        "hour_metrics_builds",
        [[crashed, version, 0, 0, "", 2 * version, datetime.now(UTC)]],
        column_names=["hour", "version", "done", "source_version", "fingerprint", "revision", "built_at"],
    )
    client.command(
        f"INSERT INTO hour_metrics (hour, campaign, slot, segment, {', '.join(COUNTERS)}, version, built_at) "
        f"SELECT hour, campaign, slot, segment, dials + 1000, {', '.join(COUNTERS[1:])}, {{v:UInt64}}, "
        "now64(3) FROM hour_metrics FINAL "
        "WHERE hour = {h:DateTime}",
        parameters={"v": version, "h": crashed},
    )
    assert crashed not in current_hours(client)
    assert_same(before, reads(client))
    # The current build's rows landed twice (a retried insert): FINAL reads them once.
    client.command(
        "INSERT INTO hour_metrics SELECT * FROM hour_metrics WHERE hour IN {h:Array(DateTime)}",
        parameters={"h": hours[:48]},
    )
    client.command(
        "INSERT INTO campaign_hour_metrics SELECT * FROM campaign_hour_metrics WHERE hour IN {h:Array(DateTime)}",
        parameters={"h": hours[:48]},
    )
    assert_same(before, reads(client))
    # Rebuilding what is current, twice over, from two threads while two others read.
    states = [s for s in rollup.hour_states(client) if s.current]
    answers, errors = [], []

    def read() -> None:
        try:
            answers.append(reads(client))
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=rollup._build, args=(client, states, None)) for _ in range(2)]
    threads += [threading.Thread(target=read) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for answer in answers:
        assert_same(before, answer)
    assert refresh(client) == 1  # the crashed hour
    assert_same(before, reads(client))


def test_readers_build_settled_hours_themselves(month, monkeypatch):
    client = month.client
    before = reads(client)
    assert not current_hours(client)
    monkeypatch.setattr(rollup, "ROLLUP_SETTLE", timedelta(0))  # as if the landing was 10 minutes ago
    first = reads(client)
    assert len(current_hours(client)) > 30 * 24 - rollup.LAZY_BUILD_HOURS
    assert_same(before, first)
    assert_same(before, reads(client))


def test_the_busiest_campaigns_rank_the_same_when_the_last_hour_is_rolled_up(empty):
    """The wallboard ranks by the last 15 minutes' dials. When those minutes start in a closed,
    rolled-up hour, that hour's day total comes from the rollup and its last minutes from the
    buckets: the buckets must still count in the 15 minutes though not (again) in the day."""
    buckets = Buckets(empty)
    minute = NOW.replace(second=0, microsecond=0)
    day_start = datetime(2026, 11, 22, 15, tzinfo=UTC)
    hours_before = [minute - timedelta(hours=h) for h in range(1, 8)]
    rows = []
    # winback dialled all morning and little lately; solar is the busy one now, in 11:50-11:59.
    rows += [
        ("winback", "seniors", hour - timedelta(minutes=30), [40, 10, 8, 2, 1, 1.0, 60.0, 2, 0, 5], 1)
        for hour in hours_before
    ]
    rows += [("winback", "seniors", minute - timedelta(minutes=12), [2, 1, 1, 0, 0, 0.1, 30.0, 0, 0, 0], 1)]
    rows += [
        ("solar", "seniors", minute - timedelta(minutes=m), [9, 3, 3, 0, 1, 0.5, 90.0, 0, 0, 1], 1)
        for m in range(2, 12)
    ]
    rows += [
        ("charity", "seniors", hour - timedelta(minutes=20), [5, 1, 1, 0, 0, 0.1, 10.0, 0, 0, 1], 1)
        for hour in hours_before
    ]
    buckets.land(rows)
    before = queries.busiest_campaigns(empty, NOW, day_start, 2)
    assert before == (["solar", "winback"], 3)  # 90 dials in the 15 minutes against 2
    assert refresh(empty) >= 7
    assert (minute - timedelta(hours=1)).replace(tzinfo=None) in current_hours(empty)
    assert queries.busiest_campaigns(empty, NOW, day_start, 2) == before
    assert queries.busiest_campaigns(empty, NOW, day_start, 3) == (["solar", "winback", "charity"], 3)
