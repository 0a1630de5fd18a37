import '../support/provided.js';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { POSTGRES_MIGRATIONS } from '../../src/store/postgres/migrations.js';
import { PostgresStore } from '../../src/store/postgres/store.js';
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
});
