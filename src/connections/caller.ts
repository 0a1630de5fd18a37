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
}

export interface Caller {
  call: Call;
  use: Use;
}

export function makeCaller(options: CallerOptions): Caller {
  // One trace per attempt; each call is a span of it.
  const traceId = randomBytes(16).toString('hex');
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
  const resolve = (connection: unknown): unknown =>
    typeof connection === 'string' ? options.connections.get(connection) : connection;
  const call: Call = (connection, method, path, callOptions) => {
    const resolved = resolve(connection);
    if (!isHttpConnection(resolved)) return Promise.reject(unusable(connection, resolved, 'ctx.call'));
    return resolved.call(next(), method, path, callOptions);
  };
  const use: Use = <C extends BindableConnection<unknown>>(connection: C | string) => {
    const resolved = resolve(connection);
    if (!isBindable(resolved)) throw unusable(connection, resolved, 'ctx.use');
    return resolved.bind(next) as ClientOf<C>;
  };
  return { call, use };
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
