/** Mapping between database rows and the model, shared by the SQL stores. */
import { parseStoredJson } from '../json.js';
import {
  allows,
  runStatusOf,
  type Transition,
  type WaitKind,
  type WaitResolution,
} from '../lifecycle/index.js';
import type {
  ActivityEvent,
  ActivityType,
  ErrorInfo,
  Instance,
  InstanceCloudEvent,
  InstanceStatus,
  InstanceWork,
  Mode,
  RerunFrom,
  Run,
  RunStatus,
  Step,
  StepStatus,
} from '../model.js';
import { traceIdOf } from '../tracing/traceparent.js';
import type { TransitionOutcome, WaitRecord } from './store.js';

export interface InstanceRow {
  seq: number | string;
  id: string;
  integration_id: string;
  mode: string;
  status: string;
  input: string;
  output: string | null;
  error: string | null;
  run: number;
  run_from: string | null;
  run_started_at: number | string;
  attempt: number;
  tracking: string | Record<string, string> | null;
  ordering_key: string | null;
  idempotency_key: string | null;
  parent_id: string | null;
  created_at: number | string;
  updated_at: number | string;
  run_at: number | string;
  started_at: number | string | null;
  finished_at: number | string | null;
  duration_ms: number | string | null;
  version: string | null;
  acknowledged_at?: number | string | null;
  acknowledged_note?: string | null;
  traceparent?: string | null;
}

/** Tracking values: JSON text (SQLite) or an already parsed JSONB object (PostgreSQL). */
function parseTracking(value: string | Record<string, string> | null): Record<string, string> {
  if (value === null) return {};
  return typeof value === 'string' ? (JSON.parse(value) as Record<string, string>) : value;
}

const num = (value: number | string): number => (typeof value === 'number' ? value : Number(value));
const numOrNull = (value: number | string | null): number | null => (value === null ? null : num(value));

function errorFromJson(text: string | null): ErrorInfo | null {
  return text === null ? null : (JSON.parse(text) as ErrorInfo);
}

export function instanceFromRow(row: InstanceRow): Instance {
  return {
    id: row.id,
    seq: num(row.seq),
    integrationId: row.integration_id,
    mode: row.mode as Mode,
    status: row.status as InstanceStatus,
    input: parseStoredJson(row.input),
    output: parseStoredJson(row.output),
    error: errorFromJson(row.error),
    run: row.run,
    attempt: row.attempt,
    tracking: parseTracking(row.tracking),
    orderingKey: row.ordering_key,
    idempotencyKey: row.idempotency_key,
    parentId: row.parent_id,
    createdAt: num(row.created_at),
    updatedAt: num(row.updated_at),
    runAt: num(row.run_at),
    startedAt: numOrNull(row.started_at),
    finishedAt: numOrNull(row.finished_at),
    durationMs: numOrNull(row.duration_ms),
    version: row.version ?? null,
    acknowledgedAt: numOrNull(row.acknowledged_at ?? null),
    acknowledgedNote: row.acknowledged_note ?? null,
    traceId: traceIdOf(row.traceparent),
  };
}

/** Columns a claim returns, and their mapping. */
export const WORK_COLUMNS =
  'seq, id, integration_id, input, run, attempt, ordering_key, parent_id, tracking, started_at, version, traceparent';

export type WorkRow = Pick<
  InstanceRow,
  | 'seq'
  | 'id'
  | 'integration_id'
  | 'input'
  | 'run'
  | 'attempt'
  | 'ordering_key'
  | 'parent_id'
  | 'tracking'
  | 'started_at'
  | 'version'
  | 'traceparent'
>;

export function workFromRow(row: WorkRow): InstanceWork {
  return {
    id: row.id,
    seq: num(row.seq),
    integrationId: row.integration_id,
    input: parseStoredJson(row.input),
    run: row.run,
    attempt: row.attempt,
    orderingKey: row.ordering_key,
    parentId: row.parent_id,
    tracking: parseTracking(row.tracking),
    // A claim sets it when it is null, so a claimed row always has one.
    startedAt: num(row.started_at ?? 0),
    version: row.version ?? null,
    traceparent: row.traceparent ?? null,
  };
}

/** The current run, derived from the instance row (archived runs live in the runs table). */
export function currentRunFromRow(row: InstanceRow): Run {
  const runStatus = runStatusOf(row.status as InstanceStatus);
  return {
    instanceId: row.id,
    run: row.run,
    from: row.run_from as RerunFrom | null,
    status: runStatus,
    input: parseStoredJson(row.input),
    startedAt: num(row.run_started_at),
    finishedAt: runStatus === 'running' ? null : numOrNull(row.finished_at),
    error: errorFromJson(row.error),
  };
}

export interface RunRow {
  instance_id: string;
  run: number;
  run_from: string | null;
  status: string;
  input: string;
  error: string | null;
  started_at: number | string;
  finished_at: number | string | null;
}

export function runFromRow(row: RunRow): Run {
  return {
    instanceId: row.instance_id,
    run: row.run,
    from: row.run_from as RerunFrom | null,
    status: row.status as RunStatus,
    input: parseStoredJson(row.input),
    startedAt: num(row.started_at),
    finishedAt: numOrNull(row.finished_at),
    error: errorFromJson(row.error),
  };
}

export interface StepRow {
  instance_id: string;
  run: number;
  name: string;
  position: number;
  status: string;
  output: string | null;
  error: string | null;
  attempt: number;
  started_at: number | string;
  finished_at: number | string;
  seeded: number | boolean;
}

export function stepFromRow(row: StepRow): Step {
  return {
    instanceId: row.instance_id,
    run: row.run,
    name: row.name,
    position: row.position,
    status: row.status as StepStatus,
    output: parseStoredJson(row.output),
    error: errorFromJson(row.error),
    attempt: row.attempt,
    startedAt: num(row.started_at),
    finishedAt: num(row.finished_at),
    seeded: row.seeded === true || row.seeded === 1,
  };
}

export interface EventRow {
  id: number | string;
  instance_id: string;
  integration_id: string;
  run: number;
  type: string;
  at: number | string;
  data: string | Record<string, unknown>;
}

export function eventFromRow(row: EventRow): ActivityEvent {
  return {
    id: num(row.id),
    instanceId: row.instance_id,
    integrationId: row.integration_id,
    run: row.run,
    type: row.type as ActivityType,
    at: num(row.at),
    data: (typeof row.data === 'string' ? JSON.parse(row.data) : row.data) as ActivityEvent['data'],
  };
}

export interface WaitRow {
  instance_id: string;
  run: number;
  name: string;
  kind: string;
  event: string | null;
  match_key: string | null;
  match_shape: string | null;
  expires_at: number | string | null;
  look_back_from: number | string | null;
  created_at: number | string;
  resolved_at: number | string | null;
  resolution: string | null;
  payload: string | null;
  event_id: string | null;
  event_seq: number | string | null;
}

export function waitFromRow(row: WaitRow): WaitRecord {
  return {
    instanceId: row.instance_id,
    run: row.run,
    name: row.name,
    kind: row.kind as WaitKind,
    event: row.event,
    matchKey: row.match_key,
    matchShape: row.match_shape,
    expiresAt: numOrNull(row.expires_at),
    lookBackFrom: numOrNull(row.look_back_from),
    createdAt: num(row.created_at),
    resolvedAt: numOrNull(row.resolved_at),
    resolution: row.resolution as WaitResolution | null,
    payloadJson: row.payload,
    eventId: row.event_id,
  };
}

/** Tracking values in slot order, for the three indexed columns. */
export function trackingSlots(
  tracking: Record<string, string>,
): [string | null, string | null, string | null] {
  const values = Object.values(tracking);
  return [values[0] ?? null, values[1] ?? null, values[2] ?? null];
}

const TRACKING_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/** Splits a tracking filter `"value"` or `"name=value"`. */
export function parseTrackingFilter(filter: string): { name: string | null; value: string } {
  const eq = filter.indexOf('=');
  if (eq > 0) {
    const name = filter.slice(0, eq);
    if (TRACKING_NAME.test(name)) return { name, value: filter.slice(eq + 1) };
  }
  return { name: null, value: filter };
}

export const asArray = <T>(value: T | T[] | undefined): T[] | undefined =>
  value === undefined ? undefined : Array.isArray(value) ? value : [value];

/**
 * Sorts requested ids into outcomes by a lifecycle transition's rule: not found, invalid state, or done (with
 * the run the instance will be in). Returns the rows to change alongside.
 */
export function sortTransition(
  ids: string[],
  rows: InstanceRow[],
  transition: Transition,
  runAfter: (row: InstanceRow) => number,
): { outcomes: TransitionOutcome[]; eligible: InstanceRow[] } {
  const byId = new Map(rows.map((r) => [r.id, r]));
  const outcomes: TransitionOutcome[] = [];
  const eligible: InstanceRow[] = [];
  for (const id of ids) {
    const row = byId.get(id);
    if (!row) outcomes.push({ id, outcome: 'not-found' });
    else if (!allows(transition, row))
      outcomes.push({ id, outcome: 'invalid-state', status: row.status as InstanceStatus });
    else {
      eligible.push(row);
      outcomes.push({ id, outcome: 'done', run: runAfter(row) });
    }
  }
  return { outcomes, eligible };
}

/** A row of `cloud_events`: the CloudEvent an instance came as. */
export interface CloudEventRow {
  instance_id: string;
  event_id: string;
  source: string;
  type: string;
  subject: string | null;
}

/** The stored columns of a CloudEvent, in the order of `cloud_events`' columns. */
export function cloudEventFields(instanceId: string, event: InstanceCloudEvent) {
  return [instanceId, event.id, event.source, event.type, event.subject] as const;
}

/** The column of a searched CloudEvent attribute (only these three are ever put into SQL text). */
export function cloudEventColumn(attribute: 'type' | 'source' | 'subject'): string {
  const column = ({ type: 'type', source: 'source', subject: 'subject' } as const)[attribute];
  if (column === undefined) throw new Error(`No CloudEvent attribute "${String(attribute)}" is searchable`);
  return column;
}

/** Sets `cloudEvent` on the instances that have a row (read in one query for a page). */
export function attachCloudEvents(instances: Instance[], rows: CloudEventRow[]): Instance[] {
  if (rows.length === 0) return instances;
  const byId = new Map(rows.map((row) => [row.instance_id, row]));
  for (const instance of instances) {
    const row = byId.get(instance.id);
    if (row) {
      instance.cloudEvent = { id: row.event_id, source: row.source, type: row.type, subject: row.subject };
    }
  }
  return instances;
}
