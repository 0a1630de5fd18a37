/**
 * Schedules: their stored parameters, and the firing of a cron slot, recorded once across all
 * processes however many of them see the slot come due.
 */
import { BLOCKS_FIRING } from '../../lifecycle/index.js';
import type { Parameters } from '../../model.js';
import { statusIn } from '../sql.js';
import type { FireOutcome, FireRequest, ScheduleState, SlotRecord } from '../store.js';
import { insertRows } from './accept.js';
import type { PgConnection, Queryable } from './connection.js';

/** Handled slots kept per schedule (newest first). */
const SLOTS_KEPT = 1_000;

export async function ensureSchedule(
  db: PgConnection,
  integrationId: string,
  now: number,
): Promise<ScheduleState> {
  db.assertOpen();
  await db.q(
    db.pool,
    `INSERT INTO {{schema}}.schedules (integration_id, parameters, created_at, updated_at) VALUES ($1, '{}', $2, $2)
     ON CONFLICT (integration_id) DO NOTHING`,
    [integrationId, now],
  );
  return (await scheduleState(db, db.pool, integrationId))!;
}

export async function getSchedule(db: PgConnection, integrationId: string): Promise<ScheduleState | null> {
  db.assertOpen();
  return scheduleState(db, db.pool, integrationId);
}

async function scheduleState(
  db: PgConnection,
  on: Queryable,
  integrationId: string,
): Promise<ScheduleState | null> {
  const { rows } = await db.q(
    on,
    `SELECT parameters, created_at, updated_at,
       (SELECT max(slot_at) FROM {{schema}}.schedule_slots WHERE integration_id = $1) AS last_slot_at
     FROM {{schema}}.schedules WHERE integration_id = $1`,
    [integrationId],
  );
  const row = rows[0];
  if (!row) return null;
  return {
    integrationId,
    parameters: JSON.parse(row.parameters) as Parameters,
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
    lastSlotAt: row.last_slot_at === null ? null : Number(row.last_slot_at),
  };
}

export async function fireSlot(db: PgConnection, request: FireRequest): Promise<FireOutcome> {
  return db.tx(async (client): Promise<FireOutcome> => {
    const { integrationId, slotAt, now } = request;
    // Lock the schedule's row: fires of one schedule from several processes take turns here.
    await db.q(
      client,
      `INSERT INTO {{schema}}.schedules (integration_id, parameters, created_at, updated_at) VALUES ($1, '{}', $2, $2)
       ON CONFLICT (integration_id) DO NOTHING`,
      [integrationId, now],
    );
    await db.q(client, 'SELECT 1 FROM {{schema}}.schedules WHERE integration_id = $1 FOR UPDATE', [
      integrationId,
    ]);
    const latest = await db.q(
      client,
      'SELECT max(slot_at) AS slot_at FROM {{schema}}.schedule_slots WHERE integration_id = $1',
      [integrationId],
    );
    const latestAt = latest.rows[0].slot_at === null ? null : Number(latest.rows[0].slot_at);
    if (latestAt !== null && latestAt >= slotAt) return { outcome: 'taken' };
    const record = async (outcome: 'fired' | 'skipped', instanceId: string) => {
      await db.q(
        client,
        'INSERT INTO {{schema}}.schedule_slots (integration_id, slot_at, outcome, instance_id, at) VALUES ($1, $2, $3, $4, $5)',
        [integrationId, slotAt, outcome, instanceId, now],
      );
      await db.q(
        client,
        `DELETE FROM {{schema}}.schedule_slots WHERE integration_id = $1 AND slot_at < (
           SELECT slot_at FROM {{schema}}.schedule_slots WHERE integration_id = $1
           ORDER BY slot_at DESC LIMIT 1 OFFSET $2)`,
        [integrationId, SLOTS_KEPT - 1],
      );
    };
    if (request.overlap === 'skip') {
      const active = await db.q(
        client,
        `SELECT i.id FROM {{schema}}.instance_state s JOIN {{schema}}.instance_rows i ON i.seq = s.seq
         WHERE s.integration_id = $1 AND s.mode = 'scheduled' AND ${statusIn(BLOCKS_FIRING, 's.status')}
         LIMIT 1`,
        [integrationId],
      );
      if (active.rows[0]) {
        await record('skipped', active.rows[0].id);
        return { outcome: 'skipped', activeInstanceId: active.rows[0].id };
      }
    }
    const [inserted] = await insertRows(db, client, [request.instance]);
    await record('fired', inserted!.id);
    return { outcome: 'fired', instanceId: inserted!.id };
  });
}

export async function listSlots(
  db: PgConnection,
  integrationId: string,
  limit: number,
): Promise<SlotRecord[]> {
  db.assertOpen();
  const { rows } = await db.q(
    db.pool,
    `SELECT slot_at, outcome, instance_id, at FROM {{schema}}.schedule_slots WHERE integration_id = $1
     ORDER BY slot_at DESC LIMIT $2`,
    [integrationId, Math.max(1, Math.min(limit, SLOTS_KEPT))],
  );
  return rows.map(
    (row: { slot_at: string; outcome: SlotRecord['outcome']; instance_id: string | null; at: string }) => ({
      integrationId,
      slotAt: Number(row.slot_at),
      outcome: row.outcome,
      instanceId: row.instance_id,
      at: Number(row.at),
    }),
  );
}

export async function updateParameters(
  db: PgConnection,
  integrationId: string,
  patchJson: string,
  now: number,
): Promise<ScheduleState> {
  db.assertOpen();
  await db.q(
    db.pool,
    `INSERT INTO {{schema}}.schedules (integration_id, parameters, created_at, updated_at) VALUES ($1, $2, $3, $3)
     ON CONFLICT (integration_id) DO UPDATE
       SET parameters = (schedules.parameters::jsonb || excluded.parameters::jsonb)::text, updated_at = excluded.updated_at`,
    [integrationId, patchJson, now],
  );
  return (await scheduleState(db, db.pool, integrationId))!;
}
