import { describe, expect, it } from 'vitest';
import { advise } from '../src/advisor/advice.js';
import { decide } from '../src/advisor/decide.js';
import { defineIntegration } from '../src/define/integration.js';
import type { IntegrationStats } from '../src/store/store.js';

describe('decide', () => {
  const cases: [boolean, boolean, boolean, string][] = [
    [false, false, false, 'async'],
    [false, false, true, 'async'],
    [false, true, false, 'async'],
    [false, true, true, 'async'],
    [true, false, false, 'sync-to-async'],
    [true, false, true, 'sync-to-async'],
    [true, true, true, 'sync-to-async'],
    [true, true, false, 'sync'],
  ];
  it.each(cases)(
    'immediate %s, seconds %s, rerun %s → %s',
    (immediateResponse, finishesInSeconds, needsRerun, pattern) => {
      const decision = decide({ immediateResponse, finishesInSeconds, needsRerun });
      expect(decision.pattern).toBe(pattern);
      expect(decision.reasons.length).toBeGreaterThan(0);
    },
  );
});

const stats = (overrides: Partial<IntegrationStats>): IntegrationStats => ({
  integrationId: 'x',
  mode: 'sync',
  total: 100,
  succeeded: 100,
  failed: 0,
  cancelled: 0,
  active: 0,
  p50: 10,
  p95: 20,
  p99: 30,
  retriesPerInstance: 0,
  errors: [],
  failuresByConnection: {},
  ...overrides,
});

describe('advise', () => {
  const balance = defineIntegration({ id: 'check-balance', mode: 'sync', deadline: 2_000, handler: () => 1 });
  const sync = defineIntegration({ id: 'stock', mode: 'async', handler: () => 1 });

  it('tells a slow sync integration to split, with its p95 in the text', () => {
    const [advice] = advise({
      integration: balance,
      stats: stats({ p95: 1_500 }),
      window: 'in the last 24 h',
    });
    expect(advice?.kind).toBe('split-sync-to-async');
    expect(advice?.message).toContain('1500 ms');
    expect(advice?.figures).toMatchObject({ p95Ms: 1_500, deadlineMs: 2_000 });
    expect(advise({ integration: balance, stats: stats({ p95: 900 }), window: '' })).toEqual([]);
  });

  it('tells a sync integration failing on downstream outages to split', () => {
    const advice = advise({
      integration: balance,
      stats: stats({
        succeeded: 90,
        failed: 10,
        errors: [
          { code: 'http-error', count: 8 },
          { code: null, count: 2 },
        ],
      }),
      window: '',
    });
    expect(advice.map((a) => a.kind)).toEqual(['split-sync-to-async']);
    expect(advice[0]?.figures).toMatchObject({ downstreamFailures: 8, calls: 100 });
  });

  it('says sync may serve a fast async integration whose callers poll at once, and names a failing connection', () => {
    expect(
      advise({
        integration: sync,
        stats: stats({ mode: 'async', p95: 40 }),
        window: '',
        immediatePollShare: 0.8,
      })[0]?.kind,
    ).toBe('sync-may-serve');
    expect(
      advise({
        integration: sync,
        stats: stats({ mode: 'async', p95: 40 }),
        window: '',
        immediatePollShare: 0.1,
      }),
    ).toEqual([]);
    const [advice] = advise({
      integration: sync,
      stats: stats({ mode: 'async', failed: 10 }),
      window: '',
      failuresByConnection: { inventory: 8, crm: 2 },
    });
    expect(advice).toMatchObject({
      kind: 'check-connection',
      figures: { connection: 'inventory', failures: 8 },
    });
  });

  it('gives no advice on too few instances', () => {
    expect(advise({ integration: balance, stats: stats({ total: 5, p95: 5_000 }), window: '' })).toEqual([]);
  });
});
