-- wrk script of scripts/bench: POSTs the file named by BENCH_BODY when set (the echo
-- workload), and ends with one machine-readable line the harness parses.
local body_file = os.getenv("BENCH_BODY")
if body_file and body_file ~= "" then
    local file = assert(io.open(body_file, "rb"))
    wrk.body = file:read("*a")
    file:close()
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/octet-stream"
end

function done(summary, latency, requests)
    local errors = summary.errors
    io.write(string.format(
        "BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d p999_us=%d max_us=%d connect=%d read=%d write=%d timeout=%d status=%d\n",
        summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
        latency:percentile(99.9), latency.max, errors.connect, errors.read, errors.write, errors.timeout, errors.status))
end
