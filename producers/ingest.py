"""File replay into Kafka: VICIdial exports and the project's own JSON-lines events.

Valid rows are published as call events; every row that cannot be used goes to the
dead-letters topic with its reason and line number (source_topic "file:<name>",
source_partition -1, source_offset = line), and is counted in the summary.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

from core.config import Settings
from core.deadletters import dead_letter, encode_dead_letter
from core.schema import Rejection, decode_record
from producers.publisher import EventPublisher
from producers.vicidial import (
    AGENT_LOG_COLUMNS,
    AgentLogMapper,
    IngestSummary,
    RowError,
    RowMapper,
    open_text,
    read_rows,
)

Progress = Callable[[int], None]


def dead_letter_row(
    publisher: EventPublisher, settings: Settings, source: str, line: int, error: RowError, raw: bytes
) -> None:
    """A row an adapter could not use, to the dead-letters topic: ``source`` names the file or table."""
    letter = dead_letter(Rejection(error.reason, str(error), raw), source, -1, line, settings.pipeline.phone_region)
    publisher.send_raw(settings.topics.dead_letters, encode_dead_letter(letter))


def without_phone(row: Mapping[str, str]) -> bytes:
    """A rejected row as kept in a dead letter: no raw phone number reaches Kafka, even there."""
    return repr({k: v for k, v in row.items() if k != "phone_number"}).encode()


def ingest_vicidial_file(
    path: Path, settings: Settings, hmac_key: bytes, publisher: EventPublisher, progress: Progress = lambda rows: None
) -> IngestSummary:
    """Publish every usable row of a vicidial_log export; FileFormatError if none can be read."""
    mapper = RowMapper(settings, hmac_key)
    summary = IngestSummary(phone_region=settings.pipeline.phone_region)
    seen: set[str] = set()
    with open_text(path) as stream:
        for line, row in read_rows(stream):
            summary.read += 1
            if isinstance(row, RowError):
                summary.reject(line, row)
                dead_letter_row(publisher, settings, f"file:{path.name}", line, row, f"line {line}".encode())
                continue
            try:
                attempt = mapper.attempt(row)
            except RowError as error:
                summary.reject(line, error, row)
                dead_letter_row(publisher, settings, f"file:{path.name}", line, error, without_phone(row))
                continue
            if attempt.event_id in seen:
                summary.duplicates += 1
                continue
            seen.add(attempt.event_id)
            publisher.publish(attempt)
            summary.published += 1
            progress(summary.read)
    publisher.flush()
    return summary


def ingest_vicidial_agent_log(
    path: Path, settings: Settings, publisher: EventPublisher, progress: Progress = lambda rows: None
) -> IngestSummary:
    """Publish a vicidial_agent_log export as agent_state events (AgentLogMapper), in event-time
    order; ``published`` counts events. FileFormatError if the file cannot be read."""
    mapper = AgentLogMapper(settings)
    summary = IngestSummary(phone_region=settings.pipeline.phone_region)
    source = f"file:{path.name}"
    cycles = []
    with open_text(path) as stream:
        for line, row in read_rows(stream, AGENT_LOG_COLUMNS, "vicidial_agent_log"):
            summary.read += 1
            try:
                if isinstance(row, RowError):
                    raise row
                cycles.append(mapper.cycle(line, row))
            except RowError as error:
                summary.reject(line, error, row if isinstance(row, dict) else None)
                dead_letter_row(
                    publisher,
                    settings,
                    source,
                    line,
                    error,
                    without_phone(row) if isinstance(row, dict) else f"line {line}".encode(),
                )
            progress(summary.read)
    refused_lines: set[int] = set()
    for cycle, event in sorted(mapper.events(cycles), key=lambda pair: pair[1].event_time):
        if cycle.line in refused_lines:
            continue
        refused = settings.event_screen(event)  # the worker's checks: no phone number in a name
        if refused is not None:
            refusal = RowError(*refused)
            refused_lines.add(cycle.line)
            summary.reject(cycle.line, refusal)
            dead_letter_row(publisher, settings, source, cycle.line, refusal, f"line {cycle.line}".encode())
            continue
        publisher.publish(event)
        summary.published += 1
    publisher.flush()
    return summary


def ingest_event_file(
    path: Path,
    settings: Settings,
    publisher: EventPublisher,
    rate: float | None = None,
    progress: Progress = lambda rows: None,
) -> IngestSummary:
    """Replay a JSON-lines file of call events (plain or gzip), optionally at ``rate`` events/s."""
    summary = IngestSummary(phone_region=settings.pipeline.phone_region)
    started = time.monotonic()
    with open_text(path) as stream:
        for line, text in enumerate(stream, start=1):
            if not text.strip():
                continue
            summary.read += 1
            # The worker's own checks, so a number in an id never reaches Kafka from here.
            events, rejections = decode_record(text.strip().encode(), screen=settings.event_screen)
            for rejection in rejections:
                error = RowError(rejection.reason, rejection.detail)
                summary.reject(line, error)
                publisher.send_raw(
                    settings.topics.dead_letters,
                    encode_dead_letter(
                        dead_letter(rejection, f"file:{path.name}", -1, line, settings.pipeline.phone_region)
                    ),
                )
            for event in events:
                publisher.publish(event)
                summary.published += 1
                if rate:
                    ahead = summary.published / rate - (time.monotonic() - started)
                    if ahead > 0:
                        time.sleep(ahead)
            progress(summary.read)
    publisher.flush()
    return summary
