import { describe, expect, it } from 'vitest';
import { defineIntegration } from '../../src/define/integration.js';
import { Engine } from '../../src/engine/engine.js';
import { quietLogger, STORE_KINDS, testStore, waitForStatus } from '../support/engine.js';
import { waitFor } from '../support/wait.js';

describe.each(STORE_KINDS)('a process taking over its own attempt (%s store)', (storeKind) => {
  it('abandons the old attempt at once when the clock jumps past its lease', async () => {
    const { store, cleanup } = await testStore(storeKind);
    let offset = 0;
    const clock = { now: () => Date.now() + offset };
    const runs: { signal: AbortSignal; attempt: number }[] = [];
    let effects = 0;
    let releaseFirst: () => void = () => {};
    const first = new Promise<void>((resolve) => {
      releaseFirst = resolve;
    });
    const work = defineIntegration({
      id: 'work',
      mode: 'async',
      async handler(ctx) {
        await ctx.step('book', async (signal) => {
          runs.push({ signal, attempt: ctx.attempt });
          // The first attempt hangs until the test lets it go; later ones go straight through.
          if (runs.length === 1) await first;
          effects++;
          return 'booked';
        });
        await ctx.step('confirm', async () => {
          effects++;
          return 'confirmed';
        });
        return null;
      },
    });
    const engine = await Engine.create({
      integrations: [work],
      store,
      clock,
      logger: quietLogger,
      leaseMs: 60_000,
      pollIntervalMs: 20,
    });
    engine.start();
    try {
      const { instanceId } = await engine.accept('work', {});
      await waitFor(() => runs.length === 1, 'the first attempt to start its step');
      // The wall clock jumps ten minutes ahead: the lease looks expired to this very process.
      offset = 10 * 60_000;
      engine.wake();
      await waitFor(() => runs.length === 2, 'the instance to be taken over');
      // The old attempt was told to stop the moment its instance was taken over.
      expect(runs[0]!.signal.aborted).toBe(true);
      expect(runs[1]!.signal.aborted).toBe(false);
      const done = await waitForStatus(engine, instanceId);
      expect(done.status).toBe('succeeded');
      releaseFirst();
      await new Promise((resolve) => setTimeout(resolve, 100));
      // The abandoned attempt's late step does not get to go on to the next step.
      expect(effects).toBeLessThanOrEqual(3);
      const detail = await engine.getDetail(instanceId);
      expect(detail.steps.filter((s) => s.status === 'succeeded').map((s) => s.name)).toEqual([
        'book',
        'confirm',
      ]);
    } finally {
      releaseFirst();
      await engine.stop(1_000);
      await cleanup();
    }
  });
});
