/**
 * The names of the lifecycle: every instance status and every activity event type. This file
 * imports nothing, so that the vocabulary (`model.ts`) can name them without a cycle.
 */

/** Every status, in lifecycle order (the order lists and counts show them in). */
export const INSTANCE_STATUSES = [
  'queued',
  'running',
  'retrying',
  'waiting',
  'succeeded',
  'failed',
  'cancelled',
] as const;

/**
 * `queued → running → succeeded | retrying → running … | failed`; `running → waiting → queued` for a
 * durable wait (`ctx.sleep`, `ctx.waitForEvent`, a callback); `cancelled` from any state but a success.
 */
export type InstanceStatus = (typeof INSTANCE_STATUSES)[number];

/** Every activity event type, in the order an instance's life meets them. */
export const ACTIVITY_TYPES = [
  'accepted',
  'started',
  'step.started',
  'step.succeeded',
  'step.failed',
  'connection.call',
  'retry.scheduled',
  'lease.expired',
  'wait.started',
  'wait.resumed',
  'succeeded',
  'failed',
  'rerun',
  'cancelled',
  'acknowledged',
  'unacknowledged',
  'progress',
] as const;

export type ActivityType = (typeof ACTIVITY_TYPES)[number];

/** What an instance waits for. */
export type WaitKind = 'sleep' | 'event' | 'callback';
/** How a wait ended: a sleep's time came, an event or a callback arrived, or the timeout passed. */
export type WaitResolution = 'time' | 'event' | 'callback' | 'timeout';
