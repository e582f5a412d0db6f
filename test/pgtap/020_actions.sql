-- Push actions: every action in every push state. An allowed action changes
-- the state as it should and records who did it and why; a refused one raises
-- 55000 (object_not_in_prerequisite_state) and changes nothing.
BEGIN;
\ir _helpers.psql
SELECT plan(269);

-- What each action does in each state: the state it leaves the push in, or
-- NULL when it must be refused. Revert pushes neither check health nor bake,
-- so skipping either makes no sense for them; nor can they be skipped past or
-- reverted themselves.
CREATE TABLE cvt.expect (state text, action text, after text, event text,
                         n int GENERATED ALWAYS AS IDENTITY);
INSERT INTO cvt.expect (state, action, after, event) VALUES
    ('running',          'push_pause',             'paused',    'push_paused'),
    ('running',          'push_resume',            NULL,        NULL),
    ('running',          'push_cancel',            'cancelled', 'push_cancelled'),
    ('running',          'push_revert',            'reverted',  'push_reverted'),
    ('running',          'push_skip_phase',        'running',   'phase_skipped'),
    ('running',          'push_skip_healthchecks', 'running',   'healthchecks_skipped'),
    ('running',          'push_skip_bake',         'running',   'bake_skipped'),
    ('paused',           'push_pause',             NULL,        NULL),
    ('paused',           'push_resume',            'running',   'push_resumed'),
    ('paused',           'push_cancel',            'cancelled', 'push_cancelled'),
    ('paused',           'push_revert',            'reverted',  'push_reverted'),
    ('paused',           'push_skip_phase',        'paused',    'phase_skipped'),
    ('paused',           'push_skip_healthchecks', 'paused',    'healthchecks_skipped'),
    ('paused',           'push_skip_bake',         'paused',    'bake_skipped'),
    ('succeeded',        'push_pause',             NULL,        NULL),
    ('succeeded',        'push_resume',            NULL,        NULL),
    ('succeeded',        'push_cancel',            NULL,        NULL),
    ('succeeded',        'push_revert',            'succeeded', 'revert_requested'),
    ('succeeded',        'push_skip_phase',        NULL,        NULL),
    ('succeeded',        'push_skip_healthchecks', NULL,        NULL),
    ('succeeded',        'push_skip_bake',         NULL,        NULL),
    ('failed',           'push_pause',             NULL,        NULL),
    ('failed',           'push_resume',            NULL,        NULL),
    ('failed',           'push_cancel',            NULL,        NULL),
    ('failed',           'push_revert',            'failed',    'revert_requested'),
    ('failed',           'push_skip_phase',        NULL,        NULL),
    ('failed',           'push_skip_healthchecks', NULL,        NULL),
    ('failed',           'push_skip_bake',         NULL,        NULL),
    ('cancelled',        'push_pause',             NULL,        NULL),
    ('cancelled',        'push_resume',            NULL,        NULL),
    ('cancelled',        'push_cancel',            NULL,        NULL),
    ('cancelled',        'push_revert',            'cancelled', 'revert_requested'),
    ('cancelled',        'push_skip_phase',        NULL,        NULL),
    ('cancelled',        'push_skip_healthchecks', NULL,        NULL),
    ('cancelled',        'push_skip_bake',         NULL,        NULL),
    ('reverted',         'push_pause',             NULL,        NULL),
    ('reverted',         'push_resume',            NULL,        NULL),
    ('reverted',         'push_cancel',            NULL,        NULL),
    ('reverted',         'push_revert',            NULL,        NULL),
    ('reverted',         'push_skip_phase',        NULL,        NULL),
    ('reverted',         'push_skip_healthchecks', NULL,        NULL),
    ('reverted',         'push_skip_bake',         NULL,        NULL),
    ('revert running',   'push_pause',             'paused',    'push_paused'),
    ('revert running',   'push_resume',            NULL,        NULL),
    ('revert running',   'push_cancel',            'cancelled', 'push_cancelled'),
    ('revert running',   'push_revert',            NULL,        NULL),
    ('revert running',   'push_skip_phase',        NULL,        NULL),
    ('revert running',   'push_skip_healthchecks', NULL,        NULL),
    ('revert running',   'push_skip_bake',         NULL,        NULL),
    ('revert paused',    'push_pause',             NULL,        NULL),
    ('revert paused',    'push_resume',            'running',   'push_resumed'),
    ('revert paused',    'push_cancel',            'cancelled', 'push_cancelled'),
    ('revert paused',    'push_revert',            NULL,        NULL),
    ('revert paused',    'push_skip_phase',        NULL,        NULL),
    ('revert paused',    'push_skip_healthchecks', NULL,        NULL),
    ('revert paused',    'push_skip_bake',         NULL,        NULL),
    ('revert succeeded', 'push_pause',             NULL,        NULL),
    ('revert succeeded', 'push_resume',            NULL,        NULL),
    ('revert succeeded', 'push_cancel',            NULL,        NULL),
    ('revert succeeded', 'push_revert',            NULL,        NULL),
    ('revert succeeded', 'push_skip_phase',        NULL,        NULL),
    ('revert succeeded', 'push_skip_healthchecks', NULL,        NULL),
    ('revert succeeded', 'push_skip_bake',         NULL,        NULL);

-- Three tests per cell. Allowed: the call works, the push is in the expected
-- state, and its newest event is the action's, by session_user, with the reason.
-- Refused: 55000, the push row is unchanged, and so is everything else about it.
CREATE FUNCTION cvt.matrix() RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    x cvt.expect;
    pid bigint;
    refused_push jsonb := '{}';
    before_push jsonb;
    before_rest jsonb;
    call text;
    reason text;
    label text;
    ev conveyor.push_event;
BEGIN
    FOR x IN SELECT * FROM cvt.expect ORDER BY n LOOP
        label := format('%s on a %s push', x.action, x.state);
        reason := format('matrix %s/%s', x.state, x.action);
        IF x.after IS NULL THEN
            -- refused: one push per state serves every refused action
            IF refused_push->>x.state IS NULL THEN
                refused_push := refused_push || jsonb_build_object(x.state, cvt.push_in(x.state));
            END IF;
            pid := (refused_push->>x.state)::bigint;
            call := format('SELECT conveyor.%I(%s, %L)', x.action, pid, reason);
            before_push := cvt.snap_push(pid);
            before_rest := cvt.snap_rest(pid);
            RETURN NEXT throws_ok(call, '55000', NULL, label || ': refused with 55000');
            RETURN NEXT is(cvt.snap_push(pid), before_push, label || ': push unchanged');
            RETURN NEXT is(cvt.snap_rest(pid), before_rest, label || ': phases, subunits, events unchanged');
        ELSE
            pid := cvt.push_in(x.state);
            call := format('SELECT conveyor.%I(%s, %L)', x.action, pid, reason);
            RETURN NEXT lives_ok(call, label || ': allowed');
            RETURN NEXT is(cvt.state(pid), x.after, label || ': push is then ' || x.after);
            SELECT * INTO ev FROM conveyor.push_event e WHERE e.push_id = pid ORDER BY e.id DESC LIMIT 1;
            RETURN NEXT is(jsonb_build_object('kind', ev.kind, 'actor', ev.actor,
                                              'has_reason', ev.reason LIKE '%' || reason || '%'),
                           jsonb_build_object('kind', x.event, 'actor', session_user, 'has_reason', true),
                           label || ': event ' || x.event || ' by session_user with the reason');
        END IF;
    END LOOP;
END $$;

SELECT is((SELECT count(*) FROM cvt.expect), 63::bigint, '9 push states x 7 actions');
SELECT * FROM cvt.matrix();

-- Unknown push id: 42704 for every action, nothing written ------------------
SELECT cvt.refused(format('SELECT conveyor.%I(-1, %L)', a, 'nope'), '42704', a || ' of an unknown push')
  FROM unnest('{push_pause,push_resume,push_cancel,push_revert,push_skip_phase,push_skip_healthchecks,push_skip_bake}'::text[]) WITH ORDINALITY AS x(a, i) ORDER BY i;
SELECT * FROM cvt.refused('SELECT conveyor.push_cancel(NULL)', '42704', 'push_cancel of a NULL push');

-- A refused action says clearly what and why: message, detail, and a hint in plain words
SELECT cvt.push_in('succeeded') AS p \gset
SELECT is(cvt.error_of(format('SELECT conveyor.%I(%s)', a, :p))->>'message',
          format('cannot %s push %s: it is succeeded', v, :p), a || ': the message names the action, push and state')
  FROM unnest('{push_pause,push_resume,push_cancel,push_skip_phase,push_skip_healthchecks,push_skip_bake}'::text[],
              '{pause,resume,cancel,"skip a phase of","skip healthchecks of","skip the bake of"}'::text[])
       WITH ORDINALITY AS x(a, v, i) ORDER BY i;
-- (the wording of the hint is free, but it must read as English, e.g. not "can be skip a phase ofped")
SELECT matches(cvt.error_of(format('SELECT conveyor.%I(%s)', a, :p))->>'hint',
               format('^Only a push that is %s can (?!.*ofped)(?!be skip ).+\.$', s),
               a || ': the hint says in plain words when it is possible')
  FROM unnest('{push_pause,push_resume,push_cancel,push_skip_phase,push_skip_healthchecks,push_skip_bake}'::text[],
              '{running,paused,"running or paused","running or paused","running or paused","running or paused"}'::text[])
       WITH ORDINALITY AS x(a, s, i) ORDER BY i;

-- What allowed actions do beyond the state -----------------------------------

-- pause stops the workers from taking it: no step is due; resume makes it due now
SELECT cvt.push_in('running') AS p \gset
SELECT conveyor.push_pause(:p) \gset
SELECT is((SELECT next_step_at FROM conveyor.push WHERE id = :p), NULL::timestamptz, 'a paused push has no next step');
SELECT conveyor._push_step(:p) \gset
SELECT is(cvt.state(:p), 'paused', 'stepping a paused push does nothing');
SELECT conveyor.push_resume(:p) \gset
SELECT ok((SELECT next_step_at <= clock_timestamp() FROM conveyor.push WHERE id = :p), 'a resumed push is due at once');

-- skip_bake ends the current bake; the push then moves on and succeeds
SELECT conveyor.push_skip_bake(:p, 'in a hurry') \gset
SELECT ok((SELECT bake_skipped AND bake_until <= clock_timestamp() FROM conveyor.push_phase
            WHERE push_id = :p AND position = 0), 'skip_bake marks the phase and ends its bake');
SELECT throws_ok(format('SELECT conveyor.push_skip_bake(%s)', :p), '55000', NULL,
                 'skip_bake twice in one phase: 55000');
SELECT is(cvt.drive(:p), 'succeeded', 'after skip_bake the push runs to success');

-- skip_healthchecks twice: 55000; the flag is set once
SELECT cvt.push_in('running') AS p \gset
SELECT conveyor.push_skip_healthchecks(:p, 'noisy metric') \gset
SELECT ok((SELECT skip_healthchecks FROM conveyor.push WHERE id = :p), 'skip_healthchecks sets the flag');
SELECT cvt.snap_rest(:p) AS before \gset
SELECT throws_ok(format('SELECT conveyor.push_skip_healthchecks(%s)', :p), '55000', NULL,
                 'skip_healthchecks twice: 55000');
SELECT is(cvt.snap_rest(:p), :'before'::jsonb, 'skip_healthchecks twice: no second event');

-- cancel keeps what was updated, skips what was never sent, fails the phase
SELECT cvt.service(plan => 'cvt_quick', update_time => '1 hour', max_in_flight => 1) AS svc \gset
SELECT conveyor.push_start(:'svc', 'v2') AS p \gset
SELECT is(cvt.drive(:p), 'running', 'a slow fleet: the push waits on its first update');
SELECT is((SELECT jsonb_object_agg(state, n) FROM (SELECT state, count(*) n FROM conveyor.push_subunit
             WHERE push_id = :p GROUP BY state) x),
          '{"sent": 1, "pending": 1}'::jsonb, 'one update in flight (max_in_flight 1), one pending');
SELECT conveyor.push_cancel(:p, 'wrong version') \gset
SELECT results_eq(format($$SELECT state, outcome, outcome_reason FROM conveyor.push WHERE id = %s$$, :p),
                  $$VALUES ('cancelled', 'good failure', 'cancelled by ' || (session_user::text COLLATE "default") || ': wrong version')$$,
                  'cancel: a good failure, saying who and why');
SELECT is((SELECT jsonb_object_agg(state, n) FROM (SELECT state, count(*) n FROM conveyor.push_subunit
             WHERE push_id = :p GROUP BY state) x),
          '{"sent": 1, "skipped": 1}'::jsonb, 'cancel: the update never sent is skipped');
SELECT is((SELECT state FROM conveyor.push_phase WHERE push_id = :p AND position = 0), 'failed',
          'cancel: the current phase failed');

-- revert of an active push ends it and starts a revert push at once
SELECT cvt.push_in('running') AS p \gset
SELECT conveyor.push_revert(:p, 'bad idea') AS r \gset
SELECT results_eq(format($$SELECT kind, reverts, version, state, started_by::text COLLATE "default" FROM conveyor.push WHERE id = %s$$, :r),
                  format($$VALUES ('revert', %s::bigint, 'v1', 'running', (session_user::text COLLATE "default"))$$, :p),
                  'revert: a revert push back to v1, started by session_user');
SELECT results_eq(format($$SELECT state, outcome FROM conveyor.push WHERE id = %s$$, :p),
                  $$VALUES ('reverted', 'good failure')$$, 'revert: the reverted push is a good failure');
SELECT is(cvt.drive(:r), 'succeeded', 'the revert push succeeds');
SELECT is(cvt.versions(:p), '{"v1": 8}'::jsonb, 'every subunit is back on v1');

-- Skip phase -----------------------------------------------------------------

-- mid-push: moves on to the next phase, and the completion phase updates everything
SELECT cvt.push_in('running') AS p \gset
SELECT conveyor.push_skip_phase(:p, 'enough canary') \gset
SELECT results_eq(format($$SELECT phase, step FROM conveyor.push WHERE id = %s$$, :p),
                  $$VALUES (1, 'plan')$$, 'skip_phase: on to the next phase');
SELECT results_eq(format($$SELECT position, state FROM conveyor.push_phase WHERE push_id = %s ORDER BY position$$, :p),
                  $$VALUES (0, 'skipped'), (1, 'pending')$$, 'skip_phase: the phase is skipped');
-- the completion phase (scope *, 100%) is the last: it cannot be skipped, running or paused
SELECT cvt.snap_push(:p) AS before \gset
SELECT throws_ok(format('SELECT conveyor.push_skip_phase(%s)', :p), '55000', NULL,
                 'skip_phase of the completion phase: 55000');
SELECT is(cvt.snap_push(:p), :'before'::jsonb, 'skip_phase of the completion phase: push unchanged');
SELECT conveyor.push_pause(:p) \gset
SELECT throws_ok(format('SELECT conveyor.push_skip_phase(%s)', :p), '55000', NULL,
                 'skip_phase of the completion phase of a paused push: 55000');
SELECT conveyor.push_resume(:p) \gset
SELECT is(cvt.drive(:p), 'succeeded', 'after a skipped phase the push succeeds');
SELECT is(cvt.versions(:p), '{"v2": 8}'::jsonb, 'the completion phase updated every subunit');
SELECT results_eq(format($$SELECT position, state FROM conveyor.push_phase WHERE push_id = %s ORDER BY position$$, :p),
                  $$VALUES (0, 'skipped'), (1, 'succeeded')$$, 'phase 1 skipped, completion phase succeeded');

-- skipping a phase before its updates were sent: they are left to the next phase
SELECT cvt.service(plan => 'cvt_hold', max_in_flight => 1, update_time => '1 hour') AS svc \gset
SELECT conveyor.push_start(:'svc', 'v2') AS p \gset
SELECT is(cvt.drive(:p), 'running', 'slow fleet: waiting on the first update of phase 1');
SELECT conveyor.push_skip_phase(:p) \gset
SELECT is((SELECT jsonb_object_agg(state, n) FROM (SELECT state, count(*) n FROM conveyor.push_subunit
             WHERE push_id = :p GROUP BY state) x),
          '{"sent": 1, "skipped": 1}'::jsonb, 'skip_phase: the unsent update is skipped, the sent one stays');
UPDATE conveyor.sim_subunit SET update_done_at = now() - interval '1 second'
 WHERE fleet = :'svc' AND target_version IS NOT NULL;
SELECT conveyor._push_step(:p) \gset
SELECT is((SELECT count(*) FROM conveyor.push_subunit WHERE push_id = :p AND phase = 0 AND state = 'done'),
          1::bigint, 'the update sent before the skip landed and counts as done');
SELECT is((SELECT count(*) FROM conveyor.push_subunit WHERE push_id = :p AND phase = 1), 7::bigint,
          'the completion phase targets the other 7 subunits, the skipped one among them');

-- One active push per service ------------------------------------------------
SELECT cvt.service(plan => 'cvt_hold') AS svc \gset
SELECT conveyor.push_start(:'svc', 'v2') AS p \gset
SELECT * FROM cvt.refused(format('SELECT conveyor.push_start(%L, %L)', :'svc', 'v3'), '55000',
                          'a second push while one runs');
SELECT conveyor.push_pause(:p) \gset
SELECT * FROM cvt.refused(format('SELECT conveyor.push_start(%L, %L)', :'svc', 'v3'), '55000',
                          'a second push while one is paused');
SELECT conveyor.push_cancel(:p) \gset
SELECT lives_ok(format('SELECT conveyor.push_start(%L, %L)', :'svc', 'v3'), 'after it ended a new push starts');
SELECT is((SELECT count(*) FROM conveyor.push WHERE service = :'svc' AND state IN ('running', 'paused')),
          1::bigint, 'one active push');
-- a running revert push is the active push too
SELECT cvt.push_in('revert running') AS r \gset
SELECT * FROM cvt.refused(format('SELECT conveyor.push_start(%L, %L)', cvt.service_of(:r), 'v3'), '55000',
                          'a push while a revert runs');

-- Revert only the latest push ------------------------------------------------
SELECT cvt.service(plan => 'cvt_quick') AS svc \gset
SELECT conveyor.push_start(:'svc', 'v2') AS a \gset
SELECT is(cvt.drive(:a), 'succeeded', 'push A succeeded');
SELECT conveyor.push_start(:'svc', 'v3') AS b \gset
SELECT is(cvt.drive(:b), 'succeeded', 'push B succeeded');
SELECT cvt.snap_push(:a) AS before \gset
SELECT * FROM cvt.refused(format('SELECT conveyor.push_revert(%s)', :a), '55000', 'revert of an older push');
SELECT is(cvt.snap_push(:a), :'before'::jsonb, 'revert of an older push: push unchanged');
SELECT conveyor.push_revert(:b, 'v3 is slow') AS r \gset
SELECT results_eq(format($$SELECT kind, reverts, version FROM conveyor.push WHERE id = %s$$, :r),
                  format($$VALUES ('revert', %s::bigint, 'v2')$$, :b), 'revert of the latest push: back to v2');
SELECT results_eq(format($$SELECT kind, actor::text COLLATE "default", reason FROM conveyor.push_event WHERE push_id = %s ORDER BY id DESC LIMIT 1$$, :b),
                  $$VALUES ('revert_requested', (session_user::text COLLATE "default"), 'reverted by ' || (session_user::text COLLATE "default") || ': v3 is slow')$$,
                  'the reverted push records who asked for the revert and why');
SELECT is(cvt.drive(:r), 'succeeded', 'the revert push succeeds');
SELECT is(cvt.versions(:r), '{"v2": 8}'::jsonb, 'every subunit is back on v2');
SELECT * FROM cvt.refused(format('SELECT conveyor.push_revert(%s)', :r), '55000', 'revert of a revert push');
SELECT * FROM cvt.refused(format('SELECT conveyor.push_revert(%s)', :b), '55000',
                          'revert of a push already reverted by a later revert push');

SELECT * FROM finish();
ROLLBACK;
