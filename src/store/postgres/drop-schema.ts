/**
 * Drops a PostgreSQL schema and all it holds: the test kit gives each PostgreSQL test engine a
 * schema of its own and drops it afterwards. Here, because the SQL driver and SQL text belong to
 * the store (see docs/architecture.md).
 */
import pg from 'pg';

export async function dropSchema(url: string, schema: string): Promise<void> {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(schema)) throw new Error(`Invalid schema name "${schema}"`);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await client.end();
  }
}
