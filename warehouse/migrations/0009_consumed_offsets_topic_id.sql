-- Which incarnation of the topic an offset belongs to: the topic id Kafka reports.
-- The embedded broker keeps no topic across a restart, and a recreated topic starts
-- again at offset 0, so an offset landed for one incarnation must never be applied to
-- another. Rows landed before this column existed carry '' and match no topic.
ALTER TABLE consumed_offsets ADD COLUMN IF NOT EXISTS topic_id String DEFAULT '' AFTER partition
