/**
 * An attempt as the engine's parts see it: its handle (abort, timing), and what the executor needs
 * from the rest of the engine (the acceptor for new work, the dispatcher's slots, the writer).
 * Kept apart from the executor so that the context classes and fan-out can name these types
 * without importing the executor that imports them.
 */
import type { Connection } from '../connections/connection.js';
import type {
  AnyIntegration,
  ChildCounts,
  StartedInstance,
  StartManyOptions,
  StartOptions,
} from '../define/integration.js';
import type { Parameters } from '../define/parameters.js';
import { coerceError } from '../errors.js';
import type { InstanceWork } from '../model.js';
import type { FileClaims } from '../sources/bytes.js';
import type { ArmCallback, WaitKey, WaitRecord } from '../store/store.js';
import type { Tracing } from '../tracing/tracing.js';
import type { Clock } from './clock.js';
import type { EngineObserver } from './observer.js';
import type { WorkWriter } from './writer.js';

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
  /** The store's file claims, for record sources that read a connection's files. */
  readonly fileClaims: FileClaims;
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

/** What an attempt's waits need of the engine: the store's wait records and the callback URL's base. */
export interface AttemptWaits {
  settle(key: WaitKey, now: number): Promise<WaitRecord | null>;
  armCallback(request: ArmCallback): Promise<WaitRecord | null>;
  /** The base of callback URLs (`https://tandem.example.com`), without a trailing slash. */
  callbackBase(): string;
  /** How far back a new wait for an event looks for one already received (ms). */
  lookBackMs: number;
}

export interface ExecuteDeps {
  clock: Clock;
  writer: WorkWriter;
  acceptor: AttemptAcceptor;
  /** Registered connections, for `ctx.call`. */
  connections: ReadonlyMap<string, Connection>;
  /** Spans of attempts, steps and calls; null when tracing is not configured. */
  tracing: Tracing | null;
  /** Told of every stored attempt end. */
  observer?: EngineObserver;
  slots?: AttemptSlots;
  waits: AttemptWaits;
}
