/**
 * Feeds on PostgreSQL: readers of the activity stream that keep their cursor in the store (the
 * activity webhook), one process at a time by a lease on the feed's row.
 */
import type { FeedAdvance, FeedClaim } from '../store.js';
import type { PgConnection } from './connection.js';

export async function claimFeed(db: PgConnection, request: FeedClaim): Promise<string | null> {
  db.assertOpen();
  const { rows } = await db.q(
    db.pool,
    `INSERT INTO {{schema}}.feeds AS f (name, cursor, owner, lease_until, updated_at) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (name) DO UPDATE SET owner = EXCLUDED.owner, lease_until = EXCLUDED.lease_until
     WHERE f.owner IS NULL OR f.owner = EXCLUDED.owner OR f.lease_until < $5
     RETURNING cursor`,
    [request.name, request.initial, request.owner, request.now + request.leaseMs, request.now],
  );
  return (rows[0] as { cursor: string } | undefined)?.cursor ?? null;
}

export async function advanceFeed(db: PgConnection, request: FeedAdvance): Promise<boolean> {
  db.assertOpen();
  const result = await db.q(
    db.pool,
    `UPDATE {{schema}}.feeds SET cursor = $3, lease_until = $4, updated_at = $5
     WHERE name = $1 AND owner = $2`,
    [request.name, request.owner, request.cursor, request.now + request.leaseMs, request.now],
  );
  return result.rowCount === 1;
}
