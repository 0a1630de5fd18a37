/**
 * The `ctx` an async or scheduled handler receives: one object per attempt that memoises steps,
 * starts children, records progress and connection calls, and builds (masked) every activity event
 * the attempt writes. A scheduled attempt gets the subclass that adds its parameters.
 */
import { type Call, type CallArgs, currentStep, makeCaller } from '../connections/caller.js';
import type {
  AnyIntegration,
  AsyncContext,
  FanOutOptions,
  ScheduledContext,
  ScheduledDefinition,
  ScheduledInput,
  StartOptions,
} from '../define/integration.js';
import { checkParameters, type Parameters } from '../define/parameters.js';
import { DuplicateStepError, LeaseLostError, TandemError, toErrorInfo } from '../errors.js';
import { isStorableText, toStoredJson } from '../json.js';
import { type ActivityData, type ActivityType, activity } from '../lifecycle/index.js';
import type { ErrorInfo, Json, NewActivityEvent } from '../model.js';
import { Redactor } from '../redaction.js';
import type { ClaimedInstance } from '../store/store.js';
import type { Attempt, ExecuteDeps } from './attempt.js';
import { fanOut } from './fan-out.js';

/** The context's methods that a handler may take apart (`const { step } = ctx`): bound on first read. */
type Bound = Pick<AsyncContext<unknown>, 'step' | 'start' | 'startMany' | 'progress' | 'call'>;

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
  private caller: Call | undefined;
  /** Results of the steps that succeeded before (made on the first step). */
  private memo: Map<string, Json | null> | undefined;
  private readonly usedNames = new Set<string>();
  private bound: Partial<Bound> | undefined;
  /** The last step that threw, and what: the log names the step when its error ended the attempt. */
  failedStep: { name: string; thrown: unknown } | undefined;
  private masker: Redactor | undefined;

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
    return this.deps.acceptor.startChild(this.claimed.instance, ++this.calls, child, input, options);
  }

  private startChildren(
    child: AnyIntegration | string,
    inputs: Iterable<unknown> | AsyncIterable<unknown>,
    options?: FanOutOptions,
  ) {
    this.ensureLive();
    return fanOut({
      ctx: this,
      parent: this.claimed.instance,
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
    // Made on the first call: most attempts of most integrations call nothing through connections.
    this.caller ??= makeCaller({
      instanceId: this.instanceId,
      attempt: this.attempt,
      signal: this.handle.signal,
      connections: this.deps.connections,
      record: (data) => this.deps.writer.event(this.event('connection.call', data)),
      now: () => this.deps.clock.now(),
    });
    return this.caller<T>(...args);
  }

  private async runStep<T>(name: string, fn: (signal: AbortSignal) => T | Promise<T>): Promise<T> {
    this.ensureLive();
    if (typeof name !== 'string' || name === '')
      throw new TandemError('invalid-definition', 'A step needs a name');
    // Refused here, with this instance, rather than by the database in a batch of others' writes.
    if (!isStorableText(name))
      throw new TandemError(
        'invalid-definition',
        `A step name must be text without NUL characters or unpaired surrogates: ${JSON.stringify(name)}`,
      );
    const { usedNames, handle, deps } = this;
    const { clock, writer } = deps;
    if (usedNames.has(name)) throw new DuplicateStepError(name);
    const position = usedNames.size;
    usedNames.add(name);
    if (!this.memo) {
      this.memo = new Map();
      for (const step of this.claimed.steps)
        if (step.status === 'succeeded') this.memo.set(step.name, step.output);
    }
    if (this.memo.has(name)) return this.memo.get(name) as T;
    const lease = { instanceId: this.instanceId, claimToken: this.claimed.claimToken };
    const stepStarted = clock.now();
    writer.event(this.event('step.started', { step: name, attempt: this.attempt }));
    let result: T;
    try {
      // The step's name travels with its async work, so calls inside derive their idempotency key from it.
      result = await Promise.race([
        currentStep.run({ name, calls: 0 }, () => Promise.resolve().then(() => fn(handle.signal))),
        this.aborted,
      ]);
      this.ensureLive();
    } catch (thrown) {
      this.failedStep = { name, thrown };
      const error = this.redactor.error(toErrorInfo(thrown));
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
