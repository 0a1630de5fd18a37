/**
 * The embedded store (SQLite through better-sqlite3): its connection, and the writes of the
 * instance lifecycle (accept, claim, lease renewal and release, an attempt's commit, rerun, cancel,
 * retention). Statements are prepared once (statements.ts); reads, schedules and durable waits
 * have files of their own (reads.ts, schedules.ts, waits.ts).
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { StoreClosedError } from '../../errors.js';
import { activity, actorData, allows, FINAL, PURGEABLE, TRANSITIONS } from '../../lifecycle/index.js';
import type { ActivityEvent, Actor, ChildCounts, Instance, Run, Step } from '../../model.js';
import {
  currentRunFromRow,
  type InstanceRow,
  type StepRow,
  stepFromRow,
  type WorkRow,
  workFromRow,
} from '../rows.js';
import { statusIn, statusIs } from '../sql.js';
import type {
  AcknowledgeRequest,
  ArmCallback,
  CallbackOutcome,
  ClaimedInstance,
  ClaimFilesRequest,
  ClaimRequest,
  EventQuery,
  EventStreamPage,
  EventStreamRequest,
  FeedAdvance,
  FeedClaim,
  FileClaim,
  FileKey,
  FireOutcome,
  FireRequest,
  InsertOptions,
  InsertOutcome,
  InstanceFilter,
  IntegrationStats,
  Lease,
  ListRequest,
  NewBusinessEvent,
  NewInstance,
  OrderingHolder,
  OverviewFigures,
  OverviewRequest,
  Page,
  PurgeRequest,
  RerunRequest,
  RunKey,
  ScheduleState,
  SentEventOutcome,
  SlotRecord,
  StatsRequest,
  Store,
  TransitionOutcome,
  WaitKey,
  WaitRecord,
  WorkBatch,
  WorkBatchResult,
} from '../store.js';
import * as fileClaims from './file-claims.js';
import { EventGroups, insertEvent, insertRows } from './insert.js';
import { SqliteLimits } from './limits.js';
import * as reads from './reads.js';
import * as schedules from './schedules.js';
import { migrate, prepareStatements, type Sqlite, type Statements } from './statements.js';
import * as waits from './waits.js';
import { CommitWatch } from './wake.js';

export interface SqliteStoreOptions {
  /** File path, or `:memory:`. */
  path: string;
  /** `FULL` (default) survives power loss; `NORMAL` survives process crashes only. */
  synchronous?: 'FULL' | 'NORMAL' | 'OFF';
  /** SQLite page cache per connection, in KiB. Default 16 MiB: the hot index pages of a large table stay in memory. */
  cacheKiB?: number;
}

/** The rows a rerun by filter considers: final and durable (the rule is checked again per row). */
const RERUNNABLE = `${statusIn(FINAL)} AND mode <> 'sync'`;

/** What retention may delete: a cutoff that is NULL matches nothing, so that outcome is kept. */
const PURGEABLE_IDS = `SELECT id FROM instances
  WHERE (${statusIn(PURGEABLE)} AND finished_at < @finished)
     OR (${statusIs('failed')} AND mode = 'sync' AND finished_at < @failed_sync)
     OR (${statusIs('failed')} AND mode <> 'sync' AND ordering_key IS NULL AND finished_at < @failed)
  LIMIT @limit`;

/**
 * The embedded store: one SQLite file in WAL mode. better-sqlite3 is synchronous, so each method
 * runs its transaction to completion before it returns; the engine's group commit is what batches
 * many callers into one transaction.
 */
/**
 * The row a claim token was issued for: the claim sets `claim_token` to the batch token, a dot and
 * the row's seq (the lifecycle's claim transition), so a finish finds its row by primary key
 * instead of through the index on ids. A token of another shape matches no row.
 */
function seqOfToken(token: string): number {
  const seq = Number(token.slice(token.lastIndexOf('.') + 1));
  return Number.isSafeInteger(seq) ? seq : -1;
}

export class SqliteStore implements Store {
  readonly db: Database.Database;
  private closed = false;
  private readonly stmt: Statements;
  /** The connection and its statements, as the store's other parts take them. */
  private readonly sql: Sqlite;
  private readonly synchronous: NonNullable<SqliteStoreOptions['synchronous']>;
  /** Commits of other processes on the same file (none for `:memory:`, which no one else opens). */
  private readonly commits: CommitWatch | null;

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
    this.stmt = prepareStatements(this.db);
    this.sql = { db: this.db, stmt: this.stmt };
    this.commits = this.db.memory ? null : new CommitWatch(this.db);
  }

  private open(): void {
    if (this.closed) throw new StoreClosedError();
  }

  private sharedLimits: SqliteLimits | null = null;

  /**
   * Runs a write without waiting for the disk flush (in WAL mode, `synchronous = NORMAL` skips the
   * commit's fsync; the next FULL commit syncs these frames too). For writes whose loss in a power
   * cut, with the process, acknowledges nothing: an unflushed accept (flush: false), a claim, a
   * lease renewal or release, a shared limit's slot.
   */
  private relaxed<T>(write: () => T): T {
    if (this.synchronous !== 'FULL') return write();
    this.db.pragma('synchronous = NORMAL');
    try {
      return write();
    } finally {
      this.db.pragma('synchronous = FULL');
    }
  }

  /** Connection limits shared by the processes that open this file. */
  limits(): SqliteLimits {
    // Lost in a power cut, a lease only runs out and a rate slot stays unused.
    this.sharedLimits ??= new SqliteLimits(
      this.db,
      () => this.open(),
      (write) => this.relaxed(write),
    );
    return this.sharedLimits;
  }

  async insertInstances(rows: NewInstance[], options?: InsertOptions): Promise<InsertOutcome[]> {
    this.open();
    if (options?.flush === false) return this.relaxed(() => insertRows(this.sql, rows));
    return insertRows(this.sql, rows);
  }

  // Every transaction that writes begins IMMEDIATE: it takes the write lock before its first read.
  // A deferred one that read first and then met another process's commit could not wait for the
  // lock (its snapshot is stale) and failed with SQLITE_BUSY at once; an immediate one waits in
  // the busy handler like any write. One process alone sees no difference.
  async claim(request: ClaimRequest): Promise<ClaimedInstance[]> {
    this.open();
    if (request.limit <= 0 || request.integrationIds.length === 0) return [];
    // Unflushed: lost in a power cut, the claim is undone with the process that made it, and the
    // instances are claimed again (an attempt's first durable commit flushes its claim too).
    return this.relaxed(() =>
      this.db
        .transaction(() => {
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
              const fresh = !(
                takenOver ||
                instance.attempt > 1 ||
                instance.run > 1 ||
                resumed.has(instance.seq)
              );
              const steps = fresh
                ? []
                : (this.stmt.stepsOfRun.all(instance.id, instance.run) as StepRow[]).map(stepFromRow);
              claimed.push({ instance, claimToken: `${batchToken}.${row.seq}`, steps, takenOver, fresh });
            }
          }
          return claimed;
        })
        .immediate(),
    );
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
    return this.relaxed(() =>
      this.db
        .transaction(() => {
          const lost: string[] = [];
          // One parameter object for every lease of the call.
          const params = { lease_until: leaseUntil, seq: 0, token: '' };
          for (const lease of leases) {
            params.seq = seqOfToken(lease.claimToken);
            params.token = lease.claimToken;
            const result = this.stmt.extendLease.run(params);
            if (result.changes === 0) lost.push(lease.instanceId);
          }
          return lost;
        })
        .immediate(),
    );
  }

  async releaseLeases(leases: Lease[], now: number): Promise<void> {
    this.open();
    this.relaxed(() =>
      this.db
        .transaction(() => {
          for (const lease of leases)
            this.stmt.releaseLease.run({ now, seq: seqOfToken(lease.claimToken), token: lease.claimToken });
        })
        .immediate(),
    );
  }

  async commit(batch: WorkBatch): Promise<WorkBatchResult> {
    this.open();
    return this.db
      .transaction(() => {
        const lost = new Set<string>();
        const held = new Set<string>();
        const holds = (lease: Lease) => {
          if (held.has(lease.instanceId)) return true;
          if (lost.has(lease.instanceId)) return false;
          const row = this.stmt.claimTokenOf.get(seqOfToken(lease.claimToken)) as
            | { claim_token: string | null }
            | undefined;
          if (row?.claim_token === lease.claimToken) held.add(lease.instanceId);
          else lost.add(lease.instanceId);
          return held.has(lease.instanceId);
        };
        // An attempt's final state first: its UPDATE, guarded by the claim token, also says whether
        // the lease is held, so the step rows of the same attempt need no look-up of their own. Rows
        // and events are written below in the attempt's order; one transaction makes the order of
        // statements inside it invisible.
        const finished = new Set<string>();
        for (const finish of batch.finishes) {
          if (finish.outcome.kind === 'wait' || lost.has(finish.instanceId)) continue;
          if (this.finishState(finish)) {
            held.add(finish.instanceId);
            finished.add(finish.instanceId);
          } else {
            lost.add(finish.instanceId);
          }
        }
        // One row per instance for its events of this commit (see EventGroups).
        const events = new EventGroups();
        for (const event of batch.events) events.add(event);
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
          for (const event of write.events) events.add(event);
        }
        for (const finish of batch.finishes) {
          if (lost.has(finish.instanceId)) continue;
          const { outcome } = finish;
          if (outcome.kind === 'wait') {
            // Its statements (arm, take a kept event, wake) run only for a wait finish. They write
            // events of their own: the events collected so far go first.
            events.write(this.sql);
            if (waits.finishWait(this.sql, finish, outcome.wait)) held.delete(finish.instanceId);
            else lost.add(finish.instanceId);
            continue;
          }
          if (!finished.delete(finish.instanceId)) continue;
          held.delete(finish.instanceId);
          if (outcome.kind === 'succeeded' && finish.parameters) {
            schedules.mergeParameters(
              this.sql,
              finish.parameters.integrationId,
              finish.parameters.patchJson,
              finish.now,
            );
          }
          for (const event of finish.events) events.add(event);
        }
        events.write(this.sql);
        return { lost: [...lost] };
      })
      .immediate();
  }

  /** A finish's UPDATE, guarded by the claim token itself: false when no row changed (the lease was lost). */
  private finishState(finish: WorkBatch['finishes'][number]): boolean {
    const { outcome } = finish;
    if (outcome.kind === 'wait') return false;
    const common = {
      seq: seqOfToken(finish.claimToken),
      token: finish.claimToken,
      now: finish.now,
      duration: finish.durationMs,
    };
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
    return result.changes === 1;
  }

  async rerun(request: RerunRequest): Promise<TransitionOutcome[]> {
    this.open();
    return this.db
      .transaction(() => {
        const rows = request.ids
          ? request.ids.map(
              (id) => (this.stmt.byId.get(id) as InstanceRow | undefined) ?? ({ id, missing: true } as const),
            )
          : reads.selectRows(this.sql, { ...request.filter }, RERUNNABLE);
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
            version:
              request.from === 'start' &&
              request.versions &&
              Object.hasOwn(request.versions, row.integration_id)
                ? request.versions[row.integration_id]
                : row.version,
            now: request.now,
          });
          insertEvent(
            this.sql,
            activity(
              'rerun',
              { instanceId: row.id, integrationId: row.integration_id, run: next, at: request.now },
              {
                from: request.from,
                previousStatus: status,
                inputReplaced: request.inputJson !== undefined,
                ...actorData(request.actor),
              },
            ),
          );
          return { id: row.id, outcome: 'done', run: next };
        });
      })
      .immediate();
  }

  async cancel(ids: string[], now: number, actor?: Actor): Promise<TransitionOutcome[]> {
    this.open();
    return this.db
      .transaction(() =>
        ids.map((id): TransitionOutcome => {
          const row = this.stmt.byId.get(id) as InstanceRow | undefined;
          if (!row) return { id, outcome: 'not-found' };
          const status = row.status as Instance['status'];
          if (!allows(TRANSITIONS.cancel, row)) {
            return { id, outcome: 'invalid-state', status };
          }
          this.stmt.cancelOne.run({ now, id });
          insertEvent(
            this.sql,
            activity(
              'cancelled',
              { instanceId: id, integrationId: row.integration_id, run: row.run, at: now },
              { previousStatus: status, ...actorData(actor) },
            ),
          );
          return { id, outcome: 'done', run: row.run };
        }),
      )
      .immediate();
  }

  async acknowledge(request: AcknowledgeRequest): Promise<TransitionOutcome[]> {
    this.open();
    const set = this.db.prepare(
      'UPDATE instances SET acknowledged_at = @at, acknowledged_note = @note WHERE id = @id',
    );
    return this.db
      .transaction(() =>
        request.ids.map((id): TransitionOutcome => {
          const row = this.stmt.byId.get(id) as InstanceRow | undefined;
          if (!row) return { id, outcome: 'not-found' };
          if (row.status !== 'failed')
            return { id, outcome: 'invalid-state', status: row.status as Instance['status'] };
          if ((row.acknowledged_at != null) !== request.acknowledged) {
            set.run({
              id,
              at: request.acknowledged ? request.now : null,
              note: request.acknowledged ? request.note : null,
            });
            const head = { instanceId: id, integrationId: row.integration_id, run: row.run, at: request.now };
            insertEvent(
              this.sql,
              request.acknowledged
                ? activity('acknowledged', head, { note: request.note, ...actorData(request.actor) })
                : activity('unacknowledged', head, {
                    acknowledgedAt: Number(row.acknowledged_at),
                    ...actorData(request.actor),
                  }),
            );
          }
          return { id, outcome: 'done', run: row.run };
        }),
      )
      .immediate();
  }

  async purge(request: PurgeRequest): Promise<number> {
    this.open();
    return this.db
      .transaction(() => {
        const ids = (
          this.db.prepare(PURGEABLE_IDS).all({
            finished: request.finishedBefore,
            failed_sync: request.failedSyncBefore ?? null,
            failed: request.failedBefore ?? null,
            limit: request.limit,
          }) as { id: string }[]
        ).map((r) => r.id);
        if (ids.length === 0) return 0;
        const list = JSON.stringify(ids);
        for (const table of ['events', 'steps', 'runs', 'waits', 'callback_tokens', 'cloud_events']) {
          this.db
            .prepare(`DELETE FROM ${table} WHERE instance_id IN (SELECT value FROM json_each(?))`)
            .run(list);
        }
        return this.db.prepare('DELETE FROM instances WHERE id IN (SELECT value FROM json_each(?))').run(list)
          .changes;
      })
      .immediate();
  }

  async ping(): Promise<void> {
    this.open();
    this.stmt.ping.get();
  }

  // Reads and schedules: their SQL lives in reads.ts and schedules.ts.

  async getInstance(id: string): Promise<Instance | null> {
    this.open();
    return reads.getInstance(this.sql, id);
  }

  async listInstances(request: ListRequest): Promise<Page<Instance>> {
    this.open();
    return reads.listInstances(this.sql, request);
  }

  async countInstances(filter: InstanceFilter): Promise<number> {
    this.open();
    return reads.countInstances(this.sql, filter);
  }

  async getRuns(instanceId: string): Promise<Run[]> {
    this.open();
    return reads.getRuns(this.sql, instanceId);
  }

  async getSteps(instanceId: string, run?: number): Promise<Step[]> {
    this.open();
    return reads.getSteps(this.sql, instanceId, run);
  }

  async failedSteps(runs: RunKey[]): Promise<Record<string, string>> {
    this.open();
    return reads.failedSteps(this.sql, runs);
  }

  async getEvents(query: EventQuery): Promise<ActivityEvent[]> {
    this.open();
    return reads.getEvents(this.sql, query);
  }

  async readEventStream(request: EventStreamRequest): Promise<EventStreamPage> {
    this.open();
    return reads.readEventStream(this.sql, request);
  }

  isStreamCursor(cursor: string): boolean {
    // An event id, as issued: no sign, no leading zero, no exponent.
    return /^(?:0|[1-9]\d{0,15})$/.test(cursor) && Number.isSafeInteger(Number(cursor));
  }

  async eventStreamHead(): Promise<string> {
    this.open();
    return reads.eventStreamHead(this.sql);
  }

  async integrationStats(request: StatsRequest): Promise<IntegrationStats[]> {
    this.open();
    return reads.integrationStats(this.sql, request);
  }

  async overview(request: OverviewRequest): Promise<OverviewFigures> {
    this.open();
    return reads.overview(this.sql, request);
  }

  async nextDueAt(integrationIds: string[]): Promise<number | null> {
    this.open();
    return reads.nextDueAt(this.sql, integrationIds);
  }

  async countChildren(parentId: string): Promise<ChildCounts> {
    this.open();
    return reads.countChildren(this.sql, parentId);
  }

  async orderingHolder(orderingKey: string, seq: number): Promise<OrderingHolder | null> {
    this.open();
    return reads.orderingHolder(this.sql, orderingKey, seq);
  }

  async ensureSchedule(integrationId: string, now: number): Promise<ScheduleState> {
    this.open();
    return schedules.ensureSchedule(this.sql, integrationId, now);
  }

  async getSchedule(integrationId: string): Promise<ScheduleState | null> {
    this.open();
    return schedules.getSchedule(this.sql, integrationId);
  }

  async fireSlot(request: FireRequest): Promise<FireOutcome> {
    this.open();
    return schedules.fireSlot(this.sql, request);
  }

  async listSlots(integrationId: string, limit: number): Promise<SlotRecord[]> {
    this.open();
    return schedules.listSlots(this.sql, integrationId, limit);
  }

  async updateParameters(integrationId: string, patchJson: string, now: number): Promise<ScheduleState> {
    this.open();
    return schedules.updateParameters(this.sql, integrationId, patchJson, now);
  }

  // Durable waits: their SQL lives in waits.ts.

  async settleWait(key: WaitKey, now: number): Promise<WaitRecord | null> {
    this.open();
    return waits.settleWait(this.sql, key, now);
  }

  async armCallback(request: ArmCallback): Promise<WaitRecord | null> {
    this.open();
    return waits.armCallback(this.sql, request);
  }

  async sendEvent(event: NewBusinessEvent, now: number): Promise<SentEventOutcome> {
    this.open();
    return waits.sendEvents(this.sql, [event], now)[0]!;
  }

  async sendEvents(events: NewBusinessEvent[], now: number): Promise<SentEventOutcome[]> {
    this.open();
    return waits.sendEvents(this.sql, events, now);
  }

  async claimFiles(request: ClaimFilesRequest): Promise<FileClaim[]> {
    this.open();
    return fileClaims.claimFiles(this.sql, request);
  }

  async heldFiles(connection: string, instanceId: string): Promise<FileClaim[]> {
    this.open();
    return fileClaims.heldFiles(this.sql, connection, instanceId);
  }

  async finishFile(connection: string, file: FileKey, now: number): Promise<void> {
    this.open();
    fileClaims.finishFile(this.sql, connection, file, now);
  }

  async callbackTokenHash(tokenId: string): Promise<string | null> {
    this.open();
    return waits.callbackTokenHash(this.sql, tokenId);
  }

  async resolveCallback(tokenId: string, payloadJson: string, now: number): Promise<CallbackOutcome> {
    this.open();
    return waits.resolveCallback(this.sql, tokenId, payloadJson, now);
  }

  async getWaits(instanceId: string): Promise<WaitRecord[]> {
    this.open();
    return waits.getWaits(this.sql, instanceId);
  }

  async purgeEvents(receivedBefore: number, limit: number): Promise<number> {
    this.open();
    return waits.purgeEvents(this.sql, receivedBefore, limit);
  }

  async claimFeed(request: FeedClaim): Promise<string | null> {
    this.open();
    const row = this.stmt.claimFeed.get({
      name: request.name,
      initial: request.initial,
      owner: request.owner,
      until: request.now + request.leaseMs,
      now: request.now,
    }) as { cursor: string } | undefined;
    return row?.cursor ?? null;
  }

  async advanceFeed(request: FeedAdvance): Promise<boolean> {
    this.open();
    const { changes } = this.stmt.advanceFeed.run({
      name: request.name,
      owner: request.owner,
      cursor: request.cursor,
      until: request.now + request.leaseMs,
      now: request.now,
    });
    return changes === 1;
  }

  onWake(listener: () => void): () => void {
    return this.commits?.subscribe(listener) ?? (() => {});
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.commits?.stop();
    this.db.close();
  }
}
