/**
 * The engine: Tandem's durable runtime behind one small facade. Its parts each do one job: the
 * {@link Acceptor} takes new work (validation, group commit, children), the {@link Dispatcher}
 * claims and runs it (prefetch, leases, shutdown), and {@link Operations} works on what is stored
 * (rerun, cancel, queries, schedules, retention). The facade wires them and never hands out its
 * store: everything outside the engine goes through its methods.
 */
import { hostname } from 'node:os';
import pino, { type Logger } from 'pino';
import { ALERTS_INTEGRATION, Alerts } from '../alerts/alerts.js';
import type { Connection } from '../connections/connection.js';
import type { AnyIntegration } from '../define/integration.js';
import type { Parameters as ScheduleParameters } from '../define/parameters.js';
import { ShuttingDownError } from '../errors.js';
import type { ActivityWebhook } from '../feeds/activity-webhook.js';
import { loggingObserver } from '../logging.js';
import type { ActivityEvent, Actor, ChildCounts, Instance, Json, RerunFrom } from '../model.js';
import { openStore } from '../store/open.js';
import type {
  InstanceFilter,
  IntegrationStats,
  ListRequest,
  NewInstance,
  OrderingHolder,
  OverviewFigures,
  OverviewRequest,
  Page,
  StatsRequest,
  Store,
} from '../store/store.js';
import { startTracing, type Tracing } from '../tracing/tracing.js';
import { Acceptor, type ChildPreparation } from './acceptor.js';
import type { FollowOptions } from './activity.js';
import { type Clock, systemClock } from './clock.js';
import { Dispatcher } from './dispatcher.js';
import { uuidv7 } from './ids.js';
import { type EngineObserver, watchCircuits } from './observer.js';
import { Operations, type Refusal } from './operations.js';
import type {
  Accepted,
  AcceptOptions,
  EngineOptions,
  InstanceDetail,
  Progress,
  RunNowOptions,
} from './options.js';
import type { ScheduleInfo } from './scheduler.js';
import { Observers, Registry } from './shared.js';
import type { SyncRecorder, SyncRecorderOptions } from './sync-recorder.js';
import { DEFAULT_LOOK_BACK_MS, type SendEvent, type SentEvent, Waits } from './waits.js';
import { WorkWriter } from './writer.js';

export type { ChildPreparation } from './acceptor.js';
export type {
  Accepted,
  AcceptOptions,
  EngineOptions,
  InstanceDetail,
  Progress,
  RetentionOptions,
  RunNowOptions,
} from './options.js';
export type { SendEvent, SentEvent } from './waits.js';

const DEFAULTS = {
  concurrency: 50,
  claimBatch: 200,
  leaseMs: 30_000,
  pollIntervalMs: 1_000,
  shutdownGraceMs: 10_000,
};

export class Engine {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly workerId: string;
  /** Registered connections, by id. */
  readonly connections: Map<string, Connection>;
  /** One observer that fans out to all watchers, so that a throwing watcher cannot break the engine. */
  readonly observer: Required<EngineObserver>;
  /** Spans of the engine's work; null when tracing is not configured (then no span is made). */
  readonly tracing: Tracing | null;
  private readonly store: Store;
  private readonly ownsStore: boolean;
  private readonly worker: boolean;
  private readonly shutdownGraceMs: number;
  private readonly registry: Registry;
  private readonly observers: Observers;
  private readonly acceptor: Acceptor;
  private readonly dispatcher: Dispatcher;
  private readonly operations: Operations;
  private readonly waits: Waits;
  private readonly unwatchCircuits: () => void;
  private readonly alerts: Alerts | null;
  private readonly activityWebhook: ActivityWebhook | null;
  /** Undoes the sharing of connection limits through the store (gives back held slots). */
  private readonly unshareLimits: (() => Promise<void>)[] = [];

  private constructor(
    options: EngineOptions,
    store: Store,
    ownsStore: boolean,
    tracing: Tracing | null,
    Webhook: typeof ActivityWebhook | null = null,
  ) {
    // Alerts are delivered by an integration of their own, run like the others.
    this.alerts = options.alerts ? new Alerts(options.alerts) : null;
    const integrations = this.alerts
      ? [...options.integrations, this.alerts.integration]
      : options.integrations;
    this.registry = new Registry(integrations, options.connections, options.run);
    const settings = { ...DEFAULTS, ...options };
    this.store = store;
    this.ownsStore = ownsStore;
    this.worker = options.worker !== false;
    this.shutdownGraceMs = settings.shutdownGraceMs;
    this.clock = options.clock ?? systemClock;
    this.logger = options.logger ?? pino({ level: process.env.TANDEM_LOG_LEVEL ?? 'info' });
    // What a person follows in the log (retries, failures, circuits, schedules) is written by one observer.
    this.observers = new Observers(this.logger, [
      loggingObserver(this.logger),
      ...(this.alerts ? [this.alerts.observer] : []),
      ...(options.observers ?? []),
    ]);
    this.observer = this.observers.observer;
    this.connections = this.registry.connections;
    this.unwatchCircuits = watchCircuits(this.registry.connections.values(), this.observer);
    const limits = store.limits?.();
    if (limits && options.sharedLimits) {
      for (const connection of this.registry.connections.values()) {
        const unshare = connection.shareLimits?.(limits, (error) =>
          this.logger.warn(
            { err: error, connection: connection.id },
            'shared connection limits: store call failed',
          ),
        );
        if (unshare) this.unshareLimits.push(unshare);
      }
    }
    this.workerId = options.workerId ?? `${hostname()}:${process.pid}:${uuidv7().slice(-6)}`;
    this.tracing = tracing;
    const parts = {
      store,
      tracing,
      clock: this.clock,
      logger: this.logger,
      registry: this.registry,
      observer: this.observer,
    };
    this.acceptor = new Acceptor(parts, this, options.groupCommit !== false);
    const writer = new WorkWriter(
      store,
      (error) => this.logger.error({ err: error }, 'writing activity failed'),
      15_000,
      () => this.operations.changed(),
    );
    this.waits = new Waits({
      store,
      clock: this.clock,
      lookBackMs: options.events?.lookBackMs ?? DEFAULT_LOOK_BACK_MS,
      ...(options.publicUrl === undefined ? {} : { publicUrl: options.publicUrl }),
      wake: () => this.dispatcher.wake(),
      groupCommit: options.groupCommit !== false,
    });
    this.dispatcher = new Dispatcher(
      parts,
      this.acceptor,
      writer,
      {
        concurrency: settings.concurrency,
        claimBatch: settings.claimBatch,
        prefetch: options.prefetch,
        leaseMs: settings.leaseMs,
        pollIntervalMs: settings.pollIntervalMs,
        worker: this.worker,
        workerId: this.workerId,
      },
      this.waits,
    );
    this.activityWebhook =
      options.activityWebhook && Webhook
        ? new Webhook(
            store,
            options.activityWebhook,
            this.workerId,
            () => this.clock.now(),
            this.logger.child({ component: 'activity-webhook' }),
            options.publicUrl,
          )
        : null;
    this.operations = new Operations(parts, this.dispatcher, this.acceptor, {
      retention: options.retention,
      scheduler: (options.scheduler ?? options.worker) !== false,
      onSlot: options.onSlot,
      lookBackMs: this.waits.lookBackMs,
    });
  }

  /** Creates an engine; opens the store when given a URL. Call `start()` to begin running instances. */
  static async create(options: EngineOptions): Promise<Engine> {
    const given = options.store;
    const tracing = await startTracing(options.tracing);
    // The CloudEvents SDK is loaded only by an engine that sends the activity webhook.
    const feeds = options.activityWebhook ? await import('../feeds/activity-webhook.js') : null;
    const store = typeof given === 'object' ? given : await openStore(given);
    return new Engine(options, store, typeof given !== 'object', tracing, feeds?.ActivityWebhook ?? null);
  }

  /** Subscribes to "something was committed" hints (accepts, step results, finishes). */
  onChange(listener: () => void): () => void {
    return this.operations.onChange(listener);
  }

  /** Adds a watcher of accepts, starts and finishes. */
  observe(observer: EngineObserver): void {
    this.observers.add(observer);
  }

  integration(id: string): AnyIntegration {
    return this.registry.integration(id);
  }

  listIntegrations(): AnyIntegration[] {
    return this.registry.list();
  }

  // ── Accepting work ────────────────────────────────────────────────────────────────────────

  /**
   * Validates the input and builds the row of a new durable instance, without storing it. Throws a
   * typed error (unknown integration, wrong mode, invalid input, not serialisable).
   */
  prepare(
    integration: string | AnyIntegration,
    input: unknown,
    options: AcceptOptions = {},
    child: ChildPreparation = {},
  ): NewInstance {
    return this.acceptor.prepare(integration, input, options, child);
  }

  /**
   * Accepts prepared instances: stores them in one transaction (shared with other accepts of the
   * same tick) and resolves only after the commit. A repeated idempotency key with a different
   * input is refused.
   */
  acceptPrepared(rows: NewInstance[]): Promise<Accepted[]> {
    return this.acceptor.acceptPrepared(rows);
  }

  /**
   * Accepts one durable instance: resolves once it is committed.
   *
   * @example
   * const { instanceId } = await engine.accept('fulfil-order', { orderId: 'A-1001' });
   */
  accept(
    integration: string | AnyIntegration,
    input: unknown,
    options: AcceptOptions = {},
  ): Promise<Accepted> {
    return this.acceptor.accept(integration, input, options);
  }

  /**
   * Runs an integration now: an async one with `input`, a scheduled one outside its cron with
   * parameter overrides that apply to this instance only. Resolves once the instance is committed.
   *
   * @example
   * await engine.runNow('nightly-orders', { parameters: { date: '2026-11-24' } });
   */
  runNow(integrationId: string, options: RunNowOptions = {}): Promise<Accepted> {
    return this.acceptor.runNow(integrationId, options);
  }

  /** Writes the monitoring records of sync instances off the response path (for the sync runner). */
  syncRecorder(logger: Logger, options?: SyncRecorderOptions): SyncRecorder {
    return this.acceptor.syncRecorder(logger, options);
  }

  // ── Waits: events and callbacks ─────────────────────────────────────────────────────────

  /**
   * Sends a business event: every instance waiting for it (`ctx.waitForEvent`, by name and match)
   * resumes, and waits that begin within the look-back window after it take it too. `actor`: the
   * management token that sent it, recorded on the `wait.resumed` events of the instances it wakes.
   *
   * @example
   * await engine.sendEvent({ name: 'employee.created', payload: { employeeId: 'E-7' }, id: 'hr-4711' });
   */
  sendEvent(event: SendEvent, actor?: Actor): Promise<SentEvent> {
    return this.waits.sendEvent(event, actor);
  }

  /** A partner's call to a callback URL (its last path segment): resumes the instance once. */
  answerCallback(token: string, body: Json): Promise<{ instanceId: string }> {
    return this.waits.answerCallback(token, body);
  }

  /**
   * Where partners reach this deployment: callback URLs begin with it. A server sets it from its
   * `publicUrl`, else as a `fallback` from where it listens (which does not replace a named one).
   */
  setPublicUrl(url: string, options: { fallback?: boolean } = {}): void {
    this.waits.setPublicUrl(url, options);
  }

  /** The base of callback URLs handed out now. */
  get publicUrl(): string {
    return this.waits.callbackBase();
  }

  // ── Running work ──────────────────────────────────────────────────────────────────────────

  /** Starts dispatching (unless this is an API-only engine). */
  start(): void {
    if (!this.dispatcher.begin()) return;
    this.alerts?.start(
      {
        now: () => this.clock.now(),
        logger: this.logger,
        process: this.workerId,
        publicUrl: () => this.publicUrl,
        commit: (message, key, runAt) => this.commitAlert(message, key, runAt),
        count: (statuses, integrationId) =>
          this.operations.countInstances({
            status: statuses,
            ...(integrationId === undefined ? {} : { integrationId }),
          }),
        listInstances: (request) => this.operations.listInstances(request),
        failedSteps: (instances) => this.operations.failedSteps(instances),
        durableIntegrations: () =>
          this.registry
            .list()
            .filter((integration) => integration.mode !== 'sync' && integration.id !== ALERTS_INTEGRATION)
            .map((integration) => integration.id),
      },
      this.worker,
    );
    this.operations.startScheduler();
    if (!this.worker) return;
    this.operations.startRetention();
    this.activityWebhook?.start();
    this.dispatcher.start();
  }

  /**
   * Stores one alert message as an instance of the alerts integration: through the group commit,
   * or straight into the store once accepts are closed (the last burst, at shutdown).
   */
  private async commitAlert(message: unknown, idempotencyKey: string, runAt = 0): Promise<void> {
    // Due since the epoch: claims take due work by due time, so an alert goes ahead of the backlog
    // it may be about instead of waiting behind it. A burst's fallback is due after the burst.
    const row = this.acceptor.prepare(ALERTS_INTEGRATION, message, { idempotencyKey, runAt });
    try {
      await this.acceptor.acceptPrepared([row]);
    } catch (error) {
      if (!(error instanceof ShuttingDownError)) throw error;
      await this.store.insertInstances([row]);
    }
  }

  /** Wakes the dispatcher: there may be work to claim. */
  wake(): void {
    this.dispatcher.wake();
  }

  /**
   * Resolves once this process runs no attempt and a claim by the engine's clock, made after the
   * call, found nothing more (or the engine stopped). Tests that move a manual clock wait on it:
   * everything due now has run. `signal` gives up (work that never stops coming due).
   */
  settled(signal?: AbortSignal): Promise<void> {
    return this.dispatcher.settled(signal);
  }

  /** Number of attempts running in this process. */
  get activeCount(): number {
    return this.dispatcher.activeCount;
  }

  /**
   * The first step of a graceful shutdown: claims nothing more and fires no cron slot, while accepts
   * still commit, so that requests in flight can hand off their work to other processes. Running
   * attempts go on; `stop()` follows.
   */
  async stopClaiming(): Promise<void> {
    if (this.dispatcher.stopClaiming()) await this.operations.stopScheduler();
  }

  /**
   * Stops claiming, lets running attempts finish within the grace period, then aborts the rest and
   * releases their leases so another process takes them over at once.
   */
  async stop(graceMs = this.shutdownGraceMs): Promise<void> {
    if (!this.dispatcher.beginStop()) return;
    this.acceptor.close();
    await this.operations.stopScheduler();
    const leftovers = await this.dispatcher.finishAttempts(graceMs);
    // After the last attempts: their failures are in the message.
    await this.alerts?.stop();
    this.operations.stopRetention();
    await this.activityWebhook?.stop();
    this.unwatchCircuits();
    await Promise.all(this.unshareLimits.splice(0).map((unshare) => unshare()));
    await this.acceptor.drain();
    await this.dispatcher.handBack(leftovers);
    if (this.ownsStore) await this.store.close();
    await this.tracing?.shutdown();
  }

  // ── Operating on stored work ──────────────────────────────────────────────────────────────

  /** Deletes finished instances past their outcome's retention period (see {@link RetentionOptions}). Returns how many. */
  purge(): Promise<number> {
    return this.operations.purge();
  }

  /**
   * Fires every cron slot that is due by the engine's clock now. The scheduler does this on its own
   * timer; tests that move a manual clock call it to fire without waiting.
   */
  fireDueSlots(): Promise<void> {
    return this.operations.fireDueSlots();
  }

  /** A schedule's cron, parameters (effective and stored), next slot and recent slots. */
  getSchedule(integrationId: string): Promise<ScheduleInfo> {
    return this.operations.getSchedule(integrationId);
  }

  /** Stores parameter values for a schedule, as a handler's `ctx.setParameters` would. */
  updateParameters(integrationId: string, values: Record<string, unknown>): Promise<ScheduleParameters> {
    return this.operations.updateParameters(integrationId, values);
  }

  /** Reruns one instance as a new run: from the failed step (default) or from the start, optionally with new input. */
  rerun(
    id: string,
    options: { from?: RerunFrom; input?: unknown; actor?: Actor } = {},
  ): Promise<{ instanceId: string; run: number }> {
    return this.operations.rerun(id, options);
  }

  /** Reruns every instance in a final state that matches the filter. Returns how many. */
  rerunMany(
    filter: InstanceFilter,
    options: { from?: RerunFrom; actor?: Actor } = {},
  ): Promise<{ count: number; at: number; refused: Refusal[] }> {
    return this.operations.rerunMany(filter, options);
  }

  /** Reruns the listed instances; each one refused is listed with its reason. */
  rerunIds(
    ids: string[],
    options: { from?: RerunFrom; actor?: Actor } = {},
  ): Promise<{ count: number; at: number; refused: Refusal[] }> {
    return this.operations.rerunIds(ids, options);
  }

  /**
   * Acknowledges failed instances (sync and durable alike: they leave the default errors view), or
   * takes the acknowledgement back; each one refused (not failed, not found) is listed with its reason.
   */
  acknowledge(
    ids: string[],
    options: { acknowledged?: boolean; note?: string | null; actor?: Actor } = {},
  ): Promise<{ done: string[]; refused: Refusal[] }> {
    return this.operations.acknowledge(
      ids,
      options.acknowledged ?? true,
      options.note ?? null,
      options.actor,
    );
  }

  /** The step each failed run stopped in, by instance id (absent: it failed outside a step). */
  failedSteps(instances: Pick<Instance, 'id' | 'run'>[]): Promise<Record<string, string>> {
    return this.operations.failedSteps(instances);
  }

  /**
   * Cancels a queued, retrying, running or failed instance. A running attempt is aborted. `actor`:
   * who asked (recorded in the `cancelled` event).
   */
  cancel(id: string, actor?: Actor): Promise<void> {
    return this.operations.cancel(id, actor);
  }

  getInstance(id: string): Promise<Instance> {
    return this.operations.getInstance(id);
  }

  getDetail(id: string): Promise<InstanceDetail> {
    return this.operations.getDetail(id);
  }

  /** An instance's activity events, oldest first, at most `limit`: what a picture reads, without its data. */
  getEvents(instanceId: string, limit: number): Promise<ActivityEvent[]> {
    return this.operations.getEvents(instanceId, limit);
  }

  /** An instance and its children's counts (done = succeeded + failed + cancelled). */
  getProgress(instanceId: string): Promise<Progress> {
    return this.operations.getProgress(instanceId);
  }

  listInstances(request: ListRequest): Promise<Page<Instance>> {
    return this.operations.listInstances(request);
  }

  /** An instance's children (a fan-out, a hand-off) by status. */
  countChildren(parentId: string): Promise<ChildCounts> {
    return this.operations.countChildren(parentId);
  }

  /** The instance that holds an ordering key against instance `seq`, or null (see `Store.orderingHolder`). */
  orderingHolder(orderingKey: string, seq: number): Promise<OrderingHolder | null> {
    return this.operations.orderingHolder(orderingKey, seq);
  }

  /** How many instances match the filter. */
  countInstances(filter: InstanceFilter): Promise<number> {
    return this.operations.countInstances(filter);
  }

  /** Per integration: counts, durations and retries of the instances in a time window. */
  integrationStats(request: StatsRequest): Promise<IntegrationStats[]> {
    return this.operations.integrationStats(request);
  }

  /** Per-bucket figures of the instances created in a window, and the unfinished work now. */
  overview(request: OverviewRequest): Promise<OverviewFigures> {
    return this.operations.overview(request);
  }

  /** The activity stream from a cursor (or from now), waiting for more until `signal` fires. */
  followActivity(options: FollowOptions): AsyncGenerator<ActivityEvent & { cursor: string }> {
    return this.operations.followActivity(options);
  }

  /** Whether a text is a cursor the activity stream handed out. */
  isStreamCursor(cursor: string): boolean {
    return this.operations.isStreamCursor(cursor);
  }

  /** Resolves when the store answers. */
  ping(): Promise<void> {
    return this.operations.ping();
  }
}

/** Creates an engine. */
export function createEngine(options: EngineOptions): Promise<Engine> {
  return Engine.create(options);
}
