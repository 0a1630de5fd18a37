import { describe, expect, it } from 'vitest';
import { defineIntegration } from '../../src/define/integration.js';
import { followActivity } from '../../src/engine/activity.js';
import { STORE_KINDS, testEngine } from '../support/engine.js';
import { waitFor } from '../support/wait.js';

describe.each(STORE_KINDS)('following the activity stream (%s store)', (storeKind) => {
  it('delivers every event exactly once across a disconnect and a resume from the last cursor', async () => {
    const work = defineIntegration({
      id: 'work',
      mode: 'async',
      async handler(ctx) {
        await ctx.step('a', () => 1);
        await ctx.step('b', () => 2);
      },
    });
    const t = await testEngine([work], { storeKind, concurrency: 20 });
    try {
      const start = await t.store.eventStreamHead();
      const received: string[] = [];
      let cursor = start;
      const follow = async (stopAfter: number) => {
        const controller = new AbortController();
        for await (const event of followActivity(t.store, {
          after: cursor,
          signal: controller.signal,
          onChange: (l) => t.engine.onChange(l),
          pollMs: 20,
        })) {
          received.push(`${event.id}`);
          cursor = event.cursor;
          if (received.length >= stopAfter) controller.abort();
        }
      };
      const accepting = (async () => {
        for (let i = 0; i < 500; i++) await t.engine.accept('work', {});
      })();
      await follow(300); // disconnect mid-run …
      await accepting;
      await waitFor(
        async () => (await t.store.countInstances({ status: 'succeeded' })) === 500,
        'all to succeed',
      );
      await waitFor(() => t.engine.activeCount === 0, 'writes to settle');
      const total = (await t.store.getEvents({ limit: 10_000 })).length;
      expect(total).toBe(500 * 7); // accepted, started, 2 × (step.started, step.succeeded), succeeded
      await follow(total); // … and resume from the last cursor
      expect(received).toHaveLength(total);
      expect(new Set(received).size).toBe(total);
    } finally {
      await t.close();
    }
  });
});
