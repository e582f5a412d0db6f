-- conveyor 0.2: the simulated fleet, a built-in push type for demos and tests.
-- It is a simulator, not a deployment target: units and subunits are rows in
-- conveyor.sim_* tables, an "update" changes a row, and health is whatever an
-- operator marked faulty. The verbs follow the sql push-type transport, so the
-- engine drives it exactly as it drives a real hosting system.

-- ---------------------------------------------------------------- tables

CREATE TABLE conveyor.sim_fleet (
    name        text PRIMARY KEY,
    update_time interval NOT NULL DEFAULT '0' CHECK (update_time >= '0'),
    created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE conveyor.sim_fleet IS
    'simulator: simulated fleets (push type ''simulated''); not real hosts';
COMMENT ON COLUMN conveyor.sim_fleet.update_time IS
    'how long a simulated update takes; 0 applies updates at once';

CREATE TABLE conveyor.sim_unit (
    fleet  text NOT NULL REFERENCES conveyor.sim_fleet (name) ON DELETE CASCADE,
    unit   text NOT NULL,
    labels jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(labels) = 'object'),
    PRIMARY KEY (fleet, unit)
);
COMMENT ON TABLE conveyor.sim_unit IS
    'simulator: units (deployable groups) of a simulated fleet';
COMMENT ON COLUMN conveyor.sim_unit.labels IS
    'labels the push plan scopes on, e.g. {"region": "eu", "tier": "web"}';

CREATE TABLE conveyor.sim_subunit (
    fleet          text NOT NULL,
    unit           text NOT NULL,
    subunit        text NOT NULL,
    version        text NOT NULL,
    target_version text,
    update_key     text,
    update_done_at timestamptz,
    unreachable    boolean NOT NULL DEFAULT false,
    PRIMARY KEY (fleet, unit, subunit),
    FOREIGN KEY (fleet, unit) REFERENCES conveyor.sim_unit (fleet, unit) ON DELETE CASCADE,
    -- an update in flight must know when it finishes
    CHECK (target_version IS NULL OR update_done_at IS NOT NULL)
);
COMMENT ON TABLE conveyor.sim_subunit IS
    'simulator: subunits (instances) of a simulated unit; read them through conveyor.sim_subunit_now';
COMMENT ON COLUMN conveyor.sim_subunit.version IS
    'version last known to run; an update that finished since is folded in lazily (see sim_subunit_now)';
COMMENT ON COLUMN conveyor.sim_subunit.target_version IS
    'version of the update in flight, or NULL; it runs once update_done_at has passed';
COMMENT ON COLUMN conveyor.sim_subunit.update_key IS
    'idempotency key of the last accepted update: re-sending it is a no-op';
COMMENT ON COLUMN conveyor.sim_subunit.update_done_at IS
    'when the update in flight finishes (set it to the past to finish it at once)';
COMMENT ON COLUMN conveyor.sim_subunit.unreachable IS
    'simulated outage: updates are refused and status reads ''unreachable''';

CREATE TABLE conveyor.sim_version (
    fleet   text NOT NULL REFERENCES conveyor.sim_fleet (name) ON DELETE CASCADE,
    version text NOT NULL,
    faulty  boolean NOT NULL DEFAULT false,
    PRIMARY KEY (fleet, version)
);
COMMENT ON TABLE conveyor.sim_version IS
    'simulator: versions marked faulty in a simulated fleet (unlisted versions are healthy)';
COMMENT ON COLUMN conveyor.sim_version.faulty IS
    'units running this version fail conveyor.sim_check_health';

-- Fleets are user data: keep them in pg_dump output.
SELECT pg_catalog.pg_extension_config_dump('conveyor.sim_fleet', '');
SELECT pg_catalog.pg_extension_config_dump('conveyor.sim_unit', '');
SELECT pg_catalog.pg_extension_config_dump('conveyor.sim_subunit', '');
SELECT pg_catalog.pg_extension_config_dump('conveyor.sim_version', '');

-- Updates settle lazily: nothing rewrites rows when update_done_at passes, so
-- every reader computes the effective version and status here, at read time.
CREATE VIEW conveyor.sim_subunit_now AS
SELECT s.fleet, s.unit, s.subunit,
       e.version,
       CASE WHEN s.unreachable THEN 'unreachable'
            WHEN e.in_flight THEN 'updating'
            ELSE 'ok' END AS status,
       coalesce(v.faulty, false) AS faulty,
       s.target_version, s.update_done_at, s.update_key, s.unreachable
  FROM conveyor.sim_subunit s
 CROSS JOIN LATERAL (
       SELECT CASE WHEN s.update_done_at <= pg_catalog.now() THEN coalesce(s.target_version, s.version)
                   ELSE s.version END AS version,
              s.target_version IS NOT NULL AND s.update_done_at > pg_catalog.now() AS in_flight) e
  LEFT JOIN conveyor.sim_version v ON v.fleet = s.fleet AND v.version = e.version;
COMMENT ON VIEW conveyor.sim_subunit_now IS
    'simulator: subunits as they are now: effective version (a finished update counts), '
    'status ok/updating/unreachable, and whether that version is marked faulty';

-- ---------------------------------------------------------------- internals

-- The fleet a service's push_type_config names; every verb starts here so a
-- misconfigured service fails the same clear way whichever verb runs first.
-- (Called on every verb call, so it checks inline, with no nested call or search_path switch.)
CREATE FUNCTION conveyor._sim_config_fleet(service text, config jsonb) RETURNS text
    LANGUAGE plpgsql STABLE AS $$
DECLARE
    f text := config->>'fleet';
BEGIN
    IF f IS NULL OR jsonb_typeof(config->'fleet') <> 'string' THEN
        RAISE EXCEPTION 'push_type_config of service "%" names no simulated fleet', service
            USING ERRCODE = '22023',
                  DETAIL = format('The simulated push type reads a string "fleet" from push_type_config; it got %s.',
                                  coalesce(config::text, 'NULL')),
                  HINT = 'Set push_type_config => ''{"fleet": "demo"}'' after SELECT conveyor.sim_fleet_create(''demo'').';
    END IF;
    IF NOT EXISTS (SELECT FROM conveyor.sim_fleet fl WHERE fl.name = f) THEN
        PERFORM conveyor._sim_fleet_check(f, format('push_type_config of service "%s" names it', service));
    END IF;
    RETURN f;
END $$;
COMMENT ON FUNCTION conveyor._sim_config_fleet(text, jsonb) IS
    'internal: the simulated fleet named by push_type_config->>''fleet'', or an error';

-- Raises 42704 unless the fleet exists; why says where the name came from.
CREATE FUNCTION conveyor._sim_fleet_check(fleet text, why text) RETURNS void
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM conveyor.sim_fleet f WHERE f.name = fleet) THEN
        RAISE EXCEPTION 'simulated fleet "%" does not exist', fleet
            USING ERRCODE = '42704',
                  DETAIL = why || '.',
                  HINT = 'Create it with conveyor.sim_fleet_create(), or list fleets with SELECT name FROM conveyor.sim_fleet.';
    END IF;
END $$;
COMMENT ON FUNCTION conveyor._sim_fleet_check(text, text) IS
    'internal: errors unless the simulated fleet exists';

-- Raises 42704 unless the unit exists in the (existing) fleet.
CREATE FUNCTION conveyor._sim_unit_check(fleet text, unit text) RETURNS void
    LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT FROM conveyor.sim_unit u WHERE u.fleet = $1 AND u.unit = $2) THEN
        RAISE EXCEPTION 'simulated fleet "%" has no unit "%"', fleet, unit
            USING ERRCODE = '42704',
                  DETAIL = 'The fleet exists but holds no unit of that name.',
                  HINT = format('List its units with SELECT unit FROM conveyor.sim_unit WHERE fleet = %L.', fleet);
    END IF;
END $$;
COMMENT ON FUNCTION conveyor._sim_unit_check(text, text) IS
    'internal: errors unless the simulated unit exists';

-- Admin functions refuse NULLs with one message shape (22004, as PostgreSQL does).
CREATE FUNCTION conveyor._sim_not_null(val anyelement, arg text, fn text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF val IS NULL THEN
        RAISE EXCEPTION '% must not be null', arg
            USING ERRCODE = '22004',
                  DETAIL = format('%s was called with %s => NULL.', fn, arg),
                  HINT = 'Pass a value, or leave the argument out to use its default.';
    END IF;
END $$;
COMMENT ON FUNCTION conveyor._sim_not_null(anyelement, text, text) IS
    'internal: errors if a simulator argument is NULL';

-- Names must be non-empty; anything else (quotes, spaces, semicolons) is kept as is.
CREATE FUNCTION conveyor._sim_not_empty(val text, arg text, fn text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM conveyor._sim_not_null(val, arg, fn);
    IF btrim(val) = '' THEN
        RAISE EXCEPTION '% must not be empty', arg
            USING ERRCODE = '22023',
                  DETAIL = format('%s was called with %s => %L.', fn, arg, val),
                  HINT = 'Names may hold any characters, but at least one that is not a space.';
    END IF;
END $$;
COMMENT ON FUNCTION conveyor._sim_not_empty(text, text, text) IS
    'internal: errors if a simulator name is NULL or blank';

-- One limit for the whole fleet keeps a typo from filling the disk.
CREATE FUNCTION conveyor._sim_size_check(units bigint, subunits bigint, fn text) RETURNS void
    LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF units > 1000000 OR subunits > 1000000 THEN
        RAISE EXCEPTION 'simulated fleet would be too large'
            USING ERRCODE = '22023',
                  DETAIL = format('%s would leave %s units and %s subunits in the fleet.', fn, units, subunits),
                  HINT = 'A simulated fleet holds at most 1,000,000 units and 1,000,000 subunits.';
    END IF;
END $$;
COMMENT ON FUNCTION conveyor._sim_size_check(bigint, bigint, text) IS
    'internal: errors if a simulated fleet would exceed 1,000,000 units or subunits';

-- ---------------------------------------------------------------- the push-type verbs

-- Plain SQL without SET clauses, so the planner inlines it into the engine's
-- query: this verb runs twice per phase of every push.
CREATE FUNCTION conveyor.sim_get_units(service text, config jsonb)
    RETURNS TABLE (unit text, labels jsonb, subunit text, version text, status text)
    LANGUAGE sql STABLE AS $$
    -- LEFT JOIN: a unit with no subunits still appears, once, with NULLs.
    SELECT u.unit, u.labels, s.subunit, s.version, s.status
      FROM conveyor.sim_unit u
      LEFT JOIN conveyor.sim_subunit_now s ON s.fleet = u.fleet AND s.unit = u.unit
     WHERE u.fleet = conveyor._sim_config_fleet(service, config);
$$;
COMMENT ON FUNCTION conveyor.sim_get_units(text, jsonb) IS
    'simulated push type, get units: one row per subunit of the fleet in config->>''fleet'' '
    '(status ok, updating or unreachable); a unit with no subunits appears once with NULLs';

CREATE FUNCTION conveyor.sim_send_update(service text, config jsonb, updates jsonb)
    RETURNS TABLE (unit text, subunit text, error text)
    LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    f text := config->>'fleet';
    took interval;
BEGIN
    -- KEY SHARE: the fleet cannot be dropped while this sends. (One query for
    -- the common case; the full check and its errors only when it finds nothing.)
    SELECT fl.update_time INTO took FROM conveyor.sim_fleet fl WHERE fl.name = f FOR KEY SHARE;
    IF NOT FOUND OR jsonb_typeof(config->'fleet') <> 'string' THEN
        PERFORM conveyor._sim_config_fleet(service, config);
    END IF;
    IF updates IS NULL OR jsonb_typeof(updates) <> 'array' THEN
        RAISE EXCEPTION 'updates must be a JSON array'
            USING ERRCODE = '22023',
                  DETAIL = format('conveyor.sim_send_update got %s.', coalesce(left(updates::text, 200), 'NULL')),
                  HINT = 'Pass [{"unit": ..., "subunit": ..., "version": ..., "key": ...}, ...].';
    END IF;

    -- Lock the target rows first, in key order (no deadlock between two
    -- senders), so the next statement's fresh snapshot sees settled keys.
    PERFORM
      FROM conveyor.sim_subunit s
      JOIN jsonb_array_elements(updates) AS e(j)
        ON s.fleet = f AND s.unit = e.j->>'unit' AND s.subunit = e.j->>'subunit'
     ORDER BY s.unit, s.subunit
       FOR UPDATE OF s;

    RETURN QUERY
    WITH req AS (
        SELECT e.ord, e.j->>'unit' AS unit, e.j->>'subunit' AS subunit,
               e.j->>'version' AS version, e.j->>'key' AS key
          FROM jsonb_array_elements(updates) WITH ORDINALITY AS e(j, ord)
    ), judged AS (
        SELECT r.*,
               CASE
                 WHEN r.unit IS NULL OR r.subunit IS NULL OR r.version IS NULL OR r.key IS NULL
                   THEN 'malformed update: needs unit, subunit, version and key'
                 WHEN s.subunit IS NULL THEN 'no such subunit'
                 -- the key already took effect: accepted, nothing to do
                 WHEN r.key = s.update_key THEN NULL
                 WHEN s.unreachable THEN 'host unreachable'
                 -- two different updates for one subunit in one batch: keep the first
                 WHEN first_value(r.key) OVER w <> r.key
                   THEN 'another update for this subunit is earlier in the batch'
               END AS error,
               s.subunit IS NOT NULL AND r.key IS NOT NULL AND r.version IS NOT NULL
                 AND r.key IS DISTINCT FROM s.update_key AND NOT s.unreachable
                 AND row_number() OVER w = 1 AS apply
          FROM req r
          LEFT JOIN conveyor.sim_subunit s
            ON s.fleet = f AND s.unit = r.unit AND s.subunit = r.subunit
        -- malformed entries get a partition of their own, so the first of the rest applies
        WINDOW w AS (PARTITION BY r.unit, r.subunit, r.version IS NULL OR r.key IS NULL ORDER BY r.ord)
    ), applied AS (
        UPDATE conveyor.sim_subunit s
           SET -- fold a finished update in first, then start (or finish at once) the new one
               version = CASE WHEN took = '0' THEN j.version
                              WHEN s.update_done_at <= now() THEN coalesce(s.target_version, s.version)
                              ELSE s.version END,
               target_version = CASE WHEN took = '0' THEN NULL ELSE j.version END,
               update_done_at = CASE WHEN took = '0' THEN NULL ELSE now() + took END,
               update_key = j.key
          FROM judged j
         WHERE j.apply AND s.fleet = f AND s.unit = j.unit AND s.subunit = j.subunit
    )
    -- refused updates, and (with no update time) the ones already done
    SELECT j.unit, j.subunit, j.error FROM judged j
     WHERE j.error IS NOT NULL OR (j.apply AND took = '0') ORDER BY j.ord;
END $$;
COMMENT ON FUNCTION conveyor.sim_send_update(text, jsonb, jsonb) IS
    'simulated push type, send update: starts each update in the array (taking the fleet''s update_time); '
    'returns one row per refused update; re-sending a key is a no-op';

-- Plain SQL without SET clauses, so the planner inlines it (see sim_get_units).
CREATE FUNCTION conveyor.sim_check_health(service text, config jsonb, units text[])
    RETURNS TABLE (unit text, healthy boolean, reason text)
    LANGUAGE sql STABLE AS $$
    SELECT u.unit, h.bad = 0,
           CASE WHEN h.bad > 0 THEN
               format('%s %s faulty (marked by conveyor.sim_version_set_faulty) on %s of %s subunits',
                      CASE WHEN h.nversions = 1 THEN 'version ' || h.versions ELSE 'versions ' || h.versions END,
                      CASE WHEN h.nversions = 1 THEN 'is' ELSE 'are' END,
                      h.bad, h.total)
           END
      FROM conveyor.sim_unit u
     CROSS JOIN LATERAL (
           SELECT count(*) AS total,
                  count(*) FILTER (WHERE s.faulty) AS bad,
                  count(DISTINCT s.version) FILTER (WHERE s.faulty) AS nversions,
                  string_agg(DISTINCT s.version, ', ' ORDER BY s.version) FILTER (WHERE s.faulty) AS versions
             FROM conveyor.sim_subunit_now s
            WHERE s.fleet = u.fleet AND s.unit = u.unit) h
     -- NULL asks for every unit, which is handy by hand
     WHERE u.fleet = conveyor._sim_config_fleet(service, config) AND (units IS NULL OR u.unit = ANY (units));
$$;
COMMENT ON FUNCTION conveyor.sim_check_health(text, jsonb, text[]) IS
    'simulated push type, check health: a unit is unhealthy while any of its subunits runs a version '
    'marked faulty; one row per requested unit that exists (NULL: every unit)';

-- ---------------------------------------------------------------- administration

CREATE FUNCTION conveyor.sim_fleet_create(
    name text,
    regions text[] DEFAULT '{eu,us,ap}',
    units_per_region int DEFAULT 2,
    subunits_per_unit int DEFAULT 10,
    version text DEFAULT 'v1',
    update_time interval DEFAULT '0') RETURNS void
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    fn constant text := 'conveyor.sim_fleet_create';
    created int;
BEGIN
    -- Validate everything before writing anything.
    PERFORM conveyor._sim_not_empty(name, 'name', fn);
    PERFORM conveyor._sim_not_null(regions, 'regions', fn);
    PERFORM conveyor._sim_not_null(units_per_region, 'units_per_region', fn);
    PERFORM conveyor._sim_not_null(subunits_per_unit, 'subunits_per_unit', fn);
    PERFORM conveyor._sim_not_empty(version, 'version', fn);
    PERFORM conveyor._sim_not_null(update_time, 'update_time', fn);
    IF cardinality(regions) = 0 THEN
        RAISE EXCEPTION 'a simulated fleet needs at least one region'
            USING ERRCODE = '22023',
                  DETAIL = 'regions is empty.',
                  HINT = 'Pass e.g. regions => ''{eu,us}''.';
    END IF;
    IF EXISTS (SELECT FROM unnest(regions) x WHERE x IS NULL OR btrim(x) = '') THEN
        RAISE EXCEPTION 'every region needs a name'
            USING ERRCODE = '22023',
                  DETAIL = format('regions is %s.', regions),
                  HINT = 'Region names may hold any characters, but at least one that is not a space.';
    END IF;
    IF cardinality(regions) <> (SELECT count(DISTINCT x) FROM unnest(regions) x) THEN
        RAISE EXCEPTION 'regions must be distinct'
            USING ERRCODE = '22023',
                  DETAIL = format('regions is %s.', regions),
                  HINT = 'Name each region once; units are named <region>-<n>.';
    END IF;
    IF units_per_region < 0 OR subunits_per_unit < 0 THEN
        RAISE EXCEPTION 'units_per_region and subunits_per_unit must not be negative'
            USING ERRCODE = '22023',
                  DETAIL = format('They are %s and %s.', units_per_region, subunits_per_unit),
                  HINT = 'Use 0 for a fleet (or units) with nothing in it.';
    END IF;
    -- bigint: the product of three ints can overflow int
    PERFORM conveyor._sim_size_check(cardinality(regions)::bigint * units_per_region,
                                     cardinality(regions)::bigint * units_per_region * subunits_per_unit, fn);
    IF update_time < '0' THEN
        RAISE EXCEPTION 'update_time must not be negative'
            USING ERRCODE = '22023',
                  DETAIL = format('update_time is %s.', update_time),
                  HINT = 'Use ''0'' for updates that finish at once, or e.g. ''30 seconds''.';
    END IF;

    -- ON CONFLICT rather than a prior EXISTS: two concurrent creators cannot both win.
    INSERT INTO conveyor.sim_fleet (name, update_time) VALUES (name, update_time)
        ON CONFLICT ON CONSTRAINT sim_fleet_pkey DO NOTHING;
    GET DIAGNOSTICS created = ROW_COUNT;
    IF created = 0 THEN
        RAISE EXCEPTION 'simulated fleet "%" already exists', name
            USING ERRCODE = '42710',
                  DETAIL = 'Fleet names are unique.',
                  HINT = format('Drop it first with SELECT conveyor.sim_fleet_drop(%L), or choose another name.', name);
    END IF;

    -- Set-based, not a loop per row: a million subunits take seconds.
    INSERT INTO conveyor.sim_unit (fleet, unit, labels)
    SELECT name, g.region || '-' || n, jsonb_build_object('region', g.region, 'tier', 'web')
      FROM unnest(regions) AS g(region),
           generate_series(1, units_per_region) AS n;

    -- Subunit numbers are zero-padded to at least two digits (eu-1-03), and to
    -- as many as the largest needs (eu-1-0003 of 1000), so names sort in order.
    INSERT INTO conveyor.sim_subunit (fleet, unit, subunit, version)
    SELECT name, u, u || '-' || lpad(i::text, greatest(2, length(subunits_per_unit::text)), '0'),
           sim_fleet_create.version
      FROM (SELECT g.region || '-' || n AS u
              FROM unnest(regions) AS g(region), generate_series(1, units_per_region) AS n) units,
           generate_series(1, subunits_per_unit) AS i
     ORDER BY u, i;  -- key order: the primary key index fills left to right, about 20% faster
END $$;
COMMENT ON FUNCTION conveyor.sim_fleet_create(text, text[], int, int, text, interval) IS
    'simulator: creates a simulated fleet: units <region>-<n> labelled {region, tier: web}, each with '
    'subunits <unit>-01.. all running version; updates take update_time';

CREATE FUNCTION conveyor.sim_fleet_drop(name text) RETURNS void
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM conveyor._sim_not_null(name, 'name', 'conveyor.sim_fleet_drop');
    DELETE FROM conveyor.sim_fleet fl WHERE fl.name = sim_fleet_drop.name;
    IF NOT FOUND THEN
        PERFORM conveyor._sim_fleet_check(name, 'conveyor.sim_fleet_drop was asked to drop it');
    END IF;
END $$;
COMMENT ON FUNCTION conveyor.sim_fleet_drop(text) IS
    'simulator: drops a simulated fleet with its units, subunits and versions';

CREATE FUNCTION conveyor.sim_unit_set_size(
    fleet text, unit text, subunits int,
    version text DEFAULT NULL, labels jsonb DEFAULT NULL) RETURNS void
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
DECLARE
    fn constant text := 'conveyor.sim_unit_set_size';
    have int;
    top int;
    width int;
    v text := version;
BEGIN
    PERFORM conveyor._sim_not_null(fleet, 'fleet', fn);
    PERFORM conveyor._sim_not_empty(unit, 'unit', fn);
    PERFORM conveyor._sim_not_null(subunits, 'subunits', fn);
    IF subunits < 0 THEN
        RAISE EXCEPTION 'subunits must not be negative'
            USING ERRCODE = '22023',
                  DETAIL = format('subunits is %s.', subunits),
                  HINT = 'Use 0 to keep the unit with no subunits, or conveyor.sim_unit_remove() to remove it.';
    END IF;
    IF v IS NOT NULL THEN
        PERFORM conveyor._sim_not_empty(v, 'version', fn);
    END IF;
    IF labels IS NOT NULL AND jsonb_typeof(labels) <> 'object' THEN
        RAISE EXCEPTION 'labels must be a JSON object'
            USING ERRCODE = '22023',
                  DETAIL = format('labels is %s.', labels),
                  HINT = 'Pass e.g. ''{"region": "eu", "tier": "web"}''.';
    END IF;
    -- Lock the fleet row: concurrent resizes of one fleet take turns, so the size limit holds.
    PERFORM FROM conveyor.sim_fleet fl WHERE fl.name = fleet FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM conveyor._sim_fleet_check(fleet, fn || ' was asked to resize a unit in it');
    END IF;

    SELECT count(*) INTO have FROM conveyor.sim_subunit s WHERE s.fleet = fleet AND s.unit = unit;
    PERFORM conveyor._sim_size_check(
        (SELECT count(*) FROM conveyor.sim_unit u WHERE u.fleet = fleet)
          + CASE WHEN EXISTS (SELECT FROM conveyor.sim_unit u WHERE u.fleet = fleet AND u.unit = unit) THEN 0 ELSE 1 END,
        (SELECT count(*) FROM conveyor.sim_subunit s WHERE s.fleet = fleet) - have + subunits, fn);

    IF subunits > have AND v IS NULL THEN
        -- New subunits join at what the unit mostly runs; an empty unit, at what the fleet mostly runs.
        SELECT mode() WITHIN GROUP (ORDER BY s.version) INTO v
          FROM conveyor.sim_subunit_now s WHERE s.fleet = fleet AND s.unit = unit;
        IF v IS NULL THEN
            SELECT mode() WITHIN GROUP (ORDER BY s.version) INTO v
              FROM conveyor.sim_subunit_now s WHERE s.fleet = fleet;
        END IF;
        IF v IS NULL THEN
            RAISE EXCEPTION 'no version to give the new subunits of unit "%"', unit
                USING ERRCODE = '22023',
                      DETAIL = format('Fleet "%s" has no subunits to take the most common version from.', fleet),
                      HINT = 'Pass version => ''v1''.';
        END IF;
    END IF;

    INSERT INTO conveyor.sim_unit AS u (fleet, unit, labels)
    VALUES (fleet, unit, coalesce(labels, '{}'))
    ON CONFLICT ON CONSTRAINT sim_unit_pkey
        DO UPDATE SET labels = coalesce(sim_unit_set_size.labels, u.labels);

    IF subunits < have THEN
        -- Shrink: drop the highest-numbered subunits (by their numeric suffix).
        DELETE FROM conveyor.sim_subunit s
         USING (SELECT x.subunit,
                       row_number() OVER (ORDER BY substring(x.subunit FROM '-([0-9]{1,9})$')::int NULLS LAST,
                                                   x.subunit) AS rn
                  FROM conveyor.sim_subunit x WHERE x.fleet = fleet AND x.unit = unit) o
         WHERE s.fleet = fleet AND s.unit = unit AND s.subunit = o.subunit AND o.rn > subunits;
    ELSIF subunits > have THEN
        -- Grow: number on from the highest number in use, so names never collide,
        -- padded like the existing names (an empty unit pads as sim_fleet_create does).
        SELECT coalesce(max(substring(s.subunit FROM '-([0-9]{1,9})$')::int), 0),
               coalesce(max(length(substring(s.subunit FROM '-([0-9]{1,9})$'))),
                        length((subunits - have)::text))
          INTO top, width
          FROM conveyor.sim_subunit s WHERE s.fleet = fleet AND s.unit = unit;
        INSERT INTO conveyor.sim_subunit (fleet, unit, subunit, version)
        SELECT fleet, unit, unit || '-' || lpad(i::text, greatest(2, width, length(i::text)), '0'), v
          FROM generate_series(top + 1, top + subunits - have) AS i;
    END IF;
END $$;
COMMENT ON FUNCTION conveyor.sim_unit_set_size(text, text, int, text, jsonb) IS
    'simulator: creates a unit or resizes it to subunits (new ones run version, by default the unit''s '
    'most common; shrinking drops the highest-numbered); labels, when given, replace the unit''s';

CREATE FUNCTION conveyor.sim_unit_remove(fleet text, unit text) RETURNS void
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
BEGIN
    PERFORM conveyor._sim_not_null(fleet, 'fleet', 'conveyor.sim_unit_remove');
    PERFORM conveyor._sim_not_null(unit, 'unit', 'conveyor.sim_unit_remove');
    PERFORM conveyor._sim_fleet_check(fleet, 'conveyor.sim_unit_remove was asked to remove a unit from it');
    DELETE FROM conveyor.sim_unit u WHERE u.fleet = fleet AND u.unit = unit;
    IF NOT FOUND THEN
        PERFORM conveyor._sim_unit_check(fleet, unit);
    END IF;
END $$;
COMMENT ON FUNCTION conveyor.sim_unit_remove(text, text) IS
    'simulator: removes a unit and its subunits from a simulated fleet';

CREATE FUNCTION conveyor.sim_version_set_faulty(fleet text, version text, faulty boolean DEFAULT true)
    RETURNS void
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
BEGIN
    PERFORM conveyor._sim_not_null(fleet, 'fleet', 'conveyor.sim_version_set_faulty');
    PERFORM conveyor._sim_not_empty(version, 'version', 'conveyor.sim_version_set_faulty');
    PERFORM conveyor._sim_not_null(faulty, 'faulty', 'conveyor.sim_version_set_faulty');
    PERFORM conveyor._sim_fleet_check(fleet, 'conveyor.sim_version_set_faulty was asked to mark a version in it');
    -- Any version may be marked, also one nothing runs yet: mark it before pushing it.
    INSERT INTO conveyor.sim_version AS v (fleet, version, faulty) VALUES (fleet, version, faulty)
        ON CONFLICT ON CONSTRAINT sim_version_pkey DO UPDATE SET faulty = excluded.faulty;
END $$;
COMMENT ON FUNCTION conveyor.sim_version_set_faulty(text, text, boolean) IS
    'simulator: marks a version faulty (or healthy again); units running it fail conveyor.sim_check_health';

CREATE FUNCTION conveyor.sim_subunit_set_unreachable(
    fleet text, unit text, subunit text DEFAULT NULL, unreachable boolean DEFAULT true) RETURNS void
    LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_variable
BEGIN
    PERFORM conveyor._sim_not_null(fleet, 'fleet', 'conveyor.sim_subunit_set_unreachable');
    PERFORM conveyor._sim_not_null(unit, 'unit', 'conveyor.sim_subunit_set_unreachable');
    PERFORM conveyor._sim_not_null(unreachable, 'unreachable', 'conveyor.sim_subunit_set_unreachable');
    PERFORM conveyor._sim_fleet_check(fleet, 'conveyor.sim_subunit_set_unreachable was asked to change it');
    PERFORM conveyor._sim_unit_check(fleet, unit);
    -- NULL subunit: the whole unit, as in a host or region outage.
    UPDATE conveyor.sim_subunit s SET unreachable = sim_subunit_set_unreachable.unreachable
     WHERE s.fleet = fleet AND s.unit = unit AND (subunit IS NULL OR s.subunit = subunit);
    IF NOT FOUND AND subunit IS NOT NULL THEN
        RAISE EXCEPTION 'simulated unit "%" has no subunit "%"', unit, subunit
            USING ERRCODE = '42704',
                  DETAIL = format('Fleet "%s" holds the unit but no subunit of that name.', fleet),
                  HINT = 'Pass subunit => NULL to change the whole unit.';
    END IF;
END $$;
COMMENT ON FUNCTION conveyor.sim_subunit_set_unreachable(text, text, text, boolean) IS
    'simulator: makes a subunit, or with subunit NULL a whole unit, unreachable (or reachable again)';

-- ---------------------------------------------------------------- registration

-- Registered like any sql push type, so services use it with push_type => 'simulated'.
SELECT conveyor.push_type_create(
    name => 'simulated',
    get_units => 'conveyor.sim_get_units(text,jsonb)',
    send_update => 'conveyor.sim_send_update(text,jsonb,jsonb)',
    check_health => 'conveyor.sim_check_health(text,jsonb,text[])',
    description => 'Simulated fleet for demos and tests (conveyor.sim_*): not a real deployment target');
