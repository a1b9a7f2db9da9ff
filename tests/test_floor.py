"""The floor: agent states from agent_state events, agent seconds per minute landed exactly once,
dialer_state snapshots validated and landed, and the agent metrics from a hand-computed shift."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from core.schema import AgentStateChange, CallAttempt, DialerState, Lead, Outcome, decode_record
from producers.publisher import EventPublisher
from streams.floor import FloorState
from warehouse.client import connect

START = datetime(2026, 11, 23, 1, 0, tzinfo=timezone.utc)  # 10:00 in Tokyo, the configured zone


def at(minutes: int, seconds: int = 0) -> datetime:
    return START + timedelta(minutes=minutes, seconds=seconds)


def agent_event(
    number: int, agent: str, state: str, moment: datetime, campaign: str = "floor-1", team: str | None = "tokyo-floor"
) -> AgentStateChange:
    return AgentStateChange(
        schema_version=1,
        event_id=f"agent-ev-{agent}-{number}",
        campaign=campaign,
        event_time=moment,
        agent=agent,
        state=state,
        team=team,
    )


def call(
    number: int, moment: datetime, outcome: Outcome, talk: float = 0.0, order: bool = False, agent: str | None = None
) -> CallAttempt:
    return CallAttempt(
        schema_version=1,
        event_id=f"floor-call-{number}",
        campaign="floor-1",
        event_time=moment,
        outcome=outcome,
        lead=Lead(segment="seniors"),
        ring_seconds=5.0,
        talk_seconds=talk,
        order=order,
        agent=agent,
        team="tokyo-floor" if agent else None,
    )


# Agent a1's shift, by hand (minute: seconds):
#   10:00 available 30                      10:03 wrap-up 20, available 40
#   10:01 available 10, on call 50          10:04 paused 60
#   10:02 on call 60                        10:05 logged out
# logged in 270, available 80, on call 110, wrap-up 20, paused 60.
# Agent a2 logs in at 10:00 and is never heard of again: the campaign's snapshot at 10:06 times it
# out at 10:05 (300 s), so it was available 60 s in each of 10:00-10:04.
SHIFT = [
    agent_event(1, "a1", "available", at(0, 30)),
    agent_event(1, "a2", "available", at(0), team="osaka-floor"),
    agent_event(2, "a1", "on_call", at(1, 10)),
    call(1, at(2, 40), Outcome.CONNECTED, talk=100.0, order=True, agent="a1"),
    call(2, at(2, 41), Outcome.NO_ANSWER),
    agent_event(3, "a1", "wrap_up", at(3)),
    agent_event(4, "a1", "available", at(3, 20)),
    call(3, at(3, 50), Outcome.CONNECTED, talk=70.0, agent="a1"),
    agent_event(5, "a1", "paused", at(4)),
    agent_event(6, "a1", "logged_out", at(5)),
    # Older than a1's newest event: it must not move a1 back to paused.
    agent_event(7, "a1", "paused", at(2)),
    DialerState(
        schema_version=1,
        event_id="snap-1",
        campaign="floor-1",
        event_time=at(6),
        dial_level=2.5,
        calls_ringing=4,
        calls_waiting=1,
        longest_wait_seconds=3.5,
        dialable_leads=1200,
    ),
]
EXPECTED_MINUTES = {  # (agent, minute) -> logged in, available, on call, wrap-up, paused
    ("a1", at(0)): (30, 30, 0, 0, 0),
    ("a1", at(1)): (60, 10, 50, 0, 0),
    ("a1", at(2)): (60, 0, 60, 0, 0),
    ("a1", at(3)): (60, 40, 0, 20, 0),
    ("a1", at(4)): (60, 0, 0, 0, 60),
    **{("a2", at(minute)): (60, 60, 0, 0, 0) for minute in range(5)},
}
BAD_RECORDS = {
    b'{"type":"agent_state","schema_version":1,"event_id":"bad-1","campaign":"floor-1",'
    b'"event_time":"2026-11-23T01:00:00Z","agent":"a9","state":"lunch"}': "unknown_state",
    b'{"type":"dialer_state","schema_version":1,"event_id":"bad-2","campaign":"floor-1",'
    b'"event_time":"2026-11-23T01:00:00Z","dial_level":2.0,"calls_ringing":3,"calls_waiting":-1}': "negative_count",
    b'{"type":"dialer_state","schema_version":1,"event_id":"bad-3","campaign":"floor-1",'
    b'"event_time":"2026-11-23T01:00:00Z","dial_level":"fast","calls_ringing":3,"calls_waiting":1}': "wrong_type",
    b'{"type":"dialer_state","schema_version":1,"event_id":"bad-4","campaign":"floor-1",'
    b'"event_time":"2026-11-23T01:00:00Z","calls_ringing":3,"calls_waiting":1}': "missing_field",
    b'{"type":"dialer_state","schema_version":1,"event_id":"bad-5","campaign":"floor-1",'
    b'"event_time":"2026-11-23T01:00:00Z","dial_level":-0.5,"calls_ringing":3,"calls_waiting":1}': "negative_value",
}


# -- the floor's rules, as plain code ------------------------------------------------------------


def test_an_older_event_never_moves_an_agent_back():
    floor = FloorState(timeout_seconds=300)
    assert floor.add(agent_event(1, "a1", "on_call", at(1)))
    assert floor.add(agent_event(2, "a1", "wrap_up", at(3)))
    assert not floor.add(agent_event(3, "a1", "available", at(2)))  # sent late: older than wrap-up
    agent = floor.agents["a1"]
    assert (agent.state, agent.state_since, floor.stale_events) == ("wrap_up", at(3).timestamp(), 1)


def test_a_silent_agent_is_logged_out_when_the_timeout_runs_out():
    floor = FloorState(timeout_seconds=300)
    floor.add(agent_event(1, "quiet", "available", at(0)))
    floor.add(agent_event(1, "busy", "on_call", at(4)))
    floor.take_changes()
    assert floor.agents["quiet"].state == "available"  # 4 minutes of silence: still there
    floor.add(agent_event(2, "busy", "wrap_up", at(7, 30)))
    changes = floor.take_changes()
    quiet = floor.agents["quiet"]
    assert (quiet.state, quiet.state_since) == ("logged_out", at(5).timestamp())
    assert ("quiet", "floor-1", "tokyo-floor", "logged_out", at(5).timestamp(), at(0).timestamp()) in changes.statuses
    seconds = {(row[2], row[3]): row[4] for row in changes.minutes}
    assert seconds[("quiet", at(4).timestamp())] == (60.0, 60.0, 0.0, 0.0, 0.0)  # then nothing after 10:05
    assert ("quiet", at(5).timestamp()) not in seconds


def test_each_campaigns_line_up_lands_whole_when_its_agents_change():
    """The wallboard strip's line-ups: a campaign's logged-in agents land whole when one of them
    changes; an agent moving to another campaign leaves the old line-up without a logout there;
    a timed-out agent leaves its campaign's; a campaign nothing changed in lands nothing."""
    floor = FloorState(timeout_seconds=300)
    floor.add(agent_event(1, "a1", "available", at(0)))
    floor.add(agent_event(1, "a2", "paused", at(0, 30)))
    floor.add(agent_event(1, "b1", "on_call", at(0), campaign="floor-2"))
    assert floor.take_changes().lineups == [
        ("floor-1", ["a1", "a2"], ["available", "paused"], [at(0).timestamp(), at(0, 30).timestamp()]),
        ("floor-2", ["b1"], ["on_call"], [at(0).timestamp()]),
    ]
    floor.add(agent_event(2, "a1", "on_call", at(1), campaign="floor-2"))  # moves, no logout in floor-1
    assert floor.take_changes().lineups == [
        ("floor-1", ["a2"], ["paused"], [at(0, 30).timestamp()]),
        ("floor-2", ["a1", "b1"], ["on_call", "on_call"], [at(1).timestamp(), at(0).timestamp()]),
    ]
    floor.add(agent_event(3, "a1", "wrap_up", at(6), campaign="floor-2"))  # b1 silent since 10:00
    assert floor.take_changes().lineups == [("floor-2", ["a1"], ["wrap_up"], [at(6).timestamp()])]
    assert floor.take_changes().lineups == []


def test_an_agent_logged_out_for_a_day_is_forgotten_after_its_rows_landed():
    """The worker forgets agents a day after they logged out or timed out, once their rows have
    been handed to landing (agent_status keeps them); a late replay of a forgotten agent's old
    event cannot log it in again, and its next shift starts afresh."""
    floor = FloorState(timeout_seconds=300)
    floor.add(agent_event(1, "leaver", "available", at(0)))
    floor.add(agent_event(2, "leaver", "logged_out", at(4)))
    floor.add(agent_event(1, "silent", "on_call", at(9)))  # never heard of again: timed out at 10:14
    floor.add(agent_event(1, "stayer", "available", at(8)))
    changes = floor.take_changes()
    assert ("leaver", "floor-1", "tokyo-floor", "logged_out", at(4).timestamp(), at(4).timestamp()) in changes.statuses
    day = 24 * 60
    for number, minute in enumerate(range(12, day + 64, 4), start=2):  # the stayer works on, resent every 4 min
        floor.add(agent_event(number, "stayer", "available", at(minute)))
        changes = floor.take_changes()
        if minute == day + 4:  # a day after the leaver left; the silent agent's timeout is younger
            assert set(floor.agents) == {"leaver", "silent", "stayer"}
        if minute == day + 4 * 2:
            assert set(floor.agents) == {"silent", "stayer"}
    # Both a day gone; the silent agent's timeout landed long ago, as a status row of its own.
    assert set(floor.agents) == {"stayer"} and floor.evicted == 2
    assert floor.by_campaign["floor-1"] == {"stayer"}
    assert all(row[0] == "stayer" for row in changes.statuses)
    # A producer's late retry of the leaver's old event changes nothing (its landed row stays);
    # the leaver's next shift is a new login.
    assert not floor.add(agent_event(1, "leaver", "available", at(0)))
    assert "leaver" not in floor.agents
    assert floor.add(agent_event(3, "leaver", "available", at(day + 61)))
    assert (floor.agents["leaver"].state, floor.agents["leaver"].state_since) == ("available", at(day + 61).timestamp())


def test_a_restarted_worker_does_not_restore_agents_gone_for_a_day():
    floor = FloorState(timeout_seconds=300)
    # (agent, campaign, team, state, state_since, last_event): one gone two days, one logged in.
    statuses = [
        ("gone", "floor-1", "", "logged_out", at(0).timestamp(), at(0).timestamp()),
        ("here", "floor-1", "", "available", at(2 * 24 * 60).timestamp(), at(2 * 24 * 60).timestamp()),
    ]
    assert floor.restore(statuses, []) == 1 and set(floor.agents) == {"here"}


def test_agent_seconds_are_split_at_each_minute_boundary():
    floor = FloorState(timeout_seconds=300)
    for event in SHIFT:
        if isinstance(event, AgentStateChange):
            floor.add(event)
        elif isinstance(event, DialerState):
            floor.add_snapshot(event)
    changes = floor.take_changes()
    landed = {(row[2], datetime.fromtimestamp(row[3], timezone.utc)): row[4] for row in changes.minutes}
    assert landed == {key: tuple(float(v) for v in values) for key, values in EXPECTED_MINUTES.items()}
    assert len(changes.snapshots) == 1 and floor.stale_events == 1


@pytest.mark.parametrize("raw, reason", BAD_RECORDS.items())
def test_a_bad_floor_event_is_refused_with_its_reason(raw, reason):
    events, rejections = decode_record(raw)
    assert events == [] and [r.reason for r in rejections] == [reason]


# -- through the real worker and warehouse ------------------------------------------------------------


def landed_minutes(settings) -> dict:
    client = connect(settings.warehouse_url)
    try:
        rows = client.query(
            "SELECT agent, minute, logged_in_seconds, available_seconds, on_call_seconds, "
            "wrap_up_seconds, paused_seconds FROM agent_minutes FINAL"
        ).result_rows
        return {
            (agent, minute.replace(tzinfo=timezone.utc)): tuple(round(v, 3) for v in values)
            for agent, minute, *values in rows
        }
    finally:
        client.close()


def publish(settings, events) -> None:
    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events)
    publisher.publish_all(events)
    publisher.close()


def report(pipeline, *args: str) -> list[dict]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "callpulse",
            "--config",
            str(pipeline.config_file),
            "report",
            "--from",
            "2026-11-23",
            "--to",
            "2026-11-23",
            "--format",
            "json",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CALLPULSE_HMAC_KEY": "test-key"},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.integration
def test_a_shift_lands_once_across_a_replay_and_reports_by_agent(pipeline):
    settings = pipeline.settings
    publish(settings, SHIFT)
    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events)
    for raw in BAD_RECORDS:
        publisher.send_raw(settings.topics.call_events, raw, key=b"floor-1")
    publisher.close()
    worker = pipeline.worker("--no-dashboard")
    health = worker.wait_until_caught_up()
    assert (health["agent_state_events"], health["stale_agent_events"], health["dialer_state_events"]) == (8, 1, 1)
    assert {reason: health["dead_letters"].get(reason) for reason in set(BAD_RECORDS.values())} == {
        reason: list(BAD_RECORDS.values()).count(reason) for reason in set(BAD_RECORDS.values())
    }
    assert worker.stop() == 0
    expected = {key: tuple(float(v) for v in values) for key, values in EXPECTED_MINUTES.items()}
    assert landed_minutes(settings) == expected

    # A restarted worker rebuilds the floor from the warehouse; the whole shift sent again (a
    # producer's retry, a replay) changes nothing: every event is older than its agent's state,
    # but a1's last, which repeats it. a2 stays logged out: its one event is older than its timeout.
    worker = pipeline.worker("--no-dashboard")
    assert worker.wait_until(lambda h: h["ready"])["agents"] == {"logged_out": 2}
    publish(settings, SHIFT)
    health = worker.wait_until_caught_up()
    assert (health["stale_agent_events"], health["duplicates"]) == (7, 3)
    assert worker.stop() == 0
    assert landed_minutes(settings) == expected

    client = connect(settings.warehouse_url)
    try:
        status = client.query("SELECT agent, state, state_since FROM agent_status FINAL ORDER BY agent").result_rows
        snapshots = client.query(
            "SELECT campaign, dial_level, calls_ringing, calls_waiting, longest_wait_seconds, "
            "dialable_leads FROM dialer_snapshots FINAL"
        ).result_rows
        latest = client.query(
            "SELECT campaign, dial_level, calls_ringing, calls_waiting, longest_wait_seconds, "
            "dialable_leads FROM dialer_latest FINAL"
        ).result_rows
    finally:
        client.close()
    assert [(agent, state, since.replace(tzinfo=timezone.utc)) for agent, state, since in status] == [
        ("a1", "logged_out", at(5)),
        ("a2", "logged_out", at(5)),
    ]
    assert snapshots == [("floor-1", 2.5, 4, 1, 3.5, 1200)]
    assert latest == snapshots

    # Occupancy = (on call + wrap-up) / (logged in - paused); per agent hour over logged-in hours;
    # AHT with wrap-up = (talk 100 + 70 + a1's wrap-up 20) / 2 connected calls.
    rows = {
        row["agent"]: row
        for row in report(
            pipeline,
            "--by",
            "agent",
            "--metrics",
            "occupancy,orders_per_agent_hour,calls_per_agent_hour,aht_with_wrap_up_seconds",
        )
    }
    assert set(rows) == {"a1", "a2", "(none)"}
    assert rows["a1"]["occupancy"] == pytest.approx(130 / 210)
    assert rows["a1"]["orders_per_agent_hour"] == pytest.approx(1 / (270 / 3600))
    assert rows["a1"]["calls_per_agent_hour"] == pytest.approx(2 / (270 / 3600))
    assert rows["a1"]["aht_with_wrap_up_seconds"] == pytest.approx(95.0)
    assert rows["a2"]["occupancy"] == 0.0 and rows["a2"]["calls_per_agent_hour"] == 0.0
    campaign = report(pipeline, "--by", "campaign", "--metrics", "occupancy,aht_with_wrap_up_seconds")
    assert campaign == [
        {
            "campaign": "floor-1",
            "dials": 3,
            "occupancy": pytest.approx(130 / 510),
            "aht_with_wrap_up_seconds": pytest.approx(95.0),
        }
    ]


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_agent_seconds_are_exact_across_a_killed_worker(pipeline):
    """The simulator's floor for two campaigns, a worker SIGKILLed mid-stream and restarted: the
    landed agent minutes are those of one uninterrupted count."""
    from core.slots import SlotRules
    from producers.simulator import CampaignProfile, DialerSimulator

    settings = pipeline.settings
    campaigns = [
        CampaignProfile(
            name, agents=6, lines_per_free_agent=2.5, list_quality=1.0, conversion=0.1, mean_talk_seconds=150
        )
        for name in ("home-insurance", "charity-giving")
    ]
    events = list(
        DialerSimulator(
            SlotRules(settings.slots, settings.zone), b"test-key", seed=8, start=START, campaigns=campaigns, floor=True
        ).events(sim_seconds=2 * 3600)
    )
    reference = FloorState(settings.agents.timeout_seconds)
    for event in events:
        if isinstance(event, AgentStateChange):
            reference.add(event)
        elif isinstance(event, DialerState):
            reference.add_snapshot(event)
    expected = {
        (row[2], datetime.fromtimestamp(row[3], timezone.utc)): tuple(round(v, 3) for v in row[4])
        for row in reference.take_changes().minutes
        if any(row[4])
    }

    publish(settings, events[: len(events) // 2])
    worker = pipeline.worker("--no-dashboard")
    worker.wait_until(lambda h: h["ready"] and h["agent_state_events"] > 0 and h["last_landed_at"])
    worker.stop(signal.SIGKILL)
    publish(settings, events[len(events) // 2 :])
    worker = pipeline.worker("--no-dashboard")
    worker.wait_until_caught_up(timeout_s=300)
    assert worker.stop() == 0
    landed = {key: values for key, values in landed_minutes(settings).items() if any(values)}
    assert landed == expected


def test_the_floor_reads_as_of_its_own_clock(tmp_path):
    """The floor's readers' "now": the wall clock while agents send their states (a paused agent's
    time counts up though no call lands), a replayed floor's own time moved on since it landed."""
    from warehouse_helpers import migrated_warehouse

    from core.config import load_settings
    from warehouse.landing import Lander
    from warehouse.queries.floor import floor_agents, floor_clock

    wall = datetime.now(timezone.utc)
    with migrated_warehouse(tmp_path / "warehouse") as client:
        assert floor_clock(client, wall, 300) is None
        lander = Lander(client, load_settings())
        replayed = FloorState(timeout_seconds=300)  # a floor from last week, landed now
        replayed.add(agent_event(1, "a1", "paused", at(0)))
        replayed.add(agent_event(2, "a1", "paused", at(4)))
        lander.land_floor(replayed.take_changes())
        landed = datetime.now(timezone.utc)
        clock = floor_clock(client, landed + timedelta(seconds=30), 300)
        assert at(4) + timedelta(seconds=30) <= clock <= at(4) + timedelta(seconds=31)
        (row,) = floor_agents(client, clock, at(0), 300).itertuples(index=False)
        assert (row.agent, row.state) == ("a1", "paused") and 270 <= row.seconds_in_state <= 271

        live = FloorState(timeout_seconds=300)  # paused 20 minutes, resent every 4, the last 5 s ago
        for number, ago in enumerate((1200, 960, 720, 480, 240, 5)):
            live.add(agent_event(number, "b1", "paused", wall - timedelta(seconds=ago)))
        lander.land_floor(live.take_changes())
        later = wall + timedelta(seconds=10)
        assert floor_clock(client, later, 300) == later
        rows = {row.agent: row for row in floor_agents(client, later, at(0), 300).itertuples(index=False)}
        assert rows["b1"].state == "paused" and rows["b1"].seconds_in_state == pytest.approx(1210, abs=0.01)
        # The replayed agent, silent for days by this clock, reads as logged out.
        assert rows["a1"].state == "logged_out"


def test_the_wallboard_reads_each_campaigns_newest_snapshot_whatever_came_late(tmp_path):
    """dialer_latest keeps each campaign's newest snapshot: one landed later but older (a replay,
    a late poll) does not replace it; the floor strip reads it while it is recent."""
    from warehouse_helpers import migrated_warehouse

    from core.config import load_settings
    from core.handoff import FloorChanges
    from warehouse.landing import Lander
    from warehouse.queries.floor import campaign_floor

    def snapshot(campaign: str, moment: datetime, level: float, waiting: int) -> DialerState:
        return DialerState(
            schema_version=1,
            event_id=f"snap-{campaign}-{moment.timestamp():.0f}",
            campaign=campaign,
            event_time=moment,
            dial_level=level,
            calls_ringing=3,
            calls_waiting=waiting,
            longest_wait_seconds=4.0 * waiting,
        )

    with migrated_warehouse(tmp_path / "warehouse") as client:
        lander = Lander(client, load_settings())
        lander.land_floor(
            FloorChanges(
                snapshots=[
                    snapshot("home", at(10), 2.0, 1),
                    snapshot("home", at(10, 5), 2.5, 3),
                    snapshot("broadband", at(2), 1.0, 0),
                ],
                version=1,
            )
        )
        lander.land_floor(FloorChanges(snapshots=[snapshot("home", at(9), 9.0, 9)], version=2))  # older, late
        _agents, snapshots = campaign_floor(client, at(11), 300, ["home", "broadband", "none"])
        assert snapshots[["campaign", "dial_level", "calls_waiting", "longest_wait_seconds"]].values.tolist() == [
            ["home", 2.5, 3, 12.0]
        ]  # broadband's is 9 minutes old by now: no dial level shown
        assert client.command("SELECT count() FROM dialer_snapshots") == 4


def test_the_centres_dial_level_averages_the_campaigns_over_their_logged_in_agents():
    """The Centre band's dial level: 2.5 lines per agent on a floor of 12 and 1.0 on one of 4 dial
    (2.5 x 12 + 1.0 x 4) / 16 = 2.125 lines per agent; a campaign without a recent snapshot or
    without agents logged in weighs nothing, and a centre with neither has none."""
    from dashboards.data import centre_dial_level

    def tile(level: float | None, logged_in: int) -> dict:
        return {"dial_level": level, "agents": {"logged_in": logged_in}}

    assert centre_dial_level([tile(2.5, 12), tile(1.0, 4), tile(None, 30), tile(3.0, 0)]) == 2.12
    assert centre_dial_level([tile(None, 30), tile(3.0, 0)]) is None
    assert centre_dial_level([]) is None
