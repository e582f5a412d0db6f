-- conveyor 0.3: healthcheck evaluation (docs/healthchecks.md). While a phase
-- bakes, the engine calls conveyor._health_evaluate at every health interval;
-- it judges each check that applies to the phase, stores every evaluation
-- with the numbers behind it, and answers pass, fail, pause or none.
-- conveyor.explain_health tells a push's story from those rows.

CREATE TABLE conveyor.health_evaluation (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    push_id      bigint NOT NULL REFERENCES conveyor.push ON DELETE CASCADE,
    phase        int NOT NULL,
    check_name   text NOT NULL,
    source       text NOT NULL,
    kind         text NOT NULL,
    metric       text NOT NULL,
    reduce       text,
    at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    window_start timestamptz,
    window_end   timestamptz,
    n_new        bigint,
    n_old        bigint,
    value_new    float8,
    value_old    float8,
    change       float8,
    u            float8,
    p            float8,
    hl           float8,
    ci_low       float8,
    ci_high      float8,
    bound        text,
    threshold    float8,
    confidence   float8,
    tolerance    float8,
    direction    text,
    result       text NOT NULL CHECK (result IN ('pass', 'fail', 'nodata', 'invalid', 'skipped')),
    streak       int NOT NULL DEFAULT 0,
    tolerate     int NOT NULL DEFAULT 0,
    no_data      text,
    verdict      text NOT NULL CHECK (verdict IN ('pass', 'fail', 'pause', 'skipped')),
    reason       text NOT NULL
);
COMMENT ON TABLE conveyor.health_evaluation IS
    'Every healthcheck evaluation of every push: window, samples, values, statistics, threshold, verdict and reason';
COMMENT ON COLUMN conveyor.health_evaluation.push_id IS 'the push';
COMMENT ON COLUMN conveyor.health_evaluation.phase IS 'the phase (position, from 0; explain_health counts from 1)';
COMMENT ON COLUMN conveyor.health_evaluation.check_name IS 'the check (as configured then); (push type) is the push type''s own verdict when no check reads it';
COMMENT ON COLUMN conveyor.health_evaluation.source IS 'metric_store, prometheus or push_type';
COMMENT ON COLUMN conveyor.health_evaluation.kind IS 'simple, comparison or statistical';
COMMENT ON COLUMN conveyor.health_evaluation.metric IS 'the metric';
COMMENT ON COLUMN conveyor.health_evaluation.reduce IS 'the reducer applied to each version''s window';
COMMENT ON COLUMN conveyor.health_evaluation.at IS 'when the evaluation ran';
COMMENT ON COLUMN conveyor.health_evaluation.window_start IS 'the window read: samples after this';
COMMENT ON COLUMN conveyor.health_evaluation.window_end IS 'the window read: samples up to this';
COMMENT ON COLUMN conveyor.health_evaluation.n_new IS 'samples on the new version (push type: units checked)';
COMMENT ON COLUMN conveyor.health_evaluation.n_old IS 'samples on the old versions (comparison and statistical checks)';
COMMENT ON COLUMN conveyor.health_evaluation.value_new IS 'the new version''s reduced value';
COMMENT ON COLUMN conveyor.health_evaluation.value_old IS 'the old versions'' reduced value';
COMMENT ON COLUMN conveyor.health_evaluation.change IS
    'what was compared with the threshold: simple, the value; comparison, (new - old) / |old| (+-Infinity from a zero baseline); push type, unhealthy units';
COMMENT ON COLUMN conveyor.health_evaluation.u IS 'statistical: Mann-Whitney U of the new sample';
COMMENT ON COLUMN conveyor.health_evaluation.p IS 'statistical: p-value for the direction checked';
COMMENT ON COLUMN conveyor.health_evaluation.hl IS 'statistical: Hodges-Lehmann shift new - old';
COMMENT ON COLUMN conveyor.health_evaluation.ci_low IS 'statistical: low end of the shift''s interval';
COMMENT ON COLUMN conveyor.health_evaluation.ci_high IS 'statistical: high end of the shift''s interval';
COMMENT ON COLUMN conveyor.health_evaluation.result IS 'what the math found: pass, fail, nodata, invalid (or skipped)';
COMMENT ON COLUMN conveyor.health_evaluation.streak IS 'consecutive failing evaluations of this check in this push, this one included';
COMMENT ON COLUMN conveyor.health_evaluation.tolerate IS 'consecutive failing evaluations the check tolerated';
COMMENT ON COLUMN conveyor.health_evaluation.no_data IS 'the check''s no-data policy: fail, pass or pause';
COMMENT ON COLUMN conveyor.health_evaluation.verdict IS 'what it meant for the push: pass, fail, pause (inconclusive), skipped';
COMMENT ON COLUMN conveyor.health_evaluation.reason IS 'why, in words, with the numbers';
-- the latest evaluation of a check in a push (its streak), and a push's story
CREATE INDEX health_evaluation_push ON conveyor.health_evaluation (push_id, check_name, id);
SELECT pg_catalog.pg_extension_config_dump('conveyor.health_evaluation', '');
SELECT pg_catalog.pg_extension_config_dump('conveyor.health_evaluation_id_seq', '');

-- ------------------------------------------------------------ the math, in C

CREATE FUNCTION conveyor._health_store_judge(
    service text, new_version text, old_versions text[], window_end timestamptz, metrics text[],
    kinds text[], reducers text[], lookbacks float8[], bounds text[], thresholds float8[],
    confidences float8[], tolerances float8[], directions text[])
RETURNS TABLE (i int, result text, n_new bigint, n_old bigint, value_new float8, value_old float8,
               observed float8, u float8, p float8, hl float8, ci_low float8, ci_high float8, reason text)
LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'cv_health_store_judge';
COMMENT ON FUNCTION conveyor._health_store_judge(text, text, text[], timestamptz, text[], text[], text[], float8[],
                                                 text[], float8[], float8[], float8[], text[]) IS
    'internal: judges metric-store checks (arrays, one element per check) from one scan of the window; one row per check';

CREATE FUNCTION conveyor._health_judge(
    kind text, reducer text, bound text, threshold float8, confidence float8, tolerance float8, direction text,
    new_series bigint[], new_ts float8[], new_values float8[],
    old_series bigint[], old_ts float8[], old_values float8[])
RETURNS TABLE (result text, n_new bigint, n_old bigint, value_new float8, value_old float8,
               observed float8, u float8, p float8, hl float8, ci_low float8, ci_high float8, reason text)
LANGUAGE c IMMUTABLE AS 'MODULE_PATHNAME', 'cv_health_judge';
COMMENT ON FUNCTION conveyor._health_judge(text, text, text, float8, float8, float8, text, bigint[], float8[], float8[],
                                           bigint[], float8[], float8[]) IS
    'internal: judges one check over samples given as arrays (times in seconds, series ids for rate)';

-- ------------------------------------------------------------ Prometheus

-- Percent-encode a URL query value (RFC 3986 unreserved characters stay).
CREATE FUNCTION conveyor._url_encode(s text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT coalesce(string_agg(CASE WHEN b BETWEEN 48 AND 57 OR b BETWEEN 65 AND 90 OR b BETWEEN 97 AND 122
                                         OR b IN (45, 46, 95, 126)
                                    THEN chr(b) ELSE '%' || upper(lpad(to_hex(b), 2, '0')) END, '' ORDER BY i), '')
      FROM (SELECT i, get_byte(x.bytes, i) AS b
              FROM (SELECT convert_to(s, 'UTF8') AS bytes) x, generate_series(0, length(x.bytes) - 1) i) y
$$;
COMMENT ON FUNCTION conveyor._url_encode(text) IS 'internal: percent-encodes a URL query value';

-- The Prometheus range queries a push's phase needs now: one per check of
-- source prometheus that applies, [{"check", "url", "start", "end"}] for the
-- worker to GET outside any transaction; _health_evaluate takes the answers.
CREATE FUNCTION conveyor._health_prometheus_requests(push_id bigint, phase int) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'check', h.name,
               'url', format('%s/api/v1/query_range?query=%s&start=%s&end=%s&step=%s', h.prometheus_url,
                             conveyor._url_encode(h.query),
                             trim_scale(round(extract(epoch FROM t.now_at - h.lookback), 3)),
                             trim_scale(round(extract(epoch FROM t.now_at), 3)),
                             trim_scale(round(extract(epoch FROM h.step), 3)) || 's'),
               'start', t.now_at - h.lookback, 'end', t.now_at) ORDER BY h.position), '[]')
      FROM conveyor.push p
      JOIN conveyor.healthcheck h ON h.service = p.service
     CROSS JOIN (SELECT clock_timestamp() AS now_at) t
     WHERE p.id = _health_prometheus_requests.push_id AND h.source = 'prometheus'
       AND (h.phases IS NULL OR _health_prometheus_requests.phase + 1 = ANY (h.phases))
$$;
COMMENT ON FUNCTION conveyor._health_prometheus_requests(bigint, int) IS
    'internal: the Prometheus query_range URLs the worker fetches for a push''s phase: [{"check", "url", "start", "end"}]';

-- Judge one Prometheus check from the worker's answer for it:
-- {"status": "ok", "body": <query_range response>} or {"status": "error", "error": text}.
-- Series whose version label is the new version are new, those on a version
-- the push's subunits ran before are old; a simple check over a query that
-- has no version label at all (a fleet-wide aggregate) reads every series.
-- Anything unreadable is no data with the reason, never an error: a broken
-- or unreachable Prometheus is inconclusive, handled by the check's policy.
CREATE FUNCTION conveyor._health_prometheus_judge(h conveyor.healthcheck, answer jsonb, new_version text, old_versions text[])
RETURNS TABLE (result text, n_new bigint, n_old bigint, value_new float8, value_old float8,
               observed float8, u float8, p float8, hl float8, ci_low float8, ci_high float8, reason text)
LANGUAGE plpgsql AS $$
DECLARE
    body jsonb;
    labelled boolean;
    s record;
BEGIN
    IF answer IS NULL THEN
        RETURN QUERY SELECT 'nodata', 0::bigint, 0::bigint, NULL::float8, NULL::float8, NULL::float8, NULL::float8,
                            NULL::float8, NULL::float8, NULL::float8, NULL::float8,
                            'no data: no answer from Prometheus for this check (not fetched)';
        RETURN;
    END IF;
    IF answer->>'status' IS DISTINCT FROM 'ok' THEN
        RETURN QUERY SELECT 'nodata', 0::bigint, 0::bigint, NULL::float8, NULL::float8, NULL::float8, NULL::float8,
                            NULL::float8, NULL::float8, NULL::float8, NULL::float8,
                            'no data: Prometheus ' || left(coalesce(answer->>'error', 'gave no answer'), 200);
        RETURN;
    END IF;
    body := answer->'body';
    IF jsonb_typeof(body) IS DISTINCT FROM 'object' OR body->>'status' IS DISTINCT FROM 'success'
       OR body #>> '{data,resultType}' IS DISTINCT FROM 'matrix' OR jsonb_typeof(body #> '{data,result}') <> 'array' THEN
        RETURN QUERY SELECT 'nodata', 0::bigint, 0::bigint, NULL::float8, NULL::float8, NULL::float8, NULL::float8,
                            NULL::float8, NULL::float8, NULL::float8, NULL::float8,
                            'no data: Prometheus answered ' || left(coalesce(
                                CASE WHEN jsonb_typeof(body) = 'object' AND body ? 'error'
                                     THEN format('%s: %s', body->>'errorType', body->>'error')
                                     WHEN jsonb_typeof(body) = 'object' AND body #>> '{data,resultType}' IS NOT NULL
                                     THEN format('a %s, not a matrix', body #>> '{data,resultType}') END,
                                'something other than a matrix'), 200);
        RETURN;
    END IF;
    BEGIN
        labelled := EXISTS (SELECT 1 FROM jsonb_array_elements(body #> '{data,result}') r
                             WHERE r #> ARRAY['metric', h.version_label] IS NOT NULL);
        -- every value of every series, as (side, series id, time, value); NaN is
        -- Prometheus's "no value" (0/0) and is left out, +-Inf is kept and invalid
        SELECT array_agg(x.sid) FILTER (WHERE x.is_new) AS new_sid, array_agg(x.ts) FILTER (WHERE x.is_new) AS new_ts,
               array_agg(x.v) FILTER (WHERE x.is_new) AS new_v,
               array_agg(x.sid) FILTER (WHERE NOT x.is_new) AS old_sid,
               array_agg(x.ts) FILTER (WHERE NOT x.is_new) AS old_ts,
               array_agg(x.v) FILTER (WHERE NOT x.is_new) AS old_v
          INTO s
          FROM (SELECT CASE WHEN NOT labelled THEN true
                            ELSE r.series #>> ARRAY['metric', h.version_label] = new_version END AS is_new,
                       hashtext((r.series->'metric')::text)::bigint AS sid,
                       (v->>0)::float8 AS ts,
                       CASE lower(v->>1) WHEN '+inf' THEN 'Infinity'::float8 WHEN 'inf' THEN 'Infinity'::float8
                                         WHEN '-inf' THEN '-Infinity'::float8 ELSE (v->>1)::float8 END AS v
                  FROM jsonb_array_elements(body #> '{data,result}') r(series)
                 CROSS JOIN LATERAL jsonb_array_elements(r.series->'values') v
                 WHERE (NOT labelled AND h.kind = 'simple')
                    OR r.series #>> ARRAY['metric', h.version_label] = new_version
                    OR r.series #>> ARRAY['metric', h.version_label] = ANY (old_versions)) x
         WHERE lower(x.v::text) <> 'nan';
        RETURN QUERY SELECT * FROM conveyor._health_judge(h.kind, h.reduce, h.bound, h.threshold, h.confidence,
                                                          h.tolerance, h.direction, s.new_sid, s.new_ts, s.new_v,
                                                          s.old_sid, s.old_ts, s.old_v);
    EXCEPTION WHEN data_exception OR invalid_parameter_value OR null_value_not_allowed
                   OR array_subscript_error THEN
        RETURN QUERY SELECT 'nodata', 0::bigint, 0::bigint, NULL::float8, NULL::float8, NULL::float8, NULL::float8,
                            NULL::float8, NULL::float8, NULL::float8, NULL::float8,
                            'no data: the Prometheus answer is unreadable: ' || left(SQLERRM, 200);
    END;
END $$;
COMMENT ON FUNCTION conveyor._health_prometheus_judge(conveyor.healthcheck, jsonb, text, text[]) IS
    'internal: judges a Prometheus check from the worker''s answer (a query_range matrix), split by the version label';

-- ------------------------------------------------------------ evaluation

-- Evaluate the healthchecks of a push's phase now: every check that applies,
-- from its source, judged, stored in conveyor.health_evaluation, and summed
-- up in one row: verdict pass | fail | pause (inconclusive: a check without
-- data whose policy is pause) | none (nothing applies), and the reason.
--   push_type_health  the push type's check-health answer this round,
--                     {"checked": n, "unhealthy": [{"unit", "reason"}]} or NULL
--                     when it was not called
--   prometheus        the worker's answers to _health_prometheus_requests,
--                     [{"check", "status": "ok", "body"} | {"check", "status": "error", "error"}]
--                     or NULL
-- The push type's answer is a check of its own, "(push type)" (tolerating
-- nothing, failing on any unhealthy unit), unless a check of source
-- push_type says how to judge it. A failing evaluation within the check's
-- tolerance passes, and the reason says so.
-- Called by the engine on every health interval of every baking push: no
-- fixed search_path (it would cost a function-call context switch each time).
CREATE FUNCTION conveyor._health_evaluate(push_id bigint, phase int, push_type_health jsonb, prometheus jsonb)
RETURNS TABLE (verdict text, reason text)
LANGUAGE plpgsql AS $$
DECLARE
    p record;
    v_end timestamptz := clock_timestamp();
    v_old text[];
    n_checks int;
    v_fail text;
    v_pause text;
    v_notes text;
    n_pass int;
BEGIN
    SELECT x.id, x.service, x.version INTO p FROM conveyor.push x WHERE x.id = _health_evaluate.push_id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'push % does not exist', coalesce(_health_evaluate.push_id::text, 'NULL')
            USING ERRCODE = 'undefined_object';
    END IF;
    IF push_type_health IS NOT NULL AND (jsonb_typeof(push_type_health) <> 'object'
                                          OR jsonb_typeof(coalesce(push_type_health->'unhealthy', '[]')) <> 'array') THEN
        RAISE EXCEPTION 'invalid push type health answer for push %', p.id
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Got %s.', left(push_type_health::text, 200)),
                  HINT = 'It is {"checked": n, "unhealthy": [{"unit": ..., "reason": ...}]}.';
    END IF;
    IF prometheus IS NOT NULL AND jsonb_typeof(prometheus) <> 'array' THEN
        RAISE EXCEPTION 'invalid Prometheus answers for push %', p.id
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Got %s.', left(prometheus::text, 200)),
                  HINT = 'It is an array of {"check", "status": "ok", "body"} or {"check", "status": "error", "error"}.';
    END IF;
    -- the versions the push's updated subunits ran before it: the baseline
    v_old := ARRAY(SELECT DISTINCT s.from_version FROM conveyor.push_subunit s
                    WHERE s.push_id = p.id AND s.state IN ('done', 'sent')
                      AND s.from_version IS NOT NULL AND s.from_version <> p.version);

    WITH chk AS (
        SELECT h, row_number() OVER (ORDER BY h.position)::int AS i
          FROM conveyor.healthcheck h
         WHERE h.service = p.service AND (h.phases IS NULL OR _health_evaluate.phase + 1 = ANY (h.phases))),
    -- the push type's own verdict when no check reads it: any unhealthy unit fails
    implicit AS (
        SELECT ROW(p.service, '(push type)'::text, -1, 'unhealthy_units'::text, 'push_type'::text, 'simple'::text,
                   'count'::text, '1 second'::interval, 'upper'::text, 0::float8, NULL::float8, NULL::float8, NULL::text,
                   NULL::int[], 0, 'fail'::text, NULL::text, NULL::text, NULL::interval, NULL::text)::conveyor.healthcheck AS h
         WHERE push_type_health IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM chk WHERE (chk.h).source = 'push_type')),
    store_in AS (
        SELECT array_agg((h).metric ORDER BY i) AS metrics, array_agg((h).kind ORDER BY i) AS kinds,
               array_agg((h).reduce ORDER BY i) AS reducers,
               array_agg(extract(epoch FROM (h).lookback)::float8 ORDER BY i) AS lookbacks,
               array_agg((h).bound ORDER BY i) AS bounds, array_agg((h).threshold ORDER BY i) AS thresholds,
               array_agg((h).confidence ORDER BY i) AS confidences, array_agg((h).tolerance ORDER BY i) AS tolerances,
               array_agg((h).direction ORDER BY i) AS directions, array_agg(i ORDER BY i) AS idx
          FROM chk WHERE (h).source = 'metric_store'),
    -- materialized: the scan runs once, never once per check it is joined to
    store AS MATERIALIZED (
        SELECT store_in.idx[j.i] AS i, j.result, j.n_new, j.n_old, j.value_new, j.value_old, j.observed,
               j.u, j.p, j.hl, j.ci_low, j.ci_high, j.reason
          FROM store_in
         CROSS JOIN LATERAL conveyor._health_store_judge(p.service, p.version, v_old, v_end, store_in.metrics,
                   store_in.kinds, store_in.reducers, store_in.lookbacks, store_in.bounds, store_in.thresholds,
                   store_in.confidences, store_in.tolerances, store_in.directions) j
         WHERE store_in.metrics IS NOT NULL),
    judged AS (
        SELECT chk.h, v_end - (chk.h).lookback AS w_start, v_end AS w_end, s.result, s.n_new, s.n_old,
               s.value_new, s.value_old, s.observed, s.u, s.p, s.hl, s.ci_low, s.ci_high, s.reason, NULL::text AS units
          FROM chk JOIN store s ON s.i = chk.i
        UNION ALL
        SELECT chk.h, v_end - (chk.h).lookback, v_end, j.*, NULL
          FROM chk
         CROSS JOIN LATERAL conveyor._health_prometheus_judge(chk.h,
                   (SELECT a FROM jsonb_array_elements(prometheus) a WHERE a->>'check' = (chk.h).name LIMIT 1),
                   p.version, v_old) j
         WHERE (chk.h).source = 'prometheus'
        UNION ALL
        -- the push type's answer: the number of unhealthy units against the threshold
        SELECT x.h, NULL, v_end,
               CASE WHEN push_type_health IS NULL THEN 'nodata'
                    WHEN CASE (x.h).bound WHEN 'upper' THEN u.n > (x.h).threshold ELSE u.n < (x.h).threshold END
                    THEN 'fail' ELSE 'pass' END,
               (push_type_health->>'checked')::bigint, NULL, u.n, NULL, u.n, NULL, NULL, NULL, NULL, NULL,
               CASE WHEN push_type_health IS NULL
                    THEN 'no data: the push type''s check-health verb was not called (no updated units yet)'
                    ELSE format('%s: %s of %s units unhealthy (%s bound %s)%s',
                                CASE WHEN CASE (x.h).bound WHEN 'upper' THEN u.n > (x.h).threshold
                                               ELSE u.n < (x.h).threshold END THEN 'fail' ELSE 'pass' END,
                                u.n, coalesce(push_type_health->>'checked', '?'), (x.h).bound, (x.h).threshold,
                                CASE WHEN u.n > 0 THEN ': ' || u.list ELSE '' END) END,
               u.list
          FROM (SELECT chk.h FROM chk WHERE (chk.h).source = 'push_type' UNION ALL SELECT implicit.h FROM implicit) x
         CROSS JOIN LATERAL (
               SELECT count(*)::float8 AS n,
                      string_agg(format('%s (%s)', e->>'unit', coalesce(e->>'reason', 'no reason given')), ', ') AS list
                 FROM jsonb_array_elements(coalesce(push_type_health->'unhealthy', '[]')) e) u),
    -- consecutive failures: a failing result (or no data under policy fail)
    -- extends the check's streak in this push; anything else ends it
    decided AS (
        SELECT j.*, f.failing,
               CASE WHEN f.failing THEN coalesce(prev.streak, 0) + 1 ELSE 0 END AS streak
          FROM judged j
         CROSS JOIN LATERAL (SELECT j.result IN ('fail', 'invalid') OR (j.result = 'nodata' AND (j.h).no_data = 'fail')
                                    AS failing) f
          LEFT JOIN LATERAL (SELECT e.streak FROM conveyor.health_evaluation e
                              WHERE e.push_id = p.id AND e.check_name = (j.h).name
                              ORDER BY e.id DESC LIMIT 1) prev ON true),
    stored AS (
        INSERT INTO conveyor.health_evaluation AS e
               (push_id, phase, check_name, source, kind, metric, reduce, at, window_start, window_end,
                n_new, n_old, value_new, value_old, change, u, p, hl, ci_low, ci_high,
                bound, threshold, confidence, tolerance, direction, result, streak, tolerate, no_data, verdict, reason)
        SELECT p.id, _health_evaluate.phase, (d.h).name, (d.h).source, (d.h).kind, (d.h).metric,
               CASE WHEN (d.h).source <> 'push_type' THEN (d.h).reduce END, v_end, d.w_start, d.w_end,
               d.n_new, d.n_old, d.value_new, d.value_old, d.observed, d.u, d.p, d.hl, d.ci_low, d.ci_high,
               (d.h).bound, (d.h).threshold, (d.h).confidence, (d.h).tolerance, (d.h).direction,
               d.result, d.streak, (d.h).tolerate, (d.h).no_data, v.verdict,
               CASE WHEN d.failing AND d.streak <= (d.h).tolerate
                    THEN format('tolerated (failing evaluation %s of %s allowed in a row): %s', d.streak, (d.h).tolerate, d.reason)
                    WHEN d.result = 'nodata' THEN format('%s (no-data policy: %s)', d.reason, (d.h).no_data)
                    ELSE d.reason END
          FROM decided d
         CROSS JOIN LATERAL (
               SELECT CASE WHEN d.failing AND d.streak > (d.h).tolerate THEN 'fail'
                           WHEN d.result = 'nodata' AND (d.h).no_data = 'pause' THEN 'pause'
                           ELSE 'pass' END AS verdict) v
        RETURNING e.check_name, e.verdict, e.reason, e.result, e.source)
    SELECT count(*),
           string_agg(CASE WHEN s.check_name = '(push type)' THEN (SELECT d.units FROM decided d WHERE (d.h).name = '(push type)')
                           ELSE format('check %s: %s', s.check_name, s.reason) END, '; ' ORDER BY s.check_name)
               FILTER (WHERE s.verdict = 'fail'),
           string_agg(format('check %s: %s', s.check_name, s.reason), '; ' ORDER BY s.check_name) FILTER (WHERE s.verdict = 'pause'),
           string_agg(format('check %s: %s', s.check_name, s.reason), '; ' ORDER BY s.check_name)
               FILTER (WHERE s.verdict = 'pass' AND s.result <> 'pass'),
           count(*) FILTER (WHERE s.verdict = 'pass')
      INTO n_checks, v_fail, v_pause, v_notes, n_pass
      FROM stored s;

    IF n_checks = 0 THEN
        verdict := 'none'; reason := 'no healthchecks apply to this phase';
    ELSIF v_fail IS NOT NULL THEN
        verdict := 'fail'; reason := format('unhealthy in phase %s: %s', phase + 1, v_fail);
    ELSIF v_pause IS NOT NULL THEN
        verdict := 'pause'; reason := format('healthchecks inconclusive in phase %s: %s', phase + 1, v_pause);
    ELSE
        verdict := 'pass';
        reason := format('healthy in phase %s: %s of %s checks passed', phase + 1, n_pass, n_checks)
                  || coalesce('; ' || v_notes, '');
    END IF;
    RETURN NEXT;
END $$;
COMMENT ON FUNCTION conveyor._health_evaluate(bigint, int, jsonb, jsonb) IS
    'internal: evaluates and stores a push phase''s healthchecks (engine, during bake); one row: pass, fail, pause or none';

-- Record that a phase's healthchecks were skipped (push_skip_healthchecks):
-- one "skipped" evaluation per check that would have applied, once per phase.
CREATE FUNCTION conveyor._health_skip(push_id bigint, phase int) RETURNS int
LANGUAGE sql AS $$
    WITH p AS (SELECT x.id, x.service FROM conveyor.push x WHERE x.id = _health_skip.push_id),
    ins AS (
        INSERT INTO conveyor.health_evaluation (push_id, phase, check_name, source, kind, metric, reduce,
                                                result, verdict, reason, tolerate, no_data)
        SELECT p.id, _health_skip.phase, c.name, c.source, c.kind, c.metric, c.reduce, 'skipped', 'skipped',
               coalesce('healthchecks skipped for this push: ' || (SELECT e.reason FROM conveyor.push_event e
                                                                    WHERE e.push_id = p.id AND e.kind = 'healthchecks_skipped'
                                                                    ORDER BY e.id DESC LIMIT 1),
                        'healthchecks skipped for this push'),
               c.tolerate, c.no_data
          FROM p
         CROSS JOIN LATERAL (
               SELECT h.name, h.source, h.kind, h.metric, h.reduce, h.tolerate, h.no_data
                 FROM conveyor.healthcheck h
                WHERE h.service = p.service AND (h.phases IS NULL OR _health_skip.phase + 1 = ANY (h.phases))
               UNION ALL
               SELECT '(push type)', 'push_type', 'simple', 'unhealthy_units', NULL, 0, 'fail'
                WHERE conveyor._service_checks_health(p.service)
                  AND NOT EXISTS (SELECT 1 FROM conveyor.healthcheck h
                                   WHERE h.service = p.service AND h.source = 'push_type')) c
         WHERE NOT EXISTS (SELECT 1 FROM conveyor.health_evaluation e
                            WHERE e.push_id = p.id AND e.phase = _health_skip.phase AND e.check_name = c.name
                              AND e.result = 'skipped')
        RETURNING 1)
    SELECT count(*)::int FROM ins
$$;
COMMENT ON FUNCTION conveyor._health_skip(bigint, int) IS
    'internal: records a phase''s healthchecks as skipped (push_skip_healthchecks), once per phase and check';

-- ------------------------------------------------------------ explain_health

-- Why a push went on or stopped: its health evaluations, skips, and the
-- push events that followed from them, in order.
CREATE FUNCTION conveyor.explain_health(push_id bigint)
RETURNS TABLE (at timestamptz, phase int, check_name text, kind text, verdict text, explanation text,
               window_start timestamptz, window_end timestamptz, n_new bigint, n_old bigint,
               value_new float8, value_old float8, change float8, threshold float8,
               p float8, hl float8, ci_low float8, ci_high float8)
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM conveyor.push x WHERE x.id = explain_health.push_id) THEN
        RAISE EXCEPTION 'push % does not exist', coalesce(explain_health.push_id::text, 'NULL')
            USING ERRCODE = 'undefined_object',
                  HINT = 'conveyor.pushes lists the pushes you may see.';
    END IF;
    RETURN QUERY
    SELECT x.at, x.phase, x.check_name, x.kind, x.verdict, x.explanation, x.window_start, x.window_end,
           x.n_new, x.n_old, x.value_new, x.value_old, x.change, x.threshold, x.p, x.hl, x.ci_low, x.ci_high
      FROM (
        SELECT e.at, e.id AS ord, 1 AS src, e.phase + 1 AS phase, e.check_name, e.kind, e.verdict,
               CASE e.result
                    WHEN 'skipped' THEN e.reason
                    ELSE format('%s %s%s: %s', e.kind, CASE WHEN e.reduce IS NOT NULL THEN e.reduce || '(' || e.metric || ')'
                                                          ELSE e.metric END,
                                CASE WHEN e.source <> 'metric_store' THEN ' from ' || e.source ELSE '' END, e.reason) END
                   AS explanation,
               e.window_start, e.window_end, e.n_new, e.n_old, e.value_new, e.value_old, e.change, e.threshold,
               e.p, e.hl, e.ci_low, e.ci_high
          FROM conveyor.health_evaluation e WHERE e.push_id = explain_health.push_id
        UNION ALL
        -- what the verdicts did, and the skips and controls people used
        SELECT ev.at, ev.id, 2, ev.phase + 1, NULL, NULL,
               CASE ev.kind WHEN 'health_evaluated' THEN ev.detail->>'verdict' WHEN 'health_skipped' THEN 'skipped'
                            ELSE ev.kind END,
               concat_ws(': ', CASE ev.kind WHEN 'health_evaluated' THEN 'healthchecks' ELSE replace(ev.kind, '_', ' ') END,
                         coalesce(ev.reason, ev.detail->>'reason'))
                   || CASE WHEN ev.actor IS NOT NULL THEN format(' (by %s)', ev.actor) ELSE '' END,
               NULL::timestamptz, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
          FROM conveyor.push_event ev
         WHERE ev.push_id = explain_health.push_id
           AND ev.kind IN ('health_evaluated', 'health_skipped', 'healthchecks_skipped', 'phase_succeeded',
                           'push_paused', 'push_resumed', 'push_failed', 'push_succeeded', 'push_cancelled',
                           'push_reverted', 'bake_skipped', 'phase_skipped')) x
     ORDER BY x.at, x.src, x.ord;
END $$;
COMMENT ON FUNCTION conveyor.explain_health(bigint) IS
    'Why a push went on or stopped: every healthcheck evaluation (values, thresholds, verdicts), skips, and what followed';

-- ------------------------------------------------------------ access

ALTER TABLE conveyor.health_evaluation ENABLE ROW LEVEL SECURITY;
CREATE POLICY health_evaluation_visible ON conveyor.health_evaluation FOR SELECT
    USING ((SELECT conveyor._reads_all()) OR push_id IN (SELECT x.id FROM conveyor.push x));
GRANT SELECT ON conveyor.health_evaluation TO PUBLIC;

REVOKE EXECUTE ON FUNCTION
    conveyor._health_store_judge(text, text, text[], timestamptz, text[], text[], text[], float8[], text[], float8[],
                                 float8[], float8[], text[]),
    conveyor._health_judge(text, text, text, float8, float8, float8, text, bigint[], float8[], float8[],
                           bigint[], float8[], float8[]),
    conveyor._url_encode(text), conveyor._health_prometheus_requests(bigint, int),
    conveyor._health_prometheus_judge(conveyor.healthcheck, jsonb, text, text[]),
    conveyor._health_evaluate(bigint, int, jsonb, jsonb), conveyor._health_skip(bigint, int) FROM PUBLIC;
-- reads through row-level security as its caller; writes nothing
GRANT EXECUTE ON FUNCTION conveyor.explain_health(bigint) TO PUBLIC;
