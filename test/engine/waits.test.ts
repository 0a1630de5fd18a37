/**
 * Durable waits end to end on both stores: a sleeping or waiting instance leaves the worker (no
 * lease, no slot) and resumes on time, on an event or on a callback; no event sent just before a
 * wait is missed; an event id resumes nothing twice; a callback works once and is stored only as a
 * hash; cancel ends a waiting instance.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { defineIntegration } from '../../src/define/integration.js';
import { TandemError } from '../../src/errors.js';
import { NEVER } from '../../src/lifecycle/index.js';
import type { PostgresStore } from '../../src/store/postgres/store.js';
import type { SqliteStore } from '../../src/store/sqlite/store.js';
import type { Store } from '../../src/store/store.js';
import { STORE_KINDS, testEngine, waitForStatus } from '../support/engine.js';
import { waitFor } from '../support/wait.js';

let close: (() => Promise<void>) | undefined;
afterEach(async () => {
  await close?.();
  close = undefined;
});

async function engineWith(...args: Parameters<typeof testEngine>) {
  const t = await testEngine(...args);
  close = () => t.close();
  return t;
}

/** Every text the store holds about callbacks, to look for a secret in. */
async function storedCallbackText(store: Store): Promise<string> {
  if (!('pool' in store)) {
    const db = (store as SqliteStore).db;
    const rows = db.prepare('SELECT * FROM callback_tokens').all();
    const waits = db.prepare('SELECT * FROM waits').all();
    const steps = db.prepare('SELECT * FROM steps').all();
    return JSON.stringify([rows, waits, steps]);
  }
  const { pool, schema } = store as PostgresStore;
  const texts = await Promise.all(
    ['callback_tokens', 'waits', 'steps'].map(
      async (table) => (await pool.query(`SELECT * FROM "${schema}".${table}`)).rows,
    ),
  );
  return JSON.stringify(texts);
}

describe.each(STORE_KINDS)('durable waits (%s)', (storeKind) => {
  it('a sleeping instance holds no lease and no slot, and wakes at its time', async () => {
    const effects: string[] = [];
    const sleeper = defineIntegration({
      id: 'sleeper',
      mode: 'async',
      async handler(ctx) {
        await ctx.step('before', () => effects.push(`before ${ctx.instanceId}`));
        await ctx.sleep('nap', 700);
        await ctx.step('after', () => effects.push(`after ${ctx.instanceId}`));
        return 'rested';
      },
    });
    const t = await engineWith([sleeper], { storeKind });
    const acceptedAt = Date.now();
    const { instanceId } = await t.engine.accept('sleeper', {});
    const waiting = await waitForStatus(t.engine, instanceId, ['waiting']);
    expect(waiting.runAt).toBeGreaterThanOrEqual(acceptedAt + 700);
    expect(t.engine.activeCount).toBe(0);
    const { events, waits } = await t.engine.getDetail(instanceId);
    expect(events.map((e) => e.type)).toContain('wait.started');
    expect(waits).toEqual([
      expect.objectContaining({ name: 'nap', kind: 'sleep', until: waiting.runAt, resolvedAt: null }),
    ]);
    const done = await waitForStatus(t.engine, instanceId);
    expect(done.status).toBe('succeeded');
    expect(done.output).toBe('rested');
    expect(Date.now()).toBeGreaterThanOrEqual(waiting.runAt);
    // The step before the sleep ran once: the replay after waking took its stored result.
    expect(effects).toEqual([`before ${instanceId}`, `after ${instanceId}`]);
    const detail = await t.engine.getDetail(instanceId);
    expect(detail.waits[0]).toMatchObject({ resolution: 'time' });
    expect(detail.events.filter((e) => e.type === 'wait.resumed')).toHaveLength(1);
    // A wait is not a try: the attempt count is that of one attempt.
    expect(done.attempt).toBe(1);
  });

  it('10,000 waiting instances leave the worker free for other work', async () => {
    const waiter = defineIntegration({
      id: 'waiter',
      mode: 'async',
      async handler(ctx) {
        return ctx.waitForEvent('go', { event: 'go', match: { n: (ctx.input as { n: number }).n } });
      },
    });
    const quick = defineIntegration({ id: 'quick', mode: 'async', handler: () => 'done' });
    const t = await engineWith([waiter, quick], { storeKind, concurrency: 8 });
    const rows = Array.from({ length: 10_000 }, (_, n) => t.engine.prepare('waiter', { n }));
    for (let i = 0; i < rows.length; i += 1_000) await t.engine.acceptPrepared(rows.slice(i, i + 1_000));
    await waitFor(
      async () => (await t.engine.countInstances({ integrationId: 'waiter', status: 'waiting' })) === 10_000,
      'every instance to wait',
      120_000,
    );
    expect(t.engine.activeCount).toBe(0);
    // A due instance of other work runs at once: no slot is held by the waiting ones.
    const { instanceId } = await t.engine.accept('quick', {});
    expect((await waitForStatus(t.engine, instanceId)).status).toBe('succeeded');
    // One event resumes exactly the instance whose match it fits.
    const sent = await t.engine.sendEvent({ name: 'go', payload: { n: 4_321 } });
    expect(sent.resumed).toHaveLength(1);
    const resumed = await waitForStatus(t.engine, sent.resumed[0]!);
    expect(resumed.output).toEqual({ n: 4_321 });
    expect(await t.engine.countInstances({ integrationId: 'waiter', status: 'waiting' })).toBe(9_999);
  }, 180_000);

  it('sees an event sent 1 ms before the wait begins', async () => {
    let sendFirst: (() => Promise<unknown>) | undefined;
    const late = defineIntegration({
      id: 'late-waiter',
      mode: 'async',
      async handler(ctx) {
        // The event goes out in the step just before the wait: the race a wait must not lose.
        await ctx.step('announce', () => sendFirst!().then(() => null));
        await new Promise((resolve) => setTimeout(resolve, 1));
        return ctx.waitForEvent('created', {
          event: 'employee.created',
          match: { employeeId: 'E-7' },
          timeout: '1h',
        });
      },
    });
    const t = await engineWith([late], { storeKind });
    sendFirst = () =>
      t.engine.sendEvent({ name: 'employee.created', payload: { employeeId: 'E-7', name: 'Ada' } });
    const { instanceId } = await t.engine.accept('late-waiter', {});
    const done = await waitForStatus(t.engine, instanceId, ['succeeded', 'failed', 'cancelled'], 10_000);
    expect(done.output).toEqual({ employeeId: 'E-7', name: 'Ada' });
  });

  it('takes no event older than the look-back window', async () => {
    const waiter = defineIntegration({
      id: 'strict',
      mode: 'async',
      handler: (ctx) => ctx.waitForEvent('w', { event: 'tick', timeout: 300 }),
    });
    const t = await engineWith([waiter], { storeKind, events: { lookBackMs: 50 } });
    await t.engine.sendEvent({ name: 'tick', payload: { old: true } });
    await new Promise((resolve) => setTimeout(resolve, 200));
    const { instanceId } = await t.engine.accept('strict', {});
    const done = await waitForStatus(t.engine, instanceId);
    expect(done.status).toBe('succeeded');
    expect(done.output).toBeNull(); // timed out: the old event was outside the window
    expect((await t.engine.getDetail(instanceId)).waits[0]).toMatchObject({ resolution: 'timeout' });
  });

  it('resumes nothing twice for a repeated event id', async () => {
    const waiter = defineIntegration({
      id: 'dup',
      mode: 'async',
      async handler(ctx) {
        const first = await ctx.waitForEvent('first', { event: 'paid' });
        const second = await ctx.waitForEvent('second', { event: 'paid', timeout: 400 });
        return { first, second };
      },
    });
    const t = await engineWith([waiter], { storeKind });
    const { instanceId } = await t.engine.accept('dup', {});
    await waitForStatus(t.engine, instanceId, ['waiting']);
    const sent = await t.engine.sendEvent({ name: 'paid', payload: { amount: 1 }, id: 'pay-1' });
    expect(sent).toMatchObject({ eventId: 'pay-1', duplicate: false, resumed: [instanceId] });
    await waitFor(async () => {
      const { waits } = await t.engine.getDetail(instanceId);
      return waits.length === 2 && waits[1]!.resolvedAt === null;
    }, 'the second wait to be armed');
    const again = await t.engine.sendEvent({ name: 'paid', payload: { amount: 2 }, id: 'pay-1' });
    expect(again).toMatchObject({ eventId: 'pay-1', duplicate: true, resumed: [] });
    const done = await waitForStatus(t.engine, instanceId);
    // The second wait did not take the first wait's event, nor the duplicate: it timed out.
    expect(done.output).toEqual({ first: { amount: 1 }, second: null });
  });

  it('the first attempt of a run suspends at its wait without reading stored waits; a resumed one reads it', async () => {
    const napper = defineIntegration({
      id: 'napper',
      mode: 'async',
      async handler(ctx) {
        await ctx.step('before', () => 1);
        await ctx.sleep('nap', 300);
        return 'rested';
      },
    });
    const t = await engineWith([napper], { storeKind });
    const settled: string[] = [];
    const settleWait = t.store.settleWait.bind(t.store);
    t.store.settleWait = (key, now) => {
      settled.push(key.name);
      return settleWait(key, now);
    };
    const { instanceId } = await t.engine.accept('napper', {});
    await waitForStatus(t.engine, instanceId, ['waiting']);
    expect(settled).toEqual([]);
    expect((await waitForStatus(t.engine, instanceId)).output).toBe('rested');
    expect(settled).toEqual(['nap']);
    const { waits } = await t.engine.getDetail(instanceId);
    expect(waits).toMatchObject([{ name: 'nap', resolution: 'time' }]);
  });

  it('events sent by many callers at once share a transaction, each with the outcome it has alone', async () => {
    const waiter = defineIntegration({
      id: 'payee',
      mode: 'async',
      handler: (ctx) =>
        ctx.waitForEvent('paid', { event: 'paid', match: { n: (ctx.input as { n: number }).n } }),
    });
    const t = await engineWith([waiter], { storeKind });
    const ids: string[] = [];
    for (let n = 0; n < 6; n++) ids.push((await t.engine.accept('payee', { n })).instanceId);
    for (const id of ids) await waitForStatus(t.engine, id, ['waiting']);
    const batches: number[] = [];
    const sendEvents = t.store.sendEvents.bind(t.store);
    t.store.sendEvents = (events, now) => {
      batches.push(events.length);
      return sendEvents(events, now);
    };
    const sent = await Promise.all([
      ...[0, 1, 2, 3, 4, 5].map((n) => t.engine.sendEvent({ name: 'paid', payload: { n }, id: `pay-${n}` })),
      t.engine.sendEvent({ name: 'paid', payload: { n: 1 }, id: 'pay-0' }),
      t.engine.sendEvent({ name: 'paid', payload: { n: 9 } }),
      t.engine.sendEvent({ name: 'other', payload: { n: 2 } }),
    ]);
    expect(batches).toEqual([9]);
    expect(sent.slice(0, 6)).toEqual(
      ids.map((id, n) => ({ eventId: `pay-${n}`, duplicate: false, resumed: [id] })),
    );
    expect(sent[6]).toEqual({ eventId: 'pay-0', duplicate: true, resumed: [] });
    expect(sent[7]).toMatchObject({ duplicate: false, resumed: [] });
    expect(sent[8]).toMatchObject({ duplicate: false, resumed: [] });
    expect(Number(sent[8]!.eventId)).toBeGreaterThan(Number(sent[7]!.eventId));
    for (const [n, id] of ids.entries()) {
      expect((await waitForStatus(t.engine, id)).output).toEqual({ n });
    }
  });

  it('a callback URL resumes once, refuses reuse and expiry, and its token is stored only as a hash', async () => {
    const urls: string[] = [];
    const partner = defineIntegration({
      id: 'partner',
      mode: 'async',
      async handler(ctx) {
        const shipped = await ctx.callback('shipment', { timeout: (ctx.input as { t: number }).t });
        await ctx.step('send', () => {
          urls.push(shipped.url);
          return null;
        });
        return shipped.wait();
      },
    });
    const t = await engineWith([partner], { storeKind, publicUrl: 'https://tandem.example.com/' });
    const { instanceId } = await t.engine.accept('partner', { t: 60_000 });
    await waitForStatus(t.engine, instanceId, ['waiting']);
    expect(urls).toHaveLength(1);
    const url = urls[0]!;
    expect(url).toMatch(/^https:\/\/tandem\.example\.com\/callbacks\/[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{40,}$/);
    const token = url.slice(url.lastIndexOf('/') + 1);
    const secret = token.slice(token.indexOf('.') + 1);
    expect(await storedCallbackText(t.store)).not.toContain(secret);
    // A wrong secret with a right id is not found: the secret is the credential. (Its first
    // character changed: a random secret starts with 'x' once in 64.)
    const wrong = `${secret.startsWith('x') ? 'y' : 'x'}${secret.slice(1)}`;
    await expect(
      t.engine.answerCallback(`${token.slice(0, token.indexOf('.'))}.${wrong}`, {}),
    ).rejects.toMatchObject({
      code: 'callback-not-found',
    });
    expect(await t.engine.answerCallback(token, { tracking: 'TRK-1' })).toEqual({ instanceId });
    const done = await waitForStatus(t.engine, instanceId);
    expect(done.output).toEqual({ tracking: 'TRK-1' });
    const reuse = await t.engine.answerCallback(token, { tracking: 'TRK-2' }).catch((e: unknown) => e);
    expect(reuse).toBeInstanceOf(TandemError);
    expect(reuse).toMatchObject({ code: 'callback-used', status: 409 });
    expect((await t.engine.getInstance(instanceId)).output).toEqual({ tracking: 'TRK-1' });

    // Expiry: the wait returns null and the URL answers 410.
    const expiring = await t.engine.accept('partner', { t: 300 });
    const done2 = await waitForStatus(t.engine, expiring.instanceId);
    expect(done2.output).toBeNull();
    const late = urls[1]!;
    await expect(t.engine.answerCallback(late.slice(late.lastIndexOf('/') + 1), {})).rejects.toMatchObject({
      code: 'callback-expired',
      status: 410,
    });
    await expect(t.engine.answerCallback('nope.nope', {})).rejects.toMatchObject({
      code: 'callback-not-found',
    });
  });

  it('a scheduled handler sleeps too, and waits reached together are armed one at a time', async () => {
    const nightly = defineIntegration({
      id: 'nightly',
      mode: 'scheduled',
      cron: '0 3 * * *',
      async handler(ctx) {
        await ctx.sleep('cool-down', 200);
        const [a, b] = await Promise.all([
          ctx.waitForEvent('a', { event: 'part', match: { part: 'a' } }),
          ctx.waitForEvent('b', { event: 'part', match: { part: 'b' } }),
        ]);
        return { a, b, parameters: ctx.parameters };
      },
    });
    const t = await engineWith([nightly], { storeKind });
    const { instanceId } = await t.engine.runNow('nightly');
    await waitFor(async () => {
      const { waits } = await t.engine.getDetail(instanceId);
      return (
        waits.some((w) => w.kind === 'event') && (await t.engine.getInstance(instanceId)).status === 'waiting'
      );
    }, 'the first event wait');
    // Only one of the two is armed: the event for the other is sent first and must not be lost.
    const armed = (await t.engine.getDetail(instanceId)).waits.filter((w) => w.kind === 'event');
    expect(armed).toHaveLength(1);
    const [first, second] = armed[0]!.name === 'a' ? ['a', 'b'] : ['b', 'a'];
    expect((await t.engine.sendEvent({ name: 'part', payload: { part: second, n: 2 } })).resumed).toEqual([]);
    expect((await t.engine.sendEvent({ name: 'part', payload: { part: first, n: 1 } })).resumed).toEqual([
      instanceId,
    ]);
    // The second wait, armed after the first resolved, takes the event sent before it (look-back),
    // though the first wait took a later one.
    const done = await waitForStatus(t.engine, instanceId);
    expect(done.output).toMatchObject({ [first!]: { n: 1 }, [second!]: { n: 2 }, parameters: {} });
    const { waits } = await t.engine.getDetail(instanceId);
    expect(waits.map((w) => [w.name, w.resolution])).toEqual([
      ['cool-down', 'time'],
      [first, 'event'],
      [second, 'event'],
    ]);
  });

  it('cancels a waiting instance; a later event does not resume it', async () => {
    const waiter = defineIntegration({
      id: 'cancel-me',
      mode: 'async',
      handler: (ctx) => ctx.waitForEvent('w', { event: 'never-mind' }),
    });
    const t = await engineWith([waiter], { storeKind });
    const { instanceId } = await t.engine.accept('cancel-me', {});
    const waiting = await waitForStatus(t.engine, instanceId, ['waiting']);
    expect(waiting.runAt).toBe(NEVER);
    await t.engine.cancel(instanceId);
    expect((await t.engine.getInstance(instanceId)).status).toBe('cancelled');
    const sent = await t.engine.sendEvent({ name: 'never-mind', payload: {} });
    expect(sent.resumed).toEqual([]);
    expect((await t.engine.getInstance(instanceId)).status).toBe('cancelled');
  });
});
