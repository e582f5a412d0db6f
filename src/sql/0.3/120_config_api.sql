-- conveyor 0.3: the configuration API, with its callers checked and every
-- change recorded in conveyor.config_event with who, when and why. Each
-- function replaces its 0.2 version (same name, a reason argument more).

-- A plan's phases as JSON, for the configuration history.
CREATE FUNCTION conveyor._push_plan_json(plan text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object('scope', f.scope, 'amount', f.amount, 'bake', f.bake,
                                                  'fault_tolerance', f.fault_tolerance) ORDER BY f.position), '[]')
      FROM conveyor.push_plan_phase f WHERE f.plan = _push_plan_json.plan
$$;
COMMENT ON FUNCTION conveyor._push_plan_json(text) IS 'internal: a push plan''s phases as a JSON array';

-- A service's settings as JSON, for the configuration history.
CREATE FUNCTION conveyor._service_json(name text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT to_jsonb(s) - 'name' - 'created_at' - 'created_by' FROM conveyor.service s WHERE s.name = _service_json.name
$$;
COMMENT ON FUNCTION conveyor._service_json(text) IS 'internal: a service''s settings as JSON';

-- Push plans belong to a role: its members (and administrators) replace or
-- drop them. Any service may use any plan.
ALTER TABLE conveyor.push_plan ADD COLUMN owner regrole;
COMMENT ON COLUMN conveyor.push_plan.owner IS
    'role whose members may replace or drop the plan (NULL: administrators only); any service may use any plan';

-- Lock a plan for a change by the acting role: 42704 or 42501.
CREATE FUNCTION conveyor._push_plan_lock(plan text, action text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_owner regrole;
BEGIN
    SELECT p.owner INTO v_owner FROM conveyor.push_plan p WHERE p.name = _push_plan_lock.plan FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'push plan "%" does not exist', plan USING ERRCODE = 'undefined_object';
    END IF;
    PERFORM conveyor._authorize('push plan', plan, v_owner, action, 'conveyor_admin');
END $$;
COMMENT ON FUNCTION conveyor._push_plan_lock(text, text) IS
    'internal: locks a push plan after checking the acting role may change it';

-- What a service's push type config points at: a simulated fleet, the URL
-- or endpoints of an HTTP push type. Two owners must never share one, or a
-- team could push its code to another team's units through a service of its
-- own.
CREATE FUNCTION conveyor._push_targets(config jsonb) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT array_remove(ARRAY[config->>'fleet', config->>'url'], NULL)
           || coalesce(ARRAY(SELECT jsonb_array_elements_text(config->'endpoints')
                              WHERE jsonb_typeof(config->'endpoints') = 'array'), '{}')
$$;
COMMENT ON FUNCTION conveyor._push_targets(jsonb) IS
    'internal: the fleets and endpoints a push type config points at';

-- Raise 42501 if a service of another owner already points at one of the
-- targets of this config. Locks the targets until commit, so two teams
-- cannot claim one target at the same time.
CREATE FUNCTION conveyor._push_targets_check(service text, push_type text, config jsonb, owner regrole)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    targets text[] := conveyor._push_targets(config);
    other conveyor.service;
    t text;
BEGIN
    FOREACH t IN ARRAY targets LOOP
        PERFORM pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('conveyor target ' || push_type || ' ' || t));
    END LOOP;
    SELECT * INTO other FROM conveyor.service s
     WHERE s.push_type = _push_targets_check.push_type AND s.name <> _push_targets_check.service
       AND s.owner <> _push_targets_check.owner
       AND conveyor._push_targets(s.push_type_config) && targets
     ORDER BY s.name LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'service "%" would reach the units of service "%"', service, other.name
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('Its %s config points at %s, which service %s (owned by role %s) deploys to.',
                                  push_type, (SELECT string_agg(x, ', ' ORDER BY x) FROM unnest(targets) x WHERE x = ANY (conveyor._push_targets(other.push_type_config))),
                                  other.name, other.owner),
                  HINT = 'A fleet or endpoint belongs to one owner''s services; ask a member of conveyor_admin.';
    END IF;
END $$;
COMMENT ON FUNCTION conveyor._push_targets_check(text, text, jsonb, regrole) IS
    'internal: raises 42501 if another owner''s service points at the same fleet or endpoint';

DROP FUNCTION conveyor.push_type_create(text, regprocedure, regprocedure, regprocedure, regprocedure, text);
DROP FUNCTION conveyor.push_plan_create(text, jsonb, text);
DROP FUNCTION conveyor.push_plan_replace(text, jsonb, text);
DROP FUNCTION conveyor.push_plan_drop(text);
DROP FUNCTION conveyor.service_create(text, text, text, jsonb, text, regrole, interval, interval, interval, int, int);
DROP FUNCTION conveyor.service_alter(text, text, jsonb, text, interval, interval, interval, int, int);

-- Register a push type (administrators).
CREATE FUNCTION conveyor.push_type_create(
    name text,
    get_units regprocedure,
    send_update regprocedure,
    check_health regprocedure DEFAULT NULL,
    needs_push regprocedure DEFAULT NULL,
    description text DEFAULT NULL,
    reason text DEFAULT NULL)
RETURNS text LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, conveyor, pg_temp AS $$
DECLARE
    v_fn regprocedure;
    v_fn_owner name;
BEGIN
    PERFORM conveyor._authorize_admin('create push types');
    IF name IS NULL OR length(name) NOT BETWEEN 1 AND 200 THEN
        RAISE EXCEPTION 'invalid push type name'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A push type name has 1 to 200 characters.';
    END IF;
    IF get_units IS NULL OR send_update IS NULL THEN
        RAISE EXCEPTION 'push type "%" needs get_units and send_update verbs', name
            USING ERRCODE = 'null_value_not_allowed',
                  HINT = 'check_health and needs_push are optional; the other two are not.';
    END IF;
    PERFORM conveyor._verb_check('get_units', get_units, '{text,jsonb}',
        '{"unit text","labels jsonb","subunit text","version text","status text"}',
        '(service text, config jsonb) RETURNS TABLE(unit text, labels jsonb, subunit text, version text, status text)');
    PERFORM conveyor._verb_check('send_update', send_update, '{text,jsonb,jsonb}',
        '{"unit text","subunit text","error text"}',
        '(service text, config jsonb, updates jsonb) RETURNS TABLE(unit text, subunit text, error text)');
    IF check_health IS NOT NULL THEN
        PERFORM conveyor._verb_check('check_health', check_health, '{text,jsonb,text[]}',
            '{"unit text","healthy boolean","reason text"}',
            '(service text, config jsonb, units text[]) RETURNS TABLE(unit text, healthy boolean, reason text)');
    END IF;
    IF needs_push IS NOT NULL THEN
        PERFORM conveyor._verb_check('needs_push', needs_push, '{text,jsonb,text}',
            '{"unit text","needs_push boolean"}',
            '(service text, config jsonb, version text) RETURNS TABLE(unit text, needs_push boolean)');
    END IF;
    -- The workers, and push_start and plan_preview, run verbs with a
    -- superuser's rights; a verb owned by anyone else could be rewritten by
    -- that role to run whatever it likes as a superuser.
    SELECT p.oid::regprocedure, r.rolname INTO v_fn, v_fn_owner
      FROM pg_proc p JOIN pg_roles r ON r.oid = p.proowner
     WHERE p.oid IN (get_units, send_update, check_health, needs_push) AND NOT r.rolsuper
     ORDER BY p.oid LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'function % cannot be a verb of push type "%": its owner % is not a superuser',
                        v_fn, name, v_fn_owner
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = 'conveyor runs push-type verbs with superuser rights, so only a superuser may own them.',
                  HINT = 'Have a superuser create the function (or ALTER FUNCTION ... OWNER TO one) after reviewing it.';
    END IF;
    IF EXISTS (SELECT 1 FROM conveyor.push_type t WHERE t.name = push_type_create.name) THEN
        RAISE EXCEPTION 'push type "%" already exists', name
            USING ERRCODE = 'duplicate_object';
    END IF;
    INSERT INTO conveyor.push_type (name, transport, get_units, send_update, check_health, needs_push,
                                    description)
    VALUES (name, 'sql', get_units, send_update, check_health, needs_push, description);
    PERFORM conveyor._config_event('push_type', name, 'create', reason,
        jsonb_build_object('get_units', get_units::text, 'send_update', send_update::text,
                           'check_health', check_health::text, 'needs_push', needs_push::text));
    RETURN name;
END $$;
COMMENT ON FUNCTION conveyor.push_type_create(text, regprocedure, regprocedure, regprocedure, regprocedure, text, text) IS
    'Register a push type whose verbs are SQL functions (administrators; see docs/push-types.md)';

-- Create a push plan from a JSON array of phases, owned by the acting role
-- (or by a role it acts for).
CREATE FUNCTION conveyor.push_plan_create(name text, phases jsonb, description text DEFAULT NULL,
                                          owner regrole DEFAULT NULL, reason text DEFAULT NULL)
RETURNS text LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, conveyor, pg_temp AS $$
DECLARE
    v_owner regrole := coalesce(owner, conveyor._acting_role());
    v_phases conveyor.push_plan_phase[];
BEGIN
    PERFORM conveyor._authorize_owner('push plan', name, v_owner);
    PERFORM conveyor._name_check('push plan', name);
    IF EXISTS (SELECT 1 FROM conveyor.push_plan p WHERE p.name = push_plan_create.name) THEN
        RAISE EXCEPTION 'push plan "%" already exists', name
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Use conveyor.push_plan_replace to change its phases.';
    END IF;
    -- every phase validated before anything is written; kept in a variable,
    -- never a temporary table: the caller's session owns pg_temp, and a table
    -- of the caller's there (with a trigger) would run the caller's code with
    -- this function's owner's rights
    v_phases := ARRAY(SELECT ROW(push_plan_create.name, f.pos, f.scope, f.amount, f.bake,
                                 f.fault_tolerance)::conveyor.push_plan_phase
                        FROM conveyor._plan_phases(name, phases) f);
    INSERT INTO conveyor.push_plan (name, description, owner) VALUES (name, description, v_owner);
    INSERT INTO conveyor.push_plan_phase SELECT * FROM unnest(v_phases);
    PERFORM conveyor._config_event('push_plan', name, 'create', reason,
        jsonb_build_object('owner', v_owner::text, 'phases', conveyor._push_plan_json(name)));
    RETURN name;
END $$;
COMMENT ON FUNCTION conveyor.push_plan_create(text, jsonb, text, regrole, text) IS
    'Create a push plan: phases is a JSON array of {scope, amount, bake, fault_tolerance}; owned by you or the role given';

-- Replace a plan's phases (its owner or an administrator); running pushes
-- keep the phases they started with.
CREATE FUNCTION conveyor.push_plan_replace(name text, phases jsonb, description text DEFAULT NULL,
                                           reason text DEFAULT NULL)
RETURNS text LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, conveyor, pg_temp AS $$
DECLARE
    before jsonb;
    v_phases conveyor.push_plan_phase[];
BEGIN
    PERFORM conveyor._push_plan_lock(name, 'replace');
    before := conveyor._push_plan_json(name);
    -- validated before anything changes; a variable, not a temporary table (see push_plan_create)
    v_phases := ARRAY(SELECT ROW(push_plan_replace.name, f.pos, f.scope, f.amount, f.bake,
                                 f.fault_tolerance)::conveyor.push_plan_phase
                        FROM conveyor._plan_phases(name, phases) f);
    DELETE FROM conveyor.push_plan_phase p WHERE p.plan = push_plan_replace.name;
    INSERT INTO conveyor.push_plan_phase SELECT * FROM unnest(v_phases);
    UPDATE conveyor.push_plan p
       SET description = coalesce(push_plan_replace.description, p.description), updated_at = now()
     WHERE p.name = push_plan_replace.name;
    PERFORM conveyor._config_event('push_plan', name, 'replace', reason,
        jsonb_build_object('before', before, 'after', conveyor._push_plan_json(name)));
    RETURN name;
END $$;
COMMENT ON FUNCTION conveyor.push_plan_replace(text, jsonb, text, text) IS
    'Replace a push plan''s phases (its owner or an administrator); pushes already running keep theirs';

-- Drop a push plan no service uses (its owner or an administrator).
CREATE FUNCTION conveyor.push_plan_drop(name text, reason text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, conveyor, pg_temp AS $$
DECLARE
    users text;
    before jsonb;
BEGIN
    PERFORM conveyor._push_plan_lock(name, 'drop');
    before := conveyor._push_plan_json(name);
    SELECT string_agg(s.name, ', ' ORDER BY s.name) INTO users
      FROM conveyor.service s WHERE s.plan = push_plan_drop.name;
    IF users IS NOT NULL THEN
        RAISE EXCEPTION 'push plan "%" is used by services', name
            USING ERRCODE = 'dependent_objects_still_exist',
                  DETAIL = format('Services using it: %s.', users),
                  HINT = 'Give those services another plan first.';
    END IF;
    DELETE FROM conveyor.push_plan p WHERE p.name = push_plan_drop.name;
    PERFORM conveyor._config_event('push_plan', name, 'drop', reason, jsonb_build_object('before', before));
END $$;
COMMENT ON FUNCTION conveyor.push_plan_drop(text, text) IS 'Drop a push plan that no service uses (its owner or an administrator)';

-- Create a service owned by the acting role (or by a role it acts for).
CREATE FUNCTION conveyor.service_create(
    name text,
    push_type text,
    plan text,
    push_type_config jsonb DEFAULT '{}',
    failure_policy text DEFAULT 'pause',
    owner regrole DEFAULT NULL,
    health_interval interval DEFAULT '30 seconds',
    poll_interval interval DEFAULT '1 second',
    update_timeout interval DEFAULT '10 minutes',
    max_in_flight int DEFAULT 100,
    retry_limit int DEFAULT 5,
    reason text DEFAULT NULL)
RETURNS text LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, conveyor, pg_temp AS $$
DECLARE
    v_owner regrole := coalesce(owner, conveyor._acting_role());
BEGIN
    PERFORM conveyor._authorize_owner('service', name, v_owner);
    PERFORM conveyor._push_targets_check(name, push_type, push_type_config, v_owner);
    PERFORM conveyor._name_check('service', name);
    PERFORM conveyor._push_type_check(push_type);
    PERFORM conveyor._push_plan_check(plan);
    PERFORM conveyor._failure_policy_check(failure_policy);
    PERFORM conveyor._service_settings_check(health_interval, poll_interval, update_timeout,
                                             max_in_flight, retry_limit);
    IF health_interval IS NULL OR poll_interval IS NULL OR update_timeout IS NULL
       OR max_in_flight IS NULL OR retry_limit IS NULL THEN
        RAISE EXCEPTION 'service settings must not be null' USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF push_type_config IS NULL OR jsonb_typeof(push_type_config) <> 'object' THEN
        RAISE EXCEPTION 'push type config of service "%" must be a JSON object', name
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM conveyor._push_type_config_check(push_type, push_type_config);
    IF EXISTS (SELECT 1 FROM conveyor.service s WHERE s.name = service_create.name) THEN
        RAISE EXCEPTION 'service "%" already exists', name USING ERRCODE = 'duplicate_object';
    END IF;
    INSERT INTO conveyor.service (name, owner, push_type, push_type_config, plan, failure_policy,
                                  health_interval, poll_interval, update_timeout, max_in_flight, retry_limit)
    VALUES (name, v_owner, push_type, push_type_config, plan, failure_policy,
            health_interval, poll_interval, update_timeout, max_in_flight, retry_limit);
    PERFORM conveyor._config_event('service', name, 'create', reason,
                                   jsonb_build_object('after', conveyor._service_json(name)));
    RETURN name;
END $$;
COMMENT ON FUNCTION conveyor.service_create(text, text, text, jsonb, text, regrole, interval, interval, interval, int, int, text) IS
    'Create a service: its push type and config, default push plan, failure policy and owner (you, or a role you act for)';

-- Change a service's settings or owner (its owner's members, or an
-- administrator); NULL leaves a setting as it is.
CREATE FUNCTION conveyor.service_alter(
    name text,
    plan text DEFAULT NULL,
    push_type_config jsonb DEFAULT NULL,
    failure_policy text DEFAULT NULL,
    health_interval interval DEFAULT NULL,
    poll_interval interval DEFAULT NULL,
    update_timeout interval DEFAULT NULL,
    max_in_flight int DEFAULT NULL,
    retry_limit int DEFAULT NULL,
    owner regrole DEFAULT NULL,
    reason text DEFAULT NULL)
RETURNS text LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, conveyor, pg_temp AS $$
DECLARE
    v_owner regrole;
    before jsonb;
BEGIN
    SELECT s.owner INTO v_owner FROM conveyor.service s WHERE s.name = service_alter.name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'service "%" does not exist', name USING ERRCODE = 'undefined_object';
    END IF;
    PERFORM conveyor._authorize('service', name, v_owner, 'alter', 'conveyor_admin');
    IF owner IS NOT NULL THEN
        PERFORM conveyor._authorize_owner('service', name, owner);
    END IF;
    before := conveyor._service_json(name);
    PERFORM conveyor._push_targets_check(name, before->>'push_type',
                                         coalesce(push_type_config, before->'push_type_config'),
                                         coalesce(owner, v_owner));
    IF plan IS NOT NULL THEN PERFORM conveyor._push_plan_check(plan); END IF;
    IF failure_policy IS NOT NULL THEN PERFORM conveyor._failure_policy_check(failure_policy); END IF;
    PERFORM conveyor._service_settings_check(health_interval, poll_interval, update_timeout,
                                             max_in_flight, retry_limit);
    IF push_type_config IS NOT NULL AND jsonb_typeof(push_type_config) <> 'object' THEN
        RAISE EXCEPTION 'push type config of service "%" must be a JSON object', name
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF push_type_config IS NOT NULL THEN
        PERFORM conveyor._push_type_config_check(before->>'push_type', push_type_config);
    END IF;
    UPDATE conveyor.service s SET
        plan = coalesce(service_alter.plan, s.plan),
        push_type_config = coalesce(service_alter.push_type_config, s.push_type_config),
        failure_policy = coalesce(service_alter.failure_policy, s.failure_policy),
        health_interval = coalesce(service_alter.health_interval, s.health_interval),
        poll_interval = coalesce(service_alter.poll_interval, s.poll_interval),
        update_timeout = coalesce(service_alter.update_timeout, s.update_timeout),
        max_in_flight = coalesce(service_alter.max_in_flight, s.max_in_flight),
        retry_limit = coalesce(service_alter.retry_limit, s.retry_limit),
        owner = coalesce(service_alter.owner, s.owner)
     WHERE s.name = service_alter.name;
    PERFORM conveyor._config_event('service', name, 'alter', reason,
                                   jsonb_build_object('before', before, 'after', conveyor._service_json(name)));
    RETURN name;
END $$;
COMMENT ON FUNCTION conveyor.service_alter(text, text, jsonb, text, interval, interval, interval, int, int, regrole, text) IS
    'Change a service''s plan, push type config, failure policy, intervals or owner (NULL leaves one unchanged)';
