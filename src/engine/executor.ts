/**
 * Runs one attempt of a claimed instance: gives the handler its context (`attempt-context.ts`,
 * which memoises steps), enforces the per-attempt timeout, turns a thrown error into a retry
 * decision (`retry-or-fail.ts`) and writes the outcome as its transition's finish. It knows
 * nothing of SQL: everything it stores goes through the {@link WorkWriter}.
 */

import type { HttpConnection } from '../connections/http.js';
import type {
  AnyIntegration,
  AsyncDefinition,
  ChildCounts,
  ScheduledDefinition,
  StartedInstance,
  StartManyOptions,
  StartOptions,
} from '../define/integration.js';
import type { Parameters } from '../define/parameters.js';
import { AttemptTimeoutError, coerceError, LeaseLostError } from '../errors.js';
import { toStoredJson } from '../json.js';
import { type ActivityData, FINISH, type FinishKind } from '../lifecycle/index.js';
import type { InstanceWork, NewActivityEvent } from '../model.js';
import type { AttemptOutcome, ClaimedInstance } from '../store/store.js';
import { AttemptContext, ScheduledAttemptContext } from './attempt-context.js';
import type { Clock } from './clock.js';
import type { EngineObserver } from './observer.js';
import { retryOrFail } from './retry-or-fail.js';
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
 * Starts children on behalf of a parent. `call` numbers the parent's start calls in handler order;
 * with the parent id it makes the children's idempotency keys, so a later attempt that repeats a
 * call finds the children of the earlier one instead of creating them twice.
 */
export interface ChildStarter {
  start(
    parent: InstanceWork,
    call: number,
    integration: AnyIntegration | string,
    input: unknown,
    options?: StartOptions,
  ): Promise<StartedInstance>;
  startMany(
    parent: InstanceWork,
    call: number,
    integration: AnyIntegration | string,
    inputs: Iterable<unknown> | AsyncIterable<unknown>,
    options?: StartManyOptions,
    /** Called after each committed chunk with the running totals. */
    onChunk?: (totals: { count: number; created: number }) => void,
  ): Promise<{ count: number; created: number }>;
}

export interface ExecuteDeps {
  clock: Clock;
  writer: WorkWriter;
  children: ChildStarter;
  countChildren(parentId: string): Promise<ChildCounts>;
  /** Parameter values stored for a schedule (without the definition's defaults). */
  storedParameters(integrationId: string): Promise<Parameters>;
  /** Registered connections, for `ctx.call`. */
  connections: ReadonlyMap<string, HttpConnection>;
  /** Told of every stored attempt end. */
  observer?: EngineObserver;
  /** Called when the handler is done and only the attempt's final write remains: frees its slot. */
  handlerDone?: (attempt: Attempt) => void;
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
  // Each mode's handler gets its own context class; scheduled instances see their parameters.
  let context: AttemptContext;
  let scheduled: ScheduledAttemptContext | null = null;
  let runHandler: () => unknown;
  if (integration.mode === 'scheduled') {
    const scheduledContext = new ScheduledAttemptContext(claimed, attempt, deps, aborted, integration);
    context = scheduled = scheduledContext;
    runHandler = () => integration.handler(scheduledContext);
  } else {
    const asyncContext = new AttemptContext(claimed, attempt, deps, aborted, integration.redact);
    context = asyncContext;
    runHandler = () => integration.handler(asyncContext);
  }

  let outcome: AttemptOutcome;
  let step: string | undefined;
  try {
    if (scheduled) await scheduled.load();
    const output = await Promise.race([Promise.resolve().then(runHandler), aborted]);
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
    const decided = retryOrFail(error, instance, integration, clock.now());
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
  const events = [finishEvent(context, outcome.kind, outcome, runMs, attemptMs)];
  // Parameters the handler set are stored with a success only.
  const patch = scheduled?.patch ?? null;
  deps.handlerDone?.(attempt);
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

type OutcomeOf<K extends FinishKind> = Extract<AttemptOutcome, { kind: K }>;
/** The event type that ends an attempt with outcome `K`: the one its transition emits. */
type FinishEventOf<K extends FinishKind> = (typeof FINISH)[K]['events'][number];

/** The data of the event that ends an attempt, by outcome. */
const FINISH_DATA: {
  [K in FinishKind]: (
    outcome: OutcomeOf<K>,
    attempt: number,
    runMs: number,
    attemptMs: number,
  ) => ActivityData[FinishEventOf<K>];
} = {
  succeeded: (_, attempt, runMs, attemptMs) => ({ attempt, durationMs: runMs, attemptMs }),
  failed: (outcome, attempt, runMs, attemptMs) => ({
    attempt,
    error: outcome.error.message,
    durationMs: runMs,
    attemptMs,
  }),
  retry: (outcome, attempt, _, attemptMs) => ({
    attempt,
    runAt: outcome.runAt,
    error: outcome.error.message,
    countsAsAttempt: outcome.consumesAttempt,
    attemptMs,
  }),
};

/** The event that ends an attempt: its transition's ({@link FINISH}), with the outcome's data, masked. */
function finishEvent<K extends FinishKind>(
  context: AttemptContext,
  kind: K,
  outcome: OutcomeOf<K>,
  runMs: number,
  attemptMs: number,
): NewActivityEvent {
  return context.event(
    FINISH[kind].events[0]!,
    FINISH_DATA[kind](outcome, context.attempt, runMs, attemptMs),
  );
}
