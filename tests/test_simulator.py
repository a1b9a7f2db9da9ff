from datetime import datetime, timezone

import pandas as pd
import pytest

from core.config import load_settings
from core.slots import SlotRules
from producers.simulator import DialerSimulator

START = datetime(2026, 11, 23, 0, 0, tzinfo=timezone.utc)  # 09:00 in Tokyo


@pytest.fixture(scope="module")
def day():
    settings = load_settings()
    rules = SlotRules(settings.slots, settings.zone)
    events = list(DialerSimulator(rules, b"k", seed=11, start=START).events(sim_seconds=11 * 3600))
    frame = pd.DataFrame(
        {
            "campaign": [e.campaign for e in events],
            "outcome": [e.outcome.value for e in events],
            "segment": [e.lead.segment for e in events],
            "slot": [rules.slot_for(e.event_time) for e in events],
            "hour": [e.event_time.hour for e in events],
            "event_time": [e.event_time for e in events],
        }
    )
    frame["contact"] = frame["outcome"].isin(["connected", "abandoned"])
    frame["abandoned"] = frame["outcome"] == "abandoned"
    return events, frame


def test_same_seed_same_calls():
    settings = load_settings()
    rules = SlotRules(settings.slots, settings.zone)
    first = list(DialerSimulator(rules, b"k", seed=5, start=START).events(count=300))
    again = list(DialerSimulator(rules, b"k", seed=5, start=START).events(count=300))
    other = list(DialerSimulator(rules, b"k", seed=6, start=START).events(count=300))
    assert first == again
    assert first != other


def test_events_come_in_event_time_order_with_no_raw_phone_numbers(day):
    events, frame = day
    assert frame["event_time"].is_monotonic_increasing
    assert all(len(e.lead.phone_hash) == 64 for e in events)


def test_campaign_contact_rates_are_realistic(day):
    _, frame = day
    contact_rate = frame.groupby("campaign")["contact"].mean()
    assert len(contact_rate) == 4
    assert contact_rate.between(0.10, 0.30).all(), contact_rate


def test_abandon_rates_mostly_legal_with_one_drifting_campaign(day):
    _, frame = day
    live = frame[frame["contact"]]
    by_campaign = live.groupby("campaign")["abandoned"].mean()
    assert by_campaign.drop("credit-card-winback").between(0.003, 0.03).all(), by_campaign
    hourly = live[live["campaign"] == "credit-card-winback"].groupby("hour")["abandoned"].mean()
    assert (hourly > 0.03).any() and (hourly < 0.03).any(), hourly


def test_segments_are_home_in_their_own_slots(day):
    _, frame = day
    rates = frame.groupby(["segment", "slot"])["contact"].mean()
    assert rates["seniors", "morning"] > rates["seniors", "night"]
    assert rates["salaried", "night"] > 2 * rates["salaried", "morning"]
    assert rates["homemakers", "midday"] > rates["homemakers", "night"]


def test_slow_answer_detection_is_over_3_percent_for_the_ftc_while_dropping_under_3(day):
    """broadband-upgrade's dialer takes a while to tell a person from a machine: few calls are
    dropped, but some connect after more than the FTC's 2 s, which the FTC counts abandoned."""
    from core.metrics import COUNTERS, compliance_figures, counters_for

    events, _ = day
    sums: dict[str, list[float]] = {}
    for event in events:
        counted = counters_for(event.outcome, event.order, 0.0, 0.0, event.wait_seconds, 2.0)
        sums[event.campaign] = [a + b for a, b in zip(sums.get(event.campaign, [0.0] * len(COUNTERS)), counted)]
    figures = {campaign: compliance_figures(dict(zip(COUNTERS, row))) for campaign, row in sums.items()}
    broadband = figures["broadband-upgrade"]
    assert broadband["dialer"].rate < 0.03 < broadband["ftc"].rate, broadband
    assert broadband["ftc"].unjudged == 0  # the simulator always knows the wait
    assert figures["charity-giving"]["ftc"].rate < 0.03


def test_connect_delays_leave_every_seeded_call_as_it_was():
    """The connect delay draws from its own stream and is carved out of the ring: without it the
    same seed gives the same calls, outcomes, agents and times, only ring and wait split otherwise."""
    from dataclasses import replace

    from producers.simulator import DEFAULT_CAMPAIGNS

    settings = load_settings()
    rules = SlotRules(settings.slots, settings.zone)
    instant = tuple(replace(profile, connect_delay_median=0.0) for profile in DEFAULT_CAMPAIGNS)
    delayed = list(DialerSimulator(rules, b"k", seed=5, start=START).events(sim_seconds=1800))
    plain = list(DialerSimulator(rules, b"k", seed=5, start=START, campaigns=instant).events(sim_seconds=1800))
    assert [(e.event_id, e.outcome, e.agent, e.event_time) for e in delayed] == [
        (e.event_id, e.outcome, e.agent, e.event_time) for e in plain
    ]
    for with_delay, without in zip(delayed, plain):
        assert with_delay.ring_seconds + with_delay.wait_seconds == pytest.approx(
            without.ring_seconds + without.wait_seconds, abs=0.011
        )
    assert sum(e.wait_seconds > 2.0 for e in delayed if e.outcome.value == "connected") > 0
    assert sum(e.wait_seconds > 2.0 for e in plain if e.outcome.value == "connected") == 0
