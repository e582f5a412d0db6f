-- Healthchecks (docs/healthchecks.md): configuration refused with the right
-- SQLSTATE and nothing stored; simple, comparison and statistical verdicts
-- on metric-store data; zero baselines; no data; consecutive-failure
-- tolerance; the engine reverting a faulty version and letting a load spike
-- on both versions pass; skips; explain_health.
BEGIN;
\ir _helpers.psql
SELECT * FROM no_plan();
SET client_min_messages = warning;
-- Prometheus checks name servers on loopback; only allowed hosts are accepted
SET conveyor.allowed_hosts = '127.0.0.1';

-- Samples of a metric for a service: one per second going back from now,
-- values in order, on a version, spread over subunits s0..s3 of unit eu-1.
CREATE FUNCTION cvt.samples(svc text, metric text, version text, vals float8[], subunits int DEFAULT 4,
                            ago interval DEFAULT '1 second')
RETURNS bigint LANGUAGE sql AS $$
    WITH ins AS (
        INSERT INTO conveyor.metric_sample (service, metric, unit, subunit, version, at, value)
        SELECT svc, metric, 'eu-1', 's' || (i % subunits), version, clock_timestamp() - ago - make_interval(secs => i), v
          FROM unnest(vals) WITH ORDINALITY x(v, i)
        RETURNING 1)
    SELECT count(*) FROM ins
$$;

-- n draws of a normal distribution (Box-Muller over random(); setseed first).
CREATE FUNCTION cvt.normal(n int, mean float8, sd float8) RETURNS float8[] LANGUAGE sql AS $$
    SELECT array_agg(mean + sd * sqrt(-2 * ln(1 - random())) * cos(2 * pi() * random())) FROM generate_series(1, n)
$$;

-- A service (policy, plan) whose push of v2 sits baking phase 1 with no checks
-- of its own yet: checks set afterwards are judged by calling _health_evaluate.
CREATE FUNCTION cvt.baking(policy text DEFAULT 'pause') RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    svc text := cvt.service(plan => 'cvt_hold', policy => policy);
    id bigint := conveyor.push_start(svc, 'v2', 'setup');
BEGIN
    IF cvt.drive(id) <> 'running' THEN
        RAISE EXCEPTION 'setup: push % is not baking', id;
    END IF;
    RETURN id;
END $$;

-- The verdict row of an evaluation now, as 'verdict: reason'.
CREATE FUNCTION cvt.eval(id bigint, pt jsonb DEFAULT NULL, prom jsonb DEFAULT NULL) RETURNS text LANGUAGE sql AS $$
    SELECT verdict || ': ' || reason FROM conveyor._health_evaluate(id, 0, pt, prom)
$$;

-- The latest evaluation of a check in a push.
CREATE FUNCTION cvt.last(p_id bigint, p_check text) RETURNS conveyor.health_evaluation LANGUAGE sql AS $$
    SELECT * FROM conveyor.health_evaluation e WHERE e.push_id = p_id AND e.check_name = p_check ORDER BY e.id DESC LIMIT 1
$$;

-- Healthchecks, their history and evaluations, to show a refused call wrote nothing.
CREATE FUNCTION cvt.hc_state() RETURNS jsonb LANGUAGE sql AS $$
    SELECT jsonb_build_object(
        'checks', (SELECT coalesce(jsonb_agg(to_jsonb(h) ORDER BY h.service, h.position), '[]') FROM conveyor.healthcheck h),
        'events', (SELECT count(*) FROM conveyor.config_event),
        'evaluations', (SELECT count(*) FROM conveyor.health_evaluation));
$$;

CREATE FUNCTION cvt.hc_refused(svc text, checks text, errcode text, description text) RETURNS SETOF text
LANGUAGE plpgsql AS $$
DECLARE
    before jsonb := cvt.hc_state();
BEGIN
    RETURN NEXT throws_ok(format('SELECT conveyor.healthcheck_set(%L, %L)', svc, checks), errcode, NULL,
                          description || ': ' || errcode);
    RETURN NEXT is(cvt.hc_state(), before, description || ': nothing written');
END $$;

-- ================================================================ configuration

SELECT cvt.service(plan => 'cvt_quick') AS svc \gset
SELECT is(conveyor.healthcheck_set(:'svc', '[{"name": "keep", "metric": "m", "threshold": 1}]', 'first'), 1,
          'a one-check list is stored');

SELECT cvt.hc_refused(:'svc', c, e, d) FROM (VALUES
    ('{"name": "x"}', '22023', 'not an array'),
    ('[1]', '22023', 'a check that is not an object'),
    ('[{"metric": "m", "threshold": 1}]', '22023', 'no name'),
    ('[{"name": "bad name!", "metric": "m", "threshold": 1}]', '22023', 'a name with a space and !'),
    ('[{"name": "a", "metric": "m", "threshold": 1}, {"name": "a", "metric": "m", "threshold": 2}]', '22023', 'two checks of one name'),
    ('[{"name": "a", "metric": "m", "treshold": 1}]', '22023', 'an unknown setting (a typo)'),
    ('[{"name": "a", "threshold": 1}]', '22023', 'no metric'),
    ('[{"name": "a", "metric": "m", "threshold": 1, "kind": "fancy"}]', '22023', 'an unknown kind'),
    ('[{"name": "a", "metric": "m", "threshold": 1, "reduce": "median"}]', '22023', 'an unknown reducer'),
    ('[{"name": "a", "metric": "m", "threshold": 1, "source": "graphite"}]', '22023', 'an unknown source'),
    ('[{"name": "a", "metric": "m", "threshold": "high"}]', '22P02', 'a threshold that is not a number'),
    ('[{"name": "a", "metric": "m"}]', '22023', 'a simple check without a threshold'),
    ('[{"name": "a", "metric": "m", "kind": "comparison"}]', '22023', 'a comparison check without a threshold'),
    ('[{"name": "a", "metric": "m", "threshold": 1, "bound": "above"}]', '22023', 'an unknown bound'),
    ('[{"name": "a", "metric": "m", "threshold": 1, "lookback": "five minutes"}]', '22P02', 'a lookback that is no interval'),
    ('[{"name": "a", "metric": "m", "threshold": 1, "lookback": 300}]', '22P02', 'a lookback given as a number'),
    ('[{"name": "a", "metric": "m", "threshold": 1, "lookback": "-5 minutes"}]', '22023', 'a negative lookback'),
    ('[{"name": "a", "metric": "m", "threshold": 1, "lookback": "30 days"}]', '22023', 'a lookback over 7 days'),
    ('[{"name": "a", "metric": "m", "kind": "statistical", "threshold": 1}]', '22023', 'a statistical check with a threshold'),
    ('[{"name": "a", "metric": "m", "kind": "statistical", "confidence": 1.5}]', '22023', 'a confidence above 1'),
    ('[{"name": "a", "metric": "m", "kind": "statistical", "tolerance": -1}]', '22023', 'a negative tolerance'),
    ('[{"name": "a", "metric": "m", "kind": "statistical", "direction": "up"}]', '22023', 'an unknown direction'),
    ('[{"name": "a", "metric": "m", "threshold": 1, "confidence": 0.9}]', '22023', 'a confidence on a simple check'),
    ('[{"name": "a", "metric": "m", "threshold": 1, "phases": [0]}]', '22023', 'phase 0 (phases count from 1)'),
    ('[{"name": "a", "metric": "m", "threshold": 1, "phases": []}]', '22023', 'no phases'),
    ('[{"name": "a", "metric": "m", "threshold": 1, "phases": "1"}]', '22023', 'phases that are not an array'),
    ('[{"name": "a", "metric": "m", "threshold": 1, "tolerate": -1}]', '22023', 'a negative tolerance of failures'),
    ('[{"name": "a", "metric": "m", "threshold": 1, "tolerate": 1.5}]', '22P02', 'a fractional tolerance of failures'),
    ('[{"name": "a", "metric": "m", "threshold": 1, "no_data": "ignore"}]', '22023', 'an unknown no-data policy'),
    ('[{"name": "a", "metric": "m", "threshold": 1, "source": "prometheus"}]', '22023', 'Prometheus without a URL'),
    ('[{"name": "a", "metric": "m", "threshold": 1, "source": "prometheus", "prometheus_url": "ftp://x"}]', '22023', 'Prometheus at a URL that is not http'),
    ('[{"name": "a", "metric": "m", "threshold": 1, "source": "prometheus", "prometheus_url": "http://127.0.0.1:9090", "step": "1 second", "lookback": "7 days"}]',
     '22023', 'a step too small for the lookback'),
    ('[{"name": "a", "metric": "m", "threshold": 1, "source": "prometheus", "prometheus_url": "http://prometheus.example.com:9090"}]',
     '42501', 'Prometheus on a host conveyor.allowed_hosts does not allow'),
    ('[{"name": "a", "metric": "m", "threshold": 1, "query": "up"}]', '22023', 'a query on a metric-store check'),
    ('[{"name": "a", "source": "push_type", "reduce": "avg"}]', '22023', 'a reducer on the push type''s verdict'),
    ('[{"name": "a", "source": "push_type", "kind": "comparison"}]', '22023', 'a comparison of the push type''s verdict'),
    -- a good check first, then a bad one: none of the list is stored
    ('[{"name": "good", "metric": "m", "threshold": 1}, {"name": "bad", "metric": "m", "threshold": 1, "no_data": "?"}]',
     '22023', 'a good check before a bad one')
) AS t(c, e, d);
SELECT cvt.hc_refused('no_such_service', '[]', '42704', 'an unknown service');
SELECT is((SELECT array_agg(name) FROM conveyor.healthcheck WHERE service = :'svc'), '{keep}',
          'after every refusal the first list is still there, alone');

SELECT is(cvt.error_of(format($$SELECT conveyor.healthcheck_set(%L, '[{"name": "errs", "metric": "m", "threshold": 1, "treshold": 2}]')$$, :'svc')),
          jsonb_build_object('sqlstate', '22023', 'message', 'unknown setting "treshold" in healthcheck "errs"',
                             'detail', 'Check 1 of the list has it.',
                             'hint', 'Settings are: name, metric, source, kind, reduce, lookback, bound, threshold, confidence, '
                                     'tolerance, direction, phases, tolerate, no_data, prometheus_url, query, step, version_label.'),
          'an unknown setting: the message names it and the check, the hint lists the settings');
SELECT is(cvt.error_of(format($$SELECT conveyor.healthcheck_set(%L, '[{"name": "errs", "metric": "m", "threshold": "1%%"}]')$$, :'svc'))->>'message',
          'invalid threshold in healthcheck "errs": "1%" is not a number', 'a threshold as text: the message quotes it');

-- a full list: defaults filled in, readable, audited with before and after
SELECT is(conveyor.healthcheck_set(:'svc', '[
    {"name": "errors", "metric": "error_rate", "kind": "comparison", "reduce": "avg", "threshold": 0.2, "lookback": "10 minutes", "tolerate": 1},
    {"name": "latency", "metric": "latency_ms", "kind": "statistical", "direction": "either", "phases": [2, 1, 2], "no_data": "pause"},
    {"name": "cpu", "metric": "cpu", "reduce": "p90", "threshold": 0.9},
    {"name": "prom", "metric": "http_errors", "source": "prometheus", "prometheus_url": "http://127.0.0.1:9090/",
     "query": "rate(errors_total[1m])", "kind": "comparison", "threshold": 0.5, "no_data": "pass"},
    {"name": "agent", "source": "push_type", "threshold": 1}]', 'the real list'), 5, 'a list of five checks is stored');
SELECT results_eq(format($$SELECT name, source, kind, reduce, lookback, bound, threshold, confidence, tolerance, direction,
                                  phases, tolerate, no_data, prometheus_url, query, step, version_label
                             FROM conveyor.healthcheck WHERE service = %L ORDER BY position$$, :'svc'),
                  $$VALUES ('errors', 'metric_store', 'comparison', 'avg', '10 minutes'::interval, 'upper', 0.2::float8, NULL::float8, NULL::float8, NULL, NULL::int[], 1, 'fail', NULL, NULL, NULL::interval, NULL),
                           ('latency', 'metric_store', 'statistical', 'avg', '5 minutes', NULL, NULL, 0.98, 0.25, 'either', '{1,2}', 0, 'pause', NULL, NULL, NULL, NULL),
                           ('cpu', 'metric_store', 'simple', 'p90', '5 minutes', 'upper', 0.9, NULL, NULL, NULL, NULL, 0, 'fail', NULL, NULL, NULL, NULL),
                           ('prom', 'prometheus', 'comparison', 'avg', '5 minutes', 'upper', 0.5, NULL, NULL, NULL, NULL, 0, 'pass', 'http://127.0.0.1:9090', 'rate(errors_total[1m])', '15 seconds', 'version'),
                           ('agent', 'push_type', 'simple', 'count', '00:00:01', 'upper', 1, NULL, NULL, NULL, NULL, 0, 'fail', NULL, NULL, NULL, NULL)$$,
                  'stored with Kayenta''s defaults (0.98, 0.25), the default lookback, step and version label, phases sorted');
SELECT is((SELECT tolerate FROM conveyor.healthcheck WHERE service = :'svc' AND name = 'errors'), 1, 'tolerate is kept');
SELECT is((SELECT rule FROM conveyor.healthchecks WHERE service = :'svc' AND name = 'errors'),
          'avg(error_rate) over 00:10:00, new vs old version: fails when (new - old) / old is above 0.2',
          'the healthchecks view says the rule in words');
SELECT results_eq(format($$SELECT action, reason, detail->'before'->'healthchecks'->0->>'name',
                                  jsonb_array_length(detail->'after'->'healthchecks')
                             FROM conveyor.config_event WHERE object_kind = 'service' AND object_name = %L
                              AND action LIKE 'healthcheck%%' ORDER BY id$$, :'svc'),
                  $$VALUES ('healthcheck_set', 'first', NULL, 1), ('healthcheck_set', 'the real list', 'keep', 5)$$,
                  'config_event records each change with before and after');
SELECT is(conveyor.healthcheck_drop(:'svc', 'no more'), 5, 'healthcheck_drop removes all five');
SELECT is((SELECT count(*) FROM conveyor.healthcheck WHERE service = :'svc'), 0::bigint, 'none left');
SELECT is((SELECT jsonb_array_length(detail->'before'->'healthchecks') FROM conveyor.config_event
            WHERE object_name = :'svc' AND action = 'healthcheck_drop'), 5, 'the drop is audited with what was there');
SELECT throws_ok($$SELECT conveyor.healthcheck_drop('no_such_service')$$, '42704', NULL, 'dropping checks of no service: 42704');
-- a push type without a check-health verb cannot be a source
CREATE FUNCTION cvt.units(service text, config jsonb) RETURNS TABLE (unit text, labels jsonb, subunit text, version text, status text)
    LANGUAGE sql AS $$ SELECT NULL::text, NULL::jsonb, NULL::text, NULL::text, NULL::text WHERE false $$;
CREATE FUNCTION cvt.send(service text, config jsonb, updates jsonb) RETURNS TABLE (unit text, subunit text, error text)
    LANGUAGE sql AS $$ SELECT NULL::text, NULL::text, NULL::text WHERE false $$;
SELECT conveyor.push_type_create('cvt_blind', 'cvt.units(text,jsonb)', 'cvt.send(text,jsonb,jsonb)') \gset
SELECT conveyor.service_create('cvt_blind_svc', 'cvt_blind', 'cvt_quick') \gset
SELECT cvt.hc_refused('cvt_blind_svc', '[{"name": "a", "source": "push_type"}]', '22023',
                      'the push type''s verdict from a push type that has no check-health verb');

-- ================================================================ verdicts on metric-store data

SELECT cvt.baking() AS p \gset
SELECT cvt.service_of(:p) AS svc \gset

-- simple: the new version's value against a threshold
SELECT conveyor.healthcheck_set(:'svc', '[{"name": "cpu", "metric": "cpu", "reduce": "avg", "threshold": 0.8},
                                          {"name": "cpu_low", "metric": "cpu", "reduce": "p90", "threshold": 0.6, "bound": "upper"}]') \gset
SELECT cvt.samples(:'svc', 'cpu', 'v2', '{0.3,0.4,0.5,0.6,0.7}') \gset
SELECT cvt.samples(:'svc', 'cpu', 'v1', '{0.99,0.99,0.99}') \gset
SELECT is(cvt.eval(:p), 'fail: unhealthy in phase 1: check cpu_low: fail: value 0.66 is above the upper bound 0.6',
          'simple: avg 0.5 passes 0.8, p90 0.66 fails 0.6; the old version''s samples are not read');
SELECT results_eq(format($$SELECT result, verdict, n_new, n_old, round(value_new::numeric, 9), round(value_old::numeric, 9),
                                  round(change::numeric, 9), threshold, bound FROM conveyor.health_evaluation
                             WHERE push_id = %s AND check_name IN ('cpu', 'cpu_low') ORDER BY check_name$$, :p),
                  $$VALUES ('pass', 'pass', 5::bigint, 0::bigint, 0.5, NULL::numeric, 0.5, 0.8::float8, 'upper'),
                           ('fail', 'fail', 5, 0, 0.66, NULL, 0.66, 0.6, 'upper')$$,
                  'simple: each evaluation is stored with its samples, values and threshold');
SELECT ok((SELECT window_end - window_start = '5 minutes' AND window_end <= clock_timestamp() FROM cvt.last(:p, 'cpu')),
          'the stored window is the lookback ending at the evaluation');
-- the reducers agree with the SQL aggregates over the same rows
SELECT conveyor.healthcheck_set(:'svc', (SELECT jsonb_agg(jsonb_build_object('name', r, 'metric', 'cpu', 'reduce', r, 'threshold', 100))
                                           FROM unnest('{avg,min,max,sum,count,stddev,p50,p90,p95,p99}'::text[]) r)) \gset
SELECT cvt.eval(:p) \gset
SELECT is(ARRAY(SELECT round(value_new::numeric, 9) FROM conveyor.health_evaluation
                 WHERE push_id = :p AND check_name IN ('avg','min','max','sum','count','stddev','p50','p90','p95','p99')
                 ORDER BY array_position('{avg,min,max,sum,count,stddev,p50,p90,p95,p99}'::text[], check_name)),
          (SELECT ARRAY[avg(value), min(value), max(value), sum(value), count(value), stddev_samp(value),
                        percentile_cont(0.5) WITHIN GROUP (ORDER BY value), percentile_cont(0.9) WITHIN GROUP (ORDER BY value),
                        percentile_cont(0.95) WITHIN GROUP (ORDER BY value), percentile_cont(0.99) WITHIN GROUP (ORDER BY value)]::numeric[]
             FROM conveyor.metric_sample WHERE service = :'svc' AND metric = 'cpu' AND version = 'v2')::numeric(20,9)[],
          'every reducer equals its SQL aggregate over the same samples');

-- comparison: (new - old) / old, old being the version the updated subunits ran before
SELECT conveyor.healthcheck_set(:'svc', '[{"name": "errors", "metric": "error_rate", "kind": "comparison", "threshold": 0.2}]') \gset
SELECT cvt.samples(:'svc', 'error_rate', 'v1', array_fill(0.01::float8, ARRAY[40])) \gset
SELECT cvt.samples(:'svc', 'error_rate', 'v2', array_fill(0.011::float8, ARRAY[20])) \gset
SELECT cvt.samples(:'svc', 'error_rate', 'v0', array_fill(9::float8, ARRAY[20])) \gset
SELECT alike(cvt.eval(:p), 'pass: healthy in phase 1: 1 of 1 checks passed', 'comparison: +10% passes a +20% bound');
SELECT results_eq(format($$SELECT n_new, n_old, round(value_new::numeric, 6), round(value_old::numeric, 6), round(change::numeric, 6)
                             FROM cvt.last(%s, 'errors')$$, :p),
                  $$VALUES (20::bigint, 40::bigint, 0.011, 0.010, 0.1)$$,
                  'comparison: 20 new and 40 old samples, the change stored (a version no subunit came from is not read)');
SELECT cvt.samples(:'svc', 'error_rate', 'v2', array_fill(0.05::float8, ARRAY[20])) \gset
SELECT alike(cvt.eval(:p), 'fail: unhealthy in phase 1: check errors: fail: change +%', 'comparison: a higher error rate fails');

-- zero baselines: 0 errors on the old version and errors on the new must fail
SELECT cvt.baking() AS pz \gset
SELECT cvt.service_of(:pz) AS svcz \gset
SELECT conveyor.healthcheck_set(:'svcz', '[{"name": "errors", "metric": "errors", "kind": "comparison", "reduce": "sum", "threshold": 0.5}]') \gset
SELECT cvt.samples(:'svcz', 'errors', 'v1', array_fill(0::float8, ARRAY[30])) \gset
SELECT cvt.samples(:'svcz', 'errors', 'v2', array_fill(0::float8, ARRAY[30])) \gset
SELECT is(cvt.eval(:pz), 'pass: healthy in phase 1: 1 of 1 checks passed', 'zero baseline: 0 errors on both versions passes');
SELECT is((cvt.last(:pz, 'errors')).change, 0::float8, 'zero baseline: no change');
SELECT cvt.samples(:'svcz', 'errors', 'v2', '{1}') \gset
SELECT alike(cvt.eval(:pz), 'fail: unhealthy in phase 1: check errors: fail: infinite increase from a zero baseline%',
            'zero baseline: a single error on the new version fails');
SELECT is((cvt.last(:pz, 'errors')).change, 'Infinity'::float8, 'zero baseline: the change is stored as +Infinity');

-- statistical: a noisy but healthy version passes; a shifted one fails
SELECT setseed(0.42) \gset
SELECT cvt.baking() AS ps \gset
SELECT cvt.service_of(:ps) AS svcs \gset
SELECT conveyor.healthcheck_set(:'svcs', '[{"name": "latency", "metric": "latency", "kind": "statistical"}]') \gset
SELECT cvt.samples(:'svcs', 'latency', 'v1', cvt.normal(200, 100, 30)) \gset
SELECT cvt.samples(:'svcs', 'latency', 'v2', cvt.normal(200, 100, 30)) \gset
SELECT alike(cvt.eval(:ps), 'pass: healthy in phase 1: 1 of 1 checks passed', 'statistical: noisy samples of one distribution pass');
SELECT ok((SELECT u IS NOT NULL AND p > 0.01 AND ci_low < 0 AND ci_high > 0 FROM cvt.last(:ps, 'latency')),
          'statistical: U, p and the interval around 0 are stored');
SELECT cvt.samples(:'svcs', 'latency', 'v2', cvt.normal(400, 160, 30), ago => '1 millisecond') \gset
SELECT alike(cvt.eval(:ps), 'fail: unhealthy in phase 1: check latency: fail: high: the 98% interval%',
            'statistical: new samples 60% slower fail');
SELECT ok((SELECT hl > 0 AND ci_low > 0 AND p < 0.001 FROM cvt.last(:ps, 'latency')),
          'statistical: the Hodges-Lehmann shift and its interval lie above 0');

-- rate: per series (subunit), averaged; a counter reset in one series is no drop
SELECT cvt.baking() AS pr \gset
SELECT cvt.service_of(:pr) AS svcr \gset
SELECT conveyor.healthcheck_set(:'svcr', '[{"name": "req", "metric": "requests", "kind": "simple", "reduce": "rate", "threshold": 2}]') \gset
-- two subunits, each counting 1 per second (one of them restarted from 0)
INSERT INTO conveyor.metric_sample (service, metric, unit, subunit, version, at, value)
SELECT :'svcr', 'requests', 'eu-1', s, 'v2', clock_timestamp() - make_interval(secs => 60 - i),
       CASE WHEN s = 'a' THEN 1000 + i WHEN i < 30 THEN 500 + i ELSE i - 29 END
  FROM generate_series(0, 59) i, unnest('{a,b}'::text[]) s;
SELECT is(cvt.eval(:pr), 'pass: healthy in phase 1: 1 of 1 checks passed', 'rate: 1 per second per subunit passes 2');
SELECT is(round((cvt.last(:pr, 'req')).value_new::numeric, 4), 1.0000, 'rate: 1 per second, the reset handled');

-- the lookback bounds the window
SELECT cvt.baking() AS pl \gset
SELECT cvt.service_of(:pl) AS svcl \gset
SELECT conveyor.healthcheck_set(:'svcl', '[{"name": "cpu", "metric": "cpu", "threshold": 0.5, "lookback": "1 minute"}]') \gset
SELECT cvt.samples(:'svcl', 'cpu', 'v2', '{0.1,0.1}') \gset
SELECT cvt.samples(:'svcl', 'cpu', 'v2', '{0.9,0.9,0.9}', ago => '2 minutes') \gset
SELECT is(cvt.eval(:pl), 'pass: healthy in phase 1: 1 of 1 checks passed', 'samples older than the lookback are not read');
SELECT is((cvt.last(:pl, 'cpu')).n_new, 2::bigint, 'only the 2 samples in the window');

-- ================================================================ no data, tolerance

SELECT cvt.baking() AS pn \gset
SELECT cvt.service_of(:pn) AS svcn \gset
SELECT conveyor.healthcheck_set(:'svcn', '[{"name": "a", "metric": "nothing", "threshold": 1, "no_data": "pass"}]') \gset
SELECT is(cvt.eval(:pn), 'pass: healthy in phase 1: 1 of 1 checks passed; check a: no data: the value: no samples (no-data policy: pass)',
          'no data, policy pass: passes, and the reason says there was no data');
SELECT conveyor.healthcheck_set(:'svcn', '[{"name": "a", "metric": "nothing", "threshold": 1, "no_data": "pause"}]') \gset
SELECT is(cvt.eval(:pn), 'pause: healthchecks inconclusive in phase 1: check a: no data: the value: no samples (no-data policy: pause)',
          'no data, policy pause: inconclusive');
SELECT conveyor.healthcheck_set(:'svcn', '[{"name": "a", "metric": "nothing", "threshold": 1}]') \gset
SELECT is(cvt.eval(:pn), 'fail: unhealthy in phase 1: check a: no data: the value: no samples (no-data policy: fail)',
          'no data, policy fail (the default): fails');
SELECT conveyor.healthcheck_set(:'svcn', '[{"name": "a", "metric": "nothing", "kind": "comparison", "threshold": 1}]') \gset
SELECT cvt.samples(:'svcn', 'nothing', 'v2', '{1,2,3}') \gset
SELECT alike(cvt.eval(:pn), 'fail: unhealthy in phase 1: check a: no data: old value: %', 'comparison without a baseline: no data, fails');

-- consecutive failures: tolerate 2 means the third failing evaluation in a row fails
SELECT cvt.baking() AS pt \gset
SELECT cvt.service_of(:pt) AS svct \gset
SELECT conveyor.healthcheck_set(:'svct', '[{"name": "cpu", "metric": "cpu", "threshold": 0.5, "tolerate": 2, "lookback": "1 minute"}]') \gset
SELECT cvt.samples(:'svct', 'cpu', 'v2', '{0.9}') \gset
SELECT alike(cvt.eval(:pt), 'pass: healthy in phase 1: 1 of 1 checks passed; check cpu: tolerated (failing evaluation 1 of 2 allowed in a row): fail: %',
            'tolerance: the first failure passes, saying it was tolerated');
SELECT alike(cvt.eval(:pt), 'pass:%tolerated (failing evaluation 2 of 2%', 'tolerance: the second too');
SELECT alike(cvt.eval(:pt), 'fail: unhealthy in phase 1: check cpu: fail: value 0.9%', 'tolerance: the third fails');
SELECT is(ARRAY(SELECT streak || ' ' || result || ' ' || verdict FROM conveyor.health_evaluation WHERE push_id = :pt AND check_name = 'cpu' ORDER BY id),
          '{"1 fail pass","2 fail pass","3 fail fail"}', 'tolerance: the streak is stored with each evaluation');
-- a passing evaluation ends the streak
UPDATE conveyor.healthcheck SET threshold = 1 WHERE service = :'svct';
SELECT alike(cvt.eval(:pt), 'pass:%', 'tolerance: back under the threshold');
UPDATE conveyor.healthcheck SET threshold = 0.5 WHERE service = :'svct';
SELECT alike(cvt.eval(:pt), 'pass:%tolerated (failing evaluation 1 of 2%', 'tolerance: a pass restarts the count');

-- phases: a check for phase 2 only does not apply in phase 1
SELECT conveyor.healthcheck_set(:'svct', '[{"name": "later", "metric": "cpu", "threshold": 0, "phases": [2]}]') \gset
SELECT is(cvt.eval(:pt), 'none: no healthchecks apply to this phase', 'a check of phase 2 does not apply to phase 1');
SELECT is(cvt.eval(:pt, '{"checked": 1, "unhealthy": [{"unit": "eu-1", "reason": "boom"}]}'),
          'fail: unhealthy in phase 1: eu-1 (boom)', 'the push type''s own verdict still applies, worded as before');
SELECT is((cvt.last(:pt, '(push type)')).reason, 'fail: 1 of 1 units unhealthy (upper bound 0): eu-1 (boom)',
          'and is stored as the (push type) check');

-- bad arguments: clear errors, nothing stored
SELECT cvt.hc_state() AS before \gset
SELECT throws_ok(format($$SELECT * FROM conveyor._health_evaluate(%s, 0, '[1]', NULL)$$, :pt), '22023', NULL,
                 'a push type answer that is no object: 22023');
SELECT throws_ok(format($$SELECT * FROM conveyor._health_evaluate(%s, 0, NULL, '{}')$$, :pt), '22023', NULL,
                 'Prometheus answers that are no array: 22023');
SELECT throws_ok($$SELECT * FROM conveyor._health_evaluate(-1, 0, NULL, NULL)$$, '42704', NULL, 'no such push: 42704');
SELECT is(cvt.hc_state(), :'before'::jsonb, 'the refused evaluations stored nothing');

-- ================================================================ Prometheus (answers fed by hand)

SELECT cvt.baking() AS pp \gset
SELECT cvt.service_of(:pp) AS svcp \gset
SELECT conveyor.healthcheck_set(:'svcp', '[
    {"name": "errs", "metric": "errors", "source": "prometheus", "prometheus_url": "http://127.0.0.1:9090",
     "query": "sum by (version) (rate(errors_total{job=\"demo\"}[1m]))", "kind": "comparison", "threshold": 0.5,
     "lookback": "10 minutes", "step": "30s", "no_data": "pause"},
    {"name": "up", "metric": "up", "source": "prometheus", "prometheus_url": "http://127.0.0.1:9090", "threshold": 1,
     "bound": "lower", "no_data": "fail"}]') \gset
SELECT is(jsonb_array_length(conveyor._health_prometheus_requests(:pp, 0)), 2, 'one request per Prometheus check');
SELECT ok((SELECT r->>'url' ~ '^http://127\.0\.0\.1:9090/api/v1/query_range\?query=sum%20by%20%28version%29%20%28rate%28errors_total%7Bjob%3D%22demo%22%7D%5B1m%5D%29%29&start=[0-9.]+&end=[0-9.]+&step=30s$'
             FROM jsonb_array_elements(conveyor._health_prometheus_requests(:pp, 0)) r WHERE r->>'check' = 'errs'),
          'the request URL is query_range with the query percent-encoded, start, end and step');
SELECT ok((SELECT ((r->>'end')::timestamptz - (r->>'start')::timestamptz) = '10 minutes'
             FROM jsonb_array_elements(conveyor._health_prometheus_requests(:pp, 0)) r WHERE r->>'check' = 'errs'),
          'start and end span the lookback');
SELECT is(jsonb_array_length(conveyor._health_prometheus_requests(:pp, 5)), 2, 'checks without phases apply to every phase');

-- a matrix split by the version label (a real answer's shape: test/prometheus/query_range.json)
SELECT $${"status":"success","data":{"resultType":"matrix","result":[
  {"metric":{"version":"v1"},"values":[[1700000000,"0.01"],[1700000030,"0.01"],[1700000060,"0.012"]]},
  {"metric":{"version":"v2"},"values":[[1700000000,"0.05"],[1700000030,"0.06"],[1700000060,"NaN"]]},
  {"metric":{"version":"v7"},"values":[[1700000000,"99"]]}]}}$$ AS body \gset
SELECT $${"status":"success","data":{"resultType":"matrix","result":[
  {"metric":{"__name__":"up","job":"demo"},"values":[[1700000000,"1"],[1700000015,"0"]]}]}}$$ AS up_body \gset
SELECT alike(cvt.eval(:pp, NULL, jsonb_build_array(jsonb_build_object('check', 'errs', 'status', 'ok', 'body', :'body'::jsonb),
                                                   jsonb_build_object('check', 'up', 'status', 'ok', 'body', :'up_body'::jsonb))),
            'fail: unhealthy in phase 1: check errs: fail: change +%; check up: fail: value 0.5 is below the lower bound 1',
            'Prometheus: the error rate on v2 is 5x v1''s, and up averaged 0.5');
SELECT results_eq(format($$SELECT n_new, n_old, round(value_new::numeric, 4), round(value_old::numeric, 4) FROM cvt.last(%s, 'errs')$$, :pp),
                  $$VALUES (2::bigint, 3::bigint, 0.055, 0.0107)$$,
                  'Prometheus: series split by the version label, NaN left out, other versions ignored');
SELECT is((cvt.last(:pp, 'up')).n_new, 2::bigint, 'Prometheus: a simple check over a query without version label reads every series');
-- down, broken or strange answers are no data, handled by each check's policy
SELECT is(cvt.eval(:pp, NULL, '[{"check": "errs", "status": "error", "error": "connect to 127.0.0.1:9090: connection refused"},
                                {"check": "up", "status": "ok", "body": {"status": "success", "data": {"resultType": "matrix", "result": [{"metric": {}, "values": [[1, "1"]]}]}}}]'),
          'pause: healthchecks inconclusive in phase 1: check errs: no data: Prometheus connect to 127.0.0.1:9090: connection refused (no-data policy: pause)',
          'Prometheus down: inconclusive, policy pause');
SELECT is((cvt.last(:pp, 'errs')).result, 'nodata', 'Prometheus down: stored as no data');
SELECT alike(cvt.eval(:pp, NULL, '[{"check": "up", "status": "ok", "body": {"status": "error", "errorType": "bad_data", "error": "parse error"}}]'),
            'fail: unhealthy in phase 1: check up: no data: Prometheus answered bad_data: parse error (no-data policy: fail)%',
            'a Prometheus error answer: no data, policy fail');
SELECT alike((cvt.last(:pp, 'errs')).reason, 'no data: no answer from Prometheus for this check (not fetched)%',
            'no answer for a check: no data');
SELECT alike(cvt.eval(:pp, NULL, '[{"check": "up", "status": "ok", "body": {"status": "success", "data": {"resultType": "vector", "result": []}}}]'),
            '%check up: no data: Prometheus answered a vector, not a matrix%', 'an instant vector: no data');
SELECT alike(cvt.eval(:pp, NULL, '[{"check": "up", "status": "ok", "body": {"status": "success", "data": {"resultType": "matrix", "result": [{"metric": {}, "values": [[1, "lots"]]}]}}}]'),
            '%check up: no data: the Prometheus answer is unreadable: %', 'a value that is no number: no data, no error');
SELECT alike(cvt.eval(:pp, NULL, '[{"check": "up", "status": "ok", "body": {"status": "success", "data": {"resultType": "matrix", "result": [{"metric": {}, "values": 7}]}}}]'),
            '%check up: no data: the Prometheus answer is unreadable: %', 'values that are no array: no data, no error');
SELECT alike(cvt.eval(:pp, NULL, '[{"check": "up", "status": "ok", "body": {"status": "success", "data": {"resultType": "matrix", "result": [{"metric": {}, "values": [[1, "+Inf"]]}]}}}]'),
            '%check up: invalid: the value: value is not finite%', 'an infinite value: invalid, which fails');

-- real answers of a real Prometheus (test/prometheus/capture.sh): the demo
-- service at 1.0 and at 2.1-bad, which answers half its requests with 500
\ir _prometheus_bodies.psql
SELECT conveyor.sim_fleet_create('cvt_demo', '{eu,us}', 1, 4, '1.0') \gset
SELECT conveyor.service_create('cvt_demo', 'simulated', 'cvt_hold', '{"fleet": "cvt_demo"}') \gset
SELECT conveyor.healthcheck_set('cvt_demo', '[
    {"name": "errors", "metric": "demo_errors", "source": "prometheus", "prometheus_url": "http://127.0.0.1:9090",
     "query": "sum by (version) (rate(demo_errors_total[5s]))", "kind": "comparison", "threshold": 0.1},
    {"name": "requests", "metric": "demo_requests", "source": "prometheus", "prometheus_url": "http://127.0.0.1:9090",
     "query": "sum by (version) (rate(demo_requests_total{path=\"/\"}[5s]))", "kind": "comparison", "threshold": 0.2, "bound": "upper"},
    {"name": "load", "metric": "demo_requests", "source": "prometheus", "prometheus_url": "http://127.0.0.1:9090",
     "query": "sum by (version) (rate(demo_requests_total{path=\"/\"}[5s]))", "kind": "statistical", "direction": "either"}]') \gset
SELECT conveyor.push_start('cvt_demo', '2.1-bad') AS pd \gset
-- The step asks the workers for the range queries (a call outside the
-- transaction) and waits; nothing answers them in this test transaction, so
-- the test answers as a worker would when Prometheus is down.
CREATE FUNCTION cvt.prometheus_down(id bigint) RETURNS text LANGUAGE sql AS $$
    UPDATE conveyor.push_call c
       SET state = 'answered', answered_at = clock_timestamp(), duration_ms = 1,
           result = jsonb_build_object('answers',
               (SELECT jsonb_agg(jsonb_build_object('check', r->>'check', 'status', 'error',
                                                    'error', 'GET ' || (r->>'url') || ': Could not connect to server')
                                 ORDER BY n)
                  FROM jsonb_array_elements(c.request->'requests') WITH ORDINALITY x(r, n)))
     WHERE c.push_id = id AND c.verb = 'prometheus' AND c.state = 'pending';
    UPDATE conveyor.push SET next_step_at = clock_timestamp() WHERE push.id = id AND state = 'running';
    SELECT cvt.drive(id);
$$;
SELECT is(cvt.drive(:pd), 'running', 'the demo push waits for its Prometheus queries');
SELECT is((SELECT jsonb_agg(r->>'check' ORDER BY r->>'check') FROM conveyor.push_call c, jsonb_array_elements(c.request->'requests') r
            WHERE c.push_id = :pd AND c.verb = 'prometheus' AND c.state = 'pending' AND r->>'url' LIKE 'http://127.0.0.1:9090/api/v1/query_range?query=%'),
          '["errors", "load", "requests"]'::jsonb, 'a call for the workers holds one range query per Prometheus check');
SELECT is(cvt.prometheus_down(:pd), 'paused', 'the demo push pauses: no Prometheus answer, and policy pause');
SELECT alike(cvt.eval(:pd, NULL, jsonb_build_array(
              jsonb_build_object('check', 'errors', 'status', 'ok', 'body', :'prom_errors'::jsonb),
              jsonb_build_object('check', 'requests', 'status', 'ok', 'body', :'prom_requests'::jsonb),
              jsonb_build_object('check', 'load', 'status', 'ok', 'body', :'prom_requests'::jsonb))),
          'fail: unhealthy in phase 1: check errors: fail: infinite increase from a zero baseline (old 0, new %) is above the upper bound +10%',
          'real Prometheus answers: 0 errors on 1.0 and errors on 2.1-bad fail by the zero-baseline rule');
SELECT results_eq(format($$SELECT check_name, result, n_new, n_old FROM conveyor.health_evaluation
                             WHERE push_id = %s AND source = 'prometheus' AND result <> 'nodata' ORDER BY id$$, :pd),
                  $$VALUES ('errors', 'fail', 7::bigint, 7::bigint), ('requests', 'pass', 7, 7), ('load', 'pass', 7, 7)$$,
                  'real Prometheus answers: 7 points per version each; the same load on both versions passes');
SELECT is((SELECT round(value_new::numeric, 9) FROM cvt.last(:pd, 'errors')),
          (SELECT round(avg((v #>> '{}')::float8)::numeric, 9) FROM jsonb_path_query(:'prom_errors'::jsonb,
              '$.data.result[*] ? (@.metric.version == "2.1-bad").values[*][1]') v),
          'real Prometheus answers: the new version''s value is the mean of its series'' values');
SELECT alike(cvt.eval(:pd, NULL, jsonb_build_array(jsonb_build_object('check', 'errors', 'status', 'ok', 'body', :'prom_bad_query'::jsonb))),
             '%check errors: no data: Prometheus answered bad_data: 1:6: parse error: unclosed left parenthesis (no-data policy: fail)%',
             'a real Prometheus error answer (a bad query): no data, with its message');

-- ================================================================ through the engine

-- A faulty version with a higher error rate: the comparison check catches it, the push is reverted.
SELECT cvt.service(plan => 'cvt_quick', policy => 'revert') AS svc \gset
SELECT conveyor.healthcheck_set(:'svc', '[{"name": "errors", "metric": "error_rate", "kind": "comparison", "threshold": 0.25}]') \gset
SELECT cvt.samples(:'svc', 'error_rate', 'v1', cvt.normal(60, 0.010, 0.001)) \gset
SELECT cvt.samples(:'svc', 'error_rate', 'v2', cvt.normal(60, 0.030, 0.003)) \gset
SELECT conveyor.push_start(:'svc', 'v2', 'faulty release') AS p \gset
SELECT is(cvt.drive(:p), 'reverted', 'engine: the faulty version is reverted');
SELECT alike((SELECT outcome_reason FROM conveyor.push WHERE id = :p),
            'automatic revert: unhealthy in phase 1: check errors: fail: change +%', 'engine: the reason names the check and the change');
SELECT is(cvt.drive((SELECT id FROM conveyor.push WHERE reverts = :p)), 'succeeded', 'engine: the revert push succeeds');
SELECT is(cvt.versions(:p), '{"v1": 8}'::jsonb, 'engine: every subunit is back on v1');
SELECT results_eq(format($$SELECT kind, detail->>'verdict' FROM conveyor.push_event WHERE push_id = %s AND kind LIKE 'health%%' ORDER BY id$$, :p),
                  $$VALUES ('health_checked', NULL), ('health_evaluated', 'fail')$$,
                  'engine: the push type''s check, then the healthchecks'' verdict, as events');
SELECT results_eq(format($$SELECT phase, check_name, verdict FROM conveyor.explain_health(%s) ORDER BY at, check_name NULLS LAST$$, :p),
                  $$VALUES (1, '(push type)', 'pass'), (1, 'errors', 'fail'), (1, NULL, 'fail'), (1, NULL, 'push_reverted')$$,
                  'explain_health: each check, the verdict, and what it did');
SELECT matches((SELECT explanation FROM conveyor.explain_health(:p) WHERE check_name = 'errors'),
            '^comparison avg\(error_rate\): fail: change \+[0-9.]+% \(old 0\.0[0-9]+, new 0\.0[0-9]+\) is above the upper bound \+25%$',
            'explain_health: the check, the values and the threshold in words');
SELECT ok((SELECT n_new > 0 AND n_old > 0 AND change > 0.25 AND threshold = 0.25 FROM conveyor.explain_health(:p) WHERE check_name = 'errors'),
          'explain_health: the numbers, as columns');

-- The paper's CPU spike: CPU rises on both versions at once. The comparison passes...
SELECT cvt.service(plan => 'cvt_quick', policy => 'revert') AS svc \gset
SELECT conveyor.healthcheck_set(:'svc', '[{"name": "cpu", "metric": "cpu", "kind": "comparison", "threshold": 0.2}]') \gset
SELECT cvt.samples(:'svc', 'cpu', 'v1', cvt.normal(60, 0.95, 0.02)) \gset
SELECT cvt.samples(:'svc', 'cpu', 'v2', cvt.normal(60, 0.96, 0.02)) \gset
SELECT conveyor.push_start(:'svc', 'v2', 'during a load spike') AS p \gset
SELECT is(cvt.drive(:p), 'succeeded', 'CPU spike on both versions: the comparison check passes, the push succeeds');
SELECT is((SELECT count(*) FROM conveyor.health_evaluation WHERE push_id = :p AND check_name = 'cpu' AND verdict = 'pass'), 2::bigint,
          'CPU spike: both phases evaluated the comparison, both passed');
-- ... where a simple check on the same data would have failed
SELECT cvt.service(plan => 'cvt_quick', policy => 'fail') AS svc \gset
SELECT conveyor.healthcheck_set(:'svc', '[{"name": "cpu", "metric": "cpu", "kind": "simple", "threshold": 0.9}]') \gset
SELECT cvt.samples(:'svc', 'cpu', 'v1', cvt.normal(60, 0.95, 0.02)) \gset
SELECT cvt.samples(:'svc', 'cpu', 'v2', cvt.normal(60, 0.96, 0.02)) \gset
SELECT conveyor.push_start(:'svc', 'v2', 'during a load spike') AS p \gset
SELECT is(cvt.drive(:p), 'failed', 'CPU spike: a simple check on the same load fails the push');

-- A noisy but healthy version passes the statistical check end to end.
SELECT cvt.service(plan => 'cvt_quick', policy => 'revert') AS svc \gset
SELECT conveyor.healthcheck_set(:'svc', '[{"name": "latency", "metric": "latency_ms", "kind": "statistical", "direction": "either"}]') \gset
SELECT cvt.samples(:'svc', 'latency_ms', 'v1', cvt.normal(300, 120, 40)) \gset
SELECT cvt.samples(:'svc', 'latency_ms', 'v2', cvt.normal(300, 120, 40)) \gset
SELECT conveyor.push_start(:'svc', 'v2', 'noisy') AS p \gset
SELECT is(cvt.drive(:p), 'succeeded', 'statistical: a noisy but healthy version succeeds');

-- Prometheus unreachable (the worker has no answer): inconclusive, the push pauses whatever the failure policy.
SELECT cvt.service(plan => 'cvt_quick', policy => 'revert') AS svc \gset
SELECT conveyor.healthcheck_set(:'svc', '[{"name": "prom", "metric": "errors", "source": "prometheus", "prometheus_url": "http://127.0.0.1:1",
                                           "kind": "comparison", "threshold": 0.1, "no_data": "pause"}]') \gset
SELECT conveyor.push_start(:'svc', 'v2') AS p \gset
SELECT is(cvt.drive(:p), 'running', 'Prometheus checks: the push waits for the workers to query Prometheus');
SELECT is(cvt.prometheus_down(:p), 'paused', 'Prometheus without an answer, policy pause: the push pauses (policy revert notwithstanding)');
SELECT alike((SELECT reason FROM conveyor.push_event WHERE push_id = :p AND kind = 'push_paused'),
            'healthchecks inconclusive in phase 1: check prom: no data: %', 'the pause says why');
SELECT is((SELECT next_step_at FROM conveyor.push WHERE id = :p), NULL, 'a paused push is due no more');
-- a person skips the healthchecks and resumes: the skip is stored and explained
SELECT conveyor.push_skip_healthchecks(:p, 'Prometheus is down, checked by hand') \gset
SELECT conveyor.push_resume(:p, 'go on') \gset
SELECT is(cvt.drive(:p), 'succeeded', 'after skipping healthchecks the push goes on');
SELECT is((SELECT count(*) FROM conveyor.health_evaluation WHERE push_id = :p AND result = 'skipped'), 4::bigint,
          'the skipped evaluations are stored: 2 checks (prom, the push type''s) x 2 phases');
SELECT ok((SELECT count(*) > 0 FROM conveyor.explain_health(:p)
            WHERE verdict = 'skipped' AND explanation LIKE '%Prometheus is down, checked by hand%'),
          'explain_health shows the skip with the reason given');
SELECT throws_ok($$SELECT * FROM conveyor.explain_health(-1)$$, '42704', NULL, 'explain_health of no push: 42704');

-- ================================================================ the metric store

CREATE ROLE cvt_team NOLOGIN;
CREATE ROLE cvt_other NOLOGIN;
CREATE ROLE cvt_collector NOLOGIN IN ROLE conveyor_metrics;
GRANT USAGE ON SCHEMA cvt TO PUBLIC;
SELECT conveyor.sim_fleet_create('cvt_store', '{eu}', 1, 2, 'v1') \gset
SELECT conveyor.service_create('cvt_store', 'simulated', 'cvt_quick', '{"fleet": "cvt_store"}', owner => 'cvt_team') \gset
\set svc cvt_store
SET ROLE cvt_team;
SELECT lives_ok(format($$INSERT INTO conveyor.metric_sample (service, metric, version, at, value) VALUES (%L, 'm', 'v1', now(), 1)$$, :'svc'),
                'the owner writes samples of its service');
SELECT is((SELECT count(*) FROM conveyor.metric_samples WHERE service = :'svc' AND metric = 'm'), 1::bigint,
          'and reads them through conveyor.metric_samples');
SELECT throws_ok('SELECT count(*) FROM conveyor.metric_sample', '42501', NULL, 'but not the table itself');
SELECT throws_ok('INSERT INTO conveyor.metric_sample_default (service, metric, version, at, value) VALUES (''x'', ''m'', ''v'', now(), 1)',
                 '42501', NULL, 'nobody writes a partition directly');
RESET ROLE;
SET ROLE cvt_other;
SELECT throws_ok(format($$INSERT INTO conveyor.metric_sample (service, metric, version, at, value) VALUES (%L, 'm', 'v1', now(), 1)$$, :'svc'),
                 '42501', format('permission denied to write metric samples of service "%s"', :'svc'),
                 'another role may not write the service''s samples');
SELECT is((SELECT count(*) FROM conveyor.metric_samples WHERE service = :'svc'), 0::bigint, 'nor read them');
RESET ROLE;
SET ROLE cvt_collector;
SELECT lives_ok(format($$INSERT INTO conveyor.metric_sample (service, metric, version, at, value) VALUES (%L, 'm', 'v1', now(), 2)$$, :'svc'),
                'a collector (conveyor_metrics) writes samples of any service');
SELECT throws_ok($$INSERT INTO conveyor.metric_sample (service, metric, version, at, value) VALUES ('no_such', 'm', 'v1', now(), 2)$$,
                 '23503', NULL, 'a sample of no service: 23503');
-- COPY, as collectors write in bulk
COPY conveyor.metric_sample (service, metric, unit, subunit, version, at, value) FROM STDIN WITH (FORMAT csv);
cvt_store,m,eu-1,s0,v1,2024-01-01 00:00:00+00,1
\.
RESET ROLE;
SELECT is((SELECT count(*) FROM conveyor.metric_sample WHERE metric = 'm' AND service = :'svc'), 3::bigint,
          'two INSERTs and a COPY written; the refused statements wrote nothing');
SELECT throws_ok(format($$INSERT INTO conveyor.metric_sample (service, metric, version, at, value) VALUES (%L, 'm', 'v1', now(), 'NaN')$$, :'svc'),
                 '23514', NULL, 'a NaN sample is refused');
SELECT throws_ok(format($$INSERT INTO conveyor.metric_sample (service, metric, version, at, value) VALUES (%L, 'm', 'v1', now(), 'Infinity')$$, :'svc'),
                 '23514', NULL, 'an infinite sample is refused');

-- partitions: maintenance makes the days ahead, moves stray rows out of the default partition, drops old days
INSERT INTO conveyor.metric_sample (service, metric, version, at, value)
VALUES (:'svc', 'old', 'v1', now() - interval '40 days', 1), (:'svc', 'recent', 'v1', now() - interval '2 days', 1);
-- (the days the default partition holds: today's, 2 days ago; near midnight also yesterday)
SELECT count(DISTINCT (conveyor._metric_day(at)).lo) AS stray_days,
       4 - count(DISTINCT (conveyor._metric_day(at)).lo) FILTER (WHERE at >= (conveyor._metric_day(now())).lo) AS ahead_days
  FROM conveyor.metric_sample_default WHERE at >= now() - interval '14 days' \gset
SELECT results_eq('SELECT * FROM conveyor.metric_maintain()', format('VALUES (%s, 0, %s)', :ahead_days, :stray_days),
                  'maintenance: the samples'' days moved out of the default into their own, the rest of 3 days ahead made');
SELECT is((SELECT count(*) FROM conveyor.metric_sample_default), 0::bigint, 'the default partition is empty: old rows past retention deleted, the rest moved');
SELECT is((SELECT count(*) FROM conveyor.metric_sample WHERE service = :'svc' AND metric = 'recent'), 1::bigint, 'the moved sample is still there');
SELECT ok(to_regclass('conveyor.' || (conveyor._metric_day(now() + interval '3 days')).name) IS NOT NULL, 'the partition 3 days ahead exists');
SELECT results_eq('SELECT * FROM conveyor.metric_maintain()', 'VALUES (0, 0, 0)', 'maintenance again: nothing to do');
SELECT is(conveyor.metric_retention_set('1 day', 2),
          'metric samples are kept 1 day, partitions made 2 days ahead, at "7 * * * *" (pg_cron job conveyor-metrics)',
          'retention set to a day (and maintained at once)');
SELECT ok(to_regclass('conveyor.' || (conveyor._metric_day(now() - interval '2 days')).name) IS NULL, 'the day past retention was dropped');
SELECT is((SELECT count(*) FROM cron.job WHERE jobname = 'conveyor-metrics'), 1::bigint, 'pg_cron runs it');
SELECT throws_ok($$SELECT conveyor.metric_retention_set('1 hour')$$, '22023', NULL, 'a retention under a day: 22023');
SELECT throws_ok($$SELECT conveyor.metric_retention_set('1 day', 0)$$, '22023', NULL, '0 days ahead: 22023');
SELECT ok(NOT has_function_privilege('cvt_team', 'conveyor.metric_maintain()', 'EXECUTE'), 'maintenance is for administrators');

SELECT * FROM finish();
ROLLBACK;
