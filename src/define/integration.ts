/**
 * Defining an integration: the types a handler is written against (each mode's definition and
 * context) and `defineIntegration()`, which checks every option so that a mistake fails at start.
 * Definitions and contexts name each other (a definition's handler takes a context; a context
 * starts integrations), so they stay together; who may call a trigger is in trigger-auth.ts.
 */
import { z } from 'zod';
import type { Call, Use } from '../connections/caller.js';
import { InvalidDefinitionError } from '../errors.js';
import type { ChildCounts, Json } from '../model.js';
import type { Duration } from './duration.js';

export type { ChildCounts, Duration };

import { redactedTrackPath } from '../redaction.js';
import type { RecordReport } from '../sources/report.js';
import type { RecordSource } from '../sources/source.js';
import { checkOptions, fn, nonEmptyText, oneOf, options, text, timerMs, zodSchema } from './options.js';
import { checkParameterDefaults, type Parameters } from './parameters.js';
import { type RetryPolicy, retryPolicySchema } from './retry.js';
import { parseRoute } from './route.js';
import { checkSchedule } from './schedule.js';
import { type TriggerAuth, triggerAuth } from './trigger-auth.js';

/** Any zod schema; the handler's input type is inferred from it. */
export type InputSchema = z.ZodType;
type InputOf<S> = S extends z.ZodType ? z.output<S> : unknown;
/** Path parameters of a sync route: from the `params` schema, else strings by name. */
type ParamsOf<P> = P extends z.ZodType ? z.output<P> : Record<string, string>;
/** Query of a sync route: from the `query` schema, else as parsed (strings, or arrays of repeated keys). */
type QueryOf<Q> = Q extends z.ZodType ? z.output<Q> : Record<string, unknown>;

/** A field path in the input (`"orderId"`, `"customer.email"`) or a function of the input. */
export type FieldSelector<I> = string | ((input: I) => string | number | null | undefined);

export interface StartOptions {
  /** Deduplicates the start: the same key for the same integration returns the first instance. */
  idempotencyKey?: string;
}

export interface StartManyOptions {
  /** Children are committed in transactions of this many. Default 1,000. */
  chunkSize?: number;
}

export interface StartedInstance {
  instanceId: string;
  /** False when an earlier start with the same key (or the same call on an earlier attempt) created it. */
  created: boolean;
}

/** Starting other integrations from a handler. */
export interface Starter {
  start<T extends AnyIntegration>(
    integration: T | string,
    input: IntegrationInput<T>,
    options?: StartOptions,
  ): Promise<StartedInstance>;
  startMany<T extends AnyIntegration>(
    integration: T | string,
    inputs: StartManyInputs<T>,
    options?: StartManyOptions,
  ): Promise<{ count: number; created: number }>;
}

/** How an async or scheduled handler fans out (`ctx.startMany`). */
export interface FanOutOptions extends StartManyOptions {
  /**
   * `'children'`: after starting them, wait until every child of this instance is in a final state
   * (the instance waits in `retrying` without using attempts, and shows progress). Default `'none'`.
   */
  await?: 'children' | 'none';
  /** How often a waiting parent looks at its children's counts, in ms. Default 1 s. */
  checkEveryMs?: number;
}

/** What `ctx.startMany` of an async or scheduled handler reports. */
export interface FanOutResult {
  /** Inputs handed to startMany (records the source found invalid are not among them). */
  count: number;
  /** Children created by this call (fewer than count when an earlier attempt created some). */
  created: number;
  /** The record source's report of invalid records, when the inputs came from one. */
  invalid?: RecordReport;
  /** With `await: 'children'`: the children's final counts. */
  children?: ChildCounts;
}

/** What every handler receives. */
interface BaseContext<I> extends Starter {
  instanceId: string;
  integrationId: string;
  input: I;
  /** Fires when the attempt times out (async), the deadline passes (sync) or the instance is cancelled. */
  signal: AbortSignal;
  /**
   * Calls an application through a connection (an object or its id); resolves to parsed JSON or
   * text, or throws an `HttpError` that says whether a retry may help.
   *
   * @example
   * const balance = await ctx.call<{ amount: number }>(bank, 'GET', `/accounts/${ctx.input.account}`);
   */
  call: Call;
  /**
   * The client of a non-HTTP connection (SFTP, SQL, e-mail), whose operations are limited,
   * recorded and keyed like `ctx.call`'s calls.
   *
   * @example
   * await ctx.step('archive', () => ctx.use(partnerFiles).put(`/in/${ctx.input.id}.json`, body));
   */
  use: Use;
}

/** The context of an async or scheduled handler. */
export interface AsyncContext<I> extends BaseContext<I> {
  run: number;
  attempt: number;
  /**
   * A durable unit of work. Its JSON result is stored; later attempts of the same run (and reruns
   * from the failed step) return the stored result without executing `fn` again. A `fn` that
   * declares a parameter receives the attempt's signal (`ctx.signal`) in it.
   *
   * @example
   * const account = await ctx.step('create-account', () => crm.createAccount(ctx.input.customer));
   */
  step<T>(name: string, fn: (signal: AbortSignal) => T | Promise<T>): Promise<T>;
  /**
   * Starts one child per input, committed in chunks, as one durable step: a later attempt does not
   * read the inputs again. Records a {@link RecordSource} found invalid are reported, not started.
   *
   * @example
   * const orders = csvSource('./inbox/orders-*.csv', { schema: Order });
   * const result = await ctx.startMany(postOrder, orders, { chunkSize: 1_000, await: 'children' });
   */
  startMany<T extends AnyIntegration>(
    integration: T | string,
    inputs: StartManyInputs<T>,
    options?: FanOutOptions,
  ): Promise<FanOutResult>;
  /** Records a `progress` activity event (e.g. `{ done: 40, total: 100 }`) for monitors and the CLI. */
  progress(data: Record<string, Json>): void;
  /**
   * Waits durably, memoised like a step under `name`: for a duration (`"30m"`, `"2d"`, or ms) or
   * until a time (a Date). The instance leaves the worker (status `waiting`, no lease, no slot)
   * and wakes at that time on any process, after restarts.
   *
   * @example
   * await ctx.sleep('recheck-payment', '30m');
   */
  sleep(name: string, duration: Duration | Date): Promise<void>;
  /**
   * Waits durably for a business event (`POST /api/events`, `engine.sendEvent`) named `event` whose
   * payload has the fields of `match`; resolves to its payload, or `null` when `timeout` passes
   * first. An event received within the look-back window before the wait began counts too, so an
   * event sent just before the wait is not missed. See docs/semantics.md, "Waits".
   *
   * @example
   * const employee = await ctx.waitForEvent('employee-created', {
   *   event: 'employee.created', match: { employeeId: ctx.input.employeeId }, timeout: '2d',
   * });
   */
  waitForEvent<T = Json>(name: string, options: WaitForEventOptions): Promise<T | null>;
  /**
   * A callback for a partner application: a single-use URL to hand out in a step, and `wait()`,
   * which waits durably for the partner's `POST` to it and resolves to its JSON body (`null` once
   * `timeout` passes). The URL's token is the credential; only its hash is stored.
   *
   * @example
   * const shipped = await ctx.callback('shipment', { timeout: '3d' });
   * await ctx.step('send-to-warehouse', () => ctx.call(warehouse, 'POST', '/packing-lists', {
   *   body: { orderId: ctx.input.orderId, callbackUrl: shipped.url } }));
   * const confirmation = await shipped.wait();
   */
  callback<T = Json>(name: string, options?: CallbackOptions): Promise<Callback<T>>;
}

export interface WaitForEventOptions {
  /** The event name to wait for (`employee.created`). */
  event: string;
  /** Top-level payload fields and the values they must equal. Default: any event of the name. */
  match?: Record<string, Json>;
  /** How long to wait; then the wait resolves to `null`. Default: no timeout. */
  timeout?: Duration;
}

export interface CallbackOptions {
  /** How long the partner has; then `wait()` resolves to `null` and the URL answers 410. Default: no timeout. */
  timeout?: Duration;
}

/** A callback URL of a waiting instance (see {@link AsyncContext.callback}). */
export interface Callback<T> {
  /** Single-use URL for the partner to `POST` its answer to. Each attempt gets a URL of its own; any of them resumes the wait, once. */
  readonly url: string;
  /** Waits for the partner's call: its JSON body, or `null` after the timeout. */
  wait(): Promise<T | null>;
}

/** The input of a scheduled instance: which slot fired it and the run-now parameter overrides. */
export interface ScheduledInput {
  /** The cron slot (ms since epoch) this instance was fired for; null for run-now. */
  scheduledFor: number | null;
  /** Parameter values that apply to this instance only (run-now overrides). */
  parameters: Parameters;
}

/** The context of a scheduled handler. */
export interface ScheduledContext<P extends Parameters = Parameters> extends AsyncContext<ScheduledInput> {
  /** Defaults from the definition, overlaid by the stored values, overlaid by run-now overrides. */
  parameters: Readonly<P>;
  /**
   * Updates parameters (e.g. a `lastRunAt` watermark). Stored when the instance succeeds, in the
   * same transaction as its result; a failed attempt stores nothing.
   */
  setParameters(patch: Partial<P>): void;
  /** The cron slot this instance was fired for (ms since epoch); null for run-now. */
  scheduledFor: number | null;
}

/**
 * The context of a sync handler. `start()`/`startMany()` are buffered and committed in one
 * transaction before the response is written (the sync → async hand-off); if the handler throws or
 * misses its deadline nothing is started. The ids they return are the ids the children will have;
 * for a start with an `idempotencyKey` that an earlier start already used, the earlier instance is
 * kept instead (and `created` is only known after the commit, so it is reported as true).
 */
export interface SyncContext<I, P = Record<string, string>, Q = Record<string, unknown>>
  extends BaseContext<I> {
  params: P;
  query: Q;
  /** Request headers, without the credential of the trigger's own auth. */
  headers: Record<string, string | string[] | undefined>;
}

/**
 * A sync handler's answer. A returned object counts as a `SyncResponse` when its only keys are
 * `status`, `headers` and `body`, and it has a `body` or a numeric `status`; any other value is
 * sent as a 200 JSON body. A string body is sent as text, no body as 204.
 *
 * @example
 * return { status: 201, headers: { location: `/orders/${id}` }, body: { orderId: id } };
 */
export interface SyncResponse {
  status?: number;
  headers?: Record<string, string>;
  body?: unknown;
}

interface CommonDefinition<S extends InputSchema | undefined> {
  /** Unique id: lowercase letters, digits, `-`, `_` and `.`. */
  id: string;
  description?: string;
  /** Validates (and may transform) the input before anything is stored or run. */
  input?: S;
  /** Up to three business identifiers, indexed for search. */
  track?: Record<string, FieldSelector<InputOf<S>>>;
  /**
   * Input and output field paths masked wherever an instance is shown; their input values are
   * masked wherever they surface (events, errors, tracking values, logs). A `track` path may not
   * follow one. See docs/semantics.md, "Redaction".
   */
  redact?: string[];
  /** HTTP trigger, e.g. `"POST /orders"` or `"GET /orders/:orderId"`. */
  route?: string;
  /** Who may call the HTTP trigger. */
  auth?: TriggerAuth;
}

/**
 * What keeps instances in flight on the code they started with (docs/versioning.md). Every
 * instance records the `version` it was accepted on and always continues with that version's
 * handler: the current one, or one kept in `previousVersions`.
 */
interface Versioned<H> {
  /** This handler's version (`"2"`, `"2026-12-06"`). Instances record it when accepted. */
  version?: string;
  /** Handlers of older versions that instances in flight still run on, by version. */
  previousVersions?: Record<string, H | { handler: H; steps?: string[] }>;
  /**
   * An instance whose version is neither current nor kept: `'fail'` it with `version-missing`
   * (default), or continue it on the current handler (`'latest'`).
   */
  onMissingVersion?: 'fail' | 'latest';
  /**
   * The step names this handler may reach. Optional: when given, a rerun from the failed step that
   * would run this handler is refused if a stored succeeded step is not among them.
   */
  steps?: string[];
}

export interface AsyncDefinition<S extends InputSchema | undefined = undefined>
  extends CommonDefinition<S>,
    Versioned<(ctx: AsyncContext<InputOf<S>>) => unknown | Promise<unknown>> {
  mode: 'async';
  handler: (ctx: AsyncContext<InputOf<S>>) => unknown | Promise<unknown>;
  retry?: RetryPolicy;
  /** Per-attempt time limit in ms; the handler's signal fires at expiry. Default 5 min. */
  timeout?: number;
  /** Instances with the same key run one at a time, in accept order. */
  orderingKey?: FieldSelector<InputOf<S>>;
}

/**
 * Started by the clock (and by run-now). A scheduled integration has no input of its own: what
 * varies between runs is its {@link ScheduledDefinition.parameters}.
 */
export interface ScheduledDefinition<P extends Parameters = Parameters>
  extends Omit<CommonDefinition<undefined>, 'input' | 'track'>,
    Versioned<(ctx: ScheduledContext<P>) => unknown | Promise<unknown>> {
  mode: 'scheduled';
  /** Cron expression: 5 fields, or 6 with seconds first (`"0 30 2 * * *"`). */
  cron: string;
  /** IANA time zone the cron is read in (`"Europe/Berlin"`). Default UTC. */
  timezone?: string;
  /** Named scalars kept across runs, with their defaults (e.g. `{ lastRunAt: null as string | null }`). */
  parameters?: P;
  /** A slot that fires while an instance of this schedule is still active: `'skip'` it (default) or `'queue'` it. */
  overlap?: 'skip' | 'queue';
  /** Slots missed while no process was running: `'none'` (default) or fire the `'last'` one once at start. */
  catchUp?: 'none' | 'last';
  input?: never;
  handler: (ctx: ScheduledContext<P>) => unknown | Promise<unknown>;
  retry?: RetryPolicy;
  timeout?: number;
  track?: Record<string, FieldSelector<ScheduledInput>>;
  orderingKey?: FieldSelector<ScheduledInput>;
}

export interface SyncDefinition<
  S extends InputSchema | undefined = undefined,
  P extends InputSchema | undefined = undefined,
  Q extends InputSchema | undefined = undefined,
> extends CommonDefinition<S> {
  mode: 'sync';
  /** Validates the route's path parameters (a `z.object` keyed by the `:names`). */
  params?: P;
  /** Validates the query string (values arrive as strings: use `z.coerce` for numbers). */
  query?: Q;
  handler: (
    ctx: SyncContext<InputOf<S>, ParamsOf<P>, QueryOf<Q>>,
  ) => SyncResponse | unknown | Promise<SyncResponse | unknown>;
  /** Time limit in ms; at expiry the caller gets 504 and the handler's signal fires. Default 10 s. */
  deadline?: number;
}

export type IntegrationDefinition<
  S extends InputSchema | undefined = undefined,
  P extends InputSchema | undefined = undefined,
  Q extends InputSchema | undefined = undefined,
  R extends Parameters = Parameters,
> = AsyncDefinition<S> | ScheduledDefinition<R> | SyncDefinition<S, P, Q>;

/** A defined integration: the definition, checked. The brand keeps plain objects out. */
export type Integration<
  S extends InputSchema | undefined = any,
  P extends InputSchema | undefined = any,
  Q extends InputSchema | undefined = any,
> = IntegrationDefinition<S, P, Q> & {
  readonly kind: 'tandem.integration';
};

export type AnyIntegration = Integration<any>;
/**
 * What `ctx.start` / `ctx.startMany` take for an integration: the input type of its schema (the
 * child parses it), or any JSON when it has none. Given by id, a child is checked at run time only.
 */
export type IntegrationInput<T> = [T] extends [{ readonly input?: infer S }] ? StartInputOf<S> : Json;
type StartInputOf<S> = [S] extends [z.ZodType] ? z.input<S> : Json;
/** The records a source validated by the integration's own schema yields (started without parsing again). */
type IntegrationRecord<T> = [T] extends [{ readonly input?: infer S }]
  ? [S] extends [z.ZodType]
    ? z.output<S>
    : Json
  : Json;
/** The inputs of `ctx.startMany`: the child's inputs, or a record source of its schema's records. */
type StartManyInputs<T> =
  | Iterable<IntegrationInput<T>>
  | AsyncIterable<IntegrationInput<T>>
  | RecordSource<IntegrationRecord<T>>;

const ID_PATTERN = /^[a-z0-9][a-z0-9._-]{0,99}$/;

const selector = z.union([nonEmptyText, fn()], { error: 'must be a field path or a function of the input' });

const common = {
  id: text,
  description: text.optional(),
  route: text.optional(),
  auth: triggerAuth.optional(),
  redact: z.array(nonEmptyText, { error: 'must be a list of field paths' }).optional(),
  handler: fn(),
};
const track = z.record(z.string(), selector, { error: 'must be an object of name: field path' }).optional();

const stepNames = z.array(nonEmptyText, { error: 'must be a list of step names' });
const versionText = z
  .string({ error: 'must be a string such as "2"' })
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, {
    error: 'must be 1–64 letters, digits, ".", "-" or "_" (e.g. "2" or "2026-12-06")',
  });
const versioned = {
  version: versionText.optional(),
  previousVersions: z
    .record(versionText, z.union([fn(), options({ handler: fn(), steps: stepNames.optional() })]), {
      error: 'must be an object of version: handler',
    })
    .optional(),
  onMissingVersion: oneOf(['fail', 'latest']).optional(),
  steps: stepNames.optional(),
};

/** The options of each mode; any other key is refused. */
const DEFINITION_SCHEMAS = {
  sync: options({
    ...common,
    mode: z.literal('sync'),
    input: zodSchema.optional(),
    track,
    params: zodSchema.optional(),
    query: zodSchema.optional(),
    deadline: timerMs.optional(),
  } satisfies Record<keyof SyncDefinition<any, any, any>, unknown>),
  async: options({
    ...common,
    mode: z.literal('async'),
    input: zodSchema.optional(),
    track,
    retry: retryPolicySchema.optional(),
    timeout: timerMs.optional(),
    orderingKey: selector.optional(),
    ...versioned,
  } satisfies Record<keyof AsyncDefinition<any>, unknown>),
  scheduled: options({
    ...common,
    mode: z.literal('scheduled'),
    input: z
      .undefined({ error: 'must be left out: a scheduled integration takes parameters, not an input schema' })
      .optional(),
    track,
    cron: text,
    timezone: text.optional(),
    // Names and values are checked by checkParameterDefaults, with messages of their own.
    parameters: z.unknown().optional(),
    overlap: oneOf(['skip', 'queue']).optional(),
    catchUp: oneOf(['none', 'last']).optional(),
    retry: retryPolicySchema.optional(),
    timeout: timerMs.optional(),
    orderingKey: selector.optional(),
    ...versioned,
  } satisfies Record<keyof ScheduledDefinition, unknown>),
};

/**
 * Defines an integration. The `mode` decides how it runs; the handler's `ctx.input` type comes from
 * the `input` schema. Every option is checked here: a wrong or unknown one throws
 * `invalid-definition` naming it, so a mistake fails at start rather than on a request.
 *
 * @example
 * export const fulfilOrder = defineIntegration({
 *   id: 'fulfil-order',
 *   mode: 'async',
 *   input: z.object({ orderId: z.string(), sku: z.string() }),
 *   track: { orderId: 'orderId' },
 *   async handler(ctx) {
 *     await ctx.step('reserve', () => inventory.reserve(ctx.input.sku));
 *     await ctx.step('packing-list', () => warehouse.packingList(ctx.input.orderId));
 *   },
 * });
 */
export function defineIntegration<
  S extends InputSchema | undefined = undefined,
  P extends InputSchema | undefined = undefined,
  Q extends InputSchema | undefined = undefined,
  R extends Parameters = Parameters,
>(definition: IntegrationDefinition<S, P, Q, R>): Integration<S, P, Q> {
  const def = definition as IntegrationDefinition<S, P, Q>;
  if (!def || typeof def !== 'object')
    throw new InvalidDefinitionError('An integration definition must be an object');
  if (typeof def.id !== 'string' || !ID_PATTERN.test(def.id)) {
    throw new InvalidDefinitionError(
      `Integration id ${JSON.stringify(def.id)} is invalid: use 1–100 lowercase letters, digits, ".", "-" or "_"`,
    );
  }
  const where = `Integration "${def.id}"`;
  if (def.mode !== 'sync' && def.mode !== 'async' && def.mode !== 'scheduled') {
    throw new InvalidDefinitionError(`${where}: mode must be "sync", "async" or "scheduled"`);
  }
  checkOptions(DEFINITION_SCHEMAS[def.mode], def, where);
  if (def.route !== undefined) {
    const route = parseRoute(def.route, where);
    if (def.mode !== 'sync' && route.params.length > 0) {
      // An async instance's input is its body alone, so that a rerun with corrected input
      // has everything the first run had.
      throw new InvalidDefinitionError(
        `${where}: an ${def.mode} route takes its input from the body; path parameters are for sync routes`,
      );
    }
  }
  if (def.auth !== undefined && def.route === undefined) {
    throw new InvalidDefinitionError(`${where}: auth needs a route to guard`);
  }
  if (def.track !== undefined) {
    const names = Object.keys(def.track);
    if (names.length > 3) {
      throw new InvalidDefinitionError(`${where}: at most 3 tracking fields, got ${names.length}`);
    }
  }
  checkRedact(where, def);
  if (def.mode !== 'sync') checkVersions(where, def);
  if (def.mode === 'scheduled') {
    checkSchedule(where, def);
    checkParameterDefaults(where, def.parameters);
  }
  return Object.freeze({ ...def, kind: 'tandem.integration' as const }) as Integration<S>;
}

/** Older versions need a current one to be older than, and are not the current one. */
function checkVersions(where: string, def: Versioned<unknown>): void {
  const previous = Object.keys(def.previousVersions ?? {});
  if (previous.length > 0 && def.version === undefined)
    throw new InvalidDefinitionError(`${where}: previousVersions needs a version for the current handler`);
  if (def.version !== undefined && previous.includes(def.version))
    throw new InvalidDefinitionError(
      `${where}: version "${def.version}" is the current handler's and cannot also be in previousVersions`,
    );
}

/**
 * The handler an instance of `version` runs on, with its declared steps and its version: its own
 * version's (the current one, or one kept in `previousVersions`), else the current one when the
 * definition says `onMissingVersion: 'latest'`; null when there is none (`version-missing`).
 */
export function handlerOfVersion<H>(
  def: Versioned<H> & { handler: H },
  version: string | null,
): { handler: H; steps: string[] | undefined; version: string | null } | null {
  const current = { handler: def.handler, steps: def.steps, version: def.version ?? null };
  if (version === null || version === current.version) return current;
  const kept: unknown =
    def.previousVersions && Object.hasOwn(def.previousVersions, version)
      ? def.previousVersions[version]
      : undefined;
  if (kept === undefined) return def.onMissingVersion === 'latest' ? current : null;
  if (typeof kept === 'function') return { handler: kept as H, steps: undefined, version };
  const entry = kept as { handler: H; steps?: string[] };
  return { handler: entry.handler, steps: entry.steps, version };
}

/** `redact` is a list of dotted paths, and no string `track` selector may follow a masked field. */
function checkRedact(where: string, def: { redact?: unknown; track?: Record<string, unknown> }): void {
  const { redact } = def;
  if (
    redact !== undefined &&
    (!Array.isArray(redact) || redact.some((p) => typeof p !== 'string' || p.split('.').includes('')))
  ) {
    throw new InvalidDefinitionError(
      `${where}: redact must be a list of dotted field paths, e.g. ["card.number"]`,
    );
  }
  for (const [name, selector] of Object.entries(def.track ?? {})) {
    if (typeof selector !== 'string') continue;
    const reason = redactedTrackPath(selector, redact as string[] | undefined);
    if (reason !== null) {
      throw new InvalidDefinitionError(
        `${where}: track.${name} follows "${selector}", but ${reason}; a tracking value is shown and searched as it is, so track another field`,
      );
    }
  }
}

export function isIntegration(value: unknown): value is AnyIntegration {
  return (
    typeof value === 'object' && value !== null && (value as { kind?: unknown }).kind === 'tandem.integration'
  );
}

/** Reads a field path (`"customer.email"`) or applies a selector function. */
export function selectField<I>(input: I, selector: FieldSelector<I>): string | null {
  let value: unknown;
  if (typeof selector === 'function') value = selector(input);
  else {
    value = input;
    for (const part of selector.split('.')) {
      if (value === null || typeof value !== 'object' || !Object.hasOwn(value, part)) return null;
      value = (value as Record<string, unknown>)[part];
    }
  }
  if (value === null || value === undefined) return null;
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean')
    return String(value);
  return null;
}
