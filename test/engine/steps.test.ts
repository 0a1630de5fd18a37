import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineIntegration } from '../../src/define/integration.js';
import { NonRetryableError, RetryAfterError } from '../../src/errors.js';
import { STORE_KINDS, testEngine, waitForStatus } from '../support/engine.js';
import { waitFor } from '../support/wait.js';

const fastRetry = { maxAttempts: 3, initialDelayMs: 5, maxDelayMs: 20, jitter: 0 };
let close: (() => Promise<void>) | undefined;
afterEach(async () => {
  await close?.();
  close = undefined;
});

/** A 3-step integration whose step 2 fails `failures.two` times; counts executions per step. */
function threeSteps(id: string, failures: { two: number }, retry = fastRetry) {
  const runs = { one: 0, two: 0, three: 0 };
  const integration = defineIntegration({
    id,
    mode: 'async',
    input: z.object({ orderId: z.string() }),
    track: { orderId: 'orderId' },
    retry,
    async handler(ctx) {
      const a = await ctx.step('one', () => {
        runs.one++;
        return { reserved: ctx.input.orderId };
      });
      const b = await ctx.step('two', () => {
        runs.two++;
        if (failures.two > 0) {
          failures.two--;
          throw new Error('warehouse unavailable');
        }
        return `${a.reserved}-packed`;
      });
      await ctx.step('three', () => {
        runs.three++;
      });
      return { packed: b };
    },
  });
  return { integration, runs };
}

describe.each(STORE_KINDS)('steps and retries (%s store)', (storeKind) => {
  it('fails at once an instance whose step name cannot be stored as text; the others run on', async () => {
    const names = ['half \ud800 pair', 'nul \u0000 char', 'low \udc00 half', 'ok \ud83d\udce6 parcel'];
    const named = defineIntegration({
      id: 'named',
      mode: 'async',
      input: z.object({ i: z.number() }),
      handler: async (ctx) => ctx.step(names[ctx.input.i]!, () => ctx.input.i),
    });
    const t = await testEngine([named], { storeKind });
    close = t.close;
    const accepted = await Promise.all(names.map((_, i) => t.engine.accept('named', { i })));
    const done = await Promise.all(accepted.map((a) => waitForStatus(t.engine, a.instanceId)));
    for (const instance of done.slice(0, 3)) {
      expect(instance).toMatchObject({ status: 'failed', attempt: 1 });
      expect(instance.error?.message).toMatch(/^A step name must be text without NUL characters/);
    }
    expect(done[3]).toMatchObject({ status: 'succeeded', output: 3 });
    const steps = await t.store.getSteps(accepted[3]!.instanceId);
    expect(steps.map((s) => s.name)).toEqual([names[3]]);
  });

  it('executes step 1 once, step 2 three times and step 3 once when step 2 fails twice', async () => {
    const { integration, runs } = threeSteps('pack', { two: 2 });
    const t = await testEngine([integration], { storeKind });
    close = t.close;
    const { instanceId } = await t.engine.accept('pack', { orderId: 'A-1' });
    const done = await waitForStatus(t.engine, instanceId);
    expect(done.status).toBe('succeeded');
    expect(done.output).toEqual({ packed: 'A-1-packed' });
    expect(done.attempt).toBe(3);
    expect(runs).toEqual({ one: 1, two: 3, three: 1 });
    const detail = await t.engine.getDetail(instanceId);
    const types = detail.events.map((e) => e.type);
    expect(types.filter((t) => t === 'retry.scheduled')).toHaveLength(2);
    expect(types.filter((t) => t === 'step.failed')).toHaveLength(2);
    expect(types[0]).toBe('accepted');
    expect(types.at(-1)).toBe('succeeded');
    expect(detail.steps.map((s) => [s.name, s.status, s.attempt])).toEqual([
      ['one', 'succeeded', 1],
      ['two', 'succeeded', 3],
      ['three', 'succeeded', 3],
    ]);
  });

  it('fails when attempts run out; reruns from the failed step run steps 2–3 only, from the start all three', async () => {
    const failures = { two: 3 };
    const { integration, runs } = threeSteps('pack', failures);
    const t = await testEngine([integration], { storeKind });
    close = t.close;
    const { instanceId } = await t.engine.accept('pack', { orderId: 'A-2' });
    const failed = await waitForStatus(t.engine, instanceId);
    expect(failed.status).toBe('failed');
    expect(failed.error?.message).toBe('warehouse unavailable');
    expect(runs).toEqual({ one: 1, two: 3, three: 0 });

    await t.engine.rerun(instanceId, { from: 'failed-step' });
    const second = await waitForStatus(t.engine, instanceId, ['succeeded', 'failed']);
    expect(second).toMatchObject({ status: 'succeeded', run: 2 });
    expect(runs).toEqual({ one: 1, two: 4, three: 1 });

    await t.engine.rerun(instanceId, { from: 'start', input: { orderId: 'A-2b' } });
    const third = await waitForStatus(t.engine, instanceId, ['succeeded', 'failed']);
    expect(third).toMatchObject({ status: 'succeeded', run: 3, output: { packed: 'A-2b-packed' } });
    expect(runs).toEqual({ one: 2, two: 5, three: 2 });
    const history = await t.store.getRuns(instanceId);
    expect(history.map((r) => [r.run, r.status, r.from])).toEqual([
      [1, 'failed', null],
      [2, 'succeeded', 'failed-step'],
      [3, 'succeeded', 'start'],
    ]);
  });

  it('a bulk rerun by filter reruns exactly the matching instances', async () => {
    const alwaysFails = defineIntegration({
      id: 'flaky',
      mode: 'async',
      input: z.object({ region: z.string() }),
      track: { region: 'region' },
      retry: { maxAttempts: 1 },
      handler: () => {
        throw new Error('down');
      },
    });
    const ok = defineIntegration({ id: 'ok', mode: 'async', handler: () => 'fine' });
    const t = await testEngine([alwaysFails, ok], { storeKind });
    close = t.close;
    const north = await Promise.all([1, 2, 3].map(() => t.engine.accept('flaky', { region: 'north' })));
    const south = await Promise.all([1, 2].map(() => t.engine.accept('flaky', { region: 'south' })));
    const fine = await t.engine.accept('ok', null);
    for (const a of [...north, ...south, fine]) await waitForStatus(t.engine, a.instanceId);
    const { count } = await t.engine.rerunMany({
      integrationId: 'flaky',
      status: 'failed',
      tracking: 'region=north',
    });
    expect(count).toBe(3);
    for (const a of north) expect((await waitForStatus(t.engine, a.instanceId)).run).toBe(2);
    for (const a of south) expect((await t.engine.getInstance(a.instanceId)).run).toBe(1);
    expect((await t.engine.getInstance(fine.instanceId)).run).toBe(1);
    await expect(t.engine.rerunMany({})).rejects.toMatchObject({ code: 'invalid-input' });
  });

  it('fails at once on NonRetryableError and waits as asked by RetryAfterError', async () => {
    let calls = 0;
    const refuse = defineIntegration({
      id: 'refuse',
      mode: 'async',
      retry: fastRetry,
      handler: () => {
        calls++;
        throw new NonRetryableError('customer does not exist');
      },
    });
    let later = 0;
    const laterOne = defineIntegration({
      id: 'later',
      mode: 'async',
      retry: { ...fastRetry, maxAttempts: 2 },
      handler: () => {
        later++;
        if (later <= 3) throw new RetryAfterError(30, 'bank maintenance', { consumesAttempt: false });
        return later;
      },
    });
    const t = await testEngine([refuse, laterOne], { storeKind });
    close = t.close;
    const a = await t.engine.accept('refuse', {});
    const b = await t.engine.accept('later', {});
    const failed = await waitForStatus(t.engine, a.instanceId);
    expect(failed).toMatchObject({ status: 'failed', attempt: 1 });
    expect(failed.error).toMatchObject({ code: 'non-retryable', message: 'customer does not exist' });
    expect(calls).toBe(1);
    const ok = await waitForStatus(t.engine, b.instanceId);
    // Three waits that did not count as attempts, then success on the first counted attempt.
    expect(ok).toMatchObject({ status: 'succeeded', output: 4, attempt: 1 });
  });

  it('aborts an attempt at its timeout through the AbortSignal and retries it', async () => {
    let sawAbort = false;
    let calls = 0;
    const slow = defineIntegration({
      id: 'slow',
      mode: 'async',
      timeout: 50,
      retry: fastRetry,
      async handler(ctx) {
        calls++;
        if (calls === 1) {
          await new Promise<void>((resolve) =>
            ctx.signal.addEventListener('abort', () => {
              sawAbort = true;
              resolve();
            }),
          );
          return 'too late';
        }
        return 'in time';
      },
    });
    const t = await testEngine([slow], { storeKind });
    close = t.close;
    const { instanceId } = await t.engine.accept('slow', {});
    const done = await waitForStatus(t.engine, instanceId);
    expect(done).toMatchObject({ status: 'succeeded', output: 'in time', attempt: 2 });
    expect(sawAbort).toBe(true);
    const events = (await t.engine.getDetail(instanceId)).events;
    const retry = events.find((e) => e.type === 'retry.scheduled');
    expect(retry?.data.error).toMatch(/timeout of 50 ms/);
  });

  it('cancels a running instance: its signal fires and its result is not stored', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let aborted = false;
    const waits = defineIntegration({
      id: 'waits',
      mode: 'async',
      async handler(ctx) {
        ctx.signal.addEventListener('abort', () => {
          aborted = true;
        });
        await held;
        await ctx.step('after', () => 'should not be stored');
      },
    });
    const t = await testEngine([waits], { storeKind });
    close = t.close;
    const { instanceId } = await t.engine.accept('waits', {});
    await waitForStatus(t.engine, instanceId, ['running']);
    await t.engine.cancel(instanceId);
    release();
    await waitFor(() => t.engine.activeCount === 0, 'the attempt to end');
    expect(aborted).toBe(true);
    expect((await t.engine.getInstance(instanceId)).status).toBe('cancelled');
    expect(await t.store.getSteps(instanceId)).toEqual([]);
    await expect(t.engine.cancel(instanceId)).rejects.toMatchObject({ code: 'invalid-state' });
  });

  it('refuses a step name used twice and a result that is not JSON, failing without retries', async () => {
    const twice = defineIntegration({
      id: 'twice',
      mode: 'async',
      retry: fastRetry,
      async handler(ctx) {
        await ctx.step('same', () => 1);
        await ctx.step('same', () => 2);
      },
    });
    const mapResult = defineIntegration({
      id: 'map-result',
      mode: 'async',
      retry: fastRetry,
      async handler(ctx) {
        await ctx.step('map', () => new Map([[1, 2]]));
      },
    });
    const t = await testEngine([twice, mapResult], { storeKind });
    close = t.close;
    const a = await t.engine.accept('twice', {});
    const b = await t.engine.accept('map-result', {});
    expect(await waitForStatus(t.engine, a.instanceId)).toMatchObject({
      status: 'failed',
      attempt: 1,
      error: { code: 'duplicate-step' },
    });
    const failedB = await waitForStatus(t.engine, b.instanceId);
    expect(failedB).toMatchObject({ status: 'failed', attempt: 1, error: { code: 'not-serializable' } });
    expect(failedB.error?.message).toMatch(/Map, not a plain object/);
    expect(await t.store.getSteps(b.instanceId)).toEqual([]);
  });

  it('starts children idempotently with a parent link', async () => {
    const child = defineIntegration({
      id: 'child',
      mode: 'async',
      input: z.object({ n: z.number() }),
      handler: (ctx) => ctx.input.n * 2,
    });
    let parentCalls = 0;
    const parent = defineIntegration({
      id: 'parent',
      mode: 'async',
      retry: fastRetry,
      async handler(ctx) {
        parentCalls++;
        const one = await ctx.start(child, { n: 1 });
        const many = await ctx.startMany(child, [{ n: 2 }, { n: 3 }, { n: 4 }], { chunkSize: 2 });
        if (parentCalls === 1) throw new Error('crash after starting children');
        return { one: one.created, many };
      },
    });
    const t = await testEngine([parent, child], { storeKind });
    close = t.close;
    const { instanceId } = await t.engine.accept('parent', {});
    const done = await waitForStatus(t.engine, instanceId);
    // The second attempt found the single child already started, and startMany is a durable step:
    // its result comes from the first attempt's memo, without reading the inputs again.
    expect(done.output).toEqual({ one: false, many: { count: 3, created: 3 } });
    const steps = await t.store.getSteps(instanceId);
    expect(steps.map((s) => [s.name, s.attempt])).toEqual([['start-many:2', 1]]);
    const children = await t.engine.listInstances({ limit: 10, parentId: instanceId });
    expect(children.items).toHaveLength(4);
    for (const c of children.items) await waitForStatus(t.engine, c.id);
    const outputs = await Promise.all(
      children.items.map(async (c) => (await t.engine.getInstance(c.id)).output),
    );
    expect(outputs.sort()).toEqual([2, 4, 6, 8]);
  });

  it('lets a handler take its context apart (const { step, input, progress } = ctx)', async () => {
    const integration = defineIntegration({
      id: 'destructured',
      mode: 'async',
      input: z.object({ n: z.number() }),
      async handler({ step, input, progress, signal }) {
        const doubled = await step('double', () => input.n * 2);
        progress({ doubled });
        return { doubled, aborted: signal.aborted };
      },
    });
    const t = await testEngine([integration], { storeKind });
    close = t.close;
    const { instanceId } = await t.engine.accept('destructured', { n: 21 });
    const done = await waitForStatus(t.engine, instanceId);
    expect(done.status).toBe('succeeded');
    expect(done.output).toEqual({ doubled: 42, aborted: false });
    const detail = await t.engine.getDetail(instanceId);
    expect(detail.steps.map((s) => s.name)).toEqual(['double']);
    await waitFor(async () => {
      const events = (await t.engine.getDetail(instanceId)).events;
      return events.some((e) => e.type === 'progress' && (e.data as { doubled?: number }).doubled === 42);
    }, 'the progress event');
  });
});
