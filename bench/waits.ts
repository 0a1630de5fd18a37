/**
 * Waits benchmark: how fast instances arm durable waits and how fast events resume them, with the
 * store's plain drain rate beside it in the same run (no-op single-step instances claimed, run and
 * finished). Figures:
 *
 * - plain: no-op instances completed per second (the claim rate this store and machine give);
 * - armed: instances that ran to a `ctx.waitForEvent` and left the worker, per second;
 * - sends: events per second (`engine.sendEvent`), one at a time and from several callers at once,
 *   each matched against every waiting instance (by event name and match key), resuming one;
 * - resumed: resumed instances that finished, per second (claim again, replay, finish).
 *
 *   npm run bench:waits                                  # SQLite, 100,000 waiting
 *   npm run bench:waits -- --store postgres --waiting 20000
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pino from 'pino';
import { defineIntegration } from '../src/define/integration.js';
import { Engine } from '../src/engine/engine.js';
import { PostgresStore } from '../src/store/postgres/store.js';
import { SqliteStore } from '../src/store/sqlite/store.js';
import type { Store } from '../src/store/store.js';
import { startPostgres } from '../test/support/postgres.js';
import { tempDir } from '../test/support/tmp.js';

const { values } = parseArgs({
  options: {
    store: { type: 'string', default: 'sqlite' },
    waiting: { type: 'string', default: '100000' },
    plain: { type: 'string', default: '20000' },
    sends: { type: 'string', default: '2000' },
    concurrency: { type: 'string', default: '100' },
    senders: { type: 'string', default: '16' },
  },
});
const WAITING = Number(values.waiting);
const PLAIN = Number(values.plain);
const SENDS = Math.min(Number(values.sends), Math.floor(WAITING / 2));
const SENDERS = Number(values.senders);
const logger = pino({ level: 'warn' });
const rate = (count: number, ms: number) => Math.round((count / ms) * 1000);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const noop = defineIntegration({ id: 'noop', mode: 'async', handler: () => null });
const waiter = defineIntegration({
  id: 'waiter',
  mode: 'async',
  handler: (ctx) =>
    ctx.waitForEvent('paid', { event: 'payment.received', match: { n: (ctx.input as { n: number }).n } }),
});

const dir = tempDir('tandem-bench-waits-');
const server = values.store === 'postgres' ? await startPostgres() : null;
let store: Store;
if (server) store = await PostgresStore.open({ url: server.url, schema: 'bench_waits' });
else store = new SqliteStore({ path: join(dir.path, 'tandem.db') });

const engine = await Engine.create({
  integrations: [noop, waiter],
  store,
  logger,
  concurrency: Number(values.concurrency),
  retention: false,
});

async function acceptAll(id: string, count: number, input: (n: number) => unknown) {
  for (let i = 0; i < count; i += 1_000) {
    const rows = [];
    for (let n = i; n < Math.min(count, i + 1_000); n++) rows.push(engine.prepare(id, input(n)));
    await engine.acceptPrepared(rows);
  }
}
async function until(check: () => Promise<boolean>) {
  while (!(await check())) await sleep(20);
}

// Plain drain: queued first, then run, so that only claim, run and finish are timed.
await acceptAll('noop', PLAIN, () => ({}));
let started = performance.now();
engine.start();
await until(
  async () => (await engine.countInstances({ integrationId: 'noop', status: 'succeeded' })) === PLAIN,
);
const plainRate = rate(PLAIN, performance.now() - started);

// Arming: the waiting instances run to their wait and leave the worker.
await engine.stopClaiming();
await engine.stop();
const armer = await Engine.create({
  integrations: [noop, waiter],
  store,
  logger,
  concurrency: Number(values.concurrency),
  retention: false,
});
const accept = async () => {
  for (let i = 0; i < WAITING; i += 1_000) {
    const rows = [];
    for (let n = i; n < Math.min(WAITING, i + 1_000); n++) rows.push(armer.prepare('waiter', { n }));
    await armer.acceptPrepared(rows);
  }
};
await accept();
started = performance.now();
armer.start();
await until(
  async () => (await armer.countInstances({ integrationId: 'waiter', status: 'waiting' })) === WAITING,
);
const armRate = rate(WAITING, performance.now() - started);

// Sends: each event matches one of the waiting instances (a distinct one per send). First one at
// a time (a single caller), then from several callers at once (what an HTTP endpoint sees).
let resumed = 0;
let next = 0;
const send = async () => {
  const i = next++;
  const sent = await armer.sendEvent({
    name: 'payment.received',
    payload: { n: (i * 7_919) % WAITING, amount: i },
  });
  resumed += sent.resumed.length;
};
const firstSend = performance.now();
for (let i = 0; i < SENDS; i++) await send();
const sendMs = performance.now() - firstSend;
started = performance.now();
await Promise.all(
  Array.from({ length: SENDERS }, async () => {
    while (next < 2 * SENDS) await send();
  }),
);
const concurrentMs = performance.now() - started;
await until(
  async () => (await armer.countInstances({ integrationId: 'waiter', status: 'succeeded' })) === resumed,
);
const resumeMs = performance.now() - firstSend;
await armer.stop();
await store.close();
await server?.stop();
dir.cleanup();

const kind = values.store;
const n = (value: number) => value.toLocaleString('en');
console.log(`\nWaits on ${kind}: ${n(WAITING)} instances waiting, ${n(2 * SENDS)} events sent\n`);
console.log('| figure | per second |');
console.log('|---|---:|');
console.log(`| plain no-op instances completed (claim rate) | ${n(plainRate)} |`);
console.log(`| waits armed (ran to the wait and left the worker) | ${n(armRate)} |`);
console.log(
  `| events sent one at a time, each matched against ${n(WAITING)} waiting | ${n(rate(SENDS, sendMs))} |`,
);
console.log(`| events sent by ${SENDERS} callers at once | ${n(rate(SENDS, concurrentMs))} |`);
console.log(
  `| instances resumed and finished (first send to last success) | ${n(rate(resumed, resumeMs))} |`,
);
console.log(`\narmed/plain ${(armRate / plainRate).toFixed(2)}; resumed ${resumed} of ${2 * SENDS} sends`);
