/**
 * `ctx.call()` and `ctx.use()` for handlers: resolves the connection, derives the downstream
 * idempotency key from the instance and the step the call is made in (so a retried step sends the
 * same key and a well-behaved application applies it once), propagates a W3C traceparent, and
 * records the call.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { TandemError } from '../errors.js';
import type { Json } from '../model.js';
import { traceIdOf } from '../tracing/traceparent.js';
import {
  ATTR,
  endSpan,
  type Span,
  SpanKind,
  stepSpan,
  type Tracing,
  traceparentOf,
} from '../tracing/tracing.js';
import { type BindableConnection, type CallContext, type Connection, isBindable } from './connection.js';
import { type CallOptions, type HttpConnection, isHttpConnection } from './http.js';

/** The step a piece of handler code runs in, and how many calls it made so far. */
export interface StepScope {
  name: string;
  calls: number;
}

export const currentStep = new AsyncLocalStorage<StepScope>();

export type Call = <T = unknown>(
  connection: HttpConnection | string,
  method: string,
  path: string,
  options?: CallOptions,
) => Promise<T>;

/** The arguments of a {@link Call}, for contexts that forward them. */
export type CallArgs = Call extends (...args: infer A) => unknown ? A : never;

/** The client of a non-HTTP connection (SFTP, SQL, e-mail), bound to the handler's calls. */
export type Use = <C extends BindableConnection<unknown>>(connection: C | string) => ClientOf<C>;

export type ClientOf<C> = C extends BindableConnection<infer Client> ? Client : never;

export interface CallerOptions {
  instanceId: string;
  attempt: number;
  signal: AbortSignal;
  connections: ReadonlyMap<string, Connection>;
  record?: (data: Record<string, Json>) => void;
  /** The engine's clock, for the connection's circuit breaker. */
  now?: () => number;
  /** The trace context stored with the instance: calls continue its trace (without tracing too). */
  traceparent?: string | null | undefined;
  /** Set when tracing: each call is a span under the step's span, else under `span`. */
  tracing?: Tracing | null;
  /** The attempt's (or the sync call's) span. */
  span?: Span | undefined;
}

export interface Caller {
  call: Call;
  use: Use;
}

export function makeCaller(options: CallerOptions): Caller {
  // Without tracing: the instance's trace when it has one (a trigger's traceparent), else one trace
  // per attempt; each call is a span id of it.
  const traceId = traceIdOf(options.traceparent) ?? randomBytes(16).toString('hex');
  // Span ids: a random start and a counter (a random draw per call costs more than the call's bookkeeping).
  let span = randomBytes(6).readUIntBE(0, 6);
  const outside: StepScope = { name: 'call', calls: 0 };
  // Each call in flight listens on the instance's signal; a handler may run many at once.
  setMaxListeners(1_000, options.signal);
  /** The context of the next call: the step it is made in (read now), its key and its span. */
  const next = (): CallContext => {
    const inStep = currentStep.getStore();
    const scope = inStep ?? outside;
    const index = scope.calls++;
    return {
      instanceId: options.instanceId,
      attempt: options.attempt,
      signal: options.signal,
      idempotencyKey: `${options.instanceId}:${scope.name}:${index}`,
      traceparent: `00-${traceId}-${(span++).toString(16).padStart(16, '0')}-01`,
      step: inStep ? inStep.name : null,
      record: options.record,
      now: options.now,
    };
  };
  const { tracing } = options;
  /**
   * When tracing, the next call's context with a span of its own: its traceparent goes downstream,
   * and the call's record (made once, when the call ends) ends it with what came of it.
   */
  const traced = (
    connection: Connection,
  ): { context: CallContext; settle: (failed: boolean, thrown?: unknown) => void } => {
    const context = next();
    const callSpan = tracing!.start(
      `call ${connection.id}`,
      SpanKind.CLIENT,
      stepSpan.getStore() ?? options.span,
      {
        [ATTR.connection]: connection.id,
        'tandem.connection.type': connection.type,
        [ATTR.instance]: options.instanceId,
        [ATTR.attempt]: options.attempt,
        ...(context.step ? { [ATTR.step]: context.step } : {}),
      },
    );
    let ended = false;
    const record = options.record;
    context.traceparent = traceparentOf(callSpan);
    context.record = (data) => {
      if (!ended) endCallSpan(callSpan, data);
      ended = true;
      record?.(data);
    };
    const settle = (failed: boolean, thrown?: unknown) => {
      if (ended) return;
      ended = true;
      // Only the error's name and code: its message may hold the call's values.
      endSpan(
        callSpan,
        failed ? { message: (thrown as Error | null)?.name ?? 'failed', code: codeOf(thrown) } : null,
      );
    };
    // An operation of a guarded kind refused before it ran records nothing: its span ends here.
    context.unrecorded = (thrown) => settle(true, thrown);
    return { context, settle };
  };
  const resolve = (connection: unknown): unknown =>
    typeof connection === 'string' ? options.connections.get(connection) : connection;
  const call: Call = (connection, method, path, callOptions) => {
    const resolved = resolve(connection);
    if (!isHttpConnection(resolved)) return Promise.reject(unusable(connection, resolved, 'ctx.call'));
    if (!tracing) return resolved.call(next(), method, path, callOptions);
    const { context, settle } = traced(resolved);
    // A call refused before it was sent (an open circuit, a cancel) records nothing: its span ends here.
    return resolved.call(context, method, path, callOptions).then(
      (value) => {
        settle(false);
        return value as never;
      },
      (thrown: unknown) => {
        settle(true, thrown);
        throw thrown;
      },
    );
  };
  const use: Use = <C extends BindableConnection<unknown>>(connection: C | string) => {
    const resolved = resolve(connection);
    if (!isBindable(resolved)) throw unusable(connection, resolved, 'ctx.use');
    // An operation of another kind ends its span with its record (the connection.call event).
    return resolved.bind(tracing ? () => traced(resolved).context : next) as ClientOf<C>;
  };
  return { call, use };
}

/** Ends a call's span with its recorded outcome: the method or operation, the status, the failure's reason. */
function endCallSpan(callSpan: Span, data: Record<string, Json>): void {
  const { method, operation, status, error } = data;
  if (typeof method === 'string') {
    callSpan.updateName(`call ${String(data.connection)} ${method}`);
    callSpan.setAttribute(ATTR.method, method);
  } else if (typeof operation === 'string') {
    callSpan.updateName(`call ${String(data.connection)} ${operation}`);
    callSpan.setAttribute('tandem.operation', operation);
  }
  let reason = typeof error === 'string' ? error : undefined;
  if (typeof status === 'number') {
    callSpan.setAttribute(ATTR.status, status);
    // A client span fails on an error status as well (OpenTelemetry's HTTP conventions).
    if (status >= 400) reason ??= `http-${status}`;
  }
  // The failure's reason is a code (`http-503`, `timeout`, `ECONNREFUSED`), never a value of the call.
  endSpan(callSpan, reason === undefined ? null : { message: reason, code: reason });
}

function codeOf(thrown: unknown): string | undefined {
  const code = (thrown as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Why a connection cannot be used the way it was asked: unknown, or of the other sort. */
function unusable(asked: unknown, resolved: unknown, how: 'ctx.call' | 'ctx.use'): TandemError {
  const name = typeof asked === 'string' ? asked : ((asked as { id?: unknown } | null)?.id ?? asked);
  if (resolved === undefined || resolved === null || typeof resolved !== 'object' || !('type' in resolved))
    return new TandemError(
      'invalid-definition',
      `Unknown connection "${String(name)}": register it in the config`,
    );
  const type = String((resolved as { type: unknown }).type);
  return new TandemError(
    'invalid-definition',
    how === 'ctx.call'
      ? `Connection "${String(name)}" (type ${type}) is not an HTTP connection: use ctx.use(connection) for it`
      : `Connection "${String(name)}" (type ${type}) is an HTTP connection: use ctx.call(connection, method, path) for it`,
  );
}
