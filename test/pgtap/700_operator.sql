-- The operator's surface: push_progress, the readable views, comments, and the
-- NOTIFY channel conveyor_events (received for real over dblink, since a
-- notification is only sent when its transaction commits).
BEGIN;
\ir _helpers.psql
SELECT plan(41);

-- push_progress ---------------------------------------------------------------
SELECT cvt.push_in('running') AS run \gset
SELECT results_eq(format($$SELECT state, step, phase, phases, phase_scope, phase_amount, phase_targets,
                                  phase_updated::int, phase_failed::int, phase_in_flight::int,
                                  subunits_done, subunits_total, percent, health
                             FROM conveyor.push_progress WHERE push_id = %s$$, :run),
                  $$VALUES ('running', 'bake', 1, 2, 'region=eu', '50%', 2, 2, 0, 0, 2, 8, 25.0, 'healthy')$$,
                  'progress: a push baking phase 1 of 2, 2 of 8 subunits on the version, healthy');
SELECT ok((SELECT bake_left BETWEEN '59 minutes' AND '1 hour' FROM conveyor.push_progress WHERE push_id = :run),
          'progress: bake_left counts down the hour-long bake');
SELECT ok((SELECT eta BETWEEN now() + '59 minutes' AND now() + '1 hour 1 minute' FROM conveyor.push_progress WHERE push_id = :run),
          'progress: the ETA is the bake left plus the (instant) updates of the completion phase');
SELECT results_eq(format($$SELECT started_by::text, start_reason, last_event FROM conveyor.push_progress WHERE push_id = %s$$, :run),
                  $$VALUES (session_user::text, 'setup', 'health_checked')$$,
                  'progress: who started it and why, and the latest event');

SELECT cvt.push_in('paused') AS pau \gset
SELECT results_eq(format($$SELECT state, eta FROM conveyor.push_progress WHERE push_id = %s$$, :pau),
                  $$VALUES ('paused', NULL::timestamptz)$$, 'progress: a paused push has no ETA');
SELECT cvt.push_in('succeeded') AS suc \gset
SELECT is((SELECT count(*)::int FROM conveyor.push_progress WHERE push_id = :suc), 0,
          'progress: an ended push is not in progress');
SELECT cvt.push_in('revert running') AS rev \gset
SELECT results_eq(format($$SELECT kind, health, subunits_total FROM conveyor.push_progress WHERE push_id = %s$$, :rev),
                  $$VALUES ('revert', 'not checked (revert)', 2)$$,
                  'progress: a revert checks no health; its total is the subunits it returns');

-- unhealthy, failure policy pause: the verdict names the unit
SELECT cvt.service(policy => 'pause') AS sick \gset
SELECT conveyor.sim_version_set_faulty(:'sick', 'v2') \gset
SELECT conveyor.push_start(:'sick', 'v2') AS sp \gset
SELECT cvt.drive(:sp) \gset
SELECT results_eq(format($$SELECT state, health LIKE 'unhealthy: eu-1 (%%' FROM conveyor.push_progress WHERE push_id = %s$$, :sp),
                  $$VALUES ('paused', true)$$, 'progress: an unhealthy verdict shows with the unit');
SELECT conveyor.push_skip_healthchecks(:sp) \gset
SELECT is((SELECT health FROM conveyor.push_progress WHERE push_id = :sp), 'skipped',
          'progress: skipped healthchecks show as skipped');

-- a push not planned yet: counts unknown, not zero
SELECT cvt.service() AS fresh \gset
SELECT conveyor.push_start(:'fresh', 'v2') AS fp \gset
SELECT results_eq(format($$SELECT step, health, subunits_total, percent FROM conveyor.push_progress WHERE push_id = %s$$, :fp),
                  $$VALUES ('plan', 'not checked yet', NULL::int, NULL::numeric)$$,
                  'progress: before the first plan the counts are unknown (NULL)');

-- readable views ----------------------------------------------------------------
SELECT results_eq(format($$SELECT active_push, active_state, active_phase, pushes::int FROM conveyor.services WHERE name = %L$$,
                         cvt.service_of(:run)),
                  format($$VALUES (%s::bigint, 'running', '1/2', 1)$$, :run),
                  'services: the active push, its state and phase');
SELECT results_eq(format($$SELECT pushed_version, last_push, last_state, last_outcome, active_push FROM conveyor.services WHERE name = %L$$,
                         cvt.service_of(:suc)),
                  format($$VALUES ('v2', %s::bigint, 'succeeded', 'success', NULL::bigint)$$, :suc),
                  'services: the version pushed and the last push');
SELECT results_eq($$SELECT phases, summary, total_bake FROM conveyor.plans WHERE name = 'cvt_hold'$$,
                  $$VALUES (2, '1: region=eu 50% bake 01:00:00 | 2: * 100% (completion)', '1 hour'::interval)$$,
                  'plans: phases in a line, the completion phase included, and the total bake');
SELECT ok((SELECT cvt.service_of(:run) = ANY (used_by) FROM conveyor.plans WHERE name = 'cvt_hold'),
          'plans: the services using a plan');
SELECT results_eq(format($$SELECT phase, plan, phase_scope, subunits_updated::int, subunits_failed::int, last_event
                             FROM conveyor.pushes WHERE id = %s$$, :suc),
                  $$VALUES ('2/2', 'cvt_quick', '* 100%', 8, 0, 'push_succeeded')$$,
                  'pushes: plan, phase, subunits updated, the latest event');

-- every view of this surface applies row-level security as its reader, and anyone may read it
SELECT is(ARRAY(SELECT c.relname::text FROM pg_class c
                 WHERE c.relnamespace = 'conveyor'::regnamespace AND c.relkind = 'v'
                   AND c.relname IN ('push_progress', 'services', 'plans', 'pushes', 'push_history', 'phase_history',
                                     'slo_weekly', 'push_latency', 'dora_changes', 'dora_weekly')
                   AND 'security_invoker=true' = ANY (c.reloptions)
                   AND aclcontains(c.relacl, makeaclitem(0, c.relowner, 'SELECT', false))
                 ORDER BY 1),
          '{dora_changes,dora_weekly,phase_history,plans,push_history,push_latency,push_progress,pushes,services,slo_weekly}'::text[],
          'views: security_invoker, SELECT granted to PUBLIC');

-- comments: \d+ and \df+ explain everything
SELECT is(ARRAY(SELECT c.relname::text FROM pg_class c
                 WHERE c.relnamespace = 'conveyor'::regnamespace AND c.relkind IN ('r', 'v', 'm', 'p')
                   AND obj_description(c.oid, 'pg_class') IS NULL ORDER BY 1),
          '{}'::text[], 'comments: every table and view');
SELECT is(ARRAY(SELECT c.relname || '.' || a.attname FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
                 WHERE c.relnamespace = 'conveyor'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
                   AND c.relname IN ('push_type', 'push_plan', 'push_plan_phase', 'service', 'push', 'push_phase',
                                     'push_subunit', 'push_event', 'retention_policy',
                                     'push_progress', 'services', 'plans', 'pushes', 'push_history', 'phase_history',
                                     'slo_weekly', 'push_latency', 'dora_changes', 'dora_weekly')
                   AND col_description(c.oid, a.attnum) IS NULL ORDER BY 1),
          '{}'::text[], 'comments: every column of the push tables and the operator and BI views');
SELECT is(ARRAY(SELECT p.oid::regprocedure::text FROM pg_proc p
                 WHERE p.pronamespace = 'conveyor'::regnamespace AND obj_description(p.oid, 'pg_proc') IS NULL ORDER BY 1),
          '{}'::text[], 'comments: every function');

-- the NOTIFY trigger: once per statement, with the statement's rows ---------------
SELECT results_eq($$SELECT (tgtype & 1)::int, tgtype & 4 <> 0, tgnewtable FROM pg_trigger
                     WHERE tgrelid = 'conveyor.push_event'::regclass AND tgname = 'push_event_notify'$$,
                  $$VALUES (0, true, 'new_events'::name)$$,
                  'notify: a statement-level AFTER INSERT trigger with a transition table');

-- Real notifications, on connections of their own: a listener, and a writer
-- whose transactions commit. What the writer commits is removed at the end
-- (through the retention policy: the only way to delete history).
CREATE EXTENSION IF NOT EXISTS dblink;
SELECT format('host=%s port=%s dbname=%s user=%s', split_part(current_setting('unix_socket_directories'), ',', 1),
              current_setting('port'), current_database(), current_user) AS cs \gset
SELECT dblink_connect('cvt_listen', :'cs') \gset
SELECT dblink_connect('cvt_write', :'cs') \gset
SELECT dblink_exec('cvt_listen', 'LISTEN conveyor_events') \gset
SELECT dblink_exec('cvt_write', $w$ DO $d$ BEGIN
    PERFORM conveyor.sim_fleet_create('cvt_notify', '{eu,us}', 1, 4, 'v1');
    PERFORM conveyor.push_plan_create('cvt_notify', '[{"scope": "region=eu", "amount": "50%"}]');
    PERFORM conveyor.service_create('cvt_notify', 'simulated', 'cvt_notify', '{"fleet": "cvt_notify"}');
END $d$ $w$) \gset

-- a transaction that rolls back sends nothing
SELECT dblink_exec('cvt_write', $w$
    BEGIN; DO $d$ BEGIN PERFORM conveyor.push_start('cvt_notify', 'v0', 'rolled back'); END $d$; ROLLBACK;
$w$) \gset
-- a push run to its end in one committed transaction: every event, once, in order
SELECT dblink_exec('cvt_write', $w$ DO $d$ BEGIN
    PERFORM conveyor._push_step(conveyor.push_start('cvt_notify', 'v2', 'notify me'));
END $d$ $w$) \gset
SELECT * FROM dblink('cvt_write', $w$SELECT max(id) FROM conveyor.push WHERE service = 'cvt_notify'$w$) AS t(id bigint) \gset np_
SELECT set_config('cvt.push', :'np_id', false) \gset
-- wait (up to 5 s) until the listener has every notification: workers may step the push too
CREATE TEMP TABLE notes (channel text, pid int, payload text);
DO $$
BEGIN
    FOR i IN 1..50 LOOP
        INSERT INTO notes SELECT * FROM dblink_get_notify('cvt_listen');
        EXIT WHEN EXISTS (SELECT 1 FROM notes WHERE payload::jsonb->>'kind' = 'push_succeeded'
                                                  AND payload::jsonb->>'push' = current_setting('cvt.push'));
        PERFORM pg_sleep(0.1);
    END LOOP;
END $$;
SELECT * FROM dblink('cvt_write', format('SELECT array_agg(id ORDER BY id), array_agg(kind ORDER BY id) FROM conveyor.push_event WHERE push_id = %s', :np_id))
    AS t(ids bigint[], kinds text[]) \gset ev_
-- (other tests' committed pushes may be stepped by the workers meanwhile: keep this push's)
DELETE FROM notes WHERE payload::jsonb->>'push' <> :'np_id' AND payload::jsonb->>'reason' IS DISTINCT FROM 'rolled back';
SELECT is(ARRAY(SELECT (payload::jsonb->>'id')::bigint FROM notes), :'ev_ids'::bigint[],
          'notify: one notification per event of the push, in event order, nothing from the rolled-back one');
SELECT is(ARRAY(SELECT payload::jsonb->>'kind' FROM notes), :'ev_kinds'::text[],
          'notify: each carries the event''s kind');
SELECT is((SELECT count(DISTINCT channel) || ' ' || min(channel) FROM notes), '1 conveyor_events',
          'notify: on channel conveyor_events');
SELECT is((SELECT array_agg(DISTINCT (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(payload::jsonb) k)::text) FROM notes),
          ARRAY['{actor,at,detail,id,kind,phase,push,reason}'],
          'notify: every payload has id, push, kind, phase, at, actor, reason, detail');
SELECT ok((SELECT bool_and(payload ~ ('^\{"id":\d+,"push":' || :np_id || ',"kind":"[a-z_]+","phase":(null|\d+),"at":"[^"]+","actor":(null|"[^"]*"),"reason":'))
             FROM notes),
          'notify: compact JSON, id first, then the push');
SELECT is((SELECT payload::jsonb->'detail'->>'service' FROM notes WHERE payload::jsonb->>'kind' = 'push_started'),
          'cvt_notify', 'notify: the detail comes along');

-- an event too large for a notification: ids and kind only
SELECT dblink_exec('cvt_write', $w$ DO $d$ BEGIN
    PERFORM conveyor.push_cancel(conveyor.push_start('cvt_notify', 'v3'), repeat('why ', 3000));
END $d$ $w$) \gset
SELECT * FROM dblink('cvt_write', $w$SELECT max(id) FROM conveyor.push WHERE service = 'cvt_notify'$w$) AS t(id bigint) \gset big_
SELECT set_config('cvt.push', :'big_id', false) \gset
TRUNCATE notes;
DO $$
BEGIN
    FOR i IN 1..50 LOOP
        INSERT INTO notes SELECT * FROM dblink_get_notify('cvt_listen');
        EXIT WHEN EXISTS (SELECT 1 FROM notes WHERE payload::jsonb->>'kind' = 'push_cancelled'
                                                  AND payload::jsonb->>'push' = current_setting('cvt.push'));
        PERFORM pg_sleep(0.1);
    END LOOP;
END $$;
SELECT results_eq($$SELECT payload::jsonb->>'kind', payload::jsonb->'truncated', payload::jsonb ? 'reason', octet_length(payload) < 8000
                      FROM notes WHERE payload::jsonb->>'push' = '$$ || :'big_id' || $$' ORDER BY (payload::jsonb->>'id')::bigint$$,
                  $$VALUES ('push_started', NULL::jsonb, true, true), ('push_cancelled', 'true'::jsonb, false, true)$$,
                  'notify: an event over the payload limit comes as ids and kind, marked truncated');

-- clean up what the writer committed: age it, then the retention policy deletes it
SELECT dblink_exec('cvt_write', $w$ DO $d$ BEGIN
    UPDATE conveyor.push SET created_at = now() - interval '3 days', ended_at = now() - interval '2 days'
     WHERE service = 'cvt_notify';
    PERFORM conveyor.retention_run(keep => '1 day');
    DELETE FROM conveyor.service WHERE name = 'cvt_notify';
    PERFORM conveyor.push_plan_drop('cvt_notify');
    PERFORM conveyor.sim_fleet_drop('cvt_notify');
END $d$ $w$) \gset
SELECT is((SELECT n FROM dblink('cvt_write', $w$SELECT count(*) FROM conveyor.push WHERE service = 'cvt_notify'$w$) AS t(n bigint)),
          0::bigint, 'notify: the committed test pushes are gone again');
SELECT dblink_disconnect('cvt_listen') \gset
SELECT dblink_disconnect('cvt_write') \gset

-- payload size: the largest event the engine writes still fits ------------------------
SELECT ok(octet_length(row_to_json(ROW(1::bigint, 1::bigint, 'health_checked', 0, now(), NULL::name, NULL::text,
              jsonb_build_object('healthy', false, 'units_checked', 40,
                  'unhealthy', (SELECT jsonb_agg(jsonb_build_object('unit', 'eu-' || i, 'reason', 'version v2 is faulty'))
                                  FROM generate_series(1, 40) i)))::conveyor._event_note)::text) < 8000,
          'notify: a health verdict on 40 unhealthy units fits one notification');

-- pushes: the 0.2 columns are unchanged, in order, with new ones after them
SELECT is(ARRAY(SELECT attname::text FROM pg_attribute WHERE attrelid = 'conveyor.pushes'::regclass AND attnum > 0 ORDER BY attnum),
          '{id,service,version,kind,reverts,state,phase,step,outcome,outcome_reason,started_by,start_reason,created_at,ended_at,duration,plan,phase_scope,subunits_updated,subunits_failed,last_event,last_event_at}'::text[],
          'pushes: the 0.2 columns first, unchanged');

-- progress of a push with update_time: in flight
SELECT cvt.service(plan => 'cvt_quick', update_time => '1 hour') AS slow \gset
SELECT conveyor.push_start(:'slow', 'v2') AS slp \gset
SELECT cvt.drive(:slp, 3) \gset
SELECT results_eq(format($$SELECT step, phase_targets, phase_in_flight::int, phase_updated::int, subunits_done, percent
                             FROM conveyor.push_progress WHERE push_id = %s$$, :slp),
                  $$VALUES ('confirm', 2, 2, 0, 0, 0.0)$$,
                  'progress: updates in flight count as in flight, not done');
SELECT ok((SELECT eta IS NOT NULL AND bake_left IS NULL FROM conveyor.push_progress WHERE push_id = :slp),
          'progress: an ETA and no bake left while updating');

-- service of a running push: phase k/N moves on
SELECT cvt.elapse(:run) \gset
SELECT cvt.drive(:run) \gset
SELECT is((SELECT state FROM conveyor.pushes WHERE id = :run), 'succeeded', 'the running push finished after its bake');
SELECT is((SELECT count(*)::int FROM conveyor.push_progress WHERE push_id = :run), 0, 'progress: and left push_progress');

-- \x-friendly: no view has two columns of one name, and none of the readable ones is empty of rows
SELECT ok((SELECT count(*) FROM conveyor.services) > 0 AND (SELECT count(*) FROM conveyor.plans) > 0
          AND (SELECT count(*) FROM conveyor.pushes) > 0, 'the readable views have rows');

-- function comments for the SQL API name what they do (spot check of \df+)
SELECT alike(obj_description('conveyor.retention_run(interval,int)'::regprocedure, 'pg_proc'), 'Delete ended pushes%',
            'comments: retention_run explains itself');
SELECT alike(obj_description('conveyor.push_progress'::regclass, 'pg_class'), 'Active pushes%',
            'comments: push_progress explains itself');

-- events are not rewritten by the notify trigger: the row is as inserted
SELECT is((SELECT count(*)::int FROM conveyor.push_event WHERE push_id = :suc AND kind = 'push_succeeded'), 1,
          'the notify trigger leaves the events alone');

-- the trigger exists once, on push_event only
SELECT is((SELECT count(*)::int FROM pg_trigger WHERE tgfoid = 'conveyor._push_event_notify()'::regprocedure), 1,
          'notify: one trigger uses the function');

-- revert paused shows paused with the revert's phase
SELECT cvt.push_in('revert paused') AS rp \gset
SELECT results_eq(format($$SELECT kind, state, phase, phases FROM conveyor.push_progress WHERE push_id = %s$$, :rp),
                  $$VALUES ('revert', 'paused', 1, 1)$$, 'progress: a paused revert, phase 1 of 1');

-- the failed push shows in services as the last push
SELECT cvt.push_in('failed') AS fl \gset
SELECT results_eq(format($$SELECT last_state, last_outcome, pushed_version FROM conveyor.services WHERE name = %L$$, cvt.service_of(:fl)),
                  $$VALUES ('failed', 'good failure', NULL::text)$$, 'services: a failed last push, no version pushed');

SELECT * FROM finish();
ROLLBACK;
