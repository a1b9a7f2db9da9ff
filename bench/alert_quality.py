"""Alert quality: does the live abandon rule cry wolf, and does it catch a real breach in time?

    .venv/bin/python bench/alert_quality.py [--seeds 10] [--volumes 10,30,100] [--code /tmp/old-22]
    .venv/bin/python bench/alert_quality.py --frontier 5,6,7,8,9 [--seeds 100]

Runs the worker's own rule code in process: the minute buckets count each call and the alert
evaluator takes its readings at each event-minute boundary (note_counted, as the worker does in
a batch), and the alert book decides the transitions. No broker or warehouse: the live abandon
rule reads only the buckets. ``--code DIR`` imports CallPulse from another checkout (a git
worktree of an older commit), so today's rule and the new one are measured on the same calls.

Scenarios (producers.scenarios.abandon_rate_draws: each live answer abandoned with the true
rate's probability, at a fixed number of live answers a minute):

- quiet day: 24 h at a true 1 % abandon rate. Goal: no abandon alert at all.
- spike: 2 h at 1 %, 30 min at 8 %, 1 h at 1 %. Goal: a critical alert within 12 minutes of
  the spike's start (event time).
- simulator day: the dialer simulator's four campaigns (producers.simulator) for 24 h: how many
  abandon-alert transitions a day of ordinary dialling makes.

Each volume draws its own seeds (a seed shared between volumes put the same run of unlucky
draws in every row). ``--frontier`` trades the two goals at 10 live answers a minute: for each
critical decision interval (abandon_critical_evidence) it counts the quiet days with an alert
and the spikes caught within 12 minutes, then shows the limit no rule passes: the fewest
abandons among the spike's first 120 live answers that 95 % of spikes reach, and how often a
1 % campaign reaches as many in some 120 consecutive live answers by chance.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
START = datetime(2026, 11, 23, 0, 0, tzinfo=timezone.utc)  # 09:00 in Tokyo


def load_code(code: Path):
    """Import CallPulse from ``code`` (first on the path) and the scenario generator from this
    checkout (it only builds CallAttempts, whatever version of the contract)."""
    sys.path.insert(0, str(code))
    from core.config import load_settings
    from core.slots import SlotRules
    from streams.alerting import AlertEvaluator
    from streams.buckets import MinuteBuckets, Verdict

    spec = importlib.util.spec_from_file_location("bench_scenarios", ROOT / "producers" / "scenarios.py")
    scenarios = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = scenarios  # dataclasses look their module up while it loads
    spec.loader.exec_module(scenarios)
    return load_settings, SlotRules, AlertEvaluator, MinuteBuckets, Verdict, scenarios


class RuleRunner:
    """The worker's counting and live alert readings for a stream of calls, in process."""

    def __init__(self, code: Path, **overrides):
        (self.load_settings, self.SlotRules, self.AlertEvaluator, self.MinuteBuckets, self.Verdict, self.scenarios) = (
            load_code(code)
        )
        self.settings = self.load_settings(None, pipeline__data_dir="/nonexistent", **overrides)

    def run(self, events) -> list:
        settings = self.settings
        slot_rules = self.SlotRules(settings.slots, settings.zone)
        buckets = self.MinuteBuckets(settings, slot_rules)
        buckets.watermark_ceiling = lambda: float("inf")  # simulated days may lie ahead of the clock
        buckets._ceiling = float("inf")
        evaluator = self.AlertEvaluator(settings, None, buckets, slot_rules)
        alerts = []
        for count, attempt in enumerate(events, 1):
            if buckets.add(attempt) is self.Verdict.COUNTED:
                evaluator.note_counted(attempt)
            if count % 2000 == 0:  # a worker batch: its readings decide, its buckets land and age out
                alerts += evaluator.observe(evaluator._pending)
                evaluator._pending = []
                buckets.take_dirty()
                getattr(buckets, "take_counted", lambda: None)()
                buckets.evict_closed()
        alerts += evaluator.observe(evaluator._pending)
        evaluator._pending = []
        return [alert for alert in alerts if alert.rule.value == "abandon_rate"]


def quiet_day(runner: RuleRunner, volumes: list[int], seeds: int) -> list[dict]:
    rows = []
    for volume in volumes:
        episodes, transitions = [], []
        for seed in range(seeds):
            events = runner.scenarios.abandon_rate_draws(
                "steady",
                START,
                (runner.scenarios.Phase(24 * 60, 0.01),),
                live_answers_per_minute=volume,
                seed=volume * 100_000 + 1000 + seed,
            )
            alerts = runner.run(events)
            episodes.append(len({alert.alert_id for alert in alerts}))
            transitions.append(len(alerts))
        rows.append(
            {
                "volume": volume,
                "days": seeds,
                "days_with_alert": sum(1 for e in episodes if e),
                "episodes": sum(episodes),
                "transitions": sum(transitions),
            }
        )
    return rows


def spike(runner: RuleRunner, volumes: list[int], seeds: int) -> list[dict]:
    phases = (runner.scenarios.Phase(120, 0.01), runner.scenarios.Phase(30, 0.08), runner.scenarios.Phase(60, 0.01))
    spike_start = START + timedelta(minutes=120)
    rows = []
    for volume in volumes:
        delays, missed, before = [], 0, 0
        for seed in range(seeds):
            events = runner.scenarios.abandon_rate_draws(
                "spiky", START, phases, live_answers_per_minute=volume, seed=volume * 100_000 + 2000 + seed
            )
            alerts = runner.run(events)
            before += sum(1 for alert in alerts if alert.event_time < spike_start and alert.state == "firing")
            critical = [
                alert
                for alert in alerts
                if alert.severity == "critical" and alert.state == "firing" and alert.event_time >= spike_start
            ]
            if critical:
                delays.append((critical[0].event_time - spike_start).total_seconds() / 60)
            else:
                missed += 1
        rows.append(
            {
                "volume": volume,
                "runs": seeds,
                "missed": missed,
                "within_12": sum(1 for d in delays if d <= 12),
                "median_min": statistics.median(delays) if delays else None,
                "max_min": max(delays) if delays else None,
                "false_before": before,
            }
        )
    return rows


def frontier(code: Path, intervals: list[float], seeds: int) -> None:
    """At 10 live answers a minute: quiet days with an alert and spikes caught within 12 minutes,
    for each critical decision interval; then the limit no rule passes."""
    import numpy as np

    print("\nfrontier at 10 live answers a minute: the critical decision interval against the two goals")
    print(f"{'critical at':>12} {'quiet days':>11} {'with an alert':>14} {'spikes':>7} {'<= 12 min':>10} {'median':>7}")
    for interval in intervals:
        runner = RuleRunner(code, alerts__rules__default__abandon_critical_evidence=interval)
        quiet = quiet_day(runner, [10], seeds)[0]
        caught = spike(runner, [10], 2 * seeds)[0]
        median = "–" if caught["median_min"] is None else f"{caught['median_min']:.0f}"
        print(
            f"{interval:>12g} {quiet['days']:>11} {quiet['days_with_alert']:>14} {caught['runs']:>7} "
            f"{caught['within_12']:>10} {median:>7}"
        )
    answers, spike_rate, quiet_rate = 120, 0.08, 0.01
    reach = lambda k: sum(  # noqa: E731  P(at least k abandons among the spike's first 120 live answers)
        math.comb(answers, j) * spike_rate**j * (1 - spike_rate) ** (answers - j) for j in range(k, answers + 1)
    )
    fewest = max(k for k in range(answers) if reach(k) >= 0.95)
    rng = np.random.default_rng(22)
    days = rng.random((2000, 24 * 60 * 10)) < quiet_rate  # a day of live answers at 1 %
    running = np.cumsum(days, axis=1)
    stretch_sums = running[:, answers:] - running[:, :-answers]
    for k in (fewest, fewest + 1, fewest + 2):
        print(
            f"the limit: {reach(k):.1%} of spikes reach {k} abandons in their first {answers} live answers (12 min); "
            f"a 1 % campaign shows {k} in some {answers} consecutive live answers on "
            f"{(stretch_sums.max(axis=1) >= k).mean():.0%} of days (2,000 simulated)"
        )


def simulator_day(runner: RuleRunner, seeds: int) -> dict:
    from producers.simulator import DialerSimulator  # the checkout's own (its seeded calls are the same)

    settings = runner.settings
    transitions, episodes, answers = 0, 0, 0
    for seed in range(seeds):
        simulator = DialerSimulator(runner.SlotRules(settings.slots, settings.zone), b"bench", seed=seed, start=START)
        events = [event for event in simulator.events(sim_seconds=24 * 3600) if type(event).__name__ == "CallAttempt"]
        answers += sum(1 for event in events if event.outcome.value in ("connected", "abandoned"))
        alerts = runner.run(events)
        transitions += len(alerts)
        episodes += len({alert.alert_id for alert in alerts})
    return {
        "days": seeds,
        "transitions": transitions,
        "episodes": episodes,
        "live_answers_per_campaign_minute": answers / seeds / 4 / (24 * 60),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--code", type=Path, default=ROOT, help="the CallPulse checkout whose rule to measure")
    parser.add_argument("--seeds", type=int, default=10, help="simulated days per volume (spikes: twice as many)")
    parser.add_argument("--volumes", default="10,30,100", help="live answers per minute, comma-separated")
    parser.add_argument("--simulator-days", type=int, default=2)
    parser.add_argument("--frontier", help="critical decision intervals to sweep at 10 live answers a minute")
    args = parser.parse_args()
    if args.frontier:
        began = time.monotonic()
        frontier(args.code.resolve(), [float(v) for v in args.frontier.split(",")], args.seeds)
        print(f"\n({time.monotonic() - began:.0f} s)")
        return
    volumes = [int(v) for v in args.volumes.split(",")]
    runner = RuleRunner(args.code.resolve())
    rules = runner.settings.alert_rules_for("default")
    began = time.monotonic()
    print(
        f"code: {args.code} · abandon rule: warning {rules.abandon_warning:.0%}, critical "
        f"{rules.abandon_critical:.0%}, {rules.abandon_window_minutes}-min window, min {rules.min_live_answers} "
        f"live answers"
        + (
            f", fires on CUSUM evidence (ratio {rules.abandon_evidence_ratio:g}, warning at "
            f"{rules.abandon_warning_evidence:g}, critical at {rules.abandon_critical_evidence:g}, last "
            f"{rules.abandon_evidence_minutes} min), resolves on the {rules.confidence:.0%} Wilson upper bound "
            f"below {rules.abandon_resolve:.0%}"
            if hasattr(rules, "abandon_evidence_ratio")
            else f", {rules.confidence:.0%} Wilson interval, resolve below {rules.abandon_resolve:.0%}"
            if hasattr(rules, "confidence")
            else ", on the point rate"
        )
    )
    print("\nquiet day (24 h at a true 1 % abandon rate): abandon alerts raised")
    print(f"{'live/min':>9} {'days':>5} {'days with an alert':>19} {'episodes':>9} {'transitions':>12}")
    for row in quiet_day(runner, volumes, args.seeds):
        print(
            f"{row['volume']:>9} {row['days']:>5} {row['days_with_alert']:>19} {row['episodes']:>9} "
            f"{row['transitions']:>12}"
        )
    print(
        "\nspike (2 h at 1 %, 30 min at 8 %, 1 h at 1 %): minutes of event time from the spike's start to "
        "the critical alert"
    )
    print(
        f"{'live/min':>9} {'runs':>5} {'missed':>7} {'<= 12 min':>10} {'median':>7} {'max':>6} "
        f"{'alerts before the spike':>24}"
    )
    for row in spike(runner, volumes, 2 * args.seeds):
        fmt = lambda v: "–" if v is None else f"{v:.0f}"  # noqa: E731
        print(
            f"{row['volume']:>9} {row['runs']:>5} {row['missed']:>7} {row['within_12']:>10} "
            f"{fmt(row['median_min']):>7} {fmt(row['max_min']):>6} {row['false_before']:>24}"
        )
    if args.simulator_days:
        day = simulator_day(runner, args.simulator_days)
        print(
            f"\ndialer simulator, four campaigns, {day['days']} simulated day(s) "
            f"(~{day['live_answers_per_campaign_minute']:.1f} live answers per campaign-minute): "
            f"{day['episodes']} abandon-alert episode(s), {day['transitions']} transition(s)"
        )
    print(f"\n({time.monotonic() - began:.0f} s)")


if __name__ == "__main__":
    main()
