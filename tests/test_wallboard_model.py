"""The wallboard's sparklines, cut from the minute series in whole columns."""

from __future__ import annotations

import math

import pandas as pd

from dashboards.data import _sparklines


def test_each_campaign_gets_its_minutes_in_order_with_gaps_as_none():
    series = pd.DataFrame({
        "campaign": ["b", "a", "a", "b"],
        "minute": pd.to_datetime(["2026-12-02 06:51:00", "2026-12-02 06:50:00", "2026-12-02 06:49:00",
                                  "2026-12-02 06:49:00"]),
        "dials": [7, 3, 12, 0],
        "abandon_rate": [0.25, math.nan, 0.0625, math.nan],
    })
    assert _sparklines(series) == {
        "a": {"minutes": ["2026-12-02T06:49:00", "2026-12-02T06:50:00"], "dials": [12, 3],
              "abandon_rate": [0.0625, None]},
        "b": {"minutes": ["2026-12-02T06:49:00", "2026-12-02T06:51:00"], "dials": [0, 7],
              "abandon_rate": [None, 0.25]},
    }
    # The same text the board showed before: Timestamp.isoformat() of each minute.
    assert _sparklines(series)["a"]["minutes"] == [m.isoformat() for m in sorted(series["minute"][1:3])]
    assert _sparklines(series.iloc[0:0]) == {}


def test_boards_refreshing_together_share_one_model_and_each_sees_its_true_age(tmp_path):
    """Every TV and browser refreshes the wallboard; within dashboard.wallboard_cache_seconds
    they are served one computed model (computed once, even when asked at the same moment),
    with its age brought up to date, and a model that has expired is computed again."""
    import threading
    import time
    from datetime import datetime, timedelta, timezone

    from callpulse.config import load_settings
    from callpulse.schema import CallAttempt, Lead, Outcome
    from callpulse.slots import SlotRules
    from dashboards.data import DashboardContext, set_context, shared_wallboard_model, wallboard_model
    from streams.buckets import MinuteBuckets
    from warehouse.landing import Lander
    from warehouse_helpers import migrated_warehouse

    settings = load_settings(dashboard__wallboard_cache_seconds=0.5)
    with migrated_warehouse(tmp_path / "warehouse") as client:
        slot_rules = SlotRules(settings.slots, settings.zone)
        lander = Lander(client, settings, slot_rules)
        buckets = MinuteBuckets(settings, slot_rules)
        now = datetime.now(timezone.utc)

        def land(event_id: str, campaign: str) -> None:
            event = CallAttempt(schema_version=1, event_id=event_id, campaign=campaign, outcome=Outcome.CONNECTED,
                                event_time=now - timedelta(seconds=90), lead=Lead(segment="seniors"))
            buckets.add(event)
            lander.land([event], buckets.take_dirty())

        land("e1", "winback")
        set_context(DashboardContext(settings, client))
        served = []
        threads = [threading.Thread(target=lambda: served.append(shared_wallboard_model())) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len({model["generated_at"] for model in served}) == 1  # six boards, one computation
        assert [c["campaign"] for c in served[0]["campaigns"]] == ["winback"]

        land("e2", "charity")
        time.sleep(0.05)
        again = shared_wallboard_model()
        assert again["generated_at"] == served[0]["generated_at"]          # still the shared model
        assert [c["campaign"] for c in again["campaigns"]] == ["winback"]
        assert again["age_seconds"] > max(model["age_seconds"] for model in served)  # but its true age
        assert sorted(c["campaign"] for c in wallboard_model()["campaigns"]) == ["charity", "winback"]

        time.sleep(0.6)  # past the 0.5 s it is shared for
        expired = shared_wallboard_model()
        assert expired["generated_at"] > again["generated_at"]
        assert sorted(c["campaign"] for c in expired["campaigns"]) == ["charity", "winback"]

        set_context(DashboardContext(load_settings(dashboard__wallboard_cache_seconds=0), client))
        assert shared_wallboard_model()["generated_at"] != shared_wallboard_model()["generated_at"]
