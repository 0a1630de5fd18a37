/**
 * How long the console's overview read takes (`store.overview`: per-minute figures of the last hour,
 * per-hour figures of the last day, the unfinished work), with many instances in the window, beside
 * `integrationStats` over the same window (what the overview's integration table already reads) as
 * the baseline of the same run.
 *
 *   npm run bench:overview                                   # SQLite, 100,000 instances in the hour
 *   npm run bench:overview -- --store postgres
 *   npm run bench:overview -- --instances 20000 --older 50000
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { uuidv7 } from '../src/engine/ids.js';
import { PostgresStore } from '../src/store/postgres/store.js';
import { SqliteStore } from '../src/store/sqlite/store.js';
import type { NewInstance, Store } from '../src/store/store.js';
import { startPostgres } from '../test/support/postgres.js';
import { tempDir } from '../test/support/tmp.js';

const { values } = parseArgs({
  options: {
    store: { type: 'string', default: 'sqlite' },
    instances: { type: 'string', default: '100000' },
    older: { type: 'string', default: '100000' },
    runs: { type: 'string', default: '7' },
  },
});
const inWindow = Number(values.instances);
const older = Number(values.older);
const runs = Number(values.runs);

const dir = tempDir('tandem-bench-overview-');
const server = values.store === 'postgres' ? await startPostgres() : null;
let store: Store;
if (server) store = await PostgresStore.open({ url: server.url, schema: 'bench_overview' });
else store = new SqliteStore({ path: join(dir.path, 'tandem.db') });

const HOUR = 3_600_000;
const now = Date.now();
const integrations = ['place-order', 'fulfil-order', 'current-inventory', 'onboard-employee'];

/** A finished instance created at `at`: one in ten failed, durations spread over two orders of magnitude. */
function row(at: number, n: number): NewInstance {
  const failed = n % 10 === 0;
  const durationMs = 5 + ((n * 7919) % 500);
  return {
    id: uuidv7(at),
    integrationId: integrations[n % integrations.length]!,
    mode: n % 2 === 0 ? 'sync' : 'async',
    status: failed ? 'failed' : 'succeeded',
    inputJson: JSON.stringify({ n }),
    inputHash: null,
    tracking: { orderId: `B-${n}` },
    orderingKey: null,
    idempotencyKey: null,
    parentId: null,
    createdAt: at,
    runAt: at,
    startedAt: at,
    finishedAt: at + durationMs,
    durationMs,
    error: failed ? { name: 'HttpError', message: 'down', code: 'http-error' } : null,
  };
}

async function fill(count: number, from: number, span: number, offset: number) {
  for (let i = 0; i < count; i += 5_000) {
    const rows: NewInstance[] = [];
    for (let n = i; n < Math.min(count, i + 5_000); n++)
      rows.push(row(from + Math.floor((n / count) * span), offset + n));
    await store.insertInstances(rows);
  }
}

// The day before the hour, then the hour itself, then a backlog of unfinished work.
await fill(older, now - 24 * HOUR, 23 * HOUR, 0);
await fill(inWindow, now - HOUR, HOUR - 1_000, older);
await store.insertInstances(
  Array.from({ length: 1_000 }, (_, n) => ({
    ...row(now - 500, n),
    status: 'queued' as const,
    mode: 'async' as const,
    durationMs: null,
    finishedAt: null,
    startedAt: null,
    error: null,
  })),
);

async function time(what: () => Promise<unknown>) {
  const samples: number[] = [];
  await what(); // warm-up: statements prepared, pages cached
  for (let i = 0; i < runs; i++) {
    const started = performance.now();
    await what();
    samples.push(performance.now() - started);
  }
  samples.sort((a, b) => a - b);
  return samples[Math.floor(samples.length / 2)]!;
}

const hourSince = Math.floor(now / 60_000) * 60_000 - 59 * 60_000;
const daySince = Math.floor(now / HOUR) * HOUR - 23 * HOUR;
const hour = await store.overview({ since: hourSince, until: now + 1, bucketMs: 60_000, now });
const figures = [
  [
    'overview, last hour per minute (60 buckets)',
    await time(() => store.overview({ since: hourSince, until: now + 1, bucketMs: 60_000, now })),
  ],
  [
    'overview, last day per hour (24 buckets)',
    await time(() => store.overview({ since: daySince, until: now + 1, bucketMs: HOUR, now })),
  ],
  [
    'baseline: integrationStats, last hour',
    await time(() => store.integrationStats({ since: now - HOUR, until: now + 1 })),
  ],
  [
    'baseline: integrationStats, last day',
    await time(() => store.integrationStats({ since: now - 24 * HOUR, until: now + 1 })),
  ],
] as const;

const accepted = hour.buckets.reduce((n, b) => n + b.accepted, 0);
console.log(`npm run bench:overview -- --store ${values.store} --instances ${inWindow} --older ${older}`);
console.log(
  `\nOverview on ${values.store}: ${accepted.toLocaleString('en')} instances in the hour's buckets, ${(older + inWindow + 1_000).toLocaleString('en')} in the store; median of ${runs}\n`,
);
console.log('| read                                           | median ms |');
console.log('| ---------------------------------------------- | --------: |');
for (const [name, ms] of figures) console.log(`| ${name.padEnd(46)} | ${ms.toFixed(1).padStart(9)} |`);

await store.close();
await server?.stop();
dir.cleanup();
