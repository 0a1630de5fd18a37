/**
 * `tandem instances show`'s timeline and "why is it waiting", printed from the API's answer (the
 * same `timeline`, `waitingFor` and `children` the console draws): figures in exact milliseconds,
 * so that what the CLI prints can be checked against the API and the console.
 */
import type { ApiResponse } from '../server/api/routes.js';
import { timelineRows } from '../server/api/timeline-rows.js';

type Detail = ApiResponse<'getInstance'>;
type RunTimeline = Detail['timeline']['runs'][number];
type WaitingFor = NonNullable<Detail['waitingFor']>;
type ChildCounts = NonNullable<Detail['children']>;

const time = (ms: number | null) =>
  ms === null ? '—' : new Date(ms).toISOString().replace('T', ' ').slice(0, 23);
const ms = (value: number) => `${value} ms`;

/** The figures of a run: `duration: 13020 ms (accepted → finished), running 1060 ms, waiting 11960 ms`. */
export function runFigures(run: RunTimeline): string[] {
  return [
    `run ${run.run}${run.from ? ` (from ${run.from})` : ''}: accepted ${time(run.acceptedAt)}, finished ${time(run.finishedAt)}`,
    `duration: ${ms(run.totalMs)} (accepted → ${run.finishedAt === null ? 'now' : 'finished'}), running ${ms(run.runningMs)}, waiting ${ms(run.waitingMs)}, attempts ${run.attempts.length}`,
  ];
}

/** Attempts with their steps and calls, and the waits between them, one line each, indented. */
export function runLines(run: RunTimeline): string[] {
  const lines: string[] = [];
  if (run.carriedOver.length > 0) lines.push(`carried over: ${run.carriedOver.join(', ')}`);
  for (const row of timelineRows(run)) {
    if (row.kind === 'interval') {
      const { interval } = row;
      lines.push(
        `  … ${interval.kind} ${ms(interval.ms)}${interval.to === null ? ' so far' : ''}: ${interval.detail}`,
      );
      continue;
    }
    if (row.kind === 'repeat') {
      const { repeat } = row;
      lines.push(
        `  … ${repeat.reason} ${ms(repeat.ms)}${repeat.to === null ? ' so far' : ''}: ${repeat.count} attempts ${repeat.reason === 'children' ? 'checked on its children' : `met the open circuit of ${repeat.connection ?? 'a connection'}`}`,
      );
      continue;
    }
    const { attempt } = row;
    const error = attempt.error
      ? `: ${attempt.error.code ? `(${attempt.error.code}) ` : ''}${attempt.error.message}`
      : '';
    const backoff = attempt.backoff
      ? `; next at ${time(attempt.backoff.until)} (${attempt.backoff.reason}${attempt.backoff.connection ? ` ${attempt.backoff.connection}` : ''})`
      : '';
    lines.push(`  attempt ${attempt.attempt} ${attempt.outcome} ${ms(attempt.ms)}${error}${backoff}`);
    for (const step of attempt.steps) {
      lines.push(`    ${step.name} ${step.status} ${ms(step.ms)}${step.error ? `: ${step.error}` : ''}`);
      for (const call of step.calls) lines.push(`      ${callText(call)}`);
    }
    for (const call of attempt.calls) lines.push(`    ${callText(call)} (outside any step)`);
  }
  return lines;
}

const callText = (call: RunTimeline['attempts'][number]['calls'][number]) =>
  `↳ ${call.method} ${call.connection} ${call.url.replace(/^https?:\/\/[^/]+/, '')} → ${call.status ?? 'no answer'} ${ms(call.ms)}`;

/** Why an unfinished instance is not done yet, in words. */
export function whyText(why: WaitingFor): string {
  switch (why.kind) {
    case 'running':
      return `running attempt ${why.attempt} since ${time(why.since)}`;
    case 'ordering':
      return `queued behind ${why.holder.integrationId} ${why.holder.id} (${why.holder.status}) of ordering key ${why.orderingKey}`;
    case 'retry':
      return `next attempt at ${time(why.at)} after error${why.error.code ? ` (${why.error.code})` : ''}: ${why.error.message}`;
    case 'circuit':
      return `circuit of connection ${why.connection} open${why.until === null ? '' : ` until ${time(why.until)}`}`;
    case 'worker':
      return `a worker slot (due since ${time(why.since)}, nothing holds it)`;
    case 'scheduled':
      return `scheduled for ${time(why.at)}`;
    case 'wait':
      return why.wait === 'event'
        ? `event ${why.event}${why.match && Object.keys(why.match).length > 0 ? ` ${JSON.stringify(why.match)}` : ''} ("${why.step}")`
        : `${why.wait} "${why.step}"${why.until === null ? '' : ` until ${time(why.until)}`}`;
    case 'children':
      return `its children: ${childrenText(why.children)}; next check at ${time(why.at)}`;
  }
}

export function childrenText(counts: ChildCounts): string {
  const done = (counts.succeeded ?? 0) + (counts.failed ?? 0) + (counts.cancelled ?? 0);
  const parts = Object.entries(counts)
    .filter(([status, n]) => status !== 'total' && n > 0)
    .map(([status, n]) => `${n} ${status}`);
  return `${done} of ${counts.total} done${parts.length > 0 ? ` (${parts.join(', ')})` : ''}`;
}
