/**
 * Activity event types, the data each carries, and one builder for all of them. Every layer that
 * writes events (the executor, the stores' TypeScript, the stores' SQL) builds them from here: the
 * TypeScript through {@link activity}, the SQL through `eventColumns` in `sql.ts`, which takes the
 * data's keys from {@link EVENT_FIELDS}.
 */
import type { Actor, Json, NewActivityEvent } from '../model.js';
import type { ActivityType, InstanceStatus, WaitKind, WaitResolution } from './names.js';

export { ACTIVITY_TYPES, type ActivityType, type WaitKind, type WaitResolution } from './names.js';

/** Free-form data (a call record, a handler's progress): masked by the executor before it is stored. */
type Open = Record<string, Json>;

/** The data of each event type. */
export interface ActivityData {
  /**
   * `source`: started by an operator from the console (absent: by a trigger, the API or a parent);
   * `actor`: the management token that started it (absent: a trigger or a parent).
   */
  accepted: {
    parentId?: string;
    source?: 'console';
    actor?: Actor;
    /** Started by a CloudEvent on an async trigger: its attributes. */
    cloudEvent?: { id: string; source: string; type: string; subject: string | null };
  };
  started: { attempt: number };
  'step.started': { step: string; attempt: number };
  'step.succeeded': { step: string; durationMs: number };
  'step.failed': { step: string; error: string; durationMs: number };
  'connection.call': Open;
  'retry.scheduled': {
    attempt: number;
    runAt: number;
    error: string;
    /** The error's code (`circuit-open`, `retry-after`, …), and the connection it came from: the timeline names the wait. */
    code?: string;
    connection?: string;
    countsAsAttempt: boolean;
    attemptMs: number;
  };
  'lease.expired': { attempt: number; owner: string | null };
  /** The handler reached a wait: `until` is its wake-up time or timeout (null: none). */
  'wait.started': {
    step: string;
    kind: WaitKind;
    until: number | null;
    event?: string;
    attemptMs: number;
  };
  /**
   * The wait resolved: by its time (a sleep), an event, a callback, or its timeout. `actor`: who sent
   * the business event (`POST /api/events`), when that request itself woke the waiting instance.
   */
  'wait.resumed': { step: string; by: WaitResolution; eventId?: string | null; actor?: Actor };
  succeeded: { attempt: number; durationMs: number; attemptMs: number };
  failed: { attempt: number; error: string; code?: string; durationMs: number; attemptMs: number };
  /** `actor` on an operator's writes: the management token that made the request. */
  rerun: { from: string; previousStatus: InstanceStatus; inputReplaced: boolean; actor?: Actor };
  cancelled: { previousStatus: InstanceStatus; actor?: Actor };
  /** An operator acknowledged the failure (it leaves the default errors view). */
  acknowledged: { note: string | null; actor?: Actor };
  /** An operator took the acknowledgement back (the failure shows again). */
  unacknowledged: { acknowledgedAt: number; actor?: Actor };
  progress: Open;
}

/** The fixed keys of the events that SQL writes (it builds their JSON object column by column). */
export const EVENT_FIELDS = {
  started: ['attempt'],
  'lease.expired': ['attempt', 'owner'],
  'wait.resumed': ['step', 'by', 'eventId'],
} as const satisfies { [T in ActivityType]?: readonly (keyof ActivityData[T])[] };

export type SqlEventType = keyof typeof EVENT_FIELDS;

/** Which instance, run and time an event is about. */
export interface EventHead {
  instanceId: string;
  integrationId: string;
  run: number;
  at: number;
}

/**
 * The data of a new instance's `accepted` event: its parent, where and by whom an operator started
 * it, or the CloudEvent that started it.
 */
export function acceptedData(row: {
  parentId: string | null;
  source?: 'console';
  actor?: Actor;
  cloudEvent?: ActivityData['accepted']['cloudEvent'];
}): ActivityData['accepted'] {
  if (row.source === undefined && row.actor === undefined && row.cloudEvent === undefined)
    return row.parentId ? { parentId: row.parentId } : {};
  return {
    ...(row.parentId ? { parentId: row.parentId } : {}),
    ...(row.source === undefined ? {} : { source: row.source }),
    ...(row.actor === undefined ? {} : { actor: row.actor }),
    ...(row.cloudEvent === undefined ? {} : { cloudEvent: row.cloudEvent }),
  };
}

/** `{ actor }` when a request names one, else nothing: spread into an operator write's event data. */
export function actorData(actor: Actor | undefined): { actor?: Actor } {
  return actor === undefined ? {} : { actor };
}

/** Builds a new activity event of a type, with data of that type's shape. */
export function activity<T extends ActivityType>(
  type: T,
  head: EventHead,
  data: ActivityData[T],
): NewActivityEvent {
  return {
    instanceId: head.instanceId,
    integrationId: head.integrationId,
    run: head.run,
    type,
    at: head.at,
    data: data as Record<string, Json>,
  };
}

/** An activity event's stored fields, in the order of the events table's columns (instance_id, integration_id, run, type, at, data). */
export function eventFields(event: NewActivityEvent): [string, string, number, string, number, string] {
  return [event.instanceId, event.integrationId, event.run, event.type, event.at, JSON.stringify(event.data)];
}
