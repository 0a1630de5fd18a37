/**
 * The servers of `bench/http.ts` and `bench/mixed.ts`, one per process: `node --import tsx
 * bench/http-targets.ts <role> <port> [backendUrl] [storeDir]`. Each prints `ready <port>` once it
 * listens.
 *
 * - backend        a local application (stock lookup) answering small JSON
 * - tandem-sync    a Tandem sync route that calls the backend, passing the deadline's signal to fetch
 * - tandem-sync-unsignalled  the same handler calling fetch without the signal, as the bare proxy does
 * - bare-proxy     a bare Fastify route that calls the backend the same way
 * - bare-proxy-abortable  the bare proxy with a per-request AbortSignal and timer, as a deadline needs
 * - tandem-async   a Tandem async route: validate, commit durably (SQLite, synchronous=FULL), 202
 * - tandem-async-worker  the same with the worker running the accepted instances in-process
 * - tandem-async-unstored  the same route with the store's insert answering without writing: the
 *                  HTTP path's own cost (parse, validation, row, hooks, reply), apart from the commit
 * - bare-202       a bare Fastify route answering 202 without storing anything
 * - tandem-mixed   bench/mixed.ts's one-process layout: an async route of 3 steps, each calling the
 *                  backend through an httpConnection, with the worker running them in-process
 * - tandem-mixed-api     the split layout's api process: the same route, accepting only
 * - tandem-mixed-worker  one of the split layout's worker processes: runs what the api accepted, with
 *                  /metrics on its port (health app, as `tandem start --role worker`). Both open
 *                  storeDir/bench-mixed.db, the api first (it migrates the store)
 * - bare-mixed     bench/mixed.ts's floor: the same accepts and the same three calls per order with
 *                  no runtime at all — a 202 after pushing the order onto an array in memory, and 64
 *                  loops taking orders off it, each making the three calls through an undici Pool. Nothing is
 *                  stored, validated, retried or recorded: what this machine can do for the workload
 *                  before any durability. /metrics answers with the counters bench:mixed reads
 */
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { join } from 'node:path';
import Fastify from 'fastify';
import pino from 'pino';
import { Pool } from 'undici';
import { z } from 'zod';
import { httpConnection } from '../src/connections/http.js';
import { defineIntegration } from '../src/define/integration.js';
import { Engine } from '../src/engine/engine.js';
import { buildApp } from '../src/server/app.js';
import { buildHealthApp } from '../src/server/health-app.js';
import { SqliteStore } from '../src/store/sqlite/store.js';

const [role, portText, backendUrl = '', storeDir = '/tmp'] = process.argv.slice(2);
const port = Number(portText);
const logger = pino({ level: 'warn' });
const order = z.object({
  orderId: z.string(),
  lines: z.array(z.object({ sku: z.string(), qty: z.number().int() })),
});

async function stockFrom(sku: string, signal?: AbortSignal) {
  const res = await fetch(`${backendUrl}/stock/${encodeURIComponent(sku)}`, signal ? { signal } : {});
  if (!res.ok) throw Object.assign(new Error(`backend answered ${res.status}`), { status: 502 });
  return (await res.json()) as unknown;
}

async function tandem(
  worker: boolean,
  integrations: Parameters<typeof defineIntegration>[0][],
  connections: ReturnType<typeof httpConnection>[] = [],
  split: 'api' | 'worker' | null = null,
) {
  const file = split ? 'bench-mixed.db' : `bench-${role}-${process.pid}.db`;
  const store = new SqliteStore({ path: join(storeDir, file) });
  if (role === 'tandem-async-unstored') {
    store.insertInstances = async (rows) =>
      rows.map((row) => ({ id: row.id, created: true, status: row.status, inputHash: row.inputHash }));
  }
  const engine = await Engine.create({
    integrations: integrations.map((d) => defineIntegration(d as never)),
    store,
    logger,
    worker,
    ...(split === 'api' ? { scheduler: false } : {}),
    connections,
  });
  engine.start();
  if (split === 'worker') {
    const health = await buildHealthApp({ engine });
    await health.listen({ port, host: '127.0.0.1' });
    return;
  }
  // API-only accepts pile up (nothing drains them): lift the 429 limit so every request is an accept.
  const app = await buildApp({ engine, adminToken: null, logger, maxQueueDepth: Number.MAX_SAFE_INTEGER });
  await app.listen({ port, host: '127.0.0.1' });
}

async function main() {
  switch (role) {
    case 'backend': {
      const body = JSON.stringify({ sku: 'A-1', stock: 42, warehouse: 'north' });
      const server = createServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      });
      server.keepAliveTimeout = 60_000;
      await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
      break;
    }
    case 'tandem-sync':
    case 'tandem-sync-unsignalled': {
      const signalled = role === 'tandem-sync';
      await tandem(false, [
        {
          id: 'stock-lookup',
          mode: 'sync',
          route: 'GET /stock/:sku',
          params: z.object({ sku: z.string() }),
          handler: async (ctx: any) => stockFrom(ctx.params.sku, signalled ? ctx.signal : undefined),
        },
      ]);
      break;
    }
    case 'bare-proxy': {
      const app = Fastify();
      app.get('/stock/:sku', async (request) => stockFrom((request.params as { sku: string }).sku));
      await app.listen({ port, host: '127.0.0.1' });
      break;
    }
    case 'bare-proxy-abortable': {
      const app = Fastify();
      app.get('/stock/:sku', async (request) => {
        const controller = new AbortController();
        const timer = setTimeout(() => controller.abort(), 10_000);
        try {
          return await stockFrom((request.params as { sku: string }).sku, controller.signal);
        } finally {
          clearTimeout(timer);
        }
      });
      await app.listen({ port, host: '127.0.0.1' });
      break;
    }
    case 'tandem-async':
    case 'tandem-async-worker':
    case 'tandem-async-unstored':
      await tandem(role === 'tandem-async-worker', [
        { id: 'place-order', mode: 'async', route: 'POST /orders', input: order, handler: async () => 'ok' },
      ]);
      break;
    case 'tandem-mixed':
    case 'tandem-mixed-api':
    case 'tandem-mixed-worker': {
      const app = httpConnection('app', { baseUrl: backendUrl });
      const split = role === 'tandem-mixed-api' ? 'api' : role === 'tandem-mixed-worker' ? 'worker' : null;
      await tandem(
        split !== 'api',
        [
          {
            id: 'place-order',
            mode: 'async',
            route: 'POST /orders',
            input: order,
            handler: async (ctx: any) => {
              const id = ctx.input.orderId;
              await ctx.step('customer', () => ctx.call(app, 'GET', '/customers/:id', { params: { id } }));
              await ctx.step('reserve', () => ctx.call(app, 'POST', '/reservations', { json: ctx.input }));
              await ctx.step('ship', () => ctx.call(app, 'POST', '/shipments', { json: ctx.input }));
            },
          },
        ],
        [app],
        split,
      );
      break;
    }
    case 'bare-mixed': {
      const queue: { orderId: string }[] = [];
      let accepted = 0;
      let succeeded = 0;
      let failed = 0;
      const idle: (() => void)[] = [];
      // undici's keep-alive pool, as httpConnection uses.
      const pool = new Pool(backendUrl);
      const call = async (method: 'GET' | 'POST', path: string, body?: unknown) => {
        const res = await pool.request({
          method,
          path,
          ...(body === undefined
            ? {}
            : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
        });
        await res.body.arrayBuffer();
        if (res.statusCode >= 400) throw new Error(`backend answered ${res.statusCode}`);
      };
      const work = async () => {
        for (;;) {
          const next = queue.shift();
          if (next === undefined) {
            await new Promise<void>((resolve) => idle.push(resolve));
            continue;
          }
          try {
            await call('GET', `/customers/${encodeURIComponent(next.orderId)}`);
            await call('POST', '/reservations', next);
            await call('POST', '/shipments', next);
            succeeded++;
          } catch {
            failed++;
          }
        }
      };
      for (let i = 0; i < 64; i++) void work();
      const app = Fastify();
      app.post('/orders', async (request, reply) => {
        queue.push(request.body as { orderId: string });
        accepted++;
        idle.pop()?.();
        return reply.code(202).send({ instanceId: randomUUID(), status: 'queued' });
      });
      app.get('/metrics', async () =>
        [
          `tandem_instances_accepted_total ${accepted}`,
          `tandem_instances_succeeded_total ${succeeded}`,
          `tandem_instances_failed_total ${failed}`,
          `tandem_queue_depth ${queue.length}`,
          '',
        ].join('\n'),
      );
      await app.listen({ port, host: '127.0.0.1' });
      break;
    }
    case 'bare-202': {
      const app = Fastify();
      app.post('/orders', async (_request, reply) => {
        const instanceId = randomUUID();
        const statusUrl = `/api/instances/${instanceId}`;
        return reply
          .code(202)
          .header('location', statusUrl)
          .send({ instanceId, status: 'queued', statusUrl });
      });
      await app.listen({ port, host: '127.0.0.1' });
      break;
    }
    default:
      throw new Error(`unknown role ${role}`);
  }
  process.stdout.write(`ready ${port}\n`);
}

process.on('SIGTERM', () => process.exit(0));
await main();
