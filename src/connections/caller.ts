/**
 * `ctx.call()` for handlers: resolves the connection, derives the downstream Idempotency-Key from
 * the instance and the step the call is made in (so a retried step sends the same key and a
 * well-behaved application applies it once), propagates a W3C traceparent, and records the call.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import { TandemError } from '../errors.js';
import type { Json } from '../model.js';
import { type CallOptions, type HttpConnection, isConnection } from './http.js';

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

export interface CallerOptions {
  instanceId: string;
  attempt: number;
  signal: AbortSignal;
  connections: ReadonlyMap<string, HttpConnection>;
  record?: (data: Record<string, Json>) => void;
  /** The engine's clock, for the connection's circuit breaker. */
  now?: () => number;
}

export function makeCaller(options: CallerOptions): Call {
  // One trace per attempt; each call is a span of it.
  const traceId = randomBytes(16).toString('hex');
  // Span ids: a random start and a counter (a random draw per call costs more than the call's bookkeeping).
  let span = randomBytes(6).readUIntBE(0, 6);
  const outside: StepScope = { name: 'call', calls: 0 };
  // Each call in flight listens on the instance's signal; a handler may run many at once.
  setMaxListeners(1_000, options.signal);
  return (connection, method, path, callOptions) => {
    const resolved = typeof connection === 'string' ? options.connections.get(connection) : connection;
    if (!isConnection(resolved)) {
      return Promise.reject(
        new TandemError(
          'invalid-definition',
          `Unknown connection "${String(connection)}": register it in the config`,
        ),
      );
    }
    const inStep = currentStep.getStore();
    const scope = inStep ?? outside;
    const index = scope.calls++;
    return resolved.call(
      {
        instanceId: options.instanceId,
        attempt: options.attempt,
        signal: options.signal,
        idempotencyKey: `${options.instanceId}:${scope.name}:${index}`,
        traceparent: `00-${traceId}-${(span++).toString(16).padStart(16, '0')}-01`,
        step: inStep ? inStep.name : null,
        record: options.record,
        now: options.now,
      },
      method,
      path,
      callOptions,
    );
  };
}
