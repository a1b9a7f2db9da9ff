-- An hourly rollup of minute_metrics, so reads over long ranges (30-day reports, the US
-- 30-day compliance window) sum far fewer rows. It is a cache: no figure depends on it
-- (warehouse/rollup.py, warehouse/queries.py).
--
-- Why not a SummingMergeTree or an aggregate projection: minute_metrics is a
-- ReplacingMergeTree(version). The worker re-lands a bucket's FULL state, not a delta, with a
-- higher version whenever it changes, and reads use FINAL. Summing on insert would add every
-- re-landed state. Instead a closed hour is rebuilt from minute_metrics FINAL, and a read takes
-- from the rollup only hours whose build is current and wholly inside its range, UNION ALL
-- minute_metrics FINAL for the rest (partial hours at the edges, such as local days in +05:30
-- zones, hours changed since their build, the open recent hours).

-- The change log: per UTC hour, when minute_metrics rows last landed in it. A materialized
-- view writes the warehouse clock (nanoseconds) of every insert into each hour it touches, so
-- the value moves on every insert, whatever the landers' own clocks say (two landers, or a
-- retried batch, can land an older landed_at after a newer one). A key-value table: one row
-- per hour, overwritten, no merges and nothing to sum when a read checks it. landed_at is the
-- newest landed_at of that insert. A build records the version it saw, and an hour is rolled up
-- only once it has been quiet a while.
CREATE TABLE IF NOT EXISTS minute_metrics_changes
(
    hour       DateTime('UTC'),
    version    UInt64,
    landed_at  DateTime64(3, 'UTC')
)
ENGINE = EmbeddedRocksDB
PRIMARY KEY hour;

CREATE MATERIALIZED VIEW IF NOT EXISTS minute_metrics_changes_mv TO minute_metrics_changes AS
SELECT toStartOfHour(minute) AS hour, toUInt64(toUnixTimestamp64Nano(now64(9))) AS version,
       max(landed_at) AS landed_at
FROM minute_metrics
GROUP BY hour;

-- Backfill from the buckets already landed (after the view exists: a row landing in between
-- only gets its hour a newer version).
INSERT INTO minute_metrics_changes (hour, version, landed_at)
SELECT toStartOfHour(minute), toUInt64(toUnixTimestamp64Nano(now64(9))), max(landed_at)
FROM minute_metrics
GROUP BY toStartOfHour(minute);

-- The rollup: minute_metrics FINAL summed per (campaign, slot, segment, UTC hour). Every row of
-- one build carries that build's version (microseconds, above every earlier build's), so a
-- rebuilt hour supersedes all of its older rows, and a read takes the rows of the hour's current
-- build or newer (FINAL). Sorted by hour first: every read is an hour range, and a rebuilt
-- hour's new part overlaps only that hour's rows, so FINAL merges little.
CREATE TABLE IF NOT EXISTS hour_metrics
(
    hour          DateTime('UTC'),
    campaign      LowCardinality(String),
    slot          LowCardinality(String),
    segment       LowCardinality(String),
    dials         UInt64,
    contacts      UInt64,
    connected     UInt64,
    abandoned     UInt64,
    orders        UInt64,
    cost          Float64,
    talk_seconds  Float64,
    version       UInt64,
    built_at      DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, campaign, slot, segment);

-- The same builds summed per (campaign, hour): what reads without a slot or segment (the
-- wallboard's tiles and compliance windows, the alert evaluator, reports by campaign and day)
-- sum, several times fewer rows again.
CREATE TABLE IF NOT EXISTS campaign_hour_metrics
(
    hour          DateTime('UTC'),
    campaign      LowCardinality(String),
    dials         UInt64,
    contacts      UInt64,
    connected     UInt64,
    abandoned     UInt64,
    orders        UInt64,
    cost          Float64,
    talk_seconds  Float64,
    version       UInt64,
    built_at      DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, campaign);

-- Each build's marks, per hour: not done (revision 2 * version) before it writes its rows, done
-- (2 * version + 1) after, with the change-log version it saw and the fingerprint of the parts
-- of minute_metrics and of the two rollup tables. A read takes an hour from the rollup only if
-- its newest mark is done, the change log has not moved since, and no TRUNCATE, DROP PARTITION
-- or DELETE has changed those parts.
CREATE TABLE IF NOT EXISTS hour_metrics_builds
(
    hour            DateTime('UTC'),
    version         UInt64,
    done            UInt8,
    source_version  UInt64,
    fingerprint     String,
    revision        UInt64,
    built_at        DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(revision)
ORDER BY hour
