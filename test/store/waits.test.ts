/**
 * Durable waits at the store: a wait finish suspends an instance without a lease until its time,
 * events and callbacks resolve waits and wake their instances (no lost wake-up: an event kept in
 * the look-back window is taken by a wait armed after it), and the `version` column round-trips.
 * Every test calls the store directly, on both stores.
 */
import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { activity, NEVER } from '../../src/lifecycle/index.js';
import type { PostgresStore } from '../../src/store/postgres/store.js';
import type { SqliteStore } from '../../src/store/sqlite/store.js';
import type {
  ClaimedInstance,
  NewBusinessEvent,
  NewInstance,
  NewWait,
  Store,
  WorkBatchResult,
} from '../../src/store/store.js';
import { type Match, matchKey, matchShape } from '../../src/waits/match.js';
import { STORE_KINDS, type StoreKind, testStore } from '../support/engine.js';
import { newRow } from './contract.js';

const T0 = 1_700_000_000_000;
const HOUR = 3_600_000;
const LOOK_BACK = 60_000;

function sleepWait(name: string, expiresAt: number, createdAt: number): NewWait {
  return {
    name,
    kind: 'sleep',
    event: null,
    matchKey: null,
    matchShape: null,
    expiresAt,
    lookBackFrom: null,
    createdAt,
  };
}

function eventWait(
  name: string,
  event: string,
  match: Match,
  createdAt: number,
  options: { expiresAt?: number | null; lookBackFrom?: number } = {},
): NewWait {
  return {
    name,
    kind: 'event',
    event,
    matchKey: matchKey(match),
    matchShape: matchShape(match),
    expiresAt: options.expiresAt ?? null,
    lookBackFrom: options.lookBackFrom ?? createdAt - LOOK_BACK,
    createdAt,
  };
}

function callbackWait(name: string, createdAt: number, expiresAt: number | null = null): NewWait {
  return {
    name,
    kind: 'callback',
    event: null,
    matchKey: null,
    matchShape: null,
    expiresAt,
    lookBackFrom: null,
    createdAt,
  };
}

const businessEvent = (
  name: string,
  payload: unknown,
  receivedAt: number,
  id: string | null = null,
): NewBusinessEvent => ({ name, id, payloadJson: JSON.stringify(payload), receivedAt });

const sha256 = (text: string) => createHash('sha256').update(text).digest('hex');

/** Rows of a table as the store holds them (to see what is stored, and what is not). */
async function rawRows(store: Store, kind: StoreKind, table: string): Promise<Record<string, unknown>[]> {
  if (kind === 'sqlite') {
    return (store as SqliteStore).db.prepare(`SELECT * FROM ${table}`).all() as Record<string, unknown>[];
  }
  const { pool, schema } = store as unknown as Pick<PostgresStore, 'pool' | 'schema'>;
  return (await pool.query(`SELECT * FROM "${schema}".${table}`)).rows;
}

describe.each(STORE_KINDS)('durable waits at the store (%s)', (storeKind) => {
  let store: Store;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ store, cleanup } = await testStore(storeKind));
  });
  afterEach(() => cleanup());

  async function accept(overrides: Partial<NewInstance> = {}): Promise<NewInstance> {
    const row = newRow({ createdAt: T0, runAt: T0, ...overrides });
    await store.insertInstances([row]);
    return row;
  }

  async function claim(now: number, limit = 10): Promise<ClaimedInstance[]> {
    return store.claim({ owner: 'w1', limit, leaseMs: 30_000, now, integrationIds: ['orders'] });
  }

  async function claimOne(id: string, now: number): Promise<ClaimedInstance> {
    const claimed = (await claim(now)).find((c) => c.instance.id === id);
    expect(claimed, `instance ${id} is claimed at ${now}`).toBeDefined();
    return claimed!;
  }

  /** Commits an attempt's wait finish, with the `wait.started` event the executor writes. */
  function finishWait(
    claimed: ClaimedInstance,
    wait: NewWait,
    now: number,
    token = claimed.claimToken,
  ): Promise<WorkBatchResult> {
    const head = {
      instanceId: claimed.instance.id,
      integrationId: claimed.instance.integrationId,
      run: claimed.instance.run,
      at: now,
    };
    return store.commit({
      steps: [],
      events: [],
      finishes: [
        {
          instanceId: claimed.instance.id,
          claimToken: token,
          now,
          durationMs: null,
          events: [
            activity(
              'wait.started',
              head,
              wait.event === null
                ? { step: wait.name, kind: wait.kind, until: wait.expiresAt, attemptMs: 1 }
                : {
                    step: wait.name,
                    kind: wait.kind,
                    until: wait.expiresAt,
                    event: wait.event,
                    attemptMs: 1,
                  },
            ),
          ],
          outcome: { kind: 'wait', wait },
        },
      ],
    });
  }

  /** Accepts an instance, claims it and suspends it on a wait. */
  async function waitingOn(wait: NewWait, overrides: Partial<NewInstance> = {}): Promise<ClaimedInstance> {
    const row = await accept(overrides);
    const claimed = await claimOne(row.id, wait.createdAt - 10);
    expect((await finishWait(claimed, wait, wait.createdAt)).lost).toEqual([]);
    return claimed;
  }

  const typesOf = async (id: string) =>
    (await store.getEvents({ instanceId: id, limit: 100 })).map((e) => e.type);

  it('suspends a running instance on a wait finish: waiting until the wait’s time, without a lease', async () => {
    const row = await accept();
    const claimed = await claimOne(row.id, T0 + 1_000);
    expect(claimed.instance.attempt).toBe(1);
    const wakeAt = T0 + 60_000;
    expect((await finishWait(claimed, sleepWait('pause', wakeAt, T0 + 1_010), T0 + 1_010)).lost).toEqual([]);

    const waiting = await store.getInstance(row.id);
    // The attempt it used is given back: a wait is not a try.
    expect(waiting).toMatchObject({ status: 'waiting', runAt: wakeAt, attempt: 0, updatedAt: T0 + 1_010 });
    expect(await typesOf(row.id)).toEqual(['accepted', 'started', 'wait.started']);
    expect(await store.getWaits(row.id)).toEqual([
      {
        instanceId: row.id,
        run: 1,
        name: 'pause',
        kind: 'sleep',
        event: null,
        matchKey: null,
        matchShape: null,
        expiresAt: wakeAt,
        lookBackFrom: null,
        createdAt: T0 + 1_010,
        resolvedAt: null,
        resolution: null,
        payloadJson: null,
        eventId: null,
      },
    ]);
    // No lease: the attempt's token renews nothing and writes nothing.
    expect(
      await store.extendLeases([{ instanceId: row.id, claimToken: claimed.claimToken }], T0 + 99_000),
    ).toEqual([row.id]);
    const stale = await store.commit({
      steps: [],
      events: [],
      finishes: [
        {
          instanceId: row.id,
          claimToken: claimed.claimToken,
          now: T0 + 1_020,
          durationMs: 5,
          events: [],
          outcome: { kind: 'succeeded', outputJson: null },
        },
      ],
    });
    expect(stale.lost).toEqual([row.id]);
    expect((await store.getInstance(row.id))?.status).toBe('waiting');

    expect(await store.nextDueAt(['orders'])).toBe(wakeAt);
    expect(await claim(wakeAt - 1)).toEqual([]);
    const again = await claimOne(row.id, wakeAt);
    expect(again.instance.attempt).toBe(1);
    expect(again.takenOver).toBe(false);
    expect((await store.getInstance(row.id))?.status).toBe('running');
  });

  it('suspends a wait without a timeout for ever (run_at NEVER), and a lost lease writes no wait', async () => {
    const row = await accept();
    const claimed = await claimOne(row.id, T0 + 1_000);
    const wait = eventWait('employee', 'employee.created', { employeeId: 'E-1' }, T0 + 1_010);
    expect((await finishWait(claimed, wait, T0 + 1_010, 'not-the-token')).lost).toEqual([row.id]);
    expect(await store.getWaits(row.id)).toEqual([]);
    expect((await store.getInstance(row.id))?.status).toBe('running');

    expect((await finishWait(claimed, wait, T0 + 1_010)).lost).toEqual([]);
    expect(await store.getInstance(row.id)).toMatchObject({ status: 'waiting', runAt: NEVER });
    expect(await claim(T0 + 10 * 365 * 24 * HOUR)).toEqual([]);
  });

  it('wakes at once on a wait finish whose event was sent 1 ms before (no lost wake-up)', async () => {
    const row = await accept();
    const claimed = await claimOne(row.id, T0 + 1_000);
    const payload = { employeeId: 'E-1', name: 'Ada' };
    const sent = await store.sendEvent(
      businessEvent('employee.created', payload, T0 + 1_009, 'ev-1'),
      T0 + 1_009,
    );
    expect(sent).toMatchObject({ duplicate: false, resumed: [] });

    const wait = eventWait('employee', 'employee.created', { employeeId: 'E-1' }, T0 + 1_010, {
      expiresAt: T0 + HOUR,
    });
    expect((await finishWait(claimed, wait, T0 + 1_010)).lost).toEqual([]);
    expect(await store.getInstance(row.id)).toMatchObject({ status: 'queued', runAt: T0 + 1_010 });
    const [stored] = await store.getWaits(row.id);
    expect(stored).toMatchObject({ resolvedAt: T0 + 1_010, resolution: 'event', eventId: 'ev-1' });
    expect(JSON.parse(stored!.payloadJson!)).toEqual(payload);
    const events = await store.getEvents({ instanceId: row.id, limit: 100 });
    expect(events.map((e) => e.type)).toEqual(['accepted', 'started', 'wait.started', 'wait.resumed']);
    expect(events.at(-1)?.data).toEqual({ step: 'employee', by: 'event', eventId: 'ev-1' });
    expect((await claimOne(row.id, T0 + 1_011)).instance.id).toBe(row.id);
  });

  it('wakes an instance on a matching event and resolves only the waits its match fits', async () => {
    const at = T0 + 1_010;
    const fits = await waitingOn(eventWait('w', 'employee.created', { employeeId: 'E-1' }, at));
    const otherValue = await waitingOn(eventWait('w', 'employee.created', { employeeId: 'E-2' }, at));
    const otherName = await waitingOn(eventWait('w', 'employee.updated', { employeeId: 'E-1' }, at));
    const anyOfName = await waitingOn(eventWait('w', 'employee.created', {}, at));
    const missingField = await waitingOn(
      eventWait('w', 'employee.created', { employeeId: 'E-1', site: 'Leeds' }, at),
    );
    const resumed = [fits, anyOfName].map((c) => c.instance.id).sort();

    const payload = { employeeId: 'E-1', name: 'Ada' };
    const sent = await store.sendEvent(businessEvent('employee.created', payload, T0 + 5_000), T0 + 5_000);
    expect(sent.duplicate).toBe(false);
    expect([...sent.resumed].sort()).toEqual(resumed);

    for (const c of [fits, anyOfName]) {
      const id = c.instance.id;
      expect(await store.getInstance(id)).toMatchObject({ status: 'queued', runAt: T0 + 5_000 });
      const [wait] = await store.getWaits(id);
      expect(wait).toMatchObject({ resolution: 'event', resolvedAt: T0 + 5_000, eventId: String(sent.seq) });
      expect(JSON.parse(wait!.payloadJson!)).toEqual(payload);
      const events = await store.getEvents({ instanceId: id, limit: 100 });
      expect(events.at(-1)).toMatchObject({
        type: 'wait.resumed',
        at: T0 + 5_000,
        run: 1,
        data: { step: 'w', by: 'event', eventId: String(sent.seq) },
      });
    }
    for (const c of [otherValue, otherName, missingField]) {
      const id = c.instance.id;
      expect((await store.getInstance(id))?.status).toBe('waiting');
      expect((await store.getWaits(id))[0]).toMatchObject({ resolvedAt: null, resolution: null });
      expect(await typesOf(id)).not.toContain('wait.resumed');
    }
  });

  it('stores an event id once: a duplicate is reported and resumes nothing', async () => {
    const first = await waitingOn(eventWait('w1', 'order.paid', { orderId: 'A' }, T0 + 1_010));
    const sent = await store.sendEvent(
      businessEvent('order.paid', { orderId: 'A' }, T0 + 2_000, 'pay-1'),
      T0 + 2_000,
    );
    expect(sent).toMatchObject({ duplicate: false, resumed: [first.instance.id] });

    // The instance runs on and waits for the next payment of the same order.
    const again = await claimOne(first.instance.id, T0 + 2_001);
    expect(
      (await finishWait(again, eventWait('w2', 'order.paid', { orderId: 'A' }, T0 + 2_010), T0 + 2_010)).lost,
    ).toEqual([]);
    expect((await store.getInstance(first.instance.id))?.status).toBe('waiting');

    const repeat = await store.sendEvent(
      businessEvent('order.paid', { orderId: 'A' }, T0 + 3_000, 'pay-1'),
      T0 + 3_000,
    );
    expect(repeat).toEqual({ seq: sent.seq, duplicate: true, resumed: [] });
    expect((await store.getInstance(first.instance.id))?.status).toBe('waiting');
    expect((await store.getWaits(first.instance.id)).map((w) => w.resolution)).toEqual(['event', null]);
    // Not stored a second time: a wait armed now does not see it either.
    const late = await waitingOn(eventWait('w', 'order.paid', { orderId: 'A' }, T0 + 3_010));
    const [lateWait] = await store.getWaits(late.instance.id);
    expect(lateWait).toMatchObject({ resolution: 'event', eventId: 'pay-1' });
    expect(
      await store.sendEvent(businessEvent('order.paid', {}, T0 + 4_000, 'pay-1'), T0 + 4_000),
    ).toMatchObject({
      duplicate: true,
    });
    expect((await rawRows(store, storeKind, 'business_events')).length).toBe(1);
  });

  it('sends a batch of events in one call, each as if sent alone, in order', async () => {
    const a = await waitingOn(eventWait('w', 'order.paid', { orderId: 'A' }, T0 + 1_010));
    const b = await waitingOn(eventWait('w', 'order.paid', { orderId: 'B' }, T0 + 1_020));
    const c = await waitingOn(eventWait('w', 'stock.low', { sku: 'S' }, T0 + 1_030));
    const before = await store.sendEvent(
      businessEvent('order.paid', { orderId: 'Z' }, T0 + 1_500, 'old'),
      T0 + 1_500,
    );
    const at = T0 + 2_000;
    const sent = await store.sendEvents(
      [
        businessEvent('stock.low', { sku: 'S' }, at, 'low-1'),
        businessEvent('order.paid', { orderId: 'A', n: 1 }, at, 'pay-1'),
        // Fits A's wait too, which the one before took: resumes nothing.
        businessEvent('order.paid', { orderId: 'A', n: 2 }, at),
        // A duplicate of the second event of the batch, and one of an event stored before.
        businessEvent('order.paid', { orderId: 'B' }, at, 'pay-1'),
        businessEvent('order.paid', { orderId: 'B' }, at, 'old'),
        businessEvent('order.paid', { orderId: 'B', n: 3 }, at),
        businessEvent('order.paid', { orderId: 'nobody' }, at),
      ],
      at,
    );
    expect(sent.map((s) => ({ duplicate: s.duplicate, resumed: s.resumed }))).toEqual([
      { duplicate: false, resumed: [c.instance.id] },
      { duplicate: false, resumed: [a.instance.id] },
      { duplicate: false, resumed: [] },
      { duplicate: true, resumed: [] },
      { duplicate: true, resumed: [] },
      { duplicate: false, resumed: [b.instance.id] },
      { duplicate: false, resumed: [] },
    ]);
    // Stored in batch order; a duplicate answers with its original's number.
    const stored = [0, 1, 2, 5, 6].map((i) => sent[i]!.seq);
    expect(stored[0]).toBeGreaterThan(before.seq);
    expect([...stored].sort((x, y) => x - y)).toEqual(stored);
    expect(new Set(stored).size).toBe(stored.length);
    expect(sent[3]!.seq).toBe(sent[1]!.seq);
    expect(sent[4]!.seq).toBe(before.seq);
    expect((await store.getWaits(a.instance.id))[0]).toMatchObject({
      resolution: 'event',
      eventId: 'pay-1',
      payloadJson: JSON.stringify({ orderId: 'A', n: 1 }),
    });
    expect((await store.getWaits(b.instance.id))[0]).toMatchObject({
      eventId: String(sent[5]!.seq),
      payloadJson: JSON.stringify({ orderId: 'B', n: 3 }),
    });
    for (const claimed of [a, b, c]) {
      expect((await store.getInstance(claimed.instance.id))?.status).toBe('queued');
      expect((await typesOf(claimed.instance.id)).filter((t) => t === 'wait.resumed')).toHaveLength(1);
    }
    expect((await rawRows(store, storeKind, 'business_events')).length).toBe(6);
    expect(await store.sendEvents([], at)).toEqual([]);
  });

  it('takes the first kept event that fits, passing over the ones that do not', async () => {
    const sent: number[] = [];
    for (const payload of [
      { employeeId: 'E-2', site: 'Leeds' },
      { employeeId: 'E-1', site: 'York' },
      { employeeId: 'E-1' },
      { employeeId: 'E-1', site: 'Leeds', n: 1 },
      { employeeId: 'E-1', site: 'Leeds', n: 2 },
      { 'odd "name"': 'x', n: 5.0 },
      { 'odd "name"': 'x', n: 5 },
      ['E-1'],
      'E-1',
    ]) {
      sent.push((await store.sendEvent(businessEvent('hired', payload, T0 + 500), T0 + 500)).seq);
    }
    const taken = async (match: Match) => {
      const c = await waitingOn(eventWait('w', 'hired', match, T0 + 1_010));
      return (await store.getWaits(c.instance.id))[0]?.eventId;
    };
    expect(await taken({ site: 'Leeds', employeeId: 'E-1' })).toBe(String(sent[3]));
    expect(await taken({ employeeId: 'E-1' })).toBe(String(sent[1]));
    expect(await taken({ 'odd "name"': 'x', n: 5 })).toBe(String(sent[5]));
    expect(await taken({ n: 2 })).toBe(String(sent[4]));
    expect(await taken({ employeeId: 'E-3' })).toBeNull();
    expect(await taken({})).toBe(String(sent[0]));
  });

  it('does not take an event received before the look-back window', async () => {
    await store.sendEvent(businessEvent('employee.created', { employeeId: 'E-1' }, T0 + 100), T0 + 100);
    const waiting = await waitingOn(
      eventWait('w', 'employee.created', { employeeId: 'E-1' }, T0 + 1_010, { lookBackFrom: T0 + 101 }),
    );
    expect((await store.getInstance(waiting.instance.id))?.status).toBe('waiting');
    expect((await store.getWaits(waiting.instance.id))[0]?.resolvedAt).toBeNull();
    // One received at the window's start is taken.
    const edge = await waitingOn(
      eventWait('w', 'employee.created', { employeeId: 'E-1' }, T0 + 1_010, { lookBackFrom: T0 + 100 }),
    );
    expect((await store.getInstance(edge.instance.id))?.status).toBe('queued');
  });

  it('does not let a second wait of the same run take the event the first one took', async () => {
    const row = await accept();
    const sent = await store.sendEvent(businessEvent('stock.low', { sku: 'S' }, T0 + 900, 'low-1'), T0 + 900);
    const first = await claimOne(row.id, T0 + 1_000);
    await finishWait(first, eventWait('first', 'stock.low', { sku: 'S' }, T0 + 1_010), T0 + 1_010);
    expect((await store.getWaits(row.id))[0]).toMatchObject({ resolution: 'event', eventId: 'low-1' });
    expect((await store.getInstance(row.id))?.status).toBe('queued');

    const second = await claimOne(row.id, T0 + 1_020);
    await finishWait(second, eventWait('second', 'stock.low', { sku: 'S' }, T0 + 1_030), T0 + 1_030);
    expect((await store.getInstance(row.id))?.status).toBe('waiting');
    expect((await store.getWaits(row.id)).map((w) => [w.name, w.resolution])).toEqual([
      ['first', 'event'],
      ['second', null],
    ]);

    const next = await store.sendEvent(
      businessEvent('stock.low', { sku: 'S' }, T0 + 2_000, 'low-2'),
      T0 + 2_000,
    );
    expect(next.seq).toBeGreaterThan(sent.seq);
    expect(next.resumed).toEqual([row.id]);
    expect((await store.getWaits(row.id))[1]).toMatchObject({ resolution: 'event', eventId: 'low-2' });
  });

  it('settles an expired sleep as time and an expired event wait as timeout, and leaves an unexpired one armed', async () => {
    const sleeper = await waitingOn(sleepWait('nap', T0 + 5_000, T0 + 1_010));
    const watcher = await waitingOn(
      eventWait('w', 'x.done', { id: 1 }, T0 + 1_010, { expiresAt: T0 + 5_000 }),
    );
    const sleepKey = { instanceId: sleeper.instance.id, run: 1, name: 'nap' };
    const eventKey = { instanceId: watcher.instance.id, run: 1, name: 'w' };

    expect(await store.settleWait(sleepKey, T0 + 4_999)).toMatchObject({
      resolvedAt: null,
      resolution: null,
    });
    expect(await store.settleWait(eventKey, T0 + 4_999)).toMatchObject({
      resolvedAt: null,
      resolution: null,
    });
    expect(await store.settleWait({ ...sleepKey, name: 'other' }, T0 + 4_999)).toBeNull();
    expect(await store.settleWait({ ...sleepKey, run: 2 }, T0 + 4_999)).toBeNull();

    expect(await store.settleWait(sleepKey, T0 + 5_000)).toMatchObject({
      resolvedAt: T0 + 5_000,
      resolution: 'time',
    });
    expect(await store.settleWait(eventKey, T0 + 5_001)).toMatchObject({
      resolvedAt: T0 + 5_001,
      resolution: 'timeout',
      payloadJson: null,
    });
    // Settled once: a later settle reads it as it is, and an event no longer resolves it.
    expect(await store.settleWait(eventKey, T0 + 9_000)).toMatchObject({ resolvedAt: T0 + 5_001 });
    const sent = await store.sendEvent(businessEvent('x.done', { id: 1 }, T0 + 9_000), T0 + 9_000);
    expect(sent.resumed).toEqual([]);
    expect((await store.getWaits(watcher.instance.id))[0]?.resolution).toBe('timeout');
  });

  it('arms a callback only under the current claim token', async () => {
    const row = await accept();
    const claimed = await claimOne(row.id, T0 + 1_000);
    const request = {
      instanceId: row.id,
      run: 1,
      wait: callbackWait('shipment', T0 + 1_005, T0 + HOUR),
      tokenId: 'tok-1',
      tokenHash: sha256('secret-1'),
    };
    expect(await store.armCallback({ ...request, claimToken: 'stale' })).toBeNull();
    expect(await store.getWaits(row.id)).toEqual([]);
    expect(await store.callbackTokenHash('tok-1')).toBeNull();

    const armed = await store.armCallback({ ...request, claimToken: claimed.claimToken });
    expect(armed).toMatchObject({
      instanceId: row.id,
      run: 1,
      name: 'shipment',
      kind: 'callback',
      expiresAt: T0 + HOUR,
      resolvedAt: null,
    });
    expect(await store.callbackTokenHash('tok-1')).toBe(sha256('secret-1'));
    // A second token for the same wait keeps the wait as it was armed.
    const second = await store.armCallback({
      ...request,
      claimToken: claimed.claimToken,
      wait: callbackWait('shipment', T0 + 1_006, T0 + 2 * HOUR),
      tokenId: 'tok-2',
      tokenHash: sha256('secret-2'),
    });
    expect(second).toMatchObject({ expiresAt: T0 + HOUR, createdAt: T0 + 1_005 });
    expect(await store.getWaits(row.id)).toHaveLength(1);
  });

  it('keeps the wait the run armed first: a wait finish of the same name waits until its time', async () => {
    const row = await accept();
    const claimed = await claimOne(row.id, T0 + 1_000);
    await store.armCallback({
      instanceId: row.id,
      claimToken: claimed.claimToken,
      run: 1,
      wait: callbackWait('shipment', T0 + 1_005, T0 + HOUR),
      tokenId: 'tok',
      tokenHash: sha256('tok'),
    });
    const later = callbackWait('shipment', T0 + 1_010, T0 + 2 * HOUR);
    expect((await finishWait(claimed, later, T0 + 1_010)).lost).toEqual([]);
    expect(await store.getInstance(row.id)).toMatchObject({ status: 'waiting', runAt: T0 + HOUR });
    expect(await store.getWaits(row.id)).toMatchObject([{ expiresAt: T0 + HOUR, createdAt: T0 + 1_005 }]);
  });

  it('resolves a callback once: resumed, then used; expired and unknown tokens are told apart', async () => {
    const row = await accept();
    const claimed = await claimOne(row.id, T0 + 1_000);
    const wait = callbackWait('shipment', T0 + 1_005, T0 + HOUR);
    await store.armCallback({
      instanceId: row.id,
      claimToken: claimed.claimToken,
      run: 1,
      wait,
      tokenId: 'tok-1',
      tokenHash: sha256('secret'),
    });
    await finishWait(claimed, wait, T0 + 1_010);
    expect((await store.getInstance(row.id))?.status).toBe('waiting');

    expect(await store.resolveCallback('tok-1', '{"tracking":"Z-9"}', T0 + 2_000)).toEqual({
      outcome: 'resumed',
      instanceId: row.id,
    });
    expect(await store.getInstance(row.id)).toMatchObject({ status: 'queued', runAt: T0 + 2_000 });
    expect((await store.getWaits(row.id))[0]).toMatchObject({
      resolution: 'callback',
      resolvedAt: T0 + 2_000,
      payloadJson: '{"tracking":"Z-9"}',
    });
    expect((await store.getEvents({ instanceId: row.id, limit: 100 })).at(-1)).toMatchObject({
      type: 'wait.resumed',
      data: { step: 'shipment', by: 'callback' },
    });
    expect(await store.resolveCallback('tok-1', '{"tracking":"other"}', T0 + 3_000)).toEqual({
      outcome: 'used',
      resolvedAt: T0 + 2_000,
    });
    expect((await store.getWaits(row.id))[0]?.payloadJson).toBe('{"tracking":"Z-9"}');
    expect(await store.resolveCallback('nope', '{}', T0 + 3_000)).toEqual({ outcome: 'not-found' });

    // Expired: at its time, whether or not the timeout was settled first.
    const late = await accept();
    const lateClaim = await claimOne(late.id, T0 + 1_000);
    const lateWait = callbackWait('shipment', T0 + 1_005, T0 + 5_000);
    for (const tokenId of ['late-1', 'late-2']) {
      await store.armCallback({
        instanceId: late.id,
        claimToken: lateClaim.claimToken,
        run: 1,
        wait: lateWait,
        tokenId,
        tokenHash: sha256(tokenId),
      });
    }
    await finishWait(lateClaim, lateWait, T0 + 1_010);
    expect(await store.resolveCallback('late-1', '{}', T0 + 5_000)).toEqual({
      outcome: 'expired',
      expiredAt: T0 + 5_000,
    });
    await store.settleWait({ instanceId: late.id, run: 1, name: 'shipment' }, T0 + 5_001);
    expect(await store.resolveCallback('late-2', '{}', T0 + 6_000)).toEqual({
      outcome: 'expired',
      expiredAt: T0 + 5_000,
    });
    expect((await store.getWaits(late.id))[0]?.resolution).toBe('timeout');
  });

  it('wakes at once on a wait finish whose callback came while the attempt still ran', async () => {
    const row = await accept();
    const claimed = await claimOne(row.id, T0 + 1_000);
    const wait = callbackWait('shipment', T0 + 1_005);
    await store.armCallback({
      instanceId: row.id,
      claimToken: claimed.claimToken,
      run: 1,
      wait,
      tokenId: 'early',
      tokenHash: sha256('early'),
    });
    expect(await store.resolveCallback('early', '{"ok":true}', T0 + 1_006)).toEqual({
      outcome: 'resumed',
      instanceId: row.id,
    });
    // Still running: the callback resolved the wait but did not touch the attempt's lease.
    expect((await store.getInstance(row.id))?.status).toBe('running');
    expect((await finishWait(claimed, wait, T0 + 1_010)).lost).toEqual([]);
    expect(await store.getInstance(row.id)).toMatchObject({ status: 'queued', runAt: T0 + 1_010 });
    expect((await store.getWaits(row.id))[0]).toMatchObject({
      resolution: 'callback',
      payloadJson: '{"ok":true}',
    });
    expect(await typesOf(row.id)).toEqual(['accepted', 'started', 'wait.started', 'wait.resumed']);
  });

  it('cancels a waiting instance; a later event or callback does not resume it', async () => {
    const watcher = await waitingOn(eventWait('w', 'employee.created', { employeeId: 'E-1' }, T0 + 1_010));
    const row = await accept();
    const claimed = await claimOne(row.id, T0 + 1_000);
    const wait = callbackWait('shipment', T0 + 1_005);
    await store.armCallback({
      instanceId: row.id,
      claimToken: claimed.claimToken,
      run: 1,
      wait,
      tokenId: 'tok',
      tokenHash: sha256('tok'),
    });
    await finishWait(claimed, wait, T0 + 1_010);

    const outcomes = await store.cancel([watcher.instance.id, row.id], T0 + 2_000);
    expect(outcomes).toEqual([
      { id: watcher.instance.id, outcome: 'done', run: 1 },
      { id: row.id, outcome: 'done', run: 1 },
    ]);
    for (const id of [watcher.instance.id, row.id]) {
      expect(await store.getInstance(id)).toMatchObject({ status: 'cancelled', finishedAt: T0 + 2_000 });
    }
    const events = await store.getEvents({ instanceId: row.id, limit: 100 });
    expect(events.at(-1)).toMatchObject({ type: 'cancelled', data: { previousStatus: 'waiting' } });

    const sent = await store.sendEvent(
      businessEvent('employee.created', { employeeId: 'E-1' }, T0 + 3_000),
      T0 + 3_000,
    );
    expect(sent.resumed).toEqual([]);
    expect(await store.resolveCallback('tok', '{}', T0 + 3_000)).toEqual({
      outcome: 'expired',
      expiredAt: T0 + 2_000,
    });
    for (const id of [watcher.instance.id, row.id]) {
      expect((await store.getInstance(id))?.status).toBe('cancelled');
      expect((await store.getWaits(id))[0]?.resolvedAt).toBeNull();
    }
    expect(await claim(T0 + 4_000)).toEqual([]);
  });

  it('keeps only the hash of a callback token', async () => {
    const row = await accept();
    const claimed = await claimOne(row.id, T0 + 1_000);
    const secret = 'c2VjcmV0LXBhcnQtb2YtdGhlLXRva2Vu';
    await store.armCallback({
      instanceId: row.id,
      claimToken: claimed.claimToken,
      run: 1,
      wait: callbackWait('shipment', T0 + 1_005),
      tokenId: 'public-id',
      tokenHash: sha256(secret),
    });
    const rows = await rawRows(store, storeKind, 'callback_tokens');
    expect(rows).toHaveLength(1);
    const text = JSON.stringify(rows);
    expect(text).toContain(sha256(secret));
    expect(text).not.toContain(secret);
  });

  it('purges the waits and callback tokens of purged instances', async () => {
    const row = await accept();
    const claimed = await claimOne(row.id, T0 + 1_000);
    const kept = await waitingOn(sleepWait('nap', T0 + HOUR, T0 + 1_010));
    const wait = callbackWait('shipment', T0 + 1_005);
    await store.armCallback({
      instanceId: row.id,
      claimToken: claimed.claimToken,
      run: 1,
      wait,
      tokenId: 'tok',
      tokenHash: sha256('tok'),
    });
    await finishWait(claimed, wait, T0 + 1_010);
    await store.cancel([row.id], T0 + 2_000);

    expect(await store.purge({ finishedBefore: T0 + 3_000, limit: 10 })).toBe(1);
    expect(await store.getWaits(row.id)).toEqual([]);
    expect(await store.callbackTokenHash('tok')).toBeNull();
    expect(await store.resolveCallback('tok', '{}', T0 + 4_000)).toEqual({ outcome: 'not-found' });
    expect(await rawRows(store, storeKind, 'callback_tokens')).toEqual([]);
    expect(await store.getWaits(kept.instance.id)).toHaveLength(1);
  });

  it('purges business events received before the cutoff, at most the limit', async () => {
    for (const at of [1, 2, 3]) {
      await store.sendEvent(businessEvent('tick', { at }, T0 + at, `t-${at}`), T0 + at);
    }
    expect(await store.purgeEvents(T0 + 3, 1)).toBe(1);
    expect(await store.purgeEvents(T0 + 3, 10)).toBe(1);
    expect(await store.purgeEvents(T0 + 3, 10)).toBe(0);
    // Their ids are forgotten with them; the kept one is still a duplicate.
    expect((await store.sendEvent(businessEvent('tick', {}, T0 + 10, 't-1'), T0 + 10)).duplicate).toBe(false);
    expect((await store.sendEvent(businessEvent('tick', {}, T0 + 10, 't-3'), T0 + 10)).duplicate).toBe(true);
  });

  it('holds the ordering key and blocks an overlapping schedule slot while waiting', async () => {
    const first = await waitingOn(sleepWait('nap', T0 + HOUR, T0 + 1_010), { orderingKey: 'emp-1' });
    const second = await accept({ orderingKey: 'emp-1' });
    expect(await claim(T0 + 2_000)).toEqual([]);
    // Due at its time, ahead of the instance behind it on the key.
    expect((await claim(T0 + HOUR)).map((c) => c.instance.id)).toEqual([first.instance.id]);
    expect((await store.getInstance(second.id))?.status).toBe('queued');

    const scheduled = newRow({ integrationId: 'nightly', mode: 'scheduled', createdAt: T0, runAt: T0 });
    expect(
      await store.fireSlot({
        integrationId: 'nightly',
        slotAt: T0,
        overlap: 'skip',
        instance: scheduled,
        now: T0,
      }),
    ).toEqual({ outcome: 'fired', instanceId: scheduled.id });
    const [run] = await store.claim({
      owner: 'w1',
      limit: 1,
      leaseMs: 30_000,
      now: T0 + 1,
      integrationIds: ['nightly'],
    });
    await finishWait(run!, sleepWait('nap', T0 + HOUR, T0 + 2), T0 + 2);
    const next = newRow({
      integrationId: 'nightly',
      mode: 'scheduled',
      createdAt: T0 + 60_000,
      runAt: T0 + 60_000,
    });
    expect(
      await store.fireSlot({
        integrationId: 'nightly',
        slotAt: T0 + 60_000,
        overlap: 'skip',
        instance: next,
        now: T0 + 60_000,
      }),
    ).toEqual({ outcome: 'skipped', activeInstanceId: scheduled.id });
  });

  it('records the version an instance started on, through every insert path and the claim', async () => {
    const single = await accept({ version: '2' });
    const unversioned = await accept();
    // More rows than one grouped INSERT holds.
    const group = Array.from({ length: 120 }, (_, i) =>
      newRow({ createdAt: T0, runAt: T0, version: i % 2 === 0 ? `v${i}` : null }),
    );
    await store.insertInstances(group);
    const sync = newRow({
      mode: 'sync',
      status: 'succeeded',
      version: 'sync-3',
      outputJson: '{}',
      startedAt: T0,
      finishedAt: T0 + 5,
      durationMs: 5,
    });
    await store.insertInstances([sync]);
    const fired = newRow({
      integrationId: 'nightly',
      mode: 'scheduled',
      version: '7',
      createdAt: T0,
      runAt: T0,
    });
    await store.fireSlot({
      integrationId: 'nightly',
      slotAt: T0,
      overlap: 'queue',
      instance: fired,
      now: T0,
    });

    expect((await store.getInstance(single.id))?.version).toBe('2');
    expect((await store.getInstance(unversioned.id))?.version).toBeNull();
    expect((await store.getInstance(sync.id))?.version).toBe('sync-3');
    expect((await store.getInstance(fired.id))?.version).toBe('7');
    for (const row of group) expect((await store.getInstance(row.id))?.version).toBe(row.version);
    const listed = await store.listInstances({ ids: [single.id], limit: 10 });
    expect(listed.items[0]?.version).toBe('2');

    const claimed = await claim(T0 + 1_000, 200);
    const versions = new Map(claimed.map((c) => [c.instance.id, c.instance.version]));
    expect(versions.get(single.id)).toBe('2');
    expect(versions.get(unversioned.id)).toBeNull();
    for (const row of group) expect(versions.get(row.id)).toBe(row.version);
    const [nightly] = await store.claim({
      owner: 'w1',
      limit: 1,
      leaseMs: 30_000,
      now: T0 + 1_000,
      integrationIds: ['nightly'],
    });
    expect(nightly?.instance.version).toBe('7');
  });
});
