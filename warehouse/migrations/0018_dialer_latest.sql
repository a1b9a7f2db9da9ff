-- Each campaign's newest dialer_state snapshot, one row per campaign: what the wallboard's floor
-- strip reads (dial level, calls waiting, the longest wait), so a refresh reads as many rows as
-- the board has campaigns, however many snapshots dialer_snapshots keeps. The worker lands every
-- snapshot here beside dialer_snapshots in the same step: the newest event time wins
-- (ReplacingMergeTree(event_time)), so an older snapshot, replayed or late, never replaces it.
CREATE TABLE IF NOT EXISTS dialer_latest
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
ENGINE = ReplacingMergeTree(event_time)
ORDER BY campaign;

-- The snapshots landed before this table existed.
INSERT INTO dialer_latest (campaign, event_time, dial_level, calls_ringing, calls_waiting, longest_wait_seconds,
                           dialable_leads, landed_at)
SELECT campaign, max(event_time), argMax(dial_level, event_time), argMax(calls_ringing, event_time),
       argMax(calls_waiting, event_time), argMax(longest_wait_seconds, event_time),
       argMax(dialable_leads, event_time), argMax(landed_at, event_time)
FROM dialer_snapshots GROUP BY campaign
