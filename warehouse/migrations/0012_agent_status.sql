-- Each agent's current state: its latest agent_state event by event time (an older event never
-- moves it back), or logged_out from the moment it went silent for agents.timeout_seconds.
-- state_since is when the current state began, last_event_time the agent's newest event. The
-- worker lands an agent's row whenever it changes, before the batch's offsets, and rebuilds its
-- floor from here on restart. A reader applies the timeout too, against its own clock: an agent
-- of a campaign whose events stopped altogether has no later event to time it out.
CREATE TABLE IF NOT EXISTS agent_status
(
    agent            String,
    campaign         LowCardinality(String),
    team             LowCardinality(String),
    state            LowCardinality(String),
    state_since      DateTime64(3, 'UTC'),
    last_event_time  DateTime64(3, 'UTC'),
    version          UInt64,
    landed_at        DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(version)
ORDER BY agent
