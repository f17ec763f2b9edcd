-- wrk script for loadtest/compare.sh: GET /k/<n>, n uniform in 0..KEYS-1,
-- so that every request hashes to a (pseudo-)random point of the ring.
--
-- The sequence is seeded from a fixed number and the thread's index, so every
-- run (and both contenders) sees the same sequence of URIs.
--
-- done() prints one machine-readable line, "RESULT k=v ...", that compare.sh
-- parses; wrk's normal report (with --latency) is printed before it.

local keys = tonumber(os.getenv("LOADTEST_KEYS") or "100000")
local seed = tonumber(os.getenv("LOADTEST_SEED") or "20240601")

local next_id = 0
function setup(thread)
   thread:set("thread_id", next_id)
   next_id = next_id + 1
end

function init(args)
   math.randomseed(seed + (thread_id or 0))
end

function request()
   return wrk.format("GET", "/k/" .. math.random(0, keys - 1))
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "RESULT requests=%d duration_us=%d bytes=%d err_connect=%d err_read=%d err_write=%d err_status=%d err_timeout=%d p50_us=%d p90_us=%d p99_us=%d p999_us=%d max_us=%d mean_us=%.1f\n",
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.max, latency.mean))
end
