-- conveyor 0.3: who may call what and see which rows (docs/security.md).
--
-- Functions: nothing is executable by PUBLIC except the API; internal
-- functions (named _*) and push-type verbs run only inside the API and the
-- workers. Tables: everyone may SELECT the ones people read, and row-level
-- security narrows that to the services a role owns unless it is a reader;
-- nobody but the extension's owner writes them (the API writes for you).

REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA conveyor FROM PUBLIC;

-- The schema itself: CREATE EXTENSION makes it with no privileges for
-- anyone but its owner, so without this only superusers could reach the API
-- or the tables at all. (CREATE stays the owner's.)
GRANT USAGE ON SCHEMA conveyor TO PUBLIC;

-- The API: SECURITY DEFINER with a fixed search_path; each checks its caller.
DO $api$
DECLARE
    f regprocedure;
BEGIN
    -- the push controls lock the push with conveyor._push_lock, which checks
    FOREACH f IN ARRAY ARRAY[
        'conveyor.push_pause(bigint, text)',
        'conveyor.push_resume(bigint, text)',
        'conveyor.push_cancel(bigint, text)',
        'conveyor.push_revert(bigint, text)',
        'conveyor.push_skip_phase(bigint, text)',
        'conveyor.push_skip_healthchecks(bigint, text)',
        'conveyor.push_skip_bake(bigint, text)']::regprocedure[] LOOP
        EXECUTE format('ALTER FUNCTION %s SECURITY DEFINER SET search_path = pg_catalog, conveyor, pg_temp', f);
    END LOOP;
    FOREACH f IN ARRAY ARRAY[
        'conveyor.push_start(text, text, text, text)',
        'conveyor.push_pause(bigint, text)',
        'conveyor.push_resume(bigint, text)',
        'conveyor.push_cancel(bigint, text)',
        'conveyor.push_revert(bigint, text)',
        'conveyor.push_skip_phase(bigint, text)',
        'conveyor.push_skip_healthchecks(bigint, text)',
        'conveyor.push_skip_bake(bigint, text)',
        'conveyor.plan_preview(text, text, text)',
        'conveyor.service_create(text, text, text, jsonb, text, regrole, interval, interval, interval, int, int, text)',
        'conveyor.service_alter(text, text, jsonb, text, interval, interval, interval, int, int, regrole, text)',
        'conveyor.push_plan_create(text, jsonb, text, regrole, text)',
        'conveyor.push_plan_replace(text, jsonb, text, text)',
        'conveyor.push_plan_drop(text, text)',
        'conveyor.push_type_create(text, regprocedure, regprocedure, regprocedure, regprocedure, text, text)',
        'conveyor.secret_set(text, text, text, text)',
        'conveyor.secret_drop(text, text)']::regprocedure[] LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO PUBLIC', f);
    END LOOP;
END
$api$;

-- Row-level security calls this as the querying role.
GRANT EXECUTE ON FUNCTION conveyor._reads_all() TO PUBLIC;

-- The simulated fleet's controls run as their caller: administrators, who
-- may write the simulator's tables.
GRANT EXECUTE ON FUNCTION
    conveyor.sim_fleet_create(text, text[], int, int, text, interval),
    conveyor.sim_fleet_drop(text),
    conveyor.sim_unit_set_size(text, text, int, text, jsonb),
    conveyor.sim_unit_remove(text, text),
    conveyor.sim_version_set_faulty(text, text, boolean),
    conveyor.sim_subunit_set_unreachable(text, text, text, boolean),
    conveyor._sim_config_fleet(text, jsonb),
    conveyor._sim_fleet_check(text, text),
    conveyor._sim_unit_check(text, text),
    conveyor._sim_not_null(anyelement, text, text),
    conveyor._sim_not_empty(text, text, text),
    conveyor._sim_size_check(bigint, bigint, text)
    TO conveyor_admin;
GRANT INSERT, UPDATE, DELETE ON conveyor.sim_fleet, conveyor.sim_unit, conveyor.sim_subunit, conveyor.sim_version
    TO conveyor_admin;

-- ---------------------------------------------------------------- reading

GRANT SELECT ON conveyor.push_type, conveyor.push_plan, conveyor.push_plan_phase,
                conveyor.service, conveyor.push, conveyor.push_phase, conveyor.push_subunit, conveyor.push_event,
                conveyor.config_event,
                conveyor.sim_fleet, conveyor.sim_unit, conveyor.sim_subunit, conveyor.sim_version
    TO PUBLIC;

-- Views check row-level security as the role that reads them.
ALTER VIEW conveyor.pushes SET (security_invoker = true);
ALTER VIEW conveyor.sim_subunit_now SET (security_invoker = true);
GRANT SELECT ON conveyor.pushes, conveyor.sim_subunit_now TO PUBLIC;

-- A team sees its own services, their pushes and their history; readers
-- (and operators and administrators, who are readers) see everything. The
-- reader test is a sub-select so it runs once per query, not once per row.
ALTER TABLE conveyor.service ENABLE ROW LEVEL SECURITY;
CREATE POLICY service_visible ON conveyor.service FOR SELECT
    USING ((SELECT conveyor._reads_all()) OR pg_catalog.pg_has_role(current_user, owner, 'MEMBER'));

-- the sub-selects below are themselves filtered by the policies above
ALTER TABLE conveyor.push ENABLE ROW LEVEL SECURITY;
CREATE POLICY push_visible ON conveyor.push FOR SELECT
    USING ((SELECT conveyor._reads_all()) OR service IN (SELECT s.name FROM conveyor.service s));

ALTER TABLE conveyor.push_phase ENABLE ROW LEVEL SECURITY;
CREATE POLICY push_phase_visible ON conveyor.push_phase FOR SELECT
    USING ((SELECT conveyor._reads_all()) OR push_id IN (SELECT p.id FROM conveyor.push p));

ALTER TABLE conveyor.push_subunit ENABLE ROW LEVEL SECURITY;
CREATE POLICY push_subunit_visible ON conveyor.push_subunit FOR SELECT
    USING ((SELECT conveyor._reads_all()) OR push_id IN (SELECT p.id FROM conveyor.push p));

ALTER TABLE conveyor.push_event ENABLE ROW LEVEL SECURITY;
CREATE POLICY push_event_visible ON conveyor.push_event FOR SELECT
    USING ((SELECT conveyor._reads_all()) OR push_id IN (SELECT p.id FROM conveyor.push p));

-- configuration history: of one's own services, and of every plan and push type
ALTER TABLE conveyor.config_event ENABLE ROW LEVEL SECURITY;
CREATE POLICY config_event_visible ON conveyor.config_event FOR SELECT
    USING ((SELECT conveyor._reads_all())
           OR object_kind IN ('push_plan', 'push_type')
           OR (object_kind = 'service' AND object_name IN (SELECT s.name FROM conveyor.service s)));

-- ---------------------------------------------------------------- audit

-- Every manual action: push controls (events with an actor) and
-- configuration changes, newest last.
CREATE VIEW conveyor.audit WITH (security_invoker = true) AS
    SELECT e.at, e.actor, 'push'::text AS object_kind, p.service AS object_name, e.push_id,
           e.kind AS action, e.reason, e.detail
      FROM conveyor.push_event e
      JOIN conveyor.push p ON p.id = e.push_id
     WHERE e.actor IS NOT NULL
    UNION ALL
    SELECT c.at, c.actor, c.object_kind, c.object_name, NULL, c.action, c.reason, c.detail
      FROM conveyor.config_event c;
COMMENT ON VIEW conveyor.audit IS
    'Every manual action: push starts and controls, and configuration changes, with who, when and why';
GRANT SELECT ON conveyor.audit TO PUBLIC;
