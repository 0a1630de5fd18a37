/** The engine's source of time. Tests replace it to move time without waiting. */
export interface Clock {
  now(): number;
}

/** Backward steps of the wall clock up to this size are followed as they are. */
const BACKWARD_STEP_TOLERANCE_MS = 1_000;
/** After a larger backward step, the clock runs this much slower until it meets the wall clock again. */
const CATCH_UP_RATE = 0.1;

/**
 * Wall-clock time that does not step backwards. It is the wall clock as long as that moves forward
 * (a forward step, e.g. after a suspend, is followed at once). When the wall clock steps back by
 * more than a second (an operator, a broken time sync), this clock keeps counting from where it was
 * with the monotonic clock, running 10 % slower until the wall clock catches up: queued instances
 * stay due, retries and leases keep their spacing, and no cron slot comes round twice. (Time that
 * stepped back would leave every queued instance and every retry waiting for the size of the step.)
 */
export function steadyClock(
  wall: () => number = Date.now,
  monotonic: () => number = () => performance.now(),
): Clock {
  let last = wall();
  let lastMonotonic = monotonic();
  return {
    now() {
      const w = wall();
      const m = monotonic();
      const elapsed = Math.max(0, m - lastMonotonic);
      lastMonotonic = m;
      if (w >= last - BACKWARD_STEP_TOLERANCE_MS) {
        last = w;
        return w;
      }
      // The wall clock is behind: advance by the elapsed time, slowed so that the gap closes.
      last = Math.max(w, last + elapsed * (1 - CATCH_UP_RATE));
      return Math.round(last);
    },
  };
}

export const systemClock: Clock = steadyClock();
