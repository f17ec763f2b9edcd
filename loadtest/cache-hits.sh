#!/usr/bin/env bash
# loadtest/cache-hits.sh: CPU per request of shardproxy answering cache hits,
# against the same proxy passing the same requests through (cache off).
#
#   core 0: shardproxy (workers = 1)
#   core 1: wrk and one nginx backend answering "Cache-Control: max-age=3600"
#
# Each round runs the cache on, then off: a 3 s warm-up (which also fills the
# cache: KEYS distinct URIs), then DURATION measured; the proxy's CPU time
# (/proc/PID/stat utime+stime) divided by the requests wrk completed.
#
# Environment: SHARDPROXY [<repo>/target/release/shardproxy]  ROUNDS [2]
#   DURATION [10s]  KEYS [1000]  CONNS [64]
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SHARDPROXY=${SHARDPROXY:-$HERE/../target/release/shardproxy}
ROUNDS=${ROUNDS:-2}
DURATION=${DURATION:-10s}
KEYS=${KEYS:-1000}
CONNS=${CONNS:-64}
for tool in nginx wrk taskset curl bc; do
    command -v "$tool" > /dev/null || { echo "missing: $tool" >&2; exit 1; }
done
[[ -x $SHARDPROXY ]] || { echo "build it first: cargo build --release -p shardproxy" >&2; exit 1; }

WORK=$(mktemp -d)
chmod 755 "$WORK"
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2> /dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

cat > "$WORK/nginx.conf" << CONF
worker_processes 1; daemon off; pid $WORK/nginx.pid; error_log $WORK/nginx.err;
events { worker_connections 4096; }
http {
  access_log off;
  server {
    listen 127.0.0.1:18181; keepalive_requests 1000000;
    location / { add_header Cache-Control "max-age=3600"; return 200 "a small body from the backend\n"; }
  }
}
CONF
taskset -c 1 nginx -c "$WORK/nginx.conf" -p "$WORK" & PIDS+=($!)

wrk_run() { # duration, output
    LOADTEST_KEYS=$KEYS taskset -c 1 wrk -t1 -c"$CONNS" -d"$1" -s "$HERE/keys.lua" \
        http://127.0.0.1:18080 > "$2"
}

measure() { # enabled
    cat > "$WORK/proxy.toml" << CONF
[server]
listen = "127.0.0.1:18080"
admin = "127.0.0.1:19090"
workers = 1
[dns]
servers = ["127.0.0.1:53"]
[services.frob]
instances = [{ host = "b1.example.com", addr = "127.0.0.1:18181", tokens = ["40"] }]
[services.frob.cache]
enabled = $1
[[routes]]
service = "frob"
CONF
    taskset -c 0 "$SHARDPROXY" run --config "$WORK/proxy.toml" > "$WORK/proxy.log" 2>&1 &
    local proxy=$!
    for _ in $(seq 100); do curl -sf -o /dev/null http://127.0.0.1:18080/k/1 && break; sleep 0.1; done
    wrk_run 3s "$WORK/warmup"
    local before after requests
    before=$(awk '{print $14 + $15}' "/proc/$proxy/stat")
    wrk_run "$DURATION" "$WORK/run"
    after=$(awk '{print $14 + $15}' "/proc/$proxy/stat")
    requests=$(grep -o 'requests=[0-9]*' "$WORK/run" | cut -d= -f2)
    printf 'cache.enabled=%-5s requests=%-8s cpu_us_per_request=%s\n' "$1" "$requests" \
        "$(echo "scale=2; ($after - $before) * 1000000 / $(getconf CLK_TCK) / $requests" | bc)"
    if [[ $1 == true ]]; then
        curl -s http://127.0.0.1:19090/metrics | grep -E '^shardproxy_cache_(hits|misses)_total'
    fi
    kill "$proxy"
    wait "$proxy" 2> /dev/null || true
}

for _ in $(seq "$ROUNDS"); do
    measure true
    measure false
done
