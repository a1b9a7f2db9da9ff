"""Property tests: for random streams with shuffling, duplicates and late arrivals, the
streamed and landed buckets equal a batch recomputation over the deduplicated, on-time
events.

The recomputation is written independently of streams/buckets.py: a plain pass over the
arrival order decides which events are on time, then pandas sums them per bucket.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from core.config import load_settings
from core.metrics import COUNTERS, attempt_counters
from core.schema import CallAttempt, Lead, Outcome, encode_event
from core.slots import SlotRules
from streams.processor import CallEventProcessor, SourceRecord
from warehouse.landing import epoch_ms

SETTINGS = load_settings()
LATENESS = SETTINGS.pipeline.allowed_lateness_seconds
# 11:50 in Tokyo: streams cross the morning/midday slot boundary at 12:00.
BASE = datetime(2026, 11, 23, 2, 50, tzinfo=timezone.utc)

attempt_strategy = st.builds(
    lambda index, campaign, segment, offset_s, outcome, talk, order: CallAttempt(
        schema_version=1,
        event_id=f"e{index}",
        campaign=campaign,
        event_time=BASE + timedelta(seconds=offset_s),
        outcome=outcome,
        lead=Lead(segment=segment),
        ring_seconds=3.0,
        talk_seconds=talk if outcome is Outcome.CONNECTED else 0.0,
        order=order and outcome is Outcome.CONNECTED,
    ),
    index=st.integers(0, 10**9),
    campaign=st.sampled_from(["winback", "insurance"]),
    segment=st.sampled_from(["seniors", "students"]),
    offset_s=st.integers(0, 40 * 60),  # 40 minutes: some arrivals end up beyond the lateness
    outcome=st.sampled_from(list(Outcome)),
    talk=st.floats(0, 600, allow_nan=False).map(lambda v: round(v, 2)),
    order=st.booleans(),
)


@st.composite
def arrival_orders(draw):
    """Distinct events in a shuffled arrival order, some delivered again later."""
    events = draw(st.lists(attempt_strategy, min_size=1, max_size=120, unique_by=lambda e: e.event_id))
    events.sort(key=lambda e: e.event_time)
    # Mostly in order, with local shuffles and occasional long delays (late arrivals).
    keys = [
        i + draw(st.integers(-30, 30)) + (draw(st.integers(0, 1)) and draw(st.integers(0, 200)))
        for i in range(len(events))
    ]
    arrivals = [event for _, event in sorted(zip(keys, events), key=lambda pair: pair[0])]
    duplicates = draw(st.lists(st.integers(0, len(events) - 1), max_size=30))
    for index in duplicates:
        arrivals.insert(draw(st.integers(index, len(arrivals))), events[index])
    batch_sizes = draw(st.lists(st.integers(1, 40), min_size=1, max_size=10))
    return arrivals, batch_sizes


def recompute(arrivals: list[CallAttempt], rules: SlotRules) -> tuple[pd.DataFrame, int]:
    """Which events count, by a plain pass over the arrivals; then batch sums per bucket."""
    counted: dict[str, CallAttempt] = {}
    newest: dict[str, float] = {}
    late = 0
    for event in arrivals:
        epoch = event.event_time.timestamp()
        if event.event_id in counted:
            continue
        if event.campaign in newest and epoch < newest[event.campaign] - LATENESS:
            late += 1
            continue
        counted[event.event_id] = event
        newest[event.campaign] = max(newest.get(event.campaign, epoch), epoch)
    rows = []
    for event in counted.values():
        minute = int(event.event_time.timestamp() // 60 * 60)
        model = SETTINGS.cost_model_for(event.campaign)
        rows.append(
            (
                event.campaign,
                rules.slot_for(event.event_time),
                event.lead.segment,
                minute,
                *attempt_counters(event, model),
            )
        )
    frame = pd.DataFrame(rows, columns=["campaign", "slot", "segment", "minute", *COUNTERS])
    return frame.groupby(["campaign", "slot", "segment", "minute"]).sum().sort_index(), late


def landed_fields(attempt: CallAttempt) -> tuple:
    """The fields call_attempts keeps for an attempt, as landed_calls reads them back."""
    return (
        attempt.campaign,
        epoch_ms(attempt.event_time),
        attempt.outcome.value,
        int(attempt.order),
        attempt.talk_seconds,
        attempt.lead.segment,
    )


def stream(arrivals: list[CallAttempt], batch_sizes: list[int]):
    """Run the arrivals through the worker's processor batch by batch, as the agent does."""
    processor = CallEventProcessor(SETTINGS, SlotRules(SETTINGS.slots, SETTINGS.zone))
    landed: dict[str, tuple] = {}  # what warehouse.queries.landed_calls answers for a landed id
    landed_buckets: dict[tuple, tuple[int, tuple[float, ...]]] = {}
    position, batch = 0, 0
    while position < len(arrivals):
        size = batch_sizes[batch % len(batch_sizes)]
        records = [
            SourceRecord("call-events", 0, offset, encode_event(event))
            for offset, event in enumerate(arrivals[position : position + size], start=position)
        ]
        result = processor.process(records)
        processor.resolve_late(
            result, {event.event_id: landed[event.event_id] for event, _ in result.late if event.event_id in landed}
        )
        landed.update((attempt.event_id, landed_fields(attempt)) for attempt in result.attempts)
        for row in result.buckets:  # what ReplacingMergeTree(version) keeps
            key = (row.campaign, row.slot, row.segment, row.minute)
            if key not in landed_buckets or landed_buckets[key][0] < row.version:
                landed_buckets[key] = (row.version, row.counters)
        processor.landed()  # evicts closed buckets, as after every landing
        position += size
        batch += 1
    frame = pd.DataFrame(
        [(*key, *counters) for key, (_, counters) in landed_buckets.items()],
        columns=["campaign", "slot", "segment", "minute", *COUNTERS],
    )
    return frame.set_index(["campaign", "slot", "segment", "minute"]).sort_index(), processor.stats


@hypothesis_settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arrival_orders())
def test_streamed_buckets_equal_a_batch_recomputation(case):
    arrivals, batch_sizes = case
    rules = SlotRules(SETTINGS.slots, SETTINGS.zone)
    expected, expected_late = recompute(arrivals, rules)
    landed, stats = stream(arrivals, batch_sizes)
    assert list(landed.index) == list(expected.index)
    np.testing.assert_allclose(landed.to_numpy(float), expected.to_numpy(float), rtol=1e-12, atol=1e-9)
    distinct = len({event.event_id for event in arrivals})
    assert stats.counted == int(expected["dials"].sum())
    assert stats.late_events == expected_late
    assert stats.dead_letters.get("late_event", 0) == expected_late
    assert stats.counted + stats.duplicates + stats.late_events == len(arrivals)
    assert stats.counted <= distinct


def test_a_duplicate_of_a_counted_event_arriving_after_the_lateness_is_a_duplicate_not_late():
    first = CallAttempt(
        schema_version=1, event_id="a", campaign="c", event_time=BASE, outcome=Outcome.ABANDONED, lead=Lead(segment="s")
    )
    later = CallAttempt(
        schema_version=1,
        event_id="b",
        campaign="c",
        event_time=BASE + timedelta(hours=1),
        outcome=Outcome.CONNECTED,
        lead=Lead(segment="s"),
        talk_seconds=60.0,
    )
    landed, stats = stream([first, later, first], [1])
    assert (stats.counted, stats.duplicates, stats.late_events) == (2, 1, 0)
    assert landed["abandoned"].sum() == 1


@pytest.mark.parametrize("local_time, slot", [("11:59:59", "morning"), ("12:00:00", "midday")])
def test_the_slot_boundary_is_exact_to_the_second(local_time, slot):
    hour, minute, second = map(int, local_time.split(":"))
    moment = datetime(2026, 11, 23, hour, minute, second, tzinfo=SETTINGS.zone)
    event = CallAttempt(
        schema_version=1,
        event_id="x",
        campaign="c",
        event_time=moment.astimezone(timezone.utc),
        outcome=Outcome.NO_ANSWER,
        lead=Lead(segment="s"),
    )
    landed, _ = stream([event], [1])
    assert landed.index.get_level_values("slot").tolist() == [slot]
