/**
 * Accepting instances: the insert of new instances (an idempotency key already taken answers with
 * the instance that holds it) with their `accepted` events, and the insert of activity events.
 */
import type pg from 'pg';
import { acceptedData, activity, TRANSITIONS as LIFECYCLE } from '../../lifecycle/index.js';
import type { NewActivityEvent } from '../../model.js';
import { cloudEventFields, trackingSlots } from '../rows.js';
import type { InsertOutcome, NewInstance } from '../store.js';
import type { PgConnection, Queryable } from './connection.js';

/** Inserts instances with their `accepted` events in the caller's transaction. */
export async function insertRows(
  db: PgConnection,
  client: pg.PoolClient,
  rows: NewInstance[],
): Promise<InsertOutcome[]> {
  const slots = rows.map((r) => trackingSlots(r.tracking));
  const inserted = await db.q(
    client,
    `WITH r AS (
       SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
         $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[],
         $16::bigint[], $17::bigint[], $18::bigint[], $19::bigint[], $20::bigint[], $21::text[], $22::text[])
         AS r(id, integration_id, mode, status, input, input_hash, output, error, tracking, track_1, track_2,
           track_3, ordering_key, idempotency_key, parent_id, created_at, run_at, started_at, finished_at,
           duration_ms, version, traceparent)
     ), inserted AS (
       INSERT INTO {{schema}}.instance_rows (id, integration_id, mode, input, input_hash, run, run_started_at,
         tracking, track_1, track_2, track_3, ordering_key, idempotency_key, parent_id, created_at, version,
         traceparent)
       SELECT id, integration_id, mode, input, input_hash, 1, created_at, tracking::jsonb, track_1, track_2, track_3,
         ordering_key, idempotency_key, parent_id, created_at, version, traceparent
       FROM r
       ON CONFLICT DO NOTHING
       RETURNING seq, id
     ), state AS (
       INSERT INTO {{schema}}.instance_state (seq, integration_id, mode, ordering_key, parent_id, status, attempt,
         run_at, started_at, finished_at, duration_ms, updated_at, output, error)
       SELECT i.seq, r.integration_id, r.mode, r.ordering_key, r.parent_id, r.status, 0, r.run_at, r.started_at,
         r.finished_at, r.duration_ms, r.created_at, r.output, r.error
       FROM inserted i JOIN r ON r.id = i.id
     )
     SELECT id FROM inserted`,
    [
      rows.map((r) => r.id),
      rows.map((r) => r.integrationId),
      rows.map((r) => r.mode),
      rows.map((r) => r.status),
      rows.map((r) => r.inputJson),
      rows.map((r) => r.inputHash),
      rows.map((r) => r.outputJson ?? null),
      rows.map((r) => (r.error ? JSON.stringify(r.error) : null)),
      rows.map((r) => (Object.keys(r.tracking).length > 0 ? JSON.stringify(r.tracking) : null)),
      slots.map((s) => s[0]),
      slots.map((s) => s[1]),
      slots.map((s) => s[2]),
      rows.map((r) => r.orderingKey),
      rows.map((r) => r.idempotencyKey),
      rows.map((r) => r.parentId),
      rows.map((r) => r.createdAt),
      rows.map((r) => r.runAt),
      rows.map((r) => r.startedAt ?? null),
      rows.map((r) => r.finishedAt ?? null),
      rows.map((r) => r.durationMs ?? null),
      rows.map((r) => r.version ?? null),
      rows.map((r) => r.traceparent ?? null),
    ],
  );
  const created = new Set(inserted.rows.map((r: { id: string }) => r.id));
  const duplicates = rows.filter((r) => !created.has(r.id));
  const existing = new Map<string, { id: string; status: string; input_hash: string | null }>();
  if (duplicates.length > 0) {
    const found = await db.q(
      client,
      `SELECT i.id, i.status, i.input_hash, i.integration_id, i.idempotency_key FROM {{schema}}.instances i
       JOIN unnest($1::text[], $2::text[]) AS k(integration_id, idempotency_key)
         ON i.integration_id = k.integration_id AND i.idempotency_key = k.idempotency_key`,
      [duplicates.map((r) => r.integrationId), duplicates.map((r) => r.idempotencyKey)],
    );
    for (const row of found.rows) existing.set(`${row.integration_id}\u0000${row.idempotency_key}`, row);
  }
  // Accepted work (a sync record is inserted final, without an event).
  const queued = rows.filter((r) => created.has(r.id) && r.status === LIFECYCLE.accept.to);
  await insertEvents(
    db,
    client,
    rows
      .filter(
        (r) =>
          created.has(r.id) &&
          ((r.status === LIFECYCLE.accept.to && r.announce !== false) ||
            r.source !== undefined ||
            r.actor !== undefined),
      )
      .map((r) =>
        activity(
          'accepted',
          { instanceId: r.id, integrationId: r.integrationId, run: 1, at: r.createdAt },
          acceptedData(r),
        ),
      ),
  );
  const cloudEvents = rows.filter((r) => r.cloudEvent !== undefined && created.has(r.id));
  if (cloudEvents.length > 0) await insertCloudEvents(db, client, cloudEvents);
  if (queued.length > 0) await db.notify(client);
  return rows.map((row): InsertOutcome => {
    if (created.has(row.id))
      return { id: row.id, created: true, status: row.status, inputHash: row.inputHash };
    const found = existing.get(`${row.integrationId}\u0000${row.idempotencyKey}`);
    if (!found) throw new Error(`Instance ${row.id} was not inserted and no duplicate was found`);
    return {
      id: found.id,
      created: false,
      status: found.status as InsertOutcome['status'],
      inputHash: found.input_hash,
    };
  });
}

/** Stores the CloudEvents that new instances came as (async triggers), beside them. */
async function insertCloudEvents(
  db: PgConnection,
  client: pg.PoolClient,
  rows: NewInstance[],
): Promise<void> {
  const fields = rows.map((r) => cloudEventFields(r.id, r.cloudEvent!));
  await db.q(
    client,
    `INSERT INTO {{schema}}.cloud_events (instance_id, event_id, source, type, subject)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[])`,
    [0, 1, 2, 3, 4].map((column) => fields.map((f) => f[column])),
  );
}

/** Inserts activity events, in order, with the caller's connection or transaction. */
export async function insertEvents(
  db: PgConnection,
  on: Queryable,
  events: NewActivityEvent[],
): Promise<void> {
  if (events.length === 0) return;
  await db.q(
    on,
    `INSERT INTO {{schema}}.events (instance_id, integration_id, run, type, at, data)
     SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::bigint[], $6::text[])`,
    [
      events.map((e) => e.instanceId),
      events.map((e) => e.integrationId),
      events.map((e) => e.run),
      events.map((e) => e.type),
      events.map((e) => e.at),
      events.map((e) => JSON.stringify(e.data)),
    ],
  );
}
