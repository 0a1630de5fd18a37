import { describe, expect, it } from 'vitest';
import type { AsyncDefinition } from '../../src/define/integration.js';
import { retryOrFail } from '../../src/engine/retry-or-fail.js';
import { NonRetryableError, RetryAfterError } from '../../src/errors.js';
import type { InstanceWork } from '../../src/model.js';

const integration: AsyncDefinition = {
  id: 'flaky',
  mode: 'async',
  retry: { maxAttempts: 3, initialDelayMs: 100, factor: 2, maxDelayMs: 10_000, jitter: 0 },
  handler: () => {},
};
const at = (attempt: number) => ({ attempt }) as InstanceWork;
const NOW = 1_000_000;

describe('retryOrFail', () => {
  it('fails at once on a permanent error, and when the attempts are used up', () => {
    expect(retryOrFail(new NonRetryableError('no'), at(1), integration, NOW)).toMatchObject({
      kind: 'failed',
      error: { code: 'non-retryable', message: 'no' },
    });
    expect(retryOrFail(new Error('down'), at(3), integration, NOW).kind).toBe('failed');
  });

  it('retries with backoff while attempts remain', () => {
    expect(retryOrFail(new Error('down'), at(2), integration, NOW)).toMatchObject({
      kind: 'retry',
      runAt: NOW + 200,
      consumesAttempt: true,
    });
  });

  it('waits as the error asks; a wait that uses no attempt is retried even at the last attempt', () => {
    expect(retryOrFail(new RetryAfterError(5_000), at(1), integration, NOW)).toMatchObject({
      kind: 'retry',
      runAt: NOW + 5_000,
    });
    expect(retryOrFail(new RetryAfterError(5_000), at(3), integration, NOW).kind).toBe('failed');
    const free = new RetryAfterError(5_000, 'waiting', { consumesAttempt: false });
    expect(retryOrFail(free, at(3), integration, NOW)).toMatchObject({
      kind: 'retry',
      runAt: NOW + 5_000,
      consumesAttempt: false,
    });
  });
});
