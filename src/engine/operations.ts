/**
 * Operations on stored work: rerun and cancel, the queries behind the API and the console (an
 * instance and its history, lists, counts, statistics, the activity stream), the schedules
 * (their state, parameters and the scheduler that fires their slots), and retention. What these
 * read and write goes through here, so that nothing outside the engine needs its store.
 */
import type { Logger } from 'pino';
import { type AnyIntegration, handlerOfVersion, type ScheduledDefinition } from '../define/integration.js';
import { checkParameters, type Parameters as ScheduleParameters } from '../define/parameters.js';
import {
  CancelledError,
  InstanceNotFoundError,
  InvalidInputError,
  InvalidStateError,
  TandemError,
  WrongModeError,
} from '../errors.js';
import { toStoredJson } from '../json.js';
import { isFinal } from '../lifecycle/index.js';
import type { ActivityEvent, Actor, ChildCounts, Instance, Json, RerunFrom, Wait } from '../model.js';
import type {
  InstanceFilter,
  IntegrationStats,
  ListRequest,
  OrderingHolder,
  OverviewFigures,
  OverviewRequest,
  Page,
  StatsRequest,
  Store,
  TransitionOutcome,
  WaitRecord,
} from '../store/store.js';
import { type Acceptor, checkInput } from './acceptor.js';
import { type FollowOptions, followActivity } from './activity.js';
import type { Clock } from './clock.js';
import type { Dispatcher } from './dispatcher.js';
import type { EngineObserver } from './observer.js';
import type { InstanceDetail, Progress, RetentionOptions } from './options.js';
import { type ScheduleInfo, Scheduler, type SlotEvent } from './scheduler.js';
import type { EngineParts, Registry, Waker } from './shared.js';

const DEFAULT_KEEP_MS = 30 * 24 * 3_600_000;

export interface OperationsOptions {
  retention?: RetentionOptions | false | undefined;
  /** Whether this process fires cron slots. */
  scheduler: boolean;
  onSlot?: ((event: SlotEvent) => void) | undefined;
  /** Business events are kept this long (the look-back window of waits), then purged. */
  lookBackMs: number;
}

export class Operations {
  private readonly store: Store;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly registry: Registry;
  private readonly observer: Required<EngineObserver>;
  private readonly changeListeners = new Set<() => void>();
  private scheduler: Scheduler | null = null;
  private purgeTimer: NodeJS.Timeout | null = null;

  constructor(
    parts: EngineParts,
    /** Aborts a cancelled attempt, tells whether the engine runs, and is woken by reruns and cancels. */
    private readonly dispatcher: Pick<Dispatcher, 'abandon' | 'running'> & Waker,
    /** Builds the instance a cron slot fires. */
    private readonly acceptor: Pick<Acceptor, 'prepare'>,
    private readonly options: OperationsOptions,
  ) {
    this.store = parts.store;
    this.clock = parts.clock;
    this.logger = parts.logger;
    this.registry = parts.registry;
    this.observer = parts.observer;
  }

  // ── Following what is committed ───────────────────────────────────────────────────────────

  /** Subscribes to "something was committed" hints (accepts, step results, finishes). */
  onChange(listener: () => void): () => void {
    this.changeListeners.add(listener);
    const unsubscribeStore = this.store.onWake?.(listener);
    return () => {
      this.changeListeners.delete(listener);
      unsubscribeStore?.();
    };
  }

  /** Something was committed by this process. */
  changed(): void {
    for (const listener of this.changeListeners) listener();
  }

  followActivity(options: FollowOptions): AsyncGenerator<ActivityEvent & { cursor: string }> {
    return followActivity(this.store, options);
  }

  isStreamCursor(cursor: string): boolean {
    return this.store.isStreamCursor(cursor);
  }

  ping(): Promise<void> {
    return this.store.ping();
  }

  countInstances(filter: InstanceFilter): Promise<number> {
    return this.store.countInstances(filter);
  }

  integrationStats(request: StatsRequest): Promise<IntegrationStats[]> {
    return this.store.integrationStats(request);
  }

  overview(request: OverviewRequest): Promise<OverviewFigures> {
    return this.store.overview(request);
  }

  // ── Schedules ─────────────────────────────────────────────────────────────────────────────

  startScheduler(): void {
    const scheduled = this.registry
      .list()
      .filter((i): i is AnyIntegration & ScheduledDefinition<any> => i.mode === 'scheduled');
    if (scheduled.length === 0 || !this.options.scheduler) return;
    this.scheduler = new Scheduler(scheduled, {
      store: this.store,
      clock: this.clock,
      logger: this.logger,
      prepare: (integration, slotAt) =>
        this.acceptor.prepare(integration, { scheduledFor: slotAt, parameters: {} }),
      fired: () => this.dispatcher.wake(),
      onSlot: (event) => {
        this.observer.slot(event);
        this.options.onSlot?.(event);
      },
      missed: (event) => this.observer.slotsMissed(event),
    });
    this.scheduler.start();
  }

  async stopScheduler(): Promise<void> {
    await this.scheduler?.stop();
  }

  async fireDueSlots(): Promise<void> {
    await this.scheduler?.tick();
  }

  async getSchedule(integrationId: string): Promise<ScheduleInfo> {
    const integration = this.scheduledIntegration(integrationId, 'have a schedule');
    const [state, slots] = await Promise.all([
      this.store.getSchedule(integrationId),
      this.store.listSlots(integrationId, 20),
    ]);
    return Scheduler.describe(integration, state, slots, this.clock.now());
  }

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
    const integration = this.registry.integration(integrationId);
    if (integration.mode !== 'scheduled') throw new WrongModeError(integrationId, integration.mode, action);
    return integration;
  }

  // ── Retention ─────────────────────────────────────────────────────────────────────────────

  startRetention(): void {
    if (this.options.retention === false) return;
    const every = this.options.retention?.intervalMs ?? 3_600_000;
    this.purgeTimer = setInterval(() => void this.purge(), every);
    this.purgeTimer.unref();
  }

  stopRetention(): void {
    if (this.purgeTimer) clearInterval(this.purgeTimer);
  }

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
      // Business events outlive their look-back window by nothing: a wait would no longer take them.
      while ((await this.store.purgeEvents(now - this.options.lookBackMs, 5_000)) === 5_000) {
        if (!this.dispatcher.running) break;
      }
      for (;;) {
        const deleted = await this.store.purge({ ...cutoffs, limit: 1_000 });
        total += deleted;
        if (deleted < 1_000 || !this.dispatcher.running) break;
      }
    } catch (error) {
      this.logger.error({ err: error }, 'purging old instances failed');
    }
    if (total > 0) this.logger.info({ deleted: total }, 'purged instances past retention');
    return total;
  }

  // ── Instances ─────────────────────────────────────────────────────────────────────────────

  async rerun(
    id: string,
    options: { from?: RerunFrom; input?: unknown; actor?: Actor } = {},
  ): Promise<{ instanceId: string; run: number }> {
    const from = options.from ?? 'failed-step';
    let inputJson: string | undefined;
    if (from === 'failed-step') await this.checkResumable(id);
    if (options.input !== undefined) {
      const instance = await this.store.getInstance(id);
      if (!instance) throw new InstanceNotFoundError(id);
      const integration = this.registry.integration(instance.integrationId);
      // The same checks as an accept: a scheduled instance's parameters are checked and converted.
      inputJson = toStoredJson(checkInput(integration, options.input), `The input of "${integration.id}"`);
    }
    const [outcome] = await this.store.rerun({
      ids: [id],
      from,
      versions: this.currentVersions(),
      ...(inputJson === undefined ? {} : { inputJson }),
      ...(options.actor === undefined ? {} : { actor: options.actor }),
      now: this.clock.now(),
    });
    // A finished instance refused is a sync one: say so rather than blame its status.
    if (outcome?.outcome === 'invalid-state' && isFinal(outcome.status))
      throw new TandemError('invalid-state', `Cannot rerun instance "${id}": ${SYNC_NEVER_RERUN}`, {
        instanceId: id,
        status: outcome.status,
        action: 'rerun',
        mode: 'sync',
      });
    const done = expectDone(outcome!, 'rerun');
    this.dispatcher.wake();
    return { instanceId: id, run: done.run };
  }

  /** The version of each durable integration this deployment runs (a rerun from the start records it). */
  private currentVersions(): Record<string, string | null> {
    const versions: Record<string, string | null> = {};
    for (const integration of this.registry.list())
      if (integration.mode !== 'sync') versions[integration.id] = integration.version ?? null;
    return versions;
  }

  /**
   * A rerun from the failed step resumes the stored steps with the handler of the instance's
   * version: refused when that version is gone (and the definition does not continue on the
   * latest), or when the handler declares its `steps` and a stored succeeded step is not among them.
   */
  private async checkResumable(id: string): Promise<void> {
    const instance = await this.store.getInstance(id);
    if (!instance || instance.mode === 'sync') return; // refused with its own reason by the store
    const integration = this.registry.find(instance.integrationId);
    if (!integration || integration.mode === 'sync') return;
    const stored = (await this.store.getSteps(id, instance.run))
      .filter((s) => s.status === 'succeeded')
      .map((s) => s.name)
      .filter((name) => !name.startsWith('start-many:'));
    if (stored.length === 0) return;
    const runsOn = handlerOfVersion<unknown>(integration, instance.version);
    if (runsOn === null)
      throw new TandemError(
        'steps-changed',
        `Instance ${id} started on version "${instance.version}", which this deployment does not have: its stored steps cannot be resumed. Rerun it from the start (it then runs on ${integration.version === undefined ? 'the current handler' : `version "${integration.version}"`}), or deploy version "${instance.version}" in previousVersions`,
        { version: instance.version, stored },
      );
    if (runsOn.steps === undefined) return;
    const missing = stored.filter((name) => !runsOn.steps!.includes(name));
    if (missing.length > 0)
      throw new TandemError(
        'steps-changed',
        `The handler ${runsOn.version === null ? '' : `of version "${runsOn.version}" `}does not have the stored step${missing.length > 1 ? 's' : ''} ${missing.map((n) => `"${n}"`).join(', ')}: resuming would run renamed work again. Rerun from the start, or keep the old handler as a previous version`,
        { missing, stored },
      );
  }

  async rerunMany(
    filter: InstanceFilter,
    options: { from?: RerunFrom; actor?: Actor } = {},
  ): Promise<{ count: number; at: number; refused: Refusal[] }> {
    if (Object.values(filter).every((v) => v === undefined)) {
      throw new InvalidInputError([
        { path: 'filter', message: 'A bulk rerun needs at least one filter field' },
      ]);
    }
    // What the filter matches but a rerun leaves (sync, or not finished): said, not passed over.
    const matched = await this.store.listInstances({ ...filter, limit: REFUSALS_LISTED });
    const refused = matched.items
      .filter((i) => i.mode === 'sync' || !isFinal(i.status))
      .map(
        (i): Refusal => ({
          instanceId: i.id,
          code: 'invalid-state',
          reason: rerunRefusal(i.mode, i.status),
          status: i.status,
        }),
      );
    const at = this.clock.now();
    const outcomes = await this.store.rerun({
      filter,
      from: options.from ?? 'failed-step',
      versions: this.currentVersions(),
      now: at,
      ...(options.actor === undefined ? {} : { actor: options.actor }),
    });
    const count = outcomes.filter((o) => o.outcome === 'done').length;
    if (count > 0) this.dispatcher.wake();
    return { count, at, refused };
  }

  /**
   * Reruns the listed instances, each as `rerun` would (a rerun from the failed step is refused
   * when the handler lost a stored step), and says for each one refused why.
   */
  async rerunIds(
    ids: string[],
    options: { from?: RerunFrom; actor?: Actor } = {},
  ): Promise<{ count: number; at: number; refused: Refusal[] }> {
    const from = options.from ?? 'failed-step';
    const refused: Refusal[] = [];
    const unique = [...new Set(ids)];
    let eligible = unique;
    if (from === 'failed-step') {
      eligible = [];
      for (const id of unique) {
        try {
          await this.checkResumable(id);
          eligible.push(id);
        } catch (error) {
          if (!(error instanceof TandemError)) throw error;
          refused.push({ instanceId: id, code: error.code, reason: error.message, status: null });
        }
      }
    }
    const at = this.clock.now();
    const outcomes =
      eligible.length === 0
        ? []
        : await this.store.rerun({
            ids: eligible,
            from,
            versions: this.currentVersions(),
            now: at,
            ...(options.actor === undefined ? {} : { actor: options.actor }),
          });
    refused.push(...(await this.refusals(outcomes, 'rerun')));
    const count = outcomes.filter((o) => o.outcome === 'done').length;
    if (count > 0) this.dispatcher.wake();
    return { count, at, refused };
  }

  /**
   * Acknowledges failed instances (true) or takes the acknowledgement back (false); each one that
   * is not failed, or not found, is refused with its reason.
   */
  async acknowledge(
    ids: string[],
    acknowledged: boolean,
    note: string | null = null,
    actor?: Actor,
  ): Promise<{ done: string[]; refused: Refusal[] }> {
    const outcomes = await this.store.acknowledge({
      ids: [...new Set(ids)],
      acknowledged,
      note,
      now: this.clock.now(),
      ...(actor === undefined ? {} : { actor }),
    });
    return {
      done: outcomes.filter((o) => o.outcome === 'done').map((o) => o.id),
      refused: await this.refusals(outcomes, acknowledged ? 'acknowledge' : 'unacknowledge'),
    };
  }

  /** The step each failed run stopped in, by instance id (see `Store.failedSteps`). */
  failedSteps(instances: Pick<Instance, 'id' | 'run'>[]): Promise<Record<string, string>> {
    return this.store.failedSteps(instances.map((i) => ({ instanceId: i.id, run: i.run })));
  }

  /** The refused outcomes in an operator's words (one read of the refused instances' modes). */
  private async refusals(outcomes: TransitionOutcome[], action: string): Promise<Refusal[]> {
    const invalid = outcomes.filter((o) => o.outcome === 'invalid-state');
    const modes = new Map<string, Instance['mode']>();
    if (invalid.length > 0 && action === 'rerun') {
      const page = await this.store.listInstances({ ids: invalid.map((o) => o.id), limit: 1000 });
      for (const instance of page.items) modes.set(instance.id, instance.mode);
    }
    const refused: Refusal[] = [];
    for (const o of outcomes) {
      if (o.outcome === 'not-found')
        refused.push({
          instanceId: o.id,
          code: 'instance-not-found',
          reason: 'No instance has this id',
          status: null,
        });
      else if (o.outcome === 'invalid-state')
        refused.push({
          instanceId: o.id,
          code: 'invalid-state',
          reason:
            action === 'rerun'
              ? rerunRefusal(modes.get(o.id) ?? 'async', o.status)
              : `It is ${o.status}: only a failed instance can be ${action}d`,
          status: o.status,
        });
    }
    return refused;
  }

  async cancel(id: string, actor?: Actor): Promise<void> {
    const [outcome] = await this.store.cancel([id], this.clock.now(), actor);
    expectDone(outcome!, 'cancel');
    this.dispatcher.abandon(id, new CancelledError(id));
    this.dispatcher.wake(); // a cancel may free an ordering key
  }

  async getInstance(id: string): Promise<Instance> {
    const instance = await this.store.getInstance(id);
    if (!instance) throw new InstanceNotFoundError(id);
    return instance;
  }

  async getDetail(id: string): Promise<InstanceDetail> {
    const instance = await this.getInstance(id);
    const [runs, steps, events, waits] = await Promise.all([
      this.store.getRuns(id),
      this.store.getSteps(id),
      this.store.getEvents({ instanceId: id, limit: 10_000 }),
      this.store.getWaits(id),
    ]);
    return { instance, runs, steps, events, waits: waits.map(shownWait) };
  }

  getEvents(instanceId: string, limit: number): Promise<ActivityEvent[]> {
    return this.store.getEvents({ instanceId, limit });
  }

  listInstances(request: ListRequest): Promise<Page<Instance>> {
    return this.store.listInstances(request);
  }

  countChildren(parentId: string): Promise<ChildCounts> {
    return this.store.countChildren(parentId);
  }

  orderingHolder(orderingKey: string, seq: number): Promise<OrderingHolder | null> {
    return this.store.orderingHolder(orderingKey, seq);
  }

  async getProgress(instanceId: string): Promise<Progress> {
    const [instance, children] = await Promise.all([
      this.getInstance(instanceId),
      this.store.countChildren(instanceId),
    ]);
    return { instance, children };
  }
}

/** Why a sync instance is never rerun. */
const SYNC_NEVER_RERUN = 'a sync instance is never rerun: its caller already had its answer';

/** Refusals a bulk rerun by filter lists at most. */
const REFUSALS_LISTED = 100;

/** Why a rerun refuses an instance of this mode and status. */
function rerunRefusal(mode: Instance['mode'], status: Instance['status']): string {
  return mode === 'sync'
    ? SYNC_NEVER_RERUN.replace(/^./, (c) => c.toUpperCase())
    : `It is ${status}: only a finished instance can be rerun`;
}

/** An instance an operation left as it was, and why. */
export interface Refusal {
  instanceId: string;
  /** The catalogue's code of the reason (`instance-not-found`, `invalid-state`, `steps-changed`). */
  code: string;
  reason: string;
  /** Its status when it was refused (null: not found, or not read). */
  status: Instance['status'] | null;
}

function expectDone(outcome: TransitionOutcome, action: string): { run: number } {
  if (outcome.outcome === 'not-found') throw new InstanceNotFoundError(outcome.id);
  if (outcome.outcome === 'invalid-state') throw new InvalidStateError(outcome.id, outcome.status, action);
  return outcome;
}

/** A stored wait as the API and the console show it. */
function shownWait(wait: WaitRecord): Wait {
  return {
    run: wait.run,
    name: wait.name,
    kind: wait.kind,
    event: wait.event,
    match: wait.matchKey === null ? null : (JSON.parse(wait.matchKey) as Record<string, Json>),
    createdAt: wait.createdAt,
    until: wait.expiresAt,
    resolvedAt: wait.resolvedAt,
    resolution: wait.resolution,
    eventId: wait.eventId,
  };
}
