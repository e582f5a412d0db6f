-- test/bench/engine_setup.sql: the engine benchmark's fixtures and helpers,
-- loaded by test/bench/engine.sh into its throwaway cluster (never into a
-- real one). psql variable :services is how many services to create.
--
-- Every service has its own simulated fleet of 1 region x 1 unit x 4
-- subunits whose updates land at once (update_time 0), and the plan bench3:
-- two phases (25%, 50%) plus the implicit completion phase = 3 phases, no
-- bake. poll_interval is small so a worker never waits on a fixed poll.
\set ON_ERROR_STOP 1
SET client_min_messages = warning;

SELECT conveyor.push_plan_create('bench3',
    '[{"scope": "*", "amount": "25%"}, {"scope": "*", "amount": "50%"}]',
    'benchmark: 2 phases + the completion phase, no bake') AS plan;

SELECT count(*) AS services_created FROM (
    SELECT conveyor.sim_fleet_create('bench-fleet-' || i, '{eu}', 1, 4, 'v0', '0'),
           conveyor.service_create('bench-' || i, 'simulated', 'bench3',
                                   push_type_config => jsonb_build_object('fleet', 'bench-fleet-' || i),
                                   poll_interval => '10 ms')
      FROM generate_series(1, :services) i) x;

CREATE SCHEMA bench;

-- One row per round of pushes: which pushes, and when the starting transaction committed.
CREATE TABLE bench.round (
    n            int PRIMARY KEY,
    version      text NOT NULL,
    first_push   bigint,
    last_push    bigint,
    pushes       int,
    committed_at timestamptz
);

-- Start one push per service, all in the caller's (single) transaction.
CREATE FUNCTION bench.start_round(p_n int, p_version text) RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    ids bigint[];
BEGIN
    SELECT array_agg(conveyor.push_start(s.name, p_version, 'benchmark round ' || p_n) ORDER BY s.name)
      INTO ids FROM conveyor.service s WHERE s.name LIKE 'bench-%';
    INSERT INTO bench.round (n, version, first_push, last_push, pushes)
    SELECT p_n, p_version, min(x), max(x), count(x) FROM unnest(ids) x;
    RETURN cardinality(ids);
END $$;

-- Wait until no push is running (a new transaction, so a new snapshot, per check).
CREATE PROCEDURE bench.wait_idle(timeout_s float8) LANGUAGE plpgsql AS $$
DECLARE
    deadline timestamptz := clock_timestamp() + make_interval(secs => timeout_s);
BEGIN
    LOOP
        EXIT WHEN NOT EXISTS (SELECT FROM conveyor.push WHERE state = 'running');
        IF clock_timestamp() > deadline THEN
            RAISE WARNING 'bench: pushes still running after % s', timeout_s;
            EXIT;
        END IF;
        COMMIT;
        PERFORM pg_sleep(0.02);
    END LOOP;
END $$;

-- Timed events of pushes first..last (docs/push-engine.md): the latency
-- conveyor adds to a transition is (at - due_at) - push_type_ms, of which
-- started_at - due_at is waiting for a free worker and
-- (at - started_at) - push_type_ms is conveyor's own processing.
CREATE FUNCTION bench.latencies(first bigint, last bigint)
RETURNS TABLE (push_id bigint, kind text, ms float8, wait_ms float8, proc_ms float8) LANGUAGE sql AS $$
    SELECT e.push_id, e.kind,
           extract(epoch FROM e.at - t.due) * 1000 - t.pt,
           extract(epoch FROM t.started - t.due) * 1000,
           extract(epoch FROM e.at - t.started) * 1000 - t.pt
      FROM conveyor.push_event e
     CROSS JOIN LATERAL (SELECT (e.detail->>'due_at')::timestamptz AS due,
                                (e.detail->>'started_at')::timestamptz AS started,
                                (e.detail->>'push_type_ms')::float8 AS pt) t
     WHERE e.push_id BETWEEN first AND last
       AND e.detail ? 'push_type_ms' AND t.due IS NOT NULL
$$;

-- p50 / p99 / max of latencies (ms), n events, as one text line.
CREATE FUNCTION bench.pct(ms float8[]) RETURNS text LANGUAGE sql AS $$
    SELECT format('p50 %s ms, p99 %s ms, max %s ms (%s events)',
                  round(percentile_cont(0.5) WITHIN GROUP (ORDER BY x)::numeric, 3),
                  round(percentile_cont(0.99) WITHIN GROUP (ORDER BY x)::numeric, 3),
                  round(max(x)::numeric, 3), count(x))
      FROM unnest(ms) x
$$;

-- Correctness of a round: every push succeeded with 3 phases, every subunit runs the version.
CREATE FUNCTION bench.check_round(p_n int) RETURNS text LANGUAGE sql AS $$
    WITH r AS (SELECT * FROM bench.round WHERE n = p_n),
    p AS (SELECT p.* FROM conveyor.push p, r WHERE p.id BETWEEN r.first_push AND r.last_push),
    problems AS (
        SELECT format('%s pushes not succeeded (%s)', count(*),
                      string_agg(DISTINCT p.state || coalesce(': ' || p.outcome_reason, ''), '; '))
          FROM p WHERE p.state <> 'succeeded' HAVING count(*) > 0
        UNION ALL
        SELECT format('%s pushes in the round, %s expected', (SELECT count(*) FROM p), r.pushes)
          FROM r WHERE (SELECT count(*) FROM p) <> r.pushes
        UNION ALL
        SELECT format('%s pushes without exactly 3 phase_succeeded events', count(*))
          FROM p WHERE (SELECT count(*) FROM conveyor.push_event e
                         WHERE e.push_id = p.id AND e.kind = 'phase_succeeded') <> 3
        HAVING count(*) > 0
        UNION ALL
        SELECT format('%s simulated subunits of the round''s services not on version %s', count(*), r.version)
          FROM r, p JOIN conveyor.service sv ON sv.name = p.service
          JOIN conveyor.sim_subunit_now s ON s.fleet = sv.push_type_config->>'fleet'
         WHERE s.version IS DISTINCT FROM r.version
         GROUP BY r.version HAVING count(*) > 0
        UNION ALL
        SELECT format('%s step errors (step_error / push_type_error events)', count(*))
          FROM conveyor.push_event e, r
         WHERE e.push_id BETWEEN r.first_push AND r.last_push
           AND e.kind IN ('step_error', 'push_type_error') HAVING count(*) > 0)
    SELECT coalesce(string_agg(x, '; '), 'ok') FROM problems x(x)
$$;

-- Throughput and latency of a round, as lines to print.
CREATE FUNCTION bench.report_round(p_n int) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    r bench.round;
    t_end timestamptz;
    secs float8;
    n_trans bigint;
    n_events bigint;
BEGIN
    SELECT * INTO r FROM bench.round WHERE n = p_n;
    SELECT max(ended_at) INTO t_end FROM conveyor.push WHERE id BETWEEN r.first_push AND r.last_push;
    secs := extract(epoch FROM t_end - r.committed_at);
    SELECT count(*) FILTER (WHERE kind = 'phase_succeeded'),
           count(*) FILTER (WHERE at > r.committed_at)
      INTO n_trans, n_events
      FROM conveyor.push_event WHERE push_id BETWEEN r.first_push AND r.last_push;
    RETURN NEXT format('round %s: %s pushes to %s, start committed -> last push ended: %s s',
                      p_n, r.pushes, r.version, round(secs::numeric, 3));
    RETURN NEXT format('round %s: %s phase transitions = %s/s; %s events written by workers = %s/s',
                      p_n, n_trans, round((n_trans / secs)::numeric, 1),
                      n_events, round((n_events / secs)::numeric, 1));
    RETURN NEXT format('round %s: latency (at - due_at - push_type_ms):      %s', p_n,
                      (SELECT bench.pct(array_agg(ms)) FROM bench.latencies(r.first_push, r.last_push)));
    RETURN NEXT format('round %s:   of it waiting for a worker (started_at - due_at): %s', p_n,
                      (SELECT bench.pct(array_agg(wait_ms)) FROM bench.latencies(r.first_push, r.last_push)));
    RETURN NEXT format('round %s:   of it processing (at - started_at - push_type_ms): %s', p_n,
                      (SELECT bench.pct(array_agg(proc_ms)) FROM bench.latencies(r.first_push, r.last_push)));
END $$;

-- Light load: one push at a time, each started when the one before has ended,
-- so a due push never waits for a busy worker: the first event of each
-- worker transaction then measures the wake-up and the claim.
CREATE PROCEDURE bench.light_round(p_n int, p_version text, p_count int) LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint;
    v_first bigint;
    deadline timestamptz;
BEGIN
    FOR i IN 1..p_count LOOP
        v_id := conveyor.push_start('bench-' || i, p_version, 'benchmark light round ' || p_n);
        v_first := coalesce(v_first, v_id);
        COMMIT;
        deadline := clock_timestamp() + interval '30 seconds';
        LOOP
            EXIT WHEN NOT EXISTS (SELECT FROM conveyor.push p WHERE p.id = v_id AND p.state = 'running')
                   OR clock_timestamp() > deadline;
            COMMIT;
            PERFORM pg_sleep(0.002);
        END LOOP;
    END LOOP;
    INSERT INTO bench.round (n, version, first_push, last_push, pushes)
    VALUES (p_n, p_version, v_first, v_id, p_count);
END $$;

-- Wait events of the conveyor workers, sampled every 10 ms for secs seconds
-- (one transaction per sample), into bench.wait_sample.
CREATE TABLE bench.wait_sample (at timestamptz, pid int, state text, wait text);
CREATE PROCEDURE bench.sample_waits(secs float8) LANGUAGE plpgsql AS $$
DECLARE
    deadline timestamptz := clock_timestamp() + make_interval(secs => secs);
BEGIN
    WHILE clock_timestamp() < deadline LOOP
        PERFORM pg_stat_clear_snapshot();
        INSERT INTO bench.wait_sample
        SELECT clock_timestamp(), a.pid, a.state,
               coalesce(a.wait_event_type || ':' || a.wait_event, 'CPU (no wait event)')
          FROM pg_stat_activity a WHERE a.backend_type = 'conveyor worker';
        COMMIT;
        PERFORM pg_sleep(0.01);
        EXIT WHEN NOT EXISTS (SELECT FROM conveyor.push WHERE state = 'running')
              AND clock_timestamp() > deadline - make_interval(secs => secs) + interval '1 second';
    END LOOP;
END $$;
