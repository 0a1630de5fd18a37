/**
 * Writing new rows: instances (in groups of rows per statement, idempotency keys settled after
 * them) and activity events. The store's accept path and a schedule's fired slot both insert here.
 */
import { acceptedData, activity, type EventHead, eventFields, TRANSITIONS } from '../../lifecycle/index.js';
import type { NewActivityEvent } from '../../model.js';
import { cloudEventFields } from '../rows.js';
import type { InsertOutcome, NewInstance } from '../store.js';
import { INSERT_GROUP, pushInsertParams, type Sqlite } from './statements.js';

export function insertEvent(s: Sqlite, event: NewActivityEvent): void {
  s.stmt.insertEvent.run(...eventFields(event));
}

/** The most events one row holds: an event's id is its row's id times this plus its place. */
export const EVENTS_PER_ROW = 16;

/**
 * Events of one instance, in order, written as few rows as the row's capacity allows (migration
 * 6): the first event of each row in its columns, the rest in `more`. The caller's events belong
 * to one instance and one run.
 */
function insertEventGroup(s: Sqlite, events: NewActivityEvent[]): void {
  for (let from = 0; from < events.length; from += EVENTS_PER_ROW) {
    const to = Math.min(events.length, from + EVENTS_PER_ROW);
    if (to - from === 1) {
      insertEvent(s, events[from]!);
      continue;
    }
    let more = '[';
    for (let i = from + 1; i < to; i++) {
      const event = events[i]!;
      if (i > from + 1) more += ',';
      more += `[${JSON.stringify(event.type)},${event.at},${JSON.stringify(event.data)}]`;
    }
    s.stmt.insertEventRow.run(...eventFields(events[from]!), `${more}]`);
  }
}

/**
 * Collects a transaction's activity events per instance, in the order they come, and writes each
 * instance's events together at the end (one transaction: the order of statements inside it is not
 * seen by anyone). Events of different instances in one commit have no order between them.
 */
export class EventGroups {
  private readonly groups = new Map<string, NewActivityEvent[]>();

  add(event: NewActivityEvent): void {
    const key = event.run === 1 ? event.instanceId : `${event.instanceId}\u0000${event.run}`;
    const group = this.groups.get(key);
    if (group) group.push(event);
    else this.groups.set(key, [event]);
  }

  write(s: Sqlite): void {
    for (const group of this.groups.values()) insertEventGroup(s, group);
    this.groups.clear();
  }
}

/** Inserts rows in one transaction; outcomes in row order. */
export function insertRows(s: Sqlite, rows: NewInstance[]): InsertOutcome[] {
  return s.db.transaction(() => {
    const outcomes: InsertOutcome[] = [];
    let at = 0;
    // Groups of INSERT_GROUP rows per statement: one statement run (cursors on the table and its
    // indexes opened once) instead of one per row.
    for (; at + INSERT_GROUP <= rows.length; at += INSERT_GROUP) {
      const params: unknown[] = [];
      for (let i = at; i < at + INSERT_GROUP; i++) pushInsertParams(params, rows[i]!);
      const { changes } = s.stmt.insertGroup.run(params);
      settle(s, rows, at, at + INSERT_GROUP, changes === INSERT_GROUP, outcomes);
    }
    for (; at < rows.length; at++) insertSingle(s, rows, at, outcomes);
    return outcomes;
  })();
}

/** Inserts rows[at] in the caller's transaction. */
export function insertSingle(s: Sqlite, rows: NewInstance[], at: number, outcomes: InsertOutcome[]): void {
  const params: unknown[] = [];
  pushInsertParams(params, rows[at]!);
  const { changes } = s.stmt.insertInstance.run(params);
  settle(s, rows, at, at + 1, changes === 1, outcomes);
}

/**
 * The head of an accepted event, filled per row: settle runs to its end without yielding and
 * activity() copies the head, so one object serves every row (no allocation per accepted row).
 */
const head: EventHead = { instanceId: '', integrationId: '', run: 1, at: 0 };

/**
 * Outcomes of rows[from, to) just inserted with ON CONFLICT DO NOTHING: all created when the
 * statement changed every row; otherwise a row is created when its (fresh) id is there, and a
 * repeated idempotency key returns the instance that holds it. Accepted events follow.
 */
function settle(
  s: Sqlite,
  rows: NewInstance[],
  from: number,
  to: number,
  allCreated: boolean,
  outcomes: InsertOutcome[],
): void {
  for (let i = from; i < to; i++) {
    const row = rows[i]!;
    if (!allCreated && s.stmt.idExists.get(row.id) === undefined) {
      const existing = s.stmt.byIdempotencyKey.get(row.integrationId, row.idempotencyKey) as
        | { id: string; status: string; input_hash: string | null }
        | undefined;
      if (!existing) throw new Error(`Instance ${row.id} was not inserted and no duplicate was found`);
      outcomes.push({
        id: existing.id,
        created: false,
        status: existing.status as InsertOutcome['status'],
        inputHash: existing.input_hash,
      });
      continue;
    }
    // A row inserted by the accept transition announces itself (a sync record is inserted final).
    if (
      (row.status === TRANSITIONS.accept.to && row.announce !== false) ||
      row.source !== undefined ||
      row.actor !== undefined
    ) {
      head.instanceId = row.id;
      head.integrationId = row.integrationId;
      head.at = row.createdAt;
      insertEvent(s, activity('accepted', head, acceptedData(row)));
    }
    if (row.cloudEvent !== undefined)
      s.stmt.insertCloudEvent.run(...cloudEventFields(row.id, row.cloudEvent));
    outcomes.push({ id: row.id, created: true, status: row.status, inputHash: row.inputHash });
  }
}
