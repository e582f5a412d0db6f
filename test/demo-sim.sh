# test/demo-sim.sh: the simulated-fleet demo (`DEMO=sim make demo`), sourced by
# test/demo.sh once the cluster is up (it provides q and psql_demo). Pushes a
# version across 72 simulated subunits in 3 regions, then a version the
# simulator marks faulty, caught in its first phase and reverted. The
# simulator (docs/simulated-fleet.md) stays for tests and very large fleets;
# the default demo deploys real processes through conveyor-agent.

demo_sim() {
  psql_demo -q >/dev/null <<'SQL'
SELECT conveyor.sim_fleet_create('demo', '{eu,us,ap}', 3, 8, 'v1', '300 milliseconds')
 WHERE NOT EXISTS (SELECT 1 FROM conveyor.sim_fleet WHERE name = 'demo');
SELECT conveyor.push_plan_create('sim-demo', '[
    {"scope": "region=eu", "amount": "10%", "bake": "3 seconds"},
    {"scope": "*", "amount": "50%", "bake": "2 seconds"}]', 'canary in eu, then half of everything')
 WHERE NOT EXISTS (SELECT 1 FROM conveyor.push_plan WHERE name = 'sim-demo');
SELECT conveyor.service_create('sim-web', 'simulated', 'sim-demo', '{"fleet": "demo"}', failure_policy => 'revert',
                               health_interval => '1 second', poll_interval => '200 milliseconds')
 WHERE NOT EXISTS (SELECT 1 FROM conveyor.service WHERE name = 'sim-web');
SQL

  local n good bad id rid
  n=$(q "SELECT count(*) FROM conveyor.push WHERE kind = 'push' AND service = 'sim-web'")
  good="v$((n + 2))"; bad="v$((n + 3))-faulty"

  echo
  echo "== 1. pushing $good to service sim-web: 72 simulated subunits in 3 regions, eu first =="
  q "SELECT phase, scope, amount, bake, sum(updates) AS subunits FROM conveyor.plan_preview('sim-web', '$good') GROUP BY 1,2,3,4 ORDER BY 1" \
    | awk -F'|' '{printf "   plan: phase %s  %-10s %-5s bake %-9s -> %s subunits\n", $1, $2, $3, $4, $5}'
  id=$(q "SELECT conveyor.push_start('sim-web', '$good', 'make demo')")
  sim_watch "$id"
  q "SELECT format('   push %s ended: %s (%s): %s', id, state, outcome, outcome_reason) FROM conveyor.push WHERE id = $id"

  echo
  echo "== 2. pushing $bad, a version the simulator marks faulty (unhealthy after deploy) =="
  q "SELECT conveyor.sim_version_set_faulty('demo', '$bad')" >/dev/null
  id=$(q "SELECT conveyor.push_start('sim-web', '$bad', 'make demo: a bad version')")
  sim_watch "$id"
  q "SELECT format('   push %s ended: %s (%s): %s', id, state, outcome, outcome_reason) FROM conveyor.push WHERE id = $id"
  rid=$(q "SELECT id FROM conveyor.push WHERE reverts = $id")
  if [[ -n "$rid" ]]; then
    echo "   the workers revert it with push $rid:"
    wait_end "$rid"
    q "SELECT format('   push %s (revert of %s) ended: %s (%s)', id, reverts, state, outcome) FROM conveyor.push WHERE id = $rid"
  fi
  q "SELECT format('   subunits now: %s', string_agg(format('%s on %s', n, version), ', ')) FROM (SELECT version, count(*) AS n FROM conveyor.sim_subunit_now WHERE fleet = 'demo' GROUP BY 1) v"
  last_push=$id
}

# sim_watch ID: live progress of a push until it ends (a line per change when not on a terminal)
sim_watch() {
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
