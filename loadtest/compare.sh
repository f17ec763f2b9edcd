#!/usr/bin/env bash
# loadtest/compare.sh: pass-through benchmark of shardproxy against nginx used
# as a consistent-hash proxy, in front of the same backends, on a 2-core box.
#
#   core PROXY_CPU (0): the contender under test (shardproxy or nginx), alone
#   core LOAD_CPU  (1): wrk + the backends (4 nginx servers, one worker)
#
# Contenders alternate over ROUNDS rounds (A B, B A, A B, ...), after one
# uncounted warm-up run each. Per run: wrk req/s, p50/p99, errors; the
# contender's CPU time (its process group, /proc/PID/stat utime+stime) per
# request; new backend connections (backends' stub_status "accepts"); CPU
# used by anything else on the machine. See loadtest/README.md.
#
# Environment (defaults in brackets):
#   ROUNDS [3]  DURATION [10s]  WARMUP [5s]  CONNS [64]  THREADS [1]
#   KEYS [100000]  NBACKENDS [4]  VNODES [160]  KEY_SOURCE [uri]
#   SHARDPROXY [<repo>/target-perf/release/shardproxy]  NGINX [nginx in PATH or /usr/sbin/nginx]
#   PROXY_CPU [0]  LOAD_CPU [1]  OUT [loadtest/results/passthrough.md]
#   KEEP_WORK [0]: keep the temporary directory (configs, logs, wrk output)
#   SHARDPROXY_LOG [warn]: RUST_LOG for shardproxy
#   QUIET_PCT [10] QUIET_TIMEOUT [180]: before each run, wait up to
#     QUIET_TIMEOUT seconds for the machine to be idle (busy below QUIET_PCT %
#     of one core for 2 s in a row)
#   DISTURBED_PCT [10]: flag runs during which other work used more than this
#     (% of one core)
#   REDO_DISTURBED [3]: redo a disturbed counted run up to this many times
#     (the discarded runs are listed in the report)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-5s}
CONNS=${CONNS:-64}
THREADS=${THREADS:-1}
KEYS=${KEYS:-100000}
NBACKENDS=${NBACKENDS:-4}
VNODES=${VNODES:-160}
KEY_SOURCE=${KEY_SOURCE:-uri}
SHARDPROXY=${SHARDPROXY:-$REPO/target-perf/release/shardproxy}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
OUT=${OUT:-$HERE/results/passthrough.md}
KEEP_WORK=${KEEP_WORK:-0}
SHARDPROXY_LOG=${SHARDPROXY_LOG:-warn}
QUIET_PCT=${QUIET_PCT:-10}
QUIET_TIMEOUT=${QUIET_TIMEOUT:-180}
DISTURBED_PCT=${DISTURBED_PCT:-10}
REDO_DISTURBED=${REDO_DISTURBED:-3}
LUA=$HERE/keys.lua

log() { printf '[compare %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# --- preflight ---------------------------------------------------------------

if [[ -z ${NGINX:-} ]]; then
    NGINX=$(command -v nginx || true)
    [[ -n $NGINX ]] || NGINX=/usr/sbin/nginx
fi
missing=()
[[ -x $NGINX ]] || missing+=("nginx ($NGINX)")
for tool in wrk taskset setsid curl ss awk sort getconf; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
    log "missing tools: ${missing[*]}"
    log "install them with: apt-get install nginx-light wrk util-linux curl iproute2"
    exit 1
fi
[[ -x $SHARDPROXY ]] || die "no shardproxy binary at $SHARDPROXY; build it with:
  cd $REPO && CARGO_TARGET_DIR=$REPO/target-perf cargo build --release -p shardproxy
or point SHARDPROXY at one"
[[ -r $LUA ]] || die "missing $LUA"
for v in ROUNDS CONNS THREADS KEYS NBACKENDS VNODES PROXY_CPU LOAD_CPU QUIET_PCT QUIET_TIMEOUT DISTURBED_PCT REDO_DISTURBED; do
    [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a whole number, got '${!v}'"
done
((ROUNDS >= 1)) || die "ROUNDS must be at least 1"
((NBACKENDS >= 1)) || die "NBACKENDS must be at least 1"
for v in DURATION WARMUP; do
    [[ ${!v} =~ ^[0-9]+[smh]?$ ]] || die "$v must look like 10s, got '${!v}'"
done
[[ $KEY_SOURCE == uri || $KEY_SOURCE == path ]] || die "KEY_SOURCE must be uri or path"
NCPU=$(nproc --all 2>/dev/null || nproc)
((PROXY_CPU < NCPU && LOAD_CPU < NCPU)) || die "need CPUs $PROXY_CPU and $LOAD_CPU; this machine has $NCPU"
((PROXY_CPU != LOAD_CPU)) || die "PROXY_CPU and LOAD_CPU must differ"
NGINX_V=$("$NGINX" -V 2>&1)
grep -q -- '--with-http_stub_status_module' <<<"$NGINX_V" \
    || die "$NGINX lacks the stub_status module (used to count backend connections); apt-get install nginx-light"
! grep -q -- '--without-http_upstream_hash_module' <<<"$NGINX_V" \
    || die "$NGINX lacks the upstream hash module"
! grep -q -- '--without-http_upstream_keepalive_module' <<<"$NGINX_V" \
    || die "$NGINX lacks the upstream keepalive module"
CLK_TCK=$(getconf CLK_TCK)

WORK=$(mktemp -d "${TMPDIR:-/tmp}/shardproxy-compare.XXXXXX")
chmod 755 "$WORK"   # nginx workers may run as another user (nobody)

# --- process bookkeeping -------------------------------------------------------

PGIDS=()     # process groups we started (each is setsid + exec, so PGID = PID)
STARTED=     # PID of the last started group
WRK_PID=     # the wrk running now, if any (it is in our own process group)

cleanup() {
    local rc=$? pg i alive
    trap - EXIT INT TERM
    if [[ -n $WRK_PID ]]; then kill -TERM "$WRK_PID" 2>/dev/null || true; fi
    for pg in "${PGIDS[@]}"; do
        kill -TERM -- "-$pg" 2>/dev/null || true
    done
    for ((i = 0; i < 50; i++)); do
        alive=0
        for pg in "${PGIDS[@]}"; do
            if kill -0 -- "-$pg" 2>/dev/null; then alive=1; fi
        done
        ((alive)) || break
        sleep 0.1
    done
    for pg in "${PGIDS[@]}"; do
        kill -KILL -- "-$pg" 2>/dev/null || true
    done
    wait 2>/dev/null || true
    if ((rc != 0)); then
        for f in "$WORK"/*.log; do
            [[ -s $f ]] || continue
            log "--- tail of $f"
            tail -n 20 "$f" >&2 || true
        done
    fi
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

# start_group NAME CPU CMD...: run CMD in a new session (its own process group)
# pinned to CPU, output to $WORK/NAME.log; sets STARTED to its PID.
start_group() {
    local name=$1 cpu=$2
    shift 2
    setsid taskset -c "$cpu" "$@" >"$WORK/$name.log" 2>&1 </dev/null &
    STARTED=$!
    PGIDS+=("$STARTED")
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

# wait_tcp NAME PID PORT: poll until PORT accepts connections (PID must live).
wait_tcp() {
    local name=$1 pid=$2 port=$3 i
    for ((i = 0; i < 200; i++)); do
        kill -0 "$pid" 2>/dev/null || die "$name (pid $pid) exited during startup"
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            [[ $(pgrp_of "$pid") == "$pid" ]] || die "$name (pid $pid) is not its own process group leader"
            return 0
        fi
        sleep 0.05
    done
    die "$name did not listen on 127.0.0.1:$port within 10 s"
}

# wait_http NAME URL REGEX: poll until URL answers 200 with a body matching REGEX.
wait_http() {
    local name=$1 url=$2 re=$3 i body
    for ((i = 0; i < 200; i++)); do
        if body=$(curl -fsS --max-time 1 "$url" 2>/dev/null) && [[ $body =~ $re ]]; then
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
SP_LISTEN=$(pick_port)
SP_ADMIN=$(pick_port)
NX_LISTEN=$(pick_port)

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

mkdir -p "$WORK/backends/tmp" "$WORK/nginx-proxy/tmp"
{
    cat <<EOF
worker_processes 1;
pid backends.pid;
error_log $WORK/backends-error.log warn;
events { worker_connections 4096; }
http {
$(nginx_common)
EOF
    for ((k = 1; k <= NBACKENDS; k++)); do
        cat <<EOF
    server {
        listen 127.0.0.1:${BACKEND_PORTS[k-1]} backlog=4096;
        location / { return 200 "backend-$k\n"; }
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
} >"$WORK/backends/nginx.conf"

{
    cat <<EOF
worker_processes 1;
pid proxy.pid;
error_log $WORK/nginx-proxy-error.log warn;
events { worker_connections 4096; }
http {
$(nginx_common)
    upstream bench {
        hash \$request_uri consistent;
EOF
    for ((k = 1; k <= NBACKENDS; k++)); do
        echo "        server 127.0.0.1:${BACKEND_PORTS[k-1]};"
    done
    cat <<EOF
        keepalive 512;
        keepalive_requests 1000000;
        keepalive_timeout 300s;
    }
    server {
        listen 127.0.0.1:$NX_LISTEN backlog=4096;
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
        }
    }
}
EOF
} >"$WORK/nginx-proxy/nginx.conf"

{
    cat <<EOF
[server]
listen = "127.0.0.1:$SP_LISTEN"
admin = "127.0.0.1:$SP_ADMIN"
workers = 1

[services.bench]
instances = [
EOF
    for ((k = 1; k <= NBACKENDS; k++)); do
        echo "    { host = \"backend$k.bench\", addr = \"127.0.0.1:${BACKEND_PORTS[k-1]}\" },"
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
} >"$WORK/shardproxy.toml"

"$NGINX" -t -q -e "$WORK/backends-error.log" -p "$WORK/backends/" -c "$WORK/backends/nginx.conf" \
    || die "backend nginx config rejected ($WORK/backends/nginx.conf)"
"$NGINX" -t -q -e "$WORK/nginx-proxy-error.log" -p "$WORK/nginx-proxy/" -c "$WORK/nginx-proxy/nginx.conf" \
    || die "proxy nginx config rejected ($WORK/nginx-proxy/nginx.conf)"

# --- start ----------------------------------------------------------------------------

log "work dir $WORK; backends on ${BACKEND_PORTS[*]} (status $BACKEND_STATUS), shardproxy :$SP_LISTEN, nginx :$NX_LISTEN"

start_group backends "$LOAD_CPU" "$NGINX" -e "$WORK/backends-error.log" -p "$WORK/backends/" \
    -c "$WORK/backends/nginx.conf" -g 'daemon off;'
PG_BACKENDS=$STARTED
for ((k = 1; k <= NBACKENDS; k++)); do
    wait_tcp backends "$PG_BACKENDS" "${BACKEND_PORTS[k-1]}"
done
wait_tcp backends "$PG_BACKENDS" "$BACKEND_STATUS"
for ((k = 1; k <= NBACKENDS; k++)); do
    wait_http "backend $k" "http://127.0.0.1:${BACKEND_PORTS[k-1]}/" "^backend-$k"
done

start_group shardproxy "$PROXY_CPU" env RUST_LOG="$SHARDPROXY_LOG" "$SHARDPROXY" run --config "$WORK/shardproxy.toml"
PG_A=$STARTED
start_group nginx-proxy "$PROXY_CPU" "$NGINX" -e "$WORK/nginx-proxy-error.log" -p "$WORK/nginx-proxy/" \
    -c "$WORK/nginx-proxy/nginx.conf" -g 'daemon off;'
PG_B=$STARTED
wait_tcp shardproxy "$PG_A" "$SP_LISTEN"
wait_tcp nginx-proxy "$PG_B" "$NX_LISTEN"
wait_http shardproxy "http://127.0.0.1:$SP_LISTEN/k/0" '^backend-[0-9]+'
wait_http nginx-proxy "http://127.0.0.1:$NX_LISTEN/k/0" '^backend-[0-9]+'

# pinning as the kernel sees it (every thread of every process of the group)
affinity_of_group() {
    local pg=$1 f tid out=""
    for f in /proc/[0-9]*/stat; do
        [[ $(pgrp_of "${f//[^0-9]/}") == "$pg" ]] || continue
        for tid in /proc/${f//[^0-9]/}/task/*; do
            out+=" $(taskset -cp "${tid##*/}" 2>/dev/null | awk '{print $NF}')"
        done
    done
    tr ' ' '\n' <<<"$out" | grep -v '^$' | sort -u | paste -sd, -
}

# key distribution over the backends, 1000 keys through each contender on one
# keep-alive connection (curl URL globbing)
distribution() {
    curl -fsS "http://127.0.0.1:$1/k/[0-999]" | sort | uniq -c | awk '{ printf "%s%s=%s", sep, $2, $1; sep = " " }'
}
DIST_A=$(distribution "$SP_LISTEN")
DIST_B=$(distribution "$NX_LISTEN")
log "key distribution, 1000 keys: shardproxy: $DIST_A; nginx: $DIST_B"

# --- measurement helpers ---------------------------------------------------------------------

# group_ticks PGID: utime+stime (clock ticks) of every live process in the group
group_ticks() {
    # processes come and go between the glob and the read: ignore cat's status
    { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v pg="$1" '
        { sub(/^.*\) /, ""); if ($3 == pg) t += $12 + $13 }
        END { print t + 0 }'
}
# self_child_ticks: cutime+cstime of this shell (children it has waited for: wrk)
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
# pooled_conns: established connections to the backends, by owner
pooled_conns() {
    local filter="" p
    for p in "${BACKEND_PORTS[@]}"; do filter+="${filter:+ or }dport = :$p"; done
    ss -Htnp state established "( $filter )" 2>/dev/null | awk '
        /"shardproxy"/ { a++ } /"nginx"/ { b++ } END { printf "%d %d\n", a, b }'
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
printf 'round\tslot\tcontender\treq_s\trequests\tduration_s\tp50_us\tp90_us\tp99_us\tp999_us\tmax_us\terrors\terr_detail\tcpu_s\tcpu_us_per_req\tcpu_pct\tnew_backend_conns\tbackend_requests\tpooled_after\tcore_proxy_busy_pct\tcore_load_busy_pct\tsteal_pct\tother_cpu_pct\tmid_new_backend_conns\tmid_window_s\n' >"$RESULTS"

# run_one ROUND SLOT CONTENDER DURATION: one wrk run, one TSV row (ROUND 0 = warm-up)
run_one() {
    local round=$1 slot=$2 who=$3 dur=$4 port pg out
    if [[ $who == shardproxy ]]; then port=$SP_LISTEN pg=$PG_A; else port=$NX_LISTEN pg=$PG_B; fi
    out=$WORK/wrk-r$round-$slot-$who.txt
    kill -0 "$pg" 2>/dev/null || die "$who (pid $pg) is not running"
    wait_quiet

    local st0 ta0 tb0 tk0 tw0 cp0 cl0 call0
    st0=$(backend_status)
    ta0=$(group_ticks "$PG_A"); tb0=$(group_ticks "$PG_B"); tk0=$(group_ticks "$PG_BACKENDS")
    tw0=$(self_child_ticks)
    cp0=$(cpu_ticks "$PROXY_CPU"); cl0=$(cpu_ticks "$LOAD_CPU"); call0=$(cpu_ticks all)

    LOADTEST_KEYS=$KEYS taskset -c "$LOAD_CPU" wrk -t"$THREADS" -c"$CONNS" -d"$dur" --latency \
        -s "$LUA" "http://127.0.0.1:$port/" >"$out" 2>&1 &
    WRK_PID=$!
    local secs m0="" m1="" mid_window=0
    # steady state: backend connections opened between 1 s after the start
    # and 1 s before the end (away from wrk's connects and its abrupt close)
    secs=$(dur_secs "$dur")
    if ((secs >= 4)); then
        sleep 1
        m0=$(backend_status)
        sleep $((secs - 2))
        m1=$(backend_status)
        mid_window=$((secs - 2))
    fi
    if ! wait "$WRK_PID"; then
        WRK_PID=
        die "wrk failed against $who: $(tail -n 5 "$out")"
    fi
    WRK_PID=

    local st1 ta1 tb1 tk1 tw1 cp1 cl1 call1 pooled
    ta1=$(group_ticks "$PG_A"); tb1=$(group_ticks "$PG_B"); tk1=$(group_ticks "$PG_BACKENDS")
    tw1=$(self_child_ticks)
    cp1=$(cpu_ticks "$PROXY_CPU"); cl1=$(cpu_ticks "$LOAD_CPU"); call1=$(cpu_ticks all)
    st1=$(backend_status)
    pooled=$(pooled_conns)
    kill -0 "$pg" 2>/dev/null || die "$who (pid $pg) died during the run; see $WORK/$who.log"

    local line
    line=$(grep '^RESULT ' "$out") || die "no RESULT line from wrk: $(tail -n 5 "$out")"
    awk -v line="$line" -v round="$round" -v slot="$slot" -v who="$who" -v hz="$CLK_TCK" \
        -v st0="$st0" -v st1="$st1" -v pooled="$pooled" -v m0="$m0" -v m1="$m1" -v mid_window="$mid_window" \
        -v ta="$((ta1 - ta0))" -v tb="$((tb1 - tb0))" -v tk="$((tk1 - tk0))" -v tw="$((tw1 - tw0))" \
        -v cp0="$cp0" -v cp1="$cp1" -v cl0="$cl0" -v cl1="$cl1" -v call0="$call0" -v call1="$call1" '
    BEGIN {
        n = split(line, kv, " ")
        for (i = 2; i <= n; i++) { split(kv[i], p, "="); r[p[1]] = p[2] }
        dur = r["duration_us"] / 1e6
        rps = r["requests"] / dur
        errors = r["err_connect"] + r["err_read"] + r["err_write"] + r["err_status"] + r["err_timeout"]
        detail = sprintf("connect=%d,read=%d,write=%d,status=%d,timeout=%d", r["err_connect"], r["err_read"], r["err_write"], r["err_status"], r["err_timeout"])
        mine = (who == "shardproxy") ? ta : tb
        cpu_s = mine / hz
        cpu_per_req = r["requests"] ? cpu_s * 1e6 / r["requests"] : 0
        split(st0, s0, " "); split(st1, s1, " ")
        # minus the status requests themselves: st1, and m0 and m1 if taken
        polls = 1 + (mid_window > 0 ? 2 : 0)
        new_conns = s1[1] - s0[1] - polls
        backend_reqs = s1[2] - s0[2] - polls
        if (mid_window > 0) { split(m0, x0, " "); split(m1, x1, " "); mid_new = x1[1] - x0[1] - 1 } else mid_new = "na"
        split(pooled, pc, " "); pooled_mine = (who == "shardproxy") ? pc[1] : pc[2]
        split(cp0, a0, " "); split(cp1, a1, " "); split(cl0, b0, " "); split(cl1, b1, " ")
        split(call0, c0, " "); split(call1, c1, " ")
        win = dur * hz                         # ticks of one CPU over the wrk run

        core_proxy = 100 * (a1[1] - a0[1]) / win
        core_load = 100 * (b1[1] - b0[1]) / win
        steal = 100 * (c1[2] - c0[2]) / win
        other = 100 * ((c1[1] - c0[1]) - ta - tb - tk - tw) / win
        printf "%s\t%s\t%s\t%.0f\t%d\t%.3f\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%.2f\t%.2f\t%.1f\t%d\t%d\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t%s\t%d\n",
            round, slot, who, rps, r["requests"], dur, r["p50_us"], r["p90_us"], r["p99_us"], r["p999_us"], r["max_us"],
            errors, detail, cpu_s, cpu_per_req, 100 * cpu_s / dur, new_conns, backend_reqs, pooled_mine,
            core_proxy, core_load, steal, other, mid_new, mid_window
    }' >>"$RESULTS"
    tail -n 1 "$RESULTS" | awk -F'\t' '{ printf "%-10s round %s: %s req/s, p50 %s us, p99 %s us, errors %s, %s CPU us/req (%s%% of a core), new backend conns %s (mid-run %s), other CPU %s%%\n", $3, ($1 == 0 ? "warm-up" : $1), $4, $7, $9, $12, $15, $16, $17, $24, $23 }' >&2
}

DISCARDED=$WORK/discarded.tsv
: >"$DISCARDED"
# measure ROUND SLOT CONTENDER DURATION: run_one, redone (up to REDO_DISTURBED
# times) while other work on the machine disturbed it
measure() {
    local attempt other
    for ((attempt = 0; ; attempt++)); do
        run_one "$@"
        other=$(tail -n 1 "$RESULTS" | cut -f23)
        if ((attempt < REDO_DISTURBED)) && awk -v o="$other" -v l="$DISTURBED_PCT" 'BEGIN { exit !(o > l) }'; then
            tail -n 1 "$RESULTS" >>"$DISCARDED"
            sed -i '$d' "$RESULTS"
            log "$3 round $1 disturbed (other CPU $other% of a core): discarded, redoing"
            continue
        fi
        return 0
    done
}

# --- runs ----------------------------------------------------------------------------------

log "warm-up: $WARMUP per contender (not counted)"
run_one 0 1 shardproxy "$WARMUP"
run_one 0 2 nginx "$WARMUP"
for ((r = 1; r <= ROUNDS; r++)); do
    if ((r % 2)); then order=(shardproxy nginx); else order=(nginx shardproxy); fi
    log "round $r/$ROUNDS: ${order[*]} ($DURATION each)"
    measure "$r" 1 "${order[0]}" "$DURATION"
    measure "$r" 2 "${order[1]}" "$DURATION"
done

AFF_A=$(affinity_of_group "$PG_A"); AFF_B=$(affinity_of_group "$PG_B"); AFF_K=$(affinity_of_group "$PG_BACKENDS")
METRICS=$(curl -fsS --max-time 2 "http://127.0.0.1:$SP_ADMIN/metrics" 2>/dev/null || true)
SP_LOG_LINES=$(wc -l <"$WORK/shardproxy.log")
NX_ERR_LINES=$(grep -cv '^\s*$' "$WORK/nginx-proxy-error.log" 2>/dev/null || true)
BK_ERR_LINES=$(grep -cv '^\s*$' "$WORK/backends-error.log" 2>/dev/null || true)

# --- report -----------------------------------------------------------------------------------

GIT_REV=$(git -C "$REPO" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$REPO" status --porcelain -- . ':!loadtest' 2>/dev/null) ]]; then
    GIT_REV+=" (working tree has uncommitted changes)"
fi
SP_VERSION=$("$SHARDPROXY" --version 2>&1 | head -n 1)
SP_SHA=$(sha256sum "$SHARDPROXY" | cut -c1-16)
SP_MTIME=$(date -u -r "$SHARDPROXY" '+%Y-%m-%dT%H:%M:%SZ')
NGINX_VERSION=$("$NGINX" -v 2>&1)
WRK_VERSION=$({ wrk -v 2>&1 || true; } | head -n 1 | sed 's/ *$//')
CPU_MODEL=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
KERNEL=$(uname -sr)

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) { print "nan"; exit } if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { # col CONTENDER FIELD: that column over the counted runs
    awk -F'\t' -v who="$1" -v f="$2" 'NR > 1 && $1 > 0 && $3 == who { print $f }' "$RESULTS"
}
stat3() { # median min max of a column
    local vals
    vals=$(col "$1" "$2")
    printf '%s %s %s' "$(median <<<"$vals")" "$(sort -g <<<"$vals" | head -n 1)" "$(sort -g <<<"$vals" | tail -n 1)"
}
fmt_ms() { awk -v us="$1" 'BEGIN { printf "%.3f", us / 1000 }'; }
sum_col() { col "$1" "$2" | awk '{ s += $1 } END { print s + 0 }'; }

report() {
    local who rps rmin rmax p50 p99 cpu pct errs newc midc
    echo "# shardproxy vs nginx: pass-through, consistent hash, $NBACKENDS backends"
    echo
    echo "Generated by \`loadtest/compare.sh\` on $(date -u '+%Y-%m-%d %H:%M:%S UTC')."
    echo "$ROUNDS rounds x $DURATION per contender (order alternating A B / B A), after one uncounted $WARMUP warm-up run each;"
    echo "wrk \`-t$THREADS -c$CONNS --latency\`, keep-alive, GET /k/<uniform 0..$((KEYS - 1))>."
    echo
    echo "## Summary (counted rounds)"
    echo
    echo "| contender | req/s median | req/s min | req/s max | p50 ms (median) | p99 ms (median) | CPU µs/request (median) | contender CPU % of a core (median) | wrk errors (total) | new backend conns (total) | of which mid-run |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for who in shardproxy nginx; do
        read -r rps rmin rmax <<<"$(stat3 "$who" 4)"
        p50=$(median <<<"$(col "$who" 7)"); p99=$(median <<<"$(col "$who" 9)")
        cpu=$(median <<<"$(col "$who" 15)"); pct=$(median <<<"$(col "$who" 16)")
        errs=$(sum_col "$who" 12); newc=$(sum_col "$who" 17); midc=$(sum_col "$who" 24)
        printf '| %s | %.0f | %.0f | %.0f | %s | %s | %.2f | %.1f | %d | %d | %d |\n' \
            "$who" "$rps" "$rmin" "$rmax" "$(fmt_ms "$p50")" "$(fmt_ms "$p99")" "$cpu" "$pct" "$errs" "$newc" "$midc"
    done
    local disturbed
    disturbed=$(awk -F'\t' -v lim="$DISTURBED_PCT" 'NR > 1 && $1 > 0 && $23 > lim { printf "%s%s round %s (%s%%)", sep, $3, $1, $23; sep = ", " }' "$RESULTS")
    echo
    if [[ -n $disturbed ]]; then
        echo "**Caution:** other work on the machine used more than $DISTURBED_PCT% of a core during: $disturbed."
        echo "Those figures are not clean; rerun when the machine is idle."
    else
        echo "No counted run was disturbed by other work on the machine (other CPU <= $DISTURBED_PCT% of a core)."
    fi
    echo
    echo "## shardproxy / nginx, per round"
    echo
    echo "| round | req/s ratio | CPU µs/request ratio | p50 ratio | p99 ratio |"
    echo "|---|---:|---:|---:|---:|"
    awk -F'\t' 'NR > 1 && $1 > 0 { k = $1 SUBSEP $3; rps[k] = $4; cpu[k] = $15; p50[k] = $7; p99[k] = $9; if ($1 > n) n = $1 }
        END {
            for (i = 1; i <= n; i++) {
                a = i SUBSEP "shardproxy"; b = i SUBSEP "nginx"
                printf "%d\t%.3f\t%.3f\t%.3f\t%.3f\n", i, rps[a] / rps[b], (cpu[b] > 0 ? cpu[a] / cpu[b] : 0), (p50[b] > 0 ? p50[a] / p50[b] : 0), (p99[b] > 0 ? p99[a] / p99[b] : 0)
            }
        }' "$RESULTS" >"$WORK/ratios.tsv"
    awk -F'\t' '{ printf "| %d | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5 }' "$WORK/ratios.tsv"
    printf '| **median** | **%.3f** | **%.3f** | **%.3f** | **%.3f** |\n' \
        "$(cut -f2 "$WORK/ratios.tsv" | median)" "$(cut -f3 "$WORK/ratios.tsv" | median)" \
        "$(cut -f4 "$WORK/ratios.tsv" | median)" "$(cut -f5 "$WORK/ratios.tsv" | median)"
    echo
    echo "## Every run"
    echo
    echo "Round 0 is the warm-up (not counted). *core N busy*: /proc/stat busy share of that CPU during the run;"
    echo "*other CPU*: machine-wide busy time not accounted to the contenders, the backends or wrk (approximate: includes"
    echo "interrupt time and everything else running on the machine), in % of one core."
    echo
    echo "| round | contender | req/s | p50 ms | p99 ms | p99.9 ms | max ms | errors | CPU s | CPU µs/req | contender CPU % | new backend conns | mid-run | backend requests | pooled backend conns after | core $PROXY_CPU busy % | core $LOAD_CPU busy % | steal % | other CPU % |"
    echo "|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    awk -F'\t' -v lim="$DISTURBED_PCT" 'NR > 1 {
        e = ($12 == 0) ? "0" : "**" $12 "** (" $13 ")"
        o = ($23 > lim) ? "**" $23 "** (disturbed)" : $23
        printf "| %s | %s | %s | %.3f | %.3f | %.3f | %.3f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
            ($1 == 0 ? "warm-up" : $1), $3, $4, $7 / 1000, $9 / 1000, $10 / 1000, $11 / 1000, e, $14, $15, $16, $17, $24, $18, $19, $20, $21, $22, o
    }' "$RESULTS"
    echo
    if [[ -s $DISCARDED ]]; then
        echo "Discarded because other work on the machine used more than $DISTURBED_PCT% of a core during them (each was redone):"
        echo
        awk -F'\t' '{ printf "- round %s, %s: %s req/s, p99 %.3f ms, %s CPU µs/req, other CPU %s%%\n", $1, $3, $4, $9 / 1000, $15, $23 }' "$DISCARDED"
    else
        echo "No run was discarded as disturbed."
    fi
    echo
    echo "## Connection reuse to the backends"
    echo
    echo "*new backend conns* is the change of the backends' stub_status \`accepts\` over the run (minus the status"
    echo "requests themselves): TCP connections the contender opened to the backends during the run. With working"
    echo "keep-alive it is ~0 after the warm-up. *backend requests* is the change of \`requests\` (it should match wrk's"
    echo "request count, plus up to $CONNS requests in flight when wrk stopped). *pooled backend conns after* counts"
    echo "the contender's ESTABLISHED sockets to the backend ports (\`ss -tnp\`) right after the run. *mid-run*"
    echo "counts only the connections opened between 1 s after wrk started and 1 s before it stopped: the steady"
    echo "state, away from the burst of $CONNS client connects at the start and their abrupt close at the end."
    echo
    for who in shardproxy nginx; do
        printf -- '- %s: new backend connections per counted run: %s (mid-run, %s s windows: %s); warm-up: %s; pooled after each counted run: %s.\n' "$who" \
            "$(col "$who" 17 | paste -sd, -)" \
            "$(col "$who" 25 | head -n 1)" \
            "$(col "$who" 24 | paste -sd, -)" \
            "$(awk -F'\t' -v w="$who" 'NR > 1 && $1 == 0 && $3 == w { print $17 }' "$RESULTS")" \
            "$(col "$who" 19 | paste -sd, -)"
    done
    echo
    echo "## Key distribution"
    echo
    echo "1000 keys (/k/0 .. /k/999) through each contender, by backend that answered:"
    echo
    echo "- shardproxy: $DIST_A"
    echo "- nginx: $DIST_B"
    echo
    echo "## Setup"
    echo
    echo "- date: $(date -u '+%Y-%m-%dT%H:%M:%SZ'); host: $(nproc) CPUs ($NCPU online), $CPU_MODEL; $KERNEL"
    echo "- shardproxy: $SHARDPROXY ($SP_VERSION; git $GIT_REV; binary sha256 $SP_SHA..., built $SP_MTIME)"
    echo "- $NGINX_VERSION ($NGINX); $WRK_VERSION"
    echo "- pinning (taskset): contender on CPU $PROXY_CPU; wrk and the backends on CPU $LOAD_CPU."
    echo "  Affinity observed after the runs: shardproxy threads: $AFF_A; nginx proxy processes: $AFF_B; backends: $AFF_K"
    echo "- backends: one nginx, \`worker_processes 1\`, $NBACKENDS \`server\`s on 127.0.0.1:${BACKEND_PORTS[*]},"
    echo "  each \`return 200 \"backend-K\\n\"\`; access_log off; keepalive_timeout 300s; keepalive_requests 1000000."
    echo "- shardproxy: \`[server] workers = 1\`; service \`bench\`: $NBACKENDS static instances, derived tokens"
    echo "  (virtual_nodes = $VNODES), slaves = 1, key = \"$KEY_SOURCE\"; RUST_LOG=$SHARDPROXY_LOG."
    echo "- nginx proxy: \`worker_processes 1\`; \`upstream { hash \$request_uri consistent; ... keepalive 512; keepalive_requests 1000000; }\`;"
    echo "  \`proxy_http_version 1.1; proxy_set_header Connection \"\"\`; Host kept, X-Forwarded-For/-Proto and Via set"
    echo "  (the header work shardproxy does); access_log off; client keepalive_requests 1000000."
    echo "- commands:"
    echo
    echo '```'
    echo "taskset -c $LOAD_CPU nginx -p BACKENDS/ -c BACKENDS/nginx.conf -g 'daemon off;'"
    echo "taskset -c $PROXY_CPU env RUST_LOG=$SHARDPROXY_LOG shardproxy run --config shardproxy.toml"
    echo "taskset -c $PROXY_CPU nginx -p PROXY/ -c PROXY/nginx.conf -g 'daemon off;'"
    echo "LOADTEST_KEYS=$KEYS taskset -c $LOAD_CPU wrk -t$THREADS -c$CONNS -d$DURATION --latency -s loadtest/keys.lua http://127.0.0.1:PORT/"
    echo '```'
    echo
    echo "- shardproxy log lines (level $SHARDPROXY_LOG): $SP_LOG_LINES; nginx proxy error log lines: ${NX_ERR_LINES:-0};"
    echo "  backends error log lines: ${BK_ERR_LINES:-0}."
    echo "- raw per-run data: \`$(basename "${OUT%.md}").tsv\` next to this file (discarded runs: round prefixed \`discarded:\`)."
    if [[ -n $METRICS ]]; then
        echo
        echo "<details><summary>shardproxy /metrics after the runs (non-zero, non-comment lines)</summary>"
        echo
        echo '```'
        grep -v '^#' <<<"$METRICS" | awk '$NF != 0' | head -n 60
        echo '```'
        echo
        echo "</details>"
    fi
}

mkdir -p "$(dirname "$OUT")"
report | tee "$OUT"
{ cat "$RESULTS"; sed 's/^/discarded:/' "$DISCARDED"; } >"${OUT%.md}.tsv"

# warn loudly (stderr and exit status) on wrk errors
TOTAL_ERRORS=$(awk -F'\t' 'NR > 1 { s += $12 } END { print s + 0 }' "$RESULTS")
if ((TOTAL_ERRORS > 0)); then
    log "WARNING: wrk reported $TOTAL_ERRORS errors (non-2xx/3xx or socket errors); see the table"
    KEEP_WORK=1
    exit 2
fi
log "results written to $OUT and ${OUT%.md}.tsv"
