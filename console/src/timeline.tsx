/**
 * An instance's run drawn from the API's timeline: the waits before and between attempts as
 * hatched bars, each attempt as a band with its outcome, error and the backoff after it, its
 * steps inside it and each connection call under the step that made it, all on one time axis from
 * the run's acceptance. The figures are the API's, never computed again here.
 */
import { type Repeat, timelineRows } from '../../src/server/api/timeline-rows.js';
import type { InstanceDetail } from './api';
import { barPlacement, ms, time } from './format';

type RunTimeline = InstanceDetail['timeline']['runs'][number];
type Attempt = RunTimeline['attempts'][number];
type Interval = RunTimeline['intervals'][number];
type Call = Attempt['calls'][number];
type Step = Attempt['steps'][number];

/** A figure in words, with its exact value in ms for machines (and the tests). */
export const Ms = ({ value }: { value: number | null }) =>
  value === null ? <>—</> : <data value={String(value)}>{ms(value)}</data>;

const OUTCOME: Record<Attempt['outcome'], string> = {
  succeeded: 'succeeded',
  failed: 'failed',
  retry: 'failed, retried',
  wait: 'reached a wait',
  'lease-expired': 'lost its worker (lease expired)',
  interrupted: 'interrupted (worker stopped)',
  cancelled: 'cancelled',
  running: 'running',
};

const INTERVAL: Record<Interval['kind'], string> = {
  queued: 'Queued',
  held: 'Held',
  backoff: 'Retry delay',
  'circuit-open': 'Circuit open',
  children: 'Waiting for children',
  wait: 'Waiting',
  'lease-expired': 'Lease expired',
};

/** Positions on the run's axis: from its acceptance to its end (or now). */
interface Axis {
  origin: number;
  span: number;
}

function Bar({ axis, from, to, kind }: { axis: Axis; from: number; to: number; kind: string }) {
  const { left, width } = barPlacement(axis, from, to);
  return (
    <span class="bar-track" aria-hidden="true">
      <span class={`bar ${kind}`} style={{ left: `${left}%`, width: `${width}%` }} />
    </span>
  );
}

export function RunTimelineView({ run, now }: { run: RunTimeline; now: number }) {
  const end = run.finishedAt ?? now;
  const axis: Axis = { origin: run.acceptedAt, span: Math.max(1, end - run.acceptedAt) };
  // Attempts and the waits between them, in the order they happened (long series of waits folded).
  const rows = timelineRows(run);
  return (
    <>
      <p class="run-figures">
        Accepted {time(run.acceptedAt)}
        {run.finishedAt === null ? ', not finished' : `, finished ${time(run.finishedAt)}`}:{' '}
        <strong>
          <Ms value={run.totalMs} />
        </strong>{' '}
        in all — <Ms value={run.runningMs} /> running, <Ms value={run.waitingMs} /> waiting;{' '}
        {run.attempts.length} attempt{run.attempts.length === 1 ? '' : 's'}.
      </p>
      {run.carriedOver.length > 0 ? (
        <p class="carried">Carried over from the run before (not run again): {run.carriedOver.join(', ')}</p>
      ) : null}
      {rows.length === 0 ? (
        <p>Nothing has happened in this run yet.</p>
      ) : (
        <ol
          class="timeline"
          aria-label={`Run ${run.run}: attempts with their steps and connection calls, and the waits, in order`}
        >
          {rows.map((row, index) =>
            row.kind === 'attempt' ? (
              <AttemptBand
                again={rows
                  .slice(0, index)
                  .some((r) => r.kind === 'attempt' && r.attempt.attempt === row.attempt.attempt)}
                key={`a-${row.attempt.startedAt}-${row.attempt.attempt}`}
                attempt={row.attempt}
                axis={axis}
                now={now}
              />
            ) : row.kind === 'interval' ? (
              <IntervalRow
                key={`i-${row.interval.from}-${row.interval.kind}`}
                interval={row.interval}
                axis={axis}
                end={end}
              />
            ) : (
              <RepeatRow key={`r-${row.repeat.from}`} repeat={row.repeat} axis={axis} end={end} />
            ),
          )}
        </ol>
      )}
    </>
  );
}

function IntervalRow({ interval, axis, end }: { interval: Interval; axis: Axis; end: number }) {
  return (
    <li class={`tl-row tl-interval tl-${interval.kind}`} data-interval={interval.kind}>
      <span class="bar-label">
        {INTERVAL[interval.kind]}: {interval.detail}
        {interval.to === null ? ' (still)' : ''}
      </span>
      <Bar axis={axis} from={interval.from} to={interval.to ?? end} kind="bar-wait" />
      <span class="bar-duration">
        <Ms value={interval.ms} />
      </span>
    </li>
  );
}

/** A series of attempts that only met an open circuit or checked on children, as one wait. */
function RepeatRow({ repeat, axis, end }: { repeat: Repeat; axis: Axis; end: number }) {
  return (
    <li class="tl-row tl-interval tl-repeat" data-repeat={repeat.count}>
      <span class="bar-label">
        {repeat.reason === 'circuit-open'
          ? `Circuit open: ${repeat.count} attempts met the open circuit of ${repeat.connection ?? 'a connection'}, none used up`
          : `Waiting for children: checked ${repeat.count} times`}
        {repeat.to === null ? ' (still)' : ''}
      </span>
      <Bar axis={axis} from={repeat.from} to={repeat.to ?? end} kind="bar-wait" />
      <span class="bar-duration">
        <Ms value={repeat.ms} />
      </span>
    </li>
  );
}

function AttemptBand({
  attempt,
  axis,
  now,
  again,
}: {
  attempt: Attempt;
  axis: Axis;
  now: number;
  /** Its number was used before: the wait before it (a durable wait, an open circuit) gave it back. */
  again: boolean;
}) {
  const end = attempt.finishedAt ?? now;
  const bad = attempt.outcome !== 'succeeded' && attempt.outcome !== 'running' && attempt.outcome !== 'wait';
  return (
    <li
      class={`tl-attempt outcome-${attempt.outcome}`}
      data-attempt={attempt.attempt}
      data-outcome={attempt.outcome}
    >
      <div class="tl-row tl-attempt-head">
        <span class="bar-label">
          <strong>Attempt {attempt.attempt}</strong>
          {again ? ' again (the wait before did not use an attempt)' : ''} — {OUTCOME[attempt.outcome]}
        </span>
        <Bar axis={axis} from={attempt.startedAt} to={end} kind={bad ? 'bar-failed' : 'bar-attempt'} />
        <span class="bar-duration">
          <Ms value={attempt.ms} />
        </span>
      </div>
      {attempt.error ? (
        <p class="tl-error">
          Error{attempt.error.code ? ` (${attempt.error.code})` : ''}: {attempt.error.message}
          {attempt.backoff ? (
            <>
              {' '}
              — next attempt at {time(attempt.backoff.until)} after{' '}
              {attempt.backoff.reason === 'circuit-open'
                ? `the circuit of ${attempt.backoff.connection ?? 'the connection'} stays open`
                : attempt.backoff.reason === 'children'
                  ? 'a check of its children'
                  : 'the retry delay'}
            </>
          ) : null}
        </p>
      ) : null}
      {attempt.steps.length + attempt.calls.length > 0 ? (
        <ol class="tl-steps" aria-label={`Steps of attempt ${attempt.attempt}`}>
          {attempt.steps.map((step) => (
            <StepRow key={`${step.name}-${step.startedAt}`} step={step} axis={axis} now={now} />
          ))}
          {attempt.calls.length > 0 ? (
            <li class="tl-step" data-step="">
              <div class="tl-row">
                <span class="bar-label">Outside any step</span>
              </div>
              <Calls calls={attempt.calls} axis={axis} />
            </li>
          ) : null}
        </ol>
      ) : null}
    </li>
  );
}

function StepRow({ step, axis, now }: { step: Step; axis: Axis; now: number }) {
  const failed = step.status === 'failed' || step.status === 'interrupted';
  return (
    <li class={`tl-step step-${step.status}`} data-step={step.name}>
      <div class="tl-row">
        <span class="bar-label">
          {step.name}
          {step.status === 'succeeded' ? '' : ` — ${step.status}`}
          {step.error ? `: ${step.error}` : ''}
        </span>
        <Bar
          axis={axis}
          from={step.startedAt}
          to={step.finishedAt ?? now}
          kind={failed ? 'bar-failed' : 'bar-step'}
        />
        <span class="bar-duration">
          <Ms value={step.ms} />
        </span>
      </div>
      <Calls calls={step.calls} axis={axis} />
    </li>
  );
}

function Calls({ calls, axis }: { calls: Call[]; axis: Axis }) {
  if (calls.length === 0) return null;
  return (
    <ol class="tl-calls">
      {calls.map((call) => (
        <li
          key={call.id}
          class={`tl-row tl-call${call.failed ? ' call-failed' : ''}`}
          data-call={call.connection}
          data-status={call.status ?? 'none'}
        >
          <span class="bar-label">
            ↳ {call.method} {call.connection} {shortUrl(call.url)} → {call.status ?? 'no answer'}
          </span>
          <Bar
            axis={axis}
            from={call.startedAt}
            to={call.finishedAt}
            kind={call.failed ? 'bar-failed' : 'bar-call'}
          />
          <span class="bar-duration">
            <Ms value={call.ms} />
          </span>
        </li>
      ))}
    </ol>
  );
}

const shortUrl = (url: string) => url.replace(/^https?:\/\/[^/]+/, '');
