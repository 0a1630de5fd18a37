/**
 * The schema agrees with the lifecycle. Partial indexes and PostgreSQL's claim functions name
 * status sets in their SQL, written by migrations that are history and never change; the queries
 * take the same sets from src/lifecycle. Were a set changed in the lifecycle without a migration,
 * SQLite would refuse a query planned `INDEXED BY` its index, but PostgreSQL would quietly scan
 * (a partial index that no longer fits) or, worse, claim by the old set (`due_instances`). This
 * test reads what the migrations made in a fresh database and compares it with the lifecycle.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BLOCKS_FIRING, DUE, HOLDS_ORDER, LEASED, type StatusSet } from '../../src/lifecycle/index.js';
import type { PostgresStore } from '../../src/store/postgres/store.js';
import type { SqliteStore } from '../../src/store/sqlite/store.js';
import type { Store } from '../../src/store/store.js';
import { testStore } from '../support/engine.js';

/** Quoted words of an SQL text, less the modes (`mode = 'scheduled'`): the statuses it names. */
function statusesIn(sql: string): string[] {
  const words = [...sql.matchAll(/'([a-z.]+)'/g)].map((m) => m[1]!);
  return [...new Set(words.filter((w) => w !== 'scheduled' && w !== 'sync'))].sort();
}

const sorted = (...sets: StatusSet[]) => [...new Set(sets.flat())].sort();

/** Each index whose predicate names statuses, by its name's ending, and the set it must hold. */
const INDEXES: [string, string[]][] = [
  ['_due', sorted(DUE)],
  ['_lease', sorted(LEASED)],
  ['_ordering', sorted(HOLDS_ORDER)],
  ['_scheduled_active', sorted(BLOCKS_FIRING)],
  ['_failed', ['failed']],
];

describe('the SQLite schema agrees with the lifecycle', () => {
  let store: Store;
  let cleanup: () => Promise<void>;
  beforeAll(async () => {
    ({ store, cleanup } = await testStore('sqlite'));
  });
  afterAll(() => cleanup());

  it('has partial indexes over the lifecycle’s status sets', () => {
    const rows = (store as SqliteStore).db
      .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql LIKE '%status%'")
      .all() as { name: string; sql: string }[];
    const checked = rows.filter((row) => /WHERE/i.test(row.sql) && statusesIn(row.sql).length > 0);
    expect(checked.length).toBeGreaterThanOrEqual(4);
    for (const row of checked) {
      const expected = INDEXES.find(([suffix]) => row.name.endsWith(suffix));
      expect(expected, `index ${row.name} names statuses but no lifecycle set is known for it`).toBeDefined();
      expect(statusesIn(row.sql.slice(row.sql.search(/WHERE/i))), row.name).toEqual(expected![1]);
    }
  });
});

describe('the PostgreSQL schema agrees with the lifecycle', () => {
  let store: Store;
  let cleanup: () => Promise<void>;
  beforeAll(async () => {
    ({ store, cleanup } = await testStore('postgres'));
  });
  afterAll(() => cleanup());

  it('has partial indexes over the lifecycle’s status sets', async () => {
    const pg = store as PostgresStore;
    const { rows } = await pg.pool.query<{ indexname: string; indexdef: string }>(
      "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 AND indexdef LIKE '%WHERE%status%'",
      [pg.schema],
    );
    expect(rows.length).toBeGreaterThanOrEqual(4);
    for (const row of rows) {
      const where = row.indexdef.slice(row.indexdef.indexOf('WHERE'));
      if (statusesIn(where).length === 0) continue;
      const expected = INDEXES.find(([suffix]) => row.indexname.endsWith(suffix));
      expect(
        expected,
        `index ${row.indexname} names statuses but no lifecycle set is known for it`,
      ).toBeDefined();
      expect(statusesIn(where), row.indexname).toEqual(expected![1]);
    }
  });

  it('claims by the lifecycle’s due set and holds ordering keys by its set', async () => {
    const pg = store as PostgresStore;
    const body = async (name: string) => {
      const { rows } = await pg.pool.query<{ def: string }>(
        `SELECT pg_get_functiondef(p.oid) AS def FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname = $1 AND p.proname = $2`,
        [pg.schema, name],
      );
      expect(rows, `function ${name}`).toHaveLength(1);
      // The part after the settings (`SET enable_sort TO 'off'` is not a status).
      return rows[0]!.def.slice(rows[0]!.def.indexOf('$function$'));
    };
    expect(statusesIn(await body('due_instances'))).toEqual(sorted(DUE));
    // Held by a running instance of the key, or by an earlier one in a set that holds it.
    expect(statusesIn(await body('order_held'))).toEqual(sorted(LEASED, HOLDS_ORDER));
  });
});
