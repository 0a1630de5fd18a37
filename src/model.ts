/**
 * Tandem's vocabulary, written down once.
 *
 * - **Integration** — a typed TypeScript function that connects business applications, with a
 *   `mode`: `sync` (the caller waits for the answer), `async` (durable work, acknowledged once
 *   stored) or `scheduled` (async work started by the clock).
 * - **Instance** — one execution of an integration. Sync instances are recorded for monitoring
 *   only; async and scheduled instances are durable work items that move through {@link InstanceStatus}.
 * - **Run** — one pass of an instance from `queued` to a final state. A rerun starts a new run of
 *   the same instance; earlier runs and their steps are kept as history.
 * - **Attempt** — one execution of the handler within a run. A failed attempt is retried with
 *   backoff until the retry policy is exhausted.
 * - **Step** — `ctx.step(name, fn)`: a durable unit inside a handler. Its JSON result is stored per
 *   (instance, run, name); later attempts of the same run return the stored result instead of
 *   executing it again.
 * - **Lease** — the claim a worker holds on a running instance, renewed by a heartbeat. An expired
 *   lease is taken over by another worker; writes of an attempt whose lease was lost are refused.
 * - **Activity event** — an append-only record of something that happened to an instance.
 * - **Tracking fields** — up to three business identifiers (`orderId`, `employeeId`, …) per
 *   instance, indexed for search.
 * - **Ordering key** — instances sharing one run one at a time, in accept order.
 * - **Hand-off** — `ctx.start()` from a handler: child instances committed atomically with the
 *   handler's outcome (sync: before the response is written; async: idempotently per parent).
 */

import type { ActivityType, InstanceStatus, WaitKind, WaitResolution } from './lifecycle/names.js';
import type { RunStatus, StatusCounts } from './lifecycle/statuses.js';

export { INSTANCE_STATUSES } from './lifecycle/names.js';
// Statuses and event types are the lifecycle's (src/lifecycle): named here as vocabulary.
export type { ActivityType, InstanceStatus, RunStatus };

export type Mode = 'sync' | 'async' | 'scheduled';

/** Children of an instance by status, with their total. */
export type ChildCounts = StatusCounts;

/** A schedule's parameter values (`defineIntegration({ parameters })`, `ctx.setParameters`). */
export type ParameterValue = string | number | boolean | null;
export type Parameters = Record<string, ParameterValue>;

/** Where a rerun starts: after the last succeeded step of the previous run, or from scratch. */
export type RerunFrom = 'failed-step' | 'start';

/** JSON values as stored. */
/**
 * What a management token may do: `viewer` reads (without input and output bodies unless its token
 * allows them), `operator` also reruns, cancels, acknowledges and runs now, `admin` does everything
 * (edits inputs, sends business events). Each role includes the ones before it.
 */
export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** Who made a state-changing request of the management API: recorded in the events it wrote. */
export interface Actor {
  role: Role;
  /**
   * The token's configured name (never its secret); null on a server without tokens (this machine
   * only). Not `token`: a field of that name is masked wherever events are shown.
   */
  tokenName: string | null;
}

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A stored error: enough to understand a failure without the process that saw it. */
export interface ErrorInfo {
  name: string;
  message: string;
  code?: string;
  stack?: string;
  /** Extra facts a typed error carries (HTTP status, body excerpt, connection id …). */
  details?: Record<string, Json>;
}

export interface Instance {
  id: string;
  /** Accept order, strictly increasing per store. */
  seq: number;
  integrationId: string;
  mode: Mode;
  status: InstanceStatus;
  input: Json;
  output: Json | null;
  error: ErrorInfo | null;
  /** Current run, 1-based. */
  run: number;
  /** Attempts made in the current run. */
  attempt: number;
  tracking: Record<string, string>;
  orderingKey: string | null;
  idempotencyKey: string | null;
  parentId: string | null;
  createdAt: number;
  updatedAt: number;
  /** When a queued or retrying instance becomes due. */
  runAt: number;
  /** When the current run's first attempt started (a rerun starts a new run); null before that. */
  startedAt: number | null;
  finishedAt: number | null;
  /**
   * The current run's duration in ms, from its first attempt's start to its final state (waits
   * between attempts and for children included); null until it is final. Statistics and advice
   * use it. See docs/semantics.md, "Durations".
   */
  durationMs: number | null;
  /** The integration's version it was accepted on (`defineIntegration({ version })`); null: unversioned. */
  version: string | null;
  /**
   * When an operator acknowledged the failure (it leaves the default errors view); null: not
   * acknowledged. A rerun clears it: the new run's outcome is news again.
   */
  acknowledgedAt: number | null;
  /** What the operator noted with the acknowledgement; null: nothing. */
  acknowledgedNote: string | null;
  /** The CloudEvent that started it on an async trigger (its context attributes); absent otherwise. */
  cloudEvent?: InstanceCloudEvent;
  /**
   * The W3C trace id of the instance's spans (its trigger's, or its parent's; docs/tracing.md);
   * null: accepted without tracing and without an incoming `traceparent`.
   */
  traceId: string | null;
}

/**
 * The context attributes kept of a CloudEvent that started an instance: searchable by `type`,
 * `source` and `subject`; `id` and `source` are its idempotency key.
 */
export interface InstanceCloudEvent {
  id: string;
  source: string;
  type: string;
  subject: string | null;
}

/** What a worker reads of an instance to run an attempt (a claim returns no more, to stay lean). */
export type InstanceWork = Pick<
  Instance,
  | 'id'
  | 'seq'
  | 'integrationId'
  | 'input'
  | 'run'
  | 'attempt'
  | 'orderingKey'
  | 'parentId'
  | 'tracking'
  | 'version'
> & {
  /** When the current run's first attempt started (set by the claim that started it). */
  startedAt: number;
  /** The W3C traceparent its spans continue; null: none stored. */
  traceparent: string | null;
};

export interface Run {
  instanceId: string;
  run: number;
  from: RerunFrom | null;
  status: RunStatus;
  input: Json;
  startedAt: number;
  finishedAt: number | null;
  error: ErrorInfo | null;
}

/** A durable wait of an instance (`ctx.sleep`, `ctx.waitForEvent`, `ctx.callback`), as shown. */
export interface Wait {
  run: number;
  /** The step name it is memoised under. */
  name: string;
  kind: WaitKind;
  /** Kind `event`: the event name and the payload fields it matches. */
  event: string | null;
  match: Record<string, Json> | null;
  createdAt: number;
  /** A sleep's end or the timeout; null: none. */
  until: number | null;
  /** Null while it waits. */
  resolvedAt: number | null;
  resolution: WaitResolution | null;
  /** The event that resolved it. */
  eventId: string | null;
}

export type StepStatus = 'succeeded' | 'failed';

export interface Step {
  instanceId: string;
  run: number;
  name: string;
  /** Order of the step within its run (0-based), as the handler reached it. */
  position: number;
  status: StepStatus;
  output: Json | null;
  error: ErrorInfo | null;
  /** Attempt of the run in which the step was last executed. */
  attempt: number;
  startedAt: number;
  finishedAt: number;
  /** True when the result was carried over from an earlier run by a rerun from the failed step. */
  seeded: boolean;
}

export interface ActivityEvent {
  /** Strictly increasing per store; the SSE event id. */
  id: number;
  instanceId: string;
  integrationId: string;
  run: number;
  type: ActivityType;
  at: number;
  data: Record<string, Json>;
}

/** What is stored for a new activity event; the store assigns the id. */
export type NewActivityEvent = Omit<ActivityEvent, 'id'>;
