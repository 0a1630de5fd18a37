/**
 * Acknowledged failures on both stores: the flag is kept with the instance, set and taken back with
 * an event each, refused for an instance that has not failed, filtered on, and cleared by a rerun;
 * and the step each failed run stopped in, read for many runs at once.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Store } from '../../src/store/store.js';
import { STORE_KINDS, testStore } from '../support/engine.js';
import { newRow } from './contract.js';

const T0 = 1_700_000_000_000;
const claimOf = (now: number) => ({
  owner: 'w1',
  limit: 10,
  leaseMs: 30_000,
  now,
  integrationIds: ['orders'],
});

describe.each(STORE_KINDS)('acknowledged failures (%s)', (kind) => {
  let store: Store;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ store, cleanup } = await testStore(kind));
  });
  afterEach(async () => {
    await cleanup();
  });

  /** An async instance that failed in step `two` after `one` succeeded. */
  async function failedAsync(): Promise<string> {
    const row = newRow({ runAt: T0 });
    await store.insertInstances([row]);
    const [c] = await store.claim(claimOf(T0 + 1_000));
    const step = (name: string, position: number, status: 'succeeded' | 'failed') => ({
      instanceId: row.id,
      claimToken: c!.claimToken,
      outputJson: status === 'succeeded' ? '1' : null,
      events: [],
      step: {
        instanceId: row.id,
        run: 1,
        name,
        position,
        status,
        output: null,
        error: status === 'failed' ? { name: 'Error', message: 'down' } : null,
        attempt: 1,
        startedAt: T0,
        finishedAt: T0,
      },
    });
    await store.commit({
      events: [],
      steps: [step('one', 0, 'succeeded'), step('two', 1, 'failed')],
      finishes: [
        {
          instanceId: row.id,
          claimToken: c!.claimToken,
          now: T0 + 2_000,
          durationMs: 5,
          events: [],
          outcome: { kind: 'failed', error: { name: 'Error', message: 'down' } },
        },
      ],
    });
    return row.id;
  }

  const failedSync = async () => {
    const row = newRow({
      mode: 'sync',
      status: 'failed',
      error: { name: 'HttpError', message: 'HTTP 503', code: 'http-error' },
      startedAt: T0,
      finishedAt: T0 + 5,
      durationMs: 5,
    });
    await store.insertInstances([row]);
    return row.id;
  };

  it('keeps the flag and note with a failed instance, sync or async, with one event each way', async () => {
    const async = await failedAsync();
    const sync = await failedSync();
    expect(await store.getInstance(async)).toMatchObject({ acknowledgedAt: null, acknowledgedNote: null });

    const outcomes = await store.acknowledge({
      ids: [async, sync, async],
      acknowledged: true,
      note: 'inventory restarted',
      now: T0 + 5_000,
    });
    expect(outcomes).toEqual([
      { id: async, outcome: 'done', run: 1 },
      { id: sync, outcome: 'done', run: 1 },
      { id: async, outcome: 'done', run: 1 },
    ]);
    for (const id of [async, sync]) {
      expect(await store.getInstance(id)).toMatchObject({
        status: 'failed',
        acknowledgedAt: T0 + 5_000,
        acknowledgedNote: 'inventory restarted',
      });
    }
    // Acknowledged again: the first time and note stay, and no second event is written.
    await store.acknowledge({ ids: [sync], acknowledged: true, note: 'other', now: T0 + 6_000 });
    expect(await store.getInstance(sync)).toMatchObject({
      acknowledgedAt: T0 + 5_000,
      acknowledgedNote: 'inventory restarted',
    });
    const acknowledged = (await store.getEvents({ instanceId: async, limit: 100 })).filter(
      (e) => e.type === 'acknowledged',
    );
    expect(acknowledged).toHaveLength(1);
    expect(acknowledged[0]).toMatchObject({ at: T0 + 5_000, run: 1, data: { note: 'inventory restarted' } });
    // A sync record is written finished, without an `accepted` event.
    expect((await store.getEvents({ instanceId: sync, limit: 100 })).map((e) => e.type)).toEqual([
      'acknowledged',
    ]);

    // The filter tells them apart.
    expect(await store.countInstances({ status: 'failed', acknowledged: true })).toBe(2);
    expect(await store.countInstances({ status: 'failed', acknowledged: false })).toBe(0);

    // Taken back: the flag goes, with an event that says since when it was set.
    await store.acknowledge({ ids: [sync], acknowledged: false, note: null, now: T0 + 7_000 });
    expect(await store.getInstance(sync)).toMatchObject({ acknowledgedAt: null, acknowledgedNote: null });
    const undone = (await store.getEvents({ instanceId: sync, limit: 100 })).at(-1);
    expect(undone).toMatchObject({ type: 'unacknowledged', data: { acknowledgedAt: T0 + 5_000 } });
    const page = await store.listInstances({ status: 'failed', acknowledged: false, limit: 10 });
    expect(page.items.map((i) => i.id)).toEqual([sync]);
  });

  it('refuses instances that have not failed or do not exist, and changes nothing of them', async () => {
    const queued = newRow();
    await store.insertInstances([queued]);
    const outcomes = await store.acknowledge({
      ids: [queued.id, 'nope'],
      acknowledged: true,
      note: null,
      now: T0,
    });
    expect(outcomes).toEqual([
      { id: queued.id, outcome: 'invalid-state', status: 'queued' },
      { id: 'nope', outcome: 'not-found' },
    ]);
    expect(await store.getInstance(queued.id)).toMatchObject({ acknowledgedAt: null });
    expect((await store.getEvents({ instanceId: queued.id, limit: 10 })).map((e) => e.type)).toEqual([
      'accepted',
    ]);
  });

  it('clears the acknowledgement with a rerun: the new run fails as news', async () => {
    const id = await failedAsync();
    await store.acknowledge({ ids: [id], acknowledged: true, note: 'seen', now: T0 + 3_000 });
    const [rerun] = await store.rerun({ ids: [id], from: 'failed-step', now: T0 + 4_000 });
    expect(rerun).toMatchObject({ outcome: 'done', run: 2 });
    expect(await store.getInstance(id)).toMatchObject({
      status: 'queued',
      acknowledgedAt: null,
      acknowledgedNote: null,
    });
  });

  it('reads the step each failed run stopped in, for many runs in one call', async () => {
    const a = await failedAsync();
    const sync = await failedSync();
    expect(await store.failedSteps([])).toEqual({});
    expect(
      await store.failedSteps([
        { instanceId: a, run: 1 },
        { instanceId: sync, run: 1 },
        { instanceId: a, run: 2 },
      ]),
    ).toEqual({ [a]: 'two' });
  });
});
