/**
 * Schedules in the SQLite store: their parameters, and the cron slots that fire instances. A slot
 * is fired once across processes (its primary key, under an IMMEDIATE transaction).
 */
import type { Parameters } from '../../model.js';
import type { FireOutcome, FireRequest, InsertOutcome, ScheduleState, SlotRecord } from '../store.js';
import { insertSingle } from './insert.js';
import type { Sqlite } from './statements.js';

/** Slot records kept per schedule (the latest slot is what matters; the rest is history). */
const SLOTS_KEPT = 1_000;

export function ensureSchedule(s: Sqlite, integrationId: string, now: number): ScheduleState {
  return s.db.transaction(() => {
    s.stmt.ensureSchedule.run({ id: integrationId, now });
    return scheduleState(s, integrationId)!;
  })();
}

export function getSchedule(s: Sqlite, integrationId: string): ScheduleState | null {
  return scheduleState(s, integrationId);
}

function scheduleState(s: Sqlite, integrationId: string): ScheduleState | null {
  const row = s.stmt.scheduleById.get({ id: integrationId }) as
    | { parameters: string; created_at: number; updated_at: number; last_slot_at: number | null }
    | undefined;
  if (!row) return null;
  return {
    integrationId,
    parameters: JSON.parse(row.parameters) as Parameters,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    lastSlotAt: row.last_slot_at,
  };
}

export function fireSlot(s: Sqlite, request: FireRequest): FireOutcome {
  // IMMEDIATE: take the write lock before reading, so that two processes cannot both see the slot free.
  return s.db
    .transaction((): FireOutcome => {
      const { integrationId, slotAt, now } = request;
      const latest = (s.stmt.latestSlot.get(integrationId) as { slot_at: number | null }).slot_at;
      if (latest !== null && latest >= slotAt) return { outcome: 'taken' };
      if (request.overlap === 'skip') {
        const active = s.stmt.activeScheduled.get(integrationId) as { id: string } | undefined;
        if (active) {
          s.stmt.insertSlot.run(integrationId, slotAt, 'skipped', active.id, now);
          pruneSlots(s, integrationId);
          return { outcome: 'skipped', activeInstanceId: active.id };
        }
      }
      const outcomes: InsertOutcome[] = [];
      insertSingle(s, [request.instance], 0, outcomes);
      const inserted = outcomes[0]!;
      s.stmt.insertSlot.run(integrationId, slotAt, 'fired', inserted.id, now);
      pruneSlots(s, integrationId);
      return { outcome: 'fired', instanceId: inserted.id };
    })
    .immediate();
}

function pruneSlots(s: Sqlite, integrationId: string): void {
  s.stmt.pruneSlots.run({ id: integrationId, keep: SLOTS_KEPT });
}

export function listSlots(s: Sqlite, integrationId: string, limit: number): SlotRecord[] {
  const rows = s.stmt.slotsOf.all(integrationId, Math.max(1, Math.min(limit, SLOTS_KEPT))) as {
    slot_at: number;
    outcome: SlotRecord['outcome'];
    instance_id: string | null;
    at: number;
  }[];
  return rows.map((row) => ({
    integrationId,
    slotAt: row.slot_at,
    outcome: row.outcome,
    instanceId: row.instance_id,
    at: row.at,
  }));
}

export function updateParameters(
  s: Sqlite,
  integrationId: string,
  patchJson: string,
  now: number,
): ScheduleState {
  return s.db.transaction(() => {
    mergeParameters(s, integrationId, patchJson, now);
    return scheduleState(s, integrationId)!;
  })();
}

/** Read, merge and write in the caller's transaction (json_patch would drop keys set to null). */
export function mergeParameters(s: Sqlite, integrationId: string, patchJson: string, now: number): void {
  s.stmt.ensureSchedule.run({ id: integrationId, now });
  const row = s.stmt.scheduleById.get({ id: integrationId }) as { parameters: string };
  const merged = {
    ...(JSON.parse(row.parameters) as Parameters),
    ...(JSON.parse(patchJson) as Parameters),
  };
  s.stmt.setParameters.run(JSON.stringify(merged), now, integrationId);
}
