/**
 * The ordering-key holder read ("why is it waiting"): the instance that keeps a queued one from
 * being claimed is the one the claim's rule names — an earlier holder of the key (queued, running,
 * retrying, waiting or failed), or a later one that runs — on both stores.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Instance } from '../../src/model.js';
import type { ClaimedInstance, Store } from '../../src/store/store.js';
import { STORE_KINDS, testStore } from '../support/engine.js';
import { newRow } from './contract.js';

const T0 = 1_700_000_000_000;

describe.each(STORE_KINDS)('orderingHolder on %s', (kind) => {
  let store: Store;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ store, cleanup } = await testStore(kind));
  });
  afterEach(async () => cleanup());

  const insert = async (orderingKey: string | null) => {
    const [outcome] = await store.insertInstances([newRow({ orderingKey })]);
    return (await store.getInstance(outcome!.id))!;
  };
  const holderOf = async (instance: Instance) => store.orderingHolder(instance.orderingKey!, instance.seq);
  const claim = (now: number): Promise<ClaimedInstance[]> =>
    store.claim({ owner: 'w1', limit: 10, leaseMs: 30_000, now, integrationIds: ['orders'] });
  const fail = (claimed: ClaimedInstance, now: number) =>
    store.commit({
      steps: [],
      events: [],
      finishes: [
        {
          instanceId: claimed.instance.id,
          claimToken: claimed.claimToken,
          outcome: { kind: 'failed', error: { name: 'Error', message: 'down' } },
          now,
          durationMs: 1,
          events: [],
        },
      ],
    });

  it('names the earliest holder of the key, whatever its status, and nothing for the head', async () => {
    const a = await insert('emp-1');
    const b = await insert('emp-1');
    const c = await insert('emp-1');
    const other = await insert('emp-2');
    expect(await holderOf(a)).toBeNull();
    expect(await holderOf(other)).toBeNull();
    expect(await holderOf(b)).toEqual({ id: a.id, integrationId: 'orders', status: 'queued' });
    expect(await holderOf(c)).toEqual({ id: a.id, integrationId: 'orders', status: 'queued' });

    const claimed = await claim(T0 + 1_000);
    expect(claimed.map((x) => x.instance.id).sort()).toEqual([a.id, other.id].sort());
    expect(await holderOf(b)).toMatchObject({ id: a.id, status: 'running' });

    await fail(claimed.find((x) => x.instance.id === a.id)!, T0 + 2_000);
    // A failed instance keeps its key: the one behind it names it, with its status.
    expect(await holderOf(b)).toMatchObject({ id: a.id, status: 'failed' });
    expect(await claim(T0 + 3_000)).toEqual([]);

    await store.cancel([a.id], T0 + 4_000);
    expect(await holderOf(b)).toBeNull();
    expect(await holderOf(c)).toMatchObject({ id: b.id, status: 'queued' });
  });

  it('names a later instance that runs when a rerun put an earlier one back in the queue', async () => {
    const a = await insert('emp-1');
    const b = await insert('emp-1');
    await fail((await claim(T0 + 1_000))[0]!, T0 + 2_000);
    await store.cancel([a.id], T0 + 3_000);
    const [running] = await claim(T0 + 4_000);
    expect(running!.instance.id).toBe(b.id);
    await store.rerun({ ids: [a.id], from: 'start', now: T0 + 5_000 });
    expect(await holderOf(a)).toEqual({ id: b.id, integrationId: 'orders', status: 'running' });
    expect(await claim(T0 + 6_000)).toEqual([]);
  });
});
