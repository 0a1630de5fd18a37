/**
 * Durable waits on PostgreSQL when several processes meet at the same moment. Two stores on one
 * schema stand for two Tandem processes: each has its own pool, so their transactions run side by
 * side under READ COMMITTED, where a wait armed while a matching event is being sent would be missed
 * by both unless they are serialised (an advisory lock per event name). Callbacks and duplicate
 * event ids race the same way.
 */
import '../support/provided.js';
import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { activity, NEVER } from '../../src/lifecycle/index.js';
import { PostgresStore } from '../../src/store/postgres/store.js';
import { WAIT_SQL } from '../../src/store/postgres/waits.js';
import type { ClaimedInstance, NewWait, Store, WorkBatchResult } from '../../src/store/store.js';
import { matchKey, matchShape } from '../../src/waits/match.js';
import { newRow } from './contract.js';

const T0 = 1_700_000_000_000;
const url = inject('postgresUrl');
let schemas = 0;

/** Two stores on one new schema, as two processes would open it. */
async function twoProcesses(): Promise<[PostgresStore, PostgresStore]> {
  const schema = `waits_${process.pid}_${++schemas}`;
  const a = await PostgresStore.open({ url, schema });
  const b = await PostgresStore.open({ url, schema });
  return [a, b];
}

const eventWait = (name: string, event: string, key: string, createdAt: number): NewWait => ({
  name,
  kind: 'event',
  event,
  matchKey: matchKey({ orderId: key }),
  matchShape: matchShape({ orderId: key }),
  expiresAt: null,
  lookBackFrom: createdAt - 60_000,
  createdAt,
});

const callbackWait = (name: string, createdAt: number): NewWait => ({
  name,
  kind: 'callback',
  event: null,
  matchKey: null,
  matchShape: null,
  expiresAt: null,
  lookBackFrom: null,
  createdAt,
});

async function claimAll(store: Store, ids: string[], now: number): Promise<ClaimedInstance[]> {
  const claimed = await store.claim({
    owner: 'w',
    limit: ids.length,
    leaseMs: 60_000,
    now,
    integrationIds: ['orders'],
  });
  expect(claimed.map((c) => c.instance.id).sort()).toEqual([...ids].sort());
  return claimed;
}

function finishWait(
  store: Store,
  claimed: ClaimedInstance,
  wait: NewWait,
  now: number,
): Promise<WorkBatchResult> {
  const { instance } = claimed;
  const head = { instanceId: instance.id, integrationId: instance.integrationId, run: instance.run, at: now };
  return store.commit({
    steps: [],
    events: [],
    finishes: [
      {
        instanceId: instance.id,
        claimToken: claimed.claimToken,
        now,
        durationMs: null,
        events: [
          activity('wait.started', head, {
            step: wait.name,
            kind: wait.kind,
            until: wait.expiresAt,
            ...(wait.event === null ? {} : { event: wait.event }),
            attemptMs: 1,
          }),
        ],
        outcome: { kind: 'wait', wait },
      },
    ],
  });
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Counts of `wait.resumed` events per instance. */
async function resumedEvents(store: Store, id: string): Promise<number> {
  return (await store.getEvents({ instanceId: id, limit: 100 })).filter((e) => e.type === 'wait.resumed')
    .length;
}

describe('durable waits on PostgreSQL, two processes at the same moment', () => {
  let a: PostgresStore;
  let b: PostgresStore;
  // A schema per test: the instances a test leaves claimed are none of the next one's business.
  beforeEach(async () => {
    [a, b] = await twoProcesses();
  });
  afterEach(async () => {
    await a.close();
    await b.close();
  });

  it('loses no wake-up: an event sent while another process arms the wait resumes it, every round', async () => {
    const rounds = 30;
    const perRound = 8;
    let now = T0;
    for (let round = 0; round < rounds; round++) {
      now += 1_000;
      const rows = Array.from({ length: perRound }, () => newRow({ createdAt: now, runAt: now }));
      await a.insertInstances(rows);
      const claimed = await claimAll(
        b,
        rows.map((r) => r.id),
        now,
      );
      const at = now + 1;
      // Per instance, process b commits its wait finish while process a sends the event it waits
      // for; one side starts a little later in some rounds, so that their statements interleave.
      const outcomes = await Promise.all(
        claimed.flatMap((c, i) => {
          const key = `${round}-${i}`;
          const skew = (round + i) % 3;
          return [
            pause(skew === 1 ? 1 : 0).then(() =>
              finishWait(b, c, eventWait('paid', 'order.paid', key, at), at),
            ),
            pause(skew === 2 ? 1 : 0).then(() =>
              a.sendEvent(
                {
                  name: 'order.paid',
                  id: null,
                  payloadJson: JSON.stringify({ orderId: key }),
                  receivedAt: at,
                },
                at,
              ),
            ),
          ];
        }),
      );
      for (const outcome of outcomes) if ('lost' in outcome) expect(outcome.lost).toEqual([]);
      for (const c of claimed) {
        const id = c.instance.id;
        const [wait] = await a.getWaits(id);
        expect({ round, id, resolution: wait?.resolution }).toEqual({ round, id, resolution: 'event' });
        expect({ round, id, status: (await a.getInstance(id))?.status }).toEqual({
          round,
          id,
          status: 'queued',
        });
        expect(await resumedEvents(a, id)).toBe(1);
      }
      // Claimed again, so that the next rounds' claims see only their own instances.
      await claimAll(
        a,
        claimed.map((c) => c.instance.id),
        at + 1,
      );
      now = at + 1;
    }
  });

  it('loses no wake-up when both processes send batches of events of several names while waits are armed', async () => {
    const rounds = 20;
    const perRound = 8;
    const names = ['order.paid', 'order.shipped', 'order.billed'];
    let now = T0;
    for (let round = 0; round < rounds; round++) {
      now += 1_000;
      const rows = Array.from({ length: perRound }, () => newRow({ createdAt: now, runAt: now }));
      await a.insertInstances(rows);
      const claimed = await claimAll(
        b,
        rows.map((r) => r.id),
        now,
      );
      const at = now + 1;
      const waits = claimed.map((c, i) => ({ c, key: `${round}-${i}`, name: names[i % names.length]! }));
      const event = (w: (typeof waits)[number]) => ({
        name: w.name,
        id: `${w.key}-id`,
        payloadJson: JSON.stringify({ orderId: w.key }),
        receivedAt: at,
      });
      // Each process sends half of the events in one batch (names in different orders, each event
      // once more as a duplicate), while process b arms the waits one commit each.
      const half = perRound / 2;
      const fromA = waits.slice(0, half).map(event);
      const fromB = waits.slice(half).reverse().map(event);
      const skew = round % 3;
      const [sentA, sentB, ...finishes] = await Promise.all([
        pause(skew === 1 ? 1 : 0).then(() => a.sendEvents([...fromA, fromB[0]!], at)),
        pause(skew === 2 ? 1 : 0).then(() => b.sendEvents([...fromB, fromA[0]!], at)),
        ...waits.map(({ c, key, name }, i) =>
          pause(i % 2).then(() => finishWait(b, c, eventWait('paid', name, key, at), at)),
        ),
      ]);
      for (const outcome of finishes) expect(outcome.lost).toEqual([]);
      // Every event is stored once: its second sending, by either process, is the duplicate.
      const all = [...sentA!, ...sentB!];
      expect(all.filter((s) => !s.duplicate)).toHaveLength(perRound);
      expect(all.filter((s) => s.duplicate)).toHaveLength(2);
      for (const { c } of waits) {
        const id = c.instance.id;
        const [wait] = await a.getWaits(id);
        expect({ round, id, resolution: wait?.resolution }).toEqual({ round, id, resolution: 'event' });
        expect({ round, id, status: (await a.getInstance(id))?.status }).toEqual({
          round,
          id,
          status: 'queued',
        });
        expect(await resumedEvents(a, id)).toBe(1);
      }
      await claimAll(
        a,
        claimed.map((c) => c.instance.id),
        at + 1,
      );
      now = at + 1;
    }
  });

  /** Accepts an instance, claims it and arms a callback's wait with one token (named after the round). */
  async function armedCallback(store: Store, now: number, tokenId: string) {
    const row = newRow({ createdAt: now, runAt: now });
    await store.insertInstances([row]);
    const [claimed] = await claimAll(store, [row.id], now);
    const wait = callbackWait('shipment', now + 1);
    const armed = await store.armCallback({
      instanceId: row.id,
      claimToken: claimed!.claimToken,
      run: 1,
      wait,
      tokenId,
      tokenHash: createHash('sha256').update(tokenId).digest('hex'),
    });
    expect(armed).not.toBeNull();
    return { id: row.id, claimed: claimed!, wait };
  }

  it('resolves a callback once when two calls on one token arrive together', async () => {
    let now = T0;
    for (let round = 0; round < 20; round++) {
      now += 1_000;
      const tokenId = `tok-${round}`;
      const { id, claimed, wait } = await armedCallback(a, now, tokenId);
      await finishWait(a, claimed, wait, now + 2);
      expect((await a.getInstance(id))?.status).toBe('waiting');
      const [first, second] = await Promise.all([
        a.resolveCallback(tokenId, JSON.stringify({ from: 'a' }), now + 3),
        b.resolveCallback(tokenId, JSON.stringify({ from: 'b' }), now + 3),
      ]);
      const outcomes = [first, second].map((o) => o.outcome).sort();
      expect({ round, outcomes }).toEqual({ round, outcomes: ['resumed', 'used'] });
      const winner = first.outcome === 'resumed' ? 'a' : 'b';
      const [stored] = await a.getWaits(id);
      expect(stored).toMatchObject({ resolution: 'callback', payloadJson: JSON.stringify({ from: winner }) });
      expect(await a.getInstance(id)).toMatchObject({ status: 'queued', runAt: now + 3 });
      expect(await resumedEvents(a, id)).toBe(1);
      await claimAll(b, [id], now + 4);
      now += 4;
    }
  });

  it('wakes an instance whose callback arrives on another process while its wait finish commits', async () => {
    let now = T0;
    for (let round = 0; round < 30; round++) {
      now += 1_000;
      const tokenId = `tok-${round}`;
      const { id, claimed, wait } = await armedCallback(a, now, tokenId);
      const skew = round % 3;
      const [, called] = await Promise.all([
        pause(skew === 1 ? 1 : 0).then(() => finishWait(a, claimed, wait, now + 2)),
        pause(skew === 2 ? 1 : 0).then(() => b.resolveCallback(tokenId, '{"shipped":true}', now + 2)),
      ]);
      expect(called).toEqual({ outcome: 'resumed', instanceId: id });
      expect({ round, status: (await a.getInstance(id))?.status }).toEqual({ round, status: 'queued' });
      expect(await resumedEvents(a, id)).toBe(1);
      await claimAll(b, [id], now + 3);
      now += 3;
    }
  });

  it('stores a duplicate event id sent by two processes at once once, and resumes its wait once', async () => {
    let now = T0;
    for (let round = 0; round < 20; round++) {
      now += 1_000;
      const row = newRow({ createdAt: now, runAt: now });
      await a.insertInstances([row]);
      const [claimed] = await claimAll(a, [row.id], now);
      const key = `dup-${round}`;
      await finishWait(a, claimed!, eventWait('paid', 'order.paid', key, now + 1), now + 1);
      expect((await a.getInstance(row.id))?.status).toBe('waiting');
      const event = {
        name: 'order.paid',
        id: `pay-${round}`,
        payloadJson: JSON.stringify({ orderId: key }),
        receivedAt: now + 2,
      };
      const sent = await Promise.all([a.sendEvent(event, now + 2), b.sendEvent(event, now + 2)]);
      const stored = sent.filter((s) => !s.duplicate);
      expect({ round, stored: stored.length }).toEqual({ round, stored: 1 });
      expect(stored[0]!.resumed).toEqual([row.id]);
      expect(sent.find((s) => s.duplicate)).toEqual({ seq: stored[0]!.seq, duplicate: true, resumed: [] });
      const { rows } = await a.pool.query(
        `SELECT count(*)::int AS n FROM "${a.schema}".business_events WHERE event_id = $1`,
        [event.id],
      );
      expect(rows[0].n).toBe(1);
      expect(await resumedEvents(a, row.id)).toBe(1);
      expect((await a.getInstance(row.id))?.status).toBe('queued');
      await claimAll(b, [row.id], now + 3);
      now += 3;
    }
  });
});

describe('durable waits on PostgreSQL, arming against kept events', () => {
  let store: PostgresStore;
  beforeEach(async () => {
    store = await PostgresStore.open({ url, schema: `waits_${process.pid}_${++schemas}` });
  });
  afterEach(() => store.close());

  const send = (orderId: string, at: number, id: string | null = null) =>
    store.sendEvent({ name: 'order.paid', id, payloadJson: JSON.stringify({ orderId }), receivedAt: at }, at);

  it('arms the waits of one batch together: each takes the first kept event that fits it', async () => {
    const now = T0 + 10_000;
    await send('A', now - 3, 'a-1');
    await send('A', now - 2, 'a-2');
    await send('B', now - 1, 'b-1');
    const rows = Array.from({ length: 4 }, () => newRow({ createdAt: T0, runAt: T0 }));
    await store.insertInstances(rows);
    const claimed = await claimAll(
      store,
      rows.map((r) => r.id),
      now - 10,
    );
    const byId = new Map(claimed.map((c) => [c.instance.id, c]));
    const [a, b, none, sleeper] = rows.map((r) => byId.get(r.id)!);
    const waits: [ClaimedInstance, NewWait][] = [
      [a!, eventWait('paid', 'order.paid', 'A', now)],
      [b!, eventWait('paid', 'order.paid', 'B', now)],
      [none!, eventWait('paid', 'order.paid', 'C', now)],
      [sleeper!, { ...callbackWait('nap', now), kind: 'sleep', expiresAt: now + 60_000 } satisfies NewWait],
    ];
    const { lost } = await store.commit({
      steps: [],
      events: [],
      finishes: waits.map(([c, wait]) => ({
        instanceId: c.instance.id,
        claimToken: c.claimToken,
        now,
        durationMs: null,
        events: [],
        outcome: { kind: 'wait', wait },
      })),
    });
    expect(lost).toEqual([]);
    const state = async (c: ClaimedInstance) => {
      const [wait] = await store.getWaits(c.instance.id);
      const instance = await store.getInstance(c.instance.id);
      return [instance?.status, instance?.runAt, wait?.resolution ?? null, wait?.eventId ?? null];
    };
    expect(await state(a!)).toEqual(['queued', now, 'event', 'a-1']);
    expect(await state(b!)).toEqual(['queued', now, 'event', 'b-1']);
    expect(await state(none!)).toEqual(['waiting', NEVER, null, null]);
    expect(await state(sleeper!)).toEqual(['waiting', now + 60_000, null, null]);
  });

  it('finds a fitting event behind more kept events of the name than one read returns', async () => {
    const now = T0 + 10_000;
    // 1,200 events of the name that fit other waits, received before the one that fits.
    await store.pool.query(
      `INSERT INTO "${store.schema}".business_events (name, event_id, payload, received_at)
       SELECT 'order.paid', NULL, json_build_object('orderId', 'other-' || n)::text, $1 FROM generate_series(1, 1200) AS n`,
      [now - 5],
    );
    await send('mine', now - 1, 'mine-1');
    const row = newRow({ createdAt: T0, runAt: T0 });
    await store.insertInstances([row]);
    const [claimed] = await claimAll(store, [row.id], now - 10);
    expect(
      (await finishWait(store, claimed!, eventWait('paid', 'order.paid', 'mine', now), now)).lost,
    ).toEqual([]);
    expect((await store.getWaits(row.id))[0]).toMatchObject({ resolution: 'event', eventId: 'mine-1' });
    expect((await store.getInstance(row.id))?.status).toBe('queued');
  });
});

describe('durable waits on PostgreSQL, plans', () => {
  it('plans the event look-up, the wake and the kept-event read by key, also against stale statistics', async () => {
    const schema = `waits_plans_${process.pid}`;
    const store = await PostgresStore.open({ url, schema, poolSize: 2 });
    try {
      // Statistics taken on small tables, then many instances waiting they do not know of.
      const waitOn = async (count: number, now: number) => {
        const rows = Array.from({ length: count }, () => newRow({ createdAt: T0, runAt: T0 }));
        await store.insertInstances(rows);
        const claimed = await store.claim({
          owner: 'w',
          limit: count,
          leaseMs: 60_000,
          now,
          integrationIds: ['orders'],
        });
        const { lost } = await store.commit({
          steps: [],
          events: [],
          finishes: claimed.map((c) => ({
            instanceId: c.instance.id,
            claimToken: c.claimToken,
            now,
            durationMs: null,
            events: [],
            outcome: { kind: 'wait', wait: eventWait('paid', 'order.paid', c.instance.id, now) },
          })),
        });
        expect(lost).toEqual([]);
        return claimed;
      };
      const keep = (count: number) =>
        store.pool.query(
          `INSERT INTO "${schema}".business_events (name, event_id, payload, received_at)
           SELECT 'event.' || (n % 50), NULL, json_build_object('orderId', n)::text, $1::bigint + n
           FROM generate_series(1, $2::int) AS n`,
          [T0, count],
        );
      // The waits' statistics are taken before any wait is armed, the others' on a few rows.
      await store.pool.query(`ANALYZE "${schema}".waits`);
      await keep(100);
      const [first] = await waitOn(200, T0 + 1_000);
      await store.pool.query(
        `ANALYZE "${schema}".instance_state, "${schema}".instance_rows, "${schema}".business_events`,
      );
      for (let i = 0; i < 10; i++) await waitOn(500, T0 + 2_000 + i);
      await keep(20_000);
      const id = first!.instance.id;
      const key = matchKey({ orderId: id });
      const now = T0 + 5_000;
      const statements: [string, unknown[]][] = [
        [
          WAIT_SQL.resolveEvents,
          [[1], ['order.paid'], [key], now, 'event', ['{}'], ['e-1'], [1], 'tandem_wake', schema, [null]],
        ],
        [WAIT_SQL.wake, [[id], [1], now, '[]', 'tandem_wake', schema]],
        [WAIT_SQL.keptEvents, [[id], [1], ['order.paid'], [T0], [0]]],
      ];
      const client = await store.pool.connect();
      try {
        for (const mode of ['force_custom_plan', 'force_generic_plan']) {
          await client.query(`SET plan_cache_mode = ${mode}`);
          for (const [sql, params] of statements) {
            const { rows: plan } = await client.query(
              `EXPLAIN (FORMAT JSON) ${sql.replaceAll('{{schema}}', `"${schema}"`)}`,
              params,
            );
            expect({ mode, sql: sql.slice(0, 40), scans: seqScans(plan[0]['QUERY PLAN']) }).toEqual({
              mode,
              sql: sql.slice(0, 40),
              scans: [],
            });
          }
        }
      } finally {
        client.release();
      }
    } finally {
      await store.close();
    }
  });
});

/** The tables an EXPLAIN (FORMAT JSON) plan reads by sequential scan. */
function seqScans(plan: unknown): string[] {
  const found: string[] = [];
  const visit = (node: unknown) => {
    if (Array.isArray(node)) node.forEach(visit);
    else if (node && typeof node === 'object') {
      const record = node as Record<string, unknown>;
      if (record['Node Type'] === 'Seq Scan') found.push(String(record['Relation Name']));
      // An index read whole (its predicate only, no key looked up) is a scan too.
      if (
        (record['Node Type'] === 'Index Scan' || record['Node Type'] === 'Index Only Scan') &&
        record['Index Cond'] === undefined
      )
        found.push(`${String(record['Index Name'])} (whole index)`);
      Object.values(record).forEach(visit);
    }
  };
  visit(plan);
  return found;
}
