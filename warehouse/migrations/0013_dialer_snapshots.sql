-- dialer_state snapshots as they came: a campaign's dial level (lines per free agent), calls
-- ringing, calls a person answered that wait for an agent, the longest of those waits and the
-- dialable leads left. One row per campaign and event time, so a replayed snapshot replaces its
-- row. The wallboard reads each campaign's newest, kept 30 days after their time.
CREATE TABLE IF NOT EXISTS dialer_snapshots
(
    campaign              LowCardinality(String),
    event_time            DateTime64(3, 'UTC'),
    dial_level            Float64,
    calls_ringing         UInt64,
    calls_waiting         UInt64,
    longest_wait_seconds  Nullable(Float64),
    dialable_leads        Nullable(UInt64),
    landed_at             DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (campaign, event_time)
TTL toDateTime(event_time) + toIntervalDay(30)
