/**
 * The test kit's time: a clock that stands still until the test moves it, so that a retry an hour
 * away or tonight's cron slot is reached by `advance()` in milliseconds instead of by waiting.
 */
import type { Clock } from '../engine/clock.js';
import { TandemError } from '../errors.js';

/** A clock that moves only when told. Time never goes backwards. */
export class ManualClock implements Clock {
  private time: number;

  constructor(start: number) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  /** Moves the clock to `time` (ms since epoch); refuses to go back. */
  set(time: number): void {
    if (!Number.isFinite(time) || time < this.time) {
      throw new TandemError(
        'invalid-state',
        `The test clock cannot go back or off the scale: from ${new Date(this.time).toISOString()} to ${time}`,
      );
    }
    this.time = time;
  }
}

/** A start time given as a Date, an ISO string or ms since epoch, in ms. */
export function toTime(value: Date | string | number, what: string): number {
  const time =
    value instanceof Date ? value.getTime() : typeof value === 'string' ? Date.parse(value) : value;
  if (typeof time !== 'number' || !Number.isFinite(time)) {
    throw new TandemError('invalid-definition', `${what} is not a time: ${String(value)}`);
  }
  return time;
}
