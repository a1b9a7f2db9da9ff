"""Where the metrics land: ClickHouse schema, batched idempotent landing, report queries."""
