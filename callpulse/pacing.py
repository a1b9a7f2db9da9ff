"""Pacing advisor: the dial ratio that keeps a campaign's abandon rate under a target.

The dial ratio is in the unit the dialer paces by: **lines kept ringing per free agent**.
Every second the dialer tops the ringing lines up to ``ceil(free agents × ratio)``; a
person who answers waits up to two seconds for an agent and is then dropped (an
abandoned call). That is the policy of ``producers.simulator`` and of a predictive
dialer's "dial level", so a recommendation can be set on
``CampaignProfile.lines_per_free_agent`` as it is.

Why not Erlang?
    Erlang B/C describe an open queue: calls arrive at a rate that does not care how
    busy the agents are. A pacing dialer is a closed loop: it only dials for free agents
    and stops when none is free, so the only calls that can be dropped are the ones
    already ringing when the last agent gets busy. Erlang B at the same contact rate
    predicts abandon rates several times too high and would recommend a timid ratio.

The model (a reduced Monte-Carlo of the pacing policy)
    Many independent replicas of one campaign are stepped a second at a time, all
    candidate ratios at once as numpy arrays. Per replica and second:

    1. each busy agent finishes with probability 1 − exp(−1/handle): handle times are
       exponential with the measured mean (talk + wrap-up). Memoryless handling lets the
       state be a count of busy agents, which keeps the model fast; with many agents
       the completions are near-Poisson over the few seconds that decide an abandon
       whatever the handle-time shape (Palm–Khintchine), and an exponential's long
       tail makes the model more, not less, pessimistic for small teams;
    2. agents who just finished take the calls on hold, oldest first; a call still
       unserved two seconds after it was answered is abandoned;
    3. lines whose ring ends now answer: each dial reached a person with probability
       ``contact_rate`` (independently: the measured rate of the window), and a person
       takes a free agent or goes on hold;
    4. the dialer tops the ringing lines up to ``ceil(free agents × ratio)``. A new
       line rings for a gamma-distributed time with the measured mean and spread,
       separately for live answers and for the rest (no answer, busy, machine, bad
       number), rounded up to whole seconds.

    What it leaves out, on purpose: the contact rate's swings by segment and time slot
    within the window (the advice is for the figures now; re-read it when the slot
    changes), outcome mixes beyond the two ring-time distributions, and the call
    centre's own shifts and breaks (``agents`` is the number taking calls).

    Each replica starts empty and runs a warm-up of two handle times before it is
    counted. The abandon rate is Σ abandoned / Σ live answers over replicas (as in
    callpulse.metrics); the idle share is free agent-seconds / all agent-seconds.

Conservative choice
    The recommended ratio is the largest candidate, scanning up from the lowest, whose
    abandon-rate upper bound stays under the target; the scan stops at the first
    candidate over it, so Monte-Carlo noise cannot pick a lucky high ratio past an
    unsafe one. The upper bound is the larger of a Wilson bound on the pooled counts
    (which still bounds a rate with no abandons seen) and a normal bound whose standard
    error comes from the spread between replicas (abandons come in bursts, so calls are
    not independent draws). A ratio of 1.0 can never abandon in this policy, so there is
    always an answer.

Inputs come from the warehouse through :func:`live_pacing_inputs`: the last hour's
dials, live answers, talk and ring times, the agents who took a call, and the wrap-up
estimated from the gaps between one agent's calls. The ratio the dialer actually ran
is not in the events, so it is not read or guessed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Sequence

import numpy as np
import pandas as pd
from clickhouse_connect.driver.client import Client

from callpulse.metrics import COUNTERS, RAW_COUNTER_SQL, compute_rates

#: Ratios the advisor compares by default: progressive dialing (1.0) to very aggressive.
DEFAULT_CANDIDATES: tuple[float, ...] = tuple(round(1.0 + 0.1 * i, 1) for i in range(41))
#: The regulators' two-second rule: how long an answered call may wait for an agent.
HOLD_SECONDS = 2
#: Used when the window has too few back-to-back calls of one agent to measure wrap-up.
DEFAULT_WRAP_SECONDS = 15.0
#: One-sided 97.5 % bounds.
Z_UPPER = 1.96


@dataclass(frozen=True)
class PacingInputs:
    """A campaign's live figures, as the model needs them."""

    agents: int
    contact_rate: float           # live answers / dials
    handle_seconds: float         # talk + wrap-up per connected call: how long an agent is taken
    contact_ring_seconds: float   # mean ring before a person answers
    other_ring_seconds: float     # mean ring of a dial that reaches nobody
    contact_ring_sd: float | None = None  # spreads; None: half the mean
    other_ring_sd: float | None = None

    def __post_init__(self):
        if self.agents < 1:
            raise ValueError("agents must be at least 1")
        if not 0 < self.contact_rate < 1:
            raise ValueError("contact_rate must be between 0 and 1")
        if min(self.handle_seconds, self.contact_ring_seconds, self.other_ring_seconds) <= 0:
            raise ValueError("handle and ring times must be positive")

    def rounded(self) -> "PacingInputs":
        """The same figures at the precision they are known to, so near-identical reads of a
        live window share one cached model run."""
        return replace(
            self, contact_rate=round(self.contact_rate, 3), handle_seconds=round(self.handle_seconds),
            contact_ring_seconds=round(self.contact_ring_seconds, 1),
            other_ring_seconds=round(self.other_ring_seconds, 1),
            contact_ring_sd=None if self.contact_ring_sd is None else round(self.contact_ring_sd, 1),
            other_ring_sd=None if self.other_ring_sd is None else round(self.other_ring_sd, 1))


@dataclass(frozen=True)
class Advice:
    target_abandon_rate: float
    #: The largest safe candidate; the lowest candidate if none is safe (see ``meets_target``).
    recommended_ratio: float
    meets_target: bool
    #: One row per candidate ratio: ratio, abandon_rate, abandon_rate_upper, idle_share,
    #: contacts, abandoned (the model's counts behind the rate), safe.
    candidates: pd.DataFrame

    @property
    def recommended(self) -> dict:
        """The recommended ratio's row of ``candidates``."""
        return self.candidates.loc[self.candidates["ratio"] == self.recommended_ratio].iloc[0].to_dict()


@dataclass(frozen=True)
class ModelRun:
    """How long and how wide the model looks: more replicas, tighter bounds, slower."""

    replicas: int = 48
    seconds: int = 1800
    seed: int = 20261123


def advise(inputs: PacingInputs, target_abandon_rate: float,
           candidates: Sequence[float] = DEFAULT_CANDIDATES, run: ModelRun = ModelRun()) -> Advice:
    """The largest candidate ratio whose abandon-rate upper bound stays under the target."""
    if not 0 < target_abandon_rate < 1:
        raise ValueError("target_abandon_rate must be between 0 and 1")
    table = expected_outcomes(inputs, tuple(sorted(set(float(c) for c in candidates))), run)
    under = (table["abandon_rate_upper"] < target_abandon_rate).to_numpy()
    # Scan up and stop at the first unsafe ratio: noise must not pick a ratio past it.
    safe_prefix = np.logical_and.accumulate(under)
    table = table.assign(safe=safe_prefix)
    meets = bool(safe_prefix[0])
    best = float(table.loc[safe_prefix, "ratio"].iloc[-1]) if meets else float(table["ratio"].iloc[0])
    return Advice(target_abandon_rate, best, meets, table)


def expected_outcomes(inputs: PacingInputs, candidates: tuple[float, ...] = DEFAULT_CANDIDATES,
                      run: ModelRun = ModelRun()) -> pd.DataFrame:
    """Expected abandon rate (with its upper bound) and agent idle share at each ratio.

    Cached: the same figures give the same table (the model is seeded), and a page that
    switches targets only re-selects from it.
    """
    return _expected_outcomes(inputs, tuple(candidates), run).copy()


@lru_cache(maxsize=256)
def _expected_outcomes(inputs: PacingInputs, candidates: tuple[float, ...], run: ModelRun) -> pd.DataFrame:
    abandoned, contacts, idle = _simulate(inputs, np.asarray(candidates, dtype=float), run)
    rows = []
    for i, ratio in enumerate(candidates):
        pooled_abandoned, pooled_contacts = abandoned[i].sum(), contacts[i].sum()
        rate = pooled_abandoned / pooled_contacts if pooled_contacts else float("nan")
        rows.append({
            "ratio": ratio,
            "abandon_rate": rate,
            "abandon_rate_upper": max(wilson_upper(pooled_abandoned, pooled_contacts),
                                      _replica_upper(abandoned[i], contacts[i])),
            "idle_share": float(idle[i]),
            "contacts": int(pooled_contacts),
            "abandoned": int(pooled_abandoned),
        })
    return pd.DataFrame(rows)


def wilson_upper(successes: float, trials: float, z: float = Z_UPPER) -> float:
    """Upper end of the Wilson score interval for a proportion."""
    if trials <= 0:
        return 1.0
    p = successes / trials
    centre = p + z * z / (2 * trials)
    margin = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials))
    return min(1.0, (centre + margin) / (1 + z * z / trials))


def _replica_upper(abandoned: np.ndarray, contacts: np.ndarray, z: float = Z_UPPER) -> float:
    """Ratio estimate plus z standard errors, the error taken from the spread between
    replicas, so bursts of abandons within one replica widen the bound."""
    n = len(contacts)
    total = contacts.sum()
    if n < 2 or total == 0:
        return 1.0
    rate = abandoned.sum() / total
    residual = abandoned - rate * contacts
    standard_error = math.sqrt((residual ** 2).sum() / (n - 1) / n) / (total / n)
    return rate + z * standard_error


def _ring_sampler(mean: float, sd: float | None):
    sd = mean / 2 if sd is None or sd <= 0 else sd
    shape, scale = (mean / sd) ** 2, sd * sd / mean
    return lambda rng, size: rng.gamma(shape, scale, size)


def _simulate(inputs: PacingInputs, ratios: np.ndarray, run: ModelRun):
    """Step every (ratio, replica) pair together; per ratio: abandons and live answers per
    replica, and the idle share."""
    rng = np.random.default_rng(run.seed)
    replicas = run.replicas
    ratio = np.repeat(ratios, replicas)
    width = len(ratio)
    agents = inputs.agents
    finish = -math.expm1(-1.0 / inputs.handle_seconds)
    contact_ring = _ring_sampler(inputs.contact_ring_seconds, inputs.contact_ring_sd)
    other_ring = _ring_sampler(inputs.other_ring_seconds, inputs.other_ring_sd)
    longest = max(inputs.contact_ring_seconds + 8 * (inputs.contact_ring_sd or inputs.contact_ring_seconds / 2),
                  inputs.other_ring_seconds + 8 * (inputs.other_ring_sd or inputs.other_ring_seconds / 2))
    horizon = int(min(600, math.ceil(longest))) + 2  # ring-time slots in the circular buffers

    answers_due = np.zeros(horizon * width, dtype=np.int64)   # live answers by (second mod horizon, column)
    lines_due = np.zeros(horizon * width, dtype=np.int64)     # every line's end, likewise
    columns = np.arange(width)
    busy = np.zeros(width, dtype=np.int64)
    ringing = np.zeros(width, dtype=np.int64)
    on_hold = np.zeros((HOLD_SECONDS, width), dtype=np.int64)  # row k: answered k + 1 seconds ago

    warmup = int(2 * inputs.handle_seconds)
    abandoned = np.zeros(width, dtype=np.int64)
    contacts = np.zeros(width, dtype=np.int64)
    free_seconds = np.zeros(width, dtype=np.int64)

    for second in range(warmup + run.seconds):
        counting = second >= warmup
        busy -= rng.binomial(busy, finish)
        free = agents - busy
        for age in range(HOLD_SECONDS - 1, -1, -1):  # oldest first
            served = np.minimum(on_hold[age], free)
            free -= served
            on_hold[age] -= served
        dropped = on_hold[HOLD_SECONDS - 1]
        slot = (second % horizon) * width
        answered = answers_due[slot:slot + width].copy()
        served = np.minimum(answered, free)
        free -= served
        busy = agents - free
        if counting:
            abandoned += dropped
            contacts += answered
        on_hold[1:] = on_hold[:-1]
        on_hold[0] = answered - served
        ringing -= lines_due[slot:slot + width]
        answers_due[slot:slot + width] = 0
        lines_due[slot:slot + width] = 0

        wanted = np.ceil(free * ratio).astype(np.int64)
        dials = np.maximum(wanted - ringing, 0)
        ringing += dials
        if counting:
            free_seconds += free
        total = int(dials.sum())
        if not total:
            continue
        dial_column = np.repeat(columns, dials)
        is_contact = rng.random(total) < inputs.contact_rate
        ring = np.empty(total)
        ring[is_contact] = contact_ring(rng, int(is_contact.sum()))
        ring[~is_contact] = other_ring(rng, total - int(is_contact.sum()))
        ends = second + np.clip(np.ceil(ring), 1, horizon - 1).astype(np.int64)
        where = (ends % horizon) * width + dial_column
        np.add.at(lines_due, where, 1)
        np.add.at(answers_due, where[is_contact], 1)

    shape = (len(ratios), replicas)
    idle = free_seconds.reshape(shape).sum(axis=1) / (agents * run.seconds * replicas)
    return abandoned.reshape(shape), contacts.reshape(shape), idle
