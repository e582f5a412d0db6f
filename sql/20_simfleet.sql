-- The simulated fleet: a built-in push type for demos and tests. These call
-- its verbs directly (no workers involved) and avoid now()-dependent output.
\set VERBOSITY default
\set SHOW_CONTEXT never

-- Hygiene: every simulator object says what it is, and the verbs pin their search_path.
SELECT c.relname, c.relkind
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'conveyor' AND c.relname LIKE 'sim\_%' AND c.relkind IN ('r', 'v')
   AND coalesce(obj_description(c.oid, 'pg_class'), '') NOT LIKE 'simulator:%'
 ORDER BY 1;
SELECT p.proname
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'conveyor' AND (p.proname LIKE 'sim\_%' OR p.proname LIKE '\_sim\_%')
   AND (obj_description(p.oid, 'pg_proc') IS NULL
        OR NOT p.proconfig @> '{"search_path=pg_catalog, pg_temp"}')
 ORDER BY 1;
SELECT p.proname, p.provolatile, pg_get_function_result(p.oid) AS result
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'conveyor' AND p.proname IN ('sim_get_units', 'sim_send_update', 'sim_check_health')
 ORDER BY 1;

-- It is registered as the built-in push type 'simulated'.
SELECT name, transport, get_units, send_update, check_health
  FROM conveyor.push_type WHERE name = 'simulated';

-- A small fleet: 2 regions x 2 units x 3 subunits, updates instant.
SELECT conveyor.sim_fleet_create('t1', '{eu,us}', 2, 3);
SELECT * FROM conveyor.sim_get_units('svc', '{"fleet": "t1"}') ORDER BY unit, subunit;

-- The defaults: 3 regions x 2 units x 10 subunits of v1, zero-padded names.
SELECT conveyor.sim_fleet_create('defaults');
SELECT count(DISTINCT unit) AS units, count(*) AS subunits, min(subunit), max(subunit),
       string_agg(DISTINCT version, ',') AS versions, string_agg(DISTINCT status, ',') AS statuses
  FROM conveyor.sim_get_units('svc', '{"fleet": "defaults"}');
SELECT DISTINCT unit, labels FROM conveyor.sim_get_units('svc', '{"fleet": "defaults"}') ORDER BY unit;
SELECT name, update_time FROM conveyor.sim_fleet ORDER BY name;

-- send_update: accepted updates return nothing; refused ones say why.
SELECT * FROM conveyor.sim_send_update('svc', '{"fleet": "t1"}', '[
  {"unit": "eu-1", "subunit": "eu-1-01", "version": "v2", "key": "k1"},
  {"unit": "eu-1", "subunit": "eu-1-02", "version": "v2", "key": "k2"},
  {"unit": "eu-1", "subunit": "eu-1-99", "version": "v2", "key": "k3"},
  {"unit": "nope", "subunit": "nope-01", "version": "v2", "key": "k4"},
  {"unit": "eu-2", "subunit": "eu-2-01", "version": "v2"},
  {"unit": "eu-2", "subunit": "eu-2-01", "version": "v2", "key": "k5"},
  {"unit": "eu-2", "subunit": "eu-2-01", "version": "v3", "key": "k6"},
  {"unit": "eu-2", "subunit": "eu-2-01", "version": "v2", "key": "k5"},
  42
]');
SELECT * FROM conveyor.sim_get_units('svc', '{"fleet": "t1"}') WHERE unit LIKE 'eu-%' ORDER BY unit, subunit;
-- Re-sending a key is a harmless no-op, even with another version in it.
SELECT * FROM conveyor.sim_send_update('svc', '{"fleet": "t1"}',
  '[{"unit": "eu-1", "subunit": "eu-1-01", "version": "v9", "key": "k1"}]');
SELECT subunit, version, update_key FROM conveyor.sim_subunit WHERE fleet = 't1' AND unit = 'eu-1' ORDER BY subunit;
-- An empty batch is fine.
SELECT * FROM conveyor.sim_send_update('svc', '{"fleet": "t1"}', '[]');

-- update_time > 0: an update is in flight until update_done_at.
SELECT conveyor.sim_fleet_create('slow', '{eu}', 1, 2, 'v1', '1 hour');
SELECT * FROM conveyor.sim_send_update('svc', '{"fleet": "slow"}',
  '[{"unit": "eu-1", "subunit": "eu-1-01", "version": "v2", "key": "a1"}]');
SELECT unit, subunit, version, status FROM conveyor.sim_get_units('svc', '{"fleet": "slow"}') ORDER BY subunit;
SELECT subunit, version, target_version, update_done_at - now() > interval '59 minutes' AS about_an_hour_left
  FROM conveyor.sim_subunit WHERE fleet = 'slow' ORDER BY subunit;
-- re-send while in flight: no-op, the clock does not restart
UPDATE conveyor.sim_subunit SET update_done_at = now() + interval '30 minutes' WHERE fleet = 'slow' AND target_version IS NOT NULL;
SELECT * FROM conveyor.sim_send_update('svc', '{"fleet": "slow"}',
  '[{"unit": "eu-1", "subunit": "eu-1-01", "version": "v2", "key": "a1"}]');
SELECT subunit, update_done_at - now() <= interval '30 minutes' AS clock_kept FROM conveyor.sim_subunit WHERE fleet = 'slow' ORDER BY subunit;
-- simulate completion: the new version runs, status ok (settled on read)
UPDATE conveyor.sim_subunit SET update_done_at = now() - interval '1 second' WHERE fleet = 'slow' AND target_version IS NOT NULL;
SELECT unit, subunit, version, status FROM conveyor.sim_get_units('svc', '{"fleet": "slow"}') ORDER BY subunit;
-- the next update folds the finished one into version before starting
SELECT * FROM conveyor.sim_send_update('svc', '{"fleet": "slow"}',
  '[{"unit": "eu-1", "subunit": "eu-1-01", "version": "v3", "key": "a2"}]');
SELECT subunit, version, target_version, update_key FROM conveyor.sim_subunit WHERE fleet = 'slow' ORDER BY subunit;
SELECT unit, subunit, version, status FROM conveyor.sim_get_units('svc', '{"fleet": "slow"}') ORDER BY subunit;

-- Health: a unit is unhealthy while a subunit runs a version marked faulty.
SELECT * FROM conveyor.sim_check_health('svc', '{"fleet": "t1"}', '{eu-1,eu-2,us-1,nope}') ORDER BY unit;
SELECT conveyor.sim_version_set_faulty('t1', 'v2');
SELECT * FROM conveyor.sim_check_health('svc', '{"fleet": "t1"}', '{eu-1,eu-2,us-1,nope}') ORDER BY unit;
SELECT conveyor.sim_version_set_faulty('t1', 'v1');
SELECT * FROM conveyor.sim_check_health('svc', '{"fleet": "t1"}', '{eu-1,us-1}') ORDER BY unit;
SELECT conveyor.sim_version_set_faulty('t1', 'v1', false);
SELECT * FROM conveyor.sim_check_health('svc', '{"fleet": "t1"}', NULL) ORDER BY unit;
SELECT fleet, version, faulty FROM conveyor.sim_version ORDER BY fleet, version;
-- an update in flight to a faulty version does not count until it runs
SELECT conveyor.sim_version_set_faulty('slow', 'v3');
SELECT * FROM conveyor.sim_check_health('svc', '{"fleet": "slow"}', '{eu-1}');
UPDATE conveyor.sim_subunit SET update_done_at = now() - interval '1 second' WHERE fleet = 'slow' AND target_version IS NOT NULL;
SELECT * FROM conveyor.sim_check_health('svc', '{"fleet": "slow"}', '{eu-1}');

-- Unreachable: status says so, updates are refused, the version stays.
SELECT conveyor.sim_subunit_set_unreachable('t1', 'us-1', 'us-1-02');
SELECT conveyor.sim_subunit_set_unreachable('t1', 'us-2');
SELECT * FROM conveyor.sim_send_update('svc', '{"fleet": "t1"}', '[
  {"unit": "us-1", "subunit": "us-1-01", "version": "v2", "key": "u1"},
  {"unit": "us-1", "subunit": "us-1-02", "version": "v2", "key": "u2"},
  {"unit": "us-2", "subunit": "us-2-03", "version": "v2", "key": "u3"}
]');
SELECT unit, subunit, version, status FROM conveyor.sim_get_units('svc', '{"fleet": "t1"}') WHERE unit LIKE 'us-%' ORDER BY unit, subunit;
SELECT conveyor.sim_subunit_set_unreachable('t1', 'us-2', unreachable => false);
SELECT unit, subunit, status FROM conveyor.sim_get_units('svc', '{"fleet": "t1"}') WHERE unit = 'us-2' ORDER BY subunit;

-- Resize: grow at the unit's most common version, grow with a version and labels, shrink, zero, remove.
SELECT conveyor.sim_unit_set_size('t1', 'eu-1', 5);
SELECT conveyor.sim_unit_set_size('t1', 'us-1', 4, 'v7', '{"region": "us", "tier": "api"}');
SELECT * FROM conveyor.sim_get_units('svc', '{"fleet": "t1"}') WHERE unit IN ('eu-1', 'us-1') ORDER BY unit, subunit;
SELECT conveyor.sim_unit_set_size('t1', 'eu-1', 2);
SELECT conveyor.sim_unit_set_size('t1', 'eu-2', 0);
SELECT * FROM conveyor.sim_get_units('svc', '{"fleet": "t1"}') WHERE unit LIKE 'eu-%' ORDER BY unit, subunit;
SELECT * FROM conveyor.sim_check_health('svc', '{"fleet": "t1"}', '{eu-2}');
-- growing an empty unit takes the fleet's most common version, padded for its size
SELECT conveyor.sim_unit_set_size('t1', 'eu-2', 101);
SELECT count(*), min(subunit), max(subunit), string_agg(DISTINCT version, ',') AS versions
  FROM conveyor.sim_subunit WHERE fleet = 't1' AND unit = 'eu-2';
SELECT conveyor.sim_unit_set_size('t1', 'eu-2', 99);
SELECT count(*), min(subunit), max(subunit) FROM conveyor.sim_subunit WHERE fleet = 't1' AND unit = 'eu-2';
-- growing a two-digit unit past 99 keeps the old names; new numbers just get longer
SELECT conveyor.sim_unit_set_size('t1', 'eu-1', 100);
SELECT subunit FROM conveyor.sim_subunit WHERE fleet = 't1' AND unit = 'eu-1' AND subunit IN ('eu-1-01', 'eu-1-99', 'eu-1-100')
 ORDER BY subunit;
SELECT conveyor.sim_unit_set_size('t1', 'eu-1', 2);
-- a fleet made with 100 subunits a unit pads them to three digits, and so does growing it
SELECT conveyor.sim_fleet_create('wide', '{eu}', 1, 100);
SELECT conveyor.sim_unit_set_size('wide', 'eu-1', 102);
SELECT count(*), min(subunit), max(subunit) FROM conveyor.sim_subunit WHERE fleet = 'wide';
-- a new unit mid-push; labels default to {}
SELECT conveyor.sim_unit_set_size('t1', 'ap-1', 2, 'v1');
SELECT conveyor.sim_unit_set_size('t1', 'ap-2', 0);
SELECT * FROM conveyor.sim_get_units('svc', '{"fleet": "t1"}') WHERE unit LIKE 'ap-%' ORDER BY unit, subunit;
SELECT conveyor.sim_unit_remove('t1', 'ap-1');
SELECT conveyor.sim_unit_remove('t1', 'ap-2');
SELECT DISTINCT unit FROM conveyor.sim_get_units('svc', '{"fleet": "t1"}') ORDER BY unit;

-- Names are data: quotes and SQL metacharacters are stored and shown literally.
SELECT conveyor.sim_fleet_create('o''brien; drop table x', '{"x''); --", "ü \\ \"q\""}', 1, 2, 'v1''; --');
SELECT * FROM conveyor.sim_get_units('svc', '{"fleet": "o''brien; drop table x"}') ORDER BY unit, subunit;
SELECT * FROM conveyor.sim_send_update('svc', '{"fleet": "o''brien; drop table x"}',
  '[{"unit": "x''); ---1", "subunit": "x''); ---1-02", "version": "$$v2$$", "key": "''"},
    {"unit": "x''); ---1", "subunit": "%s %I", "version": "v2", "key": "k"}]');
SELECT conveyor.sim_version_set_faulty('o''brien; drop table x', '$$v2$$');
SELECT * FROM conveyor.sim_check_health('svc', '{"fleet": "o''brien; drop table x"}', NULL) ORDER BY unit;
SELECT conveyor.sim_unit_set_size('o''brien; drop table x', 'a"b''c', 1);
SELECT conveyor.sim_unit_remove('o''brien; drop table x', 'a"b''c');

-- Bad input, each with its error.
-- the verbs: missing or unknown fleet, bad updates
SELECT * FROM conveyor.sim_get_units('svc', '{}');
SELECT * FROM conveyor.sim_get_units('svc', NULL);
SELECT * FROM conveyor.sim_check_health('svc', '{"fleet": 7}', '{eu-1}');
SELECT * FROM conveyor.sim_send_update('svc', '["fleet"]', '[]');
SELECT * FROM conveyor.sim_get_units('svc', '{"fleet": "no such fleet"}');
SELECT * FROM conveyor.sim_check_health('svc', '{"fleet": "no such fleet"}', '{eu-1}');
SELECT * FROM conveyor.sim_send_update('svc', '{"fleet": "t1"}', '{"unit": "eu-1"}');
SELECT * FROM conveyor.sim_send_update('svc', '{"fleet": "t1"}', NULL);
-- sim_fleet_create
SELECT conveyor.sim_fleet_create('t1');
SELECT conveyor.sim_fleet_create(NULL);
SELECT conveyor.sim_fleet_create('  ');
SELECT conveyor.sim_fleet_create('bad', '{}');
SELECT conveyor.sim_fleet_create('bad', NULL);
SELECT conveyor.sim_fleet_create('bad', '{eu,NULL}');
SELECT conveyor.sim_fleet_create('bad', '{eu,""}');
SELECT conveyor.sim_fleet_create('bad', '{eu,us,eu}');
SELECT conveyor.sim_fleet_create('bad', '{eu}', -1);
SELECT conveyor.sim_fleet_create('bad', '{eu}', 1, -5);
SELECT conveyor.sim_fleet_create('bad', '{eu}', 1000, 1001);
SELECT conveyor.sim_fleet_create('bad', '{eu,us}', 2000000000, 2000000000);
SELECT conveyor.sim_fleet_create('bad', '{eu}', 1000001, 0);
SELECT conveyor.sim_fleet_create('bad', '{eu}', 1, 1, '');
SELECT conveyor.sim_fleet_create('bad', '{eu}', 1, 1, 'v1', '-1 second');
SELECT conveyor.sim_fleet_create('bad', '{eu}', 1, 1, 'v1', NULL);
SELECT count(*) AS nothing_half_written FROM conveyor.sim_fleet WHERE name = 'bad';
-- sim_fleet_drop
SELECT conveyor.sim_fleet_drop('no such fleet');
SELECT conveyor.sim_fleet_drop(NULL);
-- sim_unit_set_size and sim_unit_remove
SELECT conveyor.sim_unit_set_size('no such fleet', 'eu-1', 1);
SELECT conveyor.sim_unit_set_size('t1', 'eu-1', -1);
SELECT conveyor.sim_unit_set_size('t1', 'eu-1', NULL);
SELECT conveyor.sim_unit_set_size('t1', '', 1);
SELECT conveyor.sim_unit_set_size('t1', 'eu-1', 1, '');
SELECT conveyor.sim_unit_set_size('t1', 'eu-1', 1, labels => '["eu"]');
SELECT conveyor.sim_unit_set_size('t1', 'eu-1', 1000000);
SELECT conveyor.sim_fleet_create('empty', '{eu}', 1, 0);
SELECT conveyor.sim_unit_set_size('empty', 'eu-1', 3);
SELECT conveyor.sim_unit_remove('t1', 'no such unit');
SELECT conveyor.sim_unit_remove('no such fleet', 'eu-1');
-- sim_version_set_faulty
SELECT conveyor.sim_version_set_faulty('no such fleet', 'v1');
SELECT conveyor.sim_version_set_faulty('t1', NULL);
SELECT conveyor.sim_version_set_faulty('t1', 'v1', NULL);
-- sim_subunit_set_unreachable
SELECT conveyor.sim_subunit_set_unreachable('no such fleet', 'eu-1');
SELECT conveyor.sim_subunit_set_unreachable('t1', 'no such unit');
SELECT conveyor.sim_subunit_set_unreachable('t1', 'eu-1', 'eu-1-77');
SELECT conveyor.sim_subunit_set_unreachable('t1', 'eu-1', 'eu-1-01', NULL);
-- the table constraints back the functions up (terse: the failing row holds now())
\set VERBOSITY terse
INSERT INTO conveyor.sim_fleet (name, update_time) VALUES ('neg', '-1 hour');
UPDATE conveyor.sim_subunit SET target_version = 'v5' WHERE fleet = 't1' AND subunit = 'eu-1-01';
\set VERBOSITY default

-- Dropping a fleet takes its units, subunits and versions with it.
SELECT conveyor.sim_fleet_drop('t1');
SELECT conveyor.sim_fleet_drop('defaults');
SELECT conveyor.sim_fleet_drop('slow');
SELECT conveyor.sim_fleet_drop('wide');
SELECT conveyor.sim_fleet_drop('empty');
SELECT conveyor.sim_fleet_drop('o''brien; drop table x');
SELECT (SELECT count(*) FROM conveyor.sim_fleet WHERE name IN ('t1', 'slow', 'o''brien; drop table x')) AS fleets,
       (SELECT count(*) FROM conveyor.sim_unit WHERE fleet IN ('t1', 'slow', 'o''brien; drop table x')) AS units,
       (SELECT count(*) FROM conveyor.sim_subunit WHERE fleet IN ('t1', 'slow', 'o''brien; drop table x')) AS subunits,
       (SELECT count(*) FROM conveyor.sim_version WHERE fleet IN ('t1', 'slow', 'o''brien; drop table x')) AS versions;
