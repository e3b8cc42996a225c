-- Watch PostgreSQL for a load test's probes (playbooks/loadtest.yml):
--   psql -XAtq -v session=<session> -v seconds=<seconds> -f loadtest_pg_probe.sql
-- Every 0.1 s, the probes (session <session>-probe) not seen before are noted with the time they were first seen
-- (each poll in its own transaction: nothing holds a snapshot for the whole run). A probe's freshness is that time
-- minus its timestamp, set by the load generator when it sent the probe. Only probes sent in the last 120 s are looked
-- for, so a poll costs the same at the end of a long run; a probe first visible later than that is not counted, and
-- the play reports it as missing (probes_seen below probes accepted). Run on the leader (a temporary table is written).
\set ON_ERROR_STOP on
CREATE TEMP TABLE loadtest_seen (event_id uuid PRIMARY KEY, event_time timestamptz NOT NULL, seen_at timestamptz NOT NULL);
SELECT set_config('loadtest.session', :'session', false) IS NULL, set_config('loadtest.seconds', :'seconds', false) IS NULL \g /dev/null
DO $$
DECLARE
    deadline timestamptz := clock_timestamp() + make_interval(secs => current_setting('loadtest.seconds')::float8);
    probes text := current_setting('loadtest.session') || '-probe';
    since timestamptz;
BEGIN
    LOOP
        since := clock_timestamp() - interval '120 seconds';  -- a value, so the (session_id, event_time) index bounds it
        INSERT INTO loadtest_seen
        SELECT event_id, event_time, clock_timestamp() FROM analytics_events
        WHERE session_id = probes AND event_time > since
        ON CONFLICT (event_id) DO NOTHING;
        COMMIT;
        EXIT WHEN clock_timestamp() > deadline;
        PERFORM pg_sleep(0.1);
    END LOOP;
END
$$;
SELECT json_build_object(
    'probes_seen', count(*),
    'p50_ms', round((percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM seen_at - event_time)) * 1000)::numeric, 1),
    'p99_ms', round((percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM seen_at - event_time)) * 1000)::numeric, 1),
    'max_ms', round((max(extract(epoch FROM seen_at - event_time)) * 1000)::numeric, 1),
    'poll_ms', 100
) FROM loadtest_seen;
