#!/usr/bin/env bash
# test/bench/engine.sh [SUMMARY_FILE]: the push engine benchmark, on a
# throwaway cluster. Run by test/bench/run.sh (as a non-root user: PostgreSQL
# refuses to run as root). Prints every figure beside a baseline measured in
# the same run on the same cluster, appends summary lines to SUMMARY_FILE,
# and exits non-zero only when a push went wrong, never because of timing.
#
#   throughput  N concurrent pushes (one per service, all started in one
#               transaction) of 3 phases, zero bake, on simulated fleets:
#               phase transitions/s beside pgbench -N tps with as many
#               clients as conveyor has workers, run between the two rounds
#   latency     per transition, from events: (at - due_at) - push_type_ms,
#               beside pgbench's average latency per transaction
#   memory      the workers' RSS, Private_Dirty and memory contexts before,
#               during and after two rounds of the same work
#   CPU         the workers' CPU time per transition beside pgbench's per
#               transaction, and how busy other processes kept the machine:
#               wall-clock rates on a shared machine move with its load
#
# Knobs (environment): CV_BENCH_WORKERS (2), CV_BENCH_SERVICES (1000),
# CV_BENCH_PGBENCH_SECONDS (15), CV_BENCH_KEEP=1 keeps the cluster directory,
# CV_BENCH_TOP_STATEMENTS (12) and CV_BENCH_QUERY_WIDTH (90): the statements
# listed in the diagnostics.
set -uo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$src/test/lib.sh"

summary=${1:-/dev/null}
workers=${CV_BENCH_WORKERS:-2}
services=${CV_BENCH_SERVICES:-1000}
pgbench_secs=${CV_BENCH_PGBENCH_SECONDS:-15}
light_pushes=50
db=conveyor_bench
tmp=$(mktemp -d /tmp/conveyor-bench.XXXXXX)
dir=$tmp/cluster
hz=$(getconf CLK_TCK)
failures=()
sampler_pid=

cleanup() {
  [[ -n "$sampler_pid" ]] && kill "$sampler_pid" 2>/dev/null
  cv_cluster_stop "$dir" immediate
  if [[ ${#failures[@]} -eq 0 && -z "${CV_BENCH_KEEP:-}" ]]; then rm -rf "$tmp"
  else echo "engine: cluster and logs kept in $tmp"; fi
}
trap cleanup EXIT

q()  { psql -X -q -v ON_ERROR_STOP=1 -h "$dir" -p 5432 -U postgres -d "$db" "$@"; }
qa() { q -tA "$@"; }
fail() { failures+=("$1"); echo "engine: FAILED: $1"; }
calc() { awk "BEGIN { printf \"%.${2:-1}f\", ($1) }"; }   # calc EXPR [DECIMALS]
is() { awk "BEGIN { exit !($1) }"; }                            # is CONDITION
row() { printf '%-22s %-34s %-44s %-8s %-9s %s\n' "$@" >>"$summary"; }   # a summary row (see run.sh)

# ---------------------------------------------------------------- cluster

echo "engine: $(nproc) CPUs; throwaway cluster in $dir"
cv_cluster_init "$dir" "$db" "port = 5432" \
    "conveyor.workers = $workers" \
    "max_worker_processes = $((workers + 16 > 32 ? workers + 16 : 32))" \
    "shared_preload_libraries = 'conveyor,pg_cron,pg_stat_statements'" \
    "pg_stat_statements.track = none" \
    "shared_buffers = 256MB" || exit 1
cv_cluster_start "$dir" || exit 1
createdb -h "$dir" -p 5432 -U postgres "$db" || exit 1
q -c "CREATE EXTENSION conveyor CASCADE" -c "CREATE EXTENSION pg_stat_statements" 2>&1 | grep -v '^NOTICE' || true
postmaster_pid=$(head -n 1 "$dir/data/postmaster.pid")

for _ in $(seq 1 100); do   # wait for the workers to find the extension
  n=$(qa -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'conveyor worker'")
  [[ "$n" -ge "$workers" ]] && break
  sleep 0.1
done
worker_pids=$(qa -c "SELECT string_agg(pid::text, ' ' ORDER BY pid) FROM pg_stat_activity WHERE backend_type = 'conveyor worker'")
echo "engine: conveyor.workers = $(qa -c 'SHOW conveyor.workers'), worker processes: ${worker_pids:-none}," \
     "max_worker_processes = $(qa -c 'SHOW max_worker_processes')"
[[ $(wc -w <<<"$worker_pids") -eq $workers ]] || { fail "expected $workers conveyor workers, found: '$worker_pids'"; exit 1; }

t0=$(date +%s.%N)
q -v services="$services" -f "$src/test/bench/engine_setup.sql" >/dev/null || { fail "setup failed"; exit 1; }
printf 'engine: %s services, each with its own simulated fleet (1 region x 1 unit x 4 subunits, update_time 0),\n' "$services"
printf 'engine:   plan bench3 = phases 25%%, 50%% + the completion phase 100%%, bake 0, poll_interval 10 ms (setup %.1f s)\n' \
       "$(calc "$(date +%s.%N) - $t0" 3)"

# ---------------------------------------------------------------- CPU accounting

# ticks of utime+stime of a process (fields 14, 15; 16, 17 add reaped children)
proc_ticks() { awk -v all="${2:-}" '{print $14 + $15 + (all ? $16 + $17 : 0)}' "/proc/$1/stat" 2>/dev/null || echo 0; }
cluster_ticks() {   # the postmaster, its live children, and the children it reaped
  local t p
  t=$(proc_ticks "$postmaster_pid" all)
  for p in $(pgrep -P "$postmaster_pid"); do t=$((t + $(proc_ticks "$p"))); done
  echo "$t"
}
workers_ticks() { local t=0 p; for p in $worker_pids; do t=$((t + $(proc_ticks "$p"))); done; echo "$t"; }
# snapshot: wall seconds, machine busy ticks (all CPUs, steal included), cluster, this script's children, workers
cpu_snap() {
  echo "$(date +%s.%N) $(awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat)" \
       "$(cluster_ticks) $(proc_ticks $$ all) $(workers_ticks)"
}
# cpu_window "SNAP0" "SNAP1": sets w_secs, w_other (CPUs kept busy by other processes), w_cluster_ms, w_self_ms, w_workers_ms
cpu_window() {
  local a b
  read -r -a a <<<"$1"; read -r -a b <<<"$2"
  w_secs=$(calc "${b[0]} - ${a[0]}" 3)
  w_cluster_ms=$(( (b[2] - a[2]) * 1000 / hz )); w_self_ms=$(( (b[3] - a[3]) * 1000 / hz ))
  w_workers_ms=$(( (b[4] - a[4]) * 1000 / hz ))
  w_other=$(calc "((${b[1]} - ${a[1]}) - (${b[2]} - ${a[2]}) - (${b[3]} - ${a[3]})) / $hz / $w_secs" 2)
  is "$w_other < 0" && w_other=0.00
  return 0
}
max_other=0
note_other() { is "$1 > $max_other" && max_other=$1; return 0; }

# ---------------------------------------------------------------- memory

# mem_line LABEL: each worker's RSS (anonymous and shared-memory parts) and Private_Dirty in kB, summed
mem_line() {
  local label=$1 pid rss anon shm pd t_rss=0 t_anon=0 t_shm=0 t_pd=0 parts=()
  for pid in $worker_pids; do
    if [[ ! -r /proc/$pid/status ]]; then parts+=("$pid gone"); continue; fi
    read -r rss anon shm < <(awk '/^VmRSS:/ {r=$2} /^RssAnon:/ {a=$2} /^RssShmem:/ {s=$2} END {print r, a, s}' "/proc/$pid/status")
    pd=$(awk '/^Private_Dirty:/ {print $2}' "/proc/$pid/smaps_rollup" 2>/dev/null)
    parts+=("$pid: $rss/$anon/$shm/${pd:-?}")
    t_rss=$((t_rss + rss)); t_anon=$((t_anon + anon)); t_shm=$((t_shm + shm)); t_pd=$((t_pd + ${pd:-0}))
  done
  printf 'memory %-22s rss %6d kB (anon %5d, shmem %6d), private dirty %5d kB   [per worker rss/anon/shmem/dirty: %s]\n' \
         "$label" "$t_rss" "$t_anon" "$t_shm" "$t_pd" "$(IFS=','; echo "${parts[*]}")"
}
mem_field() { mem_line x | grep -o "$1 *[0-9]*" | head -n 1 | grep -o '[0-9]*$'; }

# mem_contexts: bytes used by the workers' memory contexts (pg_log_backend_memory_contexts), summed
mem_contexts() {
  local pid total=0 used before
  before=$(wc -l <"$dir/server.log")
  for pid in $worker_pids; do qa -c "SELECT pg_log_backend_memory_contexts($pid)" >/dev/null; done
  sleep 0.5
  for pid in $worker_pids; do
    used=$(tail -n +"$((before + 1))" "$dir/server.log" | grep "\[$pid\]" | grep -o 'Grand total: .* used' | tail -n 1 \
           | grep -o '[0-9]* used$' | grep -o '[0-9]*')
    total=$((total + ${used:-0}))
  done
  echo "$total"
}

sample_memory() {   # FILE: a memory line every 0.5 s until killed
  local i=0
  while :; do sleep 0.5; i=$((i + 1)); mem_line "during, t+$(calc "$i * 0.5") s" >>"$1"; done
}

# ---------------------------------------------------------------- rounds

check_round() {
  local res
  res=$(qa -c "SELECT bench.check_round($1)")
  if [[ "$res" == ok ]]; then echo "engine: round $1 correctness: ok (every push succeeded, 3 phase_succeeded each, every subunit on the version)"
  else fail "round $1: $res"; fi
}

# burst_round N VERSION: a push on every service, started in one transaction; wait until none runs
declare -A r_rate r_cpu r_other r_wms
burst_round() {
  local n=$1 version=$2 started s0 s1 trans
  echo
  echo "== engine: round $n ($services concurrent pushes to $version)"
  : >"$tmp/mem.$n"
  s0=$(cpu_snap)
  started=$(qa -c "SELECT bench.start_round($n, '$version')")
  qa -c "UPDATE bench.round SET committed_at = clock_timestamp() WHERE n = $n"
  sample_memory "$tmp/mem.$n" & sampler_pid=$!
  q -c "CALL bench.wait_idle(120)"
  s1=$(cpu_snap)
  kill "$sampler_pid" 2>/dev/null; wait "$sampler_pid" 2>/dev/null; sampler_pid=
  cpu_window "$s0" "$s1"
  echo "engine: round $n: $started pushes started in one transaction"
  qa -c "SELECT * FROM bench.report_round($n)" | sed 's/^/engine: /'
  trans=$(qa -c "SELECT count(*) FROM conveyor.push_event e, bench.round r WHERE r.n = $n AND e.kind = 'phase_succeeded' AND e.push_id BETWEEN r.first_push AND r.last_push")
  r_rate[$n]=$(qa -c "SELECT round($trans / extract(epoch FROM max(p.ended_at) - r.committed_at), 1) FROM bench.round r, conveyor.push p WHERE r.n = $n AND p.id BETWEEN r.first_push AND r.last_push GROUP BY r.committed_at")
  [[ "${trans:-0}" -gt 0 && -n "${r_rate[$n]}" ]] || { fail "round $n: no phase transitions recorded"; r_rate[$n]=0; trans=1; }
  r_cpu[$n]=$(calc "$w_workers_ms / $trans" 3)
  r_other[$n]=$w_other; note_other "$w_other"; r_wms[$n]=$w_workers_ms
  echo "engine: round $n: worker CPU $w_workers_ms ms = ${r_cpu[$n]} ms per transition; other processes on this machine kept $w_other CPUs busy"
  check_round "$n"
  awk 'NR % 2 == 1' "$tmp/mem.$n" | head -n 8
}

echo
echo "== engine: worker memory before any push"
mem_line "idle, before any push"
ctx0=$(mem_contexts)

burst_round 1 v1
mem_line "after round 1"
anon1=$(mem_field anon); pd1=$(mem_field 'private dirty'); rss1=$(mem_field rss); ctx1=$(mem_contexts)

# ---------------------------------------------------------------- baseline

echo
echo "== baseline: pgbench -N -c $workers -j $workers -T $pgbench_secs (clients = conveyor.workers), same cluster, conveyor idle"
pgbench -i -s 10 -q -h "$dir" -p 5432 -U postgres "$db" >"$tmp/pgbench-init.log" 2>&1 \
  || { cat "$tmp/pgbench-init.log"; fail "pgbench -i failed"; exit 1; }
s0=$(cpu_snap)
pgbench -N -c "$workers" -j "$workers" -T "$pgbench_secs" -P 5 -h "$dir" -p 5432 -U postgres "$db" >"$tmp/pgbench.log" 2>&1 \
  || { cat "$tmp/pgbench.log"; fail "pgbench failed"; exit 1; }
sleep 0.2   # let the postmaster reap pgbench's backends, so their CPU time is counted
s1=$(cpu_snap)
cpu_window "$s0" "$s1"
grep -E '^(progress|number of transactions actually|latency average|tps)' "$tmp/pgbench.log" | sed 's/^/pgbench: /'
tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' "$tmp/pgbench.log"); tps=$(calc "$tps / 1" 1)
lat=$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' "$tmp/pgbench.log")
txns=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$tmp/pgbench.log")
pg_srv=$(calc "$w_cluster_ms / $txns" 3); pg_cli=$(calc "$w_self_ms / $txns" 3)
pg_other=$w_other; note_other "$w_other"
echo "pgbench: CPU per transaction: server $pg_srv ms + pgbench client $pg_cli ms; other processes on this machine kept $w_other CPUs busy"

burst_round 2 v2
mem_line "after round 2"
anon2=$(mem_field anon); pd2=$(mem_field 'private dirty'); rss2=$(mem_field rss); ctx2=$(mem_contexts)
echo "memory contexts of the workers (bytes used): before any push $ctx0, after round 1 $ctx1, after round 2 $ctx2"
printf 'memory growth from round 1 to round 2 (the same work again): rss %+d kB (anon %+d kB), private dirty %+d kB, contexts %+d bytes\n' \
       "$((rss2 - rss1))" "$((anon2 - anon1))" "$((pd2 - pd1))" "$((ctx2 - ctx1))"
echo "  (rss grows with the shared buffers a worker has touched; anon and the memory contexts are its own memory)"

echo
echo "== engine: light load ($light_pushes pushes one at a time, so none waits for a busy worker)"
q -c "CALL bench.light_round(3, 'v3', $light_pushes)"
check_round 3
lat_light() { qa -c "SELECT bench.pct(array_agg($1)) FROM bench.round r, bench.latencies(r.first_push, r.last_push) WHERE r.n = 3"; }
echo "engine: light load: latency (at - due_at - push_type_ms):      $(lat_light ms)"
echo "engine: light load:   of it waiting (wake-up and claim):        $(lat_light wait_ms)"
echo "engine: light load:   of it processing:                         $(lat_light proc_ms)"

# ---------------------------------------------------------------- figures

# p99 (or other fraction) of a latency column over rounds 1 and 2, or round 3
lat_fig() { qa -c "SELECT round(percentile_cont($2) WITHIN GROUP (ORDER BY $3)::numeric, 3) FROM bench.round r, bench.latencies(r.first_push, r.last_push) l WHERE r.n IN ($1)"; }
rate=$(calc "(${r_rate[1]} + ${r_rate[2]}) / 2")
pct=$(calc "100 * $rate / $tps")
cpu_tr=$(calc "(${r_cpu[1]} + ${r_cpu[2]}) / 2" 3)
cpu_pct=$(calc "$cpu_tr > 0 ? 100 * ($pg_srv + $pg_cli) / $cpu_tr : 0")
burst_p50=$(lat_fig 1,2 0.5 ms); burst_p99=$(lat_fig 1,2 0.99 ms)
proc_p50=$(lat_fig 1,2 0.5 proc_ms); proc_p99=$(lat_fig 1,2 0.99 proc_ms)
wait_p99=$(lat_fig 1,2 0.99 wait_ms)
light_p50=$(lat_fig 3 0.5 ms); light_p99=$(lat_fig 3 0.99 ms)

echo
echo "== engine: figures"
echo "phase transition = a phase_succeeded event: 3 per push (2 plan phases + the completion phase)"
echo "transition latency = (at - due_at) - push_type_ms of the events that carry timing (phase_started,"
echo "  updates_confirmed, phase_succeeded, push_succeeded); bake and push-type time are excluded"
echo "engine: $rate phase transitions/s ($pct% of pgbench -N's $tps tps with $workers clients; target >= 35%)"
echo "engine:   rounds 1 and 2: ${r_rate[1]} and ${r_rate[2]} transitions/s; pgbench ran between them"
echo "engine: CPU: $cpu_tr ms of worker CPU per transition vs pgbench -N's $pg_srv ms server + $pg_cli ms client per transaction"
echo "engine:   = $cpu_pct% (CPU-normalized ratio: what the rates would compare as on an otherwise idle machine)"
echo "engine: latency per transition, burst of $services: p50 $burst_p50 ms, p99 $burst_p99 ms"
echo "engine:   of it p99 waiting for a worker $wait_p99 ms (pushes queue behind $services due ones), p99 processing $proc_p99 ms"
echo "engine: latency per transition, light load: p50 $light_p50 ms, p99 $light_p99 ms (includes wake-up and claim)"
echo "engine:   target p99 < 5 ms; baseline: pgbench -N's latency average, $lat ms per transaction"
echo "engine: worker memory, round 1 -> round 2: anon $(printf '%+d' $((anon2 - anon1))) kB, memory contexts $(printf '%+d' $((ctx2 - ctx1))) bytes" \
     "(private dirty $(printf '%+d' $((pd2 - pd1))) kB counts shared buffers only this worker touched)"
echo "engine: other processes kept up to $max_other of $(nproc) CPUs busy during the timed windows" \
     "(rounds 1, 2: ${r_other[1]}, ${r_other[2]}; pgbench: $pg_other)"
if is "$max_other > 0.2"; then
  echo "engine: WARNING: the machine was shared; wall-clock rates are disturbed, the CPU-normalized ratio much less"
fi

met() { if is "$1"; then echo met; else echo "not met"; fi; }
flat=$(is "$((anon2 - anon1)) <= 256 && $((ctx2 - ctx1)) <= 65536" && echo met || echo "not met")
row "engine throughput" "$rate transitions/s" "pgbench -N $tps tps, $workers clients" "$pct%" ">= 35%" "$(met "$pct >= 35")"
row "engine CPU/transition" "$cpu_tr ms worker CPU" "pgbench -N $(calc "$pg_srv + $pg_cli" 3) ms CPU/txn (server+client)" "$cpu_pct%" "(>= 35%)" "$(met "$cpu_pct >= 35") (CPU-normalized)"
row "engine latency p99" "$light_p99 ms light load" "pgbench -N $lat ms/txn (average)" "$(calc "$light_p99 / $lat")x" "< 5 ms" "$(met "$light_p99 < 5")"
row "engine latency p99" "$proc_p99 ms burst, processing" "pgbench -N $lat ms/txn (average)" "$(calc "$proc_p99 / $lat")x" "< 5 ms" "$(met "$proc_p99 < 5")"
row "engine latency p99" "$burst_p99 ms burst, with wait" "(waits behind $services due pushes)" "-" "< 5 ms" "$(met "$burst_p99 < 5")"
row "engine worker memory" "$(printf '%+d kB anon, %+d B contexts' $((anon2 - anon1)) $((ctx2 - ctx1)))" "after round 1: $anon1 kB anon, $ctx1 B ctx" "-" "flat" "$flat"
row "machine load" "$max_other of $(nproc) CPUs busy" "(other processes, timed windows)" "-" "-" "$(is "$max_other > 0.2" && echo "shared: rates disturbed" || echo quiet)"

# ---------------------------------------------------------------- diagnostics

echo
echo "== engine: diagnostics (round 4: a burst again, with pg_stat_statements and wait-event sampling)"
q -c "ALTER SYSTEM SET pg_stat_statements.track = 'all'" -c "SELECT pg_reload_conf()" >/dev/null
sleep 0.3
qa -c "SELECT pg_stat_statements_reset()" >/dev/null
started=$(qa -c "SELECT bench.start_round(4, 'v4')")
qa -c "UPDATE bench.round SET committed_at = clock_timestamp() WHERE n = 4"
q -c "CALL bench.sample_waits(60)"
q -c "CALL bench.wait_idle(120)"
check_round 4
echo "worker wait events (sampled every 10 ms):"
q -c "SELECT wait, count(*) AS samples, round(100.0 * count(*) / sum(count(*)) OVER (), 1) AS pct
        FROM bench.wait_sample GROUP BY wait ORDER BY 2 DESC LIMIT 6"
echo "SQL statements per push: $(qa -c "SELECT round(sum(calls) / 1000.0 / $services * 1000) FROM pg_stat_statements
        WHERE query NOT LIKE '%bench.%' AND query NOT LIKE '%pg_stat%' AND query NOT LIKE '%pg_sleep%'")" \
     "(nested ones included; foreign-key checks: $(qa -c "SELECT round(sum(calls)::numeric / $services) FROM pg_stat_statements WHERE query LIKE '%FOR KEY SHARE OF x%'"))"
echo "top statements by total time (nested ones included: _push_step is a whole worker step):"
q -c "SELECT calls, round(total_exec_time::numeric) AS total_ms, round(mean_exec_time::numeric, 3) AS mean_ms,
             left(regexp_replace(query, '\s+', ' ', 'g'), ${CV_BENCH_QUERY_WIDTH:-90}) AS query
        FROM pg_stat_statements WHERE query NOT LIKE '%bench.%' AND query NOT LIKE '%pg_sleep%'
       ORDER BY total_exec_time DESC LIMIT ${CV_BENCH_TOP_STATEMENTS:-12}"
echo "push-type share of the workers' CPU in rounds 1 and 2:"
qa -c "SELECT format('push-type calls %s ms of %s ms worker CPU (%s%%)', round(pt::numeric), $((r_wms[1] + r_wms[2])),
                     round((100 * pt / $((r_wms[1] + r_wms[2])))::numeric, 1))
         FROM (SELECT sum((e.detail->>'push_type_ms')::float8) AS pt FROM conveyor.push_event e, bench.round r
                WHERE r.n IN (1, 2) AND e.push_id BETWEEN r.first_push AND r.last_push AND e.detail ? 'push_type_ms') a"
# src/engine.c engine_claim's query, with now() for its parameter (the current time)
claim="SELECT id, call_ms <= 5 FROM conveyor.push WHERE state = 'running' AND next_step_at <= now()
         AND conveyor._queue_place(next_step_at, call_ms) <= now() + interval '1 second'
       ORDER BY conveyor._queue_place(next_step_at, call_ms) LIMIT 1 FOR UPDATE SKIP LOCKED"
echo "the workers' claim query with no push due, after $(qa -c 'SELECT count(*) FROM conveyor.push') pushes (first run, then again):"
first=$(q -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) $claim")
echo "  first run: $(grep -m 1 -o 'shared hit=[0-9]*' <<<"$first") buffers, $(grep -o 'Execution Time: .*' <<<"$first")"
q -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) $claim" | grep -v '^$' | sed 's/^/  /'

if grep -Eq 'PANIC|TRAP:|terminated by signal' "$dir/server.log"; then
  fail "the server log shows a crash"
  grep -E -B3 -A3 'PANIC|TRAP:|terminated by signal' "$dir/server.log" | head -40
fi
now_pids=$(qa -c "SELECT string_agg(pid::text, ' ' ORDER BY pid) FROM pg_stat_activity WHERE backend_type = 'conveyor worker'")
[[ "$now_pids" == "$worker_pids" ]] || fail "conveyor workers restarted during the run ($worker_pids -> $now_pids)"

if [[ ${#failures[@]} -gt 0 ]]; then
  row "engine correctness" "FAILED" "${failures[*]}" "-" "-" "FAILED"
  exit 1
fi
row "engine correctness" "$((3 * services + light_pushes)) pushes in 4 rounds" "every one succeeded, no step error, no crash" "-" "-" "ok"
exit 0
