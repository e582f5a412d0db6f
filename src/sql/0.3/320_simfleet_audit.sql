-- conveyor 0.3: edits of the simulated fleet go into the configuration
-- history like every other configuration change (docs/security.md#audit).
--
-- The simulator's controls (sim_fleet_create, sim_unit_set_size, ...) are
-- 0.2's; rather than copy them, triggers record what they change: one event
-- per fleet and statement, with the acting role. The push-type verbs only
-- move sim_subunit versions, which no trigger here watches, so pushes stay
-- out of the history and pay nothing.

-- Runs as the extension's owner (the history is written by conveyor only),
-- recording the caller's role (_acting_role looks past SECURITY DEFINER).
CREATE FUNCTION conveyor._sim_audit() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r record;
    -- the changed rows as (fleet, item), from the trigger's transition table
    q text := format(
        CASE TG_TABLE_NAME
            WHEN 'sim_fleet' THEN 'SELECT r.name AS fleet, to_jsonb(r) - ''created_at'' AS item FROM %s r'
            WHEN 'sim_subunit' THEN 'SELECT r.fleet, jsonb_build_object(''unit'', r.unit, ''subunit'', r.subunit) AS item FROM %s r'
            ELSE 'SELECT r.fleet, to_jsonb(r) - ''fleet'' AS item FROM %s r'
        END, CASE WHEN TG_OP = 'DELETE' THEN 'old_rows' ELSE 'new_rows' END);
BEGIN
    FOR r IN EXECUTE format('SELECT x.fleet, jsonb_agg(x.item ORDER BY x.item) AS items FROM (%s) x '
                            'GROUP BY x.fleet ORDER BY x.fleet', q)
    LOOP
        -- creating a fleet writes its units, subunits and versions too, in the
        -- same statement: one event says it
        CONTINUE WHEN TG_TABLE_NAME <> 'sim_fleet' AND TG_OP = 'INSERT' AND EXISTS (
            SELECT 1 FROM conveyor.config_event e
             WHERE e.object_kind = 'sim_fleet' AND e.object_name = r.fleet AND e.action = 'create'
               AND e.at >= pg_catalog.statement_timestamp());
        PERFORM conveyor._config_event('sim_fleet', r.fleet,
            CASE WHEN TG_TABLE_NAME = 'sim_fleet' THEN CASE TG_OP WHEN 'INSERT' THEN 'create' ELSE 'drop' END
                 ELSE 'alter' END,
            NULL,
            jsonb_build_object('table', TG_TABLE_NAME, 'operation', lower(TG_OP), 'rows', r.items));
    END LOOP;
    RETURN NULL;
END $$;
COMMENT ON FUNCTION conveyor._sim_audit() IS 'internal: records edits of the simulated fleet in the configuration history';

CREATE TRIGGER sim_fleet_insert_audit AFTER INSERT ON conveyor.sim_fleet
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION conveyor._sim_audit();
CREATE TRIGGER sim_fleet_delete_audit AFTER DELETE ON conveyor.sim_fleet
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION conveyor._sim_audit();
CREATE TRIGGER sim_unit_insert_audit AFTER INSERT ON conveyor.sim_unit
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION conveyor._sim_audit();
CREATE TRIGGER sim_unit_update_audit AFTER UPDATE ON conveyor.sim_unit
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION conveyor._sim_audit();
CREATE TRIGGER sim_unit_delete_audit AFTER DELETE ON conveyor.sim_unit
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION conveyor._sim_audit();
CREATE TRIGGER sim_subunit_insert_audit AFTER INSERT ON conveyor.sim_subunit
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION conveyor._sim_audit();
CREATE TRIGGER sim_subunit_delete_audit AFTER DELETE ON conveyor.sim_subunit
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION conveyor._sim_audit();
CREATE TRIGGER sim_version_insert_audit AFTER INSERT ON conveyor.sim_version
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION conveyor._sim_audit();
CREATE TRIGGER sim_version_update_audit AFTER UPDATE ON conveyor.sim_version
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION conveyor._sim_audit();

-- Reachability is set per subunit (sim_subunit_set_unreachable); a column
-- trigger cannot have transition tables, so this one is per row, and fires
-- only when the column is set (never for the verbs' updates).
CREATE FUNCTION conveyor._sim_audit_reachability() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    PERFORM conveyor._config_event('sim_fleet', NEW.fleet, 'alter', NULL,
        jsonb_build_object('table', 'sim_subunit', 'operation', 'update',
                           'rows', jsonb_build_array(jsonb_build_object('unit', NEW.unit, 'subunit', NEW.subunit,
                                                                        'unreachable', NEW.unreachable))));
    RETURN NULL;
END $$;
COMMENT ON FUNCTION conveyor._sim_audit_reachability() IS 'internal: records a simulated subunit made (un)reachable';
CREATE TRIGGER sim_subunit_reachability_audit AFTER UPDATE OF unreachable ON conveyor.sim_subunit
    FOR EACH ROW WHEN (OLD.unreachable IS DISTINCT FROM NEW.unreachable)
    EXECUTE FUNCTION conveyor._sim_audit_reachability();

REVOKE EXECUTE ON FUNCTION conveyor._sim_audit(),
    conveyor._sim_audit_reachability() FROM PUBLIC;
