-- push_event.push_id and push_subunit.push_id reference conveyor.push through
-- statement-level triggers (src/sql/0.3/720_history_triggers.sql) rather than
-- foreign keys: the same guarantees, checked once per statement.
BEGIN;
\ir _helpers.psql
SELECT plan(12);

SELECT cvt.service(plan => 'cvt_quick') AS svc \gset
SELECT conveyor.push_start(:'svc', 'v2', 'references') AS p \gset
SELECT is(cvt.drive(:p), 'succeeded', 'a push ran, writing events and targets through the checks');
SELECT max(id) + 1000 AS nopush FROM conveyor.push \gset

-- inserting for a push that does not exist: 23503, as the foreign key said it
SELECT throws_ok(format($$INSERT INTO conveyor.push_event (push_id, kind) VALUES (%s, 'x')$$, :nopush),
                 '23503', 'insert or update on table "push_event" violates foreign key constraint "push_event_push_id_fkey"',
                 'an event of no push is refused');
SELECT throws_ok(format($$INSERT INTO conveyor.push_event (push_id, kind) VALUES (%s, 'x'), (%s, 'y')$$, :p, :nopush),
                 '23503', NULL, 'one bad row refuses the whole statement');
SELECT throws_ok(format($$INSERT INTO conveyor.push_subunit (push_id, unit, subunit, phase, to_version, idempotency_key)
                          VALUES (%s, 'u', 's', 0, 'v', 'k')$$, :nopush),
                 '23503', 'insert or update on table "push_subunit" violates foreign key constraint "push_subunit_push_id_fkey"',
                 'a target of no push is refused');
SELECT throws_ok(format($$UPDATE conveyor.push_subunit SET push_id = %s WHERE push_id = %s$$, :nopush, :p),
                 '23503', NULL, 'moving targets to no push is refused');
SELECT is((SELECT count(*)::int FROM conveyor.push_event WHERE push_id = :nopush)
          + (SELECT count(*)::int FROM conveyor.push_subunit WHERE push_id = :nopush), 0, 'nothing of them was written');

-- the message says which key
SELECT lives_ok($t$DO $d$ DECLARE det text; BEGIN
    INSERT INTO conveyor.push_event (push_id, kind) VALUES (-7, 'x');
EXCEPTION WHEN foreign_key_violation THEN
    GET STACKED DIAGNOSTICS det = PG_EXCEPTION_DETAIL;
    PERFORM set_config('cvt.detail', det, true);
END $d$$t$, 'the violation can be caught as foreign_key_violation');
SELECT is(current_setting('cvt.detail'), 'Key (push_id)=(-7) is not present in table "push".', 'the detail names the key');

-- a NULL push_id is not checked (MATCH SIMPLE); the column's NOT NULL refuses it
SELECT throws_ok($$INSERT INTO conveyor.push_event (push_id, kind) VALUES (NULL, 'x')$$, '23502', NULL,
                 'a NULL push_id: refused by NOT NULL');

-- deleting a push takes its targets and events along (through the retention policy only)
SELECT throws_ok(format('DELETE FROM conveyor.push WHERE id = %s', :p), '0A000', NULL,
                 'deleting a push with history outside the retention policy is refused');
UPDATE conveyor.push SET created_at = now() - interval '3 days', ended_at = now() - interval '2 days' WHERE id = :p;
SELECT ok((SELECT pushes >= 1 FROM conveyor.retention_run(keep => '1 day')), 'the retention policy deletes the push');
SELECT is((SELECT count(*)::int FROM conveyor.push_event WHERE push_id = :p)
          + (SELECT count(*)::int FROM conveyor.push_subunit WHERE push_id = :p)
          + (SELECT count(*)::int FROM conveyor.push_phase WHERE push_id = :p), 0,
          'its events, targets and phases went with it');

SELECT * FROM finish();
ROLLBACK;
