-- Push plans: validation before anything is stored, and the C planner's edge cases.
\set VERBOSITY default
\set SHOW_CONTEXT never

SELECT conveyor.push_plan_create('careful',
  '[{"scope": "region=eu", "amount": "5%", "bake": "10 minutes", "fault_tolerance": "2%"},
    {"scope": "region=eu,us & !tier=canary", "amount": "25%", "bake": 600},
    {"scope": "*", "amount": "50%", "bake": "5 min", "fault_tolerance": 1.5}]',
  'eu first, then the rest');
SELECT plan, position, scope, amount, bake, fault_tolerance
  FROM conveyor.push_plan_phase ORDER BY plan, position;

-- every bad plan is refused and nothing is stored
SELECT conveyor.push_plan_create('bad', '[]');
SELECT conveyor.push_plan_create('bad', '{"scope": "*"}');
SELECT conveyor.push_plan_create('bad', '[{"scope": "*", "amount": "0%"}]');
SELECT conveyor.push_plan_create('bad', '[{"scope": "*", "amount": "0"}]');
SELECT conveyor.push_plan_create('bad', '[{"scope": "*", "amount": "101%"}]');
SELECT conveyor.push_plan_create('bad', '[{"scope": "*", "amount": "lots"}]');
SELECT conveyor.push_plan_create('bad', '[{"scope": "*", "amount": "5%", "bake": "-1 minute"}]');
SELECT conveyor.push_plan_create('bad', '[{"scope": "*", "amount": "5%", "bake": "soon"}]');
SELECT conveyor.push_plan_create('bad', '[{"scope": "region==eu", "amount": "5%"}]');
SELECT conveyor.push_plan_create('bad', '[{"scope": "region=eu &", "amount": "5%"}]');
SELECT conveyor.push_plan_create('bad', '[{"scope": "", "amount": "5%"}]');
SELECT conveyor.push_plan_create('bad', '[{"scope": "*", "amount": "5%", "fault_tolerance": "101%"}]');
SELECT conveyor.push_plan_create('bad', '[{"scope": "*", "amount": "5%", "fault_tolerance": -1}]');
SELECT conveyor.push_plan_create('bad', '[{"scope": "*", "amount": "5%", "tolerance": 2}]');
SELECT conveyor.push_plan_create('bad', '[{"scope": "*"}]');
SELECT conveyor.push_plan_create('bad', '[{"scope": "*", "amount": "50%"}, {"scope": "*", "amount": "10%"}]');
SELECT conveyor.push_plan_create('', '[{"scope": "*", "amount": "50%"}]');
SELECT conveyor.push_plan_create('careful', '[{"scope": "*", "amount": "50%"}]');
SELECT count(*) AS plans, (SELECT count(*) FROM conveyor.push_plan_phase) AS phases FROM conveyor.push_plan;

-- a percentage and a count cannot be ordered, so they may follow each other
SELECT conveyor.push_plan_create('counted', '[{"scope": "*", "amount": "1"}, {"scope": "*", "amount": "10%"}, {"scope": "*", "amount": "3"}]');

-- replacing a plan's phases is validated the same way and is all or nothing
SELECT conveyor.push_plan_replace('counted', '[{"scope": "*", "amount": "0%"}]');
SELECT count(*) FROM conveyor.push_plan_phase WHERE plan = 'counted';
SELECT conveyor.push_plan_replace('counted', '[{"scope": "web-*", "amount": "2"}]');
SELECT scope, amount FROM conveyor.push_plan_phase WHERE plan = 'counted';
SELECT conveyor.push_plan_replace('nope', '[{"scope": "*", "amount": "2"}]');
SELECT conveyor.push_plan_drop('counted');
SELECT conveyor.push_plan_drop('counted');

-- The planner, through its SQL wrapper. A fleet as parallel arrays: one row per subunit.
CREATE TEMP TABLE fleet (unit text, labels jsonb, subunit text, version text);
INSERT INTO fleet
SELECT u.unit, u.labels, format('%s-%s', u.unit, lpad(i::text, 2, '0')), 'v1'
  FROM (VALUES ('eu-1', '{"region": "eu", "tier": "web"}'::jsonb, 20),
               ('eu-2', '{"region": "eu", "tier": "canary"}', 4),
               ('us-1', '{"region": "us", "tier": "web"}', 10),
               ('solo', '{"region": "ap"}', 1)) u(unit, labels, n),
       generate_series(1, u.n) i;
CREATE FUNCTION plan_counts(scopes text[], amounts text[], start_phase int DEFAULT 0, seed bigint DEFAULT 1)
RETURNS TABLE (phase int, unit text, n bigint) LANGUAGE sql AS $$
  SELECT x.phase + 1, x.unit, count(*)
    FROM conveyor._plan_targets((SELECT array_agg(unit) FROM fleet), (SELECT array_agg(labels) FROM fleet),
                                (SELECT array_agg(subunit) FROM fleet), (SELECT array_agg(version) FROM fleet),
                                scopes, amounts, start_phase, 'v2', seed) x
   GROUP BY 1, 2 ORDER BY 1, 2 $$;

-- label scope, then cumulative amounts, then completion; a 1-subunit unit at 5% gets 1
SELECT * FROM plan_counts('{region=eu,*,*}', '{5%,50%,100%}');
-- a scope matching nothing updates nothing in that phase
SELECT * FROM plan_counts('{region=mars,*}', '{50%,100%}');
-- globs, negation, alternatives
SELECT * FROM plan_counts('{"eu-* & !tier=canary","region=us | name=solo",*}', '{10%,100%,100%}');
-- absolute counts, capped at the unit's size
SELECT * FROM plan_counts('{*,*}', '{3,100%}');
-- a unit in scope in phase 1 keeps its amount in phase 2 (cumulative, never shrinks)
SELECT * FROM plan_counts('{region=eu,region=us,*}', '{50%,50%,100%}');
-- re-planning from phase 2 after phase 1 landed picks only what is left
UPDATE fleet f SET version = 'v2'
  FROM conveyor._plan_targets((SELECT array_agg(unit) FROM fleet), (SELECT array_agg(labels) FROM fleet),
                              (SELECT array_agg(subunit) FROM fleet), (SELECT array_agg(version) FROM fleet),
                              '{region=eu}', '{50%}', 0, 'v2', 7) x
 WHERE f.unit = x.unit AND f.subunit = x.subunit;
SELECT version, count(*) FROM fleet GROUP BY 1 ORDER BY 1;
SELECT * FROM plan_counts('{region=eu,*}', '{50%,100%}', 1, 7);
-- deterministic: the same seed picks the same subunits; another seed others
SELECT (SELECT array_agg(subunit ORDER BY subunit) FROM conveyor._plan_targets(
          (SELECT array_agg(unit) FROM fleet), (SELECT array_agg(labels) FROM fleet),
          (SELECT array_agg(subunit) FROM fleet), (SELECT array_agg(version) FROM fleet),
          '{*}', '{25%}', 0, 'v3', 42))
     = (SELECT array_agg(subunit ORDER BY subunit) FROM conveyor._plan_targets(
          (SELECT array_agg(unit ORDER BY subunit DESC) FROM fleet), (SELECT array_agg(labels ORDER BY subunit DESC) FROM fleet),
          (SELECT array_agg(subunit ORDER BY subunit DESC) FROM fleet), (SELECT array_agg(version ORDER BY subunit DESC) FROM fleet),
          '{*}', '{25%}', 0, 'v3', 42)) AS same_seed_same_choice;
-- versions already deployed everywhere: nothing to do
UPDATE fleet SET version = 'v2';
SELECT count(*) AS targets FROM plan_counts('{*}', '{100%}');
-- no units at all
SELECT count(*) AS targets FROM conveyor._plan_targets('{}', '{}', '{}', '{}', '{*}', '{100%}', 0, 'v2', 1);
-- a unit without subunits
SELECT count(*) AS targets FROM conveyor._plan_targets('{empty}', '{"{}"}', '{NULL}', '{NULL}', '{*}', '{100%}', 0, 'v2', 1);
-- bad planner input
SELECT * FROM conveyor._plan_targets('{a}', '{}', '{a1}', '{v1}', '{*}', '{100%}', 0, 'v2', 1);
SELECT * FROM conveyor._plan_targets('{a}', '{"{}"}', '{a1}', '{v1}', '{*}', '{100%}', 5, 'v2', 1);
DROP FUNCTION plan_counts;
DROP TABLE fleet;
