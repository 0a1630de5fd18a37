/**
 * HTTP benchmark: Tandem against bare Fastify baselines measured in the same run. Every server runs
 * in its own process and the load comes from autocannon in another. Targets of one comparison run
 * side by side and are loaded in alternating rounds (median reported), so that a noisy neighbour
 * on this shared machine hits both alike.
 *
 *   (a) a sync route that calls a local backend   vs  a bare Fastify proxy of the same backend
 *   (b) durable async accepts (202 after commit)   vs  a bare Fastify route answering 202 unstored
 *
 * Each comparison's figure is the median of per-round ratios (a round of Tandem against the
 * baseline's round just before it), beside the ratio of server CPU per request (from /proc).
 *
 * Run: npm run bench:http
 *   BENCH_SECONDS (5 per round) BENCH_ROUNDS (3) BENCH_CONNECTIONS (50) BENCH_WARMUP_SECONDS (2)
 *   BENCH_ONLY=a or b: one comparison only
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cpuUsOf, load as loadUrl, median, startServer as start, stop } from './processes.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 2);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const ONLY = process.env.BENCH_ONLY ?? '';
const storeDir = mkdtempSync(join(tmpdir(), 'tandem-bench-http-'));
let nextPort = 4100;

interface Target {
  name: string;
  role: string;
  path: string;
  post: boolean;
  port: number;
  process?: ChildProcess;
  rounds: { rps: number; p99: number; non2xx: number; errors: number; cpuUs: number }[];
}

function startServer(role: string, port: number, backend = ''): Promise<ChildProcess> {
  return start(role, port, backend, storeDir);
}

function load(target: Target, seconds: number): Promise<any> {
  return loadUrl(`http://127.0.0.1:${target.port}${target.path}`, target.post, CONNECTIONS, seconds);
}

/** Starts the targets, warms each, then loads them in alternating rounds. */
async function compare(targets: Omit<Target, 'port' | 'rounds'>[], backend = ''): Promise<Target[]> {
  const running: Target[] = targets.map((t) => ({ ...t, port: nextPort++, rounds: [] }));
  try {
    for (const t of running) t.process = await startServer(t.role, t.port, backend);
    for (const t of running) await load(t, WARMUP_SECONDS);
    for (let round = 0; round < ROUNDS; round++) {
      for (const t of running) {
        const cpuBefore = cpuUsOf(t.process?.pid);
        const r = await load(t, SECONDS);
        t.rounds.push({
          rps: r.requests.average,
          p99: r.latency.p99,
          non2xx: r.non2xx,
          errors: r.errors + r.timeouts,
          cpuUs: (cpuUsOf(t.process?.pid) - cpuBefore) / r.requests.total,
        });
      }
    }
  } finally {
    for (const t of running) await stop(t.process);
  }
  for (const t of running) {
    const rps = median(t.rounds.map((r) => r.rps));
    const p99 = median(t.rounds.map((r) => r.p99));
    const cpu = median(t.rounds.map((r) => r.cpuUs));
    const bad = t.rounds.reduce((n, r) => n + r.non2xx + r.errors, 0);
    const all = t.rounds.map((r) => r.rps.toFixed(0)).join(' / ');
    console.log(
      `| ${t.name} | ${rps.toFixed(0)} | ${p99} | ${cpu.toFixed(0)} | ${all} |${bad > 0 ? ` ${bad} non-2xx or errors |` : ''}`,
    );
  }
  return running;
}

/**
 * Ratios of rounds loaded minutes apart are at the mercy of the neighbours; each round's ratio is
 * taken against the baseline's round just before it, and the median of those is the figure. The
 * servers' CPU per request is the second view: what each process itself spent, whatever the load.
 */
function summary(label: string, tandem: Target, baseline: Target, aim: number) {
  const ratios = tandem.rounds.map((r, i) => r.rps / baseline.rounds[i]!.rps);
  const cpuRatio = median(tandem.rounds.map((r, i) => baseline.rounds[i]!.cpuUs / r.cpuUs));
  const p99 = (t: Target) => median(t.rounds.map((r) => r.p99));
  console.log(
    `${label}: ${median(ratios).toFixed(2)}× req/s (aim ≥ ${aim}×; rounds ${ratios.map((r) => r.toFixed(2)).join(' / ')}), ` +
      `server CPU per request: baseline's / Tandem's ${cpuRatio.toFixed(2)}×, p99 ${p99(tandem)} ms vs ${p99(baseline)} ms`,
  );
}

async function main() {
  console.log(
    `npm run bench:http — ${CONNECTIONS} connections, ${ROUNDS} alternating rounds of ${SECONDS} s per target (median), ${WARMUP_SECONDS} s warm-up\n`,
  );
  console.log(
    '| target | req/s (median) | p99 ms (median) | server CPU µs/request (median) | req/s per round |',
  );
  console.log('|---|---:|---:|---:|---|');
  let a: Target[] = [];
  const backend = ONLY === 'b' ? undefined : await startServer('backend', 4099);
  if (backend)
    try {
      a = await compare(
        [
          { name: '(a) bare Fastify proxy → backend', role: 'bare-proxy', path: '/stock/A-1', post: false },
          {
            name: '(a) bare proxy + AbortSignal per request',
            role: 'bare-proxy-abortable',
            path: '/stock/A-1',
            post: false,
          },
          {
            name: '(a) Tandem sync route → backend, fetch with ctx.signal',
            role: 'tandem-sync',
            path: '/stock/A-1',
            post: false,
          },
          {
            name: '(a) Tandem sync route → backend, fetch without signal',
            role: 'tandem-sync-unsignalled',
            path: '/stock/A-1',
            post: false,
          },
        ],
        'http://127.0.0.1:4099',
      );
    } finally {
      await stop(backend);
    }
  const b =
    ONLY === 'a'
      ? []
      : await compare([
          { name: '(b) bare Fastify 202, nothing stored', role: 'bare-202', path: '/orders', post: true },
          {
            name: '(b) Tandem async accept, API-only process',
            role: 'tandem-async',
            path: '/orders',
            post: true,
          },
          {
            name: '(b) Tandem async accept, worker running',
            role: 'tandem-async-worker',
            path: '/orders',
            post: true,
          },
        ]);
  rmSync(storeDir, { recursive: true, force: true });
  console.log('');
  if (a.length > 0) {
    summary('(a) Tandem sync (fetch with ctx.signal) vs bare proxy', a[2]!, a[0]!, 0.9);
    summary('(a) Tandem sync (fetch with ctx.signal) vs bare proxy with AbortSignal', a[2]!, a[1]!, 0.9);
    summary('(a) Tandem sync (same fetch as the proxy) vs bare proxy', a[3]!, a[0]!, 0.9);
  }
  if (b.length > 0) {
    summary('(b) durable accepts (API-only) vs bare 202', b[1]!, b[0]!, 0.8);
    summary('(b) durable accepts (worker running) vs bare 202', b[2]!, b[0]!, 0.6);
  }
}

await main();
