/**
 * The instance state machine as data. Each transition names the statuses it may start from, the
 * status it leads to, the columns it sets and the activity events it writes. The stores render
 * their UPDATE statements, status conditions and event rows from these (`src/store/sql.ts`: SQL
 * text lives only under `src/store`); the executor
 * maps an attempt's outcome to its transition ({@link FINISH}); rules that decide in TypeScript
 * whether an operation applies (rerun, cancel) read {@link allows}.
 */
import type { ActivityType } from './activity.js';
import {
  ACTIVE,
  DUE,
  FINAL,
  INSTANCE_STATUSES,
  type InstanceStatus,
  LEASED,
  type StatusSet,
  WAITING,
} from './statuses.js';

/**
 * A column's new value, as data (the stores render it as SQL): a constant, `null`, a statement
 * parameter (each store binds the same names), a column of the row's current values, or a small
 * expression of those.
 */
export type Value =
  | null
  | number
  | { readonly param: string }
  | { readonly column: string }
  | { readonly plus: readonly [Value, Value] }
  | { readonly minus: readonly [Value, Value] }
  /** The first value, but not below the second (`greatest`). */
  | { readonly atLeast: readonly [Value, Value] }
  /** The first value that is not null (`coalesce`). */
  | { readonly firstOf: readonly [Value, Value] }
  /** Text joined from values and literal strings. */
  | { readonly join: readonly (Value | string)[] };

const param = (name: string): Value => ({ param: name });
const column = (name: string): Value => ({ column: name });

/** The lease columns: cleared by every transition that leaves `running`. */
export const LEASE_CLEARED = {
  claim_token: null,
  lease_owner: null,
  lease_until: null,
} as const satisfies Record<string, Value>;

export interface Transition {
  readonly name: string;
  /** Statuses it may start from; `new` for an instance that is being inserted. */
  readonly from: StatusSet | 'new';
  readonly to: InstanceStatus;
  /** Only for async and scheduled instances (a sync record is final when it is written). */
  readonly durableOnly?: boolean;
  /** Guarded by the claim token of the attempt that writes it (a lost lease refuses the write). */
  readonly leased?: boolean;
  /** Columns set besides `status`, in statement order. */
  readonly sets: Readonly<Record<string, Value>>;
  /** Activity events written with it, in order. */
  readonly events: readonly ActivityType[];
}

const define = <T extends Record<string, Omit<Transition, 'name'>>>(table: T) =>
  Object.freeze(
    Object.fromEntries(Object.entries(table).map(([name, t]) => [name, Object.freeze({ name, ...t })])),
  ) as { readonly [K in keyof T]: Transition & T[K] & { name: K } };

const CLAIM_SETS = {
  attempt: { plus: [column('attempt'), 1] },
  // Unique per claim: the claimer's token and the row's sequence number.
  claim_token: { join: [param('token'), '.', column('seq')] },
  lease_owner: param('owner'),
  lease_until: param('lease_until'),
  started_at: { firstOf: [column('started_at'), param('now')] },
  updated_at: param('now'),
} as const satisfies Record<string, Value>;

export const TRANSITIONS = define({
  /** An async request (or a hand-off's child) is stored: the acknowledgement follows this commit. */
  accept: { from: 'new', to: 'queued', sets: {}, events: ['accepted'] },
  /** A cron slot (or run-now) starts a scheduled instance; with overlap `skip`, not while one is {@link ACTIVE}. */
  fire: { from: 'new', to: 'queued', durableOnly: true, sets: {}, events: ['accepted'] },
  /** A worker takes a due instance under a lease and starts an attempt. */
  claim: { from: DUE, to: 'running', sets: CLAIM_SETS, events: ['started'] },
  /** A worker takes over an instance whose lease expired (its holder died) and starts an attempt. */
  takeOver: { from: LEASED, to: 'running', sets: CLAIM_SETS, events: ['lease.expired', 'started'] },
  /** The heartbeat renews a lease. */
  renew: {
    from: LEASED,
    to: 'running',
    leased: true,
    sets: { lease_until: param('lease_until') },
    events: [],
  },
  /** A step's result is stored (the step row; the instance stays running). */
  writeStep: { from: LEASED, to: 'running', leased: true, sets: {}, events: [] },
  /** The attempt succeeded: the run is over. */
  succeed: {
    from: LEASED,
    to: 'succeeded',
    leased: true,
    sets: {
      output: param('output'),
      error: null,
      finished_at: param('now'),
      duration_ms: param('duration'),
      updated_at: param('now'),
      ...LEASE_CLEARED,
    },
    events: ['succeeded'],
  },
  /** The attempt failed for good (permanent error or attempts used up): the run is over. */
  fail: {
    from: LEASED,
    to: 'failed',
    leased: true,
    sets: {
      error: param('error'),
      finished_at: param('now'),
      duration_ms: param('duration'),
      updated_at: param('now'),
      ...LEASE_CLEARED,
    },
    events: ['failed'],
  },
  /** The attempt failed and another one is due at `run_at` (`refund` 1: the wait did not use an attempt). */
  retry: {
    from: LEASED,
    to: 'retrying',
    leased: true,
    sets: {
      error: param('error'),
      run_at: param('run_at'),
      duration_ms: param('duration'),
      attempt: { minus: [column('attempt'), param('refund')] },
      updated_at: param('now'),
      ...LEASE_CLEARED,
    },
    events: ['retry.scheduled'],
  },
  /**
   * The handler reached a wait that has not resolved (`ctx.sleep`, `ctx.waitForEvent`, a
   * callback's `wait()`): the instance leaves the worker until `run_at` (the wake-up time, a
   * timeout, or `NEVER`). The attempt it used is given back: a wait is not a try.
   */
  suspend: {
    from: LEASED,
    to: 'waiting',
    leased: true,
    sets: {
      run_at: param('run_at'),
      attempt: { atLeast: [{ minus: [column('attempt'), 1] }, 0] },
      updated_at: param('now'),
      ...LEASE_CLEARED,
    },
    events: ['wait.started'],
  },
  /** An event or a callback resolved the wait: the instance is due at once, on any process. */
  wake: {
    from: WAITING,
    to: 'queued',
    sets: { run_at: param('now'), updated_at: param('now') },
    events: ['wait.resumed'],
  },
  /** A worker shutting down gives its instance back, due at once; the attempt it began does not count. */
  release: {
    from: LEASED,
    to: 'queued',
    leased: true,
    sets: {
      attempt: { atLeast: [{ minus: [column('attempt'), 1] }, 0] },
      ...LEASE_CLEARED,
      run_at: param('now'),
      updated_at: param('now'),
    },
    events: [],
  },
  /** A new run of a finished instance, from the start or after its last succeeded step. */
  rerun: {
    from: FINAL,
    to: 'queued',
    durableOnly: true,
    sets: {
      run: param('run'),
      run_from: param('run_from'),
      run_started_at: param('now'),
      input: param('input'),
      // From the start, the new run records the version it runs on: nothing stored ties it to the old one.
      version: param('version'),
      attempt: 0,
      output: null,
      error: null,
      started_at: null,
      finished_at: null,
      duration_ms: null,
      // The new run's outcome is news: an acknowledgement of the previous failure does not carry over.
      acknowledged_at: null,
      acknowledged_note: null,
      run_at: param('now'),
      updated_at: param('now'),
      ...LEASE_CLEARED,
    },
    events: ['rerun'],
  },
  /** An operator ends an instance that has not succeeded (a failed one included, to free its ordering key). */
  cancel: {
    from: ['queued', 'running', 'retrying', 'waiting', 'failed'],
    to: 'cancelled',
    durableOnly: true,
    sets: {
      finished_at: param('now'),
      updated_at: param('now'),
      duration_ms: { minus: [param('now'), column('started_at')] },
      ...LEASE_CLEARED,
    },
    events: ['cancelled'],
  },
});

/** Whether a transition may start from an instance in this mode and status. */
export function allows(transition: Transition, row: { mode: string; status: string }): boolean {
  if (transition.durableOnly && row.mode === 'sync') return false;
  return transition.from !== 'new' && (transition.from as readonly string[]).includes(row.status);
}

/** The transition that ends an attempt, by the outcome the executor decided. */
export const FINISH = {
  succeeded: TRANSITIONS.succeed,
  failed: TRANSITIONS.fail,
  retry: TRANSITIONS.retry,
  wait: TRANSITIONS.suspend,
} as const;

export type FinishKind = keyof typeof FINISH;

/** The event types that bring an instance into each status (the activity stream's status filter). */
export const EVENTS_INTO: Readonly<Record<InstanceStatus, readonly ActivityType[]>> = (() => {
  const into = Object.fromEntries(INSTANCE_STATUSES.map((s) => [s, [] as ActivityType[]])) as Record<
    InstanceStatus,
    ActivityType[]
  >;
  for (const t of Object.values(TRANSITIONS) as Transition[]) {
    const list = into[t.to];
    // The last event of a transition is the one that announces its status (a takeover's is `started`).
    const event = t.events.at(-1);
    if (event && !list.includes(event)) list.push(event);
  }
  return into;
})();

/** Overlap rule of a schedule with `overlap: 'skip'`: a slot is skipped while one of these exists. */
export const BLOCKS_FIRING = ACTIVE;
