# test/lib.sh: helpers shared by the test runner, the demo and the benchmarks
# for throwaway PostgreSQL clusters with conveyor loaded. Source it; never run it.

CV_BINDIR=$(pg_config --bindir)
CV_PGXS_ROOT=$(cd "$(dirname "$(pg_config --pgxs)")/../.." && pwd)
export PATH="$CV_BINDIR:$PATH"

# cv_cluster_init DIR DBNAME [extra postgresql.conf lines...]
# initdb a cluster in DIR/data, listening only on a Unix socket in DIR.
cv_cluster_init() {
  local dir=$1 db=$2; shift 2
  mkdir -p "$dir"
  initdb -D "$dir/data" -A trust -U postgres --no-sync -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; return 1; }
  {
    echo "shared_preload_libraries = 'conveyor,pg_cron'"
    echo "cron.database_name = '$db'"
    echo "conveyor.database = '$db'"
    echo "listen_addresses = ''"
    echo "unix_socket_directories = '$dir'"
    echo "max_worker_processes = 32"
    echo "fsync = off"
    echo "logging_collector = off"
    echo "log_line_prefix = '%m [%p] %b '"
    for line in "$@"; do echo "$line"; done
  } >>"$dir/data/postgresql.conf"
}

# cv_cluster_start DIR: start it (log in DIR/server.log) and wait until it accepts connections.
cv_cluster_start() {
  local dir=$1
  pg_ctl -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null \
    || { tail -n 30 "$dir/server.log" >&2; return 1; }
}

# cv_cluster_stop DIR [mode]
cv_cluster_stop() {
  local dir=$1 mode=${2:-fast}
  [[ -f "$dir/data/postmaster.pid" ]] && pg_ctl -D "$dir/data" -m "$mode" -w -t 60 stop >/dev/null 2>&1
  return 0
}
