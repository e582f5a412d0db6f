#!/usr/bin/env bash
# test/bench/health_sql.sh [SUMMARY_FILE]: healthcheck evaluation on a
# throwaway cluster (run by test/bench/run.sh as a non-root user).
#
# 20 checks (simple and comparison, one reducer each: avg, min, max, sum,
# count, stddev, p50, p90, p95, p99) over 10 metrics with 1M samples in
# their 5-minute window, half on the new version and half on the old:
#   value     conveyor._health_evaluate(push, phase, NULL, NULL): one scan of
#             the metric store, the C reducers and judges, 20 stored rows
#   baseline  the equivalent hand-written SQL on the same data in the same
#             run: per check, its aggregate over the window, FILTERed by
#             version (new and, for comparisons, old), as one UNION ALL query
# Each is run 7 times alternately; the medians are compared (target: the
# evaluation no slower). The evaluation's values must equal the SQL's.
# Knobs: CV_BENCH_HEALTH_SAMPLES (1000000), CV_BENCH_KEEP=1 keeps the cluster.
set -uo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$src/test/lib.sh"

summary=${1:-/dev/null}
samples=${CV_BENCH_HEALTH_SAMPLES:-1000000}
db=conveyor_bench
tmp=$(mktemp -d /tmp/conveyor-bench-health.XXXXXX)
dir=$tmp/cluster
rc=0

cleanup() {
  cv_cluster_stop "$dir" immediate
  if [[ $rc -eq 0 && -z "${CV_BENCH_KEEP:-}" ]]; then rm -rf "$tmp"; else echo "health: cluster kept in $tmp"; fi
}
trap cleanup EXIT
q()  { psql -X -q -v ON_ERROR_STOP=1 -h "$dir" -p 5432 -U postgres -d "$db" "$@"; }
qa() { q -tA "$@"; }
row() { printf '%-22s %-34s %-44s %-8s %-9s %s\n' "$@" >>"$summary"; }

echo "health: $(nproc) CPUs; throwaway cluster in $dir"
cv_cluster_init "$dir" "$db" "port = 5432" "shared_buffers = 512MB" "work_mem = 64MB" "max_parallel_workers_per_gather = 0" \
  || { rc=1; row "health eval setup" FAILED "initdb failed" - - FAILED; exit 1; }
cv_cluster_start "$dir" || { rc=1; row "health eval setup" FAILED "the cluster did not start" - - FAILED; exit 1; }
createdb -h "$dir" -p 5432 -U postgres "$db"

# A service baking its first phase (v1 -> v2), 20 checks, 1M samples in the window.
metrics=10
reducers=(avg min max sum count stddev p50 p90 p95 p99)
checks=$(for i in $(seq 0 $((metrics - 1))); do
  r=${reducers[$i]}; r2=${reducers[$(( (i + 5) % 10 ))]}
  printf '{"name": "cmp%s", "metric": "m%s", "kind": "comparison", "reduce": "%s", "threshold": 1000},' "$i" "$i" "$r"
  printf '{"name": "simple%s", "metric": "m%s", "kind": "simple", "reduce": "%s", "threshold": 1e12},' "$i" "$i" "$r2"
done | sed 's/,$//')
q <<SQL || { rc=1; row "health eval setup" FAILED "setup SQL failed" - - FAILED; exit 1; }
CREATE EXTENSION conveyor CASCADE;
SELECT conveyor.push_plan_create('bench_hold', '[{"scope": "region=eu", "amount": "50%", "bake": "1 day"}]');
SELECT conveyor.sim_fleet_create('bench', '{eu,us}', 1, 20, 'v1');
SELECT conveyor.service_create('bench', 'simulated', 'bench_hold', '{"fleet": "bench"}', health_interval => '1 day');
SELECT conveyor.healthcheck_set('bench', '[$checks]');
SELECT conveyor.push_start('bench', 'v2', 'bench');
SQL
push=$(qa -c "SELECT id FROM conveyor.push WHERE service = 'bench'")
# the workers take the push into its day-long bake
for _ in $(seq 100); do
  [[ $(qa -c "SELECT step FROM conveyor.push WHERE id = $push") == bake ]] && break; sleep 0.1
done
if [[ $(qa -c "SELECT step FROM conveyor.push WHERE id = $push") != bake ]]; then
  qa -c "DO \$\$ BEGIN FOR i IN 1..10 LOOP PERFORM conveyor._push_step($push); END LOOP; END \$\$"
fi
echo "health: push $push $(qa -c "SELECT state || ' ' || step FROM conveyor.push WHERE id = $push"); writing $samples samples"
q <<SQL
SELECT conveyor.metric_maintain();
INSERT INTO conveyor.metric_sample (service, metric, unit, subunit, version, at, value)
SELECT 'bench', 'm' || (i % $metrics), 'eu-1', 's' || (i / $metrics % 20), CASE WHEN i / $metrics % 2 = 0 THEN 'v2' ELSE 'v1' END,
       now() - interval '1 second' - random() * interval '4 minutes', random() * 100
  FROM generate_series(0, $samples - 1) i;
VACUUM ANALYZE conveyor.metric_sample;
SQL

# the hand-written SQL: per check, its aggregate over the window, by version
agg() {
  case $1 in
    p50) echo "percentile_cont(0.5) WITHIN GROUP (ORDER BY value)";; p90) echo "percentile_cont(0.9) WITHIN GROUP (ORDER BY value)";;
    p95) echo "percentile_cont(0.95) WITHIN GROUP (ORDER BY value)";; p99) echo "percentile_cont(0.99) WITHIN GROUP (ORDER BY value)";;
    stddev) echo "stddev_samp(value)";; count) echo "count(value)";; *) echo "$1(value)";;
  esac
}
baseline=$(for i in $(seq 0 $((metrics - 1))); do
  r=${reducers[$i]}; r2=${reducers[$(( (i + 5) % 10 ))]}
  w="FROM conveyor.metric_sample WHERE service = 'bench' AND metric = 'm$i' AND at > clock_timestamp() - interval '5 minutes' AND at <= clock_timestamp()"
  echo "SELECT 'cmp$i' AS name, ($(agg "$r") FILTER (WHERE version = 'v2'))::float8 AS new, ($(agg "$r") FILTER (WHERE version = 'v1'))::float8 AS old $w UNION ALL"
  echo "SELECT 'simple$i', ($(agg "$r2") FILTER (WHERE version = 'v2'))::float8, NULL $w UNION ALL"
done | sed '$ s/ UNION ALL$//')

# time one run of a statement, in ms, inside the server
timed() {
  qa -c "DO \$\$ DECLARE t0 timestamptz := clock_timestamp(); BEGIN PERFORM string_agg(x::text, ',') FROM ($1) x; RAISE NOTICE 'ms=%', round(extract(epoch FROM clock_timestamp() - t0)::numeric * 1000, 2); END \$\$" 2>&1 \
    | sed -n 's/.*ms=\([0-9.]*\).*/\1/p'
}
eval_sql="SELECT * FROM conveyor._health_evaluate($push, 0, NULL, NULL)"
ev=(); bl=()
timed "$eval_sql" >/dev/null; timed "$baseline" >/dev/null      # warm the cache
for _ in 1 2 3 4 5 6 7; do
  ev+=("$(timed "$eval_sql")"); bl+=("$(timed "$baseline")")
done
median() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
ev_ms=$(median "${ev[@]}"); bl_ms=$(median "${bl[@]}")
n_window=$(qa -c "SELECT count(*) FROM conveyor.metric_sample WHERE service = 'bench' AND at > clock_timestamp() - interval '5 minutes'")
echo "health: evaluation of 20 checks over $n_window samples: runs ${ev[*]} ms, median $ev_ms ms"
echo "health: hand-written SQL aggregates, same data:      runs ${bl[*]} ms, median $bl_ms ms"

# the evaluation's values equal the SQL's (the last evaluation against a fresh SQL run)
diff=$(qa <<SQL
WITH e AS (SELECT DISTINCT ON (check_name) check_name, value_new, value_old FROM conveyor.health_evaluation
            WHERE push_id = $push ORDER BY check_name, id DESC),
     b AS ($baseline)
SELECT count(*) FROM e JOIN b ON b.name = e.check_name
 WHERE abs(e.value_new - b.new) > 1e-9 * greatest(1, abs(b.new))
    OR abs(coalesce(e.value_old, 0) - coalesce(b.old, 0)) > 1e-9 * greatest(1, abs(coalesce(b.old, 0)))
    OR e.value_new IS NULL
SQL
)
checked=$(qa -c "SELECT count(DISTINCT check_name) FROM conveyor.health_evaluation WHERE push_id = $push AND check_name <> '(push type)'")
if [[ "$diff" != 0 || "$checked" != 20 ]]; then
  rc=1
  row "health eval correctness" "FAILED" "$diff of $checked checks differ from SQL" - - FAILED
else
  row "health eval correctness" "20 checks = SQL aggregates" "values equal the hand-written SQL's" - - ok
fi
ratio=$(awk "BEGIN { printf \"%.2f\", $ev_ms / $bl_ms }")
row "health eval 20 checks" "$ev_ms ms over $((n_window / 1000))k samples" "hand-written SQL aggregates $bl_ms ms" "$ratio" "<= 1.00" \
    "$(awk "BEGIN { exit !($ev_ms <= $bl_ms) }" && echo met || echo 'not met')"
exit $rc
