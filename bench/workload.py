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
from datetime import datetime, timedelta, timezone
from typing import Iterator

from core.schema import SCHEMA_VERSION, CallAttempt, Lead, Outcome

SEGMENTS = ("seniors", "homemakers", "students", "salaried", "self-employed", "retired-abroad")
# (outcome, share): a predictive dialer's typical mix.
OUTCOME_MIX = ((Outcome.NO_ANSWER, 0.38), (Outcome.BUSY, 0.08), (Outcome.MACHINE, 0.17),
               (Outcome.CONNECTED, 0.33), (Outcome.ABANDONED, 0.025), (Outcome.INVALID_NUMBER, 0.015))
ORDER_SHARE_OF_CONNECTED = 0.12


def campaign_names(campaigns: int) -> list[str]:
    return [f"bench-{number:04d}" for number in range(campaigns)]


def event_id(seed: int, number: int) -> str:
    """The id of the workload's call ``number``. A letter before the number: "s7-000777000"
    reads as the phone number 7 000 777 000, and the worker refuses such a call as personal data."""
    return f"s{seed}-n{number}"


def call_events(count: int, *, seed: int = 7, campaigns: int = 1000, hours: float = 10.0,
                end: datetime | None = None) -> Iterator[CallAttempt]:
    """``count`` call attempts, in event-time order, ending at ``end`` (default now)."""
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
        yield CallAttempt(
            schema_version=SCHEMA_VERSION,
            event_id=event_id(seed, number),
            campaign=names[rng.randrange(campaigns)],
            event_time=start + timedelta(seconds=number * step),
            outcome=outcome,
            lead=Lead(segment=SEGMENTS[rng.randrange(len(SEGMENTS))], response_score=round(rng.random(), 3)),
            ring_seconds=round(ring, 1),
            wait_seconds=round(rng.uniform(1, 20), 1) if outcome is Outcome.ABANDONED else 0.0,
            talk_seconds=round(rng.uniform(30, 400), 1) if connected else 0.0,
            cost=0.012 * ring,
            order=order,
            order_value=round(rng.uniform(20, 200), 2) if order else 0.0,
        )
