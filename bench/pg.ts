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
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function tandem(round: number): Promise<number> {
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
  const started = performance.now();
  worker.start();
  // Poll the store only once the handlers have all run, as for graphile-worker below.
  while (handled < COUNT || (await store.countInstances({ status: 'succeeded' })) < COUNT) await sleep(20);
  const ms = performance.now() - started;
  await worker.stop();
  await store.close();
  return rate(COUNT, ms);
}

async function graphile(round: number): Promise<number> {
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
  await utils.release();
  return rate(COUNT, ms);
}

try {
  console.log(`# npm run bench:pg -- --count ${COUNT} --concurrency ${CONCURRENCY} --rounds ${ROUNDS}`);
  console.log(
    `# node ${process.version}; PostgreSQL ${server ? 'throwaway server (durable settings)' : url}\n`,
  );
  const results: { tandem: number; graphile: number }[] = [];
  for (let round = 1; round <= ROUNDS; round++) {
    // Alternate who goes first so that neither always gets the warmer cache.
    const g = round % 2 === 0 ? await graphile(round) : 0;
    const t = await tandem(round);
    const g2 = round % 2 === 0 ? g : await graphile(round);
    results.push({ tandem: t, graphile: g2 });
  }
  console.log('| round | Tandem instances/s | graphile-worker jobs/s | ratio |');
  console.log('|---|---:|---:|---:|');
  results.forEach((r, i) => {
    console.log(
      `| ${i + 1} | ${r.tandem.toLocaleString('en')} | ${r.graphile.toLocaleString('en')} | ${(r.tandem / r.graphile).toFixed(2)} |`,
    );
  });
  const best = (k: 'tandem' | 'graphile') => Math.max(...results.map((r) => r[k]));
  console.log(
    `\nbest of ${ROUNDS}: Tandem ${best('tandem')}/s, graphile-worker ${best('graphile')}/s, ratio ${(best('tandem') / best('graphile')).toFixed(2)}`,
  );
} finally {
  await server?.stop();
}
