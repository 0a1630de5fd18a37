import { afterEach, describe, expect, expectTypeOf, it } from 'vitest';
import { z } from 'zod';
import { defineIntegration } from '../../src/define/integration.js';
import { RetryAfterError } from '../../src/errors.js';
import { buildApp } from '../../src/server/app.js';
import { testEngine } from '../support/engine.js';
import { type TestServer, testServer } from '../support/server.js';
import { waitFor } from '../support/wait.js';

const fulfil = defineIntegration({
  id: 'fulfil-order',
  mode: 'async',
  input: z.object({ orderId: z.string(), line: z.number().optional() }),
  handler: async () => 'done',
});

let server: TestServer | null = null;
afterEach(async () => {
  await server?.close();
  server = null;
});

async function start(
  integrations: Parameters<typeof testServer>[0],
  options: Parameters<typeof testServer>[1] = {},
) {
  // worker: false keeps handed-off children queued, so counting them is exact.
  server = await testServer([fulfil, ...integrations], options, { worker: false });
  return server;
}

/** The monitoring record of a sync instance, once the recorder has written it. */
function recordOf(s: TestServer, id: string) {
  return waitFor(() => s.store.getInstance(id), `sync record ${id}`);
}

async function childrenOf(s: TestServer, parentId: string) {
  return (await s.store.listInstances({ parentId, limit: 100 })).items;
}

describe('sync triggers', () => {
  it("answers with the handler's status, headers and body, and records the instance", async () => {
    const quote = defineIntegration({
      id: 'quote',
      mode: 'sync',
      route: 'POST /quotes/:sku',
      params: z.object({ sku: z.string().min(3) }),
      query: z.object({ currency: z.enum(['EUR', 'USD']).default('EUR') }),
      input: z.object({ quantity: z.number().int().positive() }),
      track: { sku: 'sku' },
      handler: async (ctx) => {
        expectTypeOf(ctx.params.sku).toEqualTypeOf<string>();
        expectTypeOf(ctx.query.currency).toEqualTypeOf<'EUR' | 'USD'>();
        expectTypeOf(ctx.input.quantity).toEqualTypeOf<number>();
        return {
          status: 201,
          headers: { 'x-quote': 'fresh' },
          body: { sku: ctx.params.sku, total: ctx.input.quantity * 2.5, currency: ctx.query.currency },
        };
      },
    });
    const s = await start([quote]);
    const res = await s.request('/quotes/ABC-1?currency=USD', { method: 'POST', json: { quantity: 4 } });
    expect(res.status).toBe(201);
    expect(res.headers.get('x-quote')).toBe('fresh');
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(res.json).toEqual({ sku: 'ABC-1', total: 10, currency: 'USD' });
    const id = res.headers.get('tandem-instance-id')!;
    const record = await recordOf(s, id);
    expect(record).toMatchObject({
      mode: 'sync',
      status: 'succeeded',
      integrationId: 'quote',
      input: { quantity: 4 },
      output: { sku: 'ABC-1', total: 10, currency: 'USD' },
      tracking: { sku: 'ABC-1' },
    });
    expect(record.durationMs).toBeGreaterThanOrEqual(0);
    // Sync instances are for monitoring only: not rerunnable.
    const rerun = await s.request(`/api/instances/${id}/rerun`, { method: 'POST', json: { from: 'start' } });
    expect(rerun.status).toBe(409);
  });

  it('sends a plain value as 200 JSON, a string as text and nothing as 204', async () => {
    const plain = defineIntegration({
      id: 'plain',
      mode: 'sync',
      route: 'GET /plain',
      handler: () => ({ status: 'shipped' }),
    });
    const text = defineIntegration({ id: 'text', mode: 'sync', route: 'GET /text', handler: () => 'pong' });
    const empty = defineIntegration({
      id: 'empty',
      mode: 'sync',
      route: 'DELETE /empty',
      handler: () => undefined,
    });
    const s = await start([plain, text, empty]);
    const a = await s.request('/plain');
    expect([a.status, a.json]).toEqual([200, { status: 'shipped' }]);
    const b = await s.request('/text');
    expect([b.status, b.text, b.headers.get('content-type')]).toEqual([
      200,
      'pong',
      'text/plain; charset=utf-8',
    ]);
    const c = await s.request('/empty', { method: 'DELETE' });
    expect([c.status, c.text]).toEqual([204, '']);
  });

  it('refuses invalid params, query and body with 400 naming every failing field, without running the handler', async () => {
    let calls = 0;
    const lookup = defineIntegration({
      id: 'lookup',
      mode: 'sync',
      route: 'POST /stock/:sku',
      params: z.object({ sku: z.string().regex(/^[A-Z]+$/) }),
      query: z.object({ warehouse: z.coerce.number().int() }),
      input: z.object({ customer: z.object({ email: z.email() }) }),
      handler: () => {
        calls++;
        return 'ok';
      },
    });
    const s = await start([lookup]);
    const before = s.counts();
    const res = await s.request('/stock/abc?warehouse=north', {
      method: 'POST',
      json: { customer: { email: 'not-an-email' } },
    });
    expect(res.status).toBe(400);
    expect(res.headers.get('content-type')).toBe('application/problem+json; charset=utf-8');
    expect(res.json.type).toBe('urn:tandem:error:invalid-input');
    expect(res.json.errors.map((e: { in: string; path: string }) => `${e.in}:${e.path}`)).toEqual([
      'params:sku',
      'query:warehouse',
      'body:customer.email',
    ]);
    expect(calls).toBe(0);
    expect(s.counts()).toEqual(before);
  });

  it('answers 504 at the deadline, fires the handler signal and starts nothing', async () => {
    let aborted: unknown = null;
    const slow = defineIntegration({
      id: 'slow',
      mode: 'sync',
      route: 'POST /slow',
      deadline: 100,
      handler: async (ctx) => {
        await ctx.start(fulfil, { orderId: 'late' });
        await new Promise<void>((resolve) => {
          ctx.signal.addEventListener('abort', () => {
            aborted = ctx.signal.reason;
            resolve();
          });
        });
        return 'too late';
      },
    });
    const s = await start([slow]);
    const res = await s.request('/slow', { method: 'POST' });
    expect(res.status).toBe(504);
    expect(res.json).toMatchObject({
      type: 'urn:tandem:error:deadline-exceeded',
      status: 504,
      deadlineMs: 100,
    });
    const id = res.json.instanceId;
    expect(res.json.instance).toBe(`/api/instances/${id}`);
    expect(res.headers.get('tandem-instance-id')).toBe(id);
    await waitFor(() => aborted, 'the handler signal to fire');
    expect(aborted).toMatchObject({ code: 'deadline-exceeded' });
    const record = await recordOf(s, id);
    expect(record).toMatchObject({ status: 'failed', error: { code: 'deadline-exceeded' } });
    expect(await childrenOf(s, id)).toEqual([]);
    expect(await s.store.countInstances({ integrationId: 'fulfil-order' })).toBe(0);
  });

  it('gives a handler that first reads its signal after the deadline one already aborted', async () => {
    let seen: unknown = null;
    const late = defineIntegration({
      id: 'late-reader',
      mode: 'sync',
      route: 'POST /late-reader',
      deadline: 50,
      handler: async (ctx) => {
        await new Promise((resolve) => setTimeout(resolve, 200));
        seen = { aborted: ctx.signal.aborted, reason: ctx.signal.reason };
        return 'too late';
      },
    });
    const s = await start([late]);
    const res = await s.request('/late-reader', { method: 'POST' });
    expect(res.status).toBe(504);
    await waitFor(() => seen, 'the handler to read its signal');
    expect(seen).toMatchObject({ aborted: true, reason: { code: 'deadline-exceeded' } });
  });

  it('answers 500 for a handler error without revealing its message, and records the error', async () => {
    const broken = defineIntegration({
      id: 'broken',
      mode: 'sync',
      route: 'POST /broken',
      handler: () => {
        throw new Error('database password is hunter2');
      },
    });
    const s = await start([broken]);
    const res = await s.request('/broken', { method: 'POST' });
    expect(res.status).toBe(500);
    expect(res.json).toMatchObject({ type: 'urn:tandem:error:handler-failed', status: 500 });
    expect(res.text).not.toContain('hunter2');
    const record = await recordOf(s, res.json.instanceId);
    expect(record).toMatchObject({ status: 'failed', error: { message: 'database password is hunter2' } });
  });

  it('answers 502 for a downstream failure and 503 with Retry-After when the downstream asks to wait', async () => {
    const viaStatus = defineIntegration({
      id: 'via-status',
      mode: 'sync',
      route: 'GET /crm-down',
      handler: () => {
        throw Object.assign(new Error('CRM answered 500'), { status: 502 });
      },
    });
    const viaMark = defineIntegration({
      id: 'via-mark',
      mode: 'sync',
      route: 'GET /crm-refused',
      handler: () => {
        throw Object.assign(new Error('ECONNREFUSED'), { connection: 'crm' });
      },
    });
    const circuit = defineIntegration({
      id: 'circuit',
      mode: 'sync',
      route: 'GET /bank',
      handler: () => {
        throw new RetryAfterError(30_000, 'bank circuit open');
      },
    });
    const s = await start([viaStatus, viaMark, circuit]);
    const a = await s.request('/crm-down');
    expect([a.status, a.json.type]).toEqual([502, 'urn:tandem:error:downstream-failed']);
    expect(a.json.instanceId).toBe(a.headers.get('tandem-instance-id'));
    const b = await s.request('/crm-refused');
    expect([b.status, b.json.type]).toEqual([502, 'urn:tandem:error:downstream-failed']);
    const c = await s.request('/bank');
    expect([c.status, c.headers.get('retry-after')]).toEqual([503, '30']);
    expect(c.json.instanceId).toBeTypeOf('string');
  });

  it('commits the hand-off before the response is written', async () => {
    const place = defineIntegration({
      id: 'place-order',
      mode: 'sync',
      route: 'POST /orders',
      input: z.object({ orderId: z.string(), lines: z.number().int() }),
      handler: async (ctx) => {
        const first = await ctx.start(fulfil, { orderId: ctx.input.orderId });
        const many = await ctx.startMany(
          fulfil,
          Array.from({ length: ctx.input.lines }, (_, line) => ({ orderId: ctx.input.orderId, line })),
        );
        return {
          status: 201,
          body: { confirmed: ctx.input.orderId, child: first.instanceId, lines: many.count },
        };
      },
    });
    const s = await start([place]);
    const res = await s.request('/orders', { method: 'POST', json: { orderId: 'A-1', lines: 3 } });
    expect(res.status).toBe(201);
    // No waiting: a client that saw the confirmation finds its follow-up work queued.
    const children = await childrenOf(s, res.headers.get('tandem-instance-id')!);
    expect(children).toHaveLength(4);
    expect(children.map((c) => c.status)).toEqual(['queued', 'queued', 'queued', 'queued']);
    expect(children.map((c) => c.id)).toContain(res.json.child);
  });

  it('starts nothing when the handler throws after ctx.start(), or answers something unsendable', async () => {
    const throwing = defineIntegration({
      id: 'throwing',
      mode: 'sync',
      route: 'POST /throwing',
      handler: async (ctx) => {
        await ctx.start(fulfil, { orderId: 'B-1' });
        await ctx.startMany(fulfil, [{ orderId: 'B-2' }, { orderId: 'B-3' }]);
        throw new Error('payment declined');
      },
    });
    const badStatus = defineIntegration({
      id: 'bad-status',
      mode: 'sync',
      route: 'POST /bad-status',
      handler: async (ctx) => {
        await ctx.start(fulfil, { orderId: 'C-1' });
        return { status: 700, body: 'x' };
      },
    });
    const badChild = defineIntegration({
      id: 'bad-child',
      mode: 'sync',
      route: 'POST /bad-child',
      handler: async (ctx) => {
        await ctx.start(fulfil, { orderId: 'D-1' });
        await ctx.start(fulfil, { orderId: 42 } as never);
        return 'ok';
      },
    });
    const s = await start([throwing, badStatus, badChild]);
    for (const path of ['/throwing', '/bad-status', '/bad-child']) {
      const res = await s.request(path, { method: 'POST' });
      expect(res.status, path).toBe(500);
      expect(res.json.type).toBe('urn:tandem:error:handler-failed');
      await recordOf(s, res.json.instanceId);
    }
    expect(await s.store.countInstances({ integrationId: 'fulfil-order' })).toBe(0);
  });

  it('turns a hand-off whose idempotency key was used with other input into 422, starting nothing new', async () => {
    const keyed = defineIntegration({
      id: 'keyed',
      mode: 'sync',
      route: 'POST /keyed',
      input: z.object({ orderId: z.string() }),
      handler: async (ctx) => {
        const key = ctx.headers['idempotency-key'] as string;
        await ctx.start(fulfil, { orderId: ctx.input.orderId }, { idempotencyKey: key });
        return 'confirmed';
      },
    });
    const s = await start([keyed]);
    const headers = { 'idempotency-key': 'order-7' };
    expect((await s.request('/keyed', { method: 'POST', json: { orderId: 'E-1' }, headers })).status).toBe(
      200,
    );
    expect((await s.request('/keyed', { method: 'POST', json: { orderId: 'E-1' }, headers })).status).toBe(
      200,
    );
    const conflict = await s.request('/keyed', { method: 'POST', json: { orderId: 'E-2' }, headers });
    expect(conflict.status).toBe(422);
    expect(conflict.json.type).toBe('urn:tandem:error:idempotency-conflict');
    expect(await s.store.countInstances({ integrationId: 'fulfil-order' })).toBe(1);
  });

  it('refuses at start a deadline above the cap', async () => {
    const long = defineIntegration({
      id: 'long',
      mode: 'sync',
      route: 'GET /long',
      deadline: 120_000,
      handler: () => 1,
    });
    const t = await testEngine([long], { worker: false });
    try {
      await expect(buildApp({ engine: t.engine, adminToken: null, maxDeadlineMs: 60_000 })).rejects.toThrow(
        /deadline 120000 ms exceeds the server's cap of 60000 ms/,
      );
    } finally {
      await t.close();
    }
  });
});
