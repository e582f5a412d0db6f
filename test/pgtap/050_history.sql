-- Push events are append-only, and enough to rebuild a push's timeline.
BEGIN;
\ir _helpers.psql
SELECT plan(4);

SELECT cvt.service(plan => 'cvt_quick') AS svc \gset
SELECT conveyor.push_start(:'svc', 'v2', 'for the record') AS p \gset
SELECT is(cvt.drive(:p), 'succeeded', 'a push ran');
SELECT throws_ok(format('UPDATE conveyor.push_event SET reason = %L WHERE push_id = %s', 'rewritten', :p),
                 '0A000', 'push events cannot be changed', 'events cannot be rewritten');
SELECT is((SELECT count(*)::int FROM conveyor.push_event WHERE push_id = :p AND reason = 'rewritten'), 0,
          'nothing was rewritten');
-- the timeline: every phase's start and end, in order, from events alone
SELECT is((SELECT string_agg(kind || coalesce(':' || (phase + 1), ''), ' ' ORDER BY id)
             FROM conveyor.push_event
            WHERE push_id = :p AND kind IN ('push_started', 'phase_started', 'phase_succeeded', 'push_succeeded')),
          'push_started phase_started:1 phase_succeeded:1 phase_started:2 phase_succeeded:2 push_succeeded:2',
          'the timeline rebuilds from events');

SELECT * FROM finish();
ROLLBACK;
