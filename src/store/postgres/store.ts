/**
 * Tandem's store on PostgreSQL: the class the engine talks to. It does the hot path itself (accept,
 * claim, leases, commit) and hands the rest to one module per job: operations (rerun, cancel,
 * purge), queries, events, schedules, over one shared connection.
 */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { eventFields, NEVER } from '../../lifecycle/index.js';
import type {
  ActivityEvent,
  Actor,
  ChildCounts,
  Instance,
  NewActivityEvent,
  Run,
  Step,
} from '../../model.js';
import { type StepRow, stepFromRow, type WorkRow, workFromRow } from '../rows.js';
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
import { insertRows } from './accept.js';
import { PgConnection, type PostgresStoreOptions } from './connection.js';
import * as events from './events.js';
import * as feeds from './feeds.js';
import * as fileClaims from './file-claims.js';
import { CLAIM_SQL, COMMIT_SQL, leaseArrays, RELEASE_SQL, RENEW_SQL, tokenSeq } from './hot-path.js';
import { PostgresLimits } from './limits.js';
import * as operations from './operations.js';
import * as queries from './queries.js';
import * as schedules from './schedules.js';
import * as waitStore from './waits.js';

export type { PostgresStoreOptions } from './connection.js';
export { HOT_PATH_SQL } from './hot-path.js';

/**
 * The shared store: many Tandem processes on many machines use one PostgreSQL database. Claims
 * take rows with `FOR UPDATE SKIP LOCKED`, so concurrent workers never wait on each other; every
 * write of an attempt is guarded by its claim token; accepts and finishes that free work send a
 * `NOTIFY` that wakes the other processes (polling stays the safety net).
 */
export class PostgresStore implements Store {
  readonly pool: pg.Pool;
  readonly schema: string;

  private constructor(private readonly db: PgConnection) {
    this.pool = db.pool;
    this.schema = db.schema;
  }

  private sharedLimits: PostgresLimits | null = null;

  /** Connection limits shared by every process of this database. */
  limits(): PostgresLimits {
    this.sharedLimits ??= new PostgresLimits(this.db);
    return this.sharedLimits;
  }

  /** Connects and applies pending migrations (serialised across processes by an advisory lock). */
  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    const db = new PgConnection(options);
    try {
      await db.migrate();
    } catch (error) {
      await db.pool.end().catch(() => {});
      throw error;
    }
    return new PostgresStore(db);
  }

  async insertInstances(rows: NewInstance[], options?: InsertOptions): Promise<InsertOutcome[]> {
    if (rows.length === 0) return [];
    if (options?.flush === false) {
      return this.db.tx(async (client) => {
        // This transaction only: its commit does not wait for the WAL flush.
        await client.query('SET LOCAL synchronous_commit TO off');
        return insertRows(this.db, client, rows);
      });
    }
    return this.db.tx((client) => insertRows(this.db, client, rows));
  }

  async claim(request: ClaimRequest): Promise<ClaimedInstance[]> {
    this.db.assertOpen();
    if (request.limit <= 0 || request.integrationIds.length === 0) return [];
    const batchToken = randomUUID();
    const { rows } = await this.db.prepared('claim', CLAIM_SQL, [
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
      const steps = await this.db.q(
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
      fresh: !(row.attempt > 1 || row.run > 1 || row.resumed),
    }));
  }

  async extendLeases(leases: Lease[], leaseUntil: number): Promise<string[]> {
    this.db.assertOpen();
    if (leases.length === 0) return [];
    const result = await this.db.q(this.pool, RENEW_SQL, [...leaseArrays(leases), leaseUntil]);
    const kept = new Set(result.rows.map((r: { id: string }) => r.id));
    return leases.map((l) => l.instanceId).filter((id) => !kept.has(id));
  }

  async releaseLeases(leases: Lease[], now: number): Promise<void> {
    this.db.assertOpen();
    if (leases.length === 0) return;
    await this.db.tx(async (client) => {
      await this.db.q(client, RELEASE_SQL, [...leaseArrays(leases), now]);
      await this.db.notify(client);
    });
  }

  async commit(batch: WorkBatch): Promise<WorkBatchResult> {
    this.db.assertOpen();
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
    const params = [
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
            outcome.kind === 'retry' || outcome.kind === 'failed' ? JSON.stringify(outcome.error) : null,
            // A wait's instance is due at its wake-up time: a sleep's end, a timeout, or never.
            outcome.kind === 'retry'
              ? outcome.runAt
              : outcome.kind === 'wait'
                ? (outcome.wait.expiresAt ?? NEVER)
                : null,
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
    ];
    const waits = finishes.filter((f) => f.outcome.kind === 'wait');
    if (waits.length === 0) {
      const { rows } = await this.db.prepared('commit', COMMIT_SQL, params);
      const { lost, ordered } = rows[0] as { lost: string[]; ordered: boolean };
      // A finished head of an ordering key lets the next instance run: wake the other processes.
      if (ordered) await this.db.notify(this.pool);
      return { lost };
    }
    // Rare next to the other finishes: a transaction around the same statement, then the waits. The
    // event names are locked first, so that an event sent meanwhile is seen by one side or the other.
    return this.db.tx(async (client) => {
      await waitStore.lockEventNames(
        this.db,
        client,
        waits.flatMap((f) =>
          f.outcome.kind === 'wait' && f.outcome.wait.event !== null ? [f.outcome.wait.event] : [],
        ),
      );
      const { rows } = await this.db.prepared('commit', COMMIT_SQL, params, client);
      const { lost, ordered } = rows[0] as { lost: string[]; ordered: boolean };
      const lostIds = new Set(lost);
      await waitStore.finishWaits(
        this.db,
        client,
        waits.filter((f) => !lostIds.has(f.instanceId)),
      );
      if (ordered) await this.db.notify(client);
      return { lost };
    });
  }

  rerun(request: RerunRequest): Promise<TransitionOutcome[]> {
    return operations.rerun(this.db, request);
  }

  cancel(ids: string[], now: number, actor?: Actor): Promise<TransitionOutcome[]> {
    return operations.cancel(this.db, ids, now, actor);
  }

  acknowledge(request: AcknowledgeRequest): Promise<TransitionOutcome[]> {
    return operations.acknowledge(this.db, request);
  }

  purge(request: PurgeRequest): Promise<number> {
    return operations.purge(this.db, request);
  }

  getInstance(id: string): Promise<Instance | null> {
    return queries.getInstance(this.db, id);
  }

  listInstances(request: ListRequest): Promise<Page<Instance>> {
    return queries.listInstances(this.db, request);
  }

  countInstances(filter: InstanceFilter): Promise<number> {
    return queries.countInstances(this.db, filter);
  }

  getRuns(instanceId: string): Promise<Run[]> {
    return queries.getRuns(this.db, instanceId);
  }

  getSteps(instanceId: string, run?: number): Promise<Step[]> {
    return queries.getSteps(this.db, instanceId, run);
  }

  failedSteps(runs: RunKey[]): Promise<Record<string, string>> {
    return queries.failedSteps(this.db, runs);
  }

  integrationStats(request: StatsRequest): Promise<IntegrationStats[]> {
    return queries.integrationStats(this.db, request);
  }

  overview(request: OverviewRequest): Promise<OverviewFigures> {
    return queries.overview(this.db, request);
  }

  nextDueAt(integrationIds: string[]): Promise<number | null> {
    return queries.nextDueAt(this.db, integrationIds);
  }

  countChildren(parentId: string): Promise<ChildCounts> {
    return queries.countChildren(this.db, parentId);
  }

  orderingHolder(orderingKey: string, seq: number): Promise<OrderingHolder | null> {
    return queries.orderingHolder(this.db, orderingKey, seq);
  }

  getEvents(query: EventQuery): Promise<ActivityEvent[]> {
    return events.getEvents(this.db, query);
  }

  readEventStream(request: EventStreamRequest): Promise<EventStreamPage> {
    return events.readEventStream(this.db, request);
  }

  isStreamCursor(cursor: string): boolean {
    return events.isStreamCursor(cursor);
  }

  eventStreamHead(): Promise<string> {
    return events.eventStreamHead(this.db);
  }

  ensureSchedule(integrationId: string, now: number): Promise<ScheduleState> {
    return schedules.ensureSchedule(this.db, integrationId, now);
  }

  getSchedule(integrationId: string): Promise<ScheduleState | null> {
    return schedules.getSchedule(this.db, integrationId);
  }

  fireSlot(request: FireRequest): Promise<FireOutcome> {
    return schedules.fireSlot(this.db, request);
  }

  listSlots(integrationId: string, limit: number): Promise<SlotRecord[]> {
    return schedules.listSlots(this.db, integrationId, limit);
  }

  updateParameters(integrationId: string, patchJson: string, now: number): Promise<ScheduleState> {
    return schedules.updateParameters(this.db, integrationId, patchJson, now);
  }

  settleWait(key: WaitKey, now: number): Promise<WaitRecord | null> {
    return waitStore.settleWait(this.db, key, now);
  }

  armCallback(request: ArmCallback): Promise<WaitRecord | null> {
    return waitStore.armCallback(this.db, request);
  }

  sendEvent(event: NewBusinessEvent, now: number): Promise<SentEventOutcome> {
    return waitStore.sendEvent(this.db, event, now);
  }

  sendEvents(events: NewBusinessEvent[], now: number): Promise<SentEventOutcome[]> {
    return waitStore.sendEvents(this.db, events, now);
  }

  claimFiles(request: ClaimFilesRequest): Promise<FileClaim[]> {
    return fileClaims.claimFiles(this.db, request);
  }

  heldFiles(connection: string, instanceId: string): Promise<FileClaim[]> {
    return fileClaims.heldFiles(this.db, connection, instanceId);
  }

  finishFile(connection: string, file: FileKey, now: number): Promise<void> {
    return fileClaims.finishFile(this.db, connection, file, now);
  }

  callbackTokenHash(tokenId: string): Promise<string | null> {
    return waitStore.callbackTokenHash(this.db, tokenId);
  }

  resolveCallback(tokenId: string, payloadJson: string, now: number): Promise<CallbackOutcome> {
    return waitStore.resolveCallback(this.db, tokenId, payloadJson, now);
  }

  getWaits(instanceId: string): Promise<WaitRecord[]> {
    return waitStore.getWaits(this.db, instanceId);
  }

  purgeEvents(receivedBefore: number, limit: number): Promise<number> {
    return waitStore.purgeEvents(this.db, receivedBefore, limit);
  }

  claimFeed(request: FeedClaim): Promise<string | null> {
    return feeds.claimFeed(this.db, request);
  }

  advanceFeed(request: FeedAdvance): Promise<boolean> {
    return feeds.advanceFeed(this.db, request);
  }

  onWake(listener: () => void): () => void {
    return this.db.onWake(listener);
  }

  /** Cheap reachability check. */
  ping(): Promise<void> {
    return this.db.ping();
  }

  close(): Promise<void> {
    return this.db.close();
  }
}
