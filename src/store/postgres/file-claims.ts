/**
 * File claims in the PostgreSQL store: the first instance to claim a file version reads it (see
 * `Store.claimFiles`). The insert and the read are two statements: a concurrent claim of the same
 * file waits on the primary key until the other commits, and the read (a fresh snapshot under READ
 * COMMITTED) then sees the winner.
 */
import type { ClaimFilesRequest, FileClaim, FileKey } from '../store.js';
import type { PgConnection } from './connection.js';

interface ClaimRow {
  path: string;
  version: string;
  instance_id: string;
  done_at: string | null;
}

const toClaim = (row: ClaimRow): FileClaim => ({
  path: row.path,
  version: row.version,
  instanceId: row.instance_id,
  done: row.done_at !== null,
});

export async function claimFiles(db: PgConnection, request: ClaimFilesRequest): Promise<FileClaim[]> {
  db.assertOpen();
  if (request.files.length === 0) return [];
  const paths = request.files.map((file) => file.path);
  const versions = request.files.map((file) => file.version);
  await db.q(
    db.pool,
    `INSERT INTO {{schema}}.file_claims (connection, path, version, instance_id, claimed_at)
     SELECT $1, f.path, f.version, $2, $3 FROM unnest($4::text[], $5::text[]) AS f(path, version)
     ORDER BY f.path, f.version
     ON CONFLICT DO NOTHING`,
    [request.connection, request.instanceId, request.now, paths, versions],
  );
  const { rows } = await db.q(
    db.pool,
    `SELECT c.path, c.version, c.instance_id, c.done_at
     FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS f(path, version, n)
     JOIN {{schema}}.file_claims c ON c.connection = $1 AND c.path = f.path AND c.version = f.version
     ORDER BY f.n`,
    [request.connection, paths, versions],
  );
  return (rows as ClaimRow[]).map(toClaim);
}

export async function heldFiles(
  db: PgConnection,
  connection: string,
  instanceId: string,
): Promise<FileClaim[]> {
  db.assertOpen();
  const { rows } = await db.q(
    db.pool,
    `SELECT path, version, instance_id, done_at FROM {{schema}}.file_claims
     WHERE instance_id = $1 AND done_at IS NULL AND connection = $2 ORDER BY path, version`,
    [instanceId, connection],
  );
  return (rows as ClaimRow[]).map(toClaim);
}

export async function finishFile(
  db: PgConnection,
  connection: string,
  file: FileKey,
  now: number,
): Promise<void> {
  db.assertOpen();
  await db.q(
    db.pool,
    `UPDATE {{schema}}.file_claims SET done_at = $4
     WHERE connection = $1 AND path = $2 AND version = $3 AND done_at IS NULL`,
    [connection, file.path, file.version, now],
  );
}
