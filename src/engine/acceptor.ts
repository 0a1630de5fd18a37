/**
 * The acceptor: where new durable work comes in. It validates an input and builds its instance row
 * (`prepare`), stores rows in one transaction per event-loop tick shared by every accept of that
 * tick (group commit), and starts the children of a running instance (`ctx.start`, and
 * `ctx.startMany` in chunks of one transaction each). Triggers, the API, schedules and handlers all
 * hand their work to it; it tells the dispatcher when there may be work to claim.
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import {
  type AnyIntegration,
  type AsyncDefinition,
  type ChildCounts,
  isIntegration,
  type StartedInstance,
  type StartManyOptions,
  type StartOptions,
  selectField,
} from '../define/integration.js';
import { checkScheduledInput, type Parameters } from '../define/parameters.js';
import {
  IdempotencyConflictError,
  type InputIssue,
  InvalidInputError,
  ShuttingDownError,
  UnknownIntegrationError,
  WrongModeError,
} from '../errors.js';
import { isStorableText, toStoredJson } from '../json.js';
import { TRANSITIONS } from '../lifecycle/index.js';
import type { InstanceWork } from '../model.js';
import { Redactor } from '../redaction.js';
import type { FileClaims } from '../sources/bytes.js';
import { isRecordSource } from '../sources/source.js';
import { UnstorableTextError } from '../store/faults.js';
import type { InsertOutcome, NewInstance, Store } from '../store/store.js';
import { normalTraceparent } from '../tracing/traceparent.js';
import { ATTR, SpanKind, type Tracing, traceparentOf, trackingAttributes } from '../tracing/tracing.js';
import type { AttemptAcceptor } from './attempt.js';
import { Batcher } from './batcher.js';
import type { Clock } from './clock.js';
import { uuidv7 } from './ids.js';
import type { EngineObserver } from './observer.js';
import type { Accepted, AcceptOptions, RunNowOptions } from './options.js';
import type { EngineParts, Registry, Waker } from './shared.js';
import { SyncRecorder, type SyncRecorderOptions } from './sync-recorder.js';

/** How `startMany` prepares its children (fan-out only). */
export interface ChildPreparation {
  /** False: a repeated start returns the child already there, unchecked. Default true. */
  hashed?: boolean;
  /**
   * True when the input is already the output of the integration's input schema (a record source
   * with that very schema): parsing it again would apply transforms twice. Default false.
   */
  validated?: boolean;
}

export class Acceptor implements AttemptAcceptor {
  private readonly store: Store;
  private readonly clock: Clock;
  private readonly registry: Registry;
  private readonly observer: Required<EngineObserver>;
  private readonly batcher: Batcher<NewInstance[], InsertOutcome[]>;
  private readonly tracing: Tracing | null;
  /** Set once the engine begins to stop: from then on every accept is refused. */
  private closed = false;

  constructor(
    parts: EngineParts,
    /** Told after a commit that created instances. */
    private readonly waker: Waker,
    /** One transaction for all accepts of a tick, or (false) one per accept. */
    private readonly groupCommit: boolean,
  ) {
    this.store = parts.store;
    this.clock = parts.clock;
    this.registry = parts.registry;
    this.observer = parts.observer;
    this.tracing = parts.tracing;
    this.batcher = new Batcher(async (groups) => {
      const outcomes = await this.store.insertInstances(groups.flat());
      let offset = 0;
      return groups.map((group) => {
        const slice = outcomes.slice(offset, offset + group.length);
        offset += group.length;
        return slice;
      });
    });
  }

  /**
   * Validates the input and builds the row of a new durable instance, without storing it. Throws a
   * typed error (unknown integration, wrong mode, invalid input, not serialisable).
   */
  prepare(
    integrationRef: string | AnyIntegration,
    input: unknown,
    options: AcceptOptions = {},
    child: ChildPreparation = {},
  ): NewInstance {
    const { hashed = true, validated = false } = child;
    const id = typeof integrationRef === 'string' ? integrationRef : integrationRef?.id;
    if (typeof integrationRef === 'object' && !isIntegration(integrationRef))
      throw new UnknownIntegrationError(String(id));
    const integration = this.registry.integration(id);
    if (integration.mode === 'sync')
      throw new WrongModeError(integration.id, 'sync', 'be started as durable work');
    const value = validated && integration.mode !== 'scheduled' ? input : checkInput(integration, input);
    const inputJson = toStoredJson(value, `The input of "${integration.id}"`);
    const now = this.clock.now();
    const def = integration as AsyncDefinition<any>;
    const tracking: Record<string, string> = {};
    let redactor: Redactor | undefined;
    // No entries array per accept for the many integrations that track nothing.
    if (def.track !== undefined) {
      for (const [name, selector] of Object.entries(def.track)) {
        const tracked = selectField(value, selector);
        if (tracked === null) continue;
        // Tracking values are shown and searched as they are: a secret in one is masked before it is stored.
        redactor ??= Redactor.of(def.redact, value);
        tracking[name] = redactor.text(tracked);
      }
    }
    const orderingKey = def.orderingKey ? selectField(value, def.orderingKey) : null;
    const idempotencyKey = options.idempotencyKey ?? null;
    const unstorable = unstorableKeys(def, tracking, orderingKey, idempotencyKey);
    if (unstorable) throw new UnstorableTextError(unstorable);
    const instanceId = uuidv7(now);
    return {
      id: instanceId,
      integrationId: integration.id,
      mode: integration.mode,
      status: TRANSITIONS.accept.to,
      inputJson,
      inputHash: idempotencyKey === null || !hashed ? null : hashInput(inputJson),
      tracking,
      // Not namespaced by integration: one key orders the instances of several integrations
      // (e.g. onboard-employee and attach-document on the employee id).
      orderingKey,
      idempotencyKey,
      parentId: options.parentId ?? null,
      createdAt: now,
      runAt: options.runAt ?? now,
      // Recorded for good: the instance always continues on this version's handler.
      version: integration.version ?? null,
      traceparent:
        this.tracing === null
          ? options.traceparent === undefined
            ? null
            : (normalTraceparent(options.traceparent) ?? null)
          : this.acceptSpan(instanceId, integration, tracking, options),
    };
  }

  /**
   * The trace context a new instance's spans continue. A child continues the span that started it;
   * other work gets an accept span (under the trigger's incoming traceparent, if any) that its
   * attempts are children of, so that every instance has a trace from the moment it is accepted.
   */
  private acceptSpan(
    instanceId: string,
    integration: AnyIntegration,
    tracking: Record<string, string>,
    options: AcceptOptions,
  ): string | null {
    if (options.parentId !== undefined)
      return options.traceparent === undefined ? null : (normalTraceparent(options.traceparent) ?? null);
    const span = this.tracing!.start(
      `accept ${integration.id}`,
      SpanKind.PRODUCER,
      options.traceparent,
      trackingAttributes(
        { [ATTR.instance]: instanceId, [ATTR.integration]: integration.id, [ATTR.mode]: integration.mode },
        tracking,
      ),
    );
    span.end();
    return traceparentOf(span);
  }

  /**
   * Stores prepared instances in one transaction (shared with other accepts of the same tick) and
   * resolves only after the commit. A repeated idempotency key with a different input is refused.
   */
  async acceptPrepared(rows: NewInstance[]): Promise<Accepted[]> {
    if (this.closed) throw new ShuttingDownError();
    if (rows.length === 0) return [];
    const outcomes = this.groupCommit
      ? await this.batcher.push(rows)
      : await this.store.insertInstances(rows);
    // One pass, and no map in the usual case of a single integration per call (every HTTP accept).
    const accepted: Accepted[] = [];
    let first: { integrationId: string; mode: NewInstance['mode']; count: number } | null = null;
    let others: Map<string, { mode: NewInstance['mode']; count: number }> | null = null;
    for (let index = 0; index < outcomes.length; index++) {
      const outcome = outcomes[index]!;
      const row = rows[index]!;
      if (!outcome.created && row.inputHash !== null && outcome.inputHash !== row.inputHash) {
        throw new IdempotencyConflictError(row.idempotencyKey ?? '', outcome.id);
      }
      accepted.push({ instanceId: outcome.id, status: outcome.status, created: outcome.created });
      if (!outcome.created) continue;
      if (first === null) first = { integrationId: row.integrationId, mode: row.mode, count: 1 };
      else if (first.integrationId === row.integrationId) first.count++;
      else {
        others ??= new Map();
        const entry = others.get(row.integrationId) ?? { mode: row.mode, count: 0 };
        entry.count++;
        others.set(row.integrationId, entry);
      }
    }
    if (first === null) return accepted;
    this.observer.accepted(first.integrationId, first.mode, first.count);
    if (others !== null) {
      for (const [integrationId, { mode, count }] of others)
        this.observer.accepted(integrationId, mode, count);
    }
    this.waker.wake();
    return accepted;
  }

  /** Accepts one durable instance: resolves once it is committed. */
  async accept(
    integration: string | AnyIntegration,
    input: unknown,
    options: AcceptOptions = {},
  ): Promise<Accepted> {
    const [accepted] = await this.acceptPrepared([this.prepare(integration, input, options)]);
    return accepted!;
  }

  /** Runs an async integration with `input`, or a scheduled one outside its cron with parameter overrides. */
  async runNow(integrationId: string, options: RunNowOptions = {}): Promise<Accepted> {
    const integration = this.registry.integration(integrationId);
    if (integration.mode === 'sync') throw new WrongModeError(integration.id, 'sync', 'be run now');
    const input =
      integration.mode === 'scheduled'
        ? { scheduledFor: null, parameters: options.parameters ?? {} }
        : options.input;
    return this.accept(integration, input, {
      ...(options.idempotencyKey ? { idempotencyKey: options.idempotencyKey } : {}),
    });
  }

  /** `ctx.start`: one child, keyed by (parent, call) so that a repeated attempt finds the first. */
  async startChild(
    parent: InstanceWork,
    call: number,
    integration: AnyIntegration | string,
    input: unknown,
    options?: StartOptions,
  ): Promise<StartedInstance> {
    const accepted = await this.accept(integration, input, {
      idempotencyKey: options?.idempotencyKey ?? `${parent.id}:start:${call}`,
      parentId: parent.id,
      ...(parent.traceparent === null ? {} : { traceparent: parent.traceparent }),
    });
    return { instanceId: accepted.instanceId, created: accepted.created } satisfies StartedInstance;
  }

  /** `ctx.startMany`: children in chunks, keyed by (parent, call, index) so that a repeat finds the first. */
  async startChildren(
    parent: InstanceWork,
    call: number,
    integration: AnyIntegration | string,
    inputs: Iterable<unknown> | AsyncIterable<unknown>,
    options?: StartManyOptions,
    onChunk?: (totals: { count: number; created: number }) => void,
  ): Promise<{ count: number; created: number }> {
    const chunkSize = Math.max(1, options?.chunkSize ?? 1_000);
    let chunk: NewInstance[] = [];
    let count = 0;
    let created = 0;
    const flush = async () => {
      if (chunk.length === 0) return;
      const rows = chunk;
      chunk = [];
      // Straight to the store, one transaction per chunk: a chunk is already a batch.
      const outcomes = await this.store.insertInstances(rows);
      for (const outcome of outcomes) if (outcome.created) created++;
      // Children this process does not run are another pool's work: no claim attempt per chunk.
      if (this.registry.runnableIds.includes(rows[0]!.integrationId)) this.waker.wake();
      onChunk?.({ count, created });
    };
    const target = this.registry.find(typeof integration === 'string' ? integration : integration?.id);
    const validated =
      isRecordSource(inputs) && target?.input !== undefined && inputs.validatedBy(target.input);
    // Every child continues the parent's trace (the span that started them, when tracing).
    const traced = parent.traceparent === null ? {} : { traceparent: parent.traceparent };
    const prepareChild = (input: unknown): NewInstance => {
      const row = this.prepare(
        integration,
        input,
        {
          // Zero-padded, so that a parent's keys are in index order: appended, not scattered.
          idempotencyKey: `${parent.id}:start:${call}:${String(count).padStart(10, '0')}`,
          parentId: parent.id,
          ...traced,
        },
        { hashed: false, validated },
      );
      row.announce = false;
      count++;
      return row;
    };
    // A record source hands out whole batches: no promise per record, only per chunk.
    if (isRecordSource(inputs)) {
      for await (const batch of inputs.batches()) {
        for (const input of batch) {
          chunk.push(prepareChild(input));
          if (chunk.length >= chunkSize) await flush();
        }
      }
    } else {
      for await (const input of inputs as AsyncIterable<unknown>) {
        chunk.push(prepareChild(input));
        if (chunk.length >= chunkSize) await flush();
      }
    }
    await flush();
    return { count, created };
  }

  get fileClaims(): FileClaims {
    return this.store;
  }

  countChildren(parentId: string): Promise<ChildCounts> {
    return this.store.countChildren(parentId);
  }

  async storedParameters(integrationId: string): Promise<Parameters> {
    return (await this.store.getSchedule(integrationId))?.parameters ?? {};
  }

  /** Writes the monitoring records of sync instances, off the response path. */
  syncRecorder(logger: Logger, options?: SyncRecorderOptions): SyncRecorder {
    return new SyncRecorder(this.store, logger, options);
  }

  /** Refuses every accept from now on (the engine is stopping). */
  close(): void {
    this.closed = true;
  }

  /** Resolves once every accept pushed so far is committed. */
  drain(): Promise<void> {
    return this.batcher.drain();
  }
}

/** Validates an input against the integration's schema; returns the parsed value. */
function validateInput(integration: AnyIntegration, input: unknown): unknown {
  if (!integration.input) return input;
  const result = integration.input.safeParse(input);
  if (result.success) return result.data;
  throw new InvalidInputError(
    result.error.issues.map((issue: { path: PropertyKey[]; message: string }) => ({
      path: issue.path.map(String).join('.'),
      message: issue.message,
    })),
  );
}

/**
 * Checks the input of a new instance or of a rerun: an async integration's input against its
 * schema, a scheduled one's parameters against the declared ones. Returns the value to store.
 */
export function checkInput(integration: AnyIntegration, input: unknown): unknown {
  return integration.mode === 'scheduled'
    ? checkScheduledInput(integration.parameters ?? {}, input)
    : validateInput(integration, input);
}

function hashInput(inputJson: string): string {
  return createHash('sha256').update(inputJson).digest('base64url');
}

/**
 * The tracking values and keys of an accept that no store can hold as text (a NUL character, half
 * of a surrogate pair), or null. The input itself is stored as JSON, escaped; these are stored as
 * text, and a database that refused one would fail every accept of the same transaction with it.
 */
function unstorableKeys(
  def: AsyncDefinition<any>,
  tracking: Record<string, string>,
  orderingKey: string | null,
  idempotencyKey: string | null,
): InputIssue[] | null {
  // No closure and no array per accept: the issues list is made only when there is an issue.
  let issues: InputIssue[] | null = null;
  for (const name in tracking) {
    if (!isStorableText(tracking[name]!)) {
      issues = withUnstorable(issues, `Tracking field "${name}"`, def.track?.[name]);
    }
  }
  if (orderingKey !== null && !isStorableText(orderingKey)) {
    issues = withUnstorable(issues, 'The ordering key', def.orderingKey);
  }
  if (idempotencyKey !== null && !isStorableText(idempotencyKey)) {
    issues = withUnstorable(issues, 'The idempotency key', undefined);
  }
  return issues;
}

function withUnstorable(issues: InputIssue[] | null, what: string, selector: unknown): InputIssue[] {
  const path = typeof selector === 'string' ? selector : '';
  const list = issues ?? [];
  list.push({ path, message: `${what} has a NUL character or half of a surrogate pair` });
  return list;
}
