-- conveyor 0.3: the triggers on the engine's history and runtime tables, in
-- C (src/history.c). The engine writes a step's events with one INSERT and a
-- phase's targets with one INSERT; per-row foreign-key checks and a PL/pgSQL
-- NOTIFY trigger on those statements cost a worker about a tenth of its CPU
-- per push (docs/push-engine.md, "Performance"). Same behaviour, once per
-- statement.

-- ------------------------------------------------------------ NOTIFY

-- Same payloads, order and channel as the PL/pgSQL version of 700_operator.sql.
CREATE OR REPLACE FUNCTION conveyor._push_event_notify() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'cv_push_event_notify';

-- ------------------------------------------------------------ push references

-- push_event.push_id and push_subunit.push_id reference conveyor.push. A
-- foreign key checks each inserted row with a query of its own (and checks
-- again each update of a row inserted in the same transaction, which the
-- engine does to every target it sends); these triggers check each INSERT
-- statement once, with the same guarantees: every push_id names a push, the
-- push is locked FOR KEY SHARE, errors are 23503 under the old constraint
-- names, and deleting a push deletes its events and targets.
CREATE FUNCTION conveyor._push_ref_check() RETURNS trigger
    LANGUAGE c AS 'MODULE_PATHNAME', 'cv_push_ref_check';
COMMENT ON FUNCTION conveyor._push_ref_check() IS
    'internal: statement-level foreign-key check of push_id (trigger argument: the constraint name for messages)';

-- A change of push_id (nothing in conveyor makes one) is checked row by row.
CREATE FUNCTION conveyor._push_ref_check_update() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NEW.push_id IS NOT NULL AND NEW.push_id IS DISTINCT FROM OLD.push_id THEN
        PERFORM FROM ONLY conveyor.push x WHERE x.id = NEW.push_id FOR KEY SHARE OF x;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'insert or update on table "%" violates foreign key constraint "%"', TG_TABLE_NAME, TG_ARGV[0]
                USING ERRCODE = 'foreign_key_violation',
                      DETAIL = format('Key (push_id)=(%s) is not present in table "push".', NEW.push_id),
                      TABLE = TG_TABLE_NAME, CONSTRAINT = TG_ARGV[0], SCHEMA = TG_TABLE_SCHEMA;
        END IF;
    END IF;
    RETURN NULL;
END $$;
COMMENT ON FUNCTION conveyor._push_ref_check_update() IS
    'internal: foreign-key check of a changed push_id (trigger argument: the constraint name for messages)';

-- ON DELETE CASCADE: a deleted push takes its targets and events along
-- (events still only through conveyor.retention_run: push_event_delete_guard).
-- As a foreign key's action, it runs as the tables' owner.
CREATE FUNCTION conveyor._push_delete_cascade() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        TRUNCATE conveyor.push_subunit, conveyor.push_event;
    ELSE
        DELETE FROM conveyor.push_subunit x WHERE x.push_id IN (SELECT o.id FROM old_pushes o);
        DELETE FROM conveyor.push_event x WHERE x.push_id IN (SELECT o.id FROM old_pushes o);
    END IF;
    RETURN NULL;
END $$;
COMMENT ON FUNCTION conveyor._push_delete_cascade() IS
    'internal: deletes the targets and events of deleted pushes (what ON DELETE CASCADE did)';

ALTER TABLE conveyor.push_event DROP CONSTRAINT push_event_push_id_fkey;
ALTER TABLE conveyor.push_subunit DROP CONSTRAINT push_subunit_push_id_fkey;

CREATE TRIGGER push_event_push_ref AFTER INSERT ON conveyor.push_event
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION conveyor._push_ref_check('push_event_push_id_fkey');
CREATE TRIGGER push_subunit_push_ref AFTER INSERT ON conveyor.push_subunit
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION conveyor._push_ref_check('push_subunit_push_id_fkey');
CREATE TRIGGER push_subunit_push_ref_update AFTER UPDATE OF push_id ON conveyor.push_subunit
    FOR EACH ROW EXECUTE FUNCTION conveyor._push_ref_check_update('push_subunit_push_id_fkey');
CREATE TRIGGER push_delete_cascade AFTER DELETE ON conveyor.push
    REFERENCING OLD TABLE AS old_pushes
    FOR EACH STATEMENT EXECUTE FUNCTION conveyor._push_delete_cascade();
CREATE TRIGGER push_truncate_cascade AFTER TRUNCATE ON conveyor.push
    FOR EACH STATEMENT EXECUTE FUNCTION conveyor._push_delete_cascade();
COMMENT ON TRIGGER push_event_push_ref ON conveyor.push_event IS
    'push_id references conveyor.push: checked once per INSERT statement (conveyor._push_ref_check)';
COMMENT ON TRIGGER push_subunit_push_ref ON conveyor.push_subunit IS
    'push_id references conveyor.push: checked once per INSERT statement (conveyor._push_ref_check)';
COMMENT ON TRIGGER push_delete_cascade ON conveyor.push IS
    'deleting a push deletes its targets and events';

-- As everywhere (190_access.sql): trigger functions need no grant to fire.
REVOKE EXECUTE ON FUNCTION conveyor._push_event_notify(), conveyor._push_ref_check(),
    conveyor._push_ref_check_update(), conveyor._push_delete_cascade() FROM PUBLIC;
