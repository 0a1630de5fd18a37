/**
 * File claims (the SFTP record source's guarantee that a file version is read by one instance
 * only): the first claim wins, in one call per listing, across two store connections at once.
 */
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { PostgresStore } from '../../src/store/postgres/store.js';
import { SqliteStore } from '../../src/store/sqlite/store.js';
import type { Store } from '../../src/store/store.js';
import { STORE_KINDS, testStore } from '../support/engine.js';

describe.each(STORE_KINDS)('file claims (%s)', (kind) => {
  let store: Store;
  let cleanup: () => Promise<void>;
  beforeEach(async () => {
    ({ store, cleanup } = await testStore(kind));
  });
  afterEach(() => cleanup());

  const a = { path: '/in/a.csv', version: '10:1000' };
  const b = { path: '/in/b.csv', version: '20:1000' };

  it('gives each file version to the first instance that claims it, and keeps it until done', async () => {
    const first = await store.claimFiles({ connection: 'partner', instanceId: 'i-1', files: [a], now: 1 });
    expect(first).toEqual([{ ...a, instanceId: 'i-1', done: false }]);
    const second = await store.claimFiles({
      connection: 'partner',
      instanceId: 'i-2',
      files: [b, a],
      now: 2,
    });
    expect(second).toEqual([
      { ...b, instanceId: 'i-2', done: false },
      { ...a, instanceId: 'i-1', done: false },
    ]);
    // The holder claiming again (a retry) keeps it.
    expect(await store.claimFiles({ connection: 'partner', instanceId: 'i-1', files: [a], now: 3 })).toEqual([
      { ...a, instanceId: 'i-1', done: false },
    ]);
    // Another connection's file of the same path is another file; so is a new version of the path.
    const other = await store.claimFiles({
      connection: 'other',
      instanceId: 'i-3',
      files: [a, { path: a.path, version: '11:2000' }],
      now: 4,
    });
    expect(other.map((claim) => claim.instanceId)).toEqual(['i-3', 'i-3']);
    expect(await store.heldFiles('partner', 'i-1')).toEqual([{ ...a, instanceId: 'i-1', done: false }]);

    await store.finishFile('partner', a, 5);
    expect(await store.heldFiles('partner', 'i-1')).toEqual([]);
    expect(await store.claimFiles({ connection: 'partner', instanceId: 'i-4', files: [a], now: 6 })).toEqual([
      { ...a, instanceId: 'i-1', done: true },
    ]);
    expect(await store.claimFiles({ connection: 'partner', instanceId: 'i-4', files: [], now: 7 })).toEqual(
      [],
    );
  });

  it('lets one of two stores claiming the same files at once have each file', async () => {
    // A second connection to the same database, as another process would have.
    const twin =
      store instanceof SqliteStore
        ? new SqliteStore({ path: (store as unknown as { db: { name: string } }).db.name })
        : await PostgresStore.open({ url: inject('postgresUrl'), schema: (store as PostgresStore).schema });
    try {
      const files = Array.from({ length: 50 }, (_, i) => ({ path: `/in/${i}.csv`, version: '1:1' }));
      const [mine, theirs] = await Promise.all([
        store.claimFiles({ connection: 'partner', instanceId: 'i-1', files, now: 1 }),
        twin.claimFiles({ connection: 'partner', instanceId: 'i-2', files: [...files].reverse(), now: 1 }),
      ]);
      // Both see the same holder of each file.
      const holders = new Map(mine.map((claim) => [claim.path, claim.instanceId]));
      for (const claim of theirs) expect(claim.instanceId).toBe(holders.get(claim.path));
      const held = [
        ...(await store.heldFiles('partner', 'i-1')),
        ...(await twin.heldFiles('partner', 'i-2')),
      ];
      expect(held.map((claim) => claim.path).sort()).toEqual(files.map((file) => file.path).sort());
    } finally {
      await twin.close();
    }
  });
});
