/**
 * HTTP connections to business applications, on undici with a keep-alive pool: authentication from
 * secret references, a timeout per call, failure classification (what is retried and what fails at
 * once), a circuit breaker, concurrency and rate limits, and an activity event for every call.
 * Its options and their check are in definition.ts.
 */
import { Pool } from 'undici';
import { CircuitOpenError, TandemError } from '../errors.js';
import type { Json } from '../model.js';
import { CircuitBreaker, type CircuitState } from './circuit.js';
import {
  type CallContext,
  type CallOutcome,
  CONNECTION,
  type Connection,
  isConnection,
} from './connection.js';
import {
  type CallFailure,
  type ConnectionAuth,
  checkConnection,
  type HttpConnectionOptions,
} from './definition.js';
import { ExchangeFailure, exchange } from './exchange.js';
import { abortCode } from './guard.js';
import { ConcurrencyLimit, RateLimit } from './limits.js';
import { expandPath, type PathParams } from './path.js';
import { reveal } from './secret.js';

export interface CallOptions {
  /** Values of the path's `:name` segments, each sent encoded as one segment. */
  params?: PathParams;
  json?: unknown;
  /** A raw body (with `headers['content-type']`), when not JSON. */
  body?: string;
  query?: Record<string, string | number | boolean | undefined>;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

export type { CallContext } from './connection.js';

/**
 * A failed call: the application answered with an error status, or could not be reached in time.
 * `retryable` tells the engine whether another attempt may succeed.
 */
export class HttpError extends Error {
  override readonly name = 'HttpError';
  readonly details: Record<string, Json>;
  constructor(
    message: string,
    readonly code: CallFailure['code'],
    readonly connection: string,
    /** The response status, or null when there was no response. */
    readonly status: number | null,
    readonly retryable: boolean,
    readonly bodyExcerpt: string | null,
    /** From a 429's or 503's Retry-After. */
    readonly retryAfterMs: number | null,
    details: Record<string, Json>,
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.details = details;
  }
}

const EXCERPT = 500;
/** Failures that leave no doubt the request was never sent: no connection was made. */
const NOT_SENT = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
]);

export class HttpConnection implements Connection {
  readonly type = 'http' as const;
  readonly [CONNECTION] = true;
  readonly target: string;
  private readonly pool: Pool;
  private readonly base: URL;
  /** The base URL's path, ending in `/`. */
  private readonly basePath: string;
  private readonly circuit: CircuitBreaker | null;
  private readonly limit: ConcurrencyLimit;
  private readonly rate: RateLimit | null;
  private token: { value: string; refreshAt: number } | null = null;
  private readonly watchers = new Set<(call: CallOutcome) => void>();
  private tokenRequest: Promise<string> | null = null;

  constructor(
    readonly id: string,
    readonly options: HttpConnectionOptions,
  ) {
    this.base = new URL(options.baseUrl.endsWith('/') ? options.baseUrl : `${options.baseUrl}/`);
    this.basePath = this.base.pathname;
    this.target = this.base.origin;
    const max = options.maxConcurrency ?? 64;
    this.pool = new Pool(this.base.origin, { connections: max, keepAliveTimeout: 10_000 });
    this.circuit = options.circuit === false ? null : new CircuitBreaker(options.circuit);
    this.limit = new ConcurrencyLimit(max);
    this.rate = options.ratePerSecond ? new RateLimit(options.ratePerSecond) : null;
  }

  /** Told of every call's outcome (status, or null without an answer) and duration; for metrics. */
  watch(listener: (call: CallOutcome) => void): () => void {
    this.watchers.add(listener);
    return () => this.watchers.delete(listener);
  }

  circuitState(now = Date.now()): CircuitState {
    return this.circuit?.state(now) ?? 'closed';
  }

  /** Makes one call; resolves to parsed JSON (by content type) or text. */
  async call<T = unknown>(
    context: CallContext,
    method: string,
    path: string,
    options: CallOptions = {},
  ): Promise<T> {
    const pass = this.circuit?.admit((context.now ?? Date.now)()) ?? null;
    if (typeof pass === 'number') throw new CircuitOpenError(this.id, pass);
    try {
      const signal = options.signal ? AbortSignal.any([context.signal, options.signal]) : context.signal;
      if (this.rate) await this.rate.wait(signal);
      const release = this.limit.tryAcquire() ?? (await this.limit.acquire(signal));
      try {
        return await this.send<T>(context, method.toUpperCase(), path, options, signal, false);
      } finally {
        release();
      }
    } finally {
      // However the call ended (an answer, a failure, an abort before or during the request), a
      // probe it was must not keep the circuit's probe slot.
      if (pass !== null) this.circuit!.release(pass);
    }
  }

  private async send<T>(
    context: CallContext,
    method: string,
    path: string,
    options: CallOptions,
    signal: AbortSignal,
    retried401: boolean,
  ): Promise<T> {
    // Path parameters: each value one encoded segment (./path.ts); the event names the template.
    let called = path;
    if (options.params !== undefined || path.includes('/:')) {
      called = expandPath(path, options.params);
      const record = context.record;
      if (record) context = { ...context, record: (data) => record({ ...data, template: path }) };
    }
    // String building rather than a URL per call: this is the hot path.
    let target = this.basePath + (called.startsWith('/') ? called.slice(1) : called);
    if (options.query) {
      const search = new URLSearchParams();
      for (const [key, value] of Object.entries(options.query))
        if (value !== undefined) search.set(key, String(value));
      const text = search.toString();
      if (text) target += (target.includes('?') ? '&' : '?') + text;
    }
    const shown = target;
    const headers: Record<string, string> =
      this.options.headers || options.headers ? { ...this.options.headers, ...options.headers } : {};
    headers['idempotency-key'] = context.idempotencyKey;
    headers.traceparent = context.traceparent;
    let body = options.body;
    if (options.json !== undefined) {
      body = JSON.stringify(options.json);
      headers['content-type'] ??= 'application/json';
    }
    // Only OAuth needs to wait (for a token); the other schemes add their header without a promise.
    target =
      this.options.auth?.type === 'oauth2-client-credentials'
        ? await this.authorise(headers, target)
        : this.authoriseNow(headers, target);
    const timeoutMs = this.options.timeout ?? 10_000;
    const started = performance.now();
    let status: number;
    let text: string;
    let contentType: string;
    let retryAfter: string | undefined;
    try {
      const response = await exchange(this.pool, { path: target, method, headers, body, timeoutMs, signal });
      status = response.status;
      text = response.body;
      contentType = response.contentType;
      retryAfter = response.retryAfter;
      this.finish(context, method, shown, body, started, status, response.bytes, undefined);
    } catch (thrown) {
      if (!(thrown instanceof ExchangeFailure)) {
        // The instance was cancelled or hit its own time limit: the event says which, by its code.
        this.finish(context, method, shown, body, started, null, 0, abortCode(signal));
        throw thrown;
      }
      const code: CallFailure['code'] = thrown.timedOut ? 'connection-timeout' : 'connection-failed';
      const reason = thrown.reason;
      // Refused, reset, unresolved name, timeout: the application may be back on the next attempt.
      const retryable = this.decide({ status: null, code }, true);
      this.finish(context, method, shown, body, started, null, 0, reason);
      const error = new HttpError(
        `${method} ${this.id}${shown} failed: ${reason}`,
        code,
        this.id,
        null,
        retryable,
        null,
        null,
        { connection: this.id, method, url: this.base.origin + shown, reason },
        { cause: thrown.cause },
      );
      throw this.failed(error, context);
    }
    if (status === 401 && this.options.auth?.type === 'oauth2-client-credentials' && !retried401) {
      this.token = null; // the token was revoked or expired early: fetch a new one, once
      return this.send<T>(context, method, path, options, signal, true);
    }
    if (status >= 400) {
      const retryAfterMs = parseRetryAfter(retryAfter);
      const byDefault = status >= 500 || status === 429 || status === 408;
      const retryable = this.decide({ status, code: 'http-error' }, byDefault);
      if (status < 500) this.circuit?.neutral();
      const excerpt = text.slice(0, EXCERPT);
      const error = new HttpError(
        `${method} ${this.id}${shown} answered ${status}: ${excerpt.slice(0, 200)}`,
        'http-error',
        this.id,
        status,
        retryable,
        excerpt,
        retryable && (status === 429 || status === 503) ? retryAfterMs : null,
        {
          connection: this.id,
          method,
          url: this.base.origin + shown,
          status,
          body: excerpt,
          ...(retryAfterMs === null ? {} : { retryAfterMs }),
        },
      );
      throw status >= 500 ? this.failed(error, context) : error;
    }
    this.circuit?.success();
    if (/[/+]json\b/i.test(contentType) && text !== '') return JSON.parse(text) as T;
    return text as T;
  }

  /** The call's activity event and its metrics. */
  private finish(
    context: CallContext,
    method: string,
    shown: string,
    body: string | undefined,
    started: number,
    status: number | null,
    bytesReceived: number,
    error: string | undefined,
  ): void {
    const durationMs = Math.round(performance.now() - started);
    if (context.record) {
      const event: Record<string, Json> = {
        connection: this.id,
        method,
        url: this.base.origin + shown,
        attempt: context.attempt,
        step: context.step ?? null,
        bytesSent: body === undefined ? 0 : Buffer.byteLength(body),
        durationMs,
        status,
      };
      if (error === undefined) event.bytesReceived = bytesReceived;
      else event.error = error;
      context.record(event);
    }
    const ok = status !== null && status < 400;
    for (const watch of this.watchers) watch({ ok, status, durationMs });
  }

  /**
   * Counts a failure against the circuit. When it opens the circuit (the last straw, or a failed
   * probe) and the request never reached the application (refused, unresolved, not connected), the
   * caller gets CircuitOpenError: the instance then waits for the next probe without using up an
   * attempt, since the application is down, not the handler wrong. A request that may have reached
   * it (a timeout, a 5xx) counts as the attempt it was, so that an application never sees one
   * step's request more often than its instance has attempts.
   */
  private failed(error: HttpError, context: CallContext): Error {
    if (!this.circuit || !error.retryable) return error;
    const now = (context.now ?? Date.now)();
    this.circuit.failure(now);
    if (this.circuit.state(now) !== 'open' || !NOT_SENT.has(String(error.details.reason))) return error;
    const open = new CircuitOpenError(this.id, this.circuit.reprobeMs);
    (open as { cause?: unknown }).cause = error;
    return open;
  }

  private decide(failure: CallFailure, byDefault: boolean): boolean {
    return this.options.retryOn?.(failure) ?? byDefault;
  }

  /** Adds an OAuth access token; returns the request target. */
  private async authorise(headers: Record<string, string>, target: string): Promise<string> {
    const auth = this.options.auth;
    if (auth?.type === 'oauth2-client-credentials')
      headers.authorization = `Bearer ${await this.accessToken(auth)}`;
    return target;
  }

  /** Adds static credentials to the headers (or the query); returns the request target. */
  private authoriseNow(headers: Record<string, string>, target: string): string {
    const auth = this.options.auth;
    if (!auth) return target;
    switch (auth.type) {
      case 'basic':
        headers.authorization = `Basic ${Buffer.from(`${reveal(auth.username)}:${reveal(auth.password)}`).toString('base64')}`;
        return target;
      case 'bearer':
        headers.authorization = `Bearer ${reveal(auth.token)}`;
        return target;
      case 'api-key':
        if (auth.in === 'header') {
          headers[auth.name.toLowerCase()] = reveal(auth.value);
          return target;
        }
        return `${target}${target.includes('?') ? '&' : '?'}${encodeURIComponent(auth.name)}=${encodeURIComponent(reveal(auth.value))}`;
      default:
        return target;
    }
  }

  /** A cached client-credentials token, refreshed before it expires; one request at a time. */
  private async accessToken(
    auth: Extract<ConnectionAuth, { type: 'oauth2-client-credentials' }>,
  ): Promise<string> {
    if (this.token && Date.now() < this.token.refreshAt) return this.token.value;
    this.tokenRequest ??= (async () => {
      try {
        const form = new URLSearchParams({
          grant_type: 'client_credentials',
          client_id: reveal(auth.clientId),
          client_secret: reveal(auth.clientSecret),
          ...(auth.scope ? { scope: auth.scope } : {}),
        });
        const response = await fetch(auth.tokenUrl, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
          body: form,
          signal: AbortSignal.timeout(this.options.timeout ?? 10_000),
        });
        const text = await response.text();
        if (!response.ok) {
          throw new HttpError(
            `Token endpoint of ${this.id} answered ${response.status}`,
            'http-error',
            this.id,
            response.status,
            response.status >= 500 || response.status === 429,
            text.slice(0, EXCERPT),
            null,
            {
              connection: this.id,
              url: new URL(auth.tokenUrl).origin + new URL(auth.tokenUrl).pathname,
              status: response.status,
            },
          );
        }
        const token = JSON.parse(text) as { access_token?: unknown; expires_in?: unknown };
        if (typeof token.access_token !== 'string')
          throw new TandemError('http-error', `Token endpoint of ${this.id} sent no access_token`);
        const lifetimeMs = (typeof token.expires_in === 'number' ? token.expires_in : 300) * 1000;
        // Refresh before expiry: at 80% of the lifetime, and at least 5 s early.
        this.token = {
          value: token.access_token,
          refreshAt: Date.now() + Math.min(lifetimeMs * 0.8, lifetimeMs - 5_000),
        };
        return token.access_token;
      } finally {
        this.tokenRequest = null;
      }
    })();
    return this.tokenRequest;
  }

  async close(): Promise<void> {
    await this.pool.close();
  }
}

function parseRetryAfter(value: string | undefined): number | null {
  if (value === undefined) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.round(seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, date - Date.now());
}

/**
 * Defines an HTTP connection to an application.
 *
 * @example
 * export const bank = httpConnection('bank', {
 *   baseUrl: 'https://bank.internal/api',
 *   auth: { type: 'bearer', token: secret('BANK_TOKEN') },
 *   timeout: 5_000,
 *   circuit: { failures: 5, reprobeMs: 30_000 },
 * });
 */
export function httpConnection(id: string, options: HttpConnectionOptions): HttpConnection {
  checkConnection(id, options);
  return new HttpConnection(id, options);
}

/** An HTTP connection of this or of another copy of Tandem (see {@link CONNECTION}). */
export function isHttpConnection(value: unknown): value is HttpConnection {
  return value instanceof HttpConnection || (isConnection(value) && value.type === 'http');
}
