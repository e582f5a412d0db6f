-- Configuration input: push plans, services, push types and push_start.
-- Good input is stored as given; bad input is refused with its SQLSTATE
-- before anything is written.
BEGIN;
\ir _helpers.psql
SELECT plan(147);

-- Good plans ----------------------------------------------------------------
SELECT lives_ok($$SELECT conveyor.push_plan_create('cvt_good', '[
    {"scope": "region=eu & tier=web", "amount": "5%", "bake": "10 minutes", "fault_tolerance": "2%"},
    {"scope": "region=eu,us | web-*", "amount": "12.5%", "bake": 90, "fault_tolerance": 2.5},
    {"scope": "*", "amount": "50%"}]', 'three phases')$$,
    'a plan with three phases is created');
SELECT results_eq($$SELECT position, scope, amount, bake, fault_tolerance FROM conveyor.push_plan_phase
                     WHERE plan = 'cvt_good' ORDER BY position$$,
                  $$VALUES (0, 'region=eu & tier=web', '5%', '10 minutes'::interval, 2::numeric),
                           (1, 'region=eu,us | web-*', '12.5%', '90 seconds'::interval, 2.5),
                           (2, '*', '50%', '0'::interval, 0)$$,
                  'its phases are stored in order; a bake in seconds and a tolerance with % are understood');
SELECT is((SELECT description FROM conveyor.push_plan WHERE name = 'cvt_good'), 'three phases', 'its description is kept');
SELECT lives_ok($$SELECT conveyor.push_plan_create('cvt_counts', '[{"scope": "*", "amount": "1"}, {"scope": "*", "amount": "3"}]')$$,
                'amounts may be counts of subunits');
SELECT lives_ok($$SELECT conveyor.push_plan_create('cvt_mixed', '[{"scope": "*", "amount": "50%"}, {"scope": "*", "amount": "2"}]')$$,
                'a count may follow a percentage (they cannot be ordered)');
SELECT lives_ok($$SELECT conveyor.push_plan_create('cvt_full', '[{"scope": "*", "amount": "100%", "fault_tolerance": 100}]')$$,
                '100% and a tolerance of 100 are the upper bounds');

-- Bad plans: 22023 (invalid_parameter_value), nothing stored -----------------
SELECT cvt.refused(format('SELECT conveyor.push_plan_create(%L, %L)', 'cvt_bad' || n, phases), code, what)
  FROM (VALUES
    (1,  '[]',                                                          '22023', 'a plan with no phases'),
    (2,  NULL,                                                          '22023', 'a plan with NULL phases'),
    (3,  '{"scope": "*", "amount": "5%"}',                              '22023', 'phases that are not an array'),
    (4,  '[1]',                                                         '22023', 'a phase that is not an object'),
    (5,  '[{"scope": "*", "amount": "0"}]',                             '22023', 'amount 0'),
    (6,  '[{"scope": "*", "amount": "0%"}]',                            '22023', 'amount 0%'),
    (7,  '[{"scope": "*", "amount": "101%"}]',                          '22023', 'amount 101%'),
    (8,  '[{"scope": "*", "amount": "garbage"}]',                       '22023', 'amount garbage'),
    (9,  '[{"scope": "*", "amount": "-1"}]',                            '22023', 'amount -1'),
    (10, '[{"scope": "*", "amount": ""}]',                              '22023', 'an empty amount'),
    (11, '[{"scope": "*"}]',                                            '22023', 'a phase without an amount'),
    (12, '[{"amount": "5%"}]',                                          '22023', 'a phase without a scope'),
    (13, '[{"scope": "*", "amount": "5%", "bake": "-5 minutes"}]',      '22023', 'a negative bake'),
    (14, '[{"scope": "*", "amount": "5%", "bake": -5}]',                '22023', 'a negative bake in seconds'),
    (15, '[{"scope": "*", "amount": "5%", "bake": "a while"}]',         '22023', 'a bake that is no interval'),
    (16, '[{"scope": "region==eu", "amount": "5%"}]',                   '22023', 'scope region==eu'),
    (17, '[{"scope": "&", "amount": "5%"}]',                            '22023', 'scope &'),
    (18, '[{"scope": "", "amount": "5%"}]',                             '22023', 'an empty scope'),
    (19, '[{"scope": "region=eu |", "amount": "5%"}]',                  '22023', 'scope ending in |'),
    (20, '[{"scope": "*", "amount": "5%", "fault_tolerance": -1}]',     '22023', 'tolerance -1'),
    (21, '[{"scope": "*", "amount": "5%", "fault_tolerance": 101}]',    '22023', 'tolerance 101'),
    (22, '[{"scope": "*", "amount": "5%", "fault_tolerance": "101%"}]', '22023', 'tolerance 101%'),
    (23, '[{"scope": "*", "amount": "5%", "fault_tolerance": "x"}]',    '22023', 'tolerance x'),
    (24, '[{"scope": "*", "amount": "5%", "bakes": "1 hour"}]',         '22023', 'an unknown phase key'),
    (25, '[{"scope": "*", "amount": "50%"}, {"scope": "*", "amount": "10%"}]', '22023', 'a percentage that shrinks'),
    (26, '[{"scope": "*", "amount": "3"}, {"scope": "*", "amount": "2"}]',     '22023', 'a count that shrinks'),
    (27, '[{"scope": "*", "amount": "5%"}, {"scope": "*", "amount": "10%"}, {"scope": "!", "amount": "20%"}]',
                                                                        '22023', 'a bad third phase after two good ones'),
    -- amounts are cumulative: a percentage may not shrink even with a count between
    (28, '[{"scope": "*", "amount": "50%"}, {"scope": "*", "amount": "2"}, {"scope": "*", "amount": "10%"}]',
                                                                        '22023', 'a percentage that shrinks across a count'),
    (29, '[{"scope": "*", "amount": "5"}, {"scope": "*", "amount": "50%"}, {"scope": "*", "amount": "2"}]',
                                                                        '22023', 'a count that shrinks across a percentage'),
    (30, '[{"scope": "*", "amount": "5%", "bake": 1e300}]',             '22023', 'a bake too long for an interval')
  ) AS t(n, phases, code, what)
 ORDER BY n;
SELECT cvt.refused($$SELECT conveyor.push_plan_create('', '[{"scope": "*", "amount": "5%"}]')$$, '22023', 'an empty plan name');
SELECT cvt.refused($$SELECT conveyor.push_plan_create(NULL, '[{"scope": "*", "amount": "5%"}]')$$, '22023', 'a NULL plan name');
SELECT cvt.refused($$SELECT conveyor.push_plan_create('cvt_good', '[{"scope": "*", "amount": "5%"}]')$$, '42710', 'a plan that exists');
SELECT is((SELECT count(*) FROM conveyor.push_plan WHERE name LIKE 'cvt\_bad%'), 0::bigint, 'no bad plan was stored');

-- Replacing a plan's phases: validated the same way, the old phases stay on error
SELECT cvt.refused($$SELECT conveyor.push_plan_replace('cvt_good', '[{"scope": "*", "amount": "0%"}]')$$, '22023',
                   'replacing phases with bad ones');
SELECT cvt.refused($$SELECT conveyor.push_plan_replace('cvt_nope', '[{"scope": "*", "amount": "5%"}]')$$, '42704',
                   'replacing the phases of an unknown plan');
SELECT is((SELECT count(*) FROM conveyor.push_plan_phase WHERE plan = 'cvt_good'), 3::bigint, 'the plan keeps its 3 phases');

-- Services ------------------------------------------------------------------
SELECT conveyor.sim_fleet_create('cvt_fleet', '{eu,us}', 1, 4) \gset
SELECT lives_ok($$SELECT conveyor.service_create('cvt_svc', 'simulated', 'cvt_good', '{"fleet": "cvt_fleet"}', 'revert')$$,
                'a service is created');
SELECT results_eq($$SELECT push_type, plan, push_type_config, failure_policy, owner::text COLLATE "default",
                           retry_limit FROM conveyor.service WHERE name = 'cvt_svc'$$,
                  $$VALUES ('simulated', 'cvt_good', '{"fleet": "cvt_fleet"}'::jsonb, 'revert',
                            session_user::text COLLATE "default", 5)$$,
                  'it is stored with its settings, owned by session_user');
SELECT cvt.refused(sql, code, what)
  FROM (VALUES
    (1, $$SELECT conveyor.service_create('cvt_s', 'no_such_type', 'cvt_good')$$,              '42704', 'a service with an unknown push type'),
    (2, $$SELECT conveyor.service_create('cvt_s', 'simulated', 'no_such_plan')$$,             '42704', 'a service with an unknown plan'),
    (3, $$SELECT conveyor.service_create('cvt_s', 'simulated', 'cvt_good', '{}', 'retry')$$,  '22023', 'a service with an unknown failure policy'),
    (4, $$SELECT conveyor.service_create('cvt_s', 'simulated', 'cvt_good', '{}', NULL)$$,     '22023', 'a service with a NULL failure policy'),
    (5, $$SELECT conveyor.service_create('cvt_s', 'simulated', 'cvt_good', '[]')$$,           '22023', 'a service whose config is an array'),
    (6, $$SELECT conveyor.service_create('cvt_s', 'simulated', 'cvt_good', '"fleet"')$$,      '22023', 'a service whose config is a string'),
    (7, $$SELECT conveyor.service_create('cvt_s', 'simulated', 'cvt_good', NULL)$$,           '22023', 'a service whose config is NULL'),
    (8, $$SELECT conveyor.service_create('', 'simulated', 'cvt_good')$$,                      '22023', 'a service with an empty name'),
    (9, $$SELECT conveyor.service_create('cvt_svc', 'simulated', 'cvt_good')$$,               '42710', 'a service that exists'),
    (10, $$SELECT conveyor.service_alter('cvt_svc', failure_policy => 'retry')$$,             '22023', 'altering a service to an unknown policy'),
    (11, $$SELECT conveyor.service_alter('cvt_svc', plan => 'no_such_plan')$$,                '42704', 'altering a service to an unknown plan'),
    (12, $$SELECT conveyor.service_alter('cvt_svc', push_type_config => '[]')$$,              '22023', 'altering a service config to an array'),
    (13, $$SELECT conveyor.service_alter('cvt_nope', retry_limit => 1)$$,                     '42704', 'altering an unknown service'),
    (14, $$SELECT conveyor.push_plan_drop('cvt_good')$$,                                      '2BP01', 'dropping a plan a service uses')
  ) AS t(n, sql, code, what)
 ORDER BY n;

-- push_start ----------------------------------------------------------------
SELECT cvt.refused(sql, code, what)
  FROM (VALUES
    (1, $$SELECT conveyor.push_start('cvt_nope', 'v2')$$,                          '42704', 'a push to an unknown service'),
    (2, $$SELECT conveyor.push_start(NULL, 'v2')$$,                                '42704', 'a push to a NULL service'),
    (3, $$SELECT conveyor.push_start('cvt_svc', '')$$,                             '22023', 'a push of an empty version'),
    (4, $$SELECT conveyor.push_start('cvt_svc', NULL)$$,                           '22023', 'a push of a NULL version'),
    (5, $$SELECT conveyor.push_start('cvt_svc', repeat('v', 201))$$,               '22023', 'a push of a 201-character version'),
    (6, $$SELECT conveyor.push_start('cvt_svc', E'v2\n')$$,                        '22023', 'a push of a version with a newline'),
    (7, $$SELECT conveyor.push_start('cvt_svc', 'v2', plan => 'no_such_plan')$$,   '42704', 'a push with an unknown plan')
  ) AS t(n, sql, code, what)
 ORDER BY n;
SELECT conveyor.push_start('cvt_svc', repeat('v', 200), 'longest version') AS p \gset
SELECT is((SELECT length(version) FROM conveyor.push WHERE id = :p), 200, 'a 200-character version is fine');
SELECT results_eq(format($$SELECT position, scope, amount, implicit FROM conveyor.push_phase WHERE push_id = %s ORDER BY position$$, :p),
                  $$VALUES (0, 'region=eu & tier=web', '5%', false), (1, 'region=eu,us | web-*', '12.5%', false),
                           (2, '*', '50%', false), (3, '*', '100%', true)$$,
                  'a push copies its plan''s phases and appends the completion phase');
SELECT conveyor.push_cancel(:p) \gset
SELECT conveyor.push_start('cvt_svc', 'v2', plan => 'cvt_counts') AS p \gset
SELECT is((SELECT plan FROM conveyor.push WHERE id = :p), 'cvt_counts', 'a push may name another plan than the service''s');

-- Push types ----------------------------------------------------------------
CREATE FUNCTION cvt.units(service text, config jsonb)
RETURNS TABLE (unit text, labels jsonb, subunit text, version text, status text)
LANGUAGE sql AS $$ SELECT 'u', '{}'::jsonb, 'u-1', 'v1', 'ok' $$;
CREATE FUNCTION cvt.send(service text, config jsonb, updates jsonb)
RETURNS TABLE (unit text, subunit text, error text)
LANGUAGE sql AS $$ SELECT NULL::text, NULL::text, NULL::text WHERE false $$;
CREATE FUNCTION cvt.health(service text, config jsonb, units text[])
RETURNS TABLE (unit text, healthy boolean, reason text)
LANGUAGE sql AS $$ SELECT NULL::text, true, NULL::text WHERE false $$;
CREATE FUNCTION cvt.units_no_config(service text)
RETURNS TABLE (unit text, labels jsonb, subunit text, version text, status text)
LANGUAGE sql AS $$ SELECT 'u', '{}'::jsonb, 'u-1', 'v1', 'ok' $$;
CREATE FUNCTION cvt.units_scalar(service text, config jsonb) RETURNS text
LANGUAGE sql AS $$ SELECT 'u' $$;
CREATE FUNCTION cvt.health_text(service text, config jsonb, units text[])
RETURNS TABLE (unit text, healthy text, reason text)
LANGUAGE sql AS $$ SELECT NULL::text, 'yes', NULL::text WHERE false $$;

SELECT lives_ok($$SELECT conveyor.push_type_create('cvt_type', 'cvt.units(text,jsonb)', 'cvt.send(text,jsonb,jsonb)',
                                                  'cvt.health(text,jsonb,text[])', description => 'test')$$,
                'a push type with the right verb signatures is registered');
SELECT results_eq($$SELECT transport, get_units::text, send_update::text, check_health::text, builtin
                      FROM conveyor.push_type WHERE name = 'cvt_type'$$,
                  $$VALUES ('sql', 'cvt.units(text,jsonb)', 'cvt.send(text,jsonb,jsonb)', 'cvt.health(text,jsonb,text[])', false)$$,
                  'it is stored with its verbs, not built in');
SELECT cvt.refused(sql, code, what)
  FROM (VALUES
    (1, $$SELECT conveyor.push_type_create('cvt_t', 'cvt.send(text,jsonb,jsonb)', 'cvt.send(text,jsonb,jsonb)')$$,
        '42P13', 'get_units with the send_update signature'),
    (2, $$SELECT conveyor.push_type_create('cvt_t', 'cvt.units(text,jsonb)', 'cvt.units(text,jsonb)')$$,
        '42P13', 'send_update with the get_units signature'),
    (3, $$SELECT conveyor.push_type_create('cvt_t', 'cvt.units_no_config(text)', 'cvt.send(text,jsonb,jsonb)')$$,
        '42P13', 'get_units missing an argument'),
    (4, $$SELECT conveyor.push_type_create('cvt_t', 'cvt.units_scalar(text,jsonb)', 'cvt.send(text,jsonb,jsonb)')$$,
        '42P13', 'get_units returning a scalar'),
    (5, $$SELECT conveyor.push_type_create('cvt_t', 'cvt.units(text,jsonb)', 'cvt.send(text,jsonb,jsonb)', 'cvt.health_text(text,jsonb,text[])')$$,
        '42P13', 'check_health with a text verdict'),
    (6, $$SELECT conveyor.push_type_create('cvt_t', 'cvt.units(text,jsonb)', 'cvt.send(text,jsonb,jsonb)', needs_push => 'cvt.units(text,jsonb)')$$,
        '42P13', 'needs_push with the get_units signature'),
    (7, $$SELECT conveyor.push_type_create('cvt_t', 'cvt.units(text,jsonb)', NULL)$$,
        '22004', 'a push type without send_update'),
    (8, $$SELECT conveyor.push_type_create('', 'cvt.units(text,jsonb)', 'cvt.send(text,jsonb,jsonb)')$$,
        '22023', 'a push type with an empty name'),
    (9, $$SELECT conveyor.push_type_create('simulated', 'cvt.units(text,jsonb)', 'cvt.send(text,jsonb,jsonb)')$$,
        '42710', 'a push type that exists'),
    (10, $$SELECT conveyor.push_type_create('cvt_t', 'cvt.no_such_function(text,jsonb)', 'cvt.send(text,jsonb,jsonb)')$$,
        '42883', 'a verb that does not exist')
  ) AS t(n, sql, code, what)
 ORDER BY n;

SELECT * FROM finish();
ROLLBACK;
