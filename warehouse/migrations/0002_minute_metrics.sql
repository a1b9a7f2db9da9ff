-- The stored truth for dashboards and reports: additive counters per
-- (campaign, slot, segment, minute). The worker re-lands a bucket's full state
-- each time it changes, with a higher version, so FINAL keeps the newest state
-- and a replay can never add to it twice.
CREATE TABLE IF NOT EXISTS minute_metrics
(
    campaign      LowCardinality(String),
    slot          LowCardinality(String),
    segment       LowCardinality(String),
    minute        DateTime('UTC'),
    dials         UInt64,
    contacts      UInt64,
    connected     UInt64,
    abandoned     UInt64,
    orders        UInt64,
    cost          Float64,
    talk_seconds  Float64,
    version       UInt64,
    landed_at     DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(minute)
ORDER BY (campaign, minute, slot, segment)
