/**
 * The rows in which the console draws, and the CLI prints, a run's timeline: attempts and the waits
 * between them in the order they happened, with a series of attempts that only met an open circuit
 * or checked on children folded into one row. A fan-out that waits ten minutes for its children
 * checks on them hundreds of times; each check is an attempt, and a page of hundreds of identical
 * bands would hide the attempts that did something. Imports types only (the console bundles it).
 */
import type { z } from 'zod';
import type { timelineSchema } from './schemas.js';

type RunTimeline = z.output<typeof timelineSchema>['runs'][number];
type Attempt = RunTimeline['attempts'][number];
type Interval = RunTimeline['intervals'][number];

/** Attempts that only waited, and the waits after them, in one row. */
export interface Repeat {
  reason: 'circuit-open' | 'children';
  connection: string | null;
  /** How many attempts it folds. */
  count: number;
  from: number;
  /** Null: the wait after the last one goes on. */
  to: number | null;
  /** Their time in all: the attempts' and the waits'. */
  ms: number;
}

export type TimelineRow =
  | { kind: 'attempt'; attempt: Attempt }
  | { kind: 'interval'; interval: Interval }
  | { kind: 'repeat'; repeat: Repeat };

/** Fewer like attempts in a row are drawn one by one. */
const FOLD_FROM = 3;

/** An attempt that did nothing but meet the wait: no call, its only step (if any) refused at once. */
function waitedOnly(attempt: Attempt): Repeat['reason'] | null {
  if (attempt.outcome !== 'retry' || attempt.backoff === null) return null;
  if (attempt.backoff.reason === 'retry-delay') return null;
  if (attempt.calls.length > 0 || attempt.steps.some((s) => s.calls.length > 0)) return null;
  return attempt.backoff.reason;
}

export function timelineRows(run: RunTimeline): TimelineRow[] {
  const rows: TimelineRow[] = [
    ...run.attempts.map((attempt) => ({ kind: 'attempt' as const, attempt })),
    ...run.intervals.map((interval) => ({ kind: 'interval' as const, interval })),
  ].sort((a, b) => at(a) - at(b));
  const folded: TimelineRow[] = [];
  for (let i = 0; i < rows.length; ) {
    const series = seriesAt(rows, i);
    if (series.attempts >= FOLD_FROM) {
      const first = rows[i] as { kind: 'attempt'; attempt: Attempt };
      const last = rows[series.end - 1]!;
      const ms = rows
        .slice(i, series.end)
        .reduce(
          (sum, row) =>
            sum + (row.kind === 'attempt' ? row.attempt.ms : row.kind === 'interval' ? row.interval.ms : 0),
          0,
        );
      folded.push({
        kind: 'repeat',
        repeat: {
          reason: waitedOnly(first.attempt)!,
          connection: first.attempt.backoff!.connection,
          count: series.attempts,
          from: first.attempt.startedAt,
          to: last.kind === 'interval' ? last.interval.to : (last as { attempt: Attempt }).attempt.finishedAt,
          ms,
        },
      });
      i = series.end;
    } else {
      folded.push(rows[i]!);
      i++;
    }
  }
  return folded;
}

/** The like attempts (each with the wait after it) from row `start`: how many, and the row after them. */
function seriesAt(rows: TimelineRow[], start: number): { attempts: number; end: number } {
  const head = rows[start];
  if (head?.kind !== 'attempt') return { attempts: 0, end: start };
  const reason = waitedOnly(head.attempt);
  if (reason === null) return { attempts: 0, end: start };
  const connection = head.attempt.backoff!.connection;
  let attempts = 0;
  let i = start;
  while (i < rows.length) {
    const row = rows[i]!;
    if (row.kind !== 'attempt' || waitedOnly(row.attempt) !== reason) break;
    if (row.attempt.backoff!.connection !== connection) break;
    attempts++;
    i++;
    const next = rows[i];
    if (next?.kind === 'interval') i++;
  }
  return { attempts, end: i };
}

const at = (row: TimelineRow) =>
  row.kind === 'attempt'
    ? row.attempt.startedAt
    : row.kind === 'interval'
      ? row.interval.from
      : row.repeat.from;
