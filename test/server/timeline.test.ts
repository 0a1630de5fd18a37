/**
 * The timeline derivation and "why is it waiting", from stored records written as the engine
 * writes them: retries with their calls under the step and attempt that made them, circuit waits,
 * durable waits (whose attempt number repeats), a rerun from the failed step, a lease that expired;
 * and the reason of every unfinished status.
 */
import { describe, expect, it } from 'vitest';
import type { ActivityEvent, ActivityType, Instance, Json, Run, Step, Wait } from '../../src/model.js';
import { deriveTimeline, type TimelineInput, waitingFor } from '../../src/server/api/timeline.js';
import { timelineRows } from '../../src/server/api/timeline-rows.js';

const T = 1_700_000_000_000;
const ID = 'i-1';

function instance(overrides: Partial<Instance> = {}): Instance {
  return {
    id: ID,
    seq: 1,
    integrationId: 'fulfil-order',
    mode: 'async',
    status: 'succeeded',
    input: {},
    output: null,
    error: null,
    run: 1,
    attempt: 1,
    tracking: {},
    orderingKey: null,
    idempotencyKey: null,
    parentId: null,
    createdAt: T,
    updatedAt: T,
    runAt: T,
    startedAt: null,
    finishedAt: null,
    durationMs: null,
    version: null,
    acknowledgedAt: null,
    acknowledgedNote: null,
    traceId: null,
    ...overrides,
  };
}

function run(overrides: Partial<Run> = {}): Run {
  return {
    instanceId: ID,
    run: 1,
    from: null,
    status: 'succeeded',
    input: {},
    startedAt: T,
    finishedAt: null,
    error: null,
    ...overrides,
  };
}

/** Events in the order given (ids ascending), each at T + ms. */
function events(...list: [number, ActivityType, Record<string, Json>, number?][]): ActivityEvent[] {
  return list.map(([ms, type, data, runNo], i) => ({
    id: i + 1,
    instanceId: ID,
    integrationId: 'fulfil-order',
    run: runNo ?? 1,
    type,
    at: T + ms,
    data,
  }));
}

const call = (connection: string, step: string | null, attempt: number, status: number | null, ms = 20) => ({
  connection,
  method: 'POST',
  url: `http://127.0.0.1:1/${connection}`,
  status,
  durationMs: ms,
  step,
  attempt,
});

function input(parts: Partial<TimelineInput>): TimelineInput {
  return { instance: instance(), runs: [run()], steps: [], events: [], waits: [], ...parts };
}

describe('deriveTimeline', () => {
  it('puts each call under the step and attempt that made it, with backoffs between attempts', () => {
    const timeline = deriveTimeline(
      input({
        instance: instance({ status: 'succeeded', attempt: 3, finishedAt: T + 13_000 }),
        runs: [run({ finishedAt: T + 13_000 })],
        events: events(
          [0, 'accepted', {}],
          [100, 'started', { attempt: 1 }],
          [110, 'step.started', { step: 'reserve', attempt: 1 }],
          [150, 'connection.call', call('crm', 'reserve', 1, 200)],
          [160, 'step.succeeded', { step: 'reserve', durationMs: 50 }],
          [170, 'step.started', { step: 'update-inventory', attempt: 1 }],
          [200, 'connection.call', call('inventory', 'update-inventory', 1, 503)],
          [205, 'step.failed', { step: 'update-inventory', error: 'HTTP 503', durationMs: 35 }],
          [
            210,
            'retry.scheduled',
            {
              attempt: 1,
              runAt: T + 5_210,
              error: 'HTTP 503',
              code: 'http-error',
              countsAsAttempt: true,
              attemptMs: 110,
            },
          ],
          [5_300, 'started', { attempt: 2 }],
          [5_310, 'step.started', { step: 'update-inventory', attempt: 2 }],
          [5_340, 'connection.call', call('inventory', 'update-inventory', 2, null, 25)],
          [5_345, 'step.failed', { step: 'update-inventory', error: 'refused', durationMs: 35 }],
          [
            5_350,
            'retry.scheduled',
            {
              attempt: 2,
              runAt: T + 12_000,
              error:
                'Connection "inventory" is open-circuited after repeated failures; next probe in 6650 ms',
              code: 'circuit-open',
              connection: 'inventory',
              countsAsAttempt: false,
              attemptMs: 50,
            },
          ],
          [12_100, 'started', { attempt: 2 }],
          [12_110, 'step.started', { step: 'update-inventory', attempt: 2 }],
          [12_150, 'connection.call', call('inventory', 'update-inventory', 2, 200)],
          [12_160, 'step.succeeded', { step: 'update-inventory', durationMs: 50 }],
          [12_170, 'step.started', { step: 'send-to-warehouse', attempt: 2 }],
          [12_900, 'connection.call', call('warehouse', 'send-to-warehouse', 2, 202)],
          [12_950, 'step.succeeded', { step: 'send-to-warehouse', durationMs: 780 }],
          [13_000, 'succeeded', { attempt: 2, durationMs: 12_900, attemptMs: 900 }],
        ),
      }),
      T + 20_000,
    );
    const [r] = timeline.runs;
    expect(r!.acceptedAt).toBe(T);
    expect(r!.finishedAt).toBe(T + 13_000);
    expect(r!.totalMs).toBe(13_000);
    expect(r!.runningMs).toBe(110 + 50 + 900);
    expect(r!.waitingMs).toBe(13_000 - 1_060);
    expect(r!.attempts.map((a) => [a.attempt, a.outcome, a.ms])).toEqual([
      [1, 'retry', 110],
      [2, 'retry', 50],
      [2, 'succeeded', 900],
    ]);
    const [first, second, third] = r!.attempts;
    expect(first!.error).toEqual({ message: 'HTTP 503', code: 'http-error' });
    expect(first!.backoff).toEqual({ reason: 'retry-delay', until: T + 5_210, connection: null });
    expect(second!.backoff).toEqual({ reason: 'circuit-open', until: T + 12_000, connection: 'inventory' });
    // Each call under its step in its attempt: the failed inventory calls under update-inventory.
    const callsOf = (a: typeof first) =>
      a!.steps.map((s) => [s.name, s.status, s.calls.map((c) => `${c.connection}:${c.status}`)]);
    expect(callsOf(first)).toEqual([
      ['reserve', 'succeeded', ['crm:200']],
      ['update-inventory', 'failed', ['inventory:503']],
    ]);
    expect(callsOf(second)).toEqual([['update-inventory', 'failed', ['inventory:null']]]);
    expect(callsOf(third)).toEqual([
      ['update-inventory', 'succeeded', ['inventory:200']],
      ['send-to-warehouse', 'succeeded', ['warehouse:202']],
    ]);
    expect(second!.steps[0]!.calls[0]).toMatchObject({ failed: true, startedAt: T + 5_315, ms: 25 });
    expect(r!.intervals.map((i) => [i.kind, i.from - T, i.to! - T])).toEqual([
      ['queued', 0, 100],
      ['backoff', 210, 5_300],
      ['circuit-open', 5_350, 12_100],
    ]);
    expect(r!.intervals[2]!.detail).toBe('circuit of inventory open');
    // Running + the intervals account for the whole run.
    expect(r!.runningMs + r!.intervals.reduce((sum, i) => sum + i.ms, 0)).toBe(r!.totalMs);
  });

  it('reads a circuit wait from the message of events written before they carried the code', () => {
    const timeline = deriveTimeline(
      input({
        instance: instance({ status: 'retrying', runAt: T + 9_000 }),
        runs: [run({ status: 'running' })],
        events: events(
          [10, 'started', { attempt: 1 }],
          [
            20,
            'retry.scheduled',
            {
              attempt: 1,
              runAt: T + 9_000,
              error: 'Connection "hr" is open-circuited after repeated failures; next probe in 8980 ms',
              countsAsAttempt: false,
              attemptMs: 10,
            },
          ],
        ),
      }),
      T + 1_000,
    );
    const [r] = timeline.runs;
    expect(r!.attempts[0]!.backoff).toEqual({ reason: 'circuit-open', until: T + 9_000, connection: 'hr' });
    // Unfinished: the circuit wait goes on to now, and the run's total runs to now.
    expect(r!.intervals.at(-1)).toMatchObject({ kind: 'circuit-open', from: T + 20, to: null, ms: 980 });
    expect(r!.totalMs).toBe(1_000);
    expect(r!.runningMs).toBe(10);
    expect(r!.finishedAt).toBeNull();
  });

  it('draws a durable wait as a wait, and keeps the attempts around it apart (same number)', () => {
    const waits: Wait[] = [
      {
        run: 1,
        name: 'paid',
        kind: 'event',
        event: 'payment.booked',
        match: { orderId: 'A-1' },
        createdAt: T + 60,
        until: null,
        resolvedAt: T + 50_000,
        resolution: 'event',
        eventId: 'e-9',
      },
    ];
    const timeline = deriveTimeline(
      input({
        instance: instance({ status: 'succeeded', finishedAt: T + 50_200 }),
        runs: [run({ finishedAt: T + 50_200 })],
        waits,
        events: events(
          [10, 'started', { attempt: 1 }],
          [20, 'step.started', { step: 'pack', attempt: 1 }],
          [40, 'connection.call', call('warehouse', 'pack', 1, 200)],
          [50, 'step.succeeded', { step: 'pack', durationMs: 30 }],
          [
            60,
            'wait.started',
            { step: 'paid', kind: 'event', until: null, event: 'payment.booked', attemptMs: 50 },
          ],
          [50_000, 'wait.resumed', { step: 'paid', by: 'event', eventId: 'e-9' }],
          [50_100, 'started', { attempt: 1 }],
          [50_110, 'step.started', { step: 'book', attempt: 1 }],
          [50_150, 'connection.call', call('crm', 'book', 1, 201)],
          [50_160, 'step.succeeded', { step: 'book', durationMs: 50 }],
          [50_200, 'succeeded', { attempt: 1, durationMs: 50_190, attemptMs: 100 }],
        ),
      }),
      T + 60_000,
    );
    const [r] = timeline.runs;
    expect(r!.attempts.map((a) => [a.attempt, a.outcome, a.steps.map((s) => s.name)])).toEqual([
      [1, 'wait', ['pack']],
      [1, 'succeeded', ['book']],
    ]);
    expect(r!.attempts[1]!.steps[0]!.calls.map((c) => c.connection)).toEqual(['crm']);
    const wait = r!.intervals.find((i) => i.kind === 'wait')!;
    expect([wait.from - T, wait.to! - T]).toEqual([60, 50_100]);
    expect(wait.detail).toBe('event payment.booked {"orderId":"A-1"} ("paid")');
    expect(r!.runningMs).toBe(50 + 100);
    expect(r!.waitingMs).toBe(50_200 - 150);
  });

  it('starts a rerun from the failed step at the rerun, with the steps it carried over', () => {
    const timeline = deriveTimeline(
      input({
        instance: instance({ status: 'succeeded', run: 2, finishedAt: T + 100_300 }),
        runs: [
          run({ status: 'failed', finishedAt: T + 500, error: { name: 'Error', message: 'down' } }),
          run({ run: 2, from: 'failed-step', startedAt: T + 100_000, finishedAt: T + 100_300 }),
        ],
        steps: [
          {
            instanceId: ID,
            run: 2,
            name: 'reserve',
            position: 0,
            status: 'succeeded',
            output: null,
            error: null,
            attempt: 1,
            startedAt: T + 20,
            finishedAt: T + 40,
            seeded: true,
          } satisfies Step,
        ],
        events: [
          ...events(
            [10, 'started', { attempt: 1 }],
            [20, 'step.started', { step: 'reserve', attempt: 1 }],
            [40, 'step.succeeded', { step: 'reserve', durationMs: 20 }],
            [50, 'step.started', { step: 'update-inventory', attempt: 1 }],
            [400, 'connection.call', call('inventory', 'update-inventory', 1, 500)],
            [450, 'step.failed', { step: 'update-inventory', error: 'HTTP 500', durationMs: 400 }],
            [
              500,
              'failed',
              { attempt: 1, error: 'HTTP 500', code: 'http-error', durationMs: 490, attemptMs: 490 },
            ],
          ),
          ...events(
            [100_000, 'rerun', { from: 'failed-step', previousStatus: 'failed', inputReplaced: false }, 2],
            [100_050, 'started', { attempt: 1 }, 2],
            [100_060, 'step.started', { step: 'update-inventory', attempt: 1 }, 2],
            [100_200, 'connection.call', call('inventory', 'update-inventory', 1, 200), 2],
            [100_210, 'step.succeeded', { step: 'update-inventory', durationMs: 150 }, 2],
            [100_300, 'succeeded', { attempt: 1, durationMs: 250, attemptMs: 250 }, 2],
          ).map((e) => ({ ...e, id: e.id + 100 })),
        ],
      }),
      T + 200_000,
    );
    const [first, second] = timeline.runs;
    expect(first).toMatchObject({ run: 1, acceptedAt: T, finishedAt: T + 500, totalMs: 500, runningMs: 490 });
    expect(first!.attempts[0]).toMatchObject({
      outcome: 'failed',
      error: { message: 'HTTP 500', code: 'http-error' },
    });
    expect(second).toMatchObject({
      run: 2,
      from: 'failed-step',
      acceptedAt: T + 100_000,
      finishedAt: T + 100_300,
      totalMs: 300,
      runningMs: 250,
      waitingMs: 50,
      carriedOver: ['reserve'],
    });
    // The run's calls only: the failed call of run 1 stays in run 1.
    expect(second!.attempts[0]!.steps.map((s) => [s.name, s.calls.map((c) => c.status)])).toEqual([
      ['update-inventory', [200]],
    ]);
  });

  it('ends an attempt whose lease expired at its last sign of life, and counts the gap as waiting', () => {
    const timeline = deriveTimeline(
      input({
        instance: instance({ status: 'succeeded', attempt: 2, finishedAt: T + 40_000 }),
        runs: [run({ finishedAt: T + 40_000 })],
        events: events(
          [10, 'started', { attempt: 1 }],
          [20, 'step.started', { step: 'pack', attempt: 1 }],
          [500, 'connection.call', call('warehouse', 'pack', 1, 200)],
          [30_100, 'lease.expired', { attempt: 1, owner: 'w1' }],
          [30_100, 'started', { attempt: 2 }],
          [30_110, 'step.started', { step: 'pack', attempt: 2 }],
          [30_200, 'step.succeeded', { step: 'pack', durationMs: 90 }],
          [40_000, 'succeeded', { attempt: 2, durationMs: 39_990, attemptMs: 9_900 }],
        ),
      }),
      T + 50_000,
    );
    const [r] = timeline.runs;
    expect(r!.attempts.map((a) => [a.outcome, a.finishedAt! - T])).toEqual([
      ['lease-expired', 500],
      ['succeeded', 40_000],
    ]);
    // The step it was in when its worker went away is cut there, not left running.
    expect(r!.attempts[0]!.steps[0]).toMatchObject({ name: 'pack', status: 'interrupted', ms: 480 });
    expect(r!.intervals.find((i) => i.kind === 'lease-expired')).toMatchObject({
      from: T + 500,
      to: T + 30_100,
    });
    expect(r!.runningMs).toBe(490 + 9_900);
    expect(r!.runningMs + r!.intervals.reduce((sum, i) => sum + i.ms, 0)).toBe(r!.totalMs);
  });

  it('ends an attempt given back at shutdown (no end event) at its last step, and shows the one running now', () => {
    const timeline = deriveTimeline(
      input({
        instance: instance({ status: 'running', attempt: 1 }),
        runs: [run({ status: 'running' })],
        events: events(
          [10, 'started', { attempt: 1 }],
          [20, 'step.started', { step: 'pack', attempt: 1 }],
          [80, 'step.succeeded', { step: 'pack', durationMs: 60 }],
          [200, 'started', { attempt: 1 }],
          [210, 'step.started', { step: 'ship', attempt: 1 }],
        ),
      }),
      T + 1_000,
    );
    const [r] = timeline.runs;
    expect(
      r!.attempts.map((a) => [a.outcome, a.finishedAt === null ? null : a.finishedAt - T, a.ms]),
    ).toEqual([
      ['interrupted', 80, 70],
      ['running', null, 800],
    ]);
    expect(r!.attempts[1]!.steps[0]).toMatchObject({
      name: 'ship',
      status: 'running',
      finishedAt: null,
      ms: 790,
    });
    expect(r!.intervals.map((i) => [i.kind, i.from - T, i.to! - T])).toEqual([
      ['queued', 0, 10],
      ['queued', 80, 200],
    ]);
    expect(r).toMatchObject({ totalMs: 1_000, runningMs: 870, waitingMs: 130, finishedAt: null });
  });

  it('marks the open interval of an instance held by its ordering key as held', () => {
    const shown = input({
      instance: instance({ status: 'queued', orderingKey: 'E-1' }),
      runs: [run({ status: 'running' })],
    });
    const holder = { id: 'i-0', integrationId: 'onboard-employee', status: 'failed' as const };
    const waiting = waitingFor(shown, { now: T + 5_000, holder, children: null });
    expect(waiting).toEqual({ kind: 'ordering', orderingKey: 'E-1', holder });
    const [r] = deriveTimeline(shown, T + 5_000, waiting).runs;
    expect(r!.intervals).toEqual([
      {
        kind: 'held',
        from: T,
        to: null,
        ms: 5_000,
        detail: 'held behind onboard-employee i-0 (failed) of ordering key E-1',
      },
    ]);
    expect(r).toMatchObject({ totalMs: 5_000, runningMs: 0, waitingMs: 5_000, attempts: [] });
  });
});

describe('timelineRows', () => {
  const circuit = (
    attempt: number,
    at: number,
    runAt: number,
  ): [number, ActivityType, Record<string, Json>][] => [
    [at, 'started', { attempt }],
    [at + 1, 'step.started', { step: 'update-inventory', attempt }],
    [at + 2, 'step.failed', { step: 'update-inventory', error: 'open', durationMs: 1 }],
    [
      at + 3,
      'retry.scheduled',
      {
        attempt,
        runAt,
        error: 'open',
        code: 'circuit-open',
        connection: 'inventory',
        countsAsAttempt: false,
        attemptMs: 3,
      },
    ],
  ];

  it('folds a series of attempts that only met an open circuit into one row, and keeps the rest', () => {
    const [r] = deriveTimeline(
      input({
        instance: instance({ status: 'succeeded', finishedAt: T + 5_000 }),
        runs: [run({ finishedAt: T + 5_000 })],
        events: events(
          ...circuit(1, 100, T + 1_000),
          ...circuit(1, 1_000, T + 2_000),
          ...circuit(1, 2_000, T + 3_000),
          ...circuit(1, 3_000, T + 4_000),
          [4_000, 'started', { attempt: 1 }],
          [4_010, 'step.started', { step: 'update-inventory', attempt: 1 }],
          [4_050, 'connection.call', call('inventory', 'update-inventory', 1, 201)],
          [4_060, 'step.succeeded', { step: 'update-inventory', durationMs: 50 }],
          [5_000, 'succeeded', { attempt: 1, durationMs: 4_900, attemptMs: 1_000 }],
        ),
      }),
      T + 9_000,
    ).runs;
    const rows = timelineRows(r!);
    expect(rows.map((row) => row.kind)).toEqual(['interval', 'repeat', 'attempt']);
    expect(rows[1]).toEqual({
      kind: 'repeat',
      repeat: {
        reason: 'circuit-open',
        connection: 'inventory',
        count: 4,
        from: T + 100,
        to: T + 4_000,
        ms: 3_900,
      },
    });
    // Two such attempts are drawn as they are.
    const [short] = deriveTimeline(
      input({
        instance: instance({ status: 'retrying', runAt: T + 3_000 }),
        runs: [run({ status: 'running' })],
        events: events(...circuit(1, 100, T + 1_000), ...circuit(1, 1_000, T + 3_000)),
      }),
      T + 2_000,
    ).runs;
    expect(timelineRows(short!).map((row) => row.kind)).toEqual([
      'interval',
      'attempt',
      'interval',
      'attempt',
      'interval',
    ]);
  });
});

describe('waitingFor', () => {
  const at = (parts: Partial<Instance>, extra: Partial<TimelineInput> = {}, now = T + 1_000) =>
    waitingFor(input({ instance: instance(parts), ...extra }), { now, holder: null, children: null });

  it('is null once final', () => {
    for (const status of ['succeeded', 'failed', 'cancelled'] as const) expect(at({ status })).toBeNull();
  });

  it('names a retry with its error and time, an open circuit with its connection and probe', () => {
    expect(
      at({
        status: 'retrying',
        runAt: T + 5_000,
        error: { name: 'HttpError', message: 'HTTP 503', code: 'http-error' },
      }),
    ).toEqual({ kind: 'retry', at: T + 5_000, error: { message: 'HTTP 503', code: 'http-error' } });
    expect(
      at({
        status: 'retrying',
        runAt: T + 7_000,
        error: {
          name: 'TandemError',
          message: 'Connection "inventory" is open-circuited after repeated failures; next probe in 6000 ms',
          code: 'circuit-open',
          details: { connection: 'inventory', retryAfterMs: 6_000 },
        },
      }),
    ).toEqual({ kind: 'circuit', connection: 'inventory', until: T + 7_000 });
  });

  it('tells a worker slot from a schedule, and names a durable wait', () => {
    expect(at({ status: 'queued', runAt: T + 500 })).toEqual({ kind: 'worker', since: T + 500 });
    expect(at({ status: 'retrying', runAt: T + 500 })).toEqual({ kind: 'worker', since: T + 500 });
    expect(at({ status: 'queued', runAt: T + 60_000 })).toEqual({ kind: 'scheduled', at: T + 60_000 });
    const wait: Wait = {
      run: 1,
      name: 'shipment',
      kind: 'callback',
      event: null,
      match: null,
      createdAt: T,
      until: T + 86_400_000,
      resolvedAt: null,
      resolution: null,
      eventId: null,
    };
    expect(at({ status: 'waiting', runAt: T + 86_400_000 }, { waits: [wait] })).toEqual({
      kind: 'wait',
      wait: 'callback',
      step: 'shipment',
      until: T + 86_400_000,
      event: null,
      match: null,
    });
  });

  it('names the children a fan-out parent waits for', () => {
    const children = {
      queued: 3,
      running: 1,
      retrying: 0,
      waiting: 0,
      succeeded: 6,
      failed: 0,
      cancelled: 0,
      total: 10,
    };
    const waiting = waitingFor(
      input({
        instance: instance({
          status: 'retrying',
          runAt: T + 2_000,
          error: {
            name: 'RetryAfterError',
            message: 'Waiting for children: 6 of 10 finished',
            code: 'retry-after',
          },
        }),
      }),
      { now: T + 1_000, holder: null, children },
    );
    expect(waiting).toEqual({ kind: 'children', at: T + 2_000, children });
  });

  it('says running, since the current attempt started', () => {
    expect(
      at(
        { status: 'running', attempt: 2 },
        { events: events([10, 'started', { attempt: 1 }], [900, 'started', { attempt: 2 }]) },
      ),
    ).toEqual({ kind: 'running', since: T + 900, attempt: 2 });
  });
});
