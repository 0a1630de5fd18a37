import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresStore } from '../../src/store/postgres/store.js';
import { type PostgresServer, startPostgres } from '../support/postgres.js';
import { tempDir } from '../support/tmp.js';
import { waitFor } from '../support/wait.js';
import { readEffects, startWorker } from '../support/worker-process.js';

const COUNT = 20_000;

// A server of its own: this test restarts it, which the shared one must not see.
let server: PostgresServer;
beforeAll(async () => {
  server = await startPostgres();
});
afterAll(async () => {
  await server?.stop();
});

describe('multi-node on PostgreSQL', () => {
  it('three processes run 20,000 instances through a SIGKILL and a database restart, losing nothing', async () => {
    const dir = tempDir('tandem-multi-');
    const url = `${server.url}?schema=multi`;
    const effects = join(dir.path, 'effects.log');
    const nodes = [
      // Leases of 5 s: long enough to outlast the database restart, short enough to recover the kill.
      startWorker([url, effects, 'accept-and-run', String(COUNT / 2), '20', '5000', '3']),
      startWorker([url, effects, 'accept-and-run', String(COUNT / 2), '20', '5000', '3']),
      startWorker([url, effects, 'run', '0', '20', '5000', '3']),
    ];
    const store = await PostgresStore.open({ url: server.url, schema: 'multi' });
    try {
      await waitFor(
        () => nodes[0]!.lines.includes('accept-done') && nodes[1]!.lines.includes('accept-done'),
        'accepts',
        120_000,
      );
      const accepted = nodes.flatMap((n) =>
        n.lines.filter((l) => l.startsWith('accepted ')).map((l) => l.slice(9)),
      );
      expect(accepted).toHaveLength(COUNT);
      await waitFor(() => readEffects(effects).length > COUNT * 0.3, 'a third of the work', 120_000);
      nodes[1]!.child.kill('SIGKILL');
      await nodes[1]!.exited;
      const atKill = readEffects(effects).length;
      expect(atKill).toBeLessThan(COUNT * 3);
      await waitFor(
        () => readEffects(effects).length > atKill + COUNT * 0.3,
        'more work after the kill',
        120_000,
      );
      await server.restart();
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
      expect(await store.countInstances({ ids: accepted, status: 'succeeded' })).toBe(COUNT);
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
