"""Violations regulators name, on real parts (tansu, the worker, chDB): calls outside the callee's
allowed local hours (zone from the event, hours per campaign), repeat dials within 72 hours of an
abandoned call across campaigns, and `callpulse compliance export`, whose every daily figure a
test recomputes from the bundle alone."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from click.testing import CliRunner

from core.alerts import decode_alert
from core.privacy import callee_timezone, hash_phone
from core.schema import CallAttempt, Lead, Outcome, encode_event
from producers.publisher import EventPublisher
from streams.kafka_admin import read_topic
from warehouse.client import connect
from warehouse.queries.compliance import (
    calling_hours_violations,
    calls_without_callee_timezone,
    customers_abandoned_more_than_once,
    repeat_calls_after_abandon,
)

pytestmark = pytest.mark.integration

KEY = b"test-key"  # the workers' CALLPULSE_HMAC_KEY (tests/conftest.py)
TOKYO = timezone(timedelta(hours=9))
DAY = datetime(2026, 11, 20, tzinfo=TOKYO)  # in the past, and Tokyo has no DST
RETURNING_CUSTOMER = "+81 90-8872-1495"


def call(
    event_id: str,
    campaign: str,
    placed: datetime,
    outcome=Outcome.CONNECTED,
    *,
    phone: str | None = None,
    zone: str | None = None,
    wait: float | None = 1.0,
    talk: float = 60.0,
) -> CallAttempt:
    """An attempt placed at ``placed``: ring 10 s, wait, then talk if connected."""
    talk = talk if outcome is Outcome.CONNECTED else 0.0
    wait = wait if outcome in (Outcome.CONNECTED, Outcome.ABANDONED) else 0.0
    return CallAttempt(
        schema_version=1,
        event_id=event_id,
        campaign=campaign,
        event_time=placed.astimezone(timezone.utc) + timedelta(seconds=10 + (wait or 0) + talk),
        outcome=outcome,
        lead=Lead(segment="seniors", phone_hash=hash_phone(phone, KEY) if phone else None),
        ring_seconds=10.0,
        wait_seconds=wait,
        talk_seconds=talk,
        agent="agent-07",
        team="tokyo-floor",
        callee_timezone=zone,
    )


def test_calling_hours_and_repeat_calls_are_found_listed_alerted_and_exported(pipeline, tmp_path):
    settings = pipeline.settings
    # osaka-renewals keeps to stricter hours of its own.
    with pipeline.config_file.open("a") as config:
        config.write(
            '\n[calling_hours.profiles.office]\nstart = "09:00"\nend = "20:00"\nsource = "house rule"\n'
            '[calling_hours.campaigns]\nosaka-renewals = "office"\n'
        )
    tokyo_zone = callee_timezone(RETURNING_CUSTOMER)
    assert tokyo_zone == "Asia/Tokyo"  # the edge reads the zone from the number before hashing it
    nine_pm_new_york = datetime(2026, 11, 20, 2, 0, tzinfo=timezone.utc)  # 21:00 EST on the 19th
    events = [
        call(
            "early-jp", "tokyo-renewals", DAY.replace(hour=7, minute=59, second=30), Outcome.NO_ANSWER, zone=tokyo_zone
        ),
        call(
            "morning-abandon",
            "tokyo-renewals",
            DAY.replace(hour=10),
            Outcome.ABANDONED,
            phone=RETURNING_CUSTOMER,
            zone=tokyo_zone,
        ),
        call("no-zone", "tokyo-renewals", DAY.replace(hour=10, minute=5)),
        call("nine-sharp-ny", "tokyo-renewals", nine_pm_new_york, zone="America/New_York"),
        call(
            "late-ny",
            "tokyo-renewals",
            nine_pm_new_york + timedelta(seconds=1),
            Outcome.MACHINE,
            zone="America/New_York",
        ),
        call("evening-jp", "tokyo-renewals", DAY.replace(hour=22, minute=30), wait=3.0, zone=tokyo_zone),
        # Connected, but the dialer sent no wait: the FTC rule cannot judge them (counted in time,
        # a lower bound, and late for the upper bound).
        call("no-wait-1", "tokyo-renewals", DAY.replace(hour=11), wait=None, zone=tokyo_zone),
        call("no-wait-2", "tokyo-renewals", DAY.replace(hour=11, minute=20), wait=None, zone=tokyo_zone),
        call("osaka-early", "osaka-renewals", DAY.replace(hour=8, minute=30), Outcome.BUSY, zone=tokyo_zone),
        # Five hours after the abandon, from another campaign: Ofcom's 72 hours span campaigns.
        call("redial", "osaka-renewals", DAY.replace(hour=15), phone=RETURNING_CUSTOMER, zone=tokyo_zone),
        call(
            "second-abandon",
            "osaka-renewals",
            DAY.replace(hour=16),
            Outcome.ABANDONED,
            phone=RETURNING_CUSTOMER,
            zone=tokyo_zone,
        ),
        call(
            "redial-after-four-days",
            "osaka-renewals",
            DAY.replace(hour=16) + timedelta(days=4),
            phone=RETURNING_CUSTOMER,
            zone=tokyo_zone,
        ),
    ]
    publisher = EventPublisher(settings.bootstrap_servers, settings.topics.call_events)
    publisher.publish_all(sorted(events, key=lambda event: event.event_time))
    mars = encode_event(call("mars", "osaka-renewals", DAY.replace(hour=16, minute=30), zone="Mars/Olympus"))
    publisher.send_raw(settings.topics.call_events, mars, key=b"osaka-renewals")
    publisher.close()

    worker = pipeline.worker()
    worker.wait_until_caught_up()
    health = worker.wait_until(lambda h: h["alerts_sent"] >= 2, timeout_s=60)
    assert health["counted"] == len(events)
    assert health["calling_hours_violations"] == 4
    assert health["dead_letters"] == {"unknown_timezone": 1}
    assert worker.stop() == 0

    letters = [json.loads(raw) for raw in read_topic(settings, settings.topics.dead_letters)]
    assert [letter["reason"] for letter in letters] == ["unknown_timezone"]
    assert "'Mars/Olympus' is not an IANA time zone" in letters[0]["detail"]
    alerts = [decode_alert(raw) for raw in read_topic(settings, settings.topics.alerts)]
    hours_alerts = {(a.campaign, a.state, a.severity) for a in alerts if a.rule.value == "calling_hours_violation"}
    assert hours_alerts == {("tokyo-renewals", "firing", "critical"), ("osaka-renewals", "firing", "critical")}

    start, end = DAY - timedelta(days=1), DAY + timedelta(days=6)
    client = connect(settings.warehouse_url)
    try:
        violations = calling_hours_violations(client, start, end)
        repeats = repeat_calls_after_abandon(client, start, end)
        abandoned_twice = customers_abandoned_more_than_once(client, start, end)
        unjudged = calls_without_callee_timezone(client, start, end)
        from dashboards.app import create_app
        from dashboards.data import DashboardContext

        create_app(DashboardContext(settings, client))
        from dashboards.pages import compliance as compliance_page

        hours_rows, hours_summary = compliance_page._calling_hours_section(
            DAY.date() - timedelta(days=1), DAY.date() + timedelta(days=5)
        )
        repeat_rows, repeat_summary = compliance_page._repeat_calls_section(
            DAY.date() - timedelta(days=1), DAY.date() + timedelta(days=5)
        )
    finally:
        client.close()
    found = {
        row["event_id"]: (row["local_dialed_at"], row["profile"], row["allowed_from"], row["allowed_until"])
        for row in violations.to_dict("records")
    }
    assert found == {
        "early-jp": ("2026-11-20 07:59:30", "ftc", "08:00", "21:00"),
        "late-ny": ("2026-11-19 21:00:01", "ftc", "08:00", "21:00"),
        "evening-jp": ("2026-11-20 22:30:00", "ftc", "08:00", "21:00"),
        "osaka-early": ("2026-11-20 08:30:00", "office", "09:00", "20:00"),
    }
    assert [
        (r["event_id"], r["campaign"], r["abandoned_event_id"], r["abandoned_campaign"])
        for r in repeats.to_dict("records")
    ] == [
        # Dialled again within 72 hours, and abandoned again: a repeat call too.
        ("second-abandon", "osaka-renewals", "morning-abandon", "tokyo-renewals"),
        ("redial", "osaka-renewals", "morning-abandon", "tokyo-renewals"),
    ]
    assert repeats["hours_after_abandon"].iloc[1] == pytest.approx(5 - 11 / 3600, abs=1e-6)
    assert abandoned_twice == 1
    assert unjudged.set_index("campaign")["without_timezone"].to_dict() == {"osaka-renewals": 0, "tokyo-renewals": 1}
    assert (
        "4 calls outside the callee's allowed hours" in hours_summary
        and "1 call had no callee time zone" in hours_summary
    )
    assert [row["event_id"] for row in hours_rows] == ["evening-jp", "late-ny", "osaka-early", "early-jp"]
    assert [row["event_id"] for row in repeat_rows] == ["second-abandon", "redial"]
    assert "1 customer abandoned more than once" in repeat_summary

    # The evidence bundle: every daily figure recomputed from its files alone.
    from callpulse.cli import main

    bundle = tmp_path / "evidence.zip"
    result = CliRunner().invoke(
        main,
        [
            "--config",
            str(pipeline.config_file),
            "compliance",
            "export",
            "--campaign",
            "tokyo-renewals",
            "--from",
            "2026-11-19",
            "--to",
            "2026-11-21",
            "--output",
            str(bundle),
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    check_bundle(bundle)


def check_bundle(bundle) -> None:
    with zipfile.ZipFile(bundle) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    manifest = json.loads(files.pop("manifest.json"))
    assert set(manifest["files"]) == set(files)
    for name, data in files.items():
        assert manifest["files"][name]["sha256"] == hashlib.sha256(data).hexdigest(), name
    configuration = json.loads(files["configuration.json"])
    calls = pd.read_csv(io.BytesIO(files["calls.csv"]), keep_default_na=False, na_values=[""])
    daily = pd.read_csv(io.BytesIO(files["daily_counts.csv"]))
    hours = pd.read_csv(io.BytesIO(files["calling_hours_violations.csv"]))
    repeats = pd.read_csv(io.BytesIO(files["repeat_calls_after_abandon.csv"]))
    everything = b"".join(files.values()).decode()
    assert "9088721495" not in everything and hash_phone(RETURNING_CUSTOMER, KEY) not in everything
    assert "phone_hash" not in everything

    # Recomputed here from the rows and the configuration, as an auditor would.
    zone = configuration["timezone"]
    day_of = lambda column: pd.to_datetime(column, utc=True).dt.tz_convert(zone).dt.strftime("%Y-%m-%d")  # noqa: E731
    calls["day"] = day_of(calls["event_time"])
    live = calls["outcome"].isin(["connected", "abandoned"])
    connected = calls["outcome"] == "connected"
    dropped = calls["outcome"] == "abandoned"
    unjudged = connected & calls["wait_seconds"].isna()
    ftc = dropped | (connected & (calls["wait_seconds"] > configuration["ftc_connect_seconds"]))
    machines = calls["outcome"] == "machine"
    recomputed = (
        pd.DataFrame(
            {
                "campaign": calls["campaign"],
                "day": calls["day"],
                "dials": 1,
                "live_answers": live.astype(int),
                "connected": connected.astype(int),
                "dialer_abandoned": dropped.astype(int),
                "ftc_abandoned": ftc.astype(int),
                "ftc_unjudged": unjudged.astype(int),
                "machine": machines.astype(int),
                "calls_without_callee_timezone": calls["callee_timezone"].isna().astype(int),
            }
        )
        .groupby(["campaign", "day"])
        .sum()
    )
    rate = configuration["amd_false_positive_rate"]
    recomputed["ofcom_estimated_live_machines"] = rate * recomputed["machine"]
    recomputed["ofcom_abandoned"] = recomputed["dialer_abandoned"] + rate * recomputed["machine"]
    recomputed["ofcom_live_calls"] = recomputed["live_answers"] + rate * recomputed["machine"]
    recomputed["dialer_abandon_rate"] = recomputed["dialer_abandoned"] / recomputed["live_answers"]
    # The FTC's rate over every live answer, the unjudged counted in time; its upper bound counts them late.
    recomputed["ftc_abandon_rate"] = recomputed["ftc_abandoned"] / recomputed["live_answers"]
    recomputed["ftc_abandon_rate_upper"] = (recomputed["ftc_abandoned"] + recomputed["ftc_unjudged"]) / recomputed[
        "live_answers"
    ]
    recomputed["ofcom_abandon_rate"] = recomputed["ofcom_abandoned"] / recomputed["ofcom_live_calls"]
    for name, rows in (("calling_hours_violations", hours), ("repeat_calls_after_abandon", repeats)):
        per_day = pd.DataFrame({"campaign": rows["campaign"], "day": day_of(rows["dialed_at"])}).value_counts()
        recomputed[name] = per_day.reindex(recomputed.index, fill_value=0)
    exported = daily.set_index(["campaign", "day"]).sort_index()
    recomputed = recomputed.sort_index()
    assert list(exported.index) == list(recomputed.index)
    for column in recomputed.columns:
        pd.testing.assert_series_equal(
            exported[column].astype(float), recomputed[column].astype(float), check_names=False, obj=column
        )
    assert set(recomputed.columns) == set(exported.columns)  # every figure of the bundle, recomputed
    # What this campaign's calls come to: all eight were dialled on the 20th, Tokyo time.
    figures = exported[
        [
            "dials",
            "live_answers",
            "dialer_abandoned",
            "ftc_abandoned",
            "ftc_unjudged",
            "calling_hours_violations",
            "calls_without_callee_timezone",
        ]
    ]
    assert figures.loc[("tokyo-renewals", "2026-11-20")].tolist() == [8, 6, 1, 2, 2, 3, 1]
    tokyo = exported.loc[("tokyo-renewals", "2026-11-20")]
    assert (tokyo["ftc_abandon_rate"], tokyo["ftc_abandon_rate_upper"]) == (pytest.approx(2 / 6), pytest.approx(4 / 6))
    assert configuration["calling_hours"]["profile"] == "ftc"
