-- conveyor 0.2: plan_preview, the EXPLAIN of a push, and a readable list of pushes.

-- What each phase of a push would update, without starting anything.
CREATE FUNCTION conveyor.plan_preview(service text, version text, plan text DEFAULT NULL)
RETURNS TABLE (phase int, scope text, amount text, bake interval, fault_tolerance numeric,
               unit text, updates int, already int, subunits text[])
LANGUAGE plpgsql AS $$
DECLARE
    s conveyor.service;
    t conveyor.push_type;
    u record;
    v_plan text;
BEGIN
    SELECT * INTO s FROM conveyor.service sv WHERE sv.name = plan_preview.service;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'service "%" does not exist', service
            USING ERRCODE = 'undefined_object', HINT = 'Create it with conveyor.service_create.';
    END IF;
    v_plan := coalesce(plan, s.plan);
    PERFORM conveyor._push_plan_check(v_plan);
    SELECT * INTO t FROM conveyor.push_type WHERE name = s.push_type;
    u := conveyor._call_get_units(t.get_units, s.name, s.push_type_config);
    RETURN QUERY
    WITH phases AS (
        SELECT ph.position, ph.scope, ph.amount, ph.bake, ph.fault_tolerance
          FROM conveyor.push_plan_phase ph WHERE ph.plan = v_plan
        UNION ALL
        SELECT count(*)::int, '*', '100%', '0'::interval, 0::numeric
          FROM conveyor.push_plan_phase ph WHERE ph.plan = v_plan),
    targets AS (
        SELECT x.phase, x.unit, count(*)::int AS n, array_agg(x.subunit ORDER BY x.subunit) AS subs
          FROM conveyor._plan_targets(u.units, u.labels, u.subunits, u.versions,
                   (SELECT array_agg(f.scope ORDER BY f.position) FROM phases f),
                   (SELECT array_agg(f.amount ORDER BY f.position) FROM phases f),
                   0, version, 0) x
         GROUP BY x.phase, x.unit),
    at_version AS (
        SELECT x.unit, count(*)::int AS n
          FROM unnest(u.units, u.subunits, u.versions) x(unit, subunit, v)
         WHERE x.subunit IS NOT NULL AND x.v = version GROUP BY x.unit)
    SELECT f.position + 1, f.scope, f.amount, f.bake, f.fault_tolerance, tg.unit,
           coalesce(tg.n, 0), coalesce(av.n, 0), coalesce(tg.subs, '{}')
      FROM phases f
      LEFT JOIN targets tg ON tg.phase = f.position
      LEFT JOIN at_version av ON av.unit = tg.unit
     ORDER BY f.position, tg.unit;
END $$;
COMMENT ON FUNCTION conveyor.plan_preview(text, text, text) IS
    'The EXPLAIN of a push: per phase and unit, how many subunits it would update (which ones depends on the push''s seed)';

CREATE VIEW conveyor.pushes AS
SELECT p.id, p.service, p.version, p.kind, p.reverts, p.state,
       format('%s/%s', p.phase + 1, p.phases) AS phase,
       p.step, p.outcome, p.outcome_reason, p.started_by, p.start_reason,
       p.created_at, p.ended_at, coalesce(p.ended_at, now()) - p.created_at AS duration
  FROM conveyor.push p;
COMMENT ON VIEW conveyor.pushes IS 'Pushes, newest last, with phase k/N and duration';
