"""Alert webhook: a Slack-compatible JSON POST per alert transition, off the stream's path.

Alerts are queued and sent by a background thread with httpx, retried with exponential
backoff (tenacity). A slow or failing receiver never blocks the worker, and an alert
that cannot be delivered is still in the alerts topic and table: the webhook is a
convenience, not the record.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from datetime import timezone, tzinfo

import httpx
from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from core.alerts import Alert, encode_alert
from core.localtime import local_iso, local_time_named

log = logging.getLogger("callpulse.webhook")

SEVERITY_COLOURS = {"critical": "#e74c3c", "warning": "#f1c40f", "resolved": "#2ecc71"}


def slack_body(alert: Alert, zone: tzinfo = timezone.utc) -> dict:
    """Slack's incoming-webhook shape (text + attachment); the full alert rides along.

    The text and fields read times on ``zone``'s clock (the configured pipeline.timezone),
    the zone named; the attached alert keeps ISO 8601 with its offset, for machines."""
    colour = SEVERITY_COLOURS["resolved" if alert.state == "resolved" else alert.severity]
    when = "resolved at" if alert.state == "resolved" else "since"
    moment = alert.event_time if alert.state == "resolved" else alert.first_seen
    return {
        "text": f"{alert.headline()} · {when} {local_time_named(moment, zone, '%Y-%m-%d %H:%M')}",
        "attachments": [
            {
                "color": colour,
                "fields": [
                    {"title": "campaign", "value": alert.campaign, "short": True},
                    {"title": "rule", "value": alert.rule.value, "short": True},
                    {"title": "since (event time)", "value": local_iso(alert.first_seen, zone), "short": True},
                    {"title": "window", "value": f"{alert.window_minutes} min", "short": True},
                ],
            }
        ],
        "callpulse_alert": json.loads(encode_alert(alert)),
    }


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, httpx.HTTPStatusError):
        # A 4xx other than 429 will not get better by asking again.
        return exc.response.status_code >= 500 or exc.response.status_code == 429
    return isinstance(exc, httpx.TransportError)


class WebhookSender:
    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        max_attempts: int = 8,
        first_wait_s: float = 0.5,
        max_wait_s: float = 30.0,
        zone: tzinfo = timezone.utc,
    ):
        self.url = url
        self.zone = zone  # the clock the message's text reads times on (pipeline.timezone)
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.wait = wait_exponential(multiplier=first_wait_s, max=max_wait_s)
        self.queue: queue.Queue[Alert | None] = queue.Queue()
        self.delivered = 0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="alert-webhook", daemon=True)
        self._thread.start()

    def submit(self, alerts) -> None:
        for alert in alerts:
            self.queue.put(alert)

    def close(self, timeout_s: float = 5.0) -> None:
        self.queue.put(None)
        self._thread.join(timeout_s)

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout_s) as client:
            while (alert := self.queue.get()) is not None:
                self._deliver(client, alert)

    def _deliver(self, client: httpx.Client, alert: Alert) -> None:
        try:
            for attempt in Retrying(
                stop=stop_after_attempt(self.max_attempts),
                wait=self.wait,
                retry=retry_if_exception(_retryable),
                reraise=False,
            ):
                with attempt:
                    client.post(self.url, json=slack_body(alert, self.zone)).raise_for_status()
            self.delivered += 1
        except (RetryError, httpx.HTTPError) as exc:
            self.failed += 1
            log.error(
                "webhook gave up on alert %s (%s) after retries: %s; it stays in the alerts topic and table",
                alert.alert_id,
                alert.headline(),
                exc,
            )
