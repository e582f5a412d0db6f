-- conveyor 0.3: the group roles conveyor grants to (see docs/security.md).
-- Roles belong to the cluster, not the database: create each one only if an
-- earlier install has not, and never drop them with the extension.
--   conveyor_reader    sees every service, push and its history; no secret
--   conveyor_operator  also controls any service's pushes (on-call SREs)
--   conveyor_admin     also push types, secrets, allowed hosts and any service
DO $roles$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['conveyor_reader', 'conveyor_operator', 'conveyor_admin'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN', r);
        END IF;
    END LOOP;
    IF NOT pg_catalog.pg_has_role('conveyor_operator', 'conveyor_reader', 'MEMBER') THEN
        GRANT conveyor_reader TO conveyor_operator;
    END IF;
    IF NOT pg_catalog.pg_has_role('conveyor_admin', 'conveyor_operator', 'MEMBER') THEN
        GRANT conveyor_operator TO conveyor_admin;
    END IF;
END
$roles$;
