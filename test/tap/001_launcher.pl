# The launcher's life: waiting for its database and for the extension,
# following conveyor.workers, restarting workers, surviving an immediate
# restart, and never holding up DROP EXTENSION or DROP DATABASE.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConveyorTest;

my $node = conveyor_node('launcher', 'deploy', "conveyor.workers = 2\n");
$node->start;

ok($node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'conveyor launcher'"),
	'launcher runs without its database');
ok($node->wait_for_log(qr/database "deploy" does not exist or does not allow connections; waiting/),
	'launcher says once that it waits for the database');

$node->safe_psql('postgres', 'CREATE DATABASE deploy');
ok(wait_workers($node, 2, 'deploy'), 'two workers start once the database exists');
ok($node->wait_for_log(qr/extension "conveyor" is not installed in database "deploy"; waiting/),
	'workers say they wait for the extension');

$node->safe_psql('deploy', 'CREATE EXTENSION conveyor CASCADE');
ok($node->wait_for_log(qr/extension found in database "deploy"/), 'workers notice CREATE EXTENSION');
is(count_log($node, qr/extension "conveyor" is not installed/), 1, 'the wait was logged once, not in a loop');

# a terminated worker comes back
my $pid = $node->safe_psql('postgres',
	"SELECT min(pid) FROM pg_stat_activity WHERE backend_type = 'conveyor worker'");
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
ok($node->poll_query_until('postgres', qq{
	SELECT count(*) = 2 AND bool_and(pid <> $pid) FROM pg_stat_activity
	 WHERE backend_type = 'conveyor worker'}), 'a terminated worker is replaced');

# conveyor.workers follows a reload
$node->safe_psql('postgres', 'ALTER SYSTEM SET conveyor.workers = 3');
$node->reload;
ok(wait_workers($node, 3, 'deploy'), 'reload to 3 workers');
$node->safe_psql('postgres', 'ALTER SYSTEM SET conveyor.workers = 1');
$node->reload;
ok(wait_workers($node, 1, 'deploy'), 'reload to 1 worker');

my $logpos;

# an immediate stop and start brings everything back
$node->stop('immediate');
$node->start;
ok($node->poll_query_until('postgres',
	"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'conveyor launcher'"),
	'launcher back after restart -m immediate');
ok(wait_workers($node, 1, 'deploy'), 'worker back after restart -m immediate');
is($node->safe_psql('deploy', "SELECT count(*) FROM pg_extension WHERE extname = 'conveyor'"),
	'1', 'extension still installed');

# A worker whose query is blocked on a table that is then dropped gets an
# error inside SPI; it must recover, not crash. Hold conveyor.push locked, wake
# the workers so they block on it, then drop the extension under them.
my $blocker = $node->background_psql('deploy');
$blocker->query_safe('BEGIN; LOCK TABLE conveyor.push IN ACCESS EXCLUSIVE MODE;');
$node->safe_psql('deploy', 'SELECT conveyor._wake()');
ok($node->poll_query_until('postgres', qq{
	SELECT count(*) > 0 FROM pg_stat_activity
	 WHERE backend_type = 'conveyor worker' AND wait_event_type = 'Lock'}),
	'a worker is blocked on the locked push table');
$logpos = -s $node->logfile;
$blocker->query_safe('DROP EXTENSION conveyor; COMMIT;');
$blocker->quit;
ok($node->wait_for_log(qr/extension "conveyor" is not installed in database "deploy"; waiting/, $logpos),
	'the blocked worker recovered from the error and waits again');
is(count_log($node, qr/terminated by signal/), 0, 'no worker crashed when its table was dropped under it');
$node->safe_psql('deploy', 'CREATE EXTENSION conveyor CASCADE');
ok(wait_workers($node, 1, 'deploy'), 'workers still running');

# DROP EXTENSION does not hang; the workers go back to waiting
$logpos = -s $node->logfile;
my $ret = $node->psql('deploy', 'DROP EXTENSION conveyor', timeout => 60);
is($ret, 0, 'DROP EXTENSION conveyor completes');
ok($node->wait_for_log(qr/extension "conveyor" is not installed in database "deploy"; waiting/, $logpos),
	'workers wait again after DROP EXTENSION');
ok(wait_workers($node, 1, 'deploy'), 'workers stay connected while waiting');

# DROP DATABASE: conveyor's workers step aside at once. pg_cron's launcher,
# connected to cron.database_name (the same database), does not: a plain
# DROP DATABASE is refused because of it alone, and WITH (FORCE) works.
$node->safe_psql('deploy', 'CREATE EXTENSION conveyor CASCADE');
$logpos = -s $node->logfile;
my ($rc, $out, $err) = $node->psql('postgres', 'DROP DATABASE deploy', timeout => 60);
isnt($rc, 0, 'plain DROP DATABASE is refused while pg_cron is connected');
like($err, qr/There is 1 other session using the database/, 'only one other session: pg_cron\'s launcher');
ok($node->wait_for_log(qr/database "deploy" is being dropped; stopping push workers/, $logpos),
	'launcher stopped the workers for the drop');
ok(wait_workers($node, 1, 'deploy'), 'workers come back after the failed drop');
$ret = $node->psql('postgres', 'DROP DATABASE deploy WITH (FORCE)', timeout => 60);
is($ret, 0, 'DROP DATABASE WITH (FORCE) succeeds');
ok(wait_workers($node, 0, 'deploy'), 'no worker left');
ok($node->wait_for_log(qr/database "deploy" does not exist or does not allow connections; waiting/, $logpos),
	'launcher waits again');
is($node->safe_psql('postgres',
	"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'conveyor launcher'"), '1',
	'launcher survives the drop');

# With pg_cron elsewhere, nothing else holds the database: a plain DROP DATABASE
# succeeds while conveyor's workers are connected to it.
$node->append_conf('postgresql.conf', "cron.database_name = 'postgres'\n");
$node->restart;
$node->safe_psql('postgres', 'CREATE DATABASE deploy');
ok(wait_workers($node, 1, 'deploy'), 'workers return with a new database');
$ret = $node->psql('postgres', 'DROP DATABASE deploy', timeout => 60);
is($ret, 0, 'plain DROP DATABASE succeeds while conveyor workers were connected');
ok(wait_workers($node, 0, 'deploy'), 'no worker left after the drop');

is(count_log($node, qr/conveyor (launcher|worker) (FATAL|PANIC)(?!:  terminating background worker)/), 0,
	'no conveyor process died with FATAL, other than when told to stop');
is(count_log($node, qr/terminated by signal/), 0, 'no process crashed');
$node->stop;

# Loading without shared_preload_libraries: a clear error, nothing left behind.
my $bare = PostgreSQL::Test::Cluster->new('bare');
$bare->init;
$bare->append_conf('postgresql.conf', "shared_preload_libraries = 'pg_cron'\ncron.database_name = 'postgres'\n");
$bare->start;
($rc, $out, $err) = $bare->psql('postgres', 'CREATE EXTENSION conveyor CASCADE');
isnt($rc, 0, 'CREATE EXTENSION fails without preloading');
like($err, qr/conveyor must be loaded via shared_preload_libraries/, 'error says why');
like($err, qr/HINT:  Add conveyor to shared_preload_libraries/, 'and hints how to fix it');
is($bare->safe_psql('postgres', "SELECT count(*) FROM pg_extension WHERE extname IN ('conveyor','pg_cron')"),
	'0', 'nothing left behind, not even the cascaded pg_cron');
$bare->stop;

done_testing();
