// Local feature-flag evaluation with posthog-node (issue 10), on
// bench/flags_defs.py's definitions and persons. Driven by bench/run.py.
//   BENCH_NODE_MODULES=... node flags_bench.js DEFS.json URL ITERATIONS
// URL: a posthog-ingest-server serving the same definitions on
// /flags/definitions; the client loads them with secretKey as in production.
// Rows (p50/p99 per call, each call timed alone with process.hrtime.bigint,
// rotating persons): getFeatureFlag(key, id, {personProperties,
// onlyEvaluateLocally: true, sendFeatureFlagEvents: false}) for the four
// single-flag workloads, getAllFlags(id, {personProperties,
// onlyEvaluateLocally: true}) for all100 (ITERATIONS/20 calls). Each call is
// awaited (the API is async). Prints ONE JSON line.
'use strict';
const fs = require('fs');
const path = require('path');

const [defsPath, url, itersArg] = process.argv.slice(2);
const iters = parseInt(itersArg, 10);
const mods = process.env.BENCH_NODE_MODULES;
if (!defsPath || !url || !iters || !mods) {
  console.error('usage: BENCH_NODE_MODULES=... node flags_bench.js DEFS.json URL ITERATIONS');
  process.exit(2);
}
const { PostHog } = require(path.join(mods, 'posthog-node'));
const version = require(path.join(mods, 'posthog-node', 'package.json')).version;
const data = JSON.parse(fs.readFileSync(defsPath, 'utf8'));
const persons = data.persons;
const nflags = data.definitions.flags.length;
const WORKLOADS = ['rollout', 'props5', 'multivariate', 'cohort'];

function stats(s) {
  s.sort((a, b) => a - b);
  const n = s.length;
  return { p50_ns: s[n >> 1], p99_ns: s[Math.floor(n * 0.99)],
           mean_ns: s.reduce((a, b) => a + b, 0) / n, n };
}

async function timed(fn, count, warm) {
  const np = persons.length;
  for (let i = 0; i < warm; i++) await fn(persons[i % np]);
  const out = new Array(count);
  let undecided = 0;
  for (let i = 0; i < count; i++) {
    const p = persons[i % np];
    const t0 = process.hrtime.bigint();
    const v = await fn(p);
    const t1 = process.hrtime.bigint();
    out[i] = Number(t1 - t0);
    if (v === undefined || v === null) undecided++;
  }
  return [stats(out), undecided];
}

async function main() {
  const client = new PostHog('phc_bench_flags', {
    host: url, secretKey: 'phs_bench_flags_secret', featureFlagsPollingInterval: 3600000,
    flushAt: 1000, fetchRetryCount: 0,
  });
  const res = { client: 'posthog-node', version, api: {}, engine: null, undecided: 0 };
  try {
    const ready = await client.waitForLocalEvaluationReady(15000);
    if (!ready) {
      console.log(JSON.stringify({ unsupported: 'posthog-node ' + version + ': definitions not loaded' }));
      process.exitCode = 3;
      return;
    }
    for (const w of WORKLOADS) {
      const [st, u] = await timed((p) => client.getFeatureFlag(w, p.distinct_id, {
        personProperties: p.person_properties, onlyEvaluateLocally: true,
        sendFeatureFlagEvents: false,
      }), iters, Math.min(iters, 2000));
      res.api[w] = st;
      res.undecided += u;
    }
    const allIters = Math.max(Math.floor(iters / 20), 200);
    const [st, u] = await timed(async (p) => {
      const r = await client.getAllFlags(p.distinct_id, {
        personProperties: p.person_properties, onlyEvaluateLocally: true,
      });
      return r && Object.keys(r).length === nflags ? r : undefined;
    }, allIters, 50);
    res.api.all100 = st;
    res.undecided += u;
    console.log(JSON.stringify(res));
  } finally {
    await client.shutdown(2000);
  }
}

main().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
