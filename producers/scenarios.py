"""Scripted call streams for drills and tests: known rates, minute by minute.

Unlike the dialer simulator, a scenario sets a campaign's abandon rate exactly, so an
alert rule can be checked against what a supervisor would expect to see.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.schema import CallAttempt, Lead, Outcome


@dataclass(frozen=True)
class Phase:
    minutes: int
    abandon_rate: float  # abandoned / live answers in each minute of this phase


ABANDON_SPIKE = (Phase(20, 0.01), Phase(20, 0.05), Phase(30, 0.01))


def abandon_rate_phases(
    campaign: str,
    start: datetime,
    phases=ABANDON_SPIKE,
    *,
    live_answers_per_minute: int = 100,
    dials_per_minute: int = 400,
    seed: int = 1,
) -> Iterator[CallAttempt]:
    """Each minute: ``dials_per_minute`` attempts, of which ``live_answers_per_minute`` are
    answered by a person, and exactly ``abandon_rate`` of those are abandoned."""
    rng = random.Random(seed)
    minute = 0
    for phase in phases:
        abandoned_per_minute = round(live_answers_per_minute * phase.abandon_rate)
        for _ in range(phase.minutes):
            outcomes = (
                [Outcome.ABANDONED] * abandoned_per_minute
                + [Outcome.CONNECTED] * (live_answers_per_minute - abandoned_per_minute)
                + [Outcome.NO_ANSWER] * (dials_per_minute - live_answers_per_minute)
            )
            rng.shuffle(outcomes)
            for index, outcome in enumerate(outcomes):
                moment = start + timedelta(minutes=minute, seconds=60 * index / len(outcomes))
                connected = outcome is Outcome.CONNECTED
                yield CallAttempt(
                    schema_version=1,
                    event_id=f"{campaign}-{minute}-{index}",
                    campaign=campaign,
                    event_time=moment,
                    outcome=outcome,
                    lead=Lead(segment="seniors"),
                    ring_seconds=8.0,
                    wait_seconds=2.5 if outcome is Outcome.ABANDONED else 0.0,
                    talk_seconds=90.0 if connected else 0.0,
                    order=connected and index % 10 == 0,
                )
            minute += 1


def abandon_rate_draws(
    campaign: str,
    start: datetime,
    phases=ABANDON_SPIKE,
    *,
    live_answers_per_minute: int = 100,
    other_dials_per_minute: int = 0,
    seed: int = 1,
    wait_seconds: float | None = 0.5,
) -> Iterator[CallAttempt]:
    """Like abandon_rate_phases, but each live answer is abandoned with probability ``abandon_rate``
    (a Bernoulli draw), as a campaign whose *true* rate is that would be: the minute-to-minute
    noise an alert rule must not mistake for a breach. ``other_dials_per_minute`` nobody answered
    come beside them; connected calls carry ``wait_seconds``."""
    rng = random.Random(seed)
    minute = 0
    for phase in phases:
        for _ in range(phase.minutes):
            outcomes = [
                Outcome.ABANDONED if rng.random() < phase.abandon_rate else Outcome.CONNECTED
                for _ in range(live_answers_per_minute)
            ] + [Outcome.NO_ANSWER] * other_dials_per_minute
            for index, outcome in enumerate(outcomes):
                moment = start + timedelta(minutes=minute, seconds=60 * index / len(outcomes))
                connected = outcome is Outcome.CONNECTED
                yield CallAttempt(
                    schema_version=1,
                    event_id=f"{campaign}-{seed}-{minute}-{index}",
                    campaign=campaign,
                    event_time=moment,
                    outcome=outcome,
                    lead=Lead(segment="seniors"),
                    ring_seconds=8.0,
                    wait_seconds=2.0 if outcome is Outcome.ABANDONED else wait_seconds if connected else 0.0,
                    talk_seconds=90.0 if connected else 0.0,
                )
            minute += 1
