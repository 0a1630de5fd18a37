/**
 * Acceptance: two engine processes on one SQLite file (three on one PostgreSQL database) run the
 * same every-second schedule. Each
 * slot fires once (the other process finds it taken), overlap skip holds across processes, the
 * parameter each run increments persists, and after both stop, a restart with catchUp 'last'
 * fires exactly one missed slot.
 */
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, inject, it } from 'vitest';
import type { SlotEvent } from '../../src/engine/scheduler.js';
import { openStore } from '../../src/store/open.js';
import '../support/provided.js';
import { tempDir } from '../support/tmp.js';
import { waitFor } from '../support/wait.js';
import { startScript } from '../support/worker-process.js';

const WORKER = join(import.meta.dirname, '../fixtures/schedule-worker.ts');
const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
});

type Seen = SlotEvent & { pid: number };

function startWorker(db: string) {
  const worker = startScript(WORKER, [db]);
  children.push(worker.child);
  return {
    ...worker,
    /** Every slot this process handled, as it printed them. */
    get slots(): Seen[] {
      return worker.lines.filter((l) => l.startsWith('slot ')).map((l) => JSON.parse(l.slice(5)) as Seen);
    },
  };
}

describe.each([
  ['sqlite', 2],
  ['postgres', 3],
] as const)('schedules across processes (%s store, %i processes)', (kind, processes) => {
  it('fire once per slot, keep overlap skip and parameters, and catch up one missed slot', async () => {
    const dir = tempDir('tandem-sched-procs-');
    try {
      const db =
        kind === 'sqlite'
          ? join(dir.path, 'tandem.db')
          : `${inject('postgresUrl')}?schema=sched_${process.pid}`;
      const workers = Array.from({ length: processes }, () => startWorker(db));
      await waitFor(() => workers.every((w) => w.lines.includes('ready')), 'every process');
      await waitFor(
        () => new Set(workers.flatMap((w) => w.slots).map((s) => s.slotAt)).size >= 6,
        'six slots handled',
        30_000,
      );
      for (const w of workers) w.child.kill('SIGTERM');
      await Promise.all(workers.map((w) => w.exited));

      const all = workers.flatMap((w) => w.slots);
      const bySlot = new Map<number, Seen[]>();
      for (const s of all) bySlot.set(s.slotAt, [...(bySlot.get(s.slotAt) ?? []), s]);
      // Exactly one process fired or skipped each slot; the other, if it tried, found it taken.
      for (const [, seen] of bySlot) {
        expect(seen.filter((s) => s.outcome === 'fired' || s.outcome === 'skipped')).toHaveLength(1);
        expect(seen.filter((s) => s.outcome === 'error')).toEqual([]);
      }
      expect(all.some((s) => s.outcome === 'taken')).toBe(true); // the two really raced
      expect(all.some((s) => s.outcome === 'skipped')).toBe(true); // 1.2 s runs, 1 s slots

      const store = await openStore(kind === 'sqlite' ? `sqlite:${db}` : db);
      try {
        const instances = (await store.listInstances({ limit: 100, integrationId: 'tick' })).items;
        const fired = all.filter((s) => s.outcome === 'fired');
        expect(instances).toHaveLength(fired.length);
        const slotsOfInstances = instances.map((i) => (i.input as { scheduledFor: number }).scheduledFor);
        expect(new Set(slotsOfInstances).size).toBe(instances.length);
        // Overlap skip: no two instances of the schedule ran at the same time, whichever process ran them.
        const runs = instances
          .filter((i) => i.status === 'succeeded')
          .map((i) => [i.startedAt!, i.finishedAt!] as const)
          .sort((x, y) => x[0] - y[0]);
        for (let i = 1; i < runs.length; i++) expect(runs[i]![0]).toBeGreaterThanOrEqual(runs[i - 1]![1]);
        // Each run added one to the stored parameter, across both processes.
        expect(runs.length).toBeGreaterThanOrEqual(2);
        expect((await store.getSchedule('tick'))!.parameters).toEqual({ runs: runs.length });
        expect(instances.every((i) => i.status === 'succeeded')).toBe(true); // graceful stop let them finish
        const lastSlot = Math.max(...bySlot.keys());

        // Stopped for over two seconds: slots were missed. A restart with catchUp 'last' fires one.
        await new Promise((resolve) => setTimeout(resolve, 2_500));
        const c = startWorker(db);
        await waitFor(() => c.slots.length >= 1, 'the restarted process to handle a slot');
        const restartedAt = Date.now();
        c.child.kill('SIGTERM');
        await c.exited;
        const catchUps = c.slots.filter((s) => s.catchUp);
        expect(catchUps).toHaveLength(1);
        expect(catchUps[0]!.outcome).toBe('fired');
        expect(catchUps[0]!.slotAt).toBeGreaterThan(lastSlot + 2_000);
        expect(catchUps[0]!.slotAt).toBeLessThan(restartedAt);
        expect(c.slots[0]).toEqual(catchUps[0]);
      } finally {
        await store.close();
      }
    } finally {
      dir.cleanup();
    }
  }, 90_000);
});
