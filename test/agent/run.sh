#!/usr/bin/env bash
# test/agent/run.sh [WORK_DIR]: conveyor-agent end to end on loopback, with real
# demo-service processes: units, updates that really restart processes on the
# new version, idempotency, a crashing and an erroring version, health, task
# control, metrics, auth and protocol errors, restarts of the agent (clean and
# SIGKILL), and nothing left running afterwards. Then a smoke test of
# test/http/fault_server.py, and the benchmark endpoint's protocol checks
# (test/http/bench_endpoint_test.sh). Ends with "N passed, M failed".
# Needs curl, jq and python3; builds the agent with make if it is missing.
set -uo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
work=${1:-$(mktemp -d /tmp/conveyor-agent.XXXXXX)}
mkdir -p "$work"
agent_bin=$src/agent/conveyor-agent
demo_bin=$src/agent/demo-service
token=agent-test-token-$$
passed=0
failed=0
agent_pid=
fault_pid=

# jqt FILTER JSON: jq's FILTER holds on JSON (quiet)
jqt() { jq -e "$1" <<<"$2" >/dev/null 2>&1; }
ok()   { passed=$((passed + 1)); echo "ok - $1"; }
bad()  { failed=$((failed + 1)); echo "not ok - $1"; [[ -n ${2:-} ]] && echo "#   $2"; return 0; }
# check DESCRIPTION COMMAND...: passes when COMMAND succeeds
check() { local d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }
# eventually SECONDS COMMAND...: COMMAND succeeds within SECONDS (polled every 0.2 s)
eventually() {
  local until=$((SECONDS + $1)); shift
  while ((SECONDS <= until)); do "$@" && return 0; sleep 0.2; done
  return 1
}

if ! make -s -C "$src" agent/conveyor-agent agent/demo-service >"$work/build.log" 2>&1; then
  cat "$work/build.log"
  echo "agent: build failed"
  echo "0 passed, 1 failed"
  exit 1
fi
for tool in curl jq python3; do
  command -v $tool >/dev/null || { echo "agent: $tool is missing (make deps)"; echo "0 passed, 1 failed"; exit 1; }
done
# the interpreter itself, not a wrapper script (pyenv's shims do not exec):
# a signal sent to the fault server's pid must reach the server
py=$(python3 -c 'import sys; print(sys.executable)')

# free_block N: the first of N consecutive loopback ports that are free now.
# Random bases, so parallel runs rarely meet; a start that still loses a
# race is retried with another block.
free_block() {
  python3 - "$1" <<'EOF'
import random, socket, sys
n = int(sys.argv[1])
for _ in range(200):
    base = random.randrange(20000, 60000 - n)
    socks = []
    try:
        for p in range(base, base + n):
            s = socket.socket(); socks.append(s); s.bind(("127.0.0.1", p))
        print(base); sys.exit(0)
    except OSError:
        pass
    finally:
        for s in socks: s.close()
sys.exit("no free port block")
EOF
}

# api METHOD PATH [BODY]: a protocol request with the right token; prints the body
api() {
  local args=(-s -H "Authorization: Bearer $token" -H "Conveyor-Protocol: 1")
  [[ $1 == POST ]] && args+=(-H 'Content-Type: application/json' --data-binary "$3")
  curl "${args[@]}" "http://127.0.0.1:$port$2"
}
# code ARGS...: only the HTTP status of a curl request
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
units() { api GET /v1/units; }
# status_is UNIT SUBUNIT VERSION STATUS
status_is() {
  units | jq -e --arg u "$1" --arg s "$2" --arg v "$3" --arg st "$4" \
    '.units[] | select(.name == $u) | .subunits[] | select(.name == $s) | .version == $v and .status == $st' >/dev/null
}
# all_at UNIT VERSION: every subunit of UNIT runs VERSION and is ok
all_at() {
  units | jq -e --arg u "$1" --arg v "$2" \
    '[.units[] | select(.name == $u) | .subunits[] | .version == $v and .status == "ok"] | (length > 0 and all)' >/dev/null
}
# serves PORT VERSION: the instance on PORT really answers "hello from VERSION"
serves() { [[ $(curl -s -m 2 "http://127.0.0.1:$1/") == "hello from $2" ]]; }
# metric NAME_AND_LABELS: its value in the agent's /metrics
metric() { curl -s "http://127.0.0.1:$port/metrics" | awk -v m="$1" '$1 == m {print $2}'; }
# instance_pids: pids of demo-service processes started by this run
instance_pids() { pgrep -f -- "--faults $work/faults" || true; }
none_running() { [[ -z $(instance_pids) ]]; }

start_agent() {
  "$agent_bin" -c "$work/agent.json" >>"$work/agent.log" 2>&1 &
  agent_pid=$!
  eventually 10 curl -s -o /dev/null "http://127.0.0.1:$port/metrics"
}
stop_agent() {
  [[ -n $agent_pid ]] || return 0
  kill -TERM "$agent_pid" 2>/dev/null
  wait "$agent_pid"
  local rc=$?
  agent_pid=
  return $rc
}

cleanup() {
  [[ -n $agent_pid ]] && kill -KILL "$agent_pid" 2>/dev/null
  [[ -n $fault_pid ]] && kill -TERM "$fault_pid" 2>/dev/null
  local p
  for p in $(instance_pids); do kill -KILL "$p" 2>/dev/null; done
  return 0
}
trap cleanup EXIT

cat >"$work/faults" <<'EOF'
# demo-service faults for this test
2.0-crash   crash 200
2.1-errors  errors 1 after 1500
EOF

write_config() {
  cat >"$work/agent.json" <<EOF
{
  "listen": "127.0.0.1:$port",
  "token_file": "$work/token",
  "state_dir": "$work/state",
  "grace_ms": 2000, "start_timeout_ms": 5000, "min_uptime_ms": 600,
  "probe_timeout_ms": 1000, "probe_interval_ms": 1000, "max_body_bytes": 65536,
  "units": [
    {"name": "web-eu-1", "labels": {"region": "eu", "tier": "web"}, "instances": 3, "base_port": $((port + 1)),
     "max_updating": 1, "initial_version": "1.0",
     "command": ["$demo_bin", "--port", "{port}", "--version", "{version}", "--faults", "$work/faults"]},
    {"name": "api-us-1", "labels": {"region": "us"}, "instances": 2, "base_port": $((port + 4)),
     "initial_version": "1.0",
     "command": ["$demo_bin", "--port", "{port}", "--version", "{version}", "--faults", "$work/faults"]},
    {"name": "batch-ap-1", "labels": {"region": "ap"}, "instances": 1, "base_port": $((port + 6)),
     "initial_version": "1.0", "health_path": "/health",
     "command": ["$demo_bin", "--port", "{port}", "--version", "{version}", "--faults", "$work/faults"]}
  ]
}
EOF
}
printf '%s\n' "$token" >"$work/token"

echo "# config"
port=$(free_block 8)
write_config
check "a valid config passes --check" eval '"$agent_bin" -c "$work/agent.json" --check >/dev/null'
jq '.units[0].color = "red"' "$work/agent.json" >"$work/bad1.json"
out=$("$agent_bin" -c "$work/bad1.json" 2>&1); rc=$?
check "an unknown member is refused with exit 2 and its path" \
  test $rc -eq 2 -a "${out/units\[0\].color: unknown member/}" != "$out"
jq 'del(.units[1].initial_version)' "$work/agent.json" >"$work/bad2.json"
out=$("$agent_bin" -c "$work/bad2.json" 2>&1); rc=$?
check "a missing initial_version is refused" test $rc -eq 2 -a "${out/initial_version: missing/}" != "$out"
jq '.units[1].base_port = .units[0].base_port' "$work/agent.json" >"$work/bad3.json"
out=$("$agent_bin" -c "$work/bad3.json" 2>&1); rc=$?
check "overlapping ports are refused" test $rc -eq 2 -a "${out/overlap/}" != "$out"

echo "# start"
for attempt in 1 2 3; do
  start_agent && break
  stop_agent; port=$(free_block 8); write_config
done
check "the agent serves" test -n "$agent_pid"
all_initial() { all_at web-eu-1 1.0 && all_at api-us-1 1.0 && all_at batch-ap-1 1.0; }
check "every instance comes up on the initial version" eventually 20 all_initial
check "the processes really run 1.0" eval 'serves $((port + 1)) 1.0 && serves $((port + 3)) 1.0 && serves $((port + 6)) 1.0'

echo "# protocol"
u=$(units)
check "units: protocol 1, labels, subunits" \
  jqt '.protocol == 1 and (.units | length) == 3 and .units[0].labels.region == "eu"
         and ([.units[0].subunits[].name] == ["0","1","2"])' "$u"
check "no token: 401" test "$(code "http://127.0.0.1:$port/v1/units" -H 'Conveyor-Protocol: 1')" = 401
check "wrong token: 401 with WWW-Authenticate" \
  eval "curl -s -i -H 'Authorization: Bearer nope' -H 'Conveyor-Protocol: 1' http://127.0.0.1:$port/v1/units | grep -qi '^WWW-Authenticate: Bearer'"
check "no protocol header: 400" \
  test "$(code -H "Authorization: Bearer $token" "http://127.0.0.1:$port/v1/units")" = 400
check "protocol 2: 400" \
  test "$(code -H "Authorization: Bearer $token" -H 'Conveyor-Protocol: 2' "http://127.0.0.1:$port/v1/units")" = 400
check "unknown endpoint: 404" \
  test "$(code -H "Authorization: Bearer $token" -H 'Conveyor-Protocol: 1' "http://127.0.0.1:$port/v1/nothing")" = 404
check "wrong method: 405" \
  test "$(code -X POST -H "Authorization: Bearer $token" -H 'Conveyor-Protocol: 1' "http://127.0.0.1:$port/v1/units")" = 405
check "malformed JSON: 400" \
  test "$(code -H "Authorization: Bearer $token" -H 'Conveyor-Protocol: 1' -d '{"units": [' "http://127.0.0.1:$port/v1/health")" = 400
check "wrong shape: 400" \
  test "$(code -H "Authorization: Bearer $token" -H 'Conveyor-Protocol: 1' -d '{"updates": {}}' "http://127.0.0.1:$port/v1/update")" = 400
head -c 70000 /dev/zero | tr '\0' ' ' >"$work/big.json"
check "a body over max_body_bytes: 413" \
  test "$(code -H "Authorization: Bearer $token" -H 'Conveyor-Protocol: 1' --data-binary @"$work/big.json" "http://127.0.0.1:$port/v1/health")" = 413
check "needs-push: no for the running version, yes for another" \
  eval "api POST /v1/needs-push '{\"version\":\"1.0\",\"units\":[\"web-eu-1\"]}' | jq -e '.units[0].needs_push == false' >/dev/null &&
        api POST /v1/needs-push '{\"version\":\"1.1\",\"units\":[\"web-eu-1\",\"ghost\"]}' | jq -e '[.units[].needs_push] == [true, true]' >/dev/null"
check "tasks: max_updating 1 allows one of three candidates" \
  eval "api POST /v1/tasks '{\"candidates\":[{\"unit\":\"web-eu-1\",\"subunit\":\"0\"},{\"unit\":\"web-eu-1\",\"subunit\":\"1\"},{\"unit\":\"web-eu-1\",\"subunit\":\"2\"}]}' | jq -e '.allowed | length == 1' >/dev/null"

echo "# update"
req='{"idempotency_key":"push-1-batch-1","updates":[
  {"unit":"web-eu-1","subunit":"0","version":"1.1","key":"p1-web-0"},
  {"unit":"web-eu-1","subunit":"1","version":"1.1","key":"p1-web-1"},
  {"unit":"web-eu-1","subunit":"2","version":"1.1","key":"p1-web-2"},
  {"unit":"ghost","subunit":"0","version":"1.1","key":"p1-ghost"},
  {"unit":"api-us-1","subunit":"7","version":"1.1","key":"p1-api-7"},
  {"unit":"api-us-1","subunit":"0","version":"1.1;rm -rf /","key":"p1-api-0"}]}'
first=$(api POST /v1/update "$req")
check "update: accepted at once for known subunits" \
  jqt '[.results[0:3][] | .status == "accepted" and .error == null] | all' "$first"
check "update: unknown unit, unknown subunit and a bad version are refused with a reason" \
  jqt '[.results[3:][] | .status == "refused" and (.error | type == "string")] | all and length == 3' "$first"
check "accepted subunits report updating at once" \
  eval 'units | jq -e "[.units[0].subunits[] | .version == \"1.1\" and .status != \"ok\"] | any" >/dev/null || all_at web-eu-1 1.1'
check "the update completes: every web instance ok on 1.1" eventually 20 all_at web-eu-1 1.1
check "the processes really run 1.1" eval 'serves $((port + 1)) 1.1 && serves $((port + 2)) 1.1 && serves $((port + 3)) 1.1'
check "the other units were not touched" eval 'all_at api-us-1 1.0 && serves $((port + 4)) 1.0'

echo "# idempotency"
again=$(api POST /v1/update "$req")
check "the same request again: the same answer, byte for byte" test "$again" = "$first"
resent=$(api POST /v1/update "${req/push-1-batch-1/push-1-batch-1-retry}")
check "the same update keys in a new request: the same answers" \
  test "$(jq -c '.results' <<<"$resent")" = "$(jq -c '.results' <<<"$first")"
sleep 1.5
check "re-sending restarted nothing: one update restart per instance" \
  eval '[[ $(metric "conveyor_agent_restarts_total{unit=\"web-eu-1\",instance=\"0\",reason=\"update\"}") == 1 &&
           $(metric "conveyor_agent_restarts_total{unit=\"web-eu-1\",instance=\"2\",reason=\"update\"}") == 1 ]]'
check "a new key for the version already running: done, no restart" \
  eval "api POST /v1/update '{\"idempotency_key\":\"p2\",\"updates\":[{\"unit\":\"web-eu-1\",\"subunit\":\"0\",\"version\":\"1.1\",\"key\":\"p2-web-0\"}]}' |
        jq -e '.results[0].status == \"done\"' >/dev/null &&
        [[ \$(metric 'conveyor_agent_restarts_total{unit=\"web-eu-1\",instance=\"0\",reason=\"update\"}') == 1 ]]"
check "an old key after a newer update changes nothing" \
  eval "api POST /v1/update '{\"updates\":[{\"unit\":\"web-eu-1\",\"subunit\":\"1\",\"version\":\"1.0\",\"key\":\"p1-web-1\"}]}' |
        jq -e '.results[0].status == \"accepted\"' >/dev/null && sleep 1 && all_at web-eu-1 1.1"
check "the same request key with another body: 422" \
  test "$(code -H "Authorization: Bearer $token" -H 'Conveyor-Protocol: 1' -d '{"idempotency_key":"push-1-batch-1","updates":[]}' "http://127.0.0.1:$port/v1/update")" = 422

echo "# faulty versions"
api POST /v1/update '{"idempotency_key":"p3","updates":[
  {"unit":"api-us-1","subunit":"0","version":"2.0-crash","key":"p3-api-0"},
  {"unit":"batch-ap-1","subunit":"0","version":"2.1-errors","key":"p3-batch-0"}]}' >/dev/null
check "a version that crashes ends failed" eventually 15 status_is api-us-1 0 2.0-crash failed
check "its reason says how it died" \
  eval "units | jq -e '.units[1].subunits[0].reason | test(\"exited with status 1\")' >/dev/null"
check "the agent keeps restarting it with backoff" \
  eventually 10 eval '(( $(metric "conveyor_agent_restarts_total{unit=\"api-us-1\",instance=\"0\",reason=\"crash\"}") >= 1 ))'
check "an erroring version starts ok (its errors begin later)" eventually 15 status_is batch-ap-1 0 2.1-errors ok
sleep 1.6
health=$(api POST /v1/health '{"units":["web-eu-1","api-us-1","batch-ap-1","ghost"]}')
check "health: the updated good unit is healthy" \
  jqt '.units[0].name == "web-eu-1" and .units[0].healthy == true' "$health"
check "health: the unit with a crashing instance is unhealthy" \
  jqt '.units[1].healthy == false and (.units[1].reason | test("instance 0: failed"))' "$health"
check "health: the erroring version is unhealthy, its probe answered 500" \
  jqt '.units[2].healthy == false and (.units[2].reason | test("500"))' "$health"
check "health: an unknown unit is unhealthy" jqt '.units[3].healthy == false' "$health"
check "the erroring instance answers 500 on /health" \
  test "$(code "http://127.0.0.1:$((port + 6))/health")" = 500

echo "# metrics"
curl -s "http://127.0.0.1:$port/metrics" >"$work/agent.metrics"
curl -s "http://127.0.0.1:$((port + 1))/" >/dev/null
curl -s "http://127.0.0.1:$((port + 1))/metrics" >"$work/demo.metrics"
# prom_ok FILE: every line is a comment or `name{labels} value`, every sample has a TYPE
prom_ok() {
  python3 - "$1" <<'EOF'
import re, sys
sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? (-?[0-9.eE+-]+|\+Inf|NaN)$')
types = {}
ok = True
for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    if line.startswith("# TYPE "):
        _, _, name, kind = line.split(" ", 3); types[name] = kind
    elif line.startswith("#") or not line:
        continue
    else:
        m = sample.match(line)
        base = m and re.sub(r'_(bucket|sum|count)$', '', m.group(1))
        if not m or (m.group(1) not in types and base not in types):
            print("bad metrics line: " + line); ok = False
sys.exit(0 if ok and types else 1)
EOF
}
check "agent /metrics parses as Prometheus text" prom_ok "$work/agent.metrics"
check "agent /metrics: up, restarts, version info, probe latency" \
  eval "grep -q '^conveyor_agent_up{unit=\"web-eu-1\",instance=\"0\"} 1' $work/agent.metrics &&
        grep -q '^conveyor_agent_version_info{unit=\"web-eu-1\",instance=\"0\",version=\"1.1\",status=\"ok\"} 1' $work/agent.metrics &&
        grep -q '^conveyor_agent_restarts_total{' $work/agent.metrics &&
        grep -q '^conveyor_agent_probe_duration_seconds{unit=\"web-eu-1\",instance=\"0\"} 0\.' $work/agent.metrics"
check "demo-service /metrics parses as Prometheus text" prom_ok "$work/demo.metrics"
check "demo-service /metrics: requests, errors, a latency histogram" \
  eval "grep -q '^demo_requests_total{version=\"1.1\",path=\"/\",code=\"2xx\"} [1-9]' $work/demo.metrics &&
        grep -q '^demo_errors_total{version=\"1.1\"} 0' $work/demo.metrics &&
        grep -q '^demo_request_duration_seconds_bucket{version=\"1.1\",path=\"/\",le=\"+Inf\"} [1-9]' $work/demo.metrics"

echo "# restarts"
before=$(instance_pids | sort)
check "SIGTERM: the agent exits 0" stop_agent
check "SIGTERM: it stopped every instance" eventually 5 none_running
check "its instances' ports are closed" eval '! curl -s -m 1 -o /dev/null http://127.0.0.1:$((port + 1))/'
start_agent
check "after a restart: the versions it had" \
  eventually 20 eval 'all_at web-eu-1 1.1 && all_at batch-ap-1 2.1-errors && status_is api-us-1 1 1.0 ok'
check "after a restart: the processes really run them" \
  eval 'serves $((port + 1)) 1.1 && serves $((port + 3)) 1.1 && serves $((port + 5)) 1.0'
check "after a restart: new processes" test "$(instance_pids | sort)" != "$before"
check "after a restart: update keys are remembered (no restart for a re-sent key)" \
  eval "api POST /v1/update '{\"updates\":[{\"unit\":\"web-eu-1\",\"subunit\":\"2\",\"version\":\"1.1\",\"key\":\"p1-web-2\"}]}' |
        jq -e '.results[0].status == \"accepted\"' >/dev/null &&
        [[ \$(metric 'conveyor_agent_restarts_total{unit=\"web-eu-1\",instance=\"2\",reason=\"update\"}') == 0 ]]"
out=$("$agent_bin" -c "$work/agent.json" 2>&1); rc=$?
check "a second agent on the same state directory is refused" test $rc -ne 0 -a "${out/in use/}" != "$out"
kill -KILL "$agent_pid"; wait "$agent_pid" 2>/dev/null; agent_pid=
if eventually 5 none_running; then ok "SIGKILL of the agent: its instances stop too"
else bad "SIGKILL of the agent: its instances stop too" "left: $(instance_pids | xargs -r ps -o pid,ppid,stat,etime,args -p)"; fi
start_agent
check "and it starts again after SIGKILL" eventually 20 all_at web-eu-1 1.1
check "clean stop at the end" stop_agent
check "nothing left running" eventually 5 none_running

echo "# fault server"
"$py" "$src/test/http/fault_server.py" --token "$token" --port-file "$work/fault.port" >"$work/fault.log" 2>&1 &
fault_pid=$!
if eventually 10 test -s "$work/fault.port"; then
  fport=$(cat "$work/fault.port")
  fs() { curl -s "http://127.0.0.1:$fport$@"; }
  fsapi() { curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" -H 'Conveyor-Protocol: 1' "$@"; }
  fs /_fault -d '{"path":"/v1/update","mode":"500","count":2}' >/dev/null
  codes=""
  for i in 1 2 3; do
    codes+="$(fsapi -d '{"idempotency_key":"r1","updates":[{"unit":"u0","subunit":"0","version":"v2","key":"k1"}]}' "http://127.0.0.1:$fport/v1/update") "
  done
  check "fault server: two injected 500s, then a normal answer" test "$codes" = "500 500 200 "
  check "fault server: stats count requests and re-sent keys" \
    eval "fs /_stats | jq -e '.requests[\"/v1/update\"] == 3 and .idempotency_keys.r1 == 3 and .update_keys.k1 == 3 and .updates_applied[\"u0/0\"] == 1' >/dev/null"
  fs /_fault -d '{"path":"*","mode":"reset","count":1}' >/dev/null
  curl -s -o /dev/null -H "Authorization: Bearer $token" -H 'Conveyor-Protocol: 1' "http://127.0.0.1:$fport/v1/units"; rc=$?
  check "fault server: reset mode resets the connection" test $rc -eq 56
  fs /_fault -d '{"path":"/v1/units","mode":"malformed","count":1}' >/dev/null
  check "fault server: malformed mode answers 200 with invalid JSON" \
    eval "! curl -s -H 'Authorization: Bearer $token' -H 'Conveyor-Protocol: 1' http://127.0.0.1:$fport/v1/units | jq . >/dev/null 2>&1"
  check "fault server: a wrong token gets 401" test "$(code -H 'Conveyor-Protocol: 1' "http://127.0.0.1:$fport/v1/units")" = 401
  kill -TERM "$fault_pid"; wait "$fault_pid"; rc=$?; fault_pid=
  check "fault server: SIGTERM stops it cleanly" test $rc -eq 0
else
  bad "fault server starts" "$(cat "$work/fault.log")"
fi

echo "# bench endpoint (test/http/bench_endpoint.c, used by make bench)"
if make -s -C "$src" test/http/bench_endpoint >"$work/bench_endpoint.build" 2>&1; then
  bash "$src/test/http/bench_endpoint_test.sh" "$src/test/http/bench_endpoint" "$work/bench_endpoint" >"$work/bench_endpoint.out" 2>&1
  # its own summary line as a comment: the runner reads only this suite's last one
  sed 's/^\([0-9]* passed, [0-9]* failed\)$/# bench endpoint: \1/' "$work/bench_endpoint.out"
  read -r bp bf < <(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$work/bench_endpoint.out" | tail -n 1)
  passed=$((passed + ${bp:-0})); failed=$((failed + ${bf:-1}))
else
  bad "bench endpoint builds" "$(cat "$work/bench_endpoint.build")"
fi

if ((failed > 0)); then
  echo "---- agent log (last 40 lines) ----"; tail -n 40 "$work/agent.log"
  echo "(kept in $work)"
else
  rm -rf "$work"
fi
echo "$passed passed, $failed failed"
((failed == 0))
