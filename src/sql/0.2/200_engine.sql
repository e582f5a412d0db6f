-- conveyor 0.2: the push engine's decider. A worker claims a due push
-- (FOR UPDATE SKIP LOCKED) and calls conveyor._push_step(id) in one short
-- transaction; every state change appends a push_event row in that same
-- transaction. Steps of one phase: plan -> update (send, then confirm) -> bake.
--
-- This is the hot path: events are inserted inline (PL/pgSQL caches their
-- plans), timing is kept in local variables, and push-type verbs are called
-- through C wrappers that keep one prepared plan per verb function.

-- Append an event to a push's history (for the SQL actions; the engine inserts inline).
CREATE FUNCTION conveyor._event(push_id bigint, kind text, phase int, detail jsonb DEFAULT '{}',
                                actor name DEFAULT NULL, reason text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO conveyor.push_event (push_id, kind, phase, actor, reason, detail)
    VALUES (push_id, kind, phase, actor, reason, coalesce(detail, '{}'));
END $$;
COMMENT ON FUNCTION conveyor._event(bigint, text, int, jsonb, name, text) IS 'internal: appends a push event';

-- Timing facts for a transition event: when the step was due, when a worker
-- started it, and how long push types took in it.
CREATE FUNCTION conveyor._timing(due_at timestamptz, started_at timestamptz, push_type_ms float8)
RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('due_at', due_at, 'started_at', started_at,
                              'push_type_ms', round(push_type_ms::numeric, 3));
$$;
COMMENT ON FUNCTION conveyor._timing(timestamptz, timestamptz, float8) IS
    'internal: timing facts recorded on transition events';

-- Milliseconds since t0.
CREATE FUNCTION conveyor._ms_since(t0 timestamptz) RETURNS float8 LANGUAGE sql VOLATILE AS $$
    SELECT extract(epoch FROM clock_timestamp() - t0)::float8 * 1000;
$$;
COMMENT ON FUNCTION conveyor._ms_since(timestamptz) IS 'internal: milliseconds since a time';

-- The push-type verbs, called with prepared plans (src/verbs.c).
CREATE FUNCTION conveyor._call_get_units(fn regprocedure, service text, config jsonb,
    OUT units text[], OUT labels jsonb[], OUT subunits text[], OUT versions text[], OUT statuses text[])
    LANGUAGE c AS 'MODULE_PATHNAME', 'cv_call_get_units';
COMMENT ON FUNCTION conveyor._call_get_units(regprocedure, text, jsonb) IS
    'internal: calls a get_units verb; its rows as arrays';
CREATE FUNCTION conveyor._call_send_update(fn regprocedure, service text, config jsonb, updates jsonb,
    OUT units text[], OUT subunits text[], OUT errors text[])
    LANGUAGE c AS 'MODULE_PATHNAME', 'cv_call_send_update';
COMMENT ON FUNCTION conveyor._call_send_update(regprocedure, text, jsonb, jsonb) IS
    'internal: calls a send_update verb; its answers (refused, or already done) as arrays';
CREATE FUNCTION conveyor._call_check_health(fn regprocedure, service text, config jsonb, units text[],
    OUT checked bigint, OUT unhealthy jsonb)
    LANGUAGE c AS 'MODULE_PATHNAME', 'cv_call_check_health';
COMMENT ON FUNCTION conveyor._call_check_health(regprocedure, text, jsonb, text[]) IS
    'internal: calls a check_health verb; units checked and the unhealthy ones with reasons';

-- End a push in a final state with its outcome class and reason.
CREATE FUNCTION conveyor._push_end(p_id bigint, p_state text, p_outcome text, p_reason text,
                                   p_actor name DEFAULT NULL, p_timing jsonb DEFAULT '{}')
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_phase int;
BEGIN
    UPDATE conveyor.push SET state = p_state, outcome = p_outcome, outcome_reason = p_reason,
                             ended_at = clock_timestamp(), next_step_at = NULL
     WHERE id = p_id RETURNING phase INTO v_phase;
    IF p_state <> 'succeeded' THEN
        UPDATE conveyor.push_phase SET state = 'failed', ended_at = clock_timestamp()
         WHERE push_id = p_id AND position = v_phase AND state IN ('pending', 'running');
        -- updates never sent will not be
        UPDATE conveyor.push_subunit SET state = 'skipped'
         WHERE push_id = p_id AND state = 'pending';
    END IF;
    INSERT INTO conveyor.push_event (push_id, kind, phase, actor, reason, detail)
    VALUES (p_id, 'push_' || p_state, v_phase, p_actor, p_reason,
            jsonb_build_object('outcome', p_outcome) || coalesce(p_timing, '{}'));
END $$;
COMMENT ON FUNCTION conveyor._push_end(bigint, text, text, text, name, jsonb) IS
    'internal: ends a push (succeeded, failed, cancelled, reverted) with its outcome';

-- A push-type verb failed: retry with exponential backoff and jitter, or end as a bad failure.
CREATE FUNCTION conveyor._push_type_error(p conveyor.push, s conveyor.service, verb text,
                                          code text, message text)
RETURNS timestamptz LANGUAGE plpgsql AS $$
DECLARE
    n int := p.errors + 1;
BEGIN
    UPDATE conveyor.push SET errors = n WHERE id = p.id;
    IF n > s.retry_limit THEN
        PERFORM conveyor._push_end(p.id, 'failed', 'bad failure',
            format('push type %s failed %s times (retry limit %s): %s', verb, n, s.retry_limit, message));
        RETURN NULL;
    END IF;
    INSERT INTO conveyor.push_event (push_id, kind, phase, detail)
    VALUES (p.id, 'push_type_error', p.phase,
            jsonb_build_object('verb', verb, 'sqlstate', code, 'error', message, 'attempt', n,
                               'retry_limit', s.retry_limit));
    -- 1s, 2s, 4s ... capped at a minute, times a random factor in [0.5, 1)
    RETURN clock_timestamp() + least(60, 2 ^ (n - 1)) * (0.5 + random() / 2) * interval '1 second';
END $$;
COMMENT ON FUNCTION conveyor._push_type_error(conveyor.push, conveyor.service, text, text, text) IS
    'internal: retries a failed push-type call with backoff, or ends the push as a bad failure';

-- A step failed unexpectedly (called by the worker after rolling the step back).
CREATE FUNCTION conveyor._push_step_error(p_id bigint, code text, message text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    p conveyor.push;
BEGIN
    SELECT * INTO p FROM conveyor.push WHERE id = p_id FOR UPDATE;
    IF NOT FOUND OR p.state <> 'running' THEN
        RETURN;
    END IF;
    IF p.errors + 1 >= 3 THEN
        UPDATE conveyor.push SET errors = p.errors + 1 WHERE id = p_id;
        PERFORM conveyor._push_end(p_id, 'failed', 'bad failure', 'internal error: ' || message);
        RETURN;
    END IF;
    UPDATE conveyor.push SET errors = p.errors + 1,
           next_step_at = clock_timestamp() + (p.errors + 1) * interval '1 second'
     WHERE id = p_id;
    INSERT INTO conveyor.push_event (push_id, kind, phase, detail)
    VALUES (p_id, 'step_error', p.phase,
            jsonb_build_object('sqlstate', code, 'error', message, 'attempt', p.errors + 1));
END $$;
COMMENT ON FUNCTION conveyor._push_step_error(bigint, text, text) IS
    'internal: records a failed step; three in a row end the push as a bad failure';

-- Step "plan": ask the push type for units, run the C planner, record the phase's targets.
CREATE FUNCTION conveyor._step_plan(p conveyor.push, s conveyor.service, t conveyor.push_type,
                                    p_due timestamptz, p_started timestamptz)
RETURNS timestamptz LANGUAGE plpgsql AS $$
DECLARE
    u record;
    t0 timestamptz := clock_timestamp();
    v_pt float8;
    n_targets int;
    n_already int;
    scopes text[];
    amounts text[];
BEGIN
    BEGIN
        u := conveyor._call_get_units(t.get_units, s.name, s.push_type_config);
        u.units := coalesce(u.units, '{}'); u.labels := coalesce(u.labels, '{}');
        u.subunits := coalesce(u.subunits, '{}'); u.versions := coalesce(u.versions, '{}');
        IF t.needs_push IS NOT NULL THEN
            -- units the push type says need no push count as running the version
            EXECUTE format('SELECT array_agg(CASE WHEN n.needs_push IS FALSE THEN $3 ELSE x.v END ORDER BY x.i) '
                           'FROM unnest($4::text[], $5::text[]) WITH ORDINALITY x(unit, v, i) '
                           'LEFT JOIN %s($1::text, $2::jsonb, $3::text) n ON n.unit = x.unit',
                           t.needs_push::oid::regproc)
               INTO u.versions USING s.name, s.push_type_config, p.version, u.units, u.versions;
            u.versions := coalesce(u.versions, '{}');
        END IF;
    EXCEPTION WHEN OTHERS THEN
        RETURN conveyor._push_type_error(p, s, 'get_units', SQLSTATE, SQLERRM);
    END;
    v_pt := conveyor._ms_since(t0);

    IF p.phase > 0 THEN
        -- updates sent by an earlier (skipped) phase that have landed since
        UPDATE conveyor.push_subunit ps SET state = 'done', done_at = clock_timestamp()
          FROM unnest(u.units, u.subunits, u.versions) x(unit, subunit, version)
         WHERE ps.push_id = p.id AND ps.state = 'sent' AND ps.phase < p.phase
           AND ps.unit = x.unit AND ps.subunit = x.subunit AND x.version = ps.to_version;
    END IF;

    SELECT array_agg(ph.scope ORDER BY ph.position), array_agg(ph.amount ORDER BY ph.position)
      INTO scopes, amounts
      FROM conveyor.push_phase ph WHERE ph.push_id = p.id AND ph.position <= p.phase;

    INSERT INTO conveyor.push_subunit AS ps (push_id, unit, subunit, phase, from_version, to_version,
                                             idempotency_key)
    SELECT p.id, x.unit, x.subunit, p.phase, x.from_version, p.version,
           format('%s/%s/%s', p.id, p.phase, md5(x.unit || '/' || x.subunit))
      FROM conveyor._plan_targets(u.units, u.labels, u.subunits, u.versions, scopes, amounts,
                                  p.phase, p.version, p.seed) x
     WHERE x.subunit IS NOT NULL
        ON CONFLICT (push_id, unit, subunit) DO UPDATE
       SET phase = excluded.phase, state = 'pending', from_version = excluded.from_version,
           idempotency_key = excluded.idempotency_key, error = NULL, sent_at = NULL
     WHERE ps.state IN ('failed', 'gone', 'skipped', 'pending', 'done')
        OR (ps.state = 'sent' AND ps.phase < excluded.phase);
    GET DIAGNOSTICS n_targets = ROW_COUNT;
    n_already := (SELECT count(*) FROM unnest(u.subunits, u.versions) x(subunit, version)
                   WHERE x.subunit IS NOT NULL AND x.version = p.version);

    UPDATE conveyor.push_phase SET state = 'running', started_at = clock_timestamp(),
           targets = n_targets, already = n_already
     WHERE push_id = p.id AND position = p.phase;
    UPDATE conveyor.push SET step = 'update', errors = 0 WHERE id = p.id;
    INSERT INTO conveyor.push_event (push_id, kind, phase, detail)
    VALUES (p.id, 'phase_started', p.phase,
            jsonb_build_object('targets', n_targets, 'already', n_already,
                               'units', (SELECT count(DISTINCT x) FROM unnest(u.units) x),
                               'subunits', cardinality(array_remove(u.subunits, NULL)))
            || conveyor._timing(p_due, p_started, v_pt));
    IF n_targets = 0 THEN
        -- needs-push said no everywhere in scope: nothing to update, nothing to bake
        PERFORM conveyor._phase_finish(p, 'succeeded', NULL, 'nothing to update',
                                       conveyor._timing(p_due, p_started, v_pt));
    END IF;
    RETURN clock_timestamp();
END $$;
COMMENT ON FUNCTION conveyor._step_plan(conveyor.push, conveyor.service, conveyor.push_type, timestamptz, timestamptz) IS
    'internal: plans the current phase of a push';

-- Step "update"/"confirm": confirm in-flight updates, send the next batch, and
-- when every target is resolved, judge the phase against its fault tolerance.
CREATE FUNCTION conveyor._step_update(p conveyor.push, s conveyor.service, t conveyor.push_type,
                                      p_due timestamptz, p_started timestamptz)
RETURNS timestamptz LANGUAGE plpgsql AS $$
DECLARE
    u record;
    answer record;
    ph conveyor.push_phase;
    n_sent int;
    n_pending int;
    batch jsonb;
    t0 timestamptz;
    v_pt float8 := 0;
    n_done int;
    n_failed int;
    n_gone int;
    allowed int;
BEGIN
    SELECT count(*) FILTER (WHERE state = 'sent'), count(*) FILTER (WHERE state = 'pending')
      INTO n_sent, n_pending
      FROM conveyor.push_subunit WHERE push_id = p.id AND phase = p.phase AND state IN ('sent', 'pending');

    -- confirm: which in-flight updates now run the version, failed, or vanished
    IF n_sent > 0 THEN
        t0 := clock_timestamp();
        BEGIN
            u := conveyor._call_get_units(t.get_units, s.name, s.push_type_config);
        EXCEPTION WHEN OTHERS THEN
            RETURN conveyor._push_type_error(p, s, 'get_units', SQLSTATE, SQLERRM);
        END;
        v_pt := v_pt + conveyor._ms_since(t0);
        WITH now_running AS (
            SELECT x.unit, x.subunit, x.version, x.status
              FROM unnest(u.units, u.subunits, u.versions, u.statuses) x(unit, subunit, version, status)
             WHERE x.subunit IS NOT NULL),
        resolved AS (
            SELECT ps.unit, ps.subunit,
                   CASE WHEN r.unit IS NULL THEN 'gone'
                        WHEN r.status IN ('failed', 'unreachable') THEN 'failed'
                        WHEN r.version = ps.to_version AND r.status = 'ok' THEN 'done'
                        WHEN ps.sent_at + s.update_timeout < clock_timestamp() THEN 'failed'
                   END AS state,
                   CASE WHEN r.unit IS NULL THEN 'subunit no longer exists'
                        WHEN r.status IN ('failed', 'unreachable') THEN 'update ' || r.status
                        WHEN r.version = ps.to_version AND r.status = 'ok' THEN NULL
                        ELSE format('not confirmed within %s', s.update_timeout)
                   END AS error
              FROM conveyor.push_subunit ps
              LEFT JOIN now_running r ON r.unit = ps.unit AND r.subunit = ps.subunit
             WHERE ps.push_id = p.id AND ps.phase = p.phase AND ps.state = 'sent'),
        changed AS (
            UPDATE conveyor.push_subunit ps
               SET state = r.state, error = r.error,
                   done_at = CASE WHEN r.state = 'done' THEN clock_timestamp() END
              FROM resolved r
             WHERE r.state IS NOT NULL AND ps.push_id = p.id AND ps.unit = r.unit AND ps.subunit = r.subunit
            RETURNING 1)
        SELECT n_sent - count(*) INTO n_sent FROM changed;
    END IF;

    -- send: the next batch, keeping at most max_in_flight updates in flight
    IF n_pending > 0 AND n_sent < s.max_in_flight THEN
        SELECT jsonb_agg(jsonb_build_object('unit', b.unit, 'subunit', b.subunit,
                                            'version', b.to_version, 'key', b.idempotency_key)
                         ORDER BY b.unit, b.subunit)
          INTO batch
          FROM (SELECT ps.unit, ps.subunit, ps.to_version, ps.idempotency_key
                  FROM conveyor.push_subunit ps
                 WHERE ps.push_id = p.id AND ps.phase = p.phase AND ps.state = 'pending'
                 ORDER BY ps.unit, ps.subunit
                 LIMIT s.max_in_flight - n_sent) b;
        t0 := clock_timestamp();
        BEGIN
            answer := conveyor._call_send_update(t.send_update, s.name, s.push_type_config, batch);
        EXCEPTION WHEN OTHERS THEN
            RETURN conveyor._push_type_error(p, s, 'send_update', SQLSTATE, SQLERRM);
        END;
        v_pt := v_pt + conveyor._ms_since(t0);
        -- no row: accepted, in flight; a row with an error: refused; a row
        -- without one: the push type finished the update while sending
        WITH answered AS (
            UPDATE conveyor.push_subunit ps
               SET state = CASE WHEN e.unit IS NULL THEN 'sent' WHEN e.error IS NULL THEN 'done' ELSE 'failed' END,
                   error = e.error, sent_at = clock_timestamp(), attempts = ps.attempts + 1,
                   done_at = CASE WHEN e.unit IS NOT NULL AND e.error IS NULL THEN clock_timestamp() END
              FROM jsonb_to_recordset(batch) b(unit text, subunit text)
              LEFT JOIN unnest(answer.units, answer.subunits, answer.errors) e(unit, subunit, error)
                ON e.unit = b.unit AND e.subunit = b.subunit
             WHERE ps.push_id = p.id AND ps.unit = b.unit AND ps.subunit = b.subunit
            RETURNING ps.state, ps.error)
        INSERT INTO conveyor.push_event (push_id, kind, phase, detail)
        SELECT p.id, 'update_batch', p.phase,
               jsonb_build_object('sent', count(*) FILTER (WHERE a.state = 'sent'),
                                  'done', count(*) FILTER (WHERE a.state = 'done'),
                                  'refused', count(*) FILTER (WHERE a.state = 'failed'),
                                  'errors', coalesce(jsonb_agg(DISTINCT a.error) FILTER (WHERE a.error IS NOT NULL), '[]'))
               || conveyor._timing(p_due, p_started, v_pt)
          FROM answered a;
        IF p.errors <> 0 THEN
            UPDATE conveyor.push SET errors = 0 WHERE id = p.id;
        END IF;
        RETURN clock_timestamp();
    END IF;

    IF n_pending > 0 OR n_sent > 0 THEN
        IF n_pending = 0 AND (p.step <> 'confirm' OR p.errors <> 0) THEN
            UPDATE conveyor.push SET step = 'confirm', errors = 0 WHERE id = p.id;
        END IF;
        RETURN clock_timestamp() + s.poll_interval;
    END IF;

    -- every target resolved: judge the phase
    SELECT count(*) FILTER (WHERE state = 'done'), count(*) FILTER (WHERE state = 'failed'),
           count(*) FILTER (WHERE state = 'gone')
      INTO n_done, n_failed, n_gone
      FROM conveyor.push_subunit WHERE push_id = p.id AND phase = p.phase;
    UPDATE conveyor.push_phase
       SET updated = n_done, failed = n_failed, gone = n_gone, updates_done_at = clock_timestamp(),
           bake_until = clock_timestamp() + CASE WHEN bake_skipped OR p.kind = 'revert' THEN '0' ELSE bake END
     WHERE push_id = p.id AND position = p.phase
     RETURNING * INTO ph;
    allowed := floor((n_done + n_failed) * ph.fault_tolerance / 100);
    INSERT INTO conveyor.push_event (push_id, kind, phase, detail)
    VALUES (p.id, 'updates_confirmed', p.phase,
            jsonb_build_object('updated', n_done, 'failed', n_failed, 'gone', n_gone,
                               'fault_tolerance', ph.fault_tolerance, 'failures_allowed', allowed)
            || conveyor._timing(p_due, p_started, v_pt));
    IF n_failed > allowed THEN
        PERFORM conveyor._push_end(p.id, 'failed', 'good failure',
            format('update failures over tolerance in phase %s: %s of %s subunits failed (tolerance %s%%, %s allowed)',
                   p.phase + 1, n_failed, n_done + n_failed, ph.fault_tolerance, allowed),
            NULL, conveyor._timing(p_due, p_started, v_pt));
        RETURN NULL;
    END IF;
    UPDATE conveyor.push SET step = 'bake', errors = 0 WHERE id = p.id;
    IF p.skip_healthchecks AND p.kind = 'push' THEN
        INSERT INTO conveyor.push_event (push_id, kind, phase, reason)
        VALUES (p.id, 'health_skipped', p.phase, 'healthchecks skipped for this push');
    END IF;
    RETURN clock_timestamp();
END $$;
COMMENT ON FUNCTION conveyor._step_update(conveyor.push, conveyor.service, conveyor.push_type, timestamptz, timestamptz) IS
    'internal: sends and confirms the current phase''s updates';

-- Apply the service's failure policy to an unhealthy push.
CREATE FUNCTION conveyor._apply_failure_policy(p conveyor.push, s conveyor.service, reason text,
                                               p_timing jsonb DEFAULT '{}')
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    CASE s.failure_policy
        WHEN 'pause' THEN
            UPDATE conveyor.push SET state = 'paused', next_step_at = NULL WHERE id = p.id;
            INSERT INTO conveyor.push_event (push_id, kind, phase, reason, detail)
            VALUES (p.id, 'push_paused', p.phase, reason, jsonb_build_object('policy', 'pause') || p_timing);
        WHEN 'revert' THEN
            PERFORM conveyor._revert_start(p.id, NULL, 'automatic revert: ' || reason);
        ELSE
            PERFORM conveyor._push_end(p.id, 'failed', 'good failure', reason, NULL, p_timing);
    END CASE;
END $$;
COMMENT ON FUNCTION conveyor._apply_failure_policy(conveyor.push, conveyor.service, text, jsonb) IS
    'internal: pauses, reverts or fails an unhealthy push per the service''s failure policy';

-- Finish the current phase: on to the next, or the push succeeded.
CREATE FUNCTION conveyor._phase_finish(p conveyor.push, p_state text, p_actor name DEFAULT NULL,
                                       p_reason text DEFAULT NULL, p_timing jsonb DEFAULT '{}')
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE conveyor.push_phase SET state = p_state, ended_at = clock_timestamp()
     WHERE push_id = p.id AND position = p.phase;
    INSERT INTO conveyor.push_event (push_id, kind, phase, actor, reason, detail)
    VALUES (p.id, 'phase_' || p_state, p.phase, p_actor, p_reason, coalesce(p_timing, '{}'));
    IF p.phase + 1 >= p.phases THEN
        PERFORM conveyor._push_end(p.id, 'succeeded', 'success',
            CASE WHEN p.kind = 'revert' THEN format('reverted push %s', p.reverts)
                 ELSE format('%s runs version %s', p.service, p.version) END,
            NULL, p_timing);
    ELSE
        UPDATE conveyor.push SET phase = p.phase + 1, step = 'plan', errors = 0 WHERE id = p.id;
    END IF;
END $$;
COMMENT ON FUNCTION conveyor._phase_finish(conveyor.push, text, name, text, jsonb) IS
    'internal: ends the current phase and moves the push on';

-- Step "bake": check health at the service's interval until the bake time is over.
CREATE FUNCTION conveyor._step_bake(p conveyor.push, s conveyor.service, t conveyor.push_type,
                                    p_due timestamptz, p_started timestamptz)
RETURNS timestamptz LANGUAGE plpgsql AS $$
DECLARE
    v_bake_until timestamptz;
    touched text[];
    h record;
    t0 timestamptz;
    v_pt float8 := 0;
BEGIN
    v_bake_until := (SELECT bake_until FROM conveyor.push_phase WHERE push_id = p.id AND position = p.phase);
    IF p.kind = 'push' AND NOT p.skip_healthchecks AND t.check_health IS NOT NULL THEN
        touched := (SELECT array_agg(DISTINCT unit ORDER BY unit)
                      FROM conveyor.push_subunit WHERE push_id = p.id AND state IN ('done', 'sent'));
        IF touched IS NOT NULL THEN
            t0 := clock_timestamp();
            BEGIN
                h := conveyor._call_check_health(t.check_health, s.name, s.push_type_config, touched);
            EXCEPTION WHEN OTHERS THEN
                RETURN conveyor._push_type_error(p, s, 'check_health', SQLSTATE, SQLERRM);
            END;
            v_pt := conveyor._ms_since(t0);
            INSERT INTO conveyor.push_event (push_id, kind, phase, detail)
            VALUES (p.id, 'health_checked', p.phase,
                    jsonb_build_object('healthy', h.unhealthy IS NULL, 'units_checked', h.checked,
                                       'unhealthy', coalesce(h.unhealthy, '[]'))
                    || conveyor._timing(p_due, p_started, v_pt));
            IF h.unhealthy IS NOT NULL THEN
                PERFORM conveyor._apply_failure_policy(p, s,
                    format('unhealthy in phase %s: %s', p.phase + 1,
                           (SELECT string_agg(format('%s (%s)', e->>'unit', coalesce(e->>'reason', 'no reason given')), ', ')
                              FROM jsonb_array_elements(h.unhealthy) e)),
                    conveyor._timing(p_due, p_started, v_pt));
                RETURN NULL;
            END IF;
        END IF;
    END IF;
    IF p.errors <> 0 THEN
        UPDATE conveyor.push SET errors = 0 WHERE id = p.id;
    END IF;
    IF clock_timestamp() >= v_bake_until THEN
        PERFORM conveyor._phase_finish(p, 'succeeded', NULL, NULL, conveyor._timing(p_due, p_started, v_pt));
        RETURN clock_timestamp();
    END IF;
    RETURN least(v_bake_until, clock_timestamp() + s.health_interval);
END $$;
COMMENT ON FUNCTION conveyor._step_bake(conveyor.push, conveyor.service, conveyor.push_type, timestamptz, timestamptz) IS
    'internal: bakes the current phase, checking health';

-- Advance one push as far as it can go without waiting (bounded), in the caller's transaction.
-- The caller (a worker) holds the push row locked FOR UPDATE.
CREATE FUNCTION conveyor._push_step(p_id bigint) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    p conveyor.push;
    s conveyor.service;
    t conveyor.push_type;
    next_at timestamptz;
    v_due timestamptz;
    v_started timestamptz;
    budget int := 16;
BEGIN
    SELECT * INTO p FROM conveyor.push WHERE id = p_id FOR UPDATE;
    IF NOT FOUND OR p.state <> 'running' THEN
        RETURN;
    END IF;
    SELECT * INTO s FROM conveyor.service WHERE name = p.service;
    SELECT * INTO t FROM conveyor.push_type WHERE name = s.push_type;
    v_due := p.next_step_at;
    LOOP
        v_started := clock_timestamp();
        next_at := CASE p.step
            WHEN 'plan' THEN conveyor._step_plan(p, s, t, v_due, v_started)
            WHEN 'bake' THEN conveyor._step_bake(p, s, t, v_due, v_started)
            ELSE conveyor._step_update(p, s, t, v_due, v_started)
        END;
        SELECT * INTO p FROM conveyor.push WHERE id = p_id;
        EXIT WHEN p.state <> 'running' OR next_at IS NULL;
        budget := budget - 1;
        IF next_at > clock_timestamp() OR budget = 0 THEN
            UPDATE conveyor.push SET next_step_at = next_at WHERE id = p_id;
            EXIT;
        END IF;
        -- the next transition is due at once
        v_due := clock_timestamp();
    END LOOP;
END $$;
COMMENT ON FUNCTION conveyor._push_step(bigint) IS
    'internal: advances one push (called by the workers with the push locked)';
