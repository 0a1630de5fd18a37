/**
 * SIGKILL of a server process under mixed load (sync answers, async accepts and batch hand-offs at
 * once), on SQLite and on PostgreSQL: a new process on the same store finishes every acknowledged
 * instance, and only steps in flight at the kill run again.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { startSoakServer, targetApp } from '../../bench/soak.js';
import { PostgresStore } from '../../src/store/postgres/store.js';
import { SqliteStore } from '../../src/store/sqlite/store.js';
import type { Store } from '../../src/store/store.js';
import { STORE_KINDS } from '../support/engine.js';
import { tempDir } from '../support/tmp.js';
import { waitFor } from '../support/wait.js';

const CONCURRENCY = 16;
const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

type Server = Awaited<ReturnType<typeof startSoakServer>>;

/** Open-loop mixed load on `server()` until `stop()`; records what was acknowledged. */
function mixedLoad(server: () => Server, rate: number) {
  const acknowledged = { orders: [] as string[], batches: [] as string[], sync: 0, refused: 0 };
  let n = 0;
  let running = true;
  const inFlight = new Set<Promise<void>>();
  const one = async (i: number) => {
    const url = server().url;
    try {
      if (i % 4 === 0) {
        const response = await fetch(`${url}/prices/SKU-${i}`);
        await response.text();
        if (response.status === 200) acknowledged.sync++;
        else acknowledged.refused++;
      } else if (i % 4 === 3) {
        const response = await fetch(`${url}/batches`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ batchId: `B-${i}`, lines: 5 }),
        });
        if (response.status === 200) acknowledged.batches.push(`B-${i}`);
        else acknowledged.refused++;
        await response.text();
      } else {
        const response = await fetch(`${url}/orders`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ orderId: `O-${i}` }),
        });
        const body = await response.text();
        if (response.status === 202) acknowledged.orders.push(JSON.parse(body).instanceId);
        else acknowledged.refused++;
      }
    } catch {
      acknowledged.refused++; // the process was killed under this request: not acknowledged
    }
  };
  const started = performance.now();
  const loop = (async () => {
    while (running) {
      const due = Math.floor(((performance.now() - started) / 1000) * rate);
      while (n < due) {
        const p = one(n++);
        inFlight.add(p);
        void p.finally(() => inFlight.delete(p));
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await Promise.all(inFlight);
  })();
  return {
    acknowledged,
    get sent() {
      return n;
    },
    async stop() {
      running = false;
      await loop;
    },
  };
}

describe.each(STORE_KINDS)('SIGKILL under mixed load (%s store)', (storeKind) => {
  it('a new process finishes every acknowledged instance; only in-flight steps repeat', async () => {
    let storeUrl: string;
    let check: Store;
    if (storeKind === 'sqlite') {
      const dir = tempDir('tandem-crash-mixed-');
      closers.push(() => dir.cleanup());
      storeUrl = `sqlite:${join(dir.path, 'tandem.db')}`;
    } else {
      const schema = `crash_mixed_${process.pid}`;
      storeUrl = `${inject('postgresUrl')}?schema=${schema}`;
    }
    const app = await targetApp();
    closers.push(() => app.down());
    let server = await startSoakServer(storeUrl, app.url, [String(CONCURRENCY), '2000']);
    closers.push(() => {
      if (server.child.exitCode === null) server.child.kill('SIGKILL');
    });
    const load = mixedLoad(() => server, 150);
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    server.child.kill('SIGKILL');
    await server.exited;
    const atKill = { ...load.acknowledged, orders: load.acknowledged.orders.length };
    server = await startSoakServer(storeUrl, app.url, [String(CONCURRENCY), '2000']);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    await load.stop();
    const { orders, batches } = load.acknowledged;
    expect(atKill.orders).toBeGreaterThan(100);
    expect(orders.length).toBeGreaterThan(atKill.orders); // the new process took load too

    if (storeKind === 'sqlite') check = new SqliteStore({ path: storeUrl.slice('sqlite:'.length) });
    else {
      check = await PostgresStore.open({ url: inject('postgresUrl'), schema: `crash_mixed_${process.pid}` });
    }
    closers.push(() => check.close());
    await waitFor(
      async () => (await check.countInstances({ ids: orders, status: 'succeeded' })) === orders.length,
      'every acknowledged order to succeed',
      60_000,
    );
    for (const batchId of batches) {
      await waitFor(
        async () =>
          (await check.countInstances({ tracking: `batchId=${batchId}`, status: 'succeeded' })) === 5,
        `the 5 lines of ${batchId}`,
        30_000,
      );
    }
    const repeated = [...app.seen.values()].filter((count) => count > 1);
    // A step in flight at the kill may run again when its lease is taken over: at most one per slot.
    expect(repeated.length).toBeLessThanOrEqual(CONCURRENCY);
    for (const count of repeated) expect(count).toBe(2);
    if (process.env.TANDEM_FIGURES) {
      console.log(
        `figures crash-mixed ${storeKind} ${JSON.stringify({ sent: load.sent, ordersAcknowledged: orders.length, batchesAcknowledged: batches.length, syncAnswered: load.acknowledged.sync, refusedOrCut: load.acknowledged.refused, lost: 0, repeatedSteps: repeated.length })}`,
      );
    }
  }, 120_000);
});
