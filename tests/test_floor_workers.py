"""The floor with several workers: each agent's events go to its campaign's partition, each
worker holds the agents of its partitions' campaigns only, and the warehouse's agent_status and
agent_minutes come out as one worker counting everything would land them, through a campaign
switch between workers, a restart and a rebalance.

Two worker processes cannot share the embedded warehouse (chDB opens a path in one process
only) and no ClickHouse server runs here, so the two workers are two FloorStates in this process,
each fed its own partitions' events and landing with its own Lander into one real chDB
warehouse; what they do on a rebalance is what streams/app.py's own_partitions does (keep_only, then
restore with owns from landed_floor)."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import datetime, timedelta, timezone

import pytest
from kafka import KafkaConsumer, TopicPartition
from warehouse_helpers import migrated_warehouse

from core.config import load_settings
from core.metrics import AGENT_COUNTERS
from core.schema import AgentStateChange, decode_record
from core.topics import campaign_partition
from producers.publisher import EventPublisher
from producers.vicidial import SWITCH_GAP
from streams.floor import FloorState
from warehouse.landing import Lander
from warehouse.queries.floor import FLOOR_STATES, LATEST_STATUS, campaign_floor, floor_agents
from warehouse.queries.recovery import landed_floor

START = datetime(2026, 11, 23, 1, 0, tzinfo=timezone.utc)
PARTITIONS = 3
STATES = ("available", "on_call", "wrap_up", "available", "on_call", "paused")


def campaigns_by_partition(per_partition: int) -> dict[int, list[str]]:
    """``per_partition`` campaign names on each of PARTITIONS partitions."""
    found: dict[int, list[str]] = defaultdict(list)
    number = 0
    while any(len(found[partition]) < per_partition for partition in range(PARTITIONS)):
        name = f"campaign-{number}"
        partition = campaign_partition(name, PARTITIONS)
        if len(found[partition]) < per_partition:
            found[partition].append(name)
        number += 1
    return dict(found)


def state_event(agent: str, campaign: str, state: str, moment: datetime) -> AgentStateChange:
    return AgentStateChange(
        schema_version=1,
        event_id=f"{agent}-{campaign}-{state}-{moment.timestamp():.3f}",
        campaign=campaign,
        event_time=moment,
        agent=agent,
        state=state,
        team=f"team-{campaign}",
    )


def test_each_agents_events_go_to_its_campaigns_partition(pipeline):
    """Through the real producer and broker: every agent_state event lands on the partition
    core.topics.campaign_partition names for its campaign (what the worker uses to know its own
    agents), and an agent who stays in a campaign has all its events on one partition, in order."""
    settings = pipeline.settings
    assert settings.topics.partitions == PARTITIONS
    by_partition = campaigns_by_partition(2)
    events = [
        state_event(
            f"{campaign}-agent-{number}",
            campaign,
            STATES[(number + step) % len(STATES)],
            START + timedelta(seconds=step * 7 + number),
        )
        for campaigns in by_partition.values()
        for campaign in campaigns
        for number in range(3)
        for step in range(4)
    ]
    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events)
    publisher.publish_all(sorted(events, key=lambda event: event.event_time))
    publisher.close()

    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False)
    partitions = [TopicPartition(settings.topics.call_events, partition) for partition in range(PARTITIONS)]
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    ends = consumer.end_offsets(partitions)
    seen: dict[str, list[tuple[int, datetime]]] = defaultdict(list)
    while any(consumer.position(tp) < ends[tp] for tp in partitions):
        for tp, records in consumer.poll(timeout_ms=2000).items():
            for record in records:
                decoded, rejected = decode_record(record.value)
                assert rejected == []
                for event in decoded:
                    assert tp.partition == campaign_partition(event.campaign, PARTITIONS), event
                    seen[event.agent].append((tp.partition, event.event_time))
    consumer.close()
    assert sum(len(found) for found in seen.values()) == len(events)
    for agent, found in seen.items():
        assert len({partition for partition, _ in found}) == 1, agent
        assert [moment for _, moment in found] == sorted(moment for _, moment in found), agent
    assert {partition for found in seen.values() for partition, _ in found} == set(range(PARTITIONS))


def floor_events(by_partition: dict[int, list[str]], seed: int = 5) -> list[AgentStateChange]:
    """20 minutes of a floor: three agents per campaign changing state every 20-70 s, resent
    within the timeout; "quiet" falls silent after 10:08 and times out; "mover" works a campaign on
    partition 0 until 10:08:30, then moves straight to one on partition 1, logged out of the old
    campaign SWITCH_GAP before (as producers.vicidial and vicidial_live send it)."""
    rng = random.Random(seed)
    events: list[AgentStateChange] = []
    for campaigns in by_partition.values():
        for campaign in campaigns:
            for number in range(3):
                moment = START + timedelta(seconds=rng.uniform(0, 30))
                while moment < START + timedelta(minutes=20):
                    events.append(state_event(f"{campaign}-{number}", campaign, rng.choice(STATES), moment))
                    moment += timedelta(seconds=rng.uniform(20, 70))
    quiet_campaign = by_partition[1][0]
    events += [
        state_event("quiet", quiet_campaign, "paused", START + timedelta(seconds=seconds))
        for seconds in range(5, 540, 120)
    ]
    old, new = by_partition[0][0], by_partition[1][1]
    switch = START + timedelta(minutes=8, seconds=30)
    moment = START + timedelta(seconds=12)
    while moment < switch:
        events.append(state_event("mover", old, rng.choice(STATES), moment))
        moment += timedelta(seconds=rng.uniform(20, 70))
    events.append(state_event("mover", old, "logged_out", switch - SWITCH_GAP))
    moment = switch
    while moment < START + timedelta(minutes=20):
        events.append(state_event("mover", new, rng.choice(STATES), moment))
        moment += timedelta(seconds=rng.uniform(20, 70))
    return sorted(events, key=lambda event: event.event_time)


def counted_by_one_worker(events: list[AgentStateChange], timeout: float) -> tuple[dict, dict]:
    """What one worker holding every partition lands: the last status of each agent, and each
    agent minute's last full state."""
    floor = FloorState(timeout)
    statuses: dict[str, tuple] = {}
    minutes: dict[tuple, tuple] = {}
    for start in range(0, len(events), 25):
        for event in events[start : start + 25]:
            floor.add(event)
        changes = floor.take_changes()
        statuses.update({row[0]: row[1:5] for row in changes.statuses})
        minutes.update({row[:4]: row[4] for row in changes.minutes})
    return statuses, minutes


def counts_by_campaign(agents) -> dict[str, dict[str, int]]:
    """Logged-in agents by campaign and state, from the floor page's rows (floor_agents)."""
    found: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(("logged_in", *FLOOR_STATES), 0))
    for row in agents:
        if row.state != "logged_out":
            found[row.campaign]["logged_in"] += 1
            found[row.campaign][row.state] += 1
    return dict(found)


def strip_counts(client, now: datetime, timeout: float, campaigns: list[str]) -> dict[str, dict[str, int]]:
    """The wallboard strip's agents by state for each campaign with any logged in (campaign_floor)."""
    agents, _ = campaign_floor(client, now, timeout, campaigns)
    return {
        row["campaign"]: {name: int(row[name]) for name in ("logged_in", *FLOOR_STATES)}
        for row in agents.to_dict("records")
        if row["logged_in"]
    }


def test_two_workers_land_the_floor_one_worker_would(tmp_path):
    settings = load_settings()
    timeout = settings.agents.timeout_seconds
    assert timeout == 300  # "quiet" times out in the run, "mover" does not time out in its old campaign
    by_partition = campaigns_by_partition(2)
    events = floor_events(by_partition)
    campaign_names = {event.campaign for event in events}
    expected_statuses, expected_minutes = counted_by_one_worker(events, timeout)
    assert expected_statuses["mover"][:2] == (by_partition[1][1], f"team-{by_partition[1][1]}")
    assert expected_statuses["quiet"][2] == "logged_out"

    def owner_of(partitions: set[int]):
        return lambda campaign: campaign_partition(campaign, PARTITIONS) in partitions

    with migrated_warehouse(tmp_path / "warehouse") as client:
        workers = {"a": FloorState(timeout), "b": FloorState(timeout)}
        landers = {name: Lander(client, settings) for name in workers}
        owned = {"a": {0}, "b": {1, 2}}

        def run(until: datetime, worker_order: tuple[str, ...]) -> None:
            """Each worker counts its partitions' events before ``until`` in batches, landing each."""
            for name in worker_order:
                mine = [
                    event for event in pending if owner_of(owned[name])(event.campaign) and event.event_time < until
                ]
                for start in range(0, len(mine), 25):
                    for event in mine[start : start + 25]:
                        workers[name].add(event)
                    landers[name].land_floor(workers[name].take_changes())
            pending[:] = [event for event in pending if event.event_time >= until]

        pending = list(events)
        run(START + timedelta(minutes=5), ("b", "a"))
        # Both restart: each reads every agent back, and its first batch keeps its own partitions'.
        for name in workers:
            workers[name] = FloorState(timeout)
            workers[name].restore(*landed_floor(client))
            workers[name].keep_only(owner_of(owned[name]))
        assert {agent.campaign for agent in workers["a"].agents.values()} <= set(by_partition[0])
        # b lands "mover" in its new campaign, then a its logout of the old one, with a newer version.
        run(START + timedelta(minutes=12), ("b", "a"))
        new_campaign = by_partition[1][1]
        at_twelve = START + timedelta(minutes=12)
        floor_now = {row.agent: row for row in floor_agents(client, at_twelve, START, timeout).itertuples(index=False)}
        assert floor_now["mover"].campaign == new_campaign and floor_now["mover"].state != "logged_out"
        # The wallboard's strip (each campaign's line-up) counts every campaign's agents as the
        # floor page's latest statuses do, each agent once, in its new campaign.
        assert strip_counts(client, at_twelve, timeout, list(campaign_names)) == counts_by_campaign(floor_now.values())
        # FINAL (the newest version) would have shown the stale row: why readers go by event time.
        ((final_campaign, final_state),) = client.query(
            "SELECT campaign, state FROM agent_status FINAL WHERE agent = 'mover'"
        ).result_rows
        assert (final_campaign, final_state) == (by_partition[0][0], "logged_out")
        # A rebalance moves partition 1 (the quiet agent's and the mover's new campaign) from b to a.
        owned = {"a": {0, 1}, "b": {2}}
        assert workers["b"].keep_only(owner_of(owned["b"])) > 0
        assert workers["a"].restore(*landed_floor(client), owns=owner_of({1})) > 0
        run(START + timedelta(minutes=30), ("b", "a"))

        landed_statuses = {
            agent: (campaign, team, state, state_since.timestamp(), last_event.timestamp())
            for agent, campaign, team, state, state_since, last_event in client.query(LATEST_STATUS).result_rows
        }
        end = START + timedelta(minutes=20)
        assert strip_counts(client, end, timeout, list(campaign_names)) == counts_by_campaign(
            floor_agents(client, end, START, timeout).itertuples(index=False)
        )
        landed_minutes = {
            (campaign, team, agent, int(minute.timestamp())): tuple(counters)
            for campaign, team, agent, minute, *counters in client.query(
                f"SELECT campaign, team, agent, minute, {', '.join(AGENT_COUNTERS)} FROM agent_minutes FINAL"
            ).result_rows
        }
    assert {agent: (*row[:3], round(row[3], 3)) for agent, row in landed_statuses.items()} == {
        agent: (*row[:3], round(row[3], 3)) for agent, row in expected_statuses.items()
    }
    assert landed_statuses["mover"][0] == by_partition[1][1]
    assert landed_statuses["quiet"][2] == "logged_out"
    assert set(landed_minutes) == set(expected_minutes)
    for key, counters in expected_minutes.items():
        assert landed_minutes[key] == pytest.approx(counters, abs=0.002), key
    # The mover's seconds in its old campaign stop at the switch: none after 10:08:30 there.
    old_campaign_seconds = sum(
        counters[AGENT_COUNTERS.index("logged_in_seconds")]
        for (campaign, _, agent, _), counters in landed_minutes.items()
        if agent == "mover" and campaign == by_partition[0][0]
    )
    assert old_campaign_seconds == pytest.approx(8 * 60 + 30 - 12, abs=0.01)


def test_an_agent_log_agent_moving_straight_to_another_campaign_is_logged_out_of_the_old_one():
    """vicidial_agent_log file mode: an agent whose next cycle is in another campaign, with no gap,
    is logged out of the old campaign SWITCH_GAP before its first state in the new one (the old
    campaign's worker may not be the new one's); its seconds there end at the switch."""
    from producers.vicidial import AgentCycle, AgentLogMapper

    mapper = AgentLogMapper(load_settings())
    cycles = [  # seconds: pause, wait, talk, dispo
        AgentCycle(1, "1007", "HOMEINS", "TOKYO-A", START, (0.0, 60.0, 120.0, 30.0)),
        AgentCycle(2, "1007", "BBAND", "TOKYO-A", START + timedelta(seconds=210), (0.0, 30.0, 0.0, 0.0)),
    ]
    events = [event for _, event in mapper.events(cycles)]
    assert [(event.campaign, event.state, event.event_time - START) for event in events] == [
        ("HOMEINS", "available", timedelta(0)),
        ("HOMEINS", "on_call", timedelta(seconds=60)),
        ("HOMEINS", "wrap_up", timedelta(seconds=180)),
        ("HOMEINS", "logged_out", timedelta(seconds=210) - SWITCH_GAP),
        ("BBAND", "available", timedelta(seconds=210)),
        ("BBAND", "logged_out", timedelta(seconds=240)),
    ]
