/**
 * What every non-HTTP connection kind does around an operation, so that SFTP, SQL and e-mail keep
 * the guarantees HTTP calls have: the circuit breaker, the rate and concurrency limits, one
 * `connection.call` activity event per operation with its duration, and the watchers (metrics,
 * console, circuit observer). A kind supplies the operation and says how its failures classify.
 */
import { CircuitOpenError } from '../errors.js';
import type { Json } from '../model.js';
import type { LimitStore } from '../store/store.js';
import { CircuitBreaker, type CircuitOptions, type CircuitState } from './circuit.js';
import type { CallContext, CallOutcome, ConnectionType } from './connection.js';
import { ConcurrencyLimit, type LimitSet, type Pace, RateLimit, type Slots, shareLimits } from './limits.js';

export interface GuardOptions {
  /** Operations in flight at once (per process, or for all processes where limits are shared). */
  maxConcurrency?: number;
  /** Operations started per second at most (per process, or for all where shared). Default unlimited. */
  ratePerSecond?: number;
  /** Circuit breaker; `false` turns it off. */
  circuit?: CircuitOptions | false;
}

/** How a kind reads one of its failures. */
export interface Failure {
  /** What the caller gets (usually a ConnectionError). */
  error: Error;
  /** Another attempt may succeed; a retryable failure counts against the circuit. */
  retryable: boolean;
  /**
   * The operation surely never reached the other side (refused, unresolved): when this failure
   * opens the circuit, the instance waits for the probe without using an attempt.
   */
  notSent: boolean;
  /** Recorded in the activity event. */
  reason: string;
}

export class ConnectionGuard {
  private circuit: CircuitBreaker | null;
  private limit: Slots;
  private rate: Pace | null;
  private readonly watchers = new Set<(call: CallOutcome) => void>();

  constructor(
    readonly id: string,
    readonly type: ConnectionType,
    private readonly options: GuardOptions,
    private readonly defaultConcurrency: number,
  ) {
    this.circuit = options.circuit === false ? null : new CircuitBreaker(options.circuit);
    this.limit = new ConcurrencyLimit(options.maxConcurrency ?? defaultConcurrency);
    this.rate = options.ratePerSecond ? new RateLimit(options.ratePerSecond) : null;
  }

  watch(listener: (call: CallOutcome) => void): () => void {
    this.watchers.add(listener);
    return () => this.watchers.delete(listener);
  }

  circuitState(now = Date.now()): CircuitState {
    return this.circuit?.state(now) ?? 'closed';
  }

  /** Limits and circuit held for all processes of `store`: a kind's `shareLimits` forwards here. */
  shareLimits(store: LimitStore, onError: (error: unknown) => void): () => Promise<void> {
    const current: LimitSet = { slots: this.limit, rate: this.rate, circuit: this.circuit };
    const options = { ...this.options, max: this.options.maxConcurrency ?? this.defaultConcurrency };
    return shareLimits(store, this.id, options, current, (set) => this.install(set), onError);
  }

  private install(set: LimitSet): void {
    this.limit = set.slots;
    this.rate = set.rate;
    this.circuit = set.circuit;
  }

  /**
   * Runs one operation: the circuit admits it, the rate and concurrency limits let it start, then
   * it runs with the call's signal; its event says what it was (`event`, e.g. `{ operation: 'put',
   * path }`), how long it took, and what came of it (`describe(value)`, or the failure's reason).
   */
  run<T>(
    context: CallContext,
    event: Record<string, Json>,
    operation: (signal: AbortSignal) => Promise<T>,
    classify: (thrown: unknown) => Failure,
    describe?: (value: T) => Record<string, Json>,
  ): Promise<T> {
    const { unrecorded, record } = context;
    if (!unrecorded) return this.guarded(context, event, operation, classify, describe);
    // Someone (a trace) must hear of an operation that ends without its event.
    let recorded = false;
    const tracked: CallContext = {
      ...context,
      record: (data) => {
        recorded = true;
        record?.(data);
      },
    };
    return this.guarded(tracked, event, operation, classify, describe).catch((thrown: unknown) => {
      if (!recorded) unrecorded(thrown);
      throw thrown;
    });
  }

  private async guarded<T>(
    context: CallContext,
    event: Record<string, Json>,
    operation: (signal: AbortSignal) => Promise<T>,
    classify: (thrown: unknown) => Failure,
    describe?: (value: T) => Record<string, Json>,
  ): Promise<T> {
    const now = context.now ?? Date.now;
    // Shared by processes: the state others wrote, read at most every few hundred ms.
    const sync = this.circuit?.due(now());
    if (sync) await sync;
    const pass = this.circuit?.admit(now()) ?? null;
    if (typeof pass === 'number') throw new CircuitOpenError(this.id, pass);
    try {
      const { signal } = context;
      if (this.rate) await this.rate.wait(signal);
      const release = this.limit.tryAcquire() ?? (await this.limit.acquire(signal));
      const started = performance.now();
      let value: T;
      try {
        value = await operation(signal);
      } catch (thrown) {
        if (signal.aborted) {
          // Cancelled or out of time: the event says which, by the signal's code.
          this.finish(context, event, started, false, { error: abortCode(signal) });
          throw thrown;
        }
        const failure = classify(thrown);
        this.finish(context, event, started, false, { error: failure.reason });
        throw this.failed(failure, now());
      } finally {
        release();
      }
      this.finish(context, event, started, true, describe?.(value));
      this.circuit?.success();
      return value;
    } finally {
      // However it ended, a probe must not keep the half-open circuit's one slot.
      if (pass !== null) this.circuit!.release(pass);
    }
  }

  private finish(
    context: CallContext,
    event: Record<string, Json>,
    started: number,
    ok: boolean,
    outcome: Record<string, Json> | undefined,
  ): void {
    const durationMs = Math.round(performance.now() - started);
    context.record?.({
      connection: this.id,
      type: this.type,
      ...event,
      attempt: context.attempt,
      step: context.step ?? null,
      durationMs,
      ...outcome,
    });
    // Watchers first, then the circuit counts (the circuit observer checks in a microtask).
    for (const watch of this.watchers) watch({ ok, status: null, durationMs });
  }

  /** Counts a failure against the circuit, as HTTP calls do (see HttpConnection.failed). */
  private failed(failure: Failure, now: number): Error {
    if (!this.circuit) return failure.error;
    if (!failure.retryable) {
      this.circuit.neutral();
      return failure.error;
    }
    this.circuit.failure(now);
    if (this.circuit.state(now) !== 'open' || !failure.notSent) return failure.error;
    const open = new CircuitOpenError(this.id, this.circuit.reprobeMs);
    (open as { cause?: unknown }).cause = failure.error;
    return open;
  }
}

/** Why an operation was abandoned: the code of the signal's reason (`cancelled`, `attempt-timeout`, …), else `aborted`. */
export function abortCode(signal: AbortSignal): string {
  const code = signal.aborted ? (signal.reason as { code?: unknown } | undefined)?.code : undefined;
  return typeof code === 'string' ? code : 'aborted';
}
