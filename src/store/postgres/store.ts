import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { StoreClosedError } from '../../errors.js';
import {
  ACTIVE,
  activity,
  BLOCKS_FIRING,
  DUE,
  emptyCounts,
  FINISH,
  type InstanceStatus,
  LEASED,
  TRANSITIONS as LIFECYCLE,
  MEASURED,
  PURGEABLE,
  type StatusSet,
  type Transition,
} from '../../lifecycle/index.js';
import type {
  ActivityEvent,
  ChildCounts,
  Instance,
  NewActivityEvent,
  Parameters,
  Run,
  Step,
} from '../../model.js';
import {
  asArray,
  currentRunFromRow,
  type EventRow,
  eventFields,
  eventFromRow,
  type InstanceRow,
  instanceFromRow,
  parseTrackingFilter,
  type RunRow,
  runFromRow,
  type StepRow,
  sortTransition,
  stepFromRow,
  TRANSITIONS,
  trackingSlots,
  WORK_COLUMNS,
  type WorkRow,
  workFromRow,
} from '../rows.js';
import {
  assignments,
  caseAssignments,
  type Dialect,
  eventColumns,
  sqlValue,
  statusIn,
  statusIs,
} from '../sql.js';
import type {
  ClaimedInstance,
  ClaimRequest,
  EventQuery,
  EventStreamPage,
  EventStreamRequest,
  FireOutcome,
  FireRequest,
  InsertOptions,
  InsertOutcome,
  InstanceFilter,
  IntegrationStats,
  Lease,
  ListRequest,
  NewInstance,
  Page,
  PurgeRequest,
  RerunRequest,
  ScheduleState,
  SlotRecord,
  StatsRequest,
  Store,
  TransitionOutcome,
  WorkBatch,
  WorkBatchResult,
} from '../store.js';
import { POSTGRES_MIGRATIONS } from './migrations.js';

export interface PostgresStoreOptions {
  /** `postgres://user:pass@host:port/db` */
  url: string;
  /** Schema holding Tandem's tables (created if missing). Default `tandem`. */
  schema?: string;
  /** Pool size. Default 10. */
  poolSize?: number;
  /** Called with errors of idle connections and of the wake-up listener (logged by the engine). */
  onError?: (error: Error) => void;
}

type Queryable = pg.Pool | pg.PoolClient;

const WAKE_CHANNEL = 'tandem_wake';
const MAX_BIGINT = '9223372036854775807';
/** The largest 64-bit transaction id (`xid8`). */
const MAX_XID8 = 2n ** 64n - 1n;
/** Handled slots kept per schedule (newest first). */
const SLOTS_KEPT = 1_000;

/** A stream cursor is `<transaction id>:<event id>`; an empty or malformed one starts at the beginning. */
function parseStreamCursor(cursor: string): [string, string] {
  const match = /^(\d{1,20}):(\d{1,19})$/.exec(cursor);
  return match ? [match[1]!, match[2]!] : ['0', '0'];
}
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * The instance a claim token was given for: a claim sets `claim_token = <batch>.<seq>`. Writes of an
 * attempt find its state row by this key, never by joining the instance id to `instance_rows` (the
 * planner may hash that whole table for a batch of a few hundred ids). The token itself is still
 * compared, so a token of another claim, or a malformed one (null here), matches nothing.
 */
function tokenSeq(token: string): string | null {
  const seq = token.slice(token.lastIndexOf('.') + 1);
  return /^\d{1,19}$/.test(seq) ? seq : null;
}

/**
 * The lifecycle's SQL as PostgreSQL writes it: each transition parameter by the expression that
 * holds it in a statement (`$4`, or a column of a joined batch such as `f.output`), and columns of
 * the changed row qualified with `alias` where a FROM item makes them ambiguous. A parameter that a
 * statement does not bind fails when the module loads, not when the statement runs.
 */
function dialect(params: Readonly<Record<string, string>>, alias = ''): Dialect {
  return {
    param(name) {
      const sql = params[name];
      if (sql === undefined) throw new Error(`No SQL given for the lifecycle parameter "${name}"`);
      return sql;
    },
    col: (name) => alias + name,
    greatest: 'greatest',
  };
}

/** The statuses a transition starts from, for a WHERE clause (an insert starts from none). */
function sources(transition: Transition): StatusSet {
  if (transition.from === 'new') throw new Error(`${transition.name} starts no stored instance`);
  return transition.from;
}

/** The columns of the state table (migration 4): what changes while an instance is scheduled and run. */
const STATE_COLUMNS: ReadonlySet<string> = new Set([
  'status',
  'attempt',
  'run_at',
  'claim_token',
  'lease_owner',
  'lease_until',
  'started_at',
  'finished_at',
  'duration_ms',
  'updated_at',
  'output',
  'error',
]);

/** A transition's columns split by table: the instance row's, and the state row's (with the status). */
function byTable(transition: Transition): { rows: Transition['sets']; state: Transition } {
  const entries = Object.entries(transition.sets);
  return {
    rows: Object.fromEntries(entries.filter(([column]) => !STATE_COLUMNS.has(column))),
    state: {
      ...transition,
      sets: Object.fromEntries(entries.filter(([column]) => STATE_COLUMNS.has(column))),
    },
  };
}

/**
 * A claim and a takeover lead to the same status with the same columns, so one UPDATE does both
 * (a takeover's `status = 'running'` changes nothing).
 */
if (
  LIFECYCLE.takeOver.to !== LIFECYCLE.claim.to ||
  JSON.stringify(LIFECYCLE.takeOver.sets) !== JSON.stringify(LIFECYCLE.claim.sets)
)
  throw new Error('CLAIM_SQL claims and takes over in one UPDATE: both transitions must set the same');
const CLAIM_SETS = assignments(
  LIFECYCLE.claim,
  dialect({ now: '$1', token: '$4', owner: '$5', lease_until: '$6' }, 's.'),
);
/** Position of each event a takeover writes: its lease.expired precedes its started. */
const eventOrder = (type: 'lease.expired' | 'started') => LIFECYCLE.takeOver.events.indexOf(type);

/**
 * Claims a batch (parameters: now, integration ids, limit, batch token, owner, lease end). One
 * statement, so one round trip and one commit: pick expired leases first, then due instances. The
 * head of an ordering key is the only claimable instance of that key: an earlier one that is
 * queued, running, retrying or failed holds it, and so does any running one (a rerun can queue an
 * earlier instance while a later one runs). A head locked by another claimer is skipped, and the
 * instances behind it still see it holding the key.
 */
const CLAIM_SQL = `WITH expired AS (
     SELECT seq, lease_owner FROM {{schema}}.instance_state
     WHERE ${statusIn(sources(LIFECYCLE.takeOver))} AND lease_until < $1 AND integration_id = ANY($2::text[])
     ORDER BY lease_until LIMIT $3 FOR UPDATE SKIP LOCKED
   ), due AS (
     SELECT seq, resumed FROM {{schema}}.due_instances($1, $2::text[], $3::int)
   ), picked AS (
     (SELECT seq, true AS taken_over, lease_owner AS previous_owner, true AS resumed FROM expired)
     UNION ALL (SELECT seq, false, NULL, resumed FROM due) LIMIT $3
   ), updated AS (
     UPDATE {{schema}}.instance_state s SET ${CLAIM_SETS}
     FROM picked p WHERE s.seq = p.seq
     RETURNING s.seq, s.attempt, s.started_at, p.taken_over, p.previous_owner, p.resumed
   ), claimed AS (
     SELECT ${WORK_COLUMNS.split(', ')
       .map((c) => (c === 'seq' || c === 'attempt' || c === 'started_at' ? `u.${c}` : `i.${c}`))
       .join(', ')}, u.taken_over, u.previous_owner, u.resumed
     FROM updated u JOIN {{schema}}.instance_rows i ON i.seq = u.seq
   ), claim_events AS (
     -- One insert for both kinds, so that a takeover's lease.expired precedes its started.
     INSERT INTO {{schema}}.events (instance_id, integration_id, run, type, at, data)
     SELECT id, integration_id, run, type, $1, data FROM (
       SELECT seq, ${eventOrder('lease.expired')}, id, integration_id, run,
         ${eventColumns('lease.expired', { attempt: 'attempt - 1', owner: 'previous_owner' }, 'json_build_object')}::text
       FROM claimed WHERE taken_over
       UNION ALL
       SELECT seq, ${eventOrder('started')}, id, integration_id, run,
         ${eventColumns('started', { attempt: 'attempt' }, 'json_build_object')}::text
       FROM claimed
     ) AS e(seq, ord, id, integration_id, run, type, data) ORDER BY seq, ord
   )
   SELECT * FROM claimed ORDER BY seq`;

/**
 * Commits a batch of step writes, attempt ends and events (parameters: four JSON arrays of rows,
 * each row an array of fields; see `commit`). One statement (one round trip, one commit). All
 * parts see the same snapshot, so each step write and each finish is checked against the claim
 * token the attempt was given; events of a write that was refused are dropped with it.
 */
const COMMIT_SQL = `WITH st AS (
     SELECT (r->>0)::bigint AS seq, r->>1 AS token, r->>2 AS instance_id, (r->>3)::int AS run, r->>4 AS name,
       (r->>5)::int AS position, r->>6 AS status, r->>7 AS output, r->>8 AS error, (r->>9)::int AS attempt,
       (r->>10)::bigint AS started_at, (r->>11)::bigint AS finished_at
     FROM jsonb_array_elements($1::jsonb) AS r
   ), held AS (
     -- Read in the statement's snapshot, not locked: a row lock would follow this statement's own
     -- finish of the same instance and see its token already cleared.
     SELECT s.seq, s.claim_token FROM {{schema}}.instance_state s WHERE s.seq = ANY(ARRAY(SELECT seq FROM st))
   ), steps_written AS (
     INSERT INTO {{schema}}.steps (instance_id, run, name, position, status, output, error, attempt, started_at,
       finished_at, seeded)
     SELECT s.instance_id, s.run, s.name, s.position, s.status, s.output, s.error, s.attempt, s.started_at,
       s.finished_at, false
     FROM st s JOIN held h ON h.seq = s.seq AND h.claim_token = s.token
     ON CONFLICT (instance_id, run, name) DO UPDATE SET position = excluded.position, status = excluded.status,
       output = excluded.output, error = excluded.error, attempt = excluded.attempt,
       started_at = excluded.started_at, finished_at = excluded.finished_at, seeded = false
     RETURNING instance_id
   ), fin AS (
     SELECT (r->>0)::bigint AS seq, r->>1 AS token, r->>2 AS id, r->>3 AS kind, r->>4 AS output, r->>5 AS error,
       (r->>6)::bigint AS run_at, (r->>7)::int AS refund, (r->>8)::bigint AS now, (r->>9)::bigint AS duration
     FROM jsonb_array_elements($2::jsonb) AS r
   ), done AS (
     -- Each row as its outcome kind's transition sets it (FINISH).
     UPDATE {{schema}}.instance_state s SET
       ${caseAssignments('f.kind', FINISH, dialect({ output: 'f.output', error: 'f.error', now: 'f.now', duration: 'f.duration', run_at: 'f.run_at', refund: 'f.refund' }, 's.'))}
     FROM fin f
     -- Found by key through the array, whatever the planner estimates for the JSON rows (joined
     -- to them directly, a few hundred rows estimated against stale statistics were planned as a
     -- hash of the whole table).
     WHERE s.seq = ANY(ARRAY(SELECT seq FROM fin)) AND s.seq = f.seq AND s.claim_token = f.token
     RETURNING f.id, s.ordering_key
   ), events_written AS (
     INSERT INTO {{schema}}.events (instance_id, integration_id, run, type, at, data)
     SELECT r->>0, r->>1, (r->>2)::int, r->>3, (r->>4)::bigint, r->>5
     FROM jsonb_array_elements($3::jsonb) WITH ORDINALITY AS e(r, ord)
     WHERE r->>6 = 'none'
       OR (r->>6 = 'step' AND r->>0 IN (SELECT instance_id FROM steps_written))
       OR (r->>6 = 'finish' AND r->>0 IN (SELECT id FROM done))
     ORDER BY e.ord
   ), parameters_written AS (
     -- Schedule parameters set by a handler: merged only when its succeeded finish was applied.
     -- jsonb || keeps keys whose value is null (a handler may clear a value).
     INSERT INTO {{schema}}.schedules (integration_id, parameters, created_at, updated_at)
     SELECT r->>1, r->>2, (r->>3)::bigint, (r->>3)::bigint
     FROM jsonb_array_elements($4::jsonb) AS r
     WHERE r->>0 IN (SELECT id FROM done)
     ON CONFLICT (integration_id) DO UPDATE
       SET parameters = (schedules.parameters::jsonb || excluded.parameters::jsonb)::text,
           updated_at = excluded.updated_at
   )
   -- The writes refused (their attempt lost its lease), and whether a head of an ordering key finished.
   SELECT ARRAY(
       SELECT instance_id FROM st WHERE instance_id NOT IN (SELECT instance_id FROM steps_written)
       UNION SELECT id FROM fin WHERE id NOT IN (SELECT id FROM done)) AS lost,
     EXISTS (SELECT 1 FROM done WHERE ordering_key IS NOT NULL) AS ordered`;

/** The hot-path statements, for tests that check their plans. */
export const HOT_PATH_SQL = { claim: CLAIM_SQL, commit: COMMIT_SQL } as const;

/**
 * The leases of a batch (parameters: instance ids, state rows, tokens; see `leaseArrays`), each
 * found by key and guarded by its token, as a renewal or a release changes them.
 */
const leaseUpdate = (transition: Transition) =>
  `UPDATE {{schema}}.instance_state s SET ${assignments(transition, dialect({ lease_until: '$4', now: '$4' }, 's.'))}
   FROM unnest($1::text[], $2::bigint[], $3::text[]) AS l(id, seq, token)
   WHERE s.seq = ANY($2::bigint[]) AND s.seq = l.seq AND s.claim_token = l.token AND ${statusIn(sources(transition), 's.status')}`;
const RENEW_SQL = `${leaseUpdate(LIFECYCLE.renew)}
   RETURNING l.id`;
const RELEASE_SQL = leaseUpdate(LIFECYCLE.release);

/**
 * A rerun's restart (parameters: instance ids, run_from, now, replacement input or null). Its
 * columns live in two tables: the run and input on the instance row, the rest on the state row.
 */
const RERUN_SQL = (() => {
  const sql = dialect({ run: 'i.run + 1', run_from: '$2', now: '$3', input: 'coalesce($4, i.input)' });
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

/**
 * The shared store: many Tandem processes on many machines use one PostgreSQL database. Claims
 * take rows with `FOR UPDATE SKIP LOCKED`, so concurrent workers never wait on each other; every
 * write of an attempt is guarded by its claim token; accepts and finishes that free work send a
 * `NOTIFY` that wakes the other processes (polling stays the safety net).
 */
export class PostgresStore implements Store {
  readonly pool: pg.Pool;
  readonly schema: string;
  private closed = false;
  private listener: pg.Client | null = null;
  private listenerRetry: NodeJS.Timeout | null = null;
  private readonly wakeListeners = new Set<() => void>();
  private readonly t: (sql: string) => string;

  private constructor(private readonly options: PostgresStoreOptions) {
    this.schema = options.schema ?? 'tandem';
    if (!SCHEMA_NAME.test(this.schema)) throw new Error(`Invalid schema name "${this.schema}"`);
    this.pool = new pg.Pool({ connectionString: options.url, max: options.poolSize ?? 10 });
    // An idle connection that the server drops (restart) must not crash the process.
    this.pool.on('error', (error) => this.options.onError?.(error));
    // The pool listens for errors of idle clients only. A client that loses its connection while
    // checked out (a pool.query or a transaction when the server restarts) emits 'error' too;
    // unheard, it would end the process. Its pending or next query fails, and the caller retries.
    this.pool.on('connect', (client) => client.on('error', (error) => this.options.onError?.(error)));
    // Quoted, so that a schema named like a keyword (`full`, `user`) works too.
    const schema = `"${this.schema}"`;
    this.t = (sql) => sql.replaceAll('{{schema}}', schema);
  }

  /** Connects and applies pending migrations (serialised across processes by an advisory lock). */
  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    const store = new PostgresStore(options);
    try {
      await store.migrate();
    } catch (error) {
      await store.pool.end().catch(() => {});
      throw error;
    }
    return store;
  }

  private async migrate(): Promise<void> {
    const { client, release } = await this.checkout();
    try {
      await client.query('SELECT pg_advisory_lock(hashtext($1))', [`tandem-migrate:${this.schema}`]);
      await client.query(this.t('CREATE SCHEMA IF NOT EXISTS {{schema}}'));
      await client.query(
        this.t(
          'CREATE TABLE IF NOT EXISTS {{schema}}.schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)',
        ),
      );
      const { rows } = await client.query(this.t('SELECT version FROM {{schema}}.schema_migrations'));
      const applied = new Set(rows.map((r: { version: number }) => r.version));
      for (const migration of POSTGRES_MIGRATIONS) {
        if (applied.has(migration.version)) continue;
        await client.query('BEGIN');
        try {
          await client.query(this.t(migration.sql));
          await client.query(
            this.t(
              'INSERT INTO {{schema}}.schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)',
            ),
            [migration.version, migration.name, Date.now()],
          );
          await client.query('COMMIT');
        } catch (error) {
          await client.query('ROLLBACK');
          throw error;
        }
      }
    } finally {
      await client
        .query('SELECT pg_advisory_unlock(hashtext($1))', [`tandem-migrate:${this.schema}`])
        .catch(() => {});
      release();
    }
  }

  private open(): void {
    if (this.closed) throw new StoreClosedError();
  }

  /** Runs `fn` in a transaction on one pooled connection. */
  private async tx<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    this.open();
    const { client, release } = await this.checkout();
    try {
      await client.query('BEGIN');
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      release();
    }
  }

  /**
   * A pooled connection with an error listener while it is checked out: the pool listens only to
   * idle connections, so a database restart between two queries of a transaction would otherwise
   * be an uncaught 'error' event that ends the process. A lost connection is discarded on release.
   */
  private async checkout(): Promise<{ client: pg.PoolClient; release: () => void }> {
    const client = await this.pool.connect();
    let lost: Error | undefined;
    // Reported by the listener every client gets at connect; here only remembered.
    const onError = (error: Error) => {
      lost = error;
    };
    client.on('error', onError);
    return {
      client,
      release() {
        client.removeListener('error', onError);
        client.release(lost);
      },
    };
  }

  private q(db: Queryable, sql: string, params: unknown[] = []) {
    return db.query(this.t(sql), params);
  }

  /** A hot-path statement, prepared once per connection (planning a claim costs as much as running it). */
  private prepared(name: string, sql: string, params: unknown[]) {
    let text = this.preparedText.get(name);
    if (text === undefined) {
      text = this.t(sql);
      this.preparedText.set(name, text);
    }
    return this.pool.query({ name: `${this.schema}_${name}`, text, values: params });
  }

  /** Each prepared statement's text with the schema filled in, made once. */
  private readonly preparedText = new Map<string, string>();

  private async insertEvents(db: Queryable, events: NewActivityEvent[]): Promise<void> {
    if (events.length === 0) return;
    await this.q(
      db,
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

  private notify(db: Queryable): Promise<unknown> {
    return db.query('SELECT pg_notify($1, $2)', [WAKE_CHANNEL, this.schema]);
  }

  async insertInstances(rows: NewInstance[], options?: InsertOptions): Promise<InsertOutcome[]> {
    if (rows.length === 0) return [];
    if (options?.flush === false) {
      return this.tx(async (client) => {
        // This transaction only: its commit does not wait for the WAL flush.
        await client.query('SET LOCAL synchronous_commit TO off');
        return this.insertRows(client, rows);
      });
    }
    return this.tx((client) => this.insertRows(client, rows));
  }

  /** Inserts instances with their `accepted` events in the caller's transaction. */
  private async insertRows(client: pg.PoolClient, rows: NewInstance[]): Promise<InsertOutcome[]> {
    {
      const slots = rows.map((r) => trackingSlots(r.tracking));
      const inserted = await this.q(
        client,
        `WITH r AS (
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
             $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], $15::text[],
             $16::bigint[], $17::bigint[], $18::bigint[], $19::bigint[], $20::bigint[])
             AS r(id, integration_id, mode, status, input, input_hash, output, error, tracking, track_1, track_2,
               track_3, ordering_key, idempotency_key, parent_id, created_at, run_at, started_at, finished_at,
               duration_ms)
         ), inserted AS (
           INSERT INTO {{schema}}.instance_rows (id, integration_id, mode, input, input_hash, run, run_started_at,
             tracking, track_1, track_2, track_3, ordering_key, idempotency_key, parent_id, created_at)
           SELECT id, integration_id, mode, input, input_hash, 1, created_at, tracking::jsonb, track_1, track_2, track_3,
             ordering_key, idempotency_key, parent_id, created_at
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
        ],
      );
      const created = new Set(inserted.rows.map((r: { id: string }) => r.id));
      const duplicates = rows.filter((r) => !created.has(r.id));
      const existing = new Map<string, { id: string; status: string; input_hash: string | null }>();
      if (duplicates.length > 0) {
        const found = await this.q(
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
      await this.insertEvents(
        client,
        queued
          .filter((r) => r.announce !== false)
          .map((r) =>
            activity(
              'accepted',
              { instanceId: r.id, integrationId: r.integrationId, run: 1, at: r.createdAt },
              r.parentId ? { parentId: r.parentId } : {},
            ),
          ),
      );
      if (queued.length > 0) await this.notify(client);
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
  }

  async claim(request: ClaimRequest): Promise<ClaimedInstance[]> {
    this.open();
    if (request.limit <= 0 || request.integrationIds.length === 0) return [];
    const batchToken = randomUUID();
    const { rows } = await this.prepared('claim', CLAIM_SQL, [
      request.now,
      request.integrationIds,
      request.limit,
      batchToken,
      request.owner,
      request.now + request.leaseMs,
    ]);
    const claimedRows = rows as (WorkRow & {
      taken_over: boolean;
      previous_owner: string | null;
      resumed: boolean;
    })[];
    // Stored steps exist whenever the instance ran before: a later attempt or run, a takeover, or an
    // attempt that did not count (a released lease, a wait that used no attempt).
    const needSteps = claimedRows.filter((r) => r.attempt > 1 || r.run > 1 || r.resumed);
    const stepsById = new Map<string, Step[]>();
    if (needSteps.length > 0) {
      const steps = await this.q(
        this.pool,
        `SELECT s.* FROM {{schema}}.steps s
         JOIN unnest($1::text[], $2::int[]) AS k(instance_id, run) ON s.instance_id = k.instance_id AND s.run = k.run
         ORDER BY s.instance_id, s.position`,
        [needSteps.map((r) => r.id), needSteps.map((r) => r.run)],
      );
      for (const row of steps.rows as StepRow[]) {
        const list = stepsById.get(row.instance_id) ?? [];
        list.push(stepFromRow(row));
        stepsById.set(row.instance_id, list);
      }
    }
    // Expired leases first, as the contract promises, then accept order.
    claimedRows.sort((a, b) => Number(b.taken_over) - Number(a.taken_over));
    return claimedRows.map((row) => ({
      instance: workFromRow(row),
      claimToken: `${batchToken}.${row.seq}`,
      steps: stepsById.get(row.id) ?? [],
      takenOver: row.taken_over,
    }));
  }

  async extendLeases(leases: Lease[], leaseUntil: number): Promise<string[]> {
    this.open();
    if (leases.length === 0) return [];
    const result = await this.q(this.pool, RENEW_SQL, [...leaseArrays(leases), leaseUntil]);
    const kept = new Set(result.rows.map((r: { id: string }) => r.id));
    return leases.map((l) => l.instanceId).filter((id) => !kept.has(id));
  }

  async releaseLeases(leases: Lease[], now: number): Promise<void> {
    this.open();
    if (leases.length === 0) return;
    await this.tx(async (client) => {
      await this.q(client, RELEASE_SQL, [...leaseArrays(leases), now]);
      await this.notify(client);
    });
  }

  async commit(batch: WorkBatch): Promise<WorkBatchResult> {
    this.open();
    if (batch.steps.length + batch.finishes.length + batch.events.length === 0) return { lost: [] };
    // A step name is written at most once per statement (ON CONFLICT cannot touch a row twice).
    const stepsByKey = new Map<string, WorkBatch['steps'][number]>();
    for (const write of batch.steps)
      stepsByKey.set(`${write.instanceId}\u0000${write.step.run}\u0000${write.step.name}`, write);
    const steps = [...stepsByKey.values()];
    const { finishes } = batch;
    const withParameters = finishes.filter((f) => f.parameters && f.outcome.kind === 'succeeded');
    type Guard = 'none' | 'step' | 'finish';
    const events: { event: NewActivityEvent; guard: Guard }[] = [
      ...batch.events.map((event) => ({ event, guard: 'none' as Guard })),
      ...steps.flatMap((w) => w.events.map((event) => ({ event, guard: 'step' as Guard }))),
      ...finishes.flatMap((f) => f.events.map((event) => ({ event, guard: 'finish' as Guard }))),
    ];
    // Each part travels as one JSON array of rows, each row an array of fields (COMMIT_SQL reads
    // them by position): JSON.stringify is native where a text array parameter is escaped
    // element by element in JavaScript, and reading fields of a jsonb array costs the server less
    // than parsing array literals (JSON texts such as outputs are passed as strings).
    const { rows } = await this.prepared('commit', COMMIT_SQL, [
      JSON.stringify(
        steps.map((w) => [
          tokenSeq(w.claimToken),
          w.claimToken,
          w.step.instanceId,
          w.step.run,
          w.step.name,
          w.step.position,
          w.step.status,
          w.outputJson,
          w.step.error ? JSON.stringify(w.step.error) : null,
          w.step.attempt,
          w.step.startedAt,
          w.step.finishedAt,
        ]),
      ),
      JSON.stringify(
        finishes.map((f) => {
          const { outcome } = f;
          return [
            tokenSeq(f.claimToken),
            f.claimToken,
            f.instanceId,
            outcome.kind,
            outcome.kind === 'succeeded' ? outcome.outputJson : null,
            outcome.kind === 'succeeded' ? null : JSON.stringify(outcome.error),
            outcome.kind === 'retry' ? outcome.runAt : null,
            outcome.kind === 'retry' && !outcome.consumesAttempt ? 1 : 0,
            f.now,
            f.durationMs,
          ];
        }),
      ),
      JSON.stringify(events.map(({ event, guard }) => [...eventFields(event), guard])),
      JSON.stringify(
        withParameters.map((f) => [
          f.instanceId,
          f.parameters!.integrationId,
          f.parameters!.patchJson,
          f.now,
        ]),
      ),
    ]);
    const { lost, ordered } = rows[0] as { lost: string[]; ordered: boolean };
    // A finished head of an ordering key lets the next instance run: wake the other processes.
    if (ordered) await this.notify(this.pool);
    return { lost };
  }

  async rerun(request: RerunRequest): Promise<TransitionOutcome[]> {
    return this.tx(async (client) => {
      let rows: InstanceRow[];
      if (request.ids) {
        const found = await this.q(
          client,
          'SELECT * FROM {{schema}}.instances WHERE id = ANY($1::text[]) FOR UPDATE',
          [request.ids],
        );
        rows = found.rows;
      } else {
        const { where, params } = filterSql(request.filter ?? {}, 1);
        const found = await this.q(
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
        TRANSITIONS.rerun,
        (row) => row.run + 1,
      );
      if (eligible.length === 0) return outcomes;
      const runs = eligible.map(currentRunFromRow);
      await this.q(
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
        await this.q(
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
      await this.q(client, RERUN_SQL, [
        eligible.map((r) => r.id),
        request.from,
        request.now,
        request.inputJson ?? null,
      ]);
      await this.insertEvents(
        client,
        eligible.map((r) =>
          activity(
            'rerun',
            { instanceId: r.id, integrationId: r.integration_id, run: r.run + 1, at: request.now },
            {
              from: request.from,
              previousStatus: r.status as InstanceStatus,
              inputReplaced: request.inputJson !== undefined,
            },
          ),
        ),
      );
      await this.notify(client);
      return outcomes;
    });
  }

  async cancel(ids: string[], now: number): Promise<TransitionOutcome[]> {
    return this.tx(async (client) => {
      const found = await this.q(
        client,
        'SELECT * FROM {{schema}}.instances WHERE id = ANY($1::text[]) FOR UPDATE',
        [ids],
      );
      const { outcomes, eligible: cancelled } = sortTransition(
        ids,
        found.rows as InstanceRow[],
        TRANSITIONS.cancel,
        (row) => row.run,
      );
      if (cancelled.length > 0) {
        await this.q(client, CANCEL_SQL, [cancelled.map((r) => r.seq), now]);
        await this.insertEvents(
          client,
          cancelled.map((r) =>
            activity(
              'cancelled',
              { instanceId: r.id, integrationId: r.integration_id, run: r.run, at: now },
              { previousStatus: r.status as InstanceStatus },
            ),
          ),
        );
        await this.notify(client);
      }
      return outcomes;
    });
  }

  async getInstance(id: string): Promise<Instance | null> {
    this.open();
    const { rows } = await this.q(this.pool, 'SELECT * FROM {{schema}}.instances WHERE id = $1', [id]);
    return rows[0] ? instanceFromRow(rows[0]) : null;
  }

  async listInstances(request: ListRequest): Promise<Page<Instance>> {
    this.open();
    const limit = Math.max(1, Math.min(request.limit, 1000));
    const { where, params } = filterSql(request, 1);
    let sql = `SELECT * FROM {{schema}}.instances WHERE ${where}`;
    if (request.cursor) {
      params.push(request.cursor);
      sql += ` AND seq < $${params.length}::bigint`;
    }
    sql += ` ORDER BY seq DESC LIMIT ${limit + 1}`;
    const { rows } = await this.q(this.pool, sql, params);
    const items = (rows as InstanceRow[]).slice(0, limit).map(instanceFromRow);
    const last = items[items.length - 1];
    return { items, nextCursor: rows.length > limit && last ? String(last.seq) : null };
  }

  async countInstances(filter: InstanceFilter): Promise<number> {
    this.open();
    const { where, params } = filterSql(filter, 1);
    const { rows } = await this.q(
      this.pool,
      `SELECT count(*)::int AS n FROM {{schema}}.instances WHERE ${where}`,
      params,
    );
    return rows[0].n;
  }

  async getRuns(instanceId: string): Promise<Run[]> {
    this.open();
    const current = await this.q(this.pool, 'SELECT * FROM {{schema}}.instances WHERE id = $1', [instanceId]);
    if (!current.rows[0]) return [];
    const { rows } = await this.q(
      this.pool,
      'SELECT * FROM {{schema}}.runs WHERE instance_id = $1 ORDER BY run',
      [instanceId],
    );
    return [...(rows as RunRow[]).map(runFromRow), currentRunFromRow(current.rows[0])];
  }

  async getSteps(instanceId: string, run?: number): Promise<Step[]> {
    this.open();
    const { rows } =
      run === undefined
        ? await this.q(
            this.pool,
            'SELECT * FROM {{schema}}.steps WHERE instance_id = $1 ORDER BY run, position',
            [instanceId],
          )
        : await this.q(
            this.pool,
            'SELECT * FROM {{schema}}.steps WHERE instance_id = $1 AND run = $2 ORDER BY position',
            [instanceId, run],
          );
    return (rows as StepRow[]).map(stepFromRow);
  }

  async getEvents(query: EventQuery): Promise<ActivityEvent[]> {
    this.open();
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
    const { rows } = await this.q(
      this.pool,
      `SELECT * FROM {{schema}}.events WHERE ${where.join(' AND ')} ORDER BY id LIMIT $${params.length}`,
      params,
    );
    return (rows as EventRow[]).map(eventFromRow);
  }

  async readEventStream(request: EventStreamRequest): Promise<EventStreamPage> {
    this.open();
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
    const { rows: all } = await this.q(
      this.pool,
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

  private async streamHorizon(): Promise<string> {
    const { rows } = await this.pool.query(
      'SELECT (pg_snapshot_xmin(pg_current_snapshot())::text::numeric - 1)::text AS horizon',
    );
    return rows[0].horizon;
  }

  isStreamCursor(cursor: string): boolean {
    const match = /^(0|[1-9]\d{0,19}):(0|[1-9]\d{0,18})$/.exec(cursor);
    return match !== null && BigInt(match[1]!) <= MAX_XID8 && BigInt(match[2]!) <= BigInt(MAX_BIGINT);
  }

  async eventStreamHead(): Promise<string> {
    this.open();
    return `${await this.streamHorizon()}:${MAX_BIGINT}`;
  }

  async integrationStats(request: StatsRequest): Promise<IntegrationStats[]> {
    this.open();
    const finished = `${statusIn(MEASURED)} AND duration_ms IS NOT NULL`;
    const { rows } = await this.q(
      this.pool,
      `SELECT integration_id, mode, count(*)::int AS total,
         count(*) FILTER (WHERE ${statusIs('succeeded')})::int AS succeeded,
         count(*) FILTER (WHERE ${statusIs('failed')})::int AS failed,
         count(*) FILTER (WHERE ${statusIs('cancelled')})::int AS cancelled,
         count(*) FILTER (WHERE ${statusIn(ACTIVE)})::int AS active,
         percentile_disc(0.5) WITHIN GROUP (ORDER BY duration_ms) FILTER (WHERE ${finished}) AS p50,
         percentile_disc(0.95) WITHIN GROUP (ORDER BY duration_ms) FILTER (WHERE ${finished}) AS p95,
         percentile_disc(0.99) WITHIN GROUP (ORDER BY duration_ms) FILTER (WHERE ${finished}) AS p99,
         coalesce(avg(greatest(attempt - 1, 0)) FILTER (WHERE ${statusIn(MEASURED)}), 0)::float8 AS retries
       FROM {{schema}}.instances WHERE created_at >= $1 AND created_at < $2
       GROUP BY integration_id, mode ORDER BY integration_id`,
      [request.since, request.until],
    );
    const errors = await this.q(
      this.pool,
      `SELECT integration_id, code, count FROM (
         SELECT integration_id, error::jsonb ->> 'code' AS code, count(*)::int AS count,
           row_number() OVER (PARTITION BY integration_id ORDER BY count(*) DESC, error::jsonb ->> 'code') AS n
         FROM {{schema}}.instances WHERE created_at >= $1 AND created_at < $2 AND ${statusIs('failed')}
         GROUP BY integration_id, error::jsonb ->> 'code') AS e
       WHERE n <= 5 ORDER BY integration_id, count DESC, code`,
      [request.since, request.until],
    );
    const byConnection = await this.q(
      this.pool,
      `SELECT integration_id, error::jsonb -> 'details' ->> 'connection' AS connection, count(*)::int AS count
       FROM {{schema}}.instances WHERE created_at >= $1 AND created_at < $2 AND ${statusIs('failed')}
         AND error::jsonb -> 'details' ->> 'connection' IS NOT NULL
       GROUP BY 1, 2`,
      [request.since, request.until],
    );
    const toNumber = (value: string | number | null) => (value === null ? null : Number(value));
    return rows.map((row) => ({
      integrationId: row.integration_id,
      mode: row.mode,
      total: row.total,
      succeeded: row.succeeded,
      failed: row.failed,
      cancelled: row.cancelled,
      active: row.active,
      p50: toNumber(row.p50),
      p95: toNumber(row.p95),
      p99: toNumber(row.p99),
      retriesPerInstance: row.retries,
      errors: errors.rows
        .filter((e: { integration_id: string }) => e.integration_id === row.integration_id)
        .map((e: { code: string | null; count: number }) => ({ code: e.code, count: e.count })),
      failuresByConnection: Object.fromEntries(
        byConnection.rows
          .filter((r: { integration_id: string }) => r.integration_id === row.integration_id)
          .map((r: { connection: string; count: number }) => [r.connection, r.count]),
      ),
    }));
  }

  async purge(request: PurgeRequest): Promise<number> {
    return this.tx(async (client) => {
      const { rows } = await this.q(
        client,
        // A cutoff that is NULL matches nothing: that outcome is kept.
        `SELECT id FROM {{schema}}.instances
         WHERE (${statusIn(PURGEABLE)} AND finished_at < $1)
            OR (${statusIs('failed')} AND mode = 'sync' AND finished_at < $2::bigint)
            OR (${statusIs('failed')} AND mode <> 'sync' AND ordering_key IS NULL AND finished_at < $3::bigint)
         LIMIT $4 FOR UPDATE SKIP LOCKED`,
        [
          request.finishedBefore,
          request.failedSyncBefore ?? null,
          request.failedBefore ?? null,
          request.limit,
        ],
      );
      const ids = rows.map((r: { id: string }) => r.id);
      if (ids.length === 0) return 0;
      for (const table of ['events', 'steps', 'runs']) {
        await this.q(client, `DELETE FROM {{schema}}.${table} WHERE instance_id = ANY($1::text[])`, [ids]);
      }
      const deleted = await this.q(
        client,
        `WITH gone AS (DELETE FROM {{schema}}.instance_rows WHERE id = ANY($1::text[]) RETURNING seq)
         DELETE FROM {{schema}}.instance_state WHERE seq IN (SELECT seq FROM gone)`,
        [ids],
      );
      return deleted.rowCount ?? 0;
    });
  }

  async nextDueAt(integrationIds: string[]): Promise<number | null> {
    this.open();
    const { rows } = await this.q(
      this.pool,
      `SELECT least(
         (SELECT min(run_at) FROM {{schema}}.instance_state
           WHERE ${statusIn(DUE)} AND integration_id = ANY($1::text[])),
         (SELECT min(lease_until) FROM {{schema}}.instance_state
           WHERE ${statusIn(LEASED)} AND integration_id = ANY($1::text[]))) AS due`,
      [integrationIds],
    );
    return rows[0].due === null ? null : Number(rows[0].due);
  }

  onWake(listener: () => void): () => void {
    this.wakeListeners.add(listener);
    if (!this.listener && !this.listenerRetry) void this.listen();
    return () => {
      this.wakeListeners.delete(listener);
    };
  }

  /** A dedicated connection for LISTEN; reconnects after the server restarts. */
  private async listen(): Promise<void> {
    if (this.closed || this.wakeListeners.size === 0) return;
    const client = new pg.Client({ connectionString: this.options.url });
    const retry = (error?: Error) => {
      if (error) this.options.onError?.(error);
      if (this.listener === client) this.listener = null;
      client.removeAllListeners('error');
      client.on('error', () => {});
      client.end().catch(() => {});
      if (this.closed || this.listenerRetry) return;
      this.listenerRetry = setTimeout(() => {
        this.listenerRetry = null;
        void this.listen();
      }, 1_000);
      this.listenerRetry.unref();
      // Work may have arrived while we were not listening.
      for (const wake of this.wakeListeners) wake();
    };
    client.on('error', retry);
    client.on('end', () => {
      if (!this.closed) retry();
    });
    client.on('notification', (message) => {
      if (message.channel === WAKE_CHANNEL && message.payload === this.schema) {
        for (const wake of this.wakeListeners) wake();
      }
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${WAKE_CHANNEL}`);
      this.listener = client;
    } catch (error) {
      retry(error as Error);
    }
  }

  async countChildren(parentId: string): Promise<ChildCounts> {
    this.open();
    const counts: ChildCounts = emptyCounts();
    const { rows } = await this.q(
      this.pool,
      'SELECT status, count(*)::int AS n FROM {{schema}}.instances WHERE parent_id = $1 GROUP BY status',
      [parentId],
    );
    for (const row of rows as { status: keyof ChildCounts; n: number }[]) {
      counts[row.status] = row.n;
      counts.total += row.n;
    }
    return counts;
  }

  async ensureSchedule(integrationId: string, now: number): Promise<ScheduleState> {
    this.open();
    await this.q(
      this.pool,
      `INSERT INTO {{schema}}.schedules (integration_id, parameters, created_at, updated_at) VALUES ($1, '{}', $2, $2)
       ON CONFLICT (integration_id) DO NOTHING`,
      [integrationId, now],
    );
    return (await this.scheduleState(this.pool, integrationId))!;
  }

  async getSchedule(integrationId: string): Promise<ScheduleState | null> {
    this.open();
    return this.scheduleState(this.pool, integrationId);
  }

  private async scheduleState(db: Queryable, integrationId: string): Promise<ScheduleState | null> {
    const { rows } = await this.q(
      db,
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

  async fireSlot(request: FireRequest): Promise<FireOutcome> {
    return this.tx(async (client): Promise<FireOutcome> => {
      const { integrationId, slotAt, now } = request;
      // Lock the schedule's row: fires of one schedule from several processes take turns here.
      await this.q(
        client,
        `INSERT INTO {{schema}}.schedules (integration_id, parameters, created_at, updated_at) VALUES ($1, '{}', $2, $2)
         ON CONFLICT (integration_id) DO NOTHING`,
        [integrationId, now],
      );
      await this.q(client, 'SELECT 1 FROM {{schema}}.schedules WHERE integration_id = $1 FOR UPDATE', [
        integrationId,
      ]);
      const latest = await this.q(
        client,
        'SELECT max(slot_at) AS slot_at FROM {{schema}}.schedule_slots WHERE integration_id = $1',
        [integrationId],
      );
      const latestAt = latest.rows[0].slot_at === null ? null : Number(latest.rows[0].slot_at);
      if (latestAt !== null && latestAt >= slotAt) return { outcome: 'taken' };
      const record = async (outcome: 'fired' | 'skipped', instanceId: string) => {
        await this.q(
          client,
          'INSERT INTO {{schema}}.schedule_slots (integration_id, slot_at, outcome, instance_id, at) VALUES ($1, $2, $3, $4, $5)',
          [integrationId, slotAt, outcome, instanceId, now],
        );
        await this.q(
          client,
          `DELETE FROM {{schema}}.schedule_slots WHERE integration_id = $1 AND slot_at < (
             SELECT slot_at FROM {{schema}}.schedule_slots WHERE integration_id = $1
             ORDER BY slot_at DESC LIMIT 1 OFFSET $2)`,
          [integrationId, SLOTS_KEPT - 1],
        );
      };
      if (request.overlap === 'skip') {
        const active = await this.q(
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
      const [inserted] = await this.insertRows(client, [request.instance]);
      await record('fired', inserted!.id);
      return { outcome: 'fired', instanceId: inserted!.id };
    });
  }

  async listSlots(integrationId: string, limit: number): Promise<SlotRecord[]> {
    this.open();
    const { rows } = await this.q(
      this.pool,
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

  async updateParameters(integrationId: string, patchJson: string, now: number): Promise<ScheduleState> {
    this.open();
    await this.q(
      this.pool,
      `INSERT INTO {{schema}}.schedules (integration_id, parameters, created_at, updated_at) VALUES ($1, $2, $3, $3)
       ON CONFLICT (integration_id) DO UPDATE
         SET parameters = (schedules.parameters::jsonb || excluded.parameters::jsonb)::text, updated_at = excluded.updated_at`,
      [integrationId, patchJson, now],
    );
    return (await this.scheduleState(this.pool, integrationId))!;
  }

  /** Cheap reachability check. */
  async ping(): Promise<void> {
    this.open();
    await this.pool.query('SELECT 1');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.listenerRetry) clearTimeout(this.listenerRetry);
    const listener = this.listener;
    this.listener = null;
    if (listener) {
      listener.removeAllListeners('end');
      await listener.end().catch(() => {});
    }
    await this.pool.end();
  }
}

/**
 * The parallel arrays (instance id, state row, token) that lease statements unnest. The state rows
 * are also matched with `seq = ANY(…)`, so that they are found by key whatever the planner
 * estimates for the unnested rows.
 */
function leaseArrays(leases: Lease[]): [string[], (string | null)[], string[]] {
  return [
    leases.map((l) => l.instanceId),
    leases.map((l) => tokenSeq(l.claimToken)),
    leases.map((l) => l.claimToken),
  ];
}

/** WHERE clause of an instance filter with `$n` parameters starting at `first`. */
function filterSql(filter: InstanceFilter, first: number): { where: string; params: unknown[] } {
  const where: string[] = [];
  const params: unknown[] = [];
  const param = (value: unknown) => {
    params.push(value);
    return `$${first + params.length - 1}`;
  };
  const ids = asArray(filter.integrationId);
  const statuses = asArray(filter.status);
  if (filter.ids) where.push(`id = ANY(${param(filter.ids)}::text[])`);
  if (ids) where.push(`integration_id = ANY(${param(ids)}::text[])`);
  if (statuses) {
    where.push(`status = ANY(${param(statuses)}::text[])`);
    // Spelled out as well when only waiting statuses are asked for, so that the planner can prove
    // the predicate of the partial index instances_due and count the backlog from it alone.
    if (statuses.every((status) => DUE.includes(status))) where.push(statusIn(DUE));
  }
  if (filter.parentId !== undefined) where.push(`parent_id = ${param(filter.parentId)}`);
  if (filter.createdAfter !== undefined) where.push(`created_at >= ${param(filter.createdAfter)}`);
  if (filter.createdBefore !== undefined) where.push(`created_at < ${param(filter.createdBefore)}`);
  if (filter.runStartedAfter !== undefined) where.push(`run_started_at >= ${param(filter.runStartedAfter)}`);
  if (filter.tracking !== undefined) {
    const { name, value } = parseTrackingFilter(filter.tracking);
    const v = param(value);
    where.push(`(track_1 = ${v} OR track_2 = ${v} OR track_3 = ${v})`);
    if (name) where.push(`tracking ->> ${param(name)} = ${v}`);
  }
  return { where: where.length > 0 ? where.join(' AND ') : 'true', params };
}
