/**
 * The test kit's engine: Tandem's real engine on a real store (a temporary SQLite file, or a fresh
 * PostgreSQL schema) with a manual clock. A test triggers work, moves time to the next retry, cron
 * slot or wake-up with `advance()` instead of waiting for it, plays the events and partner
 * callbacks that resume waiting instances, and reads back what happened — so what it proves is the
 * behaviour production has, in milliseconds.
 */

import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import pino, { type Logger } from 'pino';
import type { Connection } from '../connections/connection.js';
import type { ServerOptions } from '../define/config.js';
import type { AnyIntegration } from '../define/integration.js';
import { parseRoute } from '../define/route.js';
import {
  type Accepted,
  createEngine,
  type Engine,
  type SendEvent,
  type SentEvent,
} from '../engine/engine.js';
import { SyncRunner } from '../engine/sync.js';
import { InvalidDefinitionError, InvalidInputError, TandemError, WrongModeError } from '../errors.js';
import { DUE, NEVER } from '../lifecycle/index.js';
import type { ActivityEvent, ErrorInfo, Instance, InstanceStatus, Json, Run, Step, Wait } from '../model.js';
import { buildApp } from '../server/app.js';
import { openStore } from '../store/open.js';
import { dropSchema } from '../store/postgres/drop-schema.js';
import { PostgresStore } from '../store/postgres/store.js';
import { SqliteStore } from '../store/sqlite/store.js';
import type { Store } from '../store/store.js';
import { ManualClock, toTime } from './clock.js';
import { parseBody } from './fake-application.js';

export interface TestEngineOptions {
  /** The integrations under test (and the ones they start). */
  integrations: AnyIntegration[];
  /** The connections they call, usually pointed at {@link fakeApplication}s. */
  connections?: Connection[];
  /**
   * Default: a SQLite file in a temporary directory, removed by `close()`. A `postgres://` URL: a
   * fresh schema on that server, dropped by `close()` (unless the URL names one with `?schema=`).
   * A `sqlite:./file.db` URL: that file, kept.
   */
  store?: string;
  /** Where the clock starts: a Date, an ISO string or ms since epoch. Default: the real time now. */
  now?: Date | string | number;
  /** Default: pino at `TANDEM_LOG_LEVEL`, else `warn`. */
  logger?: Logger;
  /**
   * Most attempts one `runUntilIdle()` runs before it gives up: an instance that comes due again
   * at once (a `RetryAfterError` of 0 ms) would otherwise keep it busy for ever. Default 10,000.
   */
  maxAttempts?: number;
  /** Server settings for `call()` (body limit, deadline cap …), as in the config's `server`. */
  server?: ServerOptions;
  /** The base of the callback URLs handlers hand out (`ctx.callback`). Default `http://localhost:3000`. */
  publicUrl?: string;
  /** Events for `ctx.waitForEvent`: the look-back window (`lookBackMs`), as in the config. Default 1 h. */
  events?: { lookBackMs?: number };
}

/** What `call()` sends to an integration's route. */
export interface TestRequest {
  /** Values of the route's `:name` segments. */
  params?: Record<string, string | number | boolean>;
  query?: Record<string, string | number | boolean | undefined>;
  /** Sent as JSON (a string with a `content-type` header is sent as it is). */
  body?: unknown;
  headers?: Record<string, string>;
}

/** The HTTP answer `call()` received. */
export interface TestResponse {
  status: number;
  /** Header names in lower case. */
  headers: Record<string, string>;
  /** Parsed JSON (also a problem document), text, or undefined for an empty body. */
  body: unknown;
  /** The instance: a sync call's `Tandem-Instance-Id`, or an accepted async instance's id. */
  instanceId: string | undefined;
}

/** A call an instance made through a connection (its `connection.call` activity event). */
export interface ConnectionCallRecord {
  connection: string;
  method: string;
  url: string;
  attempt: number;
  /** Null when no answer came (refused, reset, timed out). */
  status: number | null;
  durationMs: number;
  /** Why no answer came. */
  error?: string;
  [key: string]: Json | undefined;
}

/** Everything stored about an instance, read back after a run. */
export interface TestResult {
  instance: Instance;
  status: InstanceStatus;
  output: Json | null;
  error: ErrorInfo | null;
  runs: Run[];
  /** The steps of every run, in the order the handler reached them. */
  steps: Step[];
  /** Its connection calls, oldest first. */
  calls: ConnectionCallRecord[];
  /** Its activity events, oldest first. */
  events: ActivityEvent[];
  /** The instances it started (`ctx.start`, `ctx.startMany`, a sync hand-off), oldest first. */
  children: Instance[];
  /** Its durable waits (`ctx.sleep`, `ctx.waitForEvent`, `ctx.callback`) of every run, oldest first. */
  waits: Wait[];
}

export interface TriggerOptions {
  idempotencyKey?: string;
}

const DEFAULT_MAX_ATTEMPTS = 10_000;

/**
 * The real engine on a temporary store, with a clock that moves only when the test says so. Made by
 * {@link createTestEngine}; `close()` stops it and removes the store.
 */
export class TestEngine {
  /** The engine itself, for anything the kit does not wrap (schedules, rerun, cancel …). */
  readonly engine: Engine;
  readonly store: Store;
  /** The manual clock the engine runs on. */
  readonly clock: ManualClock;
  private readonly runner: SyncRunner;
  private app: Promise<FastifyInstance> | null = null;
  private onStarted: (() => void) | null = null;
  private closed: Promise<void> | null = null;

  /** @internal Use {@link createTestEngine}. */
  constructor(
    engine: Engine,
    store: Store,
    clock: ManualClock,
    private readonly options: TestEngineOptions,
    private readonly cleanup: () => Promise<void>,
  ) {
    this.engine = engine;
    this.store = store;
    this.clock = clock;
    const cap = options.server?.maxDeadlineMs;
    this.runner = new SyncRunner(engine, cap === undefined ? {} : { maxDeadlineMs: cap });
    engine.observe({ started: () => this.onStarted?.() });
  }

  /** The engine's time now. */
  now(): Date {
    return new Date(this.clock.now());
  }

  /**
   * Starts an async integration with `input`, or runs a scheduled one now with `input` as its
   * parameter overrides (as `tandem run` and the API's run-now do). Resolves once the instance is
   * stored; `runUntilIdle()` or `advance()` then runs it.
   *
   * @example
   * const { instanceId } = await t.trigger(fulfilOrder, { orderId: 'A-1', sku: 'KB-42', qty: 1 });
   * await t.runUntilIdle();
   * expect((await t.result(instanceId)).status).toBe('succeeded');
   */
  async trigger(
    integration: AnyIntegration | string,
    input?: unknown,
    options: TriggerOptions = {},
  ): Promise<Accepted> {
    const definition = this.definition(integration);
    const keyed = options.idempotencyKey === undefined ? {} : { idempotencyKey: options.idempotencyKey };
    if (definition.mode === 'sync') {
      throw new WrongModeError(definition.id, 'sync', 'be triggered: send it a request with call()');
    }
    if (definition.mode === 'scheduled') {
      const parameters = (input ?? {}) as Record<string, unknown>;
      return this.engine.runNow(definition.id, { parameters, ...keyed });
    }
    return this.engine.accept(definition, input, keyed);
  }

  /**
   * Sends a request to an integration's route through Tandem's HTTP app (without a port): the same
   * validation, authentication, hand-off and error answers as a client gets. A sync handler runs
   * inline; an async route answers 202 once the instance is stored.
   *
   * @example
   * const answer = await t.call(checkBalance, { params: { account: 'A-1' } });
   * expect(answer.status).toBe(200);
   * expect(answer.body).toEqual({ balance: 12.5, currency: 'EUR' });
   */
  async call(integration: AnyIntegration | string, request: TestRequest = {}): Promise<TestResponse> {
    const definition = this.definition(integration);
    if (definition.route === undefined) {
      throw new InvalidDefinitionError(
        `Integration "${definition.id}" has no route: call() sends a request to an integration's route`,
      );
    }
    const route = parseRoute(definition.route);
    const path = route.path.replace(/:([A-Za-z_][A-Za-z0-9_]*)/g, (_, name: string) => {
      const value = request.params?.[name];
      if (value === undefined) {
        throw new InvalidInputError([
          { in: 'params', path: name, message: `is needed for the route ${definition.route}` },
        ]);
      }
      return encodeURIComponent(String(value));
    });
    const search = new URLSearchParams();
    for (const [key, value] of Object.entries(request.query ?? {})) {
      if (value !== undefined) search.set(key, String(value));
    }
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(request.headers ?? {})) headers[name.toLowerCase()] = value;
    let payload: string | undefined;
    if (typeof request.body === 'string' && headers['content-type'] !== undefined) payload = request.body;
    else if (request.body !== undefined) {
      payload = JSON.stringify(request.body);
      headers['content-type'] ??= 'application/json';
    }
    const app = await this.http();
    const query = search.toString();
    const response = await app.inject({
      method: route.method,
      url: query === '' ? path : `${path}?${query}`,
      headers,
      ...(payload === undefined ? {} : { payload }),
    });
    const answerHeaders: Record<string, string> = {};
    for (const [name, value] of Object.entries(response.headers)) {
      if (value !== undefined) answerHeaders[name] = Array.isArray(value) ? value.join(', ') : String(value);
    }
    const body = parseBody(response.body, answerHeaders['content-type']);
    const accepted =
      response.statusCode === 202 && typeof body === 'object' && body !== null
        ? (body as { instanceId?: unknown }).instanceId
        : undefined;
    return {
      status: response.statusCode,
      headers: answerHeaders,
      body,
      instanceId:
        answerHeaders['tandem-instance-id'] ?? (typeof accepted === 'string' ? accepted : undefined),
    };
  }

  /**
   * Everything stored about an instance: status, output or error, runs, steps, waits, connection
   * calls, activity events, and the instances it started.
   *
   * @example
   * const result = await t.result(instanceId);
   * expect(result.steps.map((s) => s.name)).toEqual(['create-account', 'update-inventory']);
   * expect(result.calls.filter((c) => c.status === 503)).toHaveLength(2);
   */
  async result(instanceId: string): Promise<TestResult> {
    // Sync instances are recorded off the response path: write what is waiting first.
    await this.runner.flush();
    const detail = await this.engine.getDetail(instanceId);
    const children: Instance[] = [];
    let cursor: string | null = null;
    do {
      const page = await this.engine.listInstances({ parentId: instanceId, limit: 500, cursor });
      children.push(...page.items);
      cursor = page.nextCursor;
    } while (cursor !== null);
    children.sort((a, b) => a.seq - b.seq);
    const events = [...detail.events].sort((a, b) => a.id - b.id);
    return {
      ...detail,
      events,
      status: detail.instance.status,
      output: detail.instance.output,
      error: detail.instance.error,
      calls: events
        .filter((event) => event.type === 'connection.call')
        .map((event) => event.data as ConnectionCallRecord),
      children,
    };
  }

  /**
   * Runs everything due at the clock's current time — including what that work starts or makes
   * due — and resolves when no attempt runs and nothing more is due now. The clock does not move:
   * a retry scheduled for later stays waiting (see `advance()`).
   */
  async runUntilIdle(): Promise<void> {
    const limit = this.options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
    const controller = new AbortController();
    let started = 0;
    this.onStarted = () => {
      if (++started <= limit) return;
      controller.abort(
        new TandemError(
          'invalid-state',
          `More than ${limit} attempts ran at ${this.now().toISOString()} without the engine becoming idle: ` +
            'an instance keeps coming due at once (a RetryAfterError of 0 ms?)',
        ),
      );
    };
    try {
      await this.engine.settled(controller.signal);
    } finally {
      this.onStarted = null;
    }
  }

  /**
   * Moves the clock forward by `ms`, stopping at every moment something comes due on the way — a
   * retry, a backoff, a cron slot, a fan-out's check on its children — and running it there, in
   * order, as if the time had passed. Resolves at the new time with everything due run.
   *
   * @example
   * await t.trigger(fulfilOrder, order); // the inventory answers 503 …
   * await t.advance(10 * 60_000);         // … every retry of the next ten minutes happens now
   */
  async advance(ms: number): Promise<void> {
    if (!Number.isFinite(ms) || ms < 0) {
      throw new TandemError('invalid-input', `advance() takes a duration of 0 ms or more, not ${ms}`);
    }
    await this.advanceTo(this.clock.now() + ms);
  }

  /**
   * Moves the clock forward to a time, as {@link advance} does.
   *
   * @example
   * await t.advanceTo('2026-11-25T02:00:00+01:00'); // the nightly run at 02:00 Berlin time fires
   */
  async advanceTo(time: Date | string | number): Promise<void> {
    const target = toTime(time, 'advanceTo()');
    if (target < this.clock.now()) {
      throw new TandemError(
        'invalid-input',
        `advanceTo() cannot go back from ${this.now().toISOString()} to ${new Date(target).toISOString()}`,
      );
    }
    await this.runUntilIdle();
    for (;;) {
      const next = await this.nextEventAt();
      if (next === null || next > target) break;
      await this.moveTo(next);
    }
    if (this.clock.now() < target) await this.moveTo(target);
  }

  /**
   * Sends a business event, as `POST /api/events` does, and runs what it resumed until the engine
   * is idle. Resolves to the event's id, whether it was a duplicate, and the instances it resumed.
   *
   * @example
   * await t.sendEvent({ name: 'employee.created', payload: { employeeId: 'E-7' }, id: 'hr-4711' });
   * expect((await t.result(documentId)).status).toBe('succeeded');
   */
  async sendEvent(event: SendEvent): Promise<SentEvent> {
    const sent = await this.engine.sendEvent(event);
    await this.runUntilIdle();
    return sent;
  }

  /**
   * Answers a callback as the partner application would `POST` to its URL: `url` is the URL the
   * handler handed out (the whole URL, as a fake application received it, or its last segment).
   * Resumes the waiting instance with `body` and runs it until the engine is idle. Rejects as the
   * HTTP endpoint answers: `callback-not-found` (404), `callback-used` (409: answered before),
   * `callback-expired` (410: its timeout passed, or its instance was cancelled or rerun).
   *
   * @example
   * const url = warehouse.callbackUrl(); // the last one the fake warehouse received
   * await t.answerCallback(url, { trackingNumber: 'TRK-1' });
   */
  async answerCallback(url: string, body: Json = null): Promise<{ instanceId: string }> {
    const resumed = await this.engine.answerCallback(callbackToken(url), body);
    await this.runUntilIdle();
    return resumed;
  }

  /** Stops the engine and removes the temporary store. Safe to call twice. */
  close(): Promise<void> {
    this.closed ??= (async () => {
      try {
        if (this.app) await (await this.app).close();
        await this.engine.stop(1_000);
        await this.runner.flush();
        await this.store.close();
      } finally {
        await this.cleanup();
      }
    })();
    return this.closed;
  }

  /** For `await using t = await createTestEngine(…)`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  private async moveTo(time: number): Promise<void> {
    this.clock.set(time);
    await this.engine.fireDueSlots();
    await this.runUntilIdle();
  }

  /**
   * The next moment after now at which something comes due: an instance's `runAt` (a retry, a
   * backoff, a wait for children, a sleep's end or a wait's timeout), an expired lease, or a cron
   * slot; null when nothing will. A wait without a timeout (`runAt` = NEVER) waits for an event or a
   * callback, not for a time: it is no moment to step to.
   */
  private async nextEventAt(): Promise<number | null> {
    const now = this.clock.now();
    let next: number | null = null;
    const consider = (time: number | null | undefined) => {
      if (typeof time === 'number' && time > now && time < NEVER && (next === null || time < next))
        next = time;
    };
    const integrations = this.engine.listIntegrations();
    const runnable = integrations.filter((i) => i.mode !== 'sync').map((i) => i.id);
    const due = await this.store.nextDueAt(runnable);
    if (due !== null && due > now) consider(due);
    else if (due !== null) {
      // Due now but held back (an ordering key waits for an earlier instance): look at each waiting one.
      let cursor: string | null = null;
      do {
        const page = await this.engine.listInstances({
          status: [...DUE],
          integrationId: runnable,
          limit: 500,
          cursor,
        });
        for (const instance of page.items) consider(instance.runAt);
        cursor = page.nextCursor;
      } while (cursor !== null);
    }
    for (const integration of integrations) {
      if (integration.mode === 'scheduled')
        consider((await this.engine.getSchedule(integration.id)).nextSlotAt);
    }
    return next;
  }

  private definition(integration: AnyIntegration | string): AnyIntegration {
    const id = typeof integration === 'string' ? integration : integration?.id;
    return this.engine.integration(id);
  }

  private http(): Promise<FastifyInstance> {
    this.app ??= (async () => {
      const app = await buildApp({
        ...this.options.server,
        engine: this.engine,
        runner: this.runner,
        // /api is not what the kit tests; a token keeps it closed and the start-up warning away.
        adminToken: this.options.server?.adminToken ?? randomBytes(16).toString('hex'),
      });
      await app.ready();
      return app;
    })();
    return this.app;
  }
}

/**
 * Creates the real engine on a temporary store with a manual clock, and starts it. Close it after
 * the test (`await t.close()`, or `await using t = …`).
 *
 * @example
 * const inventory = await fakeApplication({ routes: { 'POST /reservations': { status: 201, body: {} } } });
 * const t = await createTestEngine({
 *   integrations: [reserveStock],
 *   connections: [httpConnection('inventory', { baseUrl: inventory.url })],
 *   now: '2026-11-24T09:00:00Z',
 * });
 * const { instanceId } = await t.trigger(reserveStock, { sku: 'KB-42', qty: 1 });
 * await t.runUntilIdle();
 * expect((await t.result(instanceId)).status).toBe('succeeded');
 * await t.close();
 */
export async function createTestEngine(options: TestEngineOptions): Promise<TestEngine> {
  const clock = new ManualClock(options.now === undefined ? Date.now() : toTime(options.now, 'now'));
  const logger = options.logger ?? pino({ level: process.env.TANDEM_LOG_LEVEL ?? 'warn' });
  const { store, cleanup } = await temporaryStore(options.store, logger);
  let engine: Engine;
  try {
    engine = await createEngine({
      integrations: options.integrations,
      connections: options.connections ?? [],
      store,
      clock,
      logger,
      // Nothing is purged behind the test's back when it moves the clock by weeks.
      retention: false,
      ...(options.publicUrl === undefined ? {} : { publicUrl: options.publicUrl }),
      ...(options.events === undefined ? {} : { events: options.events }),
    });
  } catch (error) {
    await store.close();
    await cleanup();
    throw error;
  }
  engine.start();
  return new TestEngine(engine, store, clock, options, cleanup);
}

/** The token of a callback URL: its last path segment (`…/callbacks/<token>`), or the token itself. */
function callbackToken(url: string): string {
  if (typeof url !== 'string')
    throw new TandemError('invalid-input', `answerCallback() takes the callback URL, not ${typeof url}`);
  const path = /^[a-z][a-z0-9+.-]*:\/\//i.test(url) ? new URL(url).pathname : url;
  const match = /(?:^|\/callbacks\/)([^/?#]+)$/.exec(path);
  if (!match)
    throw new TandemError(
      'invalid-input',
      `answerCallback() takes a callback URL as a handler handed it out (…/callbacks/<token>), not ${JSON.stringify(url)}`,
    );
  return match[1]!;
}

async function temporaryStore(
  url: string | undefined,
  logger: Logger,
): Promise<{ store: Store; cleanup: () => Promise<void> }> {
  if (url === undefined) {
    const dir = mkdtempSync(join(tmpdir(), 'tandem-test-'));
    const store = new SqliteStore({ path: join(dir, 'tandem.db') });
    return { store, cleanup: async () => rmSync(dir, { recursive: true, force: true }) };
  }
  if (!/^postgres(ql)?:\/\//.test(url) || new URL(url).searchParams.has('schema')) {
    return { store: await openStore(url), cleanup: async () => {} };
  }
  // A schema of its own: tests running side by side on one server do not see each other's work.
  const schema = `tandem_test_${randomBytes(6).toString('hex')}`;
  const store = await PostgresStore.open({
    url,
    schema,
    onError: (error) => logger.warn({ err: error }, 'postgres'),
  });
  return {
    store,
    cleanup: () => dropSchema(url, schema),
  };
}
