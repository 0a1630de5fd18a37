/**
 * The storage contract. The engine talks only to this interface; SQL lives in the implementations
 * (`store/sqlite`, `store/postgres`). Every method is asynchronous and every write is a single
 * transaction, so that several processes can share one database: claims are exclusive, and writes
 * of an attempt are guarded by the claim token it was given, so an attempt whose lease was taken
 * over cannot overwrite its successor's work.
 *
 * Times are milliseconds since the epoch, passed in by the caller (the engine's clock), never read
 * from the database server's clock.
 */
import type { WaitKind, WaitResolution } from '../lifecycle/index.js';
import type {
  ActivityEvent,
  ActivityType,
  Actor,
  ChildCounts,
  ErrorInfo,
  Instance,
  InstanceCloudEvent,
  InstanceStatus,
  InstanceWork,
  Mode,
  NewActivityEvent,
  Parameters,
  RerunFrom,
  Run,
  Step,
} from '../model.js';

/** A new instance as the engine hands it over; JSON fields are already serialised. */
export interface NewInstance {
  id: string;
  integrationId: string;
  mode: Mode;
  /** `queued` for durable work; `succeeded` or `failed` for sync monitoring records. */
  status: InstanceStatus;
  inputJson: string;
  /** Hash of the input, kept when an idempotency key is given (to tell a replay from a conflict). */
  inputHash: string | null;
  tracking: Record<string, string>;
  orderingKey: string | null;
  idempotencyKey: string | null;
  parentId: string | null;
  createdAt: number;
  runAt: number;
  /**
   * False: no `accepted` event. Children of a fan-out are announced by their parent's progress
   * events (counts of children started) rather than one event each.
   */
  announce?: boolean;
  /**
   * Started by an operator from the console: recorded in its `accepted` event's data. A sync record
   * (inserted final, without an event) gets an `accepted` event when it has a source or an actor.
   */
  source?: 'console';
  /** The management token that started it (run or called from the API): recorded in its `accepted` event. */
  actor?: Actor;
  /** The integration's version when it was accepted (`defineIntegration({ version })`), or null. */
  version?: string | null;
  /** The CloudEvent it came as (async triggers): stored beside it, only when it is created. */
  cloudEvent?: InstanceCloudEvent;
  /** The W3C traceparent the instance's spans continue (its trace id is shown with it), or null. */
  traceparent?: string | null;
  /** Sync records arrive finished. */
  outputJson?: string | null;
  error?: ErrorInfo | null;
  startedAt?: number | null;
  finishedAt?: number | null;
  durationMs?: number | null;
}

/** A file of a connection at one version (its size and modification time, as the source saw them). */
export interface FileKey {
  path: string;
  version: string;
}

export interface FileClaim extends FileKey {
  /** The instance that holds the claim. */
  instanceId: string;
  /** True once the file was archived or deleted after its fan-out. */
  done: boolean;
}

export interface ClaimFilesRequest {
  connection: string;
  instanceId: string;
  files: FileKey[];
  now: number;
}

export interface InsertOutcome {
  /** The new instance's id, or the id of the instance that already holds the idempotency key. */
  id: string;
  created: boolean;
  status: InstanceStatus;
  /** The stored input hash of an existing instance (to detect a conflicting replay). */
  inputHash: string | null;
}

export interface ClaimRequest {
  /** Identifies the worker; recorded with the lease. */
  owner: string;
  limit: number;
  leaseMs: number;
  now: number;
  /** Only instances of these integrations (the ones this worker can run). */
  integrationIds: string[];
}

export interface ClaimedInstance {
  instance: InstanceWork;
  /** Must accompany every write of this attempt; a write with a stale token is refused. */
  claimToken: string;
  /** Steps already stored for the current run (memo), by name. Empty for a first attempt. */
  steps: Step[];
  /** True when the previous holder's lease had expired (crash recovery). */
  takenOver: boolean;
  /**
   * True when the claim starts the run's first attempt (nothing ran before in this run, so it stored
   * no step and armed no wait): a wait the handler reaches has no stored row to read. Optional: a
   * claim that does not say so is treated as one that may have them.
   */
  fresh?: boolean;
}

export interface Lease {
  instanceId: string;
  claimToken: string;
}

/** A step result of a running attempt. */
export interface StepWrite extends Lease {
  step: Omit<Step, 'seeded'>;
  outputJson: string | null;
  events: NewActivityEvent[];
}

/** The end of an attempt. */
export type AttemptOutcome =
  | { kind: 'succeeded'; outputJson: string | null }
  | { kind: 'retry'; error: ErrorInfo; runAt: number; consumesAttempt: boolean }
  | { kind: 'failed'; error: ErrorInfo }
  | { kind: 'wait'; wait: NewWait };

/**
 * A durable wait as the handler declares it (`ctx.sleep`, `ctx.waitForEvent`, `ctx.callback`).
 * One per (instance, run, name): arming a name that has a wait keeps the stored one (its time,
 * its match) — a later attempt that reaches the same wait finds the first one.
 */
export interface NewWait {
  /** The step name it is memoised under. */
  name: string;
  kind: WaitKind;
  /** Kind `event`: the event name it waits for. */
  event: string | null;
  /** Kind `event`: the canonical JSON of its match (`matchKey` in `src/waits/match.ts`); `{}` for none. */
  matchKey: string | null;
  /** Kind `event`: the sorted field names of its match (`matchShape`), as JSON. */
  matchShape: string | null;
  /** A sleep's end, or the timeout; null: none (never times out). */
  expiresAt: number | null;
  /**
   * Kind `event`: the earliest receipt time of an event it may take (the wait's start minus the
   * look-back window). It never takes an event that another wait of the same instance and run
   * took.
   */
  lookBackFrom: number | null;
  createdAt: number;
}

/** A wait as stored. */
export interface WaitRecord extends NewWait {
  instanceId: string;
  run: number;
  /** When and how it resolved; null while armed. */
  resolvedAt: number | null;
  resolution: WaitResolution | null;
  /** What it resolved with: the event's payload or the callback's body (JSON); null for time and timeout. */
  payloadJson: string | null;
  /** The id (or, without one, the sequence number as text) of the event that resolved it. */
  eventId: string | null;
}

/** The key of a wait: one per (instance, run, name). */
export interface WaitKey {
  instanceId: string;
  run: number;
  name: string;
}

/** A callback's wait, armed (if it is not yet) with one more token that resolves it. */
export interface ArmCallback extends Lease {
  run: number;
  wait: NewWait;
  /** Public part of the token (looked up by), and the SHA-256 of its secret part (hex). */
  tokenId: string;
  tokenHash: string;
}

/** A named business event (`POST /api/events`), as the engine hands it over. */
export interface NewBusinessEvent {
  name: string;
  /** Idempotency: a second event with the same id is not stored and resumes nothing. */
  id: string | null;
  payloadJson: string;
  receivedAt: number;
  /**
   * Who sent it (`POST /api/events`): recorded on the `wait.resumed` events of the instances this
   * send wakes. Not stored with the event: a wait that takes it later records no actor.
   */
  actor?: Actor;
}

export interface SentEventOutcome {
  /** The event's sequence number (the original's, for a duplicate). */
  seq: number;
  duplicate: boolean;
  /** Instances whose wait it resolved (and woke, if they were waiting). */
  resumed: string[];
}

export type CallbackOutcome =
  | { outcome: 'resumed'; instanceId: string }
  | { outcome: 'not-found' }
  /** Resolved before (by this or another token of the wait): 409. */
  | { outcome: 'used'; resolvedAt: number }
  /** Its timeout passed, or its instance was cancelled or rerun: 410. */
  | { outcome: 'expired'; expiredAt: number };

export interface FinishWrite extends Lease {
  outcome: AttemptOutcome;
  now: number;
  /** The run's duration (the instance's `durationMs`) for a final outcome; null for a retry. */
  durationMs: number | null;
  events: NewActivityEvent[];
  /**
   * Schedule parameters the handler set (`ctx.setParameters`). Applied only when the outcome is
   * `succeeded` and the claim token still holds, in the same transaction as the finish: merged
   * into the schedule's stored parameters (keys in the patch replace stored keys; a `null` value is
   * stored as null, not removed). Creates the schedule's row if it has none.
   */
  parameters?: { integrationId: string; patchJson: string };
}

/** What the engine writes in one transaction after a tick of work. */
export interface WorkBatch {
  steps: StepWrite[];
  finishes: FinishWrite[];
  /** Events not tied to a lease (e.g. `step.started`, `connection.call`). */
  events: NewActivityEvent[];
}

export interface WorkBatchResult {
  /** Instances whose claim token no longer matched: their writes in this batch were dropped. */
  lost: string[];
}

/** An instance that holds an ordering key (see {@link Store.orderingHolder}). */
export interface OrderingHolder {
  id: string;
  integrationId: string;
  status: InstanceStatus;
}

export interface InstanceFilter {
  ids?: string[];
  integrationId?: string | string[];
  status?: InstanceStatus | InstanceStatus[];
  /** A tracking field value (any field), or `name=value` to match one field. */
  tracking?: string;
  parentId?: string;
  createdAfter?: number;
  createdBefore?: number;
  /** Instances whose current run started at or after this time (e.g. the ones a bulk rerun just queued). */
  runStartedAfter?: number;
  /** True: only acknowledged instances; false: only those not acknowledged. */
  acknowledged?: boolean;
  /** Instances started by a CloudEvent whose type, source or subject is the value (or just `attribute`). */
  cloudEvent?: CloudEventFilter;
}

export interface CloudEventFilter {
  attribute: 'type' | 'source' | 'subject' | null;
  value: string;
}

export interface ListRequest extends InstanceFilter {
  limit: number;
  /** Opaque cursor from a previous page. */
  cursor?: string | null;
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export interface RerunRequest {
  /** Exactly one of ids and filter. A filter only matches instances in a final state. */
  ids?: string[];
  filter?: InstanceFilter;
  from: RerunFrom;
  /** Replacement input (JSON), for a single instance. */
  inputJson?: string;
  /**
   * From the start: the version each integration's new run records (by integration id; the
   * current deployment's). An integration not listed keeps its instance's version.
   */
  versions?: Record<string, string | null>;
  now: number;
  /** Who asked for it: recorded in each `rerun` event. */
  actor?: Actor;
}

/** An operator's acknowledgement of failed instances, or its undoing. */
export interface AcknowledgeRequest {
  ids: string[];
  /**
   * True: acknowledge (an instance already acknowledged keeps its first time and note, and gets
   * no second event); false: take the acknowledgement back (one not acknowledged is left as is).
   */
  acknowledged: boolean;
  /** Kept with an acknowledgement (and in its event); ignored when taking one back. */
  note: string | null;
  now: number;
  /** Who asked for it: recorded in each event. */
  actor?: Actor;
}

/** An instance and one of its runs. */
export interface RunKey {
  instanceId: string;
  run: number;
}

export type TransitionOutcome =
  | { id: string; outcome: 'done'; run: number }
  | { id: string; outcome: 'not-found' }
  | { id: string; outcome: 'invalid-state'; status: InstanceStatus };

export interface EventQuery {
  instanceId?: string;
  integrationId?: string;
  /** Events with an id greater than this. */
  afterId?: number;
  limit: number;
}

export interface EventStreamRequest {
  /** Position after which to read: a cursor from an earlier page or event (the SSE Last-Event-ID). */
  after: string;
  limit: number;
  integrationId?: string;
  types?: ActivityType[];
  /** Events of instances with this tracking value (`value` or `name=value`). */
  tracking?: string;
}

export interface EventStreamPage {
  /** Each event with its cursor (the SSE event id). */
  events: (ActivityEvent & { cursor: string })[];
  /** Where the next read continues. Events appear in cursor order, each exactly once. */
  cursor: string;
}

/** What retention deletes: one cutoff per outcome (instances that finished before it go). */
export interface PurgeRequest {
  /** Succeeded and cancelled instances of every mode. */
  finishedBefore: number;
  /** Failed sync records (monitoring only: a sync instance is never rerun). Absent: none. */
  failedSyncBefore?: number;
  /**
   * Failed async and scheduled instances without an ordering key. Absent: none (a failed instance
   * is work to rerun or cancel). One with an ordering key is never purged: it holds its key.
   */
  failedBefore?: number;
  limit: number;
}

export interface StatsRequest {
  /** Instances created at or after this time … */
  since: number;
  /** … and before this one. */
  until: number;
}

/** Figures of one integration over a window, computed from the instances created in it. */
export interface IntegrationStats {
  integrationId: string;
  mode: Mode;
  total: number;
  succeeded: number;
  failed: number;
  cancelled: number;
  /** Queued, running or retrying. */
  active: number;
  /** Nearest-rank percentiles of the duration (ms, the instance's `durationMs`) of finished instances; null when none finished. */
  p50: number | null;
  p95: number | null;
  p99: number | null;
  /** Mean of (attempts − 1) over finished instances. */
  retriesPerInstance: number;
  /** Failed instances by error code (null: an error without a code), most frequent first, at most 5. */
  errors: { code: string | null; count: number }[];
  /** Failed instances whose error came from a connection, by connection id. */
  failuresByConnection: Record<string, number>;
}

/** The overview's window: instances created in [since, until), in buckets of `bucketMs` from `since`. */
export interface OverviewRequest {
  since: number;
  until: number;
  bucketMs: number;
  /** What "due" means for the backlog. */
  now: number;
}

/** Figures of the instances created in one bucket, as they stand now. */
interface BucketFigures {
  /** The bucket's start: `since + k × bucketMs`. */
  start: number;
  accepted: number;
  succeeded: number;
  failed: number;
  /** Nearest-rank p95 of the durations of its finished instances (as `integrationStats`); null when none finished. */
  p95: number | null;
}

/** What the overview shows: stored figures per bucket, and the unfinished work as it stands. */
export interface OverviewFigures {
  /** Only buckets in which an instance was created, oldest first: a bucket left out had none. */
  buckets: BucketFigures[];
  /** Queued or retrying instances due now (waiting for a worker). */
  backlog: number;
  queued: number;
  running: number;
  retrying: number;
  waiting: number;
  /** The unfinished instance whose current run started first (a rerun starts a run), or null. */
  oldestUnfinished: {
    id: string;
    integrationId: string;
    status: InstanceStatus;
    /** When its current run started. */
    since: number;
  } | null;
}

/** What the store keeps per schedule (a scheduled integration). */
export interface ScheduleState {
  integrationId: string;
  /** Values stored by handlers and operators; defaults come from the definition and are not stored. */
  parameters: Parameters;
  /** When a process first saw this schedule: catch-up never fires a slot before it. */
  createdAt: number;
  updatedAt: number;
  /** The latest slot handled (fired or skipped), or null. */
  lastSlotAt: number | null;
}

/** How a cron slot was handled; exactly one record per (schedule, slot). */
export interface SlotRecord {
  integrationId: string;
  slotAt: number;
  outcome: 'fired' | 'skipped';
  /** The instance fired, or (skipped) the active instance that caused the skip. */
  instanceId: string | null;
  at: number;
}

export interface FireRequest {
  integrationId: string;
  slotAt: number;
  /** `skip`: when an instance of this integration is queued, running or retrying, record a skip instead. */
  overlap: 'skip' | 'queue';
  /** The instance to insert when the slot fires (with its `accepted` event). */
  instance: NewInstance;
  now: number;
}

export type FireOutcome =
  | { outcome: 'fired'; instanceId: string }
  | { outcome: 'skipped'; activeInstanceId: string }
  /** Another process handled this slot, or a later one: nothing was written. */
  | { outcome: 'taken' };

export interface FeedClaim {
  name: string;
  owner: string;
  /** Where a new feed starts (a stream cursor, usually the head). */
  initial: string;
  leaseMs: number;
  now: number;
}

export interface FeedAdvance {
  name: string;
  owner: string;
  cursor: string;
  leaseMs: number;
  now: number;
}

export interface InsertOptions {
  /**
   * False for records whose loss in a power cut costs only a statistic (sync monitoring records):
   * the commit does not wait for the disk flush. Durable work committed later still flushes
   * everything before it. Default true.
   */
  flush?: boolean;
}

/**
 * Connection limits and circuit state shared by the processes of one store (docs/connections.md,
 * "Limits shared by processes"). Times are the store's clock in ms: each answer carries its `now`,
 * so a process on another machine can map them onto its own clock.
 */
export interface LimitStore {
  /** True where the store is made to be shared by processes (PostgreSQL): limits are shared unless turned off. */
  readonly sharedByDefault: boolean;
  /**
   * Reserves `count` rate slots `intervalMs` apart: the first is at the later of the store's now
   * and the end of the slots reserved before (by any process).
   */
  takeRateSlots(
    connection: string,
    intervalMs: number,
    count: number,
  ): Promise<{ first: number; now: number }>;
  /** Leases up to `want` of the connection's `max` concurrency slots (free or expired) for `leaseMs`. */
  leaseSlots(
    connection: string,
    owner: string,
    max: number,
    want: number,
    leaseMs: number,
  ): Promise<number[]>;
  /** Renews the owner's slots; returns those it still holds. */
  renewSlots(connection: string, owner: string, slots: number[], leaseMs: number): Promise<number[]>;
  releaseSlots(connection: string, owner: string, slots: number[]): Promise<void>;
  /** The circuit as all processes see it: open since `openedAt`, or closed (null). */
  readCircuit(connection: string): Promise<{ openedAt: number | null; now: number }>;
  /** Opens the circuit for all (at the store's now; returns it), or closes it (`open` false). */
  writeCircuit(connection: string, open: boolean): Promise<number>;
}

export interface Store {
  /** Inserts instances in one transaction, with an `accepted` event each; a repeated idempotency key returns the existing instance. */
  insertInstances(rows: NewInstance[], options?: InsertOptions): Promise<InsertOutcome[]>;
  /** Claims due queued/retrying instances, and running ones whose lease expired, in accept order per ordering key. */
  claim(request: ClaimRequest): Promise<ClaimedInstance[]>;
  /** Renews leases; returns the ids whose lease was lost (taken over, cancelled or finished elsewhere). */
  extendLeases(leases: Lease[], leaseUntil: number): Promise<string[]>;
  /** Gives up leases at shutdown so another worker can claim the instances at once. */
  releaseLeases(leases: Lease[], now: number): Promise<void>;
  /** Writes step results, attempt ends and events in one transaction. */
  commit(batch: WorkBatch): Promise<WorkBatchResult>;
  rerun(request: RerunRequest): Promise<TransitionOutcome[]>;
  /** `actor`: who asked for it, recorded in each `cancelled` event. */
  cancel(ids: string[], now: number, actor?: Actor): Promise<TransitionOutcome[]>;
  /**
   * Sets or clears the acknowledgement of failed instances (sync and durable alike), with an
   * `acknowledged` or `unacknowledged` event for each one that changed, in one transaction. An
   * instance that is not `failed` is `invalid-state`. A rerun clears the acknowledgement.
   */
  acknowledge(request: AcknowledgeRequest): Promise<TransitionOutcome[]>;

  getInstance(id: string): Promise<Instance | null>;
  listInstances(request: ListRequest): Promise<Page<Instance>>;
  countInstances(filter: InstanceFilter): Promise<number>;
  /** All runs of an instance, oldest first, the current one last. */
  getRuns(instanceId: string): Promise<Run[]>;
  getSteps(instanceId: string, run?: number): Promise<Step[]>;
  /**
   * The step each of these runs failed in (its last failed step by position), by instance id; an
   * instance whose run has no failed step (it failed outside a step) is absent. One read for all.
   */
  failedSteps(runs: RunKey[]): Promise<Record<string, string>>;
  getEvents(query: EventQuery): Promise<ActivityEvent[]>;
  /**
   * Reads the activity stream in a total order that never changes once read: an event appears
   * after a cursor only if it was not visible before it (no gaps, no duplicates across reads).
   */
  readEventStream(request: EventStreamRequest): Promise<EventStreamPage>;
  /** The cursor of the stream's current end (to follow from now on). */
  eventStreamHead(): Promise<string>;
  /**
   * Whether a text has the form of a stream cursor this store issues: a client's `Last-Event-ID`
   * that does not is refused rather than read as the start of the stream.
   */
  isStreamCursor(cursor: string): boolean;
  /** Per-integration figures over a window (for statistics and the advisor). */
  integrationStats(request: StatsRequest): Promise<IntegrationStats[]>;
  /**
   * Per-bucket figures of the instances created in a window, and the unfinished work now (the
   * console's overview). Reads the window by `created_at` (like `integrationStats`) and the
   * unfinished instances by their status: no index of its own.
   */
  overview(request: OverviewRequest): Promise<OverviewFigures>;
  /**
   * Deletes instances in a final state (with their runs, steps and events) that finished before the
   * cutoff of their outcome (see {@link PurgeRequest}), at most `limit` of them. Returns how many
   * were deleted.
   */
  purge(request: PurgeRequest): Promise<number>;
  /** Earliest time at which an instance of these integrations becomes claimable, or null. */
  nextDueAt(integrationIds: string[]): Promise<number | null>;

  /** Resolves when the store answers a trivial query; rejects when it is closed or unreachable (health checks). */
  ping(): Promise<void>;
  /** Counts the children of an instance (`parentId`) by status. */
  countChildren(parentId: string): Promise<ChildCounts>;
  /**
   * The instance that holds an ordering key against instance `seq` (the claim's rule): the earliest
   * other one with the key that is running, or earlier and still holding it ({@link HOLDS_ORDER}
   * in `lifecycle`); null when none does. Read along the ordering index, for "why is it waiting".
   */
  orderingHolder(orderingKey: string, seq: number): Promise<OrderingHolder | null>;

  // Schedules. Several processes share a store, so firing is decided here, not by timers.
  /** Registers a schedule if it has no row yet (keeping the first `createdAt`); returns its state. */
  ensureSchedule(integrationId: string, now: number): Promise<ScheduleState>;
  getSchedule(integrationId: string): Promise<ScheduleState | null>;
  /**
   * Handles one cron slot in one transaction: claims the unique (integration, slot) key — a slot
   * already recorded, or older than the latest recorded slot, is `taken` and nothing is written;
   * then with `overlap: 'skip'` and an active instance of the integration records a skip; else
   * inserts the instance and records the firing. Fires of one schedule are serialised (PostgreSQL:
   * lock the schedule row), so exactly one firing per slot, cluster-wide. Keeps the latest 1,000
   * slot records per schedule.
   */
  fireSlot(request: FireRequest): Promise<FireOutcome>;
  /** Slot records of a schedule, newest first. */
  listSlots(integrationId: string, limit: number): Promise<SlotRecord[]>;
  /** Merges values into the stored parameters (as {@link FinishWrite.parameters}); returns the new state. */
  updateParameters(integrationId: string, patchJson: string, now: number): Promise<ScheduleState>;

  // Durable waits (src/waits). A wait is armed by an attempt's `wait` finish, or, for a callback,
  // before the handler hands out its URL (armCallback). Events and callbacks resolve waits and wake
  // waiting instances; with a wait finish they are serialised per event name, so that a wait armed
  // while a matching event is being sent sees it (no lost wake-up).
  /** The stored wait, settled first: an armed one whose `expiresAt` has passed resolves as `time` (sleep) or `timeout`. Null: not armed. */
  settleWait(key: WaitKey, now: number): Promise<WaitRecord | null>;
  /** Arms a callback's wait if it is not (lease-guarded) and stores one more token for it; null when the lease was lost. */
  armCallback(request: ArmCallback): Promise<WaitRecord | null>;
  /** Stores a business event and resolves every armed wait it matches; a repeated id changes nothing. */
  sendEvent(event: NewBusinessEvent, now: number): Promise<SentEventOutcome>;
  /**
   * Several events in one transaction (group commit of concurrent sends): one outcome per event, in
   * order, each exactly what `sendEvent` of the events one after another would give — an id repeated
   * within the batch is a duplicate of its first, and each event resolves the waits it fits that an
   * earlier one did not take. PostgreSQL locks every name of the batch first, in sorted order.
   */
  sendEvents(events: NewBusinessEvent[], now: number): Promise<SentEventOutcome[]>;
  /** The SHA-256 (hex) stored for a callback token's public part, to compare in constant time; null: unknown. */
  callbackTokenHash(tokenId: string): Promise<string | null>;
  /** Resolves the callback's wait with the body, once; see {@link CallbackOutcome}. */
  resolveCallback(tokenId: string, payloadJson: string, now: number): Promise<CallbackOutcome>;
  /** The waits of an instance (every run), oldest first. */
  getWaits(instanceId: string): Promise<WaitRecord[]>;
  /** Deletes business events received before the cutoff (the look-back window); returns how many. */
  purgeEvents(receivedBefore: number, limit: number): Promise<number>;

  // Feeds: a reader of the activity stream that keeps its position in the store (the activity
  // webhook). One process at a time holds a feed's lease; only the holder moves its cursor.
  /**
   * Takes or renews the lease of a feed and returns its cursor; creates the feed at `initial` when it
   * has no row. Null: another owner holds an unexpired lease.
   */
  claimFeed(request: FeedClaim): Promise<string | null>;
  /**
   * Moves a feed's cursor and renews the lease to `now + leaseMs` (a negative `leaseMs` gives it
   * up); false (nothing written) when `owner` lost the lease.
   */
  advanceFeed(request: FeedAdvance): Promise<boolean>;
  // File claims of record sources that read a connection's files (SFTP): each file version is read
  // by one instance only, across restarts and processes, and archived once its fan-out is committed.
  /**
   * Claims files for an instance in one transaction: a file version nobody holds becomes the
   * instance's. Returns the holder of each file asked for (this instance, or the one before it).
   */
  claimFiles(request: ClaimFilesRequest): Promise<FileClaim[]>;
  /** The claims an instance holds that are not done (the files its fan-out read), by path. */
  heldFiles(connection: string, instanceId: string): Promise<FileClaim[]>;
  /** Marks a claim done (its file archived or deleted). */
  finishFile(connection: string, file: FileKey, now: number): Promise<void>;

  /** Called when another process made work available (e.g. PostgreSQL NOTIFY). Returns an unsubscribe. */
  onWake?(listener: () => void): () => void;
  close(): Promise<void>;
  /** Limits shared by the processes of this store (absent on a store that cannot share them). */
  limits?(): LimitStore;
}
