import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { StoreClosedError } from '../../errors.js';
import {
  ACTIVE,
  activity,
  allows,
  BLOCKS_FIRING,
  DUE,
  type EventHead,
  emptyCounts,
  FINAL,
  HOLDS_ORDER,
  LEASED,
  MEASURED,
  PURGEABLE,
  TRANSITIONS,
} from '../../lifecycle/index.js';
import type {
  ActivityEvent,
  ChildCounts,
  Instance,
  Mode,
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
  stepFromRow,
  trackingSlots,
  WORK_COLUMNS,
  type WorkRow,
  workFromRow,
} from '../rows.js';
import { assignments, type Dialect, eventColumns, statusIn, statusIs } from '../sql.js';
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
import { SQLITE_MIGRATIONS } from './migrations.js';

/** The rows a rerun by filter considers: final and durable (the rule is checked again per row). */
const RERUNNABLE = `${statusIn(FINAL)} AND mode <> 'sync'`;

export interface SqliteStoreOptions {
  /** File path, or `:memory:`. */
  path: string;
  /** `FULL` (default) survives power loss; `NORMAL` survives process crashes only. */
  synchronous?: 'FULL' | 'NORMAL' | 'OFF';
  /** SQLite page cache per connection, in KiB. Default 16 MiB: the hot index pages of a large table stay in memory. */
  cacheKiB?: number;
}

/** Slot records kept per schedule (the latest slot is what matters; the rest is history). */
const SLOTS_KEPT = 1_000;

/** How this store writes the lifecycle's SQL (`src/store/sql.ts`): named `@` parameters, SQLite's `max`. */
const SQLITE: Dialect = { param: (name) => `@${name}`, col: (name) => name, greatest: 'max' };

/**
 * The embedded store: one SQLite file in WAL mode. better-sqlite3 is synchronous, so each method
 * runs its transaction to completion before it returns; the engine's group commit is what batches
 * many callers into one transaction.
 */
export class SqliteStore implements Store {
  readonly db: Database.Database;
  private closed = false;
  private readonly stmt: ReturnType<typeof prepare>;
  private readonly synchronous: NonNullable<SqliteStoreOptions['synchronous']>;

  constructor(options: SqliteStoreOptions) {
    if (options.path !== ':memory:') mkdirSync(dirname(options.path), { recursive: true });
    this.db = new Database(options.path);
    this.db.pragma('journal_mode = WAL');
    this.synchronous = options.synchronous ?? 'FULL';
    this.db.pragma(`synchronous = ${this.synchronous}`);
    this.db.pragma('busy_timeout = 5000');
    this.db.pragma('foreign_keys = OFF');
    // Statement journals (every multi-row write keeps one) in memory: on disk, a transaction of a
    // few dozen rows spilled it to a temporary file that was created, written and unlinked per commit.
    this.db.pragma('temp_store = MEMORY');
    this.db.pragma(`cache_size = -${options.cacheKiB ?? 16_384}`);
    migrate(this.db);
    this.stmt = prepare(this.db);
  }

  private open(): void {
    if (this.closed) throw new StoreClosedError();
  }

  async insertInstances(rows: NewInstance[], options?: InsertOptions): Promise<InsertOutcome[]> {
    this.open();
    // In WAL mode NORMAL skips the commit's fsync; the next FULL commit syncs these frames too.
    if (options?.flush === false && this.synchronous === 'FULL') {
      this.db.pragma('synchronous = NORMAL');
      try {
        return this.insertRows(rows);
      } finally {
        this.db.pragma('synchronous = FULL');
      }
    }
    return this.insertRows(rows);
  }

  private insertRows(rows: NewInstance[]): InsertOutcome[] {
    return this.db.transaction(() => {
      const outcomes: InsertOutcome[] = [];
      let at = 0;
      // Groups of INSERT_GROUP rows per statement: one statement run (cursors on the table and its
      // indexes opened once) instead of one per row.
      for (; at + INSERT_GROUP <= rows.length; at += INSERT_GROUP) {
        const params: unknown[] = [];
        for (let i = at; i < at + INSERT_GROUP; i++) pushInsertParams(params, rows[i]!);
        const { changes } = this.stmt.insertGroup.run(params);
        this.settle(rows, at, at + INSERT_GROUP, changes === INSERT_GROUP, outcomes);
      }
      for (; at < rows.length; at++) this.insertSingle(rows, at, outcomes);
      return outcomes;
    })();
  }

  private insertSingle(rows: NewInstance[], at: number, outcomes: InsertOutcome[]): void {
    const params: unknown[] = [];
    pushInsertParams(params, rows[at]!);
    const { changes } = this.stmt.insertInstance.run(params);
    this.settle(rows, at, at + 1, changes === 1, outcomes);
  }

  /**
   * Outcomes of rows[from, to) just inserted with ON CONFLICT DO NOTHING: all created when the
   * statement changed every row; otherwise a row is created when its (fresh) id is there, and a
   * repeated idempotency key returns the instance that holds it. Accepted events follow.
   */
  private settle(
    rows: NewInstance[],
    from: number,
    to: number,
    allCreated: boolean,
    outcomes: InsertOutcome[],
  ): void {
    // One head for the rows of a statement (activity() copies it): no object per accepted row.
    const head: EventHead = { instanceId: '', integrationId: '', run: 1, at: 0 };
    for (let i = from; i < to; i++) {
      const row = rows[i]!;
      if (!allCreated && this.stmt.idExists.get(row.id) === undefined) {
        const existing = this.stmt.byIdempotencyKey.get(row.integrationId, row.idempotencyKey) as
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
      if (row.status === TRANSITIONS.accept.to && row.announce !== false) {
        head.instanceId = row.id;
        head.integrationId = row.integrationId;
        head.at = row.createdAt;
        this.insertEvent(activity('accepted', head, row.parentId ? { parentId: row.parentId } : {}));
      }
      outcomes.push({ id: row.id, created: true, status: row.status, inputHash: row.inputHash });
    }
  }

  private insertEvent(event: NewActivityEvent): void {
    this.stmt.insertEvent.run(...eventFields(event));
  }

  async claim(request: ClaimRequest): Promise<ClaimedInstance[]> {
    this.open();
    if (request.limit <= 0 || request.integrationIds.length === 0) return [];
    return this.db.transaction(() => {
      const ids = JSON.stringify(request.integrationIds);
      const expired = this.stmt.expiredLeases.all(request.now, ids, request.limit) as {
        seq: number;
      }[];
      const due = expired.length < request.limit ? this.due(request, request.limit - expired.length) : [];
      // An attempt that did not count (RetryAfterError without consuming one, a released lease) leaves
      // attempt at 1: whether the instance ran before, not the attempt number, says if steps exist.
      const resumed = new Set(due.filter((r) => r.resumed === 1).map((r) => Number(r.seq)));
      const claimed: ClaimedInstance[] = [];
      const batchToken = randomUUID();
      for (const [list, takenOver] of [
        [expired, true],
        [due, false],
      ] as const) {
        if (list.length === 0) continue;
        const seqs = JSON.stringify(list.map((r) => r.seq));
        if (takenOver) this.stmt.leaseExpiredEvents.run({ seqs, now: request.now });
        // One statement for the whole batch; each claim token is the batch token plus the row's seq.
        const rows = (takenOver ? this.stmt.takeOverMany : this.stmt.claimMany).all({
          seqs,
          token: batchToken,
          owner: request.owner,
          lease_until: request.now + request.leaseMs,
          now: request.now,
        }) as WorkRow[];
        this.stmt.startedEvents.run({ seqs, now: request.now });
        rows.sort((a, b) => Number(a.seq) - Number(b.seq));
        for (const row of rows) {
          const instance = workFromRow(row);
          const steps =
            takenOver || instance.attempt > 1 || instance.run > 1 || resumed.has(instance.seq)
              ? (this.stmt.stepsOfRun.all(instance.id, instance.run) as StepRow[]).map(stepFromRow)
              : [];
          claimed.push({ instance, claimToken: `${batchToken}.${row.seq}`, steps, takenOver });
        }
      }
      return claimed;
    })();
  }

  /**
   * The first `limit` due instances of the requested integrations in (run_at, seq) order: each
   * integration's first rows along its part of instances_due, merged. One scan over all due rows
   * would walk past the backlog of integrations this process does not run.
   */
  private due(request: ClaimRequest, limit: number): { seq: number; resumed: number }[] {
    const ids = [...new Set(request.integrationIds)];
    const rows: { seq: number; resumed: number; run_at: number }[] = [];
    for (const id of ids) {
      rows.push(...(this.stmt.dueInstances.all(request.now, id, limit) as typeof rows));
    }
    if (ids.length === 1) return rows;
    rows.sort((a, b) => a.run_at - b.run_at || a.seq - b.seq);
    return rows.slice(0, limit);
  }

  async extendLeases(leases: Lease[], leaseUntil: number): Promise<string[]> {
    this.open();
    return this.db.transaction(() => {
      const lost: string[] = [];
      // One parameter object for every lease of the call.
      const params = { lease_until: leaseUntil, id: '', token: '' };
      for (const lease of leases) {
        params.id = lease.instanceId;
        params.token = lease.claimToken;
        const result = this.stmt.extendLease.run(params);
        if (result.changes === 0) lost.push(lease.instanceId);
      }
      return lost;
    })();
  }

  async releaseLeases(leases: Lease[], now: number): Promise<void> {
    this.open();
    this.db.transaction(() => {
      for (const lease of leases)
        this.stmt.releaseLease.run({ now, id: lease.instanceId, token: lease.claimToken });
    })();
  }

  async commit(batch: WorkBatch): Promise<WorkBatchResult> {
    this.open();
    return this.db.transaction(() => {
      const lost = new Set<string>();
      const held = new Set<string>();
      const holds = (lease: Lease) => {
        if (held.has(lease.instanceId)) return true;
        if (lost.has(lease.instanceId)) return false;
        const row = this.stmt.claimTokenOf.get(lease.instanceId) as
          | { claim_token: string | null }
          | undefined;
        if (row?.claim_token === lease.claimToken) held.add(lease.instanceId);
        else lost.add(lease.instanceId);
        return held.has(lease.instanceId);
      };
      for (const event of batch.events) this.insertEvent(event);
      for (const write of batch.steps) {
        if (!holds(write)) continue;
        const { step } = write;
        this.stmt.upsertStep.run({
          instance_id: step.instanceId,
          run: step.run,
          name: step.name,
          position: step.position,
          status: step.status,
          output: write.outputJson,
          error: step.error ? JSON.stringify(step.error) : null,
          attempt: step.attempt,
          started_at: step.startedAt,
          finished_at: step.finishedAt,
        });
        for (const event of write.events) this.insertEvent(event);
      }
      for (const finish of batch.finishes) {
        if (lost.has(finish.instanceId)) continue;
        const { outcome } = finish;
        const common = {
          id: finish.instanceId,
          token: finish.claimToken,
          now: finish.now,
          duration: finish.durationMs,
        };
        // The UPDATE is guarded by the claim token itself: no row changed means the lease was lost.
        const result =
          outcome.kind === 'succeeded'
            ? this.stmt.finishSucceeded.run({ ...common, output: outcome.outputJson })
            : outcome.kind === 'failed'
              ? this.stmt.finishFailed.run({ ...common, error: JSON.stringify(outcome.error) })
              : this.stmt.finishRetry.run({
                  ...common,
                  error: JSON.stringify(outcome.error),
                  run_at: outcome.runAt,
                  refund: outcome.consumesAttempt ? 0 : 1,
                });
        if (result.changes === 0) {
          lost.add(finish.instanceId);
          continue;
        }
        held.delete(finish.instanceId);
        if (outcome.kind === 'succeeded' && finish.parameters) {
          this.mergeParameters(finish.parameters.integrationId, finish.parameters.patchJson, finish.now);
        }
        for (const event of finish.events) this.insertEvent(event);
      }
      return { lost: [...lost] };
    })();
  }

  async rerun(request: RerunRequest): Promise<TransitionOutcome[]> {
    this.open();
    return this.db.transaction(() => {
      const rows = request.ids
        ? request.ids.map(
            (id) => (this.stmt.byId.get(id) as InstanceRow | undefined) ?? ({ id, missing: true } as const),
          )
        : this.selectRows({ ...request.filter }, RERUNNABLE);
      return rows.map((row): TransitionOutcome => {
        if ('missing' in row) return { id: row.id, outcome: 'not-found' };
        const status = row.status as Instance['status'];
        if (!allows(TRANSITIONS.rerun, row)) {
          return { id: row.id, outcome: 'invalid-state', status };
        }
        const current = currentRunFromRow(row);
        this.stmt.archiveRun.run({
          instance_id: row.id,
          run: row.run,
          run_from: current.from,
          status: current.status,
          input: row.input,
          output: row.output,
          error: row.error,
          started_at: current.startedAt,
          finished_at: current.finishedAt,
        });
        const next = row.run + 1;
        if (request.from === 'failed-step') this.stmt.seedSteps.run(next, row.id, row.run);
        this.stmt.startRun.run({
          id: row.id,
          run: next,
          run_from: request.from,
          input: request.inputJson ?? row.input,
          now: request.now,
        });
        this.insertEvent(
          activity(
            'rerun',
            { instanceId: row.id, integrationId: row.integration_id, run: next, at: request.now },
            { from: request.from, previousStatus: status, inputReplaced: request.inputJson !== undefined },
          ),
        );
        return { id: row.id, outcome: 'done', run: next };
      });
    })();
  }

  async cancel(ids: string[], now: number): Promise<TransitionOutcome[]> {
    this.open();
    return this.db.transaction(() =>
      ids.map((id): TransitionOutcome => {
        const row = this.stmt.byId.get(id) as InstanceRow | undefined;
        if (!row) return { id, outcome: 'not-found' };
        const status = row.status as Instance['status'];
        if (!allows(TRANSITIONS.cancel, row)) {
          return { id, outcome: 'invalid-state', status };
        }
        this.stmt.cancelOne.run({ now, id });
        this.insertEvent(
          activity(
            'cancelled',
            { instanceId: id, integrationId: row.integration_id, run: row.run, at: now },
            { previousStatus: status },
          ),
        );
        return { id, outcome: 'done', run: row.run };
      }),
    )();
  }

  async getInstance(id: string): Promise<Instance | null> {
    this.open();
    const row = this.stmt.byId.get(id) as InstanceRow | undefined;
    return row ? instanceFromRow(row) : null;
  }

  async listInstances(request: ListRequest): Promise<Page<Instance>> {
    this.open();
    const limit = Math.max(1, Math.min(request.limit, 1000));
    const extra: string[] = [];
    const params: unknown[] = [];
    if (request.cursor) {
      extra.push('seq < ?');
      params.push(Number(request.cursor));
    }
    const rows = this.selectRows(request, extra.join(' AND ') || null, params, limit + 1);
    const items = rows.slice(0, limit).map(instanceFromRow);
    const last = items[items.length - 1];
    return { items, nextCursor: rows.length > limit && last ? String(last.seq) : null };
  }

  async countInstances(filter: InstanceFilter): Promise<number> {
    this.open();
    const { where, params } = filterSql(filter);
    return (
      this.db.prepare(`SELECT count(*) AS n FROM instances WHERE ${where}`).get(...params) as { n: number }
    ).n;
  }

  private selectRows(
    filter: InstanceFilter,
    extra: string | null,
    extraParams: unknown[] = [],
    limit?: number,
  ) {
    const { where, params } = filterSql(filter);
    const sql = `SELECT * FROM instances WHERE ${where}${extra ? ` AND ${extra}` : ''} ORDER BY seq DESC${
      limit ? ` LIMIT ${limit}` : ''
    }`;
    return this.db.prepare(sql).all(...params, ...extraParams) as InstanceRow[];
  }

  async getRuns(instanceId: string): Promise<Run[]> {
    this.open();
    const row = this.stmt.byId.get(instanceId) as InstanceRow | undefined;
    if (!row) return [];
    const archived = (this.stmt.runsOf.all(instanceId) as RunRow[]).map(runFromRow);
    return [...archived, currentRunFromRow(row)];
  }

  async getSteps(instanceId: string, run?: number): Promise<Step[]> {
    this.open();
    const rows =
      run === undefined ? this.stmt.stepsOf.all(instanceId) : this.stmt.stepsOfRun.all(instanceId, run);
    return (rows as StepRow[]).map(stepFromRow);
  }

  async getEvents(query: EventQuery): Promise<ActivityEvent[]> {
    this.open();
    const where = ['id > ?'];
    const params: unknown[] = [query.afterId ?? 0];
    if (query.instanceId) {
      where.push('instance_id = ?');
      params.push(query.instanceId);
    }
    if (query.integrationId) {
      where.push('integration_id = ?');
      params.push(query.integrationId);
    }
    const rows = this.db
      .prepare(`SELECT * FROM events WHERE ${where.join(' AND ')} ORDER BY id LIMIT ?`)
      .all(...params, Math.max(1, Math.min(query.limit, 10_000))) as EventRow[];
    return rows.map(eventFromRow);
  }

  async readEventStream(request: EventStreamRequest): Promise<EventStreamPage> {
    this.open();
    // One writer: ids are assigned in commit order, so the id itself is a gap-free cursor.
    const after = Number.parseInt(request.after, 10) || 0;
    return this.db.transaction(() => {
      const where = ['e.id > ?'];
      const params: unknown[] = [after];
      let join = '';
      if (request.integrationId) {
        where.push('e.integration_id = ?');
        params.push(request.integrationId);
      }
      if (request.types) {
        where.push('e.type IN (SELECT value FROM json_each(?))');
        params.push(JSON.stringify(request.types));
      }
      if (request.tracking !== undefined) {
        const { name, value } = parseTrackingFilter(request.tracking);
        join = 'JOIN instances i ON i.id = e.instance_id';
        where.push('(i.track_1 = ? OR i.track_2 = ? OR i.track_3 = ?)');
        params.push(value, value, value);
        if (name) {
          where.push('json_extract(i.tracking, ?) = ?');
          params.push(`$."${name}"`, value);
        }
      }
      const limit = Math.max(1, Math.min(request.limit, 10_000));
      const rows = this.db
        .prepare(`SELECT e.* FROM events e ${join} WHERE ${where.join(' AND ')} ORDER BY e.id LIMIT ?`)
        .all(...params, limit) as EventRow[];
      const events = rows.map((row) => ({ ...eventFromRow(row), cursor: String(row.id) }));
      const head = (this.db.prepare('SELECT coalesce(max(id), 0) AS id FROM events').get() as { id: number })
        .id;
      const last = events[events.length - 1];
      return { events, cursor: rows.length === limit && last ? last.cursor : String(Math.max(head, after)) };
    })();
  }

  isStreamCursor(cursor: string): boolean {
    // An event id, as issued: no sign, no leading zero, no exponent.
    return /^(?:0|[1-9]\d{0,15})$/.test(cursor) && Number.isSafeInteger(Number(cursor));
  }

  async eventStreamHead(): Promise<string> {
    this.open();
    return String(
      (this.db.prepare('SELECT coalesce(max(id), 0) AS id FROM events').get() as { id: number }).id,
    );
  }

  async integrationStats(request: StatsRequest): Promise<IntegrationStats[]> {
    this.open();
    const window = { since: request.since, until: request.until };
    const rows = this.db
      .prepare(
        `SELECT integration_id, mode, count(*) AS total,
           sum(${statusIs('succeeded')}) AS succeeded, sum(${statusIs('failed')}) AS failed,
           sum(${statusIs('cancelled')}) AS cancelled, sum(${statusIn(ACTIVE)}) AS active,
           sum(${statusIn(MEASURED)} AND duration_ms IS NOT NULL) AS timed,
           coalesce(avg(CASE WHEN ${statusIn(MEASURED)} THEN max(attempt - 1, 0) END), 0) AS retries
         FROM instances WHERE created_at >= @since AND created_at < @until
         GROUP BY integration_id, mode ORDER BY integration_id`,
      )
      .all(window) as {
      integration_id: string;
      mode: Mode;
      total: number;
      succeeded: number;
      failed: number;
      cancelled: number;
      active: number;
      timed: number;
      retries: number;
    }[];
    const rank = this.db.prepare(
      `SELECT duration_ms FROM instances
       WHERE integration_id = @id AND created_at >= @since AND created_at < @until
         AND ${statusIn(MEASURED)} AND duration_ms IS NOT NULL
       ORDER BY duration_ms LIMIT 1 OFFSET @offset`,
    );
    const errors = this.db.prepare(
      `SELECT json_extract(error, '$.code') AS code, count(*) AS count FROM instances
       WHERE integration_id = @id AND created_at >= @since AND created_at < @until AND ${statusIs('failed')}
       GROUP BY code ORDER BY count DESC, code LIMIT 5`,
    );
    const byConnection = this.db.prepare(
      `SELECT json_extract(error, '$.details.connection') AS connection, count(*) AS count FROM instances
       WHERE integration_id = @id AND created_at >= @since AND created_at < @until AND ${statusIs('failed')}
         AND json_extract(error, '$.details.connection') IS NOT NULL
       GROUP BY connection`,
    );
    return rows.map((row) => {
      // Nearest rank: the smallest value with at least p of the values at or below it.
      const percentile = (p: number) =>
        row.timed === 0
          ? null
          : (
              rank.get({ ...window, id: row.integration_id, offset: Math.ceil(p * row.timed) - 1 }) as {
                duration_ms: number;
              }
            ).duration_ms;
      return {
        integrationId: row.integration_id,
        mode: row.mode,
        total: row.total,
        succeeded: row.succeeded,
        failed: row.failed,
        cancelled: row.cancelled,
        active: row.active,
        p50: percentile(0.5),
        p95: percentile(0.95),
        p99: percentile(0.99),
        retriesPerInstance: row.retries,
        errors: errors.all({ ...window, id: row.integration_id }) as { code: string | null; count: number }[],
        failuresByConnection: Object.fromEntries(
          (
            byConnection.all({ ...window, id: row.integration_id }) as { connection: string; count: number }[]
          ).map((r) => [r.connection, r.count]),
        ),
      };
    });
  }

  async purge(request: PurgeRequest): Promise<number> {
    this.open();
    return this.db.transaction(() => {
      const ids = (
        this.db
          .prepare(
            // A cutoff that is NULL matches nothing: that outcome is kept.
            `SELECT id FROM instances
             WHERE (${statusIn(PURGEABLE)} AND finished_at < @finished)
                OR (${statusIs('failed')} AND mode = 'sync' AND finished_at < @failed_sync)
                OR (${statusIs('failed')} AND mode <> 'sync' AND ordering_key IS NULL AND finished_at < @failed)
             LIMIT @limit`,
          )
          .all({
            finished: request.finishedBefore,
            failed_sync: request.failedSyncBefore ?? null,
            failed: request.failedBefore ?? null,
            limit: request.limit,
          }) as { id: string }[]
      ).map((r) => r.id);
      if (ids.length === 0) return 0;
      const list = JSON.stringify(ids);
      for (const table of ['events', 'steps', 'runs']) {
        this.db
          .prepare(`DELETE FROM ${table} WHERE instance_id IN (SELECT value FROM json_each(?))`)
          .run(list);
      }
      return this.db.prepare('DELETE FROM instances WHERE id IN (SELECT value FROM json_each(?))').run(list)
        .changes;
    })();
  }

  async nextDueAt(integrationIds: string[]): Promise<number | null> {
    this.open();
    let due: number | null = null;
    for (const id of new Set(integrationIds)) {
      const row = this.stmt.nextQueued.get(id) as { due: number | null };
      if (row.due !== null && (due === null || row.due < due)) due = row.due;
    }
    const lease = this.stmt.nextLeaseEnd.get(JSON.stringify(integrationIds)) as { due: number | null };
    if (lease.due !== null && (due === null || lease.due < due)) due = lease.due;
    return due;
  }

  async ping(): Promise<void> {
    this.open();
    this.stmt.ping.get();
  }

  async countChildren(parentId: string): Promise<ChildCounts> {
    this.open();
    const counts: ChildCounts = emptyCounts();
    for (const row of this.stmt.childCounts.all(parentId) as { status: keyof ChildCounts; n: number }[]) {
      counts[row.status] = row.n;
      counts.total += row.n;
    }
    return counts;
  }

  async ensureSchedule(integrationId: string, now: number): Promise<ScheduleState> {
    this.open();
    return this.db.transaction(() => {
      this.stmt.ensureSchedule.run({ id: integrationId, now });
      return this.scheduleState(integrationId)!;
    })();
  }

  async getSchedule(integrationId: string): Promise<ScheduleState | null> {
    this.open();
    return this.scheduleState(integrationId);
  }

  private scheduleState(integrationId: string): ScheduleState | null {
    const row = this.stmt.scheduleById.get({ id: integrationId }) as
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

  async fireSlot(request: FireRequest): Promise<FireOutcome> {
    this.open();
    // IMMEDIATE: take the write lock before reading, so that two processes cannot both see the slot free.
    return this.db
      .transaction((): FireOutcome => {
        const { integrationId, slotAt, now } = request;
        const latest = (this.stmt.latestSlot.get(integrationId) as { slot_at: number | null }).slot_at;
        if (latest !== null && latest >= slotAt) return { outcome: 'taken' };
        if (request.overlap === 'skip') {
          const active = this.stmt.activeScheduled.get(integrationId) as { id: string } | undefined;
          if (active) {
            this.stmt.insertSlot.run(integrationId, slotAt, 'skipped', active.id, now);
            this.pruneSlots(integrationId);
            return { outcome: 'skipped', activeInstanceId: active.id };
          }
        }
        const outcomes: InsertOutcome[] = [];
        this.insertSingle([request.instance], 0, outcomes);
        const inserted = outcomes[0]!;
        this.stmt.insertSlot.run(integrationId, slotAt, 'fired', inserted.id, now);
        this.pruneSlots(integrationId);
        return { outcome: 'fired', instanceId: inserted.id };
      })
      .immediate();
  }

  private pruneSlots(integrationId: string): void {
    this.stmt.pruneSlots.run({ id: integrationId, keep: SLOTS_KEPT });
  }

  async listSlots(integrationId: string, limit: number): Promise<SlotRecord[]> {
    this.open();
    const rows = this.stmt.slotsOf.all(integrationId, Math.max(1, Math.min(limit, SLOTS_KEPT))) as {
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

  async updateParameters(integrationId: string, patchJson: string, now: number): Promise<ScheduleState> {
    this.open();
    return this.db.transaction(() => {
      this.mergeParameters(integrationId, patchJson, now);
      return this.scheduleState(integrationId)!;
    })();
  }

  /** Read, merge and write in the caller's transaction (json_patch would drop keys set to null). */
  private mergeParameters(integrationId: string, patchJson: string, now: number): void {
    this.stmt.ensureSchedule.run({ id: integrationId, now });
    const row = this.stmt.scheduleById.get({ id: integrationId }) as { parameters: string };
    const merged = {
      ...(JSON.parse(row.parameters) as Parameters),
      ...(JSON.parse(patchJson) as Parameters),
    };
    this.stmt.setParameters.run(JSON.stringify(merged), now, integrationId);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.db.close();
  }
}

function migrate(db: Database.Database): void {
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

/** WHERE clause of an instance filter, with positional parameters. */
function filterSql(filter: InstanceFilter): { where: string; params: unknown[] } {
  const where: string[] = [];
  const params: unknown[] = [];
  const inList = (column: string, values: unknown[] | undefined) => {
    if (values === undefined) return;
    where.push(`${column} IN (SELECT value FROM json_each(?))`);
    params.push(JSON.stringify(values));
  };
  inList('id', filter.ids);
  inList('integration_id', asArray(filter.integrationId));
  inList('status', asArray(filter.status));
  if (filter.parentId !== undefined) {
    where.push('parent_id = ?');
    params.push(filter.parentId);
  }
  if (filter.createdAfter !== undefined) {
    where.push('created_at >= ?');
    params.push(filter.createdAfter);
  }
  if (filter.createdBefore !== undefined) {
    where.push('created_at < ?');
    params.push(filter.createdBefore);
  }
  if (filter.runStartedAfter !== undefined) {
    where.push('run_started_at >= ?');
    params.push(filter.runStartedAfter);
  }
  if (filter.tracking !== undefined) {
    const { name, value } = parseTrackingFilter(filter.tracking);
    where.push('(track_1 = ? OR track_2 = ? OR track_3 = ?)');
    params.push(value, value, value);
    if (name) {
      where.push('json_extract(tracking, ?) = ?');
      params.push(`$."${name}"`, value);
    }
  }
  return { where: where.length > 0 ? where.join(' AND ') : '1 = 1', params };
}

/** Rows per INSERT statement of insertInstances (22 parameters each). */
const INSERT_GROUP = 50;

function insertSql(rows: number): string {
  // run = 1, attempt = 0; run_started_at and updated_at are created_at.
  const values = '(?, ?, ?, ?, ?, ?, ?, ?, 1, ?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)';
  return `INSERT INTO instances (id, integration_id, mode, status, input, input_hash, output, error, run,
      run_started_at, attempt, tracking, track_1, track_2, track_3, ordering_key, idempotency_key, parent_id,
      created_at, updated_at, run_at, started_at, finished_at, duration_ms)
    VALUES ${Array.from({ length: rows }, () => values).join(', ')}
    ON CONFLICT DO NOTHING`;
}

/** The parameters of one row of insertSql, in its column order. */
function pushInsertParams(params: unknown[], row: NewInstance): void {
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
  );
}

function prepare(db: Database.Database) {
  return {
    insertInstance: db.prepare(insertSql(1)),
    insertGroup: db.prepare(insertSql(INSERT_GROUP)),
    idExists: db.prepare('SELECT 1 FROM instances WHERE id = ?'),
    byIdempotencyKey: db.prepare(
      'SELECT id, status, input_hash FROM instances WHERE integration_id = ? AND idempotency_key = ?',
    ),
    byId: db.prepare('SELECT * FROM instances WHERE id = ?'),
    ping: db.prepare('SELECT 1'),
    claimTokenOf: db.prepare('SELECT claim_token FROM instances WHERE id = ?'),
    insertEvent: db.prepare(
      'INSERT INTO events (instance_id, integration_id, run, type, at, data) VALUES (?, ?, ?, ?, ?, ?)',
    ),
    expiredLeases: db.prepare(`
      SELECT seq FROM instances INDEXED BY instances_lease
      WHERE ${statusIn(LEASED)} AND lease_until < ?
        AND integration_id IN (SELECT value FROM json_each(?))
      ORDER BY lease_until LIMIT ?`),
    // INDEXED BY: without statistics the planner prefers instances_status and sorts every queued
    // row per claim; the partial index walks due rows in order and stops at the limit.
    // An instance with an ordering key is claimable only when no earlier instance with the same key
    // still holds it (queued, running, retrying or failed) and no other one is running (a rerun can
    // put an earlier instance back in the queue while a later one runs).
    dueInstances: db.prepare(`
      SELECT seq, started_at IS NOT NULL AS resumed, run_at FROM instances AS i INDEXED BY instances_due
      WHERE ${statusIn(DUE)} AND run_at <= ? AND integration_id = ?
        AND (ordering_key IS NULL OR NOT EXISTS (
          SELECT 1 FROM instances AS j
          WHERE j.ordering_key = i.ordering_key AND j.seq <> i.seq
             AND (${statusIn(LEASED, 'j.status')} OR (j.seq < i.seq AND ${statusIn(HOLDS_ORDER, 'j.status')}))))
      ORDER BY run_at, seq LIMIT ?`),
    // The rows were chosen in the same transaction (due, or leased with the lease run out).
    claimMany: db.prepare(`
      UPDATE instances SET ${assignments(TRANSITIONS.claim, SQLITE)}
      WHERE seq IN (SELECT value FROM json_each(@seqs)) RETURNING ${WORK_COLUMNS}`),
    takeOverMany: db.prepare(`
      UPDATE instances SET ${assignments(TRANSITIONS.takeOver, SQLITE)}
      WHERE seq IN (SELECT value FROM json_each(@seqs)) RETURNING ${WORK_COLUMNS}`),
    startedEvents: db.prepare(`
      INSERT INTO events (instance_id, integration_id, run, at, type, data)
      SELECT id, integration_id, run, @now, ${eventColumns('started', { attempt: 'attempt' }, 'json_object')}
      FROM instances WHERE seq IN (SELECT value FROM json_each(@seqs)) ORDER BY seq`),
    leaseExpiredEvents: db.prepare(`
      INSERT INTO events (instance_id, integration_id, run, at, type, data)
      SELECT id, integration_id, run, @now, ${eventColumns('lease.expired', { attempt: 'attempt', owner: 'lease_owner' }, 'json_object')}
      FROM instances WHERE seq IN (SELECT value FROM json_each(@seqs)) ORDER BY seq`),
    stepsOfRun: db.prepare('SELECT * FROM steps WHERE instance_id = ? AND run = ? ORDER BY position'),
    stepsOf: db.prepare('SELECT * FROM steps WHERE instance_id = ? ORDER BY run, position'),
    runsOf: db.prepare('SELECT * FROM runs WHERE instance_id = ? ORDER BY run'),
    extendLease: db.prepare(`
      UPDATE instances SET ${assignments(TRANSITIONS.renew, SQLITE)}
      WHERE id = @id AND claim_token = @token AND ${statusIn(TRANSITIONS.renew.from)}`),
    releaseLease: db.prepare(`
      UPDATE instances SET ${assignments(TRANSITIONS.release, SQLITE)}
      WHERE id = @id AND claim_token = @token AND ${statusIn(TRANSITIONS.release.from)}`),
    upsertStep: db.prepare(`
      INSERT INTO steps (instance_id, run, name, position, status, output, error, attempt, started_at, finished_at, seeded)
      VALUES (@instance_id, @run, @name, @position, @status, @output, @error, @attempt, @started_at, @finished_at, 0)
      ON CONFLICT (instance_id, run, name) DO UPDATE SET position = excluded.position, status = excluded.status, output = excluded.output,
        error = excluded.error, attempt = excluded.attempt, started_at = excluded.started_at,
        finished_at = excluded.finished_at, seeded = 0`),
    // Guarded by the claim token alone: only the attempt holding the lease has it.
    finishSucceeded: db.prepare(`
      UPDATE instances SET ${assignments(TRANSITIONS.succeed, SQLITE)} WHERE id = @id AND claim_token = @token`),
    finishFailed: db.prepare(`
      UPDATE instances SET ${assignments(TRANSITIONS.fail, SQLITE)} WHERE id = @id AND claim_token = @token`),
    finishRetry: db.prepare(`
      UPDATE instances SET ${assignments(TRANSITIONS.retry, SQLITE)} WHERE id = @id AND claim_token = @token`),
    archiveRun: db.prepare(`
      INSERT INTO runs (instance_id, run, run_from, status, input, output, error, started_at, finished_at)
      VALUES (@instance_id, @run, @run_from, @status, @input, @output, @error, @started_at, @finished_at)`),
    seedSteps: db.prepare(`
      INSERT INTO steps (instance_id, run, name, position, status, output, error, attempt, started_at, finished_at, seeded)
      SELECT instance_id, ?, name, position, status, output, error, attempt, started_at, finished_at, 1
      FROM steps WHERE instance_id = ? AND run = ? AND status = 'succeeded'`),
    // Rerun and cancel: whether the row may make the transition is decided in TypeScript (`allows`).
    startRun: db.prepare(`UPDATE instances SET ${assignments(TRANSITIONS.rerun, SQLITE)} WHERE id = @id`),
    cancelOne: db.prepare(`UPDATE instances SET ${assignments(TRANSITIONS.cancel, SQLITE)} WHERE id = @id`),
    childCounts: db.prepare(
      'SELECT status, count(*) AS n FROM instances WHERE parent_id = ? GROUP BY status',
    ),
    ensureSchedule: db.prepare(`
      INSERT INTO schedules (integration_id, parameters, created_at, updated_at) VALUES (@id, '{}', @now, @now)
      ON CONFLICT (integration_id) DO NOTHING`),
    scheduleById: db.prepare(`
      SELECT parameters, created_at, updated_at,
        (SELECT max(slot_at) FROM schedule_slots WHERE integration_id = @id) AS last_slot_at
      FROM schedules WHERE integration_id = @id`),
    setParameters: db.prepare('UPDATE schedules SET parameters = ?, updated_at = ? WHERE integration_id = ?'),
    latestSlot: db.prepare('SELECT max(slot_at) AS slot_at FROM schedule_slots WHERE integration_id = ?'),
    activeScheduled: db.prepare(`
      SELECT id FROM instances INDEXED BY instances_scheduled_active
      WHERE integration_id = ? AND mode = 'scheduled' AND ${statusIn(BLOCKS_FIRING)} LIMIT 1`),
    insertSlot: db.prepare(
      'INSERT INTO schedule_slots (integration_id, slot_at, outcome, instance_id, at) VALUES (?, ?, ?, ?, ?)',
    ),
    pruneSlots: db.prepare(`
      DELETE FROM schedule_slots WHERE integration_id = @id AND slot_at < (
        SELECT slot_at FROM schedule_slots WHERE integration_id = @id ORDER BY slot_at DESC LIMIT 1 OFFSET @keep - 1)`),
    slotsOf: db.prepare(
      'SELECT slot_at, outcome, instance_id, at FROM schedule_slots WHERE integration_id = ? ORDER BY slot_at DESC LIMIT ?',
    ),
    nextQueued: db.prepare(`
      SELECT min(run_at) AS due FROM instances INDEXED BY instances_due
      WHERE ${statusIn(DUE)} AND integration_id = ?`),
    nextLeaseEnd: db.prepare(`
      SELECT min(lease_until) AS due FROM instances INDEXED BY instances_lease
      WHERE ${statusIn(LEASED)} AND integration_id IN (SELECT value FROM json_each(?))`),
  };
}

/** Opens the SQLite store at a path (`sqlite:./x.db` URLs are resolved by `openStore`). */
export function openSqliteStore(options: SqliteStoreOptions): SqliteStore {
  return new SqliteStore(options);
}
