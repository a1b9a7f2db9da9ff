-- Dials to customers who were on the stop list when the dial was placed.
-- No phone number or hash: the compliance list names the call, the campaign and the agent.
-- ReplacingMergeTree on (campaign, event_id): a replayed batch finds the same violation.
CREATE TABLE IF NOT EXISTS stop_list_violations
(
    event_id        String,
    campaign        LowCardinality(String),
    event_time      DateTime64(3, 'UTC'),
    dialed_at       DateTime64(3, 'UTC'),
    flagged_at      DateTime64(3, 'UTC'),
    reason          String,
    segment         LowCardinality(String),
    agent           String,
    team            LowCardinality(String),
    outcome         LowCardinality(String),
    detected_at     DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(detected_at)
PARTITION BY toYYYYMM(event_time)
ORDER BY (campaign, event_id)
