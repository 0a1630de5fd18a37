import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineIntegration } from '../../src/define/integration.js';
import { NonRetryableError } from '../../src/errors.js';
import {
  bulkRerunResultSchema,
  instanceDetailSchema,
  instancePageSchema,
  integrationListSchema,
} from '../../src/server/api/schemas.js';
import { waitForStatus } from '../support/engine.js';
import { type TestServer, testServer } from '../support/server.js';

let server: TestServer | null = null;
afterEach(async () => {
  await server?.close();
  server = null;
});

/** Fails at its second step while `failing` is true; a rerun from the failed step skips the first. */
function invoicing() {
  const state = { failing: true, reserveCalls: 0 };
  const integration = defineIntegration({
    id: 'send-invoice',
    mode: 'async',
    input: z.object({ orderId: z.string(), amount: z.number() }),
    track: { orderId: 'orderId' },
    retry: { maxAttempts: 1 },
    handler: async (ctx) => {
      await ctx.step('reserve-number', () => {
        state.reserveCalls++;
        return { number: `INV-${ctx.input.orderId}` };
      });
      return ctx.step('send', () => {
        if (state.failing) throw new NonRetryableError('mail server refused');
        return { sent: ctx.input.amount };
      });
    },
  });
  return { integration, state };
}

describe('management API', () => {
  it('lists integrations with mode, triggers and counts', async () => {
    const { integration } = invoicing();
    const sync = defineIntegration({
      id: 'stock',
      mode: 'sync',
      route: 'GET /stock',
      deadline: 2_000,
      handler: () => 1,
    });
    const nightly = defineIntegration({
      id: 'nightly',
      mode: 'scheduled',
      cron: '0 2 * * *',
      timezone: 'Europe/Berlin',
      handler: () => 1,
    });
    server = await testServer([integration, sync, nightly], {}, { worker: false });
    await server.engine.accept(integration, { orderId: 'A', amount: 1 });
    const res = await server.request('/api/integrations');
    expect(res.status).toBe(200);
    const body = integrationListSchema.parse(res.json);
    const byId = Object.fromEntries(body.items.map((i) => [i.id, i]));
    expect(byId['send-invoice']).toMatchObject({ mode: 'async', counts: { queued: 1 }, stats: { total: 1 } });
    expect(byId.stock).toMatchObject({
      mode: 'sync',
      deadlineMs: 2_000,
      triggers: [{ type: 'http', method: 'GET', path: '/stock', auth: null }],
    });
    expect(byId.nightly!.triggers).toContainEqual({
      type: 'cron',
      cron: '0 2 * * *',
      timezone: 'Europe/Berlin',
    });
  });

  it('filters instances by integration, status, tracking value and time, with cursor paging', async () => {
    const { integration } = invoicing();
    const other = defineIntegration({
      id: 'other',
      mode: 'async',
      track: { orderId: 'orderId' },
      handler: () => 1,
    });
    server = await testServer([integration, other], {}, { worker: false });
    const ids: string[] = [];
    for (let n = 1; n <= 5; n++) {
      ids.push((await server.engine.accept(integration, { orderId: `O-${n}`, amount: n })).instanceId);
    }
    await server.engine.accept(other, { orderId: 'O-3' });
    await server.engine.cancel(ids[0]!);

    const list = async (query: string) => {
      const res = await server!.request(`/api/instances?${query}`);
      expect(res.status, query).toBe(200);
      return instancePageSchema.parse(res.json);
    };
    expect((await list('integration=send-invoice')).items).toHaveLength(5);
    expect((await list('status=cancelled')).items.map((i) => i.id)).toEqual([ids[0]]);
    expect((await list('status=queued&status=cancelled&integration=send-invoice')).items).toHaveLength(5);
    expect((await list('tracking=O-3')).items.map((i) => i.integrationId).sort()).toEqual([
      'other',
      'send-invoice',
    ]);
    expect((await list('tracking=orderId%3DO-3&integration=other')).items).toHaveLength(1);
    const future = new Date(Date.now() + 60_000).toISOString();
    expect((await list(`from=${encodeURIComponent(future)}`)).items).toHaveLength(0);
    expect((await list(`to=${Date.now() + 60_000}&integration=other`)).items).toHaveLength(1);

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page: z.infer<typeof instancePageSchema> = await list(
        `integration=send-invoice&limit=2${cursor ? `&cursor=${cursor}` : ''}`,
      );
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.items.map((i) => i.id));
      cursor = page.nextCursor;
    } while (cursor);
    expect(seen).toEqual([...ids].reverse());

    const bad = await server.request('/api/instances?status=lost&limit=0&colour=red');
    expect(bad.status).toBe(400);
    expect(bad.json.errors.map((e: { path: string }) => e.path).sort()).toEqual(['', 'limit', 'status']);
  });

  it('shows an instance with its runs, steps and events, reruns it from the failed step, and reruns in bulk', async () => {
    const { integration, state } = invoicing();
    server = await testServer([integration]);
    const { instanceId } = await server.engine.accept(integration, { orderId: 'F-1', amount: 10 });
    await waitForStatus(server.engine, instanceId);

    const detail = instanceDetailSchema.parse((await server.request(`/api/instances/${instanceId}`)).json);
    expect(detail.instance.status).toBe('failed');
    expect(detail.steps.map((s) => [s.name, s.status])).toEqual([
      ['reserve-number', 'succeeded'],
      ['send', 'failed'],
    ]);
    expect(detail.events.map((e) => e.type)).toContain('failed');

    const badInput = await server.request(`/api/instances/${instanceId}/rerun`, {
      method: 'POST',
      json: { from: 'failed-step', input: { orderId: 'F-1', amount: 'ten' } },
    });
    expect(badInput.status).toBe(400);
    expect(badInput.json.errors).toEqual([expect.objectContaining({ in: 'body', path: 'input.amount' })]);

    state.failing = false;
    const rerun = await server.request(`/api/instances/${instanceId}/rerun`, {
      method: 'POST',
      json: { from: 'failed-step', input: { orderId: 'F-1', amount: 12 } },
    });
    expect(rerun.status).toBe(200);
    expect(rerun.json).toEqual({ instanceId, run: 2, status: 'queued' });
    const done = await waitForStatus(server.engine, instanceId);
    expect(done).toMatchObject({ status: 'succeeded', run: 2, output: { sent: 12 } });
    expect(state.reserveCalls).toBe(1);
    const again = instanceDetailSchema.parse((await server.request(`/api/instances/${instanceId}`)).json);
    expect(again.runs.map((r) => [r.run, r.status])).toEqual([
      [1, 'failed'],
      [2, 'succeeded'],
    ]);

    state.failing = true;
    const more = await Promise.all(
      ['F-2', 'F-3'].map((orderId) => server!.engine.accept(integration, { orderId, amount: 1 })),
    );
    for (const m of more) await waitForStatus(server.engine, m.instanceId);
    state.failing = false;
    const bulk = await server.request('/api/instances/rerun', {
      method: 'POST',
      json: { filter: { integration: 'send-invoice', status: 'failed' }, from: 'start' },
    });
    expect(bulk.status).toBe(200);
    expect(bulkRerunResultSchema.parse(bulk.json)).toMatchObject({ count: 2 });
    for (const m of more)
      expect(await waitForStatus(server.engine, m.instanceId)).toMatchObject({ status: 'succeeded' });

    const noFilter = await server.request('/api/instances/rerun', {
      method: 'POST',
      json: { filter: {}, from: 'start' },
    });
    expect(noFilter.status).toBe(400);
    const badFrom = await server.request(`/api/instances/${instanceId}/rerun`, {
      method: 'POST',
      json: { from: 'middle' },
    });
    expect(badFrom.status).toBe(400);
    expect(badFrom.json.errors).toEqual([expect.objectContaining({ in: 'body', path: 'from' })]);
  });

  it('cancels an unfinished instance, and answers 409 and 404 where it cannot', async () => {
    const { integration } = invoicing();
    server = await testServer([integration], {}, { worker: false });
    const { instanceId } = await server.engine.accept(integration, { orderId: 'C-1', amount: 1 });
    const active = await server.request(`/api/instances/${instanceId}/rerun`, { method: 'POST', json: {} });
    expect([active.status, active.json.type]).toEqual([409, 'urn:tandem:error:invalid-state']);
    const res = await server.request(`/api/instances/${instanceId}/cancel`, { method: 'POST' });
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ instanceId, status: 'cancelled' });
    expect((await server.store.getInstance(instanceId))!.status).toBe('cancelled');
    const twice = await server.request(`/api/instances/${instanceId}/cancel`, { method: 'POST' });
    expect([twice.status, twice.json.type]).toEqual([409, 'urn:tandem:error:invalid-state']);
    const missing = await server.request('/api/instances/no-such-id/cancel', { method: 'POST' });
    expect([missing.status, missing.json.type]).toEqual([404, 'urn:tandem:error:instance-not-found']);
    const detail = await server.request('/api/instances/no-such-id');
    expect(detail.status).toBe(404);
  });

  it('reports health while the store answers, and 503 once it does not', async () => {
    server = await testServer([]);
    const ok = await server.request('/healthz');
    expect([ok.status, ok.json]).toEqual([200, { status: 'ok' }]);
    await server.store.close();
    const down = await server.request('/healthz');
    expect(down.status).toBe(503);
    expect(down.json.type).toBe('urn:tandem:error:store-unreachable');
  });
});
