"""The wallboard's model: shared between boards that refresh together."""

from __future__ import annotations

import re
from datetime import datetime, timezone


def test_boards_refreshing_together_share_one_model_and_each_sees_its_true_age(tmp_path):
    """Every TV and browser refreshes the wallboard; within dashboard.wallboard_cache_seconds
    they are served one computed model (computed once, even when asked at the same moment),
    with its age brought up to date, and a model that has expired is computed again."""
    import threading
    import time
    from datetime import datetime, timedelta, timezone

    from warehouse_helpers import migrated_warehouse

    from core.config import load_settings
    from core.handoff import LandingBatch
    from core.schema import CallAttempt, Lead, Outcome
    from core.slots import SlotRules
    from dashboards.data import DashboardContext, set_context, shared_wallboard_model, wallboard_model
    from streams.buckets import MinuteBuckets
    from warehouse.landing import Lander

    # The campaigns shown picked on every model (a new campaign shows at once; by default the
    # ranking is kept dashboard.wallboard_ranking_seconds): what is shared here is the model.
    settings = load_settings(dashboard__wallboard_cache_seconds=0.5, dashboard__wallboard_ranking_seconds=0)
    with migrated_warehouse(tmp_path / "warehouse") as client:
        slot_rules = SlotRules(settings.slots, settings.zone)
        lander = Lander(client, settings)
        buckets = MinuteBuckets(settings, slot_rules)
        now = datetime.now(timezone.utc)

        def land(event_id: str, campaign: str) -> None:
            event = CallAttempt(
                schema_version=1,
                event_id=event_id,
                campaign=campaign,
                outcome=Outcome.CONNECTED,
                event_time=now - timedelta(seconds=90),
                lead=Lead(segment="seniors"),
            )
            buckets.add(event)
            lander.land(LandingBatch(buckets.take_counted(), buckets.take_dirty()))

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
        assert again["generated_at"] == served[0]["generated_at"]  # still the shared model
        assert [c["campaign"] for c in again["campaigns"]] == ["winback"]
        assert again["age_seconds"] > max(model["age_seconds"] for model in served)  # but its true age
        assert sorted(c["campaign"] for c in wallboard_model()["campaigns"]) == ["charity", "winback"]

        time.sleep(0.6)  # past the 0.5 s it is shared for
        expired = shared_wallboard_model()
        assert expired["generated_at"] > again["generated_at"]
        assert sorted(c["campaign"] for c in expired["campaigns"]) == ["charity", "winback"]

        set_context(DashboardContext(load_settings(dashboard__wallboard_cache_seconds=0), client))
        assert shared_wallboard_model()["generated_at"] != shared_wallboard_model()["generated_at"]


def test_the_wallboard_reads_its_queries_at_once_and_shows_what_reading_them_in_turn_shows(tmp_path):
    """With a warehouse URL the model's three reads run at once, each on a client of its own;
    the model is the one read on the page's single client, to the value."""
    from datetime import datetime, timedelta, timezone

    from warehouse_helpers import land_counted, migrated_warehouse

    from core.config import load_settings
    from core.schema import CallAttempt, Lead, Outcome
    from core.slots import SlotRules
    from dashboards.data import DashboardContext, set_context, wallboard_model

    settings = load_settings()
    now = datetime(2026, 12, 2, 15, 0, 30, tzinfo=timezone.utc)
    outcomes = [Outcome.CONNECTED, Outcome.ABANDONED, Outcome.NO_ANSWER, Outcome.CONNECTED]
    events = [
        CallAttempt(
            schema_version=1,
            event_id=f"{campaign}-{n}",
            campaign=campaign,
            outcome=outcomes[n % 4],
            event_time=now - timedelta(minutes=n),
            lead=Lead(segment="seniors"),
            order=n % 8 == 0,
        )
        for campaign, calls in (("winback", 150), ("charity", 30))
        for n in reversed(range(calls))
    ]
    path = tmp_path / "warehouse"
    with migrated_warehouse(path) as client:
        land_counted(client, events, settings, SlotRules(settings.slots, settings.zone))
        set_context(DashboardContext(settings, client))
        one_by_one = wallboard_model(now)
        pooled_context = DashboardContext(settings, client, warehouse_url=f"chdb://{path}")
        set_context(pooled_context)
        try:
            at_once = wallboard_model(now)
        finally:
            pooled_context.close()
    assert at_once == one_by_one
    winback = next(c for c in at_once["campaigns"] if c["campaign"] == "winback")
    assert winback["compliance"]["live_15m"]["contacts"] > 0
    # Two hours back from the board time (the minute after the newest), less the newest minute,
    # which is still filling: 119 minutes, a call in each.
    drawn = [n for n in reversed(range(150)) if 1 <= n <= 119]
    assert winback["sparkline"]["minutes"] == [
        (now - timedelta(minutes=n)).strftime("%Y-%m-%dT%H:%M:00") for n in drawn
    ]
    assert winback["sparkline"]["dials"] == [1] * 119
    rate = {Outcome.CONNECTED: 0.0, Outcome.ABANDONED: 1.0, Outcome.NO_ANSWER: None}
    assert winback["sparkline"]["abandon_rate"] == [rate[outcomes[n % 4]] for n in drawn]


def test_parallel_reads_can_be_turned_off_for_a_small_box(tmp_path):
    from core.config import load_settings
    from dashboards.data import DashboardContext

    on = DashboardContext(load_settings(), client=None, warehouse_url=f"chdb://{tmp_path}")
    off = DashboardContext(
        load_settings(dashboard__wallboard_parallel_reads=False), client=None, warehouse_url=f"chdb://{tmp_path}"
    )
    assert on.query_pool is not None and off.query_pool is None
    assert off.run_queries((lambda client, x: (client, x * 2), 21)) == [(None, 42)]  # in turn, on its own client
    on.close()


def test_an_empty_warehouse_is_an_empty_board_that_says_it_waits_for_the_first_calls(tmp_path):
    """Before the first call lands (a first start), and when nothing has landed in the board's
    day, /api/wallboard answers 200 with no campaigns and the wallboard says it is waiting,
    on both read paths (the query pool's clients and the one shared client)."""
    import json
    from datetime import datetime, timedelta, timezone

    from warehouse_helpers import land_counted, migrated_warehouse

    from core.config import DashboardToken, load_settings
    from core.schema import CallAttempt, Lead, Outcome
    from core.slots import SlotRules
    from dashboards.app import create_app
    from dashboards.auth import Credentials, hash_token, new_token
    from dashboards.data import DashboardContext, local_day_start, wallboard_model

    token = new_token()
    credentials = Credentials({}, {"wall-tv": DashboardToken(role="supervisor", token_sha256=hash_token(token))})
    path = tmp_path / "warehouse"
    with migrated_warehouse(path) as client:
        for parallel in (True, False):
            settings = load_settings(dashboard__wallboard_cache_seconds=0, dashboard__wallboard_parallel_reads=parallel)
            ctx = DashboardContext(settings, client, warehouse_url=f"chdb://{path}")
            app = create_app(ctx, credentials)
            response = app.server.test_client().get("/api/wallboard", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 200, response.get_data(as_text=True)
            board = response.get_json()
            assert board["campaigns"] == []
            assert board["landed_at"] is None and board["age_seconds"] is None and board["stale"] is True

            # The wallboard's refresh, asked as the page in a browser asks it.
            refresh = next(key for key in app.callback_map if "campaign-tiles.children" in key)
            outputs = [
                dict(zip(("id", "property"), output.rsplit(".", 1))) for output in refresh.strip(".").split("...")
            ]
            response = app.server.test_client().post(
                "/_dash-update-component",
                headers={"Authorization": f"Bearer {token}"},
                json={
                    "output": refresh,
                    "outputs": outputs,
                    "inputs": [{"id": "wallboard-refresh", "property": "n_intervals", "value": None}],
                    "changedPropIds": [],
                },
            )
            assert response.status_code == 200, response.get_data(as_text=True)
            shown = response.get_json()["response"]
            assert "Waiting for the first calls to land" in json.dumps(shown["campaign-tiles"]["children"])
            assert shown["freshness"]["children"] == "no data yet"
            ctx.close()

        # One call landed at 23:59 local yesterday: the board's time is the minute after it,
        # today's first minute, and today has nothing landed yet.
        slot_rules = SlotRules(settings.slots, settings.zone)
        midnight = local_day_start(datetime.now(timezone.utc), settings)
        land_counted(
            client,
            [
                CallAttempt(
                    schema_version=1,
                    event_id="last-of-yesterday",
                    campaign="winback",
                    outcome=Outcome.CONNECTED,
                    event_time=midnight - timedelta(seconds=30),
                    lead=Lead(segment="seniors"),
                )
            ],
            settings,
            slot_rules,
        )
        board = wallboard_model()
        assert board["board_time"] == midnight.isoformat()
        assert board["campaigns"] == [] and board["landed_at"] is not None


# 15:00 in Tokyo: the boards below follow event time, so their day is whole whenever they run.
BOARD_NOW = datetime(2026, 12, 2, 6, 0, 30, tzinfo=timezone.utc)


def _bearer_app(settings, client, role: str = "supervisor"):
    """The dashboard app on ``client``, and the Authorization header of a ``role`` token."""
    from core.config import DashboardToken
    from dashboards.app import create_app
    from dashboards.auth import Credentials, hash_token, new_token
    from dashboards.data import DashboardContext

    token = new_token()
    credentials = Credentials({}, {"tv": DashboardToken(role=role, token_sha256=hash_token(token))})
    return create_app(DashboardContext(settings, client), credentials), {"Authorization": f"Bearer {token}"}


def _strict(body: bytes):
    """JSON as a strict parser reads it: NaN and Infinity are not JSON."""
    import json

    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(body, parse_constant=refuse)


def _refresh_output(app, headers) -> dict:
    """The wallboard page's refresh callback, asked as the browser asks it: its outputs by id."""
    refresh = next(key for key in app.callback_map if "campaign-tiles.children" in key)
    outputs = [dict(zip(("id", "property"), output.rsplit(".", 1))) for output in refresh.strip(".").split("...")]
    response = app.server.test_client().post(
        "/_dash-update-component",
        headers=headers,
        json={
            "output": refresh,
            "outputs": outputs,
            "inputs": [{"id": "wallboard-refresh", "property": "n_intervals", "value": None}],
            "changedPropIds": [],
        },
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()["response"]


def test_a_board_of_5000_campaigns_shows_the_busiest_and_says_how_many_there_are(tmp_path):
    """However many campaign names arrive, the board shows dashboard.wallboard_max_campaigns: those
    with the most dials in the last 15 minutes, cut in the warehouse, and says how many there are."""
    import time
    from datetime import timedelta

    from warehouse_helpers import land_counted, migrated_warehouse

    from core.config import load_settings
    from core.schema import CallAttempt, Lead, Outcome
    from core.slots import SlotRules

    # Pages turn every 0.2 s here, so the page's refreshes below meet every page within seconds.
    settings = load_settings(dashboard__wallboard_cache_seconds=0, dashboard__rotate_seconds=0.2)
    now = BOARD_NOW  # the board follows event time
    shown = settings.dashboard.wallboard_max_campaigns
    assert shown == 60

    def call(event_id: str, campaign: str, ago: timedelta) -> CallAttempt:
        return CallAttempt(
            schema_version=1,
            event_id=event_id,
            campaign=campaign,
            outcome=Outcome.CONNECTED,
            event_time=now - ago,
            lead=Lead(segment="seniors"),
        )

    # busy-k made k+1 calls in the last ten minutes; a morning giant made the most today, all of
    # them hours ago; 4,899 quiet campaigns made one call each, 40 minutes ago.
    events = [
        call(f"busy-{k}-{n}", f"busy-{k:03d}", timedelta(seconds=30 + 5 * n))
        for k in range(100)
        for n in reversed(range(k + 1))
    ]
    events += [call(f"giant-{n}", "morning-giant", timedelta(hours=3)) for n in range(500)]
    events += [call(f"quiet-{n}", f"quiet-{n:04d}", timedelta(minutes=40)) for n in range(4899)]
    with migrated_warehouse(tmp_path / "warehouse") as client:
        land_counted(client, events, settings, SlotRules(settings.slots, settings.zone))
        app, headers = _bearer_app(settings, client)
        started = time.perf_counter()
        response = app.server.test_client().get("/api/wallboard", headers=headers)
        elapsed = time.perf_counter() - started
        assert response.status_code == 200
        board = _strict(response.data)
        assert board["campaign_count"] == 5000
        expected = [f"busy-{k:03d}" for k in range(100 - shown, 100)]
        assert [c["campaign"] for c in board["campaigns"]] == expected  # the busiest, in name order
        assert [c["dials"] for c in board["campaigns"]] == [k + 1 for k in range(100 - shown, 100)]
        assert len(response.data) < 100_000 and elapsed < 5, (len(response.data), elapsed)

        # The page draws the API's 60 as pages of at most 12 tiles (5 of 12), turning every
        # dashboard.rotate_seconds with a "page k / 5" indicator: each refresh draws one page.
        pages: dict[int, list[str]] = {}
        deadline = time.monotonic() + 20
        while len(pages) < 5 and time.monotonic() < deadline:
            shown_on_page = _refresh_output(app, headers)
            assert (
                shown_on_page["campaign-count"]["children"]
                == "showing 60 of 5,000 campaigns, the busiest in the last 15 min"
            )
            indicator = shown_on_page["page-indicator"]["children"]
            number, of = map(int, re.fullmatch(r"page (\d+) / (\d+)", indicator[0]["props"]["children"]).groups())
            assert of == 5 and len(indicator) == 1 + 5, indicator  # the label and a dot per page
            tiles = [tile["props"]["data-campaign"] for tile in shown_on_page["campaign-tiles"]["children"]]
            assert tiles == expected[(number - 1) * 12 : number * 12], (number, tiles)
            pages[number] = tiles
        assert sorted(pages) == [1, 2, 3, 4, 5], f"pages seen: {sorted(pages)}"
        assert [campaign for number in sorted(pages) for campaign in pages[number]] == expected


def test_api_wallboard_has_a_size_cap_whatever_the_names(tmp_path):
    """At most wallboard_max_campaigns tiles, each with names of the longest the schema allows and
    a full two-hour sparkline: the largest /api/wallboard there can be stays a few hundred kB."""
    from datetime import timedelta

    from warehouse_helpers import land_counted, migrated_warehouse

    from core.config import load_settings
    from core.schema import MAX_IDENTIFIER_LENGTH, CallAttempt, Lead, Outcome
    from core.slots import SlotRules

    settings = load_settings(dashboard__wallboard_cache_seconds=0)
    now, minutes = BOARD_NOW, 130
    names = [f"{n:03d}-" + "n" * (MAX_IDENTIFIER_LENGTH - 4) for n in range(90)]
    outcomes = [Outcome.CONNECTED, Outcome.ABANDONED, Outcome.NO_ANSWER]
    events = [
        CallAttempt(
            schema_version=1,
            event_id=f"{n}-{m}",
            campaign=name,
            outcome=outcomes[m % 3],
            event_time=now - timedelta(minutes=m, seconds=-30),
            lead=Lead(segment="seniors"),
            order=m % 7 == 0,
            talk_seconds=61.5,
        )
        for n, name in enumerate(names)
        for m in reversed(range(minutes))
    ]
    with migrated_warehouse(tmp_path / "warehouse") as client:
        land_counted(client, events, settings, SlotRules(settings.slots, settings.zone))
        app, headers = _bearer_app(settings, client)
        response = app.server.test_client().get("/api/wallboard", headers=headers)
    board = _strict(response.data)
    assert board["campaign_count"] == 90 and len(board["campaigns"]) == 60
    assert {len(c["sparkline"]["minutes"]) for c in board["campaigns"]} == {119}
    assert len(response.data) < 400_000, len(response.data)


def test_the_api_writes_an_infinite_figure_as_null(tmp_path):
    """Two calls of 1.7e308 talk seconds each sum to infinity, and so does their campaign's average
    handle time: every JSON API answers standard JSON (null there), and the board still draws."""
    import math
    from datetime import timedelta

    from warehouse_helpers import land_counted, migrated_warehouse

    from core.config import load_settings
    from core.schema import CallAttempt, Lead, Outcome
    from core.slots import SlotRules

    settings = load_settings(dashboard__wallboard_cache_seconds=0)
    now = BOARD_NOW
    events = [
        CallAttempt(
            schema_version=1,
            event_id=f"{campaign}-{n}",
            campaign=campaign,
            outcome=Outcome.CONNECTED,
            event_time=now - timedelta(seconds=60 + n),
            lead=Lead(segment="seniors"),
            talk_seconds=talk,
        )
        for campaign, talk in (("overflow", 1.7e308), ("normal", 90.0))
        for n in range(2)
    ]
    with migrated_warehouse(tmp_path / "warehouse") as client:
        land_counted(client, events, settings, SlotRules(settings.slots, settings.zone))
        app, headers = _bearer_app(settings, client, role="manager")
        from dashboards.data import wallboard_model

        assert math.isinf(
            next(c for c in wallboard_model()["campaigns"] if c["campaign"] == "overflow")["aht_seconds"]
        )  # what the API must not echo
        response = app.server.test_client().get("/api/wallboard", headers=headers)
        assert response.status_code == 200 and b"Infinity" not in response.data
        board = {c["campaign"]: c for c in _strict(response.data)["campaigns"]}
        assert board["overflow"]["aht_seconds"] is None and board["normal"]["aht_seconds"] == 90.0

        day = now.astimezone(settings.zone).date().isoformat()
        response = app.server.test_client().get(
            f"/api/report?by=campaign&metrics=dials,aht_seconds&from={day}&to={day}", headers=headers
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        report = {row["campaign"]: row for row in _strict(response.data)}
        assert report["overflow"]["aht_seconds"] is None and report["normal"]["aht_seconds"] == 90.0
        assert report["overflow"]["dials"] == 2
        assert len(_refresh_output(app, headers)["campaign-tiles"]["children"]) == 2
