// loadtest/k6.js: open-loop HTTP load for shardproxy (or anything else),
// run with the real k6 binary:
//
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e RATE=500 -e DURATION=30s loadtest/k6.js
//
// Every iteration is one GET of BASE_URL + KEY_PREFIX + n, n in 0..KEYS-1,
// drawn uniformly or from a Zipf distribution (hot keys: n = 0 is the
// hottest, then 1, 2, ...), or, with HOT_SHARE > 0, that share of the
// iterations GETs one hot key (BASE_URL + HOT_KEY) and the others draw n as
// above. Requests are sent at a fixed arrival rate
// (open loop: a slow server does not slow the load down, k6 starts more VUs
// up to MAX_VUS, then drops iterations and counts them).
//
// Environment (k6 -e NAME=VALUE, or the process environment), defaults in
// brackets:
//   BASE_URL [http://127.0.0.1:8080]  where to send requests
//   KEY_PREFIX [/k/]                  path before the key number
//   KEYS [100000]                     key space size
//   DIST [uniform]                    uniform | zipf
//   ZIPF_S [1.1]                      Zipf exponent (> 0; larger = hotter keys)
//   HOT_SHARE [0]                     share of iterations (0..1) that GET the hot key HOT_KEY
//   HOT_KEY [KEY_PREFIX + "hot"]      the hot key's path (e.g. /k/hot)
//   HOT_BACKENDS                      names (comma-separated) of the backends allowed to answer
//                                     the hot key, by their X-Backend response header: any other
//                                     answer counts in hot_off_list (threshold: none at all)
//   SEED                              seed k6's random generator (repeatable key sequences)
//   SCENARIO [constant]               constant: RATE req/s for DURATION
//                                     ramp: from START_RATE up to RATE over RAMP_UP, then RATE until DURATION
//   RATE [200]                        requests per second
//   DURATION [30s]                    total length (k6 duration: 45s, 2m, 1m30s)
//   START_RATE [max(1, RATE/10)]      ramp: starting rate
//   RAMP_UP [DURATION/2]              ramp: time to reach RATE
//   PRE_VUS [max(10, RATE/20)]        preAllocatedVUs (enough for 50 ms per request)
//   MAX_VUS [max(50, RATE/2, PRE_VUS)] maxVUs (enough for 500 ms per request)
//   TIMEOUT [10s]                     per-request timeout (k6 params.timeout)
//   EXPECT_STATUS [200]               the status a check counts as success
//   MAX_ERROR_RATE [0.001]            threshold: http_req_failed rate < this (0: no failure at all)
//   P99_MS [500]                      threshold: http_req_duration p(99) < this many ms
//   SUMMARY_JSON                      also write the end-of-test summary as JSON to this file
//
// The end-of-test summary (handleSummary) is a compact text block on stdout:
// requests, failures, rate, dropped iterations, p50/p90/p99/max, thresholds;
// with HOT_SHARE > 0 also the hot key's requests, failures and latency
// (metrics hot_reqs, hot_req_failed, hot_req_duration), the other keys'
// latency (other_req_duration) and, with HOT_BACKENDS, hot_off_list.
// k6 exits 99 when a threshold is crossed.

import http from 'k6/http';
import { check, randomSeed } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';

// --- configuration -----------------------------------------------------------

function env(name, fallback) {
  const value = __ENV[name];
  return value === undefined || value === '' ? fallback : value;
}

function fail(message) {
  throw new Error(`loadtest/k6.js: ${message}`);
}

function number(name, fallback, { min = -Infinity, integer = false } = {}) {
  const text = env(name, undefined);
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || (integer && !Number.isInteger(value)) || value < min) {
    fail(`${name}=${text}: expected ${integer ? 'a whole number' : 'a number'} >= ${min}`);
  }
  return value;
}

// A k6 duration ("30s", "1m30s", "1h", "500ms", or a bare number of
// seconds) in seconds.
function seconds(name, text) {
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text);
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;
  let total = 0;
  let match;
  let end = 0;
  while ((match = re.exec(text)) !== null) {
    total += Number(match[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[match[2]];
    end = re.lastIndex;
  }
  if (end === 0 || end !== text.length) fail(`${name}=${text}: expected a duration such as 30s, 2m or 1m30s`);
  return total;
}

const BASE_URL = env('BASE_URL', 'http://127.0.0.1:8080').replace(/\/+$/, '');
const KEY_PREFIX = env('KEY_PREFIX', '/k/');
const KEYS = number('KEYS', 100000, { min: 1, integer: true });
const DIST = env('DIST', 'uniform');
const ZIPF_S = number('ZIPF_S', 1.1);
const SCENARIO = env('SCENARIO', 'constant');
const RATE = number('RATE', 200, { min: 1, integer: true });
const DURATION = env('DURATION', '30s');
const DURATION_S = seconds('DURATION', DURATION);
const TIMEOUT = env('TIMEOUT', '10s');
const EXPECT_STATUS = number('EXPECT_STATUS', 200, { min: 100, integer: true });
const MAX_ERROR_RATE = number('MAX_ERROR_RATE', 0.001, { min: 0 });
const P99_MS = number('P99_MS', 500, { min: 0 });
const PRE_VUS = number('PRE_VUS', Math.max(10, Math.ceil(RATE / 20)), { min: 1, integer: true });
const MAX_VUS = Math.max(
  PRE_VUS,
  number('MAX_VUS', Math.max(50, Math.ceil(RATE / 2)), { min: 1, integer: true }),
);

if (!/^https?:\/\/[^/]+$/.test(BASE_URL)) fail(`BASE_URL=${BASE_URL}: expected http://host:port`);
if (!KEY_PREFIX.startsWith('/')) fail(`KEY_PREFIX=${KEY_PREFIX}: must start with /`);
if (DIST !== 'uniform' && DIST !== 'zipf') fail(`DIST=${DIST}: expected uniform or zipf`);
if (DIST === 'zipf' && !(ZIPF_S > 0)) fail(`ZIPF_S=${ZIPF_S}: must be above 0`);
if (DURATION_S <= 0) fail(`DURATION=${DURATION}: must be longer than 0`);
seconds('TIMEOUT', TIMEOUT);
const HOT_SHARE = number('HOT_SHARE', 0, { min: 0 });
const HOT_KEY = env('HOT_KEY', `${KEY_PREFIX}hot`);
const HOT_BACKENDS = env('HOT_BACKENDS', '').split(',').map((name) => name.trim()).filter((name) => name !== '');
if (HOT_SHARE > 1) fail(`HOT_SHARE=${HOT_SHARE}: expected a share from 0 to 1`);
if (!HOT_KEY.startsWith('/')) fail(`HOT_KEY=${HOT_KEY}: must start with /`);
const SEED = env('SEED', undefined);
if (SEED !== undefined && !/^\d+$/.test(SEED)) fail(`SEED=${SEED}: expected a whole number`);

function scenario() {
  const common = { timeUnit: '1s', preAllocatedVUs: PRE_VUS, maxVUs: MAX_VUS, gracefulStop: '10s' };
  if (SCENARIO === 'constant') {
    return { executor: 'constant-arrival-rate', rate: RATE, duration: DURATION, ...common };
  }
  if (SCENARIO === 'ramp') {
    const rampUp = seconds('RAMP_UP', env('RAMP_UP', `${DURATION_S / 2}s`));
    if (rampUp <= 0 || rampUp > DURATION_S) fail(`RAMP_UP must be above 0 and at most DURATION (${DURATION})`);
    const startRate = number('START_RATE', Math.max(1, Math.floor(RATE / 10)), { min: 0, integer: true });
    const stages = [{ target: RATE, duration: `${rampUp}s` }];
    if (DURATION_S > rampUp) stages.push({ target: RATE, duration: `${DURATION_S - rampUp}s` });
    return { executor: 'ramping-arrival-rate', startRate, stages, ...common };
  }
  return fail(`SCENARIO=${SCENARIO}: expected constant or ramp`);
}

const errorThreshold = MAX_ERROR_RATE === 0 ? 'rate<=0' : `rate<${MAX_ERROR_RATE}`;
const checkThreshold = MAX_ERROR_RATE === 0 ? 'rate>=1' : `rate>${1 - MAX_ERROR_RATE}`;

// The hot key's requests, apart (only with HOT_SHARE > 0).
const hotReqs = new Counter('hot_reqs');
const hotFailed = new Rate('hot_req_failed');
const hotDuration = new Trend('hot_req_duration', true);
const otherDuration = new Trend('other_req_duration', true);
// Hot-key answers from a backend not in HOT_BACKENDS.
const hotOffList = new Counter('hot_off_list');
const hotThresholds = HOT_BACKENDS.length > 0 && HOT_SHARE > 0 ? { hot_off_list: ['count<1'] } : {};

export const options = {
  scenarios: { load: scenario() },
  thresholds: {
    http_req_failed: [errorThreshold],
    http_req_duration: [`p(99)<${P99_MS}`],
    checks: [checkThreshold],
    ...hotThresholds,
  },
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(99)', 'p(99.9)', 'max'],
  // Only the status is checked: do not keep bodies around.
  discardResponseBodies: true,
  userAgent: 'shardproxy-loadtest/k6',
};

// --- keys --------------------------------------------------------------------

// Zipf(s) on 1..n by rejection-inversion (W. Hörmann, G. Derflinger, "Rejection-
// inversion to generate variates from monotone discrete distributions", 1996;
// the sampler of Apache Commons' ZipfDistribution): O(1) per sample, no table,
// so any key space size works without memory per VU.
function zipfSampler(n, s) {
  // log1p(x)/x and expm1(x)/x, accurate near 0.
  const helper1 = (x) => (Math.abs(x) > 1e-8 ? Math.log1p(x) / x : 1 - x * (0.5 - x * (1 / 3 - 0.25 * x)));
  const helper2 = (x) => (Math.abs(x) > 1e-8 ? Math.expm1(x) / x : 1 + x * 0.5 * (1 + (x / 3) * (1 + 0.25 * x)));
  const h = (x) => Math.exp(-s * Math.log(x));
  const hIntegral = (x) => {
    const logX = Math.log(x);
    return helper2((1 - s) * logX) * logX;
  };
  const hIntegralInverse = (x) => {
    let t = x * (1 - s);
    if (t < -1) t = -1;
    return Math.exp(helper1(t) * x);
  };
  const hIntegralX1 = hIntegral(1.5) - 1;
  const hIntegralN = hIntegral(n + 0.5);
  const cut = 2 - hIntegralInverse(hIntegral(2.5) - h(2));
  return () => {
    for (;;) {
      const u = hIntegralN + Math.random() * (hIntegralX1 - hIntegralN);
      const x = hIntegralInverse(u);
      let k = Math.floor(x + 0.5);
      if (k < 1) k = 1;
      else if (k > n) k = n;
      if (k - x <= cut || u >= hIntegral(k + 0.5) - h(k)) return k;
    }
  };
}

const nextKey = DIST === 'zipf'
  ? (() => { const zipf = zipfSampler(KEYS, ZIPF_S); return () => zipf() - 1; })()
  : () => Math.floor(Math.random() * KEYS);

// --- the test ----------------------------------------------------------------

let seeded = false;

export default function () {
  if (!seeded) {
    if (SEED !== undefined) randomSeed(Number(SEED) + __VU);
    seeded = true;
  }
  const hot = HOT_SHARE > 0 && Math.random() < HOT_SHARE;
  const res = http.get(hot ? `${BASE_URL}${HOT_KEY}` : `${BASE_URL}${KEY_PREFIX}${nextKey()}`, {
    timeout: TIMEOUT,
    // One name for every URL: keeps k6's per-URL time series bounded.
    tags: { name: hot ? HOT_KEY : `${KEY_PREFIX}{n}` },
    responseCallback: http.expectedStatuses(EXPECT_STATUS),
  });
  const ok = res.status === EXPECT_STATUS;
  check(res, { [`status is ${EXPECT_STATUS}`]: () => ok });
  if (HOT_SHARE > 0) {
    if (hot) {
      hotReqs.add(1);
      hotFailed.add(!ok);
      hotDuration.add(res.timings.duration);
      const backend = res.headers['X-Backend'];
      if (ok && HOT_BACKENDS.length > 0 && !HOT_BACKENDS.includes(backend)) hotOffList.add(1);
    } else {
      otherDuration.add(res.timings.duration);
    }
  }
}

// --- the summary -------------------------------------------------------------

function ms(value) {
  if (value === undefined || value === null || Number.isNaN(value)) return 'n/a';
  return value >= 100 ? `${value.toFixed(0)}ms` : `${value.toFixed(2)}ms`;
}

function compact(data) {
  const m = data.metrics;
  const values = (name) => (m[name] && m[name].values) || {};
  const reqs = values('http_reqs');
  const failed = values('http_req_failed');
  const dur = values('http_req_duration');
  const checks = values('checks');
  const thresholds = [];
  for (const [metric, def] of Object.entries(m)) {
    for (const [expr, result] of Object.entries(def.thresholds || {})) {
      thresholds.push({ metric, threshold: expr, ok: result.ok });
    }
  }
  const seconds = (data.state && data.state.testRunDurationMs ? data.state.testRunDurationMs : 0) / 1000;
  return {
    base_url: BASE_URL,
    scenario: SCENARIO,
    target_rate: RATE,
    duration: DURATION,
    keys: KEYS,
    dist: DIST === 'zipf' ? `zipf(s=${ZIPF_S})` : 'uniform',
    run_seconds: seconds,
    requests: reqs.count || 0,
    rate: reqs.rate || 0,
    failed: failed.passes || 0,
    failed_rate: failed.rate || 0,
    checks_failed: checks.fails || 0,
    dropped_iterations: values('dropped_iterations').count || 0,
    vus_allocated: values('vus_max').max || values('vus_max').value || 0,
    p50_ms: dur.med,
    p90_ms: dur['p(90)'],
    p99_ms: dur['p(99)'],
    p999_ms: dur['p(99.9)'],
    max_ms: dur.max,
    hot_share: HOT_SHARE,
    hot_key: HOT_KEY,
    hot: HOT_SHARE > 0 ? {
      requests: values('hot_reqs').count || 0,
      failed: values('hot_req_failed').passes || 0,
      off_list: HOT_BACKENDS.length > 0 ? values('hot_off_list').count || 0 : null,
      p50_ms: values('hot_req_duration').med,
      p90_ms: values('hot_req_duration')['p(90)'],
      p99_ms: values('hot_req_duration')['p(99)'],
      max_ms: values('hot_req_duration').max,
      other_p50_ms: values('other_req_duration').med,
      other_p90_ms: values('other_req_duration')['p(90)'],
      other_p99_ms: values('other_req_duration')['p(99)'],
    } : null,
    thresholds,
    thresholds_ok: thresholds.every((t) => t.ok),
  };
}

function text(s) {
  const lines = [
    '',
    `k6 summary: ${s.base_url}, ${s.scenario} ${s.target_rate} req/s for ${s.duration}, ${s.keys} keys ${s.dist}`,
    `  requests   ${s.requests} in ${s.run_seconds.toFixed(1)}s (${s.rate.toFixed(1)} req/s)`,
    `  failed     ${s.failed} (${(s.failed_rate * 100).toFixed(3)}%), checks failed ${s.checks_failed}, dropped iterations ${s.dropped_iterations}, VUs allocated ${s.vus_allocated}`,
    `  latency    p50 ${ms(s.p50_ms)}  p90 ${ms(s.p90_ms)}  p99 ${ms(s.p99_ms)}  p99.9 ${ms(s.p999_ms)}  max ${ms(s.max_ms)}`,
  ];
  if (s.hot) {
    const h = s.hot;
    lines.push(
      `  hot key    ${s.hot_key} (${(s.hot_share * 100).toFixed(0)}% of iterations): ${h.requests} requests, ${h.failed} failed${h.off_list === null ? '' : `, ${h.off_list} answered off its list`}`,
      `  hot        p50 ${ms(h.p50_ms)}  p90 ${ms(h.p90_ms)}  p99 ${ms(h.p99_ms)}  max ${ms(h.max_ms)}`,
      `  other keys p50 ${ms(h.other_p50_ms)}  p90 ${ms(h.other_p90_ms)}  p99 ${ms(h.other_p99_ms)}`,
    );
  }
  for (const t of s.thresholds) {
    lines.push(`  threshold  ${t.ok ? 'ok    ' : 'FAILED'} ${t.metric}: ${t.threshold}`);
  }
  lines.push(`  result     ${s.thresholds_ok ? 'PASS' : 'FAIL (thresholds crossed)'}`, '');
  return lines.join('\n');
}

export function handleSummary(data) {
  const s = compact(data);
  const out = { stdout: text(s) };
  const path = env('SUMMARY_JSON', undefined);
  if (path !== undefined) {
    // The compact figures, plus k6's own summary data (every metric).
    out[path] = JSON.stringify({ summary: s, k6: data }, null, 2);
  }
  return out;
}
