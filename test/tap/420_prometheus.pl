# Prometheus healthchecks end to end (issue 5): a real Prometheus from
# Debian's package, on loopback, scrapes the /metrics of demo services
# (agent/demo-service) that get the same traffic; the push workers fetch the
# range queries themselves (conveyor.push_call, verb prometheus) and the
# decider judges the answers. Nothing is fed by hand.
#
#   1. 2.1-bad (half its requests answer 500) against 1.0: the comparison
#      check on errors fails, the push is reverted, explain_health shows the
#      real numbers.
#   2. 2.0 (healthy, the same load): the push succeeds.
#   3. Allowed hosts: healthcheck_set refuses a prometheus_url on a host
#      conveyor.allowed_hosts does not name (42501); a host taken off the list
#      after the checks were stored is refused by the worker at call time: no
#      data, handled by the check's no_data policy (pause).
#   4. Prometheus killed: no_data 'pause' pauses the push saying Prometheus
#      could not be reached; no_data 'fail' lets the failure policy (revert)
#      apply; no worker crashed.
#
#
# Skipped when the prometheus binary is missing (test/deps.sh installs it).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use HTTP::Tiny;
use JSON::PP;
use File::Basename qw(dirname);
use Cwd qw(abs_path);
use POSIX qw(_exit);
use ConveyorTest;

my $t_start = time;

my ($prom_bin) = grep { -x $_ } map { "$_/prometheus" } split /:/, ($ENV{PATH} // '');
plan skip_all => 'the prometheus binary is not installed (Debian package prometheus; test/deps.sh installs it)'
  unless $prom_bin;

my $src = $ENV{CV_SRC} // abs_path(dirname(__FILE__) . '/../..');
my $demo_bin = "$src/agent/demo-service";
if (!-x $demo_bin)
{
	system('make', '-s', '-C', $src, 'agent/demo-service') == 0
	  or die "agent/demo-service is missing and make could not build it\n";
}

# ------------------------------------------------------------------ processes

my $dir = PostgreSQL::Test::Utils::tempdir('prometheus');
my @children;
END
{
	local $?;    # waitpid must not change the test's exit status
	# only the processes this test started, by pid
	for my $pid (@children) { kill 'TERM', $pid if $pid; }
	waitpid($_, 0) for grep { $_ } @children;
}

# spawn(LOG, COMMAND...): a child process with its output in LOG; its pid.
sub spawn
{
	my ($log, @cmd) = @_;
	my $pid = fork() // die "fork: $!";
	if ($pid == 0)
	{
		open(STDOUT, '>>', $log) or _exit(127);
		open(STDERR, '>&', \*STDOUT) or _exit(127);
		exec(@cmd) or _exit(127);
	}
	push @children, $pid;
	return $pid;
}

my %demo_port = map { $_ => PostgreSQL::Test::Cluster::get_free_port() } ('1.0', '2.1-bad', '2.0');
my $prom_port = PostgreSQL::Test::Cluster::get_free_port();
my $prom = "http://127.0.0.1:$prom_port";

open(my $fh, '>', "$dir/faults") or die "$dir/faults: $!";
print $fh "2.1-bad errors 0.5\n";
close $fh;
for my $v (sort keys %demo_port)
{
	spawn("$dir/demo-$v.log", $demo_bin, '--port', $demo_port{$v}, '--version', $v,
		'--faults', "$dir/faults", '--host', '127.0.0.1');
}
my $targets = join ', ', map { "'127.0.0.1:$demo_port{$_}'" } sort keys %demo_port;
open($fh, '>', "$dir/prometheus.yml") or die "$dir/prometheus.yml: $!";
print $fh <<"YML";
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: demo
    static_configs: [{targets: [$targets]}]
YML
close $fh;
my $prom_pid = spawn("$dir/prometheus.log", $prom_bin, "--config.file=$dir/prometheus.yml",
	"--storage.tsdb.path=$dir/data", "--web.listen-address=127.0.0.1:$prom_port");

my $http = HTTP::Tiny->new(timeout => 2);
my $ready = 0;
for (1 .. 100)
{
	$ready = 1, last if $http->get("$prom/-/ready")->{success};
	sleep 0.2;
}
ok($ready, "Prometheus ($prom_bin) is ready on 127.0.0.1:$prom_port")
  or diag slurp_file("$dir/prometheus.log");

# The same traffic to every demo service, until the test ends: 40 requests a
# second each.
my $traffic_pid = fork() // die "fork: $!";
if ($traffic_pid == 0)
{
	my $t = HTTP::Tiny->new(timeout => 1);
	while (1)
	{
		$t->get("http://127.0.0.1:$demo_port{$_}/") for sort keys %demo_port;
		sleep 0.025;
	}
}
push @children, $traffic_pid;

# ------------------------------------------------------------------ cluster

# log_min_messages = warning (the default), not ConveyorTest's 'log': 'log'
# ranks above ERROR for the server log and hides every ERROR a worker raises.
my $node = conveyor_node('prom', 'deploy', qq{
conveyor.workers = 2
conveyor.allowed_hosts = '127.0.0.1'
log_min_messages = warning
});
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE deploy');
$node->safe_psql('deploy', 'CREATE EXTENSION conveyor CASCADE');
ok(wait_workers($node, 2, 'deploy'), 'two workers connected to deploy');

# the workers' claim runs (PL/pgSQL compiles a query only when it first runs)
my ($claim_rc) = $node->psql('deploy', 'SELECT count(*) FROM conveyor._http_claim(0)');
is($claim_rc, 0, 'conveyor._http_claim runs');


# One canary phase (region eu, half of its subunits) with a short bake, then
# the completion phase; health judged every second; unhealthy means revert.
$node->safe_psql('deploy', q{
	SELECT conveyor.sim_fleet_create('demo', '{eu,us}', 1, 4, '1.0');
	SELECT conveyor.push_plan_create('canary',
	    '[{"scope": "region=eu", "amount": "50%", "bake": "3 seconds"}]'::jsonb);
	SELECT conveyor.service_create('demo', 'simulated', 'canary', '{"fleet": "demo"}'::jsonb,
	    failure_policy => 'revert', health_interval => '1 second', poll_interval => '100 ms');
});

# checks_sql(URL, NO_DATA): the healthcheck_set of the test's checks, on the
# Prometheus at URL. errors: the error rates by version, compared (new may be
# at most 10% above old); requests: the request rates (the same load on both).
sub checks_sql
{
	my ($url, $no_data) = @_;
	my $list = encode_json([
		{ name => 'errors', metric => 'demo_errors', source => 'prometheus', prometheus_url => $url,
		  query => 'sum by (version) (rate(demo_errors_total[5s]))', kind => 'comparison',
		  threshold => 0.1, lookback => '20 seconds', step => '2 seconds', no_data => $no_data },
		{ name => 'requests', metric => 'demo_requests', source => 'prometheus', prometheus_url => $url,
		  query => 'sum by (version) (rate(demo_requests_total{path="/"}[5s]))', kind => 'comparison',
		  threshold => 0.25, lookback => '20 seconds', step => '2 seconds', no_data => $no_data } ]);
	$list =~ s/'/''/g;
	return "SELECT conveyor.healthcheck_set('demo', '$list', 'prometheus test')";
}
sub checks { $node->safe_psql('deploy', checks_sql(@_)); }

my $ended = 'reverted|failed|succeeded|paused|cancelled';

# push_wait(VERSION, STATES, SECONDS): start a push and wait at most SECONDS
# until it is in one of STATES (a regex); its id and state.
sub push_wait
{
	my ($version, $states, $secs) = @_;
	my $id = $node->safe_psql('deploy', "SELECT conveyor.push_start('demo', '$version', 'prometheus test')");
	my $state;
	my $until = time + $secs;
	while (1)
	{
		$state = $node->safe_psql('deploy', "SELECT state FROM conveyor.push WHERE id = $id");
		last if $state =~ /^($states)$/ || time > $until;
		sleep 0.2;
	}
	diag "push $id of $version is $state after $secs s: "
	  . $node->safe_psql('deploy', qq{
		SELECT format('phase %s step %s, outcome %s; calls: %s', p.phase, p.step, p.outcome_reason,
		              (SELECT string_agg(format('%s %s claims %s', c.verb, c.state, c.claims), ', ')
		                 FROM conveyor.push_call c WHERE c.push_id = p.id))
		  FROM conveyor.push p WHERE p.id = $id})
	  unless $state =~ /^($states)$/;
	return ($id, $state);
}

# wait_ended(ID, SECONDS): wait until push ID ended; its state.
sub wait_ended
{
	my ($id, $secs) = @_;
	return '' unless defined $id;
	my $until = time + $secs;
	my $state;
	do { sleep 0.2 if defined $state; $state = $node->safe_psql('deploy', "SELECT state FROM conveyor.push WHERE id = $id") }
	  until $state !~ /^(running|paused)$/ || time > $until;
	return $state;
}

sub revert_of
{
	my ($id) = @_;
	my $r = $node->safe_psql('deploy', "SELECT id FROM conveyor.push WHERE reverts = $id");
	return $r eq '' ? undef : $r;
}

# cancel(ID): end an active push the test gives up on, so the next can start.
sub cancel
{
	my ($id, $why) = @_;
	$node->safe_psql('deploy', "SELECT conveyor.push_cancel(id, '$why') FROM conveyor.push
	                             WHERE id = $id AND state IN ('running', 'paused')");
}

sub versions
{
	return $node->safe_psql('deploy', q{
		SELECT string_agg(format('%s=%s', version, n), ' ' ORDER BY version)
		  FROM (SELECT version, count(*) n FROM conveyor.sim_subunit_now WHERE fleet = 'demo' GROUP BY 1) x});
}

sub calls_left
{
	my ($id) = @_;
	return $node->safe_psql('deploy', "SELECT count(*) FROM conveyor.push_call WHERE push_id = " . ($id // 0));
}

# Wait until Prometheus holds enough of a window: at least 10 s of rates on
# 1.0 and 2.1-bad, with errors on 2.1-bad only.
my $have_data = 0;
my $body;
for (1 .. 120)
{
	my $now = time;
	my $r = $http->get("$prom/api/v1/query_range?" . $http->www_form_urlencode({
		query => 'sum by (version) (rate(demo_errors_total[5s]))',
		start => $now - 20, end => $now, step => '2s' }));
	if ($r->{success})
	{
		$body = decode_json($r->{content});
		my %points = map { $_->{metric}{version} => $_->{values} } @{ $body->{data}{result} };
		$have_data = 1, last
		  if @{ $points{'1.0'} // [] } >= 6 && @{ $points{'2.1-bad'} // [] } >= 6
		  && $points{'2.1-bad'}[-1][1] > 0 && $points{'1.0'}[-1][1] == 0;
	}
	sleep 0.25;
}
ok($have_data, 'Prometheus scraped the demo services: 10 s of error rates by version, errors on 2.1-bad only')
  or diag explain $body;
note sprintf('Prometheus has a window of data %.1f s after the test started', time - $t_start);

# ------------------------------------------------------------------ 1. a faulty version is reverted

checks($prom, 'pause');
my ($bad, $state) = push_wait('2.1-bad', $ended, 40);
my $workers_answer = $state ne 'running';
{
	is($state, 'reverted', '2.1-bad: the comparison check fails on real Prometheus data, the push is reverted');
}
if (!$workers_answer)
{
	# nothing below can happen without the workers' calls: give up on the push
	cancel($bad, 'the workers never answered');
}
{

	like($node->safe_psql('deploy', "SELECT outcome_reason FROM conveyor.push WHERE id = $bad"),
		qr/^automatic revert: unhealthy in phase 1: check errors: fail: infinite increase from a zero baseline \(old 0, new [0-9.e+-]+\) is above the upper bound \+10%/,
		'2.1-bad: the outcome says why (the error rate on 1.0 is 0, on 2.1-bad above it)');
	my $revert = revert_of($bad);
	is(wait_ended($revert, 20), 'succeeded', '2.1-bad: its revert push succeeded');
	is(versions(), '1.0=8', '2.1-bad: every subunit is back on 1.0');

	# explain_health: the workers' answers, judged, with their numbers
	my ($n_new, $n_old, $v_new, $v_old, $secs, $explanation) = split /\|/, $node->safe_psql('deploy', qq{
		SELECT n_new, n_old, value_new, value_old, extract(epoch FROM window_end - window_start), explanation
		  FROM conveyor.explain_health($bad) WHERE check_name = 'errors' AND verdict = 'fail'});
	ok(defined $n_new && $n_new >= 6 && $n_old >= 6,
		'explain_health: the failing evaluation read real points of both versions (new '
		  . ($n_new // '-') . ', old ' . ($n_old // '-') . ')');
	ok(defined $v_old && $v_old == 0 && $v_new > 0,
		'explain_health: 0 errors a second on 1.0, ' . ($v_new // '-') . ' on 2.1-bad');
	is($secs, '20.000000', 'explain_health: the window is the check\'s lookback');
	like($explanation // '', qr/^comparison avg\(demo_errors\) from prometheus: fail: infinite increase from a zero baseline/,
		'explain_health: the check and its verdict in words');
	my ($r_new, $r_old, $r_verdict) = split /\|/, $node->safe_psql('deploy', qq{
		SELECT value_new, value_old, verdict FROM conveyor.explain_health($bad)
		 WHERE check_name = 'requests' ORDER BY at DESC LIMIT 1});
	is($r_verdict, 'pass', 'explain_health: the request rates compare (the same load on both versions)');
	ok(defined $r_new && $r_new > 5 && $r_old > 5 && abs($r_new - $r_old) / $r_old < 0.25,
		'explain_health: requests a second on 2.1-bad (' . ($r_new // '-') . ') and on 1.0 ('
		  . ($r_old // '-') . ') are alike');
	ok($r_new && $v_new / $r_new > 0.3 && $v_new / $r_new < 0.7,
		sprintf('the error rate on 2.1-bad is about half its request rate (%.2f of %.2f): the faults file\'s 0.5',
			$v_new // 0, $r_new // 0));
	is($node->safe_psql('deploy', qq{
		SELECT detail->>'verdict' FROM conveyor.push_event WHERE push_id = $bad AND kind = 'health_evaluated'
		 ORDER BY id DESC LIMIT 1}),
		'fail', '2.1-bad: the healthchecks\' verdict is recorded as a health_evaluated event');
	is(calls_left($bad), '0', '2.1-bad: push_call holds nothing of the push (the Prometheus call was spent)');
	is(calls_left($revert), '0', '2.1-bad: nor of its revert');

	# -------------------------------------------------------------- 2. a healthy version succeeds

	my ($good, $good_state) = push_wait('2.0', $ended, 40);
	is($good_state, 'succeeded', '2.0 (healthy, the same load): the push succeeds');
	is(versions(), '2.0=8', '2.0: every subunit runs 2.0');
	is($node->safe_psql('deploy', qq{
		SELECT count(*) FROM conveyor.health_evaluation WHERE push_id = $good AND source = 'prometheus' AND result <> 'pass'}),
		'0', '2.0: every Prometheus evaluation passed');
	is($node->safe_psql('deploy', qq{
		SELECT count(*) >= 4 AND bool_and(n_new > 0 AND n_old > 0)
		  FROM conveyor.health_evaluation WHERE push_id = $good AND source = 'prometheus'}),
		't', '2.0: both checks were evaluated in both phases, on data of 2.0 and 1.0');
	is(calls_left($good), '0', '2.0: push_call holds nothing of the push');

	# -------------------------------------------------------------- 3. a host no longer allowed

	# The URL was allowed when stored; an administrator then takes the host
	# off the list: every request is checked again before it is sent.
	$node->safe_psql('postgres', "ALTER SYSTEM SET conveyor.allowed_hosts = 'prometheus.example.com'; SELECT pg_reload_conf()");
	sleep 0.5;
	my ($refused, $refused_state) = push_wait('2.1-bad', $ended, 20);
	is($refused_state, 'paused', 'a Prometheus on a host no longer allowed: no data, policy pause: the push pauses');
	my $why = $node->safe_psql('deploy', "SELECT reason FROM conveyor.push_event WHERE push_id = $refused AND kind = 'push_paused'");
	like($why, qr{^healthchecks inconclusive in phase 1: check errors: no data: Prometheus GET http://127\.0\.0\.1:$prom_port/api/v1/query_range: host not in conveyor},
		'the pause names the query and says its host is not allowed');
	{
		like($why, qr/check errors: [^;]*host not in conveyor\.allowed_hosts \(no-data policy: pause\); check requests: [^;]*host not in conveyor\.allowed_hosts \(no-data/,
			'each check\'s reason gives the cause in full');
	}
	is($node->safe_psql('deploy', "SELECT count(*) FROM conveyor.health_evaluation WHERE push_id = $refused AND source = 'prometheus' AND result <> 'nodata'"),
		'0', 'nothing was read from the host no longer allowed');
	cancel($refused, 'host not allowed');
	is(calls_left($refused), '0', 'push_call holds nothing of the cancelled push');
	$node->safe_psql('postgres', "ALTER SYSTEM RESET conveyor.allowed_hosts; SELECT pg_reload_conf()");
	sleep 0.5;

	# -------------------------------------------------------------- 4. Prometheus down

	kill 'KILL', $prom_pid;
	waitpid($prom_pid, 0);
	@children = grep { $_ != $prom_pid } @children;
	ok(!$http->get("$prom/-/ready")->{success}, 'Prometheus is down (killed)');

	my ($down, $down_state) = push_wait('2.2', $ended, 20);
	is($down_state, 'paused', 'Prometheus down, no_data pause: the push pauses (failure policy revert notwithstanding)');
	$why = $node->safe_psql('deploy', "SELECT reason FROM conveyor.push_event WHERE push_id = $down AND kind = 'push_paused'");
	like($why, qr{^healthchecks inconclusive in phase 1: check errors: no data: Prometheus GET http://127\.0\.0\.1:$prom_port/api/v1/query_range: Couldn't connect to server},
		'the pause says Prometheus could not be reached');
	{
		like($why, qr/check errors: [^;]*Couldn't connect to server[^;]*\(no-data policy: pause\); check requests: [^;]*Couldn't connect to server[^;]*\(no-data/,
			'each check\'s reason gives the cause in full');
	}
	is(calls_left($down), '0', 'push_call holds nothing of the paused push');
	cancel($down, 'Prometheus is down');

	checks($prom, 'fail');
	my ($down_fail, $down_fail_state) = push_wait('2.3', $ended, 20);
	is($down_fail_state, 'reverted', 'Prometheus down, no_data fail: the failure policy (revert) applies');
	like($node->safe_psql('deploy', "SELECT outcome_reason FROM conveyor.push WHERE id = $down_fail"),
		qr/^automatic revert: unhealthy in phase 1: check errors: no data: Prometheus .*\(no-data policy: fail\)/,
		'the revert says the check had no data, and its policy');
	is(wait_ended(revert_of($down_fail), 20), 'succeeded', 'its revert push succeeded');
}

# ------------------------------------------------------------------ allowed hosts, when stored

my ($rc, $out, $err) = $node->psql('deploy', checks_sql("http://localhost:$prom_port", 'pause'));
like($err, qr/ERROR:  prometheus_url of healthcheck "errors" "http:\/\/localhost:$prom_port" is not an allowed host/,
	'healthcheck_set refuses a prometheus_url on a host conveyor.allowed_hosts does not name (42501)');
like($node->safe_psql('deploy', "SELECT string_agg(prometheus_url, ' ') FROM conveyor.healthcheck WHERE service = 'demo'"),
	qr/^http:\/\/127\.0\.0\.1:$prom_port http:\/\/127\.0\.0\.1:$prom_port$/, 'and changes nothing');

# ------------------------------------------------------------------ the end

is($node->safe_psql('deploy', "SELECT count(*) FROM conveyor.push WHERE state IN ('running', 'paused')"), '0',
	'no push is left active');
{
	# the calls of ended pushes are deleted by _http_claim too
	is($node->safe_psql('deploy', 'SELECT count(*) FROM conveyor.push_call'), '0', 'push_call is empty at the end');
}

my @log = split /\n/, slurp_file($node->logfile);
my @crashy = grep {
	/PANIC|TRAP:|terminated by signal|was terminated by|terminating any other active server processes/
	  || /background worker "conveyor [a-z]+" \(PID \d+\) exited with exit code/
} @log;
ok(@crashy == 0, 'the server log shows no crash: no PANIC, TRAP, signal, or conveyor process exiting with an error')
  or diag join "\n", @crashy[0 .. ($#crashy < 29 ? $#crashy : 29)];
{
	my @errors = grep { /conveyor (worker|launcher) (FATAL|ERROR):|conveyor: step of push \d+ failed/ } @log;
	ok(@errors == 0, 'no conveyor worker raised an error, no step failed')
	  or diag scalar(@errors) . " lines, first ones:\n" . join "\n", @errors[0 .. ($#errors < 4 ? $#errors : 4)];
}
is($node->safe_psql('deploy', "SELECT count(*) FROM conveyor.push_event WHERE kind IN ('step_error', 'push_type_error')"),
	'0', 'no step errors or push-type errors were recorded');

$node->stop;
note sprintf('420_prometheus ran %.1f s', time - $t_start);
done_testing();
