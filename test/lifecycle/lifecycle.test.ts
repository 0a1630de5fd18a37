/**
 * The lifecycle module's own rules: the transition table is complete and consistent (every status
 * reachable and, unless final, left again; every lease released on the way out of `running`), the
 * rules that decide reruns and cancels, the status filter of the activity stream, and the SQL the
 * stores render from it. The stores' behaviour is tested against an independent model by
 * test/store/state-machine.property.test.ts.
 */
import { describe, expect, it } from 'vitest';
import {
  ACTIVITY_TYPES,
  allows,
  EVENTS_INTO,
  FINAL,
  FINISH,
  INSTANCE_STATUSES,
  isFinal,
  LEASE_CLEARED,
  LEASED,
  runStatusOf,
  TRANSITIONS,
  type Transition,
} from '../../src/lifecycle/index.js';
import { assignments, caseAssignments, type Dialect, eventColumns, statusIn } from '../../src/store/sql.js';

const all = Object.values(TRANSITIONS) as Transition[];
const SQLITE: Dialect = { param: (n) => `@${n}`, col: (n) => n, greatest: 'max' };
const BATCH: Dialect = { param: (n) => `f.${n}`, col: (n) => `s.${n}`, greatest: 'greatest' };

describe('the transition table', () => {
  it('reaches every status, and leaves every status that is not final', () => {
    for (const status of INSTANCE_STATUSES) {
      expect(
        all.some((t) => t.to === status),
        `nothing leads to ${status}`,
      ).toBe(true);
      if (!isFinal(status)) {
        expect(
          all.some((t) => t.from !== 'new' && t.from.includes(status) && t.to !== status),
          `nothing leaves ${status}`,
        ).toBe(true);
      }
    }
  });

  it('names only known statuses and event types', () => {
    for (const t of all) {
      expect(INSTANCE_STATUSES).toContain(t.to);
      if (t.from !== 'new') for (const s of t.from) expect(INSTANCE_STATUSES).toContain(s);
      for (const e of t.events) expect(ACTIVITY_TYPES).toContain(e);
    }
  });

  it('clears the lease on every way out of running, and only the lease holder writes those', () => {
    for (const t of all) {
      const leavesLease =
        t.from !== 'new' && t.from.some((s) => LEASED.includes(s)) && !LEASED.includes(t.to);
      if (!leavesLease) continue;
      for (const column of Object.keys(LEASE_CLEARED)) {
        expect(t.sets[column], `${t.name} leaves ${column} set`).toBeNull();
      }
      if (t.name !== 'cancel') expect(t.leased, `${t.name} is not guarded by the claim token`).toBe(true);
    }
  });

  it('ends an attempt through exactly one transition per outcome, each announced by one event', () => {
    expect(Object.keys(FINISH).sort()).toEqual(['failed', 'retry', 'succeeded', 'wait']);
    expect(FINISH.succeeded.to).toBe('succeeded');
    expect(FINISH.failed.to).toBe('failed');
    expect(FINISH.retry.to).toBe('retrying');
    expect(FINISH.wait.to).toBe('waiting');
    for (const t of Object.values(FINISH)) expect(t.events).toHaveLength(1);
  });

  it('reruns only finished durable instances and cancels every durable one that has not succeeded', () => {
    for (const status of INSTANCE_STATUSES) {
      expect(allows(TRANSITIONS.rerun, { mode: 'async', status })).toBe(isFinal(status));
      expect(allows(TRANSITIONS.cancel, { mode: 'scheduled', status })).toBe(
        status !== 'succeeded' && status !== 'cancelled',
      );
      // A sync instance is a monitoring record: never rerun, never cancelled.
      expect(allows(TRANSITIONS.rerun, { mode: 'sync', status })).toBe(false);
      expect(allows(TRANSITIONS.cancel, { mode: 'sync', status })).toBe(false);
    }
  });

  it('gives a run the status of its instance once final, running before', () => {
    for (const status of INSTANCE_STATUSES)
      expect(runStatusOf(status)).toBe(FINAL.includes(status as never) ? status : 'running');
  });

  it('derives the activity stream status filter: the events that bring an instance into each status', () => {
    expect(EVENTS_INTO).toEqual({
      queued: ['accepted', 'wait.resumed', 'rerun'],
      running: ['started'],
      retrying: ['retry.scheduled'],
      waiting: ['wait.started'],
      succeeded: ['succeeded'],
      failed: ['failed'],
      cancelled: ['cancelled'],
    });
  });
});

describe('the SQL the stores render', () => {
  it('renders a transition as a SET list with its status first and the lease cleared', () => {
    expect(assignments(TRANSITIONS.release, SQLITE)).toBe(
      "status = 'queued', attempt = max(attempt - 1, 0), claim_token = NULL, lease_owner = NULL, " +
        'lease_until = NULL, run_at = @now, updated_at = @now',
    );
    expect(assignments(TRANSITIONS.claim, SQLITE)).toContain("claim_token = @token || '.' || seq");
    expect(assignments(TRANSITIONS.claim, SQLITE)).toContain('started_at = coalesce(started_at, @now)');
  });

  it('leaves out the status of a transition that stays in it (renewing a lease writes one column)', () => {
    expect(assignments(TRANSITIONS.renew, SQLITE)).toBe('lease_until = @lease_until');
  });

  it('renders several transitions as one CASE per column, once where all agree', () => {
    const sql = caseAssignments('f.kind', FINISH, BATCH);
    expect(sql).toContain(
      "status = CASE f.kind WHEN 'succeeded' THEN 'succeeded' WHEN 'failed' THEN 'failed' WHEN 'retry' THEN 'retrying' WHEN 'wait' THEN 'waiting' END",
    );
    expect(sql).toContain('claim_token = NULL');
    expect(sql).not.toMatch(/claim_token = CASE/);
    // A column one branch does not set keeps the row's value in that branch.
    expect(sql).toContain(
      "run_at = CASE f.kind WHEN 'succeeded' THEN s.run_at WHEN 'failed' THEN s.run_at WHEN 'retry' THEN f.run_at WHEN 'wait' THEN f.run_at END",
    );
  });

  it('renders status sets and the JSON of the events SQL writes', () => {
    expect(statusIn(['queued', 'retrying'])).toBe("status IN ('queued', 'retrying')");
    expect(statusIn(LEASED, 's.status')).toBe("s.status = 'running'");
    expect(eventColumns('lease.expired', { attempt: 'attempt', owner: 'lease_owner' }, 'json_object')).toBe(
      "'lease.expired', json_object('attempt', attempt, 'owner', lease_owner)",
    );
  });
});
