-- conveyor 0.3: history for BI tools, and the retention policy that keeps it
-- from growing without bound. Each view has a time column and one row per
-- fact (a push, a phase, a week, a change), so a BI tool can chart it with no
-- joins. Durations come as intervals and as seconds (numbers chart better).
-- See docs/reporting.md for the definitions and example queries.

-- ------------------------------------------------------------ push and phase history

CREATE VIEW conveyor.push_history WITH (security_invoker = true) AS
SELECT p.id AS push_id, p.service, p.version, p.kind, p.reverts, p.plan,
       p.created_at AS started_at, p.ended_at,
       p.state, p.outcome, p.outcome_reason,
       coalesce(p.ended_at, now()) - p.created_at AS duration,
       extract(epoch FROM coalesce(p.ended_at, now()) - p.created_at)::float8 AS duration_s,
       p.phases,
       (SELECT count(*) FROM conveyor.push_phase f
         WHERE f.push_id = p.id AND f.state IN ('succeeded', 'skipped'))::int AS phases_passed,
       sub.updated AS subunits_updated, sub.failed AS subunits_failed,
       p.started_by, p.start_reason
  FROM conveyor.push p
  CROSS JOIN LATERAL (
        SELECT count(*) FILTER (WHERE s.state = 'done')::int AS updated,
               count(*) FILTER (WHERE s.state IN ('failed', 'gone'))::int AS failed
          FROM conveyor.push_subunit s WHERE s.push_id = p.id) sub;
COMMENT ON VIEW conveyor.push_history IS
    'BI: one row per push (time column started_at; ended_at NULL while active), its outcome and duration';
COMMENT ON COLUMN conveyor.push_history.push_id IS 'the push';
COMMENT ON COLUMN conveyor.push_history.service IS 'the service';
COMMENT ON COLUMN conveyor.push_history.version IS 'the version pushed (a revert: returned to)';
COMMENT ON COLUMN conveyor.push_history.kind IS 'push or revert';
COMMENT ON COLUMN conveyor.push_history.reverts IS 'for a revert, the push it reverts';
COMMENT ON COLUMN conveyor.push_history.plan IS 'the push plan';
COMMENT ON COLUMN conveyor.push_history.started_at IS 'when the push started (the time column)';
COMMENT ON COLUMN conveyor.push_history.ended_at IS 'when it ended; NULL while running or paused';
COMMENT ON COLUMN conveyor.push_history.state IS 'running, paused; succeeded, failed, cancelled, reverted';
COMMENT ON COLUMN conveyor.push_history.outcome IS 'success, good failure or bad failure; NULL while active';
COMMENT ON COLUMN conveyor.push_history.outcome_reason IS 'why it ended so';
COMMENT ON COLUMN conveyor.push_history.duration IS 'start to end (to now while active)';
COMMENT ON COLUMN conveyor.push_history.duration_s IS 'duration in seconds';
COMMENT ON COLUMN conveyor.push_history.phases IS 'phases, the completion phase included';
COMMENT ON COLUMN conveyor.push_history.phases_passed IS 'phases that succeeded or were skipped';
COMMENT ON COLUMN conveyor.push_history.subunits_updated IS 'subunits it updated';
COMMENT ON COLUMN conveyor.push_history.subunits_failed IS 'subunits whose update failed or that disappeared';
COMMENT ON COLUMN conveyor.push_history.started_by IS 'the role that started it';
COMMENT ON COLUMN conveyor.push_history.start_reason IS 'why it was started';

CREATE VIEW conveyor.phase_history WITH (security_invoker = true) AS
SELECT f.push_id, p.service, p.version, p.kind,
       f.position + 1 AS phase, p.phases, f.scope, f.amount, f.implicit,
       f.started_at, f.updates_done_at, f.ended_at, f.state,
       f.updates_done_at - f.started_at AS update_time,
       extract(epoch FROM f.updates_done_at - f.started_at)::float8 AS update_s,
       coalesce(f.ended_at, CASE WHEN f.state = 'running' THEN now() END) - f.updates_done_at AS bake_time,
       extract(epoch FROM coalesce(f.ended_at, CASE WHEN f.state = 'running' THEN now() END) - f.updates_done_at)::float8
           AS bake_s,
       coalesce(f.ended_at, CASE WHEN f.state = 'running' THEN now() END) - f.started_at AS duration,
       extract(epoch FROM coalesce(f.ended_at, CASE WHEN f.state = 'running' THEN now() END) - f.started_at)::float8
           AS duration_s,
       f.bake AS planned_bake, f.bake_skipped, f.fault_tolerance,
       f.targets, f.already, f.updated, f.failed, f.gone,
       p.state AS push_state, p.outcome AS push_outcome
  FROM conveyor.push_phase f
  JOIN conveyor.push p ON p.id = f.push_id
 WHERE f.started_at IS NOT NULL;
COMMENT ON VIEW conveyor.phase_history IS
    'BI: one row per phase that started (time column started_at): update time, bake time, outcome';
COMMENT ON COLUMN conveyor.phase_history.push_id IS 'the push';
COMMENT ON COLUMN conveyor.phase_history.service IS 'the service';
COMMENT ON COLUMN conveyor.phase_history.version IS 'the version pushed';
COMMENT ON COLUMN conveyor.phase_history.kind IS 'push or revert';
COMMENT ON COLUMN conveyor.phase_history.phase IS 'the phase, counted from 1';
COMMENT ON COLUMN conveyor.phase_history.phases IS 'phases of the push';
COMMENT ON COLUMN conveyor.phase_history.scope IS 'units the phase covers';
COMMENT ON COLUMN conveyor.phase_history.amount IS 'how much of each unit, cumulative';
COMMENT ON COLUMN conveyor.phase_history.implicit IS 'the completion phase conveyor adds';
COMMENT ON COLUMN conveyor.phase_history.started_at IS 'when the phase was planned (the time column)';
COMMENT ON COLUMN conveyor.phase_history.updates_done_at IS 'when its updates were all resolved';
COMMENT ON COLUMN conveyor.phase_history.ended_at IS 'when it ended';
COMMENT ON COLUMN conveyor.phase_history.state IS 'running; succeeded, skipped, failed';
COMMENT ON COLUMN conveyor.phase_history.update_time IS 'planned to updates resolved';
COMMENT ON COLUMN conveyor.phase_history.update_s IS 'update_time in seconds';
COMMENT ON COLUMN conveyor.phase_history.bake_time IS 'updates resolved to the phase''s end (to now while baking)';
COMMENT ON COLUMN conveyor.phase_history.bake_s IS 'bake_time in seconds';
COMMENT ON COLUMN conveyor.phase_history.duration IS 'planned to ended (to now while running)';
COMMENT ON COLUMN conveyor.phase_history.duration_s IS 'duration in seconds';
COMMENT ON COLUMN conveyor.phase_history.planned_bake IS 'the bake the plan asked for';
COMMENT ON COLUMN conveyor.phase_history.bake_skipped IS 'someone skipped the bake';
COMMENT ON COLUMN conveyor.phase_history.fault_tolerance IS 'percent of targets allowed to fail';
COMMENT ON COLUMN conveyor.phase_history.targets IS 'subunits it set out to update';
COMMENT ON COLUMN conveyor.phase_history.already IS 'subunits already running the version when it was planned';
COMMENT ON COLUMN conveyor.phase_history.updated IS 'targets updated';
COMMENT ON COLUMN conveyor.phase_history.failed IS 'targets whose update failed';
COMMENT ON COLUMN conveyor.phase_history.gone IS 'targets that disappeared';
COMMENT ON COLUMN conveyor.phase_history.push_state IS 'the push''s state';
COMMENT ON COLUMN conveyor.phase_history.push_outcome IS 'the push''s outcome';

-- ------------------------------------------------------------ SLO

-- The paper's SLO: 99.9% of pushes end in success or a good failure (conveyor
-- doing its job), i.e. at most 0.1% end in a bad failure.
CREATE VIEW conveyor.slo_weekly WITH (security_invoker = true) AS
SELECT w.week, w.pushes, w.success, w.good_failure, w.bad_failure,
       round((w.success + w.good_failure)::numeric / w.pushes, 5) AS good_share,
       0.999 AS target,
       (w.success + w.good_failure)::numeric / w.pushes >= 0.999 AS met
  FROM (SELECT date_trunc('week', p.ended_at)::date AS week, count(*) AS pushes,
               count(*) FILTER (WHERE p.outcome = 'success') AS success,
               count(*) FILTER (WHERE p.outcome = 'good failure') AS good_failure,
               count(*) FILTER (WHERE p.outcome = 'bad failure') AS bad_failure
          FROM conveyor.push p
         WHERE p.ended_at IS NOT NULL
         GROUP BY 1) w;
COMMENT ON VIEW conveyor.slo_weekly IS
    'BI: per week (by end time), pushes ending in success, good failure, bad failure, against the 99.9% target';
COMMENT ON COLUMN conveyor.slo_weekly.week IS 'Monday of the week the pushes ended in (the time column)';
COMMENT ON COLUMN conveyor.slo_weekly.pushes IS 'pushes (and reverts) that ended that week';
COMMENT ON COLUMN conveyor.slo_weekly.success IS 'of which succeeded';
COMMENT ON COLUMN conveyor.slo_weekly.good_failure IS 'ended in a good failure (unhealthy, over tolerance, cancelled, reverted)';
COMMENT ON COLUMN conveyor.slo_weekly.bad_failure IS 'ended in a bad failure (push type down, internal error)';
COMMENT ON COLUMN conveyor.slo_weekly.good_share IS '(success + good_failure) / pushes';
COMMENT ON COLUMN conveyor.slo_weekly.target IS 'the SLO: 0.999';
COMMENT ON COLUMN conveyor.slo_weekly.met IS 'good_share >= target';

-- ------------------------------------------------------------ latency split

-- Per ended push, its wall-clock time split three ways, from the timing the
-- engine records on transition events (due_at, started_at, push_type_ms; see
-- conveyor._timing and docs/push-engine.md). The events of one sub-step share
-- due_at and started_at; their latest `at` ends the sub-step, and push_type_ms
-- grows through it, so its maximum is the sub-step's push-type time.
--   push_type   time inside push-type verbs
--   conveyor    time conveyor added: waiting for a free worker (queue_wait)
--               plus its own processing (processing)
--   in_plan     the rest: the user's plan (bakes, of which baking), waiting
--               for updates to land at poll_interval, paused time
CREATE VIEW conveyor.push_latency WITH (security_invoker = true) AS
SELECT p.id AS push_id, p.service, p.version, p.kind, p.created_at AS started_at, p.ended_at, p.outcome,
       tot.total,
       tot.total - pt.push_type - cv.queue_wait - cv.processing AS in_plan,
       coalesce(bk.baking, '0') AS baking,
       coalesce(pz.paused, '0') AS paused,
       pt.push_type,
       cv.queue_wait + cv.processing AS conveyor,
       cv.queue_wait, cv.processing,
       extract(epoch FROM tot.total)::float8 AS total_s,
       extract(epoch FROM tot.total - pt.push_type - cv.queue_wait - cv.processing)::float8 AS in_plan_s,
       extract(epoch FROM pt.push_type)::float8 AS push_type_s,
       extract(epoch FROM cv.queue_wait + cv.processing)::float8 AS conveyor_s,
       round((extract(epoch FROM cv.queue_wait + cv.processing)
              / nullif(extract(epoch FROM tot.total), 0))::numeric, 6) AS conveyor_share,
       st.steps
  FROM conveyor.push p
  CROSS JOIN LATERAL (SELECT p.ended_at - p.created_at AS total) tot
  CROSS JOIN LATERAL (
        SELECT count(*) AS steps,
               coalesce(sum(s.started_at - s.due_at), '0') AS queue_wait,
               coalesce(sum(s.done_at - s.started_at), '0') AS done_minus_start,
               coalesce(sum(s.push_type_ms), 0) AS push_type_ms
          FROM (SELECT (e.detail->>'due_at')::timestamptz AS due_at,
                       (e.detail->>'started_at')::timestamptz AS started_at,
                       -- the end event is written just after ended_at: the push ends there
                       least(max(e.at), p.ended_at) AS done_at,
                       max((e.detail->>'push_type_ms')::float8) AS push_type_ms
                  FROM conveyor.push_event e
                 WHERE e.push_id = p.id AND e.detail ? 'due_at'
                 GROUP BY 1, 2) s) st
  CROSS JOIN LATERAL (SELECT make_interval(secs => st.push_type_ms / 1000) AS push_type) pt
  CROSS JOIN LATERAL (SELECT st.queue_wait, greatest(st.done_minus_start - pt.push_type, '0') AS processing) cv
  LEFT JOIN LATERAL (
        SELECT sum(f.ended_at - f.updates_done_at) AS baking FROM conveyor.push_phase f
         WHERE f.push_id = p.id AND f.updates_done_at IS NOT NULL AND f.ended_at IS NOT NULL) bk ON true
  LEFT JOIN LATERAL (
        SELECT sum(x.until - x.at) AS paused
          FROM (SELECT e.kind, e.at,
                       coalesce(lead(e.at) OVER (ORDER BY e.id), p.ended_at) AS until
                  FROM conveyor.push_event e
                 WHERE e.push_id = p.id
                   AND e.kind IN ('push_paused', 'push_resumed', 'push_succeeded', 'push_failed',
                                  'push_cancelled', 'push_reverted')) x
         WHERE x.kind = 'push_paused') pz ON true
 WHERE p.ended_at IS NOT NULL;
COMMENT ON VIEW conveyor.push_latency IS
    'BI: per ended push (time column started_at), its time split: in the user''s plan, in push-type calls, added by conveyor';
COMMENT ON COLUMN conveyor.push_latency.push_id IS 'the push';
COMMENT ON COLUMN conveyor.push_latency.service IS 'the service';
COMMENT ON COLUMN conveyor.push_latency.version IS 'the version';
COMMENT ON COLUMN conveyor.push_latency.kind IS 'push or revert';
COMMENT ON COLUMN conveyor.push_latency.started_at IS 'when it started (the time column)';
COMMENT ON COLUMN conveyor.push_latency.ended_at IS 'when it ended';
COMMENT ON COLUMN conveyor.push_latency.outcome IS 'success, good failure or bad failure';
COMMENT ON COLUMN conveyor.push_latency.total IS 'start to end';
COMMENT ON COLUMN conveyor.push_latency.in_plan IS
    'total - push_type - conveyor: bakes, waiting for updates to land (polled at poll_interval), paused time';
COMMENT ON COLUMN conveyor.push_latency.baking IS 'part of in_plan: phases baking (updates resolved to phase end)';
COMMENT ON COLUMN conveyor.push_latency.paused IS 'part of in_plan: paused, waiting for a person';
COMMENT ON COLUMN conveyor.push_latency.push_type IS 'in push-type verbs (get_units, send_update, check_health, needs_push)';
COMMENT ON COLUMN conveyor.push_latency.conveyor IS 'added by conveyor: queue_wait + processing';
COMMENT ON COLUMN conveyor.push_latency.queue_wait IS 'steps due but waiting for a free worker';
COMMENT ON COLUMN conveyor.push_latency.processing IS 'conveyor''s own work in steps (planning, bookkeeping), push-type time excluded';
COMMENT ON COLUMN conveyor.push_latency.total_s IS 'total in seconds';
COMMENT ON COLUMN conveyor.push_latency.in_plan_s IS 'in_plan in seconds';
COMMENT ON COLUMN conveyor.push_latency.push_type_s IS 'push_type in seconds';
COMMENT ON COLUMN conveyor.push_latency.conveyor_s IS 'conveyor in seconds';
COMMENT ON COLUMN conveyor.push_latency.conveyor_share IS 'conveyor / total';
COMMENT ON COLUMN conveyor.push_latency.steps IS 'engine sub-steps that recorded timing';

-- ------------------------------------------------------------ DORA

-- One row per change: an ended push of kind push, except a cancelled one
-- (nothing was learnt about the change) and a bad failure (the tooling
-- failed, not the change).
--   first_seen       the start of the service's first push of this version:
--                    the earliest moment conveyor knew the version (pipelines
--                    and builds will give an earlier one when they exist)
--   deployed         it succeeded: the version runs everywhere
--   lead_time        first_seen to deployed
--   failed           it ended failed (unhealthy, over tolerance) or reverted,
--                    or succeeded and was reverted later
--   failed_at        when the failure showed: its end, or the later revert's start
--   restored_at      the end of the service's next push that succeeded
--                    (typically the revert) after failed_at
CREATE VIEW conveyor.dora_changes WITH (security_invoker = true) AS
SELECT c.push_id, c.service, c.version, c.started_at, c.ended_at, c.state,
       c.first_seen, c.deployed,
       CASE WHEN c.deployed THEN c.ended_at - c.first_seen END AS lead_time,
       CASE WHEN c.deployed THEN extract(epoch FROM c.ended_at - c.first_seen)::float8 END AS lead_time_s,
       c.failed_at IS NOT NULL AS failed,
       c.failed_at,
       r.restored_at,
       r.restored_at - c.failed_at AS time_to_restore,
       extract(epoch FROM r.restored_at - c.failed_at)::float8 AS time_to_restore_s
  FROM (SELECT p.id AS push_id, p.service, p.version, p.created_at AS started_at, p.ended_at, p.state,
               (SELECT min(x.created_at) FROM conveyor.push x
                 WHERE x.service = p.service AND x.version = p.version AND x.kind = 'push') AS first_seen,
               p.state = 'succeeded' AS deployed,
               CASE WHEN p.state IN ('failed', 'reverted') THEN p.ended_at
                    ELSE (SELECT min(r.created_at) FROM conveyor.push r WHERE r.reverts = p.id) END AS failed_at
          FROM conveyor.push p
         WHERE p.kind = 'push' AND p.ended_at IS NOT NULL AND p.state <> 'cancelled'
           AND p.outcome IS DISTINCT FROM 'bad failure') c
  LEFT JOIN LATERAL (
        SELECT min(x.ended_at) AS restored_at FROM conveyor.push x
         WHERE x.service = c.service AND x.state = 'succeeded' AND x.ended_at > c.failed_at) r ON true;
COMMENT ON VIEW conveyor.dora_changes IS
    'BI: one row per change (time column ended_at): deployed, lead time, failed, time to restore (see docs/reporting.md)';
COMMENT ON COLUMN conveyor.dora_changes.push_id IS 'the push';
COMMENT ON COLUMN conveyor.dora_changes.service IS 'the service';
COMMENT ON COLUMN conveyor.dora_changes.version IS 'the version';
COMMENT ON COLUMN conveyor.dora_changes.started_at IS 'when the push started';
COMMENT ON COLUMN conveyor.dora_changes.ended_at IS 'when it ended (the time column)';
COMMENT ON COLUMN conveyor.dora_changes.state IS 'succeeded, failed or reverted';
COMMENT ON COLUMN conveyor.dora_changes.first_seen IS 'start of the service''s first push of this version';
COMMENT ON COLUMN conveyor.dora_changes.deployed IS 'the push succeeded: the version runs everywhere';
COMMENT ON COLUMN conveyor.dora_changes.lead_time IS 'first_seen to deployed';
COMMENT ON COLUMN conveyor.dora_changes.lead_time_s IS 'lead_time in seconds';
COMMENT ON COLUMN conveyor.dora_changes.failed IS 'the change failed: ended failed or reverted, or was reverted later';
COMMENT ON COLUMN conveyor.dora_changes.failed_at IS 'when the failure showed';
COMMENT ON COLUMN conveyor.dora_changes.restored_at IS 'end of the service''s next successful push after failed_at';
COMMENT ON COLUMN conveyor.dora_changes.time_to_restore IS 'failed_at to restored_at';
COMMENT ON COLUMN conveyor.dora_changes.time_to_restore_s IS 'time_to_restore in seconds';

CREATE VIEW conveyor.dora_weekly WITH (security_invoker = true) AS
SELECT date_trunc('week', c.ended_at)::date AS week, c.service,
       count(*) AS changes,
       count(*) FILTER (WHERE c.deployed) AS deployments,
       round(count(*) FILTER (WHERE c.deployed) / 7.0, 3) AS deployments_per_day,
       make_interval(secs => percentile_cont(0.5) WITHIN GROUP (ORDER BY c.lead_time_s)) AS lead_time_median,
       round(count(*) FILTER (WHERE c.failed)::numeric / count(*), 4) AS change_failure_rate,
       make_interval(secs => percentile_cont(0.5) WITHIN GROUP (ORDER BY c.time_to_restore_s)) AS time_to_restore_median,
       count(*) FILTER (WHERE c.failed AND c.restored_at IS NULL) AS not_restored
  FROM conveyor.dora_changes c
 GROUP BY 1, 2;
COMMENT ON VIEW conveyor.dora_weekly IS
    'BI: DORA metrics per service and week (time column week): deployment frequency, lead time, change failure rate, time to restore';
COMMENT ON COLUMN conveyor.dora_weekly.week IS 'Monday of the week the changes ended in (the time column)';
COMMENT ON COLUMN conveyor.dora_weekly.service IS 'the service';
COMMENT ON COLUMN conveyor.dora_weekly.changes IS 'changes that ended that week (see dora_changes)';
COMMENT ON COLUMN conveyor.dora_weekly.deployments IS 'of which deployed (succeeded)';
COMMENT ON COLUMN conveyor.dora_weekly.deployments_per_day IS 'deployment frequency: deployments / 7';
COMMENT ON COLUMN conveyor.dora_weekly.lead_time_median IS 'median lead time of the deployments';
COMMENT ON COLUMN conveyor.dora_weekly.change_failure_rate IS 'failed changes / changes';
COMMENT ON COLUMN conveyor.dora_weekly.time_to_restore_median IS 'median time to restore of the failed changes restored so far';
COMMENT ON COLUMN conveyor.dora_weekly.not_restored IS 'failed changes not restored yet';

GRANT SELECT ON conveyor.push_history, conveyor.phase_history, conveyor.slo_weekly, conveyor.push_latency,
                conveyor.dora_changes, conveyor.dora_weekly TO PUBLIC;

-- ------------------------------------------------------------ retention

-- The policy: at most one row. No row (the default) keeps all history.
CREATE TABLE conveyor.retention_policy (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    keep       interval NOT NULL CHECK (keep >= '1 day'),
    schedule   text NOT NULL,
    batch      int NOT NULL DEFAULT 10000 CHECK (batch BETWEEN 1 AND 1000000),
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by name NOT NULL DEFAULT session_user
);
COMMENT ON TABLE conveyor.retention_policy IS
    'How long ended pushes are kept (set with conveyor.retention_set); no row keeps everything';
COMMENT ON COLUMN conveyor.retention_policy.singleton IS 'always true: the policy has one row at most';
COMMENT ON COLUMN conveyor.retention_policy.keep IS 'ended pushes older than this (by ended_at) are deleted with their history';
COMMENT ON COLUMN conveyor.retention_policy.schedule IS 'when pg_cron runs conveyor.retention_run() (cron syntax, job conveyor-retention)';
COMMENT ON COLUMN conveyor.retention_policy.batch IS 'most pushes one run deletes (the rest go next run), to keep its transaction short';
COMMENT ON COLUMN conveyor.retention_policy.updated_at IS 'when the policy was set';
COMMENT ON COLUMN conveyor.retention_policy.updated_by IS 'the role that set it';
SELECT pg_catalog.pg_extension_config_dump('conveyor.retention_policy', '');

-- Push history is deleted on purpose or not at all: a DELETE of push events
-- (directly, or by deleting their push) is refused unless conveyor.retention_run
-- is the one deleting. TRUNCATE likewise.
CREATE FUNCTION conveyor._push_event_delete_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('conveyor_retention.running', true), '') <> 'on' THEN
        RAISE EXCEPTION 'push history is deleted only by the retention policy'
            USING ERRCODE = 'feature_not_supported',
                  DETAIL = format('%s on conveyor.push_event (directly, or by deleting a push) was refused.', TG_OP),
                  HINT = 'Delete old history with SELECT conveyor.retention_run(keep => ''90 days''), '
                         'or set a policy with conveyor.retention_set.';
    END IF;
    RETURN NULL;
END $$;
COMMENT ON FUNCTION conveyor._push_event_delete_guard() IS
    'internal: refuses deleting push events except through conveyor.retention_run';
CREATE TRIGGER push_event_delete_guard BEFORE DELETE OR TRUNCATE ON conveyor.push_event
    FOR EACH STATEMENT EXECUTE FUNCTION conveyor._push_event_delete_guard();

-- Raise 22023 unless keep is a sensible retention period.
CREATE FUNCTION conveyor._retention_keep_check(keep interval) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF keep IS NULL OR keep < '1 day' THEN
        RAISE EXCEPTION 'invalid retention period %', coalesce(keep::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Ended pushes are kept at least a day.',
                  HINT = 'For example keep => ''90 days''.';
    END IF;
END $$;
COMMENT ON FUNCTION conveyor._retention_keep_check(interval) IS 'internal: checks a retention period';

-- Delete ended pushes older than keep (by ended_at) with their phases,
-- subunits and events; returns how many pushes and events went. Never an
-- active push, and never a push whose revert is kept (the revert refers to it).
CREATE FUNCTION conveyor.retention_run(keep interval DEFAULT NULL, batch int DEFAULT NULL,
                                       OUT pushes bigint, OUT events bigint)
LANGUAGE plpgsql AS $$
DECLARE
    pol conveyor.retention_policy;
    v_keep interval;
    v_batch int;
    cutoff timestamptz;
    ids bigint[];
BEGIN
    SELECT * INTO pol FROM conveyor.retention_policy;
    v_keep := coalesce(keep, pol.keep);
    v_batch := coalesce(batch, pol.batch, 10000);
    pushes := 0; events := 0;
    IF v_keep IS NULL THEN
        RAISE NOTICE 'no retention policy: all push history is kept'
            USING HINT = 'Set one with conveyor.retention_set(keep => ''90 days''), or pass keep.';
        RETURN;
    END IF;
    PERFORM conveyor._retention_keep_check(v_keep);
    IF v_batch < 1 THEN
        RAISE EXCEPTION 'invalid retention batch %', v_batch
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'A batch is at least one push.';
    END IF;
    cutoff := now() - v_keep;
    WITH old AS (
        SELECT p.id, p.reverts, p.ended_at FROM conveyor.push p
         WHERE p.ended_at < cutoff
           -- a revert still kept refers to this push
           AND NOT EXISTS (SELECT 1 FROM conveyor.push r
                            WHERE r.reverts = p.id AND (r.ended_at IS NULL OR r.ended_at >= cutoff))),
    chosen AS (
        SELECT o.id FROM old o WHERE o.reverts IS NULL ORDER BY o.ended_at, o.id LIMIT v_batch)
    -- each chosen push goes with its reverts, which refer to it (and are old too)
    SELECT array_agg(x.id) INTO ids
      FROM (SELECT c.id FROM chosen c
            UNION SELECT o.id FROM old o JOIN chosen c ON o.reverts = c.id) x;
    IF ids IS NULL THEN
        RETURN;
    END IF;
    SELECT count(*) INTO events FROM conveyor.push_event e WHERE e.push_id = ANY (ids);
    -- the one sanctioned way past push_event_delete_guard, for this transaction only
    PERFORM set_config('conveyor_retention.running', 'on', true);
    DELETE FROM conveyor.push p WHERE p.id = ANY (ids);   -- phases, subunits and events cascade
    GET DIAGNOSTICS pushes = ROW_COUNT;
    PERFORM set_config('conveyor_retention.running', 'off', true);
END $$;
COMMENT ON FUNCTION conveyor.retention_run(interval, int) IS
    'Delete ended pushes older than keep (default: the policy''s) with their history; returns pushes and events deleted';

-- Set the policy and schedule it with pg_cron (job conveyor-retention), or
-- with keep NULL remove both and keep everything again.
CREATE FUNCTION conveyor.retention_set(keep interval, schedule text DEFAULT '17 3 * * *', batch int DEFAULT 10000)
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    IF keep IS NULL THEN
        DELETE FROM conveyor.retention_policy;
        IF EXISTS (SELECT 1 FROM cron.job j WHERE j.jobname = 'conveyor-retention') THEN
            PERFORM cron.unschedule('conveyor-retention');
        END IF;
        RETURN 'no retention: all push history is kept';
    END IF;
    PERFORM conveyor._retention_keep_check(keep);
    IF batch IS NULL OR batch NOT BETWEEN 1 AND 1000000 THEN
        RAISE EXCEPTION 'invalid retention batch %', coalesce(batch::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'A batch is 1 to 1000000 pushes.';
    END IF;
    INSERT INTO conveyor.retention_policy AS r (keep, schedule, batch) VALUES (keep, schedule, batch)
        ON CONFLICT (singleton) DO UPDATE
       SET keep = excluded.keep, schedule = excluded.schedule, batch = excluded.batch,
           updated_at = now(), updated_by = session_user;
    -- pg_cron checks the schedule's syntax and replaces a job of the same name
    PERFORM cron.schedule('conveyor-retention', schedule, 'SELECT conveyor.retention_run()');
    RETURN format('pushes ended more than %s ago are deleted at "%s" (pg_cron job conveyor-retention)', keep, schedule);
END $$;
COMMENT ON FUNCTION conveyor.retention_set(interval, text, int) IS
    'Keep ended pushes for keep, deleting older ones on a pg_cron schedule (job conveyor-retention); keep NULL keeps all';

-- Retention deletes any team's history, so it is the administrators': it runs
-- as the extension's owner (past row-level security, and scheduling the cron
-- job as the owner), with a fixed search_path. Nothing here is PUBLIC's.
ALTER FUNCTION conveyor.retention_run(interval, int) SECURITY DEFINER SET search_path = pg_catalog, conveyor, pg_temp;
ALTER FUNCTION conveyor.retention_set(interval, text, int) SECURITY DEFINER SET search_path = pg_catalog, conveyor, pg_temp;
REVOKE EXECUTE ON FUNCTION conveyor.retention_run(interval, int), conveyor.retention_set(interval, text, int),
                           conveyor._retention_keep_check(interval), conveyor._push_event_delete_guard() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION conveyor.retention_run(interval, int), conveyor.retention_set(interval, text, int),
                          conveyor._retention_keep_check(interval) TO conveyor_admin;

-- Administrators may read the retention policy they set with retention_set.
GRANT SELECT ON conveyor.retention_policy TO conveyor_admin;
