/**
 * The engine: accepts durable instances (group-committed), dispatches them to the executor under a
 * concurrency limit with batched claims, keeps their leases alive, and offers rerun and cancel.
 */
import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import pino, { type Logger } from 'pino';
import type { HttpConnection } from '../connections/http.js';
import { checkIntegrations } from '../define/config.js';
import {
  type AnyIntegration,
  type AsyncDefinition,
  type ChildCounts,
  isIntegration,
  type ScheduledDefinition,
  type StartedInstance,
  selectField,
} from '../define/integration.js';
import {
  checkParameters,
  checkScheduledInput,
  type Parameters as ScheduleParameters,
} from '../define/parameters.js';
import {
  CancelledError,
  type InputIssue,
  InstanceNotFoundError,
  InvalidDefinitionError,
  InvalidInputError,
  InvalidStateError,
  ShuttingDownError,
  TandemError,
  UnknownIntegrationError,
  WrongModeError,
} from '../errors.js';
import { isStorableText, toStoredJson } from '../json.js';
import { loggingObserver } from '../logging.js';
import type { ActivityEvent, Instance, InstanceStatus, RerunFrom, Run, Step } from '../model.js';
import { Redactor } from '../redaction.js';
import { isRecordSource } from '../sources/source.js';
import { UnstorableTextError } from '../store/faults.js';
import { openStore } from '../store/open.js';
import type {
  ClaimedInstance,
  InsertOutcome,
  InstanceFilter,
  ListRequest,
  NewInstance,
  Page,
  Store,
  TransitionOutcome,
} from '../store/store.js';
import { Batcher } from './batcher.js';
import { type Clock, systemClock } from './clock.js';
import { Attempt, type ChildStarter, type ExecuteDeps, executeAttempt } from './executor.js';
import { uuidv7 } from './ids.js';
import { type EngineObserver, watchCircuits } from './observer.js';
import { type ScheduleInfo, Scheduler, type SlotEvent } from './scheduler.js';
import { WorkWriter } from './writer.js';

export interface EngineOptions {
  integrations: AnyIntegration[];
  /** A store, or a store URL to open (the engine then closes it on stop). */
  store?: Store | string;
  /** Instances this process runs at the same time. Default 50. */
  concurrency?: number;
  /** Most instances claimed in one statement. Default 200. */
  claimBatch?: number;
  /**
   * Instances claimed ahead of free slots, so that the next claim overlaps the handlers running
   * now. Only while handlers are quick (under 50 ms on average): slow work is left in the store
   * for other processes. Default: as `concurrency`; 0 turns it off.
   */
  prefetch?: number;
  /** Lease length in ms, renewed at a third of it. Default 30 s. */
  leaseMs?: number;
  /** Safety-net poll for due work. Default 1 s. */
  pollIntervalMs?: number;
  /** False for an API-only process that accepts but runs nothing. Default true. */
  worker?: boolean;
  /**
   * Ids of the integrations this process runs (a dedicated worker pool); the others are accepted
   * and started as children but run elsewhere. Default: every async and scheduled integration.
   */
  run?: string[];
  /** Whether this process fires cron slots. Several processes may: each slot fires once. Default: as `worker`. */
  scheduler?: boolean;
  /** Told about every cron slot this process handled (fired, skipped, or taken by another process). */
  onSlot?: (event: SlotEvent) => void;
  /** One transaction for all accepts of a tick (default), or one per accept (for comparison). */
  groupCommit?: boolean;
  /** How long stop() lets running attempts finish before releasing their leases. Default 10 s. */
  shutdownGraceMs?: number;
  clock?: Clock;
  logger?: Logger;
  /** How long finished instances are kept, per outcome, and how often the purge runs; `false` keeps everything. */
  retention?: RetentionOptions | false;
  /** Connections to applications, for `ctx.call(connection or id, …)`. */
  connections?: HttpConnection[];
  /** Watchers of accepts, starts and finishes (e.g. metrics). */
  observers?: EngineObserver[];
  /** Recorded with leases; defaults to host:pid:random. */
  workerId?: string;
}

/**
 * How long instances in a final state are kept. Succeeded and cancelled instances, and failed sync
 * records (monitoring only: a sync call is never rerun), are deleted after a period. A failed async
 * or scheduled instance is work waiting for a rerun or a cancel: it is kept until resolved, unless
 * `failedKeepMs` is set, and one with an ordering key is always kept (it holds its key).
 */
export interface RetentionOptions {
  /** Succeeded and cancelled instances of every mode. Default 30 days. */
  keepMs?: number;
  /** Failed sync records. Default: as `keepMs`. */
  failedSyncKeepMs?: number;
  /** Failed async and scheduled instances without an ordering key. Default: kept until rerun or cancelled. */
  failedKeepMs?: number;
  /** How often the purge runs. Default 1 hour. */
  intervalMs?: number;
}

const DEFAULT_KEEP_MS = 30 * 24 * 3_600_000;

export interface AcceptOptions {
  idempotencyKey?: string;
  parentId?: string;
  /** Do not run before this time (ms since epoch). */
  runAt?: number;
}

export interface Accepted {
  instanceId: string;
  status: InstanceStatus;
  /** False when the idempotency key returned an earlier instance. */
  created: boolean;
}

/** What `runNow` starts: input for an async integration, parameter overrides for a scheduled one. */
export interface RunNowOptions {
  input?: unknown;
  /** Parameter overrides for this instance only; strings are converted to the declared types. */
  parameters?: Record<string, unknown>;
  idempotencyKey?: string;
}

/** An instance and the counts of its children, for progress displays. */
export interface Progress {
  instance: Instance;
  children: ChildCounts;
}

export interface InstanceDetail {
  instance: Instance;
  runs: Run[];
  steps: Step[];
  events: ActivityEvent[];
}

const DEFAULTS = {
  concurrency: 50,
  claimBatch: 200,
  leaseMs: 30_000,
  pollIntervalMs: 1_000,
  shutdownGraceMs: 10_000,
};

/** How `startMany` prepares its children (fan-out only). */
export interface ChildPreparation {
  /** False: a repeated start returns the child already there, unchecked. Default true. */
  hashed?: boolean;
  /**
   * True when the input is already the output of the integration's input schema (a record source
   * with that very schema): parsing it again would apply transforms twice. Default false.
   */
  validated?: boolean;
}

export class Engine {
  readonly store: Store;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly workerId: string;
  private readonly integrations = new Map<string, AnyIntegration>();
  readonly connections = new Map<string, HttpConnection>();
  private readonly runnableIds: string[];
  private readonly ownsStore: boolean;
  private readonly options: Required<Pick<EngineOptions, keyof typeof DEFAULTS>> & EngineOptions;
  private readonly acceptBatcher: Batcher<NewInstance[], InsertOutcome[]>;
  private readonly writer: WorkWriter;
  private readonly running = new Map<string, Attempt>();
  /** Attempts whose handler is still executing (the concurrency limit counts these). */
  private busy = 0;
  /** Claimed attempts waiting for a slot (prefetched), oldest first; also in `running`. */
  private readonly waiting: { claimed: ClaimedInstance; attempt: Attempt }[] = [];
  /** Moving average of handler durations in ms: prefetch only while work is quick. */
  private handlerMs = 0;
  /** `draining`: accepts still commit, but nothing is claimed and no cron slot fires (see stopClaiming). */
  private state: 'idle' | 'running' | 'draining' | 'stopping' | 'stopped' = 'idle';
  private pumping = false;
  private pumpScheduled = false;
  /** Set when more work may be claimable: a full claim, a wake-up, a finish that frees an ordering key. */
  private moreLikely = true;
  private timer: NodeJS.Timeout | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private purgeTimer: NodeJS.Timeout | null = null;
  private unsubscribeWake: (() => void) | null = null;
  private readonly unwatchCircuits: () => void;
  private scheduler: Scheduler | null = null;
  private readonly idle = new Set<() => void>();
  private readonly observers: EngineObserver[] = [];
  /** One observer that fans out to all, so that a throwing watcher cannot break the engine. */
  readonly observer: Required<EngineObserver> = {
    accepted: (...args) => this.notify('accepted', args),
    started: (...args) => this.notify('started', args),
    finished: (...args) => this.notify('finished', args),
    syncFinished: (...args) => this.notify('syncFinished', args),
    refused: (...args) => this.notify('refused', args),
    circuit: (...args) => this.notify('circuit', args),
    slot: (...args) => this.notify('slot', args),
  };

  private constructor(options: EngineOptions, store: Store, ownsStore: boolean) {
    checkIntegrations(options.integrations);
    this.options = { ...DEFAULTS, ...options };
    for (const integration of options.integrations) this.integrations.set(integration.id, integration);
    for (const connection of options.connections ?? []) {
      if (this.connections.has(connection.id)) {
        throw new InvalidDefinitionError(`Connection id "${connection.id}" is defined twice`);
      }
      this.connections.set(connection.id, connection);
    }
    const runnable = options.integrations.filter((i) => i.mode !== 'sync').map((i) => i.id);
    this.runnableIds = options.run ? runnable.filter((id) => options.run!.includes(id)) : runnable;
    this.store = store;
    this.ownsStore = ownsStore;
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger ?? pino({ level: process.env.TANDEM_LOG_LEVEL ?? 'info' });
    // What a person follows in the log (retries, failures, circuits, schedules) is written by one observer.
    this.observers.push(loggingObserver(this.logger), ...(options.observers ?? []));
    this.unwatchCircuits = watchCircuits(this.connections.values(), this.observer);
    this.workerId = options.workerId ?? `${hostname()}:${process.pid}:${uuidv7().slice(-6)}`;
    this.acceptBatcher = new Batcher(async (groups) => {
      const outcomes = await this.store.insertInstances(groups.flat());
      let offset = 0;
      return groups.map((group) => {
        const slice = outcomes.slice(offset, offset + group.length);
        offset += group.length;
        return slice;
      });
    });
    this.writer = new WorkWriter(
      store,
      (error) => this.logger.error({ err: error }, 'writing activity failed'),
      15_000,
      () => this.changed(),
    );
  }

  /** Creates an engine; opens the store when given a URL. Call `start()` to begin running instances. */
  static async create(options: EngineOptions): Promise<Engine> {
    const given = options.store;
    const store = typeof given === 'object' ? given : await openStore(given);
    return new Engine(options, store, typeof given !== 'object');
  }

  private readonly changeListeners = new Set<() => void>();

  /** Subscribes to "something was committed" hints (accepts, step results, finishes). */
  onChange(listener: () => void): () => void {
    this.changeListeners.add(listener);
    const unsubscribeStore = this.store.onWake?.(listener);
    return () => {
      this.changeListeners.delete(listener);
      unsubscribeStore?.();
    };
  }

  private changed(): void {
    for (const listener of this.changeListeners) listener();
  }

  /** Adds a watcher of accepts, starts and finishes. */
  observe(observer: EngineObserver): void {
    this.observers.push(observer);
  }

  private notify<K extends keyof EngineObserver>(
    hook: K,
    args: Parameters<Required<EngineObserver>[K]>,
  ): void {
    for (const observer of this.observers) {
      try {
        (observer[hook] as ((...a: unknown[]) => void) | undefined)?.(...args);
      } catch (error) {
        this.logger.warn({ err: error, hook }, 'an engine observer threw');
      }
    }
  }

  integration(id: string): AnyIntegration {
    const integration = this.integrations.get(id);
    if (!integration) throw new UnknownIntegrationError(id);
    return integration;
  }

  listIntegrations(): AnyIntegration[] {
    return [...this.integrations.values()];
  }

  // ── Accepting work ────────────────────────────────────────────────────────────────────────

  /**
   * Validates the input and builds the row of a new durable instance, without storing it. Throws a
   * typed error (unknown integration, wrong mode, invalid input, not serialisable).
   */
  prepare(
    integrationRef: string | AnyIntegration,
    input: unknown,
    options: AcceptOptions = {},
    child: ChildPreparation = {},
  ): NewInstance {
    const { hashed = true, validated = false } = child;
    const id = typeof integrationRef === 'string' ? integrationRef : integrationRef?.id;
    if (typeof integrationRef === 'object' && !isIntegration(integrationRef))
      throw new UnknownIntegrationError(String(id));
    const integration = this.integration(id);
    if (integration.mode === 'sync')
      throw new WrongModeError(integration.id, 'sync', 'be started as durable work');
    const value = validated && integration.mode !== 'scheduled' ? input : checkInput(integration, input);
    const inputJson = toStoredJson(value, `The input of "${integration.id}"`);
    const now = this.clock.now();
    const def = integration as AsyncDefinition<any>;
    const tracking: Record<string, string> = {};
    let redactor: Redactor | undefined;
    for (const [name, selector] of Object.entries(def.track ?? {})) {
      const tracked = selectField(value, selector);
      if (tracked === null) continue;
      // Tracking values are shown and searched as they are: a secret in one is masked before it is stored.
      redactor ??= Redactor.of(def.redact, value);
      tracking[name] = redactor.text(tracked);
    }
    const orderingKey = def.orderingKey ? selectField(value, def.orderingKey) : null;
    const idempotencyKey = options.idempotencyKey ?? null;
    const unstorable = unstorableKeys(def, tracking, orderingKey, idempotencyKey);
    if (unstorable) throw new UnstorableTextError(unstorable);
    return {
      id: uuidv7(now),
      integrationId: integration.id,
      mode: integration.mode,
      status: 'queued',
      inputJson,
      inputHash: idempotencyKey === null || !hashed ? null : hashInput(inputJson),
      tracking,
      // Not namespaced by integration: one key orders the instances of several integrations
      // (e.g. onboard-employee and attach-document on the employee id).
      orderingKey,
      idempotencyKey,
      parentId: options.parentId ?? null,
      createdAt: now,
      runAt: options.runAt ?? now,
    };
  }

  /**
   * Stores prepared instances in one transaction (shared with other accepts of the same tick) and
   * resolves only after the commit. A repeated idempotency key with a different input is refused.
   */
  async commit(rows: NewInstance[]): Promise<Accepted[]> {
    if (this.state === 'stopping' || this.state === 'stopped') throw new ShuttingDownError();
    if (rows.length === 0) return [];
    const outcomes =
      this.options.groupCommit === false
        ? await this.store.insertInstances(rows)
        : await this.acceptBatcher.push(rows);
    const accepted = outcomes.map((outcome, index): Accepted => {
      const row = rows[index]!;
      if (!outcome.created && row.inputHash !== null && outcome.inputHash !== row.inputHash) {
        throw new TandemError(
          'idempotency-conflict',
          `Idempotency key "${row.idempotencyKey}" was already used with a different input (instance ${outcome.id})`,
          { idempotencyKey: row.idempotencyKey, instanceId: outcome.id },
        );
      }
      return { instanceId: outcome.id, status: outcome.status, created: outcome.created };
    });
    const created = new Map<string, { mode: NewInstance['mode']; count: number }>();
    accepted.forEach((a, index) => {
      if (!a.created) return;
      const row = rows[index]!;
      const entry = created.get(row.integrationId) ?? { mode: row.mode, count: 0 };
      entry.count++;
      created.set(row.integrationId, entry);
    });
    for (const [integrationId, { mode, count }] of created)
      this.observer.accepted(integrationId, mode, count);
    if (created.size > 0) this.wake();
    return accepted;
  }

  /**
   * Accepts one durable instance: resolves once it is committed.
   *
   * @example
   * const { instanceId } = await engine.accept('fulfil-order', { orderId: 'A-1001' });
   */
  async accept(
    integration: string | AnyIntegration,
    input: unknown,
    options: AcceptOptions = {},
  ): Promise<Accepted> {
    const [accepted] = await this.commit([this.prepare(integration, input, options)]);
    return accepted!;
  }

  /**
   * Runs an integration now: an async one with `input`, a scheduled one outside its cron with
   * parameter overrides that apply to this instance only. Resolves once the instance is committed.
   *
   * @example
   * await engine.runNow('nightly-orders', { parameters: { date: '2026-11-24' } });
   */
  async runNow(integrationId: string, options: RunNowOptions = {}): Promise<Accepted> {
    const integration = this.integration(integrationId);
    if (integration.mode === 'sync') throw new WrongModeError(integration.id, 'sync', 'be run now');
    const input =
      integration.mode === 'scheduled'
        ? { scheduledFor: null, parameters: options.parameters ?? {} }
        : options.input;
    return this.accept(integration, input, {
      ...(options.idempotencyKey ? { idempotencyKey: options.idempotencyKey } : {}),
    });
  }

  /** Starts children for a running instance; keys from (parent, call, index) make repeats find the first. */
  private readonly children: ChildStarter = {
    start: async (parent, call, integration, input, options) => {
      const accepted = await this.accept(integration, input, {
        idempotencyKey: options?.idempotencyKey ?? `${parent.id}:start:${call}`,
        parentId: parent.id,
      });
      return { instanceId: accepted.instanceId, created: accepted.created } satisfies StartedInstance;
    },
    startMany: async (parent, call, integration, inputs, options, onChunk) => {
      const chunkSize = Math.max(1, options?.chunkSize ?? 1_000);
      let chunk: NewInstance[] = [];
      let count = 0;
      let created = 0;
      const flush = async () => {
        if (chunk.length === 0) return;
        const rows = chunk;
        chunk = [];
        // Straight to the store, one transaction per chunk: a chunk is already a batch.
        const outcomes = await this.store.insertInstances(rows);
        for (const outcome of outcomes) if (outcome.created) created++;
        // Children this process does not run are another pool's work: no claim attempt per chunk.
        if (this.runnableIds.includes(rows[0]!.integrationId)) this.wake();
        onChunk?.({ count, created });
      };
      const target = this.integrations.get(typeof integration === 'string' ? integration : integration?.id);
      const validated =
        isRecordSource(inputs) && target?.input !== undefined && inputs.validatedBy(target.input);
      const prepareChild = (input: unknown): NewInstance => {
        const row = this.prepare(
          integration,
          input,
          {
            // Zero-padded, so that a parent's keys are in index order: appended, not scattered.
            idempotencyKey: `${parent.id}:start:${call}:${String(count).padStart(10, '0')}`,
            parentId: parent.id,
          },
          { hashed: false, validated },
        );
        row.announce = false;
        count++;
        return row;
      };
      // A record source hands out whole batches: no promise per record, only per chunk.
      if (isRecordSource(inputs)) {
        for await (const batch of inputs.batches()) {
          for (const input of batch) {
            chunk.push(prepareChild(input));
            if (chunk.length >= chunkSize) await flush();
          }
        }
      } else {
        for await (const input of inputs as AsyncIterable<unknown>) {
          chunk.push(prepareChild(input));
          if (chunk.length >= chunkSize) await flush();
        }
      }
      await flush();
      return { count, created };
    },
  };

  // ── Running work ──────────────────────────────────────────────────────────────────────────

  /** Starts dispatching (unless this is an API-only engine). */
  start(): void {
    if (this.state !== 'idle') return;
    this.state = 'running';
    this.startScheduler();
    if (this.options.worker === false) return;
    this.unsubscribeWake = this.store.onWake?.(() => this.wake()) ?? null;
    const beat = Math.max(10, Math.floor(this.options.leaseMs / 3));
    this.heartbeat = setInterval(() => void this.renewLeases(), beat);
    this.heartbeat.unref();
    if (this.options.retention !== false) {
      const every = this.options.retention?.intervalMs ?? 3_600_000;
      this.purgeTimer = setInterval(() => void this.purge(), every);
      this.purgeTimer.unref();
    }
    this.wake();
  }

  /** Deletes finished instances past their outcome's retention period (see {@link RetentionOptions}). Returns how many. */
  async purge(): Promise<number> {
    const retention = this.options.retention;
    if (retention === false) return 0;
    const keepMs = retention?.keepMs ?? DEFAULT_KEEP_MS;
    const now = this.clock.now();
    const cutoffs = {
      finishedBefore: now - keepMs,
      failedSyncBefore: now - (retention?.failedSyncKeepMs ?? keepMs),
      ...(retention?.failedKeepMs === undefined ? {} : { failedBefore: now - retention.failedKeepMs }),
    };
    let total = 0;
    try {
      for (;;) {
        const deleted = await this.store.purge({ ...cutoffs, limit: 1_000 });
        total += deleted;
        if (deleted < 1_000 || this.state !== 'running') break;
      }
    } catch (error) {
      this.logger.error({ err: error }, 'purging old instances failed');
    }
    if (total > 0) this.logger.info({ deleted: total }, 'purged instances past retention');
    return total;
  }

  /** Wakes the dispatcher: there may be work to claim. */
  wake(): void {
    this.moreLikely = true;
    this.schedulePump();
  }

  /**
   * Resolves once this process runs no attempt and a claim by the engine's clock, made after the
   * call, found nothing more (or the engine stopped). Tests that move a manual clock wait on it:
   * everything due now has run. `signal` gives up (work that never stops coming due).
   */
  async settled(signal?: AbortSignal): Promise<void> {
    let passNeeded = true;
    while (this.state === 'running' && this.options.worker !== false) {
      signal?.throwIfAborted();
      if (this.pumping || this.running.size > 0) {
        // A pass or an attempt ends with notifyIdle(); an ended attempt may have made more work due.
        await new Promise<void>((resolve) => {
          const done = () => {
            this.idle.delete(done);
            resolve();
          };
          this.idle.add(done);
        });
        passNeeded = true;
        continue;
      }
      if (!passNeeded && !this.moreLikely) return;
      passNeeded = false;
      this.moreLikely = true;
      await this.pump();
    }
  }

  /** Number of attempts running in this process. */
  get activeCount(): number {
    return this.running.size;
  }

  private schedulePump(): void {
    if (this.pumpScheduled || this.state !== 'running' || this.options.worker === false) return;
    this.pumpScheduled = true;
    setImmediate(() => {
      this.pumpScheduled = false;
      void this.pump();
    });
  }

  /** Claims work while slots are free and more may be there. */
  private async pump(): Promise<void> {
    if (this.pumping || this.state !== 'running') return;
    this.pumping = true;
    let short = false;
    try {
      while (this.state === 'running' && this.moreLikely && this.freeSlots() > 0) {
        this.moreLikely = false;
        const limit = Math.min(this.options.claimBatch, this.freeSlots());
        const claimed = await this.store.claim({
          owner: this.workerId,
          limit,
          leaseMs: this.options.leaseMs,
          now: this.clock.now(),
          integrationIds: this.runnableIds,
        });
        for (const item of claimed) this.enqueue(item);
        this.launchWaiting();
        if (claimed.length >= limit) this.moreLikely = true;
        else short = true;
      }
    } catch (error) {
      this.logger.error({ err: error }, 'claiming instances failed; retrying after the poll interval');
      short = true;
    } finally {
      this.pumping = false;
    }
    if (this.moreLikely && this.freeSlots() > 0) this.schedulePump();
    else if (short) await this.armTimer();
    this.notifyIdle();
  }

  /** Sleeps until the next due instance or the poll interval, whichever is first. */
  private async armTimer(): Promise<void> {
    if (this.state !== 'running') return;
    const now = this.clock.now();
    let due: number | null = null;
    try {
      due = await this.store.nextDueAt(this.runnableIds);
    } catch (error) {
      this.logger.warn({ err: error }, 'reading the next due time failed');
    }
    let delay = this.options.pollIntervalMs;
    if (due !== null && due > now) delay = Math.min(delay, due - now + 1);
    if (this.timer) clearTimeout(this.timer);
    if (this.state !== 'running') return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.wake();
    }, delay);
  }

  /** Takes a claimed instance: it runs as soon as a slot is free. */
  private enqueue(claimed: ClaimedInstance): void {
    const { instance } = claimed;
    const attempt = new Attempt(instance, claimed.claimToken);
    // This process took over its own attempt (its lease ran out, e.g. when the clock jumped past
    // it): the old attempt may no longer write, and must stop now rather than run on beside the new one.
    const previous = this.running.get(instance.id);
    if (previous && !previous.over) {
      previous.over = true;
      previous.abort(
        new TandemError('lease-lost', `Lease on instance "${instance.id}" expired and was taken over`),
      );
      this.logger.warn(
        { instanceId: instance.id },
        'own lease expired and taken over; old attempt abandoned',
      );
    }
    this.running.set(instance.id, attempt);
    this.waiting.push({ claimed, attempt });
  }

  /** Starts waiting attempts while slots are free. */
  private launchWaiting(): void {
    // While draining, prefetched attempts stay unstarted: stop() hands them back.
    if (this.state === 'draining') return;
    while (this.busy < this.options.concurrency && this.waiting.length > 0) {
      const { claimed, attempt } = this.waiting.shift()!;
      if (attempt.over) {
        // Its lease was lost while it waited: it never started, so nothing is left to write.
        if (this.running.get(attempt.instance.id) === attempt) this.running.delete(attempt.instance.id);
        continue;
      }
      this.launch(claimed, attempt);
    }
  }

  private launch(claimed: ClaimedInstance, attempt: Attempt): void {
    const { instance } = claimed;
    const integration = this.integrations.get(instance.integrationId) as
      | AsyncDefinition<any>
      | ScheduledDefinition<any>
      | undefined;
    this.busy++;
    attempt.launchedAt = performance.now();
    this.observer.started(instance, claimed.takenOver);
    const run = integration
      ? executeAttempt(claimed, integration, attempt, this.executeDeps)
      : Promise.reject(new UnknownIntegrationError(instance.integrationId));
    run.then(
      () => this.ended(attempt),
      (error) => {
        const err = Redactor.of(integration?.redact, instance.input).logged(error);
        this.logger.error({ err, instanceId: instance.id }, 'attempt ended with an internal error');
        this.ended(attempt);
      },
    );
  }

  /** What every attempt is handed: made once, not per attempt. */
  private get executeDeps(): ExecuteDeps {
    this.deps ??= {
      clock: this.clock,
      writer: this.writer,
      children: this.children,
      countChildren: (parentId) => this.store.countChildren(parentId),
      storedParameters: async (integrationId) =>
        (await this.store.getSchedule(integrationId))?.parameters ?? {},
      handlerDone: (a) => this.release(a),
      observer: this.observer,
      connections: this.connections,
    };
    return this.deps;
  }

  private deps: ExecuteDeps | undefined;

  /** An attempt is over, its final write done (or abandoned). */
  private ended(attempt: Attempt): void {
    this.release(attempt);
    const { id } = attempt.instance;
    if (this.running.get(id) === attempt) this.running.delete(id);
    // A finish may free an ordering key or a concurrency slot: look for more work.
    this.moreLikely = true;
    this.schedulePump();
    this.notifyIdle();
  }

  /**
   * Frees an attempt's concurrency slot once its handler is done, so the next claim overlaps the
   * write of this attempt's result instead of waiting for it.
   */
  private release(attempt: Attempt): void {
    if (attempt.released) return;
    attempt.released = true;
    this.busy--;
    if (attempt.launchedAt !== undefined)
      this.handlerMs += (performance.now() - attempt.launchedAt - this.handlerMs) * 0.1;
    this.launchWaiting();
    this.moreLikely = true;
    this.schedulePump();
  }

  /** How many more instances this process may claim now. */
  private freeSlots(): number {
    const { concurrency, claimBatch } = this.options;
    const prefetch = this.handlerMs < 50 ? (this.options.prefetch ?? concurrency) : 0;
    // Attempts waiting for their final write still hold a lease; cap them at one more concurrency's worth.
    return Math.min(
      concurrency + prefetch - this.busy - this.waiting.length,
      concurrency + Math.max(concurrency, claimBatch) + prefetch - this.running.size,
    );
  }

  private async renewLeases(): Promise<void> {
    if (this.running.size === 0) return;
    const attempts = [...this.running.values()].filter((a) => !a.over);
    try {
      const lost = await this.store.extendLeases(
        attempts.map((a) => ({ instanceId: a.instance.id, claimToken: a.claimToken })),
        this.clock.now() + this.options.leaseMs,
      );
      for (const id of lost) {
        const attempt = this.running.get(id);
        if (!attempt || attempt.over) continue;
        attempt.over = true;
        // Rare: read why, so that a cancel made by another process is told as a cancel.
        const status = (await this.store.getInstance(id).catch(() => null))?.status;
        if (status === 'cancelled') {
          attempt.abort(new CancelledError(id));
          this.logger.info({ instanceId: id }, 'instance cancelled elsewhere; attempt abandoned');
          continue;
        }
        attempt.abort(new TandemError('lease-lost', `Lease on instance "${id}" was lost`));
        this.logger.warn({ instanceId: id }, 'lease lost (taken over); attempt abandoned');
      }
    } catch (error) {
      this.logger.error({ err: error }, 'renewing leases failed');
    }
  }

  /**
   * The first step of a graceful shutdown: claims nothing more and fires no cron slot, while accepts
   * still commit, so that requests in flight can hand off their work to other processes. Running
   * attempts go on; `stop()` follows.
   */
  async stopClaiming(): Promise<void> {
    if (this.state !== 'running' && this.state !== 'idle') return;
    this.state = 'draining';
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.unsubscribeWake?.();
    this.unsubscribeWake = null;
    await this.scheduler?.stop();
  }

  /**
   * Stops claiming, lets running attempts finish within the grace period, then aborts the rest and
   * releases their leases so another process takes them over at once.
   */
  async stop(graceMs = this.options.shutdownGraceMs): Promise<void> {
    if (this.state === 'stopped' || this.state === 'stopping') return;
    this.state = 'stopping';
    await this.scheduler?.stop();
    if (this.timer) clearTimeout(this.timer);
    this.unsubscribeWake?.();
    // Prefetched attempts never started: hand them back at once.
    const unstarted = this.waiting.splice(0).map(({ attempt }) => attempt);
    for (const attempt of unstarted) {
      attempt.over = true;
      this.running.delete(attempt.instance.id);
    }
    const deadline = Date.now() + graceMs;
    while (this.running.size > 0 && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const done = () => {
          this.idle.delete(done);
          clearTimeout(t);
          resolve();
        };
        const t = setTimeout(done, Math.max(1, deadline - Date.now()));
        this.idle.add(done);
      });
    }
    const leftovers = [...this.running.values()];
    for (const attempt of leftovers) {
      attempt.over = true;
      attempt.abort(new ShuttingDownError());
    }
    if (this.heartbeat) clearInterval(this.heartbeat);
    if (this.purgeTimer) clearInterval(this.purgeTimer);
    this.unwatchCircuits();
    await this.acceptBatcher.drain();
    await this.writer.drain();
    leftovers.push(...unstarted);
    if (leftovers.length > 0) {
      await this.store.releaseLeases(
        leftovers.map((a) => ({ instanceId: a.instance.id, claimToken: a.claimToken })),
        this.clock.now(),
      );
    }
    this.running.clear();
    this.state = 'stopped';
    if (this.ownsStore) await this.store.close();
  }

  private notifyIdle(): void {
    for (const listener of [...this.idle]) listener();
  }

  // ── Schedules ─────────────────────────────────────────────────────────────────────────────

  private startScheduler(): void {
    const scheduled = this.listIntegrations().filter(
      (i): i is AnyIntegration & ScheduledDefinition<any> => i.mode === 'scheduled',
    );
    if (scheduled.length === 0 || (this.options.scheduler ?? this.options.worker) === false) return;
    this.scheduler = new Scheduler(scheduled, {
      store: this.store,
      clock: this.clock,
      logger: this.logger,
      prepare: (integration, slotAt) => this.prepare(integration, { scheduledFor: slotAt, parameters: {} }),
      fired: () => this.wake(),
      onSlot: (event) => {
        this.observer.slot(event);
        this.options.onSlot?.(event);
      },
    });
    this.scheduler.start();
  }

  /**
   * Fires every cron slot that is due by the engine's clock now. The scheduler does this on its own
   * timer; tests that move a manual clock call it to fire without waiting.
   */
  async fireDueSlots(): Promise<void> {
    await this.scheduler?.tick();
  }

  /** A schedule's cron, parameters (effective and stored), next slot and recent slots. */
  async getSchedule(integrationId: string): Promise<ScheduleInfo> {
    const integration = this.scheduledIntegration(integrationId, 'have a schedule');
    const [state, slots] = await Promise.all([
      this.store.getSchedule(integrationId),
      this.store.listSlots(integrationId, 20),
    ]);
    return Scheduler.describe(integration, state, slots, this.clock.now());
  }

  /** Stores parameter values for a schedule, as a handler's `ctx.setParameters` would. */
  async updateParameters(
    integrationId: string,
    values: Record<string, unknown>,
  ): Promise<ScheduleParameters> {
    const integration = this.scheduledIntegration(integrationId, 'take parameters');
    const defaults = integration.parameters ?? {};
    const patch = checkParameters(defaults, values);
    const state = await this.store.updateParameters(integrationId, JSON.stringify(patch), this.clock.now());
    return { ...defaults, ...state.parameters };
  }

  private scheduledIntegration(integrationId: string, action: string): ScheduledDefinition<any> {
    const integration = this.integration(integrationId);
    if (integration.mode !== 'scheduled') throw new WrongModeError(integrationId, integration.mode, action);
    return integration;
  }

  /** An instance and its children's counts (done = succeeded + failed + cancelled). */
  async getProgress(instanceId: string): Promise<Progress> {
    const [instance, children] = await Promise.all([
      this.getInstance(instanceId),
      this.store.countChildren(instanceId),
    ]);
    return { instance, children };
  }

  // ── Operating on instances ────────────────────────────────────────────────────────────────

  /** Reruns one instance as a new run: from the failed step (default) or from the start, optionally with new input. */
  async rerun(
    id: string,
    options: { from?: RerunFrom; input?: unknown } = {},
  ): Promise<{ instanceId: string; run: number }> {
    const from = options.from ?? 'failed-step';
    let inputJson: string | undefined;
    if (options.input !== undefined) {
      const instance = await this.store.getInstance(id);
      if (!instance) throw new InstanceNotFoundError(id);
      const integration = this.integration(instance.integrationId);
      // The same checks as an accept: a scheduled instance's parameters are checked and converted.
      inputJson = toStoredJson(checkInput(integration, options.input), `The input of "${integration.id}"`);
    }
    const [outcome] = await this.store.rerun({
      ids: [id],
      from,
      ...(inputJson === undefined ? {} : { inputJson }),
      now: this.clock.now(),
    });
    const done = expectDone(outcome!, 'rerun');
    this.wake();
    return { instanceId: id, run: done.run };
  }

  /** Reruns every instance in a final state that matches the filter. Returns how many. */
  async rerunMany(
    filter: InstanceFilter,
    options: { from?: RerunFrom } = {},
  ): Promise<{ count: number; at: number }> {
    if (Object.values(filter).every((v) => v === undefined)) {
      throw new InvalidInputError([
        { path: 'filter', message: 'A bulk rerun needs at least one filter field' },
      ]);
    }
    const at = this.clock.now();
    const outcomes = await this.store.rerun({ filter, from: options.from ?? 'failed-step', now: at });
    const count = outcomes.filter((o) => o.outcome === 'done').length;
    if (count > 0) this.wake();
    return { count, at };
  }

  /** Cancels a queued, retrying, running or failed instance. A running attempt is aborted. */
  async cancel(id: string): Promise<void> {
    const [outcome] = await this.store.cancel([id], this.clock.now());
    expectDone(outcome!, 'cancel');
    const attempt = this.running.get(id);
    if (attempt && !attempt.over) {
      attempt.over = true;
      attempt.abort(new CancelledError(id));
    }
    this.wake(); // a cancel may free an ordering key
  }

  async getInstance(id: string): Promise<Instance> {
    const instance = await this.store.getInstance(id);
    if (!instance) throw new InstanceNotFoundError(id);
    return instance;
  }

  async getDetail(id: string): Promise<InstanceDetail> {
    const instance = await this.getInstance(id);
    const [runs, steps, events] = await Promise.all([
      this.store.getRuns(id),
      this.store.getSteps(id),
      this.store.getEvents({ instanceId: id, limit: 10_000 }),
    ]);
    return { instance, runs, steps, events };
  }

  listInstances(request: ListRequest): Promise<Page<Instance>> {
    return this.store.listInstances(request);
  }
}

function expectDone(outcome: TransitionOutcome, action: string): { run: number } {
  if (outcome.outcome === 'not-found') throw new InstanceNotFoundError(outcome.id);
  if (outcome.outcome === 'invalid-state') throw new InvalidStateError(outcome.id, outcome.status, action);
  return outcome;
}

/** Validates an input against the integration's schema; returns the parsed value. */
export function validateInput(integration: AnyIntegration, input: unknown): unknown {
  if (!integration.input) return input;
  const result = integration.input.safeParse(input);
  if (result.success) return result.data;
  throw new InvalidInputError(
    result.error.issues.map((issue: { path: PropertyKey[]; message: string }) => ({
      path: issue.path.map(String).join('.'),
      message: issue.message,
    })),
  );
}

/**
 * Checks the input of a new instance or of a rerun: an async integration's input against its
 * schema, a scheduled one's parameters against the declared ones. Returns the value to store.
 */
function checkInput(integration: AnyIntegration, input: unknown): unknown {
  return integration.mode === 'scheduled'
    ? checkScheduledInput(integration.parameters ?? {}, input)
    : validateInput(integration, input);
}

export function hashInput(inputJson: string): string {
  return createHash('sha256').update(inputJson).digest('base64url');
}

/** Creates an engine. */
export function createEngine(options: EngineOptions): Promise<Engine> {
  return Engine.create(options);
}

/**
 * The tracking values and keys of an accept that no store can hold as text (a NUL character, half
 * of a surrogate pair), or null. The input itself is stored as JSON, escaped; these are stored as
 * text, and a database that refused one would fail every accept of the same transaction with it.
 */
function unstorableKeys(
  def: AsyncDefinition<any>,
  tracking: Record<string, string>,
  orderingKey: string | null,
  idempotencyKey: string | null,
): InputIssue[] | null {
  const issues: InputIssue[] = [];
  const check = (text: string | null, what: string, selector: unknown) => {
    if (text === null || isStorableText(text)) return;
    const path = typeof selector === 'string' ? selector : '';
    issues.push({ path, message: `${what} has a NUL character or half of a surrogate pair` });
  };
  for (const name in tracking) check(tracking[name]!, `Tracking field "${name}"`, def.track?.[name]);
  check(orderingKey, 'The ordering key', def.orderingKey);
  check(idempotencyKey, 'The idempotency key', undefined);
  return issues.length > 0 ? issues : null;
}
