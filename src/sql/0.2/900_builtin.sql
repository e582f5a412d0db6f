-- Push types shipped with the extension are part of it: pg_dump leaves them out.
UPDATE conveyor.push_type SET builtin = true;
