# Crash test (issue 3): many pushes in flight on the simulated fleet, the
# cluster killed (stop -m immediate) at several points and restarted. Every
# push must finish, every transition must be recorded exactly once, and no
# subunit may end on a version nobody asked for.
#
# 30 services, each with its own small simulated fleet (3 regions x 2 units x
# 5 subunits, updates taking 200-400 ms). Each service is pushed v2 .. v6 in
# turn (the next one starts as soon as the previous push, or its revert,
# ended, so pushes stay in flight); some versions are marked faulty, so those
# pushes revert automatically. The cluster is killed five times; afterwards
# the remaining versions are pushed without crashes and the history is audited
# against a model of what the test asked for (table public.crash_expect).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time sleep);
use ConveyorTest;

my $t_start = time;
my $n_services = 30;
my @versions = ('v2', 'v3', 'v4', 'v5', 'v6');
# seconds between a restart (workers back, next pushes started) and the next kill
my @crash_after = (0.3, 1.6, 0.8, 2.0, 1.1);

my $node = conveyor_node('crash', 'deploy', "conveyor.workers = 3\n");
$node->start;
$node->safe_psql('postgres', 'CREATE DATABASE deploy');
$node->safe_psql('deploy', 'CREATE EXTENSION conveyor CASCADE');
ok(wait_workers($node, 3, 'deploy'), 'three workers connected to deploy');

# The simulated push type is registered at the end of 300_simfleet.sql; while
# that file is being finished, register it here exactly as it would.
my $had_simulated = $node->safe_psql('deploy',
	"SELECT count(*) FROM conveyor.push_type WHERE name = 'simulated'");
if ($had_simulated eq '0')
{
	note 'push type "simulated" not registered by the extension; registering it in the test';
	$node->safe_psql('deploy', q{
		SELECT conveyor.push_type_create(
		    name => 'simulated',
		    get_units => 'conveyor.sim_get_units(text,jsonb)',
		    send_update => 'conveyor.sim_send_update(text,jsonb,jsonb)',
		    check_health => 'conveyor.sim_check_health(text,jsonb,text[])',
		    description => 'Simulated fleet for demos and tests (conveyor.sim_*): not a real deployment target')
		 WHERE NOT EXISTS (SELECT FROM conveyor.push_type WHERE name = 'simulated');
		UPDATE conveyor.push_type SET builtin = true WHERE name = 'simulated';
	});
}

# ------------------------------------------------------------------ setup

# service name => [ [version, faulty], ... ] in push order
my %plan_of;
my @services = map { sprintf('s%02d', $_) } 0 .. $n_services - 1;
my $setup = q{
	SELECT conveyor.push_plan_create('crash',
	    '[{"scope": "region=eu", "amount": "10%", "bake": "300 ms"},
	      {"scope": "*", "amount": "50%", "bake": "300 ms"}]'::jsonb);
	CREATE TABLE public.crash_expect (
	    service text, seq int, version text, faulty boolean,
	    PRIMARY KEY (service, seq), UNIQUE (service, version));
};
for my $i (0 .. $n_services - 1)
{
	my $s = $services[$i];
	my $ms = 200 + ($i * 37) % 201;
	# faulty: v2 on every seventh service from s03, v3 on every fifth from s00,
	# v4 on every sixth from s02 (s10: v2 and v3 both revert to v1; s17: v2
	# lands, v3 and v4 both revert to v2), v5 on every eighth from s04; v6 lands
	# everywhere
	my %faulty = (v2 => ($i % 7 == 3), v3 => ($i % 5 == 0), v4 => ($i % 6 == 2), v5 => ($i % 8 == 4),
		v6 => 0);
	$setup .= qq{
	SELECT conveyor.sim_fleet_create('f-$s', '{eu,us,ap}', 2, 5, 'v1', '$ms ms');
	SELECT conveyor.service_create('$s', 'simulated', 'crash', '{"fleet": "f-$s"}'::jsonb,
	    failure_policy => 'revert', health_interval => '100 ms', poll_interval => '100 ms');
	};
	for my $k (0 .. $#versions)
	{
		my $v = $versions[$k];
		$setup .= "SELECT conveyor.sim_version_set_faulty('f-$s', '$v');\n" if $faulty{$v};
		$setup .= sprintf("INSERT INTO public.crash_expect VALUES ('%s', %d, '%s', %s);\n",
			$s, $k + 1, $v, $faulty{$v} ? 'true' : 'false');
		push @{ $plan_of{$s} }, $v;
	}
}
# the model: what each push should have found (before) and each service should end on
$setup .= q{
	CREATE VIEW public.crash_model AS
	SELECT e.*,
	       coalesce((SELECT b.version FROM public.crash_expect b
	                  WHERE b.service = e.service AND b.seq < e.seq AND NOT b.faulty
	                  ORDER BY b.seq DESC LIMIT 1), 'v1') AS before,
	       coalesce((SELECT l.version FROM public.crash_expect l
	                  WHERE l.service = e.service AND NOT l.faulty
	                  ORDER BY l.seq DESC LIMIT 1), 'v1') AS final
	  FROM public.crash_expect e;
};
$node->safe_psql('deploy', $setup);

# Start the next version on every service without an active push; returns how
# many pushes are active afterwards.
my %next_seq = map { $_ => 0 } @services;
sub start_idle
{
	my ($why) = @_;
	my %busy = map { $_ => 1 } split /\n/, $node->safe_psql('deploy',
		"SELECT service FROM conveyor.push WHERE state IN ('running', 'paused')");
	my $sql = '';
	for my $s (@services)
	{
		next if $busy{$s} || $next_seq{$s} > $#{ $plan_of{$s} };
		$sql .= "SELECT conveyor.push_start('$s', '$plan_of{$s}[$next_seq{$s}]', '$why');\n";
		$next_seq{$s}++;
		$busy{$s} = 1;
	}
	$node->safe_psql('deploy', $sql) if $sql ne '';
	return scalar keys %busy;
}
sub versions_left
{
	my $n = 0;
	$n += @{ $plan_of{$_} } - $next_seq{$_} for @services;
	return $n;
}

# ------------------------------------------------------------------ crashes

my $crashes = 0;
my $crashes_in_flight = 0;
for my $k (0 .. $#crash_after)
{
	# keep every service busy until the kill: start its next version once it is idle
	my $until = time + $crash_after[$k];
	while (1)
	{
		start_idle('crash test round ' . ($k + 1));
		my $left = $until - time;
		last if $left <= 0;
		sleep($left < 0.1 ? $left : 0.1);
	}
	my ($active, $sent, $phases) = split /\|/, $node->safe_psql('deploy', q{
		SELECT (SELECT count(*) FROM conveyor.push WHERE state IN ('running', 'paused')),
		       (SELECT count(*) FROM conveyor.push_subunit ps JOIN conveyor.push p ON p.id = ps.push_id
		         WHERE p.state = 'running' AND ps.state = 'sent'),
		       (SELECT string_agg(x, ' ') FROM (
		            SELECT format('%s:%s/%s=%s', kind, phase, step, count(*)) x FROM conveyor.push
		             WHERE state = 'running' GROUP BY kind, phase, step ORDER BY kind, phase, step) y)});
	note sprintf('crash %d after %.1f s: %d pushes active, %d updates in flight (%s)',
		$k + 1, $crash_after[$k], $active, $sent, $phases // '');
	$crashes_in_flight++ if $active > 0;
	$node->stop('immediate');
	$crashes++;
	$node->start;
	ok(wait_workers($node, 3, 'deploy'), 'three workers back after crash ' . ($k + 1));
}
ok($crashes_in_flight > 0, 'the cluster was killed with pushes in flight')
  or diag "$crashes_in_flight of $crashes crashes found a push active";

# The remaining versions, without crashes, until every push has ended.
my $deadline = time + 150;
while (time < $deadline)
{
	my $active = start_idle('crash test, after the crashes');
	last if $active == 0 && versions_left() == 0;
	sleep(0.25);
}
is(versions_left(), 0, 'every version of every service was pushed');
ok($node->poll_query_until('deploy',
	"SELECT count(*) = 0 FROM conveyor.push WHERE state IN ('running', 'paused')"),
	'every push finished (none running or paused)')
  or diag $node->safe_psql('deploy', q{
	SELECT id, service, version, kind, state, phase, step, next_step_at, errors
	  FROM conveyor.push WHERE state IN ('running', 'paused') ORDER BY id});
note sprintf('crashes done and every push ended %.1f s after the test started', time - $t_start);

# ------------------------------------------------------------------ audit

# no_rows(NAME, SQL): passes when SQL returns nothing; otherwise shows the rows.
sub no_rows
{
	my ($name, $sql) = @_;
	my $out = $node->safe_psql('deploy', $sql);
	my @rows = split /\n/, $out;
	my $ok = ok(@rows == 0, $name);
	if (!$ok)
	{
		diag scalar(@rows) . ' offending rows' . (@rows > 40 ? ', first 40' : '') . ':';
		diag join "\n", @rows[0 .. ($#rows < 39 ? $#rows : 39)];
	}
	return $ok;
}

is($node->safe_psql('deploy', q{
	SELECT count(*) FROM conveyor.push p JOIN public.crash_expect e USING (service, version)
	 WHERE p.kind = 'push'}),
	$n_services * @versions, 'one push per service and version the test started');
no_rows('no push the test did not start', q{
	SELECT p.id, p.service, p.version, p.kind FROM conveyor.push p
	 WHERE p.kind = 'push' AND NOT EXISTS
	       (SELECT FROM public.crash_expect e WHERE e.service = p.service AND e.version = p.version)});

# outcomes
no_rows('every healthy version\'s push succeeded (state succeeded, outcome success)', q{
	SELECT p.id, p.service, p.version, p.state, p.outcome, p.outcome_reason
	  FROM conveyor.push p JOIN public.crash_model m USING (service, version)
	 WHERE p.kind = 'push' AND NOT m.faulty
	   AND (p.state, p.outcome) IS DISTINCT FROM ('succeeded', 'success')
	 ORDER BY p.id});
no_rows('every faulty version\'s push was reverted (state reverted, outcome good failure) in its first phase', q{
	SELECT p.id, p.service, p.version, p.state, p.phase, p.outcome, p.outcome_reason
	  FROM conveyor.push p JOIN public.crash_model m USING (service, version)
	 WHERE p.kind = 'push' AND m.faulty
	   AND ((p.state, p.outcome) IS DISTINCT FROM ('reverted', 'good failure') OR p.phase <> 0)
	 ORDER BY p.id});
no_rows('every reverted push has exactly one revert push, and it succeeded', q{
	SELECT p.id, p.service, p.version, count(r.id) AS reverts,
	       string_agg(format('%s %s/%s', r.id, r.state, r.outcome), ', ') AS revert_pushes
	  FROM conveyor.push p LEFT JOIN conveyor.push r ON r.reverts = p.id
	 WHERE p.state = 'reverted'
	 GROUP BY p.id
	HAVING count(r.id) <> 1
	    OR bool_or((r.state, r.outcome, r.kind) IS DISTINCT FROM ('succeeded', 'success', 'revert'))
	 ORDER BY p.id});
no_rows('revert pushes exist only for reverted pushes and go back to the version before', q{
	SELECT r.id, r.service, r.version, r.reverts, o.state AS original_state, m.before
	  FROM conveyor.push r
	  JOIN conveyor.push o ON o.id = r.reverts
	  LEFT JOIN public.crash_model m ON m.service = o.service AND m.version = o.version
	 WHERE r.kind = 'revert'
	   AND (o.state <> 'reverted' OR r.version IS DISTINCT FROM m.before OR r.service <> o.service)
	 ORDER BY r.id});

# transitions, exactly once
my $terminal = q{('push_succeeded', 'push_failed', 'push_reverted', 'push_cancelled')};
no_rows('exactly one push_started event per push', q{
	SELECT p.id, p.kind, p.service, p.version, count(e.id) AS push_started
	  FROM conveyor.push p
	  LEFT JOIN conveyor.push_event e ON e.push_id = p.id AND e.kind = 'push_started'
	 GROUP BY p.id HAVING count(e.id) <> 1 ORDER BY p.id});
no_rows('exactly one terminal event per push, matching its state', qq{
	SELECT p.id, p.kind, p.state, string_agg(e.kind, ', ' ORDER BY e.id) AS terminal_events
	  FROM conveyor.push p
	  LEFT JOIN conveyor.push_event e ON e.push_id = p.id AND e.kind IN $terminal
	 GROUP BY p.id
	HAVING count(e.id) <> 1 OR bool_or(e.kind IS DISTINCT FROM 'push_' || p.state)
	 ORDER BY p.id});
my $expected_phases = q{
	WITH expected AS (
	    SELECT ph.push_id, ph.position AS phase,
	           CASE WHEN p.state = 'succeeded' OR ph.position <= p.phase THEN 1 ELSE 0 END AS started,
	           CASE WHEN p.state = 'succeeded' OR ph.position < p.phase THEN 1 ELSE 0 END AS succeeded
	      FROM conveyor.push_phase ph JOIN conveyor.push p ON p.id = ph.push_id),
	actual AS (
	    SELECT push_id, phase,
	           count(*) FILTER (WHERE kind = 'phase_started') AS started,
	           count(*) FILTER (WHERE kind = 'phase_succeeded') AS succeeded
	      FROM conveyor.push_event WHERE kind LIKE 'phase\_%' GROUP BY push_id, phase)
	SELECT coalesce(x.push_id, a.push_id) AS push_id, coalesce(x.phase, a.phase) AS phase,
	       x.started AS expected_started, a.started, x.succeeded AS expected_succeeded, a.succeeded
	  FROM expected x FULL JOIN actual a ON a.push_id = x.push_id AND a.phase = x.phase
};
no_rows('exactly one phase_started per phase reached (none for phases never reached)',
	$expected_phases . q{
	 WHERE coalesce(x.started, 0) <> coalesce(a.started, 0) ORDER BY 1, 2});
no_rows('exactly one phase_succeeded per phase passed (none for the failed phase of a reverted push)',
	$expected_phases . q{
	 WHERE coalesce(x.succeeded, 0) <> coalesce(a.succeeded, 0) ORDER BY 1, 2});
no_rows('no other phase event (failed, skipped) was recorded', q{
	SELECT push_id, phase, kind, reason FROM conveyor.push_event
	 WHERE kind LIKE 'phase\_%' AND kind NOT IN ('phase_started', 'phase_succeeded') ORDER BY id});
# the whole transition history of each push, in order
no_rows('each push\'s transitions are recorded once each, in order', qq{
	WITH actual AS (
	    SELECT p.id, string_agg(e.kind || coalesce(':' || e.phase, ''), ' ' ORDER BY e.id) AS got
	      FROM conveyor.push p JOIN conveyor.push_event e ON e.push_id = p.id
	     WHERE e.kind IN ('push_started', 'phase_started', 'updates_confirmed', 'phase_succeeded',
	                      'phase_failed', 'phase_skipped', 'push_paused', 'push_resumed')
	        OR e.kind IN $terminal
	     GROUP BY p.id),
	expected AS (
	    SELECT p.id,
	           CASE WHEN p.state = 'succeeded' THEN
	                'push_started '
	                || (SELECT string_agg(format('phase_started:%s updates_confirmed:%s phase_succeeded:%s',
	                                             ph.position, ph.position, ph.position), ' ' ORDER BY ph.position)
	                      FROM conveyor.push_phase ph WHERE ph.push_id = p.id)
	                || ' push_succeeded:' || (SELECT max(position) FROM conveyor.push_phase ph WHERE ph.push_id = p.id)
	           WHEN p.state = 'reverted' THEN
	                'push_started '
	                || coalesce((SELECT string_agg(format('phase_started:%s updates_confirmed:%s phase_succeeded:%s ',
	                                                      ph.position, ph.position, ph.position), '' ORDER BY ph.position)
	                               FROM conveyor.push_phase ph WHERE ph.push_id = p.id AND ph.position < p.phase), '')
	                || format('phase_started:%s updates_confirmed:%s push_reverted:%s', p.phase, p.phase, p.phase)
	           END AS want
	      FROM conveyor.push p)
	SELECT x.id, p.kind, p.state, x.want, a.got
	  FROM expected x JOIN conveyor.push p USING (id) LEFT JOIN actual a USING (id)
	 WHERE x.want IS DISTINCT FROM a.got ORDER BY x.id});
no_rows('no step errors, push-type errors or pauses were recorded', q{
	SELECT push_id, kind, phase, detail FROM conveyor.push_event
	 WHERE kind IN ('step_error', 'push_type_error', 'push_paused') ORDER BY id});

# updates, exactly once
no_rows('every planned update was sent once and confirmed (push_subunit attempts = 1, state done)', q{
	SELECT push_id, unit, subunit, phase, state, attempts, error FROM conveyor.push_subunit
	 WHERE attempts <> 1 OR state <> 'done' ORDER BY push_id, unit, subunit});
no_rows('each started phase sent (update_batch events) exactly its targets, one row each', q{
	SELECT ph.push_id, ph.position, ph.targets,
	       (SELECT count(*) FROM conveyor.push_subunit ps WHERE ps.push_id = ph.push_id AND ps.phase = ph.position) AS rows,
	       (SELECT sum((e.detail->>'sent')::int + coalesce((e.detail->>'done')::int, 0)) FROM conveyor.push_event e
	         WHERE e.push_id = ph.push_id AND e.phase = ph.position AND e.kind = 'update_batch') AS sent
	  FROM conveyor.push_phase ph
	 WHERE ph.state <> 'pending'
	   AND (ph.targets IS DISTINCT FROM
	          (SELECT count(*) FROM conveyor.push_subunit ps WHERE ps.push_id = ph.push_id AND ps.phase = ph.position)
	        OR ph.targets IS DISTINCT FROM
	          (SELECT coalesce(sum((e.detail->>'sent')::int + coalesce((e.detail->>'done')::int, 0)), 0) FROM conveyor.push_event e
	            WHERE e.push_id = ph.push_id AND e.phase = ph.position AND e.kind = 'update_batch'))
	 ORDER BY 1, 2});

# versions
no_rows('every push_subunit of a push goes to the push\'s version, from the version before it', q{
	SELECT ps.push_id, p.service, p.version, m.before, ps.unit, ps.subunit, ps.from_version, ps.to_version
	  FROM conveyor.push_subunit ps JOIN conveyor.push p ON p.id = ps.push_id
	  LEFT JOIN public.crash_model m ON m.service = p.service AND m.version = p.version
	 WHERE p.kind = 'push'
	   AND (ps.to_version IS DISTINCT FROM p.version OR ps.from_version IS DISTINCT FROM m.before)
	 ORDER BY 1, 5, 6});
no_rows('every push_subunit of a revert undoes exactly one update of the reverted push', q{
	SELECT r.id AS revert_id, o.id AS original_id, coalesce(rs.unit, os.unit) AS unit,
	       coalesce(rs.subunit, os.subunit) AS subunit,
	       os.from_version AS original_from, os.to_version AS original_to,
	       rs.from_version AS revert_from, rs.to_version AS revert_to
	  FROM conveyor.push r
	  JOIN conveyor.push o ON o.id = r.reverts
	  JOIN conveyor.push_subunit rs ON rs.push_id = r.id
	  FULL JOIN conveyor.push_subunit os
	    ON os.push_id = r.reverts AND os.unit = rs.unit AND os.subunit = rs.subunit
	 WHERE (os.push_id IS NULL OR os.push_id IN (SELECT reverts FROM conveyor.push WHERE kind = 'revert'))
	   AND (rs.push_id IS NULL OR os.push_id IS NULL
	        OR rs.to_version IS DISTINCT FROM os.from_version
	        OR rs.from_version IS DISTINCT FROM os.to_version)
	 ORDER BY 1, 3, 4});
no_rows('every simulated subunit runs the version its service should end on, settled and healthy', q{
	SELECT sv.name AS service, m.final, n.unit, n.subunit, n.version, n.status, n.faulty, n.target_version
	  FROM conveyor.service sv
	  JOIN (SELECT DISTINCT service, final FROM public.crash_model) m ON m.service = sv.name
	  JOIN conveyor.sim_subunit_now n ON n.fleet = sv.push_type_config->>'fleet'
	 WHERE n.version IS DISTINCT FROM m.final OR n.status <> 'ok' OR n.faulty
	 ORDER BY 1, 3, 4});
is($node->safe_psql('deploy', q{
	SELECT count(*) FROM conveyor.sim_subunit_now n
	  JOIN conveyor.service sv ON n.fleet = sv.push_type_config->>'fleet'}),
	$n_services * 30, 'every fleet still has its 30 subunits');

# push and phase rows
no_rows('ended pushes have ended_at and outcome, and nothing left due', q{
	SELECT id, state, outcome, ended_at, next_step_at FROM conveyor.push
	 WHERE state NOT IN ('running', 'paused')
	   AND (ended_at IS NULL OR outcome IS NULL OR next_step_at IS NOT NULL)
	 ORDER BY id});
no_rows('succeeded pushes are on their last phase with every phase succeeded', q{
	SELECT p.id, p.kind, p.phase, p.step, ph.position, ph.state, ph.started_at, ph.ended_at
	  FROM conveyor.push p JOIN conveyor.push_phase ph ON ph.push_id = p.id
	 WHERE p.state = 'succeeded'
	   AND (ph.state <> 'succeeded' OR ph.started_at IS NULL OR ph.ended_at IS NULL
	        OR p.phase <> (SELECT max(position) FROM conveyor.push_phase x WHERE x.push_id = p.id))
	 ORDER BY 1, 5});
no_rows('reverted pushes: phases before succeeded, the current one failed, later ones pending', q{
	SELECT p.id, p.phase, p.step, ph.position, ph.state
	  FROM conveyor.push p JOIN conveyor.push_phase ph ON ph.push_id = p.id
	 WHERE p.state = 'reverted'
	   AND ph.state <> CASE WHEN ph.position < p.phase THEN 'succeeded'
	                        WHEN ph.position = p.phase THEN 'failed' ELSE 'pending' END
	 ORDER BY 1, 4});

# the server log
my $log = slurp_file($node->logfile);
my @log = split /\n/, $log;
# Before the final (fast) stop, which ends the workers with FATAL and exit
# code 1 as it should. stop('immediate') itself only logs "received immediate
# shutdown request". pg_cron's launcher exits with code 1 once at the start
# (the database does not exist yet); that is pg_cron's business, not a crash.
my @crashy = grep {
	/PANIC|TRAP:|terminated by signal|was terminated by|terminating any other active server processes/
	  || /background worker "conveyor [a-z]+" \(PID \d+\) exited with exit code/
	  || /conveyor (worker|launcher) (FATAL|ERROR):/
} @log;
ok(@crashy == 0, 'the server log shows no crash: no PANIC, TRAP, signal, crash restart, '
	  . 'or conveyor process exiting with an error')
  or diag join "\n", @crashy[0 .. ($#crashy < 29 ? $#crashy : 29)];
my @step_failed = grep { /conveyor: step of push \d+ failed/ } @log;
ok(@step_failed == 0, 'no step of a push failed (no "conveyor: step of push ... failed" warning)')
  or diag join "\n", @step_failed[0 .. ($#step_failed < 29 ? $#step_failed : 29)];
is(scalar(grep { /database system was not properly shut down; automatic recovery in progress/ } @log),
	$crashes, 'each kill was a real crash: crash recovery ran after each');
is(scalar(grep { /conveyor worker: extension found in database "deploy"/ } @log),
	$crashes + 1, 'the workers found the extension again after each restart');

$node->stop;
note sprintf('010_crash ran %.1f s', time - $t_start);
done_testing();
