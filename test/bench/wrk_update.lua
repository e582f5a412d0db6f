-- test/bench/wrk_update.lua: wrk posting send-update requests to a push-type
-- endpoint as conveyor sends them (docs/push-type-protocol.md): a batch of
-- updates per request, each naming a distinct subunit, with a fresh request
-- idempotency_key and a fresh update key each, and a version new to the
-- subunit so every update is really applied. The baseline of test/bench/http.sh.
--
--   wrk -t2 -c16 -d5s -s test/bench/wrk_update.lua http://127.0.0.1:PORT/v1/update \
--       -- TOKEN UNITS SUBUNITS BATCH
--
-- Units are "u0".."u<UNITS-1>", subunits "0".."<SUBUNITS-1>" (test/http/bench_endpoint.c).
-- Each thread walks the fleet BATCH subunits at a time, from its own offset.

local nthreads = 0

function setup(thread)
  nthreads = nthreads + 1
  thread:set("tid", nthreads)
end

function init(args)
  local token = args[1]
  units, subunits, batch = tonumber(args[2]), tonumber(args[3]), tonumber(args[4])
  if not (token and units and subunits and batch) or batch > units * subunits then
    error("usage: wrk ... -s wrk_update.lua URL -- TOKEN UNITS SUBUNITS BATCH (BATCH <= UNITS x SUBUNITS)")
  end
  total = units * subunits
  wrk.method = "POST"
  wrk.headers["Authorization"] = "Bearer " .. token
  wrk.headers["Conveyor-Protocol"] = "1"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Accept"] = "application/json"
  -- the constant part of each subunit's update, built once
  head = {}
  for i = 0, total - 1 do
    head[i] = string.format('{"unit":"u%d","subunit":"%d","version":"', math.floor(i / subunits), i % subunits)
  end
  pos = ((tid or 1) - 1) * batch % total
  n = 0
end

function request()
  n = n + 1
  local req = "wrk-" .. (tid or 1) .. "-" .. n
  local version = "t" .. (tid or 1) .. "r" .. n
  local parts = { '{"idempotency_key":"', req, '","updates":[' }
  local k = #parts
  for j = 0, batch - 1 do
    local i = (pos + j) % total
    parts[k + 1] = j > 0 and "," or ""
    parts[k + 2] = head[i]
    parts[k + 3] = version
    parts[k + 4] = '","key":"'
    parts[k + 5] = req
    parts[k + 6] = "-"
    parts[k + 7] = tostring(i)
    parts[k + 8] = '"}'
    k = k + 8
  end
  parts[k + 1] = "]}"
  pos = (pos + batch) % total
  return wrk.format(nil, nil, nil, table.concat(parts))
end
