# A token stored with conveyor.secret_set stays out of the server log, out of
# pg_stat_activity and out of every table, view and event, also while a
# worker drives a push whose push type authenticates with it and fails. What
# a transaction cannot show: the log and other sessions.
#
# log_statement = 'all' logs every statement a client sends, so the value
# must never travel inside statement text. Two ways keep it out:
#   - a bind parameter. psql 15 cannot bind (\bind came in 16) and DBI is not
#     at hand, so pgbench sends it: its -D variables go as parameters with
#     -M extended. This holds only with log_parameter_max_length = 0: at its
#     default (-1) PostgreSQL logs every bind parameter with the statement,
#     which the last part of this file shows.
#   - psql's \copy from a file: the value travels as COPY data, never logged.
# The checks below never spell the token either: they decode it from hex, as
# their own statements are logged too.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use ConveyorTest;

# (log_min_messages back at its default, so errors and their statements are logged too)
my $node = conveyor_node('secrets', 'deploy', qq{conveyor.workers = 1
log_statement = 'all'
log_parameter_max_length = 0
log_min_messages = warning
log_min_error_statement = error
});
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE deploy');
$node->safe_psql('deploy', 'CREATE EXTENSION conveyor CASCADE');
ok(wait_workers($node, 1, 'deploy'), 'a push worker runs');

my $token = 'SENTINEL-' . join('', map { sprintf '%02x', int(rand(256)) } 1 .. 16);
# SQL for the token that does not contain it
my $token_sql = "convert_from(decode('" . unpack('H*', $token) . "', 'hex'), 'UTF8')";

sub as_user
{
	my ($user) = @_;
	return (connstr => $node->connstr('deploy') . " user=$user");
}

$node->safe_psql('deploy', q{
	CREATE ROLE team_a NOLOGIN;
	CREATE ROLE alice LOGIN IN ROLE team_a;
	CREATE ROLE bob LOGIN;
	CREATE ROLE ada LOGIN IN ROLE conveyor_admin;
});

# ---------------------------------------------------------------- setting it

# \copy: the value is COPY data
my $tokfile = "$PostgreSQL::Test::Utils::tmp_check/token";
append_to_file($tokfile, $token);
my ($rc, $out, $err) = $node->psql('deploy', qq{
CREATE TEMP TABLE t (v text);
\\copy t FROM '$tokfile'
SELECT conveyor.secret_set('deploy_token', (SELECT v FROM t), 'deploy token', 'copied in from a file');
}, as_user('ada'));
is($rc, 0, 'an administrator sets a secret from a file with \copy') or diag $err;

# a bind parameter, with pgbench
my $script = "$PostgreSQL::Test::Utils::tmp_check/set_secret.sql";
append_to_file($script, "SELECT conveyor.secret_set('bound_token', :tok, 'bound', 'sent as a parameter');\n");
my @pgbench = ('pgbench', '-n', '-t', '1', '-M', 'extended', '-h', $node->host, '-p', $node->port, '-f', $script);
($out, $err) = run_command([ @pgbench, '-D', "tok=$token", '-U', 'ada', 'deploy' ]);
like($out, qr/number of transactions actually processed: 1\/1/,
	'an administrator sets a secret with a bind parameter') or diag $err;
# refused ones: a team member, and a name that is no name
($out, $err) = run_command([ @pgbench, '-D', "tok=$token", '-U', 'bob', 'deploy' ]);
like($err, qr/permission denied to set secrets/, 'bob may not set a secret');
unlike($out . $err, qr/\Q$token\E/, 'the refusal bob sees does not contain the value');

is($node->safe_psql('deploy', "SELECT string_agg(name, ',' ORDER BY name) FROM conveyor.secret WHERE value = $token_sql"),
	'bound_token,deploy_token', 'both secrets hold the token');

# ---------------------------------------------------------------- a push that uses it and fails

# Verbs a superuser wrote: get units authenticates with the token; send
# update fails, with the token in its error's detail and hint.
$node->safe_psql('deploy', q{
CREATE SCHEMA pt;
CREATE FUNCTION pt.get_units(service text, config jsonb)
RETURNS TABLE (unit text, labels jsonb, subunit text, version text, status text) LANGUAGE plpgsql AS $$
DECLARE
    tok text;
BEGIN
    SELECT s.value INTO tok FROM conveyor.secret s WHERE s.name = config->>'token';
    IF tok IS NULL THEN
        RAISE EXCEPTION 'units endpoint: no credentials';
    END IF;
    RETURN QUERY SELECT * FROM conveyor.sim_get_units(service, config);
END $$;
CREATE FUNCTION pt.send_update(service text, config jsonb, updates jsonb)
RETURNS TABLE (unit text, subunit text, error text) LANGUAGE plpgsql AS $$
DECLARE
    tok text;
BEGIN
    SELECT s.value INTO tok FROM conveyor.secret s WHERE s.name = config->>'token';
    RAISE EXCEPTION 'deploy endpoint unavailable (HTTP 503)'
        USING DETAIL = 'Authorization: Bearer ' || tok, HINT = 'token ' || tok;
END $$;
-- rows of every relation in schema conveyor but conveyor.secret whose text
-- holds needle, for the current role ("name: n" each; relations it may not
-- read are skipped, and listed as "name: -")
CREATE FUNCTION pt.hits(needle text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    r regclass;
    n bigint;
    res text[] := '{}';
BEGIN
    FOR r IN SELECT c.oid FROM pg_class c
              WHERE c.relnamespace = 'conveyor'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm')
                AND NOT c.relispartition  -- (the metric store's days: read through their parent)
                AND c.oid <> 'conveyor.secret'::regclass ORDER BY c.relname LOOP
        BEGIN
            EXECUTE format('SELECT count(*) FROM %s t WHERE strpos(t::text, $1) > 0', r) INTO n USING needle;
            IF n > 0 THEN
                res := res || format('%s: %s', r, n);
            END IF;
        EXCEPTION WHEN insufficient_privilege THEN
            res := res || format('%s: -', r);
        END;
    END LOOP;
    RETURN array_to_string(res, ', ');
END $$;
GRANT USAGE ON SCHEMA pt TO PUBLIC;
});
($rc, $out, $err) = $node->psql('deploy', q{
SELECT conveyor.push_type_create('tokened', 'pt.get_units(text,jsonb)', 'pt.send_update(text,jsonb,jsonb)',
                                 description => 'authenticates with a token');
SELECT conveyor.sim_fleet_create('fleet_tok', '{eu,us}', 1, 2);
SELECT conveyor.push_plan_create('quick', '[{"scope": "region=eu", "amount": "50%"}]');
SELECT conveyor.service_create('svc_tok', 'tokened', 'quick', '{"fleet": "fleet_tok", "token": "deploy_token"}',
                               owner => 'team_a', retry_limit => 2);
}, as_user('ada'));
is($rc, 0, 'an administrator registers a push type that uses the token, and a service of it') or diag $err;

my $push = $node->safe_psql('deploy', "SELECT conveyor.push_start('svc_tok', 'v2', 'release')", as_user('alice'));
ok($push =~ /^\d+$/, 'the team starts a push (its get units authenticates with the token)');

# While the worker tries, fails, retries and gives up: snapshots of every
# session's current statement.
my ($snapshots, $seen, $state) = (0, 0, '');
for (my $i = 0; $i < 1200 && $state ne 'failed'; $i++)
{
	my $snap = $node->safe_psql('deploy', qq{
		SELECT count(*) FILTER (WHERE strpos(coalesce(query, ''), $token_sql) > 0),
		       (SELECT state FROM conveyor.push WHERE id = $push)
		  FROM pg_stat_activity});
	my $hits;
	($hits, $state) = split /\|/, $snap;
	$snapshots++;
	$seen += $hits;
	usleep(20_000) if $state ne 'failed';
}
is($state, 'failed', 'the push failed: its push type cannot send');
ok($snapshots > 5, "pg_stat_activity was sampled while the worker drove it ($snapshots snapshots)");
is($seen, 0, 'no snapshot of pg_stat_activity showed the token');
is($node->safe_psql('deploy', qq{
	SELECT count(*) FILTER (WHERE e.kind = 'push_type_error') || ' ' || max(p.outcome_reason)
	  FROM conveyor.push_event e JOIN conveyor.push p ON p.id = e.push_id WHERE p.id = $push}),
	'2 push type send_update failed 3 times (retry limit 2): deploy endpoint unavailable (HTTP 503)',
	'two retried push-type errors, then a bad failure saying what the push type said');

# ---------------------------------------------------------------- where it must not be

is($node->safe_psql('deploy', "SELECT pt.hits($token_sql)"), '',
	'the superuser finds the token in no table or view but conveyor.secret');
is($node->safe_psql('deploy', "SET ROLE ada; SELECT pt.hits($token_sql)"), '',
	'nor does an administrator');
is($node->safe_psql('deploy', "SET ROLE alice; SELECT pt.hits($token_sql)"),
	'conveyor.metric_retention: -, conveyor.metric_sample: -, conveyor.retention_policy: -, conveyor.secrets: -',
	'nor does the team (which may not read conveyor.secrets, the retention policies or raw metric samples)');

my $log = slurp_file($node->logfile);
ok($log =~ /statement: SELECT conveyor\.secret_set\('deploy_token', \(SELECT v FROM t\)/
	  && $log =~ /execute <unnamed>: SELECT conveyor\.secret_set\('bound_token', \$1/,
	'the log has the statements that set the secrets (log_statement works)');
like($log, qr/ERROR:  permission denied to set secrets\n(?:.*\n){0,6}?.*STATEMENT:  SELECT conveyor\.secret_set\('bound_token', \$1/,
	'and bob\'s refused attempt, with its statement');
unlike($log, qr/\Q$token\E/, 'the server log never shows the token');

# ---------------------------------------------------------------- why log_parameter_max_length must be 0

# At its default, PostgreSQL logs bind parameters with the statement: a
# different token, set the same way, is then in the log (docs/security.md).
my $shown = 'SHOWN-' . join('', map { sprintf '%02x', int(rand(256)) } 1 .. 16);
$node->append_conf('postgresql.conf', "log_parameter_max_length = -1\n");
$node->reload;
($out, $err) = run_command([ @pgbench, '-D', "tok=$shown", '-U', 'ada', 'deploy' ]);
like($out, qr/processed: 1\/1/, 'a second secret set with a bind parameter') or diag $err;
like(slurp_file($node->logfile), qr/parameters: \$1 = '\Q$shown\E'/,
	'with log_parameter_max_length = -1 (the default) the log shows the bound value');

is(count_log($node, qr/terminated by signal/), 0, 'no process crashed');
$node->stop;
done_testing();
