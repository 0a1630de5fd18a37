import { describe, expect, it, vi } from 'vitest';
import { uuidv7 } from '../../src/engine/ids.js';

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('instance ids (UUID version 7)', () => {
  it('carries the millisecond given, as 48 bits big-endian, with the version and variant bits', async () => {
    // A fresh module: ids never go back in time within one, so the times are given in order.
    vi.resetModules();
    const fresh = (await import('../../src/engine/ids.js')).uuidv7;
    for (const now of [0x0123456789ab, 1_796_575_268_627, 0xffffffffff00, 0xffffffffffff]) {
      const id = fresh(now);
      expect(id).toMatch(UUID_V7);
      expect(id.replace(/-/g, '').slice(0, 12)).toBe(now.toString(16).padStart(12, '0'));
    }
  });

  it('keeps ids of one process strictly increasing and distinct within a millisecond and across', () => {
    const now = Date.UTC(2030, 0, 1);
    const ids = [
      ...Array.from({ length: 3_000 }, () => uuidv7(now)),
      ...Array.from({ length: 3_000 }, () => uuidv7(now + 10)),
    ];
    for (let i = 1; i < ids.length; i++) expect(ids[i - 1]! < ids[i]!).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) expect(id).toMatch(UUID_V7);
  });

  it('fills the random bits from the random source: ids of different milliseconds do not repeat their tail', () => {
    const tails = new Set(
      Array.from({ length: 2_000 }, (_, i) => uuidv7(Date.UTC(2031, 0, 1) + i).slice(19)),
    );
    expect(tails.size).toBe(2_000);
  });
});
