/** Instance ids: made on every accept and sync call, so they are cheap and sort by creation time. */
import { randomFillSync } from 'node:crypto';

let lastMs = 0;
let counter = 0;

// Random bytes drawn 4 KiB at a time: one call into the CSPRNG per ~400 ids instead of two per id
// (the per-call cost showed up as ~9% of an accept in the HTTP benchmark).
const POOL_SIZE = 4096;
const pool = Buffer.allocUnsafe(POOL_SIZE);
let poolOffset = POOL_SIZE;

/** The offset in `pool` of `size` fresh random bytes. */
function randomAt(size: number): number {
  if (poolOffset + size > POOL_SIZE) {
    randomFillSync(pool);
    poolOffset = 0;
  }
  const at = poolOffset;
  poolOffset += size;
  return at;
}

// The id is written as text into one buffer and read out once: no Buffer, hex string and slices
// per id (an accept makes one id, and these allocations showed in its profile).
const HEX = Buffer.from('0123456789abcdef', 'latin1');
const text = Buffer.from('00000000-0000-0000-0000-000000000000', 'latin1');
/** Where the two hex digits of each of the 16 bytes go in the text. */
const AT = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];

function put(index: number, byte: number): void {
  const at = AT[index]!;
  text[at] = HEX[byte >> 4]!;
  text[at + 1] = HEX[byte & 0xf]!;
}

/**
 * A UUID version 7 (RFC 9562): 48 bits of Unix milliseconds, then random bits, so ids sort by
 * creation time (good index locality) and need no coordination between processes. A 12-bit counter
 * in `rand_a` keeps ids from one process strictly increasing within a millisecond.
 */
export function uuidv7(now = Date.now()): string {
  if (now <= lastMs) {
    counter = (counter + 1) & 0xfff;
    if (counter === 0) lastMs += 1;
    now = lastMs;
  } else {
    lastMs = now;
    const at = randomAt(2);
    counter = ((pool[at]! << 8) | pool[at + 1]!) & 0x7ff;
  }
  // 48 bits do not fit the 32-bit bit operators: split into two 24-bit halves.
  const high = Math.floor(now / 0x1000000);
  const low = now - high * 0x1000000;
  put(0, (high >> 16) & 0xff);
  put(1, (high >> 8) & 0xff);
  put(2, high & 0xff);
  put(3, (low >> 16) & 0xff);
  put(4, (low >> 8) & 0xff);
  put(5, low & 0xff);
  put(6, 0x70 | (counter >> 8));
  put(7, counter & 0xff);
  const at = randomAt(8);
  put(8, 0x80 | (pool[at]! & 0x3f));
  for (let i = 9; i < 16; i++) put(i, pool[at + i - 8]!);
  return text.toString('latin1');
}
