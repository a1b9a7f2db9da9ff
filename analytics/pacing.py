"""Pacing advisor: the dial ratio that keeps a campaign's abandon rate under a target.

The dial ratio is in the unit the dialer paces by: **lines kept ringing per free agent**.
Every second the dialer tops the ringing lines up to ``ceil(free agents × ratio)``; a
person who answers waits up to two seconds for an agent and is then dropped (an
abandoned call). That is the policy of ``producers.simulator`` (and a predictive
dialer's "dial level"), so a recommendation can be set on
``CampaignProfile.lines_per_free_agent`` as it is.

Why not Erlang B
    Erlang B describes an open queue: calls arrive at a rate that does not care how busy
    the agents are. A pacing dialer is a closed loop: it dials only for free agents and
    stops when none is free, so only the calls already ringing when the last agent gets
    busy can be dropped. Fed the same throughput, Erlang B predicts 7-10 % abandoned for
    a 20-agent campaign where the simulator drops 0.3-1.7 %; it would advise a timid ratio.

The model: a reduced Monte-Carlo of the pacing policy
    Independent replicas of one campaign are stepped a second at a time, every candidate
    ratio at once, as numpy arrays. Per replica and second:

    1. agents whose call ends take the calls on hold, oldest first; a call still
       unserved two seconds after it was answered is abandoned;
    2. lines whose ring ends now answer or not; a person takes a free agent or holds;
    3. the dialer tops the ringing lines up to ``ceil(free agents × ratio)``; each new
       line reaches a person with probability ``contact_rate``, independently.

    Durations are drawn from the window's measured distributions (41 quantiles, joined
    linearly, rescaled to the measured mean): ring time before a live answer, ring time
    of the other dials, and talk time, plus a fixed wrap-up. All are rounded up to whole
    seconds, as the dialer only looks once a second. The ring-time shape matters: with
    only their means (gamma ring times) the model halved a 45-agent team's abandon
    rate; the talk-time shape hardly did. With only means, ring times are assumed nearly
    regular (RING_CV), the cautious guess, because regular rings answer in bunches.

    What it leaves out, on purpose: the swings of the contact rate by segment and time
    slot inside the window (the advice is for the figures now; read it again when the
    slot changes), outcome mixes beyond the two ring-time distributions, and shifts and
    breaks (``agents`` is the number taking calls). Each replica starts with every agent
    mid-call (length-biased residual times, as a random observer would find them) and
    warms up for one handle time before it is counted.

    Against the simulator itself (20 agents, 20 seeded middays per ratio against 8 model
    seeds) the model's abandon rate was within one standard error at ratios 2.0-3.0
    (2.6: 1.18 % against 1.28 %; 3.0: 1.62 % against 1.61 %) and its idle share within
    0.4 points. Both show the same steps: 2.1 abandons twice what 2.0 does, because
    ``ceil`` gives a lone free agent three lines instead of two.

Conservative choice
    * The contact rate is planned at the upper end of its 95 % interval
      (LiveFigures.planning_contact_rate): an hour measures it only to a few per cent,
      and the abandon rate is steep in it.
    * The recommended ratio is the largest candidate, scanning up from the lowest, whose
      abandon-rate upper bound stays under the target; the scan stops at the first one
      over it, so Monte-Carlo noise cannot pick a lucky ratio past an unsafe one. The
      bound is the larger of a Wilson bound on the pooled counts (it still bounds a rate
      with no abandons seen) and a normal bound whose error comes from the spread
      between replicas (abandons come in bursts). A ratio of 1.0 can never abandon under
      this policy, so some candidate is always safe.

Cost
    0.3-0.6 s per campaign on one idle core (8-45 agents; about 1 s on a busy machine):
    a rough pass over COARSE_RATIOS finds how far the grid must reach, then the fine
    grid runs with replicas sized for about 12 000 live answers per ratio. Results are
    cached per set of figures, so switching the target costs a millisecond or two.

The figures come from the warehouse through :func:`live_figures`: the last hour's dials,
live answers, talk and ring times, and the agents who took a call. Wrap-up is not in
the call events, so it is an assumption (15 s unless told), bounded by the gaps between
one agent's calls. The ratio the dialer actually ran is not in the events either, so it
is neither read nor guessed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from functools import lru_cache

import numpy as np
import pandas as pd
from clickhouse_connect.driver.client import Client

from core.metrics import COUNTERS, Z_95, compute_rates, wilson_interval
from warehouse.queries.model import agent_gaps, pacing_window

#: The regulators' two-second rule: how long an answered call may wait for an agent.
HOLD_SECONDS = 2
#: Wrap-up assumed when nobody says otherwise: the simulator's, and typical after-call work.
DEFAULT_WRAP_SECONDS = 15.0
#: The probabilities at which live_figures() reads each time distribution: minimum to maximum.
QUANTILE_LEVELS: tuple[float, ...] = tuple(i / 40 for i in range(41))
#: Fewer calls than this in a window and a time distribution is not read from them.
MIN_DISTRIBUTION_CALLS = 40
#: Spreads assumed when only a mean is known (coefficients of variation): nearly regular
#: rings, the cautious guess (regular rings answer in bunches); talk as spread as its mean.
RING_CV = 0.25
TALK_CV = 1.0


@dataclass(frozen=True)
class PacingInputs:
    """A campaign's figures, as the model needs them.

    The ``*_quantiles`` are the measured distribution at QUANTILE_LEVELS; left empty,
    ring times are gamma and talk times lognormal with the mean and RING_CV / TALK_CV.
    """

    agents: int
    contact_rate: float  # live answers / dials
    talk_seconds: float  # mean talk of a connected call (the AHT metric)
    wrap_seconds: float  # after-call work before the agent is free again
    contact_ring_seconds: float  # mean ring before a person answers
    other_ring_seconds: float  # mean ring of a dial that reaches nobody
    talk_quantiles: tuple[float, ...] = ()
    contact_ring_quantiles: tuple[float, ...] = ()
    other_ring_quantiles: tuple[float, ...] = ()

    def __post_init__(self):
        if self.agents < 1:
            raise ValueError("agents must be at least 1")
        if not 0 < self.contact_rate < 1:
            raise ValueError("contact_rate must be between 0 and 1")
        if min(self.talk_seconds, self.contact_ring_seconds, self.other_ring_seconds) <= 0 or self.wrap_seconds < 0:
            raise ValueError("talk and ring times must be positive, wrap-up not negative")
        for name in ("talk_quantiles", "contact_ring_quantiles", "other_ring_quantiles"):
            if getattr(self, name) and len(getattr(self, name)) != len(QUANTILE_LEVELS):
                raise ValueError(f"{name} must hold {len(QUANTILE_LEVELS)} values, one per QUANTILE_LEVELS")

    @property
    def handle_seconds(self) -> float:
        """How long a connected call takes its agent."""
        return self.talk_seconds + self.wrap_seconds

    def rounded(self) -> PacingInputs:
        """The same figures at the precision they are known to, so near-identical reads of a
        live window share one cached model run."""

        def seconds(values):
            return tuple(round(v, 1) for v in values)

        return replace(
            self,
            contact_rate=round(self.contact_rate, 3),
            talk_seconds=round(self.talk_seconds, 1),
            wrap_seconds=round(self.wrap_seconds, 1),
            contact_ring_seconds=round(self.contact_ring_seconds, 1),
            other_ring_seconds=round(self.other_ring_seconds, 1),
            talk_quantiles=seconds(self.talk_quantiles),
            contact_ring_quantiles=seconds(self.contact_ring_quantiles),
            other_ring_quantiles=seconds(self.other_ring_quantiles),
        )


@dataclass(frozen=True)
class ModelRun:
    """How long and how wide the model looks. Replicas are sized so each ratio sees about
    ``contacts_per_ratio`` live answers: small teams need more replicas for the same bound."""

    contacts_per_ratio: int = 12_000
    seconds: int = 1800
    min_replicas: int = 16
    max_replicas: int = 160
    seed: int = 20261123

    def replicas(self, inputs: PacingInputs) -> int:
        wanted = self.contacts_per_ratio * inputs.handle_seconds / (inputs.agents * self.seconds)
        return int(min(self.max_replicas, max(self.min_replicas, math.ceil(wanted))))


@dataclass(frozen=True)
class Advice:
    target_abandon_rate: float
    #: The largest safe candidate; the lowest candidate if none is safe (see ``meets_target``).
    recommended_ratio: float
    meets_target: bool
    #: One row per candidate ratio: ratio, abandon_rate, abandon_rate_upper, idle_share,
    #: contacts and abandoned (the model's counts behind the rate), safe.
    candidates: pd.DataFrame

    @property
    def recommended(self) -> dict:
        """The recommended ratio's row of ``candidates``."""
        return self.candidates.loc[self.candidates["ratio"] == self.recommended_ratio].iloc[0].to_dict()


#: Where the coarse look samples the curve, to find how far the fine grid must reach.
COARSE_RATIOS: tuple[float, ...] = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0, 12.0)
#: The fine grid stops past the first coarse ratio expected to abandon this often: twice
#: the regulators' 3 %, so every target worth choosing lies well inside it.
GRID_CEILING_RATE = 0.06


def ratio_grid(highest: float) -> tuple[float, ...]:
    """1.0 to ``highest`` in steps of 0.1 up to 4, 0.2 up to 8 and 0.5 beyond: a step is
    never more than a few per cent of the ratio once dialing ahead starts to bite."""
    grid, tenths = [], 10
    while tenths <= round(highest * 10):
        grid.append(tenths / 10)
        tenths += 1 if tenths < 40 else 2 if tenths < 80 else 5
    return tuple(grid)


def default_candidates(inputs: PacingInputs, run: ModelRun = ModelRun()) -> tuple[float, ...]:
    """The fine grid up to where the abandon rate passes GRID_CEILING_RATE, found by a quick,
    rough run over COARSE_RATIOS: the fewer people answer and the bigger the team, the
    more lines each free agent can keep ringing."""
    rough = replace(run, contacts_per_ratio=max(1, run.contacts_per_ratio // 6), min_replicas=4)
    coarse = _expected_outcomes(inputs, COARSE_RATIOS, rough)
    over = coarse.loc[coarse["abandon_rate"] >= GRID_CEILING_RATE, "ratio"]
    return ratio_grid(float(over.iloc[0]) if len(over) else COARSE_RATIOS[-1])


def advise(
    inputs: PacingInputs,
    target_abandon_rate: float,
    candidates: Sequence[float] | None = None,
    run: ModelRun = ModelRun(),
) -> Advice:
    """The largest candidate ratio whose abandon-rate upper bound stays under the target."""
    if not 0 < target_abandon_rate < 1:
        raise ValueError("target_abandon_rate must be between 0 and 1")
    table = expected_outcomes(inputs, candidates, run)
    under = (table["abandon_rate_upper"] < target_abandon_rate).to_numpy()
    # Scan up and stop at the first unsafe ratio: noise must not pick a ratio past it.
    safe = np.logical_and.accumulate(under)
    table = table.assign(safe=safe)
    meets = bool(safe[0])
    best = float(table.loc[safe, "ratio"].iloc[-1]) if meets else float(table["ratio"].iloc[0])
    return Advice(target_abandon_rate, best, meets, table)


def expected_outcomes(
    inputs: PacingInputs, candidates: Sequence[float] | None = None, run: ModelRun = ModelRun()
) -> pd.DataFrame:
    """Expected abandon rate (with its upper bound) and agent idle share at each ratio.

    Cached: the model is seeded, so the same figures give the same table, and a page that
    switches targets only selects again from it.
    """
    ratios = default_candidates(inputs, run) if candidates is None else tuple(sorted({float(c) for c in candidates}))
    if not ratios or ratios[0] <= 0:
        raise ValueError("candidate ratios must be positive")
    return _expected_outcomes(inputs, ratios, run).copy()


@lru_cache(maxsize=128)
def _expected_outcomes(inputs: PacingInputs, ratios: tuple[float, ...], run: ModelRun) -> pd.DataFrame:
    abandoned, contacts, idle = _simulate(inputs, np.asarray(ratios, dtype=float), run)
    rows = []
    for i, ratio in enumerate(ratios):
        pooled_abandoned, pooled_contacts = int(abandoned[i].sum()), int(contacts[i].sum())
        rows.append(
            {
                "ratio": ratio,
                "abandon_rate": pooled_abandoned / pooled_contacts if pooled_contacts else float("nan"),
                "abandon_rate_upper": max(
                    _wilson_upper(pooled_abandoned, pooled_contacts), _replica_upper(abandoned[i], contacts[i])
                ),
                "idle_share": float(idle[i]),
                "contacts": pooled_contacts,
                "abandoned": pooled_abandoned,
            }
        )
    return pd.DataFrame(rows)


def _wilson_upper(successes: int, trials: int) -> float:
    interval = wilson_interval(successes, trials)
    return 1.0 if interval is None else interval[1]


def _replica_upper(abandoned: np.ndarray, contacts: np.ndarray, z: float = Z_95) -> float:
    """The pooled rate plus z standard errors, the error taken from the spread between
    replicas, so bursts of abandons within one replica widen the bound."""
    n = len(contacts)
    total = contacts.sum()
    if n < 2 or total == 0:
        return 1.0
    rate = abandoned.sum() / total
    residual = abandoned - rate * contacts
    standard_error = math.sqrt((residual**2).sum() / (n - 1) / n) / (total / n)
    return rate + z * standard_error


# -- the Monte-Carlo model ---------------------------------------------------------------

#: Draws use a table of this many equally likely whole-second durations per distribution.
TABLE_SIZE = 4096


@lru_cache(maxsize=64)
def _duration_table(mean: float, quantiles: tuple[float, ...], fallback, extra: float = 0.0) -> np.ndarray:
    """TABLE_SIZE equally likely durations, each ``extra`` + a draw rounded up to whole
    seconds (the dialer looks once a second), at least one second. The draws follow the
    measured quantiles, joined linearly, or ``fallback`` (its extreme tail cut at the
    99.9th percentile); either way rescaled to the measured mean, because straight lines
    misplace the mass of a long tail. Drawing is then one table lookup."""
    if quantiles:
        levels, values = np.asarray(QUANTILE_LEVELS), np.maximum.accumulate(np.asarray(quantiles, dtype=float))
    else:
        levels = np.linspace(0.0, 1.0, 1001)
        values = np.quantile(fallback(np.random.default_rng(0), mean, 50_000), np.minimum(levels, 0.999))
    seconds = np.interp((np.arange(TABLE_SIZE) + 0.5) / TABLE_SIZE, levels, values)
    seconds *= mean / seconds.mean() if seconds.mean() > 0 else 1.0
    return np.maximum(np.ceil(extra + seconds), 1).astype(np.int64)


def _gamma(rng, mean: float, size: int) -> np.ndarray:
    return rng.gamma(1 / RING_CV**2, mean * RING_CV**2, size)


def _lognormal(rng, mean: float, size: int) -> np.ndarray:
    sigma2 = math.log1p(TALK_CV * TALK_CV)
    return rng.lognormal(math.log(mean) - sigma2 / 2, math.sqrt(sigma2), size)


class _Stream:
    """Pre-drawn random values handed out in order: one numpy call per block instead of
    several per simulated second."""

    def __init__(self, draw, block: int):
        self.draw, self.block = draw, block
        self.parts = draw(block)
        self.at = 0

    def take(self, n: int):
        if self.at + n > len(self.parts[0]):
            fresh = self.draw(max(self.block, n))
            self.parts = tuple(np.concatenate([old[self.at :], new]) for old, new in zip(self.parts, fresh))
            self.at = 0
        taken = tuple(part[self.at : self.at + n] for part in self.parts)
        self.at += n
        return taken


def _simulate(inputs: PacingInputs, ratios: np.ndarray, run: ModelRun):
    """Step every (ratio, replica) column together, one second at a time. Per ratio:
    abandons and live answers per replica, and the idle share."""
    rng = np.random.default_rng(run.seed)
    replicas = run.replicas(inputs)
    ratio = np.repeat(ratios, replicas)
    width, agents = len(ratio), inputs.agents
    columns = np.arange(width)

    handle_table = _duration_table(inputs.talk_seconds, inputs.talk_quantiles, _lognormal, inputs.wrap_seconds)
    contact_ring_table = _duration_table(inputs.contact_ring_seconds, inputs.contact_ring_quantiles, _gamma)
    other_ring_table = _duration_table(inputs.other_ring_seconds, inputs.other_ring_quantiles, _gamma)
    ring_span = int(max(contact_ring_table.max(), other_ring_table.max())) + 1
    handle_span = int(handle_table.max()) + 1

    def handles(size):
        return (handle_table[(rng.random(size) * TABLE_SIZE).astype(np.intp)], np.ones(size, dtype=np.int16))

    def lines(size):
        reached = rng.random(size) < inputs.contact_rate
        pick = (rng.random(size) * TABLE_SIZE).astype(np.intp)
        return (
            np.where(reached, contact_ring_table[pick], other_ring_table[pick]),
            np.ones(size, dtype=np.int16),
            reached.astype(np.int16),
        )

    handle_stream = _Stream(handles, 1 << 15)
    line_stream = _Stream(lines, 1 << 16)

    # Circular buffers indexed (second mod span) * width + column: what happens when.
    # int16 keeps the long handle-time buffer small (and in cache); no count gets near 2**15.
    # np.add.at is only fast when the added values already have the buffer's dtype.
    frees_due = np.zeros(handle_span * width, dtype=np.int16)  # agents finishing a call
    lines_due = np.zeros(ring_span * width, dtype=np.int16)  # lines that stop ringing
    answers_due = np.zeros(ring_span * width, dtype=np.int16)  # ... and of those, live answers
    on_hold = np.zeros((HOLD_SECONDS, width), dtype=np.int64)  # row k: answered k + 1 seconds ago
    ringing = np.zeros(width, dtype=np.int64)

    # Start in a steady-ish state: every agent mid-call, with the residual time a random
    # observer would see (length-biased handle time × uniform), so one handle time of
    # warm-up is enough.
    started = rng.choice(handle_table, size=agents * width, p=handle_table / handle_table.sum())
    residual = np.maximum(1, np.ceil(rng.random(agents * width) * started)).astype(np.int64)
    np.add.at(frees_due, residual * width + np.tile(columns, agents), np.ones(agents * width, dtype=np.int16))
    busy = np.full(width, agents, dtype=np.int64)

    warmup = int(math.ceil(inputs.handle_seconds))
    abandoned = np.zeros(width, dtype=np.int64)
    contacts = np.zeros(width, dtype=np.int64)
    free_seconds = np.zeros(width, dtype=np.int64)

    for second in range(warmup + run.seconds):
        counting = second >= warmup
        at = (second % handle_span) * width
        busy -= frees_due[at : at + width]
        frees_due[at : at + width] = 0
        free = agents - busy
        for age in range(HOLD_SECONDS - 1, -1, -1):  # oldest first
            served = np.minimum(on_hold[age], free)
            free -= served
            on_hold[age] -= served
        at = (second % ring_span) * width
        answered = answers_due[at : at + width].astype(np.int64)
        served = np.minimum(answered, free)
        free -= served
        if counting:  # the oldest row still waiting has had its two seconds: dropped
            abandoned += on_hold[HOLD_SECONDS - 1]
            contacts += answered
            free_seconds += free
        on_hold[1:] = on_hold[:-1]
        on_hold[0] = answered - served
        ringing -= lines_due[at : at + width]
        answers_due[at : at + width] = 0
        lines_due[at : at + width] = 0

        taken = agents - free - busy  # agents who took a call this second
        busy += taken
        assigned = int(taken.sum())
        if assigned:
            offsets, ones = handle_stream.take(assigned)
            np.add.at(frees_due, ((second + offsets) % handle_span) * width + np.repeat(columns, taken), ones)

        dials = np.maximum(np.ceil(free * ratio).astype(np.int64) - ringing, 0)
        ringing += dials
        total = int(dials.sum())
        if total:
            offsets, ones, reached = line_stream.take(total)
            where = ((second + offsets) % ring_span) * width + np.repeat(columns, dials)
            np.add.at(lines_due, where, ones)
            np.add.at(answers_due, where, reached)

    shape = (len(ratios), replicas)
    idle = free_seconds.reshape(shape).sum(axis=1) / (agents * run.seconds * replicas)
    return abandoned.reshape(shape), contacts.reshape(shape), idle


# -- live figures from the warehouse -------------------------------------------------------

#: Wrap-up (after-call work) is not in the call events, so it is an assumption. Every gap
#: between one agent's calls is wrap-up plus idle time, though, so the shortest gaps
#: bound it: an assumption above them is cut to them.
MIN_GAPS = 20
GAP_EDGE_QUANTILE = 0.02


@dataclass(frozen=True)
class LiveFigures:
    """One campaign's attempts in a window, summed the way core.metrics defines them,
    plus the times the model needs. Rates and means are None without a denominator."""

    campaign: str
    start: datetime
    end: datetime
    dials: int
    contacts: int
    connected: int
    abandoned: int
    contact_rate: float | None
    abandon_rate: float | None
    talk_seconds: float | None  # AHT: talk seconds / connected calls
    contact_ring_seconds: float | None  # mean ring of live answers
    other_ring_seconds: float | None  # mean ring of the dials nobody answered
    agents: int  # distinct agents who took a call in the window
    wrap_seconds: float
    wrap_source: str  # how wrap_seconds was found, in words
    talk_quantiles: tuple[float, ...] = ()
    contact_ring_quantiles: tuple[float, ...] = ()
    other_ring_quantiles: tuple[float, ...] = ()

    @property
    def planning_contact_rate(self) -> float | None:
        """The contact rate the advice plans with: the upper end of its 95 % Wilson interval.
        An hour of dials pins the rate down to a few per cent, and the abandon rate is
        steep in it (a 6 % higher contact rate gave about 30 % more abandons at a big
        team's 3 % ratio), so the advice takes the pessimistic end."""
        if self.contact_rate is None:
            return None
        return _wilson_upper(self.contacts, self.dials)

    def inputs(self, agents: int | None = None) -> PacingInputs | None:
        """The model's inputs, ``agents`` overriding the measured count; None while the
        window has no contact rate, talk time or ring times to go on."""
        agents = self.agents if agents is None else int(agents)
        contact_rate, planning_contact_rate = self.contact_rate, self.planning_contact_rate
        talk, contact_ring, other_ring = self.talk_seconds, self.contact_ring_seconds, self.other_ring_seconds
        if (
            agents < 1
            or contact_rate is None
            or planning_contact_rate is None
            or talk is None
            or contact_ring is None
            or other_ring is None
            or not 0 < contact_rate < 1
            or min(talk, contact_ring, other_ring) <= 0
        ):
            return None
        return PacingInputs(
            agents=agents,
            contact_rate=planning_contact_rate,
            talk_seconds=talk,
            wrap_seconds=self.wrap_seconds,
            contact_ring_seconds=contact_ring,
            other_ring_seconds=other_ring,
            talk_quantiles=self.talk_quantiles,
            contact_ring_quantiles=self.contact_ring_quantiles,
            other_ring_quantiles=self.other_ring_quantiles,
        )


def live_figures(
    client: Client,
    campaign: str,
    at: datetime,
    window_minutes: int = 60,
    assumed_wrap_seconds: float = DEFAULT_WRAP_SECONDS,
) -> LiveFigures:
    """The campaign's attempts that ended in [at − window, at), read from call_attempts.

    An attempt's event time is when it ended, so in a steady window each kind of call
    is counted at the rate it is dialled. The ratio the dialer ran is not in the events.
    """
    end = _utc(at)
    start = end - timedelta(minutes=window_minutes)
    row = pacing_window(client, campaign, start, end, QUANTILE_LEVELS)
    sums = {name: float(row[name]) for name in COUNTERS}
    rates = compute_rates(sums)
    wrap, wrap_source = _wrap_up(client, campaign, start, end, assumed_wrap_seconds)
    return LiveFigures(
        campaign=campaign,
        start=start,
        end=end,
        dials=int(sums["dials"]),
        contacts=int(sums["contacts"]),
        connected=int(sums["connected"]),
        abandoned=int(sums["abandoned"]),
        contact_rate=rates["contact_rate"],
        abandon_rate=rates["abandon_rate"],
        talk_seconds=rates["aht_seconds"],
        contact_ring_seconds=_number(row["contact_ring"]),
        other_ring_seconds=_number(row["other_ring"]),
        agents=int(row["agents"]),
        wrap_seconds=wrap,
        wrap_source=wrap_source,
        talk_quantiles=_quantiles(row["talk_q"], sums["connected"]),
        contact_ring_quantiles=_quantiles(row["contact_ring_q"], sums["contacts"]),
        other_ring_quantiles=_quantiles(row["other_ring_q"], sums["dials"] - sums["contacts"]),
    )


def _wrap_up(client: Client, campaign: str, start: datetime, end: datetime, assumed: float) -> tuple[float, str]:
    """The wrap-up in seconds, and where it came from, in words."""
    gaps, gap_edge = agent_gaps(client, campaign, start, end, GAP_EDGE_QUANTILE)
    if gaps >= MIN_GAPS and gap_edge < assumed:
        return float(gap_edge), f"assumed {assumed:g} s, cut to the shortest gaps between an agent's calls"
    return float(assumed), f"assumed {assumed:g} s: not in the call events"


def live_pacing_inputs(
    client: Client, campaign: str, at: datetime, window_minutes: int = 60, agents: int | None = None
) -> PacingInputs | None:
    """The model's inputs from the campaign's last window (see live_figures); None without data."""
    return live_figures(client, campaign, at, window_minutes).inputs(agents)


def _quantiles(values, count: float) -> tuple[float, ...]:
    # A distribution read from a handful of calls is noise; the model then assumes a shape.
    return tuple(round(float(v), 3) for v in values) if count >= MIN_DISTRIBUTION_CALLS else ()


def _number(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
