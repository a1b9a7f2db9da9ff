-- Each raw attempt keeps the callee's zone it arrived with ('' when none came), so evidence
-- exports can tell the calls judged for calling hours from those that could not be.
ALTER TABLE call_attempts ADD COLUMN IF NOT EXISTS callee_timezone LowCardinality(String) DEFAULT '';
-- Repeat calls after an abandon are found by phone_hash across campaigns: a bloom filter lets
-- that lookup skip the granules that hold none of the abandoned numbers.
ALTER TABLE call_attempts ADD INDEX IF NOT EXISTS phone_hash_bloom phone_hash TYPE bloom_filter(0.01) GRANULARITY 4
