import time
from datetime import datetime, timedelta, timezone

import pytest

from core.config import load_settings
from core.schema import CallAttempt, Lead, Outcome
from core.slots import SlotRules
from streams.buckets import MinuteBuckets, Verdict, id_key

T0 = datetime(2026, 11, 23, 0, 0, 30, tzinfo=timezone.utc)  # 09:00:30 in Tokyo


def call(event_id: str, seconds: float, outcome=Outcome.CONNECTED, campaign="c1") -> CallAttempt:
    return CallAttempt(
        schema_version=1,
        event_id=event_id,
        campaign=campaign,
        outcome=outcome,
        event_time=T0 + timedelta(seconds=seconds),
        lead=Lead(segment="seniors"),
        talk_seconds=60,
    )


def buckets() -> MinuteBuckets:
    settings = load_settings()
    return MinuteBuckets(settings, SlotRules(settings.slots, settings.zone))


def test_same_event_id_counts_once():
    state = buckets()
    assert state.add(call("a", 0)) is Verdict.COUNTED
    assert state.add(call("a", 0)) is Verdict.DUPLICATE
    (row,) = state.take_dirty()
    assert (row.campaign, row.slot, row.segment) == ("c1", "morning", "seniors")
    assert row.counters[:3] == (1, 1, 1)


def test_an_event_id_re_sent_with_other_content_is_a_conflict_never_counted_again():
    """An id names one call: sent again with another segment (a corrected lead, say), or two
    minutes later with an order (the issue's `dup-1` at T and T+120 s), it is still that
    call, so it is refused as a conflict instead of being counted into another bucket."""
    state = buckets()
    assert state.add(call("a", 0)) is Verdict.COUNTED
    again = CallAttempt(
        schema_version=1,
        event_id="a",
        campaign="c1",
        outcome=Outcome.CONNECTED,
        event_time=T0 + timedelta(seconds=20),
        lead=Lead(segment="students"),
        talk_seconds=60,
    )
    assert state.add(again) is Verdict.CONFLICT
    later = CallAttempt(
        schema_version=1,
        event_id="a",
        campaign="c1",
        outcome=Outcome.CONNECTED,
        event_time=T0 + timedelta(seconds=120),
        lead=Lead(segment="seniors"),
        talk_seconds=60,
        order=True,
        order_value=500.0,
    )
    assert state.add(later) is Verdict.CONFLICT
    other_campaign = CallAttempt(
        schema_version=1,
        event_id="a",
        campaign="c2",
        outcome=Outcome.CONNECTED,
        event_time=T0,
        lead=Lead(segment="seniors"),
        talk_seconds=60,
    )
    assert state.add(other_campaign) is Verdict.CONFLICT
    assert state.add(call("a", 0)) is Verdict.DUPLICATE  # the same call again is still a duplicate
    assert [(row.campaign, row.segment, row.counters[0], row.counters[4]) for row in state.take_dirty()] == [
        ("c1", "seniors", 1, 0)
    ]


def test_an_evicted_minute_forgets_its_ids_with_it():
    state = buckets()
    state.add(call("old", 0))
    state.take_dirty()
    state.add(call("much-later", 3 * 3600))
    state.take_dirty()
    state.evict_closed()
    assert id_key("old") not in state.fingerprints and id_key("much-later") in state.fingerprints


def test_ids_are_remembered_for_the_lateness_window_and_the_minutes_kept_longer_for_alerts():
    """Past the lateness window a minute's ids are forgotten while its buckets stay for the alert
    windows: a replay of one of its calls is late, which the worker looks up in the warehouse."""
    state = buckets()
    assert state.keep_seconds > state.lateness + 120
    state.add(call("early", 0))
    state.add(call("recent", state.lateness + 30))
    state.take_dirty()
    state.add(call("now", state.lateness + 180))  # "early"'s minute is now past lateness, not past the hour
    state.take_dirty()
    state.evict_closed()
    assert id_key("early") not in state.fingerprints
    assert {id_key("recent"), id_key("now")} <= state.fingerprints.keys()
    assert len(state.minutes["c1"]) == 3 and state.kept_totals("c1")[0] == 3  # the alert windows still count it
    assert state.add(call("early", 0)) is Verdict.LATE
    assert state.add(call("recent", state.lateness + 30)) is Verdict.DUPLICATE
    assert state.held()["event_ids"] == 2


def test_out_of_order_within_lateness_updates_its_own_minute_and_older_is_late():
    state = buckets()
    state.add(call("new", 900))
    state.take_dirty()
    assert state.add(call("five-min-late", 600)) is Verdict.COUNTED
    (row,) = state.take_dirty()
    assert row.minute == int((T0 + timedelta(seconds=600)).timestamp()) // 60 * 60
    assert state.add(call("too-late", 200)) is Verdict.LATE
    # Lateness is per campaign: another campaign's clock does not make c2 late.
    assert state.add(call("other", 200, campaign="c2")) is Verdict.COUNTED


def test_restore_rebuilds_counters_and_ids_from_landed_rows():
    state = buckets()
    epoch = T0.timestamp()
    landed = [
        ("a", "c1", "seniors", epoch, "connected", 1, 1.5, 60.0, 0.5),
        ("a", "c1", "seniors", epoch, "connected", 1, 1.5, 60.0, 0.5),  # landed twice before a merge
        ("b", "c1", "seniors", epoch + 1, "abandoned", 0, 0.1, 0.0, 2.0),
    ]
    assert state.restore(landed) == 2
    (row,) = state.take_dirty()
    assert row.counters == (2, 2, 1, 1, 1, 1.6, 60.0, 1, 0, 0)  # the dropped call is abandoned for the FTC too
    same = CallAttempt(
        schema_version=1,
        event_id="a",
        campaign="c1",
        outcome=Outcome.CONNECTED,
        event_time=T0,
        lead=Lead(segment="seniors"),
        talk_seconds=60,
        order=True,
        order_value=100.0,
    )
    assert state.add(same) is Verdict.DUPLICATE
    assert state.add(call("a", 0)) is Verdict.CONFLICT  # landed with an order, re-sent without one


def test_closed_buckets_are_evicted_so_memory_stays_bounded():
    state = buckets()
    # Kept for the longest alert window (CPO, 60 min), which is longer than the lateness.
    assert state.keep_seconds == 3600
    state.add(call("old", 0))
    state.add(call("recent", 2 * 3600 - 1800))
    state.take_dirty()
    state.add(call("new", 2 * 3600))
    state.take_dirty()
    assert state.evict_closed() == 1
    assert sorted(key[3] - state.key_for("c1", "seniors", T0.timestamp())[3] for key in state.buckets) == [5400, 7200]
    # The live windows alert rules read are sums over what is kept.
    assert state.window_totals("c1", 0)["dials"] == 2


def test_window_totals_kept_per_minute_equal_the_sum_of_the_kept_buckets():
    """The running per-minute totals alert windows read must always be what summing the
    buckets gives, through new minutes, several segments and slots, and evictions."""
    import random

    from core.metrics import COUNTERS

    rng = random.Random(5)
    state = buckets()
    outcomes = list(Outcome)
    every_key = set()
    for number in range(6000):
        campaign = f"c{rng.randrange(4)}"
        seconds = number * 3 + rng.uniform(-120, 0)  # 5 hours, a little out of order
        segment = rng.choice(["seniors", "students", "salaried"])
        state.add(
            CallAttempt(
                schema_version=1,
                event_id=f"e{number}",
                campaign=campaign,
                outcome=rng.choice(outcomes),
                event_time=T0 + timedelta(seconds=seconds),
                lead=Lead(segment=segment),
                talk_seconds=rng.uniform(0, 300),
                cost=rng.uniform(0, 2),
            )
        )
        every_key.add(state.key_for(campaign, segment, T0.timestamp() + seconds))
        if number % 500 == 499:
            state.take_dirty()
            state.evict_closed()
            # Exactly the buckets within each campaign's horizon are kept.
            assert set(state.buckets) == {
                key for key in every_key if key[3] + 60 > state.watermarks[key[0]] - state.keep_seconds
            }
            for campaign in ("c0", "c1", "c2", "c3"):
                for back in (0, 15, 60, 600):
                    first = int(T0.timestamp() + seconds) // 60 * 60 - back * 60
                    summed = [
                        sum(counters[i] for k, counters in state.buckets.items() if k[0] == campaign and k[3] >= first)
                        for i in range(len(COUNTERS))
                    ]
                    kept = state.window_totals(campaign, first)
                    # Floats are added in another order, so equal to within rounding.
                    assert [kept[name] for name in COUNTERS] == pytest.approx(summed, abs=1e-6), (campaign, back)
                    # The running sums alert readings use, kept per window length as it moves.
                    assert state.window_sums(campaign, back, first) == pytest.approx(summed, abs=1e-6), (campaign, back)
                every = [
                    sum(counters[i] for k, counters in state.buckets.items() if k[0] == campaign)
                    for i in range(len(COUNTERS))
                ]
                assert state.kept_totals(campaign) == pytest.approx(every, abs=1e-6), campaign
    assert state.minutes and len(state.buckets) < 6000  # evictions happened, totals followed


def call_at(event_id: str, moment: datetime, campaign="c1") -> CallAttempt:
    return CallAttempt(
        schema_version=1,
        event_id=event_id,
        campaign=campaign,
        outcome=Outcome.CONNECTED,
        event_time=moment,
        lead=Lead(segment="seniors"),
        talk_seconds=60,
    )


def test_a_call_stamped_hours_ahead_holds_the_watermark_at_the_clock_so_later_calls_still_count():
    state = buckets()
    now = datetime.now(timezone.utc)
    assert state.add(call_at("skewed", now + timedelta(hours=3))) is Verdict.COUNTED
    # The call counts in its own minute, but the campaign's watermark stops at the worker's clock.
    assert now.timestamp() <= state.watermarks["c1"] <= time.time()
    # So every correct call within the lateness (10 min) of the clock still counts.
    verdicts = [state.add(call_at(f"right-{n}", now - timedelta(seconds=3 * n))) for n in range(200)]
    assert verdicts == [Verdict.COUNTED] * 200
    assert state.add(call_at("an-hour-old", now - timedelta(hours=1))) is Verdict.LATE


def test_a_call_stamped_a_little_ahead_moves_the_watermark_only_as_far_as_the_clock():
    state = buckets()
    state.add(call_at("drifted", datetime.now(timezone.utc) + timedelta(minutes=4)))
    first = state.watermarks["c1"]
    assert first <= time.time()
    time.sleep(0.05)
    # The clock moves on, and a later call ahead of it takes the watermark to the clock again.
    state.add(call_at("drifted-again", datetime.now(timezone.utc) + timedelta(minutes=4, seconds=1)))
    assert first < state.watermarks["c1"] <= time.time()


def test_restored_rows_landed_in_the_future_keep_their_buckets_but_not_the_watermark():
    """A warehouse poisoned by an earlier version: a call landed three hours ahead, among
    correct ones. After the restore the correct calls count again, and the future row's
    bucket is still there (a replay of it is a duplicate, not a second count)."""
    state = buckets()
    now = int(time.time() * 1000) / 1000  # the warehouse keeps milliseconds
    landed = [
        ("right-1", "c1", "seniors", now - 120, "connected", 0, 1.0, 60.0, 1.0),
        ("skewed", "c1", "seniors", now + 3 * 3600, "connected", 0, 1.0, 60.0, None),
    ]
    assert state.restore(landed) == 2
    assert now <= state.watermarks["c1"] <= time.time()
    assert state.add(call_at("right-2", datetime.fromtimestamp(now - 500, timezone.utc))) is Verdict.COUNTED
    assert state.add(call_at("skewed", datetime.fromtimestamp(now + 3 * 3600, timezone.utc))) is Verdict.DUPLICATE
    minutes = sorted(row.minute for row in state.take_dirty())
    assert minutes[-1] == int((now + 3 * 3600) // 60) * 60


def test_what_the_live_state_holds_grows_with_calls_and_shrinks_when_minutes_close():
    """The worker's /health shows these figures; a soak reads them to tell what memory holds."""
    state = buckets()
    assert state.held() == {"campaigns": 0, "campaign_watermarks": 0, "event_ids": 0}
    for number in range(5):
        state.add(call(f"c1-{number}", number))
    state.add(call("c2-0", 0, campaign="c2"))
    state.add(call("c1-0", 0))  # a replay remembers nothing new
    assert state.held() == {"campaigns": 2, "campaign_watermarks": 2, "event_ids": 6}
    state.take_dirty()
    state.add(call("c1-later", 3 * 3600))  # c1 moves on past the kept hour: its first minute closes
    state.take_dirty()
    state.evict_closed()
    # c2 keeps its minute (its own watermark did not move); c1 keeps only the new call's minute.
    assert state.held() == {"campaigns": 2, "campaign_watermarks": 2, "event_ids": 2}
