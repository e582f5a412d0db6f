-- Units and subunits that appear, disappear or resize between phases: the
-- planner re-reads the fleet every phase, new units are updated by later
-- phases, vanished subunits are "gone" rather than failed, and the completion
-- phase leaves nothing half-pushed.
BEGIN;
\ir _helpers.psql
SELECT plan(12);

-- eu-1 and us-1 with 4 subunits each; phase 1 (eu 50%) bakes an hour
SELECT cvt.service(plan => 'cvt_hold', update_time => '0') AS svc \gset
SELECT conveyor.push_start(:'svc', 'v2') AS p \gset
SELECT is(cvt.drive(:p), 'running', 'phase 1 updated and is baking');
SELECT is((SELECT targets FROM conveyor.push_phase WHERE push_id = :p AND position = 0), 2,
          'phase 1 targeted half of eu-1');

-- mid-push: a new unit appears, us-1 disappears, eu-1 grows
SELECT conveyor.sim_unit_set_size(:'svc', 'ap-1', 3, 'v1', '{"region": "ap"}');
SELECT conveyor.sim_unit_remove(:'svc', 'us-1');
SELECT conveyor.sim_unit_set_size(:'svc', 'eu-1', 6);
SELECT cvt.elapse(:p);
SELECT is(cvt.drive(:p), 'succeeded', 'the push finishes after the fleet changed');
SELECT is((SELECT targets FROM conveyor.push_phase WHERE push_id = :p AND position = 1), 7,
          'the completion phase targets the new unit and the grown unit''s rest (3 + 4)');
SELECT is(cvt.versions(:p), '{"v2": 9}'::jsonb, 'every subunit that exists now runs v2');
SELECT is((SELECT count(*)::int FROM conveyor.push_subunit WHERE push_id = :p AND unit = 'us-1'), 0,
          'the vanished unit was never targeted');

-- a subunit vanishing while its update is in flight is gone, not failed
SELECT cvt.service(plan => 'cvt_quick', update_time => '1 hour') AS svc2 \gset
SELECT conveyor.push_start(:'svc2', 'v2') AS p2 \gset
SELECT is(cvt.drive(:p2), 'running', 'updates in flight');
SELECT is((SELECT step FROM conveyor.push WHERE id = :p2), 'confirm', 'the push waits to confirm them');
SELECT conveyor.sim_unit_set_size(:'svc2', 'eu-1', 3);     -- drops eu-1-04
UPDATE conveyor.sim_subunit SET update_done_at = clock_timestamp() - interval '1 second'
 WHERE fleet = :'svc2' AND target_version IS NOT NULL;
UPDATE conveyor.push SET next_step_at = clock_timestamp() WHERE id = :p2;
SELECT cvt.drive(:p2, 1);
SELECT is((SELECT gone FROM conveyor.push_phase WHERE push_id = :p2 AND position = 0) +
          (SELECT updated FROM conveyor.push_phase WHERE push_id = :p2 AND position = 0), 2,
          'phase 1''s two targets are confirmed or gone');
SELECT is((SELECT failed FROM conveyor.push_phase WHERE push_id = :p2 AND position = 0), 0,
          'a vanished subunit is not a failed update');
SELECT ok((SELECT count(*) FROM conveyor.push_event WHERE push_id = :p2 AND kind = 'updates_confirmed') = 1,
          'the phase was judged once');

-- a unit with no subunits left is simply skipped
SELECT conveyor.sim_unit_set_size(:'svc2', 'us-1', 0);
UPDATE conveyor.sim_subunit SET update_done_at = clock_timestamp() - interval '1 second'
 WHERE fleet = :'svc2' AND target_version IS NOT NULL;
UPDATE conveyor.push SET next_step_at = clock_timestamp() WHERE id = :p2;
SELECT cvt.drive(:p2, 40);
UPDATE conveyor.sim_subunit SET update_done_at = clock_timestamp() - interval '1 second'
 WHERE fleet = :'svc2' AND target_version IS NOT NULL;
UPDATE conveyor.push SET next_step_at = clock_timestamp() WHERE id = :p2;
SELECT is(cvt.drive(:p2, 40), 'succeeded', 'the push succeeds with an empty unit');

SELECT * FROM finish();
ROLLBACK;
