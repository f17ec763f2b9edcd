#!/usr/bin/env bash
# loadtest/compare.sh: shardproxy against nginx, HAProxy and Varnish, each used
# as a consistent-hash reverse proxy in front of the same backends, in three
# modes: pass-through (no cache), cache hits, and TLS (pass-through with the
# clients speaking HTTPS to the contender). On a 2-core box:
#
#   core PROXY_CPU (0): the contenders (one at a time under load), alone
#   core LOAD_CPU  (1): the load generator + the backends (one nginx, 4 servers)
#
# Per mode: one uncounted warm-up run per contender, then ROUNDS rounds of
# saturated wrk runs (the order rotates each round, so the machine's drift
# hits all alike), then FIXED_ROUNDS rounds at a fixed rate of half nginx's
# median req/s with loadtest/fixedrate (open loop, latency from the time each
# request was due: no coordinated omission). Per run: req/s, p50/p99, errors;
# the contender's CPU time (its process group, /proc/PID/stat utime+stime)
# per request; new backend connections (backends' stub_status "accepts");
# backend requests (cache misses in cache mode); CPU used by anything else.
#
# Mode tls: as pass, but wrk connects with https:// URLs (keep-alive, TLS as
# Debian's OpenSSL negotiates it by default) to each contender, all of which
# serve the same throwaway self-signed EC P-256 certificate (made with the
# openssl CLI in the temporary directory, removed with it) with ALPN h2 and
# http/1.1; the contenders still speak plain HTTP to the backends. Varnish
# has no TLS and is skipped there. The fixed-rate runs speak HTTPS too
# (`fixedrate --tls --ca` the test certificate; handshakes before the
# schedule starts, so latencies are of keep-alive requests, as wrk's). The
# report says which TLS version, cipher and group each contender negotiated
# (openssl s_client, once per contender).
#
# Mode both (on request, not in the default MODES): pass-through with every
# contender on BOTH cores: shardproxy `workers = 2` (a SO_REUSEPORT socket
# per worker), nginx `worker_processes 2` with `listen ... reuseport` (the
# same way of spreading connections), HAProxy `nbthread 2`, Varnish with
# its default thread_pools (2). No pinning split: the contender, wrk and the
# backends are all pinned to PROXY_CPU,LOAD_CPU and share them, so req/s is
# relative to this box; the key figure is requests per CPU-second of the
# contender (requests / its process group's utime+stime) and the median of
# the per-round ratios shardproxy's / each peer's. No fixed-rate runs there
# (a paced client sharing the contender's cores measures the scheduler).
# "Other work" is the same figure as in the other modes (machine-wide busy
# time minus the contenders, the backends, the load generator and the
# script's own polls): sharing the cores with the load does not raise it,
# as the load is subtracted. A run is disturbed above DISTURBED_PCT_BOTH
# (default DISTURBED_PCT), its own knob to relax this mode alone.
# Mode memory (on request): each contender (Varnish skipped) alone on
# PROXY_CPU, as in pass, while loadtest/idle_clients.py (on LOAD_CPU) opens
# IDLE_CONNS keep-alive connections, one request each, holds them idle for
# IDLE_SETTLE seconds, closes them and waits as long again, IDLE_CYCLES
# times. The report gives the serving process's RSS (nginx: its worker)
# before, with the clients idle and after they closed, and the RSS per idle
# connection. The connection limits are raised for all alike (shardproxy
# `max_connections`, nginx `worker_connections`, HAProxy `maxconn`, and the
# script's `ulimit -n`).
#
# The report opens with the targets shardproxy is held to (the ratios of
# its CPU per request, throughput, fixed-rate p99, requests per CPU-second
# and memory to the peers'), each with its measured value and whether it
# is met, for the modes that ran.
#
# Output: a markdown report, the raw TSV and a PNG chart (gnuplot). See
# loadtest/README.md.
#
# Environment (defaults in brackets):
#   CONTENDERS ["shardproxy nginx haproxy varnish"]  MODES ["pass cache"]
#     (modes: pass, cache, tls, both, memory; e.g. MODES=tls CONTENDERS="shardproxy nginx")
#   ROUNDS [3]  DURATION [10s]  WARMUP [5s]  CONNS [64]  THREADS [1]
#   KEYS [100000] (pass)  CACHE_KEYS [10000] (cache: every key is fetched
#     once before the runs, so the runs are all hits)
#   IDLE_CONNS [10000]  IDLE_SETTLE [20] (seconds)  IDLE_CYCLES [2] (mode memory;
#     shardproxy frees an idle connection's buffers once it has been idle for
#     a whole check period, server.header_read_timeout / 4 = 7.5 s by
#     default, so within 15 s: a shorter IDLE_SETTLE measures it before)
#   FIXED_ROUNDS [ROUNDS]  FIXED_DURATION [DURATION]  FIXED_RATE [half of
#     nginx's median req/s in that mode]
#   NBACKENDS [4]  VNODES [160]  KEY_SOURCE [uri]
#   SHARDPROXY [<repo>/target-perf/release/shardproxy; built when missing]
#   NGINX [nginx in PATH or /usr/sbin/nginx]  HAPROXY [haproxy]  VARNISHD [varnishd]
#   FIXEDRATE [<repo>/loadtest/fixedrate/target/release/fixedrate; built when missing]
#   INSTALL [1]: apt-get install missing tools (0: only say what is missing)
#   PROXY_CPU [0]  LOAD_CPU [1]  OUT [loadtest/results/compare.md] (+ .tsv, .png)
#   KEEP_WORK [0]: keep the temporary directory (configs, logs, raw outputs)
#   SHARDPROXY_LOG [warn]: RUST_LOG for shardproxy
#   QUIET_PCT [10] QUIET_TIMEOUT [180]: before each run, wait up to
#     QUIET_TIMEOUT seconds for the machine to be idle (busy below QUIET_PCT %
#     of one core for 2 s in a row)
#   DISTURBED_PCT [10]: flag runs during which other work used more than this
#     (% of one core)
#   DISTURBED_PCT_BOTH [DISTURBED_PCT]: the same in mode both
#   REDO_DISTURBED [3]: redo a disturbed counted run up to this many times
#     (the discarded runs are listed in the report)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)

CONTENDERS=${CONTENDERS:-shardproxy nginx haproxy varnish}
MODES=${MODES:-pass cache}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-5s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-1}
KEYS=${KEYS:-100000}
CACHE_KEYS=${CACHE_KEYS:-10000}
FIXED_ROUNDS=${FIXED_ROUNDS:-$ROUNDS}
FIXED_DURATION=${FIXED_DURATION:-$DURATION}
FIXED_RATE=${FIXED_RATE:-}
NBACKENDS=${NBACKENDS:-4}
VNODES=${VNODES:-160}
KEY_SOURCE=${KEY_SOURCE:-uri}
SHARDPROXY=${SHARDPROXY:-$REPO/target-perf/release/shardproxy}
HAPROXY=${HAPROXY:-haproxy}
VARNISHD=${VARNISHD:-varnishd}
FIXEDRATE=${FIXEDRATE:-$HERE/fixedrate/target/release/fixedrate}
INSTALL=${INSTALL:-1}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
OUT=${OUT:-$HERE/results/compare.md}
KEEP_WORK=${KEEP_WORK:-0}
SHARDPROXY_LOG=${SHARDPROXY_LOG:-warn}
QUIET_PCT=${QUIET_PCT:-10}
QUIET_TIMEOUT=${QUIET_TIMEOUT:-180}
DISTURBED_PCT=${DISTURBED_PCT:-10}
DISTURBED_PCT_BOTH=${DISTURBED_PCT_BOTH:-$DISTURBED_PCT}
REDO_DISTURBED=${REDO_DISTURBED:-3}
REPORT_FROM=${REPORT_FROM:-}
IDLE_CONNS=${IDLE_CONNS:-10000}
IDLE_SETTLE=${IDLE_SETTLE:-20}
IDLE_CYCLES=${IDLE_CYCLES:-2}
LUA=$HERE/keys.lua

log() { printf '[compare %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# --- preflight ---------------------------------------------------------------

read -ra CONTENDER_LIST <<<"$CONTENDERS"
read -ra MODE_LIST <<<"$MODES"
((${#CONTENDER_LIST[@]})) || die "CONTENDERS is empty"
for c in "${CONTENDER_LIST[@]}"; do
    [[ $c =~ ^(shardproxy|nginx|haproxy|varnish)$ ]] || die "unknown contender '$c' (shardproxy nginx haproxy varnish)"
done
for m in "${MODE_LIST[@]}"; do
    [[ $m =~ ^(pass|cache|tls|both|memory)$ ]] || die "unknown mode '$m' (pass cache tls both memory)"
done
has_contender() { [[ " ${CONTENDER_LIST[*]} " == *" $1 "* ]]; }
has_mode() { [[ " ${MODE_LIST[*]} " == *" $1 "* ]]; }
# ran MODE NAME: whether NAME ran in MODE (once the runs are done)
ran() { [[ " ${RAN[$1]:-} " == *" $2 "* ]]; }
# fixed_modes: whether a mode with fixed-rate runs runs (all but both)
fixed_modes() { has_mode pass || has_mode cache || has_mode tls; }
for v in ROUNDS CONNS THREADS KEYS CACHE_KEYS FIXED_ROUNDS IDLE_CONNS IDLE_SETTLE IDLE_CYCLES NBACKENDS VNODES PROXY_CPU LOAD_CPU QUIET_PCT QUIET_TIMEOUT DISTURBED_PCT DISTURBED_PCT_BOTH REDO_DISTURBED; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, got '${!v}'"
done
((ROUNDS >= 1)) || die "ROUNDS must be at least 1"
((NBACKENDS >= 1)) || die "NBACKENDS must be at least 1"
((KEYS >= 1000 && CACHE_KEYS >= 1000)) || die "KEYS and CACHE_KEYS must be at least 1000 (the routing check uses keys 0..999)"
for v in DURATION WARMUP FIXED_DURATION; do
    [[ ${!v} =~ ^[0-9]+[smh]?$ ]] || die "$v must look like 10s, got '${!v}'"
done
[[ -z $FIXED_RATE || $FIXED_RATE =~ ^[0-9]+$ ]] || die "FIXED_RATE must be a whole number of req/s, got '$FIXED_RATE'"
[[ $KEY_SOURCE == uri || $KEY_SOURCE == path ]] || die "KEY_SOURCE must be uri or path"
NCPU=$(nproc --all 2>/dev/null || nproc)
((PROXY_CPU < NCPU && LOAD_CPU < NCPU)) || die "need CPUs $PROXY_CPU and $LOAD_CPU; this machine has $NCPU"
((PROXY_CPU != LOAD_CPU)) || die "PROXY_CPU and LOAD_CPU must differ"
# where the contender and where the load generator + backends run, per mode:
# split in every mode but both, where all share both CPUs
BOTH_CPUS=$PROXY_CPU,$LOAD_CPU
proxy_cpus() { if [[ $1 == both ]]; then echo "$BOTH_CPUS"; else echo "$PROXY_CPU"; fi; }
load_cpus() { if [[ $1 == both ]]; then echo "$BOTH_CPUS"; else echo "$LOAD_CPU"; fi; }
# disturbed_pct MODE: the "other work" limit of that mode
disturbed_pct() { if [[ $1 == both ]]; then echo "$DISTURBED_PCT_BOTH"; else echo "$DISTURBED_PCT"; fi; }

# missing tools: Debian packages, installed when INSTALL=1 and apt-get is there
if [[ -z ${NGINX:-} ]]; then
    NGINX=$(command -v nginx || true)
    [[ -n $NGINX ]] || NGINX=/usr/sbin/nginx
fi
missing_pkgs() {
    local pkgs=() tool
    [[ -x $NGINX ]] || pkgs+=(nginx)
    command -v wrk >/dev/null 2>&1 || pkgs+=(wrk)
    command -v gnuplot >/dev/null 2>&1 || pkgs+=(gnuplot-nox)
    for tool in taskset setsid; do command -v "$tool" >/dev/null 2>&1 || pkgs+=(util-linux); done
    command -v curl >/dev/null 2>&1 || pkgs+=(curl)
    command -v ss >/dev/null 2>&1 || pkgs+=(iproute2)
    if has_mode tls; then command -v openssl >/dev/null 2>&1 || pkgs+=(openssl); fi
    if has_mode memory; then command -v python3 >/dev/null 2>&1 || pkgs+=(python3); fi
    if has_contender haproxy; then command -v "$HAPROXY" >/dev/null 2>&1 || pkgs+=(haproxy); fi
    if has_contender varnish; then
        command -v "$VARNISHD" >/dev/null 2>&1 || [[ -x /usr/sbin/varnishd ]] || pkgs+=(varnish)
        command -v cc >/dev/null 2>&1 || pkgs+=(gcc) # varnishd compiles the VCL
    fi
    printf '%s\n' "${pkgs[@]}" | sort -u | paste -sd' ' -
}
PKGS=$(missing_pkgs)
if [[ -n $PKGS ]]; then
    if [[ $INSTALL == 1 ]] && command -v apt-get >/dev/null 2>&1 && ((EUID == 0)); then
        log "installing missing Debian packages: $PKGS"
        # shellcheck disable=SC2086
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $PKGS >&2 \
            || { apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $PKGS >&2; } \
            || die "apt-get install $PKGS failed"
        [[ -x $NGINX ]] || NGINX=$(command -v nginx || echo /usr/sbin/nginx)
        PKGS=$(missing_pkgs)
        [[ -z $PKGS ]] || die "still missing after apt-get install: $PKGS"
    else
        die "missing tools; install them with: apt-get install $PKGS (or run as root with INSTALL=1)"
    fi
fi
if has_contender varnish && ! command -v "$VARNISHD" >/dev/null 2>&1; then VARNISHD=/usr/sbin/varnishd; fi
command -v getconf >/dev/null 2>&1 || die "missing getconf (libc-bin)"

build_rust() { # build_rust WHAT DIR ARGS...: cargo build, with a clear message
    local what=$1 dir=$2
    shift 2
    command -v cargo >/dev/null 2>&1 || die "no $what binary and no cargo to build it; install Rust (rustup) or point the variable at a binary"
    log "building $what (cargo build --release $*); this takes a few minutes the first time"
    (cd "$dir" && nice cargo build --release "$@" >&2) || die "building $what failed"
}
if [[ ! -x $SHARDPROXY ]]; then
    [[ $SHARDPROXY == "$REPO/target-perf/release/shardproxy" ]] \
        || die "no shardproxy binary at $SHARDPROXY"
    CARGO_TARGET_DIR=$REPO/target-perf build_rust shardproxy "$REPO" -p shardproxy
fi
if [[ -z $REPORT_FROM ]] && ((FIXED_ROUNDS > 0)) && fixed_modes && [[ ! -x $FIXEDRATE ]]; then
    [[ $FIXEDRATE == "$HERE/fixedrate/target/release/fixedrate" ]] || die "no fixedrate binary at $FIXEDRATE"
    CARGO_TARGET_DIR=$HERE/fixedrate/target build_rust fixedrate "$HERE/fixedrate"
fi
[[ -r $LUA ]] || die "missing $LUA"
NGINX_V=$("$NGINX" -V 2>&1)
grep -q -- '--with-http_stub_status_module' <<<"$NGINX_V" \
    || die "$NGINX lacks the stub_status module (used to count backend connections); apt-get install nginx"
! grep -q -- '--without-http_upstream_hash_module' <<<"$NGINX_V" \
    || die "$NGINX lacks the upstream hash module"
! grep -q -- '--without-http_upstream_keepalive_module' <<<"$NGINX_V" \
    || die "$NGINX lacks the upstream keepalive module"
CLK_TCK=$(getconf CLK_TCK)

if [[ -n $REPORT_FROM ]]; then
    # only the report and the chart, from a kept work directory
    [[ -r $REPORT_FROM/runs.tsv && -r $REPORT_FROM/state.sh ]] || die "REPORT_FROM=$REPORT_FROM has no runs.tsv and state.sh"
    WORK=$(cd "$REPORT_FROM" && pwd)
    KEEP_WORK=1
    NGINX_CACHE_DIR=
else
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/shardproxy-compare.XXXXXX")
fi
chmod 755 "$WORK" # nginx workers and varnishd's child run as other users
# nginx's cache lives in memory too (tmpfs), like the others'
if [[ -n $REPORT_FROM ]]; then
    :
elif [[ -d /dev/shm && -w /dev/shm ]]; then
    NGINX_CACHE_DIR=$(mktemp -d /dev/shm/shardproxy-compare-nginx-cache.XXXXXX)
else
    NGINX_CACHE_DIR=$WORK/nginx-cache
    mkdir -p "$NGINX_CACHE_DIR"
    log "no writable /dev/shm: nginx's cache goes to $NGINX_CACHE_DIR (disk-backed unless that is a tmpfs)"
fi
[[ -z $NGINX_CACHE_DIR ]] || chmod 777 "$NGINX_CACHE_DIR" # written by nginx's worker (nobody)

# --- process bookkeeping -------------------------------------------------------

declare -A LIVE=() # PGID -> name, of the process groups we started and have not stopped
STARTED=           # PID of the last started group
LOADGEN_PID=       # the wrk or fixedrate running now, if any (in our own process group)

# stop_groups PGID...: SIGTERM, up to 5 s, SIGKILL
stop_groups() {
    local pg i alive
    for pg in "$@"; do kill -TERM -- "-$pg" 2>/dev/null || true; done
    for ((i = 0; i < 50; i++)); do
        alive=0
        for pg in "$@"; do
            if kill -0 -- "-$pg" 2>/dev/null; then alive=1; fi
        done
        ((alive)) || break
        sleep 0.1
    done
    for pg in "$@"; do
        kill -KILL -- "-$pg" 2>/dev/null || true
        unset "LIVE[$pg]"
    done
}

cleanup() {
    local rc=$? f
    trap - EXIT INT TERM
    if [[ -n $LOADGEN_PID ]]; then kill -TERM "$LOADGEN_PID" 2>/dev/null || true; fi
    ((${#LIVE[@]} == 0)) || stop_groups "${!LIVE[@]}"
    wait 2>/dev/null || true
    if ((rc != 0)); then
        for f in "$WORK"/*.log "$WORK"/*/*.log "$WORK"/*/*/*.log; do
            [[ -s $f ]] || continue
            log "--- tail of $f"
            tail -n 20 "$f" >&2 || true
        done
    fi
    [[ -z $NGINX_CACHE_DIR ]] || rm -rf "$NGINX_CACHE_DIR"
    if [[ $KEEP_WORK == 1 || $rc != 0 ]]; then
        log "work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
set -E
trap 'log "failed (status $?) at line $LINENO: $BASH_COMMAND"' ERR
trap 'exit 130' INT
trap 'exit 143' TERM

# start_group NAME CPUS LOG CMD...: run CMD in a new session (its own process
# group) pinned to CPUS (a taskset list), output to LOG; sets STARTED to its PID.
start_group() {
    local name=$1 cpu=$2 logf=$3
    shift 3
    setsid taskset -c "$cpu" "$@" >"$logf" 2>&1 </dev/null &
    STARTED=$!
    LIVE[$STARTED]=$name
}

# pgrp_of PID: the process group of PID (empty if gone).
pgrp_of() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
    stat=${stat##*) }
    # shellcheck disable=SC2086
    set -- $stat
    echo "$3"
}

# pids_of_group PGID: the live processes of the group
pids_of_group() {
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v pg="$1" '
        { pid = $1; sub(/^.*\) /, ""); if ($3 == pg) print pid }'
}

# wait_tcp NAME PID PORT: poll until PORT accepts connections (PID must live).
wait_tcp() {
    local name=$1 pid=$2 port=$3 i
    for ((i = 0; i < 400; i++)); do
        kill -0 "$pid" 2>/dev/null || die "$name (pid $pid) exited during startup"
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            [[ $(pgrp_of "$pid") == "$pid" ]] || die "$name (pid $pid) is not its own process group leader"
            return 0
        fi
        sleep 0.05
    done
    die "$name did not listen on 127.0.0.1:$port within 20 s"
}

# wait_http MODE NAME URL REGEX: poll until URL answers 200 with a body matching REGEX.
wait_http() {
    local mode=$1 name=$2 url=$3 re=$4 i body
    for ((i = 0; i < 200; i++)); do
        if body=$(curl_to "$mode" -fsS --max-time 1 "$url" 2>/dev/null) && [[ $body =~ $re ]]; then
            return 0
        fi
        sleep 0.05
    done
    die "$name: $url did not answer 200 /$re/ within 10 s (last body: ${body:-none})"
}

# --- ports -----------------------------------------------------------------------

USED_PORTS=" $(ss -Htanu 2>/dev/null | awk '{ n = split($5, a, ":"); printf "%s ", a[n] }') "
pick_port() {
    local p i
    for ((i = 0; i < 1000; i++)); do
        p=$((20000 + RANDOM % 30000))
        if [[ $USED_PORTS != *" $p "* ]]; then
            USED_PORTS+="$p "
            echo "$p"
            return 0
        fi
    done
    die "no free port found"
}
BACKEND_PORTS=()
for ((k = 1; k <= NBACKENDS; k++)); do BACKEND_PORTS+=("$(pick_port)"); done
BACKEND_STATUS=$(pick_port)
declare -A PORT=() PG=() SKIP_IN=()
for c in "${CONTENDER_LIST[@]}"; do PORT[$c]=$(pick_port); done
SP_ADMIN=$(pick_port)

# --- TLS (mode tls) -------------------------------------------------------------------

# One throwaway certificate for every contender: self-signed, EC P-256, for
# 127.0.0.1 and localhost, in the work directory (removed with it; never
# anywhere else). HAProxy wants certificate and key in one file.
TLS_DIR=$WORK/cert # not $WORK/tls: that is the tls mode's directory
TLS_CERT=$TLS_DIR/cert.pem
TLS_KEY=$TLS_DIR/key.pem
TLS_COMBINED=$TLS_DIR/combined.pem
make_cert() {
    mkdir -p "$TLS_DIR"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
        -subj /CN=localhost -addext 'subjectAltName=IP:127.0.0.1,DNS:localhost' \
        -keyout "$TLS_KEY" -out "$TLS_CERT" >"$TLS_DIR/openssl.log" 2>&1 \
        || die "openssl could not make the test certificate: $(cat "$TLS_DIR/openssl.log")"
    cat "$TLS_CERT" "$TLS_KEY" >"$TLS_COMBINED"
    chmod 600 "$TLS_KEY" "$TLS_COMBINED"
    TLS_CERT_SHA=$(openssl x509 -in "$TLS_CERT" -noout -fingerprint -sha256 | sed 's/^.*=//')
}

# scheme_of MODE: how clients speak to the contenders in that mode
# max_conns: the connection limit every contender gets in mode memory
# (the idle clients and some room)
max_conns() { echo $((IDLE_CONNS + 1000)); }
scheme_of() { if [[ $1 == tls ]]; then echo https; else echo http; fi; }
# curl_to MODE ARGS...: curl, trusting the test certificate in tls mode
curl_to() {
    local mode=$1
    shift
    if [[ $mode == tls ]]; then curl --cacert "$TLS_CERT" "$@"; else curl "$@"; fi
}

# tls_probe WHO: what a client that offers what wrk offers (OpenSSL's
# defaults, no ALPN) negotiates with the contender, and the ALPN protocol it
# picks from "h2,http/1.1"; checks that it serves the test certificate.
tls_probe() {
    local who=$1 port=${PORT[$1]} out alpn_out proto cipher group alpn fp
    # (tr: s_client prints a NUL byte or two, which bash would warn about)
    out=$(openssl s_client -connect "127.0.0.1:$port" -servername localhost </dev/null 2>&1 | tr -d '\0') || true
    alpn_out=$(openssl s_client -connect "127.0.0.1:$port" -servername localhost -alpn h2,http/1.1 </dev/null 2>&1 | tr -d '\0') || true
    proto=$(sed -n 's/^New, \([^,]*\), Cipher is .*/\1/p' <<<"$out" | sed -n 1p)
    cipher=$(sed -n 's/^New, [^,]*, Cipher is //p' <<<"$out" | sed -n 1p)
    group=$(sed -n 's/^Server Temp Key: //p' <<<"$out" | sed -n 1p)
    alpn=$(sed -n 's/^ALPN protocol: //p' <<<"$alpn_out" | sed -n 1p)
    [[ -n $alpn ]] || alpn=none
    fp=$(openssl x509 -noout -fingerprint -sha256 <<<"$out" 2>/dev/null | sed 's/^.*=//') || true
    [[ -n $cipher ]] || die "$who: no TLS session with openssl s_client on 127.0.0.1:$port: $(tail -n 5 <<<"$out")"
    [[ $fp == "$TLS_CERT_SHA" ]] || die "$who serves another certificate than the test one ($fp, not $TLS_CERT_SHA)"
    TLS_INFO[$who]="${proto:-?} $cipher, key exchange ${group:-?}; ALPN offered h2,http/1.1: $alpn"
    log "tls $who: ${TLS_INFO[$who]}"
}

# --- configs ------------------------------------------------------------------------

nginx_common() { # PREFIX-relative temp paths so nothing touches /var/lib/nginx
    cat <<EOF
    access_log off;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    keepalive_timeout 300s;
    keepalive_requests 1000000;
EOF
}

# The backends: one nginx, one server per backend. Every answer may be cached
# for an hour (pass-through contenders ignore that), so both modes see the
# same responses.
write_backends() {
    local dir=$WORK/backends k
    mkdir -p "$dir/tmp"
    {
        cat <<EOF
worker_processes 1;
pid backends.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
$(nginx_common)
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
        cat <<EOF
    server {
        listen 127.0.0.1:$BACKEND_STATUS;
        location / { stub_status; }
    }
}
EOF
    } >"$dir/nginx.conf"
    "$NGINX" -t -q -e "$dir/error.log" -p "$dir/" -c "$dir/nginx.conf" >"$dir/check.log" 2>&1 \
        || die "backend nginx config rejected ($dir/nginx.conf): $(cat "$dir/check.log")"
}

# write_nginx MODE DIR: nginx as the proxy; `hash $request_uri consistent`,
# keep-alive to the backends; in cache mode proxy_cache in a tmpfs; in tls
# mode an HTTPS listener (`ssl http2`: ALPN h2 and http/1.1, as shardproxy);
# in mode both two workers, each with its own socket (`reuseport`).
write_nginx() {
    local mode=$1 dir=$2 k cache_http="" cache_loc="" listen_tls="" tls_conf="" workers=1 reuseport=""
    mkdir -p "$dir/tmp"
    local conns=4096 nofile=""
    if [[ $mode == memory ]]; then conns=$(max_conns) nofile="worker_rlimit_nofile $(ulimit -n);"; fi
    if [[ $mode == both ]]; then
        workers=2 reuseport=" reuseport"
    fi
    if [[ $mode == tls ]]; then
        listen_tls=" ssl http2"
        # nginx 1.22's default ssl_protocols stop at TLSv1.2 (1.23.4 added 1.3)
        tls_conf="        ssl_certificate $TLS_CERT;
        ssl_certificate_key $TLS_KEY;
        ssl_protocols TLSv1.2 TLSv1.3;"
    fi
    if [[ $mode == cache ]]; then
        rm -rf "${NGINX_CACHE_DIR:?}"/*
        cache_http="    proxy_cache_path $NGINX_CACHE_DIR levels=1:2 keys_zone=bench:64m max_size=1g inactive=2h use_temp_path=off;"
        cache_loc="            proxy_cache bench;
            proxy_cache_valid 200 1h;"
    fi
    {
        cat <<EOF
worker_processes $workers;
pid proxy.pid;
error_log $dir/error.log warn;
$nofile
events { worker_connections $conns; }
http {
$(nginx_common)
$cache_http
    upstream bench {
        hash \$request_uri consistent;
EOF
        for ((k = 1; k <= NBACKENDS; k++)); do
            echo "        server 127.0.0.1:${BACKEND_PORTS[k - 1]};"
        done
        cat <<EOF
        keepalive 512;
        keepalive_requests 1000000;
        keepalive_timeout 300s;
    }
    server {
        listen 127.0.0.1:${PORT[nginx]}$listen_tls$reuseport backlog=4096;
$tls_conf
        location / {
            proxy_pass http://bench;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            # the same header work shardproxy does (SPEC 5): keep Host,
            # append X-Forwarded-For, add X-Forwarded-Proto and Via
            proxy_set_header Host \$http_host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_set_header Via "1.1 nginx";
$cache_loc
        }
    }
}
EOF
    } >"$dir/nginx.conf"
    "$NGINX" -t -q -e "$dir/error.log" -p "$dir/" -c "$dir/nginx.conf" >"$dir/check.log" 2>&1
}

# write_haproxy MODE DIR: `balance uri` + `hash-type consistent`, connections
# to the backends shared and kept (`http-reuse always`); in cache mode its
# in-memory cache; in tls mode `bind ... ssl crt` (ALPN h2 and http/1.1);
# in mode both two threads (its default listener: one socket, connections
# handed to the least loaded thread).
write_haproxy() {
    local mode=$1 dir=$2 k cache_sec="" cache_use="" bind_tls="" proto=http threads=1
    mkdir -p "$dir"
    [[ $mode != both ]] || threads=2
    if [[ $mode == tls ]]; then
        bind_tls=" ssl crt $TLS_COMBINED alpn h2,http/1.1"
        proto=https
    fi
    if [[ $mode == cache ]]; then
        cache_sec="cache bench
    total-max-size 256
    max-object-size 65536
    max-age 3600"
        cache_use="    http-request cache-use bench
    http-response cache-store bench"
    fi
    {
        cat <<EOF
global
    nbthread $threads
    maxconn $([[ $mode == memory ]] && max_conns || echo 4096)
    log stderr format raw local0 err

defaults
    mode http
    log global
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 300s
    option http-keep-alive

$cache_sec

frontend bench
    bind 127.0.0.1:${PORT[haproxy]}$bind_tls
    default_backend bench

backend bench
    balance uri
    hash-type consistent
    http-reuse always
    # the same header work shardproxy does: X-Forwarded-For, -Proto, Via
    option forwardfor
    http-request set-header X-Forwarded-Proto $proto
    http-request add-header Via "1.1 haproxy"
$cache_use
    default-server pool-purge-delay 300s
EOF
        for ((k = 1; k <= NBACKENDS; k++)); do
            echo "    server backend$k 127.0.0.1:${BACKEND_PORTS[k - 1]}"
        done
    } >"$dir/haproxy.cfg"
    "$HAPROXY" -c -q -f "$dir/haproxy.cfg" >"$dir/check.log" 2>&1
}

# write_varnish MODE DIR: the shard director of vmod_directors, by=URL;
# pass-through is `return (pass)` in vcl_recv (HTTP-aware, unlike pipe);
# cache mode is Varnish's default behaviour.
write_varnish() {
    local mode=$1 dir=$2 k recv=""
    mkdir -p "$dir"
    [[ $mode != cache ]] && recv="    return (pass);"
    {
        echo "vcl 4.1;"
        echo "import directors;"
        for ((k = 1; k <= NBACKENDS; k++)); do
            echo "backend backend$k { .host = \"127.0.0.1\"; .port = \"${BACKEND_PORTS[k - 1]}\"; }"
        done
        echo "sub vcl_init {"
        echo "    new bench = directors.shard();"
        for ((k = 1; k <= NBACKENDS; k++)); do
            echo "    bench.add_backend(backend$k);"
        done
        cat <<EOF
    bench.reconfigure();
}
sub vcl_recv {
$recv
}
sub vcl_backend_fetch {
    set bereq.backend = bench.backend(by=URL);
}
EOF
    } >"$dir/bench.vcl"
    "$VARNISHD" -C -f "$dir/bench.vcl" -n "$dir/n" >"$dir/check.log" 2>&1
}

# write_shardproxy MODE DIR: static instances, derived tokens; in cache mode
# `[services.bench.cache] enabled = true`; in tls mode `[server.tls]`; in
# mode both `workers = 2`.
write_shardproxy() {
    local mode=$1 dir=$2 k tls_sec="" workers=1
    mkdir -p "$dir"
    [[ $mode != both ]] || workers=2
    if [[ $mode == tls ]]; then
        tls_sec=$(printf '\n[server.tls]\ncert = "%s"\nkey = "%s"' "$TLS_CERT" "$TLS_KEY")
    fi
    {
        cat <<EOF
[server]
listen = "127.0.0.1:${PORT[shardproxy]}"
admin = "127.0.0.1:$SP_ADMIN"
workers = $workers
$([[ $mode != memory ]] || echo "max_connections = $(max_conns)")
$tls_sec

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
key = "$KEY_SOURCE"

[[routes]]
path_prefix = "/"
service = "bench"
EOF
        if [[ $mode == cache ]]; then
            printf '\n[services.bench.cache]\nenabled = true\n'
        fi
    } >"$dir/shardproxy.toml"
    "$SHARDPROXY" check --config "$dir/shardproxy.toml" >"$dir/check.log" 2>&1
}

# start_contender MODE NAME: write its config, check it, start it, wait until
# it proxies. A config the contender refuses (e.g. shardproxy without a cache
# in cache mode) sets SKIP[NAME] and returns 1.
start_contender() {
    local mode=$1 who=$2 dir=$WORK/$1/$2 cpus pools=(-p thread_pools=1)
    cpus=$(proxy_cpus "$mode")
    [[ $mode != both ]] || pools=() # its default: 2 thread pools
    if [[ $mode == tls && $who == varnish ]]; then
        SKIP_IN[$mode.$who]="Varnish has no TLS (its docs put hitch or another terminator in front)"
        log "SKIPPING $who in $mode mode: ${SKIP_IN[$mode.$who]}"
        return 1
    fi
    if [[ $mode == memory && $who == varnish ]]; then
        SKIP_IN[$mode.$who]="not a peer of the memory target (nginx), left out to keep the mode short"
        log "SKIPPING $who in $mode mode: ${SKIP_IN[$mode.$who]}"
        return 1
    fi
    # HAProxy refuses to start unless it may open twice its maxconn
    if [[ $mode == memory && $who == haproxy ]] && (($(ulimit -n) < $(max_conns) * 2 + 100)); then
        SKIP_IN[$mode.$who]="the open-files limit ($(ulimit -n)) is below the $(($(max_conns) * 2 + 100)) HAProxy needs for maxconn $(max_conns)"
        log "SKIPPING $who in $mode mode: ${SKIP_IN[$mode.$who]}"
        return 1
    fi
    if ! "write_$who" "$mode" "$dir"; then
        SKIP_IN[$mode.$who]="its config check failed: $(grep -v '^\s*$' "$dir/check.log" | sed -n "1s|$dir/||gp" | cut -c1-300)"
        log "SKIPPING $who in $mode mode: ${SKIP_IN[$mode.$who]}"
        return 1
    fi
    case $who in
        shardproxy) start_group "$who" "$cpus" "$dir/out.log" \
            env RUST_LOG="$SHARDPROXY_LOG" "$SHARDPROXY" run --config "$dir/shardproxy.toml" ;;
        nginx) start_group "$who" "$cpus" "$dir/out.log" \
            "$NGINX" -e "$dir/error.log" -p "$dir/" -c "$dir/nginx.conf" -g 'daemon off;' ;;
        haproxy) start_group "$who" "$cpus" "$dir/out.log" "$HAPROXY" -db -f "$dir/haproxy.cfg" ;;
        varnish) start_group "$who" "$cpus" "$dir/out.log" \
            "$VARNISHD" -F -a "127.0.0.1:${PORT[varnish]}" -f "$dir/bench.vcl" -n "$dir/n" -T none \
            -s malloc,256m "${pools[@]}" ;;
    esac
    PG[$who]=$STARTED
    wait_tcp "$who" "${PG[$who]}" "${PORT[$who]}"
    wait_http "$mode" "$who" "$(scheme_of "$mode")://127.0.0.1:${PORT[$who]}/k/0" '^backend-[0-9]+'
    if [[ $mode == tls ]]; then tls_probe "$who"; fi
}

# --- measurement helpers ---------------------------------------------------------------------

# group_ticks PGID: "utime+stime stime" (clock ticks) of every live process
# in the group: all its CPU time, and the part in the kernel
group_ticks() {
    # processes come and go between the glob and the read: ignore cat's status
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v pg="$1" '
        { sub(/^.*\) /, ""); if ($3 == pg) { t += $12 + $13; s += $13 } }
        END { print t + 0, s + 0 }'
}
# groups_ticks PGID...: utime+stime summed over groups
groups_ticks() {
    local pg t=0 all
    for pg in "$@"; do
        read -r all _ < <(group_ticks "$pg")
        t=$((t + all))
    done
    echo "$t"
}
# self_child_ticks: cutime+cstime of this shell (children it has waited for: the load generator)
self_child_ticks() {
    awk '{ sub(/^.*\) /, ""); print $14 + $15 }' "/proc/$$/stat"
}
# cpu_ticks N: "busy steal" ticks of cpuN; N = all: the sum over all CPUs
cpu_ticks() {
    local name=cpu$1
    [[ $1 == all ]] && name=cpu
    awk -v n="$name" '$1 == n { print $2 + $3 + $4 + $7 + $8 + $9, $9 }' /proc/stat
}
# backend_status: "accepts requests" of the backends' nginx
backend_status() {
    taskset -c "$LOAD_CPU" curl -fsS --max-time 2 "http://127.0.0.1:$BACKEND_STATUS/" | awk 'NR == 3 { print $1, $3 }'
}
# dur_secs 10s|2m|1h|10: whole seconds
dur_secs() {
    local n=${1%[smh]}
    case $1 in *m) echo $((n * 60)) ;; *h) echo $((n * 3600)) ;; *) echo "$n" ;; esac
}
# pooled_conns PGID: ESTABLISHED connections to the backends owned by the group
pooled_conns() {
    local filter="" p
    for p in "${BACKEND_PORTS[@]}"; do filter+="${filter:+ or }dport = :$p"; done
    ss -Htnp state established "( $filter )" 2>/dev/null | awk -v pids=" $(pids_of_group "$1" | paste -sd' ' -) " '
        { line = $0; mine = 0
          while (match(line, /pid=[0-9]+/)) {
              if (index(pids, " " substr(line, RSTART + 4, RLENGTH - 4) " ")) mine = 1
              line = substr(line, RSTART + RLENGTH)
          }
          n += mine }
        END { print n + 0 }'
}

# wait_quiet: poll (1 s samples) until the whole machine is nearly idle, i.e.
# nobody else is compiling; give up after QUIET_TIMEOUT s and run anyway.
wait_quiet() {
    local t0 t1 busy waited=0 quiet=0
    while ((quiet < 2)); do # two idle seconds in a row
        t0=$(cpu_ticks all)
        sleep 1
        t1=$(cpu_ticks all)
        busy=$(((${t1%% *} - ${t0%% *}) * 100 / CLK_TCK))
        if ((busy <= QUIET_PCT)); then
            quiet=$((quiet + 1))
            continue
        fi
        quiet=0
        ((++waited < QUIET_TIMEOUT)) || { log "machine still busy ($busy% of a core) after ${QUIET_TIMEOUT}s; running anyway"; return 0; }
        ((waited % 15 == 1)) && log "machine busy ($busy% of a core, not us); waiting for it to settle"
    done
    ((waited == 0)) || log "machine idle after ${waited}s"
}

RESULTS=$WORK/runs.tsv
COLUMNS_TSV='mode	kind	round	slot	contender	req_s	requests	duration_s	p50_us	p90_us	p99_us	p999_us	max_us	errors	err_detail	cpu_s	cpu_us_per_req	cpu_pct	new_backend_conns	backend_requests	pooled_after	core_proxy_busy_pct	core_load_busy_pct	steal_pct	other_cpu_pct	mid_new_backend_conns	mid_window_s	target_rate	late_sends	cpu_sys_us_per_req'
[[ -n $REPORT_FROM ]] || echo "$COLUMNS_TSV" >"$RESULTS"
# field numbers, by name (for awk -v)
col_no() { tr '\t' '\n' <<<"$COLUMNS_TSV" | grep -nx "$1" | cut -d: -f1; }
F_MODE=$(col_no mode) F_KIND=$(col_no kind) F_ROUND=$(col_no round) F_WHO=$(col_no contender)
F_RPS=$(col_no req_s) F_P50=$(col_no p50_us) F_P99=$(col_no p99_us) F_ERR=$(col_no errors)
F_CPU=$(col_no cpu_us_per_req) F_PCT=$(col_no cpu_pct) F_NEW=$(col_no new_backend_conns)
F_BREQ=$(col_no backend_requests) F_REQS=$(col_no requests) F_OTHER=$(col_no other_cpu_pct)
F_MID=$(col_no mid_new_backend_conns) F_LATE=$(col_no late_sends) F_SYS=$(col_no cpu_sys_us_per_req)
F_CPUS=$(col_no cpu_s)

# run_one MODE KIND ROUND SLOT CONTENDER DURATION [RATE]: one load run, one
# TSV row. KIND sat: wrk, closed loop, CONNS connections; fixed: fixedrate at
# RATE req/s. ROUND 0 = warm-up.
run_one() {
    local mode=$1 kind=$2 round=$3 slot=$4 who=$5 dur=$6 rate=${7:-0} port pg out keys
    port=${PORT[$who]} pg=${PG[$who]}
    out=$WORK/$mode/$kind-r$round-$slot-$who.txt
    keys=$KEYS
    [[ $mode == cache ]] && keys=$CACHE_KEYS
    kill -0 "$pg" 2>/dev/null || die "$who (pid $pg) is not running"
    wait_quiet

    local st0 tc0 ts0 tall0 tw0 cp0 cl0 call0
    st0=$(backend_status)
    read -r tc0 ts0 < <(group_ticks "$pg"); tall0=$(groups_ticks "${!LIVE[@]}")
    tw0=$(self_child_ticks)
    cp0=$(cpu_ticks "$PROXY_CPU"); cl0=$(cpu_ticks "$LOAD_CPU"); call0=$(cpu_ticks all)

    if [[ $kind == sat ]]; then
        LOADTEST_KEYS=$keys taskset -c "$(load_cpus "$mode")" wrk -t"$THREADS" -c"$CONNS" -d"$dur" --latency \
            -s "$LUA" "$(scheme_of "$mode")://127.0.0.1:$port/" >"$out" 2>&1 &
    else
        local tls_args=()
        [[ $mode != tls ]] || tls_args=(--tls --ca "$TLS_CERT")
        taskset -c "$LOAD_CPU" "$FIXEDRATE" --addr "127.0.0.1:$port" --rate "$rate" \
            --duration "$(dur_secs "$dur")" --conns "$CONNS" --keys "$keys" "${tls_args[@]}" >"$out" 2>&1 &
    fi
    LOADGEN_PID=$!
    local secs m0="" m1="" mid_window=0
    # steady state: backend connections opened between 1 s after the start
    # and 1 s before the end (away from the load generator's connects and its close)
    secs=$(dur_secs "$dur")
    if ((secs >= 4)); then
        sleep 1
        m0=$(backend_status)
        sleep $((secs - 2))
        m1=$(backend_status)
        mid_window=$((secs - 2))
    fi
    if ! wait "$LOADGEN_PID"; then
        LOADGEN_PID=
        die "load generator failed against $who: $(tail -n 5 "$out")"
    fi
    LOADGEN_PID=

    local st1 tc1 ts1 tall1 tw1 cp1 cl1 call1 pooled
    read -r tc1 ts1 < <(group_ticks "$pg"); tall1=$(groups_ticks "${!LIVE[@]}")
    tw1=$(self_child_ticks)
    cp1=$(cpu_ticks "$PROXY_CPU"); cl1=$(cpu_ticks "$LOAD_CPU"); call1=$(cpu_ticks all)
    st1=$(backend_status)
    pooled=$(pooled_conns "$pg")
    kill -0 "$pg" 2>/dev/null || die "$who (pid $pg) died during the run; see $WORK/$mode/$who/"

    local line
    # seen once on the shared machine: the load generator exited 0 with no
    # output at all; the caller runs it again
    if ! line=$(grep '^RESULT ' "$out"); then
        log "WARNING: no RESULT line from the load generator against $who (output: '$(tail -n 5 "$out")')"
        return 3
    fi
    awk -v line="$line" -v mode="$mode" -v kind="$kind" -v round="$round" -v slot="$slot" -v who="$who" -v hz="$CLK_TCK" \
        -v st0="$st0" -v st1="$st1" -v pooled="$pooled" -v m0="$m0" -v m1="$m1" -v mid_window="$mid_window" \
        -v tc="$((tc1 - tc0))" -v ts="$((ts1 - ts0))" -v tall="$((tall1 - tall0))" -v tw="$((tw1 - tw0))" -v rate="$rate" \
        -v cp0="$cp0" -v cp1="$cp1" -v cl0="$cl0" -v cl1="$cl1" -v call0="$call0" -v call1="$call1" '
    BEGIN {
        n = split(line, kv, " ")
        for (i = 2; i <= n; i++) { split(kv[i], p, "="); r[p[1]] = p[2] }
        dur = r["duration_us"] / 1e6
        rps = dur > 0 ? r["requests"] / dur : 0
        if (kind == "sat") {
            errors = r["err_connect"] + r["err_read"] + r["err_write"] + r["err_status"] + r["err_timeout"]
            detail = sprintf("connect=%d,read=%d,write=%d,status=%d,timeout=%d", r["err_connect"], r["err_read"], r["err_write"], r["err_status"], r["err_timeout"])
            late = "na"
        } else {
            errors = r["errors"]
            detail = sprintf("status=%d,io=%d,timeout=%d,reconnects=%d", r["err_status"], r["err_io"], r["err_timeout"], r["reconnects"])
            late = r["late_sends"]
        }
        cpu_s = tc / hz
        cpu_per_req = r["requests"] ? cpu_s * 1e6 / r["requests"] : 0
        sys_per_req = r["requests"] ? ts / hz * 1e6 / r["requests"] : 0
        split(st0, s0, " "); split(st1, s1, " ")
        # minus the status requests themselves: st1, and m0 and m1 if taken
        polls = 1 + (mid_window > 0 ? 2 : 0)
        new_conns = s1[1] - s0[1] - polls
        backend_reqs = s1[2] - s0[2] - polls
        if (mid_window > 0) { split(m0, x0, " "); split(m1, x1, " "); mid_new = x1[1] - x0[1] - 1 } else mid_new = "na"
        split(cp0, a0, " "); split(cp1, a1, " "); split(cl0, b0, " "); split(cl1, b1, " ")
        split(call0, c0, " "); split(call1, c1, " ")
        win = dur * hz                         # ticks of one CPU over the run
        if (win <= 0) win = 1
        core_proxy = 100 * (a1[1] - a0[1]) / win
        core_load = 100 * (b1[1] - b0[1]) / win
        steal = 100 * (c1[2] - c0[2]) / win
        # tall: every contender and the backends (all groups we started)
        other = 100 * ((c1[1] - c0[1]) - tall - tw) / win
        printf "%s\t%s\t%s\t%s\t%s\t%.0f\t%d\t%.3f\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%.2f\t%.2f\t%.1f\t%d\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%s\t%d\t%s\t%s\t%.2f\n",
            mode, kind, round, slot, who, rps, r["requests"], dur, r["p50_us"], r["p90_us"], r["p99_us"], r["p999_us"], r["max_us"],
            errors, detail, cpu_s, cpu_per_req, 100 * cpu_s / dur, new_conns, backend_reqs, pooled,
            core_proxy, core_load, steal, other, mid_new, mid_window, rate, late, sys_per_req
    }' >>"$RESULTS"
    tail -n 1 "$RESULTS" | awk -F'\t' '{ printf "%-5s %-5s %-10s round %s: %s req/s, p50 %s us, p99 %s us, errors %s, %s CPU us/req (%s%% of a core), new backend conns %s (mid-run %s), backend requests %s, other CPU %s%%\n", $1, $2, $5, ($3 == 0 ? "warm-up" : $3), $6, $9, $11, $14, $17, $18, $19, $26, $20, $25 }' >&2
}

DISCARDED=$WORK/discarded.tsv
[[ -n $REPORT_FROM ]] || : >"$DISCARDED"
# measure ARGS...: run_one, redone (up to REDO_DISTURBED times) while other
# work on the machine disturbed it
measure() {
    local attempt other
    local rc
    for ((attempt = 0; ; attempt++)); do
        rc=0
        run_one "$@" || rc=$?
        if ((rc != 0)); then
            ((rc == 3 && attempt < 2)) || die "no result from the load generator against $5 ($1 $2 round $3)"
            log "running it again"
            continue
        fi
        other=$(tail -n 1 "$RESULTS" | cut -f"$F_OTHER")
        if ((attempt < REDO_DISTURBED)) && awk -v o="$other" -v l="$(disturbed_pct "$1")" 'BEGIN { exit !(o > l) }'; then
            tail -n 1 "$RESULTS" >>"$DISCARDED"
            sed -i '$d' "$RESULTS"
            log "$1 $2 $5 round $3 disturbed (other CPU $other% of a core): discarded, redoing"
            continue
        fi
        return 0
    done
}

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) { print "nan"; exit } if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# col MODE KIND CONTENDER FIELD: that column over the counted runs
col() {
    awk -F'\t' -v m="$1" -v k="$2" -v who="$3" -v f="$4" -v fm="$F_MODE" -v fk="$F_KIND" -v fr="$F_ROUND" -v fw="$F_WHO" \
        'NR > 1 && $fm == m && $fk == k && $fr > 0 && $fw == who { print $f }' "$RESULTS"
}

# --- routing check ---------------------------------------------------------------------------

# backends_of MODE PORT: for keys 0..999 (one keep-alive connection, curl URL
# globbing), the backend that answered, one a line
backends_of() {
    curl_to "$1" -fsS "$(scheme_of "$1")://127.0.0.1:$2/k/[0-999]" | sed 's/^backend-//'
}
# check_routing MODE NAME: the same key must reach the same backend every
# time, and the keys must spread over all backends; for shardproxy, each
# key's backend must be the primary /ring/lookup names.
check_routing() {
    local mode=$1 who=$2 a b spread same agree="" k primary port bad=0
    a=$(backends_of "$mode" "${PORT[$who]}") b=$(backends_of "$mode" "${PORT[$who]}")
    same=$(paste <(echo "$a") <(echo "$b") | awk '$1 == $2 { n++ } END { print n + 0 }')
    spread=$(sort <<<"$a" | uniq -c | awk '{ printf "%sbackend-%s=%s", sep, $2, $1; sep = " " }')
    if [[ $who == shardproxy ]]; then
        for ((k = 0; k < 100; k++)); do
            primary=$(curl -fsS --get --data-urlencode service=bench --data-urlencode "key=/k/$k" \
                "http://127.0.0.1:$SP_ADMIN/ring/lookup" | grep -o '127\.0\.0\.1:[0-9]*' | sed -n 1p)
            port=${primary##*:}
            [[ " ${BACKEND_PORTS[*]} " == *" $port "* ]] || { bad=$((bad + 1)); continue; }
            for ((i = 0; i < NBACKENDS; i++)); do
                if [[ ${BACKEND_PORTS[i]} == "$port" && $(sed -n "$((k + 1))p" <<<"$a") != "$((i + 1))" ]]; then
                    bad=$((bad + 1))
                fi
            done
        done
        agree="; keys 0..99 on the primary /ring/lookup names: $((100 - bad))/100"
    fi
    ROUTING[$mode.$who]="same backend twice: $same/1000 keys; spread: $spread$agree"
    log "routing $mode $who: ${ROUTING[$mode.$who]}"
    ((same == 1000)) || die "$who does not route keys consistently in $mode mode (${ROUTING[$mode.$who]})"
    (($(wc -l <<<"$(sort -u <<<"$a")") == NBACKENDS)) || die "$who does not use every backend ($spread)"
    ((bad == 0)) || die "shardproxy answered from another backend than /ring/lookup's primary for $bad of 100 keys"
}

# prefill MODE NAME: fetch every cache key once through the contender, twice:
# after that, the runs should be served from its cache
prefill() {
    local who=$2 t
    t=$(date +%s)
    curl -fsS -o /dev/null "http://127.0.0.1:${PORT[$who]}/k/[0-$((CACHE_KEYS - 1))]" \
        || die "prefill of $who's cache failed"
    log "cache prefill of $who: $CACHE_KEYS keys in $(($(date +%s) - t)) s"
}

# --- runs ----------------------------------------------------------------------------------

# load_runs MODE CONTENDER...: the warm-up, the saturated rounds and the
# fixed-rate rounds of a mode, the contenders' order rotating each round
load_runs() {
    local mode=$1 rate r i n c order=()
    shift
    local active=("$@")
    log "$mode: warm-up, $WARMUP per contender (not counted)"
    for c in "${active[@]}"; do run_one "$mode" sat 0 0 "$c" "$WARMUP" || run_one "$mode" sat 0 0 "$c" "$WARMUP" \
        || die "no result from the load generator against $c (warm-up)"; done
    n=${#active[@]}
    for ((r = 1; r <= ROUNDS; r++)); do
        order=()
        for ((i = 0; i < n; i++)); do order+=("${active[(i + r - 1) % n]}"); done
        log "$mode: round $r/$ROUNDS: ${order[*]} ($DURATION each)"
        for ((i = 0; i < n; i++)); do measure "$mode" sat "$r" "$((i + 1))" "${order[i]}" "$DURATION"; done
    done

    if [[ $mode == both ]]; then
        ((FIXED_ROUNDS == 0)) || log "$mode: no fixed-rate runs (the paced client would share the contender's cores)"
    elif ((FIXED_ROUNDS > 0)); then
        rate=$FIXED_RATE
        if [[ -z $rate ]]; then
            if [[ " ${active[*]} " == *" nginx "* ]]; then
                rate=$(col "$mode" sat nginx "$F_RPS" | median | awk '{ printf "%d", $1 / 2 }')
            else
                rate=$(for c in "${active[@]}"; do col "$mode" sat "$c" "$F_RPS"; done | median | awk '{ printf "%d", $1 / 2 }')
                log "$mode: nginx did not run; fixed rate = half the median req/s of all contenders"
            fi
        fi
        FIXED_AT[$mode]=$rate
        for ((r = 1; r <= FIXED_ROUNDS; r++)); do
            order=()
            for ((i = 0; i < n; i++)); do order+=("${active[(i + r - 1) % n]}"); done
            log "$mode: fixed-rate round $r/$FIXED_ROUNDS at $rate req/s: ${order[*]} ($FIXED_DURATION each)"
            for ((i = 0; i < n; i++)); do measure "$mode" fixed "$r" "$((i + 1))" "${order[i]}" "$FIXED_DURATION" "$rate"; done
        done
    fi
}

# raise_nofile: an open-files limit for the idle clients and the contenders
# started after it (they inherit it): three times max_conns, or the hard
# limit if that is lower (it cannot be raised without CAP_SYS_RESOURCE)
raise_nofile() {
    ulimit -n $(($(max_conns) * 3)) 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    (($(ulimit -n) >= $(max_conns) + 100)) || die "the open-files limit ($(ulimit -n), hard $(ulimit -Hn)) is too low" \
        "for IDLE_CONNS=$IDLE_CONNS: raise the hard limit or lower IDLE_CONNS"
}

# serving_pid PGID: the process of the group that serves the clients: the
# leader's child when it has one (nginx's worker), else the leader
serving_pid() {
    local child
    child=$(pids_of_group "$1" | grep -vx "$1" | sed -n 1p || true)
    echo "${child:-$1}"
}

# idle_memory NAME: loadtest/idle_clients.py (on LOAD_CPU) against NAME;
# a TSV line per cycle in $WORK/memory/NAME.tsv: cycle, RSS before, with
# the clients idle and after they closed (kB), bytes per idle connection
idle_memory() {
    local who=$1 pid
    pid=$(serving_pid "${PG[$who]}")
    wait_quiet
    log "memory: $who (pid $pid): $IDLE_CYCLES cycles of $IDLE_CONNS idle keep-alive clients, ${IDLE_SETTLE}s to settle"
    taskset -c "$LOAD_CPU" python3 "$HERE/idle_clients.py" 127.0.0.1 "${PORT[$who]}" "$pid" \
        --conns "$IDLE_CONNS" --cycles "$IDLE_CYCLES" --settle "$IDLE_SETTLE" >"$WORK/memory/$who.jsonl" \
        || die "loadtest/idle_clients.py against $who failed (see $WORK/memory/$who.jsonl)"
    python3 -c '
import json, sys
for line in sys.stdin:
    c = json.loads(line)
    print(c["cycle"], c["rss_before_kb"], c["rss_idle_kb"], c["rss_after_kb"], c["per_conn_bytes"], sep="\t")
' <"$WORK/memory/$who.jsonl" >"$WORK/memory/$who.tsv"
}

declare -A RAN=() AFFINITY=() FIXED_AT=() METRICS=() ROUTING=() TLS_INFO=()
# what the report needs besides runs.tsv, for REPORT_FROM
STATE_VARS=(CONTENDERS MODES ROUNDS DURATION WARMUP CONNS THREADS KEYS CACHE_KEYS FIXED_ROUNDS FIXED_DURATION IDLE_CONNS IDLE_SETTLE IDLE_CYCLES
    NBACKENDS VNODES KEY_SOURCE PROXY_CPU LOAD_CPU DISTURBED_PCT DISTURBED_PCT_BOTH NGINX_CACHE_DIR SHARDPROXY
    RAN AFFINITY FIXED_AT METRICS ROUTING SKIP_IN TLS_INFO TLS_CERT_SHA)
save_state() { declare -p "${STATE_VARS[@]}" >"$WORK/state.sh"; }

if [[ -n $REPORT_FROM ]]; then
    # shellcheck disable=SC1091
    source "$WORK/state.sh"
    read -ra CONTENDER_LIST <<<"$CONTENDERS"
    read -ra MODE_LIST <<<"$MODES"
else

write_backends
TLS_CERT_SHA=
if has_mode tls; then make_cert; fi
log "work dir $WORK; backends on ${BACKEND_PORTS[*]} (status $BACKEND_STATUS); contenders:$(for c in "${CONTENDER_LIST[@]}"; do printf ' %s :%s' "$c" "${PORT[$c]}"; done)"
start_group backends "$LOAD_CPU" "$WORK/backends/out.log" "$NGINX" -e "$WORK/backends/error.log" \
    -p "$WORK/backends/" -c "$WORK/backends/nginx.conf" -g 'daemon off;'
PG_BACKENDS=$STARTED
for ((k = 1; k <= NBACKENDS; k++)); do
    wait_tcp backends "$PG_BACKENDS" "${BACKEND_PORTS[k - 1]}"
    wait_http pass "backend $k" "http://127.0.0.1:${BACKEND_PORTS[k - 1]}/" "^backend-$k"
done
wait_tcp backends "$PG_BACKENDS" "$BACKEND_STATUS"

# pinning as the kernel sees it (every thread of every process of the group)
affinity_of_group() {
    local pid tid out=""
    for pid in $(pids_of_group "$1"); do
        for tid in /proc/"$pid"/task/*; do
            out+=" $(taskset -cp "${tid##*/}" 2>/dev/null | awk '{print $NF}')"
        done
    done
    tr ' ' '\n' <<<"$out" | grep -v '^$' | sort -u | paste -sd, -
}

# pin_group PGID CPUS: move every thread of every process of the group to CPUS
pin_group() {
    local pid
    for pid in $(pids_of_group "$1"); do taskset -a -p -c "$2" "$pid" >/dev/null 2>&1 || true; done
}

for mode in "${MODE_LIST[@]}"; do
    log "=== mode: $mode"
    mkdir -p "$WORK/$mode"
    # the backends share the load generator's CPUs: both CPUs in mode both
    pin_group "$PG_BACKENDS" "$(load_cpus "$mode")"
    [[ $mode != memory ]] || raise_nofile
    active=()
    for c in "${CONTENDER_LIST[@]}"; do
        if start_contender "$mode" "$c"; then active+=("$c"); fi
    done
    ((${#active[@]})) || { log "no contender can run $mode mode; skipping it"; continue; }
    for c in "${active[@]}"; do
        [[ $mode == cache ]] && prefill "$mode" "$c"
        check_routing "$mode" "$c"
    done
    RAN[$mode]="${active[*]}"

    if [[ $mode == memory ]]; then
        for c in "${active[@]}"; do idle_memory "$c"; done
    else
        load_runs "$mode" "${active[@]}"
    fi

    for c in "${active[@]}"; do AFFINITY[$mode.$c]=$(affinity_of_group "${PG[$c]}"); done
    AFFINITY[$mode.backends]=$(affinity_of_group "$PG_BACKENDS")
    if [[ " ${active[*]} " == *" shardproxy "* ]]; then
        METRICS[$mode]=$(curl -fsS --max-time 2 "http://127.0.0.1:$SP_ADMIN/metrics" 2>/dev/null || true)
    fi
    pgs=()
    for c in "${active[@]}"; do pgs+=("${PG[$c]}"); done
    stop_groups "${pgs[@]}"
    save_state
done
[[ -n ${RAN[*]} ]] || die "nothing ran"
fi

# --- report -----------------------------------------------------------------------------------

GIT_REV=$(git -C "$REPO" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$REPO" status --porcelain -- . ':!loadtest' 2>/dev/null) ]]; then
    GIT_REV+=" (working tree has uncommitted changes)"
fi
# sed -n 1p rather than head: head's early exit would SIGPIPE the command (pipefail)
SP_VERSION=$({ "$SHARDPROXY" --version 2>&1 || true; } | sed -n 1p)
SP_SHA=$(sha256sum "$SHARDPROXY" | cut -c1-16)
SP_MTIME=$(date -u -r "$SHARDPROXY" '+%Y-%m-%dT%H:%M:%SZ')
VERSIONS="$("$NGINX" -v 2>&1)"
has_contender haproxy && VERSIONS+="; $({ "$HAPROXY" -v 2>&1 || true; } | sed -n 1p | cut -d' ' -f1-3)"
has_contender varnish && VERSIONS+="; $({ "$VARNISHD" -V 2>&1 || true; } | sed -n 1p)"
VERSIONS+="; $({ wrk -v 2>&1 || true; } | sed -n '1s/ *$//p')"
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
KERNEL=$(uname -sr)
PNG=${OUT%.md}.png
TSV=${OUT%.md}.tsv

fmt_ms() { awk -v us="$1" 'BEGIN { if (us == "nan" || us == "") print "n/a"; else printf "%.3f", us / 1000 }'; }
sum_col() { col "$@" | awk '$1 != "na" { s += $1 } END { print s + 0 }'; }
mode_title() {
    case $1 in
        pass) echo "Pass-through (no cache)" ;;
        tls) echo "TLS pass-through (HTTPS from the clients, plain HTTP to the backends)" ;;
        both) echo "Pass-through on both cores (contender, load generator and backends sharing CPUs $BOTH_CPUS)" ;;
        memory) echo "Memory: $IDLE_CONNS idle keep-alive clients" ;;
        *) echo "Cache hits" ;;
    esac
}
# chart_title MODE: mode_title, short enough for a panel
chart_title() {
    case $1 in
        tls) echo "TLS pass-through" ;;
        both) echo "Pass-through, both cores" ;;
        *) mode_title "$1" ;;
    esac
}
# cores_title: how the contenders ran, for the titles
cores_title() {
    local t="on one core each"
    if has_mode both; then
        if ((${#MODE_LIST[@]} == 1)); then t="on two cores shared with the load"; else t+=" (mode both: two cores shared with the load)"; fi
    fi
    echo "$t"
}

# rpcs_runs MODE: "round contender requests-per-CPU-second req/s" per counted
# saturated run (requests / the contender's utime+stime)
rpcs_runs() {
    awk -F'\t' -v m="$1" -v fm="$F_MODE" -v fk="$F_KIND" -v fr="$F_ROUND" -v fw="$F_WHO" -v fq="$F_REQS" -v fc="$F_CPUS" -v frps="$F_RPS" \
        'NR > 1 && $fm == m && $fk == "sat" && $fr > 0 && $fc > 0 { printf "%s\t%s\t%.0f\t%s\n", $fr, $fw, $fq / $fc, $frps }' "$RESULTS"
}
# both_ratios MODE: per round and peer of shardproxy, "round peer req/s
# ratio (peer's / shardproxy's) requests-per-CPU-second ratio (shardproxy's / peer's)"
both_ratios() {
    rpcs_runs "$1" | awk -F'\t' '
        { r[$1, $2] = $3; q[$1, $2] = $4; if ($1 + 0 > n) n = $1 + 0; if (!($2 in seen)) { seen[$2] = 1; who[++k] = $2 } }
        END {
            for (i = 1; i <= n; i++) for (j = 1; j <= k; j++) {
                o = who[j]
                if (o == "shardproxy" || !((i, o) in r) || !((i, "shardproxy") in r)) continue
                printf "%d\t%s\t%.4f\t%.4f\n", i, o, q[i, o] / q[i, "shardproxy"], r[i, "shardproxy"] / r[i, o]
            }
        }'
}

# summary_rows MODE: TSV per contender: who rps_med rps_min rps_max cpu_med
# sys_med p50 p99 fixed_p50 fixed_p99 newconns midconns breq_per_kreq errors late
summary_rows() {
    local mode=$1 who vals
    for who in ${RAN[$mode]}; do
        vals=$(col "$mode" sat "$who" "$F_RPS")
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$who" \
            "$(median <<<"$vals")" "$(sort -g <<<"$vals" | head -n 1)" "$(sort -g <<<"$vals" | tail -n 1)" \
            "$(col "$mode" sat "$who" "$F_CPU" | median)" "$(col "$mode" sat "$who" "$F_SYS" | median)" \
            "$(col "$mode" sat "$who" "$F_P50" | median)" "$(col "$mode" sat "$who" "$F_P99" | median)" \
            "$(col "$mode" fixed "$who" "$F_P50" | median)" "$(col "$mode" fixed "$who" "$F_P99" | median)" \
            "$(sum_col "$mode" sat "$who" "$F_NEW")" "$(sum_col "$mode" sat "$who" "$F_MID")" \
            "$(awk -F'\t' -v m="$mode" -v who="$who" -v fm="$F_MODE" -v fr="$F_ROUND" -v fw="$F_WHO" -v fb="$F_BREQ" -v fq="$F_REQS" \
                'NR > 1 && $fm == m && $fr > 0 && $fw == who { b += $fb; q += $fq } END { printf "%.2f", q ? 1000 * b / q : 0 }' "$RESULTS")" \
            "$(awk -F'\t' -v m="$mode" -v who="$who" -v fm="$F_MODE" -v fr="$F_ROUND" -v fw="$F_WHO" -v fe="$F_ERR" \
                'NR > 1 && $fm == m && $fr > 0 && $fw == who { s += $fe } END { print s + 0 }' "$RESULTS")" \
            "$(sum_col "$mode" fixed "$who" "$F_LATE")" \
            "$(col "$mode" sat "$who" "$F_PCT" | median)"
    done
}

# routing_section MODE: the routing check's results, for the report
routing_section() {
    local who
    echo "Routing check (keys /k/0 .. /k/999 through each contender, twice):"
    echo
    for who in ${RAN[$1]}; do echo "- $who: ${ROUTING[$1.$who]:-not recorded}"; done
    echo
}

# skipped_rows MODE N: a table row for each contender that did not run in
# MODE, saying why, with N more empty cells.
skipped_rows() {
    local mode=$1 empty=$2 who cells
    cells=$(printf ' |%.0s' $(seq "$empty"))
    for who in "${CONTENDER_LIST[@]}"; do
        if ! ran "$mode" "$who"; then
            echo "| $who | skipped: ${SKIP_IN[$mode.$who]:-not run} |$cells"
        fi
    done
}

# report_both MODE: the summary and per-round tables of mode both, by
# requests per CPU-second; writes rpcs-MODE.tsv (contender, median
# requests per CPU-second, median ratio) for the chart
report_both() {
    local mode=$1 who rps rmin rmax cpu sys p50 p99 newc midc breq errs pct rpcs ratio o ratios hdr="| round |" sep="|---|" line r
    local others=()
    summary_rows "$mode" >"$WORK/summary-$mode.tsv"
    rpcs_runs "$mode" >"$WORK/rpcs-runs-$mode.tsv"
    both_ratios "$mode" >"$WORK/ratios-$mode.tsv"
    echo "| contender | requests per CPU-second (median) | shardproxy's ÷ this one's (median of rounds) | req/s median | req/s min | req/s max | CPU µs/req (median) | of which kernel | p50 ms | p99 ms | new backend conns (mid-run) | backend req / 1000 | errors | contender CPU % (of one core) |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    : >"$WORK/rpcs-$mode.tsv"
    while IFS=$'\t' read -r who rps rmin rmax cpu sys p50 p99 _ _ newc midc breq errs _ pct; do
        rpcs=$(awk -F'\t' -v w="$who" '$2 == w { print $3 }' "$WORK/rpcs-runs-$mode.tsv" | median)
        if [[ $who == shardproxy ]]; then
            ratio=1
        else
            ratio=$(awk -F'\t' -v w="$who" '$2 == w { print $4 }' "$WORK/ratios-$mode.tsv" | median)
        fi
        printf '%s\t%s\t%s\n' "$who" "$rpcs" "$ratio" >>"$WORK/rpcs-$mode.tsv"
        printf '| %s | %.0f | %s | %.0f | %.0f | %.0f | %.2f | %.2f | %s | %s | %s (%s) | %s | %s | %.1f |\n' \
            "$who" "$rpcs" "$(awk -v r="$ratio" 'BEGIN { if (r == "nan") print "n/a"; else printf "%.2f", r }')" \
            "$rps" "$rmin" "$rmax" "$cpu" "$sys" "$(fmt_ms "$p50")" "$(fmt_ms "$p99")" "$newc" "$midc" "$breq" "$errs" "$pct"
    done <"$WORK/summary-$mode.tsv"
    skipped_rows "$mode" 12
    echo
    echo "Per round (saturated): *req/s* is the peer's ÷ shardproxy's, *req/CPU-s* shardproxy's ÷ the peer's"
    echo "(above 1: shardproxy serves more requests per CPU-second); the last row is the median over the rounds."
    echo
    if ! ran "$mode" shardproxy; then
        echo "(shardproxy did not run in this mode.)"
        echo
        routing_section "$mode"
        return 0
    fi
    for o in ${RAN[$mode]}; do [[ $o == shardproxy ]] || others+=("$o"); done
    for o in "${others[@]}"; do hdr+=" $o req/s | $o req/CPU-s |"; sep+="---:|---:|"; done
    echo "$hdr"
    echo "$sep"
    for ((r = 1; r <= ROUNDS; r++)); do
        line="| $r |"
        for o in "${others[@]}"; do
            ratios=$(awk -F'\t' -v r="$r" -v w="$o" '$1 == r && $2 == w { printf "%.2f | %.2f |", $3, $4 }' "$WORK/ratios-$mode.tsv")
            line+=" ${ratios:-n/a | n/a |}"
        done
        echo "$line"
    done
    line="| median |"
    for o in "${others[@]}"; do
        line+=" $(awk -F'\t' -v w="$o" '$2 == w { print $3 }' "$WORK/ratios-$mode.tsv" | median | awk '{ if ($1 == "nan") print "n/a"; else printf "**%.2f**", $1 }') |"
        line+=" $(awk -F'\t' -v w="$o" '$2 == w { print $4 }' "$WORK/ratios-$mode.tsv" | median | awk '{ if ($1 == "nan") print "n/a"; else printf "**%.2f**", $1 }') |"
    done
    echo "$line"
    echo
    routing_section "$mode"
}

# round_ratio MODE FIELD PEER: the median over the saturated rounds of
# shardproxy's FIELD ÷ PEER's in the same round
round_ratio() {
    awk -F'\t' -v m="$1" -v f="$2" -v peer="$3" -v fm="$F_MODE" -v fk="$F_KIND" -v fr="$F_ROUND" -v fw="$F_WHO" '
        NR > 1 && $fm == m && $fk == "sat" && $fr > 0 { v[$fr, $fw] = $f; if ($fr > n) n = $fr }
        END { for (i = 1; i <= n; i++) if (((i, "shardproxy") in v) && ((i, peer) in v) && v[i, peer] > 0) print v[i, "shardproxy"] / v[i, peer] }' "$RESULTS" | median
}

# best_fixed_p99 MODE: "peer p99_us" of the peer with the lowest median p99
# at the fixed rate in MODE (nothing when no peer ran)
best_fixed_p99() {
    local who
    for who in ${RAN[$1]:-}; do
        [[ $who == shardproxy ]] || printf '%s %s\n' "$who" "$(col "$1" fixed "$who" "$F_P99" | median)"
    done | awk '$2 != "nan"' | sort -g -k2 | sed -n 1p
}

# memory_of NAME FIELD: from NAME's mode-memory cycles: per_conn (bytes per
# idle connection, first cycle), kept (kB of RSS kept after the last cycle
# closed, over the RSS before the first), or cycles ("before → idle → after
# MB" per cycle)
memory_of() {
    local tsv=$WORK/memory/$1.tsv
    [[ -s $tsv ]] || return 0
    case $2 in
        per_conn) awk -F'\t' 'NR == 1 { print $5 }' "$tsv" ;;
        kept) awk -F'\t' 'NR == 1 { b = $2 } { a = $4 } END { print a - b }' "$tsv" ;;
        cycles) awk -F'\t' '{ printf "%s%.1f → %.1f → %.1f MB (%d B/conn)", (NR > 1 ? "; " : ""), $2 / 1024, $3 / 1024, $4 / 1024, $5 }' "$tsv" ;;
    esac
}

# target_row WHAT VALUE OP LIMIT DETAIL: a row of the targets table; VALUE is
# compared as shown (2 decimals); empty or nan: not measured
target_row() {
    local what=$1 value=$2 op=$3 limit=$4 detail=$5 verdict
    if [[ -z $value || $value == nan ]]; then
        value=n/a verdict="not measured"
    else
        value=$(printf '%.2f' "$value")
        verdict=$(awk -v v="$value" -v l="$limit" -v op="$op" 'BEGIN { ok = (op == "≤") ? v <= l : v >= l; print ok ? "met" : "**missed**" }')
    fi
    echo "| $what | $value | $op $limit | $verdict | $detail |"
}

# ratio A B: A ÷ B, empty when either is missing or B is 0
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a != "" && a != "nan" && b != "" && b != "nan" && b != 0) print a / b }'; }

# p99_target_row MODE WHAT: the target row of shardproxy's median p99 at
# MODE's fixed rate ÷ the lowest peer's
p99_target_row() {
    local mode=$1 what=$2 v="" best="" peer p99 sp99
    if ran "$mode" shardproxy; then
        best=$(best_fixed_p99 "$mode") sp99=$(col "$mode" fixed shardproxy "$F_P99" | median)
        read -r peer p99 <<<"$best" || true
        [[ -z $best ]] || v=$(ratio "$sp99" "$p99")
    fi
    target_row "$what" "$v" "≤" 1.00 \
        "mode $mode$([[ -z $v ]] || echo ": $(fmt_ms "$sp99") ms against $peer's $(fmt_ms "$p99") ms at ${FIXED_AT[$mode]:-?} req/s")"
}

# targets_section: what shardproxy is held to, measured in this run
targets_section() {
    local peer v
    echo "## Targets"
    echo
    echo "shardproxy's figures ÷ its peers', from the runs below: CPU per request, req/s and requests per CPU-second"
    echo "as medians of the per-round ratios (saturated runs); p99 as the ratio of the medians over the fixed-rate runs;"
    echo "memory from mode memory's first cycle (per idle connection) and from its last (RSS kept after the clients closed)."
    echo
    echo "| target | measured | wanted | verdict | from |"
    echo "|---|---:|---:|---|---|"
    v=""; ran pass nginx && v=$(round_ratio pass "$F_CPU" nginx)
    target_row "pass-through: CPU per request ÷ nginx's" "$v" "≤" 1.00 "mode pass"
    v=""; ran pass haproxy && v=$(round_ratio pass "$F_CPU" haproxy)
    target_row "pass-through: CPU per request ÷ HAProxy's" "$v" "≤" 0.90 "mode pass"
    v=""; ran pass nginx && v=$(round_ratio pass "$F_RPS" nginx)
    target_row "pass-through: req/s ÷ nginx's" "$v" "≥" 1.00 "mode pass"
    p99_target_row pass "pass-through: p99 at the fixed rate ÷ the best peer's"
    v=""; ran cache haproxy && v=$(round_ratio cache "$F_CPU" haproxy)
    target_row "cache hits: CPU per request ÷ HAProxy's" "$v" "≤" 0.90 "mode cache"
    p99_target_row cache "cache hits: p99 at the fixed rate ÷ the lowest peer's"
    for peer in nginx haproxy; do
        v=""
        ran both "$peer" && ran both shardproxy && v=$(both_ratios both | awk -F'\t' -v w="$peer" '$2 == w { print $4 }' | median)
        target_row "both cores: requests per CPU-second, shardproxy's ÷ $peer's" "$v" "≥" 1.00 "mode both"
    done
    v=""; ran memory nginx && ran memory shardproxy && v=$(ratio "$(memory_of shardproxy per_conn)" "$(memory_of nginx per_conn)")
    target_row "memory: RSS per idle keep-alive connection ÷ nginx's" "$v" "≤" 1.00 \
        "mode memory$([[ -z $v ]] || echo ": $(memory_of shardproxy per_conn) B against $(memory_of nginx per_conn) B, $IDLE_CONNS connections")"
    v=""; ran memory nginx && ran memory shardproxy && v=$(ratio "$(memory_of shardproxy kept)" "$(memory_of nginx kept)")
    target_row "memory: RSS kept after they closed ÷ nginx's" "$v" "≤" 1.00 \
        "mode memory$([[ -z $v ]] || echo ": $(memory_of shardproxy kept) kB against $(memory_of nginx kept) kB, after $IDLE_CYCLES cycles")"
    if ran tls shardproxy; then
        echo "| TLS pass-through: the fixed-rate latency table | $(fmt_ms "$(col tls fixed shardproxy "$F_P99" | median)") ms p99 | a table | reported | mode tls, below |"
    else
        echo "| TLS pass-through: the fixed-rate latency table | n/a | a table | not measured | mode tls |"
    fi
    echo
}

# report_memory: mode memory's table
report_memory() {
    local who
    echo "| contender | serving process | RSS per idle connection, first cycle | RSS kept after the clients closed (last cycle's after − first cycle's before) | each cycle: before → $IDLE_CONNS idle → after they closed |"
    echo "|---|---|---:|---:|---|"
    for who in ${RAN[memory]}; do
        echo "| $who | $([[ $who == nginx ]] && echo "its worker" || echo "its one process") | $(memory_of "$who" per_conn) B | $(memory_of "$who" kept) kB | $(memory_of "$who" cycles) |"
    done
    skipped_rows memory 3
    echo
}

report() {
    local mode who rps rmin rmax cpu sys p50 p99 fp50 fp99 newc midc breq errs late pct sp_cpu sp_rps at split=0 m
    for m in "${MODE_LIST[@]}"; do [[ $m == both ]] || split=1; done
    echo "# shardproxy, nginx, HAProxy and Varnish as consistent-hash proxies, $(cores_title)"
    echo
    echo "Generated by \`loadtest/compare.sh\` on $(date -u '+%Y-%m-%d %H:%M:%S UTC')."
    if ((split)); then
        echo "Each contender in turn on CPU $PROXY_CPU alone; wrk/fixedrate and $NBACKENDS backends (one nginx) on CPU $LOAD_CPU."
    fi
    if has_mode both; then
        echo "Mode both: each contender in turn with two workers/threads, sharing CPUs $BOTH_CPUS with wrk and the $NBACKENDS backends (one nginx)."
    fi
    echo "Per mode: one uncounted $WARMUP warm-up run per contender, then $ROUNDS rounds x $DURATION saturated (wrk \`-t$THREADS -c$CONNS\`,"
    echo "keep-alive, GET /k/<uniform key>), then $FIXED_ROUNDS rounds x $FIXED_DURATION at a fixed rate (loadtest/fixedrate, $CONNS connections,"
    echo "latency from the time each request was due; none in mode both). The order of the contenders rotates each round."
    echo
    echo "![req/s, CPU µs per request and fixed-rate latency per contender and mode]($(basename "$PNG"))"
    echo
    targets_section
    for mode in "${MODE_LIST[@]}"; do
        echo "## $(mode_title "$mode")"
        echo
        if [[ $mode == pass ]]; then
            echo "$KEYS keys. Every request goes to a backend (Varnish: \`return (pass)\`)."
        elif [[ $mode == tls ]]; then
            echo "$KEYS keys, every request to a backend, as in pass-through, but wrk speaks HTTPS (\`https://\` URLs,"
            echo "keep-alive: one handshake per connection per run) to the contender; the contenders speak plain HTTP"
            echo "to the backends. All serve the same self-signed EC P-256 certificate (sha256 ${TLS_CERT_SHA:-?}),"
            echo "made with the openssl CLI for this run. The fixed-rate runs speak HTTPS too (\`fixedrate --tls\`, each"
            echo "connection's handshake done before the schedule starts: the latencies are of keep-alive requests)."
            echo
            echo "Negotiated with \`openssl s_client\` (OpenSSL's defaults, no ALPN, as wrk; then offering ALPN h2,http/1.1):"
            echo
            for who in ${RAN[$mode]:-}; do echo "- $who: ${TLS_INFO[$who]:-not recorded}"; done
        elif [[ $mode == memory ]]; then
            echo "Each contender in turn, alone on CPU $PROXY_CPU with one worker as in pass-through: \`loadtest/idle_clients.py\`"
            echo "(on CPU $LOAD_CPU) opens $IDLE_CONNS keep-alive connections, one \`GET /k/<n>\` each, holds them idle for"
            echo "${IDLE_SETTLE}s, reads the serving process's RSS (VmRSS), closes them, waits ${IDLE_SETTLE}s and reads it again;"
            echo "$IDLE_CYCLES cycles. The connection limits are raised alike for all ($(max_conns))."
        elif [[ $mode == both ]]; then
            echo "$KEYS keys, every request to a backend, as in pass-through, but each contender runs two workers/threads"
            echo "(shardproxy \`workers = 2\`, nginx \`worker_processes 2\` + \`reuseport\`, HAProxy \`nbthread 2\`, Varnish its default"
            echo "2 thread pools) and shares CPUs $BOTH_CPUS with wrk and the backends: nothing is pinned apart, so req/s says"
            echo "what this box does with everything on it, not what a proxy does with two cores of its own. The figure to"
            echo "compare is **requests per CPU-second** of the contender (requests / the utime+stime of its process group"
            echo "during the run); *shardproxy's ÷ this one's* is the median over the rounds of shardproxy's figure divided by"
            echo "the peer's in the same round (above 1: shardproxy serves more requests per CPU-second). No fixed-rate runs."
        else
            echo "$CACHE_KEYS keys, each fetched once through every contender before its runs; the backends answer"
            echo "\`Cache-Control: max-age=3600\`. *backend req / 1000* counts the requests that still reached a backend (misses)."
        fi
        echo
        if [[ -z ${RAN[$mode]:-} ]]; then
            echo "Not run."
            echo
            continue
        fi
        if [[ $mode == both ]]; then
            report_both "$mode"
            continue
        fi
        if [[ $mode == memory ]]; then
            report_memory
            continue
        fi
        summary_rows "$mode" >"$WORK/summary-$mode.tsv"
        sp_cpu=$(awk -F'\t' '$1 == "shardproxy" { print $5 }' "$WORK/summary-$mode.tsv")
        sp_rps=$(awk -F'\t' '$1 == "shardproxy" { print $2 }' "$WORK/summary-$mode.tsv")
        at="${FIXED_AT[$mode]:-?} req/s"
        echo "| contender | req/s median | req/s min | req/s max | CPU µs/req (median) | of which kernel | CPU/req ÷ shardproxy's | req/s ÷ shardproxy's | p50 ms saturated | p99 ms saturated | p50 ms @ $at | p99 ms @ $at | late sends | new backend conns (mid-run) | backend req / 1000 | errors | contender CPU % |"
        echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        while IFS=$'\t' read -r who rps rmin rmax cpu sys p50 p99 fp50 fp99 newc midc breq errs late pct; do
            printf '| %s | %.0f | %.0f | %.0f | %.2f | %.2f | %s | %s | %s | %s | %s | %s | %s | %s (%s) | %s | %s | %.1f |\n' \
                "$who" "$rps" "$rmin" "$rmax" "$cpu" "$sys" \
                "$(awk -v a="$cpu" -v b="$sp_cpu" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')" \
                "$(awk -v a="$rps" -v b="$sp_rps" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')" \
                "$(fmt_ms "$p50")" "$(fmt_ms "$p99")" "$(fmt_ms "$fp50")" "$(fmt_ms "$fp99")" "$late" \
                "$newc" "$midc" "$breq" "$errs" "$pct"
        done <"$WORK/summary-$mode.tsv"
        skipped_rows "$mode" 15
        echo
        echo "Ratios to shardproxy, per round (saturated; req/s ratio > 1 and CPU ratio < 1 mean the other is faster):"
        echo
        if ran "$mode" shardproxy; then
            local others=() o hdr="| round |" sep="|---|"
            for o in ${RAN[$mode]}; do [[ $o == shardproxy ]] || others+=("$o"); done
            for o in "${others[@]}"; do hdr+=" $o req/s | $o CPU/req |"; sep+="---:|---:|"; done
            echo "$hdr"
            echo "$sep"
            awk -F'\t' -v m="$mode" -v others="${others[*]}" -v fm="$F_MODE" -v fk="$F_KIND" -v fr="$F_ROUND" -v fw="$F_WHO" -v frps="$F_RPS" -v fc="$F_CPU" '
                NR > 1 && $fm == m && $fk == "sat" && $fr > 0 { rps[$fr, $fw] = $frps; cpu[$fr, $fw] = $fc; if ($fr > n) n = $fr }
                END {
                    k = split(others, o, " ")
                    for (i = 1; i <= n; i++) {
                        line = "| " i " |"
                        for (j = 1; j <= k; j++) {
                            a = rps[i, "shardproxy"]; c = cpu[i, "shardproxy"]
                            line = line sprintf(" %.2f | %.2f |", a > 0 ? rps[i, o[j]] / a : 0, c > 0 ? cpu[i, o[j]] / c : 0)
                        }
                        print line
                    }
                }' "$RESULTS"
        else
            echo "(shardproxy did not run in this mode.)"
        fi
        echo
        routing_section "$mode"
    done

    echo "## How to read it"
    echo
    echo "- **CPU µs/req** is the contender's CPU time (user + system, every process and thread of its process group)"
    echo "  over the requests it served in saturated runs: the steadiest figure on a shared machine. *÷ shardproxy's*"
    echo "  divides it (and req/s) by shardproxy's median of the same mode. *of which kernel* is the system"
    echo "  part (stime): the sockets' work, which every contender pays alike for the same syscalls and"
    echo "  segments, and which sets a floor under any ratio of totals."
    echo "- **req/s** and **p50/p99 saturated** come from wrk with $CONNS connections always busy (closed loop): at"
    echo "  saturation the latency is mostly queueing (p50 ≈ $CONNS / req/s). When a contender is faster than the load"
    echo "  core can drive, *contender CPU %* is below 100 and its req/s is a lower bound."
    echo "- **p50/p99 @ rate**: loadtest/fixedrate sends at a fixed rate (half of nginx's median saturated req/s in"
    echo "  that mode) over $CONNS keep-alive connections, and times each request from when it was *due*. A stall"
    echo "  that holds up later requests counts in their latency (no coordinated omission). *late sends* (every run"
    echo "  table) counts requests sent more than 1 ms after they were due (every connection busy, or the client itself late)."
    echo "- **new backend conns**: TCP connections accepted by the backends during the counted saturated runs"
    echo "  (stub_status \`accepts\`), in brackets those opened mid-run (1 s after the start to 1 s before the"
    echo "  end). With keep-alive working it stays near 0."
    echo "- **backend req / 1000**: backend requests per 1000 client requests (cache mode: the misses)."
    if [[ -n ${RAN[both]:-} ]]; then
        echo "- **mode both**: the contender, wrk and the backends share CPUs $BOTH_CPUS, so the contender's req/s and"
        echo "  latency depend on how much CPU the load generator and the backends take from it; *requests per"
        echo "  CPU-second* (the inverse of CPU µs/req) is the contender's own work, and the per-round ratio"
        echo "  compares two runs next to each other in time. *contender CPU %* is of one core (up to 200)."
        echo "  *other CPU* there is the same as in the other modes: machine-wide busy time minus our processes"
        echo "  (contenders, backends, load generator, the script's polls); with both cores saturated by the run,"
        echo "  other work gets less CPU than it asks for, so the figure understates it."
    fi
    echo
    local disturbed lim_txt=$DISTURBED_PCT%
    if has_mode both && [[ $DISTURBED_PCT_BOTH != "$DISTURBED_PCT" ]]; then lim_txt="$DISTURBED_PCT% (mode both: $DISTURBED_PCT_BOTH%)"; fi
    disturbed=$(awk -F'\t' -v lim="$DISTURBED_PCT" -v limb="$DISTURBED_PCT_BOTH" -v fo="$F_OTHER" 'NR > 1 && $3 > 0 && $fo > ($1 == "both" ? limb : lim) { printf "%s%s %s %s round %s (%s%%)", sep, $1, $2, $5, $3, $fo; sep = ", " }' "$RESULTS")
    if [[ -n $disturbed ]]; then
        echo "**Caution:** other work on the machine used more than $lim_txt of a core during: $disturbed."
        echo "Those figures are not clean."
    else
        echo "No counted run was disturbed by other work on the machine (other CPU <= $lim_txt of a core)."
    fi
    echo
    if [[ -s $DISCARDED ]]; then
        echo "Discarded because other work on the machine used more than $lim_txt of a core during them (each was redone):"
        echo
        awk -F'\t' -v fo="$F_OTHER" '{ printf "- %s %s round %s, %s: %s req/s, p99 %.3f ms, %s CPU µs/req, other CPU %s%%\n", $1, $2, $3, $5, $6, $11 / 1000, $17, $fo }' "$DISCARDED"
        echo
    fi
    echo "## Every run"
    echo
    echo "Round 0 is the warm-up (not counted). *core N busy*: /proc/stat busy share of that CPU during the run;"
    echo "*other CPU*: machine-wide busy time not accounted to the contenders, the backends or the load generator"
    echo "(approximate: includes interrupt time and everything else running on the machine), in % of one core."
    echo
    echo "| mode | load | round | contender | req/s | p50 ms | p99 ms | p99.9 ms | max ms | errors | CPU µs/req | contender CPU % | new backend conns | mid-run | backend requests | pooled backend conns after | core $PROXY_CPU busy % | core $LOAD_CPU busy % | steal % | other CPU % | late sends |"
    echo "|---|---|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    awk -F'\t' -v lim="$DISTURBED_PCT" -v limb="$DISTURBED_PCT_BOTH" 'NR > 1 {
        e = ($14 == 0) ? "0" : "**" $14 "** (" $15 ")"
        o = ($25 > ($1 == "both" ? limb : lim)) ? "**" $25 "** (disturbed)" : $25
        load = ($2 == "sat") ? "wrk" : "fixed " $28
        printf "| %s | %s | %s | %s | %s | %.3f | %.3f | %.3f | %.3f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
            $1, load, ($3 == 0 ? "warm-up" : $3), $5, $6, $9 / 1000, $11 / 1000, $12 / 1000, $13 / 1000, e, $17, $18, $19, $26, $20, $21, $22, $23, $24, o, $29
    }' "$RESULTS"
    echo
    echo "## Setup"
    echo
    echo "- date: $(date -u '+%Y-%m-%dT%H:%M:%SZ'); host: $(nproc) CPUs ($NCPU online), $CPU_MODEL; $KERNEL"
    echo "- shardproxy: $SHARDPROXY ($SP_VERSION; git $GIT_REV; binary sha256 $SP_SHA..., built $SP_MTIME)"
    echo "- $VERSIONS"
    if ((split)); then
        m=""
        if has_mode both; then m=" (mode both: all on CPUs $BOTH_CPUS)"; fi
        echo "- pinning (taskset): contenders on CPU $PROXY_CPU; the load generator and the backends on CPU $LOAD_CPU$m. Affinity observed:"
    else
        echo "- pinning (taskset): the contenders, the load generator and the backends all on CPUs $BOTH_CPUS. Affinity observed:"
    fi
    for mode in "${MODE_LIST[@]}"; do
        [[ -n ${RAN[$mode]:-} ]] || continue
        printf '  %s: %s; backends: %s\n' "$mode" \
            "$(for who in ${RAN[$mode]}; do printf '%s %s, ' "$who" "${AFFINITY[$mode.$who]:-not recorded}"; done | sed 's/, $//')" "${AFFINITY[$mode.backends]:-not recorded}"
    done
    echo "- backends: one nginx, \`worker_processes 1\`, $NBACKENDS \`server\`s, each \`return 200 \"backend-K\\n\"\` with"
    echo "  \`Cache-Control: max-age=3600\`; access_log off; keepalive_timeout 300s; keepalive_requests 1000000."
    echo "- shardproxy: \`[server] workers = 1\`; service \`bench\`: $NBACKENDS static instances, derived tokens"
    echo "  (virtual_nodes = $VNODES), slaves = 1, key = \"$KEY_SOURCE\"; cache mode: \`[services.bench.cache] enabled = true\`."
    echo "- nginx: \`worker_processes 1\`; \`upstream { hash \$request_uri consistent; keepalive 512; keepalive_requests 1000000; }\`;"
    echo "  \`proxy_http_version 1.1; proxy_set_header Connection \"\"\`; Host kept, X-Forwarded-For/-Proto and Via set;"
    echo "  cache mode: \`proxy_cache_path\` on $( [[ $NGINX_CACHE_DIR == /dev/shm/* ]] && echo "/dev/shm (tmpfs)" || echo "$NGINX_CACHE_DIR"), \`proxy_cache_valid 200 1h\`."
    echo "- HAProxy: \`nbthread 1\`; \`balance uri\`, \`hash-type consistent\`, \`http-reuse always\`, \`pool-purge-delay 300s\`;"
    echo "  \`option forwardfor\`, X-Forwarded-Proto and Via set; cache mode: a \`cache\` section (256 MB, max-age 3600)."
    echo "- Varnish: \`-s malloc,256m -p thread_pools=1\`; \`directors.shard()\`, \`.backend(by=URL)\` in vcl_backend_fetch;"
    echo "  pass mode: \`return (pass)\` in vcl_recv; cache mode: the built-in VCL."
    if [[ -n ${RAN[both]:-} ]]; then
        echo "- mode both: as pass, but shardproxy \`workers = 2\` (a SO_REUSEPORT socket and a runtime per worker);"
        echo "  nginx \`worker_processes 2\`, \`listen ... reuseport\` (a socket per worker, as shardproxy);"
        echo "  HAProxy \`nbthread 2\` (one listening socket, connections handed to the least loaded thread);"
        echo "  Varnish without \`-p thread_pools=1\` (its default, 2 pools). The backends stay one nginx worker."
    fi
    if [[ -n ${RAN[tls]:-} ]]; then
        echo "- tls mode: one self-signed EC P-256 certificate (\`openssl req -x509 -newkey ec\`) for all; shardproxy"
        echo "  \`[server.tls] cert, key\`; nginx \`listen ... ssl http2\`, \`ssl_certificate\`, \`ssl_certificate_key\`,"
        echo "  \`ssl_protocols TLSv1.2 TLSv1.3\` (1.22's default lacks 1.3; other ssl_* settings its defaults); HAProxy \`bind ... ssl crt <cert+key> alpn h2,http/1.1\`, X-Forwarded-Proto https."
        echo "  wrk connects with \`https://\` URLs (OpenSSL, no ALPN: HTTP/1.1), fixedrate with \`--tls --ca\` (rustls, ALPN"
        echo "  http/1.1); Varnish has no TLS and is skipped."
    fi
    echo "- load: \`wrk -t$THREADS -c$CONNS -d$DURATION --latency -s loadtest/keys.lua\`;"
    echo "  \`fixedrate --rate R --duration $(dur_secs "$FIXED_DURATION") --conns $CONNS\` (loadtest/fixedrate)."
    echo "- configs: written by the script into a temporary directory (\`KEEP_WORK=1\` keeps them)."
    echo "- raw per-run data: \`$(basename "$TSV")\` next to this file (discarded runs: mode prefixed \`discarded:\`)."
    for mode in "${MODE_LIST[@]}"; do
        [[ -n ${METRICS[$mode]:-} ]] || continue
        echo
        echo "<details><summary>shardproxy /metrics after the $mode runs (non-zero, non-comment lines)</summary>"
        echo
        echo '```'
        grep -v '^#' <<<"${METRICS[$mode]}" | awk '$NF != 0' | grep -v '_bucket{' | sed -n 1,40p
        echo '```'
        echo
        echo "</details>"
    done
}

# chart: per mode, three panels: req/s (median, min-max bars), CPU µs/req (and its kernel part), fixed-rate p50/p99
chart() {
    local mode nmodes=0 gp=$WORK/chart.gp
    for mode in "${MODE_LIST[@]}"; do [[ -z ${RAN[$mode]:-} || $mode == memory ]] || nmodes=$((nmodes + 1)); done
    ((nmodes)) || return 0
    {
        echo "set terminal pngcairo size 1500,$((430 * nmodes + 60)) font 'Sans,11'"
        echo "set output '$PNG'"
        echo "set multiplot layout $nmodes,3 title '${CONTENDER_LIST[*]}: $(cores_title | sed 's/^on //'), $NBACKENDS backends ($(date -u '+%Y-%m-%d'))'"
        echo "set style fill solid 0.8 border -1"
        echo "set boxwidth 0.6"
        echo "set grid ytics"
        echo "set yrange [0:*]"
        echo "set xtics nomirror"
        echo "set key top left"
        echo "set offsets 0, 0, graph 0.1, 0"
        for mode in "${MODE_LIST[@]}"; do
            [[ -n ${RAN[$mode]:-} && $mode != memory ]] || continue
            local data=$WORK/chart-$mode.dat
            # the latency panel: at the fixed rate; in mode both (no
            # fixed-rate runs) saturated, from wrk
            local lat_from=9 lat_what="at ${FIXED_AT[$mode]:-?} req/s"
            if [[ $mode == both ]]; then lat_from=7 lat_what="saturated (wrk, $CONNS conns)"; fi
            if [[ $mode == both ]]; then
                # the CPU panel shows requests per CPU-second (column 6; 7 unused)
                paste "$WORK/summary-$mode.tsv" "$WORK/rpcs-$mode.tsv" | awk -F'\t' -v f="$lat_from" \
                    '{ printf "%d %s %s %s %s %s 0 %s %s\n", NR - 1, $1, $2, $3, $4, ($18 == "nan" ? 0 : $18), ($f == "nan" ? 0 : $f / 1000), ($(f + 1) == "nan" ? 0 : $(f + 1) / 1000) }' >"$data"
            else
                awk -F'\t' -v f="$lat_from" '{ printf "%d %s %s %s %s %s %s %s %s\n", NR - 1, $1, $2, $3, $4, $5, $6, ($f == "nan" ? 0 : $f / 1000), ($(f + 1) == "nan" ? 0 : $(f + 1) / 1000) }' \
                    "$WORK/summary-$mode.tsv" >"$data"
            fi
            echo "set title '$(chart_title "$mode"): req/s (median, min-max)'"
            echo "set ylabel 'requests/s'"
            echo "set xrange [-0.6:$(($(wc -l <"$data") - 1)).6]"
            echo "plot '$data' using 1:3:xtic(2) with boxes lc rgb '#4e79a7' notitle, '' using 1:3:4:5 with yerrorbars lc rgb 'black' pt 0 notitle, '' using 1:3:(sprintf('%.0f', \$3)) with labels offset 0,1.2 notitle"
            if [[ $mode == both ]]; then
                echo "set title '$(chart_title "$mode"): requests per CPU-second (median)'"
                echo "set ylabel 'requests per CPU-second of the contender'"
                echo "plot '$data' using 1:6:xtic(2) with boxes lc rgb '#f28e2b' notitle, '' using 1:6:(sprintf('%.0f', \$6)) with labels offset 0,1 notitle"
            else
                echo "set title '$(chart_title "$mode"): CPU µs per request (median)'"
                echo "set ylabel 'µs of CPU per request'"
                echo "plot '$data' using 1:6:xtic(2) with boxes lc rgb '#f28e2b' title 'user + kernel', '' using 1:7 with boxes lc rgb '#9c5a1c' title 'of which kernel', '' using 1:6:(sprintf('%.1f', \$6)) with labels offset 0,1 notitle"
            fi
            echo "set title '$(chart_title "$mode"): p50/p99 $lat_what'"
            echo "set ylabel 'ms (log scale)'"
            echo "set logscale y"
            echo "set yrange [0.05:*]"
            echo "set boxwidth 0.3"
            echo "plot '$data' using (\$1 - 0.15):8:xtic(2) with boxes lc rgb '#59a14f' title 'p50', '' using (\$1 + 0.15):9 with boxes lc rgb '#e15759' title 'p99', '' using (\$1 + 0.15):9:(sprintf('%.2f', \$9)) with labels offset 0,1 notitle"
            echo "set boxwidth 0.6"
            echo "unset logscale y"
            echo "set yrange [0:*]"
        done
        echo "unset multiplot"
    } >"$gp"
    gnuplot "$gp" 2>"$WORK/gnuplot.log" || log "WARNING: gnuplot failed: $(tail -n 3 "$WORK/gnuplot.log")"
}

mkdir -p "$(dirname "$OUT")"
report >"$WORK/report.md"
chart
cp "$WORK/report.md" "$OUT"
cat "$OUT"
{ cat "$RESULTS"; sed 's/^/discarded:/' "$DISCARDED"; } >"$TSV"

# warn loudly (stderr and exit status) on errors
TOTAL_ERRORS=$(awk -F'\t' -v fe="$F_ERR" 'NR > 1 { s += $fe } END { print s + 0 }' "$RESULTS")
if ((TOTAL_ERRORS > 0)); then
    log "WARNING: the load generators reported $TOTAL_ERRORS errors (non-2xx/3xx or socket errors); see the table"
    KEEP_WORK=1
    exit 2
fi
log "results written to $OUT, $TSV and $PNG"
