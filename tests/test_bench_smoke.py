"""`callpulse bench --smoke`: every stage of the benchmark runs and counts right.

Not a timed test: figures are only checked for being measured (positive, finite). What is
checked exactly is the work: the worker lands every published event (the bench itself
refuses to report a rate otherwise), and each peer counts every event it was given.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest
from test_wallboard_browser import PROJECT_ROOT

pytestmark = pytest.mark.integration


@pytest.mark.timeout(420)
def test_the_benchmark_runs_every_stage_on_a_small_workload(tmp_path):
    results = tmp_path / "pipeline.txt"
    run = subprocess.run(
        [sys.executable, "-m", "callpulse", "bench", "--smoke", "--results", str(results)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    text = results.read_text()
    numbers = json.loads(text.split("numbers: ", 1)[1])
    for key in (
        "callpulse_events_per_s",
        "freshness_p50_s",
        "freshness_p95_s",
        "worker_cpu_share",
        "worker_rss_mb",
        "worker_steady_rss_mb",
        "worker_ready_rss_mb",
        "worker_imports_rss_mb",
        "chdb_client_rss_mb",
        "worker_peak_anon_mb",
        "quix_events_per_s",
        "quix_committed_events_per_s",
        "naive_events_per_s",
        "wallboard_ms",
        "crosstab_ms",
        "ratio_quix_events_per_s",
        "ratio_quix_committed_events_per_s",
        "ratio_naive_events_per_s",
    ):
        assert key in numbers and math.isfinite(numbers[key]) and numbers[key] > 0, (key, numbers)
    assert numbers["published_events"] == 10_000
    assert numbers["freshness_p50_s"] <= numbers["freshness_p95_s"]
    assert numbers["worker_steady_rss_mb"] <= numbers["worker_rss_mb"]  # now can never exceed the peak
    assert numbers["worker_ready_rss_mb"] <= numbers["worker_rss_mb"]
    assert numbers["worker_peak_anon_mb"] < numbers["worker_rss_mb"]  # a part of the resident set
    # The worker holds its imports and a chDB client, so each floor is below it when ready.
    assert max(numbers["worker_imports_rss_mb"], numbers["chdb_client_rss_mb"]) < numbers["worker_ready_rss_mb"]
    assert numbers["ratio_quix_events_per_s"] == pytest.approx(
        numbers["callpulse_events_per_s"] / numbers["quix_events_per_s"], rel=1e-2
    )
    # Committing its state comes after counting the last event, never before.
    assert numbers["quix_committed_events_per_s"] <= numbers["quix_events_per_s"]
    # The cross-tab read what was landed: 200 campaigns x 6 segments x the slots that hold calls.
    assert "200,000 attempts in" in text
    assert "machine: " in text and "cores" in text


@pytest.mark.timeout(120)
def test_the_stage_timer_counts_every_event_of_its_workload():
    """bench/stages.py drives the worker's own objects; it refuses to print figures unless
    every event of the workload was counted, and then names each stage."""
    run = subprocess.run(
        [
            sys.executable,
            "bench/stages.py",
            "--events",
            "3000",
            "--campaigns",
            "50",
            "--batch-records",
            "10",
            "--repeats",
            "1",
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    table = run.stdout
    for stage in ("process", "land", "evict", "alerts, live", "alerts, warehouse", "all"):
        assert f"│ {stage}" in table, table
    assert "3,000 events" in table and "events/s" in table


@pytest.mark.timeout(120)
def test_the_soak_samples_the_worker_and_checks_every_event_was_counted_once(tmp_path):
    """bench/soak.py --smoke: 20 s at 200 events/s into the embedded broker and a worker that
    serves the dashboard too, as `callpulse up` runs it; a sample every 2 s."""
    results = tmp_path / "soak.txt"
    run = subprocess.run(
        [sys.executable, "bench/soak.py", "--smoke", "--results", str(results)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    text = results.read_text()
    numbers = json.loads(text.split("numbers: ", 1)[1])
    assert numbers["sent"] == numbers["counted"] == numbers["warehouse_attempts"] == numbers["warehouse_dials"] == 4000
    assert numbers["counted_exactly"] is True
    samples = numbers["samples"]
    assert len(samples) >= 10
    assert all(0 < s["anon_mb"] < s["rss_mb"] < numbers["peak_rss_mb"] + 1 for s in samples)
    # Within the worker's hour of alert windows every id it counted is still remembered.
    assert samples[-1]["event_ids"] == samples[-1]["counted"] == 4000
    assert samples[-1]["unlanded_records"] == 0
    for figure in ("first_growth_mb_per_min", "last_growth_mb_per_min"):
        assert math.isfinite(numbers[figure]), figure
    assert "levelled off: " in text and "every event counted once" in text and "machine: " in text


@pytest.mark.timeout(150)
def test_the_dashboard_pressure_bench_counts_every_backlog_under_each_load(tmp_path):
    """bench/dashboard_pressure.py --smoke: idle, wrong logins from 16 threads, and a flooded
    board with its clients, each on a fresh data dir; it refuses to report a rate unless the
    worker counted the whole backlog."""
    results = tmp_path / "dashboard_pressure.txt"
    run = subprocess.run(
        [sys.executable, "bench/dashboard_pressure.py", "--smoke", "--results", str(results)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=140,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    numbers = json.loads(results.read_text().split("numbers: ", 1)[1])
    for condition in ("idle", "logins", "campaigns"):
        for figure in ("events_per_s", "vs_idle", "peak_rss_mb"):
            value = numbers[f"{condition}_{figure}"]
            assert math.isfinite(value) and value > 0, (condition, figure, value)
    assert numbers["idle_vs_idle"] == 1.0
    runs = {run["condition"]: run for run in numbers["runs"]}
    (guesses,) = runs["logins"]["clients"]
    assert " x 429" in guesses  # the wrong logins were soon refused by the rate limit
    api, browser = runs["campaigns"]["clients"]
    assert api.startswith("GET /api/wallboard") and " x 200)" in api and " x 40" not in api
    assert browser.startswith("wallboard page") and " x 200)" in browser and " x 40" not in browser
    assert runs["campaigns"]["note"].startswith("2,000 campaigns landed first")
    assert runs["flood"]["clients"] == [] and runs["flood"]["note"].startswith("2,000 campaigns landed first")


def test_the_workload_s_event_ids_are_never_taken_for_phone_numbers():
    """The benches publish up to millions of the workload's calls; an id the worker took for a
    phone number would be dead-lettered and the bench would refuse its figures (calls
    777,000-777,199 of seed 7 were, as "s7-000777000")."""
    sys.path.insert(0, str(PROJECT_ROOT / "bench"))
    from workload import event_id

    from core.privacy import looks_like_phone_number

    numbers = [*range(0, 20_000_000, 997), *range(776_000, 778_000), *range(9_999_000, 10_001_000)]
    for seed in (7, 11):
        taken = [number for number in numbers if looks_like_phone_number(event_id(seed, number))]
        assert taken == [], (seed, taken[:5])
