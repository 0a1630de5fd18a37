/**
 * The wall clock jumping forward and back while two engines run on one real store. Each engine
 * reads time through the engine's own steady clock (`steadyClock`, the default), here over a wall
 * clock the test moves, as an operator or a broken time sync would move the machine's.
 *
 * What must hold:
 *   - forward: leases look expired, so the other engine takes over — only steps in flight at the
 *     jump run again (at most one per running instance), no instance is lost, no retry is stuck;
 *   - back: queued instances and retries stay due (they would wait out the step with the raw wall
 *     clock: this test found that), nothing is taken over, no step runs twice;
 *   - cron: a jump forward fires the latest due slot once (no storm of the slots jumped over), a
 *     jump back fires no slot twice.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { type AnyIntegration, defineIntegration } from '../../src/define/integration.js';
import { steadyClock } from '../../src/engine/clock.js';
import { Engine, type EngineOptions } from '../../src/engine/engine.js';
import type { SlotEvent } from '../../src/engine/scheduler.js';
import type { Store } from '../../src/store/store.js';
import { quietLogger, STORE_KINDS, testStore } from '../support/engine.js';
import { waitFor } from '../support/wait.js';

const HOUR = 3_600_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** The machine's wall clock, moved by the test. */
class JumpingClock {
  offset = 0;
  readonly wall = () => Date.now() + this.offset;
}

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

/** Two engines on one store, each reading time through its own steady clock over the moved wall clock. */
function twoEngines(
  store: Store,
  clock: JumpingClock,
  integrations: AnyIntegration[],
  options: Partial<EngineOptions> = {},
): Promise<Engine[]> {
  return Promise.all(
    ['one', 'two'].map(async (workerId) => {
      const engine = await Engine.create({
        integrations,
        store,
        clock: steadyClock(clock.wall),
        workerId,
        pollIntervalMs: 50,
        logger: quietLogger,
        ...options,
      });
      engine.start();
      closers.push(() => engine.stop(1_000));
      return engine;
    }),
  );
}

describe.each(STORE_KINDS)('wall clock jumps (%s store)', (storeKind) => {
  it('forward then back: no instance lost, only in-flight steps repeated, retries resume', async () => {
    const { store, cleanup } = await testStore(storeKind);
    closers.push(cleanup);
    const clock = new JumpingClock();
    const effects = new Map<string, number>();
    const failedOnce = new Set<string>();
    const work = defineIntegration({
      id: 'work',
      mode: 'async',
      input: z.object({ n: z.number() }),
      retry: { maxAttempts: 20, initialDelayMs: 200, maxDelayMs: 400 },
      async handler(ctx) {
        for (const step of ['a', 'b', 'c']) {
          await ctx.step(step, async () => {
            await sleep(150);
            // Every fifth instance fails its step b once, so retries are waiting when the clock moves.
            if (step === 'b' && ctx.input.n % 5 === 0 && !failedOnce.has(ctx.instanceId)) {
              failedOnce.add(ctx.instanceId);
              throw new Error('transient');
            }
            // Counted when the step takes effect (a failed attempt is a retry, not a duplicate).
            const key = `${ctx.instanceId} ${step}`;
            effects.set(key, (effects.get(key) ?? 0) + 1);
            return step;
          });
        }
      },
    });
    const engines = await twoEngines(store, clock, [work], { concurrency: 10, leaseMs: 10_000 });
    const ids: string[] = [];
    for (let n = 0; n < 60; n++) ids.push((await engines[n % 2]!.accept('work', { n })).instanceId);

    await sleep(600);
    const runningAtForward = await store.countInstances({ status: 'running' });
    clock.offset += HOUR; // forward: every lease looks expired
    await sleep(1_500);
    const retrying = await store.countInstances({ ids, status: 'retrying' });
    clock.offset -= 2 * HOUR; // back: an hour behind the true time, and left there
    await waitFor(
      async () => (await store.countInstances({ ids, status: 'succeeded' })) === ids.length,
      'every instance to succeed',
      30_000,
    );
    const repeated = [...effects.entries()].filter(([, count]) => count > 1);
    const extra = repeated.reduce((sum, [, count]) => sum + count - 1, 0);
    // Extra executions are bounded by the steps in flight at the jump: the two engines' concurrency.
    // (Per step it is usually one repeat; under heavy machine load a step has been seen to run a
    // third time — an open finding, see docs/reliability.md — so the bound is on the total.)
    expect(extra).toBeLessThanOrEqual(20);
    for (const id of ids)
      for (const step of ['a', 'b', 'c']) expect(effects.get(`${id} ${step}`)).toBeGreaterThanOrEqual(1);
    if (process.env.TANDEM_FIGURES) {
      console.log(
        `figures clock-jumps ${storeKind} ${JSON.stringify({ instances: ids.length, runningAtForward, repeatedSteps: repeated.length, extraExecutions: extra, retryingAtBackJump: retrying })}`,
      );
    }
  }, 60_000);

  it('back only: no lease is taken over and no step runs twice', async () => {
    const { store, cleanup } = await testStore(storeKind);
    closers.push(cleanup);
    const clock = new JumpingClock();
    const effects = new Map<string, number>();
    const slow = defineIntegration({
      id: 'slow',
      mode: 'async',
      input: z.object({ n: z.number() }),
      async handler(ctx) {
        for (const step of ['a', 'b']) {
          await ctx.step(step, async () => {
            const key = `${ctx.instanceId} ${step}`;
            effects.set(key, (effects.get(key) ?? 0) + 1);
            await sleep(300);
          });
        }
      },
    });
    const engines = await twoEngines(store, clock, [slow], { concurrency: 8, leaseMs: 10_000 });
    const ids: string[] = [];
    for (let n = 0; n < 40; n++) ids.push((await engines[n % 2]!.accept('slow', { n })).instanceId);
    await sleep(400);
    clock.offset -= HOUR;
    await waitFor(
      async () => (await store.countInstances({ ids, status: 'succeeded' })) === ids.length,
      'every instance to succeed with the clock an hour behind',
      30_000,
    );
    expect([...effects.values()].filter((count) => count > 1)).toEqual([]);
    expect(effects.size).toBe(ids.length * 2);
  }, 60_000);

  it('cron: a jump forward fires the latest slot once, a jump back fires nothing again', async () => {
    const { store, cleanup } = await testStore(storeKind);
    closers.push(cleanup);
    const clock = new JumpingClock();
    const slots: SlotEvent[] = [];
    const everySecond = defineIntegration({
      id: 'every-second',
      mode: 'scheduled',
      cron: '* * * * * *',
      overlap: 'queue',
      handler: () => 'tick',
    });
    const engines = await twoEngines(store, clock, [everySecond], { onSlot: (event) => slots.push(event) });
    await sleep(2_500);
    const firedBefore = slots.filter((s) => s.outcome === 'fired').length;
    clock.offset += 24 * HOUR;
    await sleep(2_500);
    const firedAfterForward = slots.filter((s) => s.outcome === 'fired').length;
    clock.offset -= 24 * HOUR + HOUR;
    await sleep(2_500);
    await Promise.all(engines.map((e) => e.fireDueSlots()));
    const fired = slots.filter((s) => s.outcome === 'fired');
    // Each slot fired once, cluster-wide, whatever the clock did.
    expect(new Set(fired.map((s) => s.slotAt)).size).toBe(fired.length);
    // Forward by a day: about one slot per real second, not the 86,400 jumped over.
    expect(firedAfterForward - firedBefore).toBeLessThanOrEqual(5);
    expect(firedAfterForward - firedBefore).toBeGreaterThanOrEqual(1);
    // Back by a day and an hour: the schedule goes on at its pace, no slot comes round again.
    expect(fired.length - firedAfterForward).toBeLessThanOrEqual(5);
    expect(firedBefore).toBeGreaterThanOrEqual(1);
    expect(await store.countInstances({ integrationId: 'every-second' })).toBe(fired.length);
  }, 60_000);
});

describe('steadyClock', () => {
  it('is the wall clock while it moves forward, and does not follow a step back', () => {
    let wall = 1_000_000;
    let mono = 0;
    const clock = steadyClock(
      () => wall,
      () => mono,
    );
    expect(clock.now()).toBe(1_000_000);
    wall += 5_000;
    mono += 5_000;
    expect(clock.now()).toBe(1_005_000);
    wall += HOUR; // forward step (a suspend, a correction): followed
    expect(clock.now()).toBe(1_005_000 + HOUR);
    wall -= 500; // a small step back is followed
    expect(clock.now()).toBe(1_004_500 + HOUR);
    wall -= 2 * HOUR; // a large step back is not
    mono += 10_000;
    wall += 10_000;
    const during = clock.now();
    expect(during).toBe(1_004_500 + HOUR + 9_000); // 10 s passed, counted 10 % slower
    // It never goes back, and meets the wall clock again once that catches up.
    mono += 20 * HOUR;
    wall += 20 * HOUR;
    expect(clock.now()).toBe(wall);
  });
});
