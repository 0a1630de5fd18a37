/**
 * Durations as handlers write them: a number of milliseconds, or text such as `"30s"`, `"15m"`,
 * `"2h"`, `"3d"`, `"1w"`. Waits (`ctx.sleep`, wait timeouts) last hours or days, and `"2d"` reads
 * better than `172800000` in an integration that someone else has to check.
 */
import { TandemError } from '../errors.js';

/** Milliseconds, or a number with a unit: `ms`, `s`, `m`, `h`, `d` or `w`. */
export type Duration = number | `${number}${'ms' | 's' | 'm' | 'h' | 'd' | 'w'}`;

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/** The longest wait: ten years (a wait with no end has no timeout at all). */
const MAX_WAIT_MS = 10 * 365 * 86_400_000;

/** The duration in ms; throws `invalid-definition` naming `what` for anything else. */
export function durationMs(value: unknown, what: string): number {
  let ms: number | undefined;
  if (typeof value === 'number') ms = value;
  else if (typeof value === 'string') {
    const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)$/.exec(value.trim());
    if (match) ms = Number(match[1]) * UNIT_MS[match[2]!]!;
  }
  if (ms === undefined || !Number.isFinite(ms) || ms < 0 || ms > MAX_WAIT_MS)
    throw new TandemError(
      'invalid-definition',
      `${what} must be a number of milliseconds or a duration such as "30s", "15m", "2h" or "3d", from 0 to 10 years; got ${JSON.stringify(value)}`,
    );
  return Math.round(ms);
}
