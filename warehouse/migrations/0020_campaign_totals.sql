-- Per-campaign totals of the minute buckets, per UTC hour and per UTC day: what the wallboard sums
-- (today's tiles, the 24-hour and 30-day compliance windows, the busiest campaigns) without
-- reading every campaign's minute buckets.
--
-- The worker writes them in the same step as the buckets (streams/checkpoint.py, "campaign
-- totals"): for every campaign and hour whose buckets it just landed, the hour's row is summed
-- again from minute_metrics FINAL, then the day's row from the hour rows, each with a version
-- above the row it replaces. They are derived from what landed, never added to, so a replay, a
-- restart or a set-aside call rewrites them from the buckets as they are: they hold the same
-- sums as minute_metrics (tests/test_campaign_totals.py).
--
-- first_minute is the row's first minute with calls: how long a campaign has been calling, which
-- a young compliance window's budget needs.
--
-- Sorted by hour (day) first: every read is a time range of many campaigns, or of the few
-- campaigns on the wallboard over a range.
CREATE TABLE IF NOT EXISTS campaign_hour_totals
(
    hour                   DateTime('UTC'),
    campaign               LowCardinality(String),
    dials                  UInt64,
    contacts               UInt64,
    connected              UInt64,
    abandoned              UInt64,
    orders                 UInt64,
    cost                   Float64,
    talk_seconds           Float64,
    abandoned_ftc          UInt64,
    live_answers_unjudged  UInt64,
    machines               UInt64,
    first_minute           DateTime('UTC'),
    version                UInt64,
    landed_at              DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, campaign);

CREATE TABLE IF NOT EXISTS campaign_day_totals
(
    day                    DateTime('UTC'),
    campaign               LowCardinality(String),
    dials                  UInt64,
    contacts               UInt64,
    connected              UInt64,
    abandoned              UInt64,
    orders                 UInt64,
    cost                   Float64,
    talk_seconds           Float64,
    abandoned_ftc          UInt64,
    live_answers_unjudged  UInt64,
    machines               UInt64,
    first_minute           DateTime('UTC'),
    version                UInt64,
    landed_at              DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(day)
ORDER BY (day, campaign);

-- The buckets landed before this migration, summed once (version 0: any row the worker derives
-- later replaces them).
INSERT INTO campaign_hour_totals
SELECT toStartOfHour(minute) AS hour, campaign, sum(dials), sum(contacts), sum(connected), sum(abandoned),
       sum(orders), sum(cost), sum(talk_seconds), sum(abandoned_ftc), sum(live_answers_unjudged), sum(machines),
       min(minute), toUInt64(0), now64(3)
FROM minute_metrics FINAL
GROUP BY hour, campaign;

INSERT INTO campaign_day_totals
SELECT toStartOfDay(hour) AS day, campaign, sum(dials), sum(contacts), sum(connected), sum(abandoned),
       sum(orders), sum(cost), sum(talk_seconds), sum(abandoned_ftc), sum(live_answers_unjudged), sum(machines),
       min(first_minute), toUInt64(0), now64(3)
FROM campaign_hour_totals FINAL
GROUP BY day, campaign
