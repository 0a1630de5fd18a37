import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineIntegration } from '../../src/define/integration.js';
import { waitForStatus } from '../support/engine.js';
import { type TestServer, testServer } from '../support/server.js';
import { waitFor } from '../support/wait.js';

const shipment = defineIntegration({
  id: 'create-shipment',
  mode: 'async',
  route: 'POST /shipments',
  input: z.object({ orderId: z.string(), parcels: z.array(z.object({ weightKg: z.number().positive() })) }),
  track: { orderId: 'orderId' },
  handler: async (ctx) => ({ parcels: ctx.input.parcels.length }),
});

let server: TestServer | null = null;
afterEach(async () => {
  await server?.close();
  server = null;
});

const order = (orderId: string, weightKg = 1) => ({ orderId, parcels: [{ weightKg }] });

describe('async triggers', () => {
  it('answers 202 with instanceId, status, statusUrl and Location only once the instance is stored, then runs it', async () => {
    server = await testServer([shipment]);
    const res = await server.request('/shipments', { method: 'POST', json: order('A-1') });
    expect(res.status).toBe(202);
    const { instanceId, status, statusUrl } = res.json;
    expect(status).toBe('queued');
    expect(statusUrl).toBe(`/api/instances/${instanceId}`);
    expect(res.headers.get('location')).toBe(statusUrl);
    // Read straight from the store, without waiting: the 202 follows the commit.
    expect(await server.store.getInstance(instanceId)).toMatchObject({ tracking: { orderId: 'A-1' } });
    const done = await waitForStatus(server.engine, instanceId);
    expect(done).toMatchObject({ status: 'succeeded', output: { parcels: 1 } });
    const followed = await server.request(statusUrl);
    expect(followed.json.instance.status).toBe('succeeded');
  });

  it('refuses a schema violation with 400 naming each field, storing nothing', async () => {
    server = await testServer([shipment]);
    const before = server.counts();
    const res = await server.request('/shipments', {
      method: 'POST',
      json: { orderId: 7, parcels: [{ weightKg: 1 }, { weightKg: -2 }] },
    });
    expect(res.status).toBe(400);
    expect(res.json.errors).toEqual([
      expect.objectContaining({ in: 'body', path: 'orderId' }),
      expect.objectContaining({ in: 'body', path: 'parcels.1.weightKg' }),
    ]);
    expect(server.counts()).toEqual(before);
  });

  it('returns the original instance for a repeated Idempotency-Key and 422 for the same key with another body', async () => {
    server = await testServer([shipment], {}, { worker: false });
    const headers = { 'idempotency-key': 'shop-order-A-2' };
    const first = await server.request('/shipments', { method: 'POST', json: order('A-2'), headers });
    const again = await server.request('/shipments', { method: 'POST', json: order('A-2'), headers });
    expect(first.status).toBe(202);
    expect(again.status).toBe(202);
    expect(again.json.instanceId).toBe(first.json.instanceId);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(first.headers.get('idempotent-replayed')).toBeNull();
    const conflict = await server.request('/shipments', { method: 'POST', json: order('A-2', 9), headers });
    expect(conflict.status).toBe(422);
    expect(conflict.json).toMatchObject({
      type: 'urn:tandem:error:idempotency-conflict',
      instanceId: first.json.instanceId,
    });
    expect(await server.store.countInstances({ integrationId: 'create-shipment' })).toBe(1);
    const invalid = await server.request('/shipments', {
      method: 'POST',
      json: order('A-3'),
      headers: { 'idempotency-key': 'x'.repeat(256) },
    });
    expect(invalid.status).toBe(400);
    expect(invalid.json.errors).toEqual([expect.objectContaining({ in: 'header', path: 'idempotency-key' })]);
  });

  it('answers 429 with Retry-After above the queue depth, storing nothing more', async () => {
    server = await testServer([shipment], { maxQueueDepth: 3, retryAfterSeconds: 7 }, { worker: false });
    for (const id of ['Q-1', 'Q-2', 'Q-3']) {
      expect((await server.request('/shipments', { method: 'POST', json: order(id) })).status).toBe(202);
    }
    const refused = await server.request('/shipments', { method: 'POST', json: order('Q-4') });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('7');
    expect(refused.json).toMatchObject({
      type: 'urn:tandem:error:queue-full',
      queueDepth: 3,
      maxQueueDepth: 3,
    });
    const runNow = await server.request('/api/integrations/create-shipment/run', {
      method: 'POST',
      json: order('Q-5'),
    });
    expect(runNow.status).toBe(429);
    expect(await server.store.countInstances({})).toBe(3);
  });

  it('counts work queued by other processes at the next refresh, not per request', async () => {
    server = await testServer([shipment], { maxQueueDepth: 2, queueDepthRefreshMs: 20 }, { worker: false });
    // Accepted behind the server's back, as another process sharing the store would.
    const external = [
      await server.engine.accept(shipment, order('P-1')),
      await server.engine.accept(shipment, order('P-2')),
    ];
    const s = server;
    await waitFor(async () => {
      const res = await s.request('/shipments', { method: 'POST', json: order('P-3') });
      // Until the refresh, the gauge lets requests through; cancelling them keeps the real queue at two.
      if (res.status === 202) await s.engine.cancel(res.json.instanceId);
      return res.status === 429;
    }, 'the gauge to see the queue');
    for (const accepted of external) await s.engine.cancel(accepted.instanceId);
    await waitFor(
      async () => (await s.request('/shipments', { method: 'POST', json: order('P-4') })).status === 202,
      'the gauge to see room again',
    );
  });

  it('starts an integration now through the API, and refuses sync or unknown integrations', async () => {
    const sync = defineIntegration({ id: 'ping', mode: 'sync', route: 'GET /ping', handler: () => 'pong' });
    server = await testServer([shipment, sync]);
    const res = await server.request('/api/integrations/create-shipment/run', {
      method: 'POST',
      json: order('R-1'),
    });
    expect(res.status).toBe(202);
    expect(res.headers.get('location')).toBe(res.json.statusUrl);
    await waitForStatus(server.engine, res.json.instanceId);
    const wrong = await server.request('/api/integrations/ping/run', { method: 'POST', json: {} });
    expect([wrong.status, wrong.json.type]).toEqual([409, 'urn:tandem:error:wrong-mode']);
    const unknown = await server.request('/api/integrations/nope/run', { method: 'POST', json: {} });
    expect([unknown.status, unknown.json.type]).toEqual([404, 'urn:tandem:error:unknown-integration']);
  });
});
