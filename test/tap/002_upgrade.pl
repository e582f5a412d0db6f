# Every released version of conveyor updates with ALTER EXTENSION conveyor UPDATE
# to exactly the schema a fresh install of the default version has.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use ConveyorTest;

my $node = conveyor_node('upgrade', 'deploy', "conveyor.workers = 1\n");
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE deploy');

my $fingerprint = slurp_file("$ENV{CV_SRC}/test/tap/schema_fingerprint.sql");
my $default = $node->safe_psql('deploy',
	"SELECT default_version FROM pg_available_extensions WHERE name = 'conveyor'");
my @older = split /\n/, $node->safe_psql('deploy', qq{
	SELECT version FROM pg_available_extension_versions
	 WHERE name = 'conveyor' AND version <> '$default' ORDER BY string_to_array(version, '.')::int[]});

$node->safe_psql('deploy', 'CREATE EXTENSION conveyor CASCADE');
my $fresh = $node->safe_psql('deploy', $fingerprint);
ok(length($fresh) > 0, "fresh install of $default has a schema fingerprint");
$node->safe_psql('deploy', 'DROP EXTENSION conveyor');

ok(@older >= 1, 'there is at least one older version to update from');
for my $v (@older)
{
	$node->safe_psql('deploy', "CREATE EXTENSION conveyor VERSION '$v' CASCADE");
	my ($rc, $out, $err) = $node->psql('deploy', 'ALTER EXTENSION conveyor UPDATE');
	is($rc, 0, "ALTER EXTENSION conveyor UPDATE from $v succeeds") or diag $err;
	is($node->safe_psql('deploy', "SELECT extversion FROM pg_extension WHERE extname = 'conveyor'"),
		$default, "$v updated to $default");
	my $updated = $node->safe_psql('deploy', $fingerprint);
	is($updated, $fresh, "schema updated from $v equals a fresh $default install")
	  or diag(join("\n", grep { my $l = $_; index($fresh, $l) < 0 } split /\n/, $updated));
	$node->safe_psql('deploy', 'DROP EXTENSION conveyor');
}

$node->stop;
done_testing();
