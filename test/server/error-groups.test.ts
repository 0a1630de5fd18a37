/**
 * The grouping of failures on its own: an outage's `circuit-open` failures (whose messages differ by
 * the milliseconds to the next probe) join the connection's other failures of the same integration
 * and step, so that one outage is one group per integration and step; other connections, steps and
 * codes stay apart.
 */
import { describe, expect, it } from 'vitest';
import type { ErrorInfo, Instance } from '../../src/model.js';
import { groupFailures } from '../../src/server/api/error-groups.js';

let seq = 0;
function failed(integrationId: string, error: ErrorInfo, mode: Instance['mode'] = 'async'): Instance {
  seq++;
  return {
    id: `i-${seq}`,
    seq,
    integrationId,
    mode,
    status: 'failed',
    input: {},
    output: null,
    error,
    run: 1,
    attempt: 1,
    tracking: {},
    orderingKey: null,
    idempotencyKey: null,
    parentId: null,
    createdAt: 1_000 + seq,
    updatedAt: 2_000 + seq,
    runAt: 1_000,
    startedAt: 1_000,
    finishedAt: 2_000 + seq,
    durationMs: 1_000,
    version: null,
    acknowledgedAt: null,
    acknowledgedNote: null,
    traceId: null,
  };
}

const refused = (connection: string): ErrorInfo => ({
  name: 'HttpError',
  message: `GET ${connection}/stock could not connect: ECONNREFUSED`,
  code: 'connection-failed',
  details: { connection },
});
const open = (connection: string, ms: number): ErrorInfo => ({
  name: 'CircuitOpenError',
  message: `Connection "${connection}" is open-circuited after repeated failures; next probe in ${ms} ms`,
  code: 'circuit-open',
  details: { connection, retryAfterMs: ms },
});

describe('groupFailures', () => {
  it('puts an outage’s circuit-open failures with the connection’s other failures of that step', () => {
    const instances = [
      failed('fulfil', refused('inventory')),
      failed('fulfil', refused('inventory')),
      failed('fulfil', open('inventory', 31)),
      failed('fulfil', open('inventory', 870)),
      failed('fulfil', open('inventory', 5)),
      // Same connection, another step: another group.
      failed('fulfil', refused('inventory')),
      // Circuit open on a connection with no other failure: a group of its own.
      failed('fulfil', open('crm', 12)),
      failed('lookup', refused('inventory'), 'sync'),
      failed('lookup', open('inventory', 40), 'sync'),
    ].reverse();
    const steps: Record<string, string> = {};
    for (const instance of instances) steps[instance.id] = 'update-inventory';
    steps['i-6'] = 'check-stock';
    const groups = groupFailures(instances, steps, () => undefined);
    const summary = groups.map((g) => [g.integrationId, g.code, g.step, g.connection, g.count, g.codes]);
    expect(summary).toEqual([
      [
        'fulfil',
        'connection-failed',
        'update-inventory',
        'inventory',
        5,
        { 'connection-failed': 2, 'circuit-open': 3 },
      ],
      [
        'lookup',
        'connection-failed',
        'update-inventory',
        'inventory',
        2,
        { 'connection-failed': 1, 'circuit-open': 1 },
      ],
      ['fulfil', 'circuit-open', 'update-inventory', 'crm', 1, { 'circuit-open': 1 }],
      ['fulfil', 'connection-failed', 'check-stock', 'inventory', 1, { 'connection-failed': 1 }],
    ]);
    // The probe delays are one example, counted, shown with the newest text.
    expect(groups[0]!.examples).toEqual([
      {
        message: 'Connection "inventory" is open-circuited after repeated failures; next probe in 5 ms',
        count: 3,
        instanceId: 'i-5',
      },
      { message: 'GET inventory/stock could not connect: ECONNREFUSED', count: 2, instanceId: 'i-2' },
    ]);
    expect(groups[1]!.rerun).toEqual({
      possible: false,
      reason: expect.stringMatching(/^Sync instances are never rerun/),
    });
    // Not deployed here (no integration found): no rerun either, with the reason.
    expect(groups[0]!.rerun.possible).toBe(false);
    expect(groups[0]!.rerun.reason).toMatch(/no integration "fulfil"/);
  });
});
