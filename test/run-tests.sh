#!/usr/bin/env bash
# make test: every suite, on throwaway clusters, ending with one summary line.
#   unit       pure C cores (planner, health math), no server
#   regress    pg_regress: sql/*.sql against expected/*.out
#   pgtap      pg_prove: test/pgtap/*.sql
#   tap        PostgreSQL's Perl TAP framework: test/tap/*.pl (restarts, crashes)
#   agent      conveyor-agent and demo-service end to end on loopback, and the
#              http fault server (test/agent/run.sh); no cluster
#   cli        the conveyor command line on a cluster of its own: test/cli/run.sh
#              (watch on a pseudo-terminal, the HTML report in headless Chromium)
# PostgreSQL refuses to run as root, so as root this re-runs itself as the
# postgres user on a copy of the tree that user owns.
set -uo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

if [[ $(id -u) -eq 0 ]]; then
  id postgres >/dev/null 2>&1 || { echo "test: user postgres is missing (run make deps)" >&2; exit 1; }
  work=$(mktemp -d /tmp/conveyor-test.XXXXXX)
  tar -C "$src" --exclude=./.git --exclude=./.demo -cf - . | tar -C "$work" -xf -
  chown -R postgres:postgres "$work"
  runuser -u postgres -- env PATH="$PATH" CV_TEST_SUITES="${CV_TEST_SUITES:-}" bash "$work/test/run-tests.sh"
  rc=$?
  [[ $rc -eq 0 ]] && rm -rf "$work"
  exit $rc
fi

source "$src/test/lib.sh"
suites=${CV_TEST_SUITES:-"unit regress pgtap tap agent cli"}
tmp=$(mktemp -d /tmp/conveyor-run.XXXXXX)
db=conveyor_regress
total_pass=0
total_fail=0
summary=()

# record SUITE PASSED FAILED
record() {
  total_pass=$((total_pass + $2)); total_fail=$((total_fail + $3))
  summary+=("$(printf '%-8s %4d passed, %d failed' "$1" "$2" "$3")")
}

cleanup() { cv_cluster_stop "$tmp/cluster" immediate; }
trap cleanup EXIT

run_unit() {
  local out="$tmp/unit.out"
  bash "$src/test/unit/run.sh" "$tmp/unit" 2>&1 | tee "$out"
  local p f
  p=$(grep -Eo '^[0-9]+ passed' "$out" | awk '{s+=$1} END {print s+0}')
  f=$(grep -Eo '[0-9]+ failed' "$out" | awk '{s+=$1} END {print s+0}')
  grep -q '^unit: build failed' "$out" && f=$((f + 1))
  record unit "$p" "$f"
}

run_regress() {
  local tests=()
  for f in "$src"/sql/*.sql; do tests+=("$(basename "$f" .sql)"); done
  mkdir -p "$tmp/regress"
  "$CV_PGXS_ROOT/src/test/regress/pg_regress" \
      --inputdir="$src" --outputdir="$tmp/regress" --bindir="$CV_BINDIR" \
      --host="$tmp/cluster" --port=5432 --dbname="$db" "${tests[@]}" 2>&1 | tee "$tmp/regress.out"
  local rc=${PIPESTATUS[0]} p f
  p=$(grep -Ec '^(ok|test) .* ok( |$)|\.\.\. ok' "$tmp/regress.out")
  f=$(grep -Ec 'FAILED|failed \(ignored\)' "$tmp/regress.out")
  if [[ -s "$tmp/regress/regression.diffs" ]]; then
    echo "---- regression.diffs ----"; cat "$tmp/regress/regression.diffs"
  fi
  [[ $rc -ne 0 && $f -eq 0 ]] && f=1
  record regress "$p" "$f"
}

# prove_counts SUITE OUTPUT: turn prove's summary into passed/failed counts.
prove_counts() {
  local tests failed
  tests=$(sed -n 's/^Files=[0-9]*, Tests=\([0-9]*\),.*/\1/p' "$2" | tail -n 1)
  failed=$(grep -Eo 'Failed [0-9]+/[0-9]+ subtests' "$2" | awk '{split($2,a,"/"); s+=a[1]} END {print s+0}')
  # a script that died before its plan counts as one failure
  if grep -q '^Result: FAIL' "$2" && [[ $failed -eq 0 ]]; then failed=1; fi
  record "$1" "$(( ${tests:-0} - failed > 0 ? ${tests:-0} - failed : 0 ))" "$failed"
}

run_pgtap() {
  shopt -s nullglob
  local files=("$src"/test/pgtap/*.sql)
  [[ ${#files[@]} -eq 0 ]] && { record pgtap 0 0; return; }
  # the database and extension the regress suite makes, if it did not run
  [[ $(psql -X -qtA -h "$tmp/cluster" -d postgres -U postgres \
         -c "SELECT count(*) FROM pg_database WHERE datname = '$db'") == 1 ]] \
    || createdb -h "$tmp/cluster" -U postgres "$db"
  psql -X -q -h "$tmp/cluster" -d "$db" -U postgres -c 'CREATE EXTENSION IF NOT EXISTS conveyor CASCADE' \
       -c 'CREATE EXTENSION IF NOT EXISTS pgtap' >/dev/null
  pg_prove -h "$tmp/cluster" -d "$db" -U postgres "${files[@]}" 2>&1 | tee "$tmp/pgtap.out"
  prove_counts pgtap "$tmp/pgtap.out"
}

run_tap() {
  shopt -s nullglob
  local files=("$src"/test/tap/*.pl)
  [[ ${#files[@]} -eq 0 ]] && { record tap 0 0; return; }
  mkdir -p "$tmp/tap"
  (cd "$tmp/tap" && TESTDIR="$tmp/tap" PG_REGRESS="$CV_PGXS_ROOT/src/test/regress/pg_regress" \
     CV_SRC="$src" prove -I "$CV_PGXS_ROOT/src/test/perl" -I "$src/test/tap" "${files[@]}") 2>&1 | tee "$tmp/tap.out"
  if grep -q '^Result: FAIL' "$tmp/tap.out"; then
    for log in "$tmp"/tap/tmp_check/log/*; do
      [[ -f "$log" ]] && { echo "---- $log (last 40 lines) ----"; tail -n 40 "$log"; }
    done
  fi
  prove_counts tap "$tmp/tap.out"
}

run_agent() {
  local out="$tmp/agent.out" p f
  bash "$src/test/agent/run.sh" "$tmp/agent" 2>&1 | tee "$out"
  p=$(sed -n 's/^\([0-9]*\) passed, [0-9]* failed$/\1/p' "$out" | tail -n 1)
  f=$(sed -n 's/^[0-9]* passed, \([0-9]*\) failed$/\1/p' "$out" | tail -n 1)
  # a run that died before its summary line counts as one failure
  [[ -z $p ]] && { p=0; f=1; }
  record agent "$p" "$f"
}

run_cli() {
  bash "$src/test/cli/run.sh" "$tmp/cli" 2>&1 | tee "$tmp/cli.out"
  local p f
  p=$(sed -n 's/^cli: \([0-9]*\) passed, \([0-9]*\) failed$/\1/p' "$tmp/cli.out" | tail -n 1)
  f=$(sed -n 's/^cli: \([0-9]*\) passed, \([0-9]*\) failed$/\2/p' "$tmp/cli.out" | tail -n 1)
  # a suite that died before its summary counts as one failure
  [[ -z "$p" ]] && { p=0; f=1; }
  record cli "$p" "$f"
}

needs_cluster=0
[[ " $suites " == *" regress "* || " $suites " == *" pgtap "* ]] && needs_cluster=1
if [[ $needs_cluster -eq 1 ]]; then
  cv_cluster_init "$tmp/cluster" "$db" "port = 5432" || exit 1
  cv_cluster_start "$tmp/cluster" || exit 1
fi

for s in $suites; do
  echo "==== $s ===="
  "run_$s"
done

if [[ $needs_cluster -eq 1 ]] && grep -Eq 'PANIC|TRAP:|terminated by signal|server process .* was terminated' "$tmp/cluster/server.log"; then
  echo "---- server log shows a crash ----"
  grep -E -B5 -A5 'PANIC|TRAP:|terminated by signal' "$tmp/cluster/server.log" | head -60
  record crash 0 1
fi

echo
echo "==== summary ===="
printf '%s\n' "${summary[@]}"
echo "Total: $total_pass passed, $total_fail failed"
if [[ $total_fail -eq 0 ]]; then
  cleanup; rm -rf "$tmp"
else
  echo "(clusters, logs and results kept in $tmp)"
fi
[[ $total_fail -eq 0 ]]
