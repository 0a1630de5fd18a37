/**
 * The Store contract: one suite that every store implementation must pass. A store file calls
 * `storeContract(name, factory)`; the factory returns a fresh, empty store per test.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { uuidv7 } from '../../src/engine/ids.js';
import { emptyCounts } from '../../src/lifecycle/index.js';
import type { AttemptOutcome, NewInstance, Store } from '../../src/store/store.js';

export type StoreFactory = () => Promise<Store>;

const T0 = 1_700_000_000_000;

let counter = 0;
export function newRow(overrides: Partial<NewInstance> = {}): NewInstance {
  counter++;
  return {
    id: uuidv7(),
    integrationId: 'orders',
    mode: 'async',
    status: 'queued',
    inputJson: JSON.stringify({ n: counter }),
    inputHash: null,
    tracking: {},
    orderingKey: null,
    idempotencyKey: null,
    parentId: null,
    createdAt: T0 + counter,
    runAt: T0,
    ...overrides,
  };
}

const claimOf = (owner = 'w1', limit = 10, now = T0 + 1_000, leaseMs = 30_000) => ({
  owner,
  limit,
  leaseMs,
  now,
  integrationIds: ['orders', 'invoices'],
});

export function storeContract(name: string, factory: StoreFactory): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store;
    beforeEach(async () => {
      store = await factory();
    });
    afterEach(async () => {
      await store.close();
    });

    it('answers a ping while open and refuses one once closed', async () => {
      await expect(store.ping()).resolves.toBeUndefined();
      const other = await factory();
      await other.close();
      await expect(other.ping()).rejects.toThrow();
    });

    it('inserts instances with an accepted event and reads them back', async () => {
      const row = newRow({ tracking: { orderId: 'A-1', customer: 'c-9' }, orderingKey: 'k' });
      const [outcome] = await store.insertInstances([row]);
      expect(outcome).toEqual({ id: row.id, created: true, status: 'queued', inputHash: null });
      const instance = await store.getInstance(row.id);
      expect(instance).toMatchObject({
        id: row.id,
        integrationId: 'orders',
        status: 'queued',
        input: JSON.parse(row.inputJson),
        run: 1,
        attempt: 0,
        tracking: { orderId: 'A-1', customer: 'c-9' },
        orderingKey: 'k',
        createdAt: row.createdAt,
      });
      const events = await store.getEvents({ instanceId: row.id, limit: 10 });
      expect(events.map((e) => e.type)).toEqual(['accepted']);
      expect(await store.getInstance('missing')).toBeNull();
    });

    it('records where an operator started an instance in its accepted event, a sync record included', async () => {
      const queued = newRow({ source: 'console' });
      const child = newRow({ source: 'console', parentId: 'p1' });
      const record = newRow({ mode: 'sync', status: 'succeeded', durationMs: 3, source: 'console' });
      const plain = newRow({ mode: 'sync', status: 'succeeded', durationMs: 3 });
      await store.insertInstances([queued, child, record, plain]);
      const accepted = async (id: string) =>
        (await store.getEvents({ instanceId: id, limit: 10 })).map((e) => [e.type, e.data, e.at]);
      expect(await accepted(queued.id)).toEqual([['accepted', { source: 'console' }, queued.createdAt]]);
      expect(await accepted(child.id)).toEqual([
        ['accepted', { parentId: 'p1', source: 'console' }, child.createdAt],
      ]);
      expect(await accepted(record.id)).toEqual([['accepted', { source: 'console' }, record.createdAt]]);
      expect(await accepted(plain.id)).toEqual([]);
    });

    it('stores rows inserted without a disk flush like any other, repeated keys included', async () => {
      const rows = [newRow({ idempotencyKey: 'stat-1' }), newRow()];
      const outcomes = await store.insertInstances(rows, { flush: false });
      expect(outcomes.map((o) => o.created)).toEqual([true, true]);
      const [again] = await store.insertInstances([newRow({ idempotencyKey: 'stat-1' })], { flush: false });
      expect(again).toMatchObject({ id: rows[0]!.id, created: false });
      await store.insertInstances([newRow()]);
      expect(await store.countInstances({})).toBe(3);
      expect(await store.getInstance(rows[1]!.id)).toMatchObject({ status: 'queued' });
    });

    it('returns the existing instance for a repeated idempotency key, per integration', async () => {
      const first = newRow({ idempotencyKey: 'key-1', inputHash: 'h1' });
      const again = newRow({ idempotencyKey: 'key-1', inputHash: 'h2' });
      const other = newRow({ idempotencyKey: 'key-1', integrationId: 'invoices' });
      const outcomes = await store.insertInstances([first, again, other]);
      expect(outcomes[0]).toMatchObject({ id: first.id, created: true });
      expect(outcomes[1]).toEqual({ id: first.id, created: false, status: 'queued', inputHash: 'h1' });
      expect(outcomes[2]).toMatchObject({ id: other.id, created: true });
      expect(await store.countInstances({})).toBe(2);
      expect(await store.getEvents({ limit: 10 })).toHaveLength(2);
    });

    it('tells created rows from repeated keys in a large insert, announcing only the created ones', async () => {
      const earlier = Array.from({ length: 5 }, (_, i) => newRow({ idempotencyKey: `key-${i * 20}` }));
      await store.insertInstances(earlier);
      // 130 rows: every 20th repeats a key stored before, every 20th + 1 repeats a key of this insert.
      const rows = Array.from({ length: 130 }, (_, i) =>
        newRow({ idempotencyKey: i % 20 === 1 ? `key-${i - 1}` : `key-${i}`, announce: i % 2 === 0 }),
      );
      const outcomes = await store.insertInstances(rows);
      const expected = rows.map((row, i) => {
        if (i % 20 === 0 && i < 100) return { id: earlier[i / 20]!.id, created: false };
        if (i % 20 === 1)
          return { id: i <= 100 ? earlier[(i - 1) / 20]!.id : rows[i - 1]!.id, created: false };
        return { id: row.id, created: true };
      });
      expect(outcomes.map(({ id, created }) => ({ id, created }))).toEqual(expected);
      expect(await store.countInstances({})).toBe(5 + expected.filter((e) => e.created).length);
      const announced = rows.filter((row, i) => expected[i]!.created && row.announce);
      const events = await store.getEvents({ limit: 1_000 });
      expect(events.length).toBe(5 + announced.length);
      expect(events.slice(5).map((e) => e.instanceId)).toEqual(announced.map((row) => row.id));
    });

    it('claims due instances in accept order, up to the limit, for known integrations only', async () => {
      const rows = [
        newRow(),
        newRow(),
        newRow({ integrationId: 'unknown' }),
        newRow({ runAt: T0 + 5_000 }),
        newRow(),
      ];
      await store.insertInstances(rows);
      const claimed = await store.claim(claimOf('w1', 2));
      expect(claimed.map((c) => c.instance.id)).toEqual([rows[0]!.id, rows[1]!.id]);
      for (const c of claimed) {
        expect((await store.getInstance(c.instance.id))!.status).toBe('running');
        expect(c.instance.attempt).toBe(1);
        expect(c.takenOver).toBe(false);
        expect(c.steps).toEqual([]);
      }
      const rest = await store.claim(claimOf('w2', 10));
      expect(rest.map((c) => c.instance.id)).toEqual([rows[4]!.id]);
      expect(await store.claim(claimOf('w2', 10))).toEqual([]);
      expect(await store.nextDueAt(['orders'])).toBe(T0 + 5_000);
      const later = await store.claim(claimOf('w2', 10, T0 + 5_000));
      expect(later.map((c) => c.instance.id)).toEqual([rows[3]!.id]);
    });

    it('claims across integrations in (run_at, accept) order, past the backlog of others', async () => {
      const backlog = Array.from({ length: 30 }, () => newRow({ integrationId: 'elsewhere' }));
      const rows = [
        newRow({ runAt: T0 + 5 }),
        newRow({ integrationId: 'invoices', runAt: T0 + 3 }),
        newRow({ runAt: T0 + 2 }),
        newRow({ integrationId: 'invoices', runAt: T0 + 1 }),
        newRow({ integrationId: 'invoices', runAt: T0 + 9_000 }),
        newRow({ runAt: T0 + 7_000 }),
      ];
      await store.insertInstances([...backlog, ...rows]);
      // The three due first (a claim hands them out in accept order).
      const first = await store.claim(claimOf('w1', 3));
      expect(first.map((c) => c.instance.id)).toEqual([rows[1]!.id, rows[2]!.id, rows[3]!.id]);
      const second = await store.claim(claimOf('w1', 3));
      expect(second.map((c) => c.instance.id)).toEqual([rows[0]!.id]);
      expect(await store.nextDueAt(['orders', 'invoices'])).toBe(T0 + 7_000);
      expect(await store.nextDueAt(['invoices'])).toBe(T0 + 9_000);
      expect(await store.nextDueAt(['elsewhere'])).toBe(T0);
      expect(await store.countInstances({ status: 'queued' })).toBe(32);
    });

    it('never hands one instance to two concurrent claimers', async () => {
      await store.insertInstances(Array.from({ length: 50 }, () => newRow()));
      const results = await Promise.all(
        Array.from({ length: 5 }, (_, i) => store.claim(claimOf(`w${i}`, 20))),
      );
      const ids = results.flat().map((c) => c.instance.id);
      expect(ids).toHaveLength(50);
      expect(new Set(ids).size).toBe(50);
    });

    it('lets only the head of an ordering key run; a failed head holds the key until cancelled', async () => {
      const a = newRow({ orderingKey: 'emp-1' });
      const b = newRow({ orderingKey: 'emp-1' });
      const c = newRow({ orderingKey: 'emp-2' });
      await store.insertInstances([a, b, c]);
      const first = await store.claim(claimOf());
      expect(first.map((x) => x.instance.id).sort()).toEqual([a.id, c.id].sort());
      expect(await store.claim(claimOf())).toEqual([]);
      const headA = first.find((x) => x.instance.id === a.id)!;
      await store.commit({
        steps: [],
        events: [],
        finishes: [
          {
            instanceId: a.id,
            claimToken: headA.claimToken,
            now: T0 + 2_000,
            durationMs: 5,
            events: [],
            outcome: { kind: 'failed', error: { name: 'Error', message: 'boom' } },
          },
        ],
      });
      expect(await store.claim(claimOf('w1', 10, T0 + 3_000))).toEqual([]);
      await store.cancel([a.id], T0 + 4_000);
      const next = await store.claim(claimOf('w1', 10, T0 + 5_000));
      expect(next.map((x) => x.instance.id)).toEqual([b.id]);
    });

    it('keeps a rerun earlier instance of a key waiting while a later one runs', async () => {
      const a = newRow({ orderingKey: 'emp-9' });
      const b = newRow({ orderingKey: 'emp-9' });
      await store.insertInstances([a, b]);
      await store.cancel([a.id], T0 + 1);
      const [running] = await store.claim(claimOf());
      expect(running?.instance.id).toBe(b.id);
      await store.rerun({ ids: [a.id], from: 'start', now: T0 + 2 });
      expect(await store.claim(claimOf('w2', 10, T0 + 3))).toEqual([]);
      await store.commit({
        steps: [],
        events: [],
        finishes: [
          {
            instanceId: b.id,
            claimToken: running!.claimToken,
            now: T0 + 4,
            durationMs: 1,
            events: [],
            outcome: { kind: 'succeeded', outputJson: null },
          },
        ],
      });
      expect((await store.claim(claimOf('w2', 10, T0 + 5))).map((c) => c.instance.id)).toEqual([a.id]);
    });

    it('writes steps and finishes under the claim token, and refuses a stale token', async () => {
      const row = newRow();
      await store.insertInstances([row]);
      const [claimed] = await store.claim(claimOf());
      const token = claimed!.claimToken;
      const step = {
        instanceId: row.id,
        run: 1,
        name: 'reserve',
        position: 0,
        status: 'succeeded' as const,
        output: null,
        error: null,
        attempt: 1,
        startedAt: T0 + 1_000,
        finishedAt: T0 + 1_010,
      };
      const ok = await store.commit({
        events: [],
        finishes: [],
        steps: [
          {
            instanceId: row.id,
            claimToken: token,
            step,
            outputJson: '{"reserved":3}',
            events: [
              {
                instanceId: row.id,
                integrationId: 'orders',
                run: 1,
                type: 'step.succeeded',
                at: T0,
                data: {},
              },
            ],
          },
        ],
      });
      expect(ok.lost).toEqual([]);
      const stale = await store.commit({
        events: [],
        finishes: [],
        steps: [
          {
            instanceId: row.id,
            claimToken: 'not-the-token',
            step: { ...step, name: 'x' },
            outputJson: '1',
            events: [],
          },
        ],
      });
      expect(stale.lost).toEqual([row.id]);
      const steps = await store.getSteps(row.id);
      expect(steps.map((s) => [s.name, s.output, s.seeded])).toEqual([['reserve', { reserved: 3 }, false]]);

      await store.commit({
        steps: [],
        events: [],
        finishes: [
          {
            instanceId: row.id,
            claimToken: token,
            now: T0 + 2_000,
            durationMs: 1_000,
            events: [],
            outcome: { kind: 'succeeded', outputJson: '{"done":true}' },
          },
        ],
      });
      const done = await store.getInstance(row.id);
      expect(done).toMatchObject({
        status: 'succeeded',
        output: { done: true },
        finishedAt: T0 + 2_000,
        durationMs: 1_000,
      });
      const again = await store.commit({
        steps: [],
        events: [],
        finishes: [
          {
            instanceId: row.id,
            claimToken: token,
            now: T0 + 3_000,
            durationMs: 1,
            events: [],
            outcome: { kind: 'failed', error: { name: 'Error', message: 'late' } },
          },
        ],
      });
      expect(again.lost).toEqual([row.id]);
      expect((await store.getInstance(row.id))!.status).toBe('succeeded');
    });

    it('schedules retries, refunds attempts that do not count, and returns memoised steps on the next claim', async () => {
      const row = newRow();
      await store.insertInstances([row]);
      const [c1] = await store.claim(claimOf());
      await store.commit({
        events: [],
        finishes: [
          {
            instanceId: row.id,
            claimToken: c1!.claimToken,
            now: T0 + 1_100,
            durationMs: 100,
            events: [],
            outcome: {
              kind: 'retry',
              error: { name: 'Error', message: 'down' },
              runAt: T0 + 9_000,
              consumesAttempt: true,
            },
          },
        ],
        steps: [
          {
            instanceId: row.id,
            claimToken: c1!.claimToken,
            outputJson: '"a"',
            events: [],
            step: {
              instanceId: row.id,
              run: 1,
              name: 'one',
              position: 0,
              status: 'succeeded',
              output: null,
              error: null,
              attempt: 1,
              startedAt: T0,
              finishedAt: T0,
            },
          },
        ],
      });
      expect(await store.getInstance(row.id)).toMatchObject({
        status: 'retrying',
        attempt: 1,
        runAt: T0 + 9_000,
      });
      expect(await store.claim(claimOf('w1', 10, T0 + 8_999))).toEqual([]);
      const [c2] = await store.claim(claimOf('w1', 10, T0 + 9_000));
      expect(c2!.instance.attempt).toBe(2);
      expect(c2!.steps.map((s) => [s.name, s.output])).toEqual([['one', 'a']]);
      await store.commit({
        events: [],
        steps: [],
        finishes: [
          {
            instanceId: row.id,
            claimToken: c2!.claimToken,
            now: T0 + 9_100,
            durationMs: 100,
            events: [],
            outcome: {
              kind: 'retry',
              error: { name: 'Error', message: 'circuit open' },
              runAt: T0 + 10_000,
              consumesAttempt: false,
            },
          },
        ],
      });
      expect(await store.getInstance(row.id)).toMatchObject({ status: 'retrying', attempt: 1 });
    });

    it('returns memoised steps after an attempt that did not count and after a released lease', async () => {
      const row = newRow();
      await store.insertInstances([row]);
      const stepWrite = (token: string, name: string) => ({
        instanceId: row.id,
        claimToken: token,
        outputJson: `"${name}"`,
        events: [],
        step: {
          instanceId: row.id,
          run: 1,
          name,
          position: 0,
          status: 'succeeded' as const,
          output: null,
          error: null,
          attempt: 1,
          startedAt: T0,
          finishedAt: T0,
        },
      });
      const [c1] = await store.claim(claimOf());
      await store.commit({
        events: [],
        steps: [stepWrite(c1!.claimToken, 'one')],
        finishes: [
          {
            instanceId: row.id,
            claimToken: c1!.claimToken,
            now: T0 + 1_100,
            durationMs: 1,
            events: [],
            outcome: {
              kind: 'retry',
              error: { name: 'Error', message: 'waiting' },
              runAt: T0 + 1_200,
              consumesAttempt: false,
            },
          },
        ],
      });
      const [c2] = await store.claim(claimOf('w1', 10, T0 + 1_200));
      expect(c2!.instance.attempt).toBe(1);
      expect(c2!.steps.map((s) => s.name)).toEqual(['one']);
      await store.commit({ events: [], finishes: [], steps: [stepWrite(c2!.claimToken, 'two')] });
      await store.releaseLeases([{ instanceId: row.id, claimToken: c2!.claimToken }], T0 + 1_300);
      const [c3] = await store.claim(claimOf('w2', 10, T0 + 1_300));
      expect(c3!.instance.attempt).toBe(1);
      expect(c3!.steps.map((s) => s.name).sort()).toEqual(['one', 'two']);
    });

    it('takes over an expired lease and refuses the previous holder', async () => {
      const row = newRow();
      await store.insertInstances([row]);
      const [old] = await store.claim(claimOf('w1', 10, T0, 1_000));
      expect(await store.claim(claimOf('w2', 10, T0 + 999, 1_000))).toEqual([]);
      expect(
        await store.extendLeases([{ instanceId: row.id, claimToken: old!.claimToken }], T0 + 1_500),
      ).toEqual([]);
      expect(await store.claim(claimOf('w2', 10, T0 + 1_400, 1_000))).toEqual([]);
      const [taken] = await store.claim(claimOf('w2', 10, T0 + 1_501, 1_000));
      expect(taken).toMatchObject({ takenOver: true });
      expect(taken!.instance.attempt).toBe(2);
      expect(
        await store.extendLeases([{ instanceId: row.id, claimToken: old!.claimToken }], T0 + 5_000),
      ).toEqual([row.id]);
      const types = (await store.getEvents({ instanceId: row.id, limit: 10 })).map((e) => e.type);
      expect(types).toEqual(['accepted', 'started', 'lease.expired', 'started']);
    });

    it('releases leases at shutdown without using up the attempt', async () => {
      const row = newRow();
      await store.insertInstances([row]);
      const [c] = await store.claim(claimOf());
      await store.releaseLeases([{ instanceId: row.id, claimToken: c!.claimToken }], T0 + 2_000);
      expect(await store.getInstance(row.id)).toMatchObject({ status: 'queued', attempt: 0 });
      const [again] = await store.claim(claimOf('w2', 10, T0 + 2_000));
      expect(again!.instance.attempt).toBe(1);
    });

    it('reruns from the failed step (seeded) or from the start, keeping run history', async () => {
      const row = newRow();
      await store.insertInstances([row]);
      const [c] = await store.claim(claimOf());
      const step = (name: string, status: 'succeeded' | 'failed') => ({
        instanceId: row.id,
        claimToken: c!.claimToken,
        outputJson: status === 'succeeded' ? `"${name}-out"` : null,
        events: [],
        step: {
          instanceId: row.id,
          run: 1,
          name,
          position: name === 'one' ? 0 : 1,
          status,
          output: null,
          error: status === 'failed' ? { name: 'Error', message: 'nope' } : null,
          attempt: 1,
          startedAt: T0,
          finishedAt: T0,
        },
      });
      await store.commit({
        events: [],
        steps: [step('one', 'succeeded'), step('two', 'failed')],
        finishes: [
          {
            instanceId: row.id,
            claimToken: c!.claimToken,
            now: T0 + 2_000,
            durationMs: 5,
            events: [],
            outcome: { kind: 'failed', error: { name: 'Error', message: 'nope' } },
          },
        ],
      });
      const [rerun] = await store.rerun({ ids: [row.id], from: 'failed-step', now: T0 + 3_000 });
      expect(rerun).toEqual({ id: row.id, outcome: 'done', run: 2 });
      expect(await store.getInstance(row.id)).toMatchObject({
        status: 'queued',
        run: 2,
        attempt: 0,
        error: null,
      });
      const seeded = await store.getSteps(row.id, 2);
      expect(seeded.map((s) => [s.name, s.output, s.seeded])).toEqual([['one', 'one-out', true]]);
      const [c2] = await store.claim(claimOf('w1', 10, T0 + 3_000));
      expect(c2!.steps.map((s) => s.name)).toEqual(['one']);
      await store.cancel([row.id], T0 + 3_500);
      const [fromStart] = await store.rerun({
        ids: [row.id],
        from: 'start',
        inputJson: '{"fixed":true}',
        now: T0 + 4_000,
      });
      expect(fromStart).toMatchObject({ outcome: 'done', run: 3 });
      expect(await store.getSteps(row.id, 3)).toEqual([]);
      expect((await store.getInstance(row.id))!.input).toEqual({ fixed: true });
      const runs = await store.getRuns(row.id);
      expect(runs.map((r) => [r.run, r.status, r.from])).toEqual([
        [1, 'failed', null],
        [2, 'cancelled', 'failed-step'],
        [3, 'running', 'start'],
      ]);
      expect(runs[0]!.error?.message).toBe('nope');
      expect(runs[0]!.input).toEqual(JSON.parse(row.inputJson));
    });

    it('refuses to rerun active instances and reports unknown ids', async () => {
      const row = newRow();
      await store.insertInstances([row]);
      const outcomes = await store.rerun({ ids: [row.id, 'nope'], from: 'start', now: T0 });
      expect(outcomes).toEqual([
        { id: row.id, outcome: 'invalid-state', status: 'queued' },
        { id: 'nope', outcome: 'not-found' },
      ]);
      expect(await store.cancel(['nope'], T0)).toEqual([{ id: 'nope', outcome: 'not-found' }]);
    });

    it('reruns by filter exactly the matching instances in a final state', async () => {
      const failedA = newRow({ tracking: { orderId: 'A' } });
      const failedB = newRow({ integrationId: 'invoices' });
      const queued = newRow();
      await store.insertInstances([failedA, failedB, queued]);
      const claimed = await store.claim(claimOf('w1', 2));
      await store.commit({
        steps: [],
        events: [],
        finishes: claimed.map((c) => ({
          instanceId: c.instance.id,
          claimToken: c.claimToken,
          now: T0 + 2_000,
          durationMs: 1,
          events: [],
          outcome: { kind: 'failed' as const, error: { name: 'Error', message: 'x' } },
        })),
      });
      const outcomes = await store.rerun({
        filter: { integrationId: 'orders', status: 'failed' },
        from: 'start',
        now: T0 + 3_000,
      });
      expect(outcomes.map((o) => o.id)).toEqual([failedA.id]);
      expect((await store.getInstance(failedB.id))!.status).toBe('failed');
      expect((await store.getInstance(queued.id))!.run).toBe(1);
    });

    it('cancels a running instance so that its attempt can no longer write', async () => {
      const row = newRow();
      await store.insertInstances([row]);
      const [c] = await store.claim(claimOf());
      const [outcome] = await store.cancel([row.id], T0 + 1_500);
      expect(outcome).toEqual({ id: row.id, outcome: 'done', run: 1 });
      expect(
        await store.extendLeases([{ instanceId: row.id, claimToken: c!.claimToken }], T0 + 9_000),
      ).toEqual([row.id]);
      expect((await store.getInstance(row.id))!.status).toBe('cancelled');
      expect(await store.cancel([row.id], T0 + 1_600)).toEqual([
        { id: row.id, outcome: 'invalid-state', status: 'cancelled' },
      ]);
    });

    it('lists with filters and cursor paging, newest first, without gaps or duplicates', async () => {
      const rows = Array.from({ length: 25 }, (_, i) =>
        newRow({
          integrationId: i % 2 === 0 ? 'orders' : 'invoices',
          tracking: { orderId: `O-${i}`, ...(i === 3 ? { customer: 'O-7' } : {}) },
          parentId: i < 5 ? 'parent-1' : null,
          createdAt: T0 + i * 1_000,
        }),
      );
      await store.insertInstances(rows);
      const seen: string[] = [];
      let cursor: string | null = null;
      do {
        const page: Awaited<ReturnType<Store['listInstances']>> = await store.listInstances({
          limit: 10,
          cursor,
        });
        seen.push(...page.items.map((i) => i.id));
        cursor = page.nextCursor;
      } while (cursor);
      expect(seen).toEqual(rows.map((r) => r.id).reverse());
      const orders = await store.listInstances({ limit: 100, integrationId: 'orders' });
      expect(orders.items).toHaveLength(13);
      const byValue = await store.listInstances({ limit: 100, tracking: 'O-7' });
      expect(byValue.items.map((i) => i.id).sort()).toEqual([rows[3]!.id, rows[7]!.id].sort());
      const byName = await store.listInstances({ limit: 100, tracking: 'orderId=O-7' });
      expect(byName.items.map((i) => i.id)).toEqual([rows[7]!.id]);
      const range = await store.listInstances({
        limit: 100,
        createdAfter: T0 + 10_000,
        createdBefore: T0 + 12_000,
      });
      expect(range.items.map((i) => i.id)).toEqual([rows[11]!.id, rows[10]!.id]);
      expect(await store.countInstances({ parentId: 'parent-1' })).toBe(5);
      expect(await store.countInstances({ status: ['queued', 'failed'], integrationId: ['invoices'] })).toBe(
        12,
      );
      expect(await store.countInstances({ ids: [rows[0]!.id, 'x'] })).toBe(1);
    });

    it('stores finished sync records without making them claimable', async () => {
      const row = newRow({
        mode: 'sync',
        status: 'succeeded',
        outputJson: '{"balance":10}',
        startedAt: T0,
        finishedAt: T0 + 12,
        durationMs: 12,
      });
      await store.insertInstances([row]);
      expect(await store.claim(claimOf())).toEqual([]);
      expect(await store.getInstance(row.id)).toMatchObject({
        mode: 'sync',
        status: 'succeeded',
        durationMs: 12,
      });
      expect(await store.rerun({ ids: [row.id], from: 'start', now: T0 })).toEqual([
        { id: row.id, outcome: 'invalid-state', status: 'succeeded' },
      ]);
    });

    it('computes per-integration statistics over a window, equal to the figures from the raw rows', async () => {
      // 37 finished "check-balance" records with varied durations, 3 of them failed, plus one outside the window.
      const durations = Array.from({ length: 37 }, (_, i) => ((i * 37) % 101) + 1);
      const rows = durations.map((durationMs, i) =>
        newRow({
          integrationId: 'check-balance',
          mode: 'sync',
          status: i % 13 === 0 ? 'failed' : 'succeeded',
          error:
            i % 13 === 0
              ? {
                  name: 'HttpError',
                  message: 'bank down',
                  code: i === 0 ? 'timeout' : 'http-error',
                  ...(i === 0 ? {} : { details: { connection: 'bank', status: 503 } }),
                }
              : null,
          durationMs,
          startedAt: T0,
          finishedAt: T0 + durationMs,
          createdAt: T0 + i,
        }),
      );
      rows.push(
        newRow({
          integrationId: 'check-balance',
          mode: 'sync',
          status: 'succeeded',
          durationMs: 9_999,
          createdAt: T0 + 10_000,
        }),
      );
      rows.push(newRow({ integrationId: 'orders', createdAt: T0 + 5 }));
      await store.insertInstances(rows);
      const stats = await store.integrationStats({ since: T0, until: T0 + 1_000 });
      const balance = stats.find((s) => s.integrationId === 'check-balance')!;
      const sorted = [...durations].sort((a, b) => a - b);
      const nearestRank = (p: number) => sorted[Math.ceil(p * sorted.length) - 1];
      expect(balance).toEqual({
        integrationId: 'check-balance',
        mode: 'sync',
        total: 37,
        succeeded: 34,
        failed: 3,
        cancelled: 0,
        active: 0,
        p50: nearestRank(0.5),
        p95: nearestRank(0.95),
        p99: nearestRank(0.99),
        retriesPerInstance: 0,
        errors: [
          { code: 'http-error', count: 2 },
          { code: 'timeout', count: 1 },
        ],
        failuresByConnection: { bank: 2 },
      });
      const orders = stats.find((s) => s.integrationId === 'orders')!;
      expect(orders).toMatchObject({ total: 1, active: 1, p50: null, p95: null, errors: [] });
    });

    it('reads the overview: per-bucket figures of the window, unfinished work by status, the oldest unfinished', async () => {
      const MIN = 60_000;
      const since = T0;
      const until = T0 + 3 * MIN;
      // Finished records in buckets 0 and 2 (none in 1), and two just outside the window.
      const finished = [
        ...Array.from({ length: 27 }, (_, i) => ({
          at: since + i * 1_000,
          ms: ((i * 37) % 101) + 1,
          fail: i % 9 === 0,
        })),
        ...Array.from({ length: 3 }, (_, i) => ({ at: since + 2 * MIN + i, ms: 500 - i, fail: i === 1 })),
        { at: since - 1, ms: 7, fail: false },
        { at: until, ms: 7, fail: false },
      ];
      const rows = finished.map(({ at, ms, fail }) =>
        newRow({
          integrationId: 'check-balance',
          mode: 'sync',
          status: fail ? 'failed' : 'succeeded',
          error: fail ? { name: 'Error', message: 'down' } : null,
          durationMs: ms,
          startedAt: at,
          finishedAt: at + ms,
          createdAt: at,
        }),
      );
      // Unfinished work accepted before the window, and one queued for later inside it.
      const active = Array.from({ length: 5 }, (_, i) =>
        newRow({ createdAt: since - 50_000 + i, runAt: i === 4 ? T0 + 5_000 : T0 }),
      );
      const later = newRow({ createdAt: since + 2 * MIN + 10, runAt: T0 + 10 * MIN });
      await store.insertInstances([...rows, ...active, later]);
      const claimed = await store.claim(claimOf('w1', 3));
      expect(claimed.map((c) => c.instance.id)).toEqual(active.slice(0, 3).map((r) => r.id));
      const end = (c: (typeof claimed)[number], outcome: AttemptOutcome) => ({
        instanceId: c.instance.id,
        claimToken: c.claimToken,
        now: T0 + 1_500,
        durationMs: null,
        events: [],
        outcome,
      });
      await store.commit({
        steps: [],
        events: [],
        finishes: [
          end(claimed[1]!, {
            kind: 'retry',
            error: { name: 'Error', message: 'down' },
            runAt: T0 + 9_000,
            consumesAttempt: true,
          }),
          end(claimed[2]!, {
            kind: 'wait',
            wait: {
              name: 'nap',
              kind: 'sleep',
              event: null,
              matchKey: null,
              matchShape: null,
              expiresAt: T0 + 50_000,
              lookBackFrom: null,
              createdAt: T0 + 1_500,
            },
          }),
        ],
      });
      const figures = await store.overview({ since, until, bucketMs: MIN, now: T0 + 2_000 });
      const inWindow = finished.filter((f) => f.at >= since && f.at < until);
      const expected = [0, 2].map((bucket) => {
        const mine = inWindow.filter((f) => Math.floor((f.at - since) / MIN) === bucket);
        const sorted = mine.map((f) => f.ms).sort((a, b) => a - b);
        return {
          start: since + bucket * MIN,
          accepted: mine.length + (bucket === 2 ? 1 : 0),
          succeeded: mine.filter((f) => !f.fail).length,
          failed: mine.filter((f) => f.fail).length,
          p95: sorted[Math.ceil(0.95 * sorted.length) - 1],
        };
      });
      expect(figures).toEqual({
        buckets: expected,
        backlog: 1,
        queued: 3,
        running: 1,
        retrying: 1,
        waiting: 1,
        oldestUnfinished: {
          id: active[0]!.id,
          integrationId: 'orders',
          status: 'running',
          since: since - 50_000,
        },
      });
      // The figures agree with a count of the instances created in each bucket.
      for (const bucket of figures.buckets) {
        const count = await store.countInstances({
          createdAfter: bucket.start,
          createdBefore: bucket.start + MIN,
        });
        expect(bucket.accepted).toBe(count);
      }
      const empty = await store.overview({ since: 0, until: 1, bucketMs: MIN, now: T0 + 2_000 });
      expect(empty.buckets).toEqual([]);
    });

    it('purges succeeded and cancelled instances finished before the cutoff, failed sync records by their own', async () => {
      const old = newRow({ mode: 'sync', status: 'succeeded', finishedAt: T0, durationMs: 1 });
      const recent = newRow({ mode: 'sync', status: 'succeeded', finishedAt: T0 + 10_000, durationMs: 1 });
      const failed = newRow({
        mode: 'sync',
        status: 'failed',
        finishedAt: T0,
        durationMs: 1,
        error: { name: 'E', message: 'x' },
      });
      const cancelled = newRow();
      const running = newRow();
      await store.insertInstances([old, recent, failed, cancelled, running]);
      await store.cancel([cancelled.id], T0 + 1);
      expect(await store.purge({ finishedBefore: T0 + 5_000, limit: 100 })).toBe(2);
      expect(await store.getInstance(old.id)).toBeNull();
      expect(await store.getInstance(cancelled.id)).toBeNull();
      expect(await store.getEvents({ instanceId: cancelled.id, limit: 10 })).toEqual([]);
      for (const kept of [recent, failed, running]) expect(await store.getInstance(kept.id)).not.toBeNull();
      expect(await store.purge({ finishedBefore: T0 + 5_000, limit: 100 })).toBe(0);
      // Failed sync records go with their own cutoff; queued work never does.
      expect(await store.purge({ finishedBefore: 0, failedSyncBefore: T0 + 5_000, limit: 100 })).toBe(1);
      expect(await store.getInstance(failed.id)).toBeNull();
      expect(await store.purge({ finishedBefore: 0, failedBefore: T0 + 5_000, limit: 100 })).toBe(0);
      expect(await store.getInstance(running.id)).not.toBeNull();
    });

    it('streams events in a stable order with filters, each exactly once across reads', async () => {
      const head = await store.eventStreamHead();
      const rows = Array.from({ length: 30 }, (_, i) =>
        newRow({ integrationId: i % 2 ? 'orders' : 'invoices', tracking: { orderId: `S-${i % 3}` } }),
      );
      // Concurrent writers: the stream must still deliver every event once, in one order.
      await Promise.all(rows.map((row) => store.insertInstances([row])));
      const seen: string[] = [];
      let cursor = head;
      for (let i = 0; i < 20; i++) {
        const page = await store.readEventStream({ after: cursor, limit: 7 });
        seen.push(...page.events.map((e) => e.instanceId));
        cursor = page.cursor;
        if (page.events.length === 0) break;
      }
      expect(seen.sort()).toEqual(rows.map((r) => r.id).sort());
      const again = await store.readEventStream({ after: cursor, limit: 100 });
      expect(again.events).toEqual([]);
      await store.insertInstances([newRow({ integrationId: 'orders', tracking: { orderId: 'S-1' } })]);
      const next = await store.readEventStream({ after: again.cursor, limit: 100 });
      expect(next.events).toHaveLength(1);
      const filtered = await store.readEventStream({
        after: head,
        limit: 100,
        integrationId: 'orders',
        tracking: 'orderId=S-1',
      });
      expect(filtered.events.length).toBe(rows.filter((_row, i) => i % 2 === 1 && i % 3 === 1).length + 1);
      expect((await store.readEventStream({ after: head, limit: 100, types: ['cancelled'] })).events).toEqual(
        [],
      );
      const fromCursor = await store.readEventStream({
        after: filtered.events[0]!.cursor,
        limit: 100,
        integrationId: 'orders',
        tracking: 'orderId=S-1',
      });
      expect(fromCursor.events.map((e) => e.cursor)).toEqual(filtered.events.slice(1).map((e) => e.cursor));
    });

    it('fires each slot once, also for concurrent fires, and never a slot older than the latest', async () => {
      const first = await store.ensureSchedule('nightly', T0);
      expect(first).toEqual({
        integrationId: 'nightly',
        parameters: {},
        createdAt: T0,
        updatedAt: T0,
        lastSlotAt: null,
      });
      expect((await store.ensureSchedule('nightly', T0 + 500)).createdAt).toBe(T0);
      const fire = (slotAt: number, overlap: 'skip' | 'queue' = 'queue') => {
        const instance = newRow({ integrationId: 'nightly', mode: 'scheduled' });
        return store.fireSlot({ integrationId: 'nightly', slotAt, overlap, instance, now: slotAt + 3 });
      };
      const a = await fire(T0 + 1_000);
      expect(a).toMatchObject({ outcome: 'fired' });
      expect(await fire(T0 + 1_000)).toEqual({ outcome: 'taken' });
      const racing = await Promise.all([fire(T0 + 2_000), fire(T0 + 2_000), fire(T0 + 2_000)]);
      expect(racing.filter((o) => o.outcome === 'fired')).toHaveLength(1);
      expect(racing.filter((o) => o.outcome === 'taken')).toHaveLength(2);
      expect(await fire(T0 + 1_500)).toEqual({ outcome: 'taken' });
      expect(await store.countInstances({ integrationId: 'nightly' })).toBe(2);
      const firedId = a.outcome === 'fired' ? a.instanceId : '';
      expect((await store.getEvents({ instanceId: firedId, limit: 5 })).map((e) => e.type)).toEqual([
        'accepted',
      ]);
      const slots = await store.listSlots('nightly', 10);
      expect(slots.map((s) => [s.slotAt, s.outcome, s.at])).toEqual([
        [T0 + 2_000, 'fired', T0 + 2_003],
        [T0 + 1_000, 'fired', T0 + 1_003],
      ]);
      expect(slots[1]!.instanceId).toBe(firedId);
      expect((await store.getSchedule('nightly'))!.lastSlotAt).toBe(T0 + 2_000);
      expect(await store.getSchedule('other')).toBeNull();
    });

    it('skips a slot while an instance of the schedule is active (overlap skip), queues with overlap queue', async () => {
      const fire = (slotAt: number, overlap: 'skip' | 'queue') =>
        store.fireSlot({
          integrationId: 'orders',
          slotAt,
          overlap,
          instance: newRow({ mode: 'scheduled' }),
          now: slotAt,
        });
      // An async instance of another integration, and children, do not count as the schedule's.
      await store.insertInstances([newRow({ integrationId: 'invoices', mode: 'async' })]);
      const first = await fire(T0 + 1_000, 'skip');
      expect(first.outcome).toBe('fired');
      const firstId = first.outcome === 'fired' ? first.instanceId : '';
      expect(await fire(T0 + 2_000, 'skip')).toEqual({ outcome: 'skipped', activeInstanceId: firstId });
      const [claimed] = await store.claim({ ...claimOf(), integrationIds: ['orders'] });
      expect(await fire(T0 + 3_000, 'skip')).toEqual({ outcome: 'skipped', activeInstanceId: firstId });
      const queued = await fire(T0 + 4_000, 'queue');
      expect(queued.outcome).toBe('fired');
      expect(await store.countInstances({ integrationId: 'orders' })).toBe(2);
      await store.cancel([queued.outcome === 'fired' ? queued.instanceId : ''], T0 + 4_500);
      await store.commit({
        steps: [],
        events: [],
        finishes: [
          {
            instanceId: firstId,
            claimToken: claimed!.claimToken,
            now: T0 + 4_600,
            durationMs: 1,
            events: [],
            outcome: { kind: 'succeeded', outputJson: null },
          },
        ],
      });
      expect((await fire(T0 + 5_000, 'skip')).outcome).toBe('fired');
      const slots = await store.listSlots('orders', 10);
      expect(slots.map((s) => s.outcome)).toEqual(['fired', 'fired', 'skipped', 'skipped', 'fired']);
      expect(slots[2]!.instanceId).toBe(firstId);
    });

    it('stores parameters set by a succeeded attempt with its finish, never by a failed or stale one', async () => {
      const rows = [newRow({ mode: 'scheduled' }), newRow({ mode: 'scheduled' })];
      await store.insertInstances(rows);
      const [ok, bad] = await store.claim({ ...claimOf(), integrationIds: ['orders'] });
      const finish = (
        c: typeof ok,
        kind: 'succeeded' | 'failed',
        patch: Record<string, unknown>,
        token = c!.claimToken,
      ) => ({
        instanceId: c!.instance.id,
        claimToken: token,
        now: T0 + 2_000,
        durationMs: 1,
        events: [],
        outcome:
          kind === 'succeeded'
            ? ({ kind, outputJson: null } as const)
            : ({ kind, error: { name: 'Error', message: 'x' } } as const),
        parameters: { integrationId: 'orders', patchJson: JSON.stringify(patch) },
      });
      await store.updateParameters('orders', '{"limit":5,"region":"north"}', T0 + 1_000);
      await store.commit({ steps: [], events: [], finishes: [finish(bad, 'failed', { limit: 99 })] });
      expect((await store.getSchedule('orders'))!.parameters).toEqual({ limit: 5, region: 'north' });
      const stale = await store.commit({
        steps: [],
        events: [],
        finishes: [finish(ok, 'succeeded', { limit: 77 }, 'stale-token')],
      });
      expect(stale.lost).toEqual([ok!.instance.id]);
      expect((await store.getSchedule('orders'))!.parameters).toEqual({ limit: 5, region: 'north' });
      await store.commit({
        steps: [],
        events: [],
        finishes: [finish(ok, 'succeeded', { lastRunAt: '2026-11-24', limit: null })],
      });
      const state = await store.getSchedule('orders');
      expect(state!.parameters).toEqual({ limit: null, region: 'north', lastRunAt: '2026-11-24' });
      expect(state!.updatedAt).toBe(T0 + 2_000);
    });

    it('counts children by status', async () => {
      const kids = [newRow({ parentId: 'p1' }), newRow({ parentId: 'p1' }), newRow({ parentId: 'p1' })];
      await store.insertInstances([...kids, newRow({ parentId: 'p2' }), newRow()]);
      const claimed = await store.claim(claimOf('w1', 2));
      await store.commit({
        steps: [],
        events: [],
        finishes: [
          {
            instanceId: claimed[0]!.instance.id,
            claimToken: claimed[0]!.claimToken,
            now: T0 + 2_000,
            durationMs: 1,
            events: [],
            outcome: { kind: 'failed', error: { name: 'Error', message: 'x' } },
          },
        ],
      });
      // Every other status of the lifecycle counts zero.
      expect(await store.countChildren('p1')).toEqual({
        ...emptyCounts(),
        total: 3,
        queued: 1,
        running: 1,
        failed: 1,
      });
      expect((await store.countChildren('nobody')).total).toBe(0);
    });

    it('pages events by id', async () => {
      await store.insertInstances(Array.from({ length: 7 }, () => newRow()));
      const first = await store.getEvents({ limit: 4 });
      const rest = await store.getEvents({ limit: 10, afterId: first[first.length - 1]!.id });
      expect(first).toHaveLength(4);
      expect(rest).toHaveLength(3);
      const ids = [...first, ...rest].map((e) => e.id);
      expect(ids).toEqual([...ids].sort((a, b) => a - b));
    });
  });
}
