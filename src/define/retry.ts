import { between, delayMs, integer, options } from './options.js';

/** How failed attempts of an async or scheduled instance are retried. */
export interface RetryPolicy {
  /** Attempts per run, the first included. Default 5. */
  maxAttempts?: number;
  /** Delay before the second attempt. Default 1 s. */
  initialDelayMs?: number;
  /** Growth of the delay per attempt. Default 2. */
  factor?: number;
  /** Upper bound of one delay. Default 5 min. */
  maxDelayMs?: number;
  /** Share of the delay that is randomised (0 = none, 1 = full jitter). Default 0.25. */
  jitter?: number;
}

/** Checks a {@link RetryPolicy}; delays are stored as due times, so each must be finite. */
export const retryPolicySchema = options({
  maxAttempts: integer(1, 10_000).optional(),
  initialDelayMs: delayMs().optional(),
  factor: between(1, 100).optional(),
  maxDelayMs: delayMs().optional(),
  jitter: between(0, 1).optional(),
} satisfies Record<keyof RetryPolicy, unknown>);

export type ResolvedRetryPolicy = Required<RetryPolicy>;

const DEFAULT_RETRY: ResolvedRetryPolicy = {
  maxAttempts: 5,
  initialDelayMs: 1_000,
  factor: 2,
  maxDelayMs: 300_000,
  jitter: 0.25,
};

export function resolveRetryPolicy(policy: RetryPolicy | undefined): ResolvedRetryPolicy {
  return { ...DEFAULT_RETRY, ...policy };
}

/**
 * Delay before the attempt after `attempt` (1-based): exponential, capped, with jitter that only
 * shortens the delay so that the cap holds and a herd of retries spreads out.
 */
export function backoffDelay(policy: ResolvedRetryPolicy, attempt: number, random = Math.random): number {
  const exponential = policy.initialDelayMs * policy.factor ** Math.max(0, attempt - 1);
  const capped = Math.min(policy.maxDelayMs, exponential);
  return Math.round(capped * (1 - policy.jitter * random()));
}
