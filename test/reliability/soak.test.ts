/**
 * The soak's short version: 30 s of mixed sync, async and batch load at 60 requests/s against a
 * server process on SQLite, checked by the same rules as `npm run soak` (10 minutes), memory against
 * the peak of the first two 6-second windows (one garbage collection cycle spans them): no errors,
 * nothing lost, no duplicate step, memory flat after warm-up, latency stable.
 */
import { describe, expect, it } from 'vitest';
import { runSoak } from '../../bench/soak.js';

describe('soak (short)', () => {
  it('30 s of mixed load: no errors, nothing lost, memory flat, latency stable', async () => {
    const report = await runSoak({
      seconds: 30,
      rate: 60,
      windowSeconds: 6,
      batchLines: 10,
      targetDownSeconds: 0,
      memoryReferenceWindows: [0, 1],
      // A CI machine is shared: a p99 that triples for a few seconds is other work, a backlog is seconds.
      latencyLimit: { factor: 3, slackMs: 100 },
    });
    if (process.env.TANDEM_FIGURES) console.log(`figures soak-short ${JSON.stringify(report)}`);
    expect(report.requests).toBeGreaterThan(1_700);
    expect(report.asyncAcknowledged + report.batchLinesAcknowledged).toBeGreaterThan(2_400);
    expect(report.violations).toEqual([]);
  }, 240_000);
});
