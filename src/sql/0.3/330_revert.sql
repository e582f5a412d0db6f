-- conveyor 0.3: what a revert returns. 0.2's revert (src/sql/0.2/210_push_api.sql)
-- left out subunits whose update failed after the push type took it, so a
-- version that crashed on start stayed on them; they now go back too.
-- Updates refused outright, or to unreachable subunits, changed nothing and
-- are still left alone.

CREATE OR REPLACE FUNCTION conveyor._revert_start(p_id bigint, p_actor name, p_reason text) RETURNS bigint
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
      FROM conveyor.push_subunit WHERE push_id = p.id AND from_version IS NOT NULL
       AND (state IN ('done', 'sent') OR (state = 'failed' AND (error = 'update failed' OR error LIKE 'not confirmed within %')))
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
     WHERE ps.push_id = p.id
       AND (ps.state IN ('done', 'sent')
            -- an update the push type took and then failed (or never confirmed) may
            -- have left the new version half-applied: it goes back too
            OR (ps.state = 'failed' AND (ps.error = 'update failed' OR ps.error LIKE 'not confirmed within %')))
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
