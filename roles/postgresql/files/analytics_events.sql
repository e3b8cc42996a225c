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

-- Exactly once per event_id: the sink claims each event_id here in the transaction that inserts the event, so a
-- client's retried POST (same event_id, another event_time when the client sent no timestamp) is not stored twice.
-- Rows older than the retention are deleted with the partitions (postgresql role: the analytics-event-ids job).
CREATE TABLE IF NOT EXISTS analytics_event_ids (
    event_id   uuid        PRIMARY KEY,
    event_time timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS analytics_event_ids_time ON analytics_event_ids (event_time);

-- Events stored before this table existed claim their ids once (a no-op when it has any row).
INSERT INTO analytics_event_ids (event_id, event_time)
SELECT DISTINCT ON (event_id) event_id, event_time FROM analytics_events
WHERE NOT EXISTS (SELECT 1 FROM analytics_event_ids)
ORDER BY event_id, event_time
ON CONFLICT (event_id) DO NOTHING;

-- Where the sink is in Kafka: per consumer group and partition, the next offset to store, written in the transaction
-- that stores the batch. A failover under asynchronous replication can promote a member that lacks the last
-- acknowledged transactions; it then lacks their offsets too, and the sink reads those records from Kafka again
-- (pg_sink: db.py) instead of trusting Kafka's committed offset, which had already passed them.
CREATE TABLE IF NOT EXISTS analytics_sink_offsets (
    consumer_group  text        NOT NULL,
    topic           text        NOT NULL,
    kafka_partition integer     NOT NULL,
    next_offset     bigint      NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, kafka_partition)
);

-- Data subjects erased (playbooks/privacy_erase.yml): an HMAC of "<by>:<id>" under the vault's privacy_erasure_key,
-- never the id itself. The erasure's record, and the list the dead-letter replay (playbooks/dlq_replay.yml) consults so
-- that an erased subject's parked events are not stored again. Claims in analytics_event_ids are kept on erasure: an
-- erased event redelivered by Kafka stays skipped.
CREATE TABLE IF NOT EXISTS analytics_erasures (
    subject_digest  text        PRIMARY KEY,
    first_request   text        NOT NULL,
    first_erased_at timestamptz NOT NULL DEFAULT now(),
    last_erased_at  timestamptz NOT NULL DEFAULT now(),
    rows_erased     bigint      NOT NULL DEFAULT 0
);
