import parsePrometheusTextFormat from 'parse-prometheus-text-format';
import client from 'prom-client';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineIntegration } from '../src/define/integration.js';
import { createMetrics } from '../src/metrics.js';
import { testEngine } from './support/engine.js';
import { waitFor } from './support/wait.js';

describe('metrics', () => {
  it('renders the Prometheus text format with counters that match the store', async () => {
    const flaky = defineIntegration({
      id: 'flaky',
      mode: 'async',
      input: z.object({ n: z.number() }),
      retry: { maxAttempts: 2, initialDelayMs: 5, jitter: 0 },
      handler(ctx) {
        // n % 3 === 0 fails for good, n % 3 === 1 fails once then succeeds, the rest succeed at once.
        if (ctx.input.n % 3 === 0 || (ctx.input.n % 3 === 1 && ctx.attempt === 1)) throw new Error('no');
        return ctx.input.n;
      },
    });
    const t = await testEngine([flaky]);
    try {
      const metrics = createMetrics(t.engine);
      for (let n = 0; n < 30; n++) await t.engine.accept('flaky', { n });
      await waitFor(
        async () => (await t.store.countInstances({ status: ['succeeded', 'failed'] })) === 30,
        'all 30 to finish',
      );
      await waitFor(() => t.engine.activeCount === 0, 'writes to settle');
      const families = parsePrometheusTextFormat(await metrics.render());
      const value = (name: string) =>
        families
          .find((f) => f.name === name)
          ?.metrics.filter((m) => m.labels?.integration === 'flaky' || !m.labels?.integration)
          .reduce((sum, m) => sum + Number(m.value), 0);
      expect(value('tandem_instances_accepted_total')).toBe(await t.store.countInstances({}));
      expect(value('tandem_instances_succeeded_total')).toBe(
        await t.store.countInstances({ status: 'succeeded' }),
      );
      expect(value('tandem_instances_failed_total')).toBe(await t.store.countInstances({ status: 'failed' }));
      expect(value('tandem_instances_succeeded_total')).toBe(20);
      // 10 that failed twice and 10 that failed once: 20 failed attempts, of which 10 were retried.
      expect(value('tandem_attempts_retried_total')).toBe(20);
      expect(value('tandem_attempts_started_total')).toBe(50);
      expect(value('tandem_queue_depth')).toBe(0);
      expect(families.find((f) => f.name === 'tandem_attempt_duration_seconds')?.type).toBe('HISTOGRAM');
      // The parser merges labelled histogram series, so count the observations from the registry.
      const histogram = await metrics.registry.getSingleMetric('tandem_attempt_duration_seconds')!.get();
      const observations = (histogram.values as { metricName?: string; value: number }[])
        .filter((v) => v.metricName === 'tandem_attempt_duration_seconds_count')
        .reduce((sum, v) => sum + v.value, 0);
      expect(observations).toBe(50);
    } finally {
      await t.close();
    }
  });

  it('counts every accept across scrapes: a scrape neither loses nor repeats an increment', async () => {
    const parked = defineIntegration({
      id: 'parked',
      mode: 'async',
      input: z.object({ n: z.number() }),
      handler: () => 'ok',
    });
    // No worker: the instances stay queued, so only the accepts are counted.
    const t = await testEngine([parked], { worker: false });
    try {
      const metrics = createMetrics(t.engine);
      const accepted = async () =>
        parsePrometheusTextFormat(await metrics.render())
          .find((f) => f.name === 'tandem_instances_accepted_total')
          ?.metrics.find((m) => m.labels?.integration === 'parked' && m.labels?.mode === 'async')?.value;
      for (let n = 0; n < 3; n++) await t.engine.accept('parked', { n });
      expect(await accepted()).toBe('3');
      await t.engine.acceptPrepared([4, 5].map((n) => t.engine.prepare('parked', { n })));
      expect(await accepted()).toBe('5');
      expect(await accepted()).toBe('5');
    } finally {
      await t.close();
    }
  });

  it("renders the duration histogram exactly as prom-client's own histogram would", async () => {
    const quote = defineIntegration({ id: 'quote', mode: 'sync', handler: () => 'ok' });
    const lookup = defineIntegration({ id: 'lookup', mode: 'sync', handler: () => 'ok' });
    const t = await testEngine([quote, lookup], { worker: false });
    try {
      const metrics = createMetrics(t.engine);
      const reference = new client.Registry();
      const name = 'tandem_attempt_duration_seconds';
      const expected = new client.Histogram({
        name,
        help: 'Duration of finished attempts (async, scheduled) and calls (sync).',
        labelNames: ['integration', 'mode', 'outcome'],
        buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
        registers: [reference],
      });
      // On bucket bounds, between them, zero and beyond the last bound (only in +Inf).
      const calls: [string, 'succeeded' | 'failed', number][] = [
        ['quote', 'succeeded', 5],
        ['quote', 'succeeded', 0],
        ['lookup', 'failed', 7.5],
        ['quote', 'failed', 400_000],
        ['quote', 'succeeded', 1_000],
        ['lookup', 'failed', 300_000],
        ['quote', 'succeeded', 12.25],
      ];
      for (const [integration, outcome, ms] of calls) {
        t.engine.observer.syncFinished(integration, outcome, ms);
        expected.labels(integration, 'sync', outcome).observe(ms / 1000);
      }
      const lines = (text: string) => text.split('\n').filter((line) => line.includes(name));
      const rendered = lines(await metrics.render());
      expect(rendered.length).toBe(2 + 3 * (14 + 3));
      expect(rendered).toEqual(lines(await reference.metrics()));
      const values = (await metrics.registry.getSingleMetric(name)!.get()).values;
      expect(values.map(({ labels, value }) => ({ labels, value }))).toEqual(
        (await expected.get()).values.map(({ labels, value }) => ({ labels, value })),
      );
    } finally {
      await t.close();
    }
  });
});
