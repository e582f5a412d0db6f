-- Refuse early, and clearly, to install anywhere but conveyor.database.
CREATE FUNCTION conveyor._install_check() RETURNS void
    LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'cv_install_check';
COMMENT ON FUNCTION conveyor._install_check() IS
    'internal: errors unless the current database is conveyor.database';
SELECT conveyor._install_check();

CREATE FUNCTION conveyor._wake() RETURNS void
    LANGUAGE c STRICT AS 'MODULE_PATHNAME', 'cv_wake';
COMMENT ON FUNCTION conveyor._wake() IS
    'internal: wakes the push workers when the calling transaction commits';
