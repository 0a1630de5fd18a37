/**
 * The dispatcher: claims due instances in batches, runs them under the concurrency limit (claiming
 * ahead of free slots while handlers are quick), keeps their leases alive, and on shutdown hands
 * back what it cannot finish. Its state is one named mode (see {@link DispatcherMode}), changed in
 * one place, rather than a set of flags whose combinations have to be reasoned about.
 */
import type { Logger } from 'pino';
import type { AsyncDefinition, ScheduledDefinition } from '../define/integration.js';
import { CancelledError, ShuttingDownError, TandemError, UnknownIntegrationError } from '../errors.js';
import { Redactor } from '../redaction.js';
import type { ClaimedInstance, Store } from '../store/store.js';
import {
  Attempt,
  type AttemptAcceptor,
  type AttemptSlots,
  type AttemptWaits,
  type ExecuteDeps,
} from './attempt.js';
import type { Clock } from './clock.js';
import { executeAttempt } from './executor.js';
import type { EngineObserver } from './observer.js';
import type { EngineParts, Registry, Waker } from './shared.js';
import type { WorkWriter } from './writer.js';

/**
 * The dispatcher is always in one of these modes:
 *
 * - `idle`: made, not started.
 * - `waiting`: running, with no claim under way or due; a wake-up (an accept, a finish, a
 *   notification) or the timer (the next due time, or the poll interval) starts the next claim.
 *   An API-only engine (`worker: false`) stays here while it runs.
 * - `pending`: a claim is due on the next turn of the event loop; wake-ups change nothing.
 * - `claiming`: claims are under way, one after another while slots are free and more work is
 *   likely; a wake-up only marks more work as likely, the loop picks it up.
 * - `draining`: claims nothing more (`stopClaiming`); running attempts go on, prefetched ones wait.
 * - `stopping`: `stop()` lets running attempts finish, then hands back the rest.
 * - `stopped`.
 *
 * `waiting`, `pending` and `claiming` are the running modes.
 */
export type DispatcherMode =
  | 'idle'
  | 'waiting'
  | 'pending'
  | 'claiming'
  | 'draining'
  | 'stopping'
  | 'stopped';

export interface DispatcherOptions {
  concurrency: number;
  claimBatch: number;
  prefetch?: number | undefined;
  leaseMs: number;
  pollIntervalMs: number;
  /** False: an API-only process that claims nothing. */
  worker: boolean;
  workerId: string;
}

export class Dispatcher implements AttemptSlots, Waker {
  private mode: DispatcherMode = 'idle';
  private readonly store: Store;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly registry: Registry;
  private readonly observer: Required<EngineObserver>;
  /** What every attempt is handed: made once, not per attempt. */
  private readonly deps: ExecuteDeps;
  /** Claimed attempts, running or waiting for a slot or for their final write, by instance id. */
  private readonly attempts = new Map<string, Attempt>();
  /** Attempts whose handler is still executing (the concurrency limit counts these). */
  private busy = 0;
  /** Claimed attempts waiting for a slot (prefetched), oldest first; also in `attempts`. */
  private readonly waiting: { claimed: ClaimedInstance; attempt: Attempt }[] = [];
  /** Moving average of handler durations in ms: prefetch only while work is quick. */
  private handlerMs = 0;
  /** Set when more work may be claimable: a full claim, a wake-up, a finish that frees an ordering key. */
  private moreLikely = true;
  private timer: NodeJS.Timeout | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  private unsubscribeWake: (() => void) | null = null;
  /** Told when a claim pass or an attempt ends (settled() and stop() wait on these). */
  private readonly idle = new Set<() => void>();

  constructor(
    parts: EngineParts,
    acceptor: AttemptAcceptor,
    private readonly writer: WorkWriter,
    private readonly options: DispatcherOptions,
    waits: AttemptWaits,
  ) {
    this.store = parts.store;
    this.clock = parts.clock;
    this.logger = parts.logger;
    this.registry = parts.registry;
    this.observer = parts.observer;
    this.deps = {
      clock: this.clock,
      writer,
      acceptor,
      connections: this.registry.connections,
      tracing: parts.tracing,
      observer: this.observer,
      slots: this,
      waits,
    };
  }

  /** True in the running modes: started, and neither draining nor stopping. */
  get running(): boolean {
    return this.mode === 'waiting' || this.mode === 'pending' || this.mode === 'claiming';
  }

  /** Number of attempts this process holds. */
  get activeCount(): number {
    return this.attempts.size;
  }

  /** Leaves `idle`; false when it had already. */
  begin(): boolean {
    if (this.mode !== 'idle') return false;
    this.mode = 'waiting';
    return true;
  }

  /** Starts claiming (a worker process only): store notifications, the lease heartbeat, a first claim. */
  start(): void {
    this.unsubscribeWake = this.store.onWake?.(() => this.wake()) ?? null;
    const beat = Math.max(10, Math.floor(this.options.leaseMs / 3));
    this.heartbeat = setInterval(() => void this.renewLeases(), beat);
    this.heartbeat.unref();
    this.wake();
  }

  /** There may be work to claim. */
  wake(): void {
    this.moreLikely = true;
    this.schedulePump();
  }

  /**
   * Resolves once this process runs no attempt and a claim by the engine's clock, made after the
   * call, found nothing more (or the engine stopped). `signal` gives up.
   */
  async settled(signal?: AbortSignal): Promise<void> {
    let passNeeded = true;
    while (this.running && this.options.worker) {
      signal?.throwIfAborted();
      if (this.mode === 'claiming' || this.attempts.size > 0) {
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

  /** Aborts the attempt on an instance, if this process runs one (a cancel). */
  abandon(instanceId: string, reason: Error): void {
    const attempt = this.attempts.get(instanceId);
    if (attempt && !attempt.over) {
      attempt.over = true;
      attempt.abort(reason);
    }
  }

  private schedulePump(): void {
    if (this.mode !== 'waiting' || !this.options.worker) return;
    this.mode = 'pending';
    setImmediate(() => {
      if (this.mode === 'pending') void this.pump();
    });
  }

  /** Claims work while slots are free and more may be there. */
  private async pump(): Promise<void> {
    if (this.mode !== 'waiting' && this.mode !== 'pending') return;
    this.mode = 'claiming';
    let short = false;
    try {
      while (this.mode === 'claiming' && this.moreLikely && this.freeSlots() > 0) {
        this.moreLikely = false;
        const limit = Math.min(this.options.claimBatch, this.freeSlots());
        const claimed = await this.store.claim({
          owner: this.options.workerId,
          limit,
          leaseMs: this.options.leaseMs,
          now: this.clock.now(),
          integrationIds: this.registry.runnableIds,
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
      // Draining or stopping now: that mode stays.
      if (this.mode === 'claiming') this.mode = 'waiting';
    }
    if (this.moreLikely && this.freeSlots() > 0) this.schedulePump();
    else if (short) await this.armTimer();
    this.notifyIdle();
  }

  /** Sleeps until the next due instance or the poll interval, whichever is first. */
  private async armTimer(): Promise<void> {
    if (!this.running) return;
    const now = this.clock.now();
    let due: number | null = null;
    try {
      due = await this.store.nextDueAt(this.registry.runnableIds);
    } catch (error) {
      this.logger.warn({ err: error }, 'reading the next due time failed');
    }
    let delay = this.options.pollIntervalMs;
    if (due !== null && due > now) delay = Math.min(delay, due - now + 1);
    if (this.timer) clearTimeout(this.timer);
    if (!this.running) return;
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
    const previous = this.attempts.get(instance.id);
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
    this.attempts.set(instance.id, attempt);
    this.waiting.push({ claimed, attempt });
  }

  /** Starts waiting attempts while slots are free. */
  private launchWaiting(): void {
    // While draining, prefetched attempts stay unstarted: stop() hands them back.
    if (this.mode === 'draining') return;
    while (this.busy < this.options.concurrency && this.waiting.length > 0) {
      const { claimed, attempt } = this.waiting.shift()!;
      if (attempt.over) {
        // Its lease was lost while it waited: it never started, so nothing is left to write.
        if (this.attempts.get(attempt.instance.id) === attempt) this.attempts.delete(attempt.instance.id);
        continue;
      }
      this.launch(claimed, attempt);
    }
  }

  private launch(claimed: ClaimedInstance, attempt: Attempt): void {
    const { instance } = claimed;
    const integration = this.registry.find(instance.integrationId) as
      | AsyncDefinition<any>
      | ScheduledDefinition<any>
      | undefined;
    this.busy++;
    attempt.launchedAt = performance.now();
    this.observer.started(instance, claimed.takenOver);
    const run = integration
      ? executeAttempt(claimed, integration, attempt, this.deps)
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

  /** An attempt is over, its final write done (or abandoned). */
  private ended(attempt: Attempt): void {
    this.handlerDone(attempt);
    const { id } = attempt.instance;
    if (this.attempts.get(id) === attempt) this.attempts.delete(id);
    // A finish may free an ordering key or a concurrency slot: look for more work.
    this.moreLikely = true;
    this.schedulePump();
    this.notifyIdle();
  }

  /**
   * Frees an attempt's concurrency slot once its handler is done, so the next claim overlaps the
   * write of this attempt's result instead of waiting for it.
   */
  handlerDone(attempt: Attempt): void {
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
      concurrency + Math.max(concurrency, claimBatch) + prefetch - this.attempts.size,
    );
  }

  private async renewLeases(): Promise<void> {
    if (this.attempts.size === 0) return;
    const attempts = [...this.attempts.values()].filter((a) => !a.over);
    try {
      const lost = await this.store.extendLeases(
        attempts.map((a) => ({ instanceId: a.instance.id, claimToken: a.claimToken })),
        this.clock.now() + this.options.leaseMs,
      );
      for (const id of lost) {
        const attempt = this.attempts.get(id);
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
   * Claims nothing more (from `idle` or a running mode): false when already draining or stopping.
   * Running attempts go on; prefetched ones stay unstarted until `stop()` hands them back.
   */
  stopClaiming(): boolean {
    if (!this.running && this.mode !== 'idle') return false;
    this.mode = 'draining';
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.unsubscribeWake?.();
    this.unsubscribeWake = null;
    return true;
  }

  /** Enters `stopping`: false when already stopping or stopped. */
  beginStop(): boolean {
    if (this.mode === 'stopped' || this.mode === 'stopping') return false;
    this.mode = 'stopping';
    return true;
  }

  /**
   * Lets running attempts finish within `graceMs`, then aborts the rest. Returns the attempts to
   * hand back (aborted, and prefetched ones that never started), once their writes are done.
   */
  async finishAttempts(graceMs: number): Promise<Attempt[]> {
    if (this.timer) clearTimeout(this.timer);
    this.unsubscribeWake?.();
    // Prefetched attempts never started: hand them back at once.
    const unstarted = this.waiting.splice(0).map(({ attempt }) => attempt);
    for (const attempt of unstarted) {
      attempt.over = true;
      this.attempts.delete(attempt.instance.id);
    }
    const deadline = Date.now() + graceMs;
    while (this.attempts.size > 0 && Date.now() < deadline) {
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
    const leftovers = [...this.attempts.values()];
    for (const attempt of leftovers) {
      attempt.over = true;
      attempt.abort(new ShuttingDownError());
    }
    if (this.heartbeat) clearInterval(this.heartbeat);
    leftovers.push(...unstarted);
    return leftovers;
  }

  /** Waits for the attempts' writes, releases the leases of `leftovers`, and enters `stopped`. */
  async handBack(leftovers: Attempt[]): Promise<void> {
    await this.writer.drain();
    if (leftovers.length > 0) {
      await this.store.releaseLeases(
        leftovers.map((a) => ({ instanceId: a.instance.id, claimToken: a.claimToken })),
        this.clock.now(),
      );
    }
    this.attempts.clear();
    this.mode = 'stopped';
  }

  private notifyIdle(): void {
    for (const listener of [...this.idle]) listener();
  }
}
