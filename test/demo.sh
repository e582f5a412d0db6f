#!/usr/bin/env bash
# make demo / make demo-stop: a local cluster in ./.demo with conveyor loaded
# and installed in database "conveyor". Reused when already running.
set -euo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
source "$src/test/lib.sh"

dir="$src/.demo"
db=conveyor
as=()
if [[ $(id -u) -eq 0 ]]; then
  # PostgreSQL refuses to run as root: the cluster belongs to the postgres user
  as=(runuser -u postgres --)
  if ! runuser -u postgres -- test -x "$src"; then dir=/var/tmp/conveyor-demo; fi
  mkdir -p "$dir"; chown postgres:postgres "$dir"
fi
run() { "${as[@]}" env PATH="$PATH" "$@"; }
psql_demo() { psql -X -v ON_ERROR_STOP=1 -h "$dir" -U postgres -d "$db" "$@"; }

case "${1:-start}" in
  stop)
    if [[ -f "$dir/data/postmaster.pid" ]]; then
      run pg_ctl -D "$dir/data" -m fast -w stop
    else
      echo "demo: no cluster running in $dir"
    fi
    exit 0 ;;
  start) ;;
  *) echo "usage: demo.sh start|stop" >&2; exit 2 ;;
esac

if [[ ! -d "$dir/data" ]]; then
  echo "demo: creating a cluster in $dir"
  run bash -c "source '$src/test/lib.sh' && cv_cluster_init '$dir' '$db' 'port = 5432' \"cron.timezone = 'UTC'\""
fi
if ! run pg_ctl -D "$dir/data" status >/dev/null 2>&1; then
  echo "demo: starting it"
  run bash -c "source '$src/test/lib.sh' && cv_cluster_start '$dir'"
else
  echo "demo: reusing the running cluster in $dir"
fi
psql -X -q -h "$dir" -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1 \
  || psql -X -q -h "$dir" -U postgres -d postgres -c "CREATE DATABASE $db"
psql_demo -q -c "CREATE EXTENSION IF NOT EXISTS conveyor CASCADE"

# wait for the workers to notice the extension
for _ in $(seq 1 100); do
  n=$(psql_demo -tAc "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'conveyor worker'")
  [[ "$n" -ge 1 ]] && break
  sleep 0.1
done
psql_demo -c "SELECT extname, extversion FROM pg_extension WHERE extname IN ('conveyor', 'pg_cron') ORDER BY 1" \
          -c "SELECT pid, backend_type, datname, state FROM pg_stat_activity WHERE backend_type LIKE 'conveyor%' ORDER BY backend_type, pid"

# --- the demo: a real push, then a faulty one caught and reverted ------------
q() { psql_demo -qtAX -c "$1"; }

psql_demo -q >/dev/null <<'SQL'
SELECT conveyor.sim_fleet_create('demo', '{eu,us,ap}', 3, 8, 'v1', '300 milliseconds')
 WHERE NOT EXISTS (SELECT 1 FROM conveyor.sim_fleet WHERE name = 'demo');
SELECT conveyor.push_plan_create('demo', '[
    {"scope": "region=eu", "amount": "10%", "bake": "3 seconds"},
    {"scope": "*", "amount": "50%", "bake": "2 seconds"}]', 'canary in eu, then half of everything')
 WHERE NOT EXISTS (SELECT 1 FROM conveyor.push_plan WHERE name = 'demo');
SELECT conveyor.service_create('web', 'simulated', 'demo', '{"fleet": "demo"}', failure_policy => 'revert',
                               health_interval => '1 second', poll_interval => '200 milliseconds')
 WHERE NOT EXISTS (SELECT 1 FROM conveyor.service WHERE name = 'web');
SQL

# watch ID: live progress of a push until it ends (a line per change when not on a terminal)
watch() {
  local id=$1 last="" line
  while :; do
    line=$(q "SELECT format('push %s %-7s %-6s phase %s/%s %-7s %s %3s/%s subunits on %s',
                 p.id, p.kind, p.version, p.phase + 1, (SELECT count(*) FROM conveyor.push_phase WHERE push_id = p.id),
                 p.step,
                 '[' || repeat('#', (20 * n.on_version / n.total)::int) || repeat('.', 20 - (20 * n.on_version / n.total)::int) || ']',
                 n.on_version, n.total, p.version) || '  ' || p.state
              FROM conveyor.push p,
                   LATERAL (SELECT count(*) FILTER (WHERE version = p.version) AS on_version, count(*) AS total
                              FROM conveyor.sim_subunit_now WHERE fleet = 'demo') n
             WHERE p.id = $id")
    if [[ "$line" != "$last" ]]; then
      if [[ -t 1 ]]; then printf '\r\033[K%s' "$line"; else echo "$line"; fi
      last=$line
    fi
    [[ "$line" == *running || "$line" == *paused ]] || break
    sleep 0.2
  done
  [[ -t 1 ]] && echo
  return 0
}

# wait_end ID: wait until push ID has ended
wait_end() { while [[ $(q "SELECT state IN ('running','paused') FROM conveyor.push WHERE id = $1") == t ]]; do sleep 0.2; done; }

n=$(q "SELECT count(*) FROM conveyor.push WHERE kind = 'push'")
good="v$((n + 2))"; bad="v$((n + 3))-faulty"

echo
echo "== 1. pushing $good to service web: 72 simulated subunits in 3 regions, eu first =="
q "SELECT phase, scope, amount, bake, sum(updates) AS subunits FROM conveyor.plan_preview('web', '$good') GROUP BY 1,2,3,4 ORDER BY 1" \
  | awk -F'|' '{printf "   plan: phase %s  %-10s %-5s bake %-9s -> %s subunits\n", $1, $2, $3, $4, $5}'
id=$(q "SELECT conveyor.push_start('web', '$good', 'make demo')")
watch "$id"
q "SELECT format('   push %s ended: %s (%s): %s', id, state, outcome, outcome_reason) FROM conveyor.push WHERE id = $id"

echo
echo "== 2. pushing $bad, a version the simulator marks faulty (unhealthy after deploy) =="
q "SELECT conveyor.sim_version_set_faulty('demo', '$bad')" >/dev/null
id=$(q "SELECT conveyor.push_start('web', '$bad', 'make demo: a bad version')")
watch "$id"
q "SELECT format('   push %s ended: %s (%s): %s', id, state, outcome, outcome_reason) FROM conveyor.push WHERE id = $id"
rid=$(q "SELECT id FROM conveyor.push WHERE reverts = $id")
if [[ -n "$rid" ]]; then
  echo "   the workers revert it with push $rid:"
  wait_end "$rid"
  q "SELECT format('   push %s (revert of %s) ended: %s (%s)', id, reverts, state, outcome) FROM conveyor.push WHERE id = $rid"
fi
q "SELECT format('   subunits now: %s', string_agg(format('%s on %s', n, version), ', ')) FROM (SELECT version, count(*) AS n FROM conveyor.sim_subunit_now WHERE fleet = 'demo' GROUP BY 1) v"

echo
echo "== where to look in psql =="
cat <<LOOK
   SELECT * FROM conveyor.pushes ORDER BY id;                          -- every push, its state and outcome
   SELECT at, kind, phase, actor, reason, detail FROM conveyor.push_event
    WHERE push_id = $id ORDER BY id;                                   -- why push $id stopped
   SELECT * FROM conveyor.plan_preview('web', 'v99');                   -- what a push would do
   SELECT conveyor.push_start('web', 'v99', 'my first push');          -- and try one yourself
   SELECT * FROM conveyor.push_progress;                               -- active pushes as they go (\\x)
   LISTEN conveyor_events;                                             -- every push event as JSON
== and from a shell, with the conveyor command line (docs/cli.md) ==
   export PATH=$CV_BINDIR:\$PATH PGHOST=$dir PGUSER=postgres PGDATABASE=$db   # make install put conveyor beside psql
   conveyor push start web v100 --reason 'from the shell' --watch     # live progress bars per phase
   conveyor status; conveyor history
   conveyor report --out report.html                                   # timeline and weekly SLO, one file
LOOK
cat <<MSG

conveyor is running. Connect with:
    psql -h $dir -U postgres $db
Stop the cluster with:
    make demo-stop
MSG
