-- How a step plans its statements (300_engine.sql, _step_plans): generic
-- plans for a small fleet, custom plans above 100 subunits, never leaking into the
-- caller's session; and pushes on either side of the line, with batches larger
-- than the line, finish with every subunit on the version.
BEGIN;
\ir _helpers.psql
SELECT plan(12);

SELECT conveyor.push_plan_create('cvt_half', '[{"scope": "*", "amount": "50%"}]') \gset


-- the rule
SELECT is(conveyor._step_plans(0), 'force_generic_plan', 'no subunits: generic plans');
SELECT is(conveyor._step_plans(100), 'force_generic_plan', '100 subunits: generic plans');
SELECT is(conveyor._step_plans(101), 'force_custom_plan', '101 subunits: custom plans (they see the arrays'' sizes; auto would turn generic after five runs)');
SELECT is(conveyor._step_plans(NULL), 'force_custom_plan', 'unknown size: custom plans');
RESET plan_cache_mode;

-- a small fleet (8 subunits) and a large one (2 units x 150), each pushed in
-- whole batches; the session's own setting is left as it was
SET plan_cache_mode = force_custom_plan;
SELECT cvt.service('cvt_half', subunits => 4) AS small \gset
SELECT cvt.service('cvt_half', subunits => 150, max_in_flight => 1000) AS big \gset
SELECT conveyor.push_start(:'small', 'v2') AS p_small \gset
SELECT conveyor.push_start(:'big', 'v2') AS p_big \gset

SELECT is(cvt.drive(:p_small), 'succeeded', 'a push on 8 subunits succeeds');
SELECT is(current_setting('plan_cache_mode'), 'force_custom_plan', 'the step left the session''s plan_cache_mode alone');
SELECT is(cvt.versions(:p_small), '{"v2": 8}', 'every subunit of the small fleet runs v2');

SELECT is(cvt.drive(:p_big), 'succeeded', 'a push on 300 subunits succeeds');
SELECT is(current_setting('plan_cache_mode'), 'force_custom_plan', 'so did the step on the large fleet');
SELECT is(cvt.versions(:p_big), '{"v2": 300}', 'every subunit of the large fleet runs v2');
SELECT is((SELECT jsonb_agg(e.detail->'sent' ORDER BY e.id) || jsonb_agg(e.detail->'done' ORDER BY e.id)
             FROM conveyor.push_event e WHERE e.push_id = :p_big AND e.kind = 'update_batch'),
          '[0, 0, 150, 150]', 'each phase sent its 150 updates in one batch, every answer recorded as done');
SELECT is((SELECT count(*)::int FROM conveyor.push_subunit WHERE push_id = :p_big AND state = 'done'), 300,
          'and each of the 300 targets is done');
RESET plan_cache_mode;

SELECT * FROM finish();
ROLLBACK;
