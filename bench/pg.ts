/**
 * PostgreSQL benchmark: no-op instances/s on Tandem's PostgreSQL store against graphile-worker
 * running no-op jobs on the same server, in the same run. Both get the same number of queued items
 * and the same concurrency; graphile-worker runs with its batching features on (local queue and
 * batched completion), its fastest documented set-up.
 *
 *   npm run bench:pg
 *   npm run bench:pg -- --count 50000 --concurrency 100
 *   TANDEM_BENCH_PG_URL=postgres://… npm run bench:pg     # an existing server instead of a throwaway one
 */
import { parseArgs } from 'node:util';
import { makeWorkerUtils, run as runGraphile } from 'graphile-worker';
import pg from 'pg';
import pino from 'pino';
import { defineIntegration } from '../src/define/integration.js';
import { Engine } from '../src/engine/engine.js';
import { PostgresStore } from '../src/store/postgres/store.js';
import { startPostgres } from '../test/support/postgres.js';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '20000' },
    concurrency: { type: 'string', default: '100' },
    rounds: { type: 'string', default: '2' },
  },
});
const COUNT = Number(values.count);
const CONCURRENCY = Number(values.concurrency);
const ROUNDS = Number(values.rounds);
const logger = pino({ level: 'warn' });

const server = process.env.TANDEM_BENCH_PG_URL ? null : await startPostgres();
const url = process.env.TANDEM_BENCH_PG_URL ?? server!.url;

let handled = 0;
const noop = defineIntegration({
  id: 'noop',
  mode: 'async',
  handler: () => {
    handled++;
    return null;
  },
});
const rate = (count: number, ms: number) => Math.round((count / ms) * 1000);
// Write-ahead log written during a drain, per item: what each system makes the database write.
const walClient = new pg.Pool({ connectionString: url, max: 1 });
const walMark = async (): Promise<string> =>
  (await walClient.query('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0].lsn;
const walPerItem = async (from: string): Promise<number> => {
  const sql = 'SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1)::bigint AS n';
  const { rows } = await walClient.query(sql, [from]);
  return Math.round(Number(rows[0].n) / COUNT);
};
interface Drain {
  perSecond: number;
  walBytesPerItem: number;
}
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function tandem(round: number): Promise<Drain> {
  const store = await PostgresStore.open({ url, schema: `bench_tandem_${round}`, poolSize: 20 });
  const api = await Engine.create({ integrations: [noop], store, worker: false, logger });
  api.start();
  for (let i = 0; i < COUNT; i += 1_000) {
    await Promise.all(
      Array.from({ length: Math.min(1_000, COUNT - i) }, (_, j) => api.accept('noop', { n: i + j })),
    );
  }
  await api.stop();
  const worker = await Engine.create({ integrations: [noop], store, concurrency: CONCURRENCY, logger });
  handled = 0;
  const wal = await walMark();
  const started = performance.now();
  worker.start();
  // Poll the store only once the handlers have all run, as for graphile-worker below.
  while (handled < COUNT || (await store.countInstances({ status: 'succeeded' })) < COUNT) await sleep(20);
  const ms = performance.now() - started;
  await worker.stop();
  const walBytesPerItem = await walPerItem(wal);
  await store.close();
  return { perSecond: rate(COUNT, ms), walBytesPerItem };
}

async function graphile(round: number): Promise<Drain> {
  const schema = `bench_graphile_${round}`;
  const utils = await makeWorkerUtils({ connectionString: url, schema });
  await utils.migrate();
  for (let i = 0; i < COUNT; i += 1_000) {
    await utils.addJobs(
      Array.from({ length: Math.min(1_000, COUNT - i) }, (_, j) => ({
        identifier: 'noop',
        payload: { n: i + j },
      })),
    );
  }
  let done = 0;
  const wal = await walMark();
  const started = performance.now();
  const runner = await runGraphile({
    connectionString: url,
    schema,
    concurrency: CONCURRENCY,
    noHandleSignals: true,
    pollInterval: 1_000,
    logger: new (await import('graphile-worker')).Logger(() => () => {}),
    taskList: {
      noop: async () => {
        done++;
      },
    },
    preset: { worker: { localQueue: { size: CONCURRENCY * 2 }, completeJobBatchDelay: 0 } },
  });
  for (;;) {
    await sleep(20);
    if (done < COUNT) continue;
    const { rows } = await utils.withPgClient((client) =>
      client.query(`SELECT count(*)::int AS n FROM ${schema}._private_jobs`),
    );
    if (rows[0].n === 0) break;
  }
  const ms = performance.now() - started;
  await runner.stop();
  const walBytesPerItem = await walPerItem(wal);
  await utils.release();
  return { perSecond: rate(COUNT, ms), walBytesPerItem };
}

try {
  console.log(`# npm run bench:pg -- --count ${COUNT} --concurrency ${CONCURRENCY} --rounds ${ROUNDS}`);
  console.log(
    `# node ${process.version}; PostgreSQL ${server ? 'throwaway server (durable settings)' : url}\n`,
  );
  const results: { tandem: Drain; graphile: Drain }[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    // Alternate who goes first so that neither always gets the warmer cache.
    const g = round % 2 === 0 ? await graphile(round) : null;
    const t = await tandem(round);
    results.push({ tandem: t, graphile: g ?? (await graphile(round)) });
  }
  console.log(
    '| round | Tandem instances/s | graphile-worker jobs/s | ratio | WAL bytes per item, Tandem / graphile-worker |',
  );
  console.log('|---|---:|---:|---:|---:|');
  const ratios = results.map((r) => r.tandem.perSecond / r.graphile.perSecond);
  results.forEach((r, i) => {
    console.log(
      `| ${i + 1} | ${r.tandem.perSecond.toLocaleString('en')} | ${r.graphile.perSecond.toLocaleString('en')} | ${ratios[i]!.toFixed(2)} | ${r.tandem.walBytesPerItem} / ${r.graphile.walBytesPerItem} |`,
    );
  });
  const sorted = [...ratios].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
  console.log(`
median of ${ROUNDS} per-round ratios: ${median.toFixed(2)}× (aim ≥ 1.0×)`);
} finally {
  await walClient.end();
  await server?.stop();
}
