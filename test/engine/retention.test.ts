import { describe, expect, it } from 'vitest';
import { defineIntegration } from '../../src/define/integration.js';
import { testEngine, waitForStatus } from '../support/engine.js';

describe('retention', () => {
  it('purges succeeded instances past the retention period in the background and keeps failed ones', async () => {
    let now = Date.now();
    const ok = defineIntegration({ id: 'ok', mode: 'async', handler: () => 1 });
    const bad = defineIntegration({
      id: 'bad',
      mode: 'async',
      retry: { maxAttempts: 1 },
      handler: () => {
        throw new Error('x');
      },
    });
    const t = await testEngine([ok, bad], {
      clock: { now: () => now },
      retention: { keepMs: 60_000, intervalMs: 20 },
    });
    try {
      const a = await t.engine.accept('ok', {});
      const b = await t.engine.accept('bad', {});
      await waitForStatus(t.engine, a.instanceId);
      await waitForStatus(t.engine, b.instanceId);
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(await t.store.countInstances({})).toBe(2); // not yet past retention
      now += 61_000;
      const deadline = Date.now() + 5_000;
      while ((await t.store.countInstances({})) > 1 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(await t.store.getInstance(a.instanceId)).toBeNull();
      expect((await t.store.getInstance(b.instanceId))?.status).toBe('failed');
    } finally {
      await t.close();
    }
  });
});
