#!/usr/bin/env bash
# test/http/bench_endpoint_test.sh BINARY [WORK_DIR]: the benchmark endpoint
# (test/http/bench_endpoint.c) answers as docs/push-type-protocol.md says:
# the checks in order (401, 400, 404, 405, 413), each verb's shape, both update
# modes, idempotency, separate fleets under /NAME/v1/, held requests that wait
# concurrently, and a clean SIGTERM. Run by test/agent/run.sh and by
# test/bench/http.sh before it measures anything. Prints "ok - ..." lines and
# ends with "N passed, M failed"; no timing thresholds.
set -uo pipefail

bin=${1:?usage: bench_endpoint_test.sh BINARY [WORK_DIR]}
work=${2:-$(mktemp -d /tmp/conveyor-bench-endpoint.XXXXXX)}
mkdir -p "$work"
token=bench-endpoint-token-$$
passed=0
failed=0
pids=()

ok()  { passed=$((passed + 1)); echo "ok - $1"; }
bad() { failed=$((failed + 1)); echo "not ok - $1"; [[ -n ${2:-} ]] && echo "#   $2"; return 0; }
check() { local d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }
eventually() {
  local until=$((SECONDS + $1)); shift
  while ((SECONDS <= until)); do "$@" && return 0; sleep 0.1; done
  return 1
}
cleanup() { local p; for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done; return 0; }
trap cleanup EXIT

# start NAME ARGS...: start an endpoint; its port in $port, its pid in $pid
start() {
  local name=$1; shift
  rm -f "$work/$name.port"
  "$bin" --token "$token" --port 0 --port-file "$work/$name.port" "$@" >"$work/$name.log" 2>&1 &
  pid=$!; pids+=("$pid")
  if ! eventually 10 test -s "$work/$name.port"; then
    bad "$name endpoint starts" "$(cat "$work/$name.log")"; return 1
  fi
  port=$(cat "$work/$name.port")
}
# api METHOD PATH [BODY]: a request as conveyor sends it; the body on stdout
api() {
  local args=(-s -H "Authorization: Bearer $token" -H 'Conveyor-Protocol: 1' -H 'Accept: application/json')
  [[ $1 == POST ]] && args+=(-H 'Content-Type: application/json' --data-binary "$3")
  curl "${args[@]}" "http://127.0.0.1:$port$2"
}
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
jqt() { jq -e "$1" <<<"$2" >/dev/null 2>&1; }
stats() { curl -s "http://127.0.0.1:$port/_stats"; }

for tool in curl jq; do
  command -v $tool >/dev/null || { echo "bench endpoint: $tool is missing (make deps)"; echo "0 passed, 1 failed"; exit 1; }
done

echo "# bench endpoint: mode done, 4 units x 3 subunits"
if start done --units 4 --subunits 3 --version 1.0 --max-body 4096; then
  u="http://127.0.0.1:$port"
  check "no token: 401 with WWW-Authenticate: Bearer" \
    eval "curl -s -i -H 'Conveyor-Protocol: 1' $u/v1/units | tr -d '\r' | grep -qx 'WWW-Authenticate: Bearer' &&
          [[ \$(code -H 'Conveyor-Protocol: 1' $u/v1/units) == 401 ]]"
  check "a wrong token: 401, even without the protocol header" test "$(code -H 'Authorization: Bearer nope' "$u/v1/units")" = 401
  check "no Conveyor-Protocol: 400 with an error" \
    eval "[[ \$(code -H 'Authorization: Bearer $token' $u/v1/units) == 400 ]] &&
          curl -s -H 'Authorization: Bearer $token' $u/v1/units | jq -e '.error | type == \"string\"' >/dev/null"
  check "Conveyor-Protocol: 2: 400" test "$(code -H "Authorization: Bearer $token" -H 'Conveyor-Protocol: 2' "$u/v1/units")" = 400
  check "/v1/tasks: 404 (no task control)" \
    test "$(code -H "Authorization: Bearer $token" -H 'Conveyor-Protocol: 1' -d '{"candidates":[]}' "$u/v1/tasks")" = 404
  check "GET /v1/update: 405" test "$(code -H "Authorization: Bearer $token" -H 'Conveyor-Protocol: 1' "$u/v1/update")" = 405
  check "a body that is not JSON: 400" \
    test "$(code -H "Authorization: Bearer $token" -H 'Conveyor-Protocol: 1' -d 'nope' "$u/v1/update")" = 400
  check "an update of the wrong shape: 400" \
    test "$(code -H "Authorization: Bearer $token" -H 'Conveyor-Protocol: 1' -d '{"updates":[{"unit":"u0"}]}' "$u/v1/update")" = 400
  big=$(printf '{"updates":[],"pad":"%05000d"}' 0)
  check "a body over --max-body: 413" \
    test "$(code -H "Authorization: Bearer $token" -H 'Conveyor-Protocol: 1' -d "$big" "$u/v1/update")" = 413

  out=$(curl -s -D "$work/headers" -H "Authorization: Bearer $token" -H 'Conveyor-Protocol: 1' "$u/v1/units")
  check "units: 200 with Content-Type: application/json and Conveyor-Protocol: 1" \
    eval "tr -d '\r' <'$work/headers' | grep -q '^HTTP/1.1 200' && tr -d '\r' <'$work/headers' | grep -qix 'Content-Type: application/json' &&
          tr -d '\r' <'$work/headers' | grep -qx 'Conveyor-Protocol: 1'"
  check "units: protocol 1, 4 units of 3 subunits, string labels, every subunit on 1.0 and ok" \
    jqt '.protocol == 1 and (.units | length == 4) and
         all(.units[]; (.name | type == "string") and (.labels | to_entries | all(.value | type == "string")) and
                       (.subunits | length == 3) and all(.subunits[]; .version == "1.0" and .status == "ok"))
         and ([.units[].name] | unique | length == 4) and all(.units[]; [.subunits[].name] | unique | length == 3)' "$out"

  out=$(api POST /v1/needs-push '{"version":"1.0","units":["u0","u9"]}')
  check "needs-push: a unit on the version needs none, an unknown one does" \
    jqt '.units == [{"name":"u0","needs_push":false},{"name":"u9","needs_push":true}]' "$out"

  req='{"idempotency_key":"r1","updates":[{"unit":"u1","subunit":"2","version":"1.1","key":"k1"},{"unit":"u0","subunit":"0","version":"1.1","key":"k2"},{"unit":"u0","subunit":"1","version":"1.0","key":"k3"},{"unit":"u7","subunit":"0","version":"1.1","key":"k4"},{"unit":"u0","subunit":"9","version":"1.1","key":"k5"}]}'
  out=$(api POST /v1/update "$req")
  check "update: one result per update, done, unknown unit and subunit refused with an error" \
    jqt '(.results | length == 5) and
         ([.results[] | select(.status == "done" and .error == null) | "\(.unit)/\(.subunit)"] | sort == ["u0/0","u0/1","u1/2"]) and
         ([.results[] | select(.status == "refused") | .error | type == "string"] | length == 2)' "$out"
  check "update: the next GET /v1/units shows the new version" \
    eval "api GET /v1/units | jq -e '[.units[] | .name as \$n | .subunits[] | select(.version == \"1.1\") | \"\(\$n)/\(.name)\"] | sort == [\"u0/0\",\"u1/2\"]' >/dev/null"
  check "needs-push: a unit partly on the version needs a push" \
    jqt '.units[0].needs_push == true' "$(api POST /v1/needs-push '{"version":"1.1","units":["u0"]}')"
  again=$(api POST /v1/update "$req")
  check "a re-sent request gets the same answer byte for byte" test "$again" = "$out"
  check "the same idempotency_key with another body: 422" \
    test "$(code -H "Authorization: Bearer $token" -H 'Conveyor-Protocol: 1' -d '{"idempotency_key":"r1","updates":[]}' "$u/v1/update")" = 422
  out=$(api POST /v1/update '{"idempotency_key":"r2","updates":[{"unit":"u0","subunit":"0","version":"1.1","key":"k2"},{"unit":"u0","subunit":"2","version":"1.2","key":"k6"}]}')
  check "a re-sent update key in a new request: its first answer, not applied again" \
    eval "jqt '.results[0].status == \"done\" and .results[1].status == \"done\"' '$out' &&
          stats | jq -e '.fleets[\"\"].updates_applied == 3 and .fleets[\"\"].updates_resent == 1 and .fleets[\"\"].max_applied_per_subunit == 1' >/dev/null"
  check "a subunit named twice in one request: the second is refused" \
    jqt '.results[1].status == "refused"' \
        "$(api POST /v1/update '{"updates":[{"unit":"u3","subunit":"0","version":"2","key":"a"},{"unit":"u3","subunit":"0","version":"3","key":"b"}]}')"
  check "a version outside the agent's alphabet is refused" \
    jqt '.results[0].status == "refused"' "$(api POST /v1/update '{"updates":[{"unit":"u3","subunit":"1","version":"a b","key":"c"}]}')"
  out=$(api POST /v1/health '{"units":["u0","nope"]}')
  check "health: every requested unit, known ones healthy" \
    jqt '.units | length == 2 and .[0].name == "u0" and .[0].healthy == true and .[1].healthy == false and (.[1].reason | type == "string")' "$out"
  check "/f1/v1/units is a fleet of its own, still on 1.0" \
    eval "api GET /f1/v1/units | jq -e 'all(.units[].subunits[]; .version == \"1.0\")' >/dev/null"
  check "/_stats counts requests per fleet and verb" \
    eval "stats | jq -e '.fleets.f1.requests.units == 1 and .fleets[\"\"].requests.update >= 5 and .status[\"401\"] >= 2' >/dev/null"
  curl -s -X POST "$u/_reset" >/dev/null
  check "/_reset: every subunit back on 1.0, counters cleared" \
    eval "api GET /v1/units | jq -e 'all(.units[].subunits[]; .version == \"1.0\")' >/dev/null &&
          stats | jq -e '.fleets[\"\"].updates_applied == 0' >/dev/null"
  kill -TERM "$pid"; wait "$pid"; rc=$?
  check "SIGTERM: exits 0" test $rc -eq 0
fi

echo "# bench endpoint: mode accepted, no needs-push"
if start accepted --units 2 --subunits 2 --mode accepted --no-needs-push; then
  out=$(api POST /v1/update '{"idempotency_key":"r1","updates":[{"unit":"u0","subunit":"0","version":"v2","key":"k1"},{"unit":"u0","subunit":"1","version":"v1","key":"k2"}]}')
  check "update: a change is accepted, an update to the running version done" \
    jqt '.results[0].status == "accepted" and .results[1].status == "done"' "$out"
  check "accepted: the next GET /v1/units already shows the version, ok" \
    eval "api GET /v1/units | jq -e '.units[0].subunits[0] == {\"name\":\"0\",\"version\":\"v2\",\"status\":\"ok\"}' >/dev/null"
  check "--no-needs-push: 404" \
    test "$(code -H "Authorization: Bearer $token" -H 'Conveyor-Protocol: 1' -d '{"version":"v2","units":["u0"]}' "http://127.0.0.1:$port/v1/needs-push")" = 404
  kill -TERM "$pid"; wait "$pid"
fi

echo "# bench endpoint: --delay-ms 3000, 2 threads: 60 held requests wait together"
if start slow --units 1 --subunits 1 --delay-ms 3000 --threads 2; then
  urls=()
  for i in $(seq 1 60); do urls+=(-o "$work/out-slow.$i" "http://127.0.0.1:$port/s$i/v1/units"); done
  curl -s --no-progress-meter -Z --parallel-immediate --parallel-max 60 -H "Authorization: Bearer $token" -H 'Conveyor-Protocol: 1' "${urls[@]}" &
  cpid=$!
  check "all 60 are held at once (2 threads do not serialize them)" \
    eventually 10 eval "stats | jq -e '.delayed == 60 and .in_flight == 60' >/dev/null"
  wait "$cpid"
  check "then each gets its fleet" eval "cat $work/out-slow.* | jq -s -e 'length == 60 and all(.protocol == 1)' >/dev/null"
  curl -s --no-progress-meter -Z --parallel-immediate --parallel-max 10 -H "Authorization: Bearer $token" -H 'Conveyor-Protocol: 1' \
       $(for i in $(seq 1 10); do echo "-o $work/out-held.$i http://127.0.0.1:$port/v1/units"; done) &
  cpid=$!
  eventually 10 eval "stats | jq -e '.delayed == 10' >/dev/null"
  kill -TERM "$pid"; wait "$pid"; rc=$?; wait "$cpid"
  check "SIGTERM with 10 held requests: each is answered, then exit 0" \
    eval "[[ $rc -eq 0 ]] && cat $work/out-held.* | jq -s -e 'length == 10 and all(.protocol == 1)' >/dev/null"
fi

((failed == 0)) && rm -rf "$work" || echo "(kept in $work)"
echo "$passed passed, $failed failed"
((failed == 0))
