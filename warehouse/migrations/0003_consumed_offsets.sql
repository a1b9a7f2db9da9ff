-- How far the worker has got in each call-events partition: the next offset to
-- process. It lands after the rows its records produced, in the same step, so a
-- restarted worker resumes exactly where the warehouse stands. The Kafka consumer
-- group's offsets are only advisory: Faust can commit past records it dropped from
-- its buffers during a rebalance, and this table cannot.
CREATE TABLE IF NOT EXISTS consumed_offsets
(
    consumer_group  LowCardinality(String),
    topic           LowCardinality(String),
    partition       UInt32,
    next_offset     UInt64,
    version         UInt64,
    landed_at       DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (consumer_group, topic, partition)
