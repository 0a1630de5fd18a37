/**
 * Runs sync integrations inline: the caller waits for the handler's answer. A sync instance has a
 * deadline (its signal fires and the caller gets 504), buffers the handler's `start()` calls and
 * commits them in one transaction before the answer is released (the sync → async hand-off), and is
 * recorded for monitoring off the response path. Nothing here knows HTTP beyond the handler's
 * `{status, headers, body}` answer.
 */
import { validateHeaderName, validateHeaderValue } from 'node:http';
import type { Logger } from 'pino';
import { type Call, type CallArgs, makeCaller } from '../connections/caller.js';
import {
  type AnyIntegration,
  type StartedInstance,
  type Starter,
  type SyncContext,
  type SyncDefinition,
  type SyncResponse,
  selectField,
} from '../define/integration.js';
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
import type { NewInstance } from '../store/store.js';
import type { Engine } from './engine.js';
import { uuidv7 } from './ids.js';
import type { SyncRecorder, SyncRecorderOptions } from './sync-recorder.js';

export const DEFAULT_DEADLINE_MS = 10_000;
export const DEFAULT_MAX_DEADLINE_MS = 60_000;

export type SyncIntegration = SyncDefinition<any, any, any> & { readonly kind: 'tandem.integration' };

/** One call of a sync integration; every part is already validated. */
export interface SyncCall {
  input: unknown;
  params?: Record<string, unknown>;
  query?: Record<string, unknown>;
  headers?: Record<string, string | string[] | undefined>;
}

/** The handler's answer, ready to send: the body is serialised before any start is committed. */
export interface SyncAnswer {
  ok: true;
  instanceId: string;
  status: number;
  headers: Record<string, string>;
  /** `undefined` for an empty body. */
  payload: string | Buffer | undefined;
  /** True when `payload` is JSON that Tandem serialised (the caller sets the content type). */
  json: boolean;
  /** Children committed by the hand-off. */
  started: number;
}

export interface SyncFailure {
  ok: false;
  instanceId: string;
  /** What the caller is told: 500 handler failed, 502/503 downstream, 504 deadline, or a commit error. */
  error: TandemError;
  /** For a 503: when the caller may try again. */
  retryAfterMs?: number;
}

export type SyncResult = SyncAnswer | SyncFailure;

export interface SyncRunnerOptions {
  /** Longest deadline an integration may ask for. Default 60 s. */
  maxDeadlineMs?: number;
  recorder?: SyncRecorderOptions;
  /** Default: the engine's logger. */
  logger?: Logger;
}

/**
 * The status a failure of a downstream application maps to, or null when the error is not one.
 * A downstream failure is an error that carries HTTP status 502 or 503 (a connection's error, an
 * open circuit breaker) or that is marked as coming from a connection (`connection` or
 * `details.connection` set). 503 stays 503 so that callers see "try later"; the rest is 502.
 */
export function downstreamStatus(error: Error): 502 | 503 | null {
  if (error instanceof TandemError && (error.code === 'shutting-down' || error.code === 'store-closed')) {
    return null;
  }
  const status = (error as { status?: unknown; statusCode?: unknown }).status;
  if (status === 503) return 503;
  if (status === 502) return 502;
  const marked = error as { connection?: unknown; details?: { connection?: unknown } };
  if (marked.connection !== undefined || marked.details?.connection !== undefined) return 502;
  return null;
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
   * hand-off, comes back as a {@link SyncResult} carrying the instance id.
   */
  async run(integrationRef: AnyIntegration, call: SyncCall): Promise<SyncResult> {
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

    let result: SyncResult;
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
        const value = callHandler(integration, ctx as unknown as SyncContext<unknown, any, any>);
        // Not resolve(value): a promise handed to resolve() locks the outcome, and the deadline's
        // reject would then be ignored.
        if (isThenable(value)) value.then(resolve, reject);
        else resolve(value);
      });
      clearTimeout(timer);
      // Once the handler has answered, later start() calls (from work it left running) are refused.
      ctx.close();
      const ready = prepareAnswer(instanceId, answer);
      const started = await ctx.commit();
      result = { ...ready, started };
    } catch (thrown) {
      clearTimeout(timer);
      ctx.close();
      cause = thrown;
      result = this.failure(integration, instanceId, thrown, ctx.committing, redactor);
    }
    if (!result.ok) this.logFailure(integration, result, redactor.logged(cause));
    this.record(integration, call, instanceId, startedAt, result, cause, redactor);
    return result;
  }

  /** Writes the monitoring records still waiting. */
  flush(): Promise<void> {
    return this.recorder.flush();
  }

  private logFailure(integration: SyncIntegration, result: SyncFailure, cause: unknown): void {
    const fields = {
      instanceId: result.instanceId,
      integrationId: integration.id,
      status: result.error.status,
    };
    if (result.error.status === 500) this.logger.error({ ...fields, err: cause }, 'sync instance failed');
    else this.logger.warn({ ...fields, code: result.error.code }, 'sync instance failed');
  }

  private failure(
    integration: SyncIntegration,
    instanceId: string,
    thrown: unknown,
    duringCommit: boolean,
    redactor: Redactor,
  ): SyncFailure {
    const error = coerceError(thrown);
    if (error instanceof DeadlineExceededError) return { ok: false, instanceId, error };
    // A hand-off of text no store can hold is the request's fault, as on an async trigger.
    if (error instanceof UnstorableTextError) return { ok: false, instanceId, error };
    if (duringCommit) {
      // The handler succeeded but its hand-off could not be committed: the caller must not see a
      // confirmation. A typed refusal (idempotency conflict, shutting down) keeps its status.
      if (error instanceof TandemError) return { ok: false, instanceId, error };
      const fault = storeFault(error);
      if (fault) {
        this.logger.warn(
          { err: redactor.logged(error), instanceId },
          'the store refused the hand-off of a sync instance',
        );
        return { ok: false, instanceId, error: fault };
      }
      this.logger.error(
        { err: redactor.logged(error), instanceId },
        'committing the hand-off of a sync instance failed',
      );
      return {
        ok: false,
        instanceId,
        error: new TandemError('internal-error', 'The follow-up work could not be stored', { instanceId }),
      };
    }
    const downstream = downstreamStatus(error);
    if (downstream !== null) {
      const retryAfterMs =
        error instanceof RetryAfterError
          ? error.delayMs
          : numberOr((error as { details?: { retryAfterMs?: unknown } }).details?.retryAfterMs);
      const passOn = error instanceof TandemError && error.status === downstream;
      return {
        ok: false,
        instanceId,
        error: passOn
          ? maskedError(error, redactor)
          : new TandemError(
              'downstream-failed',
              `A downstream application failed while "${integration.id}" ran`,
              {
                instanceId,
              },
            ),
        ...(downstream === 503 && retryAfterMs !== undefined ? { retryAfterMs } : {}),
      };
    }
    return {
      ok: false,
      instanceId,
      error: new TandemError(
        'handler-failed',
        error instanceof InvalidAnswerError ? error.message : `The handler of "${integration.id}" failed`,
        { instanceId },
      ),
    };
  }

  private record(
    integration: SyncIntegration,
    call: SyncCall,
    id: string,
    startedAt: number,
    result: SyncResult,
    cause: unknown,
    redactor: Redactor,
  ): void {
    const finishedAt = this.engine.clock.now();
    this.engine.observer.syncFinished(
      integration.id,
      result.ok ? 'succeeded' : 'failed',
      finishedAt - startedAt,
    );
    let inputJson = 'null';
    try {
      inputJson = toStoredJson(redactor.shown(call.input), 'input');
    } catch {
      // A transformed input that JSON cannot hold is left out of the record rather than losing it.
    }
    let outputJson: string | null = null;
    if (result.ok && result.json && typeof result.payload === 'string') {
      outputJson = maskedPayload(result.payload, redactor);
    }
    let error: ErrorInfo | null = null;
    if (!result.ok) {
      error = redactor.error(toErrorInfo(cause ?? result.error));
      if (error.code === undefined) error.code = result.error.code;
    }
    this.recorder.record({
      id,
      integrationId: integration.id,
      mode: 'sync',
      status: result.ok ? 'succeeded' : 'failed',
      inputJson,
      inputHash: null,
      tracking: trackingOf(integration, call, redactor),
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

function callHandler(integration: SyncIntegration, ctx: SyncContext<unknown, any, any>): unknown {
  try {
    return integration.handler(ctx);
  } catch (error) {
    return Promise.reject(error);
  }
}

/**
 * The `ctx` of a sync handler, one object per call: its methods live on the prototype and are bound
 * on first read (a handler may take them apart), the AbortController is made only when the signal
 * is read or a connection is called, and the hand-off buffer only on the first start. Most sync
 * handlers read their input, call one thing and answer: they should not pay for the rest.
 */
class SyncCallContext {
  readonly input: unknown;
  readonly params: Record<string, unknown>;
  readonly query: Record<string, unknown>;
  readonly headers: Record<string, string | string[] | undefined>;
  /** Set while the hand-off commits: a failure then is a refused hand-off, not a handler failure. */
  committing = false;
  private controller: AbortController | undefined;
  private expired: Error | undefined;
  private open = true;
  /** The starts buffered for the hand-off. */
  private rows: NewInstance[] | undefined;
  private caller: Call | undefined;
  private bound: Partial<Record<'start' | 'startMany' | 'call', unknown>> | undefined;

  constructor(
    private readonly engine: Engine,
    readonly integrationId: string,
    readonly instanceId: string,
    call: SyncCall,
  ) {
    this.input = call.input;
    this.params = call.params ?? {};
    this.query = call.query ?? {};
    this.headers = call.headers ?? {};
  }

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.expired) this.controller.abort(this.expired);
    }
    return this.controller.signal;
  }

  get start(): Starter['start'] {
    return this.bind('start', this.startOne);
  }

  get startMany(): Starter['startMany'] {
    return this.bind('startMany', this.startSeveral);
  }

  get call(): SyncContext<unknown>['call'] {
    return this.bind('call', this.callConnection);
  }

  /** The deadline passed: fires the signal (now, or when it is first read). */
  expire(error: Error): void {
    this.expired = error;
    this.controller?.abort(error);
  }

  /** The handler has answered (or failed): it can start nothing more. */
  close(): void {
    this.open = false;
  }

  /** Commits every buffered start in one transaction; returns how many were new. */
  async commit(): Promise<number> {
    if (!this.rows || this.rows.length === 0) return 0;
    this.committing = true;
    const accepted = await this.engine.acceptPrepared(this.rows);
    this.committing = false;
    return accepted.filter((a) => a.created).length;
  }

  private bind<F extends (...args: any[]) => any>(name: 'start' | 'startMany' | 'call', method: F): any {
    this.bound ??= {};
    this.bound[name] ??= method.bind(this);
    return this.bound[name];
  }

  private ensureOpen(): void {
    if (!this.open) {
      throw new TandemError(
        'invalid-state',
        `Sync instance "${this.instanceId}" has already answered (or missed its deadline); it can start nothing more`,
        { instanceId: this.instanceId },
      );
    }
  }

  private async startOne(
    integration: AnyIntegration | string,
    input: unknown,
    options?: { idempotencyKey?: string },
  ): Promise<StartedInstance> {
    this.ensureOpen();
    const row = this.engine.prepare(integration, input, {
      parentId: this.instanceId,
      ...(options?.idempotencyKey === undefined ? {} : { idempotencyKey: options.idempotencyKey }),
    });
    this.rows ??= [];
    this.rows.push(row);
    return { instanceId: row.id, created: true };
  }

  private async startSeveral(
    integration: AnyIntegration | string,
    inputs: Iterable<unknown> | AsyncIterable<unknown>,
  ): Promise<{ count: number; created: number }> {
    this.ensureOpen();
    const rows: NewInstance[] = [];
    for await (const input of inputs as AsyncIterable<unknown>) {
      this.ensureOpen();
      // No idempotency keys: a sync instance runs once, so there is no earlier attempt to dedupe.
      rows.push(this.engine.prepare(integration, input, { parentId: this.instanceId }));
    }
    // All or nothing: the rows join the hand-off only once every input was valid.
    this.rows ??= [];
    this.rows.push(...rows);
    return { count: rows.length, created: rows.length };
  }

  private callConnection(...args: CallArgs): ReturnType<Call> {
    // Made on the first call: many sync handlers call no connection at all.
    this.caller ??= makeCaller({
      instanceId: this.instanceId,
      attempt: 1,
      signal: this.signal,
      connections: this.engine.connections,
      now: () => this.engine.clock.now(),
    });
    return this.caller(...args);
  }
}

/** Thrown when a handler's answer cannot be sent; its message is meant for the integration's author. */
class InvalidAnswerError extends Error {}

const RESPONSE_KEYS = new Set(['status', 'headers', 'body']);
const FRAMING_HEADERS = new Set([
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'upgrade',
]);

/** True when a returned value is a `{status?, headers?, body?}` answer rather than a plain body. */
function isSyncResponse(value: unknown): value is SyncResponse {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const keys = Object.keys(value);
  if (keys.length === 0 || !keys.every((k) => RESPONSE_KEYS.has(k))) return false;
  const { status, headers } = value as SyncResponse;
  if (status !== undefined && typeof status !== 'number') return false;
  if (headers !== undefined && (headers === null || typeof headers !== 'object' || Array.isArray(headers))) {
    return false;
  }
  // `{ headers }` alone is more likely a body that happens to use the word.
  return keys.includes('body') || status !== undefined;
}

function prepareAnswer(instanceId: string, answer: unknown): Omit<SyncAnswer, 'started'> {
  const response: SyncResponse = isSyncResponse(answer) ? answer : { body: answer };
  const status = response.status ?? (response.body === undefined ? 204 : 200);
  if (!Number.isInteger(status) || status < 200 || status > 599) {
    throw new InvalidAnswerError(`The handler answered with status ${status}; use 200–599`);
  }
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(response.headers ?? {})) {
    if (typeof value !== 'string') throw new InvalidAnswerError(`Header "${name}" must be a string`);
    const lower = name.toLowerCase();
    // Framing is the server's business: a handler's content-length could truncate or hang the reply.
    if (FRAMING_HEADERS.has(lower)) continue;
    try {
      validateHeaderName(lower);
      validateHeaderValue(lower, value);
    } catch {
      throw new InvalidAnswerError(`Header "${name}" is not a valid HTTP header`);
    }
    headers[lower] = value;
  }
  const body = response.body;
  if (body === undefined || body === null) {
    return {
      ok: true,
      instanceId,
      status,
      headers,
      payload: body === null ? 'null' : undefined,
      json: body === null,
    };
  }
  if (typeof body === 'string' || Buffer.isBuffer(body))
    return { ok: true, instanceId, status, headers, payload: body, json: false };
  let payload: string | undefined;
  try {
    payload = JSON.stringify(body);
  } catch (error) {
    throw new InvalidAnswerError(
      `The handler's answer cannot be sent as JSON: ${coerceError(error).message}`,
    );
  }
  if (payload === undefined)
    throw new InvalidAnswerError('The handler answered with a value JSON cannot hold');
  return { ok: true, instanceId, status, headers, payload, json: true };
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
