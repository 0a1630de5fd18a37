/**
 * Runs one attempt of a claimed instance: gives the handler its context (`attempt-context.ts`,
 * which memoises steps), enforces the per-attempt timeout, turns a thrown error into a retry
 * decision (`retry-or-fail.ts`) and writes the outcome as its transition's finish. It knows
 * nothing of SQL: everything it stores goes through the {@link WorkWriter}.
 */

import type { AsyncDefinition, ScheduledDefinition } from '../define/integration.js';
import { handlerOfVersion } from '../define/integration.js';
import {
  AttemptTimeoutError,
  coerceError,
  LeaseLostError,
  toErrorInfo,
  VersionMissingError,
} from '../errors.js';
import { toStoredJson } from '../json.js';
import { type ActivityData, FINISH, type FinishKind } from '../lifecycle/index.js';
import type { ErrorInfo, NewActivityEvent } from '../model.js';
import type { AttemptOutcome, ClaimedInstance } from '../store/store.js';
import { ATTR, endSpan, type Span, SpanKind, type Tracing, trackingAttributes } from '../tracing/tracing.js';
import type { Attempt, ExecuteDeps } from './attempt.js';
import { AttemptContext, ScheduledAttemptContext } from './attempt-context.js';
import { retryOrFail } from './retry-or-fail.js';

export const DEFAULT_TIMEOUT_MS = 5 * 60_000;

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
  // The handler of the instance's own version, or none (docs/versioning.md).
  const chosen: ((ctx: any) => unknown) | null =
    handlerOfVersion<(ctx: any) => unknown>(
      integration as AsyncDefinition<any> & { handler: (ctx: any) => unknown },
      instance.version,
    )?.handler ?? null;
  if (integration.mode === 'scheduled') {
    const scheduledContext = new ScheduledAttemptContext(claimed, attempt, deps, aborted, integration);
    context = scheduled = scheduledContext;
    runHandler = () => chosen!(scheduledContext);
  } else {
    const asyncContext = new AttemptContext(claimed, attempt, deps, aborted, integration.redact);
    context = asyncContext;
    runHandler = () => chosen!(asyncContext);
  }
  if (chosen === null) {
    const missing = new VersionMissingError(
      instance.integrationId,
      instance.version!,
      integration.version ?? null,
    );
    runHandler = () => {
      throw missing;
    };
  }
  // A span only when tracing is configured: otherwise the attempt makes no span object at all.
  const { tracing } = deps;
  let span: Span | undefined;
  if (tracing !== null) {
    const traced = attemptSpan(tracing, instance, integration.mode);
    span = context.span = traced;
    const run = runHandler;
    runHandler = () => tracing.within(traced, run);
  }

  let outcome: AttemptOutcome;
  let step: string | undefined;
  try {
    if (scheduled) await scheduled.load();
    const output = await Promise.race([Promise.resolve().then(runHandler), aborted]);
    context.ensureLive();
    // A handler that caught the suspension and returned still waits: its result is not final.
    outcome = context.suspended
      ? { kind: 'wait', wait: context.suspended }
      : { kind: 'succeeded', outputJson: toStoredJson(context.redactor.shown(output), 'The handler result') };
  } catch (thrown) {
    const error = coerceError(thrown);
    if (error instanceof LeaseLostError || attempt.over) {
      attempt.over = true;
      clearTimeout(timer);
      if (span)
        endSpan(span.setAttribute(ATTR.outcome, 'abandoned'), context.redactor.error(toErrorInfo(error)));
      return; // someone else owns the instance now (taken over, cancelled or shutting down)
    }
    if (context.suspended) {
      // The suspension (or anything thrown after it) ends the attempt at its wait: no retry to decide.
      outcome = { kind: 'wait', wait: context.suspended };
    } else {
      const decided = retryOrFail(error, instance, integration, clock.now());
      // The error's texts are masked once, here: the finish and its events both carry them.
      outcome =
        decided.kind === 'succeeded' ? decided : { ...decided, error: context.redactor.error(decided.error) };
    }
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
  deps.slots?.handlerDone(attempt);
  const held = await writer.finish({
    instanceId: instance.id,
    claimToken: claimed.claimToken,
    outcome,
    now: ended,
    durationMs: outcome.kind === 'retry' || outcome.kind === 'wait' ? null : runMs,
    events,
    ...(patch && outcome.kind === 'succeeded'
      ? { parameters: { integrationId: instance.integrationId, patchJson: JSON.stringify(patch) } }
      : {}),
  });
  if (span) {
    span.setAttribute(ATTR.outcome, held ? outcome.kind : 'abandoned');
    endSpan(span, outcome.kind === 'retry' || outcome.kind === 'failed' ? outcome.error : null);
  }
  if (held) {
    deps.observer?.finished?.(
      instance,
      outcome.kind,
      attemptMs,
      outcome.kind === 'succeeded'
        ? undefined
        : outcome.kind === 'wait'
          ? { waiting: outcome.wait.name, runAt: outcome.wait.expiresAt }
          : {
              error: outcome.error,
              // A step's name may be built from input: the log shows it masked, as the events do.
              ...(step === undefined ? {} : { step: context.redactor.text(step) }),
              ...(outcome.kind === 'retry' ? { runAt: outcome.runAt } : {}),
            },
    );
  }
}

/** The span of one attempt: a child of the context stored with the instance (its accept span, or its parent's). */
function attemptSpan(tracing: Tracing, instance: ClaimedInstance['instance'], mode: string): Span {
  const attributes = trackingAttributes(
    {
      [ATTR.instance]: instance.id,
      [ATTR.integration]: instance.integrationId,
      [ATTR.mode]: mode,
      [ATTR.run]: instance.run,
      [ATTR.attempt]: instance.attempt,
    },
    instance.tracking,
  );
  if (instance.parentId !== null) attributes[ATTR.parent] = instance.parentId;
  return tracing.start(
    `attempt ${instance.integrationId}`,
    SpanKind.CONSUMER,
    instance.traceparent,
    attributes,
  );
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
    ...codeOf(outcome.error),
    durationMs: runMs,
    attemptMs,
  }),
  retry: (outcome, attempt, _, attemptMs) => ({
    attempt,
    runAt: outcome.runAt,
    error: outcome.error.message,
    ...codeOf(outcome.error),
    ...connectionOf(outcome.error),
    countsAsAttempt: outcome.consumesAttempt,
    attemptMs,
  }),
  wait: ({ wait }, _attempt, _runMs, attemptMs) => ({
    step: wait.name,
    kind: wait.kind,
    until: wait.expiresAt,
    ...(wait.event === null ? {} : { event: wait.event }),
    attemptMs,
  }),
};

const codeOf = (error: ErrorInfo) => (error.code === undefined ? {} : { code: error.code });
/** The connection an error came from (an open circuit, a failed call), as its details name it. */
const connectionOf = (error: ErrorInfo) =>
  typeof error.details?.connection === 'string' ? { connection: error.details.connection } : {};

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
