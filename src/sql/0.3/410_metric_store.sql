-- conveyor 0.3: the built-in metric store (docs/healthchecks.md, "Metric store").
--
-- Samples per service, metric, unit, subunit and version, in a table
-- partitioned by day (UTC), written with INSERT or COPY. A default partition
-- takes rows no daily partition covers yet, so a write never fails for want
-- of a partition; conveyor.metric_maintain (pg_cron, job conveyor-metrics)
-- creates the partitions of the coming days, moves rows out of the default
-- partition into daily ones, and drops the days older than the retention.
-- Dropping a day is instant and leaves no dead rows, which is why samples
-- are partitioned and pushes (deleted a few at a time) are not.
--
-- Who writes: members of the service's owner role, and members of
-- conveyor_metrics (collectors writing for every service). The check runs
-- once per statement on its distinct services (a statement trigger with a
-- transition table), so COPY of a million rows pays for it once; row-level
-- security would do it per row and refuses COPY FROM altogether.

DO $roles$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'conveyor_metrics') THEN
        CREATE ROLE conveyor_metrics NOLOGIN;
    END IF;
    IF NOT pg_catalog.pg_has_role('conveyor_admin', 'conveyor_metrics', 'MEMBER') THEN
        GRANT conveyor_metrics TO conveyor_admin;
    END IF;
END
$roles$;

CREATE TABLE conveyor.metric_sample (
    service text NOT NULL,
    metric  text NOT NULL,
    unit    text,
    subunit text,
    version text NOT NULL,
    at      timestamptz NOT NULL,
    value   float8 NOT NULL
            -- a NaN would poison avg and sort last in a percentile: refuse it at the door
            CONSTRAINT metric_sample_value_finite CHECK (value <> 'NaN' AND value <> 'Infinity' AND value <> '-Infinity')
) PARTITION BY RANGE (at);
COMMENT ON TABLE conveyor.metric_sample IS
    'Metric samples for healthchecks, partitioned by day (UTC); write with INSERT or COPY (owners and conveyor_metrics)';
COMMENT ON COLUMN conveyor.metric_sample.service IS 'the service the sample is about';
COMMENT ON COLUMN conveyor.metric_sample.metric IS 'the metric''s name, as healthchecks name it';
COMMENT ON COLUMN conveyor.metric_sample.unit IS 'the unit that reported it (optional)';
COMMENT ON COLUMN conveyor.metric_sample.subunit IS 'the subunit that reported it; rate is computed per (unit, subunit) series';
COMMENT ON COLUMN conveyor.metric_sample.version IS 'the version the subunit ran when the sample was taken';
COMMENT ON COLUMN conveyor.metric_sample.at IS 'when the sample was taken';
COMMENT ON COLUMN conveyor.metric_sample.value IS 'the value (finite)';
-- the evaluations read one service's metrics over a recent window
CREATE INDEX metric_sample_lookup ON conveyor.metric_sample (service, metric, at);

CREATE TABLE conveyor.metric_sample_default PARTITION OF conveyor.metric_sample DEFAULT;
COMMENT ON TABLE conveyor.metric_sample_default IS
    'internal: samples no daily partition covers yet; conveyor.metric_maintain moves them into daily partitions';

-- The store's policy: one row, always there.
CREATE TABLE conveyor.metric_retention (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    keep       interval NOT NULL DEFAULT '14 days' CHECK (keep >= '1 day'),
    ahead      int NOT NULL DEFAULT 3 CHECK (ahead BETWEEN 1 AND 60),
    schedule   text NOT NULL DEFAULT '7 * * * *',
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by name NOT NULL DEFAULT session_user
);
COMMENT ON TABLE conveyor.metric_retention IS
    'How long metric samples are kept and how many daily partitions are made ahead (conveyor.metric_retention_set)';
COMMENT ON COLUMN conveyor.metric_retention.singleton IS 'always true: the policy is one row';
COMMENT ON COLUMN conveyor.metric_retention.keep IS 'days whose samples are all older than this are dropped';
COMMENT ON COLUMN conveyor.metric_retention.ahead IS 'daily partitions made ahead of today';
COMMENT ON COLUMN conveyor.metric_retention.schedule IS 'when pg_cron runs conveyor.metric_maintain() (job conveyor-metrics)';
COMMENT ON COLUMN conveyor.metric_retention.updated_at IS 'when the policy was set';
COMMENT ON COLUMN conveyor.metric_retention.updated_by IS 'the role that set it';
INSERT INTO conveyor.metric_retention DEFAULT VALUES;
SELECT pg_catalog.pg_extension_config_dump('conveyor.metric_retention', '');

-- ------------------------------------------------------------ who writes

-- Refuse a write unless the acting role may write samples of every service
-- in it: 42501 naming the service, or 23503 for a service that does not exist.
CREATE FUNCTION conveyor._metric_sample_authorize() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, conveyor, pg_temp AS $$
DECLARE
    bad record;
BEGIN
    IF pg_catalog.pg_has_role(conveyor._acting_role(), 'conveyor_metrics', 'MEMBER') THEN
        SELECT n.service, NULL::regrole AS owner INTO bad
          FROM (SELECT DISTINCT x.service FROM new_samples x) n
         WHERE NOT EXISTS (SELECT 1 FROM conveyor.service s WHERE s.name = n.service)
         LIMIT 1;
    ELSE
        SELECT n.service, s.owner INTO bad
          FROM (SELECT DISTINCT x.service FROM new_samples x) n
          LEFT JOIN conveyor.service s ON s.name = n.service
         WHERE s.name IS NULL OR NOT pg_catalog.pg_has_role(conveyor._acting_role(), s.owner, 'MEMBER')
         LIMIT 1;
    END IF;
    IF bad.service IS NULL AND FOUND THEN
        RAISE EXCEPTION 'metric samples need a service' USING ERRCODE = 'not_null_violation';
    ELSIF FOUND AND bad.owner IS NULL THEN
        RAISE EXCEPTION 'service "%" does not exist', bad.service
            USING ERRCODE = 'foreign_key_violation',
                  DETAIL = 'Metric samples are written for existing services; the statement wrote nothing.',
                  HINT = 'conveyor.services lists services.';
    ELSIF FOUND THEN
        RAISE EXCEPTION 'permission denied to write metric samples of service "%"', bad.service
            USING ERRCODE = 'insufficient_privilege',
                  DETAIL = format('The service "%s" is owned by role %s; role %s is not a member of %s or conveyor_metrics. '
                                  'The statement wrote nothing.', bad.service, bad.owner, conveyor._acting_role(), bad.owner),
                  HINT = format('Act as a member of %s, or have a collector role granted conveyor_metrics.', bad.owner);
    END IF;
    RETURN NULL;
END $$;
COMMENT ON FUNCTION conveyor._metric_sample_authorize() IS
    'internal: refuses a write of metric samples for services the acting role neither owns nor collects (once per statement)';
CREATE TRIGGER metric_sample_authorize AFTER INSERT ON conveyor.metric_sample
    REFERENCING NEW TABLE AS new_samples
    FOR EACH STATEMENT EXECUTE FUNCTION conveyor._metric_sample_authorize();

-- Read through conveyor.metric_samples: a team sees its own services'
-- samples, readers all (the table itself has no row-level security, which
-- would refuse COPY FROM, so it is not readable directly).
CREATE VIEW conveyor.metric_samples WITH (security_barrier = true) AS
SELECT m.service, m.metric, m.unit, m.subunit, m.version, m.at, m.value
  FROM conveyor.metric_sample m
 WHERE (SELECT conveyor._reads_all())
    OR m.service IN (SELECT s.name FROM conveyor.service s WHERE pg_catalog.pg_has_role(current_user, s.owner, 'MEMBER'));
COMMENT ON VIEW conveyor.metric_samples IS
    'Metric samples of the services you own (readers: all); write into conveyor.metric_sample';
COMMENT ON COLUMN conveyor.metric_samples.service IS 'the service';
COMMENT ON COLUMN conveyor.metric_samples.metric IS 'the metric';
COMMENT ON COLUMN conveyor.metric_samples.unit IS 'the unit that reported it';
COMMENT ON COLUMN conveyor.metric_samples.subunit IS 'the subunit that reported it';
COMMENT ON COLUMN conveyor.metric_samples.version IS 'the version it ran';
COMMENT ON COLUMN conveyor.metric_samples.at IS 'when the sample was taken';
COMMENT ON COLUMN conveyor.metric_samples.value IS 'the value';

-- ------------------------------------------------------------ partitions

-- The daily partition holding a time: its name and bounds (UTC days).
CREATE FUNCTION conveyor._metric_day(t timestamptz, OUT name text, OUT lo timestamptz, OUT hi timestamptz)
LANGUAGE sql IMMUTABLE AS $$
    SELECT 'metric_sample_' || to_char(t AT TIME ZONE 'UTC', 'YYYYMMDD'),
           date_trunc('day', t AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
           (date_trunc('day', t AT TIME ZONE 'UTC') + interval '1 day') AT TIME ZONE 'UTC'
$$;
COMMENT ON FUNCTION conveyor._metric_day(timestamptz) IS 'internal: the daily metric partition of a time: name and bounds';

-- Make the daily partition of a time if it is missing, first moving the
-- default partition's rows of that day into it. Returns true if it made one.
CREATE FUNCTION conveyor._metric_partition_ensure(t timestamptz) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    d record;
BEGIN
    d := conveyor._metric_day(t);
    IF to_regclass('conveyor.' || d.name) IS NOT NULL THEN
        RETURN false;
    END IF;
    -- a partition cannot be created over rows the default partition holds:
    -- build it beside, move them, then attach (which checks the default)
    EXECUTE format('CREATE TABLE conveyor.%I (LIKE conveyor.metric_sample INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', d.name);
    EXECUTE format('WITH moved AS (DELETE FROM conveyor.metric_sample_default WHERE at >= %L AND at < %L RETURNING *) '
                   'INSERT INTO conveyor.%I SELECT * FROM moved', d.lo, d.hi, d.name);
    EXECUTE format('ALTER TABLE conveyor.metric_sample ATTACH PARTITION conveyor.%I FOR VALUES FROM (%L) TO (%L)',
                   d.name, d.lo, d.hi);
    EXECUTE format('COMMENT ON TABLE conveyor.%I IS %L', d.name,
                   format('internal: metric samples of %s (UTC), a partition of conveyor.metric_sample', d.lo::date));
    RETURN true;
END $$;
COMMENT ON FUNCTION conveyor._metric_partition_ensure(timestamptz) IS
    'internal: makes the daily metric partition of a time, moving the default partition''s rows of that day into it';

-- Keep the store: daily partitions for today and the days ahead, the
-- default partition's rows moved into daily ones (older than the retention:
-- deleted), and the days older than the retention dropped. Returns what it did.
CREATE FUNCTION conveyor.metric_maintain(OUT created int, OUT dropped int, OUT moved_days int)
LANGUAGE plpgsql AS $$
DECLARE
    pol conveyor.metric_retention;
    cutoff timestamptz;
    t timestamptz;
    p record;
BEGIN
    SELECT * INTO pol FROM conveyor.metric_retention;
    cutoff := now() - pol.keep;
    created := 0; dropped := 0; moved_days := 0;
    -- no two runs at once (pg_cron and a person): they would race to create
    PERFORM pg_advisory_xact_lock(hashtext('conveyor.metric_maintain'));
    DELETE FROM conveyor.metric_sample_default WHERE at < (conveyor._metric_day(cutoff)).hi;
    FOR t IN SELECT DISTINCT (conveyor._metric_day(x.at)).lo FROM conveyor.metric_sample_default x LOOP
        IF conveyor._metric_partition_ensure(t) THEN
            moved_days := moved_days + 1;
        END IF;
    END LOOP;
    FOR i IN 0..pol.ahead LOOP
        IF conveyor._metric_partition_ensure(now() + make_interval(days => i)) THEN
            created := created + 1;
        END IF;
    END LOOP;
    -- whole days older than the retention
    FOR p IN SELECT c.relname FROM pg_catalog.pg_inherits i
               JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = 'conveyor.metric_sample'::regclass
                AND c.relname ~ '^metric_sample_[0-9]{8}$'
                AND (to_date(substr(c.relname, 15), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC' <= cutoff LOOP
        EXECUTE format('DROP TABLE conveyor.%I', p.relname);
        dropped := dropped + 1;
    END LOOP;
END $$;
COMMENT ON FUNCTION conveyor.metric_maintain() IS
    'Keep the metric store: daily partitions ahead, default partition emptied into daily ones, days past retention dropped';

-- Set the store's retention and pg_cron schedule (job conveyor-metrics).
CREATE FUNCTION conveyor.metric_retention_set(keep interval, ahead int DEFAULT 3, schedule text DEFAULT '7 * * * *')
RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    IF keep IS NULL OR keep < '1 day' OR keep > '10 years' THEN
        RAISE EXCEPTION 'invalid metric retention %', coalesce(keep::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = 'Metric samples are kept from 1 day to 10 years.',
                  HINT = 'For example keep => ''14 days''.';
    END IF;
    IF ahead IS NULL OR ahead NOT BETWEEN 1 AND 60 THEN
        RAISE EXCEPTION 'invalid number of days ahead %', coalesce(ahead::text, 'NULL')
            USING ERRCODE = 'invalid_parameter_value', DETAIL = 'Daily partitions are made 1 to 60 days ahead.';
    END IF;
    IF schedule IS NULL THEN
        RAISE EXCEPTION 'metric maintenance needs a schedule' USING ERRCODE = 'invalid_parameter_value',
            HINT = 'A cron schedule such as ''7 * * * *'' (hourly).';
    END IF;
    UPDATE conveyor.metric_retention r
       SET keep = metric_retention_set.keep, ahead = metric_retention_set.ahead,
           schedule = metric_retention_set.schedule, updated_at = now(), updated_by = session_user;
    -- pg_cron checks the schedule's syntax and replaces a job of the same name
    PERFORM cron.schedule('conveyor-metrics', schedule, 'SELECT conveyor.metric_maintain()');
    PERFORM conveyor.metric_maintain();
    RETURN format('metric samples are kept %s, partitions made %s days ahead, at "%s" (pg_cron job conveyor-metrics)',
                  keep, ahead, schedule);
END $$;
COMMENT ON FUNCTION conveyor.metric_retention_set(interval, int, text) IS
    'Set how long metric samples are kept and when pg_cron maintains the store (job conveyor-metrics)';

-- ------------------------------------------------------------ access

-- Writes go through the parent, which checks them per statement; the
-- partitions grant nothing to anyone (made by the extension's owner).
GRANT INSERT ON conveyor.metric_sample TO PUBLIC;
GRANT SELECT ON conveyor.metric_samples TO PUBLIC;
-- administrators read everything, raw samples included
GRANT SELECT ON conveyor.metric_retention, conveyor.metric_sample TO conveyor_admin;
-- The maintenance makes and drops tables in schema conveyor: it runs as the
-- extension's owner, for administrators and the pg_cron job.
ALTER FUNCTION conveyor.metric_maintain() SECURITY DEFINER SET search_path = pg_catalog, conveyor, pg_temp;
ALTER FUNCTION conveyor.metric_retention_set(interval, int, text) SECURITY DEFINER SET search_path = pg_catalog, conveyor, pg_temp;
REVOKE EXECUTE ON FUNCTION conveyor._metric_sample_authorize(), conveyor._metric_day(timestamptz),
    conveyor._metric_partition_ensure(timestamptz), conveyor.metric_maintain(),
    conveyor.metric_retention_set(interval, int, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION conveyor.metric_maintain(), conveyor.metric_retention_set(interval, int, text) TO conveyor_admin;
-- The store maintains itself from the start: pg_cron runs the maintenance
-- hourly, and until its first run the default partition takes every row.
-- (Not run here: tables made inside CREATE EXTENSION would become members of
-- the extension, which the maintenance could then not drop.) The partitions
-- it makes belong to the extension's owner, so pg_dump keeps their samples.
SELECT cron.schedule('conveyor-metrics', '7 * * * *', 'SELECT conveyor.metric_maintain()');
