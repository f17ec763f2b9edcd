#!/usr/bin/env bash
# loadtest/cache-tests/run.sh: run the HTTP Working Group's cache test suite
# (npm package http-cache-tests, the suite behind cache-tests.fyi) against
# shardproxy's cache, all on 127.0.0.1. See loadtest/cache-tests/README.md.
#
#   loadtest/cache-tests/run.sh                          # the whole suite, counts, results files
#   loadtest/cache-tests/run.sh --min-pass 198 --max-fail 11   # ...and exit 2 below/above
#   loadtest/cache-tests/run.sh --id vary-no-match        # one test, with its requests and responses
#
# It installs the suite when missing (npm ci, from the committed lock file),
# starts the suite's origin server on 127.0.0.1, writes a shardproxy config
# with one service whose one static instance is that origin and whose cache is
# on, starts shardproxy, runs the suite's command-line client through it, and
# prints the counts the way cache-tests.fyi shows them (count.mjs). The full
# results (the suite's own JSON format, loadable by its viewer) and a markdown
# summary listing every test that did not pass go to
# loadtest/results/cache-conformance.{json,md}.
#
# Options:
#   --min-pass N      exit 2 when fewer than N tests pass
#   --max-fail N      exit 2 when more than N required tests fail
#   --known-fail FILE exit 2 when a required test fails that FILE does not
#                     list (one test id per line, then why; # comments):
#                     known-failures.txt names the ones failed on purpose
#   --id TEST         run only TEST and show its exchanges (no results files)
#   --no-cache        run with the cache off (a baseline: what the origin alone does)
#   --set KEY=VALUE   a cache setting instead of the one start_shardproxy writes,
#                     the value as TOML:
#                     --set grace='"30s"' --set authorized=true (repeatable)
#   --proxy NAME      test NAME instead of shardproxy, set up as the suite's own
#                     docker image sets it up: varnish, nginx or haproxy
#                     (Debian's packages: apt-get install varnish nginx-light
#                     haproxy); results go to cache-conformance-NAME.{json,md}
#   --out DIR         where the results files go [loadtest/results]
#
# Environment:
#   SHARDPROXY        the binary to use [built with cargo build -p shardproxy
#                     (debug), in CARGO_TARGET_DIR or <repo>/target]
#   SHARDPROXY_LOG    RUST_LOG for shardproxy [warn]
#   READY_TIMEOUT     seconds to wait for the origin and the proxy [30]
#   KEEP_WORK         1: keep the work directory (config, logs) [0]
#
# Exit status: 0 done (and within --min-pass/--max-fail); 1 setup failed;
# 2 the counts are outside --min-pass/--max-fail.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
SUITE=$HERE/node_modules/http-cache-tests

log() { printf '[cache-tests %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

MIN_PASS=
MAX_FAIL=
KNOWN_FAIL=
TEST_ID=
CACHE=true
PROXY=shardproxy
SETTINGS=()
OUT=$REPO/loadtest/results
while (($#)); do
    case $1 in
        --min-pass) MIN_PASS=${2:?--min-pass needs a number}; shift ;;
        --max-fail) MAX_FAIL=${2:?--max-fail needs a number}; shift ;;
        --known-fail) KNOWN_FAIL=${2:?--known-fail needs a file}; shift ;;
        --id) TEST_ID=${2:?--id needs a test id}; shift ;;
        --no-cache) CACHE=false ;;
        --proxy) PROXY=${2:?--proxy needs a name}; shift ;;
        --set)
            [[ ${2:-} =~ ^(max_size|max_object_size|default_ttl|max_ttl|grace|authorized)=.+$ ]] \
                || die "--set ${2:-}: expected KEY=VALUE with KEY one of max_size, max_object_size, default_ttl, max_ttl, grace, authorized"
            SETTINGS+=("$2")
            shift
            ;;
        --out) OUT=${2:?--out needs a directory}; shift ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    shift
done
[[ -z $MIN_PASS || $MIN_PASS =~ ^[0-9]+$ ]] || die "--min-pass must be a whole number"
[[ -z $MAX_FAIL || $MAX_FAIL =~ ^[0-9]+$ ]] || die "--max-fail must be a whole number"
[[ -z $KNOWN_FAIL || -r $KNOWN_FAIL ]] || die "--known-fail $KNOWN_FAIL: no such file"
READY_TIMEOUT=${READY_TIMEOUT:-30}
[[ $READY_TIMEOUT =~ ^[0-9]+$ ]] || die "READY_TIMEOUT must be a whole number of seconds"
KEEP_WORK=${KEEP_WORK:-0}
SHARDPROXY_LOG=${SHARDPROXY_LOG:-warn}

case $PROXY in
    shardproxy) ;;
    varnish) command -v varnishd >/dev/null 2>&1 || die "--proxy varnish: no varnishd (apt-get install varnish)" ;;
    nginx) command -v nginx >/dev/null 2>&1 || die "--proxy nginx: no nginx (apt-get install nginx-light)" ;;
    haproxy) command -v haproxy >/dev/null 2>&1 || die "--proxy haproxy: no haproxy (apt-get install haproxy)" ;;
    *) die "--proxy $PROXY: expected shardproxy, varnish, nginx or haproxy" ;;
esac
[[ $PROXY == shardproxy || ($CACHE == true && ${#SETTINGS[@]} -eq 0) ]] || die "--no-cache and --set are for shardproxy"

for tool in node npm curl setsid; do
    command -v "$tool" >/dev/null 2>&1 || die "missing $tool"
done

# --- the suite and shardproxy ------------------------------------------------------

if [[ ! -f $SUITE/cli.mjs ]]; then
    log "installing the suite (npm ci in $HERE)"
    (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error) >&2 || die "npm ci failed"
fi
SUITE_VERSION=$(node -p "require('$SUITE/package.json').version")

if [[ $PROXY != shardproxy ]]; then
    :
elif [[ -z ${SHARDPROXY:-} ]]; then
    target_dir=${CARGO_TARGET_DIR:-$REPO/target}
    [[ $target_dir == /* ]] || target_dir=$REPO/$target_dir
    log "building shardproxy (cargo build -p shardproxy, target dir $target_dir)"
    (cd "$REPO" && CARGO_TARGET_DIR=$target_dir cargo build -p shardproxy --bin shardproxy) >&2 \
        || die "cargo build failed"
    SHARDPROXY=$target_dir/debug/shardproxy
fi
[[ $PROXY != shardproxy || -x $SHARDPROXY ]] || die "no shardproxy binary at $SHARDPROXY"

# --- processes -----------------------------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/shardproxy-cache-tests.XXXXXX")
PGIDS=()

# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
    local rc=$? pg
    trap - EXIT INT TERM
    set +e
    for pg in "${PGIDS[@]}"; do kill -TERM -- "-$pg" 2>/dev/null; done
    for pg in "${PGIDS[@]}"; do
        for ((i = 0; i < 50; i++)); do kill -0 -- "-$pg" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$pg" 2>/dev/null
    done
    if ((KEEP_WORK)); then log "work directory kept: $WORK"; else rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME CMD...: run CMD in its own process group, output to $WORK/NAME.log.
start() {
    local name=$1
    shift
    setsid "$@" >"$WORK/$name.log" 2>&1 &
    PGIDS+=("$!")
}

# wait_for NAME URL: until URL answers (any HTTP status) or READY_TIMEOUT,
# or the process last started exits.
wait_for() {
    local name=$1 url=$2 deadline=$((SECONDS + READY_TIMEOUT))
    until curl -s -o /dev/null "$url"; do
        if ! kill -0 -- "-${PGIDS[-1]}" 2>/dev/null; then
            tail -n 20 "$WORK/$name.log" >&2
            die "$name exited before it answered at $url (log above)"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 20 "$WORK/$name.log" >&2
            die "$name did not answer at $url within ${READY_TIMEOUT}s (log above)"
        fi
        sleep 0.1
    done
}

mapfile -t PORTS < <(node "$HERE/freeport.mjs" 3)
ORIGIN_PORT=${PORTS[0]} PROXY_PORT=${PORTS[1]} ADMIN_PORT=${PORTS[2]}

# The suite's server takes its settings from npm's config variables; the
# preloaded loopback.mjs keeps it on 127.0.0.1.
start origin env npm_config_protocol=http npm_config_port="$ORIGIN_PORT" \
    npm_config_pidfile="$WORK/origin.pid" \
    node --import "$HERE/loopback.mjs" "$SUITE/server/server.mjs"
wait_for origin "http://127.0.0.1:$ORIGIN_PORT/"

# start_shardproxy: one service, one instance: the origin. No retries (a
# test's second request to the origin would be a retry the suite flags), no
# ejection, and the cache as a shared cache with nothing stored unless the
# origin says so (default_ttl 0s: no heuristic freshness, as the spec of
# shardproxy says).
start_shardproxy() {
    cat >"$WORK/shardproxy.toml" <<EOF
[server]
listen = "127.0.0.1:$PROXY_PORT"
admin = "127.0.0.1:$ADMIN_PORT"

[log]
level = "warn"

[services.origin]
instances = [{ host = "127.0.0.1", addr = "127.0.0.1:$ORIGIN_PORT" }]
key = "path"
retry_on = []
outlier_detection = { consecutive_failures = 0 }

[services.origin.cache]
enabled = $CACHE
max_size = "64MiB"
max_object_size = "8MiB"
default_ttl = "0s"
max_ttl = "24h"
grace = "0s"
authorized = false

[[routes]]
path_prefix = "/"
service = "origin"
EOF
    local setting
    for setting in "${SETTINGS[@]}"; do
        # Replace the line of the key; the value goes in as written.
        KEY=${setting%%=*} VALUE=${setting#*=} \
            perl -pi -e 's/^\Q$ENV{KEY}\E = .*/$ENV{KEY} = $ENV{VALUE}/' "$WORK/shardproxy.toml"
    done
    "$SHARDPROXY" check --config "$WORK/shardproxy.toml" >"$WORK/check.log" 2>&1 \
        || { cat "$WORK/check.log" >&2; die "shardproxy check refused the config ($WORK/shardproxy.toml)"; }
    start shardproxy env RUST_LOG="$SHARDPROXY_LOG" "$SHARDPROXY" run --config "$WORK/shardproxy.toml"
    wait_for shardproxy "http://127.0.0.1:$ADMIN_PORT/readyz"
}

# start_varnish: the builtin VCL in front of the origin, with the parameters
# of the suite's docker image (docker/serve.sh): no default TTL or grace.
start_varnish() {
    start varnish varnishd -F -n "$WORK/varnish" -a "127.0.0.1:$PROXY_PORT" -b "127.0.0.1:$ORIGIN_PORT" \
        -T none -p default_ttl=0 -p default_grace=0 -p default_keep=3600 -s malloc,64M
    wait_for varnish "http://127.0.0.1:$PROXY_PORT/"
}

# start_nginx: proxy_cache as in the suite's docker image (docker/nginx).
start_nginx() {
    mkdir -p "$WORK/nginx/cache" "$WORK/nginx/tmp"
    cat >"$WORK/nginx/nginx.conf" <<EOF
daemon off;
user root;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 2048; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx/tmp/body;
    proxy_temp_path $WORK/nginx/tmp/proxy;
    fastcgi_temp_path $WORK/nginx/tmp/fastcgi;
    uwsgi_temp_path $WORK/nginx/tmp/uwsgi;
    scgi_temp_path $WORK/nginx/tmp/scgi;
    proxy_cache_path $WORK/nginx/cache levels=1:2 keys_zone=my-cache:8m max_size=1000m inactive=600m;
    server {
        listen 127.0.0.1:$PROXY_PORT;
        location / {
            proxy_pass http://127.0.0.1:$ORIGIN_PORT;
            proxy_cache my-cache;
            proxy_cache_revalidate on;
        }
    }
}
EOF
    start nginx nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf"
    wait_for nginx "http://127.0.0.1:$PROXY_PORT/"
}

# start_haproxy: its cache with the settings of the suite's docker image
# (docker/haproxy/haproxy.cfg in the suite's repository).
start_haproxy() {
    mkdir -p "$WORK/haproxy"
    cat >"$WORK/haproxy/haproxy.cfg" <<EOF
defaults
    mode http
    timeout connect 5s
    timeout client 1m
    timeout server 1m

cache conformance
    total-max-size 4
    max-object-size 10000
    max-age 240
    process-vary on
    max-secondary-entries 12

frontend fe
    bind 127.0.0.1:$PROXY_PORT
    filter cache conformance
    http-request cache-use conformance
    http-response cache-store conformance
    default_backend be

backend be
    server origin 127.0.0.1:$ORIGIN_PORT
EOF
    start haproxy haproxy -db -f "$WORK/haproxy/haproxy.cfg"
    wait_for haproxy "http://127.0.0.1:$PROXY_PORT/"
}

case $PROXY in
    shardproxy) start_shardproxy ;;
    varnish) start_varnish ;;
    nginx) start_nginx ;;
    haproxy) start_haproxy ;;
esac
# --- the suite -----------------------------------------------------------------------

BASE=http://127.0.0.1:$PROXY_PORT
if [[ -n $TEST_ID ]]; then
    (cd "$SUITE" && npm_config_base=$BASE npm_config_id=$TEST_ID npm_package_config_id=$TEST_ID \
        node --no-warnings cli.mjs)
    exit 0
fi

log "running the suite through $PROXY"
started=$SECONDS
(cd "$SUITE" && npm_config_base=$BASE npm_config_id='' npm_package_config_id='' \
    node --no-warnings cli.mjs) >"$WORK/results.json" 2>"$WORK/client.log" \
    || { cat "$WORK/client.log" >&2; die "the suite's client failed"; }
node -e 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))' "$WORK/results.json" 2>/dev/null \
    || { head -c 2000 "$WORK/results.json" >&2; cat "$WORK/client.log" >&2; die "the suite's client printed no JSON results"; }
log "suite done in $((SECONDS - started))s"

mkdir -p "$OUT"
if [[ $PROXY == shardproxy ]]; then
    stem=cache-conformance
    name="shardproxy $(cd "$REPO" && git rev-parse --short HEAD 2>/dev/null || echo '?')"
    [[ $CACHE == true ]] || name="$name (cache off)"
    ((${#SETTINGS[@]} == 0)) || name="$name (${SETTINGS[*]})"
else
    stem=cache-conformance-$PROXY
    case $PROXY in
        varnish) name="Varnish $(varnishd -V 2>&1 | sed -n 's/.*varnish-\([^ ]*\).*/\1/p' | head -n 1) (here)" ;;
        nginx) name="nginx $(nginx -v 2>&1 | sed -n 's|.*nginx/||p') (here)" ;;
        haproxy) name="HAProxy $(haproxy -v 2>&1 | sed -n 's/^HAProxy version \([^ ]*\).*/\1/p') (here)" ;;
    esac
fi
cp "$WORK/results.json" "$OUT/$stem.json"
why=()
[[ $PROXY == shardproxy ]] && why=("$HERE/why.txt")
node "$HERE/count.mjs" --markdown "$WORK/results.json" "$name" "$SUITE_VERSION" "${why[@]}" >"$OUT/$stem.md"
summary=$(node "$HERE/count.mjs" "$WORK/results.json")
node "$HERE/count.mjs" --table "$WORK/results.json" "$name"
log "results: $OUT/$stem.json, $OUT/$stem.md"

passed=$(node -p 'JSON.parse(process.argv[1]).passed' "$summary")
failed=$(node -p 'JSON.parse(process.argv[1]).failed' "$summary")
status=0
if [[ -n $MIN_PASS ]] && ((passed < MIN_PASS)); then
    log "FAIL: $passed tests passed, fewer than --min-pass $MIN_PASS"
    status=2
fi
if [[ -n $MAX_FAIL ]] && ((failed > MAX_FAIL)); then
    log "FAIL: $failed required tests failed, more than --max-fail $MAX_FAIL"
    status=2
fi
if [[ -n $KNOWN_FAIL ]]; then
    known=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$KNOWN_FAIL" | awk '{print $1}')
    for id in $(node -p 'JSON.parse(process.argv[1]).failed_ids.join("\n")' "$summary"); do
        if ! grep -qxF -- "$id" <<<"$known"; then
            log "FAIL: required test $id failed, and $KNOWN_FAIL does not list it"
            status=2
        fi
    done
    for id in $known; do
        node -e 'process.exit(JSON.parse(process.argv[1]).failed_ids.includes(process.argv[2]) ? 0 : 1)' \
            "$summary" "$id" || log "note: $id, listed in $KNOWN_FAIL, did not fail"
    done
fi
exit "$status"
