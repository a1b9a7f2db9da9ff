"""The floor: each agent's current state from agent_state events, and the agent seconds per minute.

An agent's state is its latest event by *event* time: an event older than the agent's newest
never moves it back (a replay after a restart, or a producer's retry, changes nothing). An
agent silent for ``agents.timeout_seconds`` of its campaign's event time counts as logged out
from the moment the timeout ran out.

Time in a state is counted as additive agent seconds per (campaign, team, agent, minute):
logged in, available, on call, wrap-up and paused (core.metrics.AGENT_STATE_COUNTERS), an
interval split across the minutes it spans. Seconds are counted up to each event, and the
open state of every agent of a campaign up to the start of the campaign's newest minute, so a
minute's row is complete once its campaign's events have moved past it.

Accounting only ever moves forward (each agent's ``accounted_until``), so counting a replayed
event again adds nothing. A minute's full state lands with a version, with the agent's
``accounted_until``, before the batch's offsets (ReplacingMergeTree: a re-landing replaces);
on restart the agents and their open minutes are read back from the warehouse
(``restore``), and counting continues from what landed.

With several workers each holds only the agents of the campaigns on the partitions it owns
(events are keyed by campaign: core.topics.campaign_partition). When a rebalance takes a
partition away, its campaigns' agents are forgotten (``keep_only``); when it brings one, they
are read back from what the previous owner landed with its offsets (``restore`` with ``owns``),
so the new owner counts on from there and never over the old owner's rows with a stale copy.

An agent logged out (or timed out) for more than EVICT_AFTER_SECONDS of its campaign's event
time is forgotten once its rows have landed: it stays in agent_status, and a big floor's
worker does not keep every agent it ever saw. An event of an agent not in memory that is older
than its campaign's newest by more than that is refused as stale, so a late replay of a
forgotten agent's event cannot move its landed state back; a newer one logs it in afresh.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable

from core.handoff import FloorChanges
from core.metrics import AGENT_COUNTERS, AGENT_STATE_COUNTERS
from core.schema import AgentStateChange, DialerState

LOGGED_OUT = "logged_out"
EVICT_AFTER_SECONDS = 86_400.0  # a day logged out: forgotten from memory, kept in the warehouse
MinuteKey = tuple[str, str, int]  # campaign, team, minute (epoch s); the agent is the owner's


class Agent:
    """One agent's live state. A plain slotted class: a big floor has tens of thousands."""

    __slots__ = (
        "agent",
        "campaign",
        "team",
        "state",
        "state_since",
        "last_event",
        "accounted_until",
        "minutes",
        "changed_minutes",
        "status_changed",
    )

    def __init__(self, agent: str, campaign: str, team: str, state: str, at: float):
        self.agent = agent
        self.campaign = campaign
        self.team = team
        self.state = state
        self.state_since = at  # epoch s: when the current state began
        self.last_event = at  # epoch s: the newest event time seen for this agent
        self.accounted_until = at  # epoch s: seconds are counted up to here
        self.minutes: dict[MinuteKey, list[float]] = {}  # AGENT_COUNTERS per minute, not yet forgotten
        self.changed_minutes: set[MinuteKey] = set()  # counted into since they last landed
        self.status_changed = True

    @property
    def logged_in(self) -> bool:
        return self.state != LOGGED_OUT


class FloorState:
    """Every agent's state and open minutes, and the dialer snapshots of the current batch."""

    def __init__(self, timeout_seconds: float):
        self.timeout = float(timeout_seconds)
        self.agents: dict[str, Agent] = {}
        self.by_campaign: dict[str, set[str]] = {}  # campaign -> its agents (by their latest event)
        # campaign -> its newest floor event time (epoch s), and the minute its agents are counted to.
        self.watermarks: dict[str, float] = {}
        self._counted_to: dict[str, int] = {}
        self._moved: set[str] = set()
        self._changed: dict[str, Agent] = {}  # agents with rows to land
        # Campaigns whose logged-in agents changed (an agent's state, a timeout, an agent moving
        # in or out): their line-up lands in full with the next change (campaign_agents).
        self._lineups_changed: set[str] = set()
        self.snapshots: list[DialerState] = []
        self.stale_events = 0  # older than their agent's newest: counted as seen, changed nothing
        # The newest version landed: versions only grow, whatever the clock does between runs.
        self.version = 0
        self.timed_out = 0
        self.evicted = 0  # agents forgotten after EVICT_AFTER_SECONDS logged out

    # -- counting ------------------------------------------------------------------------
    def add(self, event: AgentStateChange) -> bool:
        """Apply one agent_state event; False if it was older than the agent's newest."""
        at = event.event_time.timestamp()
        campaign = event.campaign
        team = event.team or ""
        agent = self.agents.get(event.agent)
        if agent is None:
            if at < self.watermarks.get(campaign, -math.inf) - EVICT_AFTER_SECONDS:
                # An agent forgotten (or never seen) whose event is a day behind its campaign:
                # a late replay of a forgotten agent must not move its landed state back.
                self.stale_events += 1
                return False
            agent = self.agents[event.agent] = Agent(event.agent, campaign, team, event.state, at)
            self.by_campaign.setdefault(campaign, set()).add(event.agent)
            self._changed[event.agent] = agent
            self._lineups_changed.add(campaign)
            self._watermark(campaign, at)
            return True
        if at < agent.last_event or at < agent.state_since:
            # Older than the agent's newest event, or than the state it is in (a timeout decided
            # after that event: a replay of the agent's last event must not log it in again).
            self.stale_events += 1
            return False
        # The state changes at the event, or where counting already got to (an event a moment
        # behind its campaign's newest minute): seconds are never counted twice.
        effective = max(at, agent.accounted_until)
        self._account(agent, effective)
        if event.state != agent.state:
            agent.state = event.state
            agent.state_since = effective
        if campaign != agent.campaign:
            self._lineups_changed.add(agent.campaign)
            self.by_campaign.get(agent.campaign, set()).discard(event.agent)
            self.by_campaign.setdefault(campaign, set()).add(event.agent)
            agent.campaign = campaign
        agent.team = team
        agent.last_event = at
        agent.status_changed = True
        self._changed[event.agent] = agent
        self._lineups_changed.add(campaign)
        self._watermark(campaign, at)
        return True

    def add_snapshot(self, snapshot: DialerState) -> None:
        self.snapshots.append(snapshot)
        self._watermark(snapshot.campaign, snapshot.event_time.timestamp())

    def _watermark(self, campaign: str, at: float) -> None:
        if at > self.watermarks.get(campaign, -math.inf):
            self.watermarks[campaign] = at
            self._moved.add(campaign)

    def _account(self, agent: Agent, until: float) -> None:
        """Count the agent's current state from where counting got to up to ``until``; an agent
        silent past the timeout is logged out from the moment it ran out."""
        start = agent.accounted_until
        if until <= start:
            return
        if agent.state != LOGGED_OUT:
            expiry = agent.last_event + self.timeout
            if until > expiry:
                if expiry > start:
                    self._add_seconds(agent, start, expiry)
                agent.state = LOGGED_OUT
                agent.state_since = max(expiry, start)
                agent.status_changed = True
                self._lineups_changed.add(agent.campaign)
                self.timed_out += 1
            else:
                self._add_seconds(agent, start, until)
        agent.accounted_until = until
        self._changed[agent.agent] = agent

    def _add_seconds(self, agent: Agent, start: float, end: float) -> None:
        """Add [start, end) to the agent's minutes, split at each minute boundary."""
        indices = AGENT_STATE_COUNTERS[agent.state]
        minute = int(start // 60) * 60
        campaign, team = agent.campaign, agent.team
        while start < end:
            stop = min(end, minute + 60)
            key = (campaign, team, minute)
            counters = agent.minutes.get(key)
            if counters is None:
                counters = agent.minutes[key] = [0.0] * len(AGENT_COUNTERS)
            seconds = stop - start
            for index in indices:
                counters[index] += seconds
            agent.changed_minutes.add(key)
            start = stop
            minute += 60

    def advance(self) -> None:
        """Count every agent of each campaign whose events moved into a new minute up to that
        minute's start (timing out the silent ones): a quiet agent's minutes fill too."""
        for campaign in self._moved:
            minute = int(self.watermarks[campaign] // 60) * 60
            if minute <= self._counted_to.get(campaign, -1):
                continue
            self._counted_to[campaign] = minute
            agents = self.agents
            departed = []
            for name in self.by_campaign.get(campaign, ()):
                agent = agents[name]
                if agent.state != LOGGED_OUT:
                    self._account(agent, minute)
                elif agent.state_since < minute - EVICT_AFTER_SECONDS and self._landed(agent):
                    departed.append(name)
            for name in departed:
                self._forget(name)
        self._moved = set()

    def _landed(self, agent: Agent) -> bool:
        """Whether nothing of the agent is waiting to land."""
        return not agent.status_changed and not agent.changed_minutes and agent.agent not in self._changed

    def _forget(self, name: str) -> None:
        agent = self.agents.pop(name)
        self.by_campaign.get(agent.campaign, set()).discard(name)
        self.evicted += 1

    # -- landing ---------------------------------------------------------------------------
    def take_changes(self) -> FloorChanges:
        """The full state of every agent minute and status changed since the last call, the full
        line-up of every campaign whose logged-in agents changed, and the batch's dialer
        snapshots, stamped with one version."""
        self.advance()
        minutes: list[tuple] = []
        statuses: list[tuple] = []
        for agent in self._changed.values():
            for key in agent.changed_minutes:
                campaign, team, minute = key
                minutes.append((campaign, team, agent.agent, minute, tuple(agent.minutes[key]), agent.accounted_until))
            agent.changed_minutes = set()
            if agent.status_changed:
                statuses.append(
                    (agent.agent, agent.campaign, agent.team, agent.state, agent.state_since, agent.last_event)
                )
                agent.status_changed = False
        for agent in self._changed.values():  # finished minutes are landed with this change
            self._forget_finished(agent)
        self._changed = {}
        lineups = [self._lineup(campaign) for campaign in sorted(self._lineups_changed)]
        self._lineups_changed = set()
        snapshots, self.snapshots = self.snapshots, []
        self.version = max(time.time_ns(), self.version + 1)
        return FloorChanges(minutes, statuses, snapshots, self.version, lineups)

    def _lineup(self, campaign: str) -> tuple[str, list[str], list[str], list[float]]:
        """A campaign's logged-in agents as the wallboard's floor strip counts them: (campaign,
        agents, their states, their newest event times in epoch s), in agent order. A reader
        times an agent out against its own clock from its newest event time."""
        agents = sorted(
            (agent for name in self.by_campaign.get(campaign, ()) if (agent := self.agents[name]).logged_in),
            key=lambda agent: agent.agent,
        )
        return (
            campaign,
            [agent.agent for agent in agents],
            [agent.state for agent in agents],
            [agent.last_event for agent in agents],
        )

    @staticmethod
    def _forget_finished(agent: Agent) -> None:
        """Drop the minutes no more seconds can reach: counting never goes back before
        ``accounted_until``. They were taken for landing in the same change."""
        current = int(agent.accounted_until // 60) * 60
        for key in [key for key in agent.minutes if key[2] < current]:
            del agent.minutes[key]

    # -- restart and rebalance -------------------------------------------------------------------
    def restore(
        self,
        statuses: Iterable[tuple],
        minutes: Iterable[tuple],
        newest_version: int = 0,
        owns: Callable[[str], bool] | None = None,
    ) -> int:
        """Rebuild the agents from landed rows: statuses (agent, campaign, team, state,
        state_since, last_event, epoch s) and their latest minutes (campaign, team, agent, minute,
        counters..., accounted_until). Counting goes on from what landed: a replayed event is
        no newer than its agent's landed one, and changes nothing. With ``owns``, only the agents
        of the campaigns it owns (a partition this worker was just given); an agent already held
        whose newest event is at least as new as its landed one is kept. Returns the agents
        restored."""
        self.version = max(self.version, newest_version)
        moved = self._moved  # campaigns still to advance: none between batches
        restored: dict[str, Agent] = {}
        for name, campaign, team, state, state_since, last_event in statuses:
            if owns is not None and not owns(campaign):
                continue
            held = self.agents.get(name)
            if held is not None:
                if held.last_event >= last_event:
                    continue
                self.by_campaign.get(held.campaign, set()).discard(name)
                self._changed.pop(name, None)
            agent = Agent(name, campaign, team, state, last_event)
            agent.state_since = state_since
            agent.status_changed = False
            self.agents[name] = restored[name] = agent
            self.by_campaign.setdefault(campaign, set()).add(name)
            self._watermark(campaign, last_event)
        for campaign, team, name, minute, *rest in minutes:
            read_back = restored.get(name)
            if read_back is None:
                continue
            *counters, accounted_until = rest
            read_back.minutes[(campaign, team, int(minute))] = [float(value) for value in counters]
            read_back.accounted_until = max(read_back.accounted_until, accounted_until)
        for agent in restored.values():
            # Their line-ups land again with the next change: what landed before a stop may have
            # been the statuses without the line-up that goes beside them.
            self._lineups_changed.add(agent.campaign)
            self._watermark(agent.campaign, agent.accounted_until)
            self._counted_to[agent.campaign] = max(
                self._counted_to.get(agent.campaign, -1), int(agent.accounted_until // 60) * 60
            )
            self._forget_finished(agent)
        for name in [
            agent.agent
            for agent in restored.values()
            if agent.state == LOGGED_OUT and agent.state_since < self.watermarks[agent.campaign] - EVICT_AFTER_SECONDS
        ]:
            self._forget(name)  # landed long ago: agent_status keeps them
            del restored[name]
        self._moved = moved
        return len(restored)

    def keep_only(self, owns: Callable[[str], bool]) -> int:
        """Forget the agents, watermarks and dialer snapshots of the campaigns this worker no longer
        owns (a rebalance gave their partition to another worker, which goes on from what landed
        and reads their records again from the landed offsets, so their unlanded changes are
        dropped, not landed late over the new owner's). Returns the agents forgotten."""
        forgotten = 0
        for campaign in [campaign for campaign in {*self.by_campaign, *self.watermarks} if not owns(campaign)]:
            for name in self.by_campaign.pop(campaign, set()):
                agent = self.agents.get(name)
                if agent is not None and agent.campaign == campaign:
                    del self.agents[name]
                    self._changed.pop(name, None)
                    forgotten += 1
            self.watermarks.pop(campaign, None)
            self._counted_to.pop(campaign, None)
            self._moved.discard(campaign)
        self.snapshots = [snapshot for snapshot in self.snapshots if owns(snapshot.campaign)]
        self._lineups_changed = {campaign for campaign in self._lineups_changed if owns(campaign)}
        return forgotten

    def counts(self) -> dict[str, int]:
        """Agents by state, for the worker's health."""
        found: dict[str, int] = {}
        for agent in self.agents.values():
            found[agent.state] = found.get(agent.state, 0) + 1
        return found
