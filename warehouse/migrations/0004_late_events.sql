-- Events that arrived after their campaign's allowed lateness: not counted in the
-- minute buckets (those are final by then), but kept here so a report or an audit
-- can say how many calls, and how many abandons, the figures leave out.
CREATE TABLE IF NOT EXISTS late_events
(
    event_id     String,
    campaign     LowCardinality(String),
    event_time   DateTime64(3, 'UTC'),
    segment      LowCardinality(String),
    outcome      LowCardinality(String),
    received_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(received_at)
PARTITION BY toYYYYMM(event_time)
ORDER BY (campaign, event_id)
