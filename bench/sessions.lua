-- wrk script: GET /bench, each request carrying the next session id from
-- the file given after `--` (rotating over all of them, so the cache is
-- not one hot key); without a file, plain GETs. Prints one RESULT line.
local ids = {}
local n = 0

function init(args)
  if args[1] then
    for line in io.lines(args[1]) do
      ids[#ids + 1] = line
    end
    math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
    n = math.random(#ids)
  end
end

function request()
  if #ids == 0 then
    return wrk.format("GET", "/bench")
  end
  n = n % #ids + 1
  return wrk.format("GET", "/bench", { ["X-Session-Id"] = ids[n] })
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests":%d,"duration_us":%d,"socket_errors":%d,"non2xx":%d,"p50_us":%d,"p99_us":%d,"p999_us":%d}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
