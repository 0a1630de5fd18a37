/**
 * Runs sync integrations inline: the caller waits for the handler's answer. A sync instance has a
 * deadline (its signal fires and the call fails), buffers the handler's `start()` calls and commits
 * them in one transaction before the answer is released (the sync → async hand-off), and is
 * recorded for monitoring off the response path. The runner answers in the domain's words (a
 * {@link SyncOutcome}: answered, or failed with a kind and a catalogue error); how that becomes an
 * HTTP answer is the server's business (src/server/sync-response.ts).
 */
import type { Logger } from 'pino';
import { downstreamFault, namesFault } from '../connections/downstream.js';
import { type AnyIntegration, type SyncDefinition, selectField } from '../define/integration.js';
import {
  coerceError,
  DeadlineExceededError,
  RetryAfterError,
  TandemError,
  toErrorInfo,
  WrongModeError,
} from '../errors.js';
import { isStorableText, toStoredJson } from '../json.js';
import type { ErrorInfo } from '../model.js';
import { Redactor, SECRET_KEY_IN_JSON } from '../redaction.js';
import { storeFault, UnstorableTextError } from '../store/faults.js';
import { ATTR, endSpan, type Span, SpanKind, traceparentOf, trackingAttributes } from '../tracing/tracing.js';
import type { Engine } from './engine.js';
import { uuidv7 } from './ids.js';
import { type SyncCall, SyncCallContext } from './sync-context.js';
import {
  type AnswerCheck,
  InvalidAnswerError,
  readAnswer,
  type SyncFailed,
  type SyncFailureKind,
  type SyncOutcome,
} from './sync-outcome.js';
import type { SyncRecorder, SyncRecorderOptions } from './sync-recorder.js';

export type { SyncCall } from './sync-context.js';
export type {
  AnswerCheck,
  SyncAnswered,
  SyncFailed,
  SyncFailureKind,
  SyncOutcome,
} from './sync-outcome.js';
export { InvalidAnswerError } from './sync-outcome.js';

export const DEFAULT_DEADLINE_MS = 10_000;
export const DEFAULT_MAX_DEADLINE_MS = 60_000;

export type SyncIntegration = SyncDefinition<any, any, any> & { readonly kind: 'tandem.integration' };

/** Failures that are the handler's or Tandem's own fault, logged as errors; the rest as warnings. */
const FAULTS_OF_OURS: ReadonlySet<SyncFailureKind> = new Set(['handler', 'bad-answer', 'hand-off-failed']);

export interface SyncRunnerOptions {
  /** Longest deadline an integration may ask for. Default 60 s. */
  maxDeadlineMs?: number;
  recorder?: SyncRecorderOptions;
  /** Default: the engine's logger. */
  logger?: Logger;
}

/** Runs sync integrations for one engine and records their instances. */
export class SyncRunner {
  readonly recorder: SyncRecorder;
  private readonly logger: Logger;
  readonly maxDeadlineMs: number;

  constructor(
    private readonly engine: Engine,
    options: SyncRunnerOptions = {},
  ) {
    this.logger = options.logger ?? engine.logger;
    this.maxDeadlineMs = options.maxDeadlineMs ?? DEFAULT_MAX_DEADLINE_MS;
    this.recorder = engine.syncRecorder(this.logger, options.recorder);
  }

  /** The deadline an integration runs with; refuses one above the cap (checked when routes are built). */
  deadlineOf(integration: SyncIntegration): number {
    const deadline = integration.deadline ?? DEFAULT_DEADLINE_MS;
    if (deadline > this.maxDeadlineMs) {
      throw new TandemError(
        'invalid-definition',
        `Integration "${integration.id}": deadline ${deadline} ms exceeds the server's cap of ${this.maxDeadlineMs} ms`,
      );
    }
    return deadline;
  }

  /**
   * Runs the handler under its deadline. Never throws: every outcome, including a refused
   * hand-off, comes back as a {@link SyncOutcome} carrying the instance id. `check` is the
   * caller's say on the status and headers the handler declares (the server's: can HTTP send
   * them?); an answer it refuses fails the call as `bad-answer` and starts nothing.
   *
   * @example
   * const outcome = await runner.run(quote, { input: { sku: 'KB-42' } });
   * if (outcome.ok) console.log(outcome.body);
   */
  async run(integrationRef: AnyIntegration, call: SyncCall, check?: AnswerCheck): Promise<SyncOutcome> {
    if (integrationRef.mode !== 'sync')
      throw new WrongModeError(integrationRef.id, integrationRef.mode, 'run inline');
    const integration = integrationRef as SyncIntegration;
    const clock = this.engine.clock;
    const startedAt = clock.now();
    const instanceId = uuidv7(startedAt);
    const deadlineMs = this.deadlineOf(integration);
    const ctx = new SyncCallContext(this.engine, integration.id, instanceId, call);
    // A sync instance's record is monitoring only (never rerun): it is stored masked, like its log lines.
    const redactor = Redactor.of(integration.redact, call.input, call.params, call.query);
    const { tracing } = this.engine;
    let span: Span | undefined;
    if (tracing !== null) {
      span = ctx.span = tracing.start(`sync ${integration.id}`, SpanKind.SERVER, call.traceparent, {
        [ATTR.instance]: instanceId,
        [ATTR.integration]: integration.id,
        [ATTR.mode]: 'sync',
      });
      ctx.traceparent = traceparentOf(span);
    }

    let outcome: SyncOutcome;
    let cause: unknown = null;
    let timer: NodeJS.Timeout | undefined;
    try {
      // One promise for the handler's answer and the deadline (no race of two). The handler is
      // called at once, not in a microtask: one that throws before its first await rejects it
      // like one that throws after.
      const answer = await new Promise<unknown>((resolve, reject) => {
        timer = setTimeout(() => {
          const error = new DeadlineExceededError(deadlineMs);
          ctx.expire(error);
          reject(error);
        }, deadlineMs);
        const value =
          span === undefined
            ? callHandler(integration, ctx)
            : tracing!.within(span, () => callHandler(integration, ctx));
        // Not resolve(value): a promise handed to resolve() locks the outcome, and the deadline's
        // reject would then be ignored.
        if (isThenable(value)) value.then(resolve, reject);
        else resolve(value);
      });
      clearTimeout(timer);
      // Once the handler has answered, later start() calls (from work it left running) are refused.
      ctx.close();
      // Read before the hand-off commits: an answer that cannot be sent starts nothing.
      const answered = readAnswer(instanceId, answer, check);
      answered.started = await ctx.commit();
      outcome = answered;
    } catch (thrown) {
      clearTimeout(timer);
      ctx.close();
      cause = thrown;
      outcome = this.failure(integration, instanceId, thrown, ctx.committing, redactor);
    }
    if (!outcome.ok) this.logFailure(integration, outcome, redactor.logged(cause));
    this.record(integration, call, ctx, startedAt, outcome, cause, redactor);
    return outcome;
  }

  /** Writes the monitoring records still waiting. */
  flush(): Promise<void> {
    return this.recorder.flush();
  }

  private logFailure(integration: SyncIntegration, outcome: SyncFailed, cause: unknown): void {
    const fields = {
      instanceId: outcome.instanceId,
      integrationId: integration.id,
      status: outcome.error.status,
    };
    if (FAULTS_OF_OURS.has(outcome.kind))
      this.logger.error({ ...fields, err: cause }, 'sync instance failed');
    else this.logger.warn({ ...fields, code: outcome.error.code }, 'sync instance failed');
  }

  private failure(
    integration: SyncIntegration,
    instanceId: string,
    thrown: unknown,
    duringCommit: boolean,
    redactor: Redactor,
  ): SyncFailed {
    const error = coerceError(thrown);
    if (error instanceof DeadlineExceededError) return { ok: false, instanceId, kind: 'deadline', error };
    // A hand-off of text no store can hold is the request's fault, as on an async trigger.
    if (error instanceof UnstorableTextError) return { ok: false, instanceId, kind: 'bad-input', error };
    if (duringCommit) {
      // The handler succeeded but its hand-off could not be committed: the caller must not see a
      // confirmation. A typed refusal (idempotency conflict, shutting down) is passed on as it is.
      if (error instanceof TandemError) return { ok: false, instanceId, kind: 'refused', error };
      const fault = storeFault(error);
      if (fault) {
        this.logger.warn(
          { err: redactor.logged(error), instanceId },
          'the store refused the hand-off of a sync instance',
        );
        return { ok: false, instanceId, kind: 'store-refused', error: fault };
      }
      this.logger.error(
        { err: redactor.logged(error), instanceId },
        'committing the hand-off of a sync instance failed',
      );
      return {
        ok: false,
        instanceId,
        kind: 'hand-off-failed',
        error: new TandemError('internal-error', 'The follow-up work could not be stored', { instanceId }),
      };
    }
    const downstream = downstreamFault(error);
    if (downstream !== null) {
      const retryAfterMs =
        error instanceof RetryAfterError
          ? error.delayMs
          : numberOr((error as { details?: { retryAfterMs?: unknown } }).details?.retryAfterMs);
      return {
        ok: false,
        instanceId,
        kind: downstream === 'unavailable' ? 'unavailable' : 'downstream',
        error: namesFault(error, downstream)
          ? maskedError(error, redactor)
          : new TandemError(
              'downstream-failed',
              `A downstream application failed while "${integration.id}" ran`,
              {
                instanceId,
              },
            ),
        ...(downstream === 'unavailable' && retryAfterMs !== undefined ? { retryAfterMs } : {}),
      };
    }
    const badAnswer = error instanceof InvalidAnswerError;
    return {
      ok: false,
      instanceId,
      kind: badAnswer ? 'bad-answer' : 'handler',
      error: new TandemError(
        'handler-failed',
        badAnswer ? error.message : `The handler of "${integration.id}" failed`,
        { instanceId },
      ),
    };
  }

  private record(
    integration: SyncIntegration,
    call: SyncCall,
    ctx: SyncCallContext,
    startedAt: number,
    outcome: SyncOutcome,
    cause: unknown,
    redactor: Redactor,
  ): void {
    const id = ctx.instanceId;
    const finishedAt = this.engine.clock.now();
    this.engine.observer.syncFinished(
      integration.id,
      outcome.ok ? 'succeeded' : 'failed',
      finishedAt - startedAt,
    );
    let inputJson = 'null';
    try {
      inputJson = toStoredJson(redactor.shown(call.input), 'input');
    } catch {
      // A transformed input that JSON cannot hold is left out of the record rather than losing it.
    }
    let outputJson: string | null = null;
    if (outcome.ok && outcome.json && typeof outcome.body === 'string') {
      outputJson = maskedPayload(outcome.body, redactor);
    }
    let error: ErrorInfo | null = null;
    if (!outcome.ok) {
      error = redactor.error(toErrorInfo(cause ?? outcome.error));
      if (error.code === undefined) error.code = outcome.error.code;
    }
    const tracking = trackingOf(integration, call, redactor);
    if (ctx.span !== undefined) {
      // Tracking values and the error as the record holds them: masked.
      ctx.span.setAttributes(
        trackingAttributes({ [ATTR.outcome]: outcome.ok ? 'succeeded' : 'failed' }, tracking),
      );
      if (outcome.ok && typeof outcome.status === 'number')
        ctx.span.setAttribute(ATTR.status, outcome.status);
      endSpan(ctx.span, error);
    }
    this.recorder.record({
      id,
      integrationId: integration.id,
      mode: 'sync',
      status: outcome.ok ? 'succeeded' : 'failed',
      inputJson,
      inputHash: null,
      tracking,
      orderingKey: null,
      idempotencyKey: null,
      parentId: null,
      createdAt: startedAt,
      runAt: startedAt,
      outputJson,
      error,
      startedAt,
      finishedAt,
      durationMs: finishedAt - startedAt,
      ...(call.source ? { source: call.source } : {}),
      ...(call.actor ? { actor: call.actor } : {}),
      ...(ctx.traceparent === undefined ? {} : { traceparent: ctx.traceparent }),
    });
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

function callHandler(integration: SyncIntegration, ctx: SyncCallContext): unknown {
  try {
    return integration.handler(ctx);
  } catch (error) {
    return Promise.reject(error);
  }
}

/**
 * Tracking fields of a sync instance: a field path is looked up in the body, then in the path
 * parameters, then in the query, so that `GET /orders/:orderId` can be tracked by `orderId`.
 */
function trackingOf(
  integration: SyncIntegration,
  call: SyncCall,
  redactor: Redactor,
): Record<string, string> {
  const tracking: Record<string, string> = {};
  for (const [name, selector] of Object.entries(integration.track ?? {})) {
    let value: string | null = null;
    try {
      value = selectField(call.input, selector as never);
      if (value === null && typeof selector === 'string') {
        value = selectField(call.params ?? {}, selector) ?? selectField(call.query ?? {}, selector);
      }
    } catch {
      // A selector function that throws tracks nothing; it must not fail the call after the fact.
    }
    // A value no store can hold as text tracks nothing: the call has been answered already.
    if (value !== null && isStorableText(value)) tracking[name] = redactor.text(value);
  }
  return tracking;
}

/** A downstream error passed on to the caller, with the call's secrets (a URL, a body excerpt) masked. */
function maskedError(error: TandemError, redactor: Redactor): TandemError {
  const message = redactor.text(error.message);
  const details = redactor.json(error.details);
  if (message === error.message && details === error.details) return error;
  return Object.assign(new TandemError(error.code, message, details), { name: error.name });
}

/** A JSON answer as recorded: parsed and masked only when there may be something to mask. */
function maskedPayload(payload: string, redactor: Redactor): string {
  if (redactor === Redactor.NONE && !SECRET_KEY_IN_JSON.test(payload)) return payload;
  const masked = redactor.shown(JSON.parse(payload) as unknown);
  return JSON.stringify(masked);
}

function numberOr(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? value : undefined;
}
