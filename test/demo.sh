#!/usr/bin/env bash
# make demo / make demo-stop (docs/demo.md).
#
# start: a local cluster in ./.demo (as root: /var/tmp/conveyor-demo when the
# tree is not readable by postgres) with conveyor in database "conveyor",
# reused when already running; then three conveyor-agents on loopback playing
# hosts eu-1, eu-2 and us-1, each running a unit of 4 demo-service processes,
# registered as the http push type "demo-agents". It pushes version 1.1
# process by process (a canary in eu, a bake with health checks, then the
# rest), shows that the processes really run it, then pushes 1.2-bad, which
# the demo service is told to break: its health checks fail in the canary's
# bake and the service's failure policy reverts it. The cluster and the
# agents keep running for you to try things; `make demo-stop` stops both.
#
# DEMO=sim: the older demo on the built-in simulated fleet (test/demo-sim.sh).
# DEMO_PORT_BASE (default 8700): agents listen on BASE+1..3, the processes on
# BASE+10.., BASE+20.., BASE+30..; another free block is chosen if it is taken.
#
# stop: stops the agents (and with them their processes), then the cluster.
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
q() { psql_demo -qtAX -c "$1"; }

# --- the agents ---------------------------------------------------------------
# They run as the user running the demo, in $adir: a config, a state
# directory, a log and a pid file per host, the token and the faults file.
adir="$dir/agents"
hosts=(eu-1 eu-2 us-1)
agent_bin="$src/agent/conveyor-agent"
demo_bin="$src/agent/demo-service"
first=1.0 good=1.1 bad=1.2-bad

# is_agent PID: PID is alive and is a conveyor-agent (pid files can go stale)
is_agent() { [[ -r /proc/$1/cmdline ]] && tr '\0' ' ' </proc/"$1"/cmdline | grep -q conveyor-agent; }

agents_stop() {
  local f pid pids=() i
  for f in "$adir"/*.pid; do
    [[ -f $f ]] || continue
    pid=$(cat "$f")
    if is_agent "$pid"; then kill -TERM "$pid" 2>/dev/null && pids+=("$pid"); fi
    rm -f "$f"
  done
  ((${#pids[@]})) || return 0
  # SIGTERM: an agent stops its processes (grace_ms each, in parallel) and exits
  local alive
  for i in $(seq 1 100); do
    alive=0
    for pid in "${pids[@]}"; do is_agent "$pid" && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do is_agent "$pid" && kill -KILL "$pid" 2>/dev/null; done
  echo "demo: stopped ${#pids[@]} agents and their processes"
}

# the demo's processes, found by their faults file (for the leftovers check)
demo_processes() { pgrep -f -- "--faults $adir/faults" || true; }

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# block_free BASE: every port of the layout is free
block_free() {
  local b=$1 i j
  for i in 0 1 2; do
    port_busy $((b + 1 + i)) && return 1
    for j in 0 1 2 3; do port_busy $((b + 10 * (i + 1) + j)) && return 1; done
  done
  return 0
}

api() { curl -s -m 3 -H "Authorization: Bearer $token" -H 'Conveyor-Protocol: 1' "http://127.0.0.1:$1$2"; }
agent_port() { echo $((base + 1 + $1)); }
unit_of() { echo "web-${hosts[$1]}"; }

# all_on VERSION: every process of every agent reports VERSION, ok
all_on() {
  local i
  for i in 0 1 2; do
    api "$(agent_port $i)" /v1/units | jq -e --arg v "$1" '[.units[].subunits[] | .version == $v and .status == "ok"] | all' \
      >/dev/null 2>&1 || return 1
  done
}

agents_start() {
  local i b
  agents_stop
  if [[ -n $(demo_processes) ]]; then
    echo "demo: processes of an earlier demo are still running: $(demo_processes | xargs)" >&2
    return 1
  fi
  base=${DEMO_PORT_BASE:-8700}
  for b in "$base" $(seq 20000 100 29900 | shuf -n 20); do
    if block_free "$b"; then base=$b; break; fi
    b=
  done
  [[ -n $b ]] || { echo "demo: no free block of loopback ports for the agents" >&2; return 1; }

  # a fresh start every time: every process on $first
  rm -rf "$adir"; mkdir -p "$adir"; chmod 700 "$adir"
  token=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
  (umask 077; printf '%s\n' "$token" >"$adir/token")
  cat >"$adir/faults" <<EOF
# demo-service faults (docs/agent.md): version $bad passes its start probe,
# then from 3 s after start every /health and / request answers 500
$bad errors 1 after 3000
EOF
  for i in 0 1 2; do
    cat >"$adir/${hosts[$i]}.json" <<EOF
{
  "listen": "127.0.0.1:$(agent_port $i)",
  "token_file": "$adir/token",
  "state_dir": "$adir/${hosts[$i]}",
  "grace_ms": 2000, "start_timeout_ms": 5000, "min_uptime_ms": 1500,
  "probe_timeout_ms": 500, "probe_interval_ms": 1000,
  "units": [
    {"name": "$(unit_of $i)", "labels": {"region": "${hosts[$i]%-*}", "host": "${hosts[$i]}", "tier": "web"},
     "instances": 4, "base_port": $((base + 10 * (i + 1))), "initial_version": "$first", "max_updating": 1,
     "command": ["$demo_bin", "--port", "{port}", "--version", "{version}", "--faults", "$adir/faults"]}
  ]
}
EOF
    # its own session: the agent outlives make and ignores the terminal
    setsid "$agent_bin" -c "$adir/${hosts[$i]}.json" >"$adir/${hosts[$i]}.log" 2>&1 </dev/null &
    echo $! >"$adir/${hosts[$i]}.pid"
  done
  for _ in $(seq 1 100); do all_on "$first" && return 0; sleep 0.2; done
  echo "demo: the agents did not come up; their logs:" >&2
  tail -n 20 "$adir"/*.log >&2
  return 1
}

# fleet: each host's processes as the agents report them, one character each
legend=". $first   # $good   x $bad   ~ restarting   ! failed"
fleet() {
  # one curl for the three agents, one jq for the three answers
  curl -s -m 2 -H "Authorization: Bearer $token" -H 'Conveyor-Protocol: 1' \
       "http://127.0.0.1:$(agent_port 0)/v1/units" "http://127.0.0.1:$(agent_port 1)/v1/units" \
       "http://127.0.0.1:$(agent_port 2)/v1/units" |
    jq -rs --arg a "$first" --arg b "$good" --arg c "$bad" '
      [.[].units[] | .name + " [" + ([.subunits[] |
        if .status == "updating" then "~" elif .status == "failed" then "!" elif .status == "unreachable" then "?"
        elif .version == $a then "." elif .version == $b then "#" elif .version == $c then "x" else "o" end]
      | join("")) + "]"] | join("  ")' 2>/dev/null || echo "(an agent does not answer)"
}

# follow ID: until push ID and its revert (if any) have ended, a line per
# event that matters and a line whenever the processes change. Times count
# from the push's start.
follow() {
  local id=$1 seen=0 last="" held="" buf out f active=1 c0 us
  # the push's start in microseconds, to time the processes' lines locally
  c0=$(q "SELECT floor(extract(epoch FROM created_at) * 1000000)::bigint FROM conveyor.push WHERE id = $id")
  local deadline=$((SECONDS + ${DEMO_PUSH_TIMEOUT:-120}))
  while :; do
    if ((SECONDS > deadline)); then
      echo "demo: push $id has not ended after ${DEMO_PUSH_TIMEOUT:-120} s; where it stands:" >&2
      psql_demo -c "SELECT id, state, step, phase + 1 AS phase, next_step_at FROM conveyor.push WHERE id = $id OR reverts = $id" \
                -c "SELECT push_id, verb, state, claims, requests, error FROM conveyor.push_call" >&2
      echo "the server log's last errors ($dir/server.log):" >&2
      grep -E 'ERROR|FATAL' "$dir/server.log" | tail -n 3 >&2
      return 1
    fi
    # the database first, then the agents: lines come out in time order
    out=$(q "
      WITH p AS (SELECT * FROM conveyor.push WHERE id = $id OR reverts = $id),
      e AS (SELECT e.*, lag((e.detail->>'healthy')::boolean) OVER (PARTITION BY e.push_id, e.phase, e.kind ORDER BY e.id) AS was_healthy
              FROM conveyor.push_event e WHERE e.push_id IN (SELECT id FROM p))
      SELECT e.id, to_char(extract(epoch FROM e.at - o.created_at), 'FM990.0'),
             format('%s ', p.id) || CASE e.kind
        WHEN 'push_started' THEN CASE WHEN p.kind = 'revert'
             THEN format('started: the revert of push %s, returning %s processes to %s', p.reverts, e.detail->>'subunits', p.version)
             ELSE format('started: %s %s, plan %s (%s phases)', p.service, p.version, p.plan, e.detail->>'phases') END
        WHEN 'phase_started' THEN format('phase %s/%s %s %s: %s processes to update, %s already on %s',
             e.phase + 1, (SELECT count(*) FROM conveyor.push_phase x WHERE x.push_id = p.id), ph.scope, ph.amount,
             e.detail->>'targets', coalesce(e.detail->>'already', '0'), p.version)
        WHEN 'update_batch' THEN format('sent %s update%s', e.detail->>'sent', CASE WHEN e.detail->>'sent' = '1' THEN '' ELSE 's' END)
             || CASE WHEN (e.detail->>'deferred')::int > 0
                     THEN format(', %s held back by the agents'' task control', e.detail->>'deferred') ELSE '' END
             || CASE WHEN (e.detail->>'refused')::int > 0 THEN format(', %s refused', e.detail->>'refused') ELSE '' END
        WHEN 'updates_confirmed' THEN format('phase %s: %s processes confirmed on %s, %s failed', e.phase + 1,
             e.detail->>'updated', p.version, e.detail->>'failed')
             || CASE WHEN ph.bake > '0' AND p.kind = 'push' THEN format('; baking %s s, health checked every second',
                     extract(epoch FROM ph.bake)::int) ELSE '' END
        WHEN 'health_checked' THEN CASE WHEN (e.detail->>'healthy')::boolean
             THEN format('health: healthy (%s units: every process alive and answering /health)', e.detail->>'units_checked')
             ELSE 'health: UNHEALTHY: ' || (SELECT string_agg(format('%s %s', u->>'unit', u->>'reason'), ', ')
                                              FROM jsonb_array_elements(e.detail->'unhealthy') u) END
        WHEN 'phase_succeeded' THEN format('phase %s passed', e.phase + 1)
        WHEN 'push_succeeded' THEN format('succeeded: %s', p.outcome_reason)
        WHEN 'push_reverted' THEN format('reverted (%s): the failure policy starts a revert', p.outcome)
        WHEN 'push_failed' THEN format('failed (%s): %s', p.outcome, p.outcome_reason)
        ELSE e.kind || ' ' || left(e.detail::text, 100) END
        FROM e JOIN p ON p.id = e.push_id
        JOIN conveyor.push o ON o.id = $id
        LEFT JOIN conveyor.push_phase ph ON ph.push_id = e.push_id AND ph.position = e.phase
       WHERE e.id > $seen
         -- the rest of the batches only when they send something; health when it changes
         AND NOT (e.kind = 'update_batch' AND (e.detail->>'sent')::int = 0 AND (e.detail->>'refused')::int = 0)
         AND NOT (e.kind = 'health_checked' AND was_healthy IS NOT DISTINCT FROM (e.detail->>'healthy')::boolean)
       ORDER BY e.id;
      SELECT 'active', count(*) FILTER (WHERE state IN ('running', 'paused'))
                       + count(*) FILTER (WHERE state = 'reverted' AND NOT EXISTS (SELECT 1 FROM conveyor.push r WHERE r.reverts = $id)),
             ''
        FROM conveyor.push WHERE id = $id OR reverts = $id")
    # a line of the processes is held until the next round's events are in,
    # so that lines come out in time order although both take a while to read
    buf=$held
    while IFS='|' read -r eid et text; do
      [[ -n $eid ]] || continue
      if [[ $eid == active ]]; then active=$et; continue; fi
      buf+=$'\n'"$et"$'\t'"push $text"
      seen=$eid
    done <<<"$out"
    [[ -n $buf ]] && sort -s -t $'\t' -k1,1n <<<"${buf#$'\n'}" | awk -F '\t' '{printf "   %6ss  %s\n", $1, $2}'
    held=
    f=$(fleet)
    if [[ $f != "$last" ]]; then
      us=$(( ${EPOCHREALTIME/./} - c0 ))
      held=$(printf '%d.%d\t        %s' $((us / 1000000)) $((us / 100000 % 10)) "$f")
      last=$f
    fi
    if ((active == 0)); then
      [[ -n $held ]] && printf '%s\n' "$held" | awk -F '\t' '{printf "   %6ss  %s\n", $1, $2}'
      break
    fi
    sleep 0.1
  done
}

# ended ID: the push's end, in a line
ended() {
  q "SELECT format('   push %s %s: %s (%s) in %s s: %s', id, CASE WHEN kind = 'revert' THEN '(revert of ' || reverts || ')' ELSE version END,
                   state, outcome, round(extract(epoch FROM ended_at - created_at)::numeric, 1), outcome_reason)
       FROM conveyor.push WHERE id = $1"
}

# proof: what each process answers on /, asked directly, and the agents' restarts
proof() {
  local i j port line restarts=0 r
  echo "   asking every process itself (curl http://127.0.0.1:PORT/):"
  for i in 0 1 2; do
    line=$(printf '     %-9s' "$(unit_of $i)")
    for j in 0 1 2 3; do
      port=$((base + 10 * (i + 1) + j))
      line+=$(printf '  :%s %-18s' "$port" "\"$(curl -s -m 2 "http://127.0.0.1:$port/" || echo 'no answer')\"")
    done
    echo "${line%"${line##*[! ]}"}"
    r=$(curl -s -m 2 "http://127.0.0.1:$(agent_port $i)/metrics" |
        awk '/^conveyor_agent_restarts_total\{.*reason="update"/ {s += $2} END {print s + 0}')
    restarts=$((restarts + r))
  done
  echo "   the agents have restarted $restarts processes for updates so far (conveyor_agent_restarts_total)"
}

demo_agents() {
  local id rid t0
  # an older demo cluster may hold a simulated service named web
  if [[ $(q "SELECT push_type FROM conveyor.service WHERE name = 'web'") == simulated ]]; then
    echo "demo: $dir holds an older demo (service web on the simulator); remove it first:" >&2
    echo "      make demo-stop && rm -rf $dir" >&2
    return 1
  fi
  # a push left running by an earlier session would block push_start
  q "SELECT conveyor.push_cancel(id, 'make demo starts again') FROM conveyor.push
      WHERE service = 'web' AND state IN ('running', 'paused')" >/dev/null

  echo
  echo "== the fleet: 3 conveyor-agents on loopback, each a host running 4 demo-service processes =="
  t0=$SECONDS
  agents_start
  local i
  for i in 0 1 2; do
    printf '   %-5s (region %s)  agent http://127.0.0.1:%s   unit %-9s processes on ports %s-%s, all on %s\n' \
      "${hosts[$i]}" "${hosts[$i]%-*}" "$(agent_port $i)" "$(unit_of $i)" \
      $((base + 10 * (i + 1))) $((base + 10 * (i + 1) + 3)) "$first"
  done
  echo "   (up in $((SECONDS - t0)) s; state, logs and config in $adir)"

  local endpoints
  endpoints=$(printf '"http://127.0.0.1:%s",' "$(agent_port 0)" "$(agent_port 1)" "$(agent_port 2)")
  psql_demo -q -v token="$token" -v config="{\"endpoints\": [${endpoints%,}]}" >/dev/null <<'SQL'
SELECT conveyor.secret_set('demo-agents-token', :'token', 'bearer token of the make demo agents');
SELECT conveyor.http_push_type_create('demo-agents', token_secret => 'demo-agents-token',
         connect_timeout => '1 second', request_timeout => '5 seconds', retries => 2,
         description => 'conveyor-agents on loopback (make demo)')
 WHERE NOT EXISTS (SELECT 1 FROM conveyor.push_type WHERE name = 'demo-agents');
SELECT conveyor.push_plan_create('canary', '[
    {"scope": "region=eu", "amount": "25%", "bake": "6 seconds"},
    {"scope": "*",         "amount": "50%", "bake": "2 seconds"}]',
    'a canary: one process per eu host, baked with health checks; then half of everything; then the rest')
 WHERE NOT EXISTS (SELECT 1 FROM conveyor.push_plan WHERE name = 'canary');
SELECT conveyor.service_create('web', 'demo-agents', 'canary', :'config', failure_policy => 'revert',
         health_interval => '1 second', poll_interval => '200 milliseconds', update_timeout => '30 seconds')
 WHERE NOT EXISTS (SELECT 1 FROM conveyor.service WHERE name = 'web');
-- the agents' ports may differ from the last run's
SELECT conveyor.service_alter('web', push_type_config => :'config');
SQL
  cat <<EOF
   registered as http push type "demo-agents" (token in conveyor.secret "demo-agents-token"), service "web",
   failure policy revert, health checked every second while baking: the agents answer POST /v1/health
   from process liveness plus an HTTP probe of each process's /health. Each agent lets one process per
   unit restart at a time (task control, max_updating 1).
EOF

  export PGHOST=$dir PGUSER=postgres PGDATABASE=$db
  echo
  echo "== 1. pushing $good: a canary in eu, a bake with health checks, then the rest =="
  q "SELECT phase, scope, amount, bake, sum(updates) FROM conveyor.plan_preview('web', '$good') GROUP BY 1,2,3,4 ORDER BY 1" \
    | awk -F'|' '{printf "   plan: phase %s  %-9s %-4s bake %-9s -> %s processes\n", $1, $2, $3, $4, $5}'
  echo "   processes: $legend"
  echo "   \$ conveyor push start web $good --reason 'make demo'"
  id=$(conveyor push start web "$good" --reason 'make demo' | awk '{print $2}')
  follow "$id"
  ended "$id"
  proof
  all_on "$good" || { echo "demo: not every process runs $good" >&2; return 1; }

  echo
  echo "== 2. pushing $bad: the demo service is told to break it (faults file: '$bad errors 1 after 3000') =="
  echo "   it starts fine, then answers 500 on /health: the canary's health checks must catch it"
  echo "   \$ conveyor push start web $bad --reason 'make demo: a bad version'"
  id=$(conveyor push start web "$bad" --reason 'make demo: a bad version' | awk '{print $2}')
  follow "$id"
  ended "$id"
  rid=$(q "SELECT id FROM conveyor.push WHERE reverts = $id")
  [[ -n $rid ]] && ended "$rid"
  echo "   why, from every health evaluation of the push (SELECT * FROM conveyor.explain_health($id)):"
  q "SELECT format('     phase %s  %-11s %-13s %s', phase, coalesce(check_name, ''), verdict, explanation)
       FROM conveyor.explain_health($id)"
  # the revert is over when conveyor saw every process back; give the last
  # probe a moment before asking the processes themselves
  for _ in $(seq 1 50); do all_on "$good" && break; sleep 0.2; done
  proof
  all_on "$good" || { echo "demo: not every process is back on $good" >&2; return 1; }
  echo "   every process runs $good again."
  echo
  echo "   \$ conveyor history --service web --limit 3"
  conveyor history --service web --limit 3 | sed 's/^/   /'
  last_push=$id
}

# --- commands -------------------------------------------------------------------
case "${1:-start}" in
  stop)
    agents_stop
    if [[ -f "$dir/data/postmaster.pid" ]]; then
      run pg_ctl -D "$dir/data" -m fast -w stop
    else
      echo "demo: no cluster running in $dir"
    fi
    left=$(demo_processes)
    [[ -z $left ]] || echo "demo: still running: $left" >&2
    exit 0 ;;
  start) ;;
  *) echo "usage: demo.sh start|stop" >&2; exit 2 ;;
esac

mode=${DEMO:-agents}
case $mode in agents|sim) ;; *) echo "demo: DEMO must be agents or sim, not \"$mode\"" >&2; exit 2 ;; esac

if [[ ! -d "$dir/data" ]]; then
  echo "demo: creating a cluster in $dir"
  run bash -c "source '$src/test/lib.sh' && cv_cluster_init '$dir' '$db' 'port = 5432' \"cron.timezone = 'UTC'\" \"conveyor.allowed_hosts = '127.0.0.1'\""
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
# the agents are on loopback: a superuser must allow it (a cluster made by an
# older demo does not yet)
allowed=$(q "SHOW conveyor.allowed_hosts")
if [[ ",${allowed// /}," != *,127.0.0.1,* ]]; then
  q "ALTER SYSTEM SET conveyor.allowed_hosts = '${allowed:+$allowed,}127.0.0.1'" >/dev/null
  q "SELECT pg_reload_conf()" >/dev/null
  for _ in $(seq 1 50); do [[ $(q "SHOW conveyor.allowed_hosts") == *127.0.0.1* ]] && break; sleep 0.1; done
fi

# wait for the workers to notice the extension
for _ in $(seq 1 100); do
  n=$(psql_demo -tAc "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'conveyor worker'")
  [[ "$n" -ge 1 ]] && break
  sleep 0.1
done
psql_demo -c "SELECT extname, extversion FROM pg_extension WHERE extname IN ('conveyor', 'pg_cron') ORDER BY 1" \
          -c "SELECT pid, backend_type, datname, state FROM pg_stat_activity WHERE backend_type LIKE 'conveyor%' ORDER BY backend_type, pid"

last_push=1
if [[ $mode == sim ]]; then
  source "$src/test/demo-sim.sh"
  demo_sim
  service=sim-web
else
  # a demo that fails half-way stops the agents it started
  trap 'rc=$?; if ((rc)); then echo "demo: failed; stopping the agents (logs in $adir)" >&2; agents_stop; fi' EXIT
  trap 'exit 130' INT TERM
  demo_agents
  service=web
fi

echo
echo "== where to look in psql =="
cat <<LOOK
   SELECT * FROM conveyor.pushes ORDER BY id;                          -- every push, its state and outcome
   SELECT at, kind, phase, actor, reason, detail FROM conveyor.push_event
    WHERE push_id = $last_push ORDER BY id;                                   -- why push $last_push stopped
   SELECT * FROM conveyor.plan_preview('$service', '9.9');                  -- what a push would do
   SELECT * FROM conveyor.push_progress;                               -- active pushes as they go (\\x)
   LISTEN conveyor_events;                                             -- every push event as JSON
== and from a shell, with the conveyor command line (docs/cli.md) ==
   export PATH=$CV_BINDIR:\$PATH PGHOST=$dir PGUSER=postgres PGDATABASE=$db   # make install put conveyor beside psql
   conveyor push start $service 1.3 --reason 'from the shell' --watch    # live progress bars per phase
   conveyor status; conveyor history
   conveyor report --out report.html                                   # timeline and weekly SLO, one file
LOOK
if [[ $mode == agents ]]; then
  cat <<AGENTS
== the agents (docs/agent.md) ==
   curl -s -H "Authorization: Bearer \$(cat $adir/token)" -H 'Conveyor-Protocol: 1' http://127.0.0.1:$(agent_port 0)/v1/units | jq .
   curl -s http://127.0.0.1:$(agent_port 0)/metrics                                   # up, restarts, versions, probe latency
   curl -s http://127.0.0.1:$((base + 10))/                                            # a process itself
   echo '1.3 crash 300' >>$adir/faults   # then push 1.3: a version that dies just after starting
AGENTS
fi
cat <<MSG

conveyor is running$([[ $mode == agents ]] && echo ", and so are the 3 agents and their 12 processes"). Connect with:
    psql -h $dir -U postgres $db
Stop $([[ $mode == agents ]] && echo "them all" || echo "the cluster") with:
    make demo-stop
MSG
