-- conveyor 0.2: the push engine's catalog and runtime tables.

-- Push types --------------------------------------------------------------

CREATE TABLE conveyor.push_type (
    name         text PRIMARY KEY,
    transport    text NOT NULL DEFAULT 'sql' CHECK (transport IN ('sql')),
    get_units    regprocedure NOT NULL,
    send_update  regprocedure NOT NULL,
    check_health regprocedure,
    needs_push   regprocedure,
    description  text,
    builtin      boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   name NOT NULL DEFAULT session_user
);
COMMENT ON TABLE conveyor.push_type IS
    'Integrations with hosting systems: the functions (verbs) that list units, send updates and check health';
COMMENT ON COLUMN conveyor.push_type.get_units IS
    'verb (service text, config jsonb) RETURNS TABLE(unit text, labels jsonb, subunit text, version text, status text)';
COMMENT ON COLUMN conveyor.push_type.send_update IS
    'verb (service text, config jsonb, updates jsonb) RETURNS TABLE(unit text, subunit text, error text): one row per refused update';
COMMENT ON COLUMN conveyor.push_type.check_health IS
    'optional verb (service text, config jsonb, units text[]) RETURNS TABLE(unit text, healthy boolean, reason text)';
COMMENT ON COLUMN conveyor.push_type.needs_push IS
    'optional verb (service text, config jsonb, version text) RETURNS TABLE(unit text, needs_push boolean): units answering false are left alone';
COMMENT ON COLUMN conveyor.push_type.builtin IS 'shipped with the extension (not dumped by pg_dump)';
SELECT pg_catalog.pg_extension_config_dump('conveyor.push_type', 'WHERE NOT builtin');

-- Push plans ----------------------------------------------------------------

CREATE TABLE conveyor.push_plan (
    name        text PRIMARY KEY,
    description text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  name NOT NULL DEFAULT session_user,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE conveyor.push_plan IS
    'Named push plans: ordered phases; conveyor appends the completion phase (scope *, amount 100%) to every push';
SELECT pg_catalog.pg_extension_config_dump('conveyor.push_plan', '');

CREATE TABLE conveyor.push_plan_phase (
    plan            text NOT NULL REFERENCES conveyor.push_plan ON UPDATE CASCADE ON DELETE CASCADE,
    position        int NOT NULL CHECK (position >= 0),
    scope           text NOT NULL,
    amount          text NOT NULL,
    bake            interval NOT NULL DEFAULT '0' CHECK (bake >= '0'),
    fault_tolerance numeric NOT NULL DEFAULT 0 CHECK (fault_tolerance BETWEEN 0 AND 100),
    PRIMARY KEY (plan, position)
);
COMMENT ON TABLE conveyor.push_plan_phase IS 'The phases of each push plan, in order (position from 0)';
COMMENT ON COLUMN conveyor.push_plan_phase.scope IS 'which units: *, label matches (region=eu), unit-name globs (web-*), with & | ! (see docs/push-plans.md)';
COMMENT ON COLUMN conveyor.push_plan_phase.amount IS 'per unit, cumulative: a percentage of its subunits (5%) or a count (3)';
COMMENT ON COLUMN conveyor.push_plan_phase.bake IS 'time to wait after the phase''s updates, checking health, before moving on';
COMMENT ON COLUMN conveyor.push_plan_phase.fault_tolerance IS 'percent of the phase''s targeted subunits that may fail to update while the phase still passes';
SELECT pg_catalog.pg_extension_config_dump('conveyor.push_plan_phase', '');

-- Services ------------------------------------------------------------------

CREATE TABLE conveyor.service (
    name             text PRIMARY KEY,
    owner            regrole NOT NULL,
    push_type        text NOT NULL REFERENCES conveyor.push_type ON UPDATE CASCADE,
    push_type_config jsonb NOT NULL DEFAULT '{}',
    plan             text NOT NULL REFERENCES conveyor.push_plan ON UPDATE CASCADE,
    failure_policy   text NOT NULL DEFAULT 'pause' CHECK (failure_policy IN ('pause', 'revert', 'fail')),
    health_interval  interval NOT NULL DEFAULT '30 seconds' CHECK (health_interval > '0'),
    poll_interval    interval NOT NULL DEFAULT '1 second' CHECK (poll_interval > '0'),
    update_timeout   interval NOT NULL DEFAULT '10 minutes' CHECK (update_timeout > '0'),
    max_in_flight    int NOT NULL DEFAULT 100 CHECK (max_in_flight BETWEEN 1 AND 100000),
    retry_limit      int NOT NULL DEFAULT 5 CHECK (retry_limit BETWEEN 0 AND 100),
    created_at       timestamptz NOT NULL DEFAULT now(),
    created_by       name NOT NULL DEFAULT session_user
);
COMMENT ON TABLE conveyor.service IS 'Deployed services: owner role, push type and its config, default push plan, failure policy';
COMMENT ON COLUMN conveyor.service.failure_policy IS 'on an unhealthy verdict: pause (wait for a person), revert (automatically), or fail';
COMMENT ON COLUMN conveyor.service.health_interval IS 'how often health is checked while a phase bakes';
COMMENT ON COLUMN conveyor.service.poll_interval IS 'how often in-flight updates are checked for completion';
COMMENT ON COLUMN conveyor.service.update_timeout IS 'an update not confirmed within this time counts as failed';
COMMENT ON COLUMN conveyor.service.max_in_flight IS 'most subunits of one push being updated at once';
COMMENT ON COLUMN conveyor.service.retry_limit IS 'push-type errors retried (with backoff) before the push ends as a bad failure';
SELECT pg_catalog.pg_extension_config_dump('conveyor.service', '');

-- Pushes --------------------------------------------------------------------

CREATE TABLE conveyor.push (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    service           text NOT NULL REFERENCES conveyor.service ON UPDATE CASCADE,
    version           text NOT NULL,
    kind              text NOT NULL DEFAULT 'push' CHECK (kind IN ('push', 'revert')),
    reverts           bigint REFERENCES conveyor.push,
    plan              text NOT NULL,
    state             text NOT NULL DEFAULT 'running'
                      CHECK (state IN ('running', 'paused', 'succeeded', 'failed', 'cancelled', 'reverted')),
    phase             int NOT NULL DEFAULT 0,
    phases            int NOT NULL DEFAULT 1,
    step              text NOT NULL DEFAULT 'plan' CHECK (step IN ('plan', 'update', 'confirm', 'bake')),
    outcome           text CHECK (outcome IN ('success', 'good failure', 'bad failure')),
    outcome_reason    text,
    skip_healthchecks boolean NOT NULL DEFAULT false,
    seed              bigint NOT NULL,
    next_step_at      timestamptz,
    errors            int NOT NULL DEFAULT 0,
    started_by        name NOT NULL DEFAULT session_user,
    start_reason      text,
    created_at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    ended_at          timestamptz,
    CHECK ((state IN ('running', 'paused')) = (outcome IS NULL)),
    CHECK ((state IN ('running', 'paused')) = (ended_at IS NULL)),
    CHECK ((kind = 'revert') = (reverts IS NOT NULL))
);
COMMENT ON TABLE conveyor.push IS 'Pushes: one run of a push plan deploying a version to a service, and its outcome';
COMMENT ON COLUMN conveyor.push.kind IS 'push, or revert: returning the subunits a push updated to the versions they ran before';
COMMENT ON COLUMN conveyor.push.state IS 'running or paused while active; succeeded, failed, cancelled or reverted once ended';
COMMENT ON COLUMN conveyor.push.phase IS 'current phase (position, from 0)';
COMMENT ON COLUMN conveyor.push.phases IS 'number of phases, the completion phase included';
COMMENT ON COLUMN conveyor.push.step IS 'where the current phase is: plan, update, confirm, bake';
COMMENT ON COLUMN conveyor.push.outcome IS 'success, good failure (an expected stop) or bad failure (unexpected); see docs/push-engine.md';
COMMENT ON COLUMN conveyor.push.seed IS 'fixes which subunits each phase picks, so re-planning after a crash picks the same';
COMMENT ON COLUMN conveyor.push.next_step_at IS 'when a worker should next advance this push';
COMMENT ON COLUMN conveyor.push.errors IS 'consecutive failed steps or push-type calls, for retries with backoff';
-- one active push per service, even under concurrent starts
CREATE UNIQUE INDEX push_one_active_per_service ON conveyor.push (service) WHERE state IN ('running', 'paused');
CREATE INDEX push_due ON conveyor.push (next_step_at) WHERE state = 'running';
CREATE INDEX push_service_created ON conveyor.push (service, created_at);
SELECT pg_catalog.pg_extension_config_dump('conveyor.push', '');

CREATE TABLE conveyor.push_phase (
    push_id          bigint NOT NULL REFERENCES conveyor.push ON DELETE CASCADE,
    position         int NOT NULL,
    scope            text NOT NULL,
    amount           text NOT NULL,
    bake             interval NOT NULL,
    fault_tolerance  numeric NOT NULL,
    implicit         boolean NOT NULL DEFAULT false,
    state            text NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'running', 'succeeded', 'skipped', 'failed')),
    targets          int,
    already          int,
    updated          int NOT NULL DEFAULT 0,
    failed           int NOT NULL DEFAULT 0,
    gone             int NOT NULL DEFAULT 0,
    bake_skipped     boolean NOT NULL DEFAULT false,
    started_at       timestamptz,
    updates_done_at  timestamptz,
    bake_until       timestamptz,
    ended_at         timestamptz,
    PRIMARY KEY (push_id, position)
);
COMMENT ON TABLE conveyor.push_phase IS 'The phases of each push, copied from its plan at start, with progress';
COMMENT ON COLUMN conveyor.push_phase.implicit IS 'the completion phase conveyor added (scope *, amount 100%)';
COMMENT ON COLUMN conveyor.push_phase.targets IS 'subunits the phase set out to update';
COMMENT ON COLUMN conveyor.push_phase.already IS 'subunits in scope already running the version (needs-push said no)';
COMMENT ON COLUMN conveyor.push_phase.gone IS 'targeted subunits that disappeared before they were confirmed';
SELECT pg_catalog.pg_extension_config_dump('conveyor.push_phase', '');

CREATE TABLE conveyor.push_subunit (
    push_id         bigint NOT NULL REFERENCES conveyor.push ON DELETE CASCADE,
    unit            text NOT NULL,
    subunit         text NOT NULL,
    phase           int NOT NULL,
    from_version    text,
    to_version      text NOT NULL,
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'sent', 'done', 'failed', 'gone', 'skipped')),
    attempts        int NOT NULL DEFAULT 0,
    idempotency_key text NOT NULL,
    sent_at         timestamptz,
    done_at         timestamptz,
    error           text,
    PRIMARY KEY (push_id, unit, subunit)
);
COMMENT ON TABLE conveyor.push_subunit IS 'Every subunit a push set out to update: from which version, to which, and how it went';
COMMENT ON COLUMN conveyor.push_subunit.idempotency_key IS 'sent with the update; re-sending the same update after a crash is harmless';
CREATE INDEX push_subunit_progress ON conveyor.push_subunit (push_id, phase, state);
SELECT pg_catalog.pg_extension_config_dump('conveyor.push_subunit', '');

CREATE TABLE conveyor.push_event (
    id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    push_id bigint NOT NULL REFERENCES conveyor.push ON DELETE CASCADE,
    at      timestamptz NOT NULL DEFAULT clock_timestamp(),
    kind    text NOT NULL,
    phase   int,
    actor   name,
    reason  text,
    detail  jsonb NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE conveyor.push_event IS
    'Append-only history of every push: state changes, phases, update batches, health verdicts, manual actions';
COMMENT ON COLUMN conveyor.push_event.actor IS 'the role that acted (session user) for manual actions; NULL for the engine';
COMMENT ON COLUMN conveyor.push_event.detail IS 'facts of the event; timing: due_at and push_type_ms measure conveyor''s own latency';
CREATE INDEX push_event_push ON conveyor.push_event (push_id, id);
SELECT pg_catalog.pg_extension_config_dump('conveyor.push_event', '');
SELECT pg_catalog.pg_extension_config_dump('conveyor.push_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('conveyor.push_event_id_seq', '');
