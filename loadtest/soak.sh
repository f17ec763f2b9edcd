#!/usr/bin/env bash
# loadtest/soak.sh: the soak test. k6 (loadtest/k6.js) at a steady rate for
# minutes against shardproxy reading its ring from a real BIND server, while
# backends are SIGKILLed and restarted and the ring changes in DNS; asserts
# that no request failed and that the proxy's memory stays flat. See the
# Soak section of loadtest/README.md.
#
#   loadtest/soak.sh                         # 300 req/s for 5 min, 4 backends
#   DURATION=30m RATE=500 loadtest/soak.sh
#
# The setup (everything on 127.0.0.1, free ports, a mktemp -d work directory):
#   named        BIND, authoritative for soak.test, dynamic updates from 127.0.0.1
#   backends     BACKENDS processes of loadtest/backend.py (nodeK.soak.test), each
#                its own process group, and one spare for the joins
#   shardproxy   `shardproxy run`: [dns] servers = the named, refresh 1s; one
#                service over SRV _soak._http.soak.test, slaves=1 redundancy=host
# Every CHAOS_EVERY seconds of the load, the next of these disturbances:
#   kill         SIGKILL a backend (in turn), start it again CHAOS_DOWN s later
#   join         start the spare backend, publish its SRV and tokens (nsupdate)
#   retoken      give a backend one more token, or take it away again
#   leave        remove the spare's records, then SIGKILL it once the proxy
#                has dropped it
# Each DNS change waits until the proxy's /ring shows it (at most RING_TIMEOUT s).
#
# Environment (defaults in brackets; those of k6.js pass through to it):
#   DURATION [5m] RATE [300] KEYS [100000] DIST [uniform] ... (k6.js)
#   P99_MS [2000]          k6's latency threshold (the soak is about failures)
#   BACKENDS [4]           backends in the ring at the start (at least 2)
#   CHAOS_EVERY [20]       seconds between disturbances
#   CHAOS_DOWN [5]         seconds a killed backend stays down
#   RING_TIMEOUT [30]      seconds for the proxy to see a DNS change
#   WARMUP [60]            seconds of load before the memory baseline
#   RSS_EVERY [5]          seconds between samples of the proxy's VmRSS
#   RSS_TOLERANCE_KB [16384]  the most the RSS may grow from the baseline to the end
#   SHARDPROXY, K6, SUMMARY_JSON, SHARDPROXY_LOG [warn], READY_TIMEOUT [30],
#   KEEP_WORK [0]          as for loadtest/run.sh
#
# Exit status: 0 passed; 1 setup failed or a disturbance could not be carried
# out; 3 requests failed; 4 the proxy's memory grew past RSS_TOLERANCE_KB;
# otherwise k6's own (99: a threshold was crossed).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
LOG_TAG=soak
# shellcheck source=loadtest/lib.sh
source "$HERE/lib.sh"

case ${1:-} in
    "") ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see --help); settings are environment variables" ;;
esac

export DURATION=${DURATION:-5m}
export RATE=${RATE:-300}
export KEY_PREFIX=${KEY_PREFIX:-/k/}
export P99_MS=${P99_MS:-2000}
# Every request is a GET, which the proxy may retry: none may fail.
export MAX_ERROR_RATE=0
BACKENDS=${BACKENDS:-4}
CHAOS_EVERY=${CHAOS_EVERY:-20}
CHAOS_DOWN=${CHAOS_DOWN:-5}
RING_TIMEOUT=${RING_TIMEOUT:-30}
WARMUP=${WARMUP:-60}
RSS_EVERY=${RSS_EVERY:-5}
RSS_TOLERANCE_KB=${RSS_TOLERANCE_KB:-16384}
READY_TIMEOUT=${READY_TIMEOUT:-30}
export RUST_LOG=${SHARDPROXY_LOG:-warn}
for name in BACKENDS CHAOS_EVERY CHAOS_DOWN RING_TIMEOUT WARMUP RSS_EVERY RSS_TOLERANCE_KB READY_TIMEOUT; do
    [[ ${!name} =~ ^[0-9]+$ ]] || die "$name must be a whole number"
done
((BACKENDS >= 2)) || die "BACKENDS must be at least 2 (every key needs a replica)"
((CHAOS_EVERY >= 1 && RSS_EVERY >= 1)) || die "CHAOS_EVERY and RSS_EVERY must be at least 1"
DURATION_MS=$(duration_ms "$DURATION") || die "DURATION=$DURATION: expected a duration such as 5m or 1m30s"
((WARMUP * 1000 < DURATION_MS)) || die "WARMUP ($WARMUP s) must be shorter than DURATION ($DURATION)"

export PATH=$PATH:/usr/sbin
require_tools curl python3 setsid named nsupdate
ensure_shardproxy
ensure_k6
setup_work shardproxy-soak
SUMMARY_JSON=${SUMMARY_JSON:-$WORK/summary.json}
[[ $SUMMARY_JSON == /* ]] || SUMMARY_JSON=$PWD/$SUMMARY_JSON

# free_ports N: N loopback ports free (for now) for both TCP and UDP.
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
found, held = [], []
while len(found) < int(sys.argv[1]):
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        tcp.bind(("127.0.0.1", udp.getsockname()[1]))
    except OSError:
        udp.close()
        continue
    held += [udp, tcp]
    found.append(udp.getsockname()[1])
print(*found)
EOF
}

# --- the ring ------------------------------------------------------------------------

ZONE=soak.test
SRV=_soak._http.$ZONE
SPARE=$((BACKENDS + 1))
read -r -a PORTS < <(free_ports $((SPARE + 3)))
DNS_PORT=${PORTS[SPARE]}
PROXY=127.0.0.1:${PORTS[SPARE + 1]}
ADMIN_ADDR=127.0.0.1:${PORTS[SPARE + 2]}
ADMIN=http://$ADMIN_ADDR
BASE_URL=http://$PROXY
SERVICE=soak

# Backend K (1..SPARE): node K, PORT[K], its tokens (TOKENS[K], space
# separated), its process group (PGID[K], empty when not running), and
# whether its SRV record is published (IN_RING[K]).
declare -a PORT TOKENS PGID IN_RING
for ((k = 1; k <= SPARE; k++)); do
    PORT[k]=${PORTS[k - 1]}
    PGID[k]=
    IN_RING[k]=$((k < SPARE))
done
mapfile -t balanced < <("$SHARDPROXY" ring plan --balanced "$BACKENDS")
((${#balanced[@]} == BACKENDS)) || die "shardproxy ring plan --balanced $BACKENDS printed ${#balanced[@]} tokens"
for ((k = 1; k <= BACKENDS; k++)); do TOKENS[k]=${balanced[k - 1]}; done

host() { echo "node$1.$ZONE."; }

# published_zone: the ring as published now, as a zone file (`ring plan` reads it).
published_zone() {
    local k
    # shellcheck disable=SC2016 # $ORIGIN and $TTL are zone-file directives
    printf '$ORIGIN %s.\n$TTL 1\n' "$ZONE"
    printf '@ IN SOA localhost. hostmaster.%s. 1 3600 600 86400 1\n@ IN NS localhost.\n' "$ZONE"
    printf 'config.%s. IN TXT "slaves=1 redundancy=host"\n' "$SRV"
    for ((k = 1; k <= SPARE; k++)); do
        printf '%s IN A 127.0.0.1\n' "$(host "$k")"
        ((IN_RING[k])) || continue
        printf '%s. IN SRV 10 50 %s %s\n' "$SRV" "${PORT[k]}" "$(host "$k")"
        printf 'tokens.%s.%s IN TXT "%s"\n' "${PORT[k]}" "$(host "$k")" "${TOKENS[k]}"
    done
}

# expected_ring: "host:port token..." per instance in the ring, sorted, as
# ring_seen prints the proxy's /ring.
expected_ring() {
    local k
    for ((k = 1; k <= SPARE; k++)); do
        ((IN_RING[k])) || continue
        echo "node$k.$ZONE:${PORT[k]} $(tr ' ' '\n' <<<"${TOKENS[k]}" | sort | tr '\n' ' ' | sed 's/ $//')"
    done | sort
}

ring_seen() {
    curl -s --max-time 2 "$ADMIN/ring" | python3 -c '
import json, sys
for s in json.load(sys.stdin)["services"]:
    if s["service"] == sys.argv[1]:
        print("\n".join(sorted("%s:%d %s" % (i["host"].rstrip("."), i["port"], " ".join(sorted(i["tokens"]))) for i in s["instances"])))' "$SERVICE"
}
ring_is_published() { [[ $(ring_seen) == "$(expected_ring)" ]]; }

# nsupdate_send COMMAND...: one update message to named.
nsupdate_send() {
    printf 'server 127.0.0.1 %s\nzone %s.\n%s\nsend\n' "$DNS_PORT" "$ZONE" "$(printf '%s\n' "$@")" \
        | nsupdate -t 10 >>"$WORK/nsupdate.log" 2>&1
}

# --- the setup -----------------------------------------------------------------------

published_zone >"$WORK/$ZONE.zone"
cat >"$WORK/named.conf" <<EOF
options {
    directory "$WORK";
    pid-file "$WORK/named.pid";
    session-keyfile "$WORK/session.key";
    managed-keys-directory "$WORK";
    listen-on port $DNS_PORT { 127.0.0.1; };
    listen-on-v6 { none; };
    recursion no;
    dnssec-validation no;
    notify no;
    allow-query { any; };
};
controls { };
zone "$ZONE" {
    type primary;
    file "$WORK/$ZONE.zone";
    journal "$WORK/$ZONE.zone.jnl";
    allow-update { 127.0.0.1; };
};
EOF
log "starting named (BIND $(named -v 2>/dev/null | awk '{ print $2 }')) on 127.0.0.1:$DNS_PORT"
NAMED_PID=$(start_group named named -g -4 -c "$WORK/named.conf")
wait_for "named loading $ZONE" "$READY_TIMEOUT" "$NAMED_PID" grep -q 'running$' "$WORK/named.log" || exit 1

# start_backend K: backend K in its own process group, listening.
start_backend() {
    PGID[$1]=$(start_group "backend$1" python3 "$HERE/backend.py" 127.0.0.1 "${PORT[$1]}" "node$1.$ZONE")
    wait_for "backend $1 listening on 127.0.0.1:${PORT[$1]}" "$READY_TIMEOUT" "${PGID[$1]}" tcp_open "127.0.0.1:${PORT[$1]}"
}
# kill_backend K: SIGKILL backend K's process group; wait until it refuses connections.
kill_backend() {
    kill -KILL -- "-${PGID[$1]}" 2>/dev/null || { log "ERROR: cannot SIGKILL backend $1 (process group ${PGID[$1]})"; return 1; }
    wait "${PGID[$1]}" 2>/dev/null || true
    PGID[$1]=
    wait_for "backend $1 refusing connections" 5 "" bash -c "! (exec 3<>/dev/tcp/127.0.0.1/${PORT[$1]}) 2>/dev/null"
}
for ((k = 1; k <= BACKENDS; k++)); do start_backend "$k" || exit 1; done
log "backends node1..node$BACKENDS on ports ${PORT[*]:1:BACKENDS}; spare node$SPARE on ${PORT[SPARE]}"

cat >"$WORK/soak.toml" <<EOF
[server]
listen = "$PROXY"
admin = "$ADMIN_ADDR"

[dns]
servers = ["127.0.0.1:$DNS_PORT"]
refresh = "1s"

[services.$SERVICE]
srv = "$SRV"
key = "path"

[[routes]]
path_prefix = "/"
service = "$SERVICE"
EOF
log "starting shardproxy run --config $WORK/soak.toml"
PROXY_PID=$(start_group proxy "$SHARDPROXY" run --config "$WORK/soak.toml")
wait_for "$ADMIN/readyz answering 200" "$READY_TIMEOUT" "$PROXY_PID" http_ok "$ADMIN/readyz" || exit 1
wait_for "the proxy's ring matching the zone" "$RING_TIMEOUT" "$PROXY_PID" ring_is_published || exit 1
[[ $(cat "/proc/$PROXY_PID/comm" 2>/dev/null) == shardproxy ]] || die "process $PROXY_PID is not shardproxy: cannot sample its memory"
log "ready: proxy $BASE_URL, admin $ADMIN, ring $(curl -s "$ADMIN/ring" | python3 -c 'import json, sys; print(json.load(sys.stdin)["services"][0]["fingerprint"])')"

# --- disturbances --------------------------------------------------------------------

event() { printf '%s\t%s\n' "$((SECONDS - LOAD_T0))" "$*" >>"$WORK/events.tsv"; log "chaos: $*"; }
# wait_ring WHAT: until the proxy's ring is the one published.
wait_ring() {
    local t0=$SECONDS
    wait_for "the proxy seeing $1" "$RING_TIMEOUT" "$PROXY_PID" ring_is_published || return 1
    event "the proxy sees $1 after $((SECONDS - t0))s"
}

chaos_kill() {
    local k=$1
    kill_backend "$k" || return 1
    event "SIGKILLed node$k, down for ${CHAOS_DOWN}s"
    sleep "$CHAOS_DOWN"
    start_backend "$k" || return 1
    event "restarted node$k"
}

chaos_join() {
    local k=$SPARE line updates=()
    start_backend "$k" || return 1
    published_zone >"$WORK/published.zone"
    # ring plan prints the records to add: SRV and tokens TXT, absolute names.
    "$SHARDPROXY" ring plan --srv "$SRV" --zone "$WORK/published.zone" --add "node$k.$ZONE:${PORT[k]}" \
        >"$WORK/plan.out" 2>>"$WORK/plan.log" || { log "ERROR: ring plan failed"; return 1; }
    while read -r line; do
        [[ $line == tokens.* ]] && TOKENS[k]=$(sed 's/.*TXT //; s/"//g' <<<"$line")
        updates+=("update add $line")
    done < <(grep -E "^(${SRV//./\\.}\. |tokens\.)" "$WORK/plan.out")
    ((${#updates[@]} == 2)) || { log "ERROR: ring plan printed no SRV and tokens records: $(cat "$WORK/plan.out")"; return 1; }
    nsupdate_send "${updates[@]}" || { log "ERROR: nsupdate failed (join)"; return 1; }
    IN_RING[k]=1
    event "node$k joins with token ${TOKENS[k]}"
    wait_ring "node$k"
}

chaos_leave() {
    local k=$SPARE
    nsupdate_send "update delete $SRV. SRV 10 50 ${PORT[k]} $(host "$k")" \
        "update delete tokens.${PORT[k]}.$(host "$k") TXT" || { log "ERROR: nsupdate failed (leave)"; return 1; }
    IN_RING[k]=0
    event "node$k leaves"
    wait_ring "node$k gone" || return 1
    kill_backend "$k" || return 1
    event "SIGKILLed node$k"
}

# chaos_retoken K: backend K gets one more token (a tenth of the ring before
# its first: not a midpoint, which `ring plan` may have given the spare), or
# loses the one it got.
chaos_retoken() {
    local k=$1 first extra
    read -r first extra <<<"${TOKENS[k]}"
    if [[ -z ${extra:-} ]]; then
        extra=$(python3 -c 'import sys; t = int(sys.argv[1], 16); print("%032x" % ((t - 2**128 // 10) % 2**128))' "$first")
        TOKENS[k]="$first $extra"
    else
        TOKENS[k]=$first
    fi
    nsupdate_send "update delete tokens.${PORT[k]}.$(host "$k") TXT" \
        "update add tokens.${PORT[k]}.$(host "$k") 1 TXT \"${TOKENS[k]}\"" \
        || { log "ERROR: nsupdate failed (retoken)"; return 1; }
    event "node$k now has tokens ${TOKENS[k]}"
    wait_ring "node$k's tokens"
}

# chaos: disturbances in turn until STOP_AT (seconds since the load started).
chaos() {
    set +e
    local step=0 victim=1
    while ((SECONDS - LOAD_T0 + CHAOS_EVERY + CHAOS_DOWN + 5 < STOP_AT)); do
        sleep "$CHAOS_EVERY"
        case $((step % 4)) in
            0) chaos_kill "$victim" ;;
            1) chaos_join ;;
            2) chaos_retoken "$victim" ;;
            3) chaos_leave ;;
        esac || return 1
        ((step % 4 == 3)) && victim=$((victim % BACKENDS + 1))
        step=$((step + 1))
    done
    event "done: $step disturbances"
}

# sample_rss: the proxy's VmRSS (kB) every RSS_EVERY s, with the seconds since the load started.
sample_rss() {
    local rss
    while rss=$(awk '$1 == "VmRSS:" { print $2 }' "/proc/$PROXY_PID/status" 2>/dev/null) && [[ -n $rss ]]; do
        printf '%s\t%s\n' "$((SECONDS - LOAD_T0))" "$rss" >>"$WORK/rss.tsv"
        sleep "$RSS_EVERY"
    done
}

# --- the load ------------------------------------------------------------------------

: >"$WORK/events.tsv"
: >"$WORK/rss.tsv"
log "k6 run loadtest/k6.js: ${SCENARIO:-constant} $RATE req/s for $DURATION, ${KEYS:-100000} keys ${DIST:-uniform}, a disturbance every ${CHAOS_EVERY}s"
LOAD_T0=$SECONDS
STOP_AT=$((DURATION_MS / 1000))
sample_rss &
RSS_PID=$!
BG_PIDS+=("$RSS_PID")
(wait_first_request 60 || { log "ERROR: no request reached the proxy within 60s"; exit 1; }; chaos) &
CHAOS_PID=$!
BG_PIDS+=("$CHAOS_PID")
# shellcheck disable=SC2119 # no extra k6 arguments
run_k6
chaos_rc=0
wait "$CHAOS_PID" || chaos_rc=$?
kill -TERM "$RSS_PID" 2>/dev/null
wait "$RSS_PID" 2>/dev/null || true
BG_PIDS=()

# --- verdict -------------------------------------------------------------------------

print_proxy_metrics
read_summary
read -r rss_start rss_max rss_end rss_samples < <(awk -v warmup="$WARMUP" '
    $1 >= warmup && start == "" { start = $2 }
    { if ($2 > max) max = $2; end = $2; n++ }
    END { print start, max, end, n }' "$WORK/rss.tsv")
[[ -n $rss_start && -n $rss_end ]] || die "no memory sample after the ${WARMUP}s warm-up ($WORK/rss.tsv)"
rss_growth=$((rss_end - rss_start))
count() { grep -c -E "$1" "$WORK/events.tsv" || true; }
total=$(sed -n 's/.*done: \([0-9]*\) disturbances$/\1/p' "$WORK/events.tsv")
disturbances="${total:-?} (SIGKILL $(count 'SIGKILLed'), restart $(count restarted), join $(count joins), retoken $(count 'now has tokens'), leave $(count 'leaves$'))"
cat <<EOF
soak summary: $RATE req/s for $DURATION, $BACKENDS backends + 1 spare, a disturbance every ${CHAOS_EVERY}s
  requests      $requests, failed $failed, checks failed $checks_failed
  events        $disturbances
  proxy RSS     start ${rss_start} kB (after ${WARMUP}s), max ${rss_max} kB, end ${rss_end} kB: $((rss_growth >= 0 ? rss_growth : -rss_growth)) kB $( ((rss_growth >= 0)) && echo more || echo less) (tolerance ${RSS_TOLERANCE_KB} kB), ${rss_samples} samples
EOF

if ((chaos_rc != 0)); then
    die "a disturbance could not be carried out (see above); k6 exit status $k6_rc"
fi
if ((failed > 0 || checks_failed > 0)); then
    log "SOAK FAILED: $failed of $requests requests failed ($checks_failed checks failed)"
    KEEP_WORK=1
    exit 3
fi
if ((rss_growth > RSS_TOLERANCE_KB)); then
    log "SOAK FAILED: the proxy's RSS grew by $rss_growth kB after the warm-up (tolerance $RSS_TOLERANCE_KB kB; samples in $WORK/rss.tsv)"
    KEEP_WORK=1
    exit 4
fi
if ((k6_rc != 0)); then
    log "k6 exited with status $k6_rc$( ((k6_rc == 99)) && echo ' (thresholds crossed)')"
    exit "$k6_rc"
fi
log "soak passed: 0 failed requests of $requests, RSS ${rss_start} -> ${rss_end} kB (max ${rss_max})"
