"""`callpulse compliance`: evidence an auditor can recompute."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import click

from callpulse.cli.common import console, open_warehouse, settings_of
from core.config import Settings

BUNDLE_FORMAT = "callpulse-compliance-evidence/1"
RECOMPUTE = """How to recompute every figure in daily_counts.csv from calls.csv alone
(configuration.json holds the settings in force; manifest.json the SHA-256 of every file):

  day                    the call's end (event_time, UTC) as a calendar day in configuration.timezone
  dials                  rows of the day
  live_answers           outcome connected or abandoned
  dialer_abandoned       outcome abandoned: the dialer dropped the call
  ftc_abandoned          dialer_abandoned, or connected with wait_seconds > ftc_connect_seconds
  ftc_unjudged           connected with no wait_seconds: the FTC rule cannot judge them
  ftc_abandon_rate       ftc_abandoned / live_answers: the unjudged calls counted as connected in time (a lower bound)
  ftc_abandon_rate_upper (ftc_abandoned + ftc_unjudged) / live_answers: had every unjudged call been late
  machine                outcome machine (classified so by answering-machine detection)
  ofcom_estimated_live_machines  machine x amd_false_positive_rate
  ofcom_abandoned        dialer_abandoned + ofcom_estimated_live_machines
  ofcom_abandon_rate     ofcom_abandoned / (live_answers + ofcom_estimated_live_machines)
  calls_without_callee_timezone  rows with an empty callee_timezone: their calling hours were not judged
  calling_hours_violations       rows of calling_hours_violations.csv by the local day of dialed_at
  repeat_calls_after_abandon     rows of repeat_calls_after_abandon.csv by the local day of dialed_at

A rate is empty where its denominator is zero. No file holds a phone number or its hash.
"""


@click.group()
def compliance() -> None:
    """Compliance evidence: the abandon figures under each regulator's definition, and the
    violations regulators name (calling hours, repeat calls after an abandon)."""


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a day written YYYY-MM-DD") from None


@compliance.command("export")
@click.option("--campaign", required=True, help="The campaign to export.")
@click.option("--from", "first", required=True, help="First day (YYYY-MM-DD, in pipeline.timezone).")
@click.option("--to", "last", required=True, help="Last day, included.")
@click.option(
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The zip file to write (evidence.zip).",
)
@click.pass_context
def export(ctx: click.Context, campaign: str, first: str, last: str, output: Path) -> None:
    """Write a zip an auditor can check: the daily counts under the dialer's, the FTC's and
    Ofcom's definitions, the per-call rows they are computed from (no phone number, no hash),
    the violations, the configuration in force and a manifest with each file's SHA-256."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    settings = settings_of(ctx)
    first_day, last_day = _day(first), _day(last)
    if last_day < first_day:
        raise click.BadParameter(f"--to {last_day} is before --from {first_day}")
    client = open_warehouse(settings)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as bar:
        days = (last_day - first_day).days + 1
        task = bar.add_task(f"exporting {campaign}", total=days + 1)
        summary = write_evidence(
            client, settings, campaign, first_day, last_day, output, progress=lambda: bar.advance(task)
        )
    console.print(
        f"wrote {output}: {summary['calls']:,} calls over {summary['days']} day(s), "
        f"{summary['calling_hours_violations']:,} calling-hours violation(s), "
        f"{summary['repeat_calls_after_abandon']:,} repeat call(s) after an abandon"
    )
    if not summary["calls"]:
        console.print(f"[yellow]no calls of {campaign} landed from {first_day} to {last_day}[/]")


def write_evidence(
    client, settings: Settings, campaign: str, first_day: date, last_day: date, output: Path, progress=lambda: None
) -> dict:
    """Build the bundle at ``output``; its summary (counts of what it holds)."""
    import pandas as pd

    from analytics.evidence import daily_counts
    from warehouse.queries.compliance import (
        REPEAT_AFTER_ABANDON_HOURS,
        calling_hours_violations,
        customers_abandoned_more_than_once,
        evidence_calls,
        repeat_calls_after_abandon,
    )

    zone = settings.zone
    start = datetime.combine(first_day, time(0), tzinfo=zone).astimezone(timezone.utc)
    end = datetime.combine(last_day + timedelta(days=1), time(0), tzinfo=zone).astimezone(timezone.utc)
    # A day at a time, so a long range shows its progress and never holds one giant result set.
    parts, day = [], first_day
    while day <= last_day:
        day_start = datetime.combine(day, time(0), tzinfo=zone).astimezone(timezone.utc)
        day_end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone).astimezone(timezone.utc)
        parts.append(evidence_calls(client, campaign, day_start, day_end))
        progress()
        day += timedelta(days=1)
    calls = pd.concat([part for part in parts if len(part)] or parts[:1], ignore_index=True)
    hours = calling_hours_violations(client, start, end, [campaign])
    repeats = repeat_calls_after_abandon(client, start, end, [campaign])
    abandoned_twice = customers_abandoned_more_than_once(client, start, end, [campaign])
    progress()
    daily = daily_counts(calls, zone, settings.compliance, hours, repeats)
    configuration = {
        "format": BUNDLE_FORMAT,
        "campaign": campaign,
        "from": first_day.isoformat(),
        "to": last_day.isoformat(),
        "timezone": str(zone),
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "ftc_connect_seconds": settings.compliance.ftc_connect_seconds,
        "amd_false_positive_rate": settings.compliance.amd_for(campaign)[0],
        "abandon_limit": settings.alert_rules_for(campaign).compliance_limit,
        "calling_hours": _calling_hours_of(settings, campaign),
        "repeat_after_abandon_hours": REPEAT_AFTER_ABANDON_HOURS,
        "customers_abandoned_more_than_once": abandoned_twice,
        "raw_attempts_retention_days": settings.pipeline.raw_attempts_retention_days,
    }
    files = {
        "daily_counts.csv": _csv(daily),
        "calls.csv": _csv(calls),
        "calling_hours_violations.csv": _csv(hours),
        "repeat_calls_after_abandon.csv": _csv(repeats),
        "configuration.json": (json.dumps(configuration, indent=2, sort_keys=True) + "\n").encode(),
        "README.txt": RECOMPUTE.encode(),
    }
    manifest = {
        "format": BUNDLE_FORMAT,
        "files": {
            name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)} for name, data in files.items()
        },
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for name, data in files.items():
            bundle.writestr(name, data)
        bundle.writestr("manifest.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    partial.replace(output)  # never a half-written bundle under the name asked for
    return {
        "calls": len(calls),
        "days": (last_day - first_day).days + 1,
        "calling_hours_violations": len(hours),
        "repeat_calls_after_abandon": len(repeats),
    }


def _calling_hours_of(settings: Settings, campaign: str) -> dict:
    name, profile = settings.calling_hours.profile_for(campaign)
    return {
        "profile": name,
        "start": profile.start,
        "end": profile.end,
        "days": dict(profile.days),
        "hours": profile.describe(),
        "source": profile.source,
    }


def _csv(frame) -> bytes:
    """A frame as CSV: times in UTC ISO form with milliseconds, empty for null."""
    frame = frame.copy()
    for column in frame.columns:
        if str(frame[column].dtype).startswith("datetime64"):
            moments = frame[column]
            if moments.dt.tz is None:
                moments = moments.dt.tz_localize("UTC")
            frame[column] = moments.dt.strftime("%Y-%m-%dT%H:%M:%S.%f").str[:-3] + "Z"
    text = io.StringIO()
    frame.to_csv(text, index=False)
    return text.getvalue().encode()
