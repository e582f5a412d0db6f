-- conveyor 0.3: the push engine's decider, replacing 0.2's (src/sql/0.2/200_engine.sql
-- keeps the history of how it came to be). 0.3 adds: push types reached over
-- HTTP (the workers make the calls outside any transaction; see
-- docs/push-type-protocol.md and src/http_call.c) and the service's
-- healthchecks evaluated while a phase bakes (docs/healthchecks.md).
--

-- The order in which workers take due pushes. A push stands in the queue as
-- if it had become due later by the time its push-type calls take (call_ms,
-- at most a second): when many pushes are due at once, those of slow
-- endpoints yield to those of fast ones, so neither a burst of slow answers
-- arriving together nor a burst of slow pushes resumed together holds up a
-- push whose endpoint answers in a millisecond. A push is never kept waiting
-- by it while a worker is free: being due is still next_step_at <= now().
-- Set by push_start (the time its look at the fleet took) and _http_record
-- (the call's time, or its endpoints' usual time when less); kept across
-- steps, pauses and resumes.
ALTER TABLE conveyor.push ADD COLUMN call_ms float8;
COMMENT ON COLUMN conveyor.push.call_ms IS
    'how long the push''s push-type calls take (ms, as last seen; at most 1000): it stands that much later in the queue of due pushes; NULL: 0';
-- The place in the queue: next_step_at plus call_ms. In C, because
-- timestamptz + interval is only stable (days depend on the time zone) and an
-- index needs an immutable expression; adding microseconds is immutable.
CREATE FUNCTION conveyor._queue_place(next_step_at timestamptz, call_ms float8) RETURNS timestamptz
    LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'cv_queue_place';
COMMENT ON FUNCTION conveyor._queue_place(timestamptz, float8) IS
    'internal: a due push''s place in the queue of the workers, next_step_at + call_ms (at most 1 s)';
REVOKE EXECUTE ON FUNCTION conveyor._queue_place(timestamptz, float8) FROM PUBLIC;   -- as every internal function
-- The one index of due times (push_due, on next_step_at alone, is dropped:
-- every step and every answer updates the push, and each index costs an
-- insert per update). The earliest next_step_at is found through it too, as
-- every writer of next_step_at sets it to now or later, so a push's place in
-- the queue is never more than a second after its due time (src/engine.c).
CREATE INDEX push_queue ON conveyor.push (conveyor._queue_place(next_step_at, call_ms)) WHERE state = 'running';
DROP INDEX conveyor.push_due;

-- How the rest of a step plans its statements, given the size of the fleet
-- get_units reported (every array a step joins: targets, batches, answers,
-- units checked, is at most that large). Up to 100 subunits, generic plans:
-- the step's statements take ids and small arrays, their best plan does not
-- depend on the values, yet under auto a statement whose custom plan looks
-- cheaper is planned again at every execution (8% of a worker's CPU per
-- transition). Above, custom plans: a generic plan guesses 10 elements per
-- array and would join two large arrays by nested loop (a batch of 10,000
-- answers took 13 s instead of milliseconds). Not auto: from a statement's
-- sixth execution auto takes the generic plan whenever its estimate looks
-- cheaper, and that estimate is the 10-element guess, so every push of a big
-- fleet after the first few took 13 s again. Local to the step: _push_step's SET clause
-- restores the setting when it returns. (A bare SELECT of an expression, so
-- the planner inlines it: a SQL function it cannot inline is planned anew at
-- every call.)
CREATE FUNCTION conveyor._step_plans(n_subunits int) RETURNS text
LANGUAGE sql VOLATILE AS $$
    SELECT set_config('plan_cache_mode', CASE WHEN n_subunits <= 100 THEN 'force_generic_plan' ELSE 'force_custom_plan' END, true);
$$;
COMMENT ON FUNCTION conveyor._step_plans(int) IS
    'internal: generic plans for the rest of a step when the fleet is small (at most 100 subunits), else custom plans';
REVOKE EXECUTE ON FUNCTION conveyor._step_plans(int) FROM PUBLIC;   -- as every internal function (190_access.sql)

-- Advance one push as far as it can go without waiting (bounded), in the
-- caller's transaction; the caller (a worker) holds the push locked.
--
-- The push, its phases and the events of the step are kept in local
-- variables and written once at the end: one UPDATE of the push, one of the
-- phases that changed, one INSERT of all events. Sub-steps run in a loop
-- while the next one is due at once (a push type that answers synchronously
-- goes through a whole phase in one step):
--   plan    get_units, then the C planner picks the phase's targets
--   update  confirm in-flight updates (get_units), send the next batch
--           (send_update); when every target is resolved, judge the phase
--           against its fault tolerance
--   bake    check_health at the service's interval until the bake is over
--
-- Plans: the step starts under plan_cache_mode auto; _step_plans picks
-- generic or custom plans from the size of a phase already planned, and again
-- from the fleet's size whenever get_units answers (see there).
CREATE OR REPLACE FUNCTION conveyor._push_step(p_id bigint) RETURNS void
LANGUAGE plpgsql SET plan_cache_mode = auto AS $$
<<step_fn>>
DECLARE
    p conveyor.push;
    s conveyor.service;
    t conveyor.push_type;
    phs conveyor.push_phase[];      -- every phase of the push, by position + 1
    ph conveyor.push_phase;         -- the current phase (copied back into phs)
    scopes text[];                  -- every phase's scope and amount, by position + 1: the
    amounts text[];                 -- planner's input (they never change during a push)
    dirty int[] := '{}';            -- positions of phases changed in this step
    evs conveyor.push_event[] := '{}';  -- events of this step, written at the end
    u record;
    answer record;
    h record;
    next_at timestamptz;
    v_due timestamptz;
    v_started timestamptz;
    t0 timestamptz;
    v_pt float8;
    budget int := 16;
    n_pending int;                  -- carried between sub-steps; NULL = unknown
    n_sent int;
    acc_done int;                   -- the phase's outcomes so far, when it was planned
    acc_failed int;                 -- in this step (else NULL: count them from the table)
    n_targets int;
    n_units int;                    -- the units and subunits get_units reported
    n_subunits int;
    n_already int;
    n_done int;
    n_failed int;
    n_gone int;
    allowed int;
    batch jsonb;                    -- the updates sent: the verb's argument
    batch_units text[];             -- their keys (those not deferred), to record the answers
    batch_subunits text[];
    n_batch_sent int;
    n_batch_done int;
    n_batch_refused int;
    n_batch int;
    batch_errors jsonb;
    n_deferred int;                 -- updates task control held back this round (http)
    http boolean;                   -- the push type is reached over HTTP (310_http.sql)
    ht conveyor.http_push_type;
    call_req jsonb;                 -- the request of the http call being made
    cr jsonb;                       -- its answer: {result, ms}
    call_ms float8;                 -- how long a failed http call took
    used text[];                    -- http answers this sub-step consumed
    touched text[];
    verb text;
    end_state text;                 -- set to end the push: succeeded, failed
    end_outcome text;
    end_reason text;
    unhealthy_reason text;
    phase_done boolean;             -- the current phase passed in this sub-step
    phase_done_reason text;
BEGIN
    SELECT * INTO p FROM conveyor.push WHERE id = p_id FOR UPDATE;
    IF NOT FOUND OR p.state <> 'running' THEN
        RETURN;
    END IF;
    SELECT * INTO s FROM conveyor.service WHERE name = p.service;
    SELECT * INTO t FROM conveyor.push_type WHERE name = s.push_type;
    -- (ordered once, by the index, not sorted again for each aggregate)
    SELECT array_agg(x.ph), array_agg((x.ph).scope), array_agg((x.ph).amount)
      INTO phs, scopes, amounts
      FROM (SELECT y AS ph FROM conveyor.push_phase y WHERE y.push_id = p.id ORDER BY y.position) x;
    ph := phs[p.phase + 1];
    -- a step that resumes a planned phase may not call get_units (an http
    -- send's answer is taken in the step after the send): the phase's size
    -- bounds the arrays its statements join, so it picks their plans
    IF ph.targets IS NOT NULL THEN
        PERFORM conveyor._step_plans(ph.targets + coalesce(ph.already, 0));
    END IF;
    v_due := p.next_step_at;
    http := t.transport = 'http';
    IF http THEN
        SELECT * INTO ht FROM conveyor.http_push_type x WHERE x.name = t.name;
    END IF;

    <<steps>>
    LOOP
        v_started := clock_timestamp();
        v_pt := 0;
        next_at := NULL;
        verb := NULL;
        used := '{}';
        n_deferred := 0;
        unhealthy_reason := NULL;
        phase_done := false;
        phase_done_reason := NULL;

        BEGIN
            IF p.step = 'plan' THEN
                -------------------------------------------------------------- plan
                verb := 'get_units';
                t0 := clock_timestamp();
                IF http THEN
                    call_req := '{}';
                    cr := conveyor._http_result(p.id, verb, call_req);
                    u := conveyor._http_units(cr->'result');
                    v_pt := (cr->>'ms')::float8; used := used || verb;
                ELSE
                    u := conveyor._call_get_units(t.get_units, s.name, s.push_type_config);
                END IF;
                PERFORM conveyor._step_plans(cardinality(u.subunits));
                u.units := coalesce(u.units, '{}'); u.labels := coalesce(u.labels, '{}');
                u.subunits := coalesce(u.subunits, '{}'); u.versions := coalesce(u.versions, '{}');
                IF http THEN
                    -- units the endpoints say need no push count as running the version
                    verb := 'needs_push';
                    call_req := jsonb_build_object('version', p.version, 'units',
                        coalesce((SELECT jsonb_agg(x ORDER BY x) FROM (SELECT DISTINCT x FROM unnest(u.units) x) d), '[]'));
                    cr := conveyor._http_result(p.id, verb, call_req);
                    IF jsonb_array_length(cr->'result'->'no') > 0 THEN
                        u.versions := coalesce((SELECT array_agg(CASE WHEN n.unit IS NOT NULL THEN p.version ELSE x.v END ORDER BY x.i)
                                                  FROM unnest(u.units, u.versions) WITH ORDINALITY x(unit, v, i)
                                                  LEFT JOIN (SELECT DISTINCT jsonb_array_elements_text(cr->'result'->'no') AS unit) n
                                                         ON n.unit = x.unit),
                                               '{}');
                    END IF;
                    v_pt := v_pt + (cr->>'ms')::float8; used := used || verb;
                ELSIF t.needs_push IS NOT NULL THEN
                    -- units the push type says need no push count as running the version
                    verb := 'needs_push';
                    EXECUTE format('SELECT array_agg(CASE WHEN n.needs_push IS FALSE THEN $3 ELSE x.v END ORDER BY x.i) '
                                   'FROM unnest($4::text[], $5::text[]) WITH ORDINALITY x(unit, v, i) '
                                   'LEFT JOIN %s($1::text, $2::jsonb, $3::text) n ON n.unit = x.unit',
                                   t.needs_push::oid::regproc)
                       INTO u.versions USING s.name, s.push_type_config, p.version, u.units, u.versions;
                    u.versions := coalesce(u.versions, '{}');
                END IF;
                IF NOT http THEN
                    v_pt := conveyor._ms_since(t0);
                END IF;
                verb := NULL;

                IF p.phase > 0 THEN
                    -- updates sent by an earlier (skipped) phase that have landed since
                    UPDATE conveyor.push_subunit ps SET state = 'done', done_at = clock_timestamp()
                      FROM unnest(u.units, u.subunits, u.versions) x(unit, subunit, version)
                     WHERE ps.push_id = p.id AND ps.state = 'sent' AND ps.phase < p.phase
                       AND ps.unit = x.unit AND ps.subunit = x.subunit AND x.version = ps.to_version;
                END IF;

                INSERT INTO conveyor.push_subunit AS ps (push_id, unit, subunit, phase, from_version, to_version,
                                                         idempotency_key)
                SELECT p.id, x.unit, x.subunit, p.phase, x.from_version, p.version,
                       format('%s/%s/%s', p.id, p.phase, md5(x.unit || '/' || x.subunit))
                  FROM conveyor._plan_targets(u.units, u.labels, u.subunits, u.versions,
                                              scopes[1:p.phase + 1], amounts[1:p.phase + 1],
                                              p.phase, p.version, p.seed) x
                 WHERE x.subunit IS NOT NULL
                    ON CONFLICT (push_id, unit, subunit) DO UPDATE
                   SET phase = excluded.phase, state = 'pending', from_version = excluded.from_version,
                       idempotency_key = excluded.idempotency_key, error = NULL, sent_at = NULL
                 WHERE ps.state IN ('failed', 'gone', 'skipped', 'pending', 'done')
                    OR (ps.state = 'sent' AND ps.phase < excluded.phase);
                GET DIAGNOSTICS n_targets = ROW_COUNT;
                SELECT count(*) FILTER (WHERE x.subunit IS NOT NULL AND x.version = p.version),
                       count(DISTINCT x.unit), count(x.subunit)
                  INTO n_already, n_units, n_subunits
                  FROM unnest(u.units, u.subunits, u.versions) x(unit, subunit, version);

                ph.state := 'running'; ph.started_at := clock_timestamp();
                ph.targets := n_targets; ph.already := n_already;
                dirty := dirty || ph.position;
                p.step := 'update'; p.errors := 0;
                n_pending := n_targets; n_sent := 0;
                acc_done := 0; acc_failed := 0;
                evs := evs || ROW(NULL, p.id, clock_timestamp(), 'phase_started', p.phase, NULL, NULL, jsonb_build_object('targets', n_targets, 'already', n_already,
                                                 'units', n_units, 'subunits', n_subunits)
                              || conveyor._timing(v_due, v_started, v_pt))::conveyor.push_event;
                IF n_targets = 0 THEN
                    -- needs-push said no everywhere in scope: nothing to update, nothing to bake
                    phase_done := true; phase_done_reason := 'nothing to update';
                END IF;
                next_at := clock_timestamp();

            ELSIF p.step = 'bake' THEN
                -------------------------------------------------------------- bake
                DECLARE
                    pt_health jsonb;        -- the push type's answer this round, for the healthchecks
                    prom jsonb;             -- Prometheus queries of the phase's checks, and their answers
                    hv record;              -- the healthchecks' verdict (docs/healthchecks.md)
                    has_checks boolean;     -- the service has healthchecks of its own
                BEGIN
                    IF p.kind = 'push' AND NOT p.skip_healthchecks THEN
                        touched := NULL;
                        IF t.check_health IS NOT NULL OR (http AND ht.check_health) THEN
                            touched := (SELECT array_agg(DISTINCT x.unit ORDER BY x.unit)
                                          FROM conveyor.push_subunit x WHERE x.push_id = p.id AND x.state IN ('done', 'sent'));
                        END IF;
                        IF touched IS NOT NULL THEN
                            verb := 'check_health';
                            t0 := clock_timestamp();
                            IF http THEN
                                call_req := jsonb_build_object('units', to_jsonb(touched));
                                cr := conveyor._http_result(p.id, verb, call_req);
                                SELECT (cr->'result'->>'checked')::bigint AS checked,
                                       nullif(cr->'result'->'unhealthy', '[]') AS unhealthy INTO h;
                                v_pt := (cr->>'ms')::float8; used := used || verb;
                            ELSE
                                h := conveyor._call_check_health(t.check_health, s.name, s.push_type_config, touched);
                                v_pt := conveyor._ms_since(t0);
                            END IF;
                            verb := NULL;
                            evs := evs || ROW(NULL, p.id, clock_timestamp(), 'health_checked', p.phase, NULL, NULL, jsonb_build_object('healthy', h.unhealthy IS NULL, 'units_checked', h.checked,
                                                             'unhealthy', coalesce(h.unhealthy, '[]'))
                                          || conveyor._timing(v_due, v_started, v_pt))::conveyor.push_event;
                            pt_health := jsonb_build_object('checked', h.checked, 'unhealthy', coalesce(h.unhealthy, '[]'));
                        END IF;
                        -- Prometheus checks: the worker fetches their range queries
                        -- outside the transaction, like a verb (its errors are data:
                        -- no data for the check, judged by its no-data policy)
                        has_checks := EXISTS (SELECT 1 FROM conveyor.healthcheck c WHERE c.service = s.name);
                        prom := CASE WHEN has_checks THEN conveyor._health_prometheus_requests(p.id, p.phase) END;
                        IF jsonb_array_length(prom) > 0 THEN
                            verb := 'prometheus';
                            call_req := jsonb_build_object('requests', prom);
                            cr := conveyor._http_result(p.id, verb, call_req);
                            prom := cr->'result'->'answers';
                            v_pt := v_pt + (cr->>'ms')::float8; used := used || verb;
                            verb := NULL;
                        ELSE
                            prom := NULL;
                        END IF;
                        -- every check of the phase, the push type's answer among them, judged and
                        -- stored; a service without checks of its own whose push type finds every
                        -- unit healthy has nothing to judge beyond health_checked (the common case,
                        -- and the full evaluation's plan is not cheap)
                        IF NOT has_checks AND coalesce(jsonb_array_length(pt_health->'unhealthy'), 0) = 0 THEN
                            SELECT 'none'::text AS verdict, NULL::text AS reason INTO hv;
                        ELSE
                            hv := conveyor._health_evaluate(p.id, p.phase, pt_health, prom);
                        END IF;
                        -- (a service without checks of its own has health_checked: no second event)
                        IF hv.verdict <> 'none' AND has_checks THEN
                            evs := evs || ROW(NULL, p.id, clock_timestamp(), 'health_evaluated', p.phase, NULL, hv.reason, jsonb_build_object('verdict', hv.verdict))::conveyor.push_event;
                        END IF;
                        IF hv.verdict = 'fail' THEN
                            unhealthy_reason := hv.reason;
                        ELSIF hv.verdict = 'pause' THEN
                            -- inconclusive (no data, policy pause): a person decides, whatever the failure policy
                            p.state := 'paused'; p.next_step_at := NULL;
                            evs := evs || ROW(NULL, p.id, clock_timestamp(), 'push_paused', p.phase, NULL, hv.reason, jsonb_build_object('policy', 'inconclusive') || conveyor._timing(v_due, v_started, v_pt))::conveyor.push_event;
                        END IF;
                    ELSIF p.kind = 'push' THEN
                        -- skipped by push_skip_healthchecks: stored as such for explain_health
                        PERFORM conveyor._health_skip(p.id, p.phase);
                    END IF;
                END;
                IF unhealthy_reason IS NULL AND p.state = 'running' THEN
                    p.errors := 0;
                    IF clock_timestamp() >= ph.bake_until THEN
                        phase_done := true;
                        next_at := clock_timestamp();
                    ELSE
                        next_at := least(ph.bake_until, clock_timestamp() + s.health_interval);
                    END IF;
                END IF;

            ELSE
                -------------------------------------------------------------- update / confirm
                IF n_pending IS NULL THEN
                    SELECT count(*) FILTER (WHERE x.state = 'sent'), count(*) FILTER (WHERE x.state = 'pending')
                      INTO n_sent, n_pending
                      FROM conveyor.push_subunit x
                     WHERE x.push_id = p.id AND x.phase = p.phase AND x.state IN ('sent', 'pending');
                END IF;

                -- confirm: which in-flight updates now run the version, failed, or vanished
                IF n_sent > 0 THEN
                    verb := 'get_units';
                    t0 := clock_timestamp();
                    IF http THEN
                        call_req := '{}';
                        cr := conveyor._http_result(p.id, verb, call_req);
                        u := conveyor._http_units(cr->'result');
                        v_pt := v_pt + (cr->>'ms')::float8; used := used || verb;
                    ELSE
                        u := conveyor._call_get_units(t.get_units, s.name, s.push_type_config);
                        v_pt := v_pt + conveyor._ms_since(t0);
                    END IF;
                    PERFORM conveyor._step_plans(cardinality(u.subunits));
                    verb := NULL;
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
                    acc_done := NULL; acc_failed := NULL;   -- outcomes landed outside the batches
                END IF;

                -- send: the next batch, keeping at most max_in_flight updates in flight
                IF n_pending > 0 AND n_sent < s.max_in_flight THEN
                    -- (in b's order: no sort per aggregate)
                    SELECT jsonb_agg(jsonb_build_object('unit', b.unit, 'subunit', b.subunit,
                                                        'version', b.to_version, 'key', b.idempotency_key)),
                           array_agg(b.unit), array_agg(b.subunit)
                      INTO batch, batch_units, batch_subunits
                      FROM (SELECT x.unit, x.subunit, x.to_version, x.idempotency_key
                              FROM conveyor.push_subunit x
                             WHERE x.push_id = p.id AND x.phase = p.phase AND x.state = 'pending'
                             ORDER BY x.unit, x.subunit
                             LIMIT s.max_in_flight - n_sent) b;
                    verb := 'send_update';
                    t0 := clock_timestamp();
                    IF http THEN
                        call_req := jsonb_build_object('updates', batch);
                        cr := conveyor._http_result(p.id, verb, call_req);
                        IF (cr->'result'->>'all_done')::boolean THEN
                            -- every update of the batch answered done (the worker does not list them)
                            SELECT batch_units AS units, batch_subunits AS subunits,
                                   array_fill(NULL::text, ARRAY[coalesce(cardinality(batch_units), 0)]) AS errors
                              INTO answer;
                        ELSE
                            SELECT ARRAY(SELECT jsonb_array_elements_text(cr->'result'->'units')) AS units,
                                   ARRAY(SELECT jsonb_array_elements_text(cr->'result'->'subunits')) AS subunits,
                                   ARRAY(SELECT jsonb_array_elements_text(cr->'result'->'errors')) AS errors
                              INTO answer;
                        END IF;
                        -- updates task control held back stay pending for a later round
                        n_deferred := jsonb_array_length(cr->'result'->'deferred');
                        IF n_deferred > 0 THEN
                            SELECT coalesce(array_agg(b.unit ORDER BY b.i), '{}'), coalesce(array_agg(b.subunit ORDER BY b.i), '{}')
                              INTO batch_units, batch_subunits
                              FROM unnest(batch_units, batch_subunits) WITH ORDINALITY b(unit, subunit, i)
                             WHERE NOT EXISTS (SELECT 1 FROM jsonb_array_elements(cr->'result'->'deferred') d
                                                WHERE d->>'unit' = b.unit AND d->>'subunit' = b.subunit);
                        END IF;
                        v_pt := v_pt + (cr->>'ms')::float8; used := used || verb;
                    ELSE
                        answer := conveyor._call_send_update(t.send_update, s.name, s.push_type_config, batch);
                        v_pt := v_pt + conveyor._ms_since(t0);
                    END IF;
                    verb := NULL;
                    -- no row: accepted, in flight; a row with an error: refused; a row
                    -- without one: the push type finished the update while sending
                    WITH answered AS (
                        UPDATE conveyor.push_subunit ps
                           SET state = CASE WHEN e.unit IS NULL THEN 'sent' WHEN e.error IS NULL THEN 'done' ELSE 'failed' END,
                               error = e.error, sent_at = clock_timestamp(), attempts = ps.attempts + 1,
                               done_at = CASE WHEN e.unit IS NOT NULL AND e.error IS NULL THEN clock_timestamp() END
                          FROM unnest(batch_units, batch_subunits) b(unit, subunit)
                          LEFT JOIN unnest(answer.units, answer.subunits, answer.errors) e(unit, subunit, error)
                            ON e.unit = b.unit AND e.subunit = b.subunit
                         WHERE ps.push_id = p.id AND ps.unit = b.unit AND ps.subunit = b.subunit
                        RETURNING ps.state, ps.error)
                    SELECT count(*) FILTER (WHERE a.state = 'sent'), count(*) FILTER (WHERE a.state = 'done'),
                           count(*) FILTER (WHERE a.state = 'failed'),
                           coalesce(jsonb_agg(DISTINCT a.error) FILTER (WHERE a.error IS NOT NULL), '[]'), count(*)
                      INTO n_batch_sent, n_batch_done, n_batch_refused, batch_errors, n_batch
                      FROM answered a;
                    evs := evs || ROW(NULL, p.id, clock_timestamp(), 'update_batch', p.phase, NULL, NULL, jsonb_build_object('sent', n_batch_sent, 'done', n_batch_done,
                                                     'refused', n_batch_refused, 'errors', batch_errors)
                                  || CASE WHEN n_deferred > 0 THEN jsonb_build_object('deferred', n_deferred) ELSE '{}' END
                                  || conveyor._timing(v_due, v_started, v_pt))::conveyor.push_event;
                    n_pending := n_pending - n_batch;
                    n_sent := n_sent + n_batch_sent;
                    acc_done := acc_done + n_batch_done;
                    acc_failed := acc_failed + n_batch_refused;
                    p.errors := 0;
                END IF;

                IF n_pending > 0 OR n_sent > 0 THEN
                    IF n_pending = 0 THEN
                        p.step := 'confirm';
                    END IF;
                    -- more to send now, or wait for the in-flight ones
                    next_at := CASE WHEN n_pending > 0 AND n_sent < s.max_in_flight AND n_deferred = 0 THEN clock_timestamp()
                                    ELSE clock_timestamp() + s.poll_interval END;
                    p.errors := 0;
                ELSE
                    -- every target resolved: judge the phase
                    IF acc_done IS NOT NULL THEN
                        n_done := acc_done; n_failed := acc_failed; n_gone := 0;
                    ELSE
                        SELECT count(*) FILTER (WHERE x.state = 'done'), count(*) FILTER (WHERE x.state = 'failed'),
                               count(*) FILTER (WHERE x.state = 'gone')
                          INTO n_done, n_failed, n_gone
                          FROM conveyor.push_subunit x WHERE x.push_id = p.id AND x.phase = p.phase;
                    END IF;
                    ph.updated := n_done; ph.failed := n_failed; ph.gone := n_gone;
                    ph.updates_done_at := clock_timestamp();
                    ph.bake_until := clock_timestamp()
                                     + CASE WHEN ph.bake_skipped OR p.kind = 'revert' THEN '0' ELSE ph.bake END;
                    dirty := dirty || ph.position;
                    allowed := floor((n_done + n_failed) * ph.fault_tolerance / 100);
                    evs := evs || ROW(NULL, p.id, clock_timestamp(), 'updates_confirmed', p.phase, NULL, NULL, jsonb_build_object('updated', n_done, 'failed', n_failed, 'gone', n_gone,
                                                     'fault_tolerance', ph.fault_tolerance, 'failures_allowed', allowed)
                                  || conveyor._timing(v_due, v_started, v_pt))::conveyor.push_event;
                    IF n_failed > allowed THEN
                        end_state := 'failed'; end_outcome := 'good failure';
                        end_reason := format('update failures over tolerance in phase %s: %s of %s subunits failed (tolerance %s%%, %s allowed)',
                                             p.phase + 1, n_failed, n_done + n_failed, ph.fault_tolerance, allowed);
                    ELSE
                        p.step := 'bake'; p.errors := 0;
                        IF p.skip_healthchecks AND p.kind = 'push' THEN
                            evs := evs || ROW(NULL, p.id, clock_timestamp(), 'health_skipped', p.phase, NULL, 'healthchecks skipped for this push', '{}')::conveyor.push_event;
                        END IF;
                        next_at := clock_timestamp();
                    END IF;
                    n_pending := NULL; n_sent := NULL; acc_done := NULL; acc_failed := NULL;
                END IF;
            END IF;
        EXCEPTION WHEN OTHERS THEN
            IF verb IS NULL THEN
                RAISE;      -- not a push type's fault: the worker records it as a step error
            END IF;
            IF SQLSTATE = 'CVW01' THEN
                -- an http verb's answer is not in: the sub-step is rolled back;
                -- record the call, and a worker makes it and makes the push due
                -- again (the minute is only a safety net)
                PERFORM conveyor._http_request(p.id, verb, call_req);
                next_at := clock_timestamp() + interval '1 minute';
                used := '{}';
            ELSE
                -- a push-type verb failed: retry with backoff, or end as a bad
                -- failure; a final HTTP error (08P01: a 4xx, a refused host)
                -- cannot get better by retrying
                IF http THEN
                    DELETE FROM conveyor.push_call x
                     WHERE x.push_id = p.id AND x.verb = step_fn.verb AND x.state = 'failed'
                    RETURNING x.duration_ms INTO call_ms;
                    v_pt := v_pt + coalesce(call_ms, 0);
                ELSE
                    v_pt := v_pt + conveyor._ms_since(t0);
                END IF;
                p.errors := p.errors + 1;
                IF SQLSTATE = '08P01' THEN
                    end_state := 'failed'; end_outcome := 'bad failure';
                    end_reason := format('push type %s failed and retrying cannot help: %s', verb, conveyor._redact(SQLERRM));
                ELSIF p.errors > s.retry_limit THEN
                    end_state := 'failed'; end_outcome := 'bad failure';
                    end_reason := format('push type %s failed %s times (retry limit %s): %s',
                                         verb, p.errors, s.retry_limit, conveyor._redact(SQLERRM));
                ELSE
                    evs := evs || ROW(NULL, p.id, clock_timestamp(), 'push_type_error', p.phase, NULL, NULL, jsonb_build_object('verb', verb, 'sqlstate', SQLSTATE, 'error', conveyor._redact(SQLERRM),
                                                     'attempt', p.errors, 'retry_limit', s.retry_limit))::conveyor.push_event;
                    next_at := conveyor._retry_at(p.errors);
                END IF;
            END IF;
            n_pending := NULL; n_sent := NULL; acc_done := NULL; acc_failed := NULL;
            phase_done := false; unhealthy_reason := NULL;
        END;

        -- answers of http calls this sub-step used are spent
        IF cardinality(used) > 0 THEN
            DELETE FROM conveyor.push_call x WHERE x.push_id = p.id AND x.verb = ANY (used);
        END IF;

        -- the phase passed: on to the next one, or the push succeeded
        IF phase_done THEN
            ph.state := 'succeeded'; ph.ended_at := clock_timestamp();
            dirty := dirty || ph.position;
            evs := evs || ROW(NULL, p.id, clock_timestamp(), 'phase_succeeded', p.phase, NULL, phase_done_reason, conveyor._timing(v_due, v_started, v_pt))::conveyor.push_event;
        END IF;
        phs[p.phase + 1] := ph;
        IF phase_done THEN
            IF p.phase + 1 >= p.phases THEN
                end_state := 'succeeded';
            ELSE
                p.phase := p.phase + 1; p.step := 'plan';
                ph := phs[p.phase + 1];
            END IF;
        END IF;

        -- an unhealthy verdict: the service's failure policy
        IF unhealthy_reason IS NOT NULL THEN
            IF s.failure_policy = 'pause' THEN
                p.state := 'paused'; p.next_step_at := NULL;
                evs := evs || ROW(NULL, p.id, clock_timestamp(), 'push_paused', p.phase, NULL, unhealthy_reason, jsonb_build_object('policy', 'pause') || conveyor._timing(v_due, v_started, v_pt))::conveyor.push_event;
            ELSIF s.failure_policy = 'fail' THEN
                end_state := 'failed'; end_outcome := 'good failure'; end_reason := unhealthy_reason;
            ELSE
                end_state := 'revert'; end_reason := 'automatic revert: ' || unhealthy_reason;
            END IF;
        END IF;

        -- the end of the push
        IF end_state IN ('succeeded', 'failed') THEN
            p.state := end_state;
            p.outcome := coalesce(end_outcome, 'success');
            p.outcome_reason := coalesce(end_reason,
                CASE WHEN p.kind = 'revert' THEN format('reverted push %s', p.reverts)
                     ELSE format('%s runs version %s', p.service, p.version) END);
            p.ended_at := clock_timestamp(); p.next_step_at := NULL;
            IF end_state <> 'succeeded' THEN
                IF ph.state IN ('pending', 'running') THEN
                    ph.state := 'failed'; ph.ended_at := clock_timestamp();
                    phs[p.phase + 1] := ph; dirty := dirty || ph.position;
                END IF;
                -- updates never sent will not be
                UPDATE conveyor.push_subunit SET state = 'skipped' WHERE push_id = p.id AND state = 'pending';
            END IF;
            evs := evs || ROW(NULL, p.id, clock_timestamp(), 'push_' || end_state, p.phase, NULL, p.outcome_reason, jsonb_build_object('outcome', p.outcome) || conveyor._timing(v_due, v_started, v_pt))::conveyor.push_event;
        END IF;

        EXIT steps WHEN p.state <> 'running' OR end_state IS NOT NULL;
        IF next_at IS NULL THEN
            -- a running push without a due time would never be advanced again
            RAISE EXCEPTION 'internal error: step % of push % left no next due time', p.step, p.id;
        END IF;
        budget := budget - 1;
        IF next_at > clock_timestamp() OR budget = 0 THEN
            p.next_step_at := next_at;
            EXIT steps;
        END IF;
        -- the next transition is due at once
        v_due := clock_timestamp();
    END LOOP;

    -- write the step: the push, the phases it changed, its events
    UPDATE conveyor.push x
       SET state = p.state, phase = p.phase, step = p.step, outcome = p.outcome,
           outcome_reason = p.outcome_reason, next_step_at = p.next_step_at, errors = p.errors,
           ended_at = p.ended_at
     WHERE x.id = p.id;
    IF cardinality(dirty) > 0 THEN
        UPDATE conveyor.push_phase x
           SET state = f.state, targets = f.targets, already = f.already, updated = f.updated,
               failed = f.failed, gone = f.gone, started_at = f.started_at,
               updates_done_at = f.updates_done_at, bake_until = f.bake_until, ended_at = f.ended_at
          FROM unnest(phs) f
         WHERE x.push_id = p.id AND x.position = f.position AND f.position = ANY (dirty);
    END IF;
    INSERT INTO conveyor.push_event (push_id, at, kind, phase, reason, detail)
    SELECT e.push_id, e.at, e.kind, e.phase, e.reason, coalesce(e.detail, '{}')
      FROM unnest(evs) WITH ORDINALITY AS e(id, push_id, at, kind, phase, actor, reason, detail, n)
     ORDER BY e.n;

    -- the revert policy starts a new push, written through the tables
    IF end_state = 'revert' THEN
        PERFORM conveyor._revert_start(p.id, NULL, end_reason);
    END IF;
END $$;
COMMENT ON FUNCTION conveyor._push_step(bigint) IS
    'internal: advances one push (called by the workers with the push locked)';
