import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SQLITE_MIGRATIONS } from '../../src/store/sqlite/migrations.js';
import { SqliteStore } from '../../src/store/sqlite/store.js';
import { tempDir } from '../support/tmp.js';
import { waitFor } from '../support/wait.js';
import { newRow, storeContract } from './contract.js';

const dir = tempDir('tandem-sqlite-');
afterAll(() => dir.cleanup());
let n = 0;

storeContract('sqlite', async () => new SqliteStore({ path: join(dir.path, `contract-${++n}.db`) }));

describe('SqliteStore', () => {
  it('opens in WAL mode with synchronous=FULL and applies migrations once', async () => {
    const path = join(dir.path, 'pragmas.db');
    const store = new SqliteStore({ path });
    expect(store.db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(store.db.pragma('synchronous', { simple: true })).toBe(2);
    // Statement journals and temporary tables in memory (2), not in a file created per commit.
    expect(store.db.pragma('temp_store', { simple: true })).toBe(2);
    await store.insertInstances([newRow()]);
    await store.close();
    const reopened = new SqliteStore({ path });
    const versions = reopened.db.prepare('SELECT version FROM schema_migrations').all();
    expect(versions).toEqual(SQLITE_MIGRATIONS.map(({ version }) => ({ version })));
    expect(await reopened.countInstances({})).toBe(1);
    await reopened.close();
    await expect(reopened.getInstance('x')).rejects.toMatchObject({ code: 'store-closed' });
  });

  it('skips the fsync only for an insert without a flush, and is back to FULL after it, even after a failure', async () => {
    const store = new SqliteStore({ path: join(dir.path, 'no-flush.db') });
    await store.insertInstances([newRow()], { flush: false });
    expect(store.db.pragma('synchronous', { simple: true })).toBe(2);
    const broken = newRow({ integrationId: null as unknown as string });
    await expect(store.insertInstances([broken], { flush: false })).rejects.toThrow(/NOT NULL/);
    expect(store.db.pragma('synchronous', { simple: true })).toBe(2);
    expect(await store.countInstances({})).toBe(1);
    await store.close();
    // A store opened without fsyncs is not raised to them either.
    const relaxed = new SqliteStore({ path: join(dir.path, 'relaxed.db'), synchronous: 'OFF' });
    await relaxed.insertInstances([newRow()], { flush: false });
    expect(relaxed.db.pragma('synchronous', { simple: true })).toBe(0);
    await relaxed.close();
  });

  it("skips the fsync for claims and lease renewals and releases, never for an accept or an attempt's end", async () => {
    // What a power cut can take of these acknowledges nothing: a lost claim is undone with the process
    // that made it, and the attempt's first durable commit flushes the claim before it.
    const store = new SqliteStore({ path: join(dir.path, 'relaxed-claims.db') });
    const relaxedIn: string[] = [];
    let during = '';
    const pragma = store.db.pragma.bind(store.db);
    store.db.pragma = ((source: string, options?: { simple?: boolean }) => {
      if (source === 'synchronous = NORMAL') relaxedIn.push(during);
      return pragma(source, options);
    }) as typeof store.db.pragma;
    const at = 1_700_000_000_000;
    during = 'accept';
    const [a, b] = [newRow({ runAt: at }), newRow({ runAt: at })];
    await store.insertInstances([a, b]);
    during = 'claim';
    const claimed = await store.claim({
      owner: 'w1',
      limit: 10,
      leaseMs: 30_000,
      now: at,
      integrationIds: ['orders'],
    });
    expect(claimed).toHaveLength(2);
    const [first, second] = claimed.map((c) => ({ instanceId: c.instance.id, claimToken: c.claimToken }));
    during = 'renew';
    expect(await store.extendLeases([first!, second!], at + 60_000)).toEqual([]);
    during = 'commit';
    const { lost } = await store.commit({
      steps: [],
      events: [],
      finishes: [
        {
          ...first!,
          now: at + 1,
          durationMs: 1,
          events: [],
          outcome: { kind: 'succeeded', outputJson: null },
        },
      ],
    });
    expect(lost).toEqual([]);
    during = 'release';
    await store.releaseLeases([second!], at + 2);
    expect(relaxedIn).toEqual(['claim', 'renew', 'release']);
    // Each is back to FULL after it: the next accept waits for the disk again.
    expect(store.db.pragma('synchronous', { simple: true })).toBe(2);
    expect((await store.getInstance(first!.instanceId))?.status).toBe('succeeded');
    expect((await store.getInstance(second!.instanceId))?.status).toBe('queued');
    await store.close();
  });

  it("wakes its listeners on another connection's commit to the same file, not on its own, and stops when none listens", async () => {
    const path = join(dir.path, 'wake.db');
    const worker = new SqliteStore({ path });
    const api = new SqliteStore({ path });
    let wakes = 0;
    const unsubscribe = worker.onWake(() => wakes++);
    await api.insertInstances([newRow()]);
    await waitFor(() => wakes === 1, "the other connection's commit to wake the listener");
    // Its own commits wake nothing: the engine that made them knows.
    await worker.insertInstances([newRow()]);
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(wakes).toBe(1);
    unsubscribe();
    await api.insertInstances([newRow()]);
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(wakes).toBe(1);
    // A new listener counts from now, not from the commits it missed.
    worker.onWake(() => wakes++);
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(wakes).toBe(1);
    await api.insertInstances([newRow()]);
    await waitFor(() => wakes === 2, 'the next commit to wake the new listener');
    await Promise.all([worker.close(), api.close()]);
  });
});
