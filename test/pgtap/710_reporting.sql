-- BI history: push and phase history, the weekly SLO, the latency split, DORA
-- metrics; and the retention policy, the only way push history is deleted.
-- Times are set by hand where a figure depends on them, so each expected value
-- is worked out in the comment beside it.
BEGIN;
\ir _helpers.psql
SELECT plan(35);

-- push and phase history ----------------------------------------------------------
SELECT cvt.push_in('succeeded') AS suc \gset
SELECT results_eq(format($$SELECT state, outcome, phases, phases_passed, subunits_updated, subunits_failed,
                                  duration = ended_at - started_at, duration_s = extract(epoch FROM duration)::float8
                             FROM conveyor.push_history WHERE push_id = %s$$, :suc),
                  $$VALUES ('succeeded', 'success', 2, 2, 8, 0, true, true)$$,
                  'push_history: one row per push with outcome, phases passed, subunits and duration');
SELECT cvt.push_in('running') AS run \gset
SELECT results_eq(format($$SELECT state, ended_at, outcome FROM conveyor.push_history WHERE push_id = %s$$, :run),
                  $$VALUES ('running', NULL::timestamptz, NULL::text)$$,
                  'push_history: an active push has no end yet');
SELECT results_eq(format($$SELECT phase, scope, implicit, state, targets, updated,
                                  update_time = updates_done_at - started_at, bake_time = ended_at - updates_done_at
                             FROM conveyor.phase_history WHERE push_id = %s ORDER BY phase$$, :suc),
                  $$VALUES (1, 'region=eu', false, 'succeeded', 2, 2, true, true), (2, '*', true, 'succeeded', 6, 6, true, true)$$,
                  'phase_history: one row per phase, with update and bake times');
SELECT results_eq(format($$SELECT phase, state, planned_bake, bake_time IS NOT NULL, ended_at FROM conveyor.phase_history WHERE push_id = %s$$, :run),
                  $$VALUES (1, 'running', '1 hour'::interval, true, NULL::timestamptz)$$,
                  'phase_history: a phase still baking (a phase not planned yet has no row)');

-- SLO per week ----------------------------------------------------------------------
-- In the week of Monday 2001-01-01: a success, two good failures, a bad failure.
SELECT cvt.push_in('failed') AS gf \gset
SELECT cvt.push_in('cancelled') AS cn \gset
SELECT cvt.service(plan => 'cvt_quick', retry_limit => 0) AS broken \gset
SELECT conveyor.push_start(:'broken', 'v2') AS bf \gset
SELECT conveyor.sim_fleet_drop(:'broken') \gset
SELECT is(cvt.drive(:bf), 'failed', 'slo setup: a push type that keeps failing');
SELECT is((SELECT outcome FROM conveyor.push WHERE id = :bf), 'bad failure', 'slo setup: is a bad failure');
UPDATE conveyor.push SET ended_at = '2001-01-03 12:00+00' WHERE id IN (:suc, :gf, :cn, :bf);
SELECT results_eq($$SELECT pushes, success, good_failure, bad_failure, good_share, target, met
                     FROM conveyor.slo_weekly WHERE week = '2001-01-01'$$,
                  $$VALUES (4::bigint, 1::bigint, 2::bigint, 1::bigint, 0.75000, 0.999, false)$$,
                  'slo_weekly: 3 of 4 ended well: 0.75, under the 99.9% target');
UPDATE conveyor.push SET ended_at = '2001-01-10 12:00+00' WHERE id = :bf;
SELECT results_eq($$SELECT week, pushes, good_share, met FROM conveyor.slo_weekly WHERE week < '2002-01-01' ORDER BY week$$,
                  $$VALUES ('2001-01-01'::date, 3::bigint, 1.00000, true), ('2001-01-08'::date, 1::bigint, 0.00000, false)$$,
                  'slo_weekly: weeks by end time; a week without bad failures meets the target');
SELECT is((SELECT count(*)::int FROM conveyor.slo_weekly s WHERE s.pushes <> s.success + s.good_failure + s.bad_failure), 0,
          'slo_weekly: every ended push has exactly one outcome class');

-- latency split -------------------------------------------------------------------
-- A push from 10:00:00 to 10:01:40 (100 s) with two timed sub-steps:
--   A: due 10:00:10, started 10:00:11, events at :14 (push_type 1000 ms) and :15 (2000 ms)
--   B: due 10:00:50, started 10:00:50.5, an event at :52 (500 ms)
-- and paused from 10:01:00 to 10:01:20.
--   queue_wait = 1 + 0.5 = 1.5 s; push_type = 2 + 0.5 = 2.5 s
--   processing = (15 - 11) + (52 - 50.5) - 2.5 = 3 s; conveyor = 4.5 s; in_plan = 100 - 2.5 - 4.5 = 93 s
SELECT cvt.service() AS lat \gset
SELECT conveyor.push_start(:'lat', 'v2') AS lp \gset
UPDATE conveyor.push SET state = 'succeeded', outcome = 'success', outcome_reason = 'by hand', next_step_at = NULL,
                         created_at = '2001-02-01 10:00:00+00', ended_at = '2001-02-01 10:01:40+00' WHERE id = :lp;
INSERT INTO conveyor.push_event (push_id, at, kind, phase, detail) VALUES
    (:lp, '2001-02-01 10:00:14+00', 'phase_started', 0, conveyor._timing('2001-02-01 10:00:10+00', '2001-02-01 10:00:11+00', 1000)),
    (:lp, '2001-02-01 10:00:15+00', 'update_batch', 0, conveyor._timing('2001-02-01 10:00:10+00', '2001-02-01 10:00:11+00', 2000)),
    (:lp, '2001-02-01 10:00:52+00', 'health_checked', 0, conveyor._timing('2001-02-01 10:00:50+00', '2001-02-01 10:00:50.5+00', 500)),
    (:lp, '2001-02-01 10:01:00+00', 'push_paused', 0, '{}'),
    (:lp, '2001-02-01 10:01:20+00', 'push_resumed', 0, '{}'),
    (:lp, '2001-02-01 10:01:40+00', 'push_succeeded', 1, '{}');
SELECT results_eq(format($$SELECT total, push_type, queue_wait, processing, conveyor, in_plan, paused, steps,
                                  total_s, push_type_s, conveyor_s, in_plan_s, conveyor_share
                             FROM conveyor.push_latency WHERE push_id = %s$$, :lp),
                  $$VALUES ('100 s'::interval, '2.5 s'::interval, '1.5 s'::interval, '3 s'::interval, '4.5 s'::interval,
                            '93 s'::interval, '20 s'::interval, 2::bigint, 100::float8, 2.5::float8, 4.5::float8, 93::float8, 0.045000)$$,
                  'push_latency: total = in_plan + push_type + conveyor (queue wait + processing), from the events'' timing');
SELECT cvt.push_in('succeeded') AS real \gset
SELECT ok((SELECT bool_and(l.push_type >= '0' AND l.queue_wait >= '0' AND l.processing >= '0' AND l.in_plan >= '0' AND l.steps > 0
                           AND l.total = l.in_plan + l.push_type + l.conveyor)
             FROM conveyor.push_latency l WHERE l.push_id = :real),
          'push_latency: a real push splits into non-negative parts that add up');
SELECT ok((SELECT l.baking >= '0' FROM conveyor.push_latency l WHERE l.push_id = :real),
          'push_latency: baking is measured');
SELECT is((SELECT count(*)::int FROM conveyor.push_latency WHERE push_id = :run), 0,
          'push_latency: only ended pushes');

-- DORA --------------------------------------------------------------------------------
-- One service, week of Monday 2001-03-05:
--   p1 v2  Mon 10:00-11:00 succeeded                    lead 1 h
--   p2 v3  Tue 10:00-10:30 cancelled (not a change, but v3 was first seen then)
--   p3 v3  Tue 12:00-13:00 failed (good failure)        failed at 13:00
--   p4 v4  Tue 14:00-15:00 succeeded                    lead 1 h; restores p3: 2 h
--   p5 v3  Wed 09:00-10:00 succeeded                    lead from Tue 10:00: 24 h
SELECT cvt.service() AS dora \gset
CREATE FUNCTION cvt.ended_push(svc text, version text, state text, outcome text, t0 timestamptz, t1 timestamptz)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_id bigint := conveyor.push_start(svc, version);
BEGIN
    UPDATE conveyor.push p SET state = $3, outcome = $4, outcome_reason = 'by hand',
                               next_step_at = NULL, created_at = t0, ended_at = t1
     WHERE p.id = v_id;
    RETURN v_id;
END $$;
SELECT cvt.ended_push(:'dora', 'v2', 'succeeded', 'success', '2001-03-05 10:00+00', '2001-03-05 11:00+00') AS d1 \gset
SELECT cvt.ended_push(:'dora', 'v3', 'cancelled', 'good failure', '2001-03-06 10:00+00', '2001-03-06 10:30+00') AS d2 \gset
SELECT cvt.ended_push(:'dora', 'v3', 'failed', 'good failure', '2001-03-06 12:00+00', '2001-03-06 13:00+00') AS d3 \gset
SELECT cvt.ended_push(:'dora', 'v4', 'succeeded', 'success', '2001-03-06 14:00+00', '2001-03-06 15:00+00') AS d4 \gset
SELECT cvt.ended_push(:'dora', 'v3', 'succeeded', 'success', '2001-03-07 09:00+00', '2001-03-07 10:00+00') AS d5 \gset
SELECT results_eq(format($$SELECT push_id, deployed, lead_time, failed, time_to_restore FROM conveyor.dora_changes
                            WHERE service = %L ORDER BY push_id$$, :'dora'),
                  format($$VALUES (%s::bigint, true, '1 hour'::interval, false, NULL::interval),
                                  (%s, false, NULL, true, '2 hours'),
                                  (%s, true, '1 hour', false, NULL),
                                  (%s, true, '24 hours', false, NULL)$$, :d1, :d3, :d4, :d5),
                  'dora_changes: cancelled pushes are no change; lead time from the version''s first push; restore by the next success');
SELECT results_eq(format($$SELECT week, changes, deployments, deployments_per_day, lead_time_median, change_failure_rate,
                                  time_to_restore_median, not_restored
                             FROM conveyor.dora_weekly WHERE service = %L$$, :'dora'),
                  $$VALUES ('2001-03-05'::date, 4::bigint, 3::bigint, 0.429, '1 hour'::interval, 0.2500, '2 hours'::interval, 0::bigint)$$,
                  'dora_weekly: 3 deployments (0.429 a day), median lead 1 h, 1 of 4 changes failed, restored in 2 h');
-- a succeeded push reverted later failed too: from the revert's start to its success
SELECT cvt.service(plan => 'cvt_quick') AS rv \gset
SELECT conveyor.push_start(:'rv', 'v2') AS r1 \gset
SELECT cvt.drive(:r1) \gset
SELECT conveyor.push_revert(:r1, 'bad after all') AS r2 \gset
SELECT cvt.drive(:r2) \gset
SELECT results_eq(format($$SELECT deployed, failed, failed_at = (SELECT created_at FROM conveyor.push WHERE id = %s),
                                  restored_at = (SELECT ended_at FROM conveyor.push WHERE id = %s)
                             FROM conveyor.dora_changes WHERE push_id = %s$$, :r2, :r2, :r1),
                  $$VALUES (true, true, true, true)$$,
                  'dora_changes: a deployment reverted later is a failed change, restored when the revert succeeds');
SELECT is((SELECT count(*)::int FROM conveyor.dora_changes WHERE push_id IN (:r2, :bf)), 0,
          'dora_changes: reverts and bad failures are not changes');

-- retention -----------------------------------------------------------------------------
-- history is deleted on purpose or not at all
SELECT throws_ok(format('DELETE FROM conveyor.push_event WHERE push_id = %s', :suc), '0A000',
                 'push history is deleted only by the retention policy', 'retention: a DELETE of events is refused');
SELECT throws_ok(format('DELETE FROM conveyor.push WHERE id = %s', :suc), '0A000', NULL,
                 'retention: deleting a push (its events cascade) is refused');
SELECT throws_ok('TRUNCATE conveyor.push_event', '0A000', NULL, 'retention: TRUNCATE of events is refused');

-- no policy: keep everything
SET client_min_messages = warning;
SELECT results_eq('SELECT pushes::int, events::int FROM conveyor.retention_run()', 'VALUES (0, 0)',
                  'retention: without a policy nothing is deleted');
RESET client_min_messages;
SELECT throws_ok($$SELECT conveyor.retention_run(keep => '1 hour')$$, '22023', NULL,
                 'retention: keeping less than a day is refused');

-- the old: a succeeded push, a failed one, a push reverted with its revert;
-- kept: an old push whose revert is recent, a recent push, and an old active push
SELECT cvt.push_in('revert succeeded') AS old_rev \gset
SELECT reverts AS old_orig FROM conveyor.push WHERE id = :old_rev \gset
SELECT cvt.push_in('revert succeeded') AS new_rev \gset
SELECT reverts AS kept_orig FROM conveyor.push WHERE id = :new_rev \gset
SELECT cvt.push_in('paused') AS old_active \gset
UPDATE conveyor.push SET created_at = '2000-01-01', ended_at = CASE WHEN ended_at IS NOT NULL THEN '2000-01-02'::timestamptz END
 WHERE id IN (:suc, :gf, :old_rev, :old_orig, :kept_orig, :old_active);
-- (older pushes of the tests above are old too, and go as well)
SELECT count(*) AS exp_pushes,
       (SELECT count(*) FROM conveyor.push_event e
         WHERE e.push_id IN (SELECT id FROM conveyor.push WHERE ended_at < now() - interval '30 days' AND id <> :kept_orig))
           AS exp_events
  FROM conveyor.push WHERE ended_at < now() - interval '30 days' AND id <> :kept_orig \gset
SELECT ok(:exp_pushes >= 4 AND :exp_events > 4 * 3, 'retention setup: old pushes with events to delete');
SELECT results_eq($$SELECT pushes, events FROM conveyor.retention_run(keep => '30 days')$$,
                  format('VALUES (%s::bigint, %s::bigint)', :exp_pushes, :exp_events),
                  'retention: deletes the old ended pushes and their events, and says how many');
SELECT is(ARRAY(SELECT id FROM conveyor.push WHERE id IN (:suc, :gf, :old_rev, :old_orig, :kept_orig, :old_active, :new_rev, :run) ORDER BY id),
          ARRAY(SELECT unnest(ARRAY[:kept_orig, :old_active, :new_rev, :run]::bigint[]) ORDER BY 1),
          'retention: keeps active pushes, recent ones, and an old push its recent revert refers to');
SELECT is((SELECT count(*)::int FROM conveyor.push_event WHERE push_id IN (:suc, :gf, :old_rev, :old_orig))
          + (SELECT count(*)::int FROM conveyor.push_phase WHERE push_id IN (:suc, :gf, :old_rev, :old_orig))
          + (SELECT count(*)::int FROM conveyor.push_subunit WHERE push_id IN (:suc, :gf, :old_rev, :old_orig)), 0,
          'retention: with their events, phases and subunits');
SELECT throws_ok(format('DELETE FROM conveyor.push_event WHERE push_id = %s', :run), '0A000', NULL,
                 'retention: after a run, deleting by hand is refused again');

-- batches: the oldest first
SELECT cvt.push_in('succeeded') AS b1 \gset
SELECT cvt.push_in('succeeded') AS b2 \gset
UPDATE conveyor.push SET ended_at = '2000-01-03' WHERE id = :b1;
UPDATE conveyor.push SET ended_at = '2000-01-04' WHERE id = :b2;
SELECT is((SELECT pushes::int FROM conveyor.retention_run(keep => '30 days', batch => 1)), 1, 'retention: a batch of one');
SELECT is(ARRAY(SELECT id FROM conveyor.push WHERE id IN (:b1, :b2)), ARRAY[:b2::bigint], 'retention: the oldest went first');

-- the policy, scheduled with pg_cron
SELECT alike(conveyor.retention_set(keep => '90 days'), 'pushes ended more than 90 days ago are deleted at "17 3 * * *"%',
             'retention_set: says what it does');
SELECT results_eq($$SELECT keep, schedule, batch FROM conveyor.retention_policy$$,
                  $$VALUES ('90 days'::interval, '17 3 * * *', 10000)$$, 'retention_set: the policy row');
SELECT results_eq($$SELECT schedule COLLATE "default", command COLLATE "default", database COLLATE "default"
                       FROM cron.job WHERE jobname = 'conveyor-retention'$$,
                  $$VALUES ('17 3 * * *', 'SELECT conveyor.retention_run()', current_database()::text COLLATE "default")$$,
                  'retention_set: a pg_cron job runs retention_run');
SELECT conveyor.retention_set(keep => '30 days', schedule => '0 * * * *') \gset
SELECT results_eq($$SELECT count(*)::int, min(schedule COLLATE "default") FROM cron.job WHERE jobname = 'conveyor-retention'$$,
                  $$VALUES (1, '0 * * * *')$$, 'retention_set: again replaces the job');
SELECT throws_ok($$SELECT conveyor.retention_set(keep => '2 hours')$$, '22023', NULL, 'retention_set: a day at least');
SELECT conveyor.retention_set(keep => NULL) \gset
SELECT results_eq($$SELECT (SELECT count(*)::int FROM conveyor.retention_policy), (SELECT count(*)::int FROM cron.job WHERE jobname = 'conveyor-retention')$$,
                  $$VALUES (0, 0)$$, 'retention_set(NULL): no policy, no job: everything is kept');

SELECT * FROM finish();
ROLLBACK;
