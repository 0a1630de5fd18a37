import { describe, expect, it } from 'vitest';
import { defineIntegration } from '../../src/define/integration.js';
import { Engine } from '../../src/engine/engine.js';
import { quietLogger, STORE_KINDS, testStore } from '../support/engine.js';
import { waitFor } from '../support/wait.js';

describe.each(STORE_KINDS)('prefetch (%s store)', (storeKind) => {
  it('claims ahead only while handlers are quick, and hands unstarted claims back on stop', async () => {
    const { store, cleanup } = await testStore(storeKind);
    let release: () => void = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let started = 0;
    const slow = defineIntegration({
      id: 'held',
      mode: 'async',
      handler: async () => {
        started++;
        await gate;
        return null;
      },
    });
    const engine = await Engine.create({
      integrations: [slow],
      store,
      logger: quietLogger,
      concurrency: 2,
      prefetch: 3,
      pollIntervalMs: 20,
    });
    try {
      for (let i = 0; i < 20; i++) await engine.accept('held', { i });
      engine.start();
      await waitFor(() => started === 2, 'two handlers to start');
      // Two run, up to three more wait in this process; the rest stay in the store for others.
      const running = await store.countInstances({ status: 'running' });
      expect(running).toBeGreaterThanOrEqual(2);
      expect(running).toBeLessThanOrEqual(5);
      expect(await store.countInstances({ status: 'queued' })).toBeGreaterThanOrEqual(15);
      expect(started).toBe(2);

      // Stopping lets the two running finish, and hands the waiting claims back without running
      // them or using up an attempt.
      const stopping = engine.stop(5_000);
      setTimeout(release, 100);
      await stopping;
      expect(await store.countInstances({ status: 'succeeded' })).toBe(2);
      const all = await store.listInstances({ limit: 50 });
      const unstarted = all.items.filter((i) => i.status === 'queued');
      expect(unstarted.length).toBe(18);
      for (const instance of unstarted) expect(instance.attempt).toBe(0);
      expect(started).toBe(2);
    } finally {
      release();
      await engine.stop(100);
      await cleanup();
    }
  });

  it('stops prefetching once handlers are slow', async () => {
    const { store, cleanup } = await testStore(storeKind);
    let inFlight = 0;
    const slow = defineIntegration({
      id: 'slow',
      mode: 'async',
      handler: async () => {
        inFlight++;
        await new Promise((resolve) => setTimeout(resolve, 120));
        inFlight--;
        return null;
      },
    });
    const engine = await Engine.create({
      integrations: [slow],
      store,
      logger: quietLogger,
      concurrency: 1,
      prefetch: 4,
      pollIntervalMs: 20,
    });
    try {
      for (let i = 0; i < 40; i++) await engine.accept('slow', { i });
      engine.start();
      // After enough slow attempts the moving average is past the limit: claims match free slots.
      await waitFor(
        async () => (await store.countInstances({ status: 'succeeded' })) >= 25,
        '25 slow instances to finish',
        20_000,
      );
      const samples: number[] = [];
      for (let i = 0; i < 5; i++) {
        samples.push(await store.countInstances({ status: 'running' }));
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      // One running, and at most one more whose final write is still on its way.
      expect(Math.max(...samples)).toBeLessThanOrEqual(2);
      expect(inFlight).toBeLessThanOrEqual(1);
    } finally {
      await engine.stop(1_000);
      await cleanup();
    }
  }, 30_000);
});
