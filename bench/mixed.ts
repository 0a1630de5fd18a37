/**
 * Mixed-load benchmark: durable async accepts of a 3-step integration, each step calling a local
 * business application over HTTP, while the same deployment executes them — the shape a user runs,
 * where bench/http.ts (b) only accepts a no-op. A bare Fastify 202 is loaded just before each
 * layout, in the same run, as the baseline. Every server is a process of bench/http-targets.ts and
 * the load is autocannon in another (bench/processes.ts).
 *
 * Two layouts: one process doing both (`tandem start --workers 0`), and split, one api process and
 * N worker processes on the same SQLite file (what `tandem start` supervises), each started by a
 * role of bench/http-targets.ts, the api first. Before them, the floor (`bare`): one process that
 * accepts the same orders into memory and makes the same three calls with no runtime, nothing
 * stored — what this machine can do for the workload at all, so that a layout's figures can be read
 * against what is possible here.
 *
 * Per layout it reports accepted/s (and the ratio to the bare 202), accept p50/p99, completed/s
 * under the load and after it (the drain), the backlog (queued + retrying) every second, the CPU
 * per completed instance summed over the layout's processes, and their RSS summed: idle before the
 * load, peak (the sum of each process's VmHWM) and after the drain. Counts come from GET /metrics
 * (accepts and the backlog from the api process, completions summed over the worker processes):
 * GET /api/overview reads every instance of the hour and would itself take a large share of the
 * event loop once a second.
 *
 * Soak (BENCH_SOAK_SECONDS, e.g. 600): after the measured round, each layout takes the mixed load
 * at 80% of the completion rate it showed (autocannon's overall rate), so that the store stays
 * bounded, while the RSS of every process is read every 10 s; the report says whether it grows.
 *
 * Run: npm run bench:mixed
 *   BENCH_SECONDS (20) BENCH_CONNECTIONS (48) BENCH_WARMUP_SECONDS (2) BENCH_DRAIN_SECONDS (120, at most)
 *   BENCH_SPLIT_WORKERS (1; a list such as 1,2 measures one split layout per count)
 *   BENCH_LAYOUTS (bare,one-process,split: which, in this order) BENCH_SOAK_SECONDS (0: no soak)
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { cpuUsOf, load, peakRssMbOf, rssMbOf, startServer, stop } from './processes.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 48);
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 2);
const DRAIN_SECONDS = Number(process.env.BENCH_DRAIN_SECONDS ?? 120);
const SOAK_SECONDS = Number(process.env.BENCH_SOAK_SECONDS ?? 0);
const SPLIT_WORKERS = (process.env.BENCH_SPLIT_WORKERS ?? '1').split(',').map(Number);
const LAYOUTS = (process.env.BENCH_LAYOUTS ?? 'bare,one-process,split').split(',');
const BACKEND = 4299;
const BARE = 4300;
const storeDir = mkdtempSync(join(tmpdir(), 'tandem-bench-mixed-'));

/** A deployment measured: its processes (roles of bench/http-targets.ts), the api's port first. */
interface Layout {
  name: string;
  processes: { role: string; port: number }[];
  /** Where accepts go and the backlog is read. */
  api: number;
  /** Where completions are counted. */
  workers: number[];
}

/** The layouts in the order BENCH_LAYOUTS names them, so that runs can alternate the order. */
const layouts: Layout[] = LAYOUTS.flatMap((name): Layout[] => {
  // The floor: no runtime, the same accepts and calls (bench/http-targets.ts bare-mixed).
  if (name === 'bare')
    return [{ name, processes: [{ role: 'bare-mixed', port: 4302 }], api: 4302, workers: [4302] }];
  if (name === 'one-process')
    return [{ name, processes: [{ role: 'tandem-mixed', port: 4301 }], api: 4301, workers: [4301] }];
  if (name !== 'split') throw new Error(`BENCH_LAYOUTS: unknown layout ${name}`);
  return SPLIT_WORKERS.map((n, i) => {
    const api = 4310 + 10 * i;
    const workers = Array.from({ length: n }, (_, k) => api + 1 + k);
    return {
      name: `split, 1 api + ${n} worker${n === 1 ? '' : 's'}`,
      processes: [
        { role: 'tandem-mixed-api', port: api },
        ...workers.map((port) => ({ role: 'tandem-mixed-worker', port })),
      ],
      api,
      workers,
    };
  });
});

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

const metricsOf = async (port: number) => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();

async function sample(layout: Layout): Promise<Sample> {
  const api = await metricsOf(layout.api);
  const workers = await Promise.all(
    layout.workers.map((port) => (port === layout.api ? api : metricsOf(port))),
  );
  let completed = 0;
  for (const text of workers) {
    completed += sum(text, 'tandem_instances_succeeded_total') + sum(text, 'tandem_instances_failed_total');
  }
  return {
    at: performance.now(),
    accepted: sum(api, 'tandem_instances_accepted_total'),
    completed,
    backlog: sum(api, 'tandem_queue_depth') + sum(api, 'tandem_instances_retrying'),
  };
}

/** Samples once a second, and at once when `wake` settles, until `done` says so. */
async function sampleUntil(
  layout: Layout,
  samples: Sample[],
  done: (s: Sample) => boolean,
  wake?: Promise<unknown>,
) {
  for (;;) {
    const s = await sample(layout);
    samples.push(s);
    if (done(s)) return s;
    await Promise.race([sleep(1000 - ((performance.now() - s.at) % 1000)), ...(wake ? [wake] : [])]);
  }
}

const rate = (from: Sample, to: Sample, key: 'accepted' | 'completed') =>
  (to[key] - from[key]) / ((to.at - from.at) / 1000);

const total = (pids: (number | undefined)[], of: (pid: number | undefined) => number): number =>
  pids.reduce<number>((all, pid) => all + of(pid), 0);
const mb = (value: number) => value.toFixed(0);
const loadAverage = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

async function measure(layout: Layout, bareRps: number, servers: ChildProcess[]) {
  const url = `http://127.0.0.1:${layout.api}/orders`;
  const pids = servers.map((server) => server.pid);
  const idleRss = total(pids, rssMbOf);
  await load(url, true, CONNECTIONS, WARMUP_SECONDS);
  await sampleUntil(layout, [], (s) => s.completed >= s.accepted);
  const samples: Sample[] = [];
  const cpuBefore = total(pids, cpuUsOf);
  const start = await sample(layout);
  let loading = true;
  const result = load(url, true, CONNECTIONS, SECONDS).finally(() => {
    loading = false;
  });
  const loadEnd = await sampleUntil(layout, samples, () => !loading, result);
  const r = await result;
  const drained = await sampleUntil(
    layout,
    samples,
    (s) => s.completed >= s.accepted || s.at - loadEnd.at > DRAIN_SECONDS * 1000,
  );
  const cpuMs = (total(pids, cpuUsOf) - cpuBefore) / 1000;
  const afterRss = total(pids, rssMbOf);
  const accepted = r['2xx'] / SECONDS;
  const completedUnderLoad = rate(start, loadEnd, 'completed');
  const drainSeconds = (drained.at - loadEnd.at) / 1000;
  const backlogs = samples.map((s) => s.backlog);
  // Growth over the second half of the load: near 0 when completions keep up with accepts.
  const half = samples[Math.floor(samples.indexOf(loadEnd) / 2)]!;
  const growth = (loadEnd.backlog - half.backlog) / ((loadEnd.at - half.at) / 1000);
  const bounded = drained.completed >= drained.accepted && growth < 0.05 * accepted;
  const completedPerSecond = (drained.completed - start.completed) / ((drained.at - start.at) / 1000);
  console.log(
    `| ${layout.name === 'bare' ? 'no runtime (memory queue, the same calls)' : `Tandem, ${layout.name}`} | ${accepted.toFixed(0)} | ${(accepted / bareRps).toFixed(2)}× | ` +
      `${r.latency.p50} / ${r.latency.p99} | ${completedUnderLoad.toFixed(0)} | ` +
      `${rate(loadEnd, drained, 'completed').toFixed(0)} over ${drainSeconds.toFixed(1)} s | ` +
      `${loadEnd.backlog} (${growth >= 0 ? '+' : ''}${growth.toFixed(0)}/s) | ` +
      `${(cpuMs / (drained.completed - start.completed)).toFixed(2)} | ` +
      `${mb(idleRss)} / ${mb(total(pids, peakRssMbOf))} / ${mb(afterRss)} |` +
      (r.non2xx + r.errors + r.timeouts > 0 ? ` ${r.non2xx} non-2xx, ${r.errors + r.timeouts} errors |` : ''),
  );
  return {
    layout: layout.name,
    backlogs,
    bounded,
    drained: drained.completed >= drained.accepted,
    completedPerSecond,
  };
}

/**
 * The mixed load at a rate the layout keeps up with, for SOAK_SECONDS, reading the RSS of each of
 * its processes every 10 s: does memory grow beyond the page cache?
 */
async function soak(layout: Layout, servers: ChildProcess[], completedPerSecond: number) {
  const pids = servers.map((server) => server.pid);
  const rateAsked = 0.8 * completedPerSecond;
  const url = `http://127.0.0.1:${layout.api}/orders`;
  const rows: { second: number; rss: number[]; backlog: number }[] = [];
  const began = performance.now();
  let loading = true;
  const result = load(url, true, CONNECTIONS, SOAK_SECONDS, rateAsked).finally(() => {
    loading = false;
  });
  while (loading) {
    rows.push({
      second: Math.round((performance.now() - began) / 1000),
      rss: pids.map(rssMbOf),
      backlog: (await sample(layout)).backlog,
    });
    await Promise.race([sleep(10_000), result]);
  }
  const r = await result;
  console.log(
    `\nsoak, ${layout.name}: ${SOAK_SECONDS} s at ${rateAsked.toFixed(0)} accepts/s asked ` +
      `(80% of ${completedPerSecond.toFixed(0)} completed/s), ${(r['2xx'] / SOAK_SECONDS).toFixed(0)} accepted/s; ` +
      `load average ${loadAverage()}`,
  );
  console.log(`| s | ${layout.processes.map((p) => `${p.role} RSS MB`).join(' | ')} | backlog |`);
  console.log(`|---:|${layout.processes.map(() => '---:').join('|')}|---:|`);
  for (const row of rows) console.log(`| ${row.second} | ${row.rss.map(mb).join(' | ')} | ${row.backlog} |`);
  // The first minute warms caches and pools; after it, compare the first and the last third.
  const settled = rows.filter((row) => row.second >= 60);
  const third = Math.max(1, Math.floor(settled.length / 3));
  const mean = (part: typeof rows) =>
    part.reduce((sum, row) => sum + row.rss.reduce((a, b) => a + b, 0), 0) / part.length;
  if (settled.length >= 3) {
    const first = mean(settled.slice(0, third));
    const last = mean(settled.slice(-third));
    console.log(
      `soak, ${layout.name}: RSS summed ${mb(first)} MB (first third after the first minute) → ${mb(last)} MB ` +
        `(last third): ${last > first * 1.1 ? 'GROWS by more than 10%' : 'no growth beyond 10%'}; ` +
        `backlog at the end ${rows.at(-1)!.backlog}`,
    );
  }
}

async function main() {
  console.log(
    `npm run bench:mixed — ${CONNECTIONS} connections, ${SECONDS} s of async accepts per target ` +
      `(3 steps each, calling a local application), ${WARMUP_SECONDS} s warm-up; load average ${loadAverage()}\n`,
  );
  console.log(
    '| target | accepted/s | vs bare 202 | accept p50 / p99 ms | completed/s under load | completed/s after (drain) | backlog at end of load (growth, 2nd half) | CPU ms/instance (all processes) | RSS MB idle / peak / after (all processes) |',
  );
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  const backend = await startServer('backend', BACKEND, '', storeDir);
  const bare = await startServer('bare-202', BARE, '', storeDir);
  const verdicts = [];
  try {
    for (const layout of layouts) {
      const dir = join(storeDir, layout.name.replace(/\W+/g, '-'));
      mkdirSync(dir);
      const servers: ChildProcess[] = [];
      try {
        // One after another, the api first: it migrates the store the workers open.
        for (const { role, port } of layout.processes) {
          servers.push(await startServer(role, port, `http://127.0.0.1:${BACKEND}`, dir));
        }
        await sleep(2_000); // idle RSS once started, not while starting
        await load(`http://127.0.0.1:${BARE}/orders`, true, CONNECTIONS, WARMUP_SECONDS);
        const b = await load(`http://127.0.0.1:${BARE}/orders`, true, CONNECTIONS, SECONDS);
        const bareRps = b['2xx'] / SECONDS;
        console.log(
          `| bare Fastify 202, nothing stored | ${bareRps.toFixed(0)} | 1.00× | ${b.latency.p50} / ${b.latency.p99} | – | – | – | – | – |`,
        );
        const verdict = await measure(layout, bareRps, servers);
        verdicts.push(verdict);
        if (SOAK_SECONDS > 0) await soak(layout, servers, verdict.completedPerSecond);
      } finally {
        await Promise.all(servers.map((server) => stop(server)));
      }
    }
  } finally {
    await Promise.all([stop(bare), stop(backend)]);
    rmSync(storeDir, { recursive: true, force: true });
  }
  console.log('');
  for (const v of verdicts) {
    console.log(`${v.layout}: backlog each second, load then drain: ${v.backlogs.join(' ')}`);
    console.log(
      `${v.layout}: the backlog ${v.bounded ? 'stays bounded' : 'grows under the load'}; ` +
        `${v.drained ? 'it drained' : `not drained within ${DRAIN_SECONDS} s`} after the load (aim: ≥ 0.6× the bare 202, bounded)`,
    );
  }
  console.log(`load average at the end: ${loadAverage()}`);
}

await main();
