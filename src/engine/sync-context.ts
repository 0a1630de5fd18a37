/**
 * The `ctx` of a sync handler. It is made once per call on the response path, so it is cheap: its
 * methods live on the prototype and are bound on first read (a handler may take them apart), the
 * AbortController is made only when the signal is read or a connection is called, and the hand-off
 * buffer only on the first start. Most sync handlers read their input, call one thing and answer:
 * they should not pay for the rest.
 */
import { type Call, type CallArgs, type Caller, makeCaller, type Use } from '../connections/caller.js';
import type {
  AnyIntegration,
  StartedInstance,
  Starter,
  StartOptions,
  SyncContext,
} from '../define/integration.js';
import { TandemError } from '../errors.js';
import type { Actor } from '../model.js';
import type { NewInstance } from '../store/store.js';
import type { Span } from '../tracing/tracing.js';
import type { Engine } from './engine.js';

/** One call of a sync integration; every part is already validated. */
export interface SyncCall {
  input: unknown;
  params?: Record<string, unknown>;
  query?: Record<string, unknown>;
  headers?: Record<string, string | string[] | undefined>;
  /** Started by an operator from the console: its record says so. */
  source?: 'console';
  /** The management token that called it (`POST /api/integrations/:id/call`): its record says so. */
  actor?: Actor;
  /** The caller's W3C traceparent (already checked): the call's span, or its trace, continues it. */
  traceparent?: string;
}

export class SyncCallContext
  implements SyncContext<unknown, Record<string, unknown>, Record<string, unknown>>
{
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
  private caller: Caller | undefined;
  private bound:
    | { start?: Starter['start']; startMany?: Starter['startMany']; call?: Call; use?: Use }
    | undefined;
  /** The call's span, when tracing. */
  span: Span | undefined;
  /** The trace context its children continue: the span's, else the caller's; undefined: none. */
  traceparent: string | undefined;

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
    this.traceparent = call.traceparent;
  }

  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.expired) this.controller.abort(this.expired);
    }
    return this.controller.signal;
  }

  get start(): Starter['start'] {
    this.bound ??= {};
    this.bound.start ??= this.startOne.bind(this);
    return this.bound.start;
  }

  get startMany(): Starter['startMany'] {
    this.bound ??= {};
    this.bound.startMany ??= this.startSeveral.bind(this);
    return this.bound.startMany;
  }

  get call(): Call {
    this.bound ??= {};
    this.bound.call ??= this.callConnection.bind(this);
    return this.bound.call;
  }

  get use(): Use {
    this.bound ??= {};
    this.bound.use ??= ((connection) => this.connectionCaller().use(connection)) as Use;
    return this.bound.use;
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
    options?: StartOptions,
  ): Promise<StartedInstance> {
    this.ensureOpen();
    const row = this.engine.prepare(integration, input, {
      parentId: this.instanceId,
      ...(options?.idempotencyKey === undefined ? {} : { idempotencyKey: options.idempotencyKey }),
      // The hand-off: the child's attempts are spans of this call's trace.
      ...(this.traceparent === undefined ? {} : { traceparent: this.traceparent }),
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
    for await (const input of inputs) {
      this.ensureOpen();
      // No idempotency keys: a sync instance runs once, so there is no earlier attempt to dedupe.
      rows.push(
        this.engine.prepare(integration, input, {
          parentId: this.instanceId,
          ...(this.traceparent === undefined ? {} : { traceparent: this.traceparent }),
        }),
      );
    }
    // All or nothing: the rows join the hand-off only once every input was valid.
    this.rows ??= [];
    this.rows.push(...rows);
    return { count: rows.length, created: rows.length };
  }

  private callConnection<T>(...args: CallArgs): Promise<T> {
    return this.connectionCaller().call<T>(...args);
  }

  private connectionCaller(): Caller {
    // Made on the first call: many sync handlers call no connection at all.
    this.caller ??= makeCaller({
      instanceId: this.instanceId,
      attempt: 1,
      signal: this.signal,
      connections: this.engine.connections,
      now: () => this.engine.clock.now(),
      traceparent: this.traceparent,
      tracing: this.engine.tracing,
      span: this.span,
    });
    return this.caller;
  }
}
