-- Each campaign's logged-in agents, one row per campaign: what the wallboard's floor strip
-- counts (agents by state), so a refresh reads a row per campaign shown instead of picking every
-- agent's latest status out of agent_status. The worker lands a campaign's whole line-up in the
-- floor step, beside agent_status, whenever one of its agents changes state, times out, or moves
-- in or out. The newest version wins. A reader times an agent out against its own clock from
-- last_event_times, as it does agent_status's rows.
CREATE TABLE IF NOT EXISTS campaign_agents
(
    campaign          LowCardinality(String),
    agents            Array(String),
    states            Array(LowCardinality(String)),
    last_event_times  Array(DateTime64(3, 'UTC')),
    version           UInt64,
    landed_at         DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(version)
ORDER BY campaign;

-- The line-ups as agent_status holds them when this table is made: each agent's latest status,
-- logged-in ones only, in agent order. A worker lands its campaigns' line-ups again when it starts.
INSERT INTO campaign_agents (campaign, agents, states, last_event_times, version)
SELECT campaign, arrayMap(x -> x.1, lineup), arrayMap(x -> x.2, lineup), arrayMap(x -> x.3, lineup), 0
FROM
(
    SELECT campaign, arraySort(groupArray((agent, state, last_event_time))) AS lineup
    FROM
    (
        SELECT agent, campaign, state, last_event_time FROM agent_status
        ORDER BY agent, last_event_time DESC, version DESC LIMIT 1 BY agent
    )
    WHERE state != 'logged_out'
    GROUP BY campaign
)
