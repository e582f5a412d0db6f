-- conveyor 0.3: the operator's surface in psql. Live progress of active
-- pushes (conveyor.push_progress, after pg_stat_progress_*), every push event
-- as a notification on channel conveyor_events, views of services, plans and
-- pushes that read well with \x, and comments so \d+ and \df+ explain
-- themselves (also on the 0.2 objects, which are frozen and so commented here).
--
-- Every view is security_invoker: row-level security on the base tables
-- applies to whoever reads through it, so a view never shows more than the
-- tables would.

-- ------------------------------------------------------------ NOTIFY channel

-- The record types give the JSON keys their names and order.
CREATE TYPE conveyor._event_note AS (
    id bigint, push bigint, kind text, phase int, at timestamptz, actor name, reason text, detail jsonb);
CREATE TYPE conveyor._event_note_short AS (
    id bigint, push bigint, kind text, phase int, at timestamptz, truncated boolean);
COMMENT ON TYPE conveyor._event_note IS 'internal: a push event as sent on channel conveyor_events';
COMMENT ON TYPE conveyor._event_note_short IS
    'internal: a push event too large for a notification: ids and kind only (truncated = true)';

-- Sends each inserted push event on channel conveyor_events as compact JSON:
--   {"id":1,"push":2,"kind":"phase_started","phase":0,"at":"...","actor":null,"reason":null,"detail":{...}}
-- or, when that would not fit the 8000-byte payload limit, only
--   {"id":1,"push":2,"kind":"...","phase":0,"at":"...","truncated":true}
-- (read the rest from conveyor.push_event by id).
--
-- A statement-level trigger with a transition table: the engine writes all of
-- a step's events with one INSERT, so this runs once per step, not per event,
-- and does no table access of its own. Notifications are sent at commit and
-- only then (a rolled-back step sends nothing), in event id order.
CREATE FUNCTION conveyor._push_event_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- row_to_json writes no whitespace, and keeps the column order of the record
    PERFORM pg_catalog.pg_notify('conveyor_events',
               CASE WHEN pg_catalog.octet_length(x.note) < 8000 THEN x.note
                    ELSE pg_catalog.row_to_json(ROW(x.id, x.push_id, x.kind, x.phase, x.at, true)::conveyor._event_note_short)::text
               END)
      FROM (SELECT e.id, e.push_id, e.kind, e.phase, e.at,
                   pg_catalog.row_to_json(ROW(e.id, e.push_id, e.kind, e.phase, e.at, e.actor, e.reason, e.detail)
                                          ::conveyor._event_note)::text AS note
              FROM new_events e) x
     ORDER BY x.id;
    RETURN NULL;
END $$;

COMMENT ON FUNCTION conveyor._push_event_notify() IS
    'internal: sends each new push event as compact JSON on channel conveyor_events (see docs/operations.md)';

CREATE TRIGGER push_event_notify AFTER INSERT ON conveyor.push_event
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION conveyor._push_event_notify();

-- ------------------------------------------------------------ push_progress

-- Per active push: where it is, how far, how healthy, and when it should end.
-- Subunit counts come from the latest phase_started event (the fleet as the
-- push type reported it when the phase was planned) plus what the push has
-- updated since, so they cost no push-type call.
CREATE VIEW conveyor.push_progress WITH (security_invoker = true) AS
SELECT p.id AS push_id, p.service, p.version, p.kind, p.reverts, p.state, p.step,
       p.phase + 1 AS phase, p.phases,
       ph.scope AS phase_scope, ph.amount AS phase_amount,
       ph.targets AS phase_targets,
       cur.done::int AS phase_updated, cur.failed::int AS phase_failed, cur.in_flight::int AS phase_in_flight,
       tot.done::int AS subunits_done, tot.total AS subunits_total,
       CASE WHEN tot.total = 0 THEN 100.0
            ELSE round(100.0 * tot.done / tot.total, 1) END AS percent,
       CASE WHEN p.kind = 'revert' THEN 'not checked (revert)'
            WHEN p.skip_healthchecks THEN 'skipped'
            WHEN h.detail IS NULL THEN 'not checked yet'
            WHEN (h.detail->>'healthy')::boolean THEN 'healthy'
            ELSE 'unhealthy: ' || coalesce((SELECT string_agg(format('%s (%s)', u->>'unit', coalesce(u->>'reason', 'no reason given')), ', ')
                                              FROM jsonb_array_elements(h.detail->'unhealthy') u), '?') END AS health,
       h.at AS health_checked_at,
       CASE WHEN p.step = 'bake' AND ph.bake_until IS NOT NULL
            THEN date_trunc('second', greatest(ph.bake_until - now(), '0')) END AS bake_left,
       CASE WHEN p.state = 'running' THEN date_trunc('second', now() + eta.remaining) END AS eta,
       p.started_by, p.start_reason, p.created_at AS started_at,
       date_trunc('second', now() - p.created_at) AS elapsed,
       last.kind AS last_event, last.at AS last_event_at
  FROM conveyor.push p
  JOIN conveyor.push_phase ph ON ph.push_id = p.id AND ph.position = p.phase
  -- the current phase's targets so far
  CROSS JOIN LATERAL (
        SELECT count(*) FILTER (WHERE s.state = 'done') AS done,
               count(*) FILTER (WHERE s.state IN ('failed', 'gone')) AS failed,
               count(*) FILTER (WHERE s.state = 'sent') AS in_flight
          FROM conveyor.push_subunit s WHERE s.push_id = p.id AND s.phase = p.phase) cur
  -- the latest plan: how many subunits the service had, how many ran the version
  LEFT JOIN LATERAL (
        SELECT e.phase, e.detail FROM conveyor.push_event e
         WHERE e.push_id = p.id AND e.kind = 'phase_started' ORDER BY e.id DESC LIMIT 1) pl ON true
  CROSS JOIN LATERAL (
        SELECT coalesce((pl.detail->>'subunits')::int, (pl.detail->>'targets')::int) AS total,
               least(coalesce((pl.detail->>'subunits')::int, (pl.detail->>'targets')::int),
                     coalesce((pl.detail->>'already')::int, 0)
                     + (SELECT count(*) FROM conveyor.push_subunit s
                         WHERE s.push_id = p.id AND s.phase = pl.phase AND s.state = 'done')) AS done) tot
  LEFT JOIN LATERAL (
        SELECT e.at, e.detail FROM conveyor.push_event e
         WHERE e.push_id = p.id AND e.kind = 'health_checked' ORDER BY e.id DESC LIMIT 1) h ON true
  LEFT JOIN LATERAL (
        SELECT e.kind, e.at FROM conveyor.push_event e WHERE e.push_id = p.id ORDER BY e.id DESC LIMIT 1) last ON true
  -- time left: the rest of this phase and every later one, each phase's
  -- updates taking as long as this push's finished phases took on average
  -- (or, for its first phase, the service's recent pushes), plus its bake
  CROSS JOIN LATERAL (
        SELECT coalesce(
                 (SELECT avg(f.updates_done_at - f.started_at) FROM conveyor.push_phase f
                   WHERE f.push_id = p.id AND f.updates_done_at IS NOT NULL),
                 (SELECT avg(f.updates_done_at - f.started_at)
                    FROM (SELECT x.id FROM conveyor.push x
                           WHERE x.service = p.service AND x.id < p.id AND x.state = 'succeeded'
                           ORDER BY x.id DESC LIMIT 5) r
                    JOIN conveyor.push_phase f ON f.push_id = r.id
                   WHERE f.updates_done_at IS NOT NULL),
                 '0') AS per_phase) upd
  CROSS JOIN LATERAL (
        SELECT CASE WHEN p.step = 'bake' THEN greatest(coalesce(ph.bake_until - now(), '0'), '0')
                    ELSE greatest(upd.per_phase - coalesce(now() - ph.started_at, '0'), '0')
                         + CASE WHEN ph.bake_skipped OR p.kind = 'revert' THEN '0' ELSE ph.bake END END
               + coalesce((SELECT sum(upd.per_phase + f.bake) FROM conveyor.push_phase f
                            WHERE f.push_id = p.id AND f.position > p.phase), '0') AS remaining) eta
 WHERE p.state IN ('running', 'paused');
COMMENT ON VIEW conveyor.push_progress IS
    'Active pushes as they go, in the spirit of pg_stat_progress_*: phase k of N, subunits done, health, bake left, ETA';
COMMENT ON COLUMN conveyor.push_progress.push_id IS 'the push (conveyor.push.id)';
COMMENT ON COLUMN conveyor.push_progress.service IS 'the service being pushed';
COMMENT ON COLUMN conveyor.push_progress.version IS 'the version being pushed (a revert: returned to)';
COMMENT ON COLUMN conveyor.push_progress.kind IS 'push, or revert (of push reverts)';
COMMENT ON COLUMN conveyor.push_progress.reverts IS 'for a revert, the push it reverts';
COMMENT ON COLUMN conveyor.push_progress.state IS 'running, or paused (waiting for conveyor.push_resume)';
COMMENT ON COLUMN conveyor.push_progress.step IS 'where the current phase is: plan, update, confirm, bake';
COMMENT ON COLUMN conveyor.push_progress.phase IS 'current phase, counted from 1';
COMMENT ON COLUMN conveyor.push_progress.phases IS 'number of phases, the completion phase included';
COMMENT ON COLUMN conveyor.push_progress.phase_scope IS 'which units the current phase covers';
COMMENT ON COLUMN conveyor.push_progress.phase_amount IS 'how much of each unit the push has reached by the end of the current phase';
COMMENT ON COLUMN conveyor.push_progress.phase_targets IS 'subunits the current phase set out to update (NULL until it is planned)';
COMMENT ON COLUMN conveyor.push_progress.phase_updated IS 'targets of the current phase confirmed running the version';
COMMENT ON COLUMN conveyor.push_progress.phase_failed IS 'targets of the current phase that failed or disappeared';
COMMENT ON COLUMN conveyor.push_progress.phase_in_flight IS 'targets of the current phase sent and not yet confirmed';
COMMENT ON COLUMN conveyor.push_progress.subunits_done IS
    'subunits running the version: those that did at the latest plan, plus those updated since (a revert: subunits returned)';
COMMENT ON COLUMN conveyor.push_progress.subunits_total IS
    'subunits of the service at the latest plan (a revert: subunits it returns); NULL before the first plan';
COMMENT ON COLUMN conveyor.push_progress.percent IS '100 * subunits_done / subunits_total';
COMMENT ON COLUMN conveyor.push_progress.health IS
    'the latest health verdict: healthy, unhealthy: units (reasons), not checked yet, skipped, or not checked (revert)';
COMMENT ON COLUMN conveyor.push_progress.health_checked_at IS 'when health was last checked';
COMMENT ON COLUMN conveyor.push_progress.bake_left IS 'while baking, how long the current phase still bakes';
COMMENT ON COLUMN conveyor.push_progress.eta IS
    'estimated end: remaining bakes plus, per phase left, the average update time of this push''s phases so far '
    '(or of the service''s recent pushes); NULL while paused';
COMMENT ON COLUMN conveyor.push_progress.started_by IS 'the role that started the push';
COMMENT ON COLUMN conveyor.push_progress.start_reason IS 'why, as given to push_start';
COMMENT ON COLUMN conveyor.push_progress.started_at IS 'when the push started';
COMMENT ON COLUMN conveyor.push_progress.elapsed IS 'time since it started';
COMMENT ON COLUMN conveyor.push_progress.last_event IS 'kind of the push''s latest event';
COMMENT ON COLUMN conveyor.push_progress.last_event_at IS 'when the latest event happened';

-- ------------------------------------------------------------ readable views

-- A plan's phases as one line: "1: region=eu 10% bake 00:10:00 tolerance 2% | 2: ..."
CREATE FUNCTION conveyor._phases_text(scopes text[], amounts text[], bakes interval[], tolerances numeric[])
RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT string_agg(format('%s: %s %s%s%s', i, s, a,
                             CASE WHEN b > '0' THEN ' bake ' || b ELSE '' END,
                             CASE WHEN t > 0 THEN ' tolerance ' || t || '%' ELSE '' END), ' | ' ORDER BY i)
      FROM unnest(scopes, amounts, bakes, tolerances) WITH ORDINALITY AS x(s, a, b, t, i);
$$;
COMMENT ON FUNCTION conveyor._phases_text(text[], text[], interval[], numeric[]) IS
    'internal: phases as one readable line';

CREATE VIEW conveyor.plans WITH (security_invoker = true) AS
SELECT pl.name, pl.description,
       (coalesce(ph.n, 0) + 1)::int AS phases,
       concat_ws(' | ', ph.summary, format('%s: * 100%% (completion)', coalesce(ph.n, 0) + 1)) AS summary,
       coalesce(ph.bake, '0') AS total_bake,
       coalesce((SELECT array_agg(s.name ORDER BY s.name) FROM conveyor.service s WHERE s.plan = pl.name), '{}')
           AS used_by,
       pl.created_at, pl.created_by, pl.updated_at
  FROM conveyor.push_plan pl
  LEFT JOIN LATERAL (
        SELECT count(*) AS n, sum(f.bake) AS bake,
               conveyor._phases_text(array_agg(f.scope ORDER BY f.position), array_agg(f.amount ORDER BY f.position),
                                     array_agg(f.bake ORDER BY f.position),
                                     array_agg(f.fault_tolerance ORDER BY f.position)) AS summary
          FROM conveyor.push_plan_phase f WHERE f.plan = pl.name) ph ON true;
COMMENT ON VIEW conveyor.plans IS 'Push plans in a line each: phases, total bake, the services using them';
COMMENT ON COLUMN conveyor.plans.name IS 'the plan''s name';
COMMENT ON COLUMN conveyor.plans.description IS 'what the plan is for';
COMMENT ON COLUMN conveyor.plans.phases IS 'phases of a push with this plan, the completion phase included';
COMMENT ON COLUMN conveyor.plans.summary IS 'each phase: scope, amount, bake and fault tolerance';
COMMENT ON COLUMN conveyor.plans.total_bake IS 'the least time a push with this plan takes: the sum of its bakes';
COMMENT ON COLUMN conveyor.plans.used_by IS 'services whose default plan this is';
COMMENT ON COLUMN conveyor.plans.created_at IS 'when the plan was created';
COMMENT ON COLUMN conveyor.plans.created_by IS 'the role that created it';
COMMENT ON COLUMN conveyor.plans.updated_at IS 'when its phases last changed';

CREATE VIEW conveyor.services WITH (security_invoker = true) AS
SELECT s.name, s.owner, s.push_type, s.plan, s.failure_policy,
       (SELECT x.version FROM conveyor.push x
         WHERE x.service = s.name AND x.state = 'succeeded' ORDER BY x.ended_at DESC LIMIT 1) AS pushed_version,
       a.id AS active_push, a.kind AS active_kind, a.version AS active_version, a.state AS active_state,
       CASE WHEN a.id IS NOT NULL THEN format('%s/%s', a.phase + 1, a.phases) END AS active_phase,
       l.id AS last_push, l.version AS last_version, l.state AS last_state, l.outcome AS last_outcome,
       l.ended_at AS last_ended_at,
       (SELECT count(*) FROM conveyor.push x WHERE x.service = s.name) AS pushes,
       s.health_interval, s.poll_interval, s.update_timeout, s.max_in_flight, s.retry_limit,
       s.push_type_config, s.created_at, s.created_by
  FROM conveyor.service s
  LEFT JOIN conveyor.push a ON a.service = s.name AND a.state IN ('running', 'paused')
  LEFT JOIN LATERAL (
        SELECT x.id, x.version, x.state, x.outcome, x.ended_at FROM conveyor.push x
         WHERE x.service = s.name AND x.ended_at IS NOT NULL ORDER BY x.ended_at DESC LIMIT 1) l ON true;
COMMENT ON VIEW conveyor.services IS 'Services with their settings, the version last pushed, the active push and the last one';
COMMENT ON COLUMN conveyor.services.name IS 'the service';
COMMENT ON COLUMN conveyor.services.owner IS 'the role (team) owning it';
COMMENT ON COLUMN conveyor.services.push_type IS 'how it is deployed (conveyor.push_type)';
COMMENT ON COLUMN conveyor.services.plan IS 'its default push plan';
COMMENT ON COLUMN conveyor.services.failure_policy IS 'on an unhealthy verdict: pause, revert or fail';
COMMENT ON COLUMN conveyor.services.pushed_version IS 'version of the latest push (or revert) that succeeded';
COMMENT ON COLUMN conveyor.services.active_push IS 'the running or paused push, if any';
COMMENT ON COLUMN conveyor.services.active_kind IS 'push or revert';
COMMENT ON COLUMN conveyor.services.active_version IS 'the version the active push deploys';
COMMENT ON COLUMN conveyor.services.active_state IS 'running or paused';
COMMENT ON COLUMN conveyor.services.active_phase IS 'phase k/N of the active push';
COMMENT ON COLUMN conveyor.services.last_push IS 'the push that ended last';
COMMENT ON COLUMN conveyor.services.last_version IS 'its version';
COMMENT ON COLUMN conveyor.services.last_state IS 'how it ended: succeeded, failed, cancelled, reverted';
COMMENT ON COLUMN conveyor.services.last_outcome IS 'success, good failure or bad failure';
COMMENT ON COLUMN conveyor.services.last_ended_at IS 'when it ended';
COMMENT ON COLUMN conveyor.services.pushes IS 'pushes of the service so far (reverts included)';
COMMENT ON COLUMN conveyor.services.health_interval IS 'how often health is checked while a phase bakes';
COMMENT ON COLUMN conveyor.services.poll_interval IS 'how often in-flight updates are checked';
COMMENT ON COLUMN conveyor.services.update_timeout IS 'an update not confirmed within this time fails';
COMMENT ON COLUMN conveyor.services.max_in_flight IS 'most subunits of one push updated at once';
COMMENT ON COLUMN conveyor.services.retry_limit IS 'push-type errors retried before a bad failure';
COMMENT ON COLUMN conveyor.services.push_type_config IS 'the push type''s settings for this service';
COMMENT ON COLUMN conveyor.services.created_at IS 'when the service was created';
COMMENT ON COLUMN conveyor.services.created_by IS 'the role that created it';

-- conveyor.pushes (0.2) keeps its columns and gains readable ones at the end.
CREATE OR REPLACE VIEW conveyor.pushes WITH (security_invoker = true) AS
SELECT p.id, p.service, p.version, p.kind, p.reverts, p.state,
       format('%s/%s', p.phase + 1, p.phases) AS phase,
       p.step, p.outcome, p.outcome_reason, p.started_by, p.start_reason,
       p.created_at, p.ended_at, coalesce(p.ended_at, now()) - p.created_at AS duration,
       p.plan,
       format('%s %s', ph.scope, ph.amount) AS phase_scope,
       sub.updated AS subunits_updated, sub.failed AS subunits_failed,
       last.kind AS last_event, last.at AS last_event_at
  FROM conveyor.push p
  LEFT JOIN conveyor.push_phase ph ON ph.push_id = p.id AND ph.position = p.phase
  LEFT JOIN LATERAL (
        SELECT count(*) FILTER (WHERE s.state = 'done') AS updated,
               count(*) FILTER (WHERE s.state IN ('failed', 'gone')) AS failed
          FROM conveyor.push_subunit s WHERE s.push_id = p.id) sub ON true
  LEFT JOIN LATERAL (
        SELECT e.kind, e.at FROM conveyor.push_event e WHERE e.push_id = p.id ORDER BY e.id DESC LIMIT 1) last ON true;
COMMENT ON VIEW conveyor.pushes IS 'Pushes, newest last, with phase k/N, duration, subunits updated and the latest event';
COMMENT ON COLUMN conveyor.pushes.id IS 'the push';
COMMENT ON COLUMN conveyor.pushes.service IS 'the service pushed';
COMMENT ON COLUMN conveyor.pushes.version IS 'the version pushed (a revert: the version returned to)';
COMMENT ON COLUMN conveyor.pushes.kind IS 'push or revert';
COMMENT ON COLUMN conveyor.pushes.reverts IS 'for a revert, the push it reverts';
COMMENT ON COLUMN conveyor.pushes.state IS 'running, paused; succeeded, failed, cancelled, reverted';
COMMENT ON COLUMN conveyor.pushes.phase IS 'current (or last) phase as k/N';
COMMENT ON COLUMN conveyor.pushes.step IS 'where the phase is: plan, update, confirm, bake';
COMMENT ON COLUMN conveyor.pushes.outcome IS 'success, good failure or bad failure, once ended';
COMMENT ON COLUMN conveyor.pushes.outcome_reason IS 'why it ended that way';
COMMENT ON COLUMN conveyor.pushes.started_by IS 'the role that started it';
COMMENT ON COLUMN conveyor.pushes.start_reason IS 'why, as given when it started';
COMMENT ON COLUMN conveyor.pushes.created_at IS 'when it started';
COMMENT ON COLUMN conveyor.pushes.ended_at IS 'when it ended';
COMMENT ON COLUMN conveyor.pushes.duration IS 'from start to end (or to now)';
COMMENT ON COLUMN conveyor.pushes.plan IS 'the push plan it follows';
COMMENT ON COLUMN conveyor.pushes.phase_scope IS 'scope and amount of the current (or last) phase';
COMMENT ON COLUMN conveyor.pushes.subunits_updated IS 'subunits it updated (confirmed running the version)';
COMMENT ON COLUMN conveyor.pushes.subunits_failed IS 'subunits whose update failed or that disappeared';
COMMENT ON COLUMN conveyor.pushes.last_event IS 'kind of its latest event';
COMMENT ON COLUMN conveyor.pushes.last_event_at IS 'when that happened';

GRANT SELECT ON conveyor.push_progress, conveyor.plans, conveyor.services, conveyor.pushes TO PUBLIC;

-- ------------------------------------------------------------ comments on 0.2 objects

COMMENT ON COLUMN conveyor.push_type.name IS 'the push type''s name, as services name it';
COMMENT ON COLUMN conveyor.push_type.transport IS 'how its verbs are called: sql (SQL functions)';
COMMENT ON COLUMN conveyor.push_type.description IS 'what it deploys to';
COMMENT ON COLUMN conveyor.push_type.created_at IS 'when it was registered';
COMMENT ON COLUMN conveyor.push_type.created_by IS 'the role that registered it';

COMMENT ON COLUMN conveyor.push_plan.name IS 'the plan''s name, as services and push_start name it';
COMMENT ON COLUMN conveyor.push_plan.description IS 'what the plan is for';
COMMENT ON COLUMN conveyor.push_plan.created_at IS 'when the plan was created';
COMMENT ON COLUMN conveyor.push_plan.created_by IS 'the role that created it';
COMMENT ON COLUMN conveyor.push_plan.updated_at IS 'when its phases last changed (push_plan_replace)';
COMMENT ON COLUMN conveyor.push_plan_phase.plan IS 'the plan';
COMMENT ON COLUMN conveyor.push_plan_phase.position IS 'order in the plan, from 0';

COMMENT ON COLUMN conveyor.service.name IS 'the service''s name';
COMMENT ON COLUMN conveyor.service.owner IS 'the role (team) owning the service';
COMMENT ON COLUMN conveyor.service.push_type IS 'how the service is deployed';
COMMENT ON COLUMN conveyor.service.push_type_config IS 'settings passed to every verb of the push type (e.g. {"fleet": "demo"})';
COMMENT ON COLUMN conveyor.service.plan IS 'the push plan used when push_start names none';
COMMENT ON COLUMN conveyor.service.created_at IS 'when the service was created';
COMMENT ON COLUMN conveyor.service.created_by IS 'the role that created it';

COMMENT ON COLUMN conveyor.push.id IS 'the push''s id, as the push_* functions take it';
COMMENT ON COLUMN conveyor.push.service IS 'the service pushed';
COMMENT ON COLUMN conveyor.push.version IS 'the version pushed (a revert: the version most subunits return to)';
COMMENT ON COLUMN conveyor.push.reverts IS 'for a revert, the push it reverts';
COMMENT ON COLUMN conveyor.push.plan IS 'the push plan it follows (its phases were copied into push_phase at start)';
COMMENT ON COLUMN conveyor.push.outcome_reason IS 'why the push ended the way it did';
COMMENT ON COLUMN conveyor.push.skip_healthchecks IS 'healthchecks were skipped for the rest of the push (push_skip_healthchecks)';
COMMENT ON COLUMN conveyor.push.started_by IS 'the role that started the push (a revert by the engine: the original''s)';
COMMENT ON COLUMN conveyor.push.start_reason IS 'why, as given to push_start or push_revert';
COMMENT ON COLUMN conveyor.push.created_at IS 'when the push started';
COMMENT ON COLUMN conveyor.push.ended_at IS 'when it ended; NULL while running or paused';

COMMENT ON COLUMN conveyor.push_phase.push_id IS 'the push';
COMMENT ON COLUMN conveyor.push_phase.position IS 'order in the push, from 0';
COMMENT ON COLUMN conveyor.push_phase.scope IS 'which units the phase covers (copied from the plan)';
COMMENT ON COLUMN conveyor.push_phase.amount IS 'how much of each unit is reached by the end of the phase (cumulative)';
COMMENT ON COLUMN conveyor.push_phase.bake IS 'how long the phase bakes after its updates';
COMMENT ON COLUMN conveyor.push_phase.fault_tolerance IS 'percent of the phase''s targets that may fail while it still passes';
COMMENT ON COLUMN conveyor.push_phase.state IS 'pending, running; succeeded, skipped, failed';
COMMENT ON COLUMN conveyor.push_phase.updated IS 'targets confirmed running the version';
COMMENT ON COLUMN conveyor.push_phase.failed IS 'targets whose update failed';
COMMENT ON COLUMN conveyor.push_phase.bake_skipped IS 'the bake was skipped (push_skip_bake)';
COMMENT ON COLUMN conveyor.push_phase.started_at IS 'when the phase was planned';
COMMENT ON COLUMN conveyor.push_phase.updates_done_at IS 'when every target was resolved and the bake began';
COMMENT ON COLUMN conveyor.push_phase.bake_until IS 'when the bake ends';
COMMENT ON COLUMN conveyor.push_phase.ended_at IS 'when the phase ended';

COMMENT ON COLUMN conveyor.push_subunit.push_id IS 'the push';
COMMENT ON COLUMN conveyor.push_subunit.unit IS 'the unit (deployable group)';
COMMENT ON COLUMN conveyor.push_subunit.subunit IS 'the subunit (instance) inside it';
COMMENT ON COLUMN conveyor.push_subunit.phase IS 'the phase that targeted it (position, from 0)';
COMMENT ON COLUMN conveyor.push_subunit.from_version IS 'the version it ran before (what a revert returns it to)';
COMMENT ON COLUMN conveyor.push_subunit.to_version IS 'the version sent to it';
COMMENT ON COLUMN conveyor.push_subunit.state IS 'pending, sent; done, failed, gone, skipped';
COMMENT ON COLUMN conveyor.push_subunit.attempts IS 'updates sent to it';
COMMENT ON COLUMN conveyor.push_subunit.sent_at IS 'when its update was last sent';
COMMENT ON COLUMN conveyor.push_subunit.done_at IS 'when it was confirmed running the version';
COMMENT ON COLUMN conveyor.push_subunit.error IS 'why its update failed';

COMMENT ON COLUMN conveyor.push_event.id IS 'order of events (increasing)';
COMMENT ON COLUMN conveyor.push_event.push_id IS 'the push';
COMMENT ON COLUMN conveyor.push_event.at IS 'when it happened (clock_timestamp)';
COMMENT ON COLUMN conveyor.push_event.kind IS 'what happened: push_started, phase_started, update_batch, ... (docs/push-engine.md)';
COMMENT ON COLUMN conveyor.push_event.phase IS 'the phase it happened in (position, from 0)';
COMMENT ON COLUMN conveyor.push_event.reason IS 'why: a person''s reason for a manual action, or the engine''s';

COMMENT ON COLUMN conveyor.sim_fleet.name IS 'simulator: the fleet''s name, as push_type_config names it';
COMMENT ON COLUMN conveyor.sim_fleet.created_at IS 'simulator: when the fleet was created';
COMMENT ON COLUMN conveyor.sim_unit.fleet IS 'simulator: the fleet';
COMMENT ON COLUMN conveyor.sim_unit.unit IS 'simulator: the unit''s name';
COMMENT ON COLUMN conveyor.sim_subunit.fleet IS 'simulator: the fleet';
COMMENT ON COLUMN conveyor.sim_subunit.unit IS 'simulator: the unit';
COMMENT ON COLUMN conveyor.sim_subunit.subunit IS 'simulator: the subunit''s name';
COMMENT ON COLUMN conveyor.sim_version.fleet IS 'simulator: the fleet';
COMMENT ON COLUMN conveyor.sim_version.version IS 'simulator: the version';
COMMENT ON COLUMN conveyor.sim_subunit_now.fleet IS 'simulator: the fleet';
COMMENT ON COLUMN conveyor.sim_subunit_now.unit IS 'simulator: the unit';
COMMENT ON COLUMN conveyor.sim_subunit_now.subunit IS 'simulator: the subunit';
COMMENT ON COLUMN conveyor.sim_subunit_now.version IS 'simulator: the version it runs now (a finished update counts)';
COMMENT ON COLUMN conveyor.sim_subunit_now.status IS 'simulator: ok, updating or unreachable';
COMMENT ON COLUMN conveyor.sim_subunit_now.faulty IS 'simulator: the version it runs is marked faulty';
COMMENT ON COLUMN conveyor.sim_subunit_now.target_version IS 'simulator: version of the update in flight';
COMMENT ON COLUMN conveyor.sim_subunit_now.update_done_at IS 'simulator: when that update finishes';
COMMENT ON COLUMN conveyor.sim_subunit_now.update_key IS 'simulator: idempotency key of the last accepted update';
COMMENT ON COLUMN conveyor.sim_subunit_now.unreachable IS 'simulator: a simulated outage';

-- As everywhere (190_access.sql): no function is PUBLIC's unless it must be.
-- The trigger function needs no grant to fire; _phases_text is called by the
-- plans view as its reader (security_invoker).
REVOKE EXECUTE ON FUNCTION conveyor._push_event_notify() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION conveyor._phases_text(text[], text[], interval[], numeric[]) TO PUBLIC;
