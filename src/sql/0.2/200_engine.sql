-- conveyor 0.2: the push engine's decider. A worker claims a due push
-- (FOR UPDATE SKIP LOCKED) and calls conveyor._push_step(id) in one short
-- transaction; every state change appends a push_event row in that same
-- transaction. Steps of one phase: plan -> update (send, then confirm) -> bake.

-- Append an event to a push's history.
CREATE FUNCTION conveyor._event(push_id bigint, kind text, phase int, detail jsonb DEFAULT '{}',
                                actor name DEFAULT NULL, reason text DEFAULT NULL)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO conveyor.push_event (push_id, kind, phase, actor, reason, detail)
    VALUES (push_id, kind, phase, actor, reason, coalesce(detail, '{}'));
$$;
COMMENT ON FUNCTION conveyor._event(bigint, text, int, jsonb, name, text) IS 'internal: appends a push event';

-- Time spent in push-type calls during the current step, in milliseconds.
CREATE FUNCTION conveyor._pt_ms() RETURNS float8 LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('conveyor_step.push_type_ms', true), '')::float8, 0);
$$;
COMMENT ON FUNCTION conveyor._pt_ms() IS 'internal: push-type time spent in the current step';

-- Add the time since t0 to the current step's push-type time.
CREATE FUNCTION conveyor._pt_add(t0 timestamptz) RETURNS void LANGUAGE sql AS $$
    SELECT set_config('conveyor_step.push_type_ms',
                      (conveyor._pt_ms() + extract(epoch FROM clock_timestamp() - t0) * 1000)::text, true);
$$;
COMMENT ON FUNCTION conveyor._pt_add(timestamptz) IS 'internal: accounts push-type time';

-- Timing facts for a transition event: when the step was due, when a worker
-- started it, and how long push types took in it.
CREATE FUNCTION conveyor._timing() RETURNS jsonb LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('due_at', nullif(current_setting('conveyor_step.due_at', true), ''),
                              'started_at', nullif(current_setting('conveyor_step.started_at', true), ''),
                              'push_type_ms', round(conveyor._pt_ms()::numeric, 3));
$$;
COMMENT ON FUNCTION conveyor._timing() IS 'internal: timing facts recorded on transition events';

-- End a push in a final state with its outcome class and reason.
CREATE FUNCTION conveyor._push_end(p_id bigint, p_state text, p_outcome text, p_reason text,
                                   p_actor name DEFAULT NULL)
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
    PERFORM conveyor._event(p_id, 'push_' || p_state, v_phase,
                            jsonb_build_object('outcome', p_outcome) || conveyor._timing(),
                            p_actor, p_reason);
END $$;
COMMENT ON FUNCTION conveyor._push_end(bigint, text, text, text, name) IS
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
    PERFORM conveyor._event(p.id, 'push_type_error', p.phase,
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
    PERFORM conveyor._event(p_id, 'step_error', p.phase,
        jsonb_build_object('sqlstate', code, 'error', message, 'attempt', p.errors + 1));
END $$;
COMMENT ON FUNCTION conveyor._push_step_error(bigint, text, text) IS
    'internal: records a failed step; three in a row end the push as a bad failure';

-- The service's units and subunits, as the push type's get_units reports them.
CREATE FUNCTION conveyor._get_units(s conveyor.service, t conveyor.push_type,
    OUT units text[], OUT labels jsonb[], OUT subunits text[], OUT versions text[], OUT statuses text[])
LANGUAGE plpgsql AS $$
DECLARE
    t0 timestamptz := clock_timestamp();
BEGIN
    EXECUTE format('SELECT array_agg(unit::text), array_agg(labels::jsonb), array_agg(subunit::text), '
                   'array_agg(coalesce(version::text, '''')), array_agg(coalesce(status::text, ''ok'')) '
                   'FROM %s($1::text, $2::jsonb)', t.get_units::oid::regproc)
       INTO units, labels, subunits, versions, statuses
      USING s.name, s.push_type_config;
    units := coalesce(units, '{}'); labels := coalesce(labels, '{}'); subunits := coalesce(subunits, '{}');
    versions := coalesce(versions, '{}'); statuses := coalesce(statuses, '{}');
    PERFORM conveyor._pt_add(t0);
END $$;
COMMENT ON FUNCTION conveyor._get_units(conveyor.service, conveyor.push_type) IS
    'internal: calls the push type''s get_units verb';

-- Step "plan": ask the push type for units, run the C planner, record the phase's targets.
CREATE FUNCTION conveyor._step_plan(p conveyor.push, s conveyor.service, t conveyor.push_type)
RETURNS timestamptz LANGUAGE plpgsql AS $$
DECLARE
    u record;
    t0 timestamptz;
    n_targets int;
    n_already int;
    scopes text[];
    amounts text[];
BEGIN
    BEGIN
        u := conveyor._get_units(s, t);
        IF t.needs_push IS NOT NULL THEN
            -- units the push type says need no push count as running the version
            t0 := clock_timestamp();
            EXECUTE format('SELECT array_agg(CASE WHEN n.needs_push IS FALSE THEN $3 ELSE x.v END ORDER BY x.i) '
                           'FROM unnest($4::text[], $5::text[]) WITH ORDINALITY x(unit, v, i) '
                           'LEFT JOIN %s($1::text, $2::jsonb, $3::text) n ON n.unit = x.unit',
                           t.needs_push::oid::regproc)
               INTO u.versions USING s.name, s.push_type_config, p.version, u.units, u.versions;
            u.versions := coalesce(u.versions, '{}');
            PERFORM conveyor._pt_add(t0);
        END IF;
    EXCEPTION WHEN OTHERS THEN
        RETURN conveyor._push_type_error(p, s, 'get_units', SQLSTATE, SQLERRM);
    END;

    -- updates sent by an earlier (skipped) phase that have landed since
    UPDATE conveyor.push_subunit ps SET state = 'done', done_at = clock_timestamp()
      FROM unnest(u.units, u.subunits, u.versions) x(unit, subunit, version)
     WHERE ps.push_id = p.id AND ps.state = 'sent'
       AND ps.unit = x.unit AND ps.subunit = x.subunit AND x.version = ps.to_version;

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

    SELECT count(*) INTO n_already
      FROM unnest(u.subunits, u.versions) x(subunit, version)
     WHERE x.subunit IS NOT NULL AND x.version = p.version;

    UPDATE conveyor.push_phase SET state = 'running', started_at = clock_timestamp(),
           targets = n_targets, already = n_already
     WHERE push_id = p.id AND position = p.phase;
    UPDATE conveyor.push SET step = 'update', errors = 0 WHERE id = p.id;
    PERFORM conveyor._event(p.id, 'phase_started', p.phase,
        jsonb_build_object('targets', n_targets, 'already', n_already,
                           'units', (SELECT count(DISTINCT x) FROM unnest(u.units) x),
                           'subunits', (SELECT count(x) FROM unnest(u.subunits) x))
        || conveyor._timing());
    IF n_targets = 0 THEN
        -- needs-push said no everywhere in scope: nothing to update, nothing to bake
        PERFORM conveyor._phase_finish(p, 'succeeded', NULL, 'nothing to update');
    END IF;
    RETURN clock_timestamp();
END $$;
COMMENT ON FUNCTION conveyor._step_plan(conveyor.push, conveyor.service, conveyor.push_type) IS
    'internal: plans the current phase of a push';

-- Step "update"/"confirm": confirm in-flight updates, send the next batch, and
-- when every target is resolved, judge the phase against its fault tolerance.
CREATE FUNCTION conveyor._step_update(p conveyor.push, s conveyor.service, t conveyor.push_type)
RETURNS timestamptz LANGUAGE plpgsql AS $$
DECLARE
    u record;
    ph conveyor.push_phase;
    n_sent int;
    n_pending int;
    batch jsonb;
    refused_units text[];
    refused_subunits text[];
    refused_errors text[];
    t0 timestamptz;
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
        BEGIN
            u := conveyor._get_units(s, t);
        EXCEPTION WHEN OTHERS THEN
            RETURN conveyor._push_type_error(p, s, 'get_units', SQLSTATE, SQLERRM);
        END;
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
             WHERE ps.push_id = p.id AND ps.phase = p.phase AND ps.state = 'sent')
        UPDATE conveyor.push_subunit ps
           SET state = r.state, error = r.error,
               done_at = CASE WHEN r.state = 'done' THEN clock_timestamp() END
          FROM resolved r
         WHERE r.state IS NOT NULL AND ps.push_id = p.id AND ps.unit = r.unit AND ps.subunit = r.subunit;
        SELECT count(*) INTO n_sent
          FROM conveyor.push_subunit WHERE push_id = p.id AND phase = p.phase AND state = 'sent';
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
            EXECUTE format('SELECT array_agg(unit::text), array_agg(subunit::text), array_agg(error::text) '
                           'FROM %s($1::text, $2::jsonb, $3::jsonb) WHERE error IS NOT NULL',
                           t.send_update::oid::regproc)
               INTO refused_units, refused_subunits, refused_errors
              USING s.name, s.push_type_config, batch;
        EXCEPTION WHEN OTHERS THEN
            PERFORM conveyor._pt_add(t0);
            RETURN conveyor._push_type_error(p, s, 'send_update', SQLSTATE, SQLERRM);
        END;
        PERFORM conveyor._pt_add(t0);
        UPDATE conveyor.push_subunit ps
           SET state = CASE WHEN r.error IS NULL THEN 'sent' ELSE 'failed' END,
               error = r.error, sent_at = clock_timestamp(), attempts = ps.attempts + 1
          FROM (SELECT b.unit, b.subunit, e.error
                  FROM jsonb_to_recordset(batch) b(unit text, subunit text)
                  LEFT JOIN unnest(refused_units, refused_subunits, refused_errors) e(unit, subunit, error)
                    ON e.unit = b.unit AND e.subunit = b.subunit) r
         WHERE ps.push_id = p.id AND ps.unit = r.unit AND ps.subunit = r.subunit;
        PERFORM conveyor._event(p.id, 'update_batch', p.phase,
            jsonb_build_object('sent', jsonb_array_length(batch) - coalesce(cardinality(refused_units), 0),
                               'refused', coalesce(cardinality(refused_units), 0),
                               'errors', (SELECT jsonb_agg(DISTINCT e) FROM unnest(refused_errors) e)));
        UPDATE conveyor.push SET errors = 0 WHERE id = p.id;
        RETURN clock_timestamp();
    END IF;

    IF n_pending > 0 OR n_sent > 0 THEN
        IF n_pending = 0 THEN
            UPDATE conveyor.push SET step = 'confirm', errors = 0 WHERE id = p.id;
        END IF;
        RETURN clock_timestamp() + s.poll_interval;
    END IF;

    -- every target resolved: judge the phase
    SELECT count(*) FILTER (WHERE state = 'done'), count(*) FILTER (WHERE state = 'failed'),
           count(*) FILTER (WHERE state = 'gone')
      INTO n_done, n_failed, n_gone
      FROM conveyor.push_subunit WHERE push_id = p.id AND phase = p.phase;
    UPDATE conveyor.push_phase SET updated = n_done, failed = n_failed, gone = n_gone,
           updates_done_at = clock_timestamp()
     WHERE push_id = p.id AND position = p.phase
     RETURNING * INTO ph;
    allowed := floor((n_done + n_failed) * ph.fault_tolerance / 100);
    PERFORM conveyor._event(p.id, 'updates_confirmed', p.phase,
        jsonb_build_object('updated', n_done, 'failed', n_failed, 'gone', n_gone,
                           'fault_tolerance', ph.fault_tolerance, 'failures_allowed', allowed)
        || conveyor._timing());
    IF n_failed > allowed THEN
        PERFORM conveyor._push_end(p.id, 'failed', 'good failure',
            format('update failures over tolerance in phase %s: %s of %s subunits failed (tolerance %s%%, %s allowed)',
                   p.phase + 1, n_failed, n_done + n_failed, ph.fault_tolerance, allowed));
        RETURN NULL;
    END IF;
    UPDATE conveyor.push_phase
       SET bake_until = clock_timestamp() + CASE WHEN bake_skipped OR p.kind = 'revert' THEN '0' ELSE bake END
     WHERE push_id = p.id AND position = p.phase;
    UPDATE conveyor.push SET step = 'bake', errors = 0 WHERE id = p.id;
    IF p.skip_healthchecks AND p.kind = 'push' THEN
        PERFORM conveyor._event(p.id, 'health_skipped', p.phase, '{}', NULL, 'healthchecks skipped for this push');
    END IF;
    RETURN clock_timestamp();
END $$;
COMMENT ON FUNCTION conveyor._step_update(conveyor.push, conveyor.service, conveyor.push_type) IS
    'internal: sends and confirms the current phase''s updates';

-- Apply the service's failure policy to an unhealthy push.
CREATE FUNCTION conveyor._apply_failure_policy(p conveyor.push, s conveyor.service, reason text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    CASE s.failure_policy
        WHEN 'pause' THEN
            UPDATE conveyor.push SET state = 'paused', next_step_at = NULL WHERE id = p.id;
            PERFORM conveyor._event(p.id, 'push_paused', p.phase,
                jsonb_build_object('policy', 'pause') || conveyor._timing(), NULL, reason);
        WHEN 'revert' THEN
            PERFORM conveyor._revert_start(p.id, NULL, 'automatic revert: ' || reason);
        ELSE
            PERFORM conveyor._push_end(p.id, 'failed', 'good failure', reason);
    END CASE;
END $$;
COMMENT ON FUNCTION conveyor._apply_failure_policy(conveyor.push, conveyor.service, text) IS
    'internal: pauses, reverts or fails an unhealthy push per the service''s failure policy';

-- Finish the current phase: on to the next, or the push succeeded.
CREATE FUNCTION conveyor._phase_finish(p conveyor.push, p_state text, p_actor name DEFAULT NULL,
                                       p_reason text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    last int;
BEGIN
    UPDATE conveyor.push_phase SET state = p_state, ended_at = clock_timestamp()
     WHERE push_id = p.id AND position = p.phase;
    PERFORM conveyor._event(p.id, 'phase_' || p_state, p.phase, conveyor._timing(), p_actor, p_reason);
    SELECT max(position) INTO last FROM conveyor.push_phase WHERE push_id = p.id;
    IF p.phase >= last THEN
        PERFORM conveyor._push_end(p.id, 'succeeded', 'success',
            CASE WHEN p.kind = 'revert' THEN format('reverted push %s', p.reverts)
                 ELSE format('%s runs version %s', p.service, p.version) END);
    ELSE
        UPDATE conveyor.push SET phase = p.phase + 1, step = 'plan', errors = 0 WHERE id = p.id;
    END IF;
END $$;
COMMENT ON FUNCTION conveyor._phase_finish(conveyor.push, text, name, text) IS
    'internal: ends the current phase and moves the push on';

-- Step "bake": check health at the service's interval until the bake time is over.
CREATE FUNCTION conveyor._step_bake(p conveyor.push, s conveyor.service, t conveyor.push_type)
RETURNS timestamptz LANGUAGE plpgsql AS $$
DECLARE
    ph conveyor.push_phase;
    touched text[];
    unhealthy jsonb;
    n_checked int;
    t0 timestamptz;
BEGIN
    SELECT * INTO ph FROM conveyor.push_phase WHERE push_id = p.id AND position = p.phase;
    IF p.kind = 'push' AND NOT p.skip_healthchecks AND t.check_health IS NOT NULL THEN
        SELECT array_agg(DISTINCT unit ORDER BY unit) INTO touched
          FROM conveyor.push_subunit WHERE push_id = p.id AND state IN ('done', 'sent');
        IF touched IS NOT NULL THEN
            t0 := clock_timestamp();
            BEGIN
                EXECUTE format('SELECT count(*), jsonb_agg(jsonb_build_object(''unit'', unit, ''reason'', reason) '
                               'ORDER BY unit) FILTER (WHERE healthy IS NOT TRUE) '
                               'FROM %s($1::text, $2::jsonb, $3::text[])', t.check_health::oid::regproc)
                   INTO n_checked, unhealthy USING s.name, s.push_type_config, touched;
            EXCEPTION WHEN OTHERS THEN
                PERFORM conveyor._pt_add(t0);
                RETURN conveyor._push_type_error(p, s, 'check_health', SQLSTATE, SQLERRM);
            END;
            PERFORM conveyor._pt_add(t0);
            PERFORM conveyor._event(p.id, 'health_checked', p.phase,
                jsonb_build_object('healthy', unhealthy IS NULL, 'units_checked', n_checked,
                                   'unhealthy', coalesce(unhealthy, '[]')));
            IF unhealthy IS NOT NULL THEN
                PERFORM conveyor._apply_failure_policy(p, s,
                    format('unhealthy in phase %s: %s', p.phase + 1,
                           (SELECT string_agg(format('%s (%s)', e->>'unit', coalesce(e->>'reason', 'no reason given')), ', ')
                              FROM jsonb_array_elements(unhealthy) e)));
                RETURN NULL;
            END IF;
        END IF;
    END IF;
    UPDATE conveyor.push SET errors = 0 WHERE id = p.id AND errors <> 0;
    IF clock_timestamp() >= ph.bake_until THEN
        PERFORM conveyor._phase_finish(p, 'succeeded');
        RETURN clock_timestamp();
    END IF;
    RETURN least(ph.bake_until, clock_timestamp() + s.health_interval);
END $$;
COMMENT ON FUNCTION conveyor._step_bake(conveyor.push, conveyor.service, conveyor.push_type) IS
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
    budget int := 16;
BEGIN
    SELECT * INTO p FROM conveyor.push WHERE id = p_id FOR UPDATE;
    IF NOT FOUND OR p.state <> 'running' THEN
        RETURN;
    END IF;
    SELECT * INTO s FROM conveyor.service WHERE name = p.service;
    SELECT * INTO t FROM conveyor.push_type WHERE name = s.push_type;
    PERFORM set_config('conveyor_step.due_at', p.next_step_at::text, true);
    PERFORM set_config('conveyor_step.started_at', clock_timestamp()::text, true);
    PERFORM set_config('conveyor_step.push_type_ms', '0', true);
    LOOP
        next_at := CASE p.step
            WHEN 'plan' THEN conveyor._step_plan(p, s, t)
            WHEN 'bake' THEN conveyor._step_bake(p, s, t)
            ELSE conveyor._step_update(p, s, t)
        END;
        SELECT * INTO p FROM conveyor.push WHERE id = p_id;
        EXIT WHEN p.state <> 'running' OR next_at IS NULL;
        budget := budget - 1;
        IF next_at > clock_timestamp() OR budget = 0 THEN
            UPDATE conveyor.push SET next_step_at = next_at WHERE id = p_id;
            EXIT;
        END IF;
        -- the next transition is due at once: record when, for latency accounting
        PERFORM set_config('conveyor_step.due_at', clock_timestamp()::text, true);
        PERFORM set_config('conveyor_step.started_at', clock_timestamp()::text, true);
        PERFORM set_config('conveyor_step.push_type_ms', '0', true);
    END LOOP;
END $$;
COMMENT ON FUNCTION conveyor._push_step(bigint) IS
    'internal: advances one push (called by the workers with the push locked)';
