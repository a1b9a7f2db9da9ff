-- The stop list's durable copy: one row per customer, the newest flag or removal the
-- worker read from the compacted stop-list topic. The embedded broker keeps nothing
-- across a restart, so the worker rebuilds its list from here and publishes the active
-- flags again into a topic that came back without them.
-- phone_hash is the keyed HMAC the topic is keyed by: no raw number is ever stored.
-- removed_at is set when the customer was taken off the list (a tombstone on the topic),
-- the row keeps the flag it removed, so a removal that landed is never flagged again.
CREATE TABLE IF NOT EXISTS stop_list
(
    phone_hash  String,
    reason      String,
    source      String,
    flagged_at  DateTime64(3, 'UTC'),
    removed_at  Nullable(DateTime64(3, 'UTC')),
    version     UInt64,
    landed_at   DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(version)
ORDER BY phone_hash
