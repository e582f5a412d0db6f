-- conveyor 0.3: the simulated fleet's verbs, doing the same work with fewer
-- executor nodes (src/sql/0.2/300_simfleet.sql is frozen; these replace its
-- definitions). The engine calls get_units four times, send_update and
-- check_health three times each for every push of three phases, and in a
-- short statement setting up a plan node costs more than running it: these
-- were a sixth of a worker's CPU per push (docs/push-engine.md, "Performance").

-- get_units: the fleet named by the config is checked once (an InitPlan), not
-- once per table the planner scans it in.
CREATE OR REPLACE FUNCTION conveyor.sim_get_units(service text, config jsonb)
    RETURNS TABLE (unit text, labels jsonb, subunit text, version text, status text)
    LANGUAGE sql STABLE AS $$
    -- LEFT JOIN: a unit with no subunits still appears, once, with NULLs.
    -- The sub-select runs the fleet check once, not once per scan of a table.
    SELECT u.unit, u.labels, s.subunit, s.version, s.status
      FROM conveyor.sim_unit u
      LEFT JOIN conveyor.sim_subunit_now s ON s.fleet = u.fleet AND s.unit = u.unit
     WHERE u.fleet = (SELECT conveyor._sim_config_fleet(service, config));
$$;

-- send_update: one statement instead of two. Each target is looked up by its
-- key and locked in key order in the statement that judges it (the lock
-- reads a row another sender changed meanwhile as that sender left it, as the
-- old separate locking statement's fresh snapshot did), rather than locking,
-- then joining the whole fleet again with hash joins. The update then goes
-- straight to each locked row by its ctid (a TID scan of ctid = ANY (...):
-- the planner uses one for an array, never for a join on ctid; a locked row
-- cannot move) instead of reading the whole fleet's subunits once more.
CREATE OR REPLACE FUNCTION conveyor.sim_send_update(service text, config jsonb, updates jsonb)
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

    RETURN QUERY
    WITH req AS (
        SELECT e.ord, e.j->>'unit' AS unit, e.j->>'subunit' AS subunit,
               e.j->>'version' AS version, e.j->>'key' AS key
          FROM jsonb_array_elements(updates) WITH ORDINALITY AS e(j, ord)
    ), judged AS (
        SELECT r.*, s.tid,
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
          FROM (SELECT * FROM req ORDER BY unit, subunit, version IS NULL OR key IS NULL, ord) r
          -- each target looked up by its key and locked, in key order (no
          -- deadlock between two senders); a row another sender changed
          -- meanwhile is read as that sender left it
          LEFT JOIN LATERAL (
                SELECT s.ctid AS tid, s.subunit, s.update_key, s.unreachable
                  FROM conveyor.sim_subunit s
                 WHERE s.fleet = f AND s.unit = r.unit AND s.subunit = r.subunit
                   FOR UPDATE) s ON true
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
         WHERE s.ctid = ANY (ARRAY(SELECT a.tid FROM judged a WHERE a.apply)) AND s.ctid = j.tid AND j.apply
    )
    -- refused updates, and (with no update time) the ones already done
    SELECT j.unit, j.subunit, j.error FROM judged j
     WHERE j.error IS NOT NULL OR (j.apply AND took = '0') ORDER BY j.ord;
END $$;

-- check_health: the reason for an unhealthy unit (versions, counts; DISTINCT
-- aggregates, each a sort to set up) is worked out only for unhealthy units.
CREATE FUNCTION conveyor._sim_health_reason(fleet text, unit text) RETURNS text
    LANGUAGE sql STABLE AS $$
    SELECT format('%s %s faulty (marked by conveyor.sim_version_set_faulty) on %s of %s subunits',
                  CASE WHEN h.nversions = 1 THEN 'version ' || h.versions ELSE 'versions ' || h.versions END,
                  CASE WHEN h.nversions = 1 THEN 'is' ELSE 'are' END,
                  h.bad, h.total)
      FROM (SELECT count(*) AS total,
                   count(*) FILTER (WHERE s.faulty) AS bad,
                   count(DISTINCT s.version) FILTER (WHERE s.faulty) AS nversions,
                   string_agg(DISTINCT s.version, ', ' ORDER BY s.version) FILTER (WHERE s.faulty) AS versions
              FROM conveyor.sim_subunit_now s
             WHERE s.fleet = $1 AND s.unit = $2) h
$$;
COMMENT ON FUNCTION conveyor._sim_health_reason(text, text) IS
    'internal: why a simulated unit is unhealthy: its faulty versions, on how many of its subunits';
-- Plain SQL without SET clauses, so the planner inlines it (see sim_get_units).
CREATE OR REPLACE FUNCTION conveyor.sim_check_health(service text, config jsonb, units text[])
    RETURNS TABLE (unit text, healthy boolean, reason text)
    LANGUAGE sql STABLE AS $$
    SELECT u.unit, h.bad = 0,
           CASE WHEN h.bad > 0 THEN conveyor._sim_health_reason(u.fleet, u.unit) END
      FROM conveyor.sim_unit u
     CROSS JOIN LATERAL (
           SELECT count(*) FILTER (WHERE s.faulty) AS bad
             FROM conveyor.sim_subunit_now s
            WHERE s.fleet = u.fleet AND s.unit = u.unit) h
     WHERE u.fleet = conveyor._sim_config_fleet(service, config) AND (units IS NULL OR u.unit = ANY (units));
$$;

-- As everywhere (190_access.sql): internal functions are nobody's API; like
-- the verbs, this one runs inside the engine only.
REVOKE EXECUTE ON FUNCTION conveyor._sim_health_reason(text, text) FROM PUBLIC;
