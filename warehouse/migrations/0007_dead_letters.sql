-- Every record the worker refused, by reason, for the dashboard's and `callpulse status`'s
-- counters. The original bytes stay on the dead-letters topic only: a bad record may
-- carry personal data its producer should not have sent, so it is not copied here.
-- ReplacingMergeTree on the source position: a replayed batch refuses the same records.
CREATE TABLE IF NOT EXISTS dead_letters
(
    source_topic      LowCardinality(String),
    source_partition  Int32,
    source_offset     Int64,
    batch_index       Int32,
    reason            LowCardinality(String),
    detail            String,
    rejected_at       DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(rejected_at)
PARTITION BY toYYYYMM(rejected_at)
ORDER BY (source_topic, source_partition, source_offset, batch_index)
