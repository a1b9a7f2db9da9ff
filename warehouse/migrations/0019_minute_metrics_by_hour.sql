-- minute_metrics sorted by UTC hour first, then as before (campaign, minute, slot, segment).
-- Nearly every read of the minute buckets is a recent time range: the open hour on the wallboard and
-- last two hours, the edge minutes of its 24-hour window, the alert windows, the minutes a
-- rollup read does not take from hour_metrics. Sorted by campaign first, such a range of many
-- campaigns touched a granule of every campaign, and FINAL read nearly the whole table. Sorted
-- by hour, it reads the granules of its hours (warehouse/queries/sums.py minute_rows_sql names
-- the hours, as the primary key index needs). One campaign over a day now reads the hours of that day.
--
-- ORDER BY cannot change in place: the buckets are copied into a table with the new key, which
-- is then renamed minute_metrics. The materialized view of the change log follows the name,
-- so it reads inserts into the new table. Run before the worker lands (callpulse migrates at
-- start): a bucket landed between the copy and the exchange would be left behind.
CREATE TABLE IF NOT EXISTS minute_metrics_by_hour AS minute_metrics
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(minute)
ORDER BY (toStartOfHour(minute), campaign, minute, slot, segment);

INSERT INTO minute_metrics_by_hour SELECT * FROM minute_metrics;

EXCHANGE TABLES minute_metrics AND minute_metrics_by_hour;

DROP TABLE IF EXISTS minute_metrics_by_hour
