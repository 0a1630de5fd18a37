import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { advise } from '../../src/advisor/advice.js';
import { defineIntegration } from '../../src/define/integration.js';
import { STORE_KINDS, testEngine, waitForStatus } from '../support/engine.js';

let close: (() => Promise<void>) | undefined;
afterEach(async () => {
  await close?.();
  close = undefined;
});

const CHILD_MS = 1_100;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const child = defineIntegration({
  id: 'post-line',
  mode: 'async',
  input: z.object({ n: z.number() }),
  async handler(ctx) {
    await sleep(CHILD_MS);
    return ctx.input.n;
  },
});

/** A fan-out parent that waits for its children, as the demo's nightly-orders does. */
const parent = defineIntegration({
  id: 'nightly-lines',
  mode: 'async',
  handler: (ctx) => ctx.startMany(child, [{ n: 1 }, { n: 2 }], { await: 'children', checkEveryMs: 50 }),
});

describe.each(STORE_KINDS)('durations (%s)', (storeKind) => {
  it("a fan-out parent's duration covers its children, and the statistics and advice use it", async () => {
    const t = await testEngine([parent, child], { storeKind });
    close = t.close;
    const since = t.engine.clock.now();
    const accepted = [];
    for (let i = 0; i < 20; i++) accepted.push(await t.engine.accept('nightly-lines', {}));
    const parents = [];
    for (const { instanceId } of accepted) parents.push(await waitForStatus(t.engine, instanceId));
    for (const done of parents) {
      expect(done.status).toBe('succeeded');
      const children = (await t.engine.listInstances({ parentId: done.id, limit: 10 })).items;
      expect(children).toHaveLength(2);
      const lastChild = Math.max(...children.map((c) => c.finishedAt!));
      // From the first attempt's start to the final state, waits for the children included.
      expect(done.durationMs).toBe(done.finishedAt! - done.startedAt!);
      expect(done.durationMs).toBeGreaterThanOrEqual(lastChild - done.startedAt!);
      expect(done.durationMs).toBeGreaterThanOrEqual(CHILD_MS);
      for (const c of children) expect(c.durationMs).toBeGreaterThanOrEqual(CHILD_MS);
      // The final event says the same, and the last attempt's own time separately.
      const events = await t.store.getEvents({ instanceId: done.id, limit: 1_000 });
      const succeeded = events.find((e) => e.type === 'succeeded')!;
      expect(succeeded.data.durationMs).toBe(done.durationMs);
      expect(succeeded.data.attemptMs).toBeLessThan(CHILD_MS);
    }

    const stats = (await t.store.integrationStats({ since, until: t.engine.clock.now() + 1 })).find(
      (s) => s.integrationId === 'nightly-lines',
    )!;
    expect(stats.p50).toBeGreaterThanOrEqual(CHILD_MS);
    expect(stats.p95).toBeGreaterThanOrEqual(CHILD_MS);
    // Instances that take over a second are not offered as candidates for a sync integration,
    // even when every caller asks for the result at once.
    const advice = advise({ integration: parent, stats, window: 'in the test', immediatePollShare: 1 });
    expect(advice.map((a) => a.kind)).not.toContain('sync-may-serve');
  }, 60_000);

  it('an instance that was retried counts the waits between attempts; a rerun counts from its own start', async () => {
    let failures = 2;
    const flaky = defineIntegration({
      id: 'flaky',
      mode: 'async',
      retry: { maxAttempts: 3, initialDelayMs: 300, maxDelayMs: 300, jitter: 0 },
      async handler() {
        await sleep(20);
        if (failures-- > 0) throw new Error('not yet');
        return 'done';
      },
    });
    const t = await testEngine([flaky], { storeKind });
    close = t.close;
    const { instanceId } = await t.engine.accept('flaky', {});
    const retrying = await waitForStatus(t.engine, instanceId, ['retrying']);
    expect(retrying.durationMs).toBeNull(); // not final yet
    const done = await waitForStatus(t.engine, instanceId);
    expect(done).toMatchObject({ status: 'succeeded', attempt: 3 });
    expect(done.durationMs).toBe(done.finishedAt! - done.startedAt!);
    expect(done.durationMs).toBeGreaterThanOrEqual(600); // two backoffs of 300 ms
    await sleep(1_000);
    const rerunAt = Date.now();
    await t.engine.rerun(instanceId, { from: 'start' });
    // Read at once, the rerun is queued, or already claimed by the running worker (PostgreSQL wakes
    // it at once): either way it carries none of the first run's figures.
    const rerun = await t.engine.getInstance(instanceId);
    expect(rerun).toMatchObject({ run: 2 });
    if (rerun!.startedAt !== null) expect(rerun!.startedAt).toBeGreaterThanOrEqual(rerunAt);
    else expect(rerun).toMatchObject({ status: 'queued', durationMs: null });
    const again = await waitForStatus(t.engine, instanceId);
    expect(again).toMatchObject({ status: 'succeeded', run: 2 });
    expect(again.startedAt).toBeGreaterThan(done.finishedAt!);
    expect(again.durationMs).toBe(again.finishedAt! - again.startedAt!);
    expect(again.durationMs).toBeLessThan(1_000); // the gap between the runs is not part of it
  });

  it('a cancelled instance records how long it ran until the cancel', async () => {
    const waits = defineIntegration({
      id: 'waits',
      mode: 'async',
      handler: (ctx) => new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve())),
    });
    const t = await testEngine([waits], { storeKind });
    close = t.close;
    const { instanceId } = await t.engine.accept('waits', {});
    const running = await waitForStatus(t.engine, instanceId, ['running']);
    await sleep(200);
    await t.engine.cancel(instanceId);
    const cancelled = await t.engine.getInstance(instanceId);
    expect(cancelled.status).toBe('cancelled');
    expect(cancelled.durationMs).toBe(cancelled.finishedAt! - running.startedAt!);
    expect(cancelled.durationMs).toBeGreaterThanOrEqual(200);
  });
});
