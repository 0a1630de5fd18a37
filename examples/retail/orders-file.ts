/**
 * The day's order file the demo's `nightly-orders` reads: the web shop's export as CSV, with a few
 * bad rows, as such files have. Written into the demo's data directory at start.
 */
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Lines 4, 7 and 9 are bad: an e-mail address that is not one, a quantity that is not a number,
 * and a row with a missing field.
 */
export const ORDER_FILE = `Order No,E-mail,SKU,Qty
N-1001,ann@example.com,KB-42,2
N-1002,bob@example.com,MS-7,1
N-1003,carol(at)example.com,KB-42,1
N-1004,dave@example.com,HD-1,3
N-1005,erin@example.com,KB-42,1
N-1006,frank@example.com,MS-7,two
N-1007,grace@example.com,HD-1,1
N-1008,heidi@example.com,KB-42
N-1009,ivan@example.com,MS-7,4
`;

/**
 * Writes today's order file into `dir` unless there is one, and removes the demo's files of earlier
 * days (`nightly-orders` reads every `orders-*.csv`); returns its path.
 */
export function writeOrderFile(dir: string, today = new Date()): string {
  mkdirSync(dir, { recursive: true });
  const name = `orders-${today.toISOString().slice(0, 10)}.csv`;
  for (const old of readdirSync(dir)) {
    if (/^orders-\d{4}-\d{2}-\d{2}\.csv$/.test(old) && old !== name) rmSync(join(dir, old));
  }
  const file = join(dir, name);
  if (!existsSync(file)) writeFileSync(file, ORDER_FILE);
  return file;
}
