#!/usr/bin/env bash
# loadtest/hot.sh: the hot-key drill, run as `loadtest/run.sh --hot` (or
# directly). The same k6 load (loadtest/k6.js, HOT_SHARE of it on one key)
# twice against `shardproxy run` over four backends that each serve at most
# SLOTS requests at once and take DELAY_MS each: first without load_bound,
# then with `load_bound = { factor = FACTOR, scope = SCOPE }`; then a
# summary comparing the two. See "The hot-key drill" in loadtest/README.md.
#
#   loadtest/run.sh --hot                         # 700 req/s for 20 s, 80% on /k/hot, twice
#   RATE=600 DURATION=30s loadtest/run.sh --hot
#   OUT=loadtest/results/hot-keys.md loadtest/run.sh --hot   # also write the summary there
#   loadtest/run.sh --hot -- --out json=/tmp/k6.json         # arguments after -- go to `k6 run`
#
# The setup (everything on 127.0.0.1, free ports, a mktemp -d work
# directory), started afresh for each of the two runs:
#   backends    BACKENDS processes of loadtest/backend.py (bK, host bK.hot.test),
#               --slots SLOTS --delay-ms DELAY_MS: capacity SLOTS / DELAY_MS each
#               (8 / 20 ms = 400 req/s); they count the requests for HOT_KEY
#   shardproxy  `shardproxy run`: service `hot` over the backends as static
#               instances, virtual_nodes = 160, slaves = SLAVES, key = "path";
#               the second run adds load_bound
# With the defaults the hot key's primary gets ~85% of the load (its 80%,
# plus its share of the other keys): 595 req/s for a capacity of 400, so
# without load_bound its queue grows for the whole run; its three instances
# have 1200 between them.
#
# Environment (defaults in brackets; those of k6.js pass through to it):
#   RATE [700] DURATION [20s] HOT_SHARE [0.8] HOT_KEY [KEY_PREFIX + hot]
#   KEYS [100000] DIST [uniform] KEY_PREFIX [/k/] PRE_VUS [RATE/5] MAX_VUS [RATE/2]
#   ... (k6.js; HOT_BACKENDS is set here)
#   BACKENDS [4]          backends (at least SLAVES + 2, so that one is off the hot key's list)
#   SLOTS [8]             requests each backend serves at once
#   DELAY_MS [20]         service time of each request, ms
#   SLAVES [2]            the service's slaves: the hot key's list has SLAVES + 1 instances
#   FACTOR [1.25] SCOPE [replicas]  load_bound of the second run
#   OUT                   also write the summary (Markdown) to this file
#   NOTE                  a line of text for the summary (e.g. what else ran on the machine)
#   SHARDPROXY, K6, SHARDPROXY_LOG [warn], READY_TIMEOUT [30], KEEP_WORK [0]
#                         as for loadtest/run.sh
#
# Exit status: 0 the load_bound run had no failed request and every hot-key
# request in it was answered by an instance of the key's /ring/lookup list
# (with SCOPE=ring, which may go past the list, only the failures count);
# 3 it had failures, or a hot-key request went elsewhere; 1 setup failed.
# The run without load_bound may fail requests and cross k6's thresholds:
# that is the effect shown, not an error.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
LOG_TAG=hot
# shellcheck source=loadtest/lib.sh
source "$HERE/lib.sh"

K6_ARGS=()
while (($#)); do
    case $1 in
        -h | --help) usage; exit 0 ;;
        --) shift; K6_ARGS=("$@"); break ;;
        *) die "unknown argument '$1' (see --help); settings are environment variables" ;;
    esac
done

export RATE=${RATE:-700}
export DURATION=${DURATION:-20s}
export HOT_SHARE=${HOT_SHARE:-0.8}
export KEY_PREFIX=${KEY_PREFIX:-/k/}
export HOT_KEY=${HOT_KEY:-${KEY_PREFIX}hot}
# k6 drops iterations while it starts VUs mid-run: start enough for 200 ms
# per request at once (MAX_VUS stays k6.js's RATE/2, 500 ms).
[[ $RATE =~ ^[0-9]+$ ]] || die "RATE=$RATE: expected a whole number of requests per second"
export PRE_VUS=${PRE_VUS:-$(( (RATE + 4) / 5 > 10 ? (RATE + 4) / 5 : 10 ))}
BACKENDS=${BACKENDS:-4}
SLOTS=${SLOTS:-8}
DELAY_MS=${DELAY_MS:-20}
SLAVES=${SLAVES:-2}
FACTOR=${FACTOR:-1.25}
SCOPE=${SCOPE:-replicas}
OUT=${OUT:-}
NOTE=${NOTE:-}
SHARDPROXY_LOG=${SHARDPROXY_LOG:-warn}
READY_TIMEOUT=${READY_TIMEOUT:-30}
SERVICE=hot

for var in BACKENDS SLOTS SLAVES READY_TIMEOUT; do
    [[ ${!var} =~ ^[0-9]+$ ]] || die "$var=${!var}: expected a whole number"
done
[[ $DELAY_MS =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "DELAY_MS=$DELAY_MS: expected a number of ms"
[[ $FACTOR =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "FACTOR=$FACTOR: expected a number more than 1"
[[ $SCOPE == replicas || $SCOPE == ring ]] || die "SCOPE=$SCOPE: expected replicas or ring"
[[ $HOT_KEY == /* ]] || die "HOT_KEY=$HOT_KEY: must be a path (start with /)"
((SLOTS >= 1)) || die "SLOTS must be at least 1"
((BACKENDS >= SLAVES + 2)) || die "BACKENDS=$BACKENDS: needs at least SLAVES + 2 = $((SLAVES + 2)) (one off the hot key's list)"
duration_ms "$DURATION" >/dev/null || die "DURATION=$DURATION: expected a duration such as 20s or 1m"
if [[ -n $OUT ]]; then
    mkdir -p "$(dirname "$OUT")"
    OUT=$(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")
fi

require_tools curl python3 setsid

ensure_shardproxy
ensure_k6
setup_work shardproxy-hot
export RUST_LOG=$SHARDPROXY_LOG

# free_ports N: N loopback TCP ports free (for now).
free_ports() {
    python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

# stop_groups PGID...: SIGTERM, then SIGKILL after 5 s, to these process
# groups, and forget them (the EXIT trap stops the others).
stop_groups() {
    local pg i alive
    for pg in "$@"; do kill -TERM -- "-$pg" 2>/dev/null || true; done
    for ((i = 0; i < 50; i++)); do
        alive=0
        for pg in "$@"; do kill -0 -- "-$pg" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for pg in "$@"; do kill -KILL -- "-$pg" 2>/dev/null || true; done
    for pg in "$@"; do
        sed -i "/^$pg\$/d" "$PGIDS_FILE"
    done
}

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

# run_once MODE: MODE is `off` (no load_bound) or `on`. Starts the backends
# and the proxy, runs k6, saves what the summary needs into $WORK/MODE.*,
# and stops them.
run_once() {
    local mode=$1 ports=("${PORTS[@]}") i addr pid pgids=() proxy_pid names=() lookup_out first
    local listen=127.0.0.1:${ports[0]} admin_addr=127.0.0.1:${ports[1]}
    local config=$WORK/$mode.toml
    {
        printf '[server]\nlisten = "%s"\nadmin = "%s"\n\n[services.%s]\ninstances = [\n' "$listen" "$admin_addr" "$SERVICE"
        for ((i = 1; i <= BACKENDS; i++)); do
            printf '    { host = "b%d.hot.test", addr = "127.0.0.1:%s" },\n' "$i" "${ports[i + 1]}"
        done
        printf ']\nvirtual_nodes = 160\nslaves = %s\nkey = "path"\n' "$SLAVES"
        if [[ $mode == on ]]; then
            printf 'load_bound = { factor = %s, scope = "%s" }\n' "$FACTOR" "$SCOPE"
        fi
        printf '\n[[routes]]\npath_prefix = "/"\nservice = "%s"\n' "$SERVICE"
    } >"$config"
    "$SHARDPROXY" check --config "$config" >"$WORK/$mode-check.log" 2>&1 \
        || die "shardproxy check refused $config: $(cat "$WORK/$mode-check.log")"

    for ((i = 1; i <= BACKENDS; i++)); do
        addr=127.0.0.1:${ports[i + 1]}
        ! tcp_open "$addr" || die "backend address $addr is already in use"
        pid=$(start_group "$mode-backend$i" python3 "$HERE/backend.py" 127.0.0.1 "${ports[i + 1]}" "b$i" \
            --slots "$SLOTS" --delay-ms "$DELAY_MS" --hot-path "$HOT_KEY")
        pgids+=("$pid")
    done
    for ((i = 1; i <= BACKENDS; i++)); do
        wait_for "backend b$i listening" "$READY_TIMEOUT" "${pgids[i - 1]}" tcp_open "127.0.0.1:${ports[i + 1]}" || exit 1
    done
    for a in "$listen" "$admin_addr"; do
        ! tcp_open "$a" || die "$a is already in use"
    done
    proxy_pid=$(start_group "$mode-proxy" "$SHARDPROXY" run --config "$config")
    pgids+=("$proxy_pid")
    ADMIN=http://$admin_addr
    BASE_URL=http://$listen
    wait_for "$ADMIN/readyz answering 200" "$READY_TIMEOUT" "$proxy_pid" http_ok "$ADMIN/readyz" || exit 1

    # The hot key's preference list, as backend names (bK) in order.
    lookup_out=$(lookup "$HOT_KEY") || die "cannot look up $HOT_KEY at $ADMIN/ring/lookup"
    while read -r addr _; do
        for ((i = 1; i <= BACKENDS; i++)); do
            [[ $addr == "127.0.0.1:${ports[i + 1]}" ]] && names+=("b$i")
        done
    done <<<"$lookup_out"
    ((${#names[@]} == SLAVES + 1)) || die "the preference list of $HOT_KEY is '$lookup_out': expected $((SLAVES + 1)) of the backends"
    [[ -z ${HOT_LIST:-} || $HOT_LIST == "${names[*]}" ]] \
        || die "the preference list of $HOT_KEY changed between the runs: ${HOT_LIST} then ${names[*]}"
    HOT_LIST=${names[*]}
    first=$(curl -s -o /dev/null -D - --max-time 5 "$BASE_URL$HOT_KEY" | tr -d '\r' | awk 'tolower($1) == "x-backend:" { print $2 }') || true
    [[ $first == "${names[0]}" ]] || die "GET $HOT_KEY was answered by '${first:-nothing}', not its primary ${names[0]}"

    log "run $mode: $([[ $mode == on ]] && echo "load_bound = { factor = $FACTOR, scope = \"$SCOPE\" }" || echo "no load_bound"); $HOT_KEY on ${names[*]} (primary ${names[0]}); k6 $RATE req/s for $DURATION, ${HOT_SHARE} on $HOT_KEY"
    {
        echo "loadavg_before=$(loadavg)"
        echo "list=${names[*]}"
        echo "ports=${ports[*]:2}"
    } >"$WORK/$mode.meta"
    SUMMARY_JSON=$WORK/$mode-summary.json
    HOT_BACKENDS=$(IFS=,; echo "${names[*]}")
    # scope = "ring" may send reads past the list: k6 need not count them.
    [[ $mode == on && $SCOPE == ring ]] && HOT_BACKENDS=
    run_k6 "${K6_ARGS[@]}"
    {
        echo "loadavg_after=$(loadavg)"
        echo "k6_rc=$k6_rc"
    } >>"$WORK/$mode.meta"
    [[ -s $SUMMARY_JSON ]] || die "k6 wrote no summary ($SUMMARY_JSON); k6 exit status $k6_rc"

    curl -s --max-time 5 "$ADMIN/metrics" >"$WORK/$mode-metrics.txt" || die "cannot read $ADMIN/metrics"
    for ((i = 1; i <= BACKENDS; i++)); do
        curl -s --max-time 5 "http://127.0.0.1:${ports[i + 1]}/_backend/stats" >"$WORK/$mode-stats-b$i.json" \
            || die "cannot read the stats of backend b$i"
    done
    stop_groups "${pgids[@]}"
}

export HOT_BACKENDS # set per run, read by k6.js
# The same ports for both runs: the instances' names (host:port) and so
# their derived tokens, the ring and the hot key's list are the same.
read -r -a PORTS < <(free_ports $((BACKENDS + 2)))
log "hot-key drill: $BACKENDS backends ($SLOTS at once, ${DELAY_MS} ms each), slaves = $SLAVES; k6 $RATE req/s for $DURATION, $HOT_SHARE of it on $HOT_KEY; without, then with load_bound"
run_once off
run_once on

# --- the summary ------------------------------------------------------------------

REPORT=$WORK/report.md
command="RATE=$RATE DURATION=$DURATION HOT_SHARE=$HOT_SHARE"
[[ $HOT_KEY == "${KEY_PREFIX}hot" ]] || command+=" HOT_KEY=$HOT_KEY"
command+=" SHARDPROXY=$SHARDPROXY loadtest/run.sh --hot"
set +e
HOT_COMMAND=$command SLOTS=$SLOTS DELAY_MS=$DELAY_MS SLAVES=$SLAVES FACTOR=$FACTOR SCOPE=$SCOPE NOTE=$NOTE \
    SHARDPROXY=$SHARDPROXY HOT_VERSION=$("$SHARDPROXY" --version 2>/dev/null | head -n 1) \
    HOT_CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo) \
    python3 - "$WORK" "$BACKENDS" <<'EOF' >"$REPORT"
import json, os, re, subprocess, sys

work, backends, scope = sys.argv[1], int(sys.argv[2]), os.environ["SCOPE"]
env = os.environ
names = ["b%d" % i for i in range(1, backends + 1)]


def meta(mode):
    out = {}
    for line in open(os.path.join(work, mode + ".meta")):
        key, _, value = line.rstrip("\n").partition("=")
        out[key] = value
    return out


def metrics(mode):
    """attempts per (backend name, outcome); spills."""
    ports = meta(mode)["ports"].split()
    by_port = {p: names[i] for i, p in enumerate(ports)}
    attempts, spills = {}, 0
    for line in open(os.path.join(work, mode + "-metrics.txt")):
        if line.startswith("shardproxy_upstream_attempts_total{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            port = labels["upstream"].rsplit(":", 1)[-1]
            name = by_port.get(port, labels["upstream"])
            key = (name, labels.get("outcome", "?"))
            attempts[key] = attempts.get(key, 0) + float(line.split()[-1])
        elif line.startswith("shardproxy_load_bound_spills_total"):
            spills += float(line.split()[-1])
    return attempts, int(spills)


runs = {}
for mode in ("off", "on"):
    summary = json.load(open(os.path.join(work, mode + "-summary.json")))["summary"]
    stats = {n: json.load(open(os.path.join(work, "%s-stats-%s.json" % (mode, n)))) for n in names}
    attempts, spills = metrics(mode)
    runs[mode] = dict(s=summary, m=meta(mode), stats=stats, attempts=attempts, spills=spills)


def ms(v):
    if v is None:
        return "n/a"
    return "%.0f ms" % v if v >= 100 else "%.1f ms" % v


def role(mode, name):
    lst = runs[mode]["m"]["list"].split()
    if name not in lst:
        return "not on the list"
    i = lst.index(name)
    return "primary" if i == 0 else "replica %d" % i


off, on = runs["off"], runs["on"]
lines = []
w = lines.append
w("## Hot-key drill: without and with load_bound")
w("")
w("- command: `%s`" % env.get("HOT_COMMAND", "loadtest/run.sh --hot"))
w("- binary: `%s` (%s)" % (env["SHARDPROXY"], env.get("HOT_VERSION", "?")))
w("- load: k6 `constant-arrival-rate` %s req/s for %s, %s of the iterations GET `%s`, the others `%s<n>`, n %s in 0..%s"
  % (env["RATE"], env["DURATION"], env["HOT_SHARE"], env["HOT_KEY"], env["KEY_PREFIX"],
     env.get("DIST", "uniform"), int(env.get("KEYS", "100000")) - 1))
w("- backends: %d x loadtest/backend.py, each at most %s requests at once, %s ms each (capacity %.0f req/s each)"
  % (backends, env["SLOTS"], env["DELAY_MS"], float(env["SLOTS"]) * 1000 / float(env["DELAY_MS"])))
w("- proxy: `shardproxy run`, static instances, virtual_nodes = 160, slaves = %s, key = \"path\"; second run adds `load_bound = { factor = %s, scope = \"%s\" }`"
  % (env["SLAVES"], env["FACTOR"], env["SCOPE"]))
w("- `%s` preference list: %s (primary first) in both runs" % (env["HOT_KEY"], ", ".join(on["m"]["list"].split())))
w("- machine: %d cores (%s); load average (1/5/15 min) before/after: without %s / %s, with %s / %s"
  % (os.cpu_count(), env.get("HOT_CPU", "?"), off["m"]["loadavg_before"], off["m"]["loadavg_after"],
     on["m"]["loadavg_before"], on["m"]["loadavg_after"]))
if env.get("NOTE"):
    w("- note: " + env["NOTE"])
w("")
w("| | without load_bound | with load_bound |")
w("|---|---:|---:|")


def row(label, f):
    w("| %s | %s | %s |" % (label, f(off), f(on)))


row("requests completed", lambda r: "%d (%.0f req/s)" % (r["s"]["requests"], r["s"]["rate"]))
row("failed", lambda r: "%d (%.2f%%)" % (r["s"]["failed"], r["s"]["failed_rate"] * 100))
row("dropped iterations (k6 out of VUs)", lambda r: "%d" % r["s"]["dropped_iterations"])
row("all: p50 / p90 / p99", lambda r: " / ".join(ms(r["s"][k]) for k in ("p50_ms", "p90_ms", "p99_ms")))
row("all: max", lambda r: ms(r["s"]["max_ms"]))
row("hot key: requests (failed)", lambda r: "%d (%d)" % (r["s"]["hot"]["requests"], r["s"]["hot"]["failed"]))
row("hot key: p50 / p90 / p99", lambda r: " / ".join(ms(r["s"]["hot"][k]) for k in ("p50_ms", "p90_ms", "p99_ms")))
row("other keys: p50 / p90 / p99", lambda r: " / ".join(ms(r["s"]["hot"][k]) for k in ("other_p50_ms", "other_p90_ms", "other_p99_ms")))
row("k6 thresholds", lambda r: "pass" if r["s"]["thresholds_ok"] else "crossed: " + ", ".join(
    t["metric"] for t in r["s"]["thresholds"] if not t["ok"]))
row("`shardproxy_load_bound_spills_total`", lambda r: "%d" % r["spills"])
w("")
w("Per backend (role for `%s`): `shardproxy_upstream_attempts_total` (all outcomes; non-`response` ones in brackets), and what the backend counted: hot-key requests served, most requests waiting for a slot at once." % env["HOT_KEY"])
w("")
w("| backend | role | attempts without | attempts with | hot served without | hot served with | peak waiting without | peak waiting with |")
w("|---|---|---:|---:|---:|---:|---:|---:|")


def attempts(r, n):
    total = sum(v for (name, _), v in r["attempts"].items() if name == n)
    other = {o: v for (name, o), v in r["attempts"].items() if name == n and o != "response" and v}
    extra = " (%s)" % ", ".join("%s %d" % kv for kv in sorted(other.items())) if other else ""
    return "%d%s" % (total, extra)


for n in names:
    w("| %s | %s | %s | %s | %d | %d | %d | %d |" % (
        n, role("on", n), attempts(off, n), attempts(on, n),
        off["stats"][n]["hot"], on["stats"][n]["hot"],
        off["stats"][n]["peak_waiting"], on["stats"][n]["peak_waiting"]))
w("")

# The checks, on the load_bound run.
problems = []
s = on["s"]
if s["failed"] or s["checks_failed"]:
    problems.append("%d failed requests (%d failed checks)" % (s["failed"], s["checks_failed"]))
off_list_backends = sum(on["stats"][n]["hot"] for n in names if n not in on["m"]["list"].split())
if scope == "replicas":
    if off_list_backends:
        problems.append("%d hot-key requests reached backends off the list" % off_list_backends)
    if s["hot"]["off_list"]:
        problems.append("k6 saw %d hot-key answers from backends off the list" % s["hot"]["off_list"])
if problems:
    w("**CHECK FAILED** (load_bound run): " + "; ".join(problems) + ".")
elif scope == "ring":
    w("Checks (load_bound run): 0 failed requests. With scope = \"ring\" reads may leave the list: %d hot-key requests were served by backends off it (backends' own counts)." % off_list_backends)
else:
    w("Checks (load_bound run): 0 failed requests; every hot-key request was served by %s, the key's `/ring/lookup` list (backends' own counts: %d on other backends; k6, by `X-Backend`: %d)."
      % (", ".join(on["m"]["list"].split()), off_list_backends, s["hot"]["off_list"]))
notes = []
if on["spills"] == 0:
    notes.append("load_bound never spilled: the primary was never at its bound")
if (off["s"]["hot"]["p99_ms"] or 0) < 2 * (on["s"]["hot"]["p99_ms"] or 0):
    notes.append("the hot key's p99 without load_bound is not even twice the one with it: the primary was not saturated (raise RATE or HOT_SHARE?)")
for note in notes:
    w("")
    w("Note: " + note + ".")
print("\n".join(lines))
sys.exit(3 if problems else 0)
EOF
summary_rc=$?
set -e
((summary_rc == 0 || summary_rc == 3)) || die "the summary could not be computed (status $summary_rc)"
echo
cat "$REPORT"
if [[ -n $OUT ]]; then
    cp "$REPORT" "$OUT"
    log "summary written to $OUT"
fi
if ((summary_rc == 3)); then
    KEEP_WORK=1
    log "FAILED: the load_bound run had failed requests or hot-key requests off the list (see above)"
    exit 3
fi
if [[ $SCOPE == ring ]]; then
    log "done: load_bound run without failures (scope = \"ring\": reads may leave the list)"
else
    log "done: load_bound run without failures, every hot-key request on its list"
fi
