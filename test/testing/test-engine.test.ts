import '../support/provided.js';
import { existsSync } from 'node:fs';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { z } from 'zod';
import { httpConnection } from '../../src/connections/http.js';
import { defineIntegration } from '../../src/define/integration.js';
import { RetryAfterError } from '../../src/errors.js';
import {
  createTestEngine,
  type FakeApplication,
  type FakeApplicationOptions,
  fakeApplication,
  type TestEngine,
} from '../../src/testing/index.js';
import { STORE_KINDS } from '../support/engine.js';

const MINUTE = 60_000;

describe.each(STORE_KINDS)('the test kit on %s', (kind) => {
  const store = () => (kind === 'postgres' ? inject('postgresUrl') : undefined);
  const open: { close(): Promise<void> }[] = [];
  afterEach(async () => {
    for (const thing of open.splice(0).reverse()) await thing.close();
  });
  const app = async (routes: FakeApplicationOptions['routes']) => {
    const made = await fakeApplication({ routes });
    open.push(made);
    return made;
  };
  const engine = async (options: Omit<Parameters<typeof createTestEngine>[0], 'store'>) => {
    const made = await createTestEngine({ ...options, store: store() });
    open.push(made);
    return made;
  };

  /** An async integration that reserves stock in one step, retried 8 times a minute apart. */
  function reserving(target: FakeApplication) {
    const inventory = httpConnection('inventory', { baseUrl: target.url });
    const reserve = defineIntegration({
      id: 'reserve',
      mode: 'async',
      input: z.object({ sku: z.string(), qty: z.number().int().positive() }),
      retry: { maxAttempts: 8, initialDelayMs: MINUTE, factor: 1, jitter: 0 },
      async handler(ctx) {
        return ctx.step('reserve', () => ctx.call(inventory, 'POST', '/reservations', { json: ctx.input }));
      },
    });
    return { reserve, inventory };
  }

  it('runs 8 attempts with 1 min backoff when advanced, without waiting the 7 minutes', async () => {
    const inventory = await app({ 'POST /reservations': { status: 503, body: { error: 'maintenance' } } });
    const { reserve, inventory: connection } = reserving(inventory);
    const t = await engine({
      integrations: [reserve],
      connections: [connection],
      now: '2026-11-24T09:00:00Z',
    });

    const { instanceId } = await t.trigger(reserve, { sku: 'KB-42', qty: 1 });
    await t.runUntilIdle();
    let result = await t.result(instanceId);
    expect(result.status).toBe('retrying');
    expect(inventory.count()).toBe(1);
    expect(result.instance.runAt).toBe(Date.parse('2026-11-24T09:01:00Z'));

    await t.advance(6 * MINUTE + 59_999);
    expect((await t.result(instanceId)).status).toBe('retrying');
    expect(inventory.count()).toBe(7);

    await t.advance(1);
    result = await t.result(instanceId);
    expect(result.status).toBe('failed');
    expect(result.instance.attempt).toBe(8);
    expect(inventory.count()).toBe(8);
    // Each attempt at its own time, a minute apart — and the circuit breaker (5 failures, 30 s)
    // followed the same clock: it let the 6th attempt through as its probe.
    expect(result.calls.map((c) => c.status)).toEqual(Array(8).fill(503));
    const starts = result.events.filter((e) => e.type === 'started').map((e) => e.at);
    expect(starts).toEqual(
      Array.from({ length: 8 }, (_, i) => Date.parse('2026-11-24T09:00:00Z') + i * MINUTE),
    );
    expect(t.now().toISOString()).toBe('2026-11-24T09:07:00.000Z');
    // Every attempt of the step sent the same Idempotency-Key.
    expect(new Set(inventory.requests.map((r) => r.idempotencyKey)).size).toBe(1);
  });

  it('succeeds after the application recovers, and result() shows steps, calls and events', async () => {
    const inventory = await app({ 'POST /reservations': { status: 201, body: { reservationId: 'R-7' } } });
    inventory.failNext(2, { retryAfter: 120 });
    const { reserve, inventory: connection } = reserving(inventory);
    const t = await engine({ integrations: [reserve], connections: [connection] });
    const { instanceId } = await t.trigger(reserve, { sku: 'KB-42', qty: 2 });
    await t.runUntilIdle();
    // The 503's Retry-After (120 s) decides the wait, not the policy's minute.
    await t.advance(MINUTE);
    expect(inventory.count()).toBe(1);
    await t.advance(5 * MINUTE);
    const result = await t.result(instanceId);
    expect(result.status).toBe('succeeded');
    expect(result.output).toEqual({ reservationId: 'R-7' });
    expect(result.steps).toMatchObject([{ name: 'reserve', status: 'succeeded', attempt: 3 }]);
    expect(result.calls.map((c) => [c.connection, c.method, c.status])).toEqual([
      ['inventory', 'POST', 503],
      ['inventory', 'POST', 503],
      ['inventory', 'POST', 201],
    ]);
    expect(result.events.map((e) => e.type)).toContain('retry.scheduled');
    expect(inventory.received('POST /reservations').at(-1)!.body).toEqual({ sku: 'KB-42', qty: 2 });
  });

  it('fires the nightly run at 02:00 Europe/Berlin when the clock gets there, once', async () => {
    const seen: (number | null)[] = [];
    const nightly = defineIntegration({
      id: 'nightly',
      mode: 'scheduled',
      cron: '0 0 2 * * *',
      timezone: 'Europe/Berlin',
      async handler(ctx) {
        seen.push(ctx.scheduledFor);
        return { at: ctx.scheduledFor };
      },
    });
    const t = await engine({ integrations: [nightly], now: '2026-11-24T12:00:00Z' });
    await t.advanceTo('2026-11-25T00:59:59Z');
    expect(seen).toEqual([]);
    await t.advance(1_000);
    // 02:00 in Berlin in November is 01:00 UTC.
    expect(seen).toEqual([Date.parse('2026-11-25T01:00:00Z')]);
    await t.advance(48 * 60 * MINUTE);
    expect(seen.map((at) => new Date(at!).toISOString())).toEqual([
      '2026-11-25T01:00:00.000Z',
      '2026-11-26T01:00:00.000Z',
      '2026-11-27T01:00:00.000Z',
    ]);
    const schedule = await t.engine.getSchedule('nightly');
    expect(schedule.recentSlots.map((s) => s.outcome)).toEqual(['fired', 'fired', 'fired']);
  });

  it('triggers a scheduled integration now with parameter overrides', async () => {
    const report = defineIntegration({
      id: 'report',
      mode: 'scheduled',
      cron: '0 0 6 * * 1',
      parameters: { region: 'north', limit: 10 },
      async handler(ctx) {
        return { ...ctx.parameters, scheduledFor: ctx.scheduledFor };
      },
    });
    const t = await engine({ integrations: [report] });
    const { instanceId } = await t.trigger(report, { limit: '25' });
    await t.runUntilIdle();
    expect((await t.result(instanceId)).output).toEqual({ region: 'north', limit: 25, scheduledFor: null });
    await expect(t.trigger(report, { unknown: 1 })).rejects.toMatchObject({ code: 'invalid-input' });
  });

  it('calls a sync route with HTTP validation, answers and hand-off, and refuses to trigger it', async () => {
    const bank = await app({
      'GET /accounts/:id': ({ params }) => ({ body: { account: params.id, balance: 12.5 } }),
    });
    const connection = httpConnection('bank', { baseUrl: bank.url });
    const notify = defineIntegration({
      id: 'notify',
      mode: 'async',
      input: z.object({ account: z.string() }),
      handler: (ctx) => ({ notified: ctx.input.account }),
    });
    const balance = defineIntegration({
      id: 'balance',
      mode: 'sync',
      route: 'GET /accounts/:account/balance',
      params: z.object({ account: z.string().regex(/^A-\d+$/) }),
      query: z.object({ notify: z.enum(['yes', 'no']).default('no') }),
      async handler(ctx) {
        if (ctx.query.notify === 'yes') await ctx.start(notify, { account: ctx.params.account });
        return { body: await ctx.call(connection, 'GET', `/accounts/${ctx.params.account}`) };
      },
    });
    const t = await engine({ integrations: [balance, notify], connections: [connection] });

    const answer = await t.call(balance, { params: { account: 'A-1' }, query: { notify: 'yes' } });
    expect(answer.status).toBe(200);
    expect(answer.body).toEqual({ account: 'A-1', balance: 12.5 });
    expect(answer.instanceId).toEqual(expect.any(String));
    const sync = await t.result(answer.instanceId!);
    expect(sync.status).toBe('succeeded');
    expect(sync.instance.mode).toBe('sync');
    expect(sync.children.map((c) => [c.integrationId, c.input])).toEqual([['notify', { account: 'A-1' }]]);
    await t.runUntilIdle();
    expect((await t.result(sync.children[0]!.id)).output).toEqual({ notified: 'A-1' });

    const invalid = await t.call(balance, { params: { account: 'B-2' }, query: { notify: 'maybe' } });
    expect(invalid.status).toBe(400);
    expect(invalid.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(invalid.body).toMatchObject({ type: 'urn:tandem:error:invalid-input' });
    expect((invalid.body as { errors: { in: string }[] }).errors.map((e) => e.in).sort()).toEqual([
      'params',
      'query',
    ]);
    expect(bank.count()).toBe(1);

    bank.failNext(1, { retryAfter: 7 });
    const down = await t.call(balance, { params: { account: 'A-1' } });
    // The application's wait reaches the caller (a downstream failure: 502 or 503).
    expect(down.status).toBeGreaterThanOrEqual(502);
    expect(down.headers['retry-after']).toBe('7');
    expect((await t.result(down.instanceId!)).status).toBe('failed');

    await expect(t.trigger(balance, {})).rejects.toMatchObject({ code: 'wrong-mode' });
  });

  it('sends a request to an async route: 202 with the instance, the same validation as HTTP', async () => {
    const sync = defineIntegration({
      id: 'sync-stock',
      mode: 'async',
      route: 'POST /stock/sync',
      input: z.object({ sku: z.string().min(1) }),
      handler: (ctx) => ({ synced: ctx.input.sku }),
    });
    const t = await engine({ integrations: [sync] });
    const accepted = await t.call(sync, { body: { sku: 'KB-42' }, headers: { 'Idempotency-Key': 'k-1' } });
    expect(accepted.status).toBe(202);
    const again = await t.call(sync, { body: { sku: 'KB-42' }, headers: { 'Idempotency-Key': 'k-1' } });
    expect(again.instanceId).toBe(accepted.instanceId);
    expect((await t.call(sync, { body: { sku: '' } })).status).toBe(400);
    await t.runUntilIdle();
    expect((await t.result(accepted.instanceId!)).output).toEqual({ synced: 'KB-42' });
  });

  it('advances a fan-out that waits for its children, and lists them in result()', async () => {
    // The children take a moment (real time): the parent finds them still running and waits.
    const doubler = await app({
      'GET /double/:n': ({ params }) => ({ body: Number(params.n) * 2, delayMs: 200 }),
    });
    const connection = httpConnection('doubler', { baseUrl: doubler.url });
    const child = defineIntegration({
      id: 'child',
      mode: 'async',
      input: z.object({ n: z.number() }),
      handler: (ctx) => ctx.call(connection, 'GET', `/double/${ctx.input.n}`),
    });
    const parent = defineIntegration({
      id: 'parent',
      mode: 'async',
      handler: (ctx) => ctx.startMany(child, [{ n: 1 }, { n: 2 }, { n: 3 }], { await: 'children' }),
    });
    const t = await engine({ integrations: [parent, child], connections: [connection] });
    const { instanceId } = await t.trigger(parent, {});
    await t.runUntilIdle();
    expect((await t.result(instanceId)).status).toBe('retrying'); // checks on its children in 1 s
    await t.advance(1_000);
    const result = await t.result(instanceId);
    expect(result.status).toBe('succeeded');
    expect(result.output).toMatchObject({ count: 3, children: { succeeded: 3 } });
    expect(result.children.map((c) => c.output)).toEqual([2, 4, 6]);
  });

  it('stops at a retry while a later instance of the same ordering key waits behind it', async () => {
    const ran: [string, number][] = [];
    let failures = 1;
    const sync = defineIntegration({
      id: 'sync-article',
      mode: 'async',
      input: z.object({ sku: z.string(), n: z.number() }),
      orderingKey: 'sku',
      retry: { initialDelayMs: MINUTE, jitter: 0 },
      handler(ctx) {
        ran.push([`${ctx.input.n}`, t.clock.now()]);
        if (ctx.input.n === 1 && failures-- > 0) throw new Error('the shop is busy');
        return ctx.input.n;
      },
    });
    const t = await engine({ integrations: [sync], now: '2026-11-24T09:00:00Z' });
    const first = await t.trigger(sync, { sku: 'KB-42', n: 1 });
    const second = await t.trigger(sync, { sku: 'KB-42', n: 2 });
    await t.runUntilIdle();
    // The second is due but held back by the first, which retries in a minute: advance stops there.
    await t.advance(10 * MINUTE);
    const start = Date.parse('2026-11-24T09:00:00Z');
    expect(ran).toEqual([
      ['1', start],
      ['1', start + MINUTE],
      ['2', start + MINUTE],
    ]);
    expect((await t.result(first.instanceId)).status).toBe('succeeded');
    expect((await t.result(second.instanceId)).output).toBe(2);
  });

  it('gives up on work that keeps coming due at the same instant', async () => {
    const spinning = defineIntegration({
      id: 'spinning',
      mode: 'async',
      handler: () => {
        throw new RetryAfterError(0, 'again', { consumesAttempt: false });
      },
    });
    const t = await engine({ integrations: [spinning], maxAttempts: 20 });
    await t.trigger(spinning, {});
    await expect(t.runUntilIdle()).rejects.toThrow(/More than 20 attempts ran/);
  });

  it('refuses to move the clock back, and closes (removing its store) with await using', async () => {
    let made: TestEngine | undefined;
    {
      await using t = await createTestEngine({ integrations: [], store: store() });
      made = t;
      await expect(t.advance(-1)).rejects.toMatchObject({ code: 'invalid-input' });
      await expect(t.advanceTo(Date.now() - 60_000)).rejects.toMatchObject({ code: 'invalid-input' });
    }
    await expect(made.store.ping()).rejects.toThrow();
    if (kind === 'sqlite') {
      const path = (made.store as unknown as { path?: string }).path;
      if (path) expect(existsSync(path)).toBe(false);
    }
  });
});
