#!/usr/bin/env bash
# Capture real Prometheus query_range answers for the healthcheck parser's
# tests (test/pgtap/400_health.sql reads test/pgtap/_prometheus_bodies.psql,
# which this writes). Starts, on loopback and as a non-root user, two demo
# services (agent/demo-service: version 1.0 healthy, 2.1-bad answering half of
# its requests with 500) and Debian's Prometheus scraping their /metrics every
# second, sends them traffic, then asks Prometheus the range queries a
# comparison check would. Needs `make` (for agent/demo-service) and the
# prometheus package (test/deps.sh). Usage: bash test/prometheus/capture.sh
set -euo pipefail
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
user=${CV_CAPTURE_USER:-postgres}
[[ $(id -u) -eq 0 ]] || user=$(id -un)
tmp=$(mktemp -d /tmp/conveyor-prom.XXXXXX)
chmod 755 "$tmp"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
as() { if [[ $(id -u) -eq 0 ]]; then runuser -u "$user" -- "$@"; else "$@"; fi; }

printf '2.1-bad errors 0.5\n' >"$tmp/faults"
cp "$src/agent/demo-service" "$tmp/demo-service"
as "$tmp/demo-service" --port 19101 --version 1.0 --host 127.0.0.1 & pids+=($!)
as "$tmp/demo-service" --port 19102 --version 2.1-bad --faults "$tmp/faults" --host 127.0.0.1 & pids+=($!)
cat >"$tmp/prometheus.yml" <<YML
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: demo
    static_configs: [{targets: ['127.0.0.1:19101', '127.0.0.1:19102']}]
YML
chown -R "$user" "$tmp" 2>/dev/null || true
as prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/data" \
   --web.listen-address=127.0.0.1:19090 >"$tmp/prometheus.log" 2>&1 & pids+=($!)
for _ in $(seq 50); do curl -sf http://127.0.0.1:19090/-/ready >/dev/null && break; sleep 0.2; done
# traffic for a while: both versions get the same load
end=$((SECONDS + 20))
while [[ $SECONDS -lt $end ]]; do
  for port in 19101 19102; do curl -s -o /dev/null "http://127.0.0.1:$port/" || true; done
  sleep 0.05
done
now=$(date +%s)
q() { curl -sfG http://127.0.0.1:19090/api/v1/query_range --data-urlencode "query=$1" \
        --data-urlencode "start=$((now - 20))" --data-urlencode "end=$now" --data-urlencode "step=2s"; }
errors=$(q 'sum by (version) (rate(demo_errors_total[5s]))')
requests=$(q 'sum by (version) (rate(demo_requests_total{path="/"}[5s]))')
bad=$(curl -sG http://127.0.0.1:19090/api/v1/query_range --data-urlencode 'query=rate(' \
        --data-urlencode "start=$((now - 20))" --data-urlencode "end=$now" --data-urlencode "step=2s" || true)
out="$src/test/pgtap/_prometheus_bodies.psql"
{
  echo "-- Real answers of Prometheus $(prometheus --version 2>&1 | head -n 1 | awk '{print $3}') (Debian package) to query_range,"
  echo "-- captured by test/prometheus/capture.sh on $(date -u +%Y-%m-%d): demo services 1.0 and 2.1-bad (50% errors)."
  echo "\\set prom_errors '$errors'"
  echo "\\set prom_requests '$requests'"
  echo "\\set prom_bad_query '$bad'"
} >"$out"
echo "capture: wrote $out"
