-- conveyor 0.3: ownership and authorization (docs/security.md).
--
-- A team is a role that owns services. Its members start and control pushes
-- of those services and edit them; everyone else is refused with 42501 and a
-- message naming the service and its owner. conveyor_operator members control
-- any service's pushes; conveyor_admin members may do everything; readers see
-- everything. Nothing but the API functions writes the tables: users get no
-- INSERT, UPDATE or DELETE on them, and the API functions run as the
-- extension's owner (SECURITY DEFINER, fixed search_path) after checking the
-- caller explicitly.

-- ---------------------------------------------------------------- who acts

-- The role the caller acts as: current_user outside every function (the
-- login role, or the one chosen with SET ROLE), never a definer.
CREATE FUNCTION conveyor._acting_role() RETURNS regrole
    LANGUAGE c STABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'cv_acting_role';
COMMENT ON FUNCTION conveyor._acting_role() IS
    'internal: the role the caller acts as (current_user outside SECURITY DEFINER functions)';

-- May the acting role act for this owner? Members of the owner may, and so
-- may members of the group role given (conveyor_operator or conveyor_admin).
-- Superusers are members of every role.
CREATE FUNCTION conveyor._may_act_for(owner regrole, grp name) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT owner IS NOT NULL AND pg_catalog.pg_has_role(conveyor._acting_role(), owner, 'MEMBER')
        OR pg_catalog.pg_has_role(conveyor._acting_role(), grp, 'MEMBER')
$$;
COMMENT ON FUNCTION conveyor._may_act_for(regrole, name) IS
    'internal: is the acting role a member of the owner role or of the group role';

-- Raise 42501 unless the acting role may act for the owner of an object.
CREATE FUNCTION conveyor._authorize(what text, name text, owner regrole, action text, grp name)
RETURNS void LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF NOT conveyor._may_act_for(owner, grp) THEN
        RAISE EXCEPTION 'permission denied to % % "%"', action, what, name
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = CASE WHEN owner IS NULL
                                THEN format('The %s "%s" has no owner role; role %s is not a member of %s.',
                                            what, name, conveyor._acting_role(), grp)
                                ELSE format('The %s "%s" is owned by role %s; role %s is not a member of %s or %s.',
                                            what, name, owner, conveyor._acting_role(), owner, grp) END,
                  HINT = CASE WHEN owner IS NULL THEN format('Ask a member of %s.', grp)
                              ELSE format('Act as a member of %s (SET ROLE), or ask a member of %s.', owner, grp) END;
    END IF;
END $$;
COMMENT ON FUNCTION conveyor._authorize(text, text, regrole, text, name) IS
    'internal: raises 42501 unless the acting role is a member of the owner or of the group role';

-- Raise 42501 unless the acting role may give an object to this owner role:
-- nobody makes another team own something, except an administrator.
CREATE FUNCTION conveyor._authorize_owner(what text, name text, owner regrole)
RETURNS void LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF NOT conveyor._may_act_for(owner, 'conveyor_admin') THEN
        RAISE EXCEPTION 'permission denied to make role % own % "%"', owner, what, name
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('Role %s is not a member of %s or of conveyor_admin.', conveyor._acting_role(), owner),
                  HINT = 'Give it to a role you are a member of, or ask a member of conveyor_admin.';
    END IF;
END $$;
COMMENT ON FUNCTION conveyor._authorize_owner(text, text, regrole) IS
    'internal: raises 42501 unless the acting role may make the role own an object';

-- Raise 42501 unless the acting role is a conveyor administrator.
CREATE FUNCTION conveyor._authorize_admin(action text) RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF NOT pg_catalog.pg_has_role(conveyor._acting_role(), 'conveyor_admin', 'MEMBER') THEN
        RAISE EXCEPTION 'permission denied to %', action
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('Only members of conveyor_admin may %s; role %s is not one.',
                                  action, conveyor._acting_role()),
                  HINT = 'Ask a member of conveyor_admin.';
    END IF;
END $$;
COMMENT ON FUNCTION conveyor._authorize_admin(text) IS 'internal: raises 42501 unless the acting role is an administrator';

-- Row-level security: may the current user (the invoker of a query) see
-- every row? Readers (operators and administrators too) may.
CREATE FUNCTION conveyor._reads_all() RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT pg_catalog.pg_has_role(current_user, 'conveyor_reader', 'MEMBER')
$$;
COMMENT ON FUNCTION conveyor._reads_all() IS 'internal: is the current user a member of conveyor_reader (sees all rows)';

-- ---------------------------------------------------------------- config history

-- Every change to configuration (services, plans, push types, secrets) with
-- who made it, when and why. Append-only, like push events.
CREATE TABLE conveyor.config_event (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor        name NOT NULL DEFAULT session_user,
    acting_role  name NOT NULL,
    object_kind  text NOT NULL CHECK (object_kind IN ('service', 'push_plan', 'push_type', 'secret', 'sim_fleet')),
    object_name  text NOT NULL,
    action       text NOT NULL,
    reason       text,
    detail       jsonb NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE conveyor.config_event IS
    'Configuration history: every change to services, push plans, push types, secrets and simulated fleets, append-only';
COMMENT ON COLUMN conveyor.config_event.actor IS 'the session user who made the change (the login role)';
COMMENT ON COLUMN conveyor.config_event.acting_role IS 'the role the session acted as (differs from actor after SET ROLE)';
COMMENT ON COLUMN conveyor.config_event.detail IS 'the settings before and after the change; never a secret''s value';
CREATE INDEX config_event_object ON conveyor.config_event (object_kind, object_name, at);
SELECT pg_catalog.pg_extension_config_dump('conveyor.config_event', '');
SELECT pg_catalog.pg_extension_config_dump('conveyor.config_event_id_seq', '');

CREATE FUNCTION conveyor._config_event_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'configuration history cannot be changed'
        USING ERRCODE = 'feature_not_supported',
              DETAIL = format('Event %s records a change to %s "%s".', OLD.id, OLD.object_kind, OLD.object_name),
              HINT = 'Configuration history is append-only.';
END $$;
COMMENT ON FUNCTION conveyor._config_event_append_only() IS 'internal: refuses updates of configuration history';
CREATE TRIGGER config_event_append_only BEFORE UPDATE ON conveyor.config_event
    FOR EACH ROW EXECUTE FUNCTION conveyor._config_event_append_only();

CREATE FUNCTION conveyor._config_event(kind text, name text, action text, reason text, detail jsonb)
RETURNS void LANGUAGE sql AS $$
    INSERT INTO conveyor.config_event (acting_role, object_kind, object_name, action, reason, detail)
    VALUES (conveyor._acting_role()::name, kind, name, action, reason, coalesce(detail, '{}'));
$$;
COMMENT ON FUNCTION conveyor._config_event(text, text, text, text, jsonb) IS 'internal: records a configuration change';

-- ---------------------------------------------------------------- secrets

-- Tokens for push-type endpoints. Only administrators and the workers read
-- them; nothing copies a value into an event, a log line, an error or a view.
CREATE TABLE conveyor.secret (
    name        text PRIMARY KEY CHECK (length(name) BETWEEN 1 AND 200 AND name !~ '[[:cntrl:]]'),
    value       text NOT NULL,
    description text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  name NOT NULL DEFAULT session_user,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    updated_by  name NOT NULL DEFAULT session_user
);
COMMENT ON TABLE conveyor.secret IS
    'Secrets (endpoint tokens): readable by conveyor_admin and the workers only; conveyor.secrets lists them without values';
SELECT pg_catalog.pg_extension_config_dump('conveyor.secret', '');
REVOKE ALL ON conveyor.secret FROM PUBLIC;
GRANT SELECT ON conveyor.secret TO conveyor_admin;

CREATE VIEW conveyor.secrets WITH (security_invoker = true) AS
    SELECT name, description, created_at, created_by, updated_at, updated_by FROM conveyor.secret;
COMMENT ON VIEW conveyor.secrets IS 'Secrets without their values (administrators only)';
GRANT SELECT ON conveyor.secrets TO conveyor_admin;

-- Store (or replace) a secret. Pass the value as a bind parameter, not a
-- literal, so it stays out of pg_stat_activity and the server log.
CREATE FUNCTION conveyor.secret_set(name text, value text, description text DEFAULT NULL, reason text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, conveyor, pg_temp AS $$
DECLARE
    existed boolean;
BEGIN
    PERFORM conveyor._authorize_admin('set secrets');
    PERFORM conveyor._name_check('secret', name);
    IF value IS NULL OR value = '' THEN
        RAISE EXCEPTION 'secret "%" needs a value', name
            USING ERRCODE = 'invalid_parameter_value', HINT = 'Use conveyor.secret_drop to remove a secret.';
    END IF;
    existed := EXISTS (SELECT 1 FROM conveyor.secret s WHERE s.name = secret_set.name);
    INSERT INTO conveyor.secret AS s (name, value, description)
    VALUES (name, value, description)
        ON CONFLICT ON CONSTRAINT secret_pkey DO UPDATE
       SET value = excluded.value, description = coalesce(excluded.description, s.description),
           updated_at = now(), updated_by = session_user;
    -- the history says that it changed, never to what
    PERFORM conveyor._config_event('secret', name, CASE WHEN existed THEN 'replace' ELSE 'create' END, reason,
                                   jsonb_build_object('description', description));
END $$;
COMMENT ON FUNCTION conveyor.secret_set(text, text, text, text) IS
    'Store or replace a secret (administrators); pass the value as a bind parameter';

CREATE FUNCTION conveyor.secret_drop(name text, reason text DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, conveyor, pg_temp AS $$
BEGIN
    PERFORM conveyor._authorize_admin('drop secrets');
    DELETE FROM conveyor.secret s WHERE s.name = secret_drop.name;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'secret "%" does not exist', name USING ERRCODE = 'undefined_object';
    END IF;
    PERFORM conveyor._config_event('secret', name, 'drop', reason, '{}');
END $$;
COMMENT ON FUNCTION conveyor.secret_drop(text, text) IS 'Remove a secret (administrators)';

-- ---------------------------------------------------------------- push controls

-- Every push action locks the push through here: 42704 if there is none,
-- 42501 unless the acting role may control the service's pushes.
CREATE OR REPLACE FUNCTION conveyor._push_lock(p_id bigint) RETURNS conveyor.push
LANGUAGE plpgsql AS $$
DECLARE
    p conveyor.push;
    v_owner regrole;
BEGIN
    SELECT * INTO p FROM conveyor.push WHERE id = p_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'push % does not exist', coalesce(p_id::text, 'NULL')
            USING ERRCODE = 'undefined_object',
                  HINT = 'conveyor.push lists pushes.';
    END IF;
    SELECT s.owner INTO v_owner FROM conveyor.service s WHERE s.name = p.service;
    PERFORM conveyor._authorize('service', p.service, v_owner, 'control pushes of', 'conveyor_operator');
    RETURN p;
END $$;
COMMENT ON FUNCTION conveyor._push_lock(bigint) IS
    'internal: locks a push for an action, after checking the acting role may control it';
