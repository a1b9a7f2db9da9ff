-- Alert history: one row per transition (firing, escalated, resolved), the same
-- events as the alerts topic. Re-landing a transition after a restart replaces it.
CREATE TABLE IF NOT EXISTS alerts
(
    alert_id          String,
    rule              LowCardinality(String),
    campaign          LowCardinality(String),
    state             LowCardinality(String),
    severity          LowCardinality(String),
    value             Nullable(Float64),
    threshold         Float64,
    window_minutes    UInt32,
    sample            UInt64,
    first_seen        DateTime64(3, 'UTC'),
    event_time        DateTime64(3, 'UTC'),
    emitted_at        DateTime64(3, 'UTC'),
    detail            String,
    trigger_event_id  Nullable(String)
)
ENGINE = ReplacingMergeTree(emitted_at)
ORDER BY (alert_id, state, severity);

-- Who acknowledged an alert episode, and when. The newest acknowledgement wins.
CREATE TABLE IF NOT EXISTS alert_acks
(
    alert_id         String,
    acknowledged_by  String,
    note             String,
    acknowledged_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(acknowledged_at)
ORDER BY alert_id
