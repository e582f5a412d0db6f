# ConveyorTest: helpers for conveyor's Perl TAP tests (PostgreSQL::Test::Cluster).
package ConveyorTest;

use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Exporter 'import';

our @EXPORT = qw(conveyor_node count_log wait_workers);

# conveyor_node(NAME, DB, EXTRA_CONF): an initialised, not yet started node
# with conveyor and pg_cron preloaded for database DB.
sub conveyor_node
{
	my ($name, $db, $extra) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);
	$node->init;
	$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'conveyor,pg_cron'
conveyor.database = '$db'
cron.database_name = '$db'
conveyor.worker_restart_delay = '100ms'
max_worker_processes = 32
log_min_messages = warning
log_line_prefix = '%m [%p] %b '
} . ($extra // ''));
	return $node;
}

# count_log(NODE, REGEX): lines of the node's server log matching REGEX.
sub count_log
{
	my ($node, $re) = @_;
	my $log = slurp_file($node->logfile);
	my @lines = grep { /$re/ } split /\n/, $log;
	return scalar @lines;
}

# wait_workers(NODE, N, DB): wait until exactly N conveyor workers are connected to DB.
sub wait_workers
{
	my ($node, $n, $db) = @_;
	return $node->poll_query_until('postgres', qq{
		SELECT count(*) = $n FROM pg_stat_activity
		 WHERE backend_type = 'conveyor worker' AND datname = '$db'});
}

1;
