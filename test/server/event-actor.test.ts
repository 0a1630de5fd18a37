/**
 * The actor of a business event, on both stores: `POST /api/events` records the role and token name
 * that sent it in the `wait.resumed` events of the instances it wakes (the local admin without
 * tokens), as the other state-changing routes do; a viewer or an operator is refused (the route
 * needs the admin role) and nothing resumes. A wait
 * that takes a kept event later, from its own attempt, records no actor (the event row keeps none).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineIntegration } from '../../src/define/integration.js';
import type { Actor } from '../../src/model.js';
import { STORE_KINDS, waitForStatus } from '../support/engine.js';
import { type TestServer, testServer } from '../support/server.js';

const ADMIN = 'admin-token-event-actor-7c2e91';
const OPERATOR = 'operator-token-event-actor-3f8a';
const NAMED_ADMIN = 'named-admin-token-event-actor-91c4';
const VIEWER = 'viewer-token-event-actor-6d0b52';
const TOKENS = [
  { name: 'ops-alice', role: 'operator' as const, token: OPERATOR },
  { name: 'ci-dora', role: 'admin' as const, token: NAMED_ADMIN },
  { name: 'audit-bob', role: 'viewer' as const, token: VIEWER },
];

/** Waits for a `payment.booked` event whose `orderId` is the input's. */
const waiter = defineIntegration({
  id: 'waiter',
  mode: 'async',
  input: z.object({ orderId: z.string() }),
  async handler(ctx) {
    return ctx.waitForEvent('booked', { event: 'payment.booked', match: { orderId: ctx.input.orderId } });
  },
});

let server: TestServer | null = null;
afterEach(async () => {
  await server?.close();
  server = null;
});

async function waiting(orderId: string): Promise<string> {
  const { instanceId } = await server!.engine.accept('waiter', { orderId });
  await waitForStatus(server!.engine, instanceId, ['waiting']);
  return instanceId;
}

function send(orderId: string, token: string | null) {
  return server!.request('/api/events', {
    method: 'POST',
    json: { name: 'payment.booked', payload: { orderId } },
    headers: token === null ? {} : { authorization: `Bearer ${token}` },
  });
}

/** The data of the instance's `wait.resumed` events, once it has finished. */
async function resumed(id: string) {
  await waitForStatus(server!.engine, id, ['succeeded']);
  const { events } = await server!.engine.getDetail(id);
  return events.filter((e) => e.type === 'wait.resumed').map((e) => e.data);
}

describe.each(STORE_KINDS)('the actor of a business event, on %s', (storeKind) => {
  it('is recorded with role and token name in the wait.resumed events that POST /api/events causes', async () => {
    server = await testServer([waiter], { adminToken: ADMIN, tokens: TOKENS }, { storeKind });
    const a = await waiting('A-1');
    const b = await waiting('B-1');
    const c = await waiting('C-1');

    expect((await send('A-1', VIEWER)).status).toBe(403);
    expect((await send('A-1', OPERATOR)).status).toBe(403);
    expect((await server.engine.getInstance(a)).status).toBe('waiting');

    const byDora = await send('A-1', NAMED_ADMIN);
    expect(byDora.json).toEqual({ eventId: expect.any(String), duplicate: false, resumed: [a] });
    expect((await send('B-1', ADMIN)).json.resumed).toEqual([b]);
    // Two events at once share a batch (and a statement on PostgreSQL): each records its own sender.
    const [first, second] = await Promise.all([send('C-1', NAMED_ADMIN), send('unknown', ADMIN)]);
    expect(first.json.resumed).toEqual([c]);
    expect(second.json.resumed).toEqual([]);

    const dora: Actor = { role: 'admin', tokenName: 'ci-dora' };
    const admin: Actor = { role: 'admin', tokenName: 'admin' };
    const by = (data: Record<string, unknown>) => ({ step: data.step, by: data.by, actor: data.actor });
    expect((await resumed(a)).map(by)).toEqual([{ step: 'booked', by: 'event', actor: dora }]);
    expect((await resumed(b)).map(by)).toEqual([{ step: 'booked', by: 'event', actor: admin }]);
    expect((await resumed(c)).map(by)).toEqual([{ step: 'booked', by: 'event', actor: dora }]);
  });

  it('is the local admin on a server without tokens; an engine send and a kept event name none', async () => {
    server = await testServer([waiter], { adminToken: null }, { storeKind });
    const local = await waiting('L-1');
    expect((await send('L-1', null)).json.resumed).toEqual([local]);
    expect((await resumed(local)).map((d) => d.actor)).toEqual([{ role: 'admin', tokenName: null }]);

    const direct = await waiting('D-1');
    await server.engine.sendEvent({ name: 'payment.booked', payload: { orderId: 'D-1' } });
    const directData = await resumed(direct);
    expect(directData).toHaveLength(1);
    expect(directData[0]).not.toHaveProperty('actor');

    // Sent before the wait began: kept in the look-back window, taken by the wait's own attempt.
    expect((await send('K-1', null)).json.resumed).toEqual([]);
    const { instanceId: kept } = await server.engine.accept('waiter', { orderId: 'K-1' });
    const keptData = await resumed(kept);
    expect(keptData).toHaveLength(1);
    expect(keptData[0]).not.toHaveProperty('actor');
  });
});
