import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineIntegration } from '../../src/define/integration.js';
import { SyncRunner } from '../../src/engine/sync.js';
import { STORE_KINDS, testEngine } from '../support/engine.js';
import { testServer } from '../support/server.js';
import { waitFor } from '../support/wait.js';

let close: (() => Promise<void>) | undefined;
afterEach(async () => {
  await close?.();
  close = undefined;
});

// A NUL character and half of a surrogate pair: JSON carries them (escaped), no text column holds them.
describe.each(STORE_KINDS)('values no store can hold as text (%s store)', (storeKind) => {
  it('refuses them as tracking values and keys with a 400, alone: accepts of the same tick are stored', async () => {
    const order = defineIntegration({
      id: 'order',
      mode: 'async',
      input: z.object({ orderId: z.string(), customer: z.string() }),
      track: { orderId: 'orderId' },
      orderingKey: 'customer',
      handler: () => null,
    });
    const t = await testEngine([order], { storeKind, worker: false });
    close = t.close;
    // One tick, so that all five share the accepts' transaction.
    const results = await Promise.allSettled([
      t.engine.accept('order', { orderId: 'ok-1', customer: 'c-1' }),
      t.engine.accept('order', { orderId: 'nul \u0000 char', customer: 'c-1' }),
      t.engine.accept('order', { orderId: 'ok-2', customer: 'half \ud800 pair' }),
      t.engine.accept('order', { orderId: 'ok-3', customer: 'c-1' }, { idempotencyKey: 'low \udc00 half' }),
      t.engine.accept('order', { orderId: 'parcel \ud83d\udce6', customer: 'c-1' }),
    ]);
    expect(results.map((r) => r.status)).toEqual([
      'fulfilled',
      'rejected',
      'rejected',
      'rejected',
      'fulfilled',
    ]);
    const refused = results.flatMap((r) => (r.status === 'rejected' ? [r.reason] : []));
    for (const error of refused) expect(error).toMatchObject({ code: 'invalid-input', status: 400 });
    expect(refused.map((e) => e.issues.map((i: { path: string }) => i.path))).toEqual([
      ['orderId'],
      ['customer'],
      [''],
    ]);
    expect(refused[0].message).toMatch(/Tracking field "orderId" has a NUL character/);
    const stored = (await t.store.listInstances({ limit: 10 })).items;
    expect(stored.map((i) => i.tracking.orderId).sort()).toEqual(['ok-1', 'parcel \ud83d\udce6']);
  });

  it('records a sync call whose tracked value cannot be stored, without that value', async () => {
    const stock = defineIntegration({
      id: 'stock',
      mode: 'sync',
      route: 'POST /stock',
      input: z.object({ sku: z.string() }),
      track: { sku: 'sku' },
      handler: (ctx) => ({ body: { sku: ctx.input.sku, left: 3 } }),
    });
    const t = await testEngine([stock], { storeKind, worker: false });
    const runner = new SyncRunner(t.engine, { recorder: { flushMs: 10 } });
    close = async () => {
      await runner.recorder.flush();
      await t.close();
    };
    const [bad, good] = await Promise.all([
      runner.run(stock, { input: { sku: 'nul \u0000' } }),
      runner.run(stock, { input: { sku: 'A-1' } }),
    ]);
    expect([bad.ok, good.ok]).toEqual([true, true]);
    const record = (id: string) => waitFor(() => t.store.getInstance(id), `sync record ${id}`);
    const [kept, dropped] = [await record(good.instanceId), await record(bad.instanceId)];
    expect([kept.status, kept.tracking]).toEqual(['succeeded', { sku: 'A-1' }]);
    expect([dropped.status, dropped.tracking]).toEqual(['succeeded', {}]);
  });

  it('answers a NUL character in a looked-up id or filter with a problem, not a server error', async () => {
    const order = defineIntegration({ id: 'order', mode: 'async', handler: () => null });
    const s = await testServer([order], {}, { storeKind, worker: false });
    close = s.close;
    const byId = await s.request('/api/instances/a%00b');
    const byFilter = await s.request('/api/instances?tracking=a%00b');
    for (const res of [byId, byFilter].filter((r) => r.status >= 400))
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    // SQLite holds such text and finds nothing; PostgreSQL refuses it: the request is at fault.
    expect([byId.status, byFilter.status]).toEqual(storeKind === 'sqlite' ? [404, 200] : [400, 400]);
  });
});
