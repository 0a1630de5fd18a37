/**
 * Connection overhead: `ctx.call()` (auth header, idempotency key, traceparent, limits, circuit,
 * the activity event) against a raw undici request to the same local server, in one run.
 *
 *   npm run bench:connections
 *   npm run bench:connections -- --calls 10000 --parallel 32 --rounds 10
 *
 * Client and application share the machine's cores, so one round's throughput moves with whatever
 * else runs; many short rounds, alternating which path goes first, give a median ratio that a
 * single slow round cannot swing. The client's CPU time per call is measured too: it is what
 * Tandem's machinery costs, whatever the scheduling.
 */
import { fork } from 'node:child_process';
import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';
import { makeCaller } from '../src/connections/caller.js';
import { httpConnection } from '../src/connections/http.js';

const { values } = parseArgs({
  options: {
    calls: { type: 'string', default: '10000' },
    parallel: { type: 'string', default: '32' },
    rounds: { type: 'string', default: '10' },
    serve: { type: 'boolean', default: false },
  },
});
const CALLS = Number(values.calls);
const PARALLEL = Number(values.parallel);
const ROUNDS = Number(values.rounds);

if (values.serve) {
  const body = JSON.stringify({ sku: 'KB-42', available: 17 });
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' }).end(body);
  });
  server.listen(0, '127.0.0.1', () => process.send!((server.address() as { port: number }).port));
  process.on('disconnect', () => process.exit(0));
} else {
  await main();
}

async function main() {
  // The application runs in its own process, so its work is not counted against either client.
  const child = fork(fileURLToPath(import.meta.url), ['--serve'], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const port = await new Promise<number>((resolve) => child.once('message', (m) => resolve(m as number)));
  const url = `http://127.0.0.1:${port}`;

  /** Calls per second and the client's CPU microseconds per call. */
  async function run(call: () => Promise<unknown>): Promise<{ rate: number; cpu: number }> {
    let next = 0;
    const cpu = process.cpuUsage();
    const started = performance.now();
    await Promise.all(
      Array.from({ length: PARALLEL }, async () => {
        while (next++ < CALLS) await call();
      }),
    );
    const elapsed = performance.now() - started;
    const used = process.cpuUsage(cpu);
    return { rate: Math.round((CALLS / elapsed) * 1000), cpu: (used.user + used.system) / CALLS };
  }

  const pool = new Pool(url, { connections: 64 });
  // The raw request sends the headers ctx.call must send too (credentials, Idempotency-Key,
  // traceparent), so the ratio measures Tandem's machinery, not the protocol's bytes.
  let n = 0;
  const raw = () =>
    pool
      .request({
        path: '/stock/KB-42',
        method: 'GET',
        headers: {
          authorization: 'Bearer x',
          'idempotency-key': `01a2b3c4-0000-7000-8000-000000000000:call:${n++}`,
          traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
        },
      })
      .then(async (r) => JSON.parse(await r.body.text()));

  process.env.BENCH_TOKEN = 'x';
  const inventory = httpConnection('inventory', { baseUrl: url, auth: { type: 'bearer', token: 'x' } });
  const events: unknown[] = [];
  const { call } = makeCaller({
    instanceId: '01a2b3c4-0000-7000-8000-000000000000',
    attempt: 1,
    signal: new AbortController().signal,
    connections: new Map([['inventory', inventory]]),
    record: (data) => {
      if (events.length < 1_000) events.push(data);
    },
  });
  const tandem = () => call('inventory', 'GET', '/stock/KB-42');

  console.log(`# npm run bench:connections -- --calls ${CALLS} --parallel ${PARALLEL} --rounds ${ROUNDS}`);
  console.log(
    `# node ${process.version}; a local node:http server answering small JSON; ${PARALLEL} calls in flight\n`,
  );
  await run(raw); // warm-up of both paths
  await run(tandem);
  const rows: { raw: { rate: number; cpu: number }; tandem: { rate: number; cpu: number } }[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    // Alternate which goes first, so neither gains from running right after the other.
    const first = round % 2 === 0;
    const r1 = first ? await run(raw) : null;
    const t = await run(tandem);
    const r = r1 ?? (await run(raw));
    rows.push({ raw: r, tandem: t });
  }
  console.log(
    '| round | raw undici calls/s | ctx.call calls/s | ratio | client CPU µs/call raw / ctx.call |',
  );
  console.log('|---|---:|---:|---:|---:|');
  for (const [i, { raw: r, tandem: t }] of rows.entries()) {
    console.log(
      `| ${i + 1} | ${r.rate.toLocaleString('en')} | ${t.rate.toLocaleString('en')} | ${(t.rate / r.rate).toFixed(2)} | ${r.cpu.toFixed(1)} / ${t.cpu.toFixed(1)} |`,
    );
  }
  const median = (values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b);
    const mid = sorted.length >> 1;
    return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  };
  const rawTotal = rows.reduce((acc, row) => acc + row.raw.rate, 0);
  const tandemTotal = rows.reduce((acc, row) => acc + row.tandem.rate, 0);
  const ratio = median(rows.map(({ raw: r, tandem: t }) => t.rate / r.rate));
  const cpu = median(rows.map(({ raw: r, tandem: t }) => r.cpu / t.cpu));
  console.log(
    `\nctx.call vs raw undici: median ratio ${ratio.toFixed(2)}× (aim ≥ 0.9×); over all rounds ${(tandemTotal / rawTotal).toFixed(2)}×; client CPU per call: raw / ctx.call ${cpu.toFixed(2)} (median)`,
  );
  await pool.close();
  await inventory.close();
  child.disconnect();
}
