-- Calls placed outside the called person's allowed local hours (FTC 08:00-21:00 by default,
-- per campaign in [calling_hours]). The callee's zone came with the event (callee_timezone,
-- found from the number at the edge). No phone number or hash is kept here.
-- local_dialed_at is the dial as the callee's clock read it, written out, because the zone
-- differs row by row. allowed_from and allowed_until are the hours in force at detection.
-- ReplacingMergeTree on (campaign, event_id): a replayed batch finds the same violation.
CREATE TABLE IF NOT EXISTS calling_hours_violations
(
    event_id         String,
    campaign         LowCardinality(String),
    event_time       DateTime64(3, 'UTC'),
    dialed_at        DateTime64(3, 'UTC'),
    callee_timezone  LowCardinality(String),
    local_dialed_at  String,
    allowed_from     String,
    allowed_until    String,
    profile          LowCardinality(String),
    segment          LowCardinality(String),
    agent            String,
    team             LowCardinality(String),
    outcome          LowCardinality(String),
    detected_at      DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(detected_at)
PARTITION BY toYYYYMM(event_time)
ORDER BY (campaign, event_id)
