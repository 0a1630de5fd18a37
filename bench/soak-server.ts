/**
 * The Tandem process of the soak and of the mixed-load crash test, run as a child:
 *   tsx bench/soak-server.ts <store URL> <target app URL> [concurrency] [lease ms]
 * It serves three integrations that call the target application through a connection, and prints
 * `listening <url>` once it accepts requests:
 *   - `price` (sync, GET /prices/:sku): one call, answered to the caller;
 *   - `fulfil` (async, POST /orders): two steps, each one call;
 *   - `import-lines` (sync, POST /batches): hands off `lines` instances of `fulfil-line` at once.
 * Every call carries the Idempotency-Key of its instance and step, so the target application can
 * count how many times each step ran.
 */
import pino from 'pino';
import { z } from 'zod';
import { httpConnection } from '../src/connections/http.js';
import { defineIntegration } from '../src/define/integration.js';
import { Engine } from '../src/engine/engine.js';
import { buildApp } from '../src/server/app.js';
import { openStore } from '../src/store/open.js';

const [storeUrl, appUrl, concurrency = '32', leaseMs = '30000'] = process.argv.slice(2);
if (!storeUrl || !appUrl)
  throw new Error('usage: soak-server <store URL> <target app URL> [concurrency] [lease ms]');

const erp = httpConnection('erp', {
  baseUrl: appUrl,
  timeout: 5_000,
  circuit: { failures: 5, reprobeMs: 500 },
});
const retry = { maxAttempts: 1_000, initialDelayMs: 50, maxDelayMs: 1_000 };

const price = defineIntegration({
  id: 'price',
  mode: 'sync',
  route: 'GET /prices/:sku',
  deadline: 5_000,
  handler: async (ctx) => ctx.call(erp, 'GET', `/stock/${encodeURIComponent(String(ctx.params.sku))}`),
});

const fulfil = defineIntegration({
  id: 'fulfil',
  mode: 'async',
  route: 'POST /orders',
  input: z.object({ orderId: z.string() }),
  track: { orderId: 'orderId' },
  retry,
  async handler(ctx) {
    await ctx.step('reserve', () => ctx.call(erp, 'POST', '/reservations', { json: ctx.input }));
    await ctx.step('notify', () => ctx.call(erp, 'POST', '/notifications', { json: ctx.input }));
    return { orderId: ctx.input.orderId };
  },
});

const fulfilLine = defineIntegration({
  id: 'fulfil-line',
  mode: 'async',
  input: z.object({ batchId: z.string(), line: z.number() }),
  track: { batchId: 'batchId' },
  retry,
  async handler(ctx) {
    await ctx.step('post', () => ctx.call(erp, 'POST', '/lines', { json: ctx.input }));
  },
});

const importLines = defineIntegration({
  id: 'import-lines',
  mode: 'sync',
  route: 'POST /batches',
  input: z.object({ batchId: z.string(), lines: z.number().int().min(1).max(1_000) }),
  async handler(ctx) {
    const inputs = Array.from({ length: ctx.input.lines }, (_, line) => ({
      batchId: ctx.input.batchId,
      line,
    }));
    const { count } = await ctx.startMany(fulfilLine, inputs);
    return { batchId: ctx.input.batchId, count };
  },
});

const engine = await Engine.create({
  integrations: [price, fulfil, fulfilLine, importLines],
  connections: [erp],
  store: await openStore(storeUrl),
  concurrency: Number(concurrency),
  leaseMs: Number(leaseMs),
  logger: pino({ level: process.env.TANDEM_LOG_LEVEL ?? 'warn' }),
});
engine.start();
const app = await buildApp({ engine, adminToken: null });
await app.listen({ port: 0, host: '127.0.0.1' });
const { port } = app.server.address() as { port: number };
process.stdout.write(`listening http://127.0.0.1:${port}\n`);

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, async () => {
    await app.close();
    await engine.stop();
    process.exit(0);
  });
}
