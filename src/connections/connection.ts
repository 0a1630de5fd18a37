/**
 * What every kind of connection (HTTP, SFTP, SQL, e-mail) has in common: what the engine, the
 * metrics and the console need of one, what a call is told about where it comes from, and the error
 * a non-HTTP call fails with. The HTTP client predates the other kinds and keeps its own
 * `HttpError`; the other kinds are built on the guard in guard.ts.
 */
import type { Json } from '../model.js';
import type { LimitStore } from '../store/store.js';
import type { CircuitState } from './circuit.js';

export type ConnectionType = 'http' | 'sftp' | 'postgres' | 'smtp';

/** Told to a connection's watchers after every call (metrics, console figures, circuit observer). */
export interface CallOutcome {
  /** False when the call failed: no answer, an error status, a refused operation. */
  ok: boolean;
  /** An HTTP call's status; null for other kinds, and for an HTTP call without an answer. */
  status: number | null;
  durationMs: number;
}

export interface Connection {
  readonly id: string;
  readonly type: ConnectionType;
  /** Where it connects to, without credentials (`https://bank.example`, `sftp://files:22`), for the console. */
  readonly target: string;
  /** Told of every call's outcome; returns the unsubscribe. */
  watch(listener: (call: CallOutcome) => void): () => void;
  circuitState(now?: number): CircuitState;
  close(): Promise<void>;
  /**
   * Holds the limits and circuit for all processes of the store from now on (./limits.ts); the
   * engine calls it at creation where the store is shared. Returns the undo, which gives back what
   * this process holds and returns to per-process limits. A kind on ConnectionGuard forwards it.
   */
  shareLimits?(store: LimitStore, onError: (error: unknown) => void): () => Promise<void>;
}

/** What the runtime tells a connection about a call's origin. */
export interface CallContext {
  instanceId: string;
  attempt: number;
  /** The instance's signal (timeout, deadline, cancel). */
  signal: AbortSignal;
  /** Downstream idempotency key of this call (instance + step + the call's place in the step). */
  idempotencyKey: string;
  traceparent: string;
  /** The step the call is made in (null: outside any step), recorded with the call. */
  step?: string | null;
  /** Receives the call's activity event data. */
  record?: ((data: Record<string, Json>) => void) | undefined;
  /** The engine's clock, for the circuit breaker (a test's manual clock moves it). Default Date.now. */
  now?: (() => number) | undefined;
  /**
   * Told when an operation ends without a record: refused before it ran (an open circuit) or
   * abandoned while it waited for the limits. The call's span ends there.
   */
  unrecorded?: ((thrown: unknown) => void) | undefined;
}

/**
 * A kind whose client a handler gets with `ctx.use(connection)`: what the client does is limited,
 * recorded and keyed like `ctx.call`.
 */
export interface BindableConnection<Client> extends Connection {
  /** `next()` gives a fresh context (its own idempotency key and span): one per operation. */
  bind(next: () => CallContext): Client;
}

/**
 * Marks a connection for {@link isConnection}: a symbol from the global registry is the same in
 * every copy of Tandem a process may hold, where `instanceof` answers only for its own copy.
 */
export const CONNECTION = Symbol.for('tandem.connection');

/** A connection of any kind, of this or of another copy of Tandem. */
export function isConnection(value: unknown): value is Connection {
  return (
    typeof value === 'object' && value !== null && (value as { [CONNECTION]?: unknown })[CONNECTION] === true
  );
}

/** True for a connection a handler can `ctx.use()`. */
export function isBindable(value: unknown): value is BindableConnection<unknown> {
  return isConnection(value) && typeof (value as { bind?: unknown }).bind === 'function';
}

/**
 * A failed call through a non-HTTP connection. `retryable` tells the engine whether another attempt
 * may succeed: false fails the instance at once (a refused permission, a constraint violation).
 */
export class ConnectionError extends Error {
  override readonly name = 'ConnectionError';
  constructor(
    message: string,
    readonly connection: string,
    readonly type: ConnectionType,
    /** What went wrong, in the kind's words (`permission-denied`, `connection-failed`, a SQLSTATE, …). */
    readonly code: string,
    readonly retryable: boolean,
    readonly details: Record<string, Json>,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}
