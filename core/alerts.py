"""Alerts: the event every stage shares, and the state machine that decides when to send one.

Each (rule, campaign) pair is either quiet or firing at a severity. A transition is one
``Alert`` event: it fires, escalates from warning to critical, or resolves. It does not
flap, because:

* evidence: a rate read from a sample (the live abandon rate, the contact rate, CPO) carries
  its confidence interval, and the rule fires only when the whole interval is past the
  threshold (its lower bound for a rate that is bad high), and resolves only when the whole
  interval is back past the clear level: chance alone rarely does either. The abandon rule
  fires on a sequential test instead (``abandon_evidence``, a Bernoulli CUSUM): an interval
  tested afresh every minute on overlapping windows is 1,440 tests a day, and a 1 % campaign
  passed one of them on 4 days in 10 at 10 live answers a minute;
* hysteresis: a firing alert resolves only once the value is back past a clear level
  that is stricter than the level it fired at;
* a minimum sample: a rule says nothing until its window holds enough data;
* a cooldown: after a resolve the same rule stays quiet for a while (event time).
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from enum import Enum
from typing import NamedTuple

import msgspec

from core.metrics import format_metric

#: compliance_forecast's value (hours to the projected breach) when none is projected: past the
#: longest window, which a steady pace always crosses within if it crosses at all.
NO_BREACH_HOURS = 30 * 24.0


class Rule(str, Enum):
    ABANDON_RATE = "abandon_rate"
    COMPLIANCE_UK_24H = "compliance_uk_24h"
    COMPLIANCE_US_30D = "compliance_us_30d"
    CONTACT_RATE_DROP = "contact_rate_drop"
    CPO_SPIKE = "cpo_spike"
    STOP_LIST_VIOLATION = "stop_list_violation"
    CALLING_HOURS_VIOLATION = "calling_hours_violation"
    MODEL_DRIFT = "model_drift"
    CLOCK_SKEW = "clock_skew"
    COMPLIANCE_FORECAST = "compliance_forecast"


RULE_LABELS = {
    Rule.ABANDON_RATE: "abandon rate",
    Rule.COMPLIANCE_UK_24H: "UK 24 h abandon rate",
    Rule.COMPLIANCE_US_30D: "US 30-day abandon rate",
    Rule.CONTACT_RATE_DROP: "contact rate drop",
    Rule.CPO_SPIKE: "CPO spike",
    Rule.STOP_LIST_VIOLATION: "stop-list violation",
    Rule.CALLING_HOURS_VIOLATION: "calling-hours violation",
    Rule.MODEL_DRIFT: "response-model calibration error",
    Rule.CLOCK_SKEW: "clock skew",
    Rule.COMPLIANCE_FORECAST: "abandon limit projected",
}


def format_alert_value(rule: Rule | str, value: float | None) -> str:
    """A rule's value as people read it: CPO as money, violations as a count, clock skew as a
    time ahead, the rest as rates."""
    if Rule(rule) is Rule.STOP_LIST_VIOLATION:
        return "–" if value is None else f"{int(value)} dial{'s' if int(value) != 1 else ''}"
    if Rule(rule) is Rule.CALLING_HOURS_VIOLATION:
        return "–" if value is None else f"{int(value)} call{'s' if int(value) != 1 else ''}"
    if Rule(rule) is Rule.CLOCK_SKEW:
        return "–" if value is None else f"{format_seconds(value)} ahead" if value > 0 else "0 s"
    if Rule(rule) is Rule.COMPLIANCE_FORECAST:
        if value is None or value >= NO_BREACH_HOURS:
            return "none projected"
        return "now" if value <= 0 else f"in {format_seconds(value * 3600)}"
    return format_metric("cpo" if Rule(rule) is Rule.CPO_SPIKE else "abandon_rate", value)


def format_seconds(seconds: float) -> str:
    """A span as people say it: 45 s, 12 min, 3.0 h."""
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"


class Evidence(NamedTuple):
    """The abandon rule's sequential test at one level, read back from the minutes it rests on."""

    score: float  # the CUSUM: log-likelihood ratio of "the rate is at high" against "at low"
    abandoned: int  # the stretch the score rests on (the minutes since the estimated change)
    live_answers: int
    minutes: int


def evidence_rates(level: float, ratio: float) -> tuple[float, float]:
    """The two rates a level's test weighs: ``level / ratio`` (no breach) against
    ``level x ratio`` (a breach). The score climbs while the rate is above about the level
    (1.08 x it at ratio 2) and falls while below, so a rate at the level neither fires nor rests."""
    if not (ratio > 1 and 0 < level * ratio < 1):
        raise ValueError(f"evidence rates need ratio > 1 and level x ratio below 1, not {level} x {ratio}")
    return level / ratio, level * ratio


def abandon_evidence(minutes: Iterable[tuple[float, float]], level: float, ratio: float) -> Evidence:
    """The Bernoulli CUSUM of abandons among live answers, one step per event minute
    (``minutes``: (abandoned, live answers) per minute, oldest first): each minute adds its
    log-likelihood ratio of the breach rate against the no-breach rate (evidence_rates), and
    the sum never falls below zero, so a good hour cannot bank credit against a bad quarter.

    Unlike a confidence interval read afresh every minute, it is one test of a running
    stream: its false alarms are set by how high the score must reach (the decision interval),
    whatever the number of readings. It also says where the evidence starts: the minute after
    the score last stood at zero, which the alert text reports as the stretch it rests on."""
    low, high = evidence_rates(level, ratio)
    per_abandon = math.log(high / low)
    per_answer = math.log((1 - high) / (1 - low))  # negative: each kept call is evidence against
    score, abandoned, answers, span = 0.0, 0, 0, 0
    for minute_abandoned, minute_answers in minutes:
        score += minute_abandoned * per_abandon + (minute_answers - minute_abandoned) * per_answer
        if score <= 0:
            score, abandoned, answers, span = 0.0, 0, 0, 0
        else:
            abandoned += int(minute_abandoned)
            answers += int(minute_answers)
            span += 1
    return Evidence(score, abandoned, answers, span)


@dataclass(frozen=True)
class SequentialEvidence:
    """What the abandon rule's check carries to the alert book: the campaign's recent event
    minutes and how to weigh them. The book weighs them when it observes the check, from the
    minute the rule last resolved on (evidence an episode was raised on must not raise the
    next one), which it alone knows at that moment: readings are taken while a batch is
    counted, and observed, in order, after it."""

    minutes: tuple[tuple[int, float, float], ...]  # (minute, epoch s; abandoned; live answers), oldest first
    levels: tuple[float, float]  # (warning, critical) rates
    needs: tuple[float, float]  # the score each level needs (its decision interval)
    ratio: float

    def read(self, since: datetime | None) -> tuple[Evidence, Evidence]:
        """(warning, critical) evidence from the minute holding ``since`` on (all of it for None)."""
        first = -math.inf if since is None else int(since.timestamp() // 60) * 60
        minutes = [(abandoned, answers) for minute, abandoned, answers in self.minutes if minute >= first]
        warning, critical = self.levels
        return abandon_evidence(minutes, warning, self.ratio), abandon_evidence(minutes, critical, self.ratio)

    def level(self, since: datetime | None) -> str | None:
        warning, critical = self.read(since)
        if critical.score >= self.needs[1]:
            return "critical"
        return "warning" if warning.score >= self.needs[0] else None


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    """One alert transition, as it goes to the alerts topic, table and webhook."""

    alert_id: str  # the same for every transition of one episode
    rule: Rule
    campaign: str
    state: str  # "firing" or "resolved"
    severity: str  # "warning" or "critical"
    value: float | None  # what was observed
    threshold: float  # the level crossed (or, when resolving, the clear level)
    window_minutes: int
    sample: int  # the denominator behind the value (live answers, dials, orders)
    first_seen: datetime  # event time the episode began
    event_time: datetime  # event time of this transition
    emitted_at: datetime  # wall-clock time the worker decided it
    detail: str
    trigger_event_id: str | None = None

    def headline(self) -> str:
        label = RULE_LABELS[self.rule]
        value = format_alert_value(self.rule, self.value)
        if self.state == "resolved":
            return f"RESOLVED · {self.campaign} · {label} back to {value}"
        return f"{self.severity.upper()} · {self.campaign} · {label} {value} · {self.detail}"


def log_lines(alerts: Sequence[Alert], limit: int) -> list[str]:
    """What the worker logs for a batch's transitions: the first ``limit`` headlines, then one
    line counting the rest by rule and state. A backlog raises thousands in one batch, and a
    line each would bury the log; the topic and the alerts table hold every one."""
    lines = [alert.headline() for alert in alerts[:limit]]
    rest = alerts[limit:]
    if rest:
        kinds = Counter(
            f"{RULE_LABELS[alert.rule]} {'resolved' if alert.state == 'resolved' else alert.severity}" for alert in rest
        )
        lines.append(
            f"{len(rest):,} more in this batch: "
            + ", ".join(f"{count:,} {kind}" for kind, count in kinds.most_common())
            + " (all on the alerts topic and the Alerts page)"
        )
    return lines


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Alert)


def encode_alert(alert: Alert) -> bytes:
    return _encoder.encode(alert)


def decode_alert(raw: bytes) -> Alert:
    return _decoder.decode(raw)


def latest_by_episode(alerts: list[Alert]) -> list[Alert]:
    """Each episode's newest transition, newest first."""

    def order(alert: Alert) -> tuple:
        # Transitions of one episode only move forward: warning, critical, resolved.
        return (alert.event_time, alert.state == "resolved", alert.severity == "critical", alert.emitted_at)

    latest: dict[str, Alert] = {}
    for alert in alerts:
        current = latest.get(alert.alert_id)
        if current is None or order(alert) >= order(current):
            latest[alert.alert_id] = alert
    return sorted(latest.values(), key=lambda a: a.emitted_at, reverse=True)


@dataclass(frozen=True)
class Check:
    """One rule's reading for one campaign at one event time."""

    rule: Rule
    value: float | None
    warning: float | None  # None: this rule has no warning level
    critical: float | None  # None: this rule has no critical level
    clear: float  # the value must get back past this to resolve
    higher_is_worse: bool
    enough_data: bool
    sample: int
    window_minutes: int
    detail: str = ""
    # Written out only when the check raises or resolves an alert: most readings do
    # neither, and a backlog takes one at almost every event.
    describe: Callable[[], str] | None = field(default=None, compare=False, repr=False)
    # (low, high): the value's confidence interval, for a value read from a sample. Then the
    # level is judged on the bound nearest to good (the lower one for a value that is bad high)
    # and the clear level on the other, so both need evidence, not a lucky or unlucky sample.
    interval: tuple[float, float] | None = None
    # Resolve on the value itself, not the interval: for a window too small for any interval to
    # show the rate back below the clear level (a firing alert would otherwise never resolve).
    clear_on_value: bool = False
    # A rule decided by a sequential test (the abandon rule): level() weighs this evidence, not
    # the value or its interval; cleared() still reads the interval. A raise is described by
    # describe_evidence, given the evidence of the level raised.
    evidence: SequentialEvidence | None = None
    describe_evidence: Callable[[Evidence], str] | None = field(default=None, compare=False, repr=False)

    def explanation(self, since: datetime | None = None, raising: str | None = None) -> str:
        """The alert's detail; ``raising`` (the severity fired at) describes a raise on evidence
        by the stretch it rests on (from ``since``, when the rule last resolved)."""
        stretch = self.stretch(since, raising)
        if stretch is not None and self.describe_evidence is not None:
            return self.describe_evidence(stretch)
        return self.describe() if self.describe is not None else self.detail

    def stretch(self, since: datetime | None, raising: str | None) -> Evidence | None:
        """For a raise on evidence, the calls it rests on: its alert's value and sample are
        theirs (a critical raised on 15 abandoned of 301 reads 5.0 %, not the 15-minute window's
        1.8 % that still holds the calls from before the jump)."""
        if raising is None or self.evidence is None:
            return None
        evidence = self.evidence.read(since)[raising == "critical"]
        return evidence if evidence.live_answers else None

    def _evidence(self, for_firing: bool) -> float | None:
        """What a level is judged on: the value, or the bound of its interval that makes the case
        hardest (firing: the bound nearest to good; clearing: the one nearest to bad)."""
        if self.value is None:
            return None
        if self.interval is None:
            return self.value
        low, high = self.interval
        return (low if for_firing else high) if self.higher_is_worse else (high if for_firing else low)

    def level(self, since: datetime | None = None) -> str | None:
        """The level reached, if any; ``since``: when the rule last resolved, for evidence."""
        if self.evidence is not None:
            return self.evidence.level(since)
        value = self._evidence(for_firing=True)
        if value is None:
            return None
        crossed = (lambda level: value >= level) if self.higher_is_worse else (lambda level: value <= level)
        if self.critical is not None and crossed(self.critical):
            return "critical"
        if self.warning is not None and crossed(self.warning):
            return "warning"
        return None

    def cleared(self) -> bool:
        value = self.value if self.clear_on_value else self._evidence(for_firing=False)
        if value is None:
            return False
        return value < self.clear if self.higher_is_worse else value > self.clear


@dataclass
class Episode:
    alert_id: str
    severity: str
    first_seen: datetime


class AlertBook:
    """The state of every (rule, campaign) pair, and the transitions checks cause."""

    def __init__(self) -> None:
        self.firing: dict[tuple[Rule, str], Episode] = {}
        self.resolved_at: dict[tuple[Rule, str], datetime] = {}

    def restore(self, alert: Alert) -> None:
        """Replay a transition from the alerts table (oldest first) after a restart."""
        key = (alert.rule, alert.campaign)
        if alert.state == "firing":
            self.firing[key] = Episode(alert.alert_id, alert.severity, alert.first_seen)
        else:
            self.firing.pop(key, None)
            self.resolved_at[key] = alert.event_time

    def observe(
        self, campaign: str, check: Check, at: datetime, cooldown: timedelta, trigger_event_id: str | None = None
    ) -> Alert | None:
        key = (check.rule, campaign)
        episode = self.firing.get(key)
        if not check.enough_data:
            return None
        since = self.resolved_at.get(key)
        level = check.level(since)
        if episode is None:
            if level is None:
                return None
            resolved_at = self.resolved_at.get(key)
            if resolved_at is not None and at - resolved_at < cooldown:
                return None
            alert_id = _episode_id(check.rule, campaign, at)
            self.firing[key] = Episode(alert_id, level, at)
            return self._alert(alert_id, campaign, check, "firing", level, at, at, trigger_event_id, since)
        if level == "critical" and episode.severity == "warning":
            episode.severity = "critical"
            return self._alert(
                episode.alert_id, campaign, check, "firing", "critical", episode.first_seen, at, trigger_event_id, since
            )
        if check.cleared():
            del self.firing[key]
            self.resolved_at[key] = at
            return self._alert(
                episode.alert_id,
                campaign,
                check,
                "resolved",
                episode.severity,
                episode.first_seen,
                at,
                trigger_event_id,
            )
        return None

    @staticmethod
    def _alert(
        alert_id, campaign, check: Check, state, severity, first_seen, at, trigger_event_id, since=None
    ) -> Alert:
        threshold = check.clear if state == "resolved" else check.critical if severity == "critical" else check.warning
        if threshold is None:
            raise ValueError(f"{check.rule} has no {severity} level to raise an alert at")
        raising = severity if state == "firing" else None
        stretch = check.stretch(since, raising)
        return Alert(
            alert_id=alert_id,
            rule=check.rule,
            campaign=campaign,
            state=state,
            severity=severity,
            value=check.value if stretch is None else stretch.abandoned / stretch.live_answers,
            threshold=float(threshold),
            window_minutes=check.window_minutes,
            sample=check.sample if stretch is None else stretch.live_answers,
            first_seen=first_seen,
            event_time=at,
            emitted_at=datetime.now(timezone.utc),
            detail=check.explanation(since, raising),
            trigger_event_id=trigger_event_id,
        )


def _episode_id(rule: Rule, campaign: str, first_seen: datetime) -> str:
    return hashlib.sha1(f"{rule.value}|{campaign}|{first_seen.isoformat()}".encode()).hexdigest()[:16]
