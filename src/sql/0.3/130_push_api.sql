-- conveyor 0.3: starting pushes and previewing them, with the caller checked
-- and pushes that cannot work refused before they start.

-- How many units a scope matches (C: the planner's scope matcher).
CREATE FUNCTION conveyor._scope_unit_count(scope text, units text[], labels jsonb[]) RETURNS int
    LANGUAGE c IMMUTABLE AS 'MODULE_PATHNAME', 'cv_scope_unit_count';
COMMENT ON FUNCTION conveyor._scope_unit_count(text, text[], jsonb[]) IS
    'internal: how many distinct units of get_units rows the scope matches';

-- Raise 22023 if a phase of the plan has a scope that matches none of the
-- service's units: such a push cannot work, so it must not start.
CREATE FUNCTION conveyor._push_plan_fits(s conveyor.service, v_plan text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t conveyor.push_type;
    u record;
    ph record;
    n_units int;
BEGIN
    SELECT * INTO t FROM conveyor.push_type WHERE name = s.push_type;
    u := conveyor._get_units_now(s);
    n_units := (SELECT count(DISTINCT x) FROM unnest(u.units) x);
    IF n_units = 0 THEN
        RAISE EXCEPTION 'service "%" has no units', s.name
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Push type %s reports no units for service %s.', s.push_type, s.name),
                  HINT = 'Check the service''s push type config.';
    END IF;
    FOR ph IN SELECT f.position, f.scope FROM conveyor.push_plan_phase f WHERE f.plan = v_plan ORDER BY f.position LOOP
        IF conveyor._scope_unit_count(ph.scope, u.units, coalesce(u.labels, '{}')) = 0 THEN
            RAISE EXCEPTION 'phase % of push plan "%" matches no unit of service "%"', ph.position + 1, v_plan, s.name
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('Scope %s matches none of its %s units (%s).', ph.scope, n_units,
                                      (SELECT string_agg(DISTINCT x, ', ') FROM (SELECT x FROM unnest(u.units) x LIMIT 20) y)),
                      HINT = 'Fix the plan''s scope, or push with another plan (conveyor.plan_preview shows what a plan would do).';
        END IF;
    END LOOP;
END $$;
COMMENT ON FUNCTION conveyor._push_plan_fits(conveyor.service, text) IS
    'internal: raises unless every phase of the plan matches a unit of the service';

-- Start a push of a version to a service; returns the push id. Refused
-- (and nothing written) unless the acting role may push the service, the
-- version is valid, no push is active and every phase matches a unit.
CREATE OR REPLACE FUNCTION conveyor.push_start(service text, version text, reason text DEFAULT NULL,
                                               plan text DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, conveyor, pg_temp AS $$
DECLARE
    s conveyor.service;
    active conveyor.push;
    v_plan text;
    v_id bigint;
    n_phases int;
    t0 timestamptz;
    v_call_ms float8;
BEGIN
    SELECT * INTO s FROM conveyor.service sv WHERE sv.name = push_start.service FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'service "%" does not exist', service
            USING ERRCODE = 'undefined_object',
                  HINT = 'Create it with conveyor.service_create.';
    END IF;
    PERFORM conveyor._authorize('service', s.name, s.owner, 'start pushes of', 'conveyor_admin');
    IF version IS NULL OR length(version) = 0 OR length(version) > 200 OR version ~ '[[:cntrl:]]' THEN
        RAISE EXCEPTION 'invalid version %', coalesce(quote_literal(version), 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'A version is a string of 1 to 200 characters with no control characters.';
    END IF;
    v_plan := coalesce(plan, s.plan);
    PERFORM conveyor._push_plan_check(v_plan);
    SELECT * INTO active FROM conveyor.push p
     WHERE p.service = s.name AND p.state IN ('running', 'paused');
    IF FOUND THEN
        RAISE EXCEPTION 'service "%" already has an active push', s.name
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('Push %s (%s %s) is %s since %s.', active.id, active.kind, active.version,
                                  active.state, active.created_at),
                  HINT = format('Wait for it to end, or cancel it with conveyor.push_cancel(%s).', active.id);
    END IF;
    t0 := clock_timestamp();
    PERFORM conveyor._push_plan_fits(s, v_plan);
    -- over HTTP, that asked the endpoints for their units: how long their calls
    -- take places the push in the workers' queue (conveyor.push.call_ms)
    IF EXISTS (SELECT FROM conveyor.http_push_type h WHERE h.name = s.push_type) THEN
        v_call_ms := least(conveyor._ms_since(t0), 1000);
    END IF;

    INSERT INTO conveyor.push (service, version, plan, seed, next_step_at, start_reason, call_ms)
    VALUES (s.name, version, v_plan, 0, clock_timestamp(), reason, v_call_ms)
    RETURNING id INTO v_id;
    -- the push's id fixes its subunit choice, so a re-plan picks the same subunits
    UPDATE conveyor.push SET seed = v_id WHERE id = v_id;

    INSERT INTO conveyor.push_phase (push_id, position, scope, amount, bake, fault_tolerance)
    SELECT v_id, ph.position, ph.scope, ph.amount, ph.bake, ph.fault_tolerance
      FROM conveyor.push_plan_phase ph WHERE ph.plan = v_plan;
    GET DIAGNOSTICS n_phases = ROW_COUNT;
    -- the completion phase: no push leaves a service half-pushed
    INSERT INTO conveyor.push_phase (push_id, position, scope, amount, bake, fault_tolerance, implicit)
    VALUES (v_id, n_phases, '*', '100%', '0', 0, true);
    UPDATE conveyor.push SET phases = n_phases + 1 WHERE id = v_id;

    PERFORM conveyor._event(v_id, 'push_started', NULL,
        jsonb_build_object('service', s.name, 'version', version, 'plan', v_plan, 'phases', n_phases + 1),
        session_user, reason);
    PERFORM conveyor._wake();
    RETURN v_id;
END $$;
COMMENT ON FUNCTION conveyor.push_start(text, text, text, text) IS
    'Start pushing a version to a service (with its plan, or the one given); returns the push id. '
    'Refused unless you act for the service''s owner, the version is valid and every phase matches a unit';

-- What each phase of a push would update, without starting anything; for the
-- service's owners and readers.
CREATE OR REPLACE FUNCTION conveyor.plan_preview(service text, version text, plan text DEFAULT NULL)
RETURNS TABLE (phase int, scope text, amount text, bake interval, fault_tolerance numeric,
               unit text, updates int, already int, subunits text[])
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, conveyor, pg_temp AS $$
DECLARE
    s conveyor.service;
    t conveyor.push_type;
    u record;
    v_plan text;
BEGIN
    SELECT * INTO s FROM conveyor.service sv WHERE sv.name = plan_preview.service;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'service "%" does not exist', service
            USING ERRCODE = 'undefined_object', HINT = 'Create it with conveyor.service_create.';
    END IF;
    -- it shows the service's units: its owners and readers only
    PERFORM conveyor._authorize('service', s.name, s.owner, 'preview pushes of', 'conveyor_reader');
    v_plan := coalesce(plan, s.plan);
    PERFORM conveyor._push_plan_check(v_plan);
    SELECT * INTO t FROM conveyor.push_type WHERE name = s.push_type;
    u := conveyor._get_units_now(s);
    RETURN QUERY
    WITH phases AS (
        SELECT ph.position, ph.scope, ph.amount, ph.bake, ph.fault_tolerance
          FROM conveyor.push_plan_phase ph WHERE ph.plan = v_plan
        UNION ALL
        SELECT count(*)::int, '*', '100%', '0'::interval, 0::numeric
          FROM conveyor.push_plan_phase ph WHERE ph.plan = v_plan),
    targets AS (
        SELECT x.phase, x.unit, count(*)::int AS n, array_agg(x.subunit ORDER BY x.subunit) AS subs
          FROM conveyor._plan_targets(u.units, u.labels, u.subunits, u.versions,
                   (SELECT array_agg(f.scope ORDER BY f.position) FROM phases f),
                   (SELECT array_agg(f.amount ORDER BY f.position) FROM phases f),
                   0, version, 0) x
         GROUP BY x.phase, x.unit),
    at_version AS (
        SELECT x.unit, count(*)::int AS n
          FROM unnest(u.units, u.subunits, u.versions) x(unit, subunit, v)
         WHERE x.subunit IS NOT NULL AND x.v = version GROUP BY x.unit)
    SELECT f.position + 1, f.scope, f.amount, f.bake, f.fault_tolerance, tg.unit,
           coalesce(tg.n, 0), coalesce(av.n, 0), coalesce(tg.subs, '{}')
      FROM phases f
      LEFT JOIN targets tg ON tg.phase = f.position
      LEFT JOIN at_version av ON av.unit = tg.unit
     ORDER BY f.position, tg.unit;
END $$;
COMMENT ON FUNCTION conveyor.plan_preview(text, text, text) IS
    'The EXPLAIN of a push: per phase and unit, how many subunits it would update (which ones depends on the push''s seed)';
