import { resolve } from 'node:path';
import { InvalidDefinitionError } from '../errors.js';
import { SqliteStore } from './sqlite/store.js';
import type { Store } from './store.js';

const DEFAULT_STORE_URL = 'sqlite:./.tandem/tandem.db';

/**
 * Opens the store a URL names: `sqlite:./path.db` (or `sqlite::memory:`) for the embedded store,
 * `postgres://…` for the shared one (`?schema=name` picks the schema, default `tandem`).
 */
export async function openStore(
  url: string = process.env.TANDEM_STORE_URL ?? DEFAULT_STORE_URL,
): Promise<Store> {
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length);
    if (path === '')
      throw new InvalidDefinitionError('A sqlite: store URL needs a path, e.g. sqlite:./.tandem/tandem.db');
    return new SqliteStore({ path: path === ':memory:' ? path : resolve(path) });
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
    const { PostgresStore } = await import('./postgres/store.js');
    const parsed = new URL(url);
    const schema = parsed.searchParams.get('schema') ?? undefined;
    parsed.searchParams.delete('schema');
    return PostgresStore.open({ url: parsed.toString(), ...(schema ? { schema } : {}) });
  }
  throw new InvalidDefinitionError(`Unknown store URL "${url}": use sqlite:./path.db or postgres://…`);
}
