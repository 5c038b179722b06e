// posthog-node on the issue-5 workload. Driven by bench/run.py.
//   node bench.js URL N default|tuned
// Needs BENCH_NODE_MODULES = the node_modules dir holding posthog-node.
// Prints ONE JSON line on stdout.
// Capture v1: posthog-node 5.x reads POSTHOG_CAPTURE_MODE=v1 from the
// environment (no constructor option; src/capture-v1/config.ts). When it is
// set to v1 and the client does not report captureMode 'v1' (an SDK without
// v1), this exits 3 with {"unsupported_option":"POSTHOG_CAPTURE_MODE",...},
// which run.py reports as "n/a (option unsupported)".
'use strict';
const path = require('path');

const [url, nArg, cfg] = process.argv.slice(2);
const n = parseInt(nArg, 10);
const mods = process.env.BENCH_NODE_MODULES;
if (!url || !n || !cfg || !mods) {
  console.error('usage: BENCH_NODE_MODULES=... node bench.js URL N default|tuned');
  process.exit(2);
}
const { PostHog } = require(path.join(mods, 'posthog-node'));
const version = require(path.join(mods, 'posthog-node', 'package.json')).version;

const opts = { host: url };
if (cfg === 'tuned') {
  // batches of 1000, a queue that holds all N, gzip on (the default when
  // the runtime supports it; said explicitly here)
  Object.assign(opts, {
    flushAt: 1000,
    maxBatchSize: 1000,
    maxQueueSize: Math.max(n, 1000),
    disableCompression: false,
  });
}

async function main() {
  const client = new PostHog('phc_bench_key', opts);
  // private field in 5.x (resolved from POSTHOG_CAPTURE_MODE at construction)
  const mode = client.captureMode === undefined ? null : client.captureMode;
  const want = process.env.POSTHOG_CAPTURE_MODE;
  if (want && want !== mode) {
    console.log(JSON.stringify({
      unsupported_option: 'POSTHOG_CAPTURE_MODE', value: want, version,
      status: 'posthog-node ' + version + ' reports captureMode=' + JSON.stringify(mode),
    }));
    await client.shutdown(1000);
    process.exit(3);
  }
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    client.capture({
      distinctId: 'user-' + (i % 1000),
      event: 'bench_event',
      properties: {
        plan: 'pro', count: i, ratio: 0.5, flag: true,
        path: '/checkout/step/2', tags: ['a', 'b'],
      },
    });
  }
  const t1 = process.hrtime.bigint();
  await client.shutdown(600000);
  const t2 = process.hrtime.bigint();
  const cpu = process.cpuUsage(cpu0);
  const loop = Number(t1 - t0) / 1e9;
  console.log(JSON.stringify({
    client: 'posthog-node', version, config: cfg, capture_mode: mode, n,
    loop_s: loop, capture_ns: (loop * 1e9) / n,
    e2e_s: Number(t2 - t0) / 1e9,
    cpu_s: (cpu.user + cpu.system) / 1e6,
    maxrss_kib: Math.round(process.resourceUsage().maxRSS),
    vmhwm_kib: vmhwmKib(),
  }));
}

main().catch((e) => { console.error(e); process.exit(1); });

// Peak RSS of this process's own address space (VmHWM), KiB; null if unknown.
// maxRSS (getrusage) would carry the RSS of the parent that forked us.
function vmhwmKib() {
  try {
    const m = require('fs').readFileSync('/proc/self/status', 'utf8').match(/^VmHWM:\s+(\d+)/m);
    return m ? Number(m[1]) : null;
  } catch (e) {
    return null;
  }
}
