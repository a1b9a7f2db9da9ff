-- A bloom-filter skip index on call_attempts.event_id: the worker looks ids up by themselves
-- (a re-sent or late call, settled against what landed), and the table is sorted by campaign
-- and minute, so without it such a lookup reads every id in the hours it searches. With it,
-- only the granules whose filter may hold one of the ids are read. Adding it to new parts costs
-- a little on each insert, and existing parts get it by the background mutation below.
ALTER TABLE call_attempts ADD INDEX IF NOT EXISTS event_id_bloom event_id TYPE bloom_filter(0.01) GRANULARITY 1;
ALTER TABLE call_attempts MATERIALIZE INDEX event_id_bloom
