/**
 * Reading activity events: by id for an instance or an integration, and as a stream that a reader
 * can follow without missing an event that commits late.
 */
import type { ActivityEvent } from '../../model.js';
import { type EventRow, eventFromRow, parseTrackingFilter } from '../rows.js';
import type { EventQuery, EventStreamPage, EventStreamRequest } from '../store.js';
import type { PgConnection } from './connection.js';

const MAX_BIGINT = '9223372036854775807';
/** The largest 64-bit transaction id (`xid8`). */
const MAX_XID8 = 2n ** 64n - 1n;

/** A stream cursor is `<transaction id>:<event id>`; an empty or malformed one starts at the beginning. */
function parseStreamCursor(cursor: string): [string, string] {
  const match = /^(\d{1,20}):(\d{1,19})$/.exec(cursor);
  return match ? [match[1]!, match[2]!] : ['0', '0'];
}

export async function getEvents(db: PgConnection, query: EventQuery): Promise<ActivityEvent[]> {
  db.assertOpen();
  const where = ['id > $1'];
  const params: unknown[] = [query.afterId ?? 0];
  if (query.instanceId) {
    params.push(query.instanceId);
    where.push(`instance_id = $${params.length}`);
  }
  if (query.integrationId) {
    params.push(query.integrationId);
    where.push(`integration_id = $${params.length}`);
  }
  params.push(Math.max(1, Math.min(query.limit, 10_000)));
  const { rows } = await db.q(
    db.pool,
    `SELECT * FROM {{schema}}.events WHERE ${where.join(' AND ')} ORDER BY id LIMIT $${params.length}`,
    params,
  );
  return (rows as EventRow[]).map(eventFromRow);
}

export async function readEventStream(
  db: PgConnection,
  request: EventStreamRequest,
): Promise<EventStreamPage> {
  db.assertOpen();
  // Ids come from a sequence before commit, so a reader can see id 105 while 103 is still being
  // written. The stream is therefore ordered by (writing transaction, id) and shows only events of
  // transactions older than the oldest one still running: those can gain no more events.
  const [axid, aid] = parseStreamCursor(request.after);
  const params: unknown[] = [axid, aid];
  const where = ['(e.xid, e.id) > ($1::text::xid8, $2::bigint)', 'e.xid < snap.xmin'];
  let join = '';
  if (request.integrationId) {
    params.push(request.integrationId);
    where.push(`e.integration_id = $${params.length}`);
  }
  if (request.types) {
    params.push(request.types);
    where.push(`e.type = ANY($${params.length}::text[])`);
  }
  if (request.tracking !== undefined) {
    const { name, value } = parseTrackingFilter(request.tracking);
    join = 'JOIN {{schema}}.instances i ON i.id = e.instance_id';
    params.push(value);
    const v = `$${params.length}`;
    where.push(`(i.track_1 = ${v} OR i.track_2 = ${v} OR i.track_3 = ${v})`);
    if (name) {
      params.push(name);
      where.push(`i.tracking ->> $${params.length} = ${v}`);
    }
  }
  const limit = Math.max(1, Math.min(request.limit, 10_000));
  params.push(limit);
  // The horizon comes from the same statement (the same snapshot) as the events, even when there
  // are none: read separately, it could pass a transaction that committed in between, unseen.
  const { rows: all } = await db.q(
    db.pool,
    `WITH snap AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin),
     page AS (
       SELECT e.*, e.xid::text AS xid_text FROM snap, {{schema}}.events e ${join}
       WHERE ${where.join(' AND ')} ORDER BY e.xid, e.id LIMIT $${params.length})
     SELECT (snap.xmin::text::numeric - 1)::text AS horizon, page.*
     FROM snap LEFT JOIN page ON true ORDER BY page.xid, page.id`,
    params,
  );
  const rows = all.filter((row: { id: unknown }) => row.id !== null);
  const events = (rows as (EventRow & { xid_text: string })[]).map((row) => ({
    ...eventFromRow(row),
    cursor: `${row.xid_text}:${row.id}`,
  }));
  const last = events[events.length - 1];
  if (rows.length === limit && last) return { events, cursor: last.cursor };
  // Everything below the horizon has been seen: continue from there.
  const horizon: string = all[0].horizon;
  return {
    events,
    cursor: BigInt(horizon) >= BigInt(axid) ? `${horizon}:${MAX_BIGINT}` : `${axid}:${aid}`,
  };
}

async function streamHorizon(db: PgConnection): Promise<string> {
  const { rows } = await db.pool.query(
    'SELECT (pg_snapshot_xmin(pg_current_snapshot())::text::numeric - 1)::text AS horizon',
  );
  return rows[0].horizon;
}

export function isStreamCursor(cursor: string): boolean {
  const match = /^(0|[1-9]\d{0,19}):(0|[1-9]\d{0,18})$/.exec(cursor);
  return match !== null && BigInt(match[1]!) <= MAX_XID8 && BigInt(match[2]!) <= BigInt(MAX_BIGINT);
}

export async function eventStreamHead(db: PgConnection): Promise<string> {
  db.assertOpen();
  return `${await streamHorizon(db)}:${MAX_BIGINT}`;
}
