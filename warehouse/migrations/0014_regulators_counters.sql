-- The regulators' counters beside the dialer's (core/metrics.py COUNTERS):
--   abandoned_ftc          live answers the US FTC counts as abandoned: dropped, or connected after
--                          waiting more than compliance.ftc_connect_seconds (2 s)
--   live_answers_unjudged  connected calls that came without wait_seconds: the FTC rule cannot judge them
--   machines               calls answering-machine detection classified as machines (UK Ofcom adds
--                          compliance.amd_false_positive_rate of them to the abandoned calls)
-- Buckets landed before this migration never recorded a wait: their abandoned_ftc reads as their
-- dropped calls (the least the FTC counts), and the rollup tables the same, so no sum changes when
-- an hour is rebuilt.
ALTER TABLE minute_metrics
    ADD COLUMN IF NOT EXISTS abandoned_ftc UInt64 DEFAULT abandoned AFTER talk_seconds,
    ADD COLUMN IF NOT EXISTS live_answers_unjudged UInt64 DEFAULT 0 AFTER abandoned_ftc,
    ADD COLUMN IF NOT EXISTS machines UInt64 DEFAULT 0 AFTER live_answers_unjudged;

ALTER TABLE hour_metrics
    ADD COLUMN IF NOT EXISTS abandoned_ftc UInt64 DEFAULT abandoned AFTER talk_seconds,
    ADD COLUMN IF NOT EXISTS live_answers_unjudged UInt64 DEFAULT 0 AFTER abandoned_ftc,
    ADD COLUMN IF NOT EXISTS machines UInt64 DEFAULT 0 AFTER live_answers_unjudged;

ALTER TABLE campaign_hour_metrics
    ADD COLUMN IF NOT EXISTS abandoned_ftc UInt64 DEFAULT abandoned AFTER talk_seconds,
    ADD COLUMN IF NOT EXISTS live_answers_unjudged UInt64 DEFAULT 0 AFTER abandoned_ftc,
    ADD COLUMN IF NOT EXISTS machines UInt64 DEFAULT 0 AFTER live_answers_unjudged;

-- A connected call's wait may be unknown (null): the FTC figure counts it apart rather than as a
-- call connected in time. Rows landed before kept the 0 the contract used to default to.
ALTER TABLE call_attempts MODIFY COLUMN wait_seconds Nullable(Float64)
