#!/usr/bin/env bash
# test/bench/http.sh [SUMMARY_FILE]: the http transport benchmark, on a
# throwaway cluster and the benchmark endpoint (test/http/bench_endpoint.c) on
# loopback. Run by test/bench/run.sh (as a non-root user: PostgreSQL refuses to
# run as root). Prints every figure beside a baseline measured in the same run,
# appends summary rows to SUMMARY_FILE, and exits non-zero only when something
# went wrong (an endpoint answer of the wrong shape, a push that did not
# succeed, a subunit not on its version, a crash), never because of timing.
#
#   endpoint    the endpoint's protocol checks (test/http/bench_endpoint_test.sh)
#   throughput  one push sending update to 1,000 units x 10 subunits through an
#               http push type (one phase of 100%, no bake, updates answered
#               "done"): subunit updates/s from push_started to push_succeeded,
#               beside wrk posting the same kind of requests (500 updates each,
#               fresh keys; test/bench/wrk_update.lua) to the same endpoint with
#               as many connections as the push type's concurrency
#   isolation   a small push to a fast endpoint, alone and then while 200 pushes
#               of 200 services whose endpoint takes 200 ms per request are in
#               flight: its duration with them beside its duration alone
#
# Knobs (environment): CV_BENCH_HTTP_WORKERS (conveyor.workers, default: the
# setting's default), CV_BENCH_HTTP_WRK_SECONDS (5), CV_BENCH_HTTP_PUSHES (12
# big pushes for (a): enough that each worker runs the step's statements more
# than the five times after which plan_cache_mode auto may switch a plan to
# generic), CV_BENCH_HTTP_REPEAT (3 timed small pushes per figure of (b); the
# medians count), CV_BENCH_HTTP_SLOW (200 slow
# services), CV_BENCH_HTTP_DELAY_MS (200), CV_BENCH_KEEP=1 keeps the cluster.
set -uo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$src/test/lib.sh"

summary=${1:-/dev/null}
workers=${CV_BENCH_HTTP_WORKERS:-}
wrk_secs=${CV_BENCH_HTTP_WRK_SECONDS:-5}
repeat=${CV_BENCH_HTTP_REPEAT:-3}
big_pushes=${CV_BENCH_HTTP_PUSHES:-12}
nslow=${CV_BENCH_HTTP_SLOW:-200}
delay_ms=${CV_BENCH_HTTP_DELAY_MS:-200}
units=1000
subunits=10
batch=500            # the push type's max_batch, and wrk's updates per request
concurrency=16       # the push type's concurrency, and wrk's connections
db=conveyor_bench_http
token=bench-http-token-$$-$RANDOM
tmp=$(mktemp -d /tmp/conveyor-bench-http.XXXXXX)
dir=$tmp/cluster
failures=()
pids=()

cleanup() {
  local p
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  cv_cluster_stop "$dir" immediate
  if [[ ${#failures[@]} -eq 0 && -z "${CV_BENCH_KEEP:-}" ]]; then rm -rf "$tmp"
  else echo "http: cluster, endpoint logs and outputs kept in $tmp"; fi
}
trap cleanup EXIT

q()  { psql -X -q -v ON_ERROR_STOP=1 -h "$dir" -p 5432 -U postgres -d "$db" "$@"; }
qa() { q -tA "$@"; }
fail() { failures+=("$1"); echo "http: FAILED: $1"; }
calc() { awk "BEGIN { printf \"%.${2:-1}f\", ($1) }"; }
is() { awk "BEGIN { exit !($1) }"; }
met() { if is "$1"; then echo met; else echo "not met"; fi; }
row() { printf '%-22s %-34s %-44s %-8s %-9s %s\n' "$@" >>"$summary"; }
# median of the numbers on stdin
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print ""; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
finish() {
  if [[ ${#failures[@]} -gt 0 ]]; then
    row "http correctness" "FAILED" "${failures[*]:0:3}" "-" "-" "FAILED"
    exit 1
  fi
  row "http correctness" "$1" "every push succeeded, every subunit on it" "-" "-" "ok"
  exit 0
}

# ---------------------------------------------------------------- endpoint

echo "http: $(nproc) CPUs; work directory $tmp"
if ! gcc -std=gnu11 -O2 -Wall -Wextra -Werror -pthread -I"$src/agent" -o "$tmp/bench_endpoint" \
         "$src/test/http/bench_endpoint.c" "$src/agent/endpoint.c" -lmicrohttpd -ljansson 2>"$tmp/build.err"; then
  cat "$tmp/build.err"; fail "the bench endpoint does not build"; finish -
fi
echo "== http: the bench endpoint's answers (test/http/bench_endpoint_test.sh)"
bash "$src/test/http/bench_endpoint_test.sh" "$tmp/bench_endpoint" "$tmp/endpoint-test" >"$tmp/endpoint-test.out" 2>&1
erc=$?
grep -E '^(not ok|#   )' "$tmp/endpoint-test.out"
echo "http: endpoint checks: $(tail -n 1 "$tmp/endpoint-test.out")"
[[ $erc -eq 0 ]] || { fail "the bench endpoint answered wrongly (test/http/bench_endpoint_test.sh)"; finish -; }

# endpoint NAME ARGS...: start a bench endpoint; its port in $port
endpoint() {
  local name=$1; shift
  "$tmp/bench_endpoint" --token "$token" --port 0 --port-file "$tmp/$name.port" "$@" >"$tmp/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do [[ -s "$tmp/$name.port" ]] && break; sleep 0.05; done
  [[ -s "$tmp/$name.port" ]] || { cat "$tmp/$name.log"; fail "the $name endpoint did not start"; finish -; }
  port=$(cat "$tmp/$name.port")
  echo "http: $(head -n 1 "$tmp/$name.log")"
}
stats() { curl -s "http://127.0.0.1:$1/_stats"; }

threads=$(nproc); ((threads < 2)) && threads=2
endpoint fast --units "$units" --subunits "$subunits" --mode done --threads "$threads"
fast_port=$port
endpoint slow --units 2 --subunits 2 --mode done --threads 2 --delay-ms "$delay_ms"
slow_port=$port
endpoint small --units 2 --subunits 2 --mode done --threads 2
small_port=$port

# ---------------------------------------------------------------- wrk

echo
wrk_ups=
if command -v wrk >/dev/null; then
  echo "== baseline: wrk -t2 -c$concurrency -d${wrk_secs}s, POST /v1/update with $batch updates per request (test/bench/wrk_update.lua)"
  wrk -t2 -c"$concurrency" -d"${wrk_secs}s" --latency -s "$src/test/bench/wrk_update.lua" \
      "http://127.0.0.1:$fast_port/v1/update" -- "$token" "$units" "$subunits" "$batch" >"$tmp/wrk.out" 2>&1
  sed 's/^/wrk: /' "$tmp/wrk.out"
  wrk_rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$tmp/wrk.out")
  st=$(stats "$fast_port")
  bad_answers=$(jq '[.status | to_entries[] | select(.key != "200") | .value] | add // 0' <<<"$st")
  refused=$(jq '.fleets[""].updates_refused' <<<"$st")
  if [[ -z "$wrk_rps" ]] || grep -q 'Non-2xx' "$tmp/wrk.out" || [[ "$bad_answers" != 0 || "$refused" != 0 ]]; then
    fail "wrk's requests were not all answered 200 with every update done ($bad_answers non-200, $refused refused)"
  else
    wrk_ups=$(calc "$wrk_rps * $batch" 0)
    echo "wrk: $wrk_rps requests/s = $wrk_ups subunit updates/s; the endpoint applied $(jq '.fleets[""].updates_applied' <<<"$st") updates"
  fi
  curl -s -X POST "http://127.0.0.1:$fast_port/_reset" >/dev/null
else
  echo "http: wrk is missing (make deps installs it): no baseline"
fi

# ---------------------------------------------------------------- cluster

echo
echo "== http: throwaway cluster in $dir"
conf=("port = 5432" "conveyor.allowed_hosts = '127.0.0.1'" "max_worker_processes = 32"
      "shared_preload_libraries = 'conveyor,pg_cron,pg_stat_statements'" "pg_stat_statements.track = none")
[[ -n "$workers" ]] && conf+=("conveyor.workers = $workers")
cv_cluster_init "$dir" "$db" "${conf[@]}" || { fail "initdb failed"; finish -; }
cv_cluster_start "$dir" || { fail "the cluster did not start"; finish -; }
createdb -h "$dir" -p 5432 -U postgres "$db" || { fail "createdb failed"; finish -; }
q -c "CREATE EXTENSION conveyor CASCADE" -c "CREATE EXTENSION pg_stat_statements" 2>&1 | grep -v '^NOTICE'
workers=$(qa -c "SHOW conveyor.workers")
echo "http: conveyor.workers = $workers, conveyor.allowed_hosts = $(qa -c 'SHOW conveyor.allowed_hosts')"

if ! q -v token="$token" -v fast="http://127.0.0.1:$fast_port" -v slow="http://127.0.0.1:$slow_port" \
       -v small="http://127.0.0.1:$small_port" \
       -v nslow="$nslow" -v batch="$batch" -v concurrency="$concurrency" >"$tmp/setup.out" 2>&1 <<'EOF'
SET client_min_messages = warning;
SELECT conveyor.secret_set('bench_http_token', :'token');
SELECT conveyor.http_push_type_create('bench-http', token_secret => 'bench_http_token', check_health => true,
                                      concurrency => :concurrency, max_batch => :batch,
                                      description => 'benchmark: test/http/bench_endpoint.c on loopback');
SELECT conveyor.push_plan_create('bench-http-all', '[{"scope": "*", "amount": "100%", "bake": "0s"}]',
                                 'benchmark: every subunit in one phase, no bake');
-- (a) 1,000 units x 10 subunits on the fast endpoint's default fleet
SELECT conveyor.service_create('bench-http-big', 'bench-http', 'bench-http-all',
                               push_type_config => jsonb_build_object('endpoints', jsonb_build_array(:'fast')),
                               failure_policy => 'fail', poll_interval => '10 ms', max_in_flight => 100000,
                               retry_limit => 3);
-- (b) :nslow fleets of 2 x 2 on the slow endpoint, and two of 2 x 2 on the small (fast) one:
-- one of the same push type as the slow ones (they share its concurrency cap), one of its own
SELECT conveyor.http_push_type_create('bench-http-own', token_secret => 'bench_http_token', check_health => true,
                                      concurrency => :concurrency, max_batch => :batch,
                                      description => 'benchmark: the small push on a push type of its own');
SELECT conveyor.service_create('bench-http-small', 'bench-http-own', 'bench-http-all',
                               push_type_config => jsonb_build_object('endpoints', jsonb_build_array(:'small' || '/own')),
                               failure_policy => 'fail', poll_interval => '10 ms', retry_limit => 3);
SELECT conveyor.service_create('bench-http-small-shared', 'bench-http', 'bench-http-all',
                               push_type_config => jsonb_build_object('endpoints', jsonb_build_array(:'small' || '/shared')),
                               failure_policy => 'fail', poll_interval => '10 ms', retry_limit => 3);
SELECT count(*) FROM (
    SELECT conveyor.service_create('bench-http-slow-' || i, 'bench-http', 'bench-http-all',
                                   push_type_config => jsonb_build_object('endpoints', jsonb_build_array(:'slow' || '/s' || i)),
                                   failure_policy => 'fail', poll_interval => '10 ms', retry_limit => 3)
      FROM generate_series(1, :nslow) i) x;

CREATE SCHEMA bench;
-- Wait until push ID has ended (a new snapshot per check); its state. Durations come from its
-- events, so the look interval only sets when the next run starts; each look costs CPU the
-- workers could use, so it looks every 20 ms, not every 5.
CREATE PROCEDURE bench.wait_push(id bigint, timeout_s float8, INOUT state text DEFAULT NULL) LANGUAGE plpgsql AS $$
DECLARE
    deadline timestamptz := clock_timestamp() + make_interval(secs => timeout_s);
BEGIN
    LOOP
        SELECT p.state INTO state FROM conveyor.push p WHERE p.id = wait_push.id;
        EXIT WHEN state NOT IN ('running', 'paused') OR clock_timestamp() > deadline;
        COMMIT;
        PERFORM pg_sleep(0.02);
    END LOOP;
END $$;
-- Wait until none of the services LIKE pattern has a running push.
CREATE PROCEDURE bench.wait_idle(pattern text, timeout_s float8) LANGUAGE plpgsql AS $$
DECLARE
    deadline timestamptz := clock_timestamp() + make_interval(secs => timeout_s);
BEGIN
    LOOP
        EXIT WHEN NOT EXISTS (SELECT FROM conveyor.push WHERE service LIKE pattern AND state IN ('running', 'paused'));
        IF clock_timestamp() > deadline THEN
            RAISE WARNING 'bench: pushes of % still running after % s', pattern, timeout_s;
            EXIT;
        END IF;
        COMMIT;
        PERFORM pg_sleep(0.02);
    END LOOP;
END $$;
-- Sample what the conveyor workers are doing every 20 ms, until bench.sampling is emptied.
CREATE TABLE bench.sampling (on_ boolean);
CREATE TABLE bench.worker_sample (what text);
CREATE PROCEDURE bench.sample_workers(timeout_s float8) LANGUAGE plpgsql AS $$
DECLARE
    deadline timestamptz := clock_timestamp() + make_interval(secs => timeout_s);
BEGIN
    LOOP
        EXIT WHEN NOT EXISTS (SELECT FROM bench.sampling) OR clock_timestamp() > deadline;
        INSERT INTO bench.worker_sample
        SELECT coalesce(state, '?') || ' / ' || coalesce(wait_event_type || ':' || wait_event, 'on CPU')
          FROM pg_stat_activity WHERE backend_type = 'conveyor worker';
        COMMIT;
        PERFORM pg_sleep(0.02);
    END LOOP;
END $$;
-- A push's duration, push_started to its end event (ms).
CREATE FUNCTION bench.duration_ms(p_id bigint) RETURNS float8 LANGUAGE sql AS $$
    SELECT extract(epoch FROM max(at) FILTER (WHERE kind IN ('push_succeeded', 'push_failed', 'push_cancelled'))
                              - min(at) FILTER (WHERE kind = 'push_started')) * 1000
      FROM conveyor.push_event WHERE push_id = p_id
$$;
-- What went wrong with push ID, or 'ok'.
CREATE FUNCTION bench.problems(id bigint) RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(string_agg(x, '; '), 'ok') FROM (
        SELECT format('push %s is %s%s', p.id, p.state, coalesce(': ' || p.outcome_reason, ''))
          FROM conveyor.push p WHERE p.id = problems.id AND p.state <> 'succeeded'
        UNION ALL
        SELECT format('%s %s events (%s)', count(*), e.kind, left(string_agg(DISTINCT e.detail->>'error', ' | '), 300))
          FROM conveyor.push_event e WHERE e.push_id = problems.id AND e.kind IN ('push_type_error', 'step_error')
         GROUP BY e.kind) y(x)
$$;
EOF
then
  cat "$tmp/setup.out"
  fail "setup failed (the http push type's SQL API, see above)"
  finish -
fi

# timeline ID: the push's events, ms after push_started, with the push-type time of each step
timeline() {
  q -c "SELECT e.kind, round(extract(epoch FROM e.at - s.at)::numeric * 1000, 1) AS at_ms,
               round(extract(epoch FROM (e.detail->>'due_at')::timestamptz - s.at)::numeric * 1000, 1) AS due_ms,
               round(extract(epoch FROM (e.detail->>'started_at')::timestamptz - s.at)::numeric * 1000, 1) AS started_ms,
               round((e.detail->>'push_type_ms')::numeric, 1) AS push_type_ms,
               left(coalesce(e.detail - 'due_at' - 'started_at' - 'push_type_ms', '{}')::text, 80) AS detail
          FROM conveyor.push_event e,
               (SELECT at FROM conveyor.push_event WHERE push_id = $1 AND kind = 'push_started') s
         WHERE e.push_id = $1 ORDER BY e.id" | sed 's/^/  /'
}

# ---------------------------------------------------------------- (a) throughput

echo
echo "http: load average before the timed runs: $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs; other work on the machine disturbs wall-clock rates)"
echo "== http: (a) one push of $((units * subunits)) subunit updates ($units units x $subunits) to the fast endpoint, $big_pushes times (and once before, for diagnostics)"
declare -a a_ups=() a_send=()
a_diag=0            # the diagnostic run, when it succeeded and was checked
# run 0 is for diagnostics, with every statement tracked (pg_stat_statements.track = all costs the
# workers a few microseconds per statement, hundreds per push): printed, not counted; the timed
# runs and (b) run untracked, as the engine benchmark's do
tracking() {   # tracking all|none: pg_stat_statements.track, taken by the workers at their next loop
  q -c "ALTER SYSTEM SET pg_stat_statements.track = '$1'" -c "SELECT pg_reload_conf()" >/dev/null
  sleep 0.2
}
for r in $(seq 0 "$big_pushes"); do
  v="v$((r + 2))"
  curl -s -X POST "http://127.0.0.1:$fast_port/_reset" >/dev/null     # every subunit on v1 again, counters cleared
  [[ $r -eq 0 ]] && { tracking all; qa -c "SELECT pg_stat_statements_reset()" >/dev/null; }
  id=$(qa -c "SELECT conveyor.push_start('bench-http-big', '$v', 'benchmark (a), run $r')") || { fail "(a) push_start failed"; break; }
  state=$(qa -c "CALL bench.wait_push($id, 300)")
  ms=$(qa -c "SELECT round(bench.duration_ms($id)::numeric, 1)")
  problems=$(qa -c "SELECT bench.problems($id)")
  st=$(stats "$fast_port")
  on_v=$(curl -s -H "Authorization: Bearer $token" -H 'Conveyor-Protocol: 1' "http://127.0.0.1:$fast_port/v1/units" |
         jq --arg v "$v" '[.units[].subunits[] | select(.version == $v)] | length')
  applied=$(jq '.fleets[""].updates_applied' <<<"$st"); maxap=$(jq '.fleets[""].max_applied_per_subunit' <<<"$st")
  reqs=$(jq -c '.fleets[""].requests + {all: .requests_total, max_in_flight}' <<<"$st")
  echo "http: (a) run $r: push $id $state in ${ms:-?} ms; endpoint: $applied updates applied (at most $maxap per subunit), requests $reqs"
  if [[ "$problems" != ok ]]; then fail "(a) run $r: $problems"; timeline "$id"; continue; fi
  if [[ "$on_v" != $((units * subunits)) || "$applied" != $((units * subunits)) || "$maxap" != 1 ]]; then
    fail "(a) run $r: $on_v of $((units * subunits)) subunits on $v, $applied updates applied, at most $maxap per subunit"
    continue
  fi
  [[ -n "$ms" ]] || { fail "(a) run $r: push $id has no duration"; continue; }
  if [[ $r -eq 0 ]]; then a_diag=1; else a_ups+=("$(calc "$units * $subunits / ($ms / 1000)" 0)"); fi
  # the transport alone: the send-update calls (every request out, every answer
  # checked and recorded), as the update_batch events time them
  send_ms=$(qa -c "SELECT round(sum((detail->>'push_type_ms')::numeric), 1) FROM conveyor.push_event
                    WHERE push_id = $id AND kind = 'update_batch'")
  [[ -n "$send_ms" && $r -gt 0 ]] && a_send+=("$(calc "$units * $subunits / ($send_ms / 1000)" 0)")
  echo "http: (a) run $r: the send-update calls took $send_ms ms"
  if [[ $r -eq 0 ]]; then
    echo "http: (a) run 0 (diagnostics, not counted), events (ms after push_started; due, started: when the step was due and began; push_type_ms: in calls):"
    timeline "$id"
    echo "http: (a) run 0, SQL statements by total time (nested ones included; the workers' and this script's):"
    q -c "SELECT calls, round(total_exec_time::numeric, 1) AS total_ms, round(mean_exec_time::numeric, 3) AS mean_ms,
                 left(regexp_replace(query, '\s+', ' ', 'g'), 100) AS query
            FROM pg_stat_statements WHERE query NOT LIKE '%bench.%' AND query NOT LIKE '%pg_stat_statements%' AND query NOT LIKE '%pg_sleep%'
           ORDER BY total_exec_time DESC LIMIT 14" | sed 's/^/  /'
    tracking none
  fi
done
a_med=$(printf '%s\n' "${a_ups[@]}" | median)
if [[ -n "$a_med" ]]; then
  a_min=$(printf '%s\n' "${a_ups[@]}" | sort -g | head -n 1)
  echo "http: (a) subunit updates/s per run: ${a_ups[*]}; median $a_med, slowest run $a_min"
  if [[ -n "$wrk_ups" ]]; then
    s_med=$(printf '%s\n' "${a_send[@]}" | median)
    s_pct=$(calc "100 * $s_med / $wrk_ups")
    echo "http: (a) send update: $s_med updates/s in the transport's calls (runs: ${a_send[*]}) = $s_pct% of wrk's $wrk_ups (target >= 50%)"
    row "http send update" "$s_med subunit updates/s" "wrk $wrk_ups updates/s ($batch/request, -c$concurrency)" "$s_pct%" ">= 50%" "$(met "$s_pct >= 50")"
    pct=$(calc "100 * $a_med / $wrk_ups")
    echo "http: (a) the whole push (planning, bookkeeping of every subunit, two phases): $a_med updates/s = $pct% of wrk's"
    row "http push end to end" "$a_med subunit updates/s (slowest $a_min)" "wrk $wrk_ups updates/s" "$pct%" "-" "-"
  else
    row "http push throughput" "$a_med subunit updates/s" "(wrk missing: no baseline)" "-" ">= 50%" "no baseline"
  fi
fi

# ---------------------------------------------------------------- (b) isolation

echo
echo "== http: (b) a push to a fast endpoint, alone and beside $nslow pushes to endpoints taking $delay_ms ms per request"
# small_push SERVICE VERSION LABEL: its duration (ms) in $dur, empty if it went wrong. One session,
# connected (and wait_push planned) before the push starts, starts it and waits for it: a psql and a
# backend starting while the push ran cost about 45 ms of CPU, more than the push's own work, and
# took half the 2 cores of its 64 ms beside the slow pushes (perf sched timehist).
small_push() {
  local id state problems out svc=$1
  shift
  dur=
  out=$(qa -v svc="$svc" -v version="$1" -v reason="benchmark (b): $2" 2>&1 <<'EOF'
CALL bench.wait_push(NULL, 0);
SELECT conveyor.push_start(:'svc', :'version', :'reason') AS id \gset
CALL bench.wait_push(:id, 300) \gset
SELECT :id, :'state', round(bench.duration_ms(:id)::numeric, 1), bench.problems(:id);
EOF
)
  IFS='|' read -r id state dur problems <<<"$(tail -n 1 <<<"$out")"
  if [[ -z "$id" || "$id" == *[!0-9]* ]]; then fail "(b) $2: push_start failed: $out"; dur=; return; fi
  if [[ "$problems" != ok ]]; then fail "(b) $2: $problems"; timeline "$id"; dur=; return; fi
  small_id=$id
  [[ -n "$dur" ]] || fail "(b) $2: push $id has no duration"
}
declare -a alone=() beside=()
n=0
for r in $(seq 1 "$repeat"); do
  n=$((n + 1)); small_push bench-http-small "s$n" "alone, run $r"; [[ -n "$dur" ]] && alone+=("$dur")
done
echo "http: (b) the small push alone: ${alone[*]} ms"
[[ ${#alone[@]} -gt 0 ]] && { echo "http: (b) its events, alone:"; timeline "$small_id"; }

# push_start asks the endpoints for their units itself (200 ms each here), so start them from 25
# sessions, each paused in its starting transaction; then resume all in one, so they run together
first_slow=$(qa -c "SELECT coalesce(max(id), 0) + 1 FROM conveyor.push")
t0=$(date +%s.%N)
for i in $(seq 1 "$nslow"); do echo "$i"; done |
  xargs -P 25 -I{} psql -X -q -v ON_ERROR_STOP=1 -h "$dir" -p 5432 -U postgres -d "$db" -tA \
        -c "SELECT conveyor.push_pause(x.id, 'benchmark: resumed all at once') FROM
              (SELECT conveyor.push_start('bench-http-slow-{}', 'slow2', 'benchmark (b): a slow push') AS id) x" >/dev/null \
  || fail "(b) starting the slow pushes failed"
echo "http: (b) $nslow slow pushes started (paused) in $(calc "$(date +%s.%N) - $t0" 2) s (25 sessions; push_start waits for the endpoint's units)"
qa -c "SELECT count(conveyor.push_resume(id, 'benchmark: all at once')) FROM conveyor.push
        WHERE service LIKE 'bench-http-slow-%' AND state = 'paused'" >/dev/null || fail "(b) resuming the slow pushes failed"
# wait until the slow endpoint holds requests, so the small push really runs beside them
for _ in $(seq 1 200); do
  [[ $(stats "$slow_port" | jq '.delayed') -gt 0 ]] && break
  sleep 0.01
done
qa -c "INSERT INTO bench.sampling VALUES (true)"
q -c "CALL bench.sample_workers(600)" & sampler=$!
declare -a running_after=() shared=()
for r in $(seq 1 "$repeat"); do
  n=$((n + 1)); small_push bench-http-small "s$n" "beside $nslow slow pushes, run $r"; d=$dur
  running=$(qa -c "SELECT count(*) FROM conveyor.push WHERE service LIKE 'bench-http-slow-%' AND state = 'running'")
  held=$(stats "$slow_port" | jq '.delayed')
  echo "http: (b) beside run $r (a push type of its own): ${d:-failed} ms; at its end $running slow pushes still running, $held slow requests held"
  if [[ -n "$d" ]]; then
    beside+=("$d"); running_after+=("$running")
    [[ $r -eq 1 ]] && { echo "http: (b) its events, beside the slow pushes:"; timeline "$small_id"; }
  fi
done
# once: on the slow ones' push type, its requests wait behind theirs under the push type's concurrency cap
small_push bench-http-small-shared "s$n" "beside $nslow slow pushes, shared push type"; d=$dur
running=$(qa -c "SELECT count(*) FROM conveyor.push WHERE service LIKE 'bench-http-slow-%' AND state = 'running'")
echo "http: (b) beside (the slow ones' push type, its own endpoint): ${d:-failed} ms; at its end $running slow pushes still running"
[[ -n "$d" ]] && shared+=("$d")
qa -c "DELETE FROM bench.sampling"; wait "$sampler"
echo "http: (b) what the $workers workers were doing meanwhile (state / wait event, sampled every 20 ms):"
q -c "SELECT what AS \"state / wait event\", count(*) AS samples, round(100.0 * count(*) / sum(count(*)) OVER (), 1) AS pct
        FROM bench.worker_sample GROUP BY what ORDER BY 2 DESC LIMIT 8" | sed 's/^/  /'
q -c "CALL bench.wait_idle('bench-http-slow-%', 600)"
t_slow_end=$(date +%s.%N)
slow_bad=$(qa -c "SELECT count(*) FROM conveyor.push WHERE service LIKE 'bench-http-slow-%' AND id >= $first_slow AND state <> 'succeeded'")
slow_reqs=$(jq -r '[.fleets | to_entries[] | .value.requests | add] | add' <<<"$(stats "$slow_port")")
slow_max=$(stats "$slow_port" | jq '.max_in_flight')
slow_span=$(qa -c "SELECT round(extract(epoch FROM max(ended_at) - min(created_at))::numeric, 2) FROM conveyor.push
                    WHERE service LIKE 'bench-http-slow-%' AND id >= $first_slow")
slow_med=$(qa -c "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY bench.duration_ms(id))::numeric / 1000, 2)
                    FROM conveyor.push WHERE service LIKE 'bench-http-slow-%' AND id >= $first_slow")
echo "http: (b) the $nslow slow pushes: all ended after $slow_span s (first start to last end; median push $slow_med s), $slow_reqs requests of $delay_ms ms," \
     "at most $slow_max at once (if calls of different pushes overlapped fully: about $(calc "$slow_reqs * $delay_ms / 1000 / ($slow_max > 0 ? $slow_max : 1)") s)"
if [[ "$slow_bad" != 0 ]]; then
  fail "(b) $slow_bad of the $nslow slow pushes did not succeed: $(qa -c "SELECT string_agg(DISTINCT state || coalesce(': ' || outcome_reason, ''), '; ') FROM conveyor.push WHERE service LIKE 'bench-http-slow-%' AND id >= $first_slow AND state <> 'succeeded'")"
fi
slow_on=$(for i in $(seq 1 "$nslow"); do
            curl -s -H "Authorization: Bearer $token" -H 'Conveyor-Protocol: 1' "http://127.0.0.1:$slow_port/s$i/v1/units"
          done | jq -s '[.[].units[].subunits[] | select(.version == "slow2")] | length')
[[ "$slow_on" == $((nslow * 4)) ]] || fail "(b) $slow_on of $((nslow * 4)) slow subunits on slow2"

alone_med=$(printf '%s\n' "${alone[@]}" | median)
beside_med=$(printf '%s\n' "${beside[@]}" | median)
shared_med=$(printf '%s\n' "${shared[@]}" | median)
if [[ -n "$alone_med" && -n "$beside_med" ]]; then
  ratio=$(calc "$beside_med / $alone_med" 2)
  min_running=$(printf '%s\n' "${running_after[@]}" | sort -n | head -n 1)
  echo "http: (b) the small push: $beside_med ms beside $nslow slow pushes vs $alone_med ms alone: x$ratio (target: at most x2)"
  [[ "${min_running:-0}" -gt 0 ]] || echo "http: (b) WARNING: the slow pushes had all ended before a small push did; the figure is not beside them"
  row "http isolation" "$beside_med ms beside $nslow slow pushes" "the same push alone $alone_med ms" "x$ratio" "<= x2" \
      "$(met "$ratio <= 2")$([[ "${min_running:-0}" -gt 0 ]] || echo ' (slow ones ended first)')"
  if [[ -n "$shared_med" ]]; then
    echo "http: (b) the same small push on the slow ones' push type: $shared_med ms: x$(calc "$shared_med / $alone_med" 2) of alone (the concurrency cap is per endpoint)"
    row "http isolation, shared" "$shared_med ms, same push type" "the same push alone $alone_med ms" "x$(calc "$shared_med / $alone_med" 2)" "-" "(cap per endpoint)"
  fi
  row "http slow pushes" "$nslow in $slow_span s" "$slow_reqs requests x $delay_ms ms, at most $slow_max at once" "-" "-" "-"
fi

if grep -Eq 'PANIC|TRAP:|terminated by signal' "$dir/server.log"; then
  fail "the server log shows a crash"
  grep -E -B3 -A3 'PANIC|TRAP:|terminated by signal' "$dir/server.log" | head -40
fi
finish "$(( ${#a_ups[@]} + a_diag + ${#alone[@]} + ${#beside[@]} + ${#shared[@]} + nslow )) http pushes"
