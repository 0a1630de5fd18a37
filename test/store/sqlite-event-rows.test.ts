/**
 * The SQLite store writes the activity events one commit makes for one instance in one row
 * (migration 6). Every read must still see each event once, in order, whatever its page size,
 * type filter or cursor: these tests page through rows that hold several events.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineIntegration } from '../../src/define/integration.js';
import type { ActivityEvent } from '../../src/model.js';
import type { SqliteStore } from '../../src/store/sqlite/store.js';
import type { Store } from '../../src/store/store.js';
import { testEngine, waitForStatus } from '../support/engine.js';

const steps = defineIntegration({
  id: 'three-steps',
  mode: 'async',
  async handler(ctx) {
    for (const name of ['a', 'b', 'c']) await ctx.step(name, () => name);
    return 'done';
  },
});

let t: Awaited<ReturnType<typeof testEngine>>;
let all: ActivityEvent[];
const INSTANCES = 12;

/** Every page of the stream from the start, `limit` at a time, until a page comes back empty. */
async function pages(store: Store, limit: number, types?: ActivityEvent['type'][]) {
  const read: ActivityEvent[] = [];
  let after = '0';
  for (let guard = 0; guard < 10_000; guard++) {
    const page = await store.readEventStream({ after, limit, ...(types ? { types } : {}) });
    expect(page.events.length).toBeLessThanOrEqual(limit);
    read.push(...page.events.map(({ cursor: _, ...event }) => event as ActivityEvent));
    if (page.events.length === 0) return read;
    expect(Number(page.cursor)).toBeGreaterThan(Number(after));
    after = page.cursor;
  }
  throw new Error('the stream did not end');
}

beforeAll(async () => {
  t = await testEngine([steps], { storeKind: 'sqlite' });
  const ids: string[] = [];
  for (let i = 0; i < INSTANCES; i++) ids.push((await t.engine.accept('three-steps', { i })).instanceId);
  for (const id of ids) await waitForStatus(t.engine, id);
  all = (await t.store.readEventStream({ after: '0', limit: 10_000 })).events.map(
    ({ cursor: _, ...event }) => event as ActivityEvent,
  );
}, 60_000);
afterAll(() => t.close());

describe('SQLite: several events in one row', () => {
  it('stores fewer rows than events, and reads every event of each instance in its order', async () => {
    const rows = (t.store as SqliteStore).db.prepare('SELECT count(*) AS n FROM events').get() as {
      n: number;
    };
    // Per instance: accepted, started, three steps started and succeeded, succeeded.
    expect(all).toHaveLength(INSTANCES * 9);
    expect(rows.n).toBeLessThan(all.length);
    const ids = all.map((e) => e.id);
    expect([...ids].sort((a, b) => a - b)).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);
    const first = all
      .filter((e) => e.instanceId === all[0]!.instanceId)
      .map((e) => `${e.type}:${e.data.step ?? ''}`);
    expect(first).toEqual([
      'accepted:',
      'started:',
      'step.started:a',
      'step.succeeded:a',
      'step.started:b',
      'step.succeeded:b',
      'step.started:c',
      'step.succeeded:c',
      'succeeded:',
    ]);
  });

  it('pages of any size through the stream give every event once, in the same order', async () => {
    for (const limit of [1, 2, 3, 5, 16, 17]) expect(await pages(t.store, limit)).toEqual(all);
  });

  it('a type filter finds events inside rows and leaves the others out, page by page', async () => {
    const wanted: ActivityEvent['type'][] = ['step.succeeded', 'succeeded'];
    const expected = all.filter((e) => wanted.includes(e.type));
    expect(expected).toHaveLength(INSTANCES * 4);
    for (const limit of [1, 2, 7, 100]) expect(await pages(t.store, limit, wanted)).toEqual(expected);
  });

  it("an instance's events, read after any of its own ids with any limit, continue where they stopped", async () => {
    const id = all[all.length - 1]!.instanceId;
    const mine = all.filter((e) => e.instanceId === id);
    expect(await t.store.getEvents({ instanceId: id, limit: 100 })).toEqual(mine);
    for (const [k, event] of mine.entries()) {
      expect(await t.store.getEvents({ instanceId: id, afterId: event.id, limit: 2 })).toEqual(
        mine.slice(k + 1, k + 3),
      );
    }
  });

  it('the head cursor is past every event, and new events come after it', async () => {
    const head = await t.store.eventStreamHead();
    expect((await t.store.readEventStream({ after: head, limit: 100 })).events).toEqual([]);
    const { instanceId } = await t.engine.accept('three-steps', { i: 'late' });
    await waitForStatus(t.engine, instanceId);
    const next = (await t.store.readEventStream({ after: head, limit: 100 })).events;
    expect(next.map((e) => e.instanceId)).toEqual(Array(9).fill(instanceId));
  });
});
