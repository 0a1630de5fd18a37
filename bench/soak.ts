/**
 * Soak: mixed sync, async and batch load at a steady rate against a real server process on a real
 * store, with a simulated target application, for minutes. Checks, and exits non-zero when one
 * fails:
 *   - no errors: every sync answer 200, every accept 202 (during a target outage, sync answers
 *     502/503/504 are expected and counted apart);
 *   - nothing lost: every acknowledged async instance and every handed-off batch line succeeds;
 *   - no duplicate step execution (no fault is injected but the outage, which repeats nothing);
 *   - memory flat after warm-up: the server's RSS in the last window ≤ 1.2 × its peak in window 2,
 *     plus the SQLite page cache (16 MiB by default), which fills as the database grows and then stays;
 *   - latency stable: after the first window, the later half's p99 ≤ 2 × the earlier half's + 20 ms
 *     and its p50 ≤ 1.5 × the earlier half's + 5 ms.
 *
 *   npm run soak -- --minutes 10                       (the figures in docs/reliability.md)
 *   npm run soak -- --minutes 4 --target-down 150      (the target application down for 2.5 minutes)
 *   npm run soak -- --store postgres://…  --rate 100 --window 60
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { PostgresStore } from '../src/store/postgres/store.js';
import { SqliteStore } from '../src/store/sqlite/store.js';
import type { Store } from '../src/store/store.js';
import { appServer, json } from '../test/support/app-server.js';

/** The SQLite store's page cache (`cacheKiB`, 16 MiB): bounded, and filled as the database grows. */
const PAGE_CACHE_MB = 16;

export interface SoakOptions {
  seconds: number;
  /** Requests per second, open loop (sent on schedule whatever the answers do). */
  rate: number;
  /** Length of one reporting window. */
  windowSeconds: number;
  /** `sqlite:` (a fresh file) unless a `postgres://` URL is given. */
  storeUrl?: string;
  /** Lines per batch request. */
  batchLines: number;
  /** Seconds the target application is down, in the middle of the run (0: never). */
  targetDownSeconds: number;
  /**
   * Windows whose peak RSS is the reference for "memory flat" (default: window 2). Short runs with
   * windows of seconds use the peak of windows 1–2, since one garbage collection cycle spans them.
   */
  memoryReferenceWindows?: number[];
  /** Later-half p99 allowed: factor × earlier-half p99 + slack ms. Default 2 × + 20 ms. */
  latencyLimit?: { factor: number; slackMs: number };
  log?: (line: string) => void;
}

export interface SoakWindow {
  index: number;
  requests: number;
  errors: number;
  p50Ms: number;
  p99Ms: number;
  rssMaxMb: number;
  targetDown: boolean;
}

export interface SoakReport {
  options: Omit<SoakOptions, 'log'>;
  requests: number;
  byKind: Record<string, number>;
  errors: number;
  errorStatuses: Record<string, number>;
  expectedDuringOutage: number;
  asyncAcknowledged: number;
  batchLinesAcknowledged: number;
  instancesLost: number;
  duplicateSteps: number;
  /** Latency of the earlier and the later half of the run after warm-up. */
  latency: { earlyP50Ms: number; earlyP99Ms: number; lateP50Ms: number; lateP99Ms: number };
  windows: SoakWindow[];
  violations: string[];
}

/** The simulated application: answers after a tick; counts Idempotency-Keys; can go down. */
export async function targetApp() {
  const seen = new Map<string, number>();
  const server = await appServer(
    (request, response) => {
      const key = request.headers['idempotency-key'];
      if (request.method === 'POST' && typeof key === 'string') seen.set(key, (seen.get(key) ?? 0) + 1);
      return new Promise<void>((resolve) =>
        setImmediate(() => {
          json(response, 200, { ok: true, at: Date.now() });
          resolve();
        }),
      );
    },
    { keep: false },
  );
  return {
    url: server.url,
    seen,
    get up() {
      return server.isUp;
    },
    down: () => server.down(),
    start: () => server.up(),
  };
}

/** Starts bench/soak-server.ts as a child and waits for its URL. */
export async function startSoakServer(storeUrl: string, appUrl: string, args: string[] = []) {
  const child: ChildProcess = spawn(
    process.execPath,
    ['--import', 'tsx', join(import.meta.dirname, 'soak-server.ts'), storeUrl, appUrl, ...args],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    let buffered = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const match = /listening (\S+)/.exec(buffered);
      if (match) resolve(match[1]!);
    });
    child.once('exit', (code) => reject(new Error(`soak server exited (${code}) before listening`)));
  });
  return { child, url, exited };
}

/** Resident memory of a process in MB (Linux), or null where /proc is not there. */
export function rssMb(pid: number): number | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = /VmRSS:\s+(\d+)/.exec(status)?.[1];
    return kb ? Number(kb) / 1024 : null;
  } catch {
    return null;
  }
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

type Kind = 'sync' | 'async' | 'batch';

/** Opens the soak's store from this process, to check the outcome. */
async function openForCheck(storeUrl: string): Promise<Store> {
  if (storeUrl.startsWith('sqlite:')) return new SqliteStore({ path: storeUrl.slice('sqlite:'.length) });
  const parsed = new URL(storeUrl);
  const schema = parsed.searchParams.get('schema') ?? undefined;
  parsed.searchParams.delete('schema');
  return PostgresStore.open({ url: parsed.toString(), ...(schema ? { schema } : {}) });
}

export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const log = options.log ?? (() => {});
  const dir = mkdtempSync(join(tmpdir(), 'tandem-soak-'));
  const storeUrl = options.storeUrl ?? `sqlite:${join(dir, 'tandem.db')}`;
  const app = await targetApp();
  const server = await startSoakServer(storeUrl, app.url);
  const pid = server.child.pid!;
  const windowCount = Math.max(1, Math.ceil(options.seconds / options.windowSeconds));
  const windows: (SoakWindow & { latencies: number[] })[] = Array.from(
    { length: windowCount },
    (_, index) => ({
      index,
      requests: 0,
      errors: 0,
      p50Ms: 0,
      p99Ms: 0,
      rssMaxMb: 0,
      targetDown: false,
      latencies: [],
    }),
  );
  const byKind: Record<Kind, number> = { sync: 0, async: 0, batch: 0 };
  const errorStatuses: Record<string, number> = {};
  const asyncIds: string[] = [];
  let batchLines = 0;
  let expectedDuringOutage = 0;
  let sent = 0;
  const started = performance.now();
  const windowOf = () =>
    windows[
      Math.min(windowCount - 1, Math.floor((performance.now() - started) / 1000 / options.windowSeconds))
    ]!;
  const outageFrom =
    options.targetDownSeconds > 0 ? (options.seconds - options.targetDownSeconds) / 2 : Infinity;
  const outageTo = outageFrom + options.targetDownSeconds;

  const rssTimer = setInterval(() => {
    const rss = rssMb(pid);
    const window = windowOf();
    if (rss !== null) window.rssMaxMb = Math.max(window.rssMaxMb, rss);
    if (!app.up) window.targetDown = true;
  }, 250);

  async function one(n: number): Promise<void> {
    const kind: Kind = n % 20 < 10 ? 'sync' : n % 20 < 17 ? 'async' : 'batch';
    byKind[kind]++;
    const t0 = performance.now();
    let status = 0;
    let body: any;
    try {
      const response =
        kind === 'sync'
          ? await fetch(`${server.url}/prices/SKU-${n % 500}`)
          : kind === 'async'
            ? await fetch(`${server.url}/orders`, {
                method: 'POST',
                headers: { 'content-type': 'application/json' },
                body: JSON.stringify({ orderId: `S-${n}` }),
              })
            : await fetch(`${server.url}/batches`, {
                method: 'POST',
                headers: { 'content-type': 'application/json' },
                body: JSON.stringify({ batchId: `B-${n}`, lines: options.batchLines }),
              });
      status = response.status;
      const text = await response.text();
      body = text ? JSON.parse(text) : undefined;
    } catch {
      status = 0;
    }
    const window = windowOf();
    window.requests++;
    window.latencies.push(performance.now() - t0);
    const expected = kind === 'async' ? 202 : 200;
    if (status === expected) {
      if (kind === 'async') asyncIds.push(body.instanceId);
      if (kind === 'batch') batchLines += body.count;
    } else if (kind === 'sync' && !app.up && [502, 503, 504].includes(status)) {
      expectedDuringOutage++;
    } else if (kind === 'sync' && [502, 503, 504].includes(status) && window.targetDown) {
      // The answer raced the outage's start or end.
      expectedDuringOutage++;
    } else {
      window.errors++;
      errorStatuses[status] = (errorStatuses[status] ?? 0) + 1;
    }
  }

  const inFlight = new Set<Promise<void>>();
  const endAt = started + options.seconds * 1000;
  let lastReported = -1;
  while (performance.now() < endAt) {
    const elapsed = (performance.now() - started) / 1000;
    if (elapsed >= outageFrom && elapsed < outageTo && app.up) {
      log(`target application down at ${elapsed.toFixed(0)} s`);
      await app.down();
    } else if (elapsed >= outageTo && !app.up) {
      log(`target application up again at ${elapsed.toFixed(0)} s`);
      await app.start();
    }
    const due = Math.floor(elapsed * options.rate);
    while (sent < due) {
      const p = one(sent++);
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
    }
    const current = windowOf().index;
    if (current !== lastReported && current > 0) {
      log(describe(summarise(windows[current - 1]!)));
      lastReported = current;
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  if (!app.up) await app.start();
  await Promise.all(inFlight);
  clearInterval(rssTimer);
  const summaries = windows.map(summarise);
  log(describe(summaries[summaries.length - 1]!));

  // Drain: every acknowledged instance must succeed.
  log('waiting for the backlog to drain');
  const store = await openForCheck(storeUrl);
  let instancesLost = 0;
  try {
    const drainBy = Date.now() + 180_000;
    let succeeded = 0;
    const expected = asyncIds.length + batchLines;
    for (;;) {
      succeeded =
        (await store.countInstances({ integrationId: ['fulfil', 'fulfil-line'], status: 'succeeded' })) ?? 0;
      if (succeeded >= expected || Date.now() > drainBy) break;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    let found = 0;
    for (let i = 0; i < asyncIds.length; i += 500) {
      found += await store.countInstances({ ids: asyncIds.slice(i, i + 500), status: 'succeeded' });
    }
    const lines = await store.countInstances({ integrationId: 'fulfil-line', status: 'succeeded' });
    instancesLost = asyncIds.length - found + Math.max(0, batchLines - lines);
  } finally {
    await store.close();
    server.child.kill('SIGTERM');
    await server.exited;
    await app.down();
    if (!options.storeUrl) rmSync(dir, { recursive: true, force: true });
  }
  const duplicateSteps = [...app.seen.values()].filter((count) => count > 1).length;

  const violations: string[] = [];
  const errors = summaries.reduce((sum, w) => sum + w.errors, 0);
  if (errors > 0) violations.push(`${errors} errors: ${JSON.stringify(errorStatuses)}`);
  if (instancesLost > 0) violations.push(`${instancesLost} acknowledged instances did not succeed`);
  if (duplicateSteps > 0) violations.push(`${duplicateSteps} steps ran more than once`);
  const reference = Math.max(
    ...(options.memoryReferenceWindows ?? [1]).map(
      (i) => summaries[Math.min(i, summaries.length - 1)]!.rssMaxMb,
    ),
  );
  const last = summaries[summaries.length - 1]!;
  if (reference > 0 && last.rssMaxMb > reference * 1.2 + PAGE_CACHE_MB) {
    violations.push(
      `memory grew: ${last.rssMaxMb.toFixed(0)} MB in the last window > 1.2 × ${reference.toFixed(0)} MB + ${PAGE_CACHE_MB} MB page cache`,
    );
  }
  // Latency: the later half of the run after warm-up against the earlier half (windows in which
  // the target was down are left out: their sync answers are fast refusals).
  const after = windows.slice(1).filter((w) => !w.targetDown);
  const half = Math.ceil(after.length / 2);
  const early = after
    .slice(0, half)
    .flatMap((w) => w.latencies)
    .sort((a, b) => a - b);
  const late = after
    .slice(half)
    .flatMap((w) => w.latencies)
    .sort((a, b) => a - b);
  const latency = {
    earlyP50Ms: percentile(early, 50),
    earlyP99Ms: percentile(early, 99),
    lateP50Ms: percentile(late, 50),
    lateP99Ms: percentile(late, 99),
  };
  const { factor, slackMs } = options.latencyLimit ?? { factor: 2, slackMs: 20 };
  if (late.length > 0 && latency.lateP99Ms > latency.earlyP99Ms * factor + slackMs) {
    violations.push(
      `latency grew: p99 ${latency.lateP99Ms.toFixed(1)} ms in the later half > ${factor} × ${latency.earlyP99Ms.toFixed(1)} ms + ${slackMs} ms`,
    );
  }
  if (late.length > 0 && latency.lateP50Ms > latency.earlyP50Ms * 1.5 + 5) {
    violations.push(
      `latency grew: p50 ${latency.lateP50Ms.toFixed(1)} ms in the later half > 1.5 × ${latency.earlyP50Ms.toFixed(1)} ms + 5 ms`,
    );
  }
  const { log: _log, ...shown } = options;
  return {
    options: shown,
    requests: sent,
    byKind,
    errors,
    errorStatuses,
    expectedDuringOutage,
    asyncAcknowledged: asyncIds.length,
    batchLinesAcknowledged: batchLines,
    instancesLost,
    duplicateSteps,
    latency: Object.fromEntries(
      Object.entries(latency).map(([k, v]) => [k, Math.round(v * 10) / 10]),
    ) as typeof latency,
    windows: summaries,
    violations,
  };
}

function summarise(w: SoakWindow & { latencies: number[] }): SoakWindow {
  const sorted = [...w.latencies].sort((a, b) => a - b);
  return {
    index: w.index,
    requests: w.requests,
    errors: w.errors,
    p50Ms: Math.round(percentile(sorted, 50) * 10) / 10,
    p99Ms: Math.round(percentile(sorted, 99) * 10) / 10,
    rssMaxMb: Math.round(w.rssMaxMb),
    targetDown: w.targetDown,
  };
}

function describe(w: SoakWindow): string {
  return `window ${w.index + 1}: ${w.requests} requests, ${w.errors} errors, p50 ${w.p50Ms} ms, p99 ${w.p99Ms} ms, RSS ≤ ${w.rssMaxMb} MB${w.targetDown ? ' (target down)' : ''}`;
}

async function main() {
  const { values } = parseArgs({
    options: {
      minutes: { type: 'string', default: '10' },
      rate: { type: 'string', default: '100' },
      window: { type: 'string', default: '60' },
      store: { type: 'string' },
      'batch-lines': { type: 'string', default: '10' },
      'target-down': { type: 'string', default: '0' },
    },
  });
  const seconds = Number(values.minutes) * 60;
  const options: SoakOptions = {
    seconds,
    rate: Number(values.rate),
    windowSeconds: Math.min(Number(values.window), seconds),
    batchLines: Number(values['batch-lines']),
    targetDownSeconds: Number(values['target-down']),
    ...(values.store ? { storeUrl: values.store } : {}),
    log: (line) => console.log(line),
  };
  console.log(`npm run soak -- ${process.argv.slice(2).join(' ')}`);
  const report = await runSoak(options);
  console.log(JSON.stringify(report, null, 2));
  if (report.violations.length > 0) {
    console.error(`SOAK FAILED:\n  ${report.violations.join('\n  ')}`);
    process.exit(1);
  }
  console.log(
    `SOAK PASSED: ${report.requests} requests, ${report.errors} errors, ${report.instancesLost} instances lost, ${report.duplicateSteps} duplicate steps`,
  );
}

if (process.argv[1] && import.meta.filename === process.argv[1]) await main();
