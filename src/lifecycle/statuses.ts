/**
 * The statuses of an instance and the sets the rest of Tandem reasons with. A new status is added
 * here (and given its transitions in `transitions.ts`); stores, the executor, the API and the
 * console read the sets from this module rather than listing statuses themselves.
 */

import { INSTANCE_STATUSES, type InstanceStatus } from './names.js';

export { INSTANCE_STATUSES, type InstanceStatus };

/** A set of statuses, kept as a readonly list (its SQL form is rendered by `sql.ts`). */
export type StatusSet = readonly InstanceStatus[];

const set = (...statuses: InstanceStatus[]): StatusSet => Object.freeze(statuses);

/**
 * Claimable once `run_at` is due. A `waiting` instance's `run_at` is its wait's wake-up time (a
 * sleep's end, a timeout, or {@link NEVER}); an event or a callback that resumes it moves it to
 * `queued`, due at once.
 */
export const DUE = set('queued', 'retrying', 'waiting');
/** Held by a worker under a lease. */
export const LEASED = set('running');
/** Still has work ahead of it: counts as active in statistics and for a schedule's overlap rule. */
export const ACTIVE = set('queued', 'running', 'retrying', 'waiting');
/** Waiting durably for time, an event or a callback: holds no lease and no worker slot. */
export const WAITING = set('waiting');
/** The `run_at` of a wait without a timeout: the largest time a Date can hold (never due). */
export const NEVER = 8_640_000_000_000_000;
/** Final: the run is over; a durable instance in one of them may be rerun. */
export const FINAL = Object.freeze(['succeeded', 'failed', 'cancelled'] as const);
/** Final and timed: a duration and an attempt count that statistics use. */
export const MEASURED = set('succeeded', 'failed');
/**
 * Holds its ordering key: instances behind it with the same key wait. A failed instance keeps
 * holding it until it is rerun or cancelled, so that order is never broken by a failure.
 */
export const HOLDS_ORDER = set('queued', 'running', 'retrying', 'waiting', 'failed');
/** Retention may delete these once old enough (failed ones by their own cutoffs). */
export const PURGEABLE = set('succeeded', 'cancelled');

/** A run's status: running until the instance reaches a final status, then that status. */
export type RunStatus = 'running' | (typeof FINAL)[number];

export function isFinal(status: InstanceStatus): status is (typeof FINAL)[number] {
  return (FINAL as readonly string[]).includes(status);
}

export function runStatusOf(status: InstanceStatus): RunStatus {
  return isFinal(status) ? status : 'running';
}

/** Counts of instances by status (children of a fan-out, an integration's figures), with their total. */
export type StatusCounts = Record<InstanceStatus, number> & { total: number };

export function emptyCounts(): StatusCounts {
  const counts = { total: 0 } as StatusCounts;
  for (const status of INSTANCE_STATUSES) counts[status] = 0;
  return counts;
}
