import '../support/provided.js';
import pg from 'pg';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { POSTGRES_MIGRATIONS } from '../../src/store/postgres/migrations.js';
import { HOT_PATH_SQL, PostgresStore } from '../../src/store/postgres/store.js';
import { newRow, storeContract } from './contract.js';

const url = inject('postgresUrl');
let n = 0;
const opened: PostgresStore[] = [];
afterAll(async () => {
  for (const store of opened) await store.close();
});

// Each test gets a schema of its own: an empty store without a new server or database.
storeContract('postgres', async () => PostgresStore.open({ url, schema: `contract_${process.pid}_${++n}` }));

describe('PostgresStore', () => {
  it('plans the claim and the commit by key, also against stale statistics', async () => {
    const schema = `plans_${process.pid}`;
    const store = await PostgresStore.open({ url, schema, poolSize: 1 });
    opened.push(store);
    // Statistics taken on a small table, then a burst of accepts they do not know of: a queue's
    // usual state. Joined to a few hundred rows of a batch, the tables must still be read by key.
    await store.insertInstances(Array.from({ length: 500 }, () => newRow()));
    await store.pool.query(`ANALYZE "${schema}".instance_state, "${schema}".instance_rows`);
    for (let i = 0; i < 10; i++) await store.insertInstances(Array.from({ length: 1_000 }, () => newRow()));
    const now = Date.now();
    const claim = [now, ['orders'], 200, 'batch', 'w1', now + 60_000];
    const claimed = await store.claim({
      owner: 'w1',
      limit: 200,
      leaseMs: 60_000,
      now,
      integrationIds: ['orders'],
    });
    expect(claimed).toHaveLength(200);
    const rows = claimed.map((c) => [String(c.instance.seq), c.claimToken, c.instance.id]);
    const commit = [
      JSON.stringify(
        rows.map(([seq, token, id]) => [seq, token, id, 1, 'a', 0, 'succeeded', 'null', null, 1, now, now]),
      ),
      JSON.stringify(
        rows.map(([seq, token, id]) => [seq, token, id, 'succeeded', 'null', null, null, 0, now, 1]),
      ),
      JSON.stringify(rows.map(([, , id]) => [id, 'orders', 1, 'succeeded', now, '{}', 'finish'])),
      JSON.stringify([]),
    ];
    const client = await store.pool.connect();
    try {
      for (const mode of ['force_custom_plan', 'force_generic_plan']) {
        await client.query(`SET plan_cache_mode = ${mode}`);
        for (const [sql, params] of [
          [HOT_PATH_SQL.claim, claim],
          [HOT_PATH_SQL.commit, commit],
        ] as const) {
          const { rows: plan } = await client.query(
            `EXPLAIN (FORMAT JSON) ${sql.replaceAll('{{schema}}', `"${schema}"`)}`,
            [...params],
          );
          expect({ mode, scans: seqScans(plan[0]['QUERY PLAN']) }).toEqual({ mode, scans: [] });
        }
      }
    } finally {
      client.release();
    }
  });

  it('applies migrations once even when several processes start together', async () => {
    const schema = `migrate_${process.pid}`;
    const stores = await Promise.all(Array.from({ length: 4 }, () => PostgresStore.open({ url, schema })));
    opened.push(...stores);
    const { rows } = await stores[0]!.pool.query(
      `SELECT version FROM ${schema}.schema_migrations ORDER BY version`,
    );
    expect(rows).toEqual(POSTGRES_MIGRATIONS.map(({ version }) => ({ version })));
    await stores[0]!.insertInstances([newRow()]);
    expect(await stores[3]!.countInstances({})).toBe(1);
  });

  it('wakes other processes with NOTIFY when work is accepted', async () => {
    const schema = `wake_${process.pid}`;
    const a = await PostgresStore.open({ url, schema });
    const b = await PostgresStore.open({ url, schema });
    opened.push(a, b);
    let woken = 0;
    b.onWake(() => {
      woken++;
    });
    await new Promise((resolve) => setTimeout(resolve, 200)); // LISTEN established
    await a.insertInstances([newRow()]);
    const deadline = Date.now() + 5_000;
    while (woken === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(woken).toBeGreaterThan(0);
  });

  it('skips the commit flush only inside the transaction of an insert without a flush', async () => {
    const store = await PostgresStore.open({ url, schema: `noflush_${process.pid}`, poolSize: 1 });
    opened.push(store);
    await store.insertInstances([newRow(), newRow()], { flush: false });
    // One pooled connection: the one the insert used. SET LOCAL ended with its transaction.
    const { rows } = await store.pool.query('SHOW synchronous_commit');
    expect(rows).toEqual([{ synchronous_commit: 'on' }]);
    expect(await store.countInstances({})).toBe(2);
  });

  it('works in a schema named like a keyword', async () => {
    const store = await PostgresStore.open({ url, schema: 'full' });
    opened.push(store);
    await store.insertInstances([newRow()]);
    expect(await store.countInstances({})).toBe(1);
    const claimed = await store.claim({
      owner: 'w',
      limit: 10,
      leaseMs: 1_000,
      now: Date.now() + 1_000,
      integrationIds: [newRow().integrationId],
    });
    expect(claimed).toHaveLength(1);
  });

  it('moves the instances of a database made before migration 4 beside their state, unchanged', async () => {
    const schema = `forward_${process.pid}`;
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      // A database as the releases before migration 4 left it: migrations 1 to 3 and some instances.
      await client.query(`CREATE SCHEMA ${schema}`);
      await client.query(
        `CREATE TABLE ${schema}.schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)`,
      );
      for (const migration of POSTGRES_MIGRATIONS.filter((m) => m.version <= 3)) {
        await client.query(migration.sql.replaceAll('{{schema}}', `"${schema}"`));
        await client.query(`INSERT INTO ${schema}.schema_migrations VALUES ($1, $2, 0)`, [
          migration.version,
          migration.name,
        ]);
      }
      const insert = `INSERT INTO ${schema}.instances (id, integration_id, mode, status, input, output, error, run,
        run_started_at, attempt, track_1, ordering_key, created_at, updated_at, run_at, started_at, finished_at,
        duration_ms, claim_token, lease_owner, lease_until)
        VALUES ($1, 'ship', 'async', $2, '{"n":1}', $3, $4, 1, 10, $5, $6, $7, 10, 20, 10, $8, $9, $10, $11, $12, $13)`;
      await client.query(insert, [
        'done',
        'succeeded',
        '{"ok":true}',
        null,
        1,
        'A-1',
        null,
        11,
        12,
        1,
        null,
        null,
        null,
      ]);
      await client.query(insert, [
        'broken',
        'failed',
        null,
        '{"message":"no"}',
        3,
        'A-2',
        'k',
        11,
        12,
        1,
        null,
        null,
        null,
      ]);
      await client.query(insert, [
        'waiting',
        'queued',
        null,
        null,
        0,
        null,
        'k',
        null,
        null,
        null,
        null,
        null,
        null,
      ]);
      await client.query(insert, [
        'busy',
        'running',
        null,
        null,
        1,
        null,
        null,
        11,
        null,
        null,
        'x.4',
        'w',
        5_000,
      ]);
    } finally {
      await client.end();
    }

    const store = await PostgresStore.open({ url, schema });
    opened.push(store);
    const done = await store.getInstance('done');
    expect(done).toMatchObject({ status: 'succeeded', output: { ok: true }, attempt: 1, finishedAt: 12 });
    expect(await store.getInstance('broken')).toMatchObject({ status: 'failed', attempt: 3 });
    expect(await store.countInstances({ status: 'queued' })).toBe(1);
    expect(await store.countInstances({ tracking: 'A-1' })).toBe(1);
    // The failed instance still holds ordering key k; the running one's lease has expired: taken over.
    const claimed = await store.claim({
      owner: 'w2',
      limit: 10,
      leaseMs: 1_000,
      now: 10_000,
      integrationIds: ['ship'],
    });
    expect(claimed.map((c) => [c.instance.id, c.takenOver])).toEqual([['busy', true]]);
    const [finished] = await store
      .commit({
        steps: [],
        events: [],
        finishes: [
          {
            instanceId: 'busy',
            claimToken: claimed[0]!.claimToken,
            outcome: { kind: 'succeeded', outputJson: '7' },
            now: 10_001,
            durationMs: 1,
            events: [],
          },
        ],
      })
      .then((r) => r.lost);
    expect(finished).toBeUndefined();
    expect(await store.getInstance('busy')).toMatchObject({ status: 'succeeded', output: 7, attempt: 2 });
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
      Object.values(record).forEach(visit);
    }
  };
  visit(plan);
  return found;
}
