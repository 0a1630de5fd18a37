/**
 * Mixed-load benchmark: durable async accepts of a 3-step integration, each step calling a local
 * business application over HTTP, while the same deployment executes them — the shape a user runs,
 * where bench/http.ts (b) only accepts a no-op. A bare Fastify 202 is loaded just before each
 * layout, in the same run, as the baseline. Every server is a process of bench/http-targets.ts and
 * the load is autocannon in another (bench/processes.ts).
 *
 * Per layout it reports accepted/s (and the ratio to the bare 202), accept p50/p99, completed/s
 * under the load and after it (the drain), the backlog (queued + retrying) every second, the
 * server's CPU per completed instance and its peak RSS. Counts come from the server's GET /metrics
 * (counters kept in memory and two counts by status): GET /api/overview reads every instance of the
 * hour and would itself take a large share of the event loop once a second.
 *
 * Run: npm run bench:mixed
 *   BENCH_SECONDS (20) BENCH_CONNECTIONS (48) BENCH_WARMUP_SECONDS (2) BENCH_DRAIN_SECONDS (120, at most)
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { cpuUsOf, load, peakRssMbOf, startServer, stop } from './processes.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 48);
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 2);
const DRAIN_SECONDS = Number(process.env.BENCH_DRAIN_SECONDS ?? 120);
const BACKEND = 4299;
const BARE = 4300;
const storeDir = mkdtempSync(join(tmpdir(), 'tandem-bench-mixed-'));

/**
 * The deployments measured, each started by a role of bench/http-targets.ts. The split layout of
 * issue 22 (HTTP and worker in separate processes on one store) does not exist yet; it is added
 * here as a second entry once it does.
 */
const layouts = [{ name: 'one-process', role: 'tandem-mixed', port: 4301 }];

interface Sample {
  at: number;
  accepted: number;
  completed: number;
  backlog: number;
}

/** Sums a metric's series (every label set) in the Prometheus text of GET /metrics. */
function sum(text: string, name: string): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) total += Number(line.split(' ').at(-1));
  }
  return total;
}

async function sample(port: number): Promise<Sample> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  return {
    at: performance.now(),
    accepted: sum(text, 'tandem_instances_accepted_total'),
    completed: sum(text, 'tandem_instances_succeeded_total') + sum(text, 'tandem_instances_failed_total'),
    backlog: sum(text, 'tandem_queue_depth') + sum(text, 'tandem_instances_retrying'),
  };
}

/** Samples once a second, and at once when `wake` settles, until `done` says so. */
async function sampleUntil(
  port: number,
  samples: Sample[],
  done: (s: Sample) => boolean,
  wake?: Promise<unknown>,
) {
  for (;;) {
    const s = await sample(port);
    samples.push(s);
    if (done(s)) return s;
    await Promise.race([sleep(1000 - ((performance.now() - s.at) % 1000)), ...(wake ? [wake] : [])]);
  }
}

const rate = (from: Sample, to: Sample, key: 'accepted' | 'completed') =>
  (to[key] - from[key]) / ((to.at - from.at) / 1000);

async function measure(layout: (typeof layouts)[number], bareRps: number, server: ChildProcess) {
  const url = `http://127.0.0.1:${layout.port}/orders`;
  await load(url, true, CONNECTIONS, WARMUP_SECONDS);
  await sampleUntil(layout.port, [], (s) => s.completed >= s.accepted);
  const samples: Sample[] = [];
  const cpuBefore = cpuUsOf(server.pid);
  const start = await sample(layout.port);
  let loading = true;
  const result = load(url, true, CONNECTIONS, SECONDS).finally(() => {
    loading = false;
  });
  const loadEnd = await sampleUntil(layout.port, samples, () => !loading, result);
  const r = await result;
  const drained = await sampleUntil(
    layout.port,
    samples,
    (s) => s.completed >= s.accepted || s.at - loadEnd.at > DRAIN_SECONDS * 1000,
  );
  const cpuMs = (cpuUsOf(server.pid) - cpuBefore) / 1000;
  const accepted = r['2xx'] / SECONDS;
  const completedUnderLoad = rate(start, loadEnd, 'completed');
  const drainSeconds = (drained.at - loadEnd.at) / 1000;
  const backlogs = samples.map((s) => s.backlog);
  // Growth over the second half of the load: near 0 when completions keep up with accepts.
  const half = samples[Math.floor(samples.indexOf(loadEnd) / 2)]!;
  const growth = (loadEnd.backlog - half.backlog) / ((loadEnd.at - half.at) / 1000);
  const bounded = drained.completed >= drained.accepted && growth < 0.05 * accepted;
  console.log(
    `| Tandem, ${layout.name} | ${accepted.toFixed(0)} | ${(accepted / bareRps).toFixed(2)}× | ` +
      `${r.latency.p50} / ${r.latency.p99} | ${completedUnderLoad.toFixed(0)} | ` +
      `${rate(loadEnd, drained, 'completed').toFixed(0)} over ${drainSeconds.toFixed(1)} s | ` +
      `${loadEnd.backlog} (${growth >= 0 ? '+' : ''}${growth.toFixed(0)}/s) | ` +
      `${(cpuMs / (drained.completed - start.completed)).toFixed(2)} | ${peakRssMbOf(server.pid).toFixed(0)} |` +
      (r.non2xx + r.errors + r.timeouts > 0 ? ` ${r.non2xx} non-2xx, ${r.errors + r.timeouts} errors |` : ''),
  );
  return { layout: layout.name, backlogs, bounded, drained: drained.completed >= drained.accepted };
}

async function main() {
  console.log(
    `npm run bench:mixed — ${CONNECTIONS} connections, ${SECONDS} s of async accepts per target ` +
      `(3 steps each, calling a local application), ${WARMUP_SECONDS} s warm-up; load average ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}\n`,
  );
  console.log(
    '| target | accepted/s | vs bare 202 | accept p50 / p99 ms | completed/s under load | completed/s after (drain) | backlog at end of load (growth, 2nd half) | server CPU ms/instance | peak RSS MB |',
  );
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  const backend = await startServer('backend', BACKEND, '', storeDir);
  const bare = await startServer('bare-202', BARE, '', storeDir);
  const verdicts = [];
  try {
    for (const layout of layouts) {
      const server = await startServer(layout.role, layout.port, `http://127.0.0.1:${BACKEND}`, storeDir);
      try {
        await load(`http://127.0.0.1:${BARE}/orders`, true, CONNECTIONS, WARMUP_SECONDS);
        const b = await load(`http://127.0.0.1:${BARE}/orders`, true, CONNECTIONS, SECONDS);
        const bareRps = b['2xx'] / SECONDS;
        console.log(
          `| bare Fastify 202, nothing stored | ${bareRps.toFixed(0)} | 1.00× | ${b.latency.p50} / ${b.latency.p99} | – | – | – | – | – |`,
        );
        verdicts.push(await measure(layout, bareRps, server));
      } finally {
        await stop(server);
      }
    }
  } finally {
    await Promise.all([stop(bare), stop(backend)]);
    rmSync(storeDir, { recursive: true, force: true });
  }
  console.log(
    '| Tandem, split (HTTP and worker in separate processes) | not measured: the layout does not exist yet |',
  );
  console.log('');
  for (const v of verdicts) {
    console.log(`${v.layout}: backlog each second, load then drain: ${v.backlogs.join(' ')}`);
    console.log(
      `${v.layout}: the backlog ${v.bounded ? 'stays bounded' : 'grows under the load'}; ` +
        `${v.drained ? 'it drained' : `not drained within ${DRAIN_SECONDS} s`} after the load (aim: ≥ 0.6× the bare 202, bounded)`,
    );
  }
  console.log(
    `load average at the end: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
}

await main();
