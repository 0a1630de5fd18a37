/**
 * Engine benchmark: durable accepts/s (group commit vs one transaction per accept) and no-op
 * single-step instances completed/s, beside the raw better-sqlite3 rate for inserting the same rows
 * in batches (the ceiling), all with synchronous=FULL on a file in the same run.
 *
 *   npm run bench:engine                  # default sizes
 *   npm run bench:engine -- --accepts 200000 --instances 100000
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { defineIntegration } from '../src/define/integration.js';
import { Engine } from '../src/engine/engine.js';
import { uuidv7 } from '../src/engine/ids.js';
import { SqliteStore } from '../src/store/sqlite/store.js';

const { values } = parseArgs({
  options: {
    accepts: { type: 'string', default: '100000' },
    single: { type: 'string', default: '5000' },
    instances: { type: 'string', default: '50000' },
    concurrency: { type: 'string', default: '500' },
    callers: { type: 'string', default: '1000' },
  },
});
const ACCEPTS = Number(values.accepts);
const SINGLE = Number(values.single);
const INSTANCES = Number(values.instances);
const CONCURRENCY = Number(values.concurrency);
const CALLERS = Number(values.callers);

const logger = pino({ level: 'warn' });
const dir = mkdtempSync(join(tmpdir(), 'tandem-bench-'));
let files = 0;
const freshStore = () => new SqliteStore({ path: join(dir, `bench-${++files}.db`), synchronous: 'FULL' });

const noop = defineIntegration({
  id: 'noop',
  mode: 'async',
  async handler(ctx) {
    await ctx.step('only', () => 1);
  },
});

function rate(count: number, ms: number): number {
  return Math.round((count / ms) * 1000);
}

/** The ceiling: the same instance rows and accepted events, inserted in 500-row transactions. */
function rawInsert(count: number): number {
  const store = freshStore();
  const db = store.db;
  const insert =
    db.prepare(`INSERT INTO instances (id, integration_id, mode, status, input, run, run_started_at,
    attempt, created_at, updated_at, run_at) VALUES (?, 'noop', 'async', 'queued', ?, 1, ?, 0, ?, ?, ?)`);
  const event = db.prepare(
    "INSERT INTO events (instance_id, integration_id, run, type, at, data) VALUES (?, 'noop', 1, 'accepted', ?, '{}')",
  );
  const batch = db.transaction((from: number, to: number) => {
    const now = Date.now();
    for (let i = from; i < to; i++) {
      const id = uuidv7();
      insert.run(id, `{"n":${i}}`, now, now, now, now);
      event.run(id, now);
    }
  });
  const started = performance.now();
  for (let i = 0; i < count; i += 500) batch(i, Math.min(count, i + 500));
  const ms = performance.now() - started;
  db.close();
  return rate(count, ms);
}

/** `callers` concurrent accept loops until `count` instances are committed. */
async function accepts(count: number, groupCommit: boolean): Promise<number> {
  const store = freshStore();
  const engine = await Engine.create({ integrations: [noop], store, worker: false, groupCommit, logger });
  engine.start();
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(CALLERS, count) }, async () => {
      while (next < count) {
        const n = next++;
        await engine.accept('noop', { n });
      }
    }),
  );
  const ms = performance.now() - started;
  await engine.stop();
  await store.close();
  return rate(count, ms);
}

/** Accept `count` instances first, then time a worker completing all of them. */
async function completions(count: number): Promise<number> {
  const store = freshStore();
  const api = await Engine.create({ integrations: [noop], store, worker: false, logger });
  api.start();
  for (let i = 0; i < count; i += 1000) {
    await Promise.all(
      Array.from({ length: Math.min(1000, count - i) }, (_, j) => api.accept('noop', { n: i + j })),
    );
  }
  await api.stop();
  const worker = await Engine.create({ integrations: [noop], store, concurrency: CONCURRENCY, logger });
  const started = performance.now();
  const cpu = process.cpuUsage();
  worker.start();
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    if ((await store.countInstances({ status: 'succeeded' })) === count) break;
  }
  const ms = performance.now() - started;
  const used = process.cpuUsage(cpu);
  completionCpuUs = (used.user + used.system) / count;
  await worker.stop();
  await store.close();
  return rate(count, ms);
}

/** CPU time of the whole process (every thread: V8's collector too) per completed instance. */
let completionCpuUs = 0;

try {
  console.log(`# npm run bench:engine -- --accepts ${ACCEPTS} --single ${SINGLE} --instances ${INSTANCES}`);
  console.log(`# node ${process.version}, synchronous=FULL, WAL, file in ${tmpdir()}\n`);
  const ceiling = rawInsert(ACCEPTS);
  const grouped = await accepts(ACCEPTS, true);
  const single = await accepts(SINGLE, false);
  const done = await completions(INSTANCES);
  const rows = [
    ['raw better-sqlite3, 500-row transactions (ceiling)', ceiling, '1.00'],
    ['durable accepts, group commit', grouped, (grouped / ceiling).toFixed(2)],
    ['durable accepts, one transaction per accept', single, (single / ceiling).toFixed(2)],
    [`no-op single-step instances completed (concurrency ${CONCURRENCY})`, done, (done / ceiling).toFixed(2)],
  ] as const;
  console.log('| measure | per second | × ceiling |');
  console.log('|---|---:|---:|');
  for (const [name, perSecond, ratio] of rows)
    console.log(`| ${name} | ${perSecond.toLocaleString('en')} | ${ratio} |`);
  console.log(`\ngroup commit vs one transaction per accept: ${(grouped / single).toFixed(1)}×`);
  console.log(`CPU per completed instance: ${completionCpuUs.toFixed(1)} µs (user + system, all threads)`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
