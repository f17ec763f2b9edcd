#!/usr/bin/env bash
# loadtest/ir-per-request.sh: shardproxy's user-space instructions per
# request (Ir/request), counted by callgrind, on three paths:
#   pass-through  the cache off: every request goes to a backend;
#   cache-hit     the service's cache on, its keys fetched beforehand: every
#                 counted request is answered from the cache;
#   tls           pass-through with HTTPS from wrk to the proxy (plain HTTP
#                 to the backends), as compare.sh's tls mode.
# Instruction counts hardly depend on the machine's load, so two commits can
# be compared on a busy machine: pass-through runs of the same binary have a
# standard deviation of ~0.06% (~20 Ir/request), most pairs agree within
# 0.1%, the extremes of 27 runs within 0.21%. For differences under ~0.25%,
# compare medians (RUNS=3). (This script was loadtest/instructions.sh, which
# measured pass-through only, by the same method: its figures, e.g. in
# loadtest/results/instructions.md, compare with `pass-through` here.)
#
#   loadtest/ir-per-request.sh                    # build target/release/shardproxy, measure every path
#   SHARDPROXY=/path/to/shardproxy loadtest/ir-per-request.sh
#   PATHS=pass-through loadtest/ir-per-request.sh # one path only
#   RUNS=3 OUT=/tmp/cg.out loadtest/ir-per-request.sh  # median of 3 per path, dumps kept
#   callgrind_annotate --inclusive=yes /tmp/cg.out.cache-hit | less
#
# How, pass-through (the method of loadtest/results/request-path-profile.md):
# the setup of loadtest/compare.sh's pass-through mode, all on 127.0.0.1, on
# free ports: one nginx with NBACKENDS servers answering `200 backend-N`
# (Cache-Control max-age=3600, keep-alive for 1,000,000 requests);
# shardproxy with `workers = 1`, one service over those backends (`slaves =
# 1`, `virtual_nodes = VNODES` derived tokens, `key = "uri"`), one route `/`.
# shardproxy runs under `valgrind --tool=callgrind`. Once its admin API's
# /readyz answers 200 (polled) and a request through it reached a backend:
#   1. warm-up: `wrk -t1 -cCONNS -dWARMUP -s loadtest/keys.lua`, not counted;
#   2. /metrics read (shardproxy_requests_total), `callgrind_control -z`;
#   3. `wrk -t1 -cCONNS -dDURATION -s loadtest/keys.lua` (GET /k/<n>, n
#      uniform in 0..KEYS-1 from a fixed seed: the same URIs every run);
#   4. `callgrind_control -d`, /metrics read again.
# No admin request falls between the zeroing and the dump. The figure is the
# dump's total Ir (every instruction shardproxy ran in user space, libc
# included, the kernel not) over the change of shardproxy_requests_total.
# With RUNS > 1 this is repeated, each time with a new proxy process, and the
# median run is reported.
#
# How, tls: as pass-through, but the proxy's listener has `[server.tls]`
# with a throwaway self-signed EC P-256 certificate (made with the openssl
# CLI in the work directory, as compare.sh does) and wrk asks for https://
# URLs. wrk negotiates TLS 1.3 as OpenSSL's defaults do
# (TLS_AES_256_GCM_SHA384 with rustls' defaults). The counted window holds
# CONNS handshakes (wrk connects anew for each run), about 1.3 M Ir each:
# some 1,000-2,000 Ir/request of the figure, the same in every run.
#
# How, cache-hit: the same, but the service has `[services.bench.cache]
# enabled = true` (everything else at its defaults, as in compare.sh's cache
# mode; the backends' max-age=3600 makes every answer storable), the URIs
# are /k/0../k/(CACHE_KEYS-1), and before the warm-up curl fetches each of
# them once through the proxy (the fill: CACHE_KEYS misses, then nothing
# left to miss). Steps 1-4 as above. The /metrics reads of steps 2 and 4 also
# give the change of shardproxy_cache_{hits,misses,stale,passes}_total over
# the counted window; the hits' share of shardproxy_requests_total's change
# is printed, and under 99% the script fails (the figure would not be the
# cache-hit path's).
#
# One departure from the profile note's method: glibc's per-thread cache
# keeps up to 65535 free chunks per size (MALLOC_TUNABLES) instead of 7.
# With 8 connections the requests' allocations and frees interleave in an
# order that depends on scheduling; with 7 chunks the cache overflows into
# glibc's fastbins and bins a varying number of times, which moved the
# figure by up to 0.8% from run to run (and ~600 Ir/request higher). Every
# malloc and free is still counted. MALLOC_TUNABLES= gives glibc's defaults.
# What still varies is mostly the path taken through _int_malloc by hyper's
# 8 KiB read buffers, and how often a new timer wakes tokio's driver.
#
# It prints, for each path (RUNS > 1: one line per run and the range first)
#   == PATH
#   requests: N (shardproxy_requests_total; wrk counted M)
#   cache: H hits of N requests (P%); misses, stale, passes   (cache-hit only)
#   total Ir: T
#   Ir/request: T/N
#   profile ...: the median run's top TOP functions and shares by crate
#                (markdown, when TOP > 0)
# and at the end one line per path, the figure (the median run's):
#   binary: PATH
#   pass-through: 43,469 Ir/request (N requests)
#   cache-hit: 30,123 Ir/request (N requests, P% hits)
# One run takes about 20 s once the binary is built: valgrind's start-up
# (~2 s), the warm-up, the 10 s of load and the dump; a cache-hit run also
# its fill (~1 s for 1000 keys). Under callgrind the proxy serves about
# 1,500-2,000 requests/s.
#
# Environment (defaults in brackets). Figures are only comparable with the
# same knobs, on the same machine (the CPU decides which memcpy glibc picks).
# The defaults are the profile note's method, plus the malloc setting above.
#   SHARDPROXY   the binary to measure [built with cargo build --release
#                -p shardproxy, in CARGO_TARGET_DIR or <repo>/target]
#   PATHS ["pass-through cache-hit tls"]  the paths to measure, in this order
#   OUT          also copy each path's (median) run's callgrind dump to
#                OUT.PATH (e.g. /tmp/cg.out.pass-through), for
#                callgrind_annotate [not kept]
#   TOP [15]     after each path, the median run's profile: its TOP
#                functions by exclusive Ir per request, with their share,
#                and the shares by crate (loadtest/ir_profile.py, from
#                callgrind_annotate); 0: none
#   RUNS [1]     measurements per path, each with a new proxy process; the
#                median counts
#   DURATION [10s]  WARMUP [3s]  CONNS [8]  (wrk, -t1)
#   KEYS [100000]  distinct URIs, pass-through
#   CACHE_KEYS [1000]  distinct URIs, cache-hit; all of them are stored
#   NBACKENDS [4]  VNODES [160]
#   SERVICE_LINES  more lines for the service's table, e.g.
#                'load_bound = { factor = 1.25 }' to measure what it costs
#   CACHE_LINES  more lines for its [services.bench.cache] table (cache-hit),
#                e.g. 'max_size = "64MiB"'
#   MIN_HIT_PCT [99]  cache-hit: the least share of hits in the window
#   MALLOC_TUNABLES [glibc.malloc.tcache_count=65535]  GLIBC_TUNABLES for
#                shardproxy; empty: glibc's defaults. It steadies builds
#                whose heap is glibc's (before c2ba9bb); the binary's heap
#                is now jemalloc, which it does not touch
#   VALGRIND_OPTS  read by valgrind itself, e.g. --separate-callers=4
#   NGINX        [nginx in PATH, else /usr/sbin/nginx]
#   INSTALL [1]  apt-get install what is missing (valgrind, wrk, nginx, curl,
#                iproute2, util-linux, openssl for tls); 0: only say what is
#                missing
#   READY_TIMEOUT [120]  seconds for the proxy (slow under valgrind) to be ready
#   SHARDPROXY_LOG [warn]  RUST_LOG for shardproxy
#   KEEP_WORK [0]  1: keep the work directory (configs, logs, dumps); it is
#                also kept when the script fails
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
LOG_TAG="ir-per-request"
# shellcheck source=loadtest/lib.sh
source "$HERE/lib.sh"

case ${1:-} in
    -h | --help) usage; exit 0 ;;
    "") ;;
    *) die "no arguments expected (got '$1'); see --help" ;;
esac

OUT=${OUT:-}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-3s}
CONNS=${CONNS:-8}
KEYS=${KEYS:-100000}
CACHE_KEYS=${CACHE_KEYS:-1000}
MIN_HIT_PCT=${MIN_HIT_PCT:-99}
PATHS=${PATHS:-pass-through cache-hit tls}
NBACKENDS=${NBACKENDS:-4}
VNODES=${VNODES:-160}
INSTALL=${INSTALL:-1}
READY_TIMEOUT=${READY_TIMEOUT:-120}
RUNS=${RUNS:-1}
TOP=${TOP:-15}
SHARDPROXY_LOG=${SHARDPROXY_LOG:-warn}
MALLOC_TUNABLES=${MALLOC_TUNABLES-glibc.malloc.tcache_count=65535}
LUA=$HERE/keys.lua

for v in CONNS KEYS CACHE_KEYS NBACKENDS VNODES READY_TIMEOUT RUNS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive whole number, got '${!v}'"
done
[[ $TOP =~ ^[0-9]+$ ]] || die "TOP must be a whole number, got '$TOP'"
for v in DURATION WARMUP; do
    [[ ${!v} =~ ^[1-9][0-9]*[smh]?$ ]] || die "$v must be a wrk duration like 10s, got '${!v}'"
done
if ! [[ $MIN_HIT_PCT =~ ^[0-9]+(\.[0-9]+)?$ ]] || ! awk -v p="$MIN_HIT_PCT" 'BEGIN { exit !(p <= 100) }'; then
    die "MIN_HIT_PCT must be a percentage (0-100), got '$MIN_HIT_PCT'"
fi
read -r -a PATH_LIST <<<"$PATHS"
((${#PATH_LIST[@]} > 0)) || die "PATHS is empty; give one or more of pass-through cache-hit tls"
for path in "${PATH_LIST[@]}"; do
    [[ $path == pass-through || $path == cache-hit || $path == tls ]] \
        || die "unknown path '$path' in PATHS (pass-through cache-hit tls)"
done
[[ -r $LUA ]] || die "missing $LUA"

# --- tools -----------------------------------------------------------------------------

find_nginx() { command -v nginx || echo /usr/sbin/nginx; }
NGINX=${NGINX:-$(find_nginx)}
missing_packages() {
    local pkgs=()
    if ! command -v valgrind >/dev/null || ! command -v callgrind_control >/dev/null; then pkgs+=(valgrind); fi
    command -v wrk >/dev/null || pkgs+=(wrk)
    [[ -x $NGINX ]] || pkgs+=(nginx)
    command -v curl >/dev/null || pkgs+=(curl)
    command -v ss >/dev/null || pkgs+=(iproute2)
    command -v setsid >/dev/null || pkgs+=(util-linux)
    if [[ " ${PATH_LIST[*]} " == *" tls "* ]]; then command -v openssl >/dev/null || pkgs+=(openssl); fi
    echo "${pkgs[*]}"
}
PKGS=$(missing_packages)
if [[ -n $PKGS ]]; then
    [[ $INSTALL == 1 ]] || die "missing tools; install them with: apt-get install $PKGS"
    if ! command -v apt-get >/dev/null || ((EUID != 0)); then
        die "missing tools and no apt-get as root to install them: apt-get install $PKGS"
    fi
    log "installing $PKGS (apt-get)"
    # shellcheck disable=SC2086 # one word per package
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $PKGS >&2 \
        || { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $PKGS >&2; } \
        || die "apt-get install $PKGS failed"
    [[ -x $NGINX ]] || NGINX=$(find_nginx)
    PKGS=$(missing_packages)
    [[ -z $PKGS ]] || die "still missing after apt-get install: $PKGS"
fi

ensure_shardproxy
SHARDPROXY=$(realpath "$SHARDPROXY")
log "measuring $SHARDPROXY"

setup_work shardproxy-ir-per-request
chmod 755 "$WORK" # nginx's worker runs as another user

# --- ports ------------------------------------------------------------------------------

# free_port VAR: set VAR to a port below the ephemeral range that no socket on
# this machine uses (listening or connected) and that this script has not
# handed out yet.
TAKEN=" "
free_port() {
    local low port i
    read -r low _ </proc/sys/net/ipv4/ip_local_port_range
    TAKEN+="$(ss -Htan | awk '{ n = split($4, a, ":"); printf "%s ", a[n] }')"
    for ((i = 0; i < 1000; i++)); do
        if ((low > 21000)); then port=$((20000 + RANDOM % (low - 20000))); else port=$((61000 + RANDOM % 4000)); fi
        if [[ $TAKEN != *" $port "* ]]; then
            TAKEN+="$port "
            printf -v "$1" '%s' "$port"
            return 0
        fi
    done
    die "no free port found"
}
BACKEND_PORTS=()
for ((k = 1; k <= NBACKENDS; k++)); do
    free_port p
    BACKEND_PORTS+=("$p")
done

# --- the backends: one nginx, NBACKENDS servers (as in compare.sh) ----------------------

mkdir -p "$WORK/nginx/tmp"
{
    cat <<EOF
worker_processes 1;
pid nginx.pid;
error_log $WORK/nginx.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    keepalive_timeout 300s;
    keepalive_requests 1000000;
EOF
    for ((k = 1; k <= NBACKENDS; k++)); do
        cat <<EOF
    server {
        listen 127.0.0.1:${BACKEND_PORTS[k - 1]} backlog=4096;
        location / {
            add_header Cache-Control "max-age=3600";
            return 200 "backend-$k\n";
        }
    }
EOF
    done
    echo "}"
} >"$WORK/nginx/nginx.conf"
"$NGINX" -t -q -e "$WORK/nginx.log" -p "$WORK/nginx/" -c "$WORK/nginx/nginx.conf" >"$WORK/nginx-check.log" 2>&1 \
    || die "nginx rejected $WORK/nginx/nginx.conf: $(cat "$WORK/nginx-check.log")"
NGINX_PID=$(start_group nginx "$NGINX" -e "$WORK/nginx.log" -p "$WORK/nginx/" -c "$WORK/nginx/nginx.conf" -g 'daemon off;')
for p in "${BACKEND_PORTS[@]}"; do
    wait_for "backend 127.0.0.1:$p listening" 20 "$NGINX_PID" tcp_open "127.0.0.1:$p" || exit 1
done

# --- the test certificate (tls) ---------------------------------------------------------

# Self-signed, EC P-256, for 127.0.0.1 and localhost, in the work directory
# (removed with it; never anywhere else).
TLS_CERT=$WORK/cert/cert.pem
TLS_KEY=$WORK/cert/key.pem
if [[ " ${PATH_LIST[*]} " == *" tls "* ]]; then
    mkdir -p "$WORK/cert"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj /CN=localhost -addext 'subjectAltName=IP:127.0.0.1,DNS:localhost' \
        -keyout "$TLS_KEY" -out "$TLS_CERT" >"$WORK/cert/openssl.log" 2>&1 \
        || die "openssl could not make the test certificate: $(cat "$WORK/cert/openssl.log")"
    chmod 600 "$TLS_KEY"
fi

# --- shardproxy under callgrind ------------------------------------------------------------

# write_config PATH DIR: shardproxy's config for PATH (pass-through;
# cache-hit: the service's cache on; tls: the listener with the test
# certificate) in DIR/shardproxy.toml, on fresh ports
# (LISTEN_PORT, ADMIN_PORT); checked with `shardproxy check`.
write_config() {
    local path=$1 dir=$2 k
    free_port LISTEN_PORT
    free_port ADMIN_PORT
    mkdir -p "$dir"
    {
        cat <<EOF
[server]
listen = "127.0.0.1:$LISTEN_PORT"
admin = "127.0.0.1:$ADMIN_PORT"
workers = 1
EOF
        if [[ $path == tls ]]; then
            printf '\n[server.tls]\ncert = "%s"\nkey = "%s"\n' "$TLS_CERT" "$TLS_KEY"
        fi
        cat <<EOF

[services.bench]
instances = [
EOF
        for ((k = 1; k <= NBACKENDS; k++)); do
            echo "    { host = \"backend$k.bench\", addr = \"127.0.0.1:${BACKEND_PORTS[k - 1]}\" },"
        done
        cat <<EOF
]
slaves = 1
virtual_nodes = $VNODES
key = "uri"
${SERVICE_LINES:-}
EOF
        if [[ $path == cache-hit ]]; then
            printf '\n[services.bench.cache]\nenabled = true\n%s\n' "${CACHE_LINES:-}"
        fi
        cat <<EOF

[[routes]]
path_prefix = "/"
service = "bench"
EOF
    } >"$dir/shardproxy.toml"
    "$SHARDPROXY" check --config "$dir/shardproxy.toml" >"$dir/check.log" 2>&1 \
        || die "shardproxy check rejected $dir/shardproxy.toml: $(cat "$dir/check.log")"
}

# run_wrk DURATION FILE: wrk against the proxy (URIs /k/0../k/(WRK_KEYS-1)),
# its report to FILE; sets
# WRK_REQUESTS to the number of requests it counted. In the background, so
# that a signal to the script is handled at once (the EXIT trap stops wrk).
run_wrk() {
    LOADTEST_KEYS=$WRK_KEYS wrk -t1 -c"$CONNS" -d"$1" -s "$LUA" "$PROXY/" >"$2" 2>&1 </dev/null &
    BG_PIDS=("$!")
    wait "${BG_PIDS[0]}" || die "wrk failed: $(tail -n 5 "$2")"
    BG_PIDS=()
    grep -q '^RESULT .* err_connect=0 err_read=0 err_write=0 err_status=0 err_timeout=0 ' "$2" \
        || die "wrk saw errors: $(grep -E '^RESULT|errors|Non-2xx' "$2")"
    WRK_REQUESTS=$(sed -n 's/^RESULT requests=\([0-9]*\) .*/\1/p' "$2")
}

# callgrind ARG: callgrind_control ARG (-z zero, -d dump) on the proxy
callgrind() {
    callgrind_control "$1" "$PROXY_PID" >>"$RUN_DIR/callgrind_control.log" 2>&1 \
        || die "callgrind_control $1 $PROXY_PID failed: $(tail -n 3 "$RUN_DIR/callgrind_control.log")"
}

# stop_proxy: SIGTERM to the proxy's process group, up to 30 s (valgrind
# writes its last dump), then SIGKILL; then off the EXIT trap's list.
stop_proxy() {
    local i
    kill -TERM -- "-$PROXY_PID" 2>/dev/null || true
    for ((i = 0; i < 300; i++)); do
        kill -0 -- "-$PROXY_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL -- "-$PROXY_PID" 2>/dev/null || true
    sed -i "/^$PROXY_PID\$/d" "$PGIDS_FILE"
}

# metrics FILE: the proxy's /metrics, once, to FILE.
metrics() {
    curl -fsS --max-time 10 "$ADMIN/metrics" >"$1" || die "GET $ADMIN/metrics failed"
}
# sample_sum FILE NAME: the sum of metric NAME's samples in FILE (as lib.sh's metric_sum).
sample_sum() {
    awk -v name="$2" '$1 == name || index($1, name "{") == 1 { s += $NF } END { printf "%d\n", s }' "$1"
}

CACHE_COUNTERS=(hits misses stale passes) # shardproxy_cache_<name>_total

# measure PATH N: one measurement of PATH with a fresh proxy, in
# $WORK/PATH-N; sets REQUESTS, TOTAL_IR, WRK_REQUESTS, DUMP and (cache-hit)
# CACHE, the changes of CACHE_COUNTERS over the counted window.
measure() {
    local path=$1 n=$2 before after tunables=() t0=$SECONDS body p c t
    local tag="$path run $n/$RUNS"
    RUN_DIR=$WORK/$path-$n
    write_config "$path" "$RUN_DIR"
    ADMIN=http://127.0.0.1:$ADMIN_PORT
    PROXY=http://127.0.0.1:$LISTEN_PORT
    CURL_TLS=()
    if [[ $path == tls ]]; then
        PROXY=https://127.0.0.1:$LISTEN_PORT
        CURL_TLS=(--cacert "$TLS_CERT")
    fi
    # shardproxy binds with SO_REUSEPORT: make sure nobody else took its ports meanwhile
    for p in "$LISTEN_PORT" "$ADMIN_PORT"; do
        ! tcp_open "127.0.0.1:$p" || die "something listens on 127.0.0.1:$p already; run again"
    done
    [[ -z $MALLOC_TUNABLES ]] || tunables=(GLIBC_TUNABLES="$MALLOC_TUNABLES")
    # setsid execs env, which execs valgrind: PROXY_PID is the valgrind
    # process itself, the one callgrind_control talks to.
    PROXY_PID=$(start_group "shardproxy-$path-$n" env RUST_LOG="$SHARDPROXY_LOG" "${tunables[@]}" \
        valgrind --tool=callgrind --callgrind-out-file="$RUN_DIR/callgrind.out" \
        "$SHARDPROXY" run --config "$RUN_DIR/shardproxy.toml")
    wait_for "$ADMIN/readyz answering 200" "$READY_TIMEOUT" "$PROXY_PID" http_ok "$ADMIN/readyz" || exit 1
    body=$(curl "${CURL_TLS[@]}" -fsS --max-time 10 "$PROXY/k/0") || die "GET $PROXY/k/0 failed"
    [[ $body == backend-* ]] || die "GET $PROXY/k/0 answered '$body', not a backend's answer"

    if [[ $path == cache-hit ]]; then
        WRK_KEYS=$CACHE_KEYS
        # the fill: every URI wrk will ask for, once (curl's [a-b] range)
        t=$SECONDS
        curl -fsS -o /dev/null --max-time 600 "$PROXY/k/[0-$((CACHE_KEYS - 1))]" \
            || die "filling the cache (GET $PROXY/k/0..$((CACHE_KEYS - 1))) failed"
        metrics "$RUN_DIR/metrics-filled.txt"
        log "$tag: cache filled, $CACHE_KEYS URIs in $((SECONDS - t)) s;" \
            "$(sample_sum "$RUN_DIR/metrics-filled.txt" shardproxy_cache_objects) objects stored"
    else
        WRK_KEYS=$KEYS
    fi

    log "$tag: warm-up, wrk -t1 -c$CONNS -d$WARMUP"
    run_wrk "$WARMUP" "$RUN_DIR/wrk-warmup.txt"
    sleep 1 # let the proxy see wrk's connections close before the counted window
    metrics "$RUN_DIR/metrics-before.txt"
    callgrind -z
    log "$tag: counted, wrk -t1 -c$CONNS -d$DURATION"
    run_wrk "$DURATION" "$RUN_DIR/wrk.txt"
    sleep 1 # the same for the counted run's connections
    callgrind -d
    metrics "$RUN_DIR/metrics-after.txt"

    DUMP=$RUN_DIR/callgrind.out.1
    wait_for "callgrind's dump $DUMP" 30 "$PROXY_PID" test -s "$DUMP" || exit 1
    stop_proxy
    TOTAL_IR=$(awk '$1 == "totals:" || $1 == "summary:" { print $2; exit }' "$DUMP")
    [[ $TOTAL_IR =~ ^[0-9]+$ ]] || die "no total Ir in $DUMP"
    before=$(sample_sum "$RUN_DIR/metrics-before.txt" shardproxy_requests_total)
    after=$(sample_sum "$RUN_DIR/metrics-after.txt" shardproxy_requests_total)
    REQUESTS=$((after - before))
    ((REQUESTS > 0)) || die "shardproxy_requests_total did not move ($before -> $after)"
    CACHE=()
    if [[ $path == cache-hit ]]; then
        for c in "${CACHE_COUNTERS[@]}"; do
            CACHE+=($(($(sample_sum "$RUN_DIR/metrics-after.txt" "shardproxy_cache_${c}_total") -
                $(sample_sum "$RUN_DIR/metrics-before.txt" "shardproxy_cache_${c}_total"))))
        done
        log "$tag: $(cache_line "$REQUESTS" "${CACHE[@]}")"
        awk -v h="${CACHE[0]}" -v n="$REQUESTS" -v min="$MIN_HIT_PCT" 'BEGIN { exit !(100 * h >= min * n) }' \
            || die "$tag: only $(hit_pct "${CACHE[0]}" "$REQUESTS")% of the counted requests were cache hits" \
                "(at least $MIN_HIT_PCT% expected): $(cache_line "$REQUESTS" "${CACHE[@]}");" \
                "this is not the cache-hit path's figure (metrics in $RUN_DIR)"
    fi
    log "$tag: $((SECONDS - t0)) s; $REQUESTS requests, $TOTAL_IR Ir, $(ir_per_request "$TOTAL_IR" "$REQUESTS") Ir/request"
}

ir_per_request() { awk -v t="$1" -v n="$2" 'BEGIN { printf "%.0f\n", t / n }'; }
hit_pct() { awk -v h="$1" -v n="$2" 'BEGIN { printf "%.2f\n", 100 * h / n }'; }
# cache_line REQUESTS HITS MISSES STALE PASSES
cache_line() { echo "$2 hits of $1 requests ($(hit_pct "$2" "$1")%); misses $3, stale $4, passes $5"; }
# thousands N: N with commas, 43469 -> 43,469
thousands() { sed -e ':a' -e 's/\([0-9]\)\([0-9]\{3\}\)\($\|,\)/\1,\2\3/' -e 'ta' <<<"$1"; }

t_start=$SECONDS
echo "binary: $SHARDPROXY"
SUMMARY=()
for path in "${PATH_LIST[@]}"; do
    # "Ir/request requests total-Ir wrk-requests dump [hits misses stale passes]", one per run
    RESULTS=()
    for ((run = 1; run <= RUNS; run++)); do
        measure "$path" "$run"
        RESULTS+=("$(ir_per_request "$TOTAL_IR" "$REQUESTS") $REQUESTS $TOTAL_IR $WRK_REQUESTS $DUMP ${CACHE[*]}")
    done
    # the median run (of an even number, the lower of the middle two)
    mapfile -t SORTED < <(printf '%s\n' "${RESULTS[@]}" | sort -n -k1,1)
    read -r ir requests total wrk_requests dump hits misses stale passes <<<"${SORTED[(RUNS - 1) / 2]}"
    if [[ -n $OUT ]]; then
        cp "$dump" "$OUT.$path"
        log "$path: callgrind output: $OUT.$path (callgrind_annotate --inclusive=yes $OUT.$path)"
    fi

    echo "== $path"
    if ((RUNS > 1)); then
        for ((run = 1; run <= RUNS; run++)); do
            read -r r_ir r_requests r_total _ _ r_hits _ <<<"${RESULTS[run - 1]}"
            echo "run $run: Ir/request $r_ir ($r_requests requests, $r_total Ir${r_hits:+, $(hit_pct "$r_hits" "$r_requests")% hits})"
        done
        read -r lo _ <<<"${SORTED[0]}"
        read -r hi _ <<<"${SORTED[RUNS - 1]}"
        awk -v lo="$lo" -v hi="$hi" 'BEGIN { printf "range: %d..%d (%.2f%%); the median run:\n", lo, hi, 100 * (hi - lo) / lo }'
    fi
    echo "requests: $requests (shardproxy_requests_total; wrk counted $wrk_requests)"
    [[ -z ${hits:-} ]] || echo "cache: $(cache_line "$requests" "$hits" "$misses" "$stale" "$passes")"
    echo "total Ir: $total"
    echo "Ir/request: $ir"
    if ((TOP > 0)); then
        echo "profile (exclusive Ir of the median run):"
        echo
        python3 "$HERE/ir_profile.py" "$dump" "$requests" --top "$TOP"
        echo
    fi
    SUMMARY+=("$path: $(thousands "$ir") Ir/request ($requests requests${hits:+, $(hit_pct "$hits" "$requests")% cache hits})")
done
log "${#PATH_LIST[@]} path(s) x $RUNS run(s) in $((SECONDS - t_start)) s"
echo "=="
printf '%s\n' "${SUMMARY[@]}"
