-- Installing: pg_cron is required, the database must be conveyor.database,
-- and a failed attempt leaves nothing behind.
SHOW conveyor.database;

-- without pg_cron: refused, nothing created
CREATE EXTENSION conveyor;
SELECT count(*) AS conveyor_schemas FROM pg_namespace WHERE nspname = 'conveyor';

-- in a database other than conveyor.database: refused before pg_cron is cascaded
CREATE DATABASE conveyor_elsewhere;
\c conveyor_elsewhere
CREATE EXTENSION conveyor CASCADE;
SELECT extname FROM pg_extension WHERE extname IN ('conveyor', 'pg_cron');
SELECT count(*) AS conveyor_schemas FROM pg_namespace WHERE nspname = 'conveyor';
\c conveyor_regress
DROP DATABASE conveyor_elsewhere;

-- the right way
CREATE EXTENSION conveyor CASCADE;
SELECT extname, extversion, extrelocatable, n.nspname AS schema
  FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE extname IN ('conveyor', 'pg_cron') ORDER BY extname;

-- pg_cron cannot be dropped from under conveyor
DROP EXTENSION pg_cron;

-- the settings, with their units and ranges
SELECT name, setting, unit, min_val, max_val, context
  FROM pg_settings WHERE name LIKE 'conveyor.%' ORDER BY name;
SET conveyor.workers = 3;
ALTER SYSTEM SET conveyor.workers = 1000;
SET conveyor.no_such_setting = 1;

-- the launcher and the workers are running (give the workers a moment to start)
DO $$
BEGIN
  FOR i IN 1..300 LOOP
    EXIT WHEN (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'conveyor worker') = 2;
    PERFORM pg_sleep(0.1);
  END LOOP;
END $$;
SELECT backend_type, datname, count(*)
  FROM pg_stat_activity WHERE backend_type LIKE 'conveyor%'
 GROUP BY 1, 2 ORDER BY 1;
