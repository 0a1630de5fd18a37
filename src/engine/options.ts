/**
 * The engine's public option and result types, apart from the facade so that its parts can share
 * them without importing the facade.
 */
import type { Logger } from 'pino';
import type { AlertsOptions } from '../alerts/options.js';
import type { Connection } from '../connections/connection.js';
import type { RetentionOptions } from '../define/config.js';
import type { AnyIntegration, ChildCounts } from '../define/integration.js';
import type { ActivityWebhookOptions } from '../feeds/activity-webhook.js';

export type { RetentionOptions };

import type { ActivityEvent, Instance, InstanceStatus, Run, Step, Wait } from '../model.js';
import type { Store } from '../store/store.js';
import type { TracingOptions } from '../tracing/tracing.js';
import type { Clock } from './clock.js';
import type { EngineObserver } from './observer.js';
import type { SlotEvent } from './scheduler.js';

export interface EngineOptions {
  integrations: AnyIntegration[];
  /** A store, or a store URL to open (the engine then closes it on stop). */
  store?: Store | string;
  /** Instances this process runs at the same time. Default 50. */
  concurrency?: number;
  /** Most instances claimed in one statement. Default 200. */
  claimBatch?: number;
  /**
   * Instances claimed ahead of free slots, so that the next claim overlaps the handlers running
   * now. Only while handlers are quick (under 50 ms on average): slow work is left in the store
   * for other processes. Default: as `concurrency`; 0 turns it off.
   */
  prefetch?: number;
  /** Lease length in ms, renewed at a third of it. Default 30 s. */
  leaseMs?: number;
  /** Safety-net poll for due work. Default 1 s. */
  pollIntervalMs?: number;
  /** False for an API-only process that accepts but runs nothing. Default true. */
  worker?: boolean;
  /**
   * Ids of the integrations this process runs (a dedicated worker pool); the others are accepted
   * and started as children but run elsewhere. Default: every async and scheduled integration.
   */
  run?: string[];
  /** Whether this process fires cron slots. Several processes may: each slot fires once. Default: as `worker`. */
  scheduler?: boolean;
  /** Told about every cron slot this process handled (fired, skipped, or taken by another process). */
  onSlot?: (event: SlotEvent) => void;
  /** One transaction for all accepts (and all events sent) of a tick (default), or one each (for comparison). */
  groupCommit?: boolean;
  /** How long stop() lets running attempts finish before releasing their leases. Default 10 s. */
  shutdownGraceMs?: number;
  clock?: Clock;
  logger?: Logger;
  /** How long finished instances are kept, per outcome, and how often the purge runs; `false` keeps everything. */
  retention?: RetentionOptions | false;
  /**
   * Connection limits (concurrency, rate) and circuits held for all processes of the store
   * together (docs/connections.md, "Limits shared by processes"). Default off: `tandem start` turns
   * it on for a PostgreSQL store, and on SQLite when it splits the work into several processes.
   */
  sharedLimits?: boolean;
  /** Connections to applications, for `ctx.call(connection or id, …)`. */
  connections?: Connection[];
  /** Watchers of accepts, starts and finishes (e.g. metrics). */
  observers?: EngineObserver[];
  /** Recorded with leases; defaults to host:pid:random. */
  workerId?: string;
  /** Business events for `ctx.waitForEvent` (docs/semantics.md, "Waits"). */
  events?: {
    /** A wait also takes a matching event received this long before it began; events are kept this long. Default 1 h. */
    lookBackMs?: number;
  };
  /** The address partners reach this deployment at: callback URLs begin with it. Default: where the server listens. */
  publicUrl?: string;
  /** Alerts on failures, circuits, missed slots and the backlog (docs/alerts.md). */
  alerts?: AlertsOptions;
  /** Sends the activity stream to a URL as CloudEvents (from a worker process; one at a time). */
  activityWebhook?: ActivityWebhookOptions;
  /**
   * OpenTelemetry traces (docs/tracing.md): a tracer provider, or an OTLP endpoint; `false` turns
   * them off. Default: on when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `…_TRACES_ENDPOINT`) is set.
   */
  tracing?: TracingOptions | false;
}

export interface AcceptOptions {
  idempotencyKey?: string;
  parentId?: string;
  /**
   * The W3C traceparent the instance continues: a trigger's incoming one, or (for a child) the
   * span that started it. Invalid values are ignored.
   */
  traceparent?: string;
  /** Do not run before this time (ms since epoch). */
  runAt?: number;
}

export interface Accepted {
  instanceId: string;
  status: InstanceStatus;
  /** False when the idempotency key returned an earlier instance. */
  created: boolean;
}

/** What `runNow` starts: input for an async integration, parameter overrides for a scheduled one. */
export interface RunNowOptions {
  input?: unknown;
  /** Parameter overrides for this instance only; strings are converted to the declared types. */
  parameters?: Record<string, unknown>;
  idempotencyKey?: string;
}

/** An instance and the counts of its children, for progress displays. */
export interface Progress {
  instance: Instance;
  children: ChildCounts;
}

export interface InstanceDetail {
  instance: Instance;
  runs: Run[];
  steps: Step[];
  events: ActivityEvent[];
  /** The instance's durable waits (every run), oldest first. */
  waits: Wait[];
}
