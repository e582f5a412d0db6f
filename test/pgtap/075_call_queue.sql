-- The queue of due pushes and the claim of push-type calls (issue 4): a push
-- of slow calls stands behind due pushes of fast ones by its calls' time
-- (call_ms, at most a second), which steps keep, and a worker's claim
-- takes pending calls only, leaving calls lost in flight and the calls of
-- ended pushes to its sweep. The rows are written here by hand, in one
-- transaction the workers never see; test/tap/070_http.pl runs the real thing.
BEGIN;
\ir _helpers.psql
SELECT plan(23);

SET conveyor.allowed_hosts = '10.0.0.5';
SELECT conveyor.push_plan_create('cvt_q_plan', '[{"scope": "*", "amount": "100%"}]');
SELECT conveyor.http_push_type_create('cvt_q', endpoints => '{http://10.0.0.5:8700}', request_timeout => '2 seconds',
                                      retries => 1);
SELECT conveyor.service_create('cvt_q' || i, 'cvt_q', 'cvt_q_plan') FROM generate_series(1, 4) i;
-- four running pushes, due a second ago; the first three wait on a call this backend sends
INSERT INTO conveyor.push (service, version, plan, seed, next_step_at)
SELECT 'cvt_q' || i, 'v2', '[{"scope": "*", "amount": "100%"}]', i, clock_timestamp() - interval '1 second'
  FROM generate_series(1, 4) i;
CREATE TEMP TABLE q AS SELECT id, service FROM conveyor.push WHERE service LIKE 'cvt_q%';
INSERT INTO conveyor.push_call (push_id, verb, request, request_hash, state, claimed_by, claimed_at)
SELECT q.id, 'get_units', '{}', 'h', 'sending', pg_backend_pid(),
       clock_timestamp() - CASE q.service WHEN 'cvt_q1' THEN interval '300 ms' WHEN 'cvt_q2' THEN interval '5 seconds'
                                          ELSE interval '2 ms' END
  FROM q WHERE q.service IN ('cvt_q1', 'cvt_q2', 'cvt_q3');

-- the engine's claim (src/engine.c engine_claim), without the lock
CREATE FUNCTION pg_temp.first_in_queue() RETURNS text LANGUAGE sql AS $$
    SELECT service FROM conveyor.push
     WHERE state = 'running' AND next_step_at <= clock_timestamp()
       AND conveyor._queue_place(next_step_at, call_ms) <= clock_timestamp() + interval '1 second'
     ORDER BY conveyor._queue_place(next_step_at, call_ms) LIMIT 1
$$;

-- ---------------------------------------------------------------- call_ms

SELECT conveyor._http_record(q.id, 'get_units', 'h', '{"endpoints": {}, "units": []}', NULL, NULL, 1)
  FROM q WHERE q.service IN ('cvt_q1', 'cvt_q2', 'cvt_q3') ORDER BY q.service;
SELECT ok((SELECT bool_and(next_step_at > clock_timestamp() - interval '1 second') FROM conveyor.push
            WHERE service IN ('cvt_q1', 'cvt_q2', 'cvt_q3')),
    'an answered call makes its push due now');
SELECT ok((SELECT call_ms BETWEEN 300 AND 900
                   AND conveyor._queue_place(next_step_at, call_ms) = next_step_at + call_ms * interval '1 ms'
              FROM conveyor.push WHERE service = 'cvt_q1'),
    'a push back from a 300 ms call stands in the queue about 300 ms after its due time');
SELECT is((SELECT call_ms FROM conveyor.push WHERE service = 'cvt_q2'), 1000::float8,
    'a push back from a 5 s call stands at most a second behind');
SELECT is(pg_temp.first_in_queue(), 'cvt_q4', 'the push due for longest, not back from a call, is first');
UPDATE conveyor.push SET state = 'paused', next_step_at = NULL WHERE service = 'cvt_q4';
SELECT is(pg_temp.first_in_queue(), 'cvt_q3',
    'then the push back from a 2 ms call, before those back from slow ones that became due with it');
UPDATE conveyor.push SET state = 'paused', next_step_at = NULL WHERE service = 'cvt_q3';
SELECT is(pg_temp.first_in_queue(), 'cvt_q1', 'then the 300 ms one');
UPDATE conveyor.push SET next_step_at = clock_timestamp() + interval '1 hour' WHERE service = 'cvt_q1';
SELECT ok((SELECT conveyor._queue_place(next_step_at, call_ms) - next_step_at BETWEEN interval '300 ms' AND interval '900 ms'
             FROM conveyor.push WHERE service = 'cvt_q1'),
    'a later due time (a bake) keeps the push''s place behind it by its calls'' time');
SELECT is(pg_temp.first_in_queue(), 'cvt_q2', 'and a push not due is not in the queue');
UPDATE conveyor.push SET state = 'running', next_step_at = clock_timestamp() WHERE service = 'cvt_q4';
SELECT is(pg_temp.first_in_queue(), 'cvt_q4',
    'a push resumed now goes ahead of one back from a 5 s call a moment ago');

-- ---------------------------------------------------------------- the claim

-- cvt_q1's call is pending again; cvt_q2's was lost in flight (its worker is gone); cvt_q3 is paused
UPDATE conveyor.push SET next_step_at = clock_timestamp() WHERE service = 'cvt_q1';
UPDATE conveyor.push_call c SET state = 'pending', claimed_by = NULL, claimed_at = NULL
  FROM q WHERE q.id = c.push_id AND q.service = 'cvt_q1';
UPDATE conveyor.push_call c SET state = 'sending', claimed_by = 2147483000, claimed_at = clock_timestamp()
  FROM q WHERE q.id = c.push_id AND q.service = 'cvt_q2';
UPDATE conveyor.push_call c SET state = 'pending'
  FROM q WHERE q.id = c.push_id AND q.service = 'cvt_q3';
SELECT is(ARRAY(SELECT q.service FROM conveyor._http_claim(16, false) c JOIN q ON q.id = c.push_id),
          ARRAY['cvt_q1'], 'a claim takes the pending call of a running push, not a paused push''s');
SELECT ok((SELECT state = 'sending' AND claimed_by = pg_backend_pid()
                  AND claim_expires_at - claimed_at BETWEEN interval '72 seconds' AND interval '72.1 seconds'
             FROM conveyor.push_call c JOIN q ON q.id = c.push_id WHERE q.service = 'cvt_q1'),
    'the claimed call expires after every attempt''s timeout and backoff (2 x (2 s + 4 s)), and a minute');
SELECT is(ARRAY(SELECT q.service FROM conveyor._http_claim(16, false) c JOIN q ON q.id = c.push_id),
          '{}'::text[], 'a call lost in flight waits for a sweep');
SELECT is(ARRAY(SELECT q.service FROM conveyor._http_claim(16, true) c JOIN q ON q.id = c.push_id),
          ARRAY['cvt_q2'], 'a sweep takes it again');

-- calls of ended pushes: the sweep drops them, unless a live worker is still sending one
UPDATE conveyor.push SET state = 'cancelled', outcome = 'good failure', ended_at = clock_timestamp(), next_step_at = NULL
 WHERE service IN ('cvt_q1', 'cvt_q3');
SELECT is((SELECT count(*) FROM conveyor._http_claim(16, false)), 0::bigint, 'nothing else to claim');
SELECT is(ARRAY(SELECT q.service FROM conveyor.push_call c JOIN q ON q.id = c.push_id ORDER BY 1),
          ARRAY['cvt_q1', 'cvt_q2', 'cvt_q3'], 'a claim without a sweep drops nothing');
SELECT is((SELECT count(*) FROM conveyor._http_claim(16, true)), 0::bigint, 'a sweep claims nothing more');
SELECT is(ARRAY(SELECT q.service FROM conveyor.push_call c JOIN q ON q.id = c.push_id ORDER BY 1),
          ARRAY['cvt_q1', 'cvt_q2'],
    'and drops the ended push''s pending call, keeping the one this (live) backend still sends');

-- -------------------------------------------------- the endpoints' usual time

-- a fast endpoint's answer that waited for a busy worker: the worker passes the endpoints' usual
-- time (p_usual_ms), and the push stands behind by that when it is less than the call took
CREATE FUNCTION pg_temp.answered_after_300ms(usual_ms float8) RETURNS void LANGUAGE sql AS $$
    UPDATE conveyor.push_call c SET state = 'sending', claimed_by = pg_backend_pid(),
           claimed_at = clock_timestamp() - interval '300 ms'
      FROM q WHERE q.id = c.push_id AND q.service = 'cvt_q2';
    SELECT conveyor._http_record(q.id, 'get_units', 'h', '{"endpoints": {}, "units": []}', NULL, NULL, 1, usual_ms)
      FROM q WHERE q.service = 'cvt_q2';
$$;
SELECT pg_temp.answered_after_300ms(2.5);
SELECT is((SELECT call_ms FROM conveyor.push WHERE service = 'cvt_q2'), 2.5::float8,
    'a 300 ms call to endpoints that usually answer in 2.5 ms: 2.5 ms behind, which the engine''s claim counts as fast');
SELECT pg_temp.answered_after_300ms(800);
SELECT ok((SELECT call_ms BETWEEN 300 AND 900 FROM conveyor.push WHERE service = 'cvt_q2'),
    'endpoints that usually take longer than this call: behind by what it took');
-- a pause and a resume keep it
SELECT conveyor.push_pause(q.id, 'test') FROM q WHERE q.service = 'cvt_q2';
SELECT conveyor.push_resume(q.id, 'test') FROM q WHERE q.service = 'cvt_q2';
SELECT ok((SELECT call_ms BETWEEN 300 AND 900 FROM conveyor.push WHERE service = 'cvt_q2'),
    'a paused and resumed push keeps its place behind by its calls'' time');

-- _queue_place: at most a second, nothing for NULL, negative or NaN times, immutable for the index
SELECT is(conveyor._queue_place('2026-01-01 00:00:00+00', 5000), '2026-01-01 00:00:01+00'::timestamptz,
    '_queue_place adds at most a second');
SELECT is(ARRAY[conveyor._queue_place('2026-01-01 00:00:00+00', NULL), conveyor._queue_place('2026-01-01 00:00:00+00', -3),
                conveyor._queue_place('2026-01-01 00:00:00+00', 'NaN'), conveyor._queue_place('infinity', 10)],
          ARRAY['2026-01-01 00:00:00+00', '2026-01-01 00:00:00+00', '2026-01-01 00:00:00+00', 'infinity']::timestamptz[],
    '_queue_place adds nothing for NULL, negative or NaN times, and leaves infinity');
SELECT is(conveyor._queue_place(NULL, 10), NULL, '_queue_place of no due time is none');

SELECT * FROM finish();
ROLLBACK;
