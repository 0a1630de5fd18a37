import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite/store.js';
import { tempDir } from '../support/tmp.js';
import { waitFor } from '../support/wait.js';
import { readEffects, startWorker, type Worker } from '../support/worker-process.js';

const workers: Worker[] = [];
const start = (args: string[]) => {
  const worker = startWorker(args);
  workers.push(worker);
  return worker;
};

afterEach(() => {
  for (const { child } of workers.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
});

async function kill9(worker: Worker) {
  worker.child.kill('SIGKILL');
  await worker.exited;
}

describe('crash safety (SIGKILL)', () => {
  it('resumes every accepted instance after a kill mid-run, repeating only steps in flight', async () => {
    const dir = tempDir('tandem-crash-');
    try {
      const db = join(dir.path, 'tandem.db');
      const effects = join(dir.path, 'effects.log');
      const first = start([db, effects, 'accept-and-run', '300']);
      await waitFor(() => first.lines.includes('accept-done'), 'all accepts');
      await waitFor(() => readEffects(effects).length > 150, 'work in progress', 30_000);
      await kill9(first);
      const accepted = first.lines.filter((l) => l.startsWith('accepted ')).map((l) => l.slice(9));
      expect(accepted).toHaveLength(300);
      const effectsAtKill = readEffects(effects).length;
      expect(effectsAtKill).toBeLessThan(900); // killed mid-run, not after

      const second = start([db, effects, 'run']);
      const store = new SqliteStore({ path: db });
      try {
        await waitFor(
          async () => (await store.countInstances({ status: 'succeeded' })) === 300,
          'all instances to succeed after restart',
          60_000,
        );
        await kill9(second);
        for (const id of accepted) expect((await store.getInstance(id))?.status).toBe('succeeded');
      } finally {
        await store.close();
      }
      const counts = new Map<string, number>();
      for (const line of readEffects(effects)) counts.set(line, (counts.get(line) ?? 0) + 1);
      expect(counts.size).toBe(900); // every step of every instance happened
      const repeated = [...counts.entries()].filter(([, n]) => n > 1);
      // At most one step per concurrency slot was in flight at the kill; none ran more than twice.
      expect(repeated.length).toBeLessThanOrEqual(8);
      for (const [, n] of repeated) expect(n).toBe(2);
    } finally {
      dir.cleanup();
    }
  });

  it('keeps every accept that resolved before a SIGKILL', async () => {
    const dir = tempDir('tandem-accept-');
    try {
      const db = join(dir.path, 'tandem.db');
      const worker = start([db, join(dir.path, 'e.log'), 'accept-only', '100000']);
      await waitFor(() => worker.lines.filter((l) => l.startsWith('accepted ')).length >= 2_000, 'accepts');
      await kill9(worker);
      const acknowledged = worker.lines.filter((l) => l.startsWith('accepted ')).map((l) => l.slice(9));
      expect(acknowledged.length).toBeLessThan(100_000); // the kill came mid-stream
      const store = new SqliteStore({ path: db });
      try {
        const found = await store.countInstances({ ids: acknowledged });
        expect(found).toBe(acknowledged.length);
      } finally {
        await store.close();
      }
    } finally {
      dir.cleanup();
    }
  });
});
