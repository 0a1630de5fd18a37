import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineIntegration } from '../../src/define/integration.js';
import { STORE_KINDS, testEngine, waitForStatus } from '../support/engine.js';
import { waitFor } from '../support/wait.js';

describe.each(STORE_KINDS)('ordering keys (%s store)', (storeKind) => {
  it('runs 100 instances over 5 keys one at a time per key, in accept order, with concurrency 8', async () => {
    const started: Record<string, number[]> = {};
    const runningPerKey = new Map<string, number>();
    let overlap = 0;
    let peak = 0;
    let running = 0;
    const attach = defineIntegration({
      id: 'attach-document',
      mode: 'async',
      input: z.object({ employeeId: z.string(), n: z.number() }),
      orderingKey: 'employeeId',
      async handler(ctx) {
        const key = ctx.input.employeeId;
        const now = (runningPerKey.get(key) ?? 0) + 1;
        runningPerKey.set(key, now);
        if (now > 1) overlap++;
        running++;
        peak = Math.max(peak, running);
        started[key] = [...(started[key] ?? []), ctx.input.n];
        await ctx.step('store', () => new Promise((resolve) => setTimeout(resolve, (ctx.input.n * 7) % 5)));
        runningPerKey.set(key, runningPerKey.get(key)! - 1);
        running--;
      },
    });
    const t = await testEngine([attach], { concurrency: 8, storeKind });
    try {
      const accepted = [];
      for (let n = 0; n < 100; n++) {
        accepted.push(t.engine.accept('attach-document', { employeeId: `e${n % 5}`, n }));
      }
      const ids = await Promise.all(accepted);
      await waitFor(
        async () => (await t.store.countInstances({ status: 'succeeded' })) === 100,
        'all 100 to succeed',
        60_000,
      );
      for (const { instanceId } of ids) await waitForStatus(t.engine, instanceId);
      expect(overlap).toBe(0);
      expect(peak).toBeGreaterThan(1); // different keys did run in parallel
      for (let k = 0; k < 5; k++) {
        const expected = Array.from({ length: 20 }, (_, i) => i * 5 + k);
        expect(started[`e${k}`]).toEqual(expected);
      }
    } finally {
      await t.close();
    }
  });

  it('holds later instances of a key behind a failed one until it is cancelled', async () => {
    const log: number[] = [];
    const strict = defineIntegration({
      id: 'strict',
      mode: 'async',
      input: z.object({ key: z.string(), n: z.number() }),
      orderingKey: 'key',
      retry: { maxAttempts: 1 },
      handler(ctx) {
        log.push(ctx.input.n);
        if (ctx.input.n === 1) throw new Error('first fails');
      },
    });
    const t = await testEngine([strict], { storeKind });
    try {
      const a = await t.engine.accept('strict', { key: 'k', n: 1 });
      const b = await t.engine.accept('strict', { key: 'k', n: 2 });
      await waitForStatus(t.engine, a.instanceId);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect((await t.engine.getInstance(b.instanceId)).status).toBe('queued');
      await t.engine.cancel(a.instanceId);
      expect((await waitForStatus(t.engine, b.instanceId)).status).toBe('succeeded');
      expect(log).toEqual([1, 2]);
    } finally {
      await t.close();
    }
  });
});
