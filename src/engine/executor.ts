/**
 * Runs one attempt of a claimed instance: builds the handler's context, memoises steps, enforces
 * the per-attempt timeout and turns the outcome into a retry decision. It knows nothing of SQL:
 * everything it stores goes through the {@link WorkWriter}.
 */
import { type Call, type CallArgs, currentStep, makeCaller } from '../connections/caller.js';
import type { HttpConnection } from '../connections/http.js';
import type {
  AnyIntegration,
  AsyncContext,
  AsyncDefinition,
  ChildCounts,
  ScheduledContext,
  ScheduledDefinition,
  StartedInstance,
  StartManyOptions,
  StartOptions,
} from '../define/integration.js';
import { checkParameters, type Parameters } from '../define/parameters.js';
import { backoffDelay, resolveRetryPolicy } from '../define/retry.js';
import {
  AttemptTimeoutError,
  coerceError,
  DuplicateStepError,
  LeaseLostError,
  RetryAfterError,
  TandemError,
  toErrorInfo,
} from '../errors.js';
import { isStorableText, toStoredJson } from '../json.js';
import type { ErrorInfo, InstanceWork, Json, NewActivityEvent } from '../model.js';
import { Redactor } from '../redaction.js';
import type { AttemptOutcome, ClaimedInstance } from '../store/store.js';
import type { Clock } from './clock.js';
import { fanOut } from './fan-out.js';
import type { EngineObserver } from './observer.js';
import type { WorkWriter } from './writer.js';

export const DEFAULT_TIMEOUT_MS = 5 * 60_000;

/**
 * The engine's handle on a running attempt, used to abort it (cancel, lease lost, shutdown,
 * timeout). Its AbortSignal is made on first use: most attempts end without anyone reading it,
 * and making one per attempt was a tenth of the engine's CPU time on quick handlers.
 */
export class Attempt {
  /** Set once the attempt may no longer write (aborted, timed out or finished). */
  over = false;
  /** Set once the handler has returned or thrown and only the final write is pending. */
  released?: boolean;
  /** performance.now() when its handler started (a claimed attempt may wait for a slot first). */
  launchedAt?: number;
  /** Why the attempt was aborted; `undefined` while it was not. */
  private reason: Error | undefined;
  private controller: AbortController | null = null;
  private listener: ((reason: Error) => void) | null = null;

  constructor(
    readonly instance: InstanceWork,
    readonly claimToken: string,
  ) {}

  get aborted(): boolean {
    return this.reason !== undefined;
  }

  /** Fires when the attempt is aborted: handlers and connection calls listen to it. */
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.reason) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  /** Aborts the attempt (the first reason wins): its signal fires and its handler is abandoned. */
  abort(reason: Error): void {
    if (this.reason) return;
    this.reason = reason;
    this.controller?.abort(reason);
    this.listener?.(reason);
  }

  /** The reason it was aborted with, as the error its handler should end with. */
  abortError(): Error {
    return coerceError(this.reason);
  }

  /** Calls `listener` once when the attempt is aborted (at once if it already was); one listener. */
  onAbort(listener: (reason: Error) => void): void {
    if (this.reason) listener(this.reason);
    else this.listener = listener;
  }
}

/**
 * What an attempt hands new work to, and reads back about it: the engine's acceptor. `call`
 * numbers the parent's start calls in handler order; with the parent id it makes the children's
 * idempotency keys, so a later attempt that repeats a call finds the children of the earlier one
 * instead of creating them twice.
 */
export interface AttemptAcceptor {
  startChild(
    parent: InstanceWork,
    call: number,
    integration: AnyIntegration | string,
    input: unknown,
    options?: StartOptions,
  ): Promise<StartedInstance>;
  startChildren(
    parent: InstanceWork,
    call: number,
    integration: AnyIntegration | string,
    inputs: Iterable<unknown> | AsyncIterable<unknown>,
    options?: StartManyOptions,
    /** Called after each committed chunk with the running totals. */
    onChunk?: (totals: { count: number; created: number }) => void,
  ): Promise<{ count: number; created: number }>;
  countChildren(parentId: string): Promise<ChildCounts>;
  /** Parameter values stored for a schedule (without the definition's defaults). */
  storedParameters(integrationId: string): Promise<Parameters>;
}

/** The dispatcher's side of an attempt. */
export interface AttemptSlots {
  /** The handler is done and only the attempt's final write remains: frees its slot. */
  handlerDone(attempt: Attempt): void;
}

export interface ExecuteDeps {
  clock: Clock;
  writer: WorkWriter;
  acceptor: AttemptAcceptor;
  /** Registered connections, for `ctx.call`. */
  connections: ReadonlyMap<string, HttpConnection>;
  /** Told of every stored attempt end. */
  observer?: EngineObserver;
  slots?: AttemptSlots;
}

/** Errors that no retry can mend: the same code with the same input fails the same way. */
const PERMANENT_CODES = new Set([
  'non-retryable',
  'duplicate-step',
  'not-serializable',
  'invalid-input',
  'unknown-integration',
  'invalid-definition',
  'idempotency-conflict',
  'wrong-mode',
]);

export function isPermanent(error: Error): boolean {
  if (error instanceof TandemError && PERMANENT_CODES.has(error.code)) return true;
  return (error as { retryable?: unknown }).retryable === false;
}

export async function executeAttempt(
  claimed: ClaimedInstance,
  integration: AsyncDefinition<any> | ScheduledDefinition<any>,
  attempt: Attempt,
  deps: ExecuteDeps,
): Promise<void> {
  const { instance } = claimed;
  const { clock, writer } = deps;
  const started = clock.now();
  const timeoutMs = integration.timeout ?? DEFAULT_TIMEOUT_MS;
  const timer = setTimeout(() => attempt.abort(new AttemptTimeoutError(timeoutMs)), timeoutMs);
  const aborted = new Promise<never>((_, reject) => {
    attempt.onAbort(() => reject(attempt.abortError()));
  });
  aborted.catch(() => {});
  const context = new AttemptContext(claimed, attempt, deps, aborted, integration.redact);
  const ctx = context as unknown as AsyncContext<unknown>;

  // Scheduled instances see their parameters; what the handler sets is stored with a success.
  let parameterPatch: Parameters | null = null;
  const scheduled = integration.mode === 'scheduled' ? integration : null;

  let outcome: AttemptOutcome;
  let step: string | undefined;
  const events: NewActivityEvent[] = [];
  try {
    if (scheduled) {
      const defaults = scheduled.parameters ?? {};
      const input = instance.input as { scheduledFor?: number | null; parameters?: Parameters } | null;
      let current: Parameters = {
        ...defaults,
        ...(await deps.acceptor.storedParameters(instance.integrationId)),
        ...(input?.parameters ?? {}),
      };
      Object.defineProperty(ctx, 'parameters', { get: () => current, enumerable: true });
      Object.assign(ctx as ScheduledContext, {
        scheduledFor: input?.scheduledFor ?? null,
        setParameters(patch: Parameters) {
          context.ensureLive();
          const checked = checkParameters(defaults, patch);
          parameterPatch = { ...parameterPatch, ...checked };
          current = { ...current, ...checked };
        },
      });
    }
    const output = await Promise.race([
      Promise.resolve().then(() => integration.handler(ctx as never)),
      aborted,
    ]);
    context.ensureLive();
    outcome = {
      kind: 'succeeded',
      outputJson: toStoredJson(context.redactor.shown(output), 'The handler result'),
    };
  } catch (thrown) {
    const error = coerceError(thrown);
    if (error instanceof LeaseLostError || attempt.over) {
      attempt.over = true;
      clearTimeout(timer);
      return; // someone else owns the instance now (taken over, cancelled or shutting down)
    }
    const decided = decide(error, instance, integration, clock.now());
    // The error's texts are masked once, here: the finish and its events both carry them.
    outcome =
      decided.kind === 'succeeded' ? decided : { ...decided, error: context.redactor.error(decided.error) };
    const failed = context.failedStep;
    if (failed && failed.thrown === thrown) step = failed.name;
  } finally {
    clearTimeout(timer);
  }
  attempt.over = true;
  const ended = clock.now();
  // This attempt's own time, and the run's: from its first attempt's start to now, so that waits
  // between attempts (backoff, an open circuit, children of a fan-out) count. Another process's
  // clock may have set the start: the run never reads shorter than this attempt.
  const attemptMs = ended - started;
  const runMs = Math.max(attemptMs, ended - instance.startedAt);
  if (outcome.kind === 'succeeded')
    events.push(context.event('succeeded', { attempt: instance.attempt, durationMs: runMs, attemptMs }));
  else if (outcome.kind === 'failed') {
    events.push(
      context.event('failed', {
        attempt: instance.attempt,
        error: outcome.error.message,
        durationMs: runMs,
        attemptMs,
      }),
    );
  } else {
    events.push(
      context.event('retry.scheduled', {
        attempt: instance.attempt,
        runAt: outcome.runAt,
        error: outcome.error.message,
        countsAsAttempt: outcome.consumesAttempt,
        attemptMs,
      }),
    );
  }
  const patch = parameterPatch as Parameters | null;
  deps.slots?.handlerDone(attempt);
  const held = await writer.finish({
    instanceId: instance.id,
    claimToken: claimed.claimToken,
    outcome,
    now: ended,
    durationMs: outcome.kind === 'retry' ? null : runMs,
    events,
    ...(patch && outcome.kind === 'succeeded'
      ? { parameters: { integrationId: instance.integrationId, patchJson: JSON.stringify(patch) } }
      : {}),
  });
  if (held) {
    deps.observer?.finished?.(
      instance,
      outcome.kind,
      attemptMs,
      outcome.kind === 'succeeded'
        ? undefined
        : {
            error: outcome.error,
            // A step's name may be built from input: the log shows it masked, as the events do.
            ...(step === undefined ? {} : { step: context.redactor.text(step) }),
            ...(outcome.kind === 'retry' ? { runAt: outcome.runAt } : {}),
          },
    );
  }
}

/**
 * The `ctx` of an async or scheduled handler. An attempt makes this one object: its methods live on
 * the prototype instead of being a dozen closures per attempt (which, with quick handlers, cost as
 * much CPU as the rest of the engine). Each method is bound on first read, so that a handler may
 * take them apart (`const { step, input } = ctx`).
 */
class AttemptContext {
  readonly instanceId: string;
  readonly integrationId: string;
  readonly input: unknown;
  readonly run: number;
  readonly attempt: number;
  private calls = 0;
  private caller: Call | undefined;
  /** Results of the steps that succeeded before (made on the first step). */
  private memo: Map<string, Json | null> | undefined;
  private readonly usedNames = new Set<string>();
  private bound: Partial<Record<'step' | 'start' | 'startMany' | 'progress' | 'call', unknown>> | undefined;
  /** The last step that threw, and what: the log names the step when its error ended the attempt. */
  failedStep: { name: string; thrown: unknown } | undefined;
  private masker: Redactor | undefined;

  constructor(
    private readonly claimed: ClaimedInstance,
    private readonly handle: Attempt,
    private readonly deps: ExecuteDeps,
    /** Rejects when the attempt is aborted. */
    private readonly aborted: Promise<never>,
    private readonly redact: readonly string[] | undefined,
  ) {
    const { instance } = claimed;
    this.instanceId = instance.id;
    this.integrationId = instance.integrationId;
    this.input = instance.input;
    this.run = instance.run;
    this.attempt = instance.attempt;
  }

  get signal(): AbortSignal {
    return this.handle.signal;
  }

  get step(): AsyncContext<unknown>['step'] {
    return this.bind('step', this.runStep);
  }

  get start(): AsyncContext<unknown>['start'] {
    return this.bind('start', this.startChild);
  }

  get startMany(): AsyncContext<unknown>['startMany'] {
    return this.bind('startMany', this.startChildren);
  }

  get progress(): AsyncContext<unknown>['progress'] {
    return this.bind('progress', this.recordProgress);
  }

  get call(): AsyncContext<unknown>['call'] {
    return this.bind('call', this.callConnection);
  }

  private bind<F extends (...args: any[]) => any>(
    name: 'step' | 'start' | 'startMany' | 'progress' | 'call',
    method: F,
  ): any {
    this.bound ??= {};
    this.bound[name] ??= method.bind(this);
    return this.bound[name];
  }

  /**
   * Masks what this attempt writes besides its step results: events, errors, the output. Made on
   * first use from the input the attempt runs with (a rerun may have replaced it).
   */
  get redactor(): Redactor {
    this.masker ??= Redactor.of(this.redact, this.input);
    return this.masker;
  }

  /** Every event of the attempt is built here, so that its data (progress, call records, error texts) is masked. */
  event(type: NewActivityEvent['type'], data: Record<string, Json>): NewActivityEvent {
    const { redactor } = this;
    return {
      instanceId: this.instanceId,
      integrationId: this.integrationId,
      run: this.run,
      type,
      at: this.deps.clock.now(),
      // Only progress data has field names of the handler's choosing; the rest hold secrets by value only.
      data: redactor.hasSecrets || type === 'progress' ? redactor.json(data) : data,
    };
  }

  ensureLive(): void {
    if (this.handle.aborted) throw this.handle.abortError();
    if (this.handle.over) throw new LeaseLostError(this.instanceId);
  }

  private startChild(child: AnyIntegration | string, input: unknown, options?: StartOptions) {
    this.ensureLive();
    return this.deps.acceptor.startChild(this.claimed.instance, ++this.calls, child, input, options);
  }

  private startChildren(
    child: AnyIntegration | string,
    inputs: Iterable<unknown> | AsyncIterable<unknown>,
    options?: StartManyOptions,
  ) {
    this.ensureLive();
    return fanOut({
      ctx: this as unknown as AsyncContext<unknown>,
      parent: this.claimed.instance,
      call: ++this.calls,
      deps: this.deps,
      child,
      inputs,
      options: options ?? {},
    });
  }

  private recordProgress(data: Record<string, Json>): void {
    if (!this.handle.over) this.deps.writer.event(this.event('progress', data));
  }

  private callConnection(...args: CallArgs): ReturnType<Call> {
    // Made on the first call: most attempts of most integrations call nothing through connections.
    this.caller ??= makeCaller({
      instanceId: this.instanceId,
      attempt: this.attempt,
      signal: this.handle.signal,
      connections: this.deps.connections,
      record: (data) => this.deps.writer.event(this.event('connection.call', data)),
      now: () => this.deps.clock.now(),
    });
    return this.caller(...args);
  }

  private async runStep<T>(name: string, fn: (signal: AbortSignal) => T | Promise<T>): Promise<T> {
    this.ensureLive();
    if (typeof name !== 'string' || name === '')
      throw new TandemError('invalid-definition', 'A step needs a name');
    // Refused here, with this instance, rather than by the database in a batch of others' writes.
    if (!isStorableText(name))
      throw new TandemError(
        'invalid-definition',
        `A step name must be text without NUL characters or unpaired surrogates: ${JSON.stringify(name)}`,
      );
    const { usedNames, handle, deps } = this;
    const { clock, writer } = deps;
    if (usedNames.has(name)) throw new DuplicateStepError(name);
    const position = usedNames.size;
    usedNames.add(name);
    if (!this.memo) {
      this.memo = new Map();
      for (const step of this.claimed.steps)
        if (step.status === 'succeeded') this.memo.set(step.name, step.output);
    }
    if (this.memo.has(name)) return this.memo.get(name) as T;
    const lease = { instanceId: this.instanceId, claimToken: this.claimed.claimToken };
    const stepStarted = clock.now();
    writer.event(this.event('step.started', { step: name, attempt: this.attempt }));
    let result: T;
    try {
      // The step's name travels with its async work, so calls inside derive their idempotency key from it.
      result = await Promise.race([
        currentStep.run({ name, calls: 0 }, () => Promise.resolve().then(() => fn(handle.signal))),
        this.aborted,
      ]);
      this.ensureLive();
    } catch (thrown) {
      this.failedStep = { name, thrown };
      const error = this.redactor.error(toErrorInfo(thrown));
      const finishedAt = clock.now();
      if (!handle.over) {
        void writer.step({
          ...lease,
          step: this.stepRecord(name, position, 'failed', error, stepStarted, finishedAt),
          outputJson: null,
          events: [
            this.event('step.failed', {
              step: name,
              error: error.message,
              durationMs: finishedAt - stepStarted,
            }),
          ],
        });
      }
      throw thrown;
    }
    const outputJson = toStoredJson(result, `The result of step "${name}"`);
    const finishedAt = clock.now();
    const held = await writer.step({
      ...lease,
      step: this.stepRecord(name, position, 'succeeded', null, stepStarted, finishedAt),
      outputJson,
      events: [this.event('step.succeeded', { step: name, durationMs: finishedAt - stepStarted })],
    });
    if (!held) {
      handle.over = true;
      throw new LeaseLostError(this.instanceId);
    }
    // The handler sees what a later attempt would read back from the store.
    return JSON.parse(outputJson) as T;
  }

  private stepRecord(
    name: string,
    position: number,
    status: 'succeeded' | 'failed',
    error: ErrorInfo | null,
    from: number,
    to: number,
  ) {
    return {
      instanceId: this.instanceId,
      run: this.run,
      name,
      position,
      status,
      output: null,
      error,
      attempt: this.attempt,
      startedAt: from,
      finishedAt: to,
    };
  }
}

/** Retry or fail, by the error and the policy. */
export function decide(
  error: Error,
  instance: InstanceWork,
  integration: AsyncDefinition<any> | ScheduledDefinition<any>,
  now: number,
): AttemptOutcome {
  const info = toErrorInfo(error);
  if (isPermanent(error)) return { kind: 'failed', error: info };
  const policy = resolveRetryPolicy(integration.retry);
  // A wait asked for by the error itself: RetryAfterError, an open circuit, a 429 with Retry-After.
  const delayMs =
    error instanceof RetryAfterError ? error.delayMs : (error as { retryAfterMs?: unknown }).retryAfterMs;
  if (typeof delayMs === 'number' && Number.isFinite(delayMs) && delayMs >= 0) {
    const consumesAttempt = (error as { consumesAttempt?: unknown }).consumesAttempt !== false;
    if (consumesAttempt && instance.attempt >= policy.maxAttempts) return { kind: 'failed', error: info };
    return { kind: 'retry', error: info, runAt: now + delayMs, consumesAttempt };
  }
  if (instance.attempt >= policy.maxAttempts) return { kind: 'failed', error: info };
  return {
    kind: 'retry',
    error: info,
    runAt: now + backoffDelay(policy, instance.attempt),
    consumesAttempt: true,
  };
}
