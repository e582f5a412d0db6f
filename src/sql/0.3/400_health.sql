-- conveyor 0.3: healthcheck configuration (docs/healthchecks.md).
--
-- A service has a list of checks. Each reads a metric from a source (the
-- built-in metric store, Prometheus, or the push type's check-health verb),
-- reduces it over a lookback window and judges it: simple (the value against
-- a threshold), comparison ((new - old) / old against a threshold) or
-- statistical (Mann-Whitney U with a Hodges-Lehmann interval, Kayenta's
-- rule). The list is set as a whole with conveyor.healthcheck_set, validated
-- before anything is stored, and every change is recorded in config_event.

CREATE TABLE conveyor.healthcheck (
    service        text NOT NULL REFERENCES conveyor.service ON UPDATE CASCADE ON DELETE CASCADE,
    name           text NOT NULL,
    position       int NOT NULL CHECK (position >= 0),
    metric         text NOT NULL,
    source         text NOT NULL CHECK (source IN ('metric_store', 'prometheus', 'push_type')),
    kind           text NOT NULL CHECK (kind IN ('simple', 'comparison', 'statistical')),
    reduce         text NOT NULL
                   CHECK (reduce IN ('avg', 'min', 'max', 'sum', 'count', 'rate', 'stddev', 'p50', 'p90', 'p95', 'p99')),
    lookback       interval NOT NULL CHECK (lookback > '0'),
    bound          text CHECK (bound IN ('upper', 'lower')),
    threshold      float8,
    confidence     float8 CHECK (confidence > 0 AND confidence < 1),
    tolerance      float8 CHECK (tolerance >= 0),
    direction      text CHECK (direction IN ('increase', 'decrease', 'either')),
    phases         int[],
    tolerate       int NOT NULL DEFAULT 0 CHECK (tolerate BETWEEN 0 AND 1000),
    no_data        text NOT NULL DEFAULT 'fail' CHECK (no_data IN ('fail', 'pass', 'pause')),
    prometheus_url text,
    query          text,
    step           interval,
    version_label  text,
    PRIMARY KEY (service, name),
    UNIQUE (service, position),
    -- statistical checks judge a shift; the others a value against a threshold
    CHECK ((kind = 'statistical') = (confidence IS NOT NULL AND tolerance IS NOT NULL AND direction IS NOT NULL)),
    CHECK ((kind = 'statistical') = (threshold IS NULL AND bound IS NULL)),
    CHECK ((source = 'prometheus') = (prometheus_url IS NOT NULL AND query IS NOT NULL AND step IS NOT NULL
                                      AND version_label IS NOT NULL))
);
COMMENT ON TABLE conveyor.healthcheck IS
    'Healthchecks of each service (set with conveyor.healthcheck_set): judged at every health interval while a phase bakes';
COMMENT ON COLUMN conveyor.healthcheck.service IS 'the service checked';
COMMENT ON COLUMN conveyor.healthcheck.name IS 'the check''s name, unique per service';
COMMENT ON COLUMN conveyor.healthcheck.position IS 'order in the service''s list, from 0';
COMMENT ON COLUMN conveyor.healthcheck.metric IS 'the metric: its name in the metric store, a label for Prometheus and push-type checks';
COMMENT ON COLUMN conveyor.healthcheck.source IS 'metric_store (conveyor.metric_sample), prometheus (a range query), push_type (its check-health verb)';
COMMENT ON COLUMN conveyor.healthcheck.kind IS
    'simple (value vs threshold), comparison ((new - old) / old vs threshold), statistical (Mann-Whitney, Kayenta''s rule)';
COMMENT ON COLUMN conveyor.healthcheck.reduce IS 'how the window''s samples become one value: avg, min, max, sum, count, rate, stddev, p50..p99';
COMMENT ON COLUMN conveyor.healthcheck.lookback IS 'the window: samples from this long before an evaluation until it';
COMMENT ON COLUMN conveyor.healthcheck.bound IS 'upper: fails above the threshold; lower: fails below it (NULL for statistical checks)';
COMMENT ON COLUMN conveyor.healthcheck.threshold IS 'simple: the value''s bound; comparison: the relative change''s bound (0.1 = +10%)';
COMMENT ON COLUMN conveyor.healthcheck.confidence IS 'statistical: confidence of the interval (Kayenta: 0.98)';
COMMENT ON COLUMN conveyor.healthcheck.tolerance IS 'statistical: the band around 0, as a fraction of the shift (Kayenta: 0.25)';
COMMENT ON COLUMN conveyor.healthcheck.direction IS 'statistical: which shift fails: increase, decrease or either';
COMMENT ON COLUMN conveyor.healthcheck.phases IS 'phases (counted from 1) the check applies to; NULL: every phase';
COMMENT ON COLUMN conveyor.healthcheck.tolerate IS 'consecutive failing evaluations tolerated before the check fails the push';
COMMENT ON COLUMN conveyor.healthcheck.no_data IS 'without data (or with Prometheus unreachable): fail, pass, or pause the push as inconclusive';
COMMENT ON COLUMN conveyor.healthcheck.prometheus_url IS 'prometheus: the server''s base URL (http://host:9090)';
COMMENT ON COLUMN conveyor.healthcheck.query IS 'prometheus: the PromQL query (default: the metric)';
COMMENT ON COLUMN conveyor.healthcheck.step IS 'prometheus: the query_range step';
COMMENT ON COLUMN conveyor.healthcheck.version_label IS 'prometheus: the series label holding the version, to split new from old';
SELECT pg_catalog.pg_extension_config_dump('conveyor.healthcheck', '');

-- ------------------------------------------------------------ validation

-- The settings a check may have, for the unknown-setting error's hint.
CREATE FUNCTION conveyor._healthcheck_keys() RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT '{name,metric,source,kind,reduce,lookback,bound,threshold,confidence,tolerance,direction,phases,tolerate,no_data,prometheus_url,query,step,version_label}'::text[]
$$;
COMMENT ON FUNCTION conveyor._healthcheck_keys() IS 'internal: the settings a healthcheck may have';

-- Raise 22023 for a setting of check n that is not one of the allowed words.
CREATE FUNCTION conveyor._healthcheck_word(n int, check_name text, key text, value text, allowed text[])
RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF value IS NULL OR NOT value = ANY (allowed) THEN
        RAISE EXCEPTION 'invalid % "%" in healthcheck "%"', key, coalesce(value, 'null'), check_name
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Check %s of the list has %s %s.', n, key, coalesce(quote_literal(value), 'null')),
                  HINT = format('%s is one of: %s.', initcap(replace(key, '_', ' ')), array_to_string(allowed, ', '));
    END IF;
    RETURN value;
END $$;
COMMENT ON FUNCTION conveyor._healthcheck_word(int, text, text, text, text[]) IS
    'internal: checks a healthcheck setting is one of the allowed words (22023)';

-- A number setting: 22P02 unless it is a JSON number.
CREATE FUNCTION conveyor._healthcheck_number(check_name text, key text, value jsonb)
RETURNS float8 LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF value IS NULL OR jsonb_typeof(value) = 'null' THEN
        RETURN NULL;
    END IF;
    IF jsonb_typeof(value) <> 'number' THEN
        RAISE EXCEPTION 'invalid % in healthcheck "%": % is not a number', key, check_name, value::text
            USING ERRCODE = 'invalid_text_representation',
                  DETAIL = format('The %s of a check is a JSON number.', key),
                  HINT = format('For example "%s": %s.', key, CASE key WHEN 'confidence' THEN '0.98'
                                                               WHEN 'tolerance' THEN '0.25' ELSE '0.1' END);
    END IF;
    RETURN value::text::float8;
END $$;
COMMENT ON FUNCTION conveyor._healthcheck_number(text, text, jsonb) IS 'internal: a number setting of a healthcheck (22P02)';

-- An interval setting: 22P02 unless it is a string PostgreSQL reads as an
-- interval; 22023 unless it is above zero and at most the maximum given.
CREATE FUNCTION conveyor._healthcheck_interval(check_name text, key text, value jsonb, max interval)
RETURNS interval LANGUAGE plpgsql STABLE AS $$
DECLARE
    v interval;
BEGIN
    IF value IS NULL OR jsonb_typeof(value) = 'null' THEN
        RETURN NULL;
    END IF;
    BEGIN
        IF jsonb_typeof(value) <> 'string' THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_text_representation';
        END IF;
        v := (value #>> '{}')::interval;
    EXCEPTION WHEN invalid_text_representation OR invalid_datetime_format OR datetime_field_overflow
                   OR interval_field_overflow THEN
        RAISE EXCEPTION 'invalid % in healthcheck "%": % is not an interval', key, check_name, value::text
            USING ERRCODE = 'invalid_text_representation',
                  DETAIL = format('The %s of a check is a string PostgreSQL reads as an interval.', key),
                  HINT = format('For example "%s": "5 minutes".', key);
    END;
    IF v <= '0' OR v > max THEN
        RAISE EXCEPTION 'invalid % in healthcheck "%": %', key, check_name, v
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('The %s of a check is above zero and at most %s.', key, max),
                  HINT = format('For example "%s": "5 minutes".', key);
    END IF;
    RETURN v;
END $$;
COMMENT ON FUNCTION conveyor._healthcheck_interval(text, text, jsonb, interval) IS
    'internal: an interval setting of a healthcheck (22P02, 22023)';

-- A whole-number setting within bounds: 22P02 unless an integer, 22023 out of range.
CREATE FUNCTION conveyor._healthcheck_int(check_name text, key text, value jsonb, lo int, hi int)
RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF jsonb_typeof(value) <> 'number' OR value::text !~ '^-?[0-9]+$' THEN
        RAISE EXCEPTION 'invalid % in healthcheck "%": % is not a whole number', key, check_name, value::text
            USING ERRCODE = 'invalid_text_representation',
                  DETAIL = format('The %s of a check is a whole number from %s to %s.', key, lo, hi);
    END IF;
    IF length(value::text) > 9 OR value::text::int NOT BETWEEN lo AND hi THEN
        RAISE EXCEPTION 'invalid % in healthcheck "%": %', key, check_name, value::text
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('The %s of a check is a whole number from %s to %s.', key, lo, hi);
    END IF;
    RETURN value::text::int;
END $$;
COMMENT ON FUNCTION conveyor._healthcheck_int(text, text, jsonb, int, int) IS
    'internal: a whole-number setting of a healthcheck (22P02, 22023)';

-- Parse and validate a service's list of checks: the rows healthcheck_set
-- stores, or an error naming the check and the setting. Stores nothing.
CREATE FUNCTION conveyor._healthcheck_parse(service text, checks jsonb) RETURNS SETOF conveyor.healthcheck
LANGUAGE plpgsql STABLE AS $$
DECLARE
    c jsonb;
    n int := 0;
    k text;
    r conveyor.healthcheck;
    names text[] := '{}';
    v_check_health boolean;
BEGIN
    IF checks IS NULL OR jsonb_typeof(checks) <> 'array' THEN
        RAISE EXCEPTION 'healthchecks of service "%" must be a JSON array', service
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('Got %s.', coalesce(jsonb_typeof(checks), 'NULL')),
                  HINT = 'For example [{"name": "errors", "metric": "error_rate", "kind": "comparison", '
                         '"reduce": "avg", "threshold": 0.1}]; conveyor.healthcheck_drop removes them all.';
    END IF;
    IF jsonb_array_length(checks) > 100 THEN
        RAISE EXCEPTION 'too many healthchecks for service "%"', service
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('The list has %s checks; a service has at most 100.', jsonb_array_length(checks));
    END IF;
    v_check_health := conveyor._service_checks_health(service);
    FOR c IN SELECT x FROM jsonb_array_elements(checks) x LOOP
        n := n + 1;
        IF jsonb_typeof(c) <> 'object' THEN
            RAISE EXCEPTION 'healthcheck % of service "%" must be a JSON object', n, service
                USING ERRCODE = 'invalid_parameter_value', DETAIL = format('Got %s.', c::text);
        END IF;
        r := NULL;
        r.service := service;
        r.position := n - 1;
        -- name first, so every later error can name the check
        IF jsonb_typeof(c->'name') IS DISTINCT FROM 'string' OR c->>'name' !~ '^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,62}$' THEN
            RAISE EXCEPTION 'healthcheck % of service "%" needs a valid name', n, service
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('Its name is %s.', coalesce((c->'name')::text, 'missing')),
                      HINT = 'A name is 1 to 63 letters, digits, _ . : or -, starting with a letter, digit or _.';
        END IF;
        r.name := c->>'name';
        IF r.name = ANY (names) THEN
            RAISE EXCEPTION 'duplicate healthcheck name "%" for service "%"', r.name, service
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('Checks %s and %s are both named "%s".', array_position(names, r.name), n, r.name),
                      HINT = 'Each check of a service has its own name.';
        END IF;
        names := names || r.name;
        FOR k IN SELECT jsonb_object_keys(c) LOOP
            IF NOT k = ANY (conveyor._healthcheck_keys()) THEN
                RAISE EXCEPTION 'unknown setting "%" in healthcheck "%"', k, r.name
                    USING ERRCODE = 'invalid_parameter_value',
                          DETAIL = format('Check %s of the list has it.', n),
                          HINT = format('Settings are: %s.', array_to_string(conveyor._healthcheck_keys(), ', '));
            END IF;
            IF jsonb_typeof(c->k) = 'null' THEN
                c := c - k;     -- null means "the default"
            END IF;
        END LOOP;
        r.source := conveyor._healthcheck_word(n, r.name, 'source', coalesce(c->>'source', 'metric_store'),
                                               '{metric_store,prometheus,push_type}');
        IF r.source = 'push_type' THEN
            -- the push type's verdict: the number of units it calls unhealthy
            IF NOT coalesce(v_check_health, false) THEN
                RAISE EXCEPTION 'healthcheck "%" reads a check-health verb the push type of service "%" lacks', r.name, service
                    USING ERRCODE = 'invalid_parameter_value',
                          DETAIL = 'Its source is push_type, and the service''s push type has no check_health verb.',
                          HINT = 'Use source metric_store or prometheus, or a push type with a check_health verb.';
            END IF;
            IF c ?| '{reduce,lookback,confidence,tolerance,direction,prometheus_url,query,step,version_label}'
               OR coalesce(c->>'kind', 'simple') <> 'simple' THEN
                RAISE EXCEPTION 'healthcheck "%" takes the push type''s verdict and cannot set %', r.name,
                        coalesce((SELECT string_agg(x, ', ') FROM unnest('{reduce,lookback,confidence,tolerance,direction,prometheus_url,query,step,version_label}'::text[]) x
                                   WHERE c ? x), 'kind ' || (c->>'kind'))
                    USING ERRCODE = 'invalid_parameter_value',
                          DETAIL = 'A push_type check is simple: it counts the units the check-health verb calls unhealthy.',
                          HINT = 'Set threshold (units allowed to be unhealthy, default 0), phases, tolerate and no_data.';
            END IF;
            r.kind := 'simple'; r.reduce := 'count'; r.lookback := '1 second';
            r.metric := coalesce(c->>'metric', 'unhealthy_units');
            r.bound := conveyor._healthcheck_word(n, r.name, 'bound', coalesce(c->>'bound', 'upper'), '{upper,lower}');
            r.threshold := coalesce(conveyor._healthcheck_number(r.name, 'threshold', c->'threshold'), 0);
        ELSE
            IF jsonb_typeof(c->'metric') IS DISTINCT FROM 'string' OR length(c->>'metric') NOT BETWEEN 1 AND 200 THEN
                RAISE EXCEPTION 'healthcheck "%" needs a metric', r.name
                    USING ERRCODE = 'invalid_parameter_value',
                          DETAIL = format('Its metric is %s.', coalesce((c->'metric')::text, 'missing')),
                          HINT = 'The metric is a string of 1 to 200 characters: its name in the metric store, or for Prometheus a label (the query defaults to it).';
            END IF;
            r.metric := c->>'metric';
            r.kind := conveyor._healthcheck_word(n, r.name, 'kind', coalesce(c->>'kind', 'simple'),
                                                 '{simple,comparison,statistical}');
            r.reduce := conveyor._healthcheck_word(n, r.name, 'reduce', coalesce(c->>'reduce', 'avg'),
                                                   '{avg,min,max,sum,count,rate,stddev,p50,p90,p95,p99}');
            r.lookback := coalesce(conveyor._healthcheck_interval(r.name, 'lookback', c->'lookback', '7 days'), '5 minutes');
            IF r.kind = 'statistical' THEN
                IF c ?| '{threshold,bound}' THEN
                    RAISE EXCEPTION 'statistical healthcheck "%" takes no threshold or bound', r.name
                        USING ERRCODE = 'invalid_parameter_value',
                              DETAIL = 'A statistical check judges the shift between the versions with a Mann-Whitney test.',
                              HINT = 'Set confidence (default 0.98), tolerance (default 0.25) and direction (increase, decrease or either).';
                END IF;
                r.confidence := coalesce(conveyor._healthcheck_number(r.name, 'confidence', c->'confidence'), 0.98);
                r.tolerance := coalesce(conveyor._healthcheck_number(r.name, 'tolerance', c->'tolerance'), 0.25);
                IF NOT (r.confidence > 0 AND r.confidence < 1) THEN
                    RAISE EXCEPTION 'invalid confidence % in healthcheck "%"', r.confidence, r.name
                        USING ERRCODE = 'invalid_parameter_value', DETAIL = 'A confidence is above 0 and below 1.',
                              HINT = 'Kayenta uses 0.98.';
                END IF;
                IF NOT (r.tolerance >= 0 AND r.tolerance < 'Infinity') THEN
                    RAISE EXCEPTION 'invalid tolerance % in healthcheck "%"', r.tolerance, r.name
                        USING ERRCODE = 'invalid_parameter_value', DETAIL = 'A tolerance is 0 or more.',
                              HINT = 'Kayenta uses 0.25.';
                END IF;
                r.direction := conveyor._healthcheck_word(n, r.name, 'direction', coalesce(c->>'direction', 'increase'),
                                                          '{increase,decrease,either}');
            ELSE
                IF c ?| '{confidence,tolerance,direction}' THEN
                    RAISE EXCEPTION '% healthcheck "%" takes no confidence, tolerance or direction', r.kind, r.name
                        USING ERRCODE = 'invalid_parameter_value',
                              DETAIL = 'Those settings belong to statistical checks.',
                              HINT = 'Set kind to statistical, or use threshold and bound.';
                END IF;
                r.threshold := conveyor._healthcheck_number(r.name, 'threshold', c->'threshold');
                IF r.threshold IS NULL OR r.threshold IN ('NaN', 'Infinity', '-Infinity') THEN
                    RAISE EXCEPTION '% healthcheck "%" needs a threshold', r.kind, r.name
                        USING ERRCODE = 'invalid_parameter_value',
                              DETAIL = CASE r.kind WHEN 'simple' THEN 'A simple check compares the reduced value with it.'
                                       ELSE 'A comparison check compares the relative change (new - old) / old with it.' END,
                              HINT = CASE r.kind WHEN 'simple' THEN 'For example "threshold": 0.05 with "bound": "upper".'
                                     ELSE 'For example "threshold": 0.1 (at most 10% worse than the old version).' END;
                END IF;
                r.bound := conveyor._healthcheck_word(n, r.name, 'bound', coalesce(c->>'bound', 'upper'), '{upper,lower}');
            END IF;
            IF r.source = 'prometheus' THEN
                IF jsonb_typeof(c->'prometheus_url') IS DISTINCT FROM 'string'
                   OR c->>'prometheus_url' !~ '^https?://[^/?#[:space:]]+/?[^?#[:space:]]*$' THEN
                    RAISE EXCEPTION 'healthcheck "%" needs a prometheus_url', r.name
                        USING ERRCODE = 'invalid_parameter_value',
                              DETAIL = format('Its prometheus_url is %s.', coalesce((c->'prometheus_url')::text, 'missing')),
                              HINT = 'The base URL of the Prometheus server, e.g. "http://127.0.0.1:9090".';
                END IF;
                r.prometheus_url := rtrim(c->>'prometheus_url', '/');
                -- the workers will call it: an administrator must have allowed the host
                PERFORM conveyor._http_url_check(r.prometheus_url, format('prometheus_url of healthcheck "%s"', r.name));
                IF c ? 'query' AND (jsonb_typeof(c->'query') <> 'string' OR length(c->>'query') NOT BETWEEN 1 AND 4000) THEN
                    RAISE EXCEPTION 'invalid query in healthcheck "%"', r.name
                        USING ERRCODE = 'invalid_parameter_value',
                              DETAIL = 'A query is a PromQL string of 1 to 4000 characters.';
                END IF;
                r.query := coalesce(c->>'query', r.metric);
                r.step := coalesce(conveyor._healthcheck_interval(r.name, 'step', c->'step', '1 hour'), '15 seconds');
                IF extract(epoch FROM r.lookback) / extract(epoch FROM r.step) > 11000 THEN
                    RAISE EXCEPTION 'step % is too small for lookback % in healthcheck "%"', r.step, r.lookback, r.name
                        USING ERRCODE = 'invalid_parameter_value',
                              DETAIL = 'Prometheus refuses range queries of more than 11000 points per series.',
                              HINT = 'Raise the step or shorten the lookback.';
                END IF;
                IF c ? 'version_label' AND (jsonb_typeof(c->'version_label') <> 'string'
                                            OR c->>'version_label' !~ '^[a-zA-Z_][a-zA-Z0-9_]*$') THEN
                    RAISE EXCEPTION 'invalid version_label in healthcheck "%"', r.name
                        USING ERRCODE = 'invalid_parameter_value',
                              DETAIL = 'A version label is a Prometheus label name.', HINT = 'For example "version".';
                END IF;
                r.version_label := coalesce(c->>'version_label', 'version');
            ELSIF c ?| '{prometheus_url,query,step,version_label}' THEN
                RAISE EXCEPTION 'healthcheck "%" has Prometheus settings but source %', r.name, r.source
                    USING ERRCODE = 'invalid_parameter_value',
                          DETAIL = 'prometheus_url, query, step and version_label belong to source prometheus.',
                          HINT = 'Set "source": "prometheus", or remove them.';
            END IF;
        END IF;
        IF c ? 'phases' THEN
            IF jsonb_typeof(c->'phases') <> 'array' OR jsonb_array_length(c->'phases') = 0
               OR EXISTS (SELECT 1 FROM jsonb_array_elements(c->'phases') e
                           WHERE jsonb_typeof(e) <> 'number' OR e::text !~ '^[0-9]{1,4}$' OR e::text::int < 1) THEN
                RAISE EXCEPTION 'invalid phases in healthcheck "%"', r.name
                    USING ERRCODE = 'invalid_parameter_value',
                          DETAIL = format('Its phases are %s.', (c->'phases')::text),
                          HINT = 'Phases are a non-empty array of phase numbers counted from 1, e.g. [1, 2]; leave it out for every phase.';
            END IF;
            r.phases := ARRAY(SELECT DISTINCT e::text::int FROM jsonb_array_elements(c->'phases') e ORDER BY 1);
        END IF;
        r.tolerate := CASE WHEN c ? 'tolerate' THEN conveyor._healthcheck_int(r.name, 'tolerate', c->'tolerate', 0, 1000) ELSE 0 END;
        r.no_data := conveyor._healthcheck_word(n, r.name, 'no_data', coalesce(c->>'no_data', 'fail'), '{fail,pass,pause}');
        RETURN NEXT r;
    END LOOP;
END $$;
COMMENT ON FUNCTION conveyor._healthcheck_parse(text, jsonb) IS
    'internal: validates a list of healthchecks (22023, 22P02) and returns the rows to store';

-- A service's checks as the JSON list healthcheck_set takes (defaults filled in).
CREATE FUNCTION conveyor._healthcheck_json(service text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT coalesce(jsonb_agg(jsonb_strip_nulls(to_jsonb(h) - 'service' - 'position'
                                                || jsonb_build_object('lookback', h.lookback::text, 'step', h.step::text))
                              ORDER BY h.position), '[]')
      FROM conveyor.healthcheck h WHERE h.service = _healthcheck_json.service
$$;
COMMENT ON FUNCTION conveyor._healthcheck_json(text) IS 'internal: a service''s healthchecks as a JSON list';

-- ------------------------------------------------------------ API

-- Lock a service for a healthcheck change by the acting role: 42704 or 42501.
CREATE FUNCTION conveyor._healthcheck_lock(service text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    v_owner regrole;
BEGIN
    SELECT s.owner INTO v_owner FROM conveyor.service s WHERE s.name = _healthcheck_lock.service FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'service "%" does not exist', coalesce(service, 'NULL')
            USING ERRCODE = 'undefined_object', HINT = 'conveyor.services lists services.';
    END IF;
    PERFORM conveyor._authorize('service', service, v_owner, 'change healthchecks of', 'conveyor_admin');
END $$;
COMMENT ON FUNCTION conveyor._healthcheck_lock(text) IS
    'internal: locks a service for a healthcheck change after checking the acting role may make it';

-- Replace a service's healthchecks with a new list (its owner's members, or
-- an administrator). The list is validated whole before anything changes.
CREATE FUNCTION conveyor.healthcheck_set(service text, checks jsonb, reason text DEFAULT NULL)
RETURNS int LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, conveyor, pg_temp AS $$
DECLARE
    before jsonb;
    rows conveyor.healthcheck[];
BEGIN
    PERFORM conveyor._healthcheck_lock(service);
    rows := ARRAY(SELECT x FROM conveyor._healthcheck_parse(service, checks) x);
    before := conveyor._healthcheck_json(service);
    DELETE FROM conveyor.healthcheck h WHERE h.service = healthcheck_set.service;
    INSERT INTO conveyor.healthcheck SELECT * FROM unnest(rows);
    PERFORM conveyor._config_event('service', service, 'healthcheck_set', reason,
                                   jsonb_build_object('before', jsonb_build_object('healthchecks', before),
                                                      'after', jsonb_build_object('healthchecks', conveyor._healthcheck_json(service))));
    RETURN cardinality(rows);
END $$;
COMMENT ON FUNCTION conveyor.healthcheck_set(text, jsonb, text) IS
    'Replace a service''s healthchecks with a validated list (docs/healthchecks.md); returns how many it has';

-- Remove every healthcheck of a service.
CREATE FUNCTION conveyor.healthcheck_drop(service text, reason text DEFAULT NULL)
RETURNS int LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, conveyor, pg_temp AS $$
DECLARE
    before jsonb;
    n int;
BEGIN
    PERFORM conveyor._healthcheck_lock(service);
    before := conveyor._healthcheck_json(service);
    DELETE FROM conveyor.healthcheck h WHERE h.service = healthcheck_drop.service;
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM conveyor._config_event('service', service, 'healthcheck_drop', reason,
                                   jsonb_build_object('before', jsonb_build_object('healthchecks', before),
                                                      'after', jsonb_build_object('healthchecks', '[]'::jsonb)));
    RETURN n;
END $$;
COMMENT ON FUNCTION conveyor.healthcheck_drop(text, text) IS
    'Remove every healthcheck of a service; returns how many it had';

-- ------------------------------------------------------------ readable view

CREATE VIEW conveyor.healthchecks WITH (security_invoker = true) AS
SELECT h.service, h.position + 1 AS position, h.name, h.source, h.kind, h.metric,
       CASE h.kind
            WHEN 'statistical' THEN format('Mann-Whitney on %s samples over %s: fails on a significant %s (confidence %s, tolerance %s)',
                                           h.metric, h.lookback, h.direction, h.confidence, h.tolerance)
            WHEN 'comparison' THEN format('%s(%s) over %s, new vs old version: fails when (new - old) / old is %s %s',
                                          h.reduce, h.metric, h.lookback,
                                          CASE h.bound WHEN 'upper' THEN 'above' ELSE 'below' END, h.threshold)
            ELSE CASE WHEN h.source = 'push_type'
                      THEN format('units the push type calls unhealthy: fails when %s %s', 
                                  CASE h.bound WHEN 'upper' THEN 'above' ELSE 'below' END, h.threshold)
                      ELSE format('%s(%s) over %s on the new version: fails when %s %s', h.reduce, h.metric, h.lookback,
                                  CASE h.bound WHEN 'upper' THEN 'above' ELSE 'below' END, h.threshold) END
       END AS rule,
       coalesce(array_to_string(h.phases, ', '), 'all') AS phases,
       h.tolerate, h.no_data,
       CASE WHEN h.source = 'prometheus' THEN format('%s: %s (step %s, version label %s)', h.prometheus_url, h.query,
                                                     h.step, h.version_label) END AS prometheus
  FROM conveyor.healthcheck h;
COMMENT ON VIEW conveyor.healthchecks IS 'Healthchecks of each service, one line each: the rule in words, phases, tolerance, no-data policy';
COMMENT ON COLUMN conveyor.healthchecks.service IS 'the service';
COMMENT ON COLUMN conveyor.healthchecks.position IS 'order in the service''s list, from 1';
COMMENT ON COLUMN conveyor.healthchecks.name IS 'the check''s name';
COMMENT ON COLUMN conveyor.healthchecks.source IS 'metric_store, prometheus or push_type';
COMMENT ON COLUMN conveyor.healthchecks.kind IS 'simple, comparison or statistical';
COMMENT ON COLUMN conveyor.healthchecks.metric IS 'the metric';
COMMENT ON COLUMN conveyor.healthchecks.rule IS 'what the check computes and when it fails';
COMMENT ON COLUMN conveyor.healthchecks.phases IS 'phases it applies to (from 1), or all';
COMMENT ON COLUMN conveyor.healthchecks.tolerate IS 'consecutive failing evaluations tolerated';
COMMENT ON COLUMN conveyor.healthchecks.no_data IS 'what no data means: fail, pass or pause';
COMMENT ON COLUMN conveyor.healthchecks.prometheus IS 'for Prometheus checks: server, query, step and version label';

-- ------------------------------------------------------------ access

-- Teams see their own services' checks; readers see all (as conveyor.service).
ALTER TABLE conveyor.healthcheck ENABLE ROW LEVEL SECURITY;
CREATE POLICY healthcheck_visible ON conveyor.healthcheck FOR SELECT
    USING ((SELECT conveyor._reads_all()) OR service IN (SELECT s.name FROM conveyor.service s));
GRANT SELECT ON conveyor.healthcheck, conveyor.healthchecks TO PUBLIC;

REVOKE EXECUTE ON FUNCTION conveyor._healthcheck_keys(), conveyor._healthcheck_word(int, text, text, text, text[]),
    conveyor._healthcheck_number(text, text, jsonb), conveyor._healthcheck_interval(text, text, jsonb, interval),
    conveyor._healthcheck_int(text, text, jsonb, int, int), conveyor._healthcheck_parse(text, jsonb),
    conveyor._healthcheck_json(text), conveyor._healthcheck_lock(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION conveyor.healthcheck_set(text, jsonb, text), conveyor.healthcheck_drop(text, text) TO PUBLIC;
