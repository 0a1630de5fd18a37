/**
 * A stand-in for the business application an integration calls: a real HTTP server on 127.0.0.1,
 * so that a test goes through the same connection code (keep-alive pool, timeouts, failure
 * classification, circuit breaker, idempotency keys) as production does. Its answers are scripted
 * per route and per call, and it records what it received for the test to assert on.
 */
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { InvalidDefinitionError } from '../errors.js';

/** One answer of the fake application. */
export interface FakeAnswer {
  /** Default 200, or 204 without a body. */
  status?: number;
  /** A string is sent as text/plain, anything else as JSON. */
  body?: unknown;
  headers?: Record<string, string>;
  /** Real milliseconds to wait before answering (a slow application; timeouts are real time). */
  delayMs?: number;
}

/** What the fake application received. */
export interface FakeRequest {
  method: string;
  /** The path, without the query. */
  path: string;
  query: Record<string, string>;
  /** Header names in lower case. */
  headers: IncomingHttpHeaders;
  /** The `Idempotency-Key` a connection sends with every call (instance, step and call number). */
  idempotencyKey: string | undefined;
  /** The body: parsed JSON when it was sent as JSON, else text; undefined when empty. */
  body: unknown;
  /** The route pattern that matched (`'POST /reservations'`), or null (answered 404). */
  route: string | null;
  /** The route's `:name` parameters. */
  params: Record<string, string>;
}

/** A route's answer: a fixed one, or a function of the request. */
export type FakeRoute = FakeAnswer | ((request: FakeRequest) => FakeAnswer | Promise<FakeAnswer>);

export interface FakeApplicationOptions {
  /** Answers by `'METHOD /path'`, with `:name` segments for parameters: `'GET /stock/:sku'`. */
  routes?: Record<string, FakeRoute>;
  /** Port to listen on; default a free one. */
  port?: number;
}

export interface ScriptOptions {
  /** Only calls of this route (`'POST /reservations'`); default any call. */
  route?: string;
}

export interface FailOptions extends ScriptOptions {
  /** Default 503. */
  status?: number;
  /** Sends `Retry-After` with this many seconds. */
  retryAfter?: number;
  /** Default `{ error: 'scripted failure' }`. */
  body?: unknown;
}

/** A running fake application; `url` is the base URL for a connection. */
export interface FakeApplication {
  /** `http://127.0.0.1:<port>`: give it to `httpConnection(id, { baseUrl: app.url })`. */
  readonly url: string;
  readonly port: number;
  /** Every request received, oldest first (including the ones answered by a script or a 404). */
  readonly requests: readonly FakeRequest[];
  /** The requests a route received (`'POST /reservations'`). */
  received(route: string): FakeRequest[];
  /** How many requests were received, in all or by one route. */
  count(route?: string): number;
  /**
   * The Tandem callback URLs (`…/callbacks/<token>`, from `ctx.callback`) found in what was
   * received — in bodies, at any depth, in the query and in headers — oldest first; of one route's
   * requests when `route` is given.
   */
  callbackUrls(route?: string): string[];
  /**
   * The callback URL received last (of `route`, or any): what a partner would call back, for
   * `t.answerCallback(url, body)`. Throws when none was received.
   */
  callbackUrl(route?: string): string;
  /**
   * The next `times` calls (of `route`, or any) get this answer instead of the route's. Scripts
   * are used in the order they were added.
   */
  answerNext(times: number, answer: FakeRoute, options?: ScriptOptions): this;
  /** The next `times` calls fail: 503 by default, optionally with `Retry-After`. */
  failNext(times: number, options?: FailOptions): this;
  /** The next `times` calls are answered as usual, after `delayMs` real milliseconds. */
  slowNext(times: number, delayMs: number, options?: ScriptOptions): this;
  /** Closes the port and resets open connections, as a crashed application would: calls are refused. */
  down(): Promise<void>;
  /** Listens again on the same port. */
  up(): Promise<void>;
  /** Forgets the recorded requests and the scripts not yet used. */
  reset(): void;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

interface Script {
  remaining: number;
  route: Omit<CompiledRoute, 'answer'> | undefined;
  answer: FakeRoute | undefined;
  delayMs: number;
}

interface CompiledRoute {
  pattern: string;
  method: string;
  segments: string[];
  answer: FakeRoute;
}

/**
 * Starts a fake application: a real HTTP server on 127.0.0.1 with scripted answers that records
 * what it received.
 *
 * @example
 * const inventory = await fakeApplication({
 *   routes: {
 *     'GET /stock/:sku': ({ params }) => ({ body: { sku: params.sku, available: 7 } }),
 *     'POST /reservations': { status: 201, body: { reservationId: 'R-1' } },
 *   },
 * });
 * inventory.failNext(3, { route: 'POST /reservations' }); // 503 three times, then the route's answer
 * const connection = httpConnection('inventory', { baseUrl: inventory.url });
 * // … run the integration …
 * expect(inventory.count('POST /reservations')).toBe(4);
 * expect(new Set(inventory.received('POST /reservations').map((r) => r.idempotencyKey)).size).toBe(1);
 * await inventory.close();
 */
export async function fakeApplication(options: FakeApplicationOptions = {}): Promise<FakeApplication> {
  const routes = Object.entries(options.routes ?? {}).map(([pattern, answer]) => compile(pattern, answer));
  const requests: FakeRequest[] = [];
  let scripts: Script[] = [];

  const takeScript = (request: FakeRequest): Script | undefined => {
    const script = scripts.find(
      (s) => s.remaining > 0 && (s.route === undefined || matches(s.route, request.method, request.path)),
    );
    if (!script) return undefined;
    script.remaining--;
    scripts = scripts.filter((s) => s.remaining > 0);
    return script;
  };

  const handle = async (request: FakeRequest, response: ServerResponse) => {
    requests.push(request);
    const route = routes.find((r) => r.pattern === request.route);
    const script = takeScript(request);
    let answer: FakeAnswer;
    try {
      const chosen = script?.answer ?? route?.answer;
      answer =
        chosen === undefined
          ? { status: 404, body: { error: `no route ${request.method} ${request.path}` } }
          : typeof chosen === 'function'
            ? await chosen(request)
            : chosen;
    } catch (error) {
      answer = { status: 500, body: { error: error instanceof Error ? error.message : String(error) } };
    }
    const delayMs = (script?.delayMs ?? 0) + (answer?.delayMs ?? 0);
    if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
    send(response, answer ?? {});
  };

  const make = (): Server => {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const url = new URL(req.url ?? '/', 'http://fake');
        const method = req.method ?? 'GET';
        const match = matchRoute(routes, method, url.pathname);
        const text = Buffer.concat(chunks).toString();
        const key = req.headers['idempotency-key'];
        const request: FakeRequest = {
          method,
          path: url.pathname,
          query: Object.fromEntries(url.searchParams),
          headers: req.headers,
          idempotencyKey: Array.isArray(key) ? key[0] : key,
          body: parseBody(text, req.headers['content-type']),
          route: match?.route.pattern ?? null,
          params: match?.params ?? {},
        };
        handle(request, res).catch(() => {
          if (!res.headersSent) res.writeHead(500).end();
        });
      });
    });
    // Longer than the connections' keep-alive, so that a pooled socket is never closed under a call.
    server.keepAliveTimeout = 60_000;
    return server;
  };

  let server: Server | null = make();
  await listen(server, options.port ?? 0);
  const port = (server.address() as AddressInfo).port;
  const closeServer = async () => {
    const current = server;
    server = null;
    if (!current) return;
    const closed = new Promise<void>((resolve) => current.close(() => resolve()));
    current.closeAllConnections();
    await closed;
  };

  const app: FakeApplication = {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    received(route) {
      const compiled = compilePattern(route);
      return requests.filter((r) => matches(compiled, r.method, r.path));
    },
    count: (route) => (route === undefined ? requests.length : app.received(route).length),
    callbackUrls: (route) =>
      (route === undefined ? requests : app.received(route)).flatMap((r) => [
        ...callbackUrlsIn(r.body),
        ...callbackUrlsIn(r.query),
        ...callbackUrlsIn(r.headers),
      ]),
    callbackUrl(route) {
      const found = app.callbackUrls(route);
      if (found.length === 0) {
        throw new InvalidDefinitionError(
          `The application received no callback URL${route === undefined ? '' : ` in ${route}`}: has the integration handed one out yet?`,
        );
      }
      return found[found.length - 1]!;
    },
    answerNext(times, answer, scriptOptions = {}) {
      scripts.push(script(times, answer, 0, scriptOptions.route));
      return app;
    },
    failNext(times, failOptions = {}) {
      const headers: Record<string, string> = {};
      if (failOptions.retryAfter !== undefined) headers['retry-after'] = String(failOptions.retryAfter);
      const answer: FakeAnswer = {
        status: failOptions.status ?? 503,
        body: failOptions.body ?? { error: 'scripted failure' },
        headers,
      };
      scripts.push(script(times, answer, 0, failOptions.route));
      return app;
    },
    slowNext(times, delayMs, scriptOptions = {}) {
      scripts.push(script(times, undefined, delayMs, scriptOptions.route));
      return app;
    },
    down: closeServer,
    async up() {
      if (server) return;
      const next = make();
      await listen(next, port);
      server = next;
    },
    reset() {
      requests.length = 0;
      scripts = [];
    },
    close: closeServer,
    [Symbol.asyncDispose]: closeServer,
  };
  return app;
}

function script(times: number, answer: FakeRoute | undefined, delayMs: number, route?: string): Script {
  if (!Number.isInteger(times) || times < 1) {
    throw new InvalidDefinitionError(`A script needs a whole number of calls of at least 1, not ${times}`);
  }
  return {
    remaining: times,
    route: route === undefined ? undefined : compilePattern(route),
    answer,
    delayMs,
  };
}

function compilePattern(pattern: string): Omit<CompiledRoute, 'answer'> {
  const match = /^([A-Za-z]+) +(\/\S*)$/.exec(pattern.trim());
  if (!match) {
    throw new InvalidDefinitionError(
      `Fake route ${JSON.stringify(pattern)} must look like "GET /stock/:sku" or "POST /reservations"`,
    );
  }
  const method = match[1]!.toUpperCase();
  const path = match[2]!;
  return { pattern: `${method} ${path}`, method, segments: path.split('/') };
}

function compile(pattern: string, answer: FakeRoute): CompiledRoute {
  return { ...compilePattern(pattern), answer };
}

/** The route's parameters when a request matches it, else null. */
function matches(
  route: Omit<CompiledRoute, 'answer'>,
  method: string,
  path: string,
): Record<string, string> | null {
  const got = path.split('/');
  if (route.method !== method || route.segments.length !== got.length) return null;
  const params: Record<string, string> = {};
  for (const [i, segment] of route.segments.entries()) {
    const value = got[i]!;
    if (!segment.startsWith(':')) {
      if (segment !== value) return null;
      continue;
    }
    if (value === '') return null;
    try {
      params[segment.slice(1)] = decodeURIComponent(value);
    } catch {
      params[segment.slice(1)] = value;
    }
  }
  return params;
}

function matchRoute(
  routes: CompiledRoute[],
  method: string,
  path: string,
): { route: CompiledRoute; params: Record<string, string> } | null {
  for (const route of routes) {
    const params = matches(route, method, path);
    if (params) return { route, params };
  }
  return null;
}

/** A callback URL as `ctx.callback` makes it: `<publicUrl>/callbacks/<id>.<secret>`. */
const CALLBACK_URL = /https?:\/\/[^\s"'<>]*\/callbacks\/[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+/g;

/** Every callback URL in a value (strings, at any depth of arrays and objects), in order. */
function callbackUrlsIn(value: unknown): string[] {
  if (typeof value === 'string') return [...value.matchAll(CALLBACK_URL)].map((m) => m[0]);
  if (value === null || typeof value !== 'object') return [];
  return Object.values(value).flatMap(callbackUrlsIn);
}

/** A body as JSON when its content type says JSON and it parses, else as the text it is. */
export function parseBody(text: string, contentType: string | undefined): unknown {
  if (text === '') return undefined;
  if (contentType && /[/+]json\b/i.test(contentType)) {
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
  return text;
}

function send(response: ServerResponse, answer: FakeAnswer): void {
  const headers: Record<string, string> = { ...answer.headers };
  const has = (name: string) => Object.keys(headers).some((h) => h.toLowerCase() === name);
  let payload: string | undefined;
  if (typeof answer.body === 'string') {
    payload = answer.body;
    if (!has('content-type')) headers['content-type'] = 'text/plain; charset=utf-8';
  } else if (answer.body !== undefined) {
    payload = JSON.stringify(answer.body);
    if (!has('content-type')) headers['content-type'] = 'application/json';
  }
  response.writeHead(answer.status ?? (payload === undefined ? 204 : 200), headers).end(payload);
}

function listen(server: Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
}
