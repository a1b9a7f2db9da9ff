"""The benchmark's workload: the same seeded call events for CallPulse and its peers.

Many campaigns (1,000 by default, the memory goal's size), six segments, event times
spread over ten hours so every time slot is live, and an outcome mix like a predictive
dialer's: most dials end without a human, about a third connect, a few are abandoned.
Each campaign's events are in event-time order, as a dialer sends them, so none is late.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

from core.schema import SCHEMA_VERSION, AgentStateChange, CallAttempt, DialerState, Event, Lead, Outcome

SEGMENTS = ("seniors", "homemakers", "students", "salaried", "self-employed", "retired-abroad")
# (outcome, share): a predictive dialer's typical mix.
OUTCOME_MIX = (
    (Outcome.NO_ANSWER, 0.38),
    (Outcome.BUSY, 0.08),
    (Outcome.MACHINE, 0.17),
    (Outcome.CONNECTED, 0.33),
    (Outcome.ABANDONED, 0.025),
    (Outcome.INVALID_NUMBER, 0.015),
)
ORDER_SHARE_OF_CONNECTED = 0.12
# With agents: each connected call moves its agent on call, to wrap-up and back to available
# (three agent_state events, about one per dial at this mix), and each campaign's dialer sends
# a dialer_state snapshot every SNAPSHOT_EVERY_CALLS of its calls.
SNAPSHOT_EVERY_CALLS = 10


def campaign_names(campaigns: int) -> list[str]:
    return [f"bench-{number:04d}" for number in range(campaigns)]


def event_id(seed: int, number: int) -> str:
    """The id of the workload's call ``number``. A letter before the number: "s7-000777000"
    reads as the phone number 7 000 777 000, and the worker refuses such a call as personal data."""
    return f"s{seed}-n{number}"


def call_events(
    count: int,
    *,
    seed: int = 7,
    campaigns: int = 1000,
    hours: float = 10.0,
    end: datetime | None = None,
    agents: int = 0,
) -> Iterator[Event]:
    """``count`` call attempts, in event-time order, ending at ``end`` (default now). With
    ``agents`` per campaign, also the floor's events at a dialer's ratio (see SNAPSHOT_EVERY_CALLS)."""
    floor_rng = random.Random(f"floor-{seed}")  # the calls stay the same with the floor or without
    calls_of: dict[str, int] = {}
    rng = random.Random(seed)
    end = end or datetime.now(timezone.utc)
    start = end - timedelta(hours=hours)
    step = hours * 3600 / max(count, 1)
    names = campaign_names(campaigns)
    outcomes, weights = zip(*OUTCOME_MIX)
    cumulative = list(itertools.accumulate(weights))
    for number in range(count):
        outcome = outcomes[min(bisect.bisect(cumulative, rng.random() * cumulative[-1]), len(outcomes) - 1)]
        connected = outcome is Outcome.CONNECTED
        order = connected and rng.random() < ORDER_SHARE_OF_CONNECTED
        ring = rng.uniform(4, 25)
        campaign = names[rng.randrange(campaigns)]
        moment = start + timedelta(seconds=number * step)
        if agents:
            yield from floor_events(seed, number, campaign, moment, connected, agents, floor_rng, calls_of)
        yield CallAttempt(
            schema_version=SCHEMA_VERSION,
            event_id=event_id(seed, number),
            campaign=campaign,
            event_time=moment,
            outcome=outcome,
            lead=Lead(segment=SEGMENTS[rng.randrange(len(SEGMENTS))], response_score=round(rng.random(), 3)),
            ring_seconds=round(ring, 1),
            wait_seconds=round(rng.uniform(1, 20), 1) if outcome is Outcome.ABANDONED else 0.0,
            talk_seconds=round(rng.uniform(30, 400), 1) if connected else 0.0,
            cost=0.012 * ring,
            order=order,
            order_value=round(rng.uniform(20, 200), 2) if order else 0.0,
        )


def floor_events(
    seed: int,
    number: int,
    campaign: str,
    moment: datetime,
    connected: bool,
    agents: int,
    rng: random.Random,
    calls_of: dict[str, int],
) -> Iterator[Event]:
    """The floor's events that come with call ``number``: its agent's three states for a
    connected call, and now and then its campaign's dialer snapshot (all at the call's time,
    a millisecond apart, so each campaign's events stay in time order)."""
    if connected:
        agent = f"{campaign}-agent-{rng.randrange(agents):02d}"
        for offset, state in enumerate(("on_call", "wrap_up", "available")):
            yield AgentStateChange(
                schema_version=SCHEMA_VERSION,
                event_id=f"s{seed}-a{number}-{offset}",
                campaign=campaign,
                event_time=moment + timedelta(milliseconds=offset - 3),
                agent=agent,
                state=state,
                team=f"team-{rng.randrange(3)}",
            )
    calls = calls_of[campaign] = calls_of.get(campaign, 0) + 1
    if calls % SNAPSHOT_EVERY_CALLS == 0:
        yield DialerState(
            schema_version=SCHEMA_VERSION,
            event_id=f"s{seed}-d{number}",
            campaign=campaign,
            event_time=moment - timedelta(milliseconds=4),
            dial_level=round(rng.uniform(1.5, 3.5), 2),
            calls_ringing=rng.randrange(40),
            calls_waiting=rng.randrange(3),
            longest_wait_seconds=round(rng.uniform(0, 2), 2),
            dialable_leads=rng.randrange(100_000),
        )
