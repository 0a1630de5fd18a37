import { describe, expect, it } from 'vitest';
import { barPlacement } from '../../console/src/format.js';

describe("a timeline bar's placement on its run's axis", () => {
  const axis = { origin: 1_000, span: 5 };

  it('is where its times say, inside the run', () => {
    expect(barPlacement(axis, 1_001, 1_003)).toEqual({ left: 20, width: 40 });
    expect(barPlacement({ origin: 0, span: 1_000 }, 0, 1_000)).toEqual({ left: 0, width: 100 });
  });

  it('never reaches past its track when a piece of the run ends after the run does (whole-ms times)', () => {
    // A run of 5 ms queued for 2 ms whose attempt took 4 ms: drawn as it was seen, 40% + 80%.
    const { left, width } = barPlacement(axis, 1_002, 1_006);
    expect(left).toBe(40);
    expect(left + width).toBe(100);
  });

  it('clips a bar that starts before the axis and keeps an instant visible at the end', () => {
    expect(barPlacement(axis, 998, 1_002)).toEqual({ left: 0, width: 40 });
    const instant = barPlacement(axis, 1_005, 1_005);
    expect(instant.width).toBeGreaterThan(0);
    expect(instant.left + instant.width).toBeLessThanOrEqual(100);
  });
});
