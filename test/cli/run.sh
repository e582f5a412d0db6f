#!/usr/bin/env bash
# test/cli/run.sh [WORKDIR]: the conveyor command line against a real cluster
# with push workers and the simulated fleet: every subcommand, server errors,
# watch on a pseudo-terminal (tmux) and through a pipe with its exit codes,
# and the HTML report rendered in headless Chromium. Ends with
# "cli: N passed, M failed". Run as a non-root user (test/run-tests.sh does).
set -uo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$src/test/lib.sh"
work=${1:-$(mktemp -d /tmp/conveyor-cli.XXXXXX)}
mkdir -p "$work"
dir=$work/cluster
db=conveyor_cli
passed=0
failed=0

# the installed program (make install puts it beside psql), else the built one
CLI=${CONVEYOR_CLI:-$CV_BINDIR/conveyor}
[[ -x "$CLI" ]] || CLI=$src/cli/conveyor

cleanup() {
  [[ -S "$work/tmux.sock" ]] && tmux -S "$work/tmux.sock" kill-server 2>/dev/null
  cv_cluster_stop "$dir" immediate
}
trap cleanup EXIT

ok()   { passed=$((passed + 1)); echo "ok - $1"; }
nok()  { failed=$((failed + 1)); echo "not ok - $1"; [[ -n "${2:-}" ]] && sed 's/^/#   /' <<<"$2"; }

# run CMD...: run the CLI, keep its exit code, stdout and stderr in RC, OUT, ERR
run() {
  "$CLI" "$@" >"$work/out" 2>"$work/err"
  RC=$?
  OUT=$(cat "$work/out")
  ERR=$(cat "$work/err")
}

# expect NAME RC [STDOUT_REGEX [STDERR_REGEX]]: check the last run
expect() {
  local name=$1 rc=$2 out_re=${3:-} err_re=${4:-}
  if [[ $RC -ne $rc ]]; then
    nok "$name" "exit code $RC, expected $rc"$'\n'"stdout: $OUT"$'\n'"stderr: $ERR"; return
  fi
  if [[ -n "$out_re" ]] && ! grep -Eq -- "$out_re" <<<"$OUT"; then
    nok "$name" "stdout does not match /$out_re/:"$'\n'"$OUT"; return
  fi
  if [[ -n "$err_re" ]] && ! grep -Eq -- "$err_re" <<<"$ERR"; then
    nok "$name" "stderr does not match /$err_re/:"$'\n'"$ERR"; return
  fi
  ok "$name"
}

# expect_err NAME RC REGEX: like expect, REGEX matched against the whole of stderr (lines and all)
expect_err() {
  local name=$1 rc=$2 re=$3
  if [[ $RC -eq $rc && $ERR =~ $re ]]; then ok "$name"
  else nok "$name" "exit code $RC (expected $rc); stderr:"$'\n'"$ERR"; fi
}

q() { psql -X -q -tA -v ON_ERROR_STOP=1 -h "$dir" -p 5432 -U postgres -d "$db" -c "$1"; }

# wait_state PUSH STATE...: wait up to 30 s until the push is in one of the states
wait_state() {
  local id=$1; shift
  for _ in $(seq 1 300); do
    local s; s=$(q "SELECT state FROM conveyor.push WHERE id = $id")
    for want in "$@"; do [[ "$s" == "$want" ]] && return 0; done
    sleep 0.1
  done
  return 1
}

echo "cli: program $CLI; cluster in $dir"
cv_cluster_init "$dir" "$db" "port = 5432" "conveyor.workers = 2" || exit 1
cv_cluster_start "$dir" || exit 1
createdb -h "$dir" -p 5432 -U postgres "$db" || exit 1
q "CREATE EXTENSION conveyor CASCADE" 2>/dev/null || exit 1
export PGHOST=$dir PGPORT=5432 PGUSER=postgres PGDATABASE=$db
unset PGSERVICE PGSERVICEFILE

q "SELECT conveyor.sim_fleet_create('web', '{eu,us,ap}', 2, 5, 'v1', '200 milliseconds');
   SELECT conveyor.push_plan_create('steady', '[{\"scope\": \"region=eu\", \"amount\": \"10%\", \"bake\": \"2 seconds\"},
                                               {\"scope\": \"*\", \"amount\": \"50%\", \"bake\": \"1 second\"}]');
   SELECT conveyor.push_plan_create('hold', '[{\"scope\": \"region=eu\", \"amount\": \"10%\", \"bake\": \"1 hour\"}]');
   SELECT conveyor.service_create('web', 'simulated', 'steady', '{\"fleet\": \"web\"}', failure_policy => 'revert',
                                  health_interval => '500 milliseconds', poll_interval => '100 milliseconds');
   SELECT conveyor.sim_fleet_create('api', '{eu,us}', 1, 4, 'v1');
   SELECT conveyor.service_create('api', 'simulated', 'hold', '{\"fleet\": \"api\"}', failure_policy => 'fail',
                                  health_interval => '500 milliseconds', poll_interval => '100 milliseconds');" >/dev/null \
  || { echo "cli: setup failed"; exit 1; }

# ---------------------------------------------------------------- help and usage
run --help;                 expect "--help lists the commands" 0 'push ACTION' ''
for c in status push watch history plan-preview report; do
  run "$c" --help;          expect "$c --help" 0 "^  conveyor \\[OPTION\\]\\.\\.\\. $c"
done
run --version;              expect "--version" 0 '^conveyor 0\.3'
run frobnicate;             expect "an unknown command is a usage error (2)" 2 '' 'unknown command "frobnicate"'
run push pause abc;         expect "a push id that is not a number is a usage error" 2 '' 'PUSH must be a positive whole number'
run push jump 1;            expect "an unknown push action is a usage error" 2 '' 'unknown action "jump"'
run watch;                  expect "watch without a push is a usage error" 2 '' 'takes one PUSH id'
run report;                 expect "report without --out is a usage error" 2 '' '--out FILE.html is required'
run -h "$work/nowhere" status
expect "no server: exit 1 with libpq's message" 1 '' 'conveyor: connection to server'
run -d "host=$dir port=5432 dbname=$db user=postgres" history --limit 1
expect "-d takes a conninfo string" 0 '^push +service'

# ---------------------------------------------------------------- plan-preview, status
run plan-preview web v2;    expect "plan-preview: per phase and unit" 0 'region=eu.*eu-1'
run plan-preview nosuch v2
expect_err "plan-preview: a server error shows as PostgreSQL reports it (message, hint)" 1 \
  $'^ERROR:  service "nosuch" does not exist\nHINT:  Create it with conveyor\\.service_create\\.$'
run status;                 expect "status: the services" 0 '^web +steady +revert +postgres$'
run status --service nosuch; expect "status: an unknown service" 1 '' 'service "nosuch" does not exist'

# ---------------------------------------------------------------- push actions on a held push
run push start api v2 --reason "cli test";  expect "push start prints the push id" 0 '^push [0-9]+ started: api v2$'
hold=$(awk '{print $2}' <<<"$OUT")
wait_state "$hold" running
run status;                 expect "status: the active push, its phase and progress" 0 "^ +$hold +api +v2 +push +running +1/2"
run push start api v3
expect_err "push start while one is active: message, detail and hint" 1 \
  $'^ERROR:  service "api" already has an active push\nDETAIL:  Push '"$hold"$' \\(push v2\\) is running since [^\n]+\\.\nHINT:  Wait for it to end, or cancel it with conveyor\\.push_cancel\\('"$hold"$'\\)\\.$'
run push pause "$hold" --reason "looking";   expect "push pause" 0 "^push $hold paused$"
run push pause "$hold"
expect "pausing a paused push: the server's error, exit 1" 1 '' "^ERROR:  cannot pause push $hold: it is paused"
run -v push pause "$hold";  expect "--verbose shows the SQLSTATE" 1 '' "^ERROR:  55000: cannot pause push $hold"
run push resume "$hold" --reason "fine";     expect "push resume" 0 "^push $hold resumed$"
run push skip-healthchecks "$hold";          expect "push skip-healthchecks" 0 "^push $hold skips its healthchecks$"
run push skip-bake "$hold" --reason "hurry"; expect "push skip-bake" 0 "^push $hold skipped its bake$"
wait_state "$hold" succeeded
run push skip-phase "$hold"; expect "skip-phase of an ended push: refused" 1 '' "^ERROR:  cannot skip a phase of push $hold: it is succeeded"
[[ $(q "SELECT string_agg(kind || ':' || coalesce(reason, ''), ',' ORDER BY id) FROM conveyor.push_event
        WHERE push_id = $hold AND actor IS NOT NULL") == \
   "push_started:cli test,push_paused:looking,push_resumed:fine,healthchecks_skipped:,bake_skipped:hurry" ]] \
  && ok "the actions reached the SQL functions with their reasons" \
  || nok "the actions reached the SQL functions with their reasons" "$(q "SELECT kind, reason FROM conveyor.push_event WHERE push_id = $hold ORDER BY id")"
run push revert "$hold" --reason "undo";     expect "push revert prints the revert's id" 0 "^push $hold reverted by push [0-9]+$"
rev=$(awk '{print $NF}' <<<"$OUT")
wait_state "$rev" succeeded
run push start api v4;      p=$(awk '{print $2}' <<<"$OUT"); wait_state "$p" running
run push skip-phase "$p" --reason "enough"; expect "push skip-phase" 0 "^push $p skipped its phase$"
wait_state "$p" succeeded
run push start api v4b;     p=$(awk '{print $2}' <<<"$OUT"); wait_state "$p" running
run push cancel "$p" --reason "stop";        expect "push cancel" 0 "^push $p cancelled$"
run push cancel 999999;     expect "an unknown push: 42704, exit 1" 1 '' '^ERROR:  push 999999 does not exist'

# ---------------------------------------------------------------- watch through a pipe, exit codes
run push start web v2 --reason "piped watch" --watch
expect "push start --watch follows the push to success (exit 0)" 0 'succeeded \(success\): web runs version v2$'
if grep -q 'event phase_started (phase 1/3)' <<<"$OUT" && grep -q 'event push_succeeded' <<<"$OUT" \
   && grep -Eq 'phase 2/3 (update|confirm|bake) \[' <<<"$OUT" && ! grep -q $'\033' <<<"$OUT"; then
  ok "watch through a pipe: a plain line per event and per change of progress, no escape codes"
else
  nok "watch through a pipe: a plain line per event and per change of progress, no escape codes" "$OUT"
fi
run history --service web --limit 1; expect "history: the push just watched" 0 '^ +[0-9]+ +web +v2 +push +succeeded +success'
run watch "$p";             expect "watch an ended push: cancelled is exit 4" 4 "cancelled \(good failure\)"
run push start api v5;      p=$(awk '{print $2}' <<<"$OUT"); wait_state "$p" running
run watch "$p" --timeout 1; expect "watch --timeout: the push is still active, exit 7" 7 "still running after 1 s"
run push revert "$p" --reason "undo"; rev=$(awk '{print $NF}' <<<"$OUT")
run watch "$p";             expect "watch a push reverted by a person: exit 5, naming the revert" 5 "push $rev reverts it"
wait_state "$rev" succeeded
q "SELECT conveyor.sim_version_set_faulty('api', 'v6')" >/dev/null
run push start api v6 --watch; expect "watch an unhealthy push with policy fail: exit 3" 3 'failed \(good failure\): unhealthy in phase 1'
# a push whose fleet vanishes while it bakes: its push type fails, retry limit 0
q "SELECT conveyor.sim_fleet_create('gone', '{eu}', 1, 2, 'v1');
   SELECT conveyor.service_create('gone', 'simulated', 'hold', '{\"fleet\": \"gone\"}', retry_limit => 0,
                                  health_interval => '300 milliseconds')" >/dev/null
run push start gone v2;     p=$(awk '{print $2}' <<<"$OUT"); wait_state "$p" running
q "SELECT conveyor.sim_fleet_drop('gone')" >/dev/null
run watch "$p";             expect "watch a push whose push type fails: bad failure, exit 6" 6 'failed \(bad failure\): push type'
run watch 999999;           expect "watch an unknown push: exit 1" 1 '' 'push 999999 does not exist'

# ---------------------------------------------------------------- watch on a terminal (tmux)
# tmux_watch NAME PUSH: run "conveyor watch PUSH" in a 110x24 tmux pane; its exit code goes to $work/NAME.rc
tmux_watch() {
  rm -f "$work/$1.rc"
  tmux -S "$work/tmux.sock" -f /dev/null new-session -d -s "$1" -x 110 -y 24 \
    "env PGHOST='$dir' PGPORT=5432 PGUSER=postgres PGDATABASE='$db' '$CLI' watch $2; echo \$? > '$work/$1.rc'; sleep 60"
}
screen_of() { tmux -S "$work/tmux.sock" capture-pane -p -t "$1"; }

if ! command -v tmux >/dev/null; then
  nok "watch on a terminal" "tmux is not installed (make deps)"
else
  q "UPDATE conveyor.service SET plan = 'steady' WHERE name = 'web'" >/dev/null
  p=$("$CLI" push start web v3 | awk '{print $2}')
  tmux_watch live "$p"
  seen_bake=""
  for _ in $(seq 1 150); do
    s=$(screen_of live)
    if grep -Eq "^  1/3 region=eu +10% \[#{24}\] +2/2  baking, 0:00:0[0-2] left" <<<"$s"; then seen_bake=$s; break; fi
    sleep 0.1
  done
  if [[ -n "$seen_bake" ]] && grep -Eq "^push $p  web v3  running  phase 1/3  [0-9]+% of 30 subunits  health: healthy" <<<"$seen_bake" \
     && grep -Eq '^  2/3 \* +50% \[\.{24}\] +-  pending' <<<"$seen_bake"; then
    ok "watch on a terminal: header and a progress bar per phase while phase 1 bakes"
  else
    nok "watch on a terminal: header and a progress bar per phase while phase 1 bakes" "$(screen_of live)"
  fi
  for _ in $(seq 1 300); do [[ -s "$work/live.rc" ]] && break; sleep 0.1; done
  s=$(screen_of live)
  if [[ "$(cat "$work/live.rc" 2>/dev/null)" == 0 ]] \
     && grep -Eq '^  1/3 region=eu +10% \[#{24}\] +2/2  succeeded' <<<"$s" \
     && grep -Eq '^  2/3 \* +50% \[#{24}\] +16/16  succeeded' <<<"$s" \
     && grep -Eq '^  3/3 \* +100% \[#{24}\] +12/12  succeeded' <<<"$s" \
     && [[ $(grep -c "^push $p " <<<"$s") -eq 2 ]]; then
    ok "watch on a terminal: redrawn in place to full bars, then the outcome; exit 0"
  else
    nok "watch on a terminal: redrawn in place to full bars, then the outcome; exit 0" "rc=$(cat "$work/live.rc" 2>/dev/null)"$'\n'"$s"
  fi

  q "SELECT conveyor.sim_version_set_faulty('web', 'v4-bad')" >/dev/null
  p=$("$CLI" push start web v4-bad | awk '{print $2}')
  tmux_watch bad "$p"
  for _ in $(seq 1 300); do [[ -s "$work/bad.rc" ]] && break; sleep 0.1; done
  s=$(screen_of bad)
  if [[ "$(cat "$work/bad.rc" 2>/dev/null)" == 5 ]] && grep -Eq '^  1/3 region=eu +10% \[#{24}\] +2/2  failed' <<<"$s" \
     && grep -Eq "^push $p reverted \(good failure\): automatic revert: unhealthy in phase 1" <<<"$s"; then
    ok "watch on a terminal: a faulty version, caught in phase 1 and reverted; exit 5"
  else
    nok "watch on a terminal: a faulty version, caught in phase 1 and reverted; exit 5" "rc=$(cat "$work/bad.rc" 2>/dev/null)"$'\n'"$s"
  fi
fi

# ---------------------------------------------------------------- the HTML report in headless Chromium
run report --out "$work/report.html"; expect "report writes the page" 0 '' 'wrote .*report.html \([0-9]+ pushes\)'
if grep -Eiq '(src|href)=["'"'"']?(https?:)?//|@import|url\(' "$work/report.html"; then
  nok "report: self-contained, no external assets" "$(grep -Eio '(src|href)=[^ >]*|@import[^;]*|url\([^)]*\)' "$work/report.html" | head)"
else
  ok "report: self-contained, no external assets"
fi
grep -q '<td>web</td><td>v4-bad</td>' "$work/report.html" && ok "report: a plain table of the pushes" \
  || nok "report: a plain table of the pushes"

chrome() {
  HOME=$work/chrome timeout 90 chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
    --no-first-run --user-data-dir="$work/chrome" --hide-scrollbars --window-size=1100,900 "$@" 2>>"$work/chrome.log"
}
if ! command -v chromium >/dev/null; then
  nok "report in headless Chromium" "chromium is not installed (make deps)"
else
  mkdir -p "$work/chrome"
  dom=$(chrome --virtual-time-budget=5000 --dump-dom "file://$work/report.html")
  if grep -q 'data-rendered="ok"' <<<"$dom" && grep -Eq 'id="cv-status">drawn: [0-9]+ pushes, [0-9]+ weeks' <<<"$dom" \
     && grep -q '<pre id="cv-errors"></pre>' <<<"$dom" && grep -q '<g class="push" data-push=' <<<"$dom" \
     && grep -q '<g class="week" data-week=' <<<"$dom"; then
    ok "report in Chromium: the script drew the timeline and the SLO chart, no script errors"
  else
    nok "report in Chromium: the script drew the timeline and the SLO chart, no script errors" \
        "$(grep -Eo 'data-rendered="[a-z]*"|id="cv-(status|errors)">[^<]*' <<<"$dom")"$'\n'"$(tail -5 "$work/chrome.log")"
  fi
  # the check itself must catch a broken page: corrupt the data the script reads
  sed 's/<script id="cv-data" type="application\/json">{/<script id="cv-data" type="application\/json">{{/' \
      "$work/report.html" >"$work/broken.html"
  dom=$(chrome --virtual-time-budget=5000 --dump-dom "file://$work/broken.html")
  if grep -q 'data-rendered="error"' <<<"$dom" && grep -q 'script error: ' <<<"$dom"; then
    ok "report in Chromium: a script error is caught and shows in the DOM"
  else
    nok "report in Chromium: a script error is caught and shows in the DOM" "$(grep -Eo 'data-rendered="[a-z]*"' <<<"$dom")"
  fi
  rm -f "$work/report.png"
  chrome --screenshot="$work/report.png" "file://$work/report.html" >/dev/null
  stats=$(/usr/bin/python3 "$src/test/cli/png_stats.py" "$work/report.png" 2>&1)
  ink=$(sed -n 's/.* ink=\([0-9.]*\) .*/\1/p' <<<"$stats"); colors=$(sed -n 's/.*colors=\([0-9]*\).*/\1/p' <<<"$stats")
  if [[ -n "$ink" ]] && awk "BEGIN { exit !($ink > 0.02 && $colors > 8) }"; then
    ok "report in Chromium: the screenshot is not blank ($stats)"
  else
    nok "report in Chromium: the screenshot is not blank" "$stats"
  fi
fi

# ---------------------------------------------------------------- the NOTIFY channel from psql
(psql -X -q -h "$dir" -p 5432 -U postgres -d "$db" <<'SQL'
LISTEN conveyor_events;
SELECT pg_sleep(3);
SQL
) >"$work/listen.out" 2>&1 &
listener=$!
sleep 1
"$CLI" push start api v7 >/dev/null
wait "$listener"
if grep -Eq 'Asynchronous notification "conveyor_events" with payload "\{"id":[0-9]+,"push":[0-9]+,"kind":"push_started"' "$work/listen.out"; then
  ok "psql's LISTEN conveyor_events receives the events as JSON"
else
  nok "psql's LISTEN conveyor_events receives the events as JSON" "$(cat "$work/listen.out")"
fi

echo "cli: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
