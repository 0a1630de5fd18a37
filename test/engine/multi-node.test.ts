import { join } from 'node:path';
import { Pool } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresStore } from '../../src/store/postgres/store.js';
import { type PostgresServer, startPostgres } from '../support/postgres.js';
import { tempDir } from '../support/tmp.js';
import { waitFor } from '../support/wait.js';
import { readEffects, startWorker } from '../support/worker-process.js';

const COUNT = Number(process.env.TANDEM_MULTI_COUNT ?? 20_000);

// A server of its own: this test restarts it, which the shared one must not see.
let server: PostgresServer;
beforeAll(async () => {
  server = await startPostgres();
});
afterAll(async () => {
  await server?.stop();
});

/**
 * A client that keeps sending accepts as a real one would: each record has its own
 * Idempotency-Key, a request that fails (connection refused or reset, 5xx, 429) is sent again, to
 * the next node, until one acknowledges it with 202.
 */
function acceptOverHttp(ports: number[], count: number, parallel = 32) {
  const acknowledged = new Map<number, string>();
  let next = 0;
  let turn = 0;
  let failures = 0;
  const pools = ports.map((port) => new Pool(`http://127.0.0.1:${port}`, { connections: parallel }));
  const send = async (n: number): Promise<void> => {
    for (;;) {
      const pool = pools[turn++ % pools.length]!;
      try {
        const response = await pool.request({
          path: '/work',
          method: 'POST',
          headers: { 'content-type': 'application/json', 'idempotency-key': `record-${n}` },
          body: JSON.stringify({ n }),
          headersTimeout: 20_000,
          bodyTimeout: 20_000,
        });
        const body = (await response.body.json()) as { instanceId?: string };
        if (response.statusCode === 202 && body.instanceId) {
          acknowledged.set(n, body.instanceId);
          return;
        }
        if (response.statusCode < 429) throw new Error(`accept ${n} answered ${response.statusCode}`);
      } catch (error) {
        if (error instanceof Error && error.message.startsWith('accept ')) throw error;
      }
      failures++;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  };
  const done = Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < count) await send(next++);
    }),
  ).finally(() => Promise.all(pools.map((pool) => pool.destroy())));
  return { acknowledged, done, failures: () => failures };
}

describe('multi-node on PostgreSQL', () => {
  it('three processes (two taking HTTP) run 20,000 instances through a SIGKILL and a database restart while accepts flow, losing nothing', async () => {
    const dir = tempDir('tandem-multi-');
    const url = `${server.url}?schema=multi`;
    const effects = join(dir.path, 'effects.log');
    // Leases of 5 s: long enough to outlast the database restart, short enough to recover the kill.
    const nodes = [
      startWorker([url, effects, 'http', '0', '20', '5000', '3']),
      startWorker([url, effects, 'http', '0', '20', '5000', '3']),
      startWorker([url, effects, 'run', '0', '20', '5000', '3']),
    ];
    const store = await PostgresStore.open({ url: server.url, schema: 'multi' });
    try {
      const ports = await Promise.all(
        nodes
          .slice(0, 2)
          .map((node) =>
            waitFor(
              () => node.lines.find((l) => l.startsWith('listening '))?.slice(10),
              'a node to listen',
              60_000,
            ).then(Number),
          ),
      );
      const client = acceptOverHttp(ports, COUNT);
      await waitFor(() => client.acknowledged.size > COUNT * 0.3, 'a third of the accepts', 120_000);
      nodes[1]!.child.kill('SIGKILL');
      await nodes[1]!.exited;
      const atKill = client.acknowledged.size;
      expect(atKill).toBeLessThan(COUNT);
      await waitFor(
        () => client.acknowledged.size > atKill + COUNT * 0.2,
        'accepts to go on after the kill',
        120_000,
      );
      const atRestart = client.acknowledged.size;
      await server.restart();
      await client.done;
      // Both faults struck while accepts were still coming in.
      expect(atRestart).toBeLessThan(COUNT);
      expect(client.failures()).toBeGreaterThan(0);
      const ids = [...client.acknowledged.values()];
      expect(new Set(ids).size).toBe(COUNT);
      await waitFor(
        async () => {
          try {
            return (await store.countInstances({ status: 'succeeded' })) === COUNT;
          } catch {
            return false; // the pool reconnects after the restart
          }
        },
        'all instances to succeed',
        240_000,
      );
      // Every acknowledged accept is stored and succeeded, and nothing else was created.
      expect(await store.countInstances({ ids, status: 'succeeded' })).toBe(COUNT);
      expect(await store.countInstances({})).toBe(COUNT);
      const counts = new Map<string, number>();
      for (const line of readEffects(effects)) counts.set(line, (counts.get(line) ?? 0) + 1);
      expect(counts.size).toBe(COUNT * 3);
      const repeated = [...counts.values()].filter((n) => n > 1);
      // Only steps in flight at the kill (at most one per slot of the killed node) ran twice.
      expect(repeated.length).toBeLessThanOrEqual(20);
      for (const n of repeated) expect(n).toBe(2);
    } finally {
      for (const node of nodes) if (node.child.exitCode === null) node.child.kill('SIGKILL');
      await Promise.all(nodes.map((n) => n.exited));
      await store.close();
      dir.cleanup();
    }
  }, 400_000);
});
