#!/usr/bin/env bash
# make deps: install with apt-get whatever the build, tests, demo and benchmarks
# need and is missing. (prometheus: test/prometheus/capture.sh records the real
# answers the healthcheck tests parse. wrk: the http benchmark's baseline. tmux, chromium and python3: the cli suite runs watch on
# a pseudo-terminal and renders the HTML report headless.) Idempotent; a no-op in well under a second when all is there.
set -euo pipefail

packages=(
  build-essential
  postgresql-15 postgresql-server-dev-15 postgresql-15-cron postgresql-15-pgtap
  postgresql-contrib
  libtap-parser-sourcehandler-pgtap-perl libipc-run-perl
  libcurl4-openssl-dev libpq-dev
  libmicrohttpd-dev libjansson-dev libcjson-dev python3 curl jq
  wrk
  procps
  tmux chromium
  prometheus
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "deps: installing ${missing[*]}"
sudo=""
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's postgresql package creates and starts a default cluster; conveyor
# never uses it, so stop it to leave the machine's ports and CPUs alone.
if command -v pg_lsclusters >/dev/null && pg_lsclusters -h 2>/dev/null | grep -q online; then
  $sudo pg_ctlcluster 15 main stop 2>/dev/null || true
fi
echo "deps: done"
