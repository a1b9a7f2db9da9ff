"""Every metric CallPulse shows is defined here, once; every stage imports it.

The stored truth is additive counters per minute bucket. Rates are never stored and
never averaged: each rate is ``sum(numerator) / sum(denominator)`` over whatever
rows a question covers, and a zero denominator gives ``None`` (shown as "—").
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd

from core.config import CostModel
from core.schema import CallAttempt, Outcome

#: The additive counters landed per (campaign, time slot, segment, minute). The last three are the
#: regulators' (migration 0014): ``abandoned_ftc`` the live answers the US FTC counts as abandoned
#: (dropped, or connected after more than compliance.ftc_connect_seconds), ``live_answers_unjudged``
#: the connected calls that came without wait_seconds (the FTC rule cannot judge them), ``machines``
#: the calls answering-machine detection classified as machines (UK Ofcom's estimate starts there).
COUNTERS: tuple[str, ...] = (
    "dials",
    "contacts",
    "connected",
    "abandoned",
    "orders",
    "cost",
    "talk_seconds",
    "abandoned_ftc",
    "live_answers_unjudged",
    "machines",
)
#: The counters that count calls (whole numbers, UInt64 in the warehouse); the rest are money and seconds.
CALL_COUNTS: frozenset[str] = frozenset(
    ("dials", "contacts", "connected", "abandoned", "orders", "abandoned_ftc", "live_answers_unjudged", "machines")
)
#: US FTC TSR 16 CFR 310.4(b)(4)(i): a live answer not connected to a representative within two
#: seconds of the greeting is abandoned. compliance.ftc_connect_seconds overrides it.
FTC_CONNECT_SECONDS = 2.0

#: The additive agent seconds landed per (campaign, team, agent, minute) from agent_state events.
AGENT_COUNTERS: tuple[str, ...] = (
    "logged_in_seconds",
    "available_seconds",
    "on_call_seconds",
    "wrap_up_seconds",
    "paused_seconds",
)
#: Which agent counters a second spent in each state adds to (every state but logged_out is logged in).
AGENT_STATE_COUNTERS: dict[str, tuple[int, ...]] = {
    state: tuple(AGENT_COUNTERS.index(name) for name in names)
    for state, names in (
        ("available", ("logged_in_seconds", "available_seconds")),
        ("on_call", ("logged_in_seconds", "on_call_seconds")),
        ("wrap_up", ("logged_in_seconds", "wrap_up_seconds")),
        ("paused", ("logged_in_seconds", "paused_seconds")),
        ("logged_out", ()),
    )
}
#: Sums the agent rates divide, each a weighted sum of counters: computed from the summed
#: counters of whatever rows a question covers, like every rate.
DERIVED_COUNTERS: dict[str, tuple[tuple[float, str], ...]] = {
    "handled_seconds": ((1.0, "on_call_seconds"), (1.0, "wrap_up_seconds")),  # agents' talk + wrap-up
    "working_seconds": ((1.0, "logged_in_seconds"), (-1.0, "paused_seconds")),  # logged in, not paused
    "agent_hours": ((1 / 3600, "logged_in_seconds"),),
    "handle_seconds": ((1.0, "talk_seconds"), (1.0, "wrap_up_seconds")),  # calls' talk + agents' wrap-up
    # The FTC's abandoned calls had every connected call without wait_seconds been late.
    "abandoned_ftc_upper": ((1.0, "abandoned_ftc"), (1.0, "live_answers_unjudged")),
}


@dataclass(frozen=True)
class Rate:
    name: str
    numerator: str
    denominator: str
    label: str
    unit: str  # "percent", "currency" or "seconds": how a page formats it
    description: str


RATES: dict[str, Rate] = {
    rate.name: rate
    for rate in (
        Rate(
            "contact_rate",
            "contacts",
            "dials",
            "Contact rate",
            "percent",
            "live human answers (connected + abandoned) / dial attempts",
        ),
        Rate(
            "abandon_rate",
            "abandoned",
            "contacts",
            "Abandon rate",
            "percent",
            "abandoned / live answers (connected + abandoned); never / all dials",
        ),
        Rate(
            "abandon_rate_ftc",
            "abandoned_ftc",
            "contacts",
            "Abandon rate (FTC)",
            "percent",
            "US FTC TSR: (dropped + connected after more than compliance.ftc_connect_seconds of waiting) / live "
            "answers; a connected call without wait_seconds (live_answers_unjudged) counts as connected in time, "
            "so this is a lower bound, shown with abandon_rate_ftc_upper",
        ),
        Rate(
            "abandon_rate_ftc_upper",
            "abandoned_ftc_upper",
            "contacts",
            "Abandon rate (FTC), upper bound",
            "percent",
            "(abandoned_ftc + live_answers_unjudged) / live answers: the FTC rate had every connected call "
            "without wait_seconds been late",
        ),
        Rate("conversion_rate", "orders", "contacts", "Conversion", "percent", "orders / live answers"),
        Rate("cpo", "cost", "orders", "Cost per order", "currency", "total cost / orders"),
        Rate(
            "aht_seconds", "talk_seconds", "connected", "Avg handle time", "seconds", "talk seconds / connected calls"
        ),
        Rate(
            "occupancy",
            "handled_seconds",
            "working_seconds",
            "Occupancy",
            "percent",
            "(talk + wrap-up) / (logged in - paused), in agent seconds from agent_state events",
        ),
        Rate(
            "calls_per_agent_hour",
            "connected",
            "agent_hours",
            "Calls per agent hour",
            "number",
            "connected calls / agent hours logged in",
        ),
        Rate(
            "orders_per_agent_hour",
            "orders",
            "agent_hours",
            "Orders per agent hour",
            "number",
            "orders / agent hours logged in",
        ),
        Rate(
            "aht_with_wrap_up_seconds",
            "handle_seconds",
            "connected",
            "AHT with wrap-up",
            "seconds",
            "(talk seconds + agents' wrap-up seconds) / connected calls",
        ),
    )
}


def counter_inputs(name: str) -> tuple[str, ...]:
    """The stored counters a counter or derived sum is made of."""
    return tuple(counter for _, counter in DERIVED_COUNTERS[name]) if name in DERIVED_COUNTERS else (name,)


def rate_inputs(name: str) -> frozenset[str]:
    """The stored counters a rate needs."""
    rate = RATES[name]
    return frozenset(counter_inputs(rate.numerator) + counter_inputs(rate.denominator))


#: The rates that need agent seconds (agent_minutes) beside the call buckets.
AGENT_RATES: frozenset[str] = frozenset(name for name in RATES if rate_inputs(name) & set(AGENT_COUNTERS))
#: The rates of the call buckets alone (the wallboard's tiles carry these).
CALL_RATES: tuple[str, ...] = tuple(name for name in RATES if name not in AGENT_RATES)


def needs_agent_seconds(metrics: Iterable[str]) -> bool:
    """Whether any of these metrics is read from agent seconds."""
    return any(name in AGENT_RATES or name in AGENT_COUNTERS for name in metrics)


#: Names a user may ask a report for: the rates and the plain counters.
METRIC_NAMES: tuple[str, ...] = tuple(RATES) + COUNTERS + AGENT_COUNTERS

#: Short names people type ("conversion", "aht") for the canonical metric names.
METRIC_ALIASES: dict[str, str] = {"conversion": "conversion_rate", "aht": "aht_seconds"}

#: Figures a metric is never shown without: the FTC rate is a lower bound, so the calls it could
#: not judge and its upper bound come beside it (in reports, after it).
METRIC_COMPANIONS: dict[str, tuple[str, ...]] = {
    "abandon_rate_ftc": ("live_answers_unjudged", "abandon_rate_ftc_upper"),
}


def raw_counter_sql(ftc_connect_seconds: float) -> dict[str, str]:
    """The counters of counters_for(), as ClickHouse aggregates over raw ``call_attempts`` rows,
    with the FTC's connect time in force (compliance.ftc_connect_seconds). Reports by agent team
    read raw attempts (buckets are not kept per team); a test holds these to the same totals as
    the minute buckets."""
    if not (math.isfinite(ftc_connect_seconds) and ftc_connect_seconds >= 0):
        raise ValueError(
            f"ftc_connect_seconds must be a finite number of seconds, 0 or more, not {ftc_connect_seconds}"
        )
    return {
        "dials": "count()",
        "contacts": "countIf(outcome IN ('connected', 'abandoned'))",
        "connected": "countIf(outcome = 'connected')",
        "abandoned": "countIf(outcome = 'abandoned')",
        "orders": "countIf(outcome = 'connected' AND is_order = 1)",
        "cost": "sum(cost)",
        "talk_seconds": "sumIf(talk_seconds, outcome = 'connected')",
        "abandoned_ftc": "countIf(outcome = 'abandoned' OR "
        f"(outcome = 'connected' AND wait_seconds > {float(ftc_connect_seconds)!r}))",
        "live_answers_unjudged": "countIf(outcome = 'connected' AND wait_seconds IS NULL)",
        "machines": "countIf(outcome = 'machine')",
    }


def metric_label(name: str) -> str:
    """A metric's human name: "Contact rate", "Dials"."""
    return RATES[name].label if name in RATES else name.replace("_", " ").capitalize()


#: Which way a metric is better: "lower" for the abandon rate (a legal risk) and CPO (a cost),
#: "higher" for the contact rate, conversion and orders. A page colours the good end calm and
#: the bad end loud from this. A metric not named here (handle time, dials) is neither.
BETTER: dict[str, str] = {
    "abandon_rate": "lower",
    "abandon_rate_ftc": "lower",
    "abandon_rate_ftc_upper": "lower",
    "cpo": "lower",
    "contact_rate": "higher",
    "conversion_rate": "higher",
    "orders": "higher",
    "calls_per_agent_hour": "higher",
    "orders_per_agent_hour": "higher",
}


def higher_is_better(name: str) -> bool | None:
    """True when more of ``name`` is better, False when less is, None when neither (BETTER)."""
    direction = BETTER.get(name)
    return None if direction is None else direction == "higher"


@dataclass(frozen=True)
class ComplianceWindow:
    """A rolling abandon-rate window per campaign, ending now, over whole minute buckets."""

    name: str
    label: str
    minutes: int
    rule: str


#: Each window's abandon rate under its own definition (ComplianceWindow.definition): the live
#: window the dialer's (abandoned / contacts, as RATES says), the UK window Ofcom's, the US window
#: the FTC's (compliance_figures()).
COMPLIANCE_WINDOWS: tuple[ComplianceWindow, ...] = (
    ComplianceWindow(
        "live_15m", "Last 15 min", 15, "live abandon rate over the last 15 minutes: what a supervisor can still fix"
    ),
    ComplianceWindow(
        "uk_24h",
        "UK 24 h",
        24 * 60,
        "UK Ofcom: abandoned calls, with the estimate of live calls answering-machine detection "
        "took for machines, at most 3 % of live calls per campaign over 24 hours",
    ),
    ComplianceWindow(
        "us_30d",
        "US 30 days",
        30 * 24 * 60,
        "US FTC Telemarketing Sales Rule: calls not connected to a representative within 2 s, "
        "at most 3 % of calls answered by a live person per campaign over 30 days",
    ),
)
#: Which definition each compliance window is judged by (COMPLIANCE_DEFINITIONS).
WINDOW_DEFINITION: dict[str, str] = {"live_15m": "dialer", "uk_24h": "ofcom", "us_30d": "ftc"}
#: The counters each compliance window sums (compliance_windows() hands out "<window>_<counter>").
COMPLIANCE_COUNTERS: tuple[str, ...] = ("abandoned", "contacts", "abandoned_ftc", "live_answers_unjudged", "machines")


@dataclass(frozen=True)
class ComplianceDefinition:
    """One way of counting abandoned calls: what the compliance page shows side by side."""

    name: str
    label: str
    rule: str


COMPLIANCE_DEFINITIONS: dict[str, ComplianceDefinition] = {
    definition.name: definition
    for definition in (
        ComplianceDefinition("dialer", "Dialer", "calls the dialer dropped / live answers (connected + dropped)"),
        ComplianceDefinition(
            "ftc",
            "US FTC",
            "(dropped + connected after more than compliance.ftc_connect_seconds "
            "of waiting) / live answers (16 CFR 310.4(b)(4)(i)); a connected call "
            "without wait_seconds counts as connected in time, so the rate is a "
            "lower bound, shown with how many such calls there were and the rate "
            "had they all been late",
        ),
        ComplianceDefinition(
            "ofcom",
            "UK Ofcom",
            "(dropped + amd_false_positive_rate × machine-classified calls) "
            "/ (live answers + the same estimate): Ofcom counts live calls "
            "answering-machine detection took for machines",
        ),
    )
}


@dataclass(frozen=True)
class ComplianceFigure:
    """One abandon rate under one definition, with the counts behind it."""

    definition: str
    abandoned: float  # calls counted abandoned (for Ofcom, with the AMD estimate: may be fractional)
    live_answers: float  # the denominator
    unjudged: int = 0  # FTC: connected calls without wait_seconds, counted as connected in time
    estimate: float = 0.0  # Ofcom: live calls estimated among the machine-classified ones

    @property
    def rate(self) -> float | None:
        """The rate; for the FTC a lower bound when some calls came without a wait."""
        return ratio(self.abandoned, self.live_answers)

    @property
    def upper_rate(self) -> float | None:
        """The rate had every unjudged call been abandoned (the FTC's upper bound; ``rate`` otherwise)."""
        return ratio(self.abandoned + self.unjudged, self.live_answers)

    @property
    def unjudged_note(self) -> str:
        """What the unjudged calls could add, shown beside the rate wherever it is shown."""
        return unjudged_note(self.unjudged, self.upper_rate)


def unjudged_note(unjudged: float, upper_rate: float | None) -> str:
    """ "up to 4.0 % if the 30 calls without a wait were late": the FTC rate's upper bound and the
    connected calls without wait_seconds behind it; "" when every call's wait was known."""
    if not unjudged:
        return ""
    calls = f"{int(unjudged):,} calls without a wait were" if unjudged != 1 else "1 call without a wait was"
    return f"up to {format_metric('abandon_rate_ftc_upper', upper_rate)} if the {calls} late"


def compliance_figures(
    sums: Mapping[str, float], amd_false_positive_rate: float = 0.0, prefix: str = ""
) -> dict[str, ComplianceFigure]:
    """The dialer's, the FTC's and Ofcom's abandon figures from one row of summed counters
    (``prefix`` + counter name, e.g. "us_30d_abandoned")."""
    return {
        definition: compliance_figure(sums, definition, amd_false_positive_rate, prefix)
        for definition in COMPLIANCE_DEFINITIONS
    }


def compliance_figure(
    sums: Mapping[str, float], definition: str, amd_false_positive_rate: float = 0.0, prefix: str = ""
) -> ComplianceFigure:
    """One definition's abandon figure (COMPLIANCE_DEFINITIONS: "dialer", "ftc" or "ofcom") from one
    row of summed counters, as :func:`compliance_figures` gives it."""
    contacts = _summed(sums, prefix + "contacts")
    if definition == "dialer":
        return ComplianceFigure("dialer", _summed(sums, prefix + "abandoned"), contacts)
    if definition == "ftc":
        unjudged = _summed(sums, prefix + "live_answers_unjudged")
        return ComplianceFigure("ftc", _summed(sums, prefix + "abandoned_ftc"), contacts, unjudged=int(unjudged))
    if definition == "ofcom":
        estimate = amd_false_positive_rate * _summed(sums, prefix + "machines")
        abandoned = _summed(sums, prefix + "abandoned")
        return ComplianceFigure("ofcom", abandoned + estimate, contacts + estimate, estimate=estimate)
    raise ValueError(f"unknown compliance definition {definition!r}; expected one of {list(COMPLIANCE_DEFINITIONS)}")


def _summed(sums: Mapping[str, float], name: str) -> float:
    """A summed counter of a row as a float: 0 when the row has none, or None or NaN (nothing counted)."""
    value = sums.get(name, 0)
    return 0.0 if value is None or value != value else float(value)


def window_budgets(
    sums: Mapping[str, float],
    limit: float,
    amd_false_positive_rate: float = 0.0,
    last_hour: str = "last_1h",
    campaign_minutes: float | None = None,
) -> dict[str, AbandonBudget]:
    """The UK 24 h (Ofcom's definition) and US 30 d (FTC's) budgets of one campaign from a row of
    summed counters "<window>_<counter>" holding those windows and the last hour.
    ``campaign_minutes``: how long ago its first call in the longest window landed
    (campaign_minutes()); None: each window is taken as full."""
    budgets = {}
    for window in COMPLIANCE_WINDOWS:
        definition = WINDOW_DEFINITION[window.name]
        if definition == "dialer":
            continue
        figure = compliance_figure(sums, definition, amd_false_positive_rate, prefix=f"{window.name}_")
        pace = compliance_figure(sums, definition, amd_false_positive_rate, prefix=f"{last_hour}_")
        budgets[window.name] = abandon_budget(
            window.name,
            window.minutes,
            limit,
            figure.abandoned,
            figure.live_answers,
            pace.abandoned,
            pace.live_answers,
            held_minutes=window_held_minutes(window.minutes, campaign_minutes),
        )
    return budgets


#: The longest compliance window: the compliance queries look for a campaign's first call this far back.
LONGEST_WINDOW_MINUTES = max(window.minutes for window in COMPLIANCE_WINDOWS)
#: A campaign whose first call in the longest window came within this long of the window's start
#: is taken as older than the window, on a quiet spell (a weekend, a holiday): the queries do not
#: look further back to tell.
QUIET_SPELL_MINUTES = 7 * 24 * 60
#: A young window's live answers are projected over the whole window only once it holds this
#: much: an answer or two in its first minutes is no pace to multiply by a day or a month.
MIN_PROJECTION_MINUTES = 60


def campaign_minutes(first_minute: float | None, now: float) -> float | None:
    """How many minutes before ``now`` (epoch seconds) a campaign's first call in the longest
    window landed (``first_minute``, epoch seconds); None when not known."""
    if first_minute is None or first_minute != first_minute or first_minute > now:
        return None
    return (now - first_minute) / 60


def window_held_minutes(window_minutes: int, campaign_minutes: float | None) -> float:
    """How many minutes of a window ending now hold the campaign's calls: all of it once the
    campaign is older than the window (or its age is not known), else its age (``campaign_minutes``:
    since its first landed minute within the longest window)."""
    if campaign_minutes is None:
        return float(window_minutes)
    full_from = window_minutes - (QUIET_SPELL_MINUTES if window_minutes >= LONGEST_WINDOW_MINUTES else 0)
    return float(window_minutes) if campaign_minutes >= full_from else max(1.0, campaign_minutes)


def confidence_z(confidence: float) -> float:
    """z of a two-sided interval at ``confidence`` (0.95 -> 1.96), for wilson_interval(): the
    alert rules read 1 % rates from a few hundred live answers, where Wilson's interval keeps its
    coverage and the normal approximation's does not."""
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def format_interval(interval: tuple[float, float] | None, confidence: float) -> str:
    """ "95 % CI 4.0–13.6 %" (rates shown as percent, one decimal)."""
    if interval is None:
        return "no data"
    return f"{confidence * 100:g} % CI {interval[0] * 100:.1f}–{interval[1] * 100:.1f} %"


def format_span(minutes: float) -> str:
    """A window's length as its rule says it: "45 min", "2.5 h", "24 h", "3.2 d", "30 d"."""
    if minutes >= 2 * 24 * 60:
        return f"{minutes / 1440:.1f} d".replace(".0 d", " d")
    if minutes >= 60:
        return f"{minutes / 60:.1f} h".replace(".0 h", " h")
    return f"{minutes:.0f} min"


@dataclass(frozen=True)
class AbandonBudget:
    """How many more abandoned calls a regulator's window allows, and when it runs out.

    A window is *young* while the campaign is younger than it (the UK 24 h window two hours into
    a campaign's first day, the US 30 d window on its third): it holds ``held_minutes`` of its
    ``window_minutes`` and the rate the regulator judges will be over the whole window.

    ``remaining_now`` = limit × live answers − abandoned over the window so far (negative when
    over). ``remaining`` is the budget shown: the same for a full window; for a young one, with
    its live answers projected over the whole window at the pace it has seen
    (``projected_live_answers`` = live answers × window / held; not before it holds
    MIN_PROJECTION_MINUTES, when it is ``remaining_now``).

    ``hours_to_breach`` extrapolates the last hour's pace: each hour adds its live answers and its
    abandons; a young window loses nothing until it is full, then its oldest calls leave at the
    pace they came (a full window's at its average, a steady state), so the rate drifts towards
    the last hour's. None when that pace never crosses the limit, 0.0 when already over."""

    window: str
    limit: float
    abandoned: float
    live_answers: float
    remaining: float
    last_hour_abandoned: float
    last_hour_live_answers: float
    hours_to_breach: float | None
    window_minutes: int = 0
    held_minutes: float = 0.0
    remaining_now: float = 0.0
    projected_live_answers: float = 0.0

    @property
    def young(self) -> bool:
        return self.held_minutes < self.window_minutes

    @property
    def projected(self) -> bool:
        """Whether ``remaining`` counts the young window's live answers still to come."""
        return self.young and self.held_minutes >= MIN_PROJECTION_MINUTES

    @property
    def held_note(self) -> str:
        """ "window holds 2 h of 24 h" for a young window, "" for a full one."""
        if not self.young:
            return ""
        return f"window holds {format_span(self.held_minutes)} of {format_span(self.window_minutes)}"

    @property
    def budget_basis(self) -> str:
        """What ``remaining`` is counted against, for the text beside it."""
        if self.projected:
            now = max(0, math.floor(self.remaining_now + 1e-9))
            return (
                f"at {self.projected_live_answers:,.0f} live answers projected over the window at the pace seen "
                f"({self.held_note}; {now:,} more at its {self.live_answers:,.0f} live answers so far)"
            )
        if self.young:
            return f"at its {self.live_answers:,.0f} live answers so far ({self.held_note})"
        return f"at {self.live_answers:,.0f} live answers"


def abandon_budget(
    window: str,
    window_minutes: int,
    limit: float,
    abandoned: float,
    live_answers: float,
    last_hour_abandoned: float,
    last_hour_live_answers: float,
    held_minutes: float | None = None,
) -> AbandonBudget:
    """:class:`AbandonBudget` of one campaign's window of H hours, holding G of them
    (``held_minutes``; None or H: full).

    Forecast: the last hour's pace is a abandons and l live answers an hour (its counts over G when
    the window holds less than an hour). For the first H − G hours nothing leaves:
    abandoned(t) = A + t a, live(t) = L + t l. After that, the window's oldest calls leave at the
    pace they came, A/G and L/G an hour, until the window is all new calls at t = H. The breach is
    the first t > 0 with abandoned(t) > limit × live(t), found in closed form on each piece; past H
    the rate is the pace's own, so a pace that has not crossed by then never does."""
    hours = window_minutes / 60
    held = hours if held_minutes is None else min(hours, max(held_minutes, 1.0) / 60)
    remaining_now = limit * live_answers - abandoned
    projected_live = live_answers * hours / held if held * 60 >= MIN_PROJECTION_MINUTES else live_answers
    last_hour_span = min(1.0, held)
    pace_abandoned = last_hour_abandoned / last_hour_span
    pace_live = last_hour_live_answers / last_hour_span
    excess_now = abandoned - limit * live_answers
    growth = pace_abandoned - limit * pace_live  # excess added an hour while nothing leaves
    filling = hours - held  # hours until the window is full and its oldest calls start to leave
    breach: float | None
    if live_answers and excess_now > 0:
        breach = 0.0
    elif growth > 0 and excess_now + growth * filling >= 0:
        breach = max(0.0, -excess_now / growth)
    else:
        excess_when_full = excess_now + growth * filling
        # Once full, each hour adds the pace and loses an hour of the oldest calls (excess_now / held).
        slope = growth - excess_now / held
        if slope > 0:
            crossing = -excess_when_full / slope if excess_when_full < 0 else 0.0
            # By t = H the window is all last-hour pace: a crossing later than that never comes.
            breach = filling + crossing if crossing <= held else None
        else:
            breach = None
    return AbandonBudget(
        window,
        limit,
        abandoned,
        live_answers,
        limit * projected_live - abandoned,
        last_hour_abandoned,
        last_hour_live_answers,
        breach,
        window_minutes=window_minutes,
        held_minutes=held * 60,
        remaining_now=remaining_now,
        projected_live_answers=projected_live,
    )


def ratio(numerator: float, denominator: float) -> float | None:
    """numerator / denominator, or None where the denominator is zero."""
    if not denominator:
        return None
    return numerator / denominator


def counter_sum(sums: Mapping, name: str):
    """A stored counter, or a derived sum (DERIVED_COUNTERS) computed from them; works on
    numbers and on frame columns alike."""
    if name not in DERIVED_COUNTERS:
        return sums[name]
    return sum(weight * sums[counter] for weight, counter in DERIVED_COUNTERS[name])


def compute_rates(sums: Mapping[str, float]) -> dict[str, float | None]:
    """Every rate whose counters are in one row of summed counters."""
    return {
        name: ratio(counter_sum(sums, r.numerator), counter_sum(sums, r.denominator))
        for name, r in RATES.items()
        if rate_inputs(name) <= sums.keys()
    }


def rate_sql(name: str) -> str:
    """A rate as a ClickHouse expression over columns of its summed counters (named after
    them), NULL where ratio() gives None: for queries that hand out rates ready to show."""
    rate = RATES[name]
    return f"if({rate.denominator} = 0, NULL, {rate.numerator} / {rate.denominator})"


def ratio_series(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    """Element-wise ``ratio``: NaN (null) where the denominator is zero."""
    denominator = denominator.astype("float64")
    return numerator.astype("float64").div(denominator.where(denominator != 0, np.nan))


def add_rate_columns(frame: pd.DataFrame, rates: Iterable[str] | None = None) -> pd.DataFrame:
    """Add rate columns to a frame of summed counters; zero denominators give NaN (null).
    Without ``rates``, every rate whose counters the frame holds (the agent rates only
    beside agent seconds)."""
    frame = frame.copy()
    if rates is None:
        rates = [name for name in RATES if rate_inputs(name) <= set(frame.columns)]
    for name in rates:
        rate = RATES[name]
        frame[name] = ratio_series(counter_sum(frame, rate.numerator), counter_sum(frame, rate.denominator))
    return frame


#: Shown in the UI next to the configured numbers; attempt_cost() below is its code.
COST_FORMULA = (
    "cost = cost_per_attempt + (ring + wait + talk seconds) / 60 × cost_per_minute "
    "+ talk seconds / 3600 × agent_cost_per_hour, unless the event carries its own cost"
)


def attempt_cost(attempt: CallAttempt, model: CostModel) -> float:
    """What one attempt cost: its own cost fields if it carries any, else the campaign model.

    Model: cost_per_attempt
         + (ring + wait + talk seconds) / 60 * cost_per_minute      (billed telephony)
         + talk_seconds / 3600 * agent_cost_per_hour                (agent labour)
    """
    if attempt.cost is not None:
        return attempt.cost
    if attempt.telephony_cost is not None or attempt.agent_cost is not None:
        return (attempt.telephony_cost or 0.0) + (attempt.agent_cost or 0.0)
    billed_seconds = attempt.ring_seconds + (attempt.wait_seconds or 0.0) + attempt.talk_seconds
    return (
        model.cost_per_attempt
        + billed_seconds / 60.0 * model.cost_per_minute
        + attempt.talk_seconds / 3600.0 * model.agent_cost_per_hour
    )


def ftc_wait(outcome: Outcome, wait_seconds: float | None, ftc_connect_seconds: float) -> str:
    """How the FTC rule judges a call: "abandoned" (dropped, or connected after waiting more than
    ``ftc_connect_seconds``), "unjudged" (connected, no wait_seconds: it cannot be judged) or "" (a
    live answer connected in time, or not a live answer)."""
    if outcome is Outcome.ABANDONED:
        return "abandoned"
    if outcome is not Outcome.CONNECTED:
        return ""
    if wait_seconds is None:
        return "unjudged"
    return "abandoned" if wait_seconds > ftc_connect_seconds else ""


def counters_for(
    outcome: Outcome | str,
    is_order: bool,
    cost: float,
    talk_seconds: float,
    wait_seconds: float | None = 0.0,
    ftc_connect_seconds: float = FTC_CONNECT_SECONDS,
) -> tuple[float, ...]:
    """The increments one attempt adds to its bucket, in COUNTERS order.

    Takes plain fields so the worker (from events) and recovery (from landed rows)
    share one definition.
    """
    if not isinstance(outcome, Outcome):  # recovery reads the outcome's name; Outcome() on a member is slow
        outcome = Outcome(outcome)
    connected = outcome is Outcome.CONNECTED
    abandoned = outcome is Outcome.ABANDONED
    ftc = ftc_wait(outcome, wait_seconds, ftc_connect_seconds)
    return (
        1,  # dials
        int(connected or abandoned),  # contacts: live answers
        int(connected),  # connected
        int(abandoned),  # abandoned
        int(connected and bool(is_order)),  # orders: only a call an agent talked to can order
        float(cost),  # cost
        float(talk_seconds) if connected else 0.0,  # talk_seconds
        int(ftc == "abandoned"),  # abandoned_ftc
        int(ftc == "unjudged"),  # live_answers_unjudged
        int(outcome is Outcome.MACHINE),  # machines
    )


def attempt_counters(
    attempt: CallAttempt, model: CostModel, ftc_connect_seconds: float = FTC_CONNECT_SECONDS
) -> tuple[float, ...]:
    return counters_for(
        attempt.outcome,
        attempt.order,
        attempt_cost(attempt, model),
        attempt.talk_seconds,
        attempt.wait_seconds,
        ftc_connect_seconds,
    )


# counters_for()'s call counts for each outcome, order flag and FTC verdict, without the zeros.
_FTC_WAITS = {"": 0.0, "abandoned": math.inf, "unjudged": None}  # a wait giving each verdict
_CALL_COUNT_INCREMENTS = {
    (outcome, is_order, verdict): tuple(
        (index, value) for index, value in enumerate(counters_for(outcome, is_order, 0, 0, wait)) if value
    )
    for outcome in Outcome
    for is_order in (False, True)
    for verdict, wait in _FTC_WAITS.items()
}
_COST_INDEX, _TALK_INDEX = COUNTERS.index("cost"), COUNTERS.index("talk_seconds")


def counter_increments(
    outcome: Outcome | str,
    is_order: bool,
    cost: float,
    talk_seconds: float,
    wait_seconds: float | None = 0.0,
    ftc_connect_seconds: float = FTC_CONNECT_SECONDS,
) -> tuple[tuple[int, float], ...]:
    """counters_for() as (COUNTERS index, increment) pairs, zeros left out: the worker adds
    only what a call changes, and a dial nobody answered changes two counters of ten."""
    if not isinstance(outcome, Outcome):
        outcome = Outcome(outcome)
    increments = _CALL_COUNT_INCREMENTS[outcome, bool(is_order), ftc_wait(outcome, wait_seconds, ftc_connect_seconds)]
    if cost:
        increments += ((_COST_INDEX, float(cost)),)
    if talk_seconds and outcome is Outcome.CONNECTED:
        increments += ((_TALK_INDEX, float(talk_seconds)),)
    return increments


def format_metric(name: str, value: float | None) -> str:
    """How a page or a table shows a value: "—" for null."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "—"
    unit = RATES[name].unit if name in RATES else "count"
    if unit == "percent":
        return f"{value * 100:.1f} %"
    if unit == "currency":
        return f"{value:,.2f}"
    if unit == "seconds":
        return f"{value:,.0f} s"
    if unit == "number":
        return f"{value:,.2f}"
    if name in AGENT_COUNTERS:
        return f"{value:,.0f} s"
    if name in ("cost", "talk_seconds"):
        return f"{value:,.2f}"
    return f"{value:,.0f}"


# z for a two-sided 95 % interval.
Z_95 = 1.959963984540054


def wilson_interval(successes: float, trials: float, z: float = Z_95) -> tuple[float, float] | None:
    """The Wilson score interval for successes / trials; None when there are no trials.

    Unlike the textbook p ± z·sqrt(p(1-p)/n), it stays inside [0, 1] and does not collapse
    to a zero width at 0 or n successes, which is exactly where thin slots end up.
    """
    if trials < 0 or successes < 0 or successes > trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes} of {trials}")
    if trials == 0:
        return None
    share = successes / trials
    z2_over_n = z * z / trials
    centre = (share + z2_over_n / 2) / (1 + z2_over_n)
    half_width = z / (1 + z2_over_n) * math.sqrt(share * (1 - share) / trials + z2_over_n / (4 * trials))
    # At 0 or n successes the bound is exactly 0 or 1; rounding must not leave it a hair inside.
    low = 0.0 if successes == 0 else max(0.0, centre - half_width)
    high = 1.0 if successes == trials else min(1.0, centre + half_width)
    return low, high
