"""The stop-list and calling-hours alerts count their recent violations from memory
(streams.violation_counts): the same counts as the warehouse query they replaced, across a
restart that reads them back, each violation leaving the count once it is older than the window."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest
from test_stoplist import KEY, cli, publish
from warehouse_helpers import migrated_warehouse

from core.alerts import decode_alert
from core.privacy import hash_phone
from core.schema import CallAttempt, Lead, Outcome
from streams.kafka_admin import read_topic
from streams.violation_counts import RecentViolations
from warehouse.queries.alerts import newest_violations, recent_stop_list_violations
from warehouse.queries.compliance import recent_calling_hours_violations

START = datetime(2026, 11, 23, 1, 0, tzinfo=timezone.utc)
WINDOW = 3600.0  # alerts.rules.default.*_window_minutes = 60
RECENT = {
    "stop_list_violations": recent_stop_list_violations,
    "calling_hours_violations": recent_calling_hours_violations,
}


def land(client, table: str, rows: list[tuple[str, str, float]], detected: datetime) -> None:
    """Violations as the worker lands them: (campaign, event id, event time in epoch s)."""
    client.insert(
        table,
        [[event_id, campaign, datetime.fromtimestamp(at, timezone.utc), detected] for campaign, event_id, at in rows],
        column_names=["event_id", "campaign", "event_time", "detected_at"],
    )


@pytest.mark.parametrize("table", sorted(RECENT))
def test_counts_from_memory_match_the_warehouse_query_across_a_restart(tmp_path, table):
    draw = random.Random(25)
    campaigns = ("home-insurance", "winback")
    start = START.timestamp()

    def violations(first: float, last: float, count: int, prefix: str) -> list[tuple[str, str, float]]:
        return [
            (draw.choice(campaigns), f"{prefix}-{number}", round(draw.uniform(first, last), 3))
            for number in range(count)
        ]

    with migrated_warehouse(tmp_path) as client:
        # Before the restart: two hours of violations, some landed twice (a replayed batch).
        before = violations(start, start + 2 * 3600, 400, "before")
        land(client, table, before, START)
        land(client, table, before[:50], START + timedelta(hours=2))

        # The restart reads back what lies within the window of each campaign's newest violation.
        memory = RecentViolations()
        held = memory.fill(newest_violations(client, table, WINDOW))
        newest = {c: max(at for campaign, _, at in before if campaign == c) for c in campaigns}
        assert held == len({(c, i) for c, i, at in before if at > newest[c] - WINDOW})

        # After it: batches every five minutes for two hours, each with a violation landed again
        # (found before the restart), a late one from long before the window, and the window's new ones.
        watermark = dict(newest)
        for step in range(24):
            batch_end = start + 2 * 3600 + (step + 1) * 300
            batch = violations(batch_end - 300, batch_end, 0 if step >= 12 else 15, f"after-{step}")
            batch.append((campaigns[step % 2], before[step][1], before[step][2]))
            batch.append((campaigns[step % 2], f"late-{step}", start - 3 * 3600 + step))
            land(client, table, batch, START + timedelta(hours=3))
            for campaign in campaigns:
                found = {event_id: at for c, event_id, at in batch if c == campaign}
                memory.note(campaign, found)
                watermark[campaign] = max(watermark[campaign], batch_end - draw.uniform(0, 30))
                at = watermark[campaign]
                expected = RECENT[table](
                    client,
                    campaign,
                    datetime.fromtimestamp(at - WINDOW, timezone.utc),
                    datetime.fromtimestamp(at, timezone.utc),
                    list(found),
                )
                assert memory.count(campaign, at, WINDOW, found) == expected, (step, campaign)

        # No violation in the last hour: every one has left the count, and the memory.
        for campaign in campaigns:
            assert memory.count(campaign, watermark[campaign] + WINDOW, WINDOW, {}) == 0
        assert memory.held() == 0


def dial(
    event_id: str, phone: str, placed: datetime, callee_timezone: str | None = None, outcome=Outcome.CONNECTED
) -> CallAttempt:
    return CallAttempt(
        schema_version=1,
        event_id=event_id,
        campaign="home-insurance",
        event_time=placed + timedelta(seconds=70),
        outcome=outcome,
        lead=Lead(segment="seniors", phone_hash=hash_phone(phone, KEY)),
        ring_seconds=10.0,
        talk_seconds=60.0,
        agent="agent-07",
        team="tokyo-floor",
        callee_timezone=callee_timezone,
    )


@pytest.mark.timeout(420)
def test_violation_alerts_resolve_an_hour_after_their_violation_across_a_restart(pipeline):
    """A stop-list dial and a call at 01:00 on a London callee's clock fire their alerts; the worker
    restarts; each alert resolves at the first reading an hour after its own violation, not at the
    first reading after the restart (which a count that forgot them would)."""
    settings = pipeline.settings
    flagged = "+819011110003"
    assert cli(pipeline, "add", flagged, "--at", START.isoformat()).returncode == 0
    worker = pipeline.worker()
    worker.wait_until(lambda h: h["ready"], timeout_s=120)
    publish(settings, [dial("flagged-dial", flagged, START + timedelta(minutes=5))])  # event time 01:06:10
    worker.wait_until_caught_up()
    night_call = dial("night-call", "+819011110050", START + timedelta(minutes=10), "Europe/London")  # 01:11:10
    publish(settings, [night_call])
    worker.wait_until_caught_up()
    worker.wait_until(lambda h: h["alerts_firing"] == 2, timeout_s=60)
    assert worker.stop() == 0

    worker = pipeline.worker()
    assert worker.wait_until(lambda h: h["ready"], timeout_s=120)["alerts_firing"] == 2
    calls = [
        ("after-restart", START + timedelta(minutes=40)),  # both violations within the hour
        ("past-the-dial", START + timedelta(minutes=66)),  # 01:07:10: the flagged dial has left
        ("past-the-night-call", START + timedelta(minutes=71)),  # 01:12:10: the night call too
    ]
    for event_id, placed in calls:  # one batch each: each reading at its own call
        publish(settings, [dial(event_id, "+819011110099", placed)])
        worker.wait_until_caught_up()
    worker.wait_until(lambda h: h["alerts_firing"] == 0, timeout_s=60)
    assert worker.stop() == 0

    alerts = [decode_alert(raw) for raw in read_topic(settings, settings.topics.alerts)]
    assert [
        (a.rule.value, a.state, a.trigger_event_id, a.value)
        for a in alerts
        if a.rule.value in ("stop_list_violation", "calling_hours_violation")
    ] == [
        ("stop_list_violation", "firing", "flagged-dial", 1.0),
        ("calling_hours_violation", "firing", "night-call", 1.0),
        ("stop_list_violation", "resolved", "past-the-dial", 0.0),
        ("calling_hours_violation", "resolved", "past-the-night-call", 0.0),
    ]
