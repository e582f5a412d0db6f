-- plan_preview, the EXPLAIN of a push, and push-type verb checks.
\set VERBOSITY default
\set SHOW_CONTEXT never

SELECT conveyor.sim_fleet_create('preview', '{eu,us}', 2, 4, 'v1');
SELECT conveyor.sim_unit_set_size('preview', 'solo', 1, 'v1', '{"region": "ap"}');
SELECT conveyor.push_plan_create('preview', '[{"scope": "region=eu", "amount": "5%"}, {"scope": "*", "amount": "50%", "bake": "1 minute"}]');
SELECT conveyor.service_create('preview-svc', 'simulated', 'preview', '{"fleet": "preview"}');

-- per phase and unit: subunits to update and already on the version
SELECT phase, scope, amount, bake, unit, updates, already, cardinality(subunits) AS names
  FROM conveyor.plan_preview('preview-svc', 'v2');
-- some subunits already run the version: they are skipped (needs-push)
UPDATE conveyor.sim_subunit SET version = 'v2' WHERE fleet = 'preview' AND unit = 'us-1';
SELECT phase, unit, updates, already FROM conveyor.plan_preview('preview-svc', 'v2') ORDER BY phase, unit;
-- another plan; a scope matching nothing shows an empty phase
SELECT conveyor.push_plan_create('nowhere', '[{"scope": "region=mars", "amount": "50%"}]');
SELECT phase, scope, unit, updates FROM conveyor.plan_preview('preview-svc', 'v2', 'nowhere');
-- previewing starts nothing
SELECT count(*) AS pushes FROM conveyor.push WHERE service = 'preview-svc';
-- bad input
SELECT * FROM conveyor.plan_preview('no-such-service', 'v2');
SELECT * FROM conveyor.plan_preview('preview-svc', 'v2', 'no-such-plan');

-- push types: verbs must have the documented signatures
CREATE FUNCTION wrong_units(service text) RETURNS TABLE (unit text) LANGUAGE sql AS $$ SELECT 'u' $$;
SELECT conveyor.push_type_create('wrong', 'wrong_units(text)', 'conveyor.sim_send_update(text,jsonb,jsonb)');
SELECT conveyor.push_type_create('wrong', 'conveyor.sim_get_units(text,jsonb)', NULL);
SELECT conveyor.push_type_create('simulated', 'conveyor.sim_get_units(text,jsonb)', 'conveyor.sim_send_update(text,jsonb,jsonb)');
SELECT name, transport, get_units, send_update, check_health, builtin FROM conveyor.push_type ORDER BY name;

-- services: bad input refused, nothing stored
SELECT conveyor.service_create('x', 'nope', 'preview');
SELECT conveyor.service_create('x', 'simulated', 'nope');
SELECT conveyor.service_create('x', 'simulated', 'preview', failure_policy => 'panic');
SELECT conveyor.service_create('x', 'simulated', 'preview', '[1]');
SELECT conveyor.service_create('preview-svc', 'simulated', 'preview');
SELECT conveyor.service_alter('x', failure_policy => 'revert');
SELECT conveyor.service_alter('preview-svc', failure_policy => 'sometimes');
SELECT count(*) AS services FROM conveyor.service;
SELECT conveyor.push_plan_drop('preview');

DROP FUNCTION wrong_units;
DELETE FROM conveyor.service WHERE name = 'preview-svc';
SELECT conveyor.push_plan_drop('preview');
SELECT conveyor.push_plan_drop('nowhere');
SELECT conveyor.sim_fleet_drop('preview');
