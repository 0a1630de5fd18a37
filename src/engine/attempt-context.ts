/**
 * The `ctx` an async or scheduled handler receives: one object per attempt that memoises steps,
 * starts children, records progress and connection calls, and builds (masked) every activity event
 * the attempt writes. A scheduled attempt gets the subclass that adds its parameters.
 */

import { createHash, randomBytes } from 'node:crypto';
import { type CallArgs, type Caller, currentStep, makeCaller, type Use } from '../connections/caller.js';
import { type Query, queryThrough } from '../connections/query.js';
import { type Duration, durationMs } from '../define/duration.js';
import type {
  AnyIntegration,
  AsyncContext,
  Callback,
  CallbackOptions,
  FanOutOptions,
  ScheduledContext,
  ScheduledDefinition,
  ScheduledInput,
  StartOptions,
  WaitForEventOptions,
} from '../define/integration.js';
import { checkParameters, type Parameters } from '../define/parameters.js';
import {
  DuplicateStepError,
  LeaseLostError,
  StepMismatchError,
  TandemError,
  toErrorInfo,
} from '../errors.js';
import { isStorableText, toStoredJson } from '../json.js';
import { type ActivityData, type ActivityType, activity } from '../lifecycle/index.js';
import type { ErrorInfo, InstanceWork, Json, NewActivityEvent } from '../model.js';
import { Redactor } from '../redaction.js';
import type { ClaimedInstance, NewWait } from '../store/store.js';
import { ATTR, endSpan, type Span, SpanKind, stepSpan, traceparentOf } from '../tracing/tracing.js';
import { matchKey, matchShape } from '../waits/match.js';
import type { Attempt, ExecuteDeps } from './attempt.js';
import { fanOut } from './fan-out.js';

/** The fields of a wait that is not for an event. */
const NO_EVENT = { event: null, matchKey: null, matchShape: null, lookBackFrom: null } as const;

/** The SHA-256 of a callback token's secret part, as stored (hex). */
export function hashCallbackSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

/** The context's methods that a handler may take apart (`const { step } = ctx`): bound on first read. */
type Bound = Pick<
  AsyncContext<unknown>,
  | 'step'
  | 'start'
  | 'startMany'
  | 'progress'
  | 'call'
  | 'use'
  | 'query'
  | 'sleep'
  | 'waitForEvent'
  | 'callback'
>;

/**
 * Thrown into the handler when it reaches a wait that has not resolved: the attempt ends there and
 * the instance waits (the executor reads {@link AttemptContext.suspended}, so a handler that
 * catches this still ends up waiting).
 */
class WaitSuspended extends Error {
  constructor(readonly step: string) {
    // Thrown once per wait reached, as a signal rather than a fault: a captured stack (source-mapped
    // when read) cost more than the rest of the suspension, so it has none.
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      super(`The instance waits at "${step}"; the handler continues when the wait resolves`);
    } finally {
      Error.stackTraceLimit = limit;
    }
    this.name = 'WaitSuspended';
  }
}

/** A wait as the handler asks for it; `at` is when it was first reached (a stored one keeps its own). */
type WaitSpec = (at: number) => Omit<NewWait, 'name' | 'createdAt'>;

/**
 * The `ctx` of an async handler. An attempt makes this one object: its methods live on the
 * prototype instead of being a dozen closures per attempt (which, with quick handlers, cost as much
 * CPU as the rest of the engine). Each method is bound on first read, so that a handler may take
 * them apart (`const { step, input } = ctx`).
 */
export class AttemptContext<I = unknown> implements AsyncContext<I> {
  readonly instanceId: string;
  readonly integrationId: string;
  readonly input: I;
  readonly run: number;
  readonly attempt: number;
  private calls = 0;
  private caller: Caller | undefined;
  /** Results of the steps that succeeded before (made on the first step). */
  private memo: Map<string, Json | null> | undefined;
  private readonly usedNames = new Set<string>();
  private bound: Partial<Bound> | undefined;
  /** The last step that threw, and what: the log names the step when its error ended the attempt. */
  failedStep: { name: string; thrown: unknown } | undefined;
  /** The wait the handler stopped at: the attempt ends with it (the instance waits). */
  suspended: NewWait | undefined;
  /** Stored steps this attempt has returned (the others show whether the handler changed). */
  private readonly visited = new Set<string>();
  private masker: Redactor | undefined;
  /** The attempt's span, when tracing: its steps, calls and children continue it. */
  span: Span | undefined;

  constructor(
    private readonly claimed: ClaimedInstance,
    private readonly handle: Attempt,
    protected readonly deps: ExecuteDeps,
    /** Rejects when the attempt is aborted. */
    private readonly aborted: Promise<never>,
    private readonly redact: readonly string[] | undefined,
  ) {
    const { instance } = claimed;
    this.instanceId = instance.id;
    this.integrationId = instance.integrationId;
    // The stored input is what the definition's mode gives its handler (validated when accepted).
    this.input = instance.input as I;
    this.run = instance.run;
    this.attempt = instance.attempt;
  }

  get signal(): AbortSignal {
    return this.handle.signal;
  }

  get step(): Bound['step'] {
    this.bound ??= {};
    this.bound.step ??= this.runStep.bind(this);
    return this.bound.step;
  }

  get start(): Bound['start'] {
    this.bound ??= {};
    this.bound.start ??= this.startChild.bind(this);
    return this.bound.start;
  }

  get startMany(): Bound['startMany'] {
    this.bound ??= {};
    this.bound.startMany ??= this.startChildren.bind(this);
    return this.bound.startMany;
  }

  get progress(): Bound['progress'] {
    this.bound ??= {};
    this.bound.progress ??= this.recordProgress.bind(this);
    return this.bound.progress;
  }

  get call(): Bound['call'] {
    this.bound ??= {};
    this.bound.call ??= this.callConnection.bind(this);
    return this.bound.call;
  }

  get use(): Bound['use'] {
    this.bound ??= {};
    this.bound.use ??= ((connection) => this.connectionCaller().use(connection)) as Use;
    return this.bound.use;
  }

  get query(): Bound['query'] {
    this.bound ??= {};
    this.bound.query ??= ((connection, sql, params) =>
      queryThrough(this.use, connection, sql, params)) as Query;
    return this.bound.query;
  }

  get sleep(): Bound['sleep'] {
    this.bound ??= {};
    this.bound.sleep ??= this.sleepUntil.bind(this);
    return this.bound.sleep;
  }

  get waitForEvent(): Bound['waitForEvent'] {
    this.bound ??= {};
    this.bound.waitForEvent ??= this.waitEvent.bind(this) as Bound['waitForEvent'];
    return this.bound.waitForEvent;
  }

  get callback(): Bound['callback'] {
    this.bound ??= {};
    this.bound.callback ??= this.makeCallback.bind(this) as Bound['callback'];
    return this.bound.callback;
  }

  /**
   * Masks what this attempt writes besides its step results: events, errors, the output. Made on
   * first use from the input the attempt runs with (a rerun may have replaced it).
   */
  get redactor(): Redactor {
    this.masker ??= Redactor.of(this.redact, this.input);
    return this.masker;
  }

  /** Every event of the attempt is built here, so that its data (progress, call records, error texts) is masked. */
  event<T extends ActivityType>(type: T, data: ActivityData[T]): NewActivityEvent {
    const { redactor } = this;
    return activity(
      type,
      {
        instanceId: this.instanceId,
        integrationId: this.integrationId,
        run: this.run,
        at: this.deps.clock.now(),
      },
      // Only progress data has field names of the handler's choosing; the rest hold secrets by value only.
      redactor.hasSecrets || type === 'progress' ? redactor.json(data) : data,
    );
  }

  ensureLive(): void {
    if (this.handle.aborted) throw this.handle.abortError();
    if (this.handle.over) throw new LeaseLostError(this.instanceId);
  }

  private startChild(child: AnyIntegration | string, input: unknown, options?: StartOptions) {
    this.ensureLive();
    return this.deps.acceptor.startChild(this.parentOfChildren(), ++this.calls, child, input, options);
  }

  /** The instance as its children see it: when tracing, they continue the span that starts them. */
  private parentOfChildren(): InstanceWork {
    const { instance } = this.claimed;
    if (this.span === undefined) return instance;
    return { ...instance, traceparent: traceparentOf(stepSpan.getStore() ?? this.span) };
  }

  private startChildren(
    child: AnyIntegration | string,
    inputs: Iterable<unknown> | AsyncIterable<unknown>,
    options?: FanOutOptions,
  ) {
    this.ensureLive();
    return fanOut({
      ctx: this,
      parent: this.parentOfChildren(),
      call: ++this.calls,
      deps: this.deps,
      child,
      inputs,
      options: options ?? {},
    });
  }

  private recordProgress(data: Record<string, Json>): void {
    if (!this.handle.over) this.deps.writer.event(this.event('progress', data));
  }

  private callConnection<T>(...args: CallArgs): Promise<T> {
    return this.connectionCaller().call<T>(...args);
  }

  private connectionCaller(): Caller {
    // Made on the first call: most attempts of most integrations call nothing through connections.
    this.caller ??= makeCaller({
      instanceId: this.instanceId,
      attempt: this.attempt,
      signal: this.handle.signal,
      connections: this.deps.connections,
      record: (data) => this.deps.writer.event(this.event('connection.call', data)),
      now: () => this.deps.clock.now(),
      traceparent: this.claimed.instance.traceparent,
      tracing: this.deps.tracing,
      span: this.span,
    });
    return this.caller;
  }

  /**
   * Checks a step's (or a wait's) name and takes it for this attempt: returns its position, and
   * whether a stored result exists for it (and that result).
   */
  private takeName(name: string): { position: number; stored: boolean; value: Json | null } {
    this.ensureLive();
    if (typeof name !== 'string' || name === '')
      throw new TandemError('invalid-definition', 'A step needs a name');
    // Refused here, with this instance, rather than by the database in a batch of others' writes.
    if (!isStorableText(name))
      throw new TandemError(
        'invalid-definition',
        `A step name must be text without NUL characters or unpaired surrogates: ${JSON.stringify(name)}`,
      );
    const { usedNames } = this;
    if (usedNames.has(name)) throw new DuplicateStepError(name);
    const position = usedNames.size;
    usedNames.add(name);
    if (!this.memo) {
      this.memo = new Map();
      for (const step of this.claimed.steps)
        if (step.status === 'succeeded') this.memo.set(step.name, step.output);
    }
    if (this.memo.has(name)) {
      this.visited.add(name);
      return { position, stored: true, value: this.memo.get(name) ?? null };
    }
    return { position, stored: false, value: null };
  }

  /**
   * Before a new step runs: every stored step at its place or before it must have been reached.
   * One that was not means the handler changed since the run stored it (`charge` renamed to
   * `charge-card`): running the new step would do its work a second time.
   */
  private checkUnchanged(name: string, position: number): void {
    if (this.visited.size === this.memo?.size) return;
    const missed = this.claimed.steps
      .filter((s) => s.status === 'succeeded' && s.position <= position && !this.visited.has(s.name))
      .map((s) => s.name);
    if (missed.length > 0) throw new StepMismatchError(name, missed);
  }

  private async runStep<T>(name: string, fn: (signal: AbortSignal) => T | Promise<T>): Promise<T> {
    const { position, stored, value } = this.takeName(name);
    if (stored) return value as T;
    this.checkUnchanged(name, position);
    const { handle, deps } = this;
    const { clock, writer } = deps;
    const lease = { instanceId: this.instanceId, claimToken: this.claimed.claimToken };
    const stepStarted = clock.now();
    writer.event(this.event('step.started', { step: name, attempt: this.attempt }));
    // The signal (an AbortController made on first use) only for a function that takes it.
    let body = () =>
      Promise.resolve().then(() => (fn.length === 0 ? (fn as () => T | Promise<T>)() : fn(handle.signal)));
    const span = this.span === undefined ? undefined : this.stepSpan(name);
    if (span !== undefined) {
      const run = body;
      body = () => stepSpan.run(span, () => deps.tracing!.within(span, run));
    }
    let result: T;
    try {
      // The step's name travels with its async work, so calls inside derive their idempotency key from it.
      result = await Promise.race([currentStep.run({ name, calls: 0 }, body), this.aborted]);
      this.ensureLive();
    } catch (thrown) {
      this.failedStep = { name, thrown };
      const error = this.redactor.error(toErrorInfo(thrown));
      if (span !== undefined) endSpan(span, error);
      const finishedAt = clock.now();
      if (!handle.over) {
        void writer.step({
          ...lease,
          step: this.stepRecord(name, position, 'failed', error, stepStarted, finishedAt),
          outputJson: null,
          events: [
            this.event('step.failed', {
              step: name,
              error: error.message,
              durationMs: finishedAt - stepStarted,
            }),
          ],
        });
      }
      throw thrown;
    }
    span?.end();
    const outputJson = toStoredJson(result, `The result of step "${name}"`);
    const finishedAt = clock.now();
    const held = await writer.step({
      ...lease,
      step: this.stepRecord(name, position, 'succeeded', null, stepStarted, finishedAt),
      outputJson,
      events: [this.event('step.succeeded', { step: name, durationMs: finishedAt - stepStarted })],
    });
    if (!held) {
      handle.over = true;
      throw new LeaseLostError(this.instanceId);
    }
    // The handler sees what a later attempt would read back from the store.
    return JSON.parse(outputJson) as T;
  }

  /** A step's span, under the attempt's; its name as the events show it (masked). */
  private stepSpan(name: string): Span {
    const shown = this.redactor.text(name);
    return this.deps.tracing!.start(`step ${shown}`, SpanKind.INTERNAL, this.span, {
      [ATTR.instance]: this.instanceId,
      [ATTR.integration]: this.integrationId,
      [ATTR.step]: shown,
      [ATTR.attempt]: this.attempt,
    });
  }

  private sleepUntil(name: string, duration: Duration | Date): Promise<void> {
    const until = duration instanceof Date ? duration.getTime() : null;
    if (until !== null && !Number.isFinite(until))
      throw new TandemError('invalid-definition', `ctx.sleep("${name}"): the Date is invalid`);
    const ms = until === null ? durationMs(duration, `ctx.sleep("${name}")`) : 0;
    return this.awaitWait(name, (at) => ({
      ...NO_EVENT,
      kind: 'sleep',
      expiresAt: until ?? at + ms,
    })).then(() => undefined);
  }

  private waitEvent(name: string, options: WaitForEventOptions): Promise<Json | null> {
    const what = `ctx.waitForEvent("${name}")`;
    if (options === null || typeof options !== 'object')
      throw new TandemError('invalid-definition', `${what} needs options: { event, match?, timeout? }`);
    const { event, match = {}, timeout } = options;
    if (typeof event !== 'string' || event === '' || event.length > 200 || !isStorableText(event))
      throw new TandemError('invalid-definition', `${what}: event must be an event name of 1–200 characters`);
    if (match === null || typeof match !== 'object' || Array.isArray(match))
      throw new TandemError(
        'invalid-definition',
        `${what}: match must be an object of payload fields and values`,
      );
    // Stored as JSON: a value JSON cannot hold (undefined, a function) is refused, not dropped.
    for (const [field, value] of Object.entries(match)) toStoredJson(value, `${what}: match.${field}`);
    const timeoutMs = timeout === undefined ? null : durationMs(timeout, `${what}: timeout`);
    const { lookBackMs } = this.deps.waits;
    return this.awaitWait(name, (at) => ({
      kind: 'event',
      event,
      matchKey: matchKey(match),
      matchShape: matchShape(match),
      expiresAt: timeoutMs === null ? null : at + timeoutMs,
      lookBackFrom: at - lookBackMs,
    }));
  }

  private async makeCallback(name: string, options: CallbackOptions = {}): Promise<Callback<Json>> {
    const what = `ctx.callback("${name}")`;
    if (options === null || typeof options !== 'object')
      throw new TandemError('invalid-definition', `${what} takes options: { timeout? }`);
    const timeoutMs = options.timeout === undefined ? null : durationMs(options.timeout, `${what}: timeout`);
    const spec: WaitSpec = (at) => ({
      ...NO_EVENT,
      kind: 'callback',
      expiresAt: timeoutMs === null ? null : at + timeoutMs,
    });
    const { position, stored, value } = this.takeName(name);
    const wait = () => (stored ? Promise.resolve(value) : this.suspendAt(name, position, spec));
    if (stored) {
      return {
        get url(): string {
          throw new TandemError(
            'invalid-definition',
            `${what} was answered already: its URL is no longer needed (read it in the step that hands it out)`,
          );
        },
        wait,
      };
    }
    this.checkUnchanged(name, position);
    // A token per attempt that reaches the callback: the URL handed out in an earlier attempt stays
    // valid too (the partner may have got it before that attempt failed). Only the hash is stored.
    const tokenId = randomBytes(12).toString('base64url');
    const secret = randomBytes(32).toString('base64url');
    const at = this.deps.clock.now();
    const armed = await this.deps.waits.armCallback({
      instanceId: this.instanceId,
      claimToken: this.claimed.claimToken,
      run: this.run,
      wait: { name, createdAt: at, ...spec(at) },
      tokenId,
      tokenHash: hashCallbackSecret(secret),
    });
    if (!armed) {
      this.handle.over = true;
      throw new LeaseLostError(this.instanceId);
    }
    this.ensureLive();
    return { url: `${this.deps.waits.callbackBase()}/callbacks/${tokenId}.${secret}`, wait };
  }

  /** A sleep or a wait for an event: its stored result, or the attempt ends and the instance waits. */
  private awaitWait(name: string, spec: WaitSpec): Promise<Json | null> {
    const { position, stored, value } = this.takeName(name);
    if (stored) return Promise.resolve(value);
    return this.suspendAt(name, position, spec);
  }

  /**
   * Settles the stored wait (one whose time has passed resolves now): a resolved wait is stored as
   * the step's result and returned; otherwise the attempt ends here and the instance waits.
   */
  private async suspendAt(name: string, position: number, spec: WaitSpec): Promise<Json | null> {
    this.ensureLive();
    this.checkUnchanged(name, position);
    // One wait at a time: a second one reached before the first ended the attempt waits its turn.
    if (this.suspended) throw new WaitSuspended(name);
    const { clock, writer, waits } = this.deps;
    const now = clock.now();
    // The run's first attempt has armed no wait before (a callback's, armed by this attempt, aside):
    // nothing stored to read, and the attempt suspends without a round trip.
    const record =
      this.claimed.fresh === true && spec(now).kind !== 'callback'
        ? null
        : await waits.settle({ instanceId: this.instanceId, run: this.run, name }, now);
    this.ensureLive();
    if (this.suspended) throw new WaitSuspended(name);
    if (record?.resolvedAt == null) {
      this.suspended = record ?? { name, createdAt: now, ...spec(now) };
      throw new WaitSuspended(name);
    }
    const outputJson = record.payloadJson ?? 'null';
    // Time and timeouts resolve here; an event or a callback wrote its own `wait.resumed`.
    const by = record.resolution!;
    const held = await writer.step({
      instanceId: this.instanceId,
      claimToken: this.claimed.claimToken,
      step: this.stepRecord(name, position, 'succeeded', null, record.createdAt, record.resolvedAt),
      outputJson,
      events: by === 'time' || by === 'timeout' ? [this.event('wait.resumed', { step: name, by })] : [],
    });
    if (!held) {
      this.handle.over = true;
      throw new LeaseLostError(this.instanceId);
    }
    return JSON.parse(outputJson) as Json | null;
  }

  private stepRecord(
    name: string,
    position: number,
    status: 'succeeded' | 'failed',
    error: ErrorInfo | null,
    from: number,
    to: number,
  ) {
    return {
      instanceId: this.instanceId,
      run: this.run,
      name,
      position,
      status,
      output: null,
      error,
      attempt: this.attempt,
      startedAt: from,
      finishedAt: to,
    };
  }
}

/**
 * The `ctx` of a scheduled handler: an attempt's context with the schedule's parameters, which
 * {@link load} reads before the handler starts, and the slot it was fired for. What the handler
 * sets is kept in {@link patch}, stored with a success.
 */
export class ScheduledAttemptContext extends AttemptContext<ScheduledInput> implements ScheduledContext {
  readonly scheduledFor: number | null;
  /** What the handler set with `setParameters`; null while it set nothing. */
  patch: Parameters | null = null;
  private current: Parameters;
  private readonly defaults: Parameters;
  private boundSet: ScheduledContext['setParameters'] | undefined;

  constructor(
    claimed: ClaimedInstance,
    handle: Attempt,
    deps: ExecuteDeps,
    aborted: Promise<never>,
    definition: ScheduledDefinition<any>,
  ) {
    super(claimed, handle, deps, aborted, definition.redact);
    this.defaults = definition.parameters ?? {};
    this.current = this.defaults;
    const input: Partial<ScheduledInput> | null = this.input;
    this.scheduledFor = input?.scheduledFor ?? null;
  }

  /** Defaults from the definition, overlaid by the stored values, overlaid by run-now overrides. */
  async load(): Promise<void> {
    const input: Partial<ScheduledInput> | null = this.input;
    this.current = {
      ...this.defaults,
      ...(await this.deps.acceptor.storedParameters(this.integrationId)),
      ...(input?.parameters ?? {}),
    };
  }

  get parameters(): Readonly<Parameters> {
    return this.current;
  }

  get setParameters(): ScheduledContext['setParameters'] {
    this.boundSet ??= this.updateParameters.bind(this);
    return this.boundSet;
  }

  private updateParameters(patch: Partial<Parameters>): void {
    this.ensureLive();
    const checked = checkParameters(this.defaults, patch);
    this.patch = { ...this.patch, ...checked };
    this.current = { ...this.current, ...checked };
  }
}
