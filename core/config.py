"""Configuration: packaged TOML defaults, an optional user TOML file, then environment.

Precedence (last wins): ``core/default_config.toml`` < ``./callpulse.toml`` or
``$CALLPULSE_CONFIG`` < environment variables. The environment variables that matter
most are the two that switch a stage from embedded to server mode:

* ``KAFKA_BOOTSTRAP_SERVERS``: use this Kafka instead of the embedded tansu broker.
* ``CLICKHOUSE_URL``: ``http(s)://user:pass@host:8123/db`` for a ClickHouse server, or
  ``chdb:///path`` for an embedded warehouse at an explicit path.
"""

from __future__ import annotations

import ipaddress
import math
import os
import tomllib
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from core.schema import LIVE_ANSWER_OUTCOMES, EventScreen, Limits, Outcome

DEFAULT_CONFIG_PATH = Path(__file__).with_name("default_config.toml")


class ConfigError(ValueError):
    """A configuration value is missing or wrong; the message says which and why."""


class PipelineConfig(msgspec.Struct, frozen=True):
    timezone: str
    data_dir: str
    allowed_lateness_seconds: int
    # An event stamped further ahead of the worker's clock than this is a producer's clock
    # or time-zone bug: it is dead-lettered and raises a clock_skew alert for its campaign.
    max_future_seconds: int = 300
    # An event id re-sent within this many hours of its call (by the call's time) is recognised
    # and never counted twice, however much later it comes and across restarts; the worker
    # sizes its memory of ids for duplicate_horizon_calls_per_hour calls an hour.
    duplicate_horizon_hours: float = 48.0
    duplicate_horizon_calls_per_hour: int = 1_800_000
    # Raw attempts older than this are deleted by a ClickHouse TTL; minute buckets stay.
    raw_attempts_retention_days: int = 1827
    # ISO 3166 region of numbers written without a country code (090-…, (03) …); phone
    # numbers are hashed in E.164 form so the national and international forms match.
    phone_region: str = "JP"


class TopicsConfig(msgspec.Struct, frozen=True):
    call_events: str
    dead_letters: str
    alerts: str
    partitions: int
    retention_ms: int
    # Compacted, keyed by phone hash: the latest flag per customer is the stop list.
    stop_list: str = "callpulse.stop-list"


class EmbeddedConfig(msgspec.Struct, frozen=True):
    broker_port: int
    dashboard_host: str
    dashboard_port: int
    # The worker's /health JSON (counters, dead letters by reason, landed offsets), read
    # by `callpulse status`; on 127.0.0.1 only.
    worker_health_port: int = 6066


class WorkerConfig(msgspec.Struct, frozen=True):
    batch_max_messages: int
    batch_max_seconds: float
    # A record over this size is dead-lettered unread (as a truncated copy): a runaway
    # producer must not make the worker decode megabytes per message.
    max_record_bytes: int = 1_048_576
    # Once caught up after a backlog, hand the memory it freed back to the OS, at most this
    # often (0: never).
    release_memory_seconds: float = 30.0
    # The wallboard's per-campaign hour and day totals are summed again from the landed buckets
    # at most this often (0: with every batch), on a timer when no batch comes.
    campaign_totals_seconds: float = 2.0


# Dashboard roles, least to most: each role may open what the ones before it may (dashboards/auth.py).
DASHBOARD_ROLES = ("supervisor", "manager", "admin")
# A wallboard of this many tiles is already more than a wall TV can show legibly.
MAX_WALLBOARD_CAMPAIGNS = 500


class DashboardUser(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """[dashboard.users.<name>]: a login. Only the hash is ever configured (`callpulse users hash-password`)."""

    role: str
    password_hash: str


class DashboardToken(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """[dashboard.tokens.<name>]: a bearer token for a wallboard TV or a script, by its SHA-256
    (`callpulse users new-token`)."""

    role: str
    token_sha256: str


class DashboardConfig(msgspec.Struct, frozen=True):
    refresh_seconds: float
    stale_after_seconds: float
    # A report cell with fewer dials than this is greyed out: its rate is noise.
    report_min_calls: int = 30
    # Boards refreshing within this many seconds of each other share one computed model.
    wallboard_cache_seconds: float = 1.0
    # The wallboard's three reads at once, each on a warehouse client of its own (about 50 MB
    # more for chDB's extra clients); false reads them in turn on the dashboard's client.
    wallboard_parallel_reads: bool = True
    # The wallboard and /api/wallboard show at most this many campaigns, the busiest first:
    # a board's cost stays bounded however many campaign names arrive.
    wallboard_max_campaigns: int = 60
    # Which campaigns the wallboard shows (the busiest) is picked again at most this often;
    # their figures are read on every refresh. 0 picks them on every refresh.
    wallboard_ranking_seconds: float = 15.0
    # Wrong logins allowed within a minute, per user name and per client address; the next
    # attempt is refused (429) and that user or client locked out for login_lockout_seconds.
    failed_logins_per_user_per_minute: int = 10
    failed_logins_per_client_per_minute: int = 30
    login_lockout_seconds: float = 300.0
    # Reverse proxies (addresses or networks) whose X-Forwarded-For names the client the login
    # limits count; from any other peer the header is ignored.
    trusted_proxies: list[str] = []
    users: dict[str, DashboardUser] = {}
    tokens: dict[str, DashboardToken] = {}
    # Beyond the campaigns one screen shows, the wallboard turns to its next page this often.
    rotate_seconds: float = 15.0


class AgentsConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """[agents]: how the floor reads agent_state events."""

    # An agent with no event for this many seconds (event time) counts as logged out.
    timeout_seconds: float = 300.0
    # The floor page shows a pause longer than this in red.
    pause_limit_seconds: float = 900.0


class SlotConfig(msgspec.Struct, frozen=True):
    name: str
    start_hour: int
    end_hour: int
    audience: str = ""


class CostModel(msgspec.Struct, frozen=True):
    cost_per_attempt: float
    cost_per_minute: float
    agent_cost_per_hour: float


class AlertRules(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One campaign's alert rules; see [alerts.rules.default] in default_config.toml."""

    abandon_window_minutes: int
    abandon_warning: float
    abandon_critical: float
    min_live_answers: int
    clear_ratio: float
    cooldown_seconds: float
    compliance_limit: float
    compliance_share: float
    contact_drop_ratio: float
    contact_min_dials: int
    baseline_days: int
    cpo_window_minutes: int
    cpo_spike_multiple: float
    cpo_min_orders: int
    stop_list_window_minutes: int = 60
    calling_hours_window_minutes: int = 60
    clock_skew_min_calls: int = 1
    clock_skew_quiet_minutes: float = 10
    model_drift_days: int = 7
    model_drift_warning: float = 0.02
    model_drift_critical: float = 0.04
    model_drift_min_calls: int = 2000
    model_drift_significance: float = 0.01
    # Evidence, not noise: the contact-rate and CPO rules fire when the whole confidence
    # interval (Wilson, two-sided, at this level) is past the threshold and resolve when it is
    # wholly back; the abandon rule resolves when its upper bound is below abandon_resolve.
    confidence: float = 0.95
    abandon_resolve: float = 0.02
    # The abandon rule fires on a sequential test (core.alerts.abandon_evidence): per level, a
    # CUSUM of level / ratio against level x ratio over the last abandon_evidence_minutes, which
    # fires when it reaches that level's decision interval (a log-likelihood ratio).
    abandon_evidence_ratio: float = 2.0
    abandon_warning_evidence: float = 12.0
    abandon_critical_evidence: float = 7.0
    abandon_evidence_minutes: int = 60


class AlertsConfig(msgspec.Struct, frozen=True):
    # Per campaign: a partial table merged over "default".
    rules: dict[str, dict[str, Any]]
    webhook_url: str = ""
    webhook_timeout_seconds: float = 5.0
    webhook_max_attempts: int = 8
    # compliance_forecast warns when a campaign's UK 24 h or US 30 d window will cross its limit
    # within this many hours at the last hour's pace.
    forecast_hours: float = 4.0


class CampaignCompliance(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """[compliance.campaigns.<name>]: one campaign's own Ofcom estimate."""

    amd_false_positive_rate: float
    # How the estimate was made (Ofcom asks that it can be justified); shown beside the figure.
    amd_basis: str = ""


class ComplianceConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """[compliance]: how the regulators' abandon figures are counted (core/metrics.py)."""

    # US FTC: a live answer not connected to a representative within this many seconds is abandoned.
    ftc_connect_seconds: float = 2.0
    # UK Ofcom: the share of machine-classified calls that were live people (AMD false positives),
    # added to the abandoned calls; 0 unless the campaign can justify an estimate.
    amd_false_positive_rate: float = 0.0
    amd_basis: str = ""
    campaigns: dict[str, CampaignCompliance] = {}

    def amd_for(self, campaign: str) -> tuple[float, str]:
        """(amd_false_positive_rate, its basis) in force for ``campaign``."""
        own = self.campaigns.get(campaign)
        return (
            (own.amd_false_positive_rate, own.amd_basis)
            if own is not None
            else (self.amd_false_positive_rate, self.amd_basis)
        )


class StatusRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """What a VICIdial status means. ``dropped`` marks an abandoned call (a human answered
    and no agent was free); ``outcome`` names the non-human ending (no_answer, busy,
    machine, fax, invalid_number)."""

    human_answered: bool = False
    sale: bool = False
    dropped: bool = False
    outcome: str | None = None


class VicidialConfig(msgspec.Struct, frozen=True):
    # The status table; campaign_statuses adds or overrides statuses for one campaign.
    statuses: dict[str, StatusRule] = {}
    campaign_statuses: dict[str, dict[str, StatusRule]] = {}
    # vicidial_log has no customer segment; this column (prefixed with its name) stands in.
    segment_column: str = "list_id"


#: The weekday names [calling_hours.profiles.<name>.days] takes, Monday first (datetime.weekday()).
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: A day of a profile's ``days`` on which it allows no call at all.
DAY_OFF = "off"


class CallingHoursProfile(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """[calling_hours.profiles.<name>]: the local hours a campaign may call in, at the called
    person's location: a dial at ``start`` or ``end`` ("HH:MM") is allowed, a second outside is not.
    ``days`` gives a weekday of the callee's other hours ("12:00-21:00") or none ("off"), as some
    US states rule Sundays; a day it does not name has ``start``-``end``."""

    start: str
    end: str
    # The rule these hours come from, shown beside each violation.
    source: str = ""
    # Weekday ("mon" .. "sun") -> "HH:MM-HH:MM", or "off" for a day without calls.
    days: dict[str, str] = {}

    def minutes(self) -> tuple[int, int]:
        """(start, end) as minutes after local midnight."""
        return clock_minutes(self.start), clock_minutes(self.end)

    def hours_on(self, weekday: int) -> tuple[str, str] | None:
        """("HH:MM", "HH:MM") allowed on a weekday (0 = Monday), None on a day off."""
        hours = self.days.get(WEEKDAYS[weekday])
        if hours is None:
            return self.start, self.end
        if hours == DAY_OFF:
            return None
        start, _, end = hours.partition("-")
        return start.strip(), end.strip()

    def allows(self, local: datetime) -> bool:
        """Whether a dial placed at ``local`` (the callee's clock) is inside these hours, both ends
        included (streams/calling_hours.py judges the same way, per campaign and weekday)."""
        hours = self.hours_on(local.weekday())
        if hours is None:
            return False
        second = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
        return clock_minutes(hours[0]) * 60 <= second <= clock_minutes(hours[1]) * 60

    def describe(self) -> str:
        """The hours as people read them: "08:00-21:00 every day", or
        "09:00-21:00; Sun 12:00-21:00", "09:00-18:00; Sat 10:00-17:00; Sun no calls"."""
        usual = f"{self.start}-{self.end}"
        if not self.days:
            return f"{usual} every day"
        other = []
        for weekday, name in enumerate(WEEKDAYS):
            if name in self.days:
                hours = self.hours_on(weekday)
                other.append(f"{name.title()} {'no calls' if hours is None else '-'.join(hours)}")
        return "; ".join([usual, *other])


def clock_minutes(text: str) -> int:
    """ "08:00" -> 480; a ValueError for anything but HH:MM from 00:00 to 24:00."""
    hours, _, minutes = text.partition(":")
    if not (hours.isdigit() and minutes.isdigit() and len(minutes) == 2 and len(hours) in (1, 2)):
        raise ValueError(f"{text!r} is not a time of day written HH:MM")
    total = int(hours) * 60 + int(minutes)
    if int(minutes) >= 60 or total > 24 * 60:
        raise ValueError(f"{text!r} is not a time of day between 00:00 and 24:00")
    return total


class CallingHoursConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """[calling_hours]: every campaign follows ``default_profile`` unless ``campaigns`` names another."""

    default_profile: str = "ftc"
    profiles: dict[str, CallingHoursProfile] = {}
    campaigns: dict[str, str] = {}

    def profile_for(self, campaign: str) -> tuple[str, CallingHoursProfile]:
        name = self.campaigns.get(campaign, self.default_profile)
        return name, self.profiles[name]


class Settings(msgspec.Struct, frozen=True, dict=True):
    pipeline: PipelineConfig
    topics: TopicsConfig
    embedded: EmbeddedConfig
    worker: WorkerConfig
    dashboard: DashboardConfig
    slots: list[SlotConfig]
    cost_model: dict[str, CostModel]
    alerts: AlertsConfig
    vicidial: VicidialConfig = VicidialConfig()
    # The largest duration, cost and order value an event may carry (core.schema.Limits).
    limits: Limits = Limits()
    # The local hours each campaign may call in, at the called person's location.
    calling_hours: CallingHoursConfig = CallingHoursConfig()
    agents: AgentsConfig = AgentsConfig()
    # The regulators' abandon definitions: the FTC's connect time, Ofcom's AMD estimate.
    compliance: ComplianceConfig = ComplianceConfig()
    # Resolved from the environment by load_settings(); None means "embedded".
    kafka_bootstrap_servers: str | None = None
    clickhouse_url: str | None = None

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.pipeline.timezone)

    @property
    def data_dir(self) -> Path:
        return Path(self.pipeline.data_dir)

    @property
    def embedded_broker(self) -> bool:
        return not self.kafka_bootstrap_servers

    @property
    def bootstrap_servers(self) -> str:
        return self.kafka_bootstrap_servers or f"127.0.0.1:{self.embedded.broker_port}"

    @property
    def warehouse_url(self) -> str:
        return self.clickhouse_url or f"chdb://{(self.data_dir / 'warehouse').resolve()}"

    @property
    def embedded_warehouse(self) -> bool:
        return self.warehouse_url.startswith("chdb:")

    @cached_property
    def event_screen(self) -> EventScreen:
        """The checks beyond the schema every event passes before it counts: no phone number
        in an id, every number within [limits]."""
        return EventScreen(self.limits, self.pipeline.phone_region)

    def cost_model_for(self, campaign: str) -> CostModel:
        return self.cost_model.get(campaign) or self.cost_model["default"]

    def alert_rules_for(self, campaign: str) -> AlertRules:
        rules = self.__dict__.setdefault("_alert_rules", {})
        if campaign not in rules:
            table = {**self.alerts.rules["default"], **self.alerts.rules.get(campaign, {})}
            rules[campaign] = msgspec.convert(table, AlertRules)
        return rules[campaign]

    @property
    def alert_webhook_url(self) -> str:
        return os.environ.get("CALLPULSE_ALERT_WEBHOOK_URL") or self.alerts.webhook_url


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def load_settings(config_file: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Build the settings; ``overrides`` are dotted paths such as ``pipeline__data_dir``."""
    raw = _read_toml(DEFAULT_CONFIG_PATH)
    user_file = config_file or os.environ.get("CALLPULSE_CONFIG")
    if user_file:
        raw = _deep_merge(raw, _read_toml(Path(user_file)))
    elif Path("callpulse.toml").is_file():
        raw = _deep_merge(raw, _read_toml(Path("callpulse.toml")))

    env_paths = {
        "CALLPULSE_DATA_DIR": "pipeline__data_dir",
        "CALLPULSE_TIMEZONE": "pipeline__timezone",
    }
    for env_name, path in env_paths.items():
        if os.environ.get(env_name):
            overrides.setdefault(path, os.environ[env_name])
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = raw
        *parents, leaf = dotted.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value

    raw.setdefault("kafka_bootstrap_servers", os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None)
    raw.setdefault("clickhouse_url", os.environ.get("CLICKHOUSE_URL") or None)
    try:
        settings = msgspec.convert(raw, Settings, str_keys=True)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from None
    _check(settings)
    return settings


def _check(settings: Settings) -> None:
    try:
        settings.zone  # noqa: B018 - resolving the zone is the check
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"pipeline.timezone = {settings.pipeline.timezone!r} is not an IANA time zone "
            "(examples: 'Asia/Tokyo', 'Europe/London', 'America/New_York')"
        ) from None
    import phonenumbers

    if settings.pipeline.phone_region not in phonenumbers.SUPPORTED_REGIONS:
        raise ConfigError(
            f"pipeline.phone_region = {settings.pipeline.phone_region!r} is not a region "
            "libphonenumber knows (ISO 3166 alpha-2, for example 'JP', 'GB', 'US')"
        )
    if "default" not in settings.cost_model:
        raise ConfigError("[cost_model.default] is required: it prices campaigns without their own model")
    if not 0 <= settings.worker.campaign_totals_seconds <= 60:
        raise ConfigError(
            f"worker.campaign_totals_seconds = {settings.worker.campaign_totals_seconds} must be between 0 and 60 "
            "(the wallboard's totals lag the buckets by at most this)"
        )
    for slot in settings.slots:
        if not 0 <= slot.start_hour < slot.end_hour <= 24:
            raise ConfigError(f"slot {slot.name!r}: need 0 <= start_hour < end_hour <= 24")
    non_human = {outcome.value for outcome in Outcome if outcome not in LIVE_ANSWER_OUTCOMES}
    tables = {
        "vicidial.statuses": settings.vicidial.statuses,
        **{f"vicidial.campaign_statuses.{c}": t for c, t in settings.vicidial.campaign_statuses.items()},
    }
    for where, table in tables.items():
        for status, rule in table.items():
            if not (rule.human_answered or rule.dropped) and (rule.outcome or "no_answer") not in non_human:
                raise ConfigError(
                    f"[{where}] {status}: outcome must be one of {', '.join(sorted(non_human))} "
                    "for a status without human_answered"
                )
    if "default" not in settings.alerts.rules:
        raise ConfigError("[alerts.rules.default] is required: it is every campaign's alert rules")
    for campaign in settings.alerts.rules:
        try:
            rules = settings.alert_rules_for(campaign)
        except msgspec.ValidationError as exc:
            raise ConfigError(f"[alerts.rules.{campaign}]: {exc}") from None
        if not 0 < rules.abandon_warning <= rules.abandon_critical <= 1:
            raise ConfigError(f"[alerts.rules.{campaign}]: need 0 < abandon_warning <= abandon_critical <= 1")
        if not 0 < rules.clear_ratio <= 1:
            raise ConfigError(f"[alerts.rules.{campaign}]: clear_ratio must be in (0, 1]")
        if rules.clock_skew_min_calls < 1 or rules.clock_skew_quiet_minutes <= 0:
            raise ConfigError(
                f"[alerts.rules.{campaign}]: clock_skew_min_calls must be at least 1 and "
                "clock_skew_quiet_minutes above 0"
            )
    _check_calling_hours(settings.calling_hours)
    _check_compliance(settings)
    if settings.pipeline.max_future_seconds < 1:
        raise ConfigError(
            "pipeline.max_future_seconds must be at least 1: a producer's clock a moment ahead "
            "of the worker's is normal"
        )
    if not settings.pipeline.duplicate_horizon_hours >= 1 or settings.pipeline.duplicate_horizon_calls_per_hour < 1:
        raise ConfigError(
            "pipeline.duplicate_horizon_hours must be at least 1 and pipeline.duplicate_horizon_calls_per_hour at "
            "least 1: they size the worker's memory of counted event ids"
        )
    if settings.topics.partitions < 1:
        raise ConfigError("topics.partitions must be at least 1")
    for name in Limits.__struct_fields__:
        limit = getattr(settings.limits, name)
        if not (math.isfinite(limit) and limit > 0):
            raise ConfigError(f"limits.{name} = {limit!r} must be a finite number above 0")
    if not (math.isfinite(settings.agents.timeout_seconds) and settings.agents.timeout_seconds > 0):
        raise ConfigError("agents.timeout_seconds must be a finite number of seconds above 0")
    dashboard = settings.dashboard
    if dashboard.rotate_seconds <= 0:
        raise ConfigError("dashboard.rotate_seconds must be above 0")
    if not 1 <= dashboard.wallboard_max_campaigns <= MAX_WALLBOARD_CAMPAIGNS:
        raise ConfigError(
            f"dashboard.wallboard_max_campaigns must be between 1 and {MAX_WALLBOARD_CAMPAIGNS}: "
            "it bounds the wallboard's size"
        )
    if (
        min(dashboard.failed_logins_per_user_per_minute, dashboard.failed_logins_per_client_per_minute) < 1
        or dashboard.login_lockout_seconds <= 0
    ):
        raise ConfigError(
            "dashboard.failed_logins_per_user_per_minute and failed_logins_per_client_per_minute "
            "must be at least 1, and login_lockout_seconds above 0"
        )
    for proxy in dashboard.trusted_proxies:
        try:
            ipaddress.ip_network(proxy.strip(), strict=False)
        except ValueError:
            raise ConfigError(
                f"dashboard.trusted_proxies: {proxy!r} is not an address or a network (e.g. 10.0.0.5, 10.0.0.0/24)"
            ) from None
    check_dashboard_logins(settings.dashboard.users, settings.dashboard.tokens, "[dashboard.{kind}.{name}]")


def _check_compliance(settings: Settings) -> None:
    compliance = settings.compliance
    if not (math.isfinite(compliance.ftc_connect_seconds) and compliance.ftc_connect_seconds >= 0):
        raise ConfigError(
            "compliance.ftc_connect_seconds must be a finite number of seconds, 0 or more (the FTC rule is 2)"
        )
    for where, rate in (
        ("compliance.amd_false_positive_rate", compliance.amd_false_positive_rate),
        *(
            (f"compliance.campaigns.{c}.amd_false_positive_rate", own.amd_false_positive_rate)
            for c, own in compliance.campaigns.items()
        ),
    ):
        if not 0 <= rate < 1:
            raise ConfigError(f"{where} = {rate!r} must be a share from 0 up to (not including) 1, e.g. 0.05")
    if not (math.isfinite(settings.alerts.forecast_hours) and settings.alerts.forecast_hours > 0):
        raise ConfigError("alerts.forecast_hours must be a number of hours above 0")
    for campaign in settings.alerts.rules:
        rules = settings.alert_rules_for(campaign)
        if not 0.5 <= rules.confidence < 1:
            raise ConfigError(f"[alerts.rules.{campaign}]: confidence must be at least 0.5 and below 1 (0.95 for 95 %)")
        if not 0 < rules.abandon_resolve <= rules.abandon_warning:
            raise ConfigError(f"[alerts.rules.{campaign}]: need 0 < abandon_resolve <= abandon_warning")
        if not (rules.abandon_evidence_ratio > 1 and rules.abandon_critical * rules.abandon_evidence_ratio < 1):
            raise ConfigError(
                f"[alerts.rules.{campaign}]: abandon_evidence_ratio must be above 1, and abandon_critical x it below 1"
            )
        if min(rules.abandon_warning_evidence, rules.abandon_critical_evidence) <= 0:
            raise ConfigError(f"[alerts.rules.{campaign}]: abandon_warning_evidence and _critical_evidence must be > 0")
        if rules.abandon_evidence_minutes < 1:
            raise ConfigError(f"[alerts.rules.{campaign}]: abandon_evidence_minutes must be at least 1")


def _check_calling_hours(config: CallingHoursConfig) -> None:
    for name, profile in config.profiles.items():
        where = f"[calling_hours.profiles.{name}]"
        _check_hours(where, profile.start, profile.end)
        for day, hours in profile.days.items():
            if day not in WEEKDAYS:
                raise ConfigError(
                    f"{where}: days.{day} is not a weekday; name days {', '.join(WEEKDAYS)} (Monday first)"
                )
            if hours == DAY_OFF:
                continue
            start, dash, end = hours.partition("-")
            if not dash:
                raise ConfigError(
                    f'{where}: days.{day} = {hours!r}: write the day\'s hours "HH:MM-HH:MM", or "{DAY_OFF}" '
                    "for a day without calls"
                )
            _check_hours(f"{where}: days.{day}", start.strip(), end.strip())
    for where, name in (
        ("calling_hours.default_profile", config.default_profile),
        *((f"calling_hours.campaigns.{c}", p) for c, p in config.campaigns.items()),
    ):
        if name not in config.profiles:
            raise ConfigError(
                f"{where} = {name!r} names no [calling_hours.profiles.{name}]; "
                f"known: {', '.join(sorted(config.profiles)) or 'none'}"
            )


def _check_hours(where: str, start: str, end: str) -> None:
    try:
        first, last = clock_minutes(start), clock_minutes(end)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if first >= last:
        raise ConfigError(
            f"{where}: start {start} must come before end {end} (hours that run past midnight are not supported)"
        )


def check_dashboard_logins(users: dict[str, DashboardUser], tokens: dict[str, DashboardToken], where: str) -> None:
    """Refuse a login that could never work, or one that holds something other than a hash."""
    for kind, entries in (("users", users), ("tokens", tokens)):
        for name, entry in entries.items():
            place = where.format(kind=kind, name=name)
            if not name or not all(c.isalnum() or c in "._@-" for c in name):
                raise ConfigError(f"{place}: a name may hold only letters, digits and . _ @ -")
            if entry.role not in DASHBOARD_ROLES:
                raise ConfigError(f"{place}: role {entry.role!r} is not one of {', '.join(DASHBOARD_ROLES)}")
            if isinstance(entry, DashboardUser) and (
                not entry.password_hash.startswith(("scrypt:", "pbkdf2:")) or entry.password_hash.count("$") != 2
            ):
                raise ConfigError(
                    f"{place}: password_hash must be a hash from `callpulse users hash-password`, "
                    "never the password itself"
                )
            if isinstance(entry, DashboardToken) and (
                len(entry.token_sha256) != 64 or any(c not in "0123456789abcdef" for c in entry.token_sha256)
            ):
                raise ConfigError(
                    f"{place}: token_sha256 must be the 64 hex digits that "
                    "`callpulse users new-token` prints, never the token itself"
                )
