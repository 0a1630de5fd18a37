/**
 * A sleeping instance is durable: the process that put it to sleep is killed with SIGKILL, and
 * another process wakes it at its time — not before, and without running the step before the
 * sleep again. On both stores.
 */
import { join } from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { openStore } from '../../src/store/open.js';
import { STORE_KINDS } from '../support/engine.js';
import { tempDir } from '../support/tmp.js';
import { waitFor } from '../support/wait.js';
import { readEffects, startScript } from '../support/worker-process.js';

const SCRIPT = join(import.meta.dirname, '../fixtures/sleep-worker.ts');
const children: ReturnType<typeof startScript>[] = [];
afterEach(() => {
  for (const { child } of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
});

describe.each(STORE_KINDS)('a durable sleep across SIGKILL (%s)', (storeKind) => {
  it('wakes on another process at its time, with the steps before it run once', async () => {
    const dir = tempDir('tandem-sleep-');
    const storeUrl =
      storeKind === 'sqlite'
        ? `sqlite:${join(dir.path, 'tandem.db')}`
        : `${inject('postgresUrl')}?schema=sleep_crash_${process.pid}`;
    const effects = join(dir.path, 'effects.log');
    const store = await openStore(storeUrl);
    try {
      const first = startScript(SCRIPT, [storeUrl, effects, 'accept', '20', '3000']);
      children.push(first);
      await waitFor(() => first.lines.includes('ready'), 'the accepts', 30_000);
      const ids = first.lines.filter((l) => l.startsWith('accepted ')).map((l) => l.slice(9));
      expect(ids).toHaveLength(20);
      await waitFor(
        async () => (await store.countInstances({ ids, status: 'waiting' })) === 20,
        'every instance to sleep',
        30_000,
      );
      first.child.kill('SIGKILL');
      await first.exited;
      const until = new Map<string, number>();
      for (const id of ids) {
        const [wait] = await store.getWaits(id);
        expect(wait).toMatchObject({ name: 'nap', kind: 'sleep', resolvedAt: null });
        until.set(id, wait!.expiresAt!);
        // Asleep, the instance holds no lease: nothing has to expire before another process takes it.
        expect((await store.getInstance(id))?.runAt).toBe(wait!.expiresAt);
      }

      const second = startScript(SCRIPT, [storeUrl, effects, 'run']);
      children.push(second);
      await waitFor(
        async () => (await store.countInstances({ ids, status: 'succeeded' })) === 20,
        'every instance to wake and finish on the second process',
        60_000,
      );
      const lines = readEffects(effects).map((line) => line.split(' '));
      for (const id of ids) {
        const mine = lines.filter(([instance]) => instance === id);
        expect(mine.filter(([, step]) => step === 'before')).toHaveLength(1);
        const after = mine.filter(([, step]) => step === 'after');
        expect(after).toHaveLength(1);
        expect(Number(after[0]![2])).toBeGreaterThanOrEqual(until.get(id)!);
        const [wait] = await store.getWaits(id);
        expect(wait).toMatchObject({ resolution: 'time' });
      }
    } finally {
      await store.close();
      dir.cleanup();
    }
  }, 120_000);
});
