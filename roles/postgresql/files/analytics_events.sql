-- The events table, partitioned by time (native declarative partitioning); pg_partman creates and drops the
-- partitions (daily, 90-day retention). Used by the postgresql role and by the services' tests, so both see one schema.
--
-- Idempotent sinks: every event has a unique event_id and an immutable event_time; the unique key (event_id,
-- event_time) includes the partition key, as PostgreSQL requires, so a redelivered event always conflicts.
CREATE TABLE IF NOT EXISTS analytics_events (
    event_id    uuid        NOT NULL,
    event_type  text        NOT NULL,
    session_id  text,
    user_id     text,
    event_time  timestamptz NOT NULL,
    received_at timestamptz NOT NULL,
    page        text,
    properties  jsonb       NOT NULL DEFAULT '{}'::jsonb,
    metadata    jsonb       NOT NULL DEFAULT '{}'::jsonb,
    CONSTRAINT analytics_events_event_key UNIQUE (event_id, event_time)
) PARTITION BY RANGE (event_time);

CREATE INDEX IF NOT EXISTS analytics_events_type_time ON analytics_events (event_type, event_time);
CREATE INDEX IF NOT EXISTS analytics_events_session_time ON analytics_events (session_id, event_time);
