-- conveyor 0.2: starting and controlling pushes. Every action records the
-- acting role (session_user), the time and an optional reason as a push
-- event, refuses actions that make no sense in the push's state, and wakes
-- the workers when the transaction commits.

-- Lock a push for an action, or raise 42704 if there is none.
CREATE FUNCTION conveyor._push_lock(p_id bigint) RETURNS conveyor.push
LANGUAGE plpgsql AS $$
DECLARE
    p conveyor.push;
BEGIN
    SELECT * INTO p FROM conveyor.push WHERE id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'push % does not exist', coalesce(p_id::text, 'NULL')
            USING ERRCODE = 'undefined_object',
                  HINT = 'conveyor.push lists pushes.';
    END IF;
    RETURN p;
END $$;
COMMENT ON FUNCTION conveyor._push_lock(bigint) IS 'internal: locks a push for an action';

-- Raise 55000 unless the push is in one of the given states.
CREATE FUNCTION conveyor._push_require(p conveyor.push, action text, states text[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT p.state = ANY (states) THEN
        RAISE EXCEPTION 'cannot % push %: it is %', action, p.id, p.state
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = CASE WHEN p.ended_at IS NOT NULL
                                THEN format('Push %s of service %s ended at %s (%s): %s.', p.id, p.service,
                                            p.ended_at, p.outcome, p.outcome_reason)
                                ELSE format('Push %s of service %s is %s.', p.id, p.service, p.state) END,
                  HINT = format('Only a push that is %s can %s.', array_to_string(states, ' or '),
                                CASE action
                                    WHEN 'pause' THEN 'be paused'
                                    WHEN 'resume' THEN 'be resumed'
                                    WHEN 'cancel' THEN 'be cancelled'
                                    WHEN 'revert' THEN 'be reverted'
                                    WHEN 'skip a phase of' THEN 'have a phase skipped'
                                    WHEN 'skip healthchecks of' THEN 'have its healthchecks skipped'
                                    WHEN 'skip the bake of' THEN 'have its bake skipped'
                                    ELSE 'do that' END);
    END IF;
END $$;
COMMENT ON FUNCTION conveyor._push_require(conveyor.push, text, text[]) IS
    'internal: raises unless the push is in one of the states';

-- Raise 55000 for a revert push: it has no healthchecks and no bake to skip.
CREATE FUNCTION conveyor._push_not_revert(p conveyor.push, what text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF p.kind = 'revert' THEN
        RAISE EXCEPTION 'cannot skip the % of push %: it is a revert', what, p.id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = format('Push %s reverts push %s; reverts check no health and do not bake.', p.id, p.reverts);
    END IF;
END $$;
COMMENT ON FUNCTION conveyor._push_not_revert(conveyor.push, text) IS
    'internal: raises for a revert push, which has no healthchecks or bake';

-- Start a push of a version to a service; returns the push id.
CREATE FUNCTION conveyor.push_start(service text, version text, reason text DEFAULT NULL,
                                    plan text DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    s conveyor.service;
    active conveyor.push;
    v_plan text;
    v_id bigint;
    n_phases int;
BEGIN
    SELECT * INTO s FROM conveyor.service sv WHERE sv.name = push_start.service FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'service "%" does not exist', service
            USING ERRCODE = 'undefined_object',
                  HINT = 'Create it with conveyor.service_create.';
    END IF;
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

    INSERT INTO conveyor.push (service, version, plan, seed, next_step_at, start_reason)
    VALUES (s.name, version, v_plan, 0, clock_timestamp(), reason)
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
    'Start pushing a version to a service (with its plan, or the one given); returns the push id';

-- Pause a running push; workers leave it alone until it is resumed.
CREATE FUNCTION conveyor.push_pause(push_id bigint, reason text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    p conveyor.push := conveyor._push_lock(push_id);
BEGIN
    PERFORM conveyor._push_require(p, 'pause', '{running}');
    UPDATE conveyor.push SET state = 'paused', next_step_at = NULL WHERE id = p.id;
    PERFORM conveyor._event(p.id, 'push_paused', p.phase, '{}', session_user, reason);
    PERFORM conveyor._wake();
END $$;
COMMENT ON FUNCTION conveyor.push_pause(bigint, text) IS 'Pause a running push';

-- Resume a paused push where it stopped.
CREATE FUNCTION conveyor.push_resume(push_id bigint, reason text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    p conveyor.push := conveyor._push_lock(push_id);
BEGIN
    PERFORM conveyor._push_require(p, 'resume', '{paused}');
    UPDATE conveyor.push SET state = 'running', next_step_at = clock_timestamp(), errors = 0 WHERE id = p.id;
    PERFORM conveyor._event(p.id, 'push_resumed', p.phase, '{}', session_user, reason);
    PERFORM conveyor._wake();
END $$;
COMMENT ON FUNCTION conveyor.push_resume(bigint, text) IS 'Resume a paused push';

-- Cancel an active push: a good failure; updates already made stay.
CREATE FUNCTION conveyor.push_cancel(push_id bigint, reason text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    p conveyor.push := conveyor._push_lock(push_id);
BEGIN
    PERFORM conveyor._push_require(p, 'cancel', '{running,paused}');
    PERFORM conveyor._push_end(p.id, 'cancelled', 'good failure',
        format('cancelled by %s%s', session_user, coalesce(': ' || reason, '')), session_user);
    PERFORM conveyor._wake();
END $$;
COMMENT ON FUNCTION conveyor.push_cancel(bigint, text) IS
    'Cancel an active push (a good failure); subunits already updated keep the new version';

-- Start the revert of a push: a new push (kind revert) returning every subunit
-- it updated to the version it ran before. Ends the push if it is active.
CREATE FUNCTION conveyor._revert_start(p_id bigint, p_actor name, p_reason text) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    p conveyor.push;
    v_id bigint;
    v_version text;
    n int;
BEGIN
    SELECT * INTO p FROM conveyor.push WHERE id = p_id FOR UPDATE;
    IF p.state IN ('running', 'paused') THEN
        PERFORM conveyor._push_end(p.id, 'reverted', 'good failure', p_reason, p_actor);
    ELSE
        PERFORM conveyor._event(p.id, 'revert_requested', NULL, '{}', p_actor, p_reason);
    END IF;
    SELECT from_version INTO v_version
      FROM conveyor.push_subunit WHERE push_id = p.id AND state IN ('done', 'sent') AND from_version IS NOT NULL
     GROUP BY from_version ORDER BY count(*) DESC, from_version LIMIT 1;

    INSERT INTO conveyor.push (service, version, kind, reverts, plan, seed, next_step_at, step, phases,
                               started_by, start_reason)
    VALUES (p.service, coalesce(v_version, p.version), 'revert', p.id, p.plan, 0, clock_timestamp(), 'update', 1,
            coalesce(p_actor, p.started_by), p_reason)
    RETURNING id INTO v_id;
    UPDATE conveyor.push SET seed = v_id WHERE id = v_id;

    INSERT INTO conveyor.push_subunit (push_id, unit, subunit, phase, from_version, to_version, idempotency_key)
    SELECT v_id, ps.unit, ps.subunit, 0, ps.to_version, ps.from_version,
           format('%s/revert/%s', v_id, md5(ps.unit || '/' || ps.subunit))
      FROM conveyor.push_subunit ps
     WHERE ps.push_id = p.id AND ps.state IN ('done', 'sent')
       AND ps.from_version IS NOT NULL AND ps.from_version <> ps.to_version;
    GET DIAGNOSTICS n = ROW_COUNT;
    INSERT INTO conveyor.push_phase (push_id, position, scope, amount, bake, fault_tolerance, state,
                                     started_at, targets, already)
    VALUES (v_id, 0, '*', '100%', '0', 0, 'running', clock_timestamp(), n, 0);
    PERFORM conveyor._event(v_id, 'push_started', NULL,
        jsonb_build_object('service', p.service, 'reverts', p.id, 'subunits', n), p_actor, p_reason);
    PERFORM conveyor._event(v_id, 'phase_started', 0,
        jsonb_build_object('targets', n, 'already', 0)
        || conveyor._timing(clock_timestamp(), clock_timestamp(), 0));
    PERFORM conveyor._wake();
    RETURN v_id;
END $$;
COMMENT ON FUNCTION conveyor._revert_start(bigint, name, text) IS 'internal: starts the revert of a push';

-- Revert a push: every subunit it updated returns to its previous version. Returns the revert push's id.
CREATE FUNCTION conveyor.push_revert(push_id bigint, reason text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    p conveyor.push := conveyor._push_lock(push_id);
    later conveyor.push;
BEGIN
    IF p.kind = 'revert' THEN
        RAISE EXCEPTION 'cannot revert push %: it is itself a revert', p.id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  HINT = 'Start a push of the version you want instead.';
    END IF;
    PERFORM conveyor._push_require(p, 'revert', '{running,paused,succeeded,failed,cancelled}');
    IF p.state NOT IN ('running', 'paused') THEN
        -- only the service's latest push may be reverted: reverting an older one
        -- would overwrite what came after it
        PERFORM 1 FROM conveyor.service WHERE name = p.service FOR UPDATE;
        SELECT * INTO later FROM conveyor.push x
         WHERE x.service = p.service AND x.id > p.id ORDER BY x.id LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'cannot revert push %: push % of service % came after it', p.id, later.id, p.service
                USING ERRCODE = 'object_not_in_prerequisite_state',
                      DETAIL = format('Push %s (%s %s) is %s.', later.id, later.kind, later.version, later.state),
                      HINT = 'Only the latest push of a service can be reverted.';
        END IF;
    END IF;
    RETURN conveyor._revert_start(p.id, session_user,
        format('reverted by %s%s', session_user, coalesce(': ' || reason, '')));
END $$;
COMMENT ON FUNCTION conveyor.push_revert(bigint, text) IS
    'Revert a push: a new push (kind revert) returns the subunits it updated to their previous versions';

-- Skip the rest of the current phase; the next phase (at worst the completion phase) picks up what is left.
CREATE FUNCTION conveyor.push_skip_phase(push_id bigint, reason text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    p conveyor.push := conveyor._push_lock(push_id);
    ph conveyor.push_phase;
BEGIN
    PERFORM conveyor._push_require(p, 'skip a phase of', '{running,paused}');
    SELECT * INTO ph FROM conveyor.push_phase WHERE push_phase.push_id = p.id AND position = p.phase;
    IF ph.implicit OR p.kind = 'revert' THEN
        RAISE EXCEPTION 'cannot skip phase % of push %: it is the last phase', p.phase + 1, p.id
            USING ERRCODE = 'object_not_in_prerequisite_state',
                  DETAIL = 'Skipping the last phase would leave the service half-pushed.',
                  HINT = format('Cancel the push instead: conveyor.push_cancel(%s).', p.id);
    END IF;
    UPDATE conveyor.push_subunit SET state = 'skipped'
     WHERE push_subunit.push_id = p.id AND phase = p.phase AND state = 'pending';
    PERFORM conveyor._phase_finish(p, 'skipped', session_user, reason);
    UPDATE conveyor.push SET next_step_at = clock_timestamp() WHERE id = p.id AND state = 'running';
    PERFORM conveyor._wake();
END $$;
COMMENT ON FUNCTION conveyor.push_skip_phase(bigint, text) IS
    'Skip the rest of a push''s current phase and move to the next';

-- Stop checking health for the rest of this push.
CREATE FUNCTION conveyor.push_skip_healthchecks(push_id bigint, reason text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    p conveyor.push := conveyor._push_lock(push_id);
BEGIN
    PERFORM conveyor._push_require(p, 'skip healthchecks of', '{running,paused}');
    PERFORM conveyor._push_not_revert(p, 'healthchecks');
    IF p.skip_healthchecks THEN
        RAISE EXCEPTION 'healthchecks of push % are already skipped', p.id
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    UPDATE conveyor.push SET skip_healthchecks = true WHERE id = p.id;
    PERFORM conveyor._event(p.id, 'healthchecks_skipped', p.phase, '{}', session_user, reason);
    PERFORM conveyor._wake();
END $$;
COMMENT ON FUNCTION conveyor.push_skip_healthchecks(bigint, text) IS
    'Skip healthchecks for the rest of a push (a paused push still needs push_resume)';

-- End the current phase's bake now (or, before it bakes, make its bake zero).
CREATE FUNCTION conveyor.push_skip_bake(push_id bigint, reason text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    p conveyor.push := conveyor._push_lock(push_id);
    ph conveyor.push_phase;
BEGIN
    PERFORM conveyor._push_require(p, 'skip the bake of', '{running,paused}');
    PERFORM conveyor._push_not_revert(p, 'bake');
    SELECT * INTO ph FROM conveyor.push_phase WHERE push_phase.push_id = p.id AND position = p.phase;
    IF ph.bake_skipped THEN
        RAISE EXCEPTION 'the bake of phase % of push % is already skipped', p.phase + 1, p.id
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    UPDATE conveyor.push_phase
       SET bake_skipped = true,
           bake_until = CASE WHEN bake_until IS NOT NULL THEN least(bake_until, clock_timestamp()) END
     WHERE push_phase.push_id = p.id AND position = p.phase;
    UPDATE conveyor.push SET next_step_at = clock_timestamp() WHERE id = p.id AND state = 'running';
    PERFORM conveyor._event(p.id, 'bake_skipped', p.phase, '{}', session_user, reason);
    PERFORM conveyor._wake();
END $$;
COMMENT ON FUNCTION conveyor.push_skip_bake(bigint, text) IS
    'Skip the bake of a push''s current phase';
