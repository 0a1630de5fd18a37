/**
 * What happens after an attempt threw: another attempt (now or after a wait) or a failed run. The
 * decision reads only the error, the instance's attempt count and the integration's retry policy,
 * so it lives apart from the executor that runs attempts.
 */
import type { AsyncDefinition, ScheduledDefinition } from '../define/integration.js';
import { backoffDelay, resolveRetryPolicy } from '../define/retry.js';
import { RetryAfterError, TandemError, toErrorInfo } from '../errors.js';
import type { InstanceWork } from '../model.js';
import type { AttemptOutcome } from '../store/store.js';

/** Errors that no retry can mend: the same code with the same input fails the same way. */
const PERMANENT_CODES = new Set([
  'non-retryable',
  'duplicate-step',
  'not-serializable',
  'invalid-input',
  'unknown-integration',
  'invalid-definition',
  'idempotency-conflict',
  'wrong-mode',
  'version-missing',
  'step-mismatch',
]);

function isPermanent(error: Error): boolean {
  if (error instanceof TandemError && PERMANENT_CODES.has(error.code)) return true;
  return (error as { retryable?: unknown }).retryable === false;
}

/** Retry or fail, by the error and the policy. */
export function retryOrFail(
  error: Error,
  instance: InstanceWork,
  integration: AsyncDefinition<any> | ScheduledDefinition<any>,
  now: number,
): Exclude<AttemptOutcome, { kind: 'wait' }> {
  const info = toErrorInfo(error);
  if (isPermanent(error)) return { kind: 'failed', error: info };
  const policy = resolveRetryPolicy(integration.retry);
  // A wait asked for by the error itself: RetryAfterError, an open circuit, a 429 with Retry-After.
  const delayMs =
    error instanceof RetryAfterError ? error.delayMs : (error as { retryAfterMs?: unknown }).retryAfterMs;
  if (typeof delayMs === 'number' && Number.isFinite(delayMs) && delayMs >= 0) {
    const consumesAttempt = (error as { consumesAttempt?: unknown }).consumesAttempt !== false;
    if (consumesAttempt && instance.attempt >= policy.maxAttempts) return { kind: 'failed', error: info };
    return { kind: 'retry', error: info, runAt: now + delayMs, consumesAttempt };
  }
  if (instance.attempt >= policy.maxAttempts) return { kind: 'failed', error: info };
  return {
    kind: 'retry',
    error: info,
    runAt: now + backoffDelay(policy, instance.attempt),
    consumesAttempt: true,
  };
}
