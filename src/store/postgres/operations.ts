/**
 * An operator's writes and retention: rerun and cancel (which instances they apply to is the
 * lifecycle's rule, decided in TypeScript on the rows locked for it) and the purge of old outcomes.
 */
import {
  activity,
  actorData,
  type InstanceStatus,
  TRANSITIONS as LIFECYCLE,
  PURGEABLE,
} from '../../lifecycle/index.js';
import type { Actor } from '../../model.js';
import { currentRunFromRow, type InstanceRow, sortTransition } from '../rows.js';
import { assignments, sqlValue, statusIn, statusIs } from '../sql.js';
import type { AcknowledgeRequest, PurgeRequest, RerunRequest, TransitionOutcome } from '../store.js';
import { insertEvents } from './accept.js';
import type { PgConnection } from './connection.js';
import { byTable, dialect, sources } from './lifecycle-sql.js';
import { filterSql } from './queries.js';

/**
 * A rerun's restart (parameters: instance ids, run_from, now, replacement input or null). Its
 * columns live in two tables: the run and input on the instance row, the rest on the state row.
 */
const RERUN_SQL = (() => {
  const sql = dialect({
    run: 'i.run + 1',
    run_from: '$2',
    now: '$3',
    input: 'coalesce($4, i.input)',
    // $5: the versions by integration id a rerun from the start records (null: keep each one's).
    version: `CASE WHEN $5::jsonb ? i.integration_id THEN $5::jsonb ->> i.integration_id ELSE i.version END`,
  });
  const { rows, state } = byTable(LIFECYCLE.rerun);
  const rowSets = Object.entries(rows).map(([column, value]) => `${column} = ${sqlValue(value, sql)}`);
  return `WITH rows AS (
     UPDATE {{schema}}.instance_rows i SET ${rowSets.join(', ')}
     WHERE i.id = ANY($1::text[])
     RETURNING i.seq
   )
   UPDATE {{schema}}.instance_state s SET ${assignments(state, sql)}
   FROM rows WHERE s.seq = rows.seq`;
})();

/** Cancels instances (parameters: state rows, now); which ones may be was decided in TypeScript. */
const CANCEL_SQL = `UPDATE {{schema}}.instance_state SET ${assignments(LIFECYCLE.cancel, dialect({ now: '$2' }))}
   WHERE seq = ANY($1::bigint[])`;

export async function rerun(db: PgConnection, request: RerunRequest): Promise<TransitionOutcome[]> {
  return db.tx(async (client) => {
    let rows: InstanceRow[];
    if (request.ids) {
      const found = await db.q(
        client,
        'SELECT * FROM {{schema}}.instances WHERE id = ANY($1::text[]) FOR UPDATE',
        [request.ids],
      );
      rows = found.rows;
    } else {
      const { where, params } = filterSql(request.filter ?? {}, 1);
      const found = await db.q(
        client,
        `SELECT * FROM {{schema}}.instances WHERE ${where}
           AND ${statusIn(sources(LIFECYCLE.rerun))} AND mode <> 'sync'
         ORDER BY seq DESC FOR UPDATE`,
        params,
      );
      rows = found.rows;
    }
    const { outcomes, eligible } = sortTransition(
      request.ids ?? rows.map((r) => r.id),
      rows,
      LIFECYCLE.rerun,
      (row) => row.run + 1,
    );
    if (eligible.length === 0) return outcomes;
    const runs = eligible.map(currentRunFromRow);
    await db.q(
      client,
      `INSERT INTO {{schema}}.runs (instance_id, run, run_from, status, input, output, error, started_at, finished_at)
       SELECT * FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
         $8::bigint[], $9::bigint[])`,
      [
        eligible.map((r) => r.id),
        eligible.map((r) => r.run),
        runs.map((r) => r.from),
        runs.map((r) => r.status),
        eligible.map((r) => r.input),
        eligible.map((r) => r.output),
        eligible.map((r) => r.error),
        runs.map((r) => r.startedAt),
        runs.map((r) => r.finishedAt),
      ],
    );
    if (request.from === 'failed-step') {
      await db.q(
        client,
        `INSERT INTO {{schema}}.steps (instance_id, run, name, position, status, output, error, attempt, started_at,
           finished_at, seeded)
         SELECT s.instance_id, s.run + 1, s.name, s.position, s.status, s.output, s.error, s.attempt, s.started_at,
           s.finished_at, true
         FROM {{schema}}.steps s JOIN unnest($1::text[], $2::int[]) AS k(id, run)
           ON s.instance_id = k.id AND s.run = k.run
         WHERE s.status = 'succeeded'`,
        [eligible.map((r) => r.id), eligible.map((r) => r.run)],
      );
    }
    await db.q(client, RERUN_SQL, [
      eligible.map((r) => r.id),
      request.from,
      request.now,
      request.inputJson ?? null,
      request.from === 'start' && request.versions ? JSON.stringify(request.versions) : '{}',
    ]);
    await insertEvents(
      db,
      client,
      eligible.map((r) =>
        activity(
          'rerun',
          { instanceId: r.id, integrationId: r.integration_id, run: r.run + 1, at: request.now },
          {
            from: request.from,
            previousStatus: r.status as InstanceStatus,
            inputReplaced: request.inputJson !== undefined,
            ...actorData(request.actor),
          },
        ),
      ),
    );
    await db.notify(client);
    return outcomes;
  });
}

export async function cancel(
  db: PgConnection,
  ids: string[],
  now: number,
  actor?: Actor,
): Promise<TransitionOutcome[]> {
  return db.tx(async (client) => {
    const found = await db.q(
      client,
      'SELECT * FROM {{schema}}.instances WHERE id = ANY($1::text[]) FOR UPDATE',
      [ids],
    );
    const { outcomes, eligible: cancelled } = sortTransition(
      ids,
      found.rows as InstanceRow[],
      LIFECYCLE.cancel,
      (row) => row.run,
    );
    if (cancelled.length > 0) {
      await db.q(client, CANCEL_SQL, [cancelled.map((r) => r.seq), now]);
      await insertEvents(
        db,
        client,
        cancelled.map((r) =>
          activity(
            'cancelled',
            { instanceId: r.id, integrationId: r.integration_id, run: r.run, at: now },
            { previousStatus: r.status as InstanceStatus, ...actorData(actor) },
          ),
        ),
      );
      await db.notify(client);
    }
    return outcomes;
  });
}

/**
 * Sets or clears acknowledgements (the instance row's columns: rarely written, so the narrow state
 * row that claims and finishes rewrite stays as it is).
 */
export async function acknowledge(
  db: PgConnection,
  request: AcknowledgeRequest,
): Promise<TransitionOutcome[]> {
  return db.tx(async (client) => {
    const found = await db.q(
      client,
      'SELECT * FROM {{schema}}.instances WHERE id = ANY($1::text[]) FOR UPDATE',
      [request.ids],
    );
    const byId = new Map((found.rows as InstanceRow[]).map((row) => [row.id, row]));
    const outcomes: TransitionOutcome[] = [];
    const changed: InstanceRow[] = [];
    for (const id of request.ids) {
      const row = byId.get(id);
      if (!row) outcomes.push({ id, outcome: 'not-found' });
      else if (row.status !== 'failed')
        outcomes.push({ id, outcome: 'invalid-state', status: row.status as InstanceStatus });
      else {
        outcomes.push({ id, outcome: 'done', run: row.run });
        if ((row.acknowledged_at != null) !== request.acknowledged && !changed.includes(row))
          changed.push(row);
      }
    }
    if (changed.length === 0) return outcomes;
    await db.q(
      client,
      `UPDATE {{schema}}.instance_rows SET acknowledged_at = $2::bigint, acknowledged_note = $3::text
       WHERE seq = ANY($1::bigint[])`,
      [
        changed.map((r) => r.seq),
        request.acknowledged ? request.now : null,
        request.acknowledged ? request.note : null,
      ],
    );
    await insertEvents(
      db,
      client,
      changed.map((r) => {
        const head = { instanceId: r.id, integrationId: r.integration_id, run: r.run, at: request.now };
        return request.acknowledged
          ? activity('acknowledged', head, { note: request.note, ...actorData(request.actor) })
          : activity('unacknowledged', head, {
              acknowledgedAt: Number(r.acknowledged_at),
              ...actorData(request.actor),
            });
      }),
    );
    return outcomes;
  });
}

export async function purge(db: PgConnection, request: PurgeRequest): Promise<number> {
  return db.tx(async (client) => {
    const { rows } = await db.q(
      client,
      // A cutoff that is NULL matches nothing: that outcome is kept.
      `SELECT id FROM {{schema}}.instances
       WHERE (${statusIn(PURGEABLE)} AND finished_at < $1)
          OR (${statusIs('failed')} AND mode = 'sync' AND finished_at < $2::bigint)
          OR (${statusIs('failed')} AND mode <> 'sync' AND ordering_key IS NULL AND finished_at < $3::bigint)
       LIMIT $4 FOR UPDATE SKIP LOCKED`,
      [request.finishedBefore, request.failedSyncBefore ?? null, request.failedBefore ?? null, request.limit],
    );
    const ids = rows.map((r: { id: string }) => r.id);
    if (ids.length === 0) return 0;
    for (const table of ['events', 'steps', 'runs', 'waits', 'callback_tokens', 'cloud_events']) {
      await db.q(client, `DELETE FROM {{schema}}.${table} WHERE instance_id = ANY($1::text[])`, [ids]);
    }
    const deleted = await db.q(
      client,
      `WITH gone AS (DELETE FROM {{schema}}.instance_rows WHERE id = ANY($1::text[]) RETURNING seq)
       DELETE FROM {{schema}}.instance_state WHERE seq IN (SELECT seq FROM gone)`,
      [ids],
    );
    return deleted.rowCount ?? 0;
  });
}
