-- Security (docs/security.md): teams own services, readers read, operators
-- control pushes, administrators do the rest; nothing else gets through.
--
-- Several roles act in one transaction: SET SESSION AUTHORIZATION makes a
-- test role the session user (what audit records as the actor), SET ROLE
-- narrows it further, and the RESETs come back to the superuser running the
-- file. cvt.run_as does the same inside loops, catching the error (whose
-- subtransaction rollback also undoes the switch). Everything the file makes,
-- roles included, is rolled back at the end.
--
-- The lists of API functions, relations and SECURITY DEFINER functions come
-- from the catalogs, so a new function, table or view that this file does not
-- cover makes it fail.
BEGIN;
\ir _helpers.psql
SELECT * FROM no_plan();
SET client_min_messages = warning;

-- ================================================================ roles

CREATE ROLE team_a NOLOGIN;
CREATE ROLE team_b NOLOGIN;
CREATE ROLE alice LOGIN IN ROLE team_a;
CREATE ROLE bob LOGIN IN ROLE team_b;
CREATE ROLE rita LOGIN IN ROLE conveyor_reader;     -- a BI tool: reads everything
CREATE ROLE oscar LOGIN IN ROLE conveyor_operator;  -- on call: controls any push
CREATE ROLE ada LOGIN IN ROLE conveyor_admin;       -- administrator
GRANT USAGE ON SCHEMA cvt TO PUBLIC;

SELECT is((SELECT count(*) FROM pg_roles
            WHERE rolname IN ('team_a', 'team_b', 'alice', 'bob', 'rita', 'oscar', 'ada')
              AND (rolsuper OR rolbypassrls OR rolcreaterole OR rolcreatedb)),
          0::bigint, 'the test roles are ordinary roles: no superuser, BYPASSRLS, CREATEROLE or CREATEDB');

-- ================================================================ helpers

-- Run sql as the session user who (acting as role act_as, if given; with
-- arg as parameter $1, if given): {"value": first column of the first row as
-- text} or, if it raised, {"sqlstate", "message", "detail", "hint", "context"}.
CREATE FUNCTION cvt.run_as(who text, sql text, act_as text DEFAULT NULL, arg text DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    me text := session_user;
    v text;
    st text; msg text; det text; hnt text; ctx text;
BEGIN
    BEGIN
        PERFORM set_config('session_authorization', who, true);
        IF act_as IS NOT NULL THEN
            PERFORM set_config('role', act_as, true);
        END IF;
        IF arg IS NOT NULL THEN
            EXECUTE sql INTO v USING arg;
        ELSIF sql ~* '^\s*(select|with|values|table)\M' THEN
            EXECUTE sql INTO v;
        ELSE
            EXECUTE sql;
        END IF;
        PERFORM set_config('role', 'none', true);
        PERFORM set_config('session_authorization', me, true);
        RETURN jsonb_build_object('value', v);
    EXCEPTION WHEN OTHERS THEN
        -- the block's rollback has undone the switch of role and session user
        GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL,
                                hnt = PG_EXCEPTION_HINT, ctx = PG_EXCEPTION_CONTEXT;
        RETURN jsonb_build_object('sqlstate', st, 'message', msg, 'detail', det, 'hint', hnt, 'context', ctx);
    END;
END $$;

-- Everything in schema conveyor, as the superuser sees it: each table's row
-- count and a hash of its rows, each sequence's last value. A refused call
-- leaves it exactly as it was.
CREATE FUNCTION cvt.world() RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r regclass;
    k "char";
    v text;
    w jsonb := '{}';
BEGIN
    FOR r, k IN SELECT c.oid, c.relkind FROM pg_class c
                 WHERE c.relnamespace = 'conveyor'::regnamespace AND c.relkind IN ('r', 'p', 'S')
                 ORDER BY c.relname LOOP
        IF k = 'S' THEN
            v := pg_sequence_last_value(r)::text;
        ELSE
            EXECUTE format('SELECT count(*) || '' '' || coalesce(md5(string_agg(t::text, ''|'' ORDER BY t::text)), '''') FROM %s t', r)
               INTO v;
        END IF;
        w := w || jsonb_build_object(r::text, v);
    END LOOP;
    RETURN w;
END $$;

-- The services and pushes of a team, whoever asks (row-level security does not narrow these).
CREATE FUNCTION cvt.team_services(team text) RETURNS SETOF text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT s.name FROM conveyor.service s WHERE s.owner = team::regrole
$$;
CREATE FUNCTION cvt.team_pushes(team text) RETURNS SETOF bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT p.id FROM conveyor.push p JOIN conveyor.service s ON s.name = p.service WHERE s.owner = team::regrole
$$;

-- Rows of a relation matching a condition on its rows t: as a role (NULL if
-- it may not read it), or as the superuser.
CREATE FUNCTION cvt.count_as(who text, rel regclass, cond text DEFAULT 'true') RETURNS bigint
LANGUAGE sql AS $$
    SELECT (cvt.run_as(who, format('SELECT count(*) FROM %s t WHERE %s', rel, cond))->>'value')::bigint
$$;
CREATE FUNCTION cvt.count_all(rel regclass, cond text DEFAULT 'true') RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n bigint;
BEGIN
    EXECUTE format('SELECT count(*) FROM %s t WHERE %s', rel, cond) INTO n;
    RETURN n;
END $$;

-- Advance a push as a worker would, treating a retry as due at once, until it ends or waits.
CREATE FUNCTION cvt.drive_retries(id bigint) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    st text;
BEGIN
    FOR i IN 1..10 LOOP
        st := cvt.drive(id);
        EXIT WHEN st <> 'running';
        UPDATE conveyor.push SET next_step_at = clock_timestamp() WHERE push.id = drive_retries.id;
    END LOOP;
    RETURN st;
END $$;

-- ================================================================ two teams, each with a push in flight

SELECT ok(has_schema_privilege('public', 'conveyor', 'USAGE'), 'everyone may use schema conveyor (the API and its tables)');
SELECT ok(NOT has_schema_privilege('public', 'conveyor', 'CREATE'), 'nobody but its owner may create objects in schema conveyor');

-- an administrator sets the teams up
SET SESSION AUTHORIZATION ada;
SELECT conveyor.sim_fleet_create('fleet_a', '{eu,us}', 1, 4, 'v1') \gset
SELECT conveyor.sim_fleet_create('fleet_b', '{eu,us}', 1, 4, 'v1') \gset
SELECT conveyor.sim_fleet_create('fleet_audit', '{eu,us}', 1, 4, 'v1') \gset
SELECT conveyor.push_plan_create('plan_a', '[{"scope": "region=eu", "amount": "50%", "bake": "1 hour"}]',
                                 owner => 'team_a', reason => 'setup') \gset
SELECT conveyor.push_plan_create('plan_b', '[{"scope": "region=eu", "amount": "50%", "bake": "1 hour"}]',
                                 owner => 'team_b', reason => 'setup') \gset
SELECT conveyor.service_create('svc_a', 'simulated', 'plan_a', '{"fleet": "fleet_a"}', owner => 'team_a',
                               reason => 'setup') \gset
SELECT conveyor.service_create('svc_b', 'simulated', 'plan_b', '{"fleet": "fleet_b"}', owner => 'team_b',
                               reason => 'setup') \gset
SELECT conveyor.service_create('svc_audit', 'simulated', 'plan_a', '{"fleet": "fleet_audit"}', owner => 'team_a',
                               reason => 'setup') \gset
SELECT conveyor.secret_set('cross_tok', 'not the sentinel', 'a secret to try to drop', 'setup') \gset
RESET SESSION AUTHORIZATION;

SELECT results_eq($$SELECT name, owner::text COLLATE "default" FROM conveyor.service WHERE name IN ('svc_a', 'svc_b') ORDER BY name$$,
                  $$VALUES ('svc_a', 'team_a'), ('svc_b', 'team_b')$$,
                  'an administrator created a service for each team');

-- each team starts a push; the engine runs it into its first bake
SET SESSION AUTHORIZATION alice;
SELECT conveyor.push_start('svc_a', 'v2', 'alice starts') AS push_a \gset
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION bob;
SELECT conveyor.push_start('svc_b', 'v2', 'bob starts') AS push_b \gset
RESET SESSION AUTHORIZATION;
SELECT is(cvt.drive(:push_a), 'running', 'team_a''s push is in flight');
SELECT is(cvt.drive(:push_b), 'running', 'team_b''s push is in flight');
SELECT is((SELECT count(*) FROM conveyor.push_subunit WHERE push_id IN (:push_a, :push_b) AND state = 'done'),
          4::bigint, 'both pushes updated their first subunits');

-- ================================================================ every API function refuses the other team

-- Each attempt: the function, who tries, the call, and what its error must
-- name (the service or plan and its owner; for administrators' functions,
-- conveyor_admin). A row with no call exempts a function PUBLIC may execute
-- that is no API: it must then run as its caller and write nothing.
CREATE TABLE cvt.attempt (n int GENERATED ALWAYS AS IDENTITY, fn regprocedure NOT NULL, who text,
                          call text, names text[], why text);

-- the push controls, on the other team's push in flight (a reader controls nothing)
INSERT INTO cvt.attempt (fn, who, call, names)
SELECT format('conveyor.%s(bigint,text)', a)::regprocedure, w.who,
       format('SELECT conveyor.%I(%s, %L)', a, w.push, 'cross-team'), ARRAY[w.svc, w.owner]
  FROM unnest('{push_pause,push_resume,push_cancel,push_revert,push_skip_phase,push_skip_healthchecks,push_skip_bake}'::text[])
       WITH ORDINALITY AS x(a, i),
       (VALUES ('bob', :push_a, 'svc_a', 'team_a'), ('alice', :push_b, 'svc_b', 'team_b'),
               ('rita', :push_a, 'svc_a', 'team_a')) AS w(who, push, svc, owner)
 ORDER BY x.i, w.who;

-- starting a push: the owner's members and administrators only
INSERT INTO cvt.attempt (fn, who, call, names)
SELECT 'conveyor.push_start(text,text,text,text)', w.who,
       format('SELECT conveyor.push_start(%L, %L, %L)', w.svc, 'v9', 'cross-team'), ARRAY[w.svc, w.owner]
  FROM (VALUES ('bob', 'svc_a', 'team_a'), ('alice', 'svc_b', 'team_b'), ('rita', 'svc_a', 'team_a'),
               ('oscar', 'svc_a', 'team_a')) AS w(who, svc, owner);

-- a preview shows the other team's units
INSERT INTO cvt.attempt (fn, who, call, names)
SELECT 'conveyor.plan_preview(text,text,text)', w.who,
       format('SELECT count(*) FROM conveyor.plan_preview(%L, %L)', w.svc, 'v9'), ARRAY[w.svc, w.owner]
  FROM (VALUES ('bob', 'svc_a', 'team_a'), ('alice', 'svc_b', 'team_b')) AS w(who, svc, owner);

-- services: nobody makes another team own one, alters it, or hands theirs to a team they are not in
INSERT INTO cvt.attempt (fn, who, call, names)
SELECT 'conveyor.service_create(text,text,text,jsonb,text,regrole,interval,interval,interval,integer,integer,text)', w.who,
       format('SELECT conveyor.service_create(%L, %L, %L, %L, owner => %L, reason => %L)',
              'svc_x', 'simulated', 'plan_a', '{"fleet": "fleet_a"}', w.owner, 'cross-team'),
       ARRAY['svc_x', w.owner]
  FROM (VALUES ('bob', 'team_a'), ('alice', 'team_b'), ('rita', 'team_a'), ('oscar', 'team_a')) AS w(who, owner);
INSERT INTO cvt.attempt (fn, who, call, names)
SELECT 'conveyor.service_alter(text,text,jsonb,text,interval,interval,interval,integer,integer,regrole,text)'::regprocedure, w.who,
       format('SELECT conveyor.service_alter(%L, max_in_flight => 1, reason => %L)', w.svc, 'cross-team'),
       ARRAY[w.svc, w.owner]
  FROM (VALUES ('bob', 'svc_a', 'team_a'), ('alice', 'svc_b', 'team_b'), ('rita', 'svc_a', 'team_a'),
               ('oscar', 'svc_a', 'team_a')) AS w(who, svc, owner)
UNION ALL
SELECT 'conveyor.service_alter(text,text,jsonb,text,interval,interval,interval,integer,integer,regrole,text)'::regprocedure, w.who,
       format('SELECT conveyor.service_alter(%L, owner => %L, reason => %L)', w.svc, w.owner, 'hand-over'),
       ARRAY[w.svc, w.owner]
  FROM (VALUES ('bob', 'svc_b', 'team_a'), ('alice', 'svc_a', 'team_b')) AS w(who, svc, owner);

-- push plans: made for another team, or the other team's replaced or dropped
INSERT INTO cvt.attempt (fn, who, call, names)
SELECT 'conveyor.push_plan_create(text,jsonb,text,regrole,text)', w.who,
       format('SELECT conveyor.push_plan_create(%L, %L, owner => %L, reason => %L)',
              'plan_x', '[{"scope": "*", "amount": "1"}]', w.owner, 'cross-team'),
       ARRAY['plan_x', w.owner]
  FROM (VALUES ('bob', 'team_a'), ('alice', 'team_b'), ('rita', 'team_a'), ('oscar', 'team_a')) AS w(who, owner);
INSERT INTO cvt.attempt (fn, who, call, names)
SELECT format('conveyor.%s', f)::regprocedure, w.who, format(c, w.plan), ARRAY[w.plan, w.owner]
  FROM (VALUES ('push_plan_replace(text,jsonb,text,text)',
                $$SELECT conveyor.push_plan_replace(%L, '[{"scope": "*", "amount": "1"}]', reason => 'cross-team')$$),
               ('push_plan_drop(text,text)', $$SELECT conveyor.push_plan_drop(%L, 'cross-team')$$)) AS x(f, c),
       (VALUES ('bob', 'plan_a', 'team_a'), ('alice', 'plan_b', 'team_b'), ('rita', 'plan_a', 'team_a'),
               ('oscar', 'plan_a', 'team_a')) AS w(who, plan, owner);

-- administrators only: push types and secrets
INSERT INTO cvt.attempt (fn, who, call, names)
SELECT format('conveyor.%s', f)::regprocedure, w.who, c, '{conveyor_admin}'
  FROM (VALUES ('push_type_create(text,regprocedure,regprocedure,regprocedure,regprocedure,text,text)',
                $$SELECT conveyor.push_type_create('cross', 'conveyor.sim_get_units(text,jsonb)', 'conveyor.sim_send_update(text,jsonb,jsonb)')$$),
               ('http_push_type_create(text,text,boolean,interval,interval,int,int,int,int,text[],text,text)',
                $$SELECT conveyor.http_push_type_create('cross_http')$$),
               ('secret_set(text,text,text,text)', $$SELECT conveyor.secret_set('cross_tok', 'replaced')$$),
               ('secret_drop(text,text)', $$SELECT conveyor.secret_drop('cross_tok')$$)) AS x(f, c),
       (VALUES ('alice'), ('bob'), ('rita'), ('oscar')) AS w(who);

-- not an API function: row-level security calls it as the querying role
INSERT INTO cvt.attempt (fn, why) VALUES
    ('conveyor._reads_all()', 'row-level security calls it as the reading role; it reads pg_auth_members only'),
    ('conveyor._phases_text(text[],text[],interval[],numeric[])', 'the plans view formats phases with it as the reading role; it reads no table');

-- Every function in schema conveyor that PUBLIC (or a reader or operator,
-- who are not administrators) may execute is covered above.
SELECT is(ARRAY(SELECT p.oid::regprocedure::text FROM pg_proc p
                 WHERE p.pronamespace = 'conveyor'::regnamespace
                   AND (has_function_privilege('public', p.oid, 'EXECUTE')
                        OR has_function_privilege('conveyor_operator', p.oid, 'EXECUTE'))
                EXCEPT SELECT fn::text FROM cvt.attempt ORDER BY 1),
          '{}'::text[], 'every function a non-administrator may execute has cross-team attempts in this file');
SELECT is(ARRAY(SELECT DISTINCT fn::text FROM cvt.attempt
                 WHERE NOT has_function_privilege('public', fn, 'EXECUTE') ORDER BY 1),
          '{}'::text[], 'every function tried here is executable by PUBLIC (the table is not stale)');
SELECT is(ARRAY(SELECT fn::text FROM cvt.attempt a JOIN pg_proc p ON p.oid = a.fn
                 WHERE a.call IS NULL AND (p.prosecdef OR p.provolatile = 'v') ORDER BY 1),
          '{}'::text[], 'an exempt function runs as its caller and writes nothing (not SECURITY DEFINER, not volatile)');
SELECT is(ARRAY(SELECT fn::text FROM cvt.attempt a JOIN pg_proc p ON p.oid = a.fn
                 WHERE a.call IS NOT NULL AND NOT p.prosecdef GROUP BY 1 ORDER BY 1),
          '{}'::text[], 'every API function runs as the extension''s owner (SECURITY DEFINER) and checks its caller');

-- Three tests per attempt: 42501, an error naming the object and its owner, and nothing changed.
CREATE FUNCTION cvt.attempts() RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    a cvt.attempt;
    before jsonb;
    err jsonb;
    label text;
BEGIN
    FOR a IN SELECT * FROM cvt.attempt WHERE call IS NOT NULL ORDER BY n LOOP
        label := format('%s: %s', a.who, a.call);
        before := cvt.world();
        err := cvt.run_as(a.who, a.call);
        RETURN NEXT is(err->>'sqlstate', '42501', label || ': refused with 42501');
        -- the message names the service or plan; with the detail, the owner too
        RETURN NEXT ok((a.names[1] = 'conveyor_admin' OR strpos(err->>'message', a.names[1]) > 0)
                       AND NOT EXISTS (SELECT FROM unnest(a.names) x
                                        WHERE strpos(concat_ws(' ', err->>'message', err->>'detail'), x) = 0),
                       label || ': the error names ' || array_to_string(a.names, ' and ')
                       || coalesce(' (' || (err->>'message') || ' / ' || (err->>'detail') || ')', ''));
        RETURN NEXT is(cvt.world(), before, label || ': nothing changed');
    END LOOP;
END $$;
SELECT * FROM cvt.attempts();

-- the refusal reads as documented
SELECT is(cvt.run_as('bob', format('SELECT conveyor.push_pause(%s)', :push_a)) - 'context',
          jsonb_build_object('sqlstate', '42501',
              'message', 'permission denied to control pushes of service "svc_a"',
              'detail', 'The service "svc_a" is owned by role team_a; role bob is not a member of team_a or conveyor_operator.',
              'hint', 'Act as a member of team_a (SET ROLE), or ask a member of conveyor_operator.'),
          'a refusal: message names the service, detail its owner and who was refused, hint what to do');

-- the acting role counts, never a definer's: a superuser narrowed with SET
-- ROLE, and a superuser's SECURITY DEFINER function called by bob, are bob
CREATE FUNCTION cvt.definer_pause(id bigint) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT conveyor.push_pause(id, 'through a superuser''s definer function')
$$;
SELECT cvt.world() AS before \gset
SET ROLE bob;
SELECT throws_ok(format('SELECT conveyor.push_pause(%s)', :push_a), '42501', NULL,
                 'a superuser after SET ROLE bob has bob''s rights: refused');
RESET ROLE;
SELECT is(cvt.run_as('bob', format('SELECT cvt.definer_pause(%s)', :push_a))->>'detail',
          'The service "svc_a" is owned by role team_a; role bob is not a member of team_a or conveyor_operator.',
          'bob calling a superuser''s SECURITY DEFINER function that pauses: refused as bob');
SELECT is(cvt.world(), :'before'::jsonb, 'neither changed anything');

-- internal functions are nobody's API: the engine's step, ending a push
SELECT is(cvt.run_as('bob', format('SELECT conveyor._push_step(%s)', :push_a))->>'sqlstate', '42501',
          'bob may not call conveyor._push_step');
SELECT is(cvt.run_as('bob', format($$SELECT conveyor._push_end(%s, 'failed', 'bad failure', 'bob')$$, :push_a))->>'sqlstate',
          '42501', 'bob may not call conveyor._push_end');
SELECT is(cvt.run_as('oscar', format($$SELECT conveyor._event(%s, 'push_paused', 0)$$, :push_a))->>'sqlstate',
          '42501', 'an operator may not call conveyor._event');
SELECT is(ARRAY(SELECT w.who || ': ' || f.f FROM (VALUES ('alice'), ('bob'), ('rita'), ('oscar')) w(who),
                       unnest('{"sim_fleet_create(''x'')","sim_fleet_drop(''fleet_a'')","sim_unit_set_size(''fleet_a'', ''eu-1'', 1)","sim_unit_remove(''fleet_a'', ''eu-1'')","sim_version_set_faulty(''fleet_a'', ''v2'')","sim_subunit_set_unreachable(''fleet_a'', ''eu-1'')"}'::text[]) f(f)
                 WHERE cvt.run_as(w.who, 'SELECT conveyor.' || f.f)->>'sqlstate' IS DISTINCT FROM '42501'),
          '{}'::text[], 'only administrators control the simulated fleet: everyone else gets 42501');
SELECT is(cvt.world(), :'before'::jsonb, 'nothing changed');

-- ================================================================ what each role sees

-- Every relation in schema conveyor and who sees which rows:
--   team    a team sees its own services' rows (team_rows: a condition on
--           rows t for team %L); readers, operators and administrators all
--   shared  everyone sees every row (plans, push types: shared templates;
--           the simulated fleet, a fixture administrators set up)
--   admin   administrators only
CREATE TABLE cvt.rel_rule (rel regclass PRIMARY KEY, rule text NOT NULL CHECK (rule IN ('team', 'shared', 'admin', 'reader')),
                           team_rows text CHECK ((rule = 'team') = (team_rows IS NOT NULL)));
INSERT INTO cvt.rel_rule VALUES
    ('conveyor.service',      'team',   't.name IN (SELECT cvt.team_services(%L))'),
    ('conveyor.push',         'team',   't.service IN (SELECT cvt.team_services(%L))'),
    ('conveyor.pushes',       'team',   't.service IN (SELECT cvt.team_services(%L))'),
    ('conveyor.push_phase',   'team',   't.push_id IN (SELECT cvt.team_pushes(%L))'),
    ('conveyor.push_subunit', 'team',   't.push_id IN (SELECT cvt.team_pushes(%L))'),
    ('conveyor.push_event',   'team',   't.push_id IN (SELECT cvt.team_pushes(%L))'),
    ('conveyor.config_event', 'team',   $$t.object_kind = 'service' AND t.object_name IN (SELECT cvt.team_services(%L))$$),
    ('conveyor.audit',        'team',   $$t.object_kind IN ('push', 'service') AND t.object_name IN (SELECT cvt.team_services(%L))$$),
    ('conveyor.push_type',       'shared', NULL),
    ('conveyor.http_push_type',  'shared', NULL),
    ('conveyor.push_call',       'team',   't.push_id IN (SELECT cvt.team_pushes(%L))'),
    ('conveyor.http_unit',       'team',   't.service IN (SELECT cvt.team_services(%L))'),
    ('conveyor.push_plan',       'shared', NULL),
    ('conveyor.push_plan_phase', 'shared', NULL),
    ('conveyor.sim_fleet',       'shared', NULL),
    ('conveyor.sim_unit',        'shared', NULL),
    ('conveyor.sim_subunit',     'shared', NULL),
    ('conveyor.sim_version',     'shared', NULL),
    ('conveyor.sim_subunit_now', 'shared', NULL),
    ('conveyor.secret',          'admin',  NULL),
    ('conveyor.secrets',         'admin',  NULL),
    ('conveyor.services',        'team',   't.name IN (SELECT cvt.team_services(%L))'),
    ('conveyor.plans',           'shared', NULL),
    ('conveyor.push_history',    'reader', NULL),
    ('conveyor.phase_history',   'reader', NULL),
    ('conveyor.push_progress',   'reader', NULL),
    ('conveyor.push_latency',    'reader', NULL),
    ('conveyor.slo_weekly',      'reader', NULL),
    ('conveyor.dora_changes',    'reader', NULL),
    ('conveyor.dora_weekly',     'reader', NULL),
    ('conveyor.retention_policy', 'admin', NULL);

SELECT is(ARRAY(SELECT c.oid::regclass::text FROM pg_class c
                 WHERE c.relnamespace = 'conveyor'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
                EXCEPT SELECT rel::text FROM cvt.rel_rule ORDER BY 1),
          '{}'::text[], 'every table and view in schema conveyor has a visibility rule in this file');

-- rows of each team in the http transport's tables (the pushes here are
-- simulated, so no worker makes them): written as the workers would
INSERT INTO conveyor.http_unit (service, unit, endpoint)
SELECT s.name, 'eu-1', 'http://127.0.0.1:1' FROM conveyor.service s WHERE s.owner IN ('team_a'::regrole, 'team_b'::regrole);
INSERT INTO conveyor.push_call (push_id, verb, request, request_hash)
SELECT p.id, 'get_units', '{}', md5('{}') FROM conveyor.push p
  JOIN conveyor.service s ON s.name = p.service WHERE s.owner IN ('team_a'::regrole, 'team_b'::regrole);

CREATE FUNCTION cvt.visibility() RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    r cvt.rel_rule;
    w record;
    who text;
    err jsonb;
BEGIN
    FOR r IN SELECT * FROM cvt.rel_rule ORDER BY rel::text LOOP
        IF r.rule = 'team' THEN
            FOR w IN SELECT * FROM (VALUES ('bob', 'team_b', 'team_a'), ('alice', 'team_a', 'team_b')) v(who, mine, theirs) LOOP
                RETURN NEXT ok(cvt.count_all(r.rel, format(r.team_rows, w.theirs)) > 0,
                               format('%s: %s has rows (so the next test means something)', r.rel, w.theirs));
                RETURN NEXT is(cvt.count_as(w.who, r.rel, format(r.team_rows, w.theirs)), 0::bigint,
                               format('%s: %s sees none of %s''s rows', r.rel, w.who, w.theirs));
                RETURN NEXT is(cvt.count_as(w.who, r.rel, format(r.team_rows, w.mine)),
                               cvt.count_all(r.rel, format(r.team_rows, w.mine)),
                               format('%s: %s sees every row of %s', r.rel, w.who, w.mine));
            END LOOP;
            -- a team member acting as the team sees the same
            RETURN NEXT is(cvt.run_as('alice', format('SELECT count(*) FROM %s t WHERE %s', r.rel, format(r.team_rows, 'team_b')), 'team_a')->>'value',
                           '0', format('%s: alice acting as team_a sees none of team_b''s rows', r.rel));
        END IF;
        IF r.rule IN ('team', 'shared', 'reader') THEN
            -- reader: views over the team tables (history, aggregates); readers see every row
            FOREACH who IN ARRAY CASE WHEN r.rule IN ('team', 'reader') THEN '{rita,oscar,ada}'::text[]
                                               ELSE '{alice,bob,rita,oscar,ada}'::text[] END LOOP
                RETURN NEXT is(cvt.count_as(who, r.rel), cvt.count_all(r.rel),
                               format('%s: %s sees every row', r.rel, who));
            END LOOP;
        ELSE
            FOREACH who IN ARRAY '{alice,bob,rita,oscar}'::text[] LOOP
                err := cvt.run_as(who, format('SELECT count(*) FROM %s', r.rel));
                RETURN NEXT is(err->>'sqlstate', '42501', format('%s: %s may not read it (42501)', r.rel, who));
            END LOOP;
            RETURN NEXT is(cvt.count_as('ada', r.rel), cvt.count_all(r.rel), format('%s: an administrator reads it', r.rel));
        END IF;
    END LOOP;
END $$;
SELECT * FROM cvt.visibility();

-- configuration history of secrets is for readers (it holds no value, but names them)
SELECT is(cvt.count_as(w, 'conveyor.config_event', $$t.object_kind = 'secret'$$), 0::bigint,
          w || ' sees no configuration history of secrets')
  FROM unnest('{alice,bob}'::text[]) w;
SELECT is(cvt.count_as('rita', 'conveyor.config_event', $$t.object_kind = 'secret'$$),
          cvt.count_all('conveyor.config_event', $$t.object_kind = 'secret'$$),
          'the reader sees the configuration history of secrets');

-- ================================================================ nobody writes the tables but the API

-- INSERT, UPDATE, DELETE, TRUNCATE and SELECT ... FOR UPDATE on every table:
-- 'denied' for each refused for lack of the privilege (42501, "permission
-- denied for table"; row-level security refusing the row is not enough),
-- else the SQLSTATE or 'allowed'. (The administrator does write the
-- simulator's tables.)
CREATE FUNCTION cvt.write_attempts(who text, rel regclass) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    col name;
BEGIN
    SELECT a.attname INTO col FROM pg_attribute a
     WHERE a.attrelid = rel AND a.attnum > 0 AND NOT a.attisdropped AND a.attidentity = '' AND a.attgenerated = ''
     ORDER BY a.attnum LIMIT 1;
    RETURN ARRAY(SELECT CASE WHEN e->>'sqlstate' = '42501' AND e->>'message' LIKE 'permission denied for table %' THEN 'denied'
                             ELSE coalesce(e->>'sqlstate', 'allowed') END
                   FROM unnest(ARRAY[
        format('INSERT INTO %s DEFAULT VALUES', rel),
        format('UPDATE %s SET %I = %I', rel, col, col),
        format('DELETE FROM %s', rel),
        format('TRUNCATE %s', rel),
        format('SELECT count(*) FROM (SELECT FROM %s FOR UPDATE) x', rel)]) WITH ORDINALITY s(s, i),
                        LATERAL cvt.run_as(who, s.s) e ORDER BY i);
END $$;

SELECT cvt.world() AS before \gset
SELECT is(cvt.write_attempts(w, c.oid), '{denied,denied,denied,denied,denied}',
          format('%s: %s may not insert, update, delete, truncate or lock rows', c.oid::regclass, w))
  FROM pg_class c, unnest('{alice,bob,rita,oscar,ada}'::text[]) WITH ORDINALITY AS x(w, i)
 WHERE c.relnamespace = 'conveyor'::regnamespace AND c.relkind IN ('r', 'p')
   AND NOT (w = 'ada' AND c.relname LIKE 'sim\_%')
 ORDER BY c.relname, x.i;
SELECT is(cvt.world(), :'before'::jsonb, 'no write attempt changed anything');
SELECT is(ARRAY(SELECT c.relname::text FROM pg_class c
                 WHERE c.relnamespace = 'conveyor'::regnamespace AND c.relkind = 'S'
                   AND CASE WHEN c.relkind = 'S' THEN has_sequence_privilege('public', c.oid, 'USAGE,UPDATE') END
                 ORDER BY 1),
          '{}'::text[], 'nobody may take ids from conveyor''s sequences');
SELECT is(cvt.run_as('bob', 'CREATE FUNCTION conveyor.now() RETURNS timestamptz LANGUAGE sql AS $f$SELECT now()$f$')->>'sqlstate',
          '42501', 'nobody may add objects to schema conveyor (to hijack the names its functions use)');

-- ================================================================ what each role may do

-- a team member, on the team's service: every action
SET SESSION AUTHORIZATION alice;
SELECT ok((SELECT count(*) FROM conveyor.plan_preview('svc_a', 'v3')) > 0, 'alice previews a push of svc_a');
SELECT lives_ok(format('SELECT conveyor.push_pause(%s, %L)', :push_a, 'alice pauses'), 'alice pauses team_a''s push');
SELECT is((SELECT state FROM conveyor.push WHERE id = :push_a), 'paused', 'it is paused');
SELECT lives_ok(format('SELECT conveyor.push_resume(%s, %L)', :push_a, 'alice resumes'), 'alice resumes it');
SELECT lives_ok(format('SELECT conveyor.push_skip_healthchecks(%s, %L)', :push_a, 'alice skips health'),
                'alice skips its healthchecks');
SELECT lives_ok(format('SELECT conveyor.push_skip_bake(%s, %L)', :push_a, 'alice skips the bake'), 'alice skips its bake');
SELECT lives_ok(format('SELECT conveyor.push_skip_phase(%s, %L)', :push_a, 'alice skips the phase'),
                'alice skips its phase');
SELECT results_eq(format('SELECT state, phase, skip_healthchecks FROM conveyor.push WHERE id = %s', :push_a),
                  $$VALUES ('running', 1, true)$$, 'the push runs on, in its completion phase, without healthchecks');
SELECT lives_ok(format('SELECT conveyor.push_cancel(%s, %L)', :push_a, 'alice cancels'), 'alice cancels it');
SELECT conveyor.push_start('svc_a', 'v3', 'alice again') AS push_a2 \gset
RESET SESSION AUTHORIZATION;
SELECT is(cvt.drive(:push_a2), 'running', 'alice started another push');
SET SESSION AUTHORIZATION alice;
SELECT conveyor.push_revert(:push_a2, 'alice reverts') AS revert_a \gset
SELECT results_eq(format($$SELECT kind, state, started_by::text COLLATE "default" FROM conveyor.push WHERE id = %s$$, :revert_a),
                  $$VALUES ('revert', 'running', 'alice')$$, 'alice reverted it');
SELECT lives_ok(format('SELECT conveyor.push_cancel(%s)', :revert_a), 'alice cancels the revert');
SELECT lives_ok($$SELECT conveyor.service_alter('svc_a', max_in_flight => 50, reason => 'alice tunes')$$,
                'alice alters svc_a');
SELECT lives_ok($$SELECT conveyor.push_plan_replace('plan_a', '[{"scope": "region=eu", "amount": "25%", "bake": "1 hour"}]', reason => 'alice edits')$$,
                'alice replaces team_a''s plan');
SELECT lives_ok($$SELECT conveyor.push_plan_create('plan_a2', '[{"scope": "*", "amount": "1"}]', owner => 'team_a')$$,
                'alice creates a plan for team_a');
SELECT lives_ok($$SELECT conveyor.push_plan_drop('plan_a2')$$, 'alice drops it');
SELECT lives_ok($$SELECT conveyor.service_create('svc_a2', 'simulated', 'plan_a', '{"fleet": "fleet_a"}', owner => 'team_a')$$,
                'alice creates a service for team_a');
SELECT lives_ok($$SELECT conveyor.service_create('svc_alice', 'simulated', 'plan_b', '{"fleet": "fleet_alice"}')$$,
                'alice creates a service of her own (any service may use any plan)');
SELECT results_eq($$SELECT name, owner::text COLLATE "default" FROM conveyor.service WHERE name IN ('svc_a2', 'svc_alice') ORDER BY name$$,
                  $$VALUES ('svc_a2', 'team_a'), ('svc_alice', 'alice')$$,
                  'owned by the role named, or by the acting role');
-- acting as the team after SET ROLE
SET ROLE team_a;
SELECT lives_ok($$SELECT conveyor.service_alter('svc_a', max_in_flight => 60, reason => 'as team_a')$$,
                'alice acting as team_a alters svc_a');
SELECT throws_ok($$SELECT conveyor.service_alter('svc_alice', max_in_flight => 60)$$, '42501', NULL,
                 'acting as team_a, alice may not alter her own service (SET ROLE narrows)');
RESET ROLE;
RESET SESSION AUTHORIZATION;

-- the operator: every push control on any service, nothing else
SET SESSION AUTHORIZATION oscar;
SELECT ok((SELECT count(*) FROM conveyor.plan_preview('svc_b', 'v3')) > 0, 'the operator previews a push of svc_b');
SELECT lives_ok(format('SELECT conveyor.%I(%s, %L)', a, :push_b, 'oscar: ' || a), 'the operator may ' || a || ' team_b''s push')
  FROM unnest('{push_pause,push_resume,push_skip_healthchecks,push_skip_bake,push_skip_phase,push_cancel}'::text[])
       WITH ORDINALITY AS x(a, i) ORDER BY i;
SELECT is((SELECT state FROM conveyor.push WHERE id = :push_b), 'cancelled', 'team_b''s push is cancelled');
SELECT conveyor.push_revert(:push_b, 'oscar reverts') AS revert_b \gset
SELECT lives_ok(format('SELECT conveyor.push_cancel(%s, %L)', :revert_b, 'oscar: cancel the revert'),
                'the operator reverted it, and cancels the revert');
SELECT throws_ok($$SELECT conveyor.push_start('svc_b', 'v3')$$, '42501', NULL, 'the operator may not start a push');
SELECT throws_ok($$SELECT conveyor.service_alter('svc_b', max_in_flight => 1)$$, '42501', NULL,
                 'the operator may not alter a service');
SELECT throws_ok($$SELECT conveyor.push_type_create('oscar_type', 'conveyor.sim_get_units(text,jsonb)', 'conveyor.sim_send_update(text,jsonb,jsonb)')$$,
                 '42501', NULL, 'the operator may not create push types');
SELECT throws_ok($$SELECT conveyor.push_plan_replace('plan_b', '[{"scope": "*", "amount": "1"}]')$$, '42501', NULL,
                 'the operator may not replace a team''s plan');
RESET SESSION AUTHORIZATION;

-- the administrator: everything
SET SESSION AUTHORIZATION ada;
SELECT conveyor.push_start('svc_b', 'v4', 'ada pushes') AS push_c \gset
RESET SESSION AUTHORIZATION;
SELECT is(cvt.drive(:push_c), 'running', 'the administrator started a push of svc_b');
SET SESSION AUTHORIZATION ada;
SELECT lives_ok(format('SELECT conveyor.%I(%s, %L)', a, :push_c, 'ada: ' || a), 'the administrator may ' || a)
  FROM unnest('{push_pause,push_resume,push_skip_healthchecks,push_skip_bake,push_skip_phase,push_cancel,push_revert}'::text[])
       WITH ORDINALITY AS x(a, i) ORDER BY i;
SELECT lives_ok(format('SELECT conveyor.push_cancel(id) FROM conveyor.push WHERE reverts = %s', :push_c),
                'and cancel the revert');
SELECT ok((SELECT count(*) FROM conveyor.plan_preview('svc_a', 'v5')) > 0, 'the administrator previews any service');
SELECT lives_ok($$SELECT conveyor.service_alter('svc_b', owner => 'team_a', reason => 'ada hands over')$$,
                'the administrator hands svc_b to team_a');
SELECT is((SELECT owner::text FROM conveyor.service WHERE name = 'svc_b'), 'team_a', 'svc_b is team_a''s');
SELECT lives_ok($$SELECT conveyor.service_alter('svc_b', owner => 'team_b', reason => 'ada hands back')$$,
                'and back to team_b');
SELECT lives_ok($$SELECT conveyor.service_create('svc_b2', 'simulated', 'plan_b', '{"fleet": "fleet_b"}', owner => 'team_b')$$,
                'the administrator creates a service for team_b');
SELECT lives_ok($$SELECT conveyor.push_plan_replace('plan_b', '[{"scope": "region=eu", "amount": "25%", "bake": "1 hour"}]', reason => 'ada edits')$$,
                'the administrator replaces team_b''s plan');
SELECT lives_ok($$SELECT conveyor.push_plan_create('plan_ada', '[{"scope": "*", "amount": "1"}]', owner => 'team_b')$$,
                'the administrator creates a plan for team_b');
SELECT lives_ok($$SELECT conveyor.push_plan_drop('plan_ada')$$, 'and drops it');
SELECT lives_ok($$SELECT conveyor.push_type_create('ada_type', 'conveyor.sim_get_units(text,jsonb)', 'conveyor.sim_send_update(text,jsonb,jsonb)', 'conveyor.sim_check_health(text,jsonb,text[])', reason => 'ada adds a type')$$,
                'the administrator creates a push type');
SELECT lives_ok($$SELECT conveyor.secret_set('ada_tok', 'value', 'a token', 'ada sets')$$, 'the administrator sets a secret');
SELECT is((SELECT count(*) FROM conveyor.secret WHERE name = 'ada_tok'), 1::bigint, 'and reads it');
SELECT is((SELECT count(*) FROM conveyor.secrets WHERE name = 'ada_tok'), 1::bigint, 'and lists it');
SELECT lives_ok($$SELECT conveyor.secret_drop('ada_tok', 'ada drops')$$, 'the administrator drops a secret');
SELECT lives_ok($$SELECT conveyor.sim_fleet_create('fleet_ada', '{eu}', 1, 2)$$, 'the administrator creates a simulated fleet');
SELECT lives_ok($$SELECT conveyor.sim_unit_set_size('fleet_ada', 'eu-1', 3)$$, 'resizes a unit');
SELECT lives_ok($$SELECT conveyor.sim_version_set_faulty('fleet_ada', 'v9')$$, 'marks a version faulty');
SELECT lives_ok($$SELECT conveyor.sim_subunit_set_unreachable('fleet_ada', 'eu-1')$$, 'makes a unit unreachable');
SELECT lives_ok($$SELECT conveyor.sim_unit_remove('fleet_ada', 'eu-1')$$, 'removes a unit');
SELECT lives_ok($$SELECT conveyor.sim_fleet_drop('fleet_ada')$$, 'drops the fleet');
RESET SESSION AUTHORIZATION;

-- Push-type verbs run with a superuser's rights (in the workers, and in
-- push_start and plan_preview): an administrator may register only verbs a
-- superuser owns, or she could run anything as a superuser.
CREATE SCHEMA ada_fns AUTHORIZATION ada;
SET SESSION AUTHORIZATION ada;
CREATE FUNCTION ada_fns.units(service text, config jsonb)
RETURNS TABLE (unit text, labels jsonb, subunit text, version text, status text)
LANGUAGE sql AS $$ SELECT 'u1', '{}'::jsonb, 's1', 'v1', 'ok' $$;
CREATE FUNCTION ada_fns.health(service text, config jsonb, units text[])
RETURNS TABLE (unit text, healthy boolean, reason text)
LANGUAGE sql AS $$ SELECT 'u1', true, NULL::text $$;
RESET SESSION AUTHORIZATION;
SELECT cvt.world() AS before \gset
SELECT is(cvt.run_as('ada', $$SELECT conveyor.push_type_create('ada_own', 'ada_fns.units(text,jsonb)', 'conveyor.sim_send_update(text,jsonb,jsonb)')$$) - 'context',
          jsonb_build_object('sqlstate', '42501',
              'message', 'function ada_fns.units(text,jsonb) cannot be a verb of push type "ada_own": its owner ada is not a superuser',
              'detail', 'conveyor runs push-type verbs with superuser rights, so only a superuser may own them.',
              'hint', 'Have a superuser create the function (or ALTER FUNCTION ... OWNER TO one) after reviewing it.'),
          'an administrator may not register a verb she owns');
SELECT is(cvt.run_as('ada', $$SELECT conveyor.push_type_create('ada_own', 'conveyor.sim_get_units(text,jsonb)', 'conveyor.sim_send_update(text,jsonb,jsonb)', check_health => 'ada_fns.health(text,jsonb,text[])')$$)->>'sqlstate',
          '42501', 'nor as an optional verb');
SELECT throws_ok($$SELECT conveyor.push_type_create('ada_own', 'ada_fns.units(text,jsonb)', 'conveyor.sim_send_update(text,jsonb,jsonb)')$$,
                 '42501', NULL, 'nor may a superuser: the verb''s owner could change it later');
SELECT is(cvt.world(), :'before'::jsonb, 'no push type was registered');

-- push_plan_create and push_plan_replace keep their phases in a variable, not
-- a temporary table the caller could have made first (with a trigger that
-- would then run as the function's owner, a superuser)
SET SESSION AUTHORIZATION bob;
CREATE TEMP TABLE hijacked (who name, super boolean);
CREATE TEMP TABLE _cv_phases (LIKE conveyor.push_plan_phase);
CREATE FUNCTION pg_temp.hijack() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO pg_temp.hijacked SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user;
    RETURN NEW;
END $$;
CREATE TRIGGER hijack_rows BEFORE INSERT OR UPDATE OR DELETE ON _cv_phases FOR EACH ROW EXECUTE FUNCTION pg_temp.hijack();
CREATE TRIGGER hijack_truncate BEFORE TRUNCATE ON _cv_phases FOR EACH STATEMENT EXECUTE FUNCTION pg_temp.hijack();
SELECT lives_ok($$SELECT conveyor.push_plan_create('plan_bob', '[{"scope": "*", "amount": "1"}]')$$,
                'bob creates a plan, with a trap in his temporary schema');
SELECT lives_ok($$SELECT conveyor.push_plan_replace('plan_bob', '[{"scope": "*", "amount": "2"}]')$$, 'and replaces it');
SELECT is((SELECT count(*) FROM pg_temp.hijacked), 0::bigint, 'none of bob''s code ran inside the API functions');
SELECT is((SELECT rolsuper FROM pg_roles WHERE rolname = 'bob'), false, 'bob is no superuser');
SELECT results_eq($$SELECT position, scope, amount FROM conveyor.push_plan_phase WHERE plan = 'plan_bob'$$,
                  $$VALUES (0, '*', '2')$$, 'the plan has the phases given');
DROP TABLE _cv_phases;
DROP TABLE hijacked;
DROP FUNCTION pg_temp.hijack();
RESET SESSION AUTHORIZATION;

-- ================================================================ SECURITY DEFINER functions have a fixed search_path

CREATE VIEW cvt.definer AS
SELECT p.oid::regprocedure AS fn,
       (SELECT substr(c, length('search_path=') + 1) FROM unnest(p.proconfig) c WHERE c LIKE 'search\_path=%') AS search_path
  FROM pg_proc p
  JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e'
  JOIN pg_extension e ON e.oid = d.refobjid AND e.extname = 'conveyor'
 WHERE p.prosecdef;

SELECT ok((SELECT count(*) FROM cvt.definer) >= 17, 'the extension has its SECURITY DEFINER API functions (found '
          || (SELECT count(*) FROM cvt.definer) || ')');
SELECT ok(d.search_path IS NOT NULL AND d.search_path ~ '(^|,)\s*pg_temp\s*$',
          format('%s is SECURITY DEFINER with a fixed search_path ending with pg_temp (%s)', d.fn,
                 coalesce(d.search_path, 'none')))
  FROM cvt.definer d ORDER BY d.fn::text;
SELECT is(ARRAY(SELECT p.oid::regprocedure::text FROM pg_proc p
                 WHERE p.pronamespace = 'conveyor'::regnamespace AND p.prosecdef
                EXCEPT SELECT fn::text FROM cvt.definer ORDER BY 1),
          '{}'::text[], 'every SECURITY DEFINER function in schema conveyor belongs to the extension');

-- ================================================================ audit: who, when and why

SELECT clock_timestamp() AS t0 \gset
SET SESSION AUTHORIZATION alice;
SELECT conveyor.push_start('svc_audit', 'v2', 'audit: start') AS pa \gset
RESET SESSION AUTHORIZATION;
SELECT is(cvt.drive(:pa), 'running', 'audit: a push in flight');
SET SESSION AUTHORIZATION alice;
SELECT conveyor.push_pause(:pa, 'audit: pause') \gset
SELECT conveyor.push_resume(:pa, 'audit: resume') \gset
SELECT conveyor.push_skip_healthchecks(:pa, 'audit: skip healthchecks') \gset
SELECT conveyor.push_skip_bake(:pa, 'audit: skip bake') \gset
SELECT conveyor.push_skip_phase(:pa, 'audit: skip phase') \gset
SELECT conveyor.push_revert(:pa, 'audit: revert') AS ra \gset
SELECT conveyor.push_cancel(:ra, 'audit: cancel') \gset
SELECT conveyor.service_alter('svc_audit', retry_limit => 3, reason => 'audit: alter') \gset
SELECT conveyor.push_plan_create('plan_audit', '[{"scope": "*", "amount": "1"}]', owner => 'team_a',
                                 reason => 'audit: plan create') \gset
SELECT conveyor.push_plan_replace('plan_audit', '[{"scope": "*", "amount": "2"}]', reason => 'audit: plan replace') \gset
SELECT conveyor.push_plan_drop('plan_audit', 'audit: plan drop') \gset
SET ROLE team_a;
SELECT conveyor.push_start('svc_audit', 'v3', 'audit: start as team_a') AS pb \gset
SELECT conveyor.push_cancel(:pb, 'audit: cancel as team_a') \gset
SELECT conveyor.service_alter('svc_audit', retry_limit => 4, reason => 'audit: alter as team_a') \gset
RESET ROLE;
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION ada;
SELECT conveyor.secret_set('audit_tok', 'value', reason => 'audit: secret') \gset
RESET SESSION AUTHORIZATION;
SELECT clock_timestamp() AS t1 \gset

-- as alice, through the audit view: each action once, by alice, between t0 and t1, with its reason
CREATE TABLE cvt.audited (action text, object_kind text, object_name text, reason text, n int GENERATED ALWAYS AS IDENTITY);
INSERT INTO cvt.audited (action, object_kind, object_name, reason) VALUES
    ('push_started',         'push',      'svc_audit',  'audit: start'),
    ('push_paused',          'push',      'svc_audit',  'audit: pause'),
    ('push_resumed',         'push',      'svc_audit',  'audit: resume'),
    ('healthchecks_skipped', 'push',      'svc_audit',  'audit: skip healthchecks'),
    ('bake_skipped',         'push',      'svc_audit',  'audit: skip bake'),
    ('phase_skipped',        'push',      'svc_audit',  'audit: skip phase'),
    ('push_reverted',        'push',      'svc_audit',  'reverted by alice: audit: revert'),
    ('push_started',         'push',      'svc_audit',  'reverted by alice: audit: revert'),
    ('push_cancelled',       'push',      'svc_audit',  'cancelled by alice: audit: cancel'),
    ('alter',                'service',   'svc_audit',  'audit: alter'),
    ('create',               'push_plan', 'plan_audit', 'audit: plan create'),
    ('replace',              'push_plan', 'plan_audit', 'audit: plan replace'),
    ('drop',                 'push_plan', 'plan_audit', 'audit: plan drop'),
    ('push_started',         'push',      'svc_audit',  'audit: start as team_a'),
    ('push_cancelled',       'push',      'svc_audit',  'cancelled by alice: audit: cancel as team_a'),
    ('alter',                'service',   'svc_audit',  'audit: alter as team_a');
GRANT SELECT ON cvt.audited TO alice;
SET SESSION AUTHORIZATION alice;
SELECT is((SELECT count(*) FROM conveyor.audit a
            WHERE a.action = x.action AND a.object_kind = x.object_kind AND a.object_name = x.object_name
              AND a.reason = x.reason AND a.actor = 'alice' AND a.at BETWEEN :'t0' AND :'t1'),
          1::bigint, format('audit: %s %s %s by alice, with its time and reason (%s)', x.action, x.object_kind,
                            x.object_name, x.reason))
  FROM cvt.audited x ORDER BY x.n;
SELECT is((SELECT count(*) FROM conveyor.audit a WHERE a.at BETWEEN :'t0' AND :'t1' AND a.object_name IN ('svc_audit', 'plan_audit')),
          (SELECT count(*) FROM cvt.audited), 'audit: nothing else was recorded for them');
SELECT results_eq($$SELECT actor::text COLLATE "default", acting_role::text COLLATE "default" FROM conveyor.config_event
                     WHERE reason IN ('audit: alter', 'audit: alter as team_a') ORDER BY id$$,
                  $$VALUES ('alice', 'alice'), ('alice', 'team_a')$$,
                  'configuration history: the actor is the session user; acting_role records SET ROLE');
SELECT results_eq(format($$SELECT started_by::text COLLATE "default" FROM conveyor.push WHERE id IN (%s, %s, %s) ORDER BY id$$, :pa, :ra, :pb),
                  $$VALUES ('alice'), ('alice'), ('alice')$$, 'pushes started by alice, also acting as team_a');
SELECT is((SELECT count(*) FROM conveyor.audit WHERE object_kind = 'secret'), 0::bigint,
          'alice does not see the administrators'' secret changes in the audit');
RESET SESSION AUTHORIZATION;

SELECT results_eq($$SELECT action, reason FROM conveyor.audit WHERE actor = 'oscar' ORDER BY action, reason$$,
                  $$VALUES ('bake_skipped', 'oscar: push_skip_bake'),
                           ('healthchecks_skipped', 'oscar: push_skip_healthchecks'),
                           ('phase_skipped', 'oscar: push_skip_phase'),
                           ('push_cancelled', 'cancelled by oscar: oscar: cancel the revert'),
                           ('push_cancelled', 'cancelled by oscar: oscar: push_cancel'),
                           ('push_paused', 'oscar: push_pause'),
                           ('push_resumed', 'oscar: push_resume'),
                           ('push_started', 'reverted by oscar: oscar reverts'),
                           ('revert_requested', 'reverted by oscar: oscar reverts')$$,
                  'audit: every control of the operator, by oscar, with its reason');
SELECT is(cvt.run_as('rita', $$SELECT row(actor, object_name, action, reason)::text FROM conveyor.audit WHERE reason = 'audit: secret'$$)->>'value',
          '(ada,audit_tok,create,"audit: secret")', 'a reader sees who set a secret, and why (not its value)');
SELECT is((SELECT count(*) FROM conveyor.audit WHERE object_kind = 'push'),
          (SELECT count(*) FROM conveyor.push_event WHERE actor IS NOT NULL),
          'the audit lists every push event with an actor');
SELECT is((SELECT count(*) FROM conveyor.audit WHERE object_kind <> 'push'),
          (SELECT count(*) FROM conveyor.config_event), 'and every configuration change');
SELECT is((SELECT count(*) FROM conveyor.audit WHERE actor IS NULL OR at IS NULL), 0::bigint,
          'every audit row has an actor and a time');

-- ================================================================ push_start refuses pushes that cannot work

SET SESSION AUTHORIZATION ada;
SELECT conveyor.sim_fleet_create('fleet_v', '{eu,us}', 1, 2) \gset
SELECT conveyor.sim_fleet_create('fleet_empty', '{eu}', 0, 0) \gset
SELECT conveyor.service_create('svc_v', 'simulated', 'plan_a', '{"fleet": "fleet_v"}', owner => 'team_a') \gset
SELECT conveyor.service_create('svc_empty', 'simulated', 'plan_a', '{"fleet": "fleet_empty"}', owner => 'team_a') \gset
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION alice;
SELECT conveyor.push_plan_create('plan_mars', '[{"scope": "region=mars", "amount": "1"}]') \gset
SELECT conveyor.push_plan_create('plan_mars2', '[{"scope": "region=eu", "amount": "1"}, {"scope": "region=mars | tier=db", "amount": "1"}]') \gset
RESET SESSION AUTHORIZATION;

CREATE FUNCTION cvt.refused_as(who text, sql text, code text, message text, description text) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    before jsonb := cvt.world();
    err jsonb := cvt.run_as(who, sql);
BEGIN
    RETURN NEXT is(err->>'sqlstate', code, description || ': ' || code);
    IF message IS NOT NULL THEN
        RETURN NEXT is(err->>'message', message, description || ': says so');
    END IF;
    RETURN NEXT is(cvt.world(), before, description || ': nothing written');
END $$;

SELECT * FROM cvt.refused_as('alice', $$SELECT conveyor.push_start('svc_nowhere', 'v2')$$, '42704',
                             'service "svc_nowhere" does not exist', 'an unknown service');
SELECT * FROM cvt.refused_as('alice', $$SELECT conveyor.push_start('svc_v', 'v2', plan => 'plan_nowhere')$$, '42704',
                             'push plan "plan_nowhere" does not exist', 'an unknown plan');
SELECT * FROM cvt.refused_as('alice', $$SELECT conveyor.push_start('svc_v', 'v2', plan => 'plan_mars')$$, '22023',
                             'phase 1 of push plan "plan_mars" matches no unit of service "svc_v"',
                             'a plan whose scope matches no unit');
SELECT * FROM cvt.refused_as('alice', $$SELECT conveyor.push_start('svc_v', 'v2', plan => 'plan_mars2')$$, '22023',
                             'phase 2 of push plan "plan_mars2" matches no unit of service "svc_v"',
                             'a plan whose second scope matches no unit');
SELECT * FROM cvt.refused_as('alice', $$SELECT conveyor.push_start('svc_v', '')$$, '22023', NULL, 'an empty version');
SELECT * FROM cvt.refused_as('alice', format('SELECT conveyor.push_start(%L, %L)', 'svc_v', repeat('v', 201)), '22023',
                             NULL, 'a version of 201 characters');
SELECT * FROM cvt.refused_as('alice', $$SELECT conveyor.push_start('svc_v', NULL)$$, '22023', NULL, 'a NULL version');
SELECT * FROM cvt.refused_as('alice', $$SELECT conveyor.push_start('svc_v', E'v2\nrm -rf /')$$, '22023', NULL,
                             'a version with a control character');
SELECT * FROM cvt.refused_as('alice', $$SELECT conveyor.push_start('svc_empty', 'v2')$$, '22023',
                             'service "svc_empty" has no units', 'a service with no units');
SELECT is(cvt.run_as('alice', format('SELECT conveyor.push_start(%L, %L)', 'svc_v', repeat('v', 200)))->>'sqlstate',
          NULL, 'a version of 200 characters starts');

-- ================================================================ names with SQL metacharacters stay literal

-- One string serves as fleet, unit label, plan, service, version and reason;
-- it goes in through the API, comes out through the tables and views, and
-- appears as itself in error messages.
CREATE FUNCTION cvt.literal(m text) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
    r jsonb;
    id bigint;
    label text := format('name %s', m);
BEGIN
    RETURN NEXT is(cvt.run_as('ada', format('SELECT conveyor.sim_fleet_create(%L, ARRAY[%L], 1, 2)', m, m))->>'sqlstate',
                   NULL, label || ': a simulated fleet, its region and unit named so');
    RETURN NEXT is(cvt.run_as('alice', format($f$SELECT conveyor.push_plan_create(%L, '[{"scope": "*", "amount": "50%%"}]', owner => 'team_a', reason => %L)$f$, m, m)),
                   jsonb_build_object('value', m), label || ': push_plan_create returns the name');
    RETURN NEXT is(cvt.run_as('alice', format($f$SELECT conveyor.service_create(%L, 'simulated', %L, jsonb_build_object('fleet', %L::text), owner => 'team_a', reason => %L)$f$, m, m, m, m)),
                   jsonb_build_object('value', m), label || ': service_create returns the name');
    r := cvt.run_as('alice', format('SELECT conveyor.push_start(%L, %L, %L, %L)', m, m, m, m));
    id := (r->>'value')::bigint;
    RETURN NEXT ok(id IS NOT NULL, label || ': push_start with it as service, version, reason and plan' || coalesce(': ' || (r->>'message'), ''));
    RETURN NEXT is(cvt.drive(id), 'succeeded', label || ': the push succeeds');

    -- what alice reads back
    RETURN NEXT is(cvt.run_as('alice', format('SELECT to_jsonb(p) - ''id'' - ''step'' - ''created_at'' - ''ended_at'' - ''duration'' - ''plan'' - ''last_event'' - ''last_event_at'' - ''phase_scope'' - ''subunits_failed'' - ''subunits_updated'' FROM conveyor.pushes p WHERE id = %s', id))->>'value',
                   jsonb_build_object('service', m, 'version', m, 'kind', 'push', 'reverts', NULL, 'state', 'succeeded',
                                      'phase', '2/2', 'outcome', 'success',
                                      'outcome_reason', format('%s runs version %s', m, m),
                                      'started_by', 'alice', 'start_reason', m)::text,
                   label || ': conveyor.pushes shows it literally');
    RETURN NEXT is(cvt.run_as('alice', format($f$SELECT jsonb_build_object('detail', detail, 'reason', reason, 'actor', actor) FROM conveyor.push_event WHERE push_id = %s AND kind = 'push_started'$f$, id))->>'value',
                   jsonb_build_object('detail', jsonb_build_object('service', m, 'version', m, 'plan', m, 'phases', 2),
                                      'reason', m, 'actor', 'alice')::text,
                   label || ': the push_started event records it literally');
    RETURN NEXT is(cvt.run_as('alice', format($f$SELECT jsonb_agg(jsonb_build_array(object_kind, action, reason) ORDER BY object_kind) FROM conveyor.audit WHERE object_name = %L$f$, m))->>'value',
                   jsonb_build_array(jsonb_build_array('push', 'push_started', m), jsonb_build_array('push_plan', 'create', m),
                                     jsonb_build_array('service', 'create', m))::text,
                   label || ': the audit lists plan, service and push under it, with it as the reason');
    RETURN NEXT is(cvt.run_as('alice', format($f$SELECT jsonb_agg(DISTINCT jsonb_build_array(unit, subunit, to_version)) FROM conveyor.push_subunit WHERE push_id = %s$f$, id))->>'value',
                   jsonb_build_array(jsonb_build_array(m || '-1', m || '-1-01', m), jsonb_build_array(m || '-1', m || '-1-02', m))::text,
                   label || ': subunits carry the unit name and version literally');
    RETURN NEXT is(cvt.run_as('alice', format($f$SELECT jsonb_agg(DISTINCT jsonb_build_array(s.version, u.labels->>'region')) FROM conveyor.sim_subunit_now s JOIN conveyor.sim_unit u USING (fleet, unit) WHERE fleet = %L$f$, m))->>'value',
                   jsonb_build_array(jsonb_build_array(m, m))::text,
                   label || ': the fleet runs that version; its unit label is that string');
    RETURN NEXT is(cvt.run_as('alice', format($f$SELECT string_agg(unit || ':' || updates, ',') FROM conveyor.plan_preview(%L, 'next') WHERE unit IS NOT NULL$f$, m))->>'value',
                   format('%s-1:1,%s-1:1', m, m), label || ': plan_preview names the unit literally');

    -- errors name it literally
    RETURN NEXT is(cvt.run_as('alice', format($f$SELECT conveyor.service_create(%L, 'simulated', %L, '{}')$f$, m, m))->>'message',
                   format('service "%s" already exists', m), label || ': a duplicate service');
    RETURN NEXT is(cvt.run_as('alice', format($f$SELECT conveyor.push_plan_create(%L, '[{"scope": "*", "amount": "1"}]')$f$, m))->>'message',
                   format('push plan "%s" already exists', m), label || ': a duplicate plan');
    r := cvt.run_as('bob', format('SELECT conveyor.push_start(%L, %L)', m, m));
    RETURN NEXT is(jsonb_build_array(r->>'message', r->>'detail'),
                   jsonb_build_array(format('permission denied to start pushes of service "%s"', m),
                                     format('The service "%s" is owned by role team_a; role bob is not a member of team_a or conveyor_admin.', m)),
                   label || ': bob refused pushing it');
    RETURN NEXT is(cvt.run_as('bob', format($f$SELECT conveyor.push_plan_replace(%L, '[{"scope": "*", "amount": "1"}]')$f$, m))->>'message',
                   format('permission denied to replace push plan "%s"', m), label || ': bob refused replacing the plan');
    RETURN NEXT is(cvt.run_as('alice', format($f$SELECT conveyor.push_start(%L, 'v3', plan => 'plan_mars')$f$, m))->>'message',
                   format('phase 1 of push plan "plan_mars" matches no unit of service "%s"', m),
                   label || ': a plan that matches none of its units');
    RETURN NEXT is(cvt.run_as('alice', format('SELECT conveyor.push_revert(%s, %L)', id, m))->>'sqlstate', NULL,
                   label || ': revert with it as the reason');
    RETURN NEXT is(cvt.run_as('alice', format($f$SELECT reason FROM conveyor.audit WHERE object_name = %L AND action = 'revert_requested'$f$, m))->>'value',
                   'reverted by alice: ' || m, label || ': the audit shows the reason literally');
    RETURN NEXT is(cvt.run_as('ada', format('SELECT conveyor.sim_fleet_create(%L)', m))->>'message',
                   format('simulated fleet "%s" already exists', m), label || ': a duplicate fleet');
    RETURN NEXT is(cvt.run_as('ada', format($f$SELECT conveyor.secret_set(%L, '')$f$, m))->>'message',
                   format('secret "%s" needs a value', m), label || ': a secret without a value');
    RETURN NEXT is(cvt.run_as('ada', format('SELECT conveyor.secret_drop(%L)', m))->>'message',
                   format('secret "%s" does not exist', m), label || ': dropping a secret that does not exist');
END $$;

SELECT t FROM unnest(ARRAY[
    $m$it's "quoted"$m$,
    $m$'; DROP TABLE x; --$m$,
    $m$back\slash \n \\ \'$m$,
    $m$100% %s %I %L %% _$m$,
    $m$$$ dollar $q$ $$$m$,
    $m$ünïcødé ☃ 日本語 🚀$m$,
    $m$) ; SELECT pg_sleep(10); (--$m$,
    $m$<b>&amp;</b> {"a": [1]} * | ! =$m$]) WITH ORDINALITY AS x(m, i),
       LATERAL cvt.literal(x.m) WITH ORDINALITY AS y(t, j)
 ORDER BY x.i, y.j;

-- ================================================================ a token stays secret

SELECT 'SENTINEL-' || md5(random()::text || clock_timestamp()) AS sentinel \gset

-- A push type that authenticates with a token from conveyor.secret (named by
-- the service's config) and then fails: its endpoint is down. The token is in
-- the error's detail and hint, as a careless HTTP library might put it there.
CREATE FUNCTION cvt.tok_get_units(service text, config jsonb)
RETURNS TABLE (unit text, labels jsonb, subunit text, version text, status text) LANGUAGE plpgsql AS $$
DECLARE
    tok text;
BEGIN
    SELECT s.value INTO tok FROM conveyor.secret s WHERE s.name = config->>'token';
    IF tok IS NULL THEN
        RAISE EXCEPTION 'units endpoint: no credentials';
    ELSIF config->>'units' = 'refuse' THEN
        RAISE EXCEPTION 'units endpoint refused the request (HTTP 401)';
    ELSIF config->>'units' = 'echo' THEN
        RAISE EXCEPTION 'units endpoint refused the request (HTTP 401)' USING DETAIL = 'Authorization: Bearer ' || tok;
    END IF;
    RETURN QUERY SELECT * FROM conveyor.sim_get_units(service, config);
END $$;
CREATE FUNCTION cvt.tok_send_update(service text, config jsonb, updates jsonb)
RETURNS TABLE (unit text, subunit text, error text) LANGUAGE plpgsql AS $$
DECLARE
    tok text;
BEGIN
    SELECT s.value INTO tok FROM conveyor.secret s WHERE s.name = config->>'token';
    IF config->>'send' = 'echo' THEN
        RAISE EXCEPTION 'deploy endpoint unavailable (HTTP 503) for %', tok;
    END IF;
    RAISE EXCEPTION 'deploy endpoint unavailable (HTTP 503)'
        USING DETAIL = 'Authorization: Bearer ' || tok, HINT = 'token ' || tok;
END $$;
CREATE FUNCTION cvt.tok_check_health(service text, config jsonb, units text[])
RETURNS TABLE (unit text, healthy boolean, reason text) LANGUAGE sql AS $$
    SELECT * FROM conveyor.sim_check_health(service, config, units)
$$;

SET SESSION AUTHORIZATION ada;
SELECT conveyor.secret_set('tok', :'sentinel', 'deploy token', 'planted') \gset
SELECT conveyor.sim_fleet_create('fleet_tok', '{eu,us}', 1, 2) \gset
SELECT conveyor.push_type_create('tokened', 'cvt.tok_get_units(text,jsonb)', 'cvt.tok_send_update(text,jsonb,jsonb)',
                                 'cvt.tok_check_health(text,jsonb,text[])', description => 'authenticates with a token') \gset
SELECT string_agg(conveyor.service_create(s, 'tokened', 'cvt_quick', c::jsonb, owner => 'team_a', retry_limit => 1), ', ')
  FROM (VALUES ('svc_tok', '{"fleet": "fleet_tok", "token": "tok"}'),
               ('svc_tok_refuse', '{"fleet": "fleet_tok", "token": "tok", "units": "refuse"}'),
               ('svc_echo', '{"fleet": "fleet_tok", "token": "tok", "send": "echo"}'),
               ('svc_echo_units', '{"fleet": "fleet_tok", "token": "tok", "units": "echo"}')) AS x(s, c) \gset
RESET SESSION AUTHORIZATION;
SELECT is((SELECT count(*) FROM conveyor.secret WHERE value = :'sentinel'), 1::bigint, 'the token is planted');

-- a push of the type: the team starts it (get units reads the token), it fails sending
SET SESSION AUTHORIZATION alice;
SELECT conveyor.push_start('svc_tok', 'v2', 'push with a token') AS pt \gset
SELECT ok((SELECT count(*) FROM conveyor.plan_preview('svc_tok', 'v2')) > 0, 'alice previews it (get units uses the token)');
RESET SESSION AUTHORIZATION;
SELECT is(cvt.drive_retries(:pt), 'failed', 'the push fails: its push type cannot send');
SELECT results_eq(format($$SELECT outcome, outcome_reason FROM conveyor.push WHERE id = %s$$, :pt),
                  $$VALUES ('bad failure', 'push type send_update failed 2 times (retry limit 1): deploy endpoint unavailable (HTTP 503)')$$,
                  'a bad failure, saying what the push type said');
SELECT is((SELECT count(*) FROM conveyor.push_event WHERE push_id = :pt AND kind = 'push_type_error'), 1::bigint,
          'the first failure is a push_type_error event');

-- errors provoked with the token as an argument (passed as a parameter, as
-- clients should: a literal would be in the error's context as the caller's
-- own statement), or while the push type holds it
CREATE TABLE cvt.err (who text, call text, e jsonb, n int GENERATED ALWAYS AS IDENTITY);
INSERT INTO cvt.err (who, call) VALUES
    ('ada',   $$SELECT conveyor.secret_set('', $1)$$),
    ('ada',   $$SELECT conveyor.secret_set(repeat('n', 201), $1)$$),
    ('ada',   $$SELECT conveyor.secret_set(E'tab\tname', $1)$$),
    ('ada',   $$SELECT conveyor.secret_set(NULL, $1)$$),
    ('alice', $$SELECT conveyor.secret_set('tok', $1)$$),
    ('bob',   $$SELECT conveyor.secret_set('tok2', $1)$$),
    ('rita',  $$SELECT conveyor.secret_set('tok', $1)$$),
    ('oscar', $$SELECT conveyor.secret_set('tok', $1)$$);
INSERT INTO cvt.err (who, call) VALUES
    ('rita',  $$SELECT conveyor.secret_drop('tok')$$),
    ('alice', $$SELECT conveyor.secret_drop('tok')$$),
    ('ada',   $$SELECT conveyor.secret_drop('tok_nowhere')$$),
    ('ada',   $$SELECT conveyor.push_type_create('tokened', 'cvt.tok_get_units(text,jsonb)', 'cvt.tok_send_update(text,jsonb,jsonb)')$$),
    ('ada',   $$SELECT conveyor.push_type_create('tokened2', 'cvt.tok_send_update(text,jsonb,jsonb)', 'cvt.tok_send_update(text,jsonb,jsonb)')$$),
    ('alice', $$SELECT conveyor.push_start('svc_tok_refuse', 'v2')$$),
    ('alice', $$SELECT count(*) FROM conveyor.plan_preview('svc_tok_refuse', 'v2')$$),
    ('bob',   $$SELECT conveyor.push_start('svc_tok', 'v2')$$),
    ('bob',   $$SELECT count(*) FROM conveyor.plan_preview('svc_tok', 'v2')$$),
    ('alice', format('SELECT conveyor.push_resume(%s)', :pt)),
    ('oscar', format('SELECT conveyor.push_skip_phase(%s)', :pt));
UPDATE cvt.err SET e = cvt.run_as(who, call, arg => CASE WHEN call LIKE '%$1%' THEN :'sentinel' END);
SELECT is(ARRAY(SELECT who || ': ' || call FROM cvt.err WHERE e->>'sqlstate' IS NULL ORDER BY n), '{}'::text[],
          'each of ' || (SELECT count(*) FROM cvt.err) || ' calls raised an error');
SELECT ok(strpos(e::text, :'sentinel') = 0,
          format('no token in the error (message, detail, hint, context) of %s: %s', who, call))
  FROM cvt.err ORDER BY n;

-- every table and view, as every role (and as the superuser): the token is
-- nowhere but in conveyor.secret
CREATE FUNCTION cvt.scan_as(who text, needle text) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
    r regclass;
    res jsonb;
    hits jsonb := '{}';
    unreadable text[] := '{}';
BEGIN
    FOR r IN SELECT c.oid FROM pg_class c
              WHERE c.relnamespace = 'conveyor'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
                AND c.oid <> 'conveyor.secret'::regclass ORDER BY c.relname LOOP
        res := cvt.run_as(who, format('SELECT count(*) FROM %s t WHERE strpos(t::text, %L) > 0', r, needle));
        IF res->>'sqlstate' = '42501' THEN
            unreadable := unreadable || r::text;
        ELSIF res->>'sqlstate' IS NOT NULL OR (res->>'value')::bigint > 0 THEN
            hits := hits || jsonb_build_object(r::text, coalesce(res->>'value', res->>'message'));
        END IF;
    END LOOP;
    RETURN jsonb_build_object('hits', hits, 'unreadable', to_jsonb(unreadable));
END $$;
SELECT is(cvt.scan_as(w, :'sentinel'),
          jsonb_build_object('hits', '{}'::jsonb,
                             'unreadable', CASE WHEN w = 'postgres' THEN '[]'::jsonb WHEN w = 'ada' THEN '[]'::jsonb ELSE '["conveyor.retention_policy", "conveyor.secrets"]' END),
          format('%s: no row of any table or view (but conveyor.secret) holds the token', w))
  FROM unnest('{alice,bob,rita,oscar,ada,postgres}'::text[]) WITH ORDINALITY AS x(w, i) ORDER BY i;
SELECT is((SELECT count(*) FROM conveyor.config_event WHERE object_kind = 'secret' AND object_name = 'tok'
             AND action = 'create' AND actor = 'ada' AND reason = 'planted'), 1::bigint,
          'the configuration history records that the token was set, by whom and why');

-- conveyor copies a verb's error message into events and outcome reasons, and
-- push_start and plan_preview pass a verb's error on: every secret's value
-- is redacted from them first (conveyor._redact).
SET SESSION AUTHORIZATION alice;
SELECT conveyor.push_start('svc_echo', 'v2') AS pe \gset
RESET SESSION AUTHORIZATION;
SELECT is(cvt.drive_retries(:pe), 'failed', 'a push whose push type echoes the token in its errors fails');
SELECT is((SELECT count(*) FROM conveyor.push_event WHERE push_id = :pe AND strpos(to_jsonb(push_event)::text, :'sentinel') > 0),
          0::bigint, 'a verb that echoes the token in its error message: the token is not in the push events');
SELECT ok(strpos(cvt.run_as('alice', $$SELECT conveyor.push_start('svc_echo_units', 'v2')$$)::text, :'sentinel') = 0,
          'a get units verb that puts the token in its error detail: push_start does not pass it on');

SELECT * FROM finish();
ROLLBACK;
