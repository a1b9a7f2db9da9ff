-- Agent seconds per (campaign, team, agent, minute), from agent_state events: the floor's
-- additive truth, like minute_metrics is the calls'. Each second an agent is logged in counts in
-- logged_in_seconds and in the seconds of its state (available, on call, wrap-up, paused), a
-- state's interval is split at the minute boundaries. The worker re-lands a minute's full state
-- each time it changes, with a higher version, before the batch's offsets: FINAL keeps the
-- newest, and a replay after a crash replaces a row, never adds to it.
-- accounted_until is how far the agent's seconds were counted when the row landed: a restarted
-- worker goes on counting from there. team is '' for an agent without one.
CREATE TABLE IF NOT EXISTS agent_minutes
(
    campaign           LowCardinality(String),
    team               LowCardinality(String),
    agent              String,
    minute             DateTime('UTC'),
    logged_in_seconds  Float64,
    available_seconds  Float64,
    on_call_seconds    Float64,
    wrap_up_seconds    Float64,
    paused_seconds     Float64,
    accounted_until    DateTime64(3, 'UTC') DEFAULT 0,
    version            UInt64,
    landed_at          DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(minute)
ORDER BY (campaign, minute, team, agent)
