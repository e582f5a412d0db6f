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

if [[ -f "$src/test/demo.sql" ]]; then
  psql_demo -f "$src/test/demo.sql"
fi

cat <<MSG

conveyor is running. Connect with:
    psql -h $dir -U postgres $db
Stop the cluster with:
    make demo-stop
MSG
