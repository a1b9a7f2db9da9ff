"""What the wallboard keeps between refreshes (dashboards.data.WallboardReads): the closed hours'
part of its windows and sparklines is read once and kept, and read again when a late call lands
in a closed hour; the open hour is read on every refresh. Either way the board shows what the
minute buckets hold."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from core.config import load_settings
from core.schema import CallAttempt, Lead, Outcome
from core.slots import SlotRules

NEWEST = datetime(2026, 11, 30, 9, 47, 20, tzinfo=timezone.utc)
CAMPAIGNS = ("debt-relief", "winback")
OUTCOMES = [Outcome.CONNECTED, Outcome.ABANDONED, Outcome.NO_ANSWER, Outcome.MACHINE, Outcome.CONNECTED]


def call(campaign: str, event_id: str, at: datetime, outcome: Outcome) -> CallAttempt:
    return CallAttempt(
        schema_version=1,
        event_id=event_id,
        campaign=campaign,
        outcome=outcome,
        event_time=at,
        lead=Lead(segment="seniors"),
        ring_seconds=12.0,
        wait_seconds=1.0 if outcome == Outcome.CONNECTED else None,
        talk_seconds=60.0 if outcome == Outcome.CONNECTED else 0.0,
    )


def expected_board(client, board_now: datetime, day_start: datetime, shown: list[str], amd_rate_for) -> dict:
    """Per campaign, the figures the board shows, read from the minute buckets alone."""
    from warehouse.queries.live import campaign_tiles, compliance_windows, sparklines

    tiles = campaign_tiles(client, board_now, day_start, shown).set_index("campaign")
    windows = compliance_windows(client, board_now, campaigns=shown, amd_rate_for=amd_rate_for).set_index("campaign")
    lines = sparklines(client, board_now - timedelta(hours=2), board_now - timedelta(minutes=1), shown)
    return {
        campaign: {
            "dials": int(tiles.loc[campaign, "dials"]),
            "abandoned": int(tiles.loc[campaign, "abandoned"]),
            "contacts": int(tiles.loc[campaign, "contacts"]),
            **{
                f"{window}_{counter}": int(windows.loc[campaign, f"{window}_{counter}"])
                for window in ("live_15m", "uk_24h", "us_30d")
                for counter in ("abandoned", "contacts")
            },
            "sparkline": lines[campaign],
        }
        for campaign in shown
    }


def shown_figures(model: dict) -> dict:
    return {
        tile["campaign"]: {
            "dials": tile["dials"],
            "abandoned": tile["abandoned"],
            "contacts": tile["contacts"],
            **{
                f"{window}_{counter}": tile["compliance"][window][counter]
                for window in ("live_15m", "uk_24h", "us_30d")
                for counter in ("abandoned", "contacts")
            },
            "sparkline": tile["sparkline"],
        }
        for tile in model["campaigns"]
    }


@pytest.mark.integration
def test_a_late_call_in_a_closed_hour_reads_the_kept_part_again(tmp_path, monkeypatch):
    """Two campaigns' calls over two days in a +05:30 zone, the newest at 09:47 UTC. The board
    equals the minute buckets' figures; a second refresh reads no closed hour again; a call landed
    late at 08:17 (a closed hour, inside the sparkline) is read again and shown in today's, the
    24-hour and 30-day figures and the sparkline; a call in the open hour shows at the next
    refresh in the 15-minute window too."""
    from warehouse_helpers import land_counted, migrated_warehouse

    from dashboards.data import DashboardContext, board_time, local_day_start, set_context, wallboard_model
    from warehouse.queries import live

    settings = load_settings(pipeline__timezone="Asia/Kolkata", dashboard__wallboard_cache_seconds=0)
    slot_rules = SlotRules(settings.slots, settings.zone)
    events = [
        call(campaign, f"{campaign}-{n}", NEWEST - timedelta(minutes=n * (7 + 4 * number)), OUTCOMES[n % 5])
        for number, campaign in enumerate(CAMPAIGNS)
        for n in reversed(range(2 * 24 * 60 // (7 + 4 * number)))
    ]
    closed_reads = []
    read_closed = live.closed_window_sums
    monkeypatch.setattr(live, "closed_window_sums", lambda *args: closed_reads.append(1) or read_closed(*args))
    path = tmp_path / "warehouse"
    with migrated_warehouse(path) as client:
        land_counted(client, sorted(events, key=lambda event: event.event_time), settings, slot_rules)
        # No background merge of the totals' parts between the refreshes below.
        for table in ("campaign_hour_totals", "campaign_day_totals"):
            client.command(f"OPTIMIZE TABLE {table} FINAL")
        context = DashboardContext(settings, client, warehouse_url=f"chdb://{path}")
        set_context(context)
        try:
            board_now = board_time(live.freshness(client), NEWEST)
            day_start = local_day_start(board_now, settings)
            assert board_now == datetime(2026, 11, 30, 9, 48, tzinfo=timezone.utc)

            def expected() -> dict:
                return expected_board(client, board_now, day_start, list(CAMPAIGNS), lambda name: 0.0)

            first = shown_figures(wallboard_model(NEWEST))
            assert first == expected()
            assert first["winback"]["us_30d_contacts"] > 0 and len(first["winback"]["sparkline"]["minutes"]) > 5
            assert len(closed_reads) == 1

            assert shown_figures(wallboard_model(NEWEST)) == first
            assert len(closed_reads) == 1  # nothing changed: the closed hours were not read again

            late = datetime(2026, 11, 30, 8, 17, 10, tzinfo=timezone.utc)
            land_counted(client, [call("winback", "late-abandon", late, Outcome.ABANDONED)], settings, slot_rules)
            after_late = shown_figures(wallboard_model(NEWEST))
            assert len(closed_reads) == 2
            assert after_late == expected()
            for figure in ("abandoned", "contacts", "uk_24h_abandoned", "uk_24h_contacts", "us_30d_abandoned"):
                assert after_late["winback"][figure] == first["winback"][figure] + 1, figure
            assert after_late["winback"]["live_15m_contacts"] == first["winback"]["live_15m_contacts"]
            assert after_late["winback"]["sparkline"] != first["winback"]["sparkline"]
            assert after_late["debt-relief"] == first["debt-relief"]

            now_call = datetime(2026, 11, 30, 9, 45, 10, tzinfo=timezone.utc)  # a minute with no call yet
            land_counted(client, [call("debt-relief", "open-hour", now_call, Outcome.CONNECTED)], settings, slot_rules)
            after_open = shown_figures(wallboard_model(NEWEST))
            assert after_open == expected()
            for figure in ("dials", "contacts", "live_15m_contacts", "uk_24h_contacts", "us_30d_contacts"):
                assert after_open["debt-relief"][figure] == after_late["debt-relief"][figure] + 1, figure
        finally:
            context.close()
