/**
 * File claims in the SQLite store: the first instance to claim a file version reads it (see
 * `Store.claimFiles`). One transaction: SQLite has one writer at a time, so the first claim of a file wins.
 */
import type { ClaimFilesRequest, FileClaim, FileKey } from '../store.js';
import type { Sqlite } from './statements.js';

interface ClaimRow {
  path: string;
  version: string;
  instance_id: string;
  done_at: number | null;
}

const toClaim = (row: ClaimRow): FileClaim => ({
  path: row.path,
  version: row.version,
  instanceId: row.instance_id,
  done: row.done_at !== null,
});

export function claimFiles(s: Sqlite, request: ClaimFilesRequest): FileClaim[] {
  const insert = s.db.prepare(
    `INSERT INTO file_claims (connection, path, version, instance_id, claimed_at)
     VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
  );
  const read = s.db.prepare(
    'SELECT path, version, instance_id, done_at FROM file_claims WHERE connection = ? AND path = ? AND version = ?',
  );
  return s.db.transaction(() =>
    request.files.map((file) => {
      insert.run(request.connection, file.path, file.version, request.instanceId, request.now);
      return toClaim(read.get(request.connection, file.path, file.version) as ClaimRow);
    }),
  )();
}

export function heldFiles(s: Sqlite, connection: string, instanceId: string): FileClaim[] {
  const rows = s.db
    .prepare(
      `SELECT path, version, instance_id, done_at FROM file_claims
       WHERE instance_id = ? AND done_at IS NULL AND connection = ? ORDER BY path, version`,
    )
    .all(instanceId, connection) as ClaimRow[];
  return rows.map(toClaim);
}

export function finishFile(s: Sqlite, connection: string, file: FileKey, now: number): void {
  s.db
    .prepare(
      'UPDATE file_claims SET done_at = ? WHERE connection = ? AND path = ? AND version = ? AND done_at IS NULL',
    )
    .run(now, connection, file.path, file.version);
}
