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
