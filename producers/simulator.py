"""A predictive-dialer simulator that produces realistic call attempts in event time.

Each campaign has agents, a list of a certain quality and a pacing ratio. Every
simulated second the dialer keeps ``ratio`` lines ringing per free agent. A person
who answers while no agent is free waits up to two seconds and is then dropped:
an abandoned call. Before that, each campaign's dialer takes a moment of its own to
tell a person from a machine and bridge the call (its connect delay), which the
wait a call reports includes: a campaign with slow answer detection connects some
calls after more than the FTC's two seconds, so it can be over 3 % for the FTC while
dropping under 3 % ("broadband-upgrade"). Contact probability depends on the lead's segment and the local
time slot, as in the design notes (seniors are home in the morning, salaried
workers at night). One campaign ("credit-card-winback") is paced aggressively in
bursts, so its abandon rate drifts above 3 % now and then, as a careless
supervisor's would.

Like a real dialer it keeps to the calling hours of each campaign's [calling_hours] profile on
the callee's clock: its list is Japanese mobiles, and while Japan may not be called it dials
its London and New York numbers instead, whichever may be called; with none it does not dial.
"""

from __future__ import annotations

import heapq
import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from core.config import CallingHoursConfig, load_settings
from core.privacy import callee_timezone, hash_phone
from core.schema import SCHEMA_VERSION, AgentState, AgentStateChange, CallAttempt, DialerState, Event, Lead, Outcome
from core.slots import SlotRules

SEGMENTS = ("seniors", "homemakers", "working_women", "students", "salaried")
SEGMENT_WEIGHTS = (0.25, 0.2, 0.15, 0.1, 0.3)

# Probability that a dial reaches a live person, by segment and slot, before list quality.
CONTACT_PROBABILITY = {
    "seniors": {"morning": 0.32, "midday": 0.28, "evening": 0.18, "night": 0.12, "off_hours": 0.08},
    "homemakers": {"morning": 0.18, "midday": 0.30, "evening": 0.20, "night": 0.12, "off_hours": 0.07},
    "working_women": {"morning": 0.07, "midday": 0.08, "evening": 0.25, "night": 0.22, "off_hours": 0.06},
    "students": {"morning": 0.06, "midday": 0.08, "evening": 0.24, "night": 0.18, "off_hours": 0.10},
    "salaried": {"morning": 0.05, "midday": 0.06, "evening": 0.12, "night": 0.28, "off_hours": 0.06},
}
# How a dial that reaches nobody ends.
NON_CONTACT_MIX = (
    (Outcome.NO_ANSWER, 0.55),
    (Outcome.BUSY, 0.10),
    (Outcome.MACHINE, 0.25),
    (Outcome.INVALID_NUMBER, 0.10),
)
# Agent teams (VICIdial user groups); each campaign is worked by the floors in its own proportion.
TEAMS = ("tokyo-floor", "osaka-floor", "remote")
TEAM_WEIGHTS = {
    "home-insurance": (0.5, 0.3, 0.2),
    "broadband-upgrade": (0.2, 0.6, 0.2),
    "charity-giving": (0.0, 0.0, 1.0),
    "credit-card-winback": (0.6, 0.2, 0.2),
}
ABANDON_HOLD_SECONDS = 2.0  # regulators allow a 2-second wait for an agent before the drop
WRAP_UP_SECONDS = 15.0
# The floor (with floor=True): after a call an agent takes a break now and then; after a shift
# it logs out for a rest, then logs in again. Shifts are staggered by agent.
BREAK_PROBABILITY = 0.02
BREAK_SECONDS = (300.0, 900.0)
SHIFT_SECONDS = 4 * 3600.0
REST_SECONDS = 1800.0
# An agent idle this long sends its state again, so the worker never times a waiting agent out.
HEARTBEAT_AFTER_SECONDS = 120.0
SNAPSHOT_EVERY_SECONDS = 5.0
LIST_SIZE = 200_000  # dialable leads each campaign starts with
# The home list: Japanese mobiles (+81 90), as prefix and random digits after it, and where they
# are: the dialer keeps to Tokyo's clock for all of them, also those whose zone the producer
# cannot read from the number (they carry none, and the worker cannot judge them).
HOME_NUMBERS = ("+8190", 8)
HOME_ZONE = "Asia/Tokyo"
# Numbers abroad the dialer calls while Japan may not be called: London (+44 20 7946 0xxx) and
# New York (+1 212 555 01xx) landlines, fictional ranges that libphonenumber places in one zone
# each. With Tokyo, some of the three is inside 08:00-21:00 at every hour, summer time or not.
ABROAD_NUMBERS = (("+442079460", 3), ("+121255501", 2))
# A dial is placed only if the callee's clock is inside the hours this long before and after it:
# the worker dates a dial from the event (its end less ring, wait and talk, rounded), which can
# put a dial on the hour a few milliseconds to the wrong side of it.
DIAL_MARGIN = timedelta(seconds=1)


@dataclass(frozen=True)
class CampaignProfile:
    name: str
    agents: int
    lines_per_free_agent: float
    list_quality: float  # multiplies contact probability
    conversion: float  # order probability for an average lead who talks to an agent
    mean_talk_seconds: float
    # Every drift_period seconds, for drift_length seconds, pacing jumps by drift_factor.
    drift_period: float = 0.0
    drift_length: float = 0.0
    drift_factor: float = 1.0
    # The response model decays: over this many simulated hours, orders stop following
    # the lead's score and fall to the campaign's average rate (0 = the model holds).
    model_decay_hours: float = 0.0
    # The dialer's connect delay: from the called person's greeting until an agent could be on the
    # line (answer detection listening for the silence after a greeting, then the bridge), before
    # any wait for a free agent. Lognormal with this median (seconds) and spread (sigma of its
    # log); 0 connects the moment an agent is free. It is carved out of the ring the call
    # reports, so the line's time, the agents and every other draw are the same with it or without.
    connect_delay_median: float = 0.0
    connect_delay_spread: float = 0.4

    def connect_delay(self, rng: random.Random, ring: float) -> float:
        """One call's connect delay, at most ``ring`` - 1 s (the ring it is carved from keeps 1 s)."""
        if not self.connect_delay_median:
            return 0.0
        return min(rng.lognormvariate(math.log(self.connect_delay_median), self.connect_delay_spread), ring - 1.0)

    def order_probability(self, response_score: float, sim_seconds: float) -> float:
        """Scores are calibrated (P(order | a person talks to an agent)) until the model decays."""
        decay = min(1.0, sim_seconds / (self.model_decay_hours * 3600)) if self.model_decay_hours else 0.0
        return min(0.9, (1.0 - decay) * response_score + decay * self.conversion)

    def lines_per_agent_at(self, sim_seconds: float) -> float:
        # Drift comes at the end of each period, so a run starts with sane pacing.
        if self.drift_period and (sim_seconds % self.drift_period) >= self.drift_period - self.drift_length:
            return self.lines_per_free_agent * self.drift_factor
        return self.lines_per_free_agent


DEFAULT_CAMPAIGNS = (
    CampaignProfile(
        "home-insurance",
        agents=20,
        lines_per_free_agent=2.6,
        list_quality=1.0,
        conversion=0.12,
        mean_talk_seconds=190,
        connect_delay_median=0.5,
    ),
    # Slow answer detection: about one call in twenty connects after more than 2 s, so the campaign
    # drops about 1 % yet runs over 3 % for the FTC.
    CampaignProfile(
        "broadband-upgrade",
        agents=14,
        lines_per_free_agent=2.9,
        list_quality=0.8,
        conversion=0.09,
        mean_talk_seconds=150,
        model_decay_hours=24,
        connect_delay_median=1.1,
        connect_delay_spread=0.35,
    ),
    CampaignProfile(
        "charity-giving",
        agents=8,
        lines_per_free_agent=1.8,
        list_quality=1.1,
        conversion=0.18,
        mean_talk_seconds=120,
        connect_delay_median=0.4,
    ),
    # Bridges at once: its trouble is its pacing, so its FTC and dialer figures are the same.
    CampaignProfile(
        "credit-card-winback",
        agents=16,
        lines_per_free_agent=3.5,
        list_quality=0.65,
        conversion=0.07,
        mean_talk_seconds=170,
        drift_period=2 * 3600,
        drift_length=1800,
        drift_factor=1.8,
    ),
)


@dataclass(order=True)
class _Pending:
    emit_at: float
    seq: int
    attempt: Event = field(compare=False)


@dataclass
class _CampaignState:
    profile: CampaignProfile
    agent_free_at: list[tuple[float, int]]  # min-heap of (time each agent becomes free, agent number)
    ringing: list[tuple[float, int, dict]] = field(default_factory=list)  # live answers, by answer time
    lines_busy_until: list[float] = field(default_factory=list)  # every dialled line still ringing
    # The floor, per agent number: its latest scheduled state, when that was, when its shift began.
    agent_states: list[AgentState] = field(default_factory=list)
    agent_state_at: list[float] = field(default_factory=list)
    shift_start: list[float] = field(default_factory=list)
    agent_teams: list[str] = field(default_factory=list)
    waiting: list[tuple[float, float]] = field(default_factory=list)  # answered calls waiting: (until, since)
    dials: int = 0


class DialerSimulator:
    """Generates call attempts in event-time order from ``start``, deterministically per seed."""

    def __init__(
        self,
        slot_rules: SlotRules,
        hmac_key: bytes,
        *,
        seed: int = 7,
        start: datetime | None = None,
        campaigns=DEFAULT_CAMPAIGNS,
        agents_scale: float = 1.0,
        floor: bool = False,
        calling_hours: CallingHoursConfig | None = None,
    ):
        """``floor``: also emit each agent's agent_state events (log in, on call, wrap-up,
        breaks, log out) and a dialer_state snapshot per campaign every few seconds.
        ``calling_hours``: the campaigns' allowed hours (default: the configuration's)."""
        self.rng = random.Random(seed)
        # Teams draw from their own stream so adding them left every seeded call as it was.
        self.team_rng = random.Random(f"teams-{seed}")
        # So do the connect delays: with them, each seeded call keeps its outcome, agent and times.
        self.connect_rng = random.Random(f"connect-{seed}")
        # And the numbers abroad, so every call Japan may take is the same seeded call as before.
        self.callee_rng = random.Random(f"callees-{seed}")
        self.calling_hours = calling_hours if calling_hours is not None else load_settings().calling_hours
        self._zones: dict[str, ZoneInfo] = {}
        self.slot_rules = slot_rules
        self.hmac_key = hmac_key
        self.start = (start or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(microsecond=0)
        self.campaigns = [
            _CampaignState(profile, [(0.0, agent) for agent in range(max(1, round(profile.agents * agents_scale)))])
            for profile in campaigns
        ]
        self._seq = 0
        self._pending: list[_Pending] = []
        self.now = 0.0  # simulated seconds since start
        self.floor = floor
        # The floor draws from its own stream, so the seeded calls are the same with it or without.
        self.floor_rng = random.Random(f"floor-{seed}")
        for state in self.campaigns:
            count = len(state.agent_free_at)
            state.agent_states = ["logged_out"] * count
            state.agent_state_at = [0.0] * count
            # Staggered shifts: agent k's first shift is shorter, so they do not all rest at once.
            state.shift_start = [-SHIFT_SECONDS * agent / count for agent in range(count)]
            weights = TEAM_WEIGHTS.get(state.profile.name, (1, 1, 1))
            state.agent_teams = [self.floor_rng.choices(TEAMS, weights)[0] for _ in range(count)]
            if floor:
                for agent in range(count):
                    self._agent_event(state, agent, "available", 0.0)  # log in

    # -- the model -------------------------------------------------------------------
    def _new_lead(self, profile: CampaignProfile) -> dict | None:
        """The next lead to dial now: the home list's, or while its callee may not be called, one
        abroad who may (None: nobody may be called now, so the line stays idle)."""
        segment = self.rng.choices(SEGMENTS, SEGMENT_WEIGHTS)[0]
        prefix, digits = HOME_NUMBERS
        phone = prefix + "".join(self.rng.choice("0123456789") for _ in range(digits))
        # Beta(2, 8) has mean 0.2; scaled so the scores average the campaign's conversion.
        score = round(self.rng.betavariate(2, 8), 4) * profile.conversion / 0.2
        zone = callee_timezone(phone)
        if not self._may_call(profile.name, zone or HOME_ZONE):
            abroad = self._callee_abroad(profile.name)
            if abroad is None:
                return None
            phone, zone = abroad
        return {
            "segment": segment,
            "response_score": round(min(1.0, score), 4),
            "phone_hash": hash_phone(phone, self.hmac_key),
            # Read from the number before it is hashed, for the calling-hours rule; not part of Lead.
            "callee_timezone": zone,
        }

    def _may_call(self, campaign: str, zone: str) -> bool:
        """Whether the campaign's profile allows a dial now (and DIAL_MARGIN either side) on the
        callee's clock."""
        tz = self._zones.get(zone)
        if tz is None:
            tz = self._zones[zone] = ZoneInfo(zone)
        _, profile = self.calling_hours.profile_for(campaign)
        now = self.start + timedelta(seconds=self.now)
        return all(profile.allows((now + offset).astimezone(tz)) for offset in (-DIAL_MARGIN, DIAL_MARGIN))

    def _callee_abroad(self, campaign: str) -> tuple[str, str] | None:
        """A number abroad the campaign may call now and its zone, from a region picked at random
        among those it may; None if it may call none."""
        regions = list(ABROAD_NUMBERS)
        self.callee_rng.shuffle(regions)
        for prefix, digits in regions:
            phone = prefix + "".join(self.callee_rng.choice("0123456789") for _ in range(digits))
            zone = callee_timezone(phone)
            if zone is not None and self._may_call(campaign, zone):
                return phone, zone
        return None

    def _dial(self, state: _CampaignState) -> None:
        profile = state.profile
        lead = self._new_lead(profile)
        if lead is None:
            return
        state.dials += 1
        slot = self.slot_rules.slot_for(self.start + timedelta(seconds=self.now))
        p_contact = min(0.95, CONTACT_PROBABILITY[lead["segment"]].get(slot, 0.08) * profile.list_quality)
        if self.rng.random() < p_contact:
            ring = self.rng.uniform(4, 18)
            heapq.heappush(state.lines_busy_until, self.now + ring)
            heapq.heappush(state.ringing, (self.now + ring, self._next_seq(), {"lead": lead, "ring": ring}))
            return
        outcome = self._choose_non_contact(profile)
        ring = {
            Outcome.NO_ANSWER: lambda: self.rng.uniform(20, 30),
            Outcome.BUSY: lambda: self.rng.uniform(1, 4),
            Outcome.MACHINE: lambda: self.rng.uniform(6, 16),
            Outcome.INVALID_NUMBER: lambda: self.rng.uniform(0.5, 3),
        }[outcome]()
        heapq.heappush(state.lines_busy_until, self.now + ring)
        self._emit(profile, lead, outcome, ring=ring, end=self.now + ring)

    def _choose_non_contact(self, profile: CampaignProfile) -> Outcome:
        # Poorer lists carry more dead numbers.
        weights = [w * (1.0 / profile.list_quality if o is Outcome.INVALID_NUMBER else 1.0) for o, w in NON_CONTACT_MIX]
        return self.rng.choices([o for o, _ in NON_CONTACT_MIX], weights)[0]

    def _answer(self, state: _CampaignState, call: dict) -> None:
        """A live answer reaches the dialer's queue now: an agent free within ABANDON_HOLD_SECONDS
        takes it, else it is dropped. The call reports its connect delay as wait, not ring."""
        profile = state.profile
        delay = profile.connect_delay(self.connect_rng, call["ring"])
        ring = call["ring"] - delay
        free_at, agent = state.agent_free_at[0]
        wait = max(0.0, free_at - self.now)
        if wait > 0:
            state.waiting.append((self.now + min(wait, ABANDON_HOLD_SECONDS), self.now))
        if wait > ABANDON_HOLD_SECONDS:
            self._emit(
                profile,
                call["lead"],
                Outcome.ABANDONED,
                ring=ring,
                wait=round(delay + ABANDON_HOLD_SECONDS, 2),
                end=self.now + ABANDON_HOLD_SECONDS,
            )
            return
        talk = self.rng.lognormvariate(math.log(profile.mean_talk_seconds) - 0.18, 0.6)
        talk = round(min(talk, 1800.0), 1)
        free_at = self.now + wait + talk + WRAP_UP_SECONDS
        if self.floor:
            free_at = self._agent_cycle(state, agent, self.now + wait, talk, free_at)
        heapq.heapreplace(state.agent_free_at, (free_at, agent))
        ordered = self.rng.random() < profile.order_probability(call["lead"]["response_score"], self.now)
        order_value = round(self.rng.uniform(30, 300), 2) if ordered else 0.0
        self._emit(
            profile,
            call["lead"],
            Outcome.CONNECTED,
            ring=ring,
            wait=round(delay + wait, 2),
            talk=talk,
            end=self.now + wait + talk,
            order=ordered,
            order_value=order_value,
            agent=f"{profile.name}-{agent + 1:02d}",
        )

    def _emit(
        self,
        profile: CampaignProfile,
        lead: dict,
        outcome: Outcome,
        *,
        ring: float,
        end: float,
        wait: float = 0.0,
        talk: float = 0.0,
        order: bool = False,
        order_value: float = 0.0,
        agent: str | None = None,
    ) -> None:
        lead = dict(lead)
        zone = lead.pop("callee_timezone", None)
        attempt = CallAttempt(
            schema_version=SCHEMA_VERSION,
            event_id=str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            campaign=profile.name,
            event_time=self.start + timedelta(seconds=round(end, 3)),
            outcome=outcome,
            lead=Lead(**lead),
            callee_timezone=zone,
            ring_seconds=round(ring, 2),
            wait_seconds=wait,
            talk_seconds=talk,
            order=order,
            order_value=order_value,
            agent=agent,
            team=self.team_rng.choices(TEAMS, TEAM_WEIGHTS.get(profile.name, (1, 1, 1)))[0],
        )
        heapq.heappush(self._pending, _Pending(end, self._next_seq(), attempt))

    # -- the floor --------------------------------------------------------------------
    def _agent_name(self, profile: CampaignProfile, agent: int) -> str:
        return f"{profile.name}-{agent + 1:02d}"

    def _agent_span(self, state: _CampaignState, agent: int, new_state: AgentState, start: float, end: float) -> None:
        """``new_state`` from ``start`` to ``end``, sent again every HEARTBEAT_AFTER_SECONDS
        meanwhile (a dialer's live view repeats an agent's state; a long call is no silence)."""
        at = start
        while at < end:
            self._agent_event(state, agent, new_state, at)
            at += HEARTBEAT_AFTER_SECONDS

    def _agent_event(self, state: _CampaignState, agent: int, new_state: AgentState, at: float) -> None:
        """Schedule agent ``agent``'s move to ``new_state`` at ``at`` simulated seconds."""
        profile = state.profile
        state.agent_states[agent] = new_state
        state.agent_state_at[agent] = at
        event = AgentStateChange(
            schema_version=SCHEMA_VERSION,
            event_id=str(uuid.UUID(int=self.floor_rng.getrandbits(128), version=4)),
            campaign=profile.name,
            event_time=self.start + timedelta(seconds=round(at, 3)),
            agent=self._agent_name(profile, agent),
            state=new_state,
            team=state.agent_teams[agent],
        )
        heapq.heappush(self._pending, _Pending(at, self._next_seq(), event))

    def _agent_cycle(self, state: _CampaignState, agent: int, call_start: float, talk: float, free_at: float) -> float:
        """One call's agent events: on call, wrap-up, then available, a break or the shift's end.
        Returns when the agent takes its next call."""
        self._agent_span(state, agent, "on_call", call_start, call_start + talk)
        self._agent_span(state, agent, "wrap_up", call_start + talk, free_at)
        if free_at - state.shift_start[agent] >= SHIFT_SECONDS:
            self._agent_event(state, agent, "logged_out", free_at)
            free_at += REST_SECONDS
            state.shift_start[agent] = free_at
        elif self.floor_rng.random() < BREAK_PROBABILITY:
            pause = self.floor_rng.uniform(*BREAK_SECONDS)
            self._agent_span(state, agent, "paused", free_at, free_at + pause)
            free_at += pause
        self._agent_event(state, agent, "available", free_at)
        return free_at

    def _floor_tick(self, state: _CampaignState) -> None:
        """Heartbeats for agents idle a while (paused ones too), and the dialer's snapshot."""
        for agent, current in enumerate(state.agent_states):
            since = state.agent_state_at[agent]
            if current != "logged_out" and self.now - since >= HEARTBEAT_AFTER_SECONDS:
                self._agent_event(state, agent, current, self.now)
        state.waiting = [(until, since) for until, since in state.waiting if until > self.now]
        longest = max((self.now - since for _, since in state.waiting), default=None)
        snapshot = DialerState(
            schema_version=SCHEMA_VERSION,
            event_id=str(uuid.UUID(int=self.floor_rng.getrandbits(128), version=4)),
            campaign=state.profile.name,
            event_time=self.start + timedelta(seconds=self.now),
            dial_level=round(state.profile.lines_per_agent_at(self.now), 2),
            calls_ringing=len(state.lines_busy_until),
            calls_waiting=len(state.waiting),
            longest_wait_seconds=None if longest is None else round(longest, 2),
            dialable_leads=max(0, LIST_SIZE - state.dials),
        )
        heapq.heappush(self._pending, _Pending(self.now, self._next_seq(), snapshot))

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _step(self) -> None:
        """Advance one simulated second: answers arrive, agents free up, the dialer paces."""
        for state in self.campaigns:
            while state.ringing and state.ringing[0][0] <= self.now:
                _, _, call = heapq.heappop(state.ringing)
                self._answer(state, call)
            while state.lines_busy_until and state.lines_busy_until[0] <= self.now:
                heapq.heappop(state.lines_busy_until)
            if self.floor and self.now % SNAPSHOT_EVERY_SECONDS == 0:
                self._floor_tick(state)
            free_agents = sum(1 for t, _ in state.agent_free_at if t <= self.now)
            target = math.ceil(free_agents * state.profile.lines_per_agent_at(self.now))
            for _ in range(max(0, target - len(state.lines_busy_until))):
                self._dial(state)
        self.now += 1.0

    # -- the output ------------------------------------------------------------------
    def events_until(self, sim_seconds: float) -> Iterator[Event]:
        """Every attempt (and with ``floor``, agent and dialer event) before ``sim_seconds``, in event-time order."""
        while self.now < sim_seconds:
            self._step()
            while self._pending and self._pending[0].emit_at < self.now - 1:
                yield heapq.heappop(self._pending).attempt

    def events(self, count: int | None = None, sim_seconds: float | None = None) -> Iterator[Event]:
        produced = 0
        horizon = sim_seconds if sim_seconds is not None else math.inf
        while self.now < horizon:
            for attempt in self.events_until(self.now + 60):
                yield attempt
                produced += 1
                if count is not None and produced >= count:
                    return
