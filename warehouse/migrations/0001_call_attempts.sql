-- Raw dial attempts, hashed: no phone number or name ever lands here.
-- ReplacingMergeTree on (campaign, minute, event_id): a replayed or retried event
-- lands as the same row, so reads with FINAL count it once.
CREATE TABLE IF NOT EXISTS call_attempts
(
    event_id        String,
    campaign        LowCardinality(String),
    event_time      DateTime64(3, 'UTC'),
    minute          DateTime('UTC'),
    slot            LowCardinality(String),
    segment         LowCardinality(String),
    outcome         LowCardinality(String),
    ring_seconds    Float64,
    wait_seconds    Float64,
    talk_seconds    Float64,
    is_order        UInt8,
    order_value     Float64,
    cost            Float64,
    response_score  Nullable(Float32),
    phone_hash      String,
    lead_id         String,
    agent           String,
    team            LowCardinality(String),
    landed_at       DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(landed_at)
PARTITION BY toYYYYMM(minute)
ORDER BY (campaign, minute, event_id)
