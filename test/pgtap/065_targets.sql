-- A fleet or endpoint belongs to one owner's services: a team cannot point a
-- service of its own at another team's units and push its code there.
BEGIN;
\ir _helpers.psql
SELECT plan(9);

CREATE ROLE cvt_team_x; CREATE ROLE cvt_team_y;
CREATE ROLE cvt_xavier IN ROLE cvt_team_x; CREATE ROLE cvt_yara IN ROLE cvt_team_y;
SELECT conveyor.sim_fleet_create('cvt_fleet_x', '{eu}', 1, 2);
SELECT conveyor.sim_fleet_create('cvt_fleet_y', '{eu}', 1, 2);
SELECT conveyor.push_plan_create('cvt_one', '[{"scope": "*", "amount": "50%"}]');
SELECT conveyor.service_create('cvt_x', 'simulated', 'cvt_one', '{"fleet": "cvt_fleet_x"}', owner => 'cvt_team_x');
SELECT conveyor.service_create('cvt_y', 'simulated', 'cvt_one', '{"fleet": "cvt_fleet_y"}', owner => 'cvt_team_y');

SELECT is(conveyor._push_targets('{"fleet": "f", "url": "http://a", "endpoints": ["http://b", "http://c"]}'),
          '{f,http://a,http://b,http://c}', 'the targets of a config: fleet, url and endpoints');
SELECT is(conveyor._push_targets('{"other": 1}'), '{}', 'a config without targets has none');

SET SESSION AUTHORIZATION cvt_yara;
SELECT throws_like($$SELECT conveyor.service_create('cvt_y2', 'simulated', 'cvt_one', '{"fleet": "cvt_fleet_x"}')$$,
    '%would reach the units of service "cvt_x"%', 'another team''s fleet is refused at service_create');
SELECT throws_ok($$SELECT conveyor.service_create('cvt_y3', 'simulated', 'cvt_one', '{"fleet": "cvt_fleet_x", "x": 1}')$$,
    '42501', NULL, 'extra keys do not get around it');
SELECT throws_ok($$SELECT conveyor.service_alter('cvt_y', push_type_config => '{"fleet": "cvt_fleet_x"}')$$,
    '42501', NULL, 'nor does service_alter');
SELECT lives_ok($$SELECT conveyor.service_create('cvt_y4', 'simulated', 'cvt_one', '{"fleet": "cvt_fleet_y"}', owner => 'cvt_team_y')$$,
    'a second service of the same team may share its own fleet');
RESET SESSION AUTHORIZATION;

SELECT throws_ok($$SELECT conveyor.service_alter('cvt_y', owner => 'cvt_team_x')$$,
    '42501', NULL, 'handing one of two services on a fleet to another team is refused');
SELECT is((SELECT owner::text FROM conveyor.service WHERE name = 'cvt_y'), 'cvt_team_y', 'and nothing changed');
SELECT is((SELECT count(*)::int FROM conveyor.service WHERE push_type_config->>'fleet' = 'cvt_fleet_x'), 1,
          'only team x''s service points at its fleet');

SELECT * FROM finish();
ROLLBACK;
