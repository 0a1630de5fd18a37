/**
 * `ctx.call()` for handlers: resolves the connection, derives the downstream Idempotency-Key from
 * the instance and the step the call is made in (so a retried step sends the same key and a
 * well-behaved application applies it once), propagates a W3C traceparent, and records the call.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';
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

export interface CallerOptions {
  instanceId: string;
  attempt: number;
  signal: AbortSignal;
  connections: ReadonlyMap<string, HttpConnection>;
  record?: (data: Record<string, Json>) => void;
}

export function makeCaller(options: CallerOptions): Call {
  // One trace per attempt; each call is a span of it.
  const traceId = randomBytes(16).toString('hex');
  const outside: StepScope = { name: 'call', calls: 0 };
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
    const scope = currentStep.getStore() ?? outside;
    const index = scope.calls++;
    return resolved.call(
      {
        instanceId: options.instanceId,
        attempt: options.attempt,
        signal: options.signal,
        idempotencyKey: `${options.instanceId}:${scope.name}:${index}`,
        traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01`,
        ...(options.record ? { record: options.record } : {}),
      },
      method,
      path,
      callOptions,
    );
  };
}
