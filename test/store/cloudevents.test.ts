/**
 * The store's part of CloudEvents on both stores: the attributes an instance came with are kept
 * beside it (only when it is created), read back with it, searched by type, source or subject, and
 * purged with it; and feeds keep a cursor under a lease that one owner holds at a time.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Store } from '../../src/store/store.js';
import { STORE_KINDS, testStore } from '../support/engine.js';
import { newRow } from './contract.js';

const T0 = 1_700_000_000_000;
const ORDER_CREATED = { id: 'e-1', source: '/shop', type: 'com.example.order.created', subject: 'A-1' };

describe.each(STORE_KINDS)('CloudEvents in the store (%s)', (kind) => {
  let store: Store;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ store, cleanup } = await testStore(kind));
  });
  afterEach(async () => {
    await cleanup();
  });

  it('keeps the attributes with a created instance, reads them back and searches them', async () => {
    const first = newRow({ cloudEvent: ORDER_CREATED, idempotencyKey: 'ce:/shop e-1' });
    const other = newRow({
      cloudEvent: { id: 'e-2', source: '/crm', type: 'com.example.customer.changed', subject: null },
    });
    const plain = newRow();
    await store.insertInstances([first, other, plain]);
    // A replay of the same key creates nothing, and its attributes are not stored a second time.
    const replay = newRow({
      cloudEvent: { ...ORDER_CREATED, type: 'replayed' },
      idempotencyKey: 'ce:/shop e-1',
    });
    const [outcome] = await store.insertInstances([replay]);
    expect(outcome).toMatchObject({ id: first.id, created: false });

    expect((await store.getInstance(first.id))?.cloudEvent).toEqual(ORDER_CREATED);
    expect((await store.getInstance(plain.id))?.cloudEvent).toBeUndefined();
    const page = await store.listInstances({ limit: 10 });
    expect(page.items.map((i) => [i.id, i.cloudEvent?.type ?? null])).toEqual([
      [plain.id, null],
      [other.id, 'com.example.customer.changed'],
      [first.id, 'com.example.order.created'],
    ]);

    const ids = async (cloudEvent: { attribute: 'type' | 'source' | 'subject' | null; value: string }) =>
      (await store.listInstances({ limit: 10, cloudEvent })).items.map((i) => i.id);
    expect(await ids({ attribute: null, value: 'com.example.order.created' })).toEqual([first.id]);
    expect(await ids({ attribute: null, value: '/crm' })).toEqual([other.id]);
    expect(await ids({ attribute: null, value: 'A-1' })).toEqual([first.id]);
    expect(await ids({ attribute: 'type', value: '/crm' })).toEqual([]);
    expect(await ids({ attribute: 'source', value: '/crm' })).toEqual([other.id]);
    expect(await ids({ attribute: 'subject', value: 'A-1' })).toEqual([first.id]);
    expect(await ids({ attribute: 'type', value: 'replayed' })).toEqual([]);
    expect(await store.countInstances({ cloudEvent: { attribute: 'source', value: '/shop' } })).toBe(1);
  });

  it('deletes the attributes with the instance at retention', async () => {
    const row = newRow({ cloudEvent: ORDER_CREATED, status: 'succeeded', finishedAt: T0, mode: 'sync' });
    await store.insertInstances([row]);
    expect(await store.countInstances({ cloudEvent: { attribute: null, value: '/shop' } })).toBe(1);
    expect(await store.purge({ finishedBefore: T0 + 1, limit: 10 })).toBe(1);
    // Inserted again under the same id: no row of the first one is left to collide with.
    await store.insertInstances([{ ...row, cloudEvent: { ...ORDER_CREATED, type: 'again' } }]);
    expect((await store.getInstance(row.id))?.cloudEvent?.type).toBe('again');
  });

  it('gives a feed to one owner at a time and moves its cursor only for that owner', async () => {
    const claim = (owner: string, now: number) =>
      store.claimFeed({ name: 'activity-webhook', owner, initial: 'start', leaseMs: 1_000, now });
    expect(await claim('a', T0)).toBe('start');
    expect(await claim('b', T0 + 500)).toBeNull();
    expect(
      await store.advanceFeed({
        name: 'activity-webhook',
        owner: 'a',
        cursor: 'c1',
        leaseMs: 1_000,
        now: T0 + 600,
      }),
    ).toBe(true);
    // The advance renewed the lease: still a's at T0 + 1500.
    expect(await claim('b', T0 + 1_500)).toBeNull();
    expect(await claim('a', T0 + 1_500)).toBe('c1');
    // Expired: b takes it over where a left it, and a can no longer move it.
    expect(await claim('b', T0 + 2_600)).toBe('c1');
    expect(
      await store.advanceFeed({
        name: 'activity-webhook',
        owner: 'a',
        cursor: 'c2',
        leaseMs: 1_000,
        now: T0 + 2_700,
      }),
    ).toBe(false);
    expect(await claim('b', T0 + 2_800)).toBe('c1');
    // Another feed starts at its own initial cursor.
    expect(await store.claimFeed({ name: 'other', owner: 'a', initial: 'x', leaseMs: 1_000, now: T0 })).toBe(
      'x',
    );
  });
});
