-- conveyor 0.3: push types reached over HTTP (docs/push-type-protocol.md).
--
-- The decider never waits on the network. When a step needs a verb of an
-- http push type it records the call in conveyor.push_call and commits; a
-- worker claims the call, commits, makes the requests (src/http_call.c) and
-- records the answer in a new transaction, which makes the push due again;
-- the decider's next step finds the answer and goes on. A call is one verb:
-- its requests to several endpoints, batches and retries are the worker's.

-- ---------------------------------------------------------------- catalog

ALTER TABLE conveyor.push_type DROP CONSTRAINT push_type_transport_check;
ALTER TABLE conveyor.push_type ADD CONSTRAINT push_type_transport_check CHECK (transport IN ('sql', 'http'));
ALTER TABLE conveyor.push_type ALTER COLUMN get_units DROP NOT NULL;
ALTER TABLE conveyor.push_type ALTER COLUMN send_update DROP NOT NULL;
ALTER TABLE conveyor.push_type ADD CONSTRAINT push_type_verbs_check
    CHECK (transport <> 'sql' OR (get_units IS NOT NULL AND send_update IS NOT NULL));
COMMENT ON COLUMN conveyor.push_type.transport IS
    'sql: verbs are SQL functions; http: verbs are requests to endpoints (conveyor.http_push_type)';

CREATE TABLE conveyor.http_push_type (
    name               text PRIMARY KEY REFERENCES conveyor.push_type ON UPDATE CASCADE ON DELETE CASCADE,
    endpoints          text[] NOT NULL DEFAULT '{}',
    token_secret       text REFERENCES conveyor.secret ON UPDATE CASCADE,
    check_health       boolean NOT NULL DEFAULT true,
    connect_timeout    interval NOT NULL DEFAULT '2 seconds'
                       CHECK (connect_timeout BETWEEN '1 millisecond' AND '1 minute'),
    request_timeout    interval NOT NULL DEFAULT '10 seconds'
                       CHECK (request_timeout BETWEEN '1 millisecond' AND '10 minutes'),
    concurrency        int NOT NULL DEFAULT 16 CHECK (concurrency BETWEEN 1 AND 1000),
    retries            int NOT NULL DEFAULT 2 CHECK (retries BETWEEN 0 AND 10),
    max_batch          int NOT NULL DEFAULT 500 CHECK (max_batch BETWEEN 1 AND 100000),
    max_response_bytes int NOT NULL DEFAULT 8388608 CHECK (max_response_bytes BETWEEN 1024 AND 1073741824)
);
COMMENT ON TABLE conveyor.http_push_type IS
    'How conveyor reaches the endpoints of each http push type (docs/push-type-protocol.md); tokens stay in conveyor.secret';
COMMENT ON COLUMN conveyor.http_push_type.endpoints IS
    'default endpoint base URLs for services that give none in their push_type_config';
COMMENT ON COLUMN conveyor.http_push_type.token_secret IS 'the conveyor.secret sent as the bearer token';
COMMENT ON COLUMN conveyor.http_push_type.check_health IS 'whether endpoints answer POST /v1/health (else health is not asked)';
COMMENT ON COLUMN conveyor.http_push_type.concurrency IS 'most requests in flight at once to one endpoint, per worker';
COMMENT ON COLUMN conveyor.http_push_type.retries IS 'retries of a retryable failure within one call';
COMMENT ON COLUMN conveyor.http_push_type.max_batch IS 'most updates in one POST /v1/update';
SELECT pg_catalog.pg_extension_config_dump('conveyor.http_push_type', '');

-- One outstanding verb call per push and verb: written by the decider,
-- claimed and answered by a worker, consumed by the decider.
CREATE TABLE conveyor.push_call (
    push_id      bigint NOT NULL REFERENCES conveyor.push ON DELETE CASCADE,
    verb         text NOT NULL CHECK (verb IN ('get_units', 'needs_push', 'send_update', 'check_health', 'prometheus')),
    request      jsonb NOT NULL,
    request_hash text NOT NULL,
    state        text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sending', 'answered', 'failed')),
    claimed_by   int,
    claimed_at   timestamptz,
    claim_expires_at timestamptz,
    claims       int NOT NULL DEFAULT 0,
    requests     int,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),
    answered_at  timestamptz,
    duration_ms  float8,
    result       jsonb,
    error        text,
    error_kind   text CHECK (error_kind IN ('retryable', 'final')),
    PRIMARY KEY (push_id, verb)
);
CREATE INDEX push_call_pending ON conveyor.push_call (created_at) WHERE state = 'pending';
-- Requests and answers are kept uncompressed: a call's row lives only until
-- the push's next step, and compressing a large send's request (a megabyte
-- for 10,000 updates) at the step and expanding it at the claim cost more
-- than the space saved.
ALTER TABLE conveyor.push_call ALTER COLUMN request SET STORAGE EXTERNAL,
                               ALTER COLUMN result SET STORAGE EXTERNAL;
COMMENT ON TABLE conveyor.push_call IS
    'Push-type calls over HTTP in progress: recorded by the decider, made by a worker outside any transaction, answered here';
COMMENT ON COLUMN conveyor.push_call.verb IS
    'a push-type verb, or prometheus: the range queries of the service''s Prometheus healthchecks (docs/healthchecks.md)';
COMMENT ON COLUMN conveyor.push_call.state IS
    'pending (to be sent), sending (a worker has it), answered or failed (waiting for the push''s next step)';
COMMENT ON COLUMN conveyor.push_call.claim_expires_at IS
    'when a call still sending counts as lost even if its worker lives: every attempt''s timeout and backoff, and a minute, after the claim';
COMMENT ON COLUMN conveyor.push_call.claims IS 'how many times a worker took the call (more than one: re-sent after a crash)';
COMMENT ON COLUMN conveyor.push_call.requests IS 'HTTP requests the call made, retries included';

-- Which endpoint reported each unit at the last get units: a unit's other
-- requests go to that endpoint only.
CREATE TABLE conveyor.http_unit (
    service  text NOT NULL REFERENCES conveyor.service ON UPDATE CASCADE ON DELETE CASCADE,
    unit     text NOT NULL,
    endpoint text NOT NULL,
    seen_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (service, unit)
);
COMMENT ON TABLE conveyor.http_unit IS 'The endpoint that last reported each unit of an http service';

-- readable like the pushes and services they belong to (190_access.sql)
GRANT SELECT ON conveyor.http_push_type, conveyor.push_call, conveyor.http_unit TO PUBLIC;
ALTER TABLE conveyor.push_call ENABLE ROW LEVEL SECURITY;
CREATE POLICY push_call_visible ON conveyor.push_call FOR SELECT
    USING ((SELECT conveyor._reads_all()) OR push_id IN (SELECT p.id FROM conveyor.push p));
ALTER TABLE conveyor.http_unit ENABLE ROW LEVEL SECURITY;
CREATE POLICY http_unit_visible ON conveyor.http_unit FOR SELECT
    USING ((SELECT conveyor._reads_all()) OR service IN (SELECT s.name FROM conveyor.service s));

-- ---------------------------------------------------------------- checks

CREATE FUNCTION conveyor._http_url_check(url text, what text) RETURNS void
    LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'cv_http_url_check';
COMMENT ON FUNCTION conveyor._http_url_check(text, text) IS
    'internal: raises unless a URL is http(s), without credentials, on a host in conveyor.allowed_hosts';

-- Endpoints named by a config or push type: a non-empty array of allowed URLs.
CREATE FUNCTION conveyor._http_endpoints_check(endpoints jsonb, what text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    e jsonb;
BEGIN
    IF jsonb_typeof(endpoints) IS DISTINCT FROM 'array' OR jsonb_array_length(endpoints) = 0 THEN
        RAISE EXCEPTION '% needs "endpoints": an array of base URLs', what
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'For example {"endpoints": ["http://10.0.0.5:8700", "http://10.0.0.6:8700"]}.';
    END IF;
    IF jsonb_array_length(endpoints) > 1000 THEN
        RAISE EXCEPTION '% has more than 1000 endpoints', what USING ERRCODE = 'program_limit_exceeded';
    END IF;
    FOR e IN SELECT x FROM jsonb_array_elements(endpoints) x LOOP
        IF jsonb_typeof(e) <> 'string' THEN
            RAISE EXCEPTION '% has an endpoint that is not a string: %', what, left(e::text, 100)
                USING ERRCODE = 'invalid_parameter_value';
        END IF;
        PERFORM conveyor._http_url_check(e #>> '{}', 'endpoint');
    END LOOP;
    IF (SELECT count(DISTINCT x) FROM jsonb_array_elements_text(endpoints) x) <> jsonb_array_length(endpoints) THEN
        RAISE EXCEPTION '% lists an endpoint twice', what USING ERRCODE = 'invalid_parameter_value';
    END IF;
END $$;
COMMENT ON FUNCTION conveyor._http_endpoints_check(jsonb, text) IS
    'internal: raises unless endpoints is a non-empty array of distinct allowed URLs';

-- A service's push type config, checked against its push type when stored.
CREATE FUNCTION conveyor._push_type_config_check(push_type text, config jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    h conveyor.http_push_type;
BEGIN
    SELECT * INTO h FROM conveyor.http_push_type x WHERE x.name = push_type;
    IF NOT FOUND THEN
        RETURN;     -- sql push types interpret their config themselves
    END IF;
    IF config ? 'endpoints' OR cardinality(h.endpoints) = 0 THEN
        PERFORM conveyor._http_endpoints_check(config->'endpoints',
                                               format('the config of a service of http push type %s', push_type));
    END IF;
END $$;
COMMENT ON FUNCTION conveyor._push_type_config_check(text, jsonb) IS
    'internal: raises unless a service config suits its push type (http: allowed endpoints)';

-- Whether a service's push type answers health checks: an sql push type with
-- a check_health verb, or an http one whose endpoints answer /v1/health.
CREATE FUNCTION conveyor._service_checks_health(p_service text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT coalesce(bool_or(t.check_health IS NOT NULL OR coalesce(h.check_health, false)), false)
      FROM conveyor.service s JOIN conveyor.push_type t ON t.name = s.push_type
      LEFT JOIN conveyor.http_push_type h ON h.name = t.name
     WHERE s.name = p_service
$$;
COMMENT ON FUNCTION conveyor._service_checks_health(text) IS
    'internal: whether the push type of a service answers health checks (sql verb or http /v1/health)';

-- ---------------------------------------------------------------- API

CREATE FUNCTION conveyor.http_push_type_create(
    name text,
    token_secret text DEFAULT NULL,
    check_health boolean DEFAULT true,
    connect_timeout interval DEFAULT '2 seconds',
    request_timeout interval DEFAULT '10 seconds',
    concurrency int DEFAULT 16,
    retries int DEFAULT 2,
    max_batch int DEFAULT 500,
    max_response_bytes int DEFAULT 8388608,
    endpoints text[] DEFAULT '{}',
    description text DEFAULT NULL,
    reason text DEFAULT NULL)
RETURNS text LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, conveyor, pg_temp AS $$
BEGIN
    PERFORM conveyor._authorize_admin('create push types');
    PERFORM conveyor._name_check('push type', name);
    IF token_secret IS NOT NULL AND NOT EXISTS (SELECT 1 FROM conveyor.secret s WHERE s.name = token_secret) THEN
        RAISE EXCEPTION 'secret "%" does not exist', token_secret
            USING ERRCODE = 'undefined_object',
                  HINT = 'Store the token first with conveyor.secret_set(name, value).';
    END IF;
    IF check_health IS NULL OR connect_timeout IS NULL OR request_timeout IS NULL OR concurrency IS NULL
       OR retries IS NULL OR max_batch IS NULL OR max_response_bytes IS NULL OR endpoints IS NULL THEN
        RAISE EXCEPTION 'settings of push type "%" must not be null', name
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    IF connect_timeout NOT BETWEEN '1 millisecond' AND '1 minute'
       OR request_timeout NOT BETWEEN '1 millisecond' AND '10 minutes' THEN
        RAISE EXCEPTION 'timeouts of push type "%" are out of range', name
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('connect_timeout %s, request_timeout %s.', connect_timeout, request_timeout),
                  HINT = 'connect_timeout is 1 ms to 1 minute, request_timeout 1 ms to 10 minutes.';
    END IF;
    IF concurrency NOT BETWEEN 1 AND 1000 OR retries NOT BETWEEN 0 AND 10 OR max_batch NOT BETWEEN 1 AND 100000
       OR max_response_bytes NOT BETWEEN 1024 AND 1073741824 THEN
        RAISE EXCEPTION 'limits of push type "%" are out of range', name
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('concurrency %s, retries %s, max_batch %s, max_response_bytes %s.',
                                  concurrency, retries, max_batch, max_response_bytes),
                  HINT = 'concurrency 1-1000, retries 0-10, max_batch 1-100000, max_response_bytes 1 kB-1 GB.';
    END IF;
    IF cardinality(endpoints) > 0 THEN
        PERFORM conveyor._http_endpoints_check(to_jsonb(endpoints), format('push type %s', name));
    END IF;
    IF EXISTS (SELECT 1 FROM conveyor.push_type t WHERE t.name = http_push_type_create.name) THEN
        RAISE EXCEPTION 'push type "%" already exists', name USING ERRCODE = 'duplicate_object';
    END IF;
    INSERT INTO conveyor.push_type (name, transport, description) VALUES (name, 'http', description);
    INSERT INTO conveyor.http_push_type (name, endpoints, token_secret, check_health, connect_timeout,
                                         request_timeout, concurrency, retries, max_batch, max_response_bytes)
    VALUES (name, endpoints, token_secret, check_health, connect_timeout, request_timeout, concurrency,
            retries, max_batch, max_response_bytes);
    PERFORM conveyor._config_event('push_type', name, 'create', reason,
        (SELECT to_jsonb(h) FROM conveyor.http_push_type h WHERE h.name = http_push_type_create.name)
        || jsonb_build_object('transport', 'http'));
    RETURN name;
END $$;
COMMENT ON FUNCTION conveyor.http_push_type_create(text, text, boolean, interval, interval, int, int, int, int, text[], text, text) IS
    'Register a push type reached over HTTP with the conveyor push-type protocol (administrators; docs/push-type-protocol.md)';

-- ---------------------------------------------------------------- the calls

-- The decider's side of a call: the answer to this request, if it is in and
-- fresh. Otherwise it raises CVW01 ("waiting"): the decider rolls its
-- sub-step back, records the call with _http_request and waits for a worker.
-- A failed call raises 08000 (retryable) or 08P01 (final), which the decider
-- treats as it treats an sql verb's error. Returns {result, ms}.
CREATE FUNCTION conveyor._http_result(p_id bigint, p_verb text, p_request jsonb) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    c conveyor.push_call;
BEGIN
    SELECT * INTO c FROM conveyor.push_call x WHERE x.push_id = p_id AND x.verb = p_verb;
    -- Prometheus queries name a time window that moves with every step:
    -- the latest call answers them, whatever window it asked for
    IF FOUND AND (c.request_hash = md5(p_request::text) OR p_verb = 'prometheus') THEN
        IF c.state = 'answered' AND c.answered_at > clock_timestamp() - interval '5 minutes' THEN
            RETURN jsonb_build_object('result', c.result, 'ms', coalesce(c.duration_ms, 0));
        ELSIF c.state = 'failed' AND c.error_kind = 'final' THEN
            RAISE EXCEPTION '%', c.error USING ERRCODE = 'protocol_violation';
        ELSIF c.state = 'failed' THEN
            RAISE EXCEPTION '%', c.error USING ERRCODE = 'connection_exception';
        END IF;
    END IF;
    RAISE EXCEPTION 'push-type call % of push % is in flight', p_verb, p_id USING ERRCODE = 'CVW01';
END $$;
COMMENT ON FUNCTION conveyor._http_result(bigint, text, jsonb) IS
    'internal: the answer of an http verb call; raises CVW01 while there is none';

-- Tell this backend's worker loop that it has calls to make (src/http_call.c).
CREATE FUNCTION conveyor._http_calls_recorded() RETURNS void
    LANGUAGE c AS 'MODULE_PATHNAME', 'cv_http_calls_recorded';
COMMENT ON FUNCTION conveyor._http_calls_recorded() IS
    'internal: marks that the calling worker recorded calls to make, so it claims them at once';

-- Record a call for a worker to make, unless the same request is already
-- pending, being sent, or answered and fresh. (PL/pgSQL, whose plans live as
-- long as the session: a SQL function of two statements is parsed and
-- planned again at every call.)
CREATE FUNCTION conveyor._http_request(p_id bigint, p_verb text, p_request jsonb) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM conveyor._http_calls_recorded();
    INSERT INTO conveyor.push_call AS x (push_id, verb, request, request_hash)
    VALUES (p_id, p_verb, p_request, md5(p_request::text))
        ON CONFLICT (push_id, verb) DO UPDATE
       SET request = excluded.request, request_hash = excluded.request_hash, state = 'pending',
           claimed_by = NULL, claimed_at = NULL, claim_expires_at = NULL, created_at = clock_timestamp(), answered_at = NULL,
           duration_ms = NULL, result = NULL, error = NULL, error_kind = NULL, requests = NULL
     WHERE (x.request_hash <> excluded.request_hash AND NOT (x.verb = 'prometheus' AND x.state IN ('pending', 'sending')))
        OR x.state = 'failed'
        OR (x.state = 'answered' AND x.answered_at <= clock_timestamp() - interval '5 minutes');
END $$;
COMMENT ON FUNCTION conveyor._http_request(bigint, text, jsonb) IS
    'internal: records an http verb call for a worker to make';

-- A push type's error text with every secret's value in it replaced: verbs
-- (sql ones especially) may echo what they were given, and their errors are
-- copied into events, outcome reasons and the errors of push_start.
CREATE FUNCTION conveyor._redact(msg text) RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v text;
BEGIN
    IF msg IS NULL THEN
        RETURN NULL;
    END IF;
    FOR v IN SELECT x.value FROM conveyor.secret x WHERE length(x.value) >= 4 AND strpos(msg, x.value) > 0 LOOP
        msg := replace(msg, v, '[redacted]');
    END LOOP;
    RETURN msg;
END $$;
COMMENT ON FUNCTION conveyor._redact(text) IS 'internal: a text with the value of every secret in it replaced by [redacted]';

-- get units' answer as the arrays an sql verb gives (see _call_get_units).
-- PL/pgSQL, whose plan lives as long as the session: the step calls it as an
-- expression returning a row, which the planner cannot inline, so as a SQL
-- function it was parsed and planned again at every call (0.3 ms).
CREATE FUNCTION conveyor._http_units(r jsonb,
    OUT units text[], OUT labels jsonb[], OUT subunits text[], OUT versions text[], OUT statuses text[])
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    SELECT ARRAY(SELECT jsonb_array_elements_text(r->'units')),
           ARRAY(SELECT jsonb_array_elements(r->'labels')),
           ARRAY(SELECT jsonb_array_elements_text(r->'subunits')),
           ARRAY(SELECT coalesce(x, '') FROM jsonb_array_elements_text(r->'versions') x),
           ARRAY(SELECT jsonb_array_elements_text(r->'statuses'))
      INTO units, labels, subunits, versions, statuses;
END $$;
COMMENT ON FUNCTION conveyor._http_units(jsonb) IS 'internal: an http get units answer as arrays';

-- The units of a service now, whatever its transport: for push_start and
-- plan_preview, which must see them before any push exists.
CREATE FUNCTION conveyor._get_units_now(s conveyor.service,
    OUT units text[], OUT labels jsonb[], OUT subunits text[], OUT versions text[], OUT statuses text[])
LANGUAGE plpgsql AS $$
DECLARE
    t conveyor.push_type;
    r jsonb;
    e_msg text;
    e_detail text;
    e_hint text;
    e_state text;
BEGIN
    SELECT * INTO t FROM conveyor.push_type WHERE name = s.push_type;
    IF t.transport = 'http' THEN
        r := conveyor._http_get_units_now(s.name);
        PERFORM conveyor._http_units_seen(s.name, r->'endpoints');
        SELECT * INTO units, labels, subunits, versions, statuses FROM conveyor._http_units(r);
    ELSE
        SELECT * INTO units, labels, subunits, versions, statuses
          FROM conveyor._call_get_units(t.get_units, s.name, s.push_type_config);
    END IF;
EXCEPTION WHEN OTHERS THEN
    -- the verb's error goes on to the caller, without any secret it echoed
    GET STACKED DIAGNOSTICS e_msg = MESSAGE_TEXT, e_detail = PG_EXCEPTION_DETAIL,
                            e_hint = PG_EXCEPTION_HINT, e_state = RETURNED_SQLSTATE;
    RAISE EXCEPTION USING MESSAGE = conveyor._redact(e_msg), DETAIL = coalesce(conveyor._redact(e_detail), ''),
                          HINT = coalesce(conveyor._redact(e_hint), ''), ERRCODE = e_state;
END $$;
COMMENT ON FUNCTION conveyor._get_units_now(conveyor.service) IS
    'internal: a service''s units, subunits and versions, asked of its push type now';

CREATE FUNCTION conveyor._http_get_units_now(service text) RETURNS jsonb
    LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'cv_http_get_units_now';
COMMENT ON FUNCTION conveyor._http_get_units_now(text) IS
    'internal: asks an http service''s endpoints for their units, waiting for the answer';

-- Remember which endpoint reported each unit (the latest get units wins).
-- Every get units answer comes here, and the map rarely changes: when every
-- stored unit has the endpoint the answer gives, was seen within the minute,
-- and the answer names no other unit, nothing is written. (PL/pgSQL: its
-- plans live as long as the session; a SQL function of two statements is
-- parsed and planned again at every call.)
CREATE FUNCTION conveyor._http_units_seen(p_service text, endpoints jsonb) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    stale bigint;
    stored bigint;
BEGIN
    SELECT count(*) FILTER (WHERE h.endpoint IS DISTINCT FROM endpoints->>h.unit
                               OR h.seen_at < clock_timestamp() - interval '1 minute'),
           count(*)
      INTO stale, stored
      FROM conveyor.http_unit h WHERE h.service = p_service;
    IF stale = 0 AND stored = (SELECT count(*) FROM jsonb_object_keys(endpoints)) THEN
        RETURN;
    END IF;
    INSERT INTO conveyor.http_unit AS h (service, unit, endpoint)
    SELECT p_service, e.key, e.value FROM jsonb_each_text(endpoints) e
        ON CONFLICT (service, unit) DO UPDATE SET endpoint = excluded.endpoint, seen_at = excluded.seen_at
     WHERE h.endpoint IS DISTINCT FROM excluded.endpoint OR h.seen_at < excluded.seen_at - interval '1 minute';
    DELETE FROM conveyor.http_unit h
     WHERE h.service = p_service AND NOT endpoints ? h.unit;
END $$;
COMMENT ON FUNCTION conveyor._http_units_seen(text, jsonb) IS 'internal: records which endpoint has each unit';

-- What a worker needs to make calls for a service: the columns
-- src/http_call.c reads (push_id, verb, request, request_hash, push_type,
-- endpoints, token, connect_ms, timeout_ms, retries, concurrency,
-- max_batch, max_bytes, unitmap).
CREATE FUNCTION conveyor._http_settings(p_service text)
RETURNS TABLE (push_id bigint, verb text, request jsonb, request_hash text, push_type text,
               endpoints jsonb, token text, connect_ms int, timeout_ms int, retries int,
               concurrency int, max_batch int, max_bytes int, unitmap jsonb)
LANGUAGE sql STABLE AS $$
    SELECT 0::bigint, 'get_units', '{}'::jsonb, '', h.name,
           CASE WHEN s.push_type_config ? 'endpoints' THEN s.push_type_config->'endpoints'
                ELSE to_jsonb(h.endpoints) END,
           (SELECT x.value FROM conveyor.secret x WHERE x.name = h.token_secret),
           (extract(epoch FROM h.connect_timeout) * 1000)::int, (extract(epoch FROM h.request_timeout) * 1000)::int,
           h.retries, h.concurrency, h.max_batch, h.max_response_bytes,
           coalesce((SELECT jsonb_object_agg(u.unit, u.endpoint) FROM conveyor.http_unit u WHERE u.service = s.name), '{}')
      FROM conveyor.service s JOIN conveyor.http_push_type h ON h.name = s.push_type
     WHERE s.name = p_service
$$;
COMMENT ON FUNCTION conveyor._http_settings(text) IS 'internal: endpoints, token and limits for an http service''s calls';

-- A worker takes up to n calls to make: pending ones, and, when it sweeps,
-- ones whose worker died (or is past every timeout: claim_expires_at) while
-- sending, which are re-sent with the same idempotency keys; a sweep also
-- drops the calls of pushes no longer running or paused (a paused push sends
-- nothing). Workers claim at every turn of their loops while hundreds of
-- calls may be in flight, and sweep every few seconds: a claim reads only
-- the pending calls, and their pushes by key (conveyor.push, updated at
-- every step, is never scanned: a scan reads every dead row version since
-- its last vacuum).
CREATE FUNCTION conveyor._http_claim(n int, sweep boolean DEFAULT true)
RETURNS TABLE (push_id bigint, verb text, request jsonb, request_hash text, push_type text,
               endpoints jsonb, token text, connect_ms int, timeout_ms int, retries int,
               concurrency int, max_batch int, max_bytes int, unitmap jsonb)
-- a generic plan from the first run: a worker's memory stays flat (under
-- auto, the sixth run, seconds or hours after start, cached a 100 kB plan)
LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    -- the live backends (read only to sweep)
    live int[];
    -- the pushes with calls to send, or lost in flight
    cand bigint[];
BEGIN
    IF sweep THEN
        live := ARRAY(SELECT a.pid FROM pg_catalog.pg_stat_get_activity(NULL) a WHERE a.pid IS NOT NULL);
        -- calls of ended pushes go, except those in flight: their workers record them, then they go
        DELETE FROM conveyor.push_call c
         WHERE (c.state <> 'sending' OR c.claimed_by <> ALL (live) OR c.claim_expires_at < clock_timestamp())
           AND (SELECT p.state FROM conveyor.push p WHERE p.id = c.push_id) NOT IN ('running', 'paused');
        cand := ARRAY(SELECT c.push_id FROM conveyor.push_call c
                       WHERE c.state = 'pending'
                          OR (c.state = 'sending' AND (c.claimed_by <> ALL (live) OR c.claim_expires_at < clock_timestamp())));
    ELSE
        cand := ARRAY(SELECT c.push_id FROM conveyor.push_call c WHERE c.state = 'pending');
    END IF;
    IF cardinality(cand) = 0 THEN
        RETURN;
    END IF;
    RETURN QUERY
    WITH claimable AS (
        SELECT c.push_id, c.verb, x.lease
          FROM conveyor.push_call c,
               -- each call's push, service and push type by key. The plan is
               -- made once, maybe while the tables were nearly empty; with
               -- the running state tested here, such a plan read every
               -- running push through push_queue for each call (20 ms a
               -- claim). OFFSET 0 keeps that test out of this subquery.
               LATERAL (SELECT p.state,
                               h.name AS push_type,
                               (coalesce(h.request_timeout, '10 seconds') + interval '4 seconds')
                               * (coalesce(h.retries, 2) + 1) + interval '1 minute' AS lease
                          FROM conveyor.push p
                          JOIN conveyor.service s ON s.name = p.service
                          LEFT JOIN conveyor.http_push_type h ON h.name = s.push_type
                         WHERE p.id = c.push_id
                        OFFSET 0) x
         WHERE c.push_id = ANY (cand)
           AND (c.state = 'pending'
                OR (sweep AND c.state = 'sending'
                    AND (c.claimed_by <> ALL (live) OR c.claim_expires_at < clock_timestamp())))
           AND x.state = 'running'
           AND (x.push_type IS NOT NULL OR c.verb = 'prometheus')
         ORDER BY c.created_at
         LIMIT n
           FOR UPDATE OF c SKIP LOCKED),
    claimed AS (
        UPDATE conveyor.push_call c
           SET state = 'sending', claimed_by = pg_catalog.pg_backend_pid(), claimed_at = clock_timestamp(),
               claim_expires_at = clock_timestamp() + x.lease, claims = c.claims + 1
          FROM claimable x
         WHERE c.push_id = x.push_id AND c.verb = x.verb
        RETURNING c.push_id, c.verb, c.request, c.request_hash, (SELECT p.service FROM conveyor.push p WHERE p.id = c.push_id) AS service)
    SELECT c.push_id, c.verb, c.request, c.request_hash, st.push_type, st.endpoints, st.token, st.connect_ms,
           st.timeout_ms, st.retries, st.concurrency, st.max_batch, st.max_bytes,
           CASE WHEN c.verb = 'get_units' THEN '{}'::jsonb ELSE st.unitmap END
      FROM claimed c, LATERAL conveyor._http_settings(c.service) st
     WHERE c.verb <> 'prometheus'
    UNION ALL
    -- Prometheus: the URLs are in the request; the protocol's default limits, no token
    SELECT c.push_id, c.verb, c.request, c.request_hash, '(prometheus)', '[]'::jsonb, NULL::text, 2000, 10000, 2,
           16, 500, 8388608, '{}'::jsonb
      FROM claimed c
     WHERE c.verb = 'prometheus';
END $$;
COMMENT ON FUNCTION conveyor._http_claim(int, boolean) IS
    'internal: a worker takes calls to make (pending; sweeping, also those orphaned by a crash) and drops those of ended pushes';

-- A worker records a finished call; the push is due at once. An answer to
-- a request the push no longer waits for (it moved on, or ended) is dropped.
CREATE FUNCTION conveyor._http_record(p_id bigint, p_verb text, p_hash text, p_result jsonb,
                                      p_error text, p_error_kind text, p_requests int,
                                      p_usual_ms float8 DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_service text;
    v_ms float8;
BEGIN
    UPDATE conveyor.push_call c
       SET state = CASE WHEN p_error IS NULL THEN 'answered' ELSE 'failed' END,
           result = p_result, error = p_error, error_kind = p_error_kind, requests = p_requests,
           answered_at = clock_timestamp(),
           duration_ms = extract(epoch FROM clock_timestamp() - c.claimed_at) * 1000
     WHERE c.push_id = p_id AND c.verb = p_verb AND c.request_hash = p_hash AND c.state = 'sending'
       AND c.claimed_by = pg_catalog.pg_backend_pid()
    RETURNING c.duration_ms INTO v_ms;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF p_verb = 'get_units' AND p_error IS NULL THEN
        SELECT p.service INTO v_service FROM conveyor.push p WHERE p.id = p_id;
        PERFORM conveyor._http_units_seen(v_service, p_result->'endpoints');
    END IF;
    -- due at once; in the queue of due pushes behind those whose calls are
    -- quicker (call_ms): by the time this call took, or by its endpoints'
    -- usual time (p_usual_ms, as the worker sees them) when that is less,
    -- since a fast endpoint's answer may have waited for a busy worker
    UPDATE conveyor.push
       SET next_step_at = clock_timestamp(),
           call_ms = least(v_ms, p_usual_ms, 1000)
     WHERE id = p_id AND state = 'running';
END $$;
COMMENT ON FUNCTION conveyor._http_record(bigint, text, text, jsonb, text, text, int, float8) IS
    'internal: a worker records the answer (or failure) of a call; the push is due again';

-- Internal functions run as their caller (the workers, or the API); nobody else calls them.
REVOKE EXECUTE ON FUNCTION
    conveyor._http_url_check(text, text),
    conveyor._http_endpoints_check(jsonb, text),
    conveyor._push_type_config_check(text, jsonb),
    conveyor._service_checks_health(text),
    conveyor._http_result(bigint, text, jsonb),
    conveyor._http_request(bigint, text, jsonb),
    conveyor._http_calls_recorded(),
    conveyor._http_units(jsonb),
    conveyor._redact(text),
    conveyor._get_units_now(conveyor.service),
    conveyor._http_get_units_now(text),
    conveyor._http_units_seen(text, jsonb),
    conveyor._http_settings(text),
    conveyor._http_claim(int, boolean),
    conveyor._http_record(bigint, text, text, jsonb, text, text, int, float8)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    conveyor.http_push_type_create(text, text, boolean, interval, interval, int, int, int, int, text[], text, text)
    TO PUBLIC;
