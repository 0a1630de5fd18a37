/**
 * `ctx.query(connection, sql, params)`: the shorthand for `ctx.use(connection).query(sql, params)`,
 * kept apart from the PostgreSQL client so that a context can offer it without loading `pg`.
 */
import { TandemError } from '../errors.js';
import type { Use } from './caller.js';
import type { PostgresClient, PostgresConnection, SqlResult } from './postgres.js';

export type Query = <R = Record<string, unknown>>(
  connection: PostgresConnection | string,
  sql: string,
  params?: readonly unknown[],
) => Promise<SqlResult<R>>;

/** Runs `sql` through the client `use` gives for `connection`; a refusal is a rejected promise, as for `ctx.call`. */
export function queryThrough<R>(
  use: Use,
  connection: PostgresConnection | string,
  sql: string,
  params?: readonly unknown[],
): Promise<SqlResult<R>> {
  try {
    const client = use(connection as PostgresConnection) as Partial<PostgresClient>;
    if (typeof client.query !== 'function') {
      const id = typeof connection === 'string' ? connection : (connection as { id?: unknown }).id;
      throw new TandemError(
        'invalid-definition',
        `Connection "${String(id)}" is not a SQL connection: ctx.query needs a postgresConnection`,
      );
    }
    return client.query<R>(sql, params);
  } catch (error) {
    return Promise.reject(error);
  }
}
