/**
 * Advice from measured data: which pattern an integration should use, with the figures behind it.
 * Pure functions of an integration's definition and its statistics, so the same advice shows in
 * the API, the CLI and the console.
 */
import type { AnyIntegration } from '../define/integration.js';
import type { IntegrationStats } from '../store/store.js';

const DEFAULT_DEADLINE_MS = 10_000;

/** Error codes that mean a downstream application failed, not the integration's own code. */
const DOWNSTREAM_ERROR_CODES = new Set([
  'http-error',
  'connection-failed',
  'connection-timeout',
  'circuit-open',
  'downstream-failed',
]);

export type AdviceKind = 'split-sync-to-async' | 'sync-may-serve' | 'check-connection';

export interface Advice {
  kind: AdviceKind;
  message: string;
  figures: Record<string, number | string>;
}

export interface AdviceInput {
  integration: AnyIntegration;
  stats: IntegrationStats | undefined;
  /** Window the statistics cover, for the wording ("over the last 24 h"). */
  window: string;
  /** Share (0–1) of async instances whose status callers read within a second of the accept. */
  immediatePollShare?: number;
  /** Failed instances per connection id, when known. */
  failuresByConnection?: Record<string, number>;
}

/** Too few instances say nothing; advice needs at least this many in the window. */
const MIN_SAMPLE = 20;

export function advise(input: AdviceInput): Advice[] {
  const { integration, stats, window } = input;
  if (!stats || stats.total < MIN_SAMPLE) return [];
  const advice: Advice[] = [];
  const finished = stats.succeeded + stats.failed;
  if (integration.mode === 'sync') {
    const deadline = integration.deadline ?? DEFAULT_DEADLINE_MS;
    if (stats.p95 !== null && stats.p95 > deadline / 2) {
      advice.push({
        kind: 'split-sync-to-async',
        message: `p95 of ${stats.p95} ms is more than half the ${deadline} ms deadline (${stats.total} calls ${window}): answer at once and hand the slow part off to an async integration (sync → async).`,
        figures: { p95Ms: stats.p95, deadlineMs: deadline, calls: stats.total },
      });
    }
    const downstream = stats.errors
      .filter((e) => e.code !== null && DOWNSTREAM_ERROR_CODES.has(e.code))
      .reduce((sum, e) => sum + e.count, 0);
    if (finished > 0 && downstream >= 3 && downstream / finished >= 0.05) {
      const share = Math.round((downstream / finished) * 1000) / 10;
      advice.push({
        kind: 'split-sync-to-async',
        message: `${downstream} of ${finished} calls (${share}%) ${window} failed because a downstream application was down or refusing: a sync call is never rerun, so hand the work that must not be lost off to an async integration (sync → async) that retries it.`,
        figures: { downstreamFailures: downstream, calls: finished, sharePercent: share },
      });
    }
  } else if (
    integration.mode === 'async' &&
    stats.p95 !== null &&
    stats.p95 < 1_000 &&
    stats.failed === 0 &&
    (input.immediatePollShare ?? 0) >= 0.5
  ) {
    const share = Math.round((input.immediatePollShare ?? 0) * 100);
    advice.push({
      kind: 'sync-may-serve',
      message: `Instances finish in ${stats.p95} ms at p95 and ${share}% of callers ask for the result within a second: if a failure needs no rerun, a sync integration may serve them directly.`,
      figures: { p95Ms: stats.p95, immediatePollPercent: share },
    });
  }
  const byConnection = Object.entries(input.failuresByConnection ?? {}).sort((a, b) => b[1] - a[1]);
  const total = byConnection.reduce((sum, [, n]) => sum + n, 0);
  const [top, count] = byConnection[0] ?? [];
  if (top !== undefined && count !== undefined && count >= 3 && count / total > 0.5) {
    const share = Math.round((count / total) * 100);
    advice.push({
      kind: 'check-connection',
      message: `${count} of ${total} failed instances ${window} (${share}%) failed on connection "${top}": look at that application (availability, timeouts, rate limits) before changing the integration.`,
      figures: { connection: top, failures: count, totalFailures: total, sharePercent: share },
    });
  }
  return advice;
}
