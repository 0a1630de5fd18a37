/**
 * One HTTP request and its whole response under one time limit (connecting, sending, reading the
 * body), on undici's low-level `dispatch` with a handler that collects the body. `request()` with a
 * body stream and an abort signal per call costs more than the rest of a small call's client-side
 * work together; this is the hot path of every integration (measured: bench:connections).
 *
 * The handler implements the callbacks undici's dispatcher calls itself (`onConnect`, `onHeaders`,
 * `onData`, `onComplete`, `onError`, as its own `request()` does): a handler with the newer
 * controller-style methods is wrapped per call in an adapter that also parses every response
 * header into an object, where only two are read.
 */
import type { Dispatcher } from 'undici';

export interface ExchangeRequest {
  path: string;
  method: string;
  headers: Record<string, string>;
  body: string | undefined;
  timeoutMs: number;
  /** The instance's signal (timeout, deadline, cancel). */
  signal: AbortSignal;
}

export interface ExchangeResponse {
  status: number;
  contentType: string;
  retryAfter: string | undefined;
  body: string;
  /** Bytes of the body as received. */
  bytes: number;
}

/** No answer arrived: `timedOut` tells the connection's own time limit from a network failure. */
export class ExchangeFailure extends Error {
  constructor(
    readonly timedOut: boolean,
    readonly reason: string,
    options?: ErrorOptions,
  ) {
    super(reason, options);
    this.name = 'ExchangeFailure';
  }
}

const ABANDONED = new Error('call abandoned');

export function exchange(dispatcher: Dispatcher, request: ExchangeRequest): Promise<ExchangeResponse> {
  const { signal } = request;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<ExchangeResponse>((resolve, reject) => {
    const handler = new Exchange(resolve, reject, request.timeoutMs);
    handler.unlisten = whenAborted(signal, (reason) => handler.abandon(reason));
    try {
      dispatcher.dispatch(
        {
          path: request.path,
          method: request.method as Dispatcher.HttpMethod,
          headers: request.headers,
          body: request.body ?? null,
          // Our timer is the one limit; undici's per-phase timeouts must not fire first.
          headersTimeout: 0,
          bodyTimeout: 0,
        },
        handler as unknown as Dispatcher.DispatchHandler,
      );
    } catch (error) {
      handler.settle(failure(error));
    }
  });
}

/** undici's handler for one exchange; methods on the prototype, no closures per call. */
class Exchange {
  private abort: ((reason?: Error) => void) | null = null;
  private settled = false;
  private status = 0;
  private rawHeaders: Buffer[] = [];
  private readonly chunks: Buffer[] = [];
  private readonly timer: NodeJS.Timeout;
  unlisten: (() => void) | null = null;

  constructor(
    private readonly resolve: (response: ExchangeResponse) => void,
    private readonly reject: (error: unknown) => void,
    timeoutMs: number,
  ) {
    this.timer = setTimeout(
      () => this.abandon(new ExchangeFailure(true, `no answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
  }

  settle(error: unknown, response?: ExchangeResponse): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.timer);
    this.unlisten?.();
    if (response) this.resolve(response);
    else this.reject(error);
  }

  /** Ends the call now; a request already sent is aborted (its socket dropped). */
  abandon(error: unknown): void {
    if (this.settled) return;
    this.settle(error);
    this.abort?.(ABANDONED);
  }

  onConnect(abort: (reason?: Error) => void): void {
    this.abort = abort;
    if (this.settled) abort(ABANDONED); // abandoned while waiting for a socket
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[]): boolean {
    this.status = statusCode;
    this.rawHeaders = rawHeaders;
    return true;
  }

  onData(chunk: Buffer): boolean {
    this.chunks.push(chunk);
    return true;
  }

  onComplete(): void {
    const { chunks, rawHeaders } = this;
    const buffer = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    this.settle(null, {
      status: this.status,
      contentType: headerOf(rawHeaders, 'content-type') ?? '',
      retryAfter: headerOf(rawHeaders, 'retry-after'),
      body: buffer.toString(),
      bytes: buffer.length,
    });
  }

  onError(error: Error): void {
    this.settle(failure(error));
  }
}

/** The first value of a response header (name in lower case) from undici's raw name/value list. */
function headerOf(rawHeaders: Buffer[], name: string): string | undefined {
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    const key = rawHeaders[i]!;
    if (key.length === name.length && key.toString('latin1').toLowerCase() === name) {
      return rawHeaders[i + 1]!.toString('latin1');
    }
  }
  return undefined;
}

function failure(error: unknown): ExchangeFailure {
  const cause = error as { code?: string; message?: string };
  const timedOut = cause.code === 'UND_ERR_CONNECT_TIMEOUT';
  return new ExchangeFailure(timedOut, cause.code ?? cause.message ?? 'unknown', { cause: error });
}

type Hook = (reason: unknown) => void;
const hooks = new WeakMap<AbortSignal, Set<Hook>>();

/**
 * Runs `hook` with the signal's reason when it aborts; returns the unsubscribe. One listener per
 * signal however many calls wait on it: an attempt's signal is shared by all its calls.
 */
function whenAborted(signal: AbortSignal, hook: Hook): () => void {
  let set = hooks.get(signal);
  if (!set) {
    const created = new Set<Hook>();
    set = created;
    hooks.set(signal, created);
    signal.addEventListener(
      'abort',
      () => {
        for (const registered of [...created]) registered(signal.reason);
        created.clear();
      },
      { once: true },
    );
  }
  set.add(hook);
  return () => set.delete(hook);
}
