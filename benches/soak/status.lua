-- wrk script for benches/soak/replicas.sh: POSTs an invocation with the
-- token in WARDEN_TOKEN and, at the end, prints one line per answer status
-- ("status 200 12345") and one for socket errors, for the script to read.
wrk.method = "POST"
wrk.body = os.getenv("WARDEN_BODY") or '{"args": "soak"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("WARDEN_TOKEN") or "")

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      total[status] = (total[status] or 0) + n
    end
  end
  for status, n in pairs(total) do
    io.write(string.format("status %d %d\n", status, n))
  end
  local e = summary.errors
  io.write(string.format("socket-errors %d\n", e.connect + e.read + e.write + e.timeout))
  io.write(string.format("requests %d\n", summary.requests))
  io.write(string.format("p50-ms %.2f\n", latency:percentile(50) / 1000))
  io.write(string.format("p99-ms %.2f\n", latency:percentile(99) / 1000))
end
