-- conveyor 0.2: configuring push types, push plans and services.
-- Everything is validated before anything is stored.

CREATE FUNCTION conveyor._scope_check(scope text) RETURNS void
    LANGUAGE c IMMUTABLE STRICT AS 'MODULE_PATHNAME', 'cv_scope_check';
COMMENT ON FUNCTION conveyor._scope_check(text) IS 'internal: raises unless the scope parses';

CREATE FUNCTION conveyor._amount_check(amount text) RETURNS void
    LANGUAGE c IMMUTABLE STRICT AS 'MODULE_PATHNAME', 'cv_amount_check';
COMMENT ON FUNCTION conveyor._amount_check(text) IS 'internal: raises unless the amount parses';

CREATE FUNCTION conveyor._amount_cmp(a text, b text) RETURNS int
    LANGUAGE c IMMUTABLE STRICT AS 'MODULE_PATHNAME', 'cv_amount_cmp';
COMMENT ON FUNCTION conveyor._amount_cmp(text, text) IS
    'internal: -1, 0 or 1 comparing two amounts of the same kind; NULL for a percentage against a count';

CREATE FUNCTION conveyor._plan_targets(
    units text[], labels jsonb[], subunits text[], versions text[],
    scopes text[], amounts text[], start_phase int, version text, seed bigint)
RETURNS TABLE (phase int, unit text, subunit text, from_version text)
    LANGUAGE c IMMUTABLE AS 'MODULE_PATHNAME', 'cv_plan_targets';
COMMENT ON FUNCTION conveyor._plan_targets(text[], jsonb[], text[], text[], text[], text[], int, text, bigint) IS
    'internal: the C planner: which subunits each phase from start_phase on updates';

-- Raise unless fn has the argument types and output columns of a verb.
-- outs lists the output columns as 'name type', e.g. '{"unit text","healthy boolean"}'.
CREATE FUNCTION conveyor._verb_check(verb text, fn regprocedure, args regtype[], outs text[], shape text)
RETURNS void LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    p pg_proc;
    in_types regtype[];
    out_cols text[];
BEGIN
    SELECT * INTO p FROM pg_proc WHERE oid = fn;
    in_types := ARRAY(SELECT unnest(p.proargtypes::oid[])::regtype);
    SELECT array_agg(n || ' ' || format_type(t, NULL) ORDER BY i) INTO out_cols
      FROM unnest(p.proargnames, p.proallargtypes, p.proargmodes) WITH ORDINALITY AS a(n, t, m, i)
     WHERE m IN ('o', 't');
    IF in_types IS DISTINCT FROM args OR NOT p.proretset OR out_cols IS DISTINCT FROM outs THEN
        RAISE EXCEPTION 'function % cannot be a % verb', fn, verb
            USING ERRCODE = 'invalid_function_definition',
                  DETAIL = format('A %s verb is %s.', verb, shape),
                  HINT = 'See docs/push-types.md for the verb signatures.';
    END IF;
END $$;
COMMENT ON FUNCTION conveyor._verb_check(text, regprocedure, regtype[], text[], text) IS
    'internal: checks a push-type verb''s signature';

-- Register a push type whose verbs are SQL functions.
CREATE FUNCTION conveyor.push_type_create(
    name text,
    get_units regprocedure,
    send_update regprocedure,
    check_health regprocedure DEFAULT NULL,
    needs_push regprocedure DEFAULT NULL,
    description text DEFAULT NULL)
RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
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
    IF EXISTS (SELECT 1 FROM conveyor.push_type t WHERE t.name = push_type_create.name) THEN
        RAISE EXCEPTION 'push type "%" already exists', name
            USING ERRCODE = 'duplicate_object';
    END IF;
    INSERT INTO conveyor.push_type (name, transport, get_units, send_update, check_health, needs_push,
                                    description)
    VALUES (name, 'sql', get_units, send_update, check_health, needs_push, description);
    RETURN name;
END $$;
COMMENT ON FUNCTION conveyor.push_type_create(text, regprocedure, regprocedure, regprocedure, regprocedure, text) IS
    'Register a push type whose verbs are SQL functions (see docs/push-types.md)';

-- Validate a plan's phases (a JSON array) and return them as rows; raises on the first problem.
CREATE FUNCTION conveyor._plan_phases(plan text, phases jsonb)
RETURNS TABLE (pos int, scope text, amount text, bake interval, fault_tolerance numeric)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    ph jsonb;
    i int := 0;
    k text;
    prev_pct text;     -- the last percentage and the last count: amounts of a kind never shrink
    prev_count text;
    prev_amount text;
    tol_text text;
    bake_secs float8;
BEGIN
    IF phases IS NULL OR jsonb_typeof(phases) <> 'array' OR jsonb_array_length(phases) = 0 THEN
        RAISE EXCEPTION 'push plan "%" has no phases', plan
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Phases are a non-empty JSON array of objects.',
                  HINT = 'For example: [{"scope": "region=eu", "amount": "5%", "bake": "10 minutes"}]. '
                         'conveyor appends the completion phase (scope *, amount 100%) itself.';
    END IF;
    FOR ph IN SELECT value FROM jsonb_array_elements(phases) LOOP
        IF jsonb_typeof(ph) <> 'object' THEN
            RAISE EXCEPTION 'phase % of push plan "%" is not a JSON object', i + 1, plan
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        FOR k IN SELECT jsonb_object_keys(ph) LOOP
            IF k NOT IN ('scope', 'amount', 'bake', 'fault_tolerance') THEN
                RAISE EXCEPTION 'phase % of push plan "%" has an unknown key "%"', i + 1, plan, k
                    USING ERRCODE = 'invalid_parameter_value',
                          HINT = 'A phase has scope, amount, bake and fault_tolerance.';
            END IF;
        END LOOP;
        pos := i;
        scope := ph->>'scope';
        amount := ph->>'amount';
        IF scope IS NULL OR amount IS NULL THEN
            RAISE EXCEPTION 'phase % of push plan "%" needs a scope and an amount', i + 1, plan
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        PERFORM conveyor._scope_check(scope);
        PERFORM conveyor._amount_check(amount);
        BEGIN
            IF jsonb_typeof(ph->'bake') = 'number' THEN
                bake_secs := (ph->>'bake')::float8;
                -- beyond a century is a typo, and make_interval would overflow
                IF abs(bake_secs) > 3155760000 THEN
                    RAISE invalid_datetime_format;
                END IF;
                bake := make_interval(secs => bake_secs);
            ELSE
                bake := coalesce((ph->>'bake')::interval, '0');
            END IF;
        EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow OR interval_field_overflow THEN
            RAISE EXCEPTION 'invalid bake "%" in phase % of push plan "%"', ph->>'bake', i + 1, plan
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'A bake is an interval such as ''10 minutes'', or a number of seconds.';
        END;
        IF bake < '0' THEN
            RAISE EXCEPTION 'negative bake "%" in phase % of push plan "%"', ph->>'bake', i + 1, plan
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = 'Use 0 for no bake.';
        END IF;
        tol_text := rtrim(btrim(coalesce(ph->>'fault_tolerance', '0')), '%');
        IF tol_text !~ '^[0-9]+(\.[0-9]+)?$' OR tol_text::numeric > 100 THEN
            RAISE EXCEPTION 'invalid fault tolerance "%" in phase % of push plan "%"',
                            ph->>'fault_tolerance', i + 1, plan
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = 'Fault tolerance is the percentage (0 to 100) of the phase''s subunits that may fail to update.',
                      HINT = 'For example 2 or "2%" lets a phase pass with 98% of its subunits updated.';
        END IF;
        fault_tolerance := tol_text::numeric;
        prev_amount := CASE WHEN amount LIKE '%\%%' THEN prev_pct ELSE prev_count END;
        IF prev_amount IS NOT NULL AND conveyor._amount_cmp(amount, prev_amount) < 0 THEN
            RAISE EXCEPTION 'amount % in phase % of push plan "%" is smaller than % in an earlier phase',
                            amount, i + 1, plan, prev_amount
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = 'Amounts are cumulative: a phase''s amount says how much of each unit runs the version by its end.',
                      HINT = 'Percentages never shrink from one phase to a later one, and neither do counts.';
        END IF;
        IF amount LIKE '%\%%' THEN prev_pct := amount; ELSE prev_count := amount; END IF;
        i := i + 1;
        RETURN NEXT;
    END LOOP;
END $$;
COMMENT ON FUNCTION conveyor._plan_phases(text, jsonb) IS 'internal: validates a plan''s phases';

-- Raise unless name is an acceptable name for a plan or service.
CREATE FUNCTION conveyor._name_check(what text, name text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF name IS NULL OR length(name) NOT BETWEEN 1 AND 200 OR name ~ '[[:cntrl:]]' THEN
        RAISE EXCEPTION 'invalid % name', what
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('A %s name has 1 to 200 characters and no control characters.', what);
    END IF;
END $$;
COMMENT ON FUNCTION conveyor._name_check(text, text) IS 'internal: checks a plan or service name';

-- Create a push plan from a JSON array of phases.
CREATE FUNCTION conveyor.push_plan_create(name text, phases jsonb, description text DEFAULT NULL)
RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM conveyor._name_check('push plan', name);
    IF EXISTS (SELECT 1 FROM conveyor.push_plan p WHERE p.name = push_plan_create.name) THEN
        RAISE EXCEPTION 'push plan "%" already exists', name
            USING ERRCODE = 'duplicate_object',
                  HINT = 'Use conveyor.push_plan_replace to change its phases.';
    END IF;
    CREATE TEMP TABLE IF NOT EXISTS _cv_phases (LIKE conveyor.push_plan_phase) ON COMMIT DROP;
    TRUNCATE _cv_phases;
    INSERT INTO _cv_phases (plan, position, scope, amount, bake, fault_tolerance)
    SELECT push_plan_create.name, f.* FROM conveyor._plan_phases(name, phases) f;
    INSERT INTO conveyor.push_plan (name, description) VALUES (name, description);
    INSERT INTO conveyor.push_plan_phase SELECT * FROM _cv_phases;
    DROP TABLE _cv_phases;
    RETURN name;
END $$;
COMMENT ON FUNCTION conveyor.push_plan_create(text, jsonb, text) IS
    'Create a push plan: phases is a JSON array of {scope, amount, bake, fault_tolerance}';

-- Replace a plan's phases; running pushes keep the phases they started with.
CREATE FUNCTION conveyor.push_plan_replace(name text, phases jsonb, description text DEFAULT NULL)
RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM 1 FROM conveyor.push_plan p WHERE p.name = push_plan_replace.name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'push plan "%" does not exist', name USING ERRCODE = 'undefined_object';
    END IF;
    CREATE TEMP TABLE IF NOT EXISTS _cv_phases (LIKE conveyor.push_plan_phase) ON COMMIT DROP;
    TRUNCATE _cv_phases;
    INSERT INTO _cv_phases (plan, position, scope, amount, bake, fault_tolerance)
    SELECT push_plan_replace.name, f.* FROM conveyor._plan_phases(name, phases) f;
    DELETE FROM conveyor.push_plan_phase p WHERE p.plan = push_plan_replace.name;
    INSERT INTO conveyor.push_plan_phase SELECT * FROM _cv_phases;
    UPDATE conveyor.push_plan p
       SET description = coalesce(push_plan_replace.description, p.description), updated_at = now()
     WHERE p.name = push_plan_replace.name;
    DROP TABLE _cv_phases;
    RETURN name;
END $$;
COMMENT ON FUNCTION conveyor.push_plan_replace(text, jsonb, text) IS
    'Replace a push plan''s phases; pushes already running keep theirs';

-- Drop a push plan no service uses.
CREATE FUNCTION conveyor.push_plan_drop(name text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    users text;
BEGIN
    SELECT string_agg(s.name, ', ' ORDER BY s.name) INTO users
      FROM conveyor.service s WHERE s.plan = push_plan_drop.name;
    IF users IS NOT NULL THEN
        RAISE EXCEPTION 'push plan "%" is used by services', name
            USING ERRCODE = 'dependent_objects_still_exist',
                  DETAIL = format('Services using it: %s.', users),
                  HINT = 'Give those services another plan first.';
    END IF;
    DELETE FROM conveyor.push_plan p WHERE p.name = push_plan_drop.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'push plan "%" does not exist', name USING ERRCODE = 'undefined_object';
    END IF;
END $$;
COMMENT ON FUNCTION conveyor.push_plan_drop(text) IS 'Drop a push plan that no service uses';

-- Raise unless the push type exists.
CREATE FUNCTION conveyor._push_type_check(push_type text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM conveyor.push_type t WHERE t.name = push_type) THEN
        RAISE EXCEPTION 'push type "%" does not exist', push_type
            USING ERRCODE = 'undefined_object',
                  HINT = (SELECT 'Known push types: ' || coalesce(string_agg(t.name, ', ' ORDER BY t.name), 'none') || '.'
                            FROM conveyor.push_type t);
    END IF;
END $$;
COMMENT ON FUNCTION conveyor._push_type_check(text) IS 'internal: raises unless the push type exists';

-- Raise unless the push plan exists.
CREATE FUNCTION conveyor._push_plan_check(plan text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM conveyor.push_plan p WHERE p.name = plan) THEN
        RAISE EXCEPTION 'push plan "%" does not exist', plan
            USING ERRCODE = 'undefined_object',
                  HINT = 'Create it with conveyor.push_plan_create.';
    END IF;
END $$;
COMMENT ON FUNCTION conveyor._push_plan_check(text) IS 'internal: raises unless the push plan exists';

-- Raise unless the failure policy is known.
CREATE FUNCTION conveyor._failure_policy_check(policy text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF policy IS NULL OR policy NOT IN ('pause', 'revert', 'fail') THEN
        RAISE EXCEPTION 'invalid failure policy "%"', coalesce(policy, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'A failure policy is pause (wait for a person), revert or fail.';
    END IF;
END $$;
COMMENT ON FUNCTION conveyor._failure_policy_check(text) IS 'internal: raises unless the failure policy is known';

-- Raise 22023 unless a service's intervals and limits are in range (NULLs are left alone).
CREATE FUNCTION conveyor._service_settings_check(health_interval interval, poll_interval interval,
                                                 update_timeout interval, max_in_flight int, retry_limit int)
RETURNS void LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    bad text;
BEGIN
    bad := CASE
        WHEN health_interval <= '0' THEN 'health_interval must be positive'
        WHEN poll_interval <= '0' THEN 'poll_interval must be positive'
        WHEN update_timeout <= '0' THEN 'update_timeout must be positive'
        WHEN max_in_flight NOT BETWEEN 1 AND 100000 THEN 'max_in_flight must be between 1 and 100000'
        WHEN retry_limit NOT BETWEEN 0 AND 100 THEN 'retry_limit must be between 0 and 100'
    END;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'invalid service setting: %', bad USING ERRCODE = 'invalid_parameter_value';
    END IF;
END $$;
COMMENT ON FUNCTION conveyor._service_settings_check(interval, interval, interval, int, int) IS
    'internal: checks a service''s intervals and limits';

-- Create a service.
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
    retry_limit int DEFAULT 5)
RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
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
    IF EXISTS (SELECT 1 FROM conveyor.service s WHERE s.name = service_create.name) THEN
        RAISE EXCEPTION 'service "%" already exists', name USING ERRCODE = 'duplicate_object';
    END IF;
    INSERT INTO conveyor.service (name, owner, push_type, push_type_config, plan, failure_policy,
                                  health_interval, poll_interval, update_timeout, max_in_flight, retry_limit)
    VALUES (name, coalesce(owner, session_user::regrole), push_type, push_type_config, plan, failure_policy,
            health_interval, poll_interval, update_timeout, max_in_flight, retry_limit);
    RETURN name;
END $$;
COMMENT ON FUNCTION conveyor.service_create(text, text, text, jsonb, text, regrole, interval, interval, interval, int, int) IS
    'Create a service: its push type and config, default push plan, failure policy and owner';

-- Change a service's settings; NULL leaves a setting as it is.
CREATE FUNCTION conveyor.service_alter(
    name text,
    plan text DEFAULT NULL,
    push_type_config jsonb DEFAULT NULL,
    failure_policy text DEFAULT NULL,
    health_interval interval DEFAULT NULL,
    poll_interval interval DEFAULT NULL,
    update_timeout interval DEFAULT NULL,
    max_in_flight int DEFAULT NULL,
    retry_limit int DEFAULT NULL)
RETURNS text LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM 1 FROM conveyor.service s WHERE s.name = service_alter.name FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'service "%" does not exist', name USING ERRCODE = 'undefined_object';
    END IF;
    IF plan IS NOT NULL THEN PERFORM conveyor._push_plan_check(plan); END IF;
    IF failure_policy IS NOT NULL THEN PERFORM conveyor._failure_policy_check(failure_policy); END IF;
    PERFORM conveyor._service_settings_check(health_interval, poll_interval, update_timeout,
                                             max_in_flight, retry_limit);
    IF push_type_config IS NOT NULL AND jsonb_typeof(push_type_config) <> 'object' THEN
        RAISE EXCEPTION 'push type config of service "%" must be a JSON object', name
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    UPDATE conveyor.service s SET
        plan = coalesce(service_alter.plan, s.plan),
        push_type_config = coalesce(service_alter.push_type_config, s.push_type_config),
        failure_policy = coalesce(service_alter.failure_policy, s.failure_policy),
        health_interval = coalesce(service_alter.health_interval, s.health_interval),
        poll_interval = coalesce(service_alter.poll_interval, s.poll_interval),
        update_timeout = coalesce(service_alter.update_timeout, s.update_timeout),
        max_in_flight = coalesce(service_alter.max_in_flight, s.max_in_flight),
        retry_limit = coalesce(service_alter.retry_limit, s.retry_limit)
     WHERE s.name = service_alter.name;
    RETURN name;
END $$;
COMMENT ON FUNCTION conveyor.service_alter(text, text, jsonb, text, interval, interval, interval, int, int) IS
    'Change a service''s plan, push type config, failure policy or intervals (NULL leaves one unchanged)';
