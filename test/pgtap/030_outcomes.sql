-- Push outcomes: success; good failures (unhealthy under each failure policy,
-- update failures over the fault tolerance, cancel); bad failures (a push type
-- that keeps failing, internal step errors); and the event timeline that tells
-- each story.
BEGIN;
\ir _helpers.psql
SELECT plan(64);

-- Success, and its timeline -------------------------------------------------
SELECT cvt.service(plan => 'cvt_quick') AS svc \gset
SELECT conveyor.push_start(:'svc', 'v2', 'release 2') AS p \gset
SELECT is(cvt.drive(:p), 'succeeded', 'success: the push succeeded');
SELECT results_eq(format($$SELECT outcome, outcome_reason, ended_at IS NOT NULL, next_step_at FROM conveyor.push WHERE id = %s$$, :p),
                  format($$VALUES ('success', '%s runs version v2', true, NULL::timestamptz)$$, :'svc'),
                  'success: outcome success, a reason, an end time, nothing more due');
SELECT is(cvt.versions(:p), '{"v2": 8}'::jsonb, 'success: every subunit runs v2');
SELECT results_eq(format($$SELECT position, implicit, state, targets, updated, failed FROM conveyor.push_phase
                             WHERE push_id = %s ORDER BY position$$, :p),
                  $$VALUES (0, false, 'succeeded', 2, 2, 0), (1, true, 'succeeded', 6, 6, 0)$$,
                  'success: eu at 50% (2 subunits), then the completion phase (the other 6)');
SELECT is(ARRAY(SELECT kind FROM conveyor.push_event WHERE push_id = :p ORDER BY id),
          '{push_started,phase_started,update_batch,updates_confirmed,health_checked,phase_succeeded,
            phase_started,update_batch,updates_confirmed,health_checked,phase_succeeded,push_succeeded}'::text[],
          'timeline: the events of a simple successful push, in order');
SELECT is(ARRAY(SELECT phase FROM conveyor.push_event WHERE push_id = :p ORDER BY id),
          '{NULL,0,0,0,0,0,1,1,1,1,1,1}'::int[], 'timeline: each event names its phase');
SELECT ok((SELECT bool_and(at >= prev) FROM (SELECT at, lag(at, 1, at) OVER (ORDER BY id) AS prev
             FROM conveyor.push_event WHERE push_id = :p) x), 'timeline: event times never go back');
SELECT results_eq(format($$SELECT actor::text COLLATE "default", reason, detail->>'version', detail->>'plan'
                             FROM conveyor.push_event WHERE push_id = %s AND kind = 'push_started'$$, :p),
                  $$VALUES (session_user::text COLLATE "default", 'release 2', 'v2', 'cvt_quick')$$,
                  'timeline: push_started says who, why, which version and plan');
SELECT is(ARRAY(SELECT actor FROM conveyor.push_event WHERE push_id = :p AND kind <> 'push_started'),
          array_fill(NULL::name, ARRAY[11]), 'timeline: the engine acts under no actor');
-- the tables can be rebuilt from the events
SELECT is((SELECT sum((detail->>'sent')::int + coalesce((detail->>'done')::int, 0)) FROM conveyor.push_event WHERE push_id = :p AND kind = 'update_batch'),
          (SELECT count(*) FROM conveyor.push_subunit WHERE push_id = :p AND state = 'done'),
          'rebuild: updates sent per the events = subunits done');
SELECT is(ARRAY(SELECT (detail->>'updated')::int FROM conveyor.push_event
                 WHERE push_id = :p AND kind = 'updates_confirmed' ORDER BY id),
          ARRAY(SELECT updated FROM conveyor.push_phase WHERE push_id = :p ORDER BY position),
          'rebuild: updates confirmed per phase, per the events = per the phases');
SELECT results_eq(format($$SELECT kind, detail->>'outcome', reason FROM conveyor.push_event
                             WHERE push_id = %s ORDER BY id DESC LIMIT 1$$, :p),
                  format($$SELECT 'push_' || state, outcome, outcome_reason FROM conveyor.push WHERE id = %s$$, :p),
                  'rebuild: the last event is the final state, outcome and reason');

-- Good failure: unhealthy, failure policy fail ------------------------------
SELECT cvt.service(plan => 'cvt_quick', policy => 'fail') AS svc \gset
SELECT conveyor.sim_version_set_faulty(:'svc', 'v2') \gset
SELECT conveyor.push_start(:'svc', 'v2') AS p \gset
SELECT is(cvt.drive(:p), 'failed', 'policy fail: an unhealthy push fails');
SELECT results_eq(format($$SELECT outcome, outcome_reason LIKE 'unhealthy in phase 1: eu-1 (%%' FROM conveyor.push WHERE id = %s$$, :p),
                  $$VALUES ('good failure', true)$$, 'policy fail: a good failure naming the unhealthy unit');
SELECT results_eq(format($$SELECT kind, detail->'healthy' FROM conveyor.push_event WHERE push_id = %s AND kind = 'health_checked'$$, :p),
                  $$VALUES ('health_checked', 'false'::jsonb)$$, 'policy fail: the failing health check is recorded');
SELECT is((SELECT state FROM conveyor.push_phase WHERE push_id = :p AND position = 0), 'failed',
          'policy fail: the phase failed');
SELECT is(cvt.versions(:p), '{"v1": 6, "v2": 2}'::jsonb, 'policy fail: updated subunits stay, nothing else is updated');

-- Good failure: unhealthy, failure policy revert ----------------------------
SELECT cvt.service(plan => 'cvt_quick', policy => 'revert') AS svc \gset
SELECT conveyor.sim_version_set_faulty(:'svc', 'v2') \gset
SELECT conveyor.push_start(:'svc', 'v2') AS p \gset
SELECT is(cvt.drive(:p), 'reverted', 'policy revert: an unhealthy push is reverted');
SELECT results_eq(format($$SELECT outcome, outcome_reason LIKE 'automatic revert: unhealthy in phase 1%%' FROM conveyor.push WHERE id = %s$$, :p),
                  $$VALUES ('good failure', true)$$, 'policy revert: a good failure, automatic revert');
SELECT id AS r FROM conveyor.push WHERE reverts = :p \gset
SELECT results_eq(format($$SELECT kind, version, state, started_by = (SELECT started_by FROM conveyor.push WHERE id = %s)
                             FROM conveyor.push WHERE id = %s$$, :p, :r),
                  $$VALUES ('revert', 'v1', 'running', true)$$, 'policy revert: a revert push back to v1 was started');
SELECT is((SELECT count(*) FROM conveyor.push_subunit WHERE push_id = :r), 2::bigint,
          'policy revert: it reverts exactly the 2 subunits the push updated');
SELECT is(cvt.drive(:r), 'succeeded', 'policy revert: the revert push succeeds');
SELECT results_eq(format($$SELECT outcome, outcome_reason FROM conveyor.push WHERE id = %s$$, :r),
                  format($$VALUES ('success', 'reverted push %s')$$, :p), 'policy revert: revert outcome success');
SELECT is(cvt.versions(:p), '{"v1": 8}'::jsonb, 'policy revert: every subunit is back on v1');
SELECT is((SELECT count(*) FROM conveyor.push_event WHERE push_id = :r AND kind LIKE 'health%'), 0::bigint,
          'policy revert: a revert push does not wait on health checks');

-- Good failure: unhealthy, failure policy pause -----------------------------
SELECT cvt.service(plan => 'cvt_quick', policy => 'pause') AS svc \gset
SELECT conveyor.sim_version_set_faulty(:'svc', 'v2') \gset
SELECT conveyor.push_start(:'svc', 'v2') AS p \gset
SELECT is(cvt.drive(:p), 'paused', 'policy pause: an unhealthy push pauses');
SELECT results_eq(format($$SELECT outcome, ended_at, next_step_at FROM conveyor.push WHERE id = %s$$, :p),
                  $$VALUES (NULL::text, NULL::timestamptz, NULL::timestamptz)$$, 'policy pause: no outcome yet, nothing due');
SELECT results_eq(format($$SELECT kind, actor, detail->>'policy', reason LIKE 'unhealthy in phase 1%%'
                             FROM conveyor.push_event WHERE push_id = %s ORDER BY id DESC LIMIT 1$$, :p),
                  $$VALUES ('push_paused', NULL::name, 'pause', true)$$, 'policy pause: paused by the engine, saying why');
SELECT conveyor.push_resume(:p) \gset
SELECT is(cvt.drive(:p), 'paused', 'policy pause: resumed while still unhealthy, it pauses again');
SELECT conveyor.push_skip_healthchecks(:p, 'known flaky') \gset
SELECT conveyor.push_resume(:p, 'go on') \gset
SELECT is(cvt.drive(:p), 'succeeded', 'policy pause: skip_healthchecks and resume, and it succeeds');
SELECT is(cvt.versions(:p), '{"v2": 8}'::jsonb, 'policy pause: every subunit runs v2');
SELECT is(ARRAY(SELECT kind FROM conveyor.push_event WHERE push_id = :p AND kind LIKE 'health%'
                   AND id > (SELECT id FROM conveyor.push_event WHERE push_id = :p AND kind = 'healthchecks_skipped')
                 ORDER BY id),
          '{health_skipped}'::text[], 'policy pause: no health check after the skip; the next bake says it skipped');

-- Good failure: update failures over the fault tolerance --------------------
SELECT conveyor.push_plan_create('cvt_tolerant',
    '[{"scope": "region=eu", "amount": "100%", "fault_tolerance": "25%", "bake": "1 hour"}]') \gset
SELECT cvt.service(plan => 'cvt_tolerant') AS svc \gset
SELECT conveyor.sim_subunit_set_unreachable(:'svc', 'eu-1', 'eu-1-01') \gset
SELECT conveyor.sim_subunit_set_unreachable(:'svc', 'eu-1', 'eu-1-02') \gset
SELECT conveyor.push_start(:'svc', 'v2') AS p \gset
SELECT is(cvt.drive(:p), 'failed', 'over tolerance: 2 of 4 unreachable with 25% tolerance fails');
SELECT results_eq(format($$SELECT outcome, outcome_reason LIKE 'update failures over tolerance in phase 1: 2 of 4 %%'
                             FROM conveyor.push WHERE id = %s$$, :p),
                  $$VALUES ('good failure', true)$$, 'over tolerance: a good failure saying how many failed');
SELECT results_eq(format($$SELECT (detail->>'updated')::int, (detail->>'failed')::int, (detail->>'failures_allowed')::int
                             FROM conveyor.push_event WHERE push_id = %s AND kind = 'updates_confirmed'$$, :p),
                  $$VALUES (2, 2, 1)$$, 'over tolerance: updated 2, failed 2, 1 allowed');
SELECT results_eq(format($$SELECT subunit, state, error FROM conveyor.push_subunit WHERE push_id = %s ORDER BY subunit$$, :p),
                  $$VALUES ('eu-1-01', 'failed', 'host unreachable'), ('eu-1-02', 'failed', 'host unreachable'),
                           ('eu-1-03', 'done', NULL), ('eu-1-04', 'done', NULL)$$,
                  'over tolerance: each subunit says how it went');
SELECT is((SELECT count(*) FROM conveyor.push_event WHERE push_id = :p AND kind = 'health_checked'), 0::bigint,
          'over tolerance: the phase never got to bake');

-- within the tolerance the phase passes; the completion phase updates the rest
SELECT cvt.service(plan => 'cvt_tolerant') AS svc \gset
SELECT conveyor.sim_subunit_set_unreachable(:'svc', 'eu-1', 'eu-1-01') \gset
SELECT conveyor.push_start(:'svc', 'v2') AS p \gset
SELECT is(cvt.drive(:p), 'running', 'within tolerance: 1 of 4 unreachable with 25% tolerance goes on');
SELECT results_eq(format($$SELECT p.step, ph.updated, ph.failed FROM conveyor.push p
                             JOIN conveyor.push_phase ph ON ph.push_id = p.id AND ph.position = p.phase WHERE p.id = %s$$, :p),
                  $$VALUES ('bake', 3, 1)$$, 'within tolerance: the phase bakes with 3 updated and 1 failed');
SELECT conveyor.sim_subunit_set_unreachable(:'svc', 'eu-1', 'eu-1-01', false) \gset
SELECT cvt.elapse(:p) \gset
SELECT is(cvt.drive(:p), 'succeeded', 'within tolerance: once the bake is over the push succeeds');
SELECT is(cvt.versions(:p), '{"v2": 8}'::jsonb, 'within tolerance: the completion phase retried the failed subunit');

-- an update that fails after it was accepted also counts
SELECT cvt.service(plan => 'cvt_tolerant', update_time => '1 hour') AS svc \gset
SELECT conveyor.push_start(:'svc', 'v2') AS p \gset
SELECT is(cvt.drive(:p), 'running', 'slow fleet: updates in flight');
SELECT conveyor.sim_subunit_set_unreachable(:'svc', 'eu-1') \gset
SELECT is(cvt.drive(:p), 'failed', 'the unit became unreachable while updating: the push fails');
SELECT is(ARRAY(SELECT DISTINCT error FROM conveyor.push_subunit WHERE push_id = :p),
          '{"update unreachable"}'::text[], 'every update failed as unreachable');

-- Good failure: cancel ------------------------------------------------------
SELECT cvt.push_in('running') AS p \gset
SELECT conveyor.push_cancel(:p, 'not today') \gset
SELECT results_eq(format($$SELECT state, outcome FROM conveyor.push WHERE id = %s$$, :p),
                  $$VALUES ('cancelled', 'good failure')$$, 'cancel: a good failure');

-- Bad failure: a push type whose send_update always raises -------------------
CREATE FUNCTION cvt.static_units(service text, config jsonb)
RETURNS TABLE (unit text, labels jsonb, subunit text, version text, status text)
LANGUAGE sql AS $$
    VALUES ('eu-1', '{"region": "eu"}'::jsonb, 'eu-1-01', 'v1', 'ok'),
           ('eu-1', '{"region": "eu"}'::jsonb, 'eu-1-02', 'v1', 'ok'),
           ('us-1', '{"region": "us"}'::jsonb, 'us-1-01', 'v1', 'ok');
$$;
CREATE FUNCTION cvt.broken_send(service text, config jsonb, updates jsonb)
RETURNS TABLE (unit text, subunit text, error text)
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the hosting system is down' USING ERRCODE = 'connection_failure';
END $$;
SELECT lives_ok($$SELECT conveyor.push_type_create('cvt_broken', 'cvt.static_units(text,jsonb)',
                                                  'cvt.broken_send(text,jsonb,jsonb)')$$,
                'a push type with SQL verbs is registered');
SELECT conveyor.service_create('cvt_bad', 'cvt_broken', 'cvt_quick', retry_limit => 2) \gset
SELECT conveyor.push_start('cvt_bad', 'v2') AS p \gset
SELECT conveyor._push_step(:p) \gset
SELECT results_eq(format($$SELECT state, errors, next_step_at >= (SELECT max(at) FROM conveyor.push_event e WHERE e.push_id = p.id) + interval '0.5 seconds'
                             FROM conveyor.push p WHERE id = %s$$, :p),
                  $$VALUES ('running', 1, true)$$, 'push type error 1: still running, retried later (backoff)');
SELECT results_eq(format($$SELECT detail->>'verb', detail->>'sqlstate', detail->>'error', (detail->>'attempt')::int
                             FROM conveyor.push_event WHERE push_id = %s AND kind = 'push_type_error'$$, :p),
                  $$VALUES ('send_update', '08006', 'the hosting system is down', 1)$$,
                  'push type error 1: recorded with verb, SQLSTATE, message and attempt');
SELECT conveyor._push_step(:p) \gset
SELECT results_eq(format($$SELECT state, errors FROM conveyor.push WHERE id = %s$$, :p),
                  $$VALUES ('running', 2)$$, 'push type error 2: still within retry_limit 2');
SELECT conveyor._push_step(:p) \gset
SELECT results_eq(format($$SELECT state, outcome, outcome_reason LIKE 'push type send_update failed 3 times (retry limit 2)%%'
                             FROM conveyor.push WHERE id = %s$$, :p),
                  $$VALUES ('failed', 'bad failure', true)$$, 'push type error 3: over retry_limit, a bad failure');
SELECT is(ARRAY(SELECT kind FROM conveyor.push_event WHERE push_id = :p AND kind IN ('push_type_error', 'push_failed') ORDER BY id),
          '{push_type_error,push_type_error,push_failed}'::text[], 'bad failure: two retries, then the end');
SELECT is((SELECT detail->>'outcome' FROM conveyor.push_event WHERE push_id = :p AND kind = 'push_failed'), 'bad failure',
          'bad failure: the final event says so');
SELECT is((SELECT count(*) FROM conveyor.push_subunit WHERE push_id = :p AND state IN ('sent', 'done')), 0::bigint,
          'bad failure: nothing was updated');

-- retry_limit 0: the first error ends the push
SELECT conveyor.service_alter('cvt_bad', retry_limit => 0) \gset
SELECT conveyor.push_start('cvt_bad', 'v3') AS p \gset
SELECT conveyor._push_step(:p) \gset
SELECT results_eq(format($$SELECT state, outcome FROM conveyor.push WHERE id = %s$$, :p),
                  $$VALUES ('failed', 'bad failure')$$, 'retry_limit 0: the first push type error is a bad failure');

-- a push type that fails once recovers on the retry
CREATE SEQUENCE cvt.flaky_calls;
CREATE FUNCTION cvt.flaky_send(service text, config jsonb, updates jsonb)
RETURNS TABLE (unit text, subunit text, error text)
LANGUAGE plpgsql AS $$
BEGIN
    IF nextval('cvt.flaky_calls') = 1 THEN  -- a sequence: the engine's rollback does not undo it
        RAISE EXCEPTION 'timeout talking to the hosting system' USING ERRCODE = 'connection_failure';
    END IF;
    RETURN QUERY SELECT * FROM conveyor.sim_send_update(service, config, updates);
END $$;
SELECT conveyor.push_type_create('cvt_flaky', 'conveyor.sim_get_units(text,jsonb)', 'cvt.flaky_send(text,jsonb,jsonb)') \gset
SELECT conveyor.sim_fleet_create('cvt_flaky', '{eu,us}', 1, 4) \gset
SELECT conveyor.service_create('cvt_flaky', 'cvt_flaky', 'cvt_quick', '{"fleet": "cvt_flaky"}', retry_limit => 1) \gset
SELECT conveyor.push_start('cvt_flaky', 'v2') AS p \gset
SELECT is(cvt.drive(:p), 'running', 'flaky push type: the first send failed, a retry is due');
SELECT is(cvt.drive(:p), 'succeeded', 'flaky push type: the retry worked and the push succeeded');
SELECT results_eq(format($$SELECT errors, (SELECT count(*) FROM conveyor.push_event e WHERE e.push_id = p.id AND e.kind = 'push_type_error')
                             FROM conveyor.push p WHERE id = %s$$, :p),
                  $$VALUES (0, 1::bigint)$$, 'flaky push type: one error recorded, the count reset after success');
SELECT is(cvt.versions(:p), '{"v2": 8}'::jsonb, 'flaky push type: every subunit runs v2');

-- Bad failure: a step that fails unexpectedly three times in a row -----------
SELECT cvt.push_in('running') AS p \gset
SELECT conveyor._push_step_error(:p, 'XX000', 'boom') \gset
SELECT conveyor._push_step_error(:p, 'XX000', 'boom') \gset
SELECT results_eq(format($$SELECT state, errors FROM conveyor.push WHERE id = %s$$, :p),
                  $$VALUES ('running', 2)$$, 'step errors: two in a row are retried');
SELECT conveyor._push_step_error(:p, 'XX000', 'boom') \gset
SELECT results_eq(format($$SELECT state, outcome, outcome_reason FROM conveyor.push WHERE id = %s$$, :p),
                  $$VALUES ('failed', 'bad failure', 'internal error: boom')$$, 'step errors: the third is a bad failure');
SELECT is((SELECT count(*) FROM conveyor.push_event WHERE push_id = :p AND kind = 'step_error'), 2::bigint,
          'step errors: the retried ones are recorded');

-- Every outcome class ends in the state the design gives it -----------------
SELECT is(ARRAY(SELECT DISTINCT format('%s/%s', state, outcome) FROM conveyor.push
                 WHERE service LIKE 'cvt%' AND state NOT IN ('running', 'paused') ORDER BY 1),
          '{"cancelled/good failure","failed/bad failure","failed/good failure","reverted/good failure","succeeded/success"}'::text[],
          'outcomes: success, good failures (cancelled, failed, reverted) and bad failures (failed)');

-- A revert takes back updates the push type accepted and then failed (a
-- version that crashed on start), not those refused outright or to
-- unreachable subunits, which changed nothing.
SELECT cvt.service(plan => 'cvt_quick') AS svc \gset
SELECT conveyor.push_start(:'svc', 'v2') AS p \gset
SELECT is(cvt.drive(:p), 'succeeded', 'a push to revert');
WITH s AS (SELECT unit, subunit, row_number() OVER (ORDER BY unit, subunit) AS n
             FROM conveyor.push_subunit WHERE push_id = :p)
UPDATE conveyor.push_subunit ps
   SET state = 'failed', error = CASE s.n WHEN 1 THEN 'update failed' WHEN 2 THEN 'not confirmed within 00:10:00'
                                          WHEN 3 THEN 'update unreachable' ELSE 'unit is draining' END
  FROM s WHERE ps.push_id = :p AND ps.unit = s.unit AND ps.subunit = s.subunit AND s.n <= 4;
SELECT conveyor.push_revert(:p, 'crashing') AS r \gset
SELECT is((SELECT count(*) FROM conveyor.push_subunit WHERE push_id = :r),
          (SELECT count(*) - 2 FROM conveyor.push_subunit WHERE push_id = :p),
          'the revert returns every updated subunit, those whose accepted update failed or went unconfirmed too, but not refused or unreachable ones');

SELECT * FROM finish();
ROLLBACK;
