import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { defineIntegration } from '../../src/define/integration.js';
import { makeCron } from '../../src/define/schedule.js';
import { Engine } from '../../src/engine/engine.js';
import { latestSlotAtOrBefore, nextSlotAfter, type SlotEvent } from '../../src/engine/scheduler.js';
import { NonRetryableError } from '../../src/errors.js';
import { SqliteStore } from '../../src/store/sqlite/store.js';
import { quietLogger, waitForStatus } from '../support/engine.js';
import { tempDir } from '../support/tmp.js';
import { waitFor } from '../support/wait.js';

const at = (iso: string) => new Date(iso).getTime();
const T0 = at('2026-01-10T00:00:00.500Z');

/** A clock the test moves by hand; the scheduler reads "now" only from it. */
function manualClock(start: number) {
  let now = start;
  return {
    now: () => now,
    set(time: number) {
      now = time;
    },
  };
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function storeFile() {
  const dir = tempDir('tandem-sched-');
  cleanups.push(() => dir.cleanup());
  return join(dir.path, 'tandem.db');
}

async function startEngine(
  path: string,
  integrations: Parameters<typeof Engine.create>[0]['integrations'],
  clock: { now(): number },
) {
  const store = new SqliteStore({ path });
  const slots: SlotEvent[] = [];
  const engine = await Engine.create({
    integrations,
    store,
    clock,
    logger: quietLogger,
    pollIntervalMs: 20,
    onSlot: (event) => slots.push(event),
  });
  engine.start();
  const stop = async () => {
    await engine.stop(1_000);
    await store.close();
  };
  cleanups.push(stop);
  return { engine, store, slots, stop };
}

describe('slots', () => {
  it('are computed in the schedule time zone, across daylight saving time', () => {
    const cron = makeCron('0 30 2 * * *', 'Europe/Berlin');
    expect(nextSlotAfter(cron, at('2026-01-10T00:00:00Z'))).toBe(at('2026-01-10T01:30:00Z'));
    expect(nextSlotAfter(cron, at('2026-07-10T00:00:00Z'))).toBe(at('2026-07-10T00:30:00Z'));
    const everySecond = makeCron('* * * * * *');
    expect(latestSlotAtOrBefore(everySecond, at('2026-01-10T00:00:05.000Z'))).toBe(
      at('2026-01-10T00:00:05Z'),
    );
    expect(latestSlotAtOrBefore(everySecond, at('2026-01-10T00:00:05.999Z'))).toBe(
      at('2026-01-10T00:00:05Z'),
    );
    expect(nextSlotAfter(everySecond, at('2026-01-10T00:00:05.000Z'))).toBe(at('2026-01-10T00:00:06Z'));
  });

  it('refuses an invalid cron, time zone or overlap when the integration is defined', () => {
    const base = { id: 'x', mode: 'scheduled' as const, handler: () => {} };
    expect(() => defineIntegration({ ...base, cron: 'every day' })).toThrow(/invalid cron/);
    expect(() => defineIntegration({ ...base, cron: '* * * * *', timezone: 'Mars/Olympus' })).toThrow(
      /unknown time zone/,
    );
    expect(() => defineIntegration({ ...base, cron: '* * * * *', overlap: 'parallel' as never })).toThrow(
      /overlap/,
    );
    expect(() =>
      defineIntegration({ ...base, cron: '* * * * *', parameters: { list: [1] as never } }),
    ).toThrow(/parameter "list"/);
  });
});

describe('scheduler (manual clock)', () => {
  it('fires each slot once; with overlap skip a slot is skipped while the last instance runs', async () => {
    let release = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const seen: (number | null)[] = [];
    const nightly = defineIntegration({
      id: 'nightly',
      mode: 'scheduled',
      cron: '* * * * * *',
      async handler(ctx) {
        seen.push(ctx.scheduledFor);
        if (seen.length === 1) await gate;
      },
    });
    const clock = manualClock(T0);
    const { engine, store, slots } = await startEngine(storeFile(), [nightly], clock);
    await engine.fireDueSlots();
    expect(await store.countInstances({})).toBe(0); // nothing is due at T0

    clock.set(at('2026-01-10T00:00:01.000Z'));
    await engine.fireDueSlots();
    await engine.fireDueSlots(); // a second look at the same time fires nothing more
    await waitFor(() => seen.length === 1, 'the first instance to start');
    clock.set(at('2026-01-10T00:00:02.010Z'));
    await engine.fireDueSlots();
    release();
    const [first] = (await engine.listInstances({ limit: 10 })).items;
    await waitForStatus(engine, first!.id);
    clock.set(at('2026-01-10T00:00:03.000Z'));
    await engine.fireDueSlots();
    await waitFor(() => seen.length === 2, 'the second instance to run');

    expect(seen).toEqual([at('2026-01-10T00:00:01Z'), at('2026-01-10T00:00:03Z')]);
    expect(slots.map((s) => [s.slotAt, s.outcome])).toEqual([
      [at('2026-01-10T00:00:01Z'), 'fired'],
      [at('2026-01-10T00:00:02Z'), 'skipped'],
      [at('2026-01-10T00:00:03Z'), 'fired'],
    ]);
    expect(slots[1]!.instanceId).toBe(first!.id);
    expect(await store.countInstances({ integrationId: 'nightly' })).toBe(2);
    const schedule = await engine.getSchedule('nightly');
    expect(schedule).toMatchObject({
      overlap: 'skip',
      lastSlotAt: at('2026-01-10T00:00:03Z'),
      nextSlotAt: at('2026-01-10T00:00:04Z'),
    });
    expect(schedule.recentSlots.map((s) => s.outcome)).toEqual(['fired', 'skipped', 'fired']);
  });

  it('with overlap queue fires every slot even while an instance is active', async () => {
    const nightly = defineIntegration({
      id: 'nightly',
      mode: 'scheduled',
      cron: '* * * * * *',
      overlap: 'queue',
      handler: () => new Promise<void>(() => {}), // never finishes
    });
    const clock = manualClock(T0);
    const { engine, slots } = await startEngine(storeFile(), [nightly], clock);
    for (const second of [1, 2, 3]) {
      clock.set(at(`2026-01-10T00:00:0${second}.000Z`));
      await engine.fireDueSlots();
    }
    expect(slots.map((s) => s.outcome)).toEqual(['fired', 'fired', 'fired']);
  });

  it('hands parameters to the handler, stores what a succeeded run sets, and lets run-now override them once', async () => {
    const seen: Record<string, unknown>[] = [];
    const sync = defineIntegration({
      id: 'stock-sync',
      mode: 'scheduled',
      cron: '* * * * * *',
      parameters: { lastRunAt: null as string | null, limit: 100, dryRun: false },
      retry: { maxAttempts: 1 },
      handler(ctx) {
        seen.push({ ...ctx.parameters, scheduledFor: ctx.scheduledFor });
        const limit: number = ctx.parameters.limit;
        ctx.setParameters({ lastRunAt: `run-${seen.length}` });
        if (ctx.parameters.dryRun) throw new NonRetryableError('dry run: nothing is kept');
        return { limit, watermark: ctx.parameters.lastRunAt };
      },
    });
    const clock = manualClock(T0);
    const { engine } = await startEngine(storeFile(), [sync], clock);
    const waitAll = async () => {
      const items = (await engine.listInstances({ limit: 10 })).items;
      for (const item of items) await waitForStatus(engine, item.id);
    };

    clock.set(at('2026-01-10T00:00:01.000Z'));
    await engine.fireDueSlots();
    await waitAll();
    const first = (await engine.listInstances({ limit: 1 })).items[0]!;
    expect(first.output).toEqual({ limit: 100, watermark: 'run-1' });

    await expect(engine.runNow('stock-sync', { parameters: { limits: 5 } })).rejects.toMatchObject({
      code: 'invalid-input',
    });
    await expect(engine.runNow('stock-sync', { parameters: { limit: 'many' } })).rejects.toMatchObject({
      code: 'invalid-input',
    });
    const now = await engine.runNow('stock-sync', { parameters: { limit: '5' } });
    await waitForStatus(engine, now.instanceId);
    const dry = await engine.runNow('stock-sync', { parameters: { dryRun: 'true' } });
    expect((await waitForStatus(engine, dry.instanceId)).status).toBe('failed');

    clock.set(at('2026-01-10T00:00:02.000Z'));
    await engine.fireDueSlots();
    await waitAll();
    expect(seen).toEqual([
      { lastRunAt: null, limit: 100, dryRun: false, scheduledFor: at('2026-01-10T00:00:01Z') },
      { lastRunAt: 'run-1', limit: 5, dryRun: false, scheduledFor: null },
      { lastRunAt: 'run-2', limit: 100, dryRun: true, scheduledFor: null },
      // run-now's limit was for its instance only; the failed dry run stored nothing.
      { lastRunAt: 'run-2', limit: 100, dryRun: false, scheduledFor: at('2026-01-10T00:00:02Z') },
    ]);
    expect((await engine.getSchedule('stock-sync')).parameters).toEqual({
      lastRunAt: 'run-4',
      limit: 100,
      dryRun: false,
    });
    expect(await engine.updateParameters('stock-sync', { limit: '7' })).toEqual({
      lastRunAt: 'run-4',
      limit: 7,
      dryRun: false,
    });
  });

  it('lets a scheduled handler take its context apart (const { parameters, setParameters, step } = ctx)', async () => {
    const watermark = defineIntegration({
      id: 'watermark',
      mode: 'scheduled',
      cron: '* * * * * *',
      parameters: { lastRunAt: null as string | null },
      retry: { maxAttempts: 1 },
      async handler(ctx) {
        const { parameters, setParameters, scheduledFor, step, attempt } = ctx;
        const stamp = await step('stamp', () => `slot-${scheduledFor}`);
        setParameters({ lastRunAt: stamp });
        return { before: parameters.lastRunAt, after: ctx.parameters.lastRunAt, attempt };
      },
    });
    const clock = manualClock(T0);
    const { engine } = await startEngine(storeFile(), [watermark], clock);
    clock.set(at('2026-01-10T00:00:01.000Z'));
    await engine.fireDueSlots();
    const [fired] = (await engine.listInstances({ limit: 10 })).items;
    const done = await waitForStatus(engine, fired!.id);
    const stamp = `slot-${at('2026-01-10T00:00:01Z')}`;
    expect(done.output).toEqual({ before: null, after: stamp, attempt: 1 });
    expect((await engine.getSchedule('watermark')).parameters).toEqual({ lastRunAt: stamp });
  });

  it('catchUp last fires the most recent missed slot once after a restart; none fires nothing', async () => {
    const path = storeFile();
    const make = (catchUp: 'last' | 'none') => [
      defineIntegration({ id: 'report', mode: 'scheduled', cron: '* * * * * *', catchUp, handler: () => {} }),
    ];
    const clock = manualClock(T0);
    const first = await startEngine(path, make('last'), clock);
    await first.engine.fireDueSlots();
    expect(first.slots).toEqual([]); // the schedule is new: nothing was missed yet
    clock.set(at('2026-01-10T00:00:01.000Z'));
    await first.engine.fireDueSlots();
    // Let it finish: an instance still active at the restart would make the catch-up slot a skip.
    await waitForStatus(first.engine, first.slots[0]!.instanceId!);
    await first.stop();

    clock.set(at('2026-01-10T00:00:09.400Z')); // slots 2…9 missed while stopped
    const second = await startEngine(path, make('none'), clock);
    await second.engine.fireDueSlots();
    expect(second.slots).toEqual([]);
    await second.stop();

    const third = await startEngine(path, make('last'), clock);
    await third.engine.fireDueSlots();
    expect(third.slots).toEqual([
      expect.objectContaining({ slotAt: at('2026-01-10T00:00:09Z'), outcome: 'fired', catchUp: true }),
    ]);
    await third.stop();
    const fourth = await startEngine(path, make('last'), clock);
    await fourth.engine.fireDueSlots();
    expect(fourth.slots).toEqual([]); // slot 9 was handled: a restart does not fire it again
    const inputs = (await fourth.engine.listInstances({ limit: 10 })).items.map((i) => i.input);
    expect(inputs).toEqual([
      { scheduledFor: at('2026-01-10T00:00:09Z'), parameters: {} },
      { scheduledFor: at('2026-01-10T00:00:01Z'), parameters: {} },
    ]);
  });
});
