/**
 * The timeline of an instance and why it is not done yet, derived from what is stored (the
 * instance, its runs, steps, activity events and waits) by pure functions: the API answers them,
 * the console draws them and `tandem instances show` prints them, so the three cannot disagree.
 *
 * Attempts are read from the lifecycle's events (`started`, then how it ended); steps and calls go
 * under the attempt that made them by the attempt number they carry and their time (a durable wait
 * gives its attempt number back, so two attempts of a run may share a number). A run's total time
 * is accepted → finished; the running time is the sum of its attempts, the rest is waiting.
 */
import type { z } from 'zod';
import type { ActivityEvent, ChildCounts, Instance, Json, Run, Step, Wait } from '../../model.js';
import type { OrderingHolder } from '../../store/store.js';
import type { timelineSchema, waitingForSchema } from './schemas.js';

export type Timeline = z.output<typeof timelineSchema>;
type RunTimeline = Timeline['runs'][number];
type Attempt = RunTimeline['attempts'][number];
type TimelineStep = Attempt['steps'][number];
type TimelineCall = TimelineStep['calls'][number];
type Interval = RunTimeline['intervals'][number];
export type WaitingFor = z.output<typeof waitingForSchema>;

export interface TimelineInput {
  instance: Instance;
  runs: Run[];
  steps: Step[];
  events: ActivityEvent[];
  waits: Wait[];
}

const ENDS = new Set([
  'succeeded',
  'failed',
  'retry.scheduled',
  'wait.started',
  'lease.expired',
  'cancelled',
]);

/** An attempt being read: its events, and the end once seen. */
interface Open {
  attempt: Attempt;
  end: ActivityEvent | null;
}

/**
 * The timeline of every run. `waiting` (from {@link waitingFor}) names the open interval of the
 * current run when an ordering key holds it: `held` rather than `queued`.
 */
export function deriveTimeline(
  input: TimelineInput,
  now: number,
  waiting: WaitingFor | null = null,
): Timeline {
  const runs = input.runs.map((run) => runTimeline(input, run, now));
  const last = runs[runs.length - 1]?.intervals.at(-1);
  if (waiting?.kind === 'ordering' && last && last.to === null && last.kind === 'queued') {
    last.kind = 'held';
    last.detail = `held behind ${waiting.holder.integrationId} ${waiting.holder.id} (${waiting.holder.status}) of ordering key ${waiting.orderingKey}`;
  }
  return { now, runs };
}

function runTimeline(input: TimelineInput, run: Run, now: number): RunTimeline {
  const { instance } = input;
  const events = input.events.filter((e) => e.run === run.run).sort((a, b) => a.id - b.id);
  const acceptedAt = run.run === 1 ? Math.min(instance.createdAt, run.startedAt) : run.startedAt;
  const finishedAt = run.finishedAt;
  const end = finishedAt ?? now;

  // Attempts, in order: each `started` opens one, the lifecycle event after it ends it.
  const opened: Open[] = [];
  let current: Open | null = null;
  for (const event of events) {
    if (event.type === 'started') {
      // One before it without an end was given back (a shutdown): closed below, once its steps are known.
      current = {
        attempt: {
          attempt: num(event.data.attempt),
          startedAt: event.at,
          finishedAt: null,
          ms: 0,
          outcome: 'running',
          error: null,
          backoff: null,
          steps: [],
          calls: [],
        },
        end: null,
      };
      opened.push(current);
    } else if (ENDS.has(event.type) && current && !current.end) {
      current.end = event;
    }
  }
  if (opened.length === 0 && instance.mode === 'sync' && run.run === instance.run) {
    // A sync call is one attempt, recorded finished: from its start to its end.
    const startedAt = instance.startedAt ?? instance.createdAt;
    opened.push({
      attempt: {
        attempt: 1,
        startedAt,
        finishedAt: instance.finishedAt ?? startedAt,
        ms: (instance.finishedAt ?? startedAt) - startedAt,
        outcome: instance.status === 'succeeded' ? 'succeeded' : 'failed',
        error: instance.error ? { message: instance.error.message, code: instance.error.code ?? null } : null,
        backoff: null,
        steps: [],
        calls: [],
      },
      end: null,
    });
  }

  // Steps and calls under the attempt that made them: the latest attempt with their number that
  // had started by then (or, for events without a number, the latest one that had).
  const attemptOf = (at: number, number: number | null): Attempt | undefined => {
    let found: Attempt | undefined;
    for (const { attempt } of opened) {
      if (attempt.startedAt > at) break;
      if (number === null || attempt.attempt === number) found = attempt;
    }
    return found ?? (number === null ? undefined : attemptOf(at, null)) ?? opened[0]?.attempt;
  };
  const stepStarts = new Map<string, { attempt: Attempt; step: TimelineStep }>();
  const calls: { call: TimelineCall; step: string | null; attempt: number | null }[] = [];
  for (const event of events) {
    if (event.type === 'step.started') {
      const attempt = attemptOf(event.at, num(event.data.attempt));
      if (!attempt) continue;
      const step: TimelineStep = {
        name: String(event.data.step),
        startedAt: event.at,
        finishedAt: null,
        ms: 0,
        status: 'running',
        error: null,
        calls: [],
      };
      attempt.steps.push(step);
      stepStarts.set(String(event.data.step), { attempt, step });
    } else if (event.type === 'step.succeeded' || event.type === 'step.failed') {
      const open = stepStarts.get(String(event.data.step));
      if (!open || open.step.finishedAt !== null) continue;
      open.step.finishedAt = event.at;
      open.step.ms = event.at - open.step.startedAt;
      open.step.status = event.type === 'step.succeeded' ? 'succeeded' : 'failed';
      open.step.error = event.type === 'step.failed' ? String(event.data.error) : null;
    } else if (event.type === 'connection.call') {
      calls.push({
        call: callOf(event),
        step: typeof event.data.step === 'string' ? event.data.step : null,
        attempt: typeof event.data.attempt === 'number' ? event.data.attempt : null,
      });
    }
  }
  for (const { call, step, attempt: number } of calls) {
    const attempt = attemptOf(call.startedAt, number) ?? attemptOf(call.finishedAt, number);
    if (!attempt) continue;
    const home = step === null ? undefined : attempt.steps.findLast((s) => s.name === step);
    (home?.calls ?? attempt.calls).push(call);
  }

  // How each attempt ended, and what came after it.
  for (let i = 0; i < opened.length; i++) {
    const open = opened[i]!;
    const next = opened[i + 1]?.attempt.startedAt ?? null;
    if (open.attempt.finishedAt !== null) continue; // a sync call, complete already
    const ended = open.end;
    if (ended) settle(open.attempt, ended, lastActivity(open.attempt));
    else if (next !== null) close(open, lastActivity(open.attempt), 'interrupted');
    else if (finishedAt !== null)
      close(open, finishedAt, run.status === 'cancelled' ? 'cancelled' : 'interrupted');
    else if (instance.status !== 'running' || instance.run !== run.run)
      close(open, lastActivity(open.attempt), 'interrupted');
  }
  for (const { attempt } of opened) {
    attempt.ms = (attempt.finishedAt ?? now) - attempt.startedAt;
    for (const step of attempt.steps) {
      if (step.finishedAt !== null) continue;
      if (attempt.finishedAt === null) step.ms = now - step.startedAt;
      else {
        step.status = 'interrupted';
        step.ms = attempt.finishedAt - step.startedAt;
      }
    }
  }

  const attempts = opened.map((o) => o.attempt);
  const intervals = intervalsOf(input, run, attempts, opened, acceptedAt, end);
  const totalMs = Math.max(0, end - acceptedAt);
  const runningMs = Math.min(
    totalMs,
    attempts.reduce((sum, a) => sum + a.ms, 0),
  );
  const carriedOver = input.steps
    .filter((s) => s.run === run.run && s.seeded)
    .sort((a, b) => a.position - b.position)
    .map((s) => s.name);
  return {
    run: run.run,
    from: run.from,
    status: run.status,
    acceptedAt,
    finishedAt,
    totalMs,
    runningMs,
    waitingMs: totalMs - runningMs,
    carriedOver,
    attempts,
    intervals,
  };
}

/** The end of an attempt from the event that ended it. */
function settle(attempt: Attempt, event: ActivityEvent, last: number) {
  const data = event.data;
  attempt.finishedAt = event.at;
  switch (event.type) {
    case 'succeeded':
      attempt.outcome = 'succeeded';
      break;
    case 'failed':
      attempt.outcome = 'failed';
      attempt.error = { message: String(data.error), code: str(data.code) };
      break;
    case 'retry.scheduled': {
      attempt.outcome = 'retry';
      const code = str(data.code);
      const message = String(data.error);
      attempt.error = { message, code };
      const circuit = code === 'circuit-open' || (code === null && /open-circuited/.test(message));
      attempt.backoff = {
        reason: circuit ? 'circuit-open' : /^Waiting for children/.test(message) ? 'children' : 'retry-delay',
        until: num(data.runAt),
        connection: circuit ? (str(data.connection) ?? connectionIn(message)) : null,
      };
      break;
    }
    case 'wait.started':
      attempt.outcome = 'wait';
      break;
    case 'lease.expired':
      // Its holder stopped renewing: the attempt's last sign of life is its end.
      attempt.outcome = 'lease-expired';
      attempt.finishedAt = Math.min(event.at, last);
      break;
    case 'cancelled':
      attempt.outcome = 'cancelled';
      break;
  }
}

function close(open: Open, at: number | null, outcome: Attempt['outcome']) {
  open.attempt.outcome = outcome;
  open.attempt.finishedAt = at ?? lastActivity(open.attempt);
}

/** The latest time anything of an attempt was seen (its start, a step, a call). */
function lastActivity(attempt: Attempt): number {
  let last = attempt.startedAt;
  for (const step of attempt.steps) {
    last = Math.max(last, step.finishedAt ?? step.startedAt);
    for (const call of step.calls) last = Math.max(last, call.finishedAt);
  }
  for (const call of attempt.calls) last = Math.max(last, call.finishedAt);
  return last;
}

/** The time between attempts (and before the first, and after the last while unfinished), as waited. */
function intervalsOf(
  input: TimelineInput,
  run: Run,
  attempts: Attempt[],
  opened: Open[],
  acceptedAt: number,
  end: number,
): Interval[] {
  const intervals: Interval[] = [];
  const add = (kind: Interval['kind'], from: number, to: number | null, detail: string) => {
    const until = to ?? end;
    if (until > from || to === null)
      intervals.push({ kind, from, to, ms: Math.max(0, until - from), detail });
  };
  const open = run.finishedAt === null;
  const first = attempts[0];
  if (!first) {
    if (input.instance.mode !== 'sync')
      add('queued', acceptedAt, open ? null : (run.finishedAt ?? end), 'queued, not started');
    return intervals;
  }
  add('queued', acceptedAt, first.startedAt, 'queued until a worker took it');
  for (let i = 0; i < attempts.length; i++) {
    const attempt = attempts[i]!;
    if (attempt.finishedAt === null) continue;
    // Up to the next attempt; after the last one, to the run's end (a cancel) or on while unfinished.
    const next = attempts[i + 1]?.startedAt ?? (open ? null : run.finishedAt);
    const from = attempt.finishedAt;
    switch (attempt.outcome) {
      case 'retry': {
        const backoff = attempt.backoff!;
        if (backoff.reason === 'circuit-open')
          add('circuit-open', from, next, `circuit of ${backoff.connection ?? 'a connection'} open`);
        else if (backoff.reason === 'children') add('children', from, next, 'waiting for its children');
        else add('backoff', from, next, `retry delay after attempt ${attempt.attempt} failed`);
        break;
      }
      case 'wait': {
        const started = opened[i]!.end!;
        add('wait', from, next, waitWords(started.data, input.waits, run.run));
        break;
      }
      case 'lease-expired':
        add(
          'lease-expired',
          from,
          next,
          'its worker stopped renewing the lease; taken over after it expired',
        );
        break;
      case 'succeeded':
      case 'failed':
      case 'cancelled':
        break;
      default:
        add('queued', from, next, 'queued again');
    }
  }
  return intervals;
}

function waitWords(data: Record<string, Json>, waits: Wait[], run: number): string {
  const step = String(data.step);
  const wait = waits.find((w) => w.run === run && w.name === step);
  if (data.kind === 'sleep') return `sleep "${step}"`;
  if (data.kind === 'callback') return `callback "${step}"`;
  const match = wait?.match && Object.keys(wait.match).length > 0 ? ` ${JSON.stringify(wait.match)}` : '';
  return `event ${String(data.event ?? wait?.event ?? '')}${match} ("${step}")`;
}

function callOf(event: ActivityEvent): TimelineCall {
  const { data } = event;
  const ms = typeof data.durationMs === 'number' ? data.durationMs : 0;
  const status = typeof data.status === 'number' ? data.status : null;
  return {
    id: event.id,
    connection: String(data.connection ?? ''),
    method: String(data.method ?? ''),
    url: String(data.url ?? ''),
    status,
    failed: status === null || status >= 400,
    startedAt: event.at - ms,
    finishedAt: event.at,
    ms,
  };
}

/**
 * Why an unfinished instance is not done yet, in typed fields (null once final). `holder` is the
 * instance that holds its ordering key (the store's `orderingHolder`), `children` its children's
 * counts.
 */
export function waitingFor(
  input: TimelineInput,
  options: { now: number; holder: OrderingHolder | null; children: ChildCounts | null },
): WaitingFor | null {
  const { instance } = input;
  const { now, holder, children } = options;
  switch (instance.status) {
    case 'succeeded':
    case 'failed':
    case 'cancelled':
      return null;
    case 'running':
      return { kind: 'running', since: lastStart(input) ?? instance.updatedAt, attempt: instance.attempt };
    case 'waiting': {
      const wait = input.waits.findLast((w) => w.run === instance.run && w.resolvedAt === null);
      if (wait)
        return {
          kind: 'wait',
          wait: wait.kind,
          step: wait.name,
          until: wait.until,
          event: wait.event,
          match: wait.match,
        };
      // Resolved a moment ago: due now.
      return { kind: 'worker', since: instance.runAt };
    }
    case 'retrying': {
      if (instance.runAt > now) {
        const error = instance.error;
        if (error?.code === 'circuit-open')
          return {
            kind: 'circuit',
            connection: str(error.details?.connection) ?? connectionIn(error.message) ?? 'unknown',
            until: instance.runAt,
          };
        if (error?.code === 'retry-after' && /^Waiting for children/.test(error.message) && children)
          return { kind: 'children', at: instance.runAt, children };
        return {
          kind: 'retry',
          at: instance.runAt,
          error: { message: error?.message ?? 'unknown error', code: error?.code ?? null },
        };
      }
      break;
    }
    case 'queued':
      if (instance.runAt > now) return { kind: 'scheduled', at: instance.runAt };
      break;
  }
  if (holder && instance.orderingKey !== null)
    return { kind: 'ordering', orderingKey: instance.orderingKey, holder };
  return { kind: 'worker', since: instance.runAt };
}

function lastStart(input: TimelineInput): number | null {
  const started = input.events.findLast((e) => e.type === 'started' && e.run === input.instance.run);
  return started?.at ?? null;
}

/** The connection an open circuit's message names (`Connection "inventory" is open-circuited …`). */
function connectionIn(message: string): string | null {
  return /^Connection "([^"]+)" is open-circuited/.exec(message)?.[1] ?? null;
}

const num = (value: Json | undefined): number => (typeof value === 'number' ? value : 0);
const str = (value: Json | undefined): string | null => (typeof value === 'string' ? value : null);
