"""The long memory of event ids keeps what was counted within its horizon, and no more: old
generations go whole, so its size levels off however long the worker runs."""

from __future__ import annotations

import time

from streams.seen_ids import GENERATIONS_PER_HORIZON, SeenIds, id_key


def test_an_id_is_remembered_for_the_horizon_and_then_forgotten_with_its_generation():
    now = time.time()
    seen = SeenIds(horizon_hours=4, ids_per_hour=1000)
    seen.add(id_key("call-1"), now - 3600)
    assert id_key("call-1") in seen and id_key("call-2") not in seen
    seen.rotate(now + 2 * 3600)  # the call is 3 h old: within the horizon still
    assert id_key("call-1") in seen
    seen.rotate(now + 4 * 3600)  # 5 h old: its generation has gone
    assert id_key("call-1") not in seen and seen.held()["ids"] == 0


def test_a_call_older_than_the_horizon_is_not_remembered():
    now = time.time()
    seen = SeenIds(horizon_hours=4, ids_per_hour=1000)
    seen.add(id_key("old"), now - 5 * 3600)
    assert id_key("old") not in seen and seen.held()["generations"] == 0
    assert seen.first_remembered() <= now - 4 * 3600 < seen.first_remembered() + seen.span_seconds


def test_its_memory_levels_off_over_a_long_run():
    """A day of calls, one every two minutes, rotated as the worker rotates after each batch."""
    start = time.time()
    seen = SeenIds(horizon_hours=4, ids_per_hour=30)
    most = 0
    for minute in range(0, 24 * 60, 2):
        epoch = start + minute * 60
        seen.add(id_key(f"call-{minute}"), epoch)
        seen.rotate(epoch)
        most = max(most, seen.held()["generations"])
    assert most == GENERATIONS_PER_HORIZON + 1
    # What is left: the horizon's calls (120 of them), plus the oldest generation's part before it.
    assert 120 <= seen.held()["ids"] <= 120 + 30
    assert id_key(f"call-{24 * 60 - 2}") in seen and id_key("call-0") not in seen


def test_calls_stamped_days_ahead_make_no_generations():
    """Tools that count simulated days to come through the worker's buckets (the alert-quality
    bench) must not grow a filter a day: only the clock's generation and the next are kept."""
    now = time.time()
    seen = SeenIds(horizon_hours=48, ids_per_hour=1000)
    for day in range(30):
        seen.add(id_key(f"day-{day}"), now + day * 86400)
    assert seen.held()["generations"] == 1 and id_key("day-0") in seen and id_key("day-29") not in seen


def test_a_lookup_searches_only_the_hours_of_the_generations_that_may_hold_the_ids():
    now = time.time()
    seen = SeenIds(horizon_hours=4, ids_per_hour=1000)
    seen.add(id_key("recent"), now)
    seen.add(id_key("older"), now - 3 * 3600)
    span = seen.span_seconds
    assert seen.times_holding([id_key("recent")]) == [(now // span * span, now // span * span + span)]
    older = (now - 3 * 3600) // span * span
    assert seen.times_holding([id_key("older"), id_key("never")]) == [(older, older + span)]
    assert seen.times_holding([id_key("never")]) == []
