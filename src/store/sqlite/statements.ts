/**
 * The SQLite store's schema and statements: migrations applied at open, then every fixed statement
 * prepared once per connection. The hot statements stay hand-tuned SQL (index hints, one statement
 * per batch); their status sets, the SET list of each transition and the rows of the events SQL
 * writes come from the lifecycle (`src/lifecycle`), rendered by `src/store/sql.ts`.
 */
import type Database from 'better-sqlite3';
import { BLOCKS_FIRING, DUE, FINAL, HOLDS_ORDER, LEASED, TRANSITIONS } from '../../lifecycle/index.js';
import { trackingSlots, WORK_COLUMNS } from '../rows.js';
import { assignments, type Dialect, eventColumns, statusIn } from '../sql.js';
import type { NewInstance } from '../store.js';
import { SQLITE_MIGRATIONS } from './migrations.js';

/** How this store writes the lifecycle's SQL (`src/store/sql.ts`): named `@` parameters, SQLite's `max`. */
const SQLITE: Dialect = { param: (name) => `@${name}`, col: (name) => name, greatest: 'max' };

/** A prepared statement, by a name that this package's declarations can refer to. */
export interface Prepared extends Database.Statement<unknown[]> {}

/** The statements of one connection, by name. */
export type Statements = ReturnType<typeof prepareStatements>;

/** A connection and its statements: what the store's parts share. */
export interface Sqlite {
  readonly db: Database.Database;
  readonly stmt: Statements;
}

/** The events a claim writes, column by column (their keys are the lifecycle's). */
const STARTED = eventColumns('started', { attempt: 'attempt' }, 'json_object');
const LEASE_EXPIRED = eventColumns(
  'lease.expired',
  { attempt: 'attempt', owner: 'lease_owner' },
  'json_object',
);

/** Rows per INSERT statement of insertInstances (24 parameters each). */
export const INSERT_GROUP = 50;

function insertSql(rows: number): string {
  // run = 1, attempt = 0; run_started_at and updated_at are created_at.
  const values = '(?, ?, ?, ?, ?, ?, ?, ?, 1, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)';
  return `INSERT INTO instances (id, integration_id, mode, status, input, input_hash, output, error, run,
      run_started_at, attempt, tracking, track_1, track_2, track_3, ordering_key, idempotency_key, parent_id,
      created_at, updated_at, run_at, started_at, finished_at, duration_ms, version, traceparent)
    VALUES ${Array.from({ length: rows }, () => values).join(', ')}
    ON CONFLICT DO NOTHING`;
}

/** The parameters of one row of insertSql, in its column order. */
export function pushInsertParams(params: unknown[], row: NewInstance): void {
  const [t1, t2, t3] = trackingSlots(row.tracking);
  let tracking: string | null = null;
  for (const _ in row.tracking) {
    tracking = JSON.stringify(row.tracking);
    break;
  }
  params.push(
    row.id,
    row.integrationId,
    row.mode,
    row.status,
    row.inputJson,
    row.inputHash,
    row.outputJson ?? null,
    row.error ? JSON.stringify(row.error) : null,
    row.createdAt,
    tracking,
    t1,
    t2,
    t3,
    row.orderingKey,
    row.idempotencyKey,
    row.parentId,
    row.createdAt,
    row.createdAt,
    row.runAt,
    row.startedAt ?? null,
    row.finishedAt ?? null,
    row.durationMs ?? null,
    row.version ?? null,
    row.traceparent ?? null,
  );
}

export function migrate(db: Database.Database): void {
  db.exec(
    'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)',
  );
  const apply = db.transaction(() => {
    const applied = new Set(
      (db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[]).map(
        (r) => r.version,
      ),
    );
    for (const migration of SQLITE_MIGRATIONS) {
      if (applied.has(migration.version)) continue;
      db.exec(migration.sql);
      db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(
        migration.version,
        migration.name,
        Date.now(),
      );
    }
  });
  apply.immediate();
}

export function prepareStatements(db: Database.Database) {
  const prepare = (text: string): Prepared => db.prepare(text);
  return {
    insertInstance: prepare(insertSql(1)),
    insertGroup: prepare(insertSql(INSERT_GROUP)),
    idExists: prepare('SELECT 1 FROM instances WHERE id = ?'),
    insertCloudEvent: prepare(
      'INSERT INTO cloud_events (instance_id, event_id, source, type, subject) VALUES (?, ?, ?, ?, ?)',
    ),
    cloudEventOf: prepare('SELECT * FROM cloud_events WHERE instance_id = ?'),
    cloudEventsOf: prepare(
      'SELECT * FROM cloud_events WHERE instance_id IN (SELECT value FROM json_each(?))',
    ),
    claimFeed: prepare(`INSERT INTO feeds (name, cursor, owner, lease_until, updated_at)
      VALUES (@name, @initial, @owner, @until, @now)
      ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until
      WHERE feeds.owner IS NULL OR feeds.owner = excluded.owner OR feeds.lease_until < @now
      RETURNING cursor`),
    advanceFeed: prepare(
      'UPDATE feeds SET cursor = @cursor, lease_until = @until, updated_at = @now WHERE name = @name AND owner = @owner',
    ),
    byIdempotencyKey: prepare(
      'SELECT id, status, input_hash FROM instances WHERE integration_id = ? AND idempotency_key = ?',
    ),
    byId: prepare('SELECT * FROM instances WHERE id = ?'),
    ping: prepare('SELECT 1'),
    claimTokenOf: prepare('SELECT claim_token FROM instances WHERE seq = ?'),
    insertEvent: prepare(
      'INSERT INTO events (instance_id, integration_id, run, type, at, data) VALUES (?, ?, ?, ?, ?, ?)',
    ),
    insertEventRow: prepare(
      'INSERT INTO events (instance_id, integration_id, run, type, at, data, more) VALUES (?, ?, ?, ?, ?, ?, ?)',
    ),
    expiredLeases: prepare(`
      SELECT seq FROM instances INDEXED BY instances_lease
      WHERE ${statusIn(LEASED)} AND lease_until < ?
        AND integration_id IN (SELECT value FROM json_each(?))
      ORDER BY lease_until LIMIT ?`),
    // INDEXED BY: without statistics the planner prefers instances_status and sorts every queued
    // row per claim; the partial index walks due rows in order and stops at the limit.
    // An instance with an ordering key is claimable only when no earlier instance with the same key
    // still holds it (queued, running, retrying or failed) and no other one is running (a rerun can
    // put an earlier instance back in the queue while a later one runs).
    dueInstances: prepare(`
      SELECT seq, started_at IS NOT NULL AS resumed, run_at FROM instances AS i INDEXED BY instances_due
      WHERE ${statusIn(DUE)} AND run_at <= ? AND integration_id = ?
        AND (ordering_key IS NULL OR NOT EXISTS (
          SELECT 1 FROM instances AS j
          WHERE j.ordering_key = i.ordering_key AND j.seq <> i.seq
             AND (${statusIn(LEASED, 'j.status')} OR (j.seq < i.seq AND ${statusIn(HOLDS_ORDER, 'j.status')}))))
      ORDER BY run_at, seq LIMIT ?`),
    // The rows were chosen in the same transaction (due, or leased with the lease run out).
    claimMany: prepare(`
      UPDATE instances SET ${assignments(TRANSITIONS.claim, SQLITE)}
      WHERE seq IN (SELECT value FROM json_each(@seqs)) RETURNING ${WORK_COLUMNS}`),
    takeOverMany: prepare(`
      UPDATE instances SET ${assignments(TRANSITIONS.takeOver, SQLITE)}
      WHERE seq IN (SELECT value FROM json_each(@seqs)) RETURNING ${WORK_COLUMNS}`),
    startedEvents: prepare(`
      INSERT INTO events (instance_id, integration_id, run, at, type, data)
      SELECT id, integration_id, run, @now, ${STARTED}
      FROM instances WHERE seq IN (SELECT value FROM json_each(@seqs)) ORDER BY seq`),
    leaseExpiredEvents: prepare(`
      INSERT INTO events (instance_id, integration_id, run, at, type, data)
      SELECT id, integration_id, run, @now, ${LEASE_EXPIRED}
      FROM instances WHERE seq IN (SELECT value FROM json_each(@seqs)) ORDER BY seq`),
    stepsOfRun: prepare('SELECT * FROM steps WHERE instance_id = ? AND run = ? ORDER BY position'),
    stepsOf: prepare('SELECT * FROM steps WHERE instance_id = ? ORDER BY run, position'),
    runsOf: prepare('SELECT * FROM runs WHERE instance_id = ? ORDER BY run'),
    extendLease: prepare(`
      UPDATE instances SET ${assignments(TRANSITIONS.renew, SQLITE)}
      WHERE seq = @seq AND claim_token = @token AND ${statusIn(TRANSITIONS.renew.from)}`),
    releaseLease: prepare(`
      UPDATE instances SET ${assignments(TRANSITIONS.release, SQLITE)}
      WHERE seq = @seq AND claim_token = @token AND ${statusIn(TRANSITIONS.release.from)}`),
    upsertStep: prepare(`
      INSERT INTO steps (instance_id, run, name, position, status, output, error, attempt, started_at, finished_at, seeded)
      VALUES (@instance_id, @run, @name, @position, @status, @output, @error, @attempt, @started_at, @finished_at, 0)
      ON CONFLICT (instance_id, run, name) DO UPDATE SET position = excluded.position, status = excluded.status, output = excluded.output,
        error = excluded.error, attempt = excluded.attempt, started_at = excluded.started_at,
        finished_at = excluded.finished_at, seeded = 0`),
    // Guarded by the claim token alone: only the attempt holding the lease has it.
    finishSucceeded: prepare(`
      UPDATE instances SET ${assignments(TRANSITIONS.succeed, SQLITE)} WHERE seq = @seq AND claim_token = @token`),
    finishFailed: prepare(`
      UPDATE instances SET ${assignments(TRANSITIONS.fail, SQLITE)} WHERE seq = @seq AND claim_token = @token`),
    finishRetry: prepare(`
      UPDATE instances SET ${assignments(TRANSITIONS.retry, SQLITE)} WHERE seq = @seq AND claim_token = @token`),
    archiveRun: prepare(`
      INSERT INTO runs (instance_id, run, run_from, status, input, output, error, started_at, finished_at)
      VALUES (@instance_id, @run, @run_from, @status, @input, @output, @error, @started_at, @finished_at)`),
    seedSteps: prepare(`
      INSERT INTO steps (instance_id, run, name, position, status, output, error, attempt, started_at, finished_at, seeded)
      SELECT instance_id, ?, name, position, status, output, error, attempt, started_at, finished_at, 1
      FROM steps WHERE instance_id = ? AND run = ? AND status = 'succeeded'`),
    // Rerun and cancel: whether the row may make the transition is decided in TypeScript (`allows`).
    startRun: prepare(`UPDATE instances SET ${assignments(TRANSITIONS.rerun, SQLITE)} WHERE id = @id`),
    cancelOne: prepare(`UPDATE instances SET ${assignments(TRANSITIONS.cancel, SQLITE)} WHERE id = @id`),
    childCounts: prepare('SELECT status, count(*) AS n FROM instances WHERE parent_id = ? GROUP BY status'),
    // The claim's ordering rule (dueInstances) turned round: who holds the key. The status list
    // repeats the partial index's predicate, so that the read walks instances_ordering.
    orderingHolder: prepare(`
      SELECT id, integration_id AS integrationId, status FROM instances INDEXED BY instances_ordering
      WHERE ordering_key = @key AND ${statusIn(HOLDS_ORDER)} AND seq <> @seq
        AND (${statusIn(LEASED)} OR seq < @seq)
      ORDER BY seq LIMIT 1`),
    ensureSchedule: prepare(`
      INSERT INTO schedules (integration_id, parameters, created_at, updated_at) VALUES (@id, '{}', @now, @now)
      ON CONFLICT (integration_id) DO NOTHING`),
    scheduleById: prepare(`
      SELECT parameters, created_at, updated_at,
        (SELECT max(slot_at) FROM schedule_slots WHERE integration_id = @id) AS last_slot_at
      FROM schedules WHERE integration_id = @id`),
    setParameters: prepare('UPDATE schedules SET parameters = ?, updated_at = ? WHERE integration_id = ?'),
    latestSlot: prepare('SELECT max(slot_at) AS slot_at FROM schedule_slots WHERE integration_id = ?'),
    activeScheduled: prepare(`
      SELECT id FROM instances INDEXED BY instances_scheduled_active
      WHERE integration_id = ? AND mode = 'scheduled' AND ${statusIn(BLOCKS_FIRING)} LIMIT 1`),
    insertSlot: prepare(
      'INSERT INTO schedule_slots (integration_id, slot_at, outcome, instance_id, at) VALUES (?, ?, ?, ?, ?)',
    ),
    pruneSlots: prepare(`
      DELETE FROM schedule_slots WHERE integration_id = @id AND slot_at < (
        SELECT slot_at FROM schedule_slots WHERE integration_id = @id ORDER BY slot_at DESC LIMIT 1 OFFSET @keep - 1)`),
    slotsOf: prepare(
      'SELECT slot_at, outcome, instance_id, at FROM schedule_slots WHERE integration_id = ? ORDER BY slot_at DESC LIMIT ?',
    ),
    nextQueued: prepare(`
      SELECT min(run_at) AS due FROM instances INDEXED BY instances_due
      WHERE ${statusIn(DUE)} AND integration_id = ?`),
    // Durable waits (waits.ts): a wait finish suspends the instance under its claim token like the
    // other finishes; an event or a callback wakes it (due at once) only while it is waiting.
    finishWait: prepare(`
      UPDATE instances SET ${assignments(TRANSITIONS.suspend, SQLITE)}
      WHERE id = @id AND claim_token = @token`),
    wake: prepare(`
      UPDATE instances SET ${assignments(TRANSITIONS.wake, SQLITE)}
      WHERE id = @id AND run = @run AND ${statusIn(TRANSITIONS.wake.from)} RETURNING integration_id`),
    leaseHeld: prepare(`SELECT run FROM instances WHERE id = ? AND claim_token = ? AND ${statusIn(LEASED)}`),
    instanceState: prepare('SELECT status, run, finished_at FROM instances WHERE id = ?'),
    insertWait: prepare(`
      INSERT INTO waits (instance_id, run, name, kind, event, match_key, match_shape, expires_at, look_back_from, created_at)
      VALUES (@instance_id, @run, @name, @kind, @event, @match_key, @match_shape, @expires_at, @look_back_from, @created_at)
      ON CONFLICT (instance_id, run, name) DO NOTHING`),
    // The wait of a finish, armed under the claim token. A write first: the commit's transaction
    // takes the write lock here, before it reads, as a finish's UPDATE does.
    armWaitLeased: prepare(`
      INSERT INTO waits (instance_id, run, name, kind, event, match_key, match_shape, expires_at, look_back_from, created_at)
      SELECT id, run, @name, @kind, @event, @match_key, @match_shape, @expires_at, @look_back_from, @created_at
      FROM instances WHERE id = @instance_id AND claim_token = @token
      ON CONFLICT (instance_id, run, name) DO NOTHING`),
    insertShape: prepare('INSERT INTO wait_shapes (event, shape) VALUES (?, ?) ON CONFLICT DO NOTHING'),
    waitByKey: prepare('SELECT * FROM waits WHERE instance_id = ? AND run = ? AND name = ?'),
    waitsOf: prepare('SELECT * FROM waits WHERE instance_id = ? ORDER BY run, created_at, name'),
    resolveWait: prepare(`
      UPDATE waits SET resolved_at = @now, resolution = @resolution, payload = @payload, event_id = @event_id,
        event_seq = @event_seq
      WHERE instance_id = @instance_id AND run = @run AND name = @name AND resolved_at IS NULL`),
    // Events a wait may take, in order; `@path`/`@value`: one text field of its match, compared
    // in SQL so that the events that cannot fit are passed over without being parsed in JavaScript.
    keptEvents: prepare(`
      SELECT seq, event_id, payload FROM business_events INDEXED BY business_events_name
      WHERE name = @name AND seq > @after AND received_at >= @from
        -- An event another wait of the run took is not taken twice.
        AND seq NOT IN (SELECT event_seq FROM waits WHERE instance_id = @instance_id AND run = @run
                          AND event_seq IS NOT NULL)
        AND (@path IS NULL OR json_extract(payload, @path) = @value)
      ORDER BY seq`),
    businessEventById: prepare('SELECT seq FROM business_events WHERE event_id = ?'),
    insertBusinessEvent: prepare(
      'INSERT INTO business_events (name, event_id, payload, received_at) VALUES (?, ?, ?, ?) RETURNING seq',
    ),
    shapesOf: prepare('SELECT shape FROM wait_shapes WHERE event = ?'),
    // Armed waits of an event's key whose instance is still on the wait's run and not over.
    armedWaits: prepare(`
      SELECT w.instance_id, w.run, w.name FROM waits AS w INDEXED BY waits_armed
      JOIN instances AS i ON i.id = w.instance_id AND i.run = w.run
      WHERE w.event = @event AND w.match_key = @key AND w.resolved_at IS NULL AND w.kind = 'event'
        AND (w.expires_at IS NULL OR w.expires_at > @now) AND NOT (${statusIn(FINAL, 'i.status')})
      ORDER BY w.created_at, w.instance_id`),
    insertToken: prepare(
      'INSERT INTO callback_tokens (token_id, hash, instance_id, run, name, issued_at) VALUES (?, ?, ?, ?, ?, ?)',
    ),
    tokenById: prepare('SELECT hash, instance_id, run, name FROM callback_tokens WHERE token_id = ?'),
    purgeEvents: prepare(`
      DELETE FROM business_events WHERE seq IN (
        SELECT seq FROM business_events WHERE received_at < ? ORDER BY received_at LIMIT ?)`),
    nextLeaseEnd: prepare(`
      SELECT min(lease_until) AS due FROM instances INDEXED BY instances_lease
      WHERE ${statusIn(LEASED)} AND integration_id IN (SELECT value FROM json_each(?))`),
  };
}
