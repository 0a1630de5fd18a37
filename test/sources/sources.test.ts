import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { csvSource } from '../../src/sources/csv.js';
import { globRegex } from '../../src/sources/glob.js';
import { jsonArraySource } from '../../src/sources/json-array.js';
import { jsonLinesSource } from '../../src/sources/json-lines.js';
import type { RecordSource } from '../../src/sources/source.js';
import { tempDir } from '../support/tmp.js';

const dir = tempDir('tandem-sources-');
afterAll(() => dir.cleanup());

async function readAll<T>(source: RecordSource<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const record of source) out.push(record);
  return out;
}

/** The text in chunks of `size` bytes, so records and multi-byte characters straddle chunks. */
function* chunks(text: string, size: number): Generator<Buffer> {
  const bytes = Buffer.from(text);
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}

const Order = z.object({
  orderId: z.string().min(1),
  quantity: z.coerce.number().int().positive(),
  note: z.string().optional(),
});

describe('csvSource', () => {
  const csv = [
    'Order No,Qty,note', // 1
    'A-1,2,plain', // 2
    '', // 3 (blank, skipped)
    'A-2,3,"two', // 4: a quoted value over two lines
    'lines"', // 5
    'A-3,-1,negative', // 6: schema fails
    'A-4,1', // 7: too few fields
    'A-5,5,"ok, with comma"', // 8
    ',4,no id', // 9: schema fails
  ].join('\n');

  it('maps headers, validates each record and reports invalid ones with their lines', async () => {
    const source = csvSource(Readable.from(chunks(csv, 7)), {
      headers: { 'Order No': 'orderId', Qty: 'quantity' },
      schema: Order,
    });
    const records = await readAll(source);
    expect(records).toEqual([
      { orderId: 'A-1', quantity: 2, note: 'plain' },
      { orderId: 'A-2', quantity: 3, note: 'two\nlines' },
      { orderId: 'A-5', quantity: 5, note: 'ok, with comma' },
    ]);
    const report = source.report();
    expect(report).toMatchObject({ read: 6, valid: 3, invalid: 3, truncated: false });
    expect(report.errors.map((e) => e.line)).toEqual([6, 7, 9]);
    expect(report.errors[0]!.reason).toMatch(/^quantity: /);
    expect(report.errors[1]!.reason).toMatch(/length/i);
    expect(report.errors[2]!.reason).toMatch(/^orderId: /);
  });

  it('keeps only the first N invalid records in detail, and can be read once', async () => {
    const lines = ['id,n', ...Array.from({ length: 50 }, (_, i) => `${i},${i % 5 === 0 ? 'x' : i}`)];
    // A plain string is a path; this one does not exist.
    await expect(readAll(csvSource(join(dir.path, 'missing.csv')))).rejects.toMatchObject({ code: 'ENOENT' });
    const fromBytes = csvSource(Buffer.from(lines.join('\n')), {
      schema: z.object({ id: z.string(), n: z.coerce.number() }),
      maxReported: 3,
    });
    expect(await readAll(fromBytes)).toHaveLength(40);
    const report = fromBytes.report();
    expect(report).toMatchObject({ read: 50, valid: 40, invalid: 10, truncated: true });
    expect(report.errors.map((e) => e.line)).toEqual([2, 7, 12]);
    await expect(readAll(fromBytes)).rejects.toMatchObject({ code: 'source-consumed' });
  });

  it('reads every file of a glob in name order, with lines per file', async () => {
    const inbox = join(dir.path, 'inbox');
    mkdirSync(join(inbox, 'old'), { recursive: true });
    writeFileSync(join(inbox, 'orders-2.csv'), 'Order No,Qty\nB-1,1\nB-2,zero\n');
    writeFileSync(join(inbox, 'orders-1.csv'), 'Order No,Qty\nA-1,1\n');
    writeFileSync(join(inbox, 'notes.txt'), 'not a csv');
    writeFileSync(join(inbox, 'old', 'orders-0.csv'), 'Order No,Qty\nZ-1,1\n');
    const source = csvSource(join(inbox, 'orders-*.csv'), {
      headers: { 'Order No': 'orderId', Qty: 'quantity' },
      schema: Order,
    });
    expect((await readAll(source)).map((r) => r.orderId)).toEqual(['A-1', 'B-1']);
    expect(source.report().errors).toEqual([
      { line: 3, file: join(inbox, 'orders-2.csv'), reason: expect.stringMatching(/^quantity/) },
    ]);
    const deep = csvSource(join(inbox, '**', '*.csv'));
    expect(await readAll(deep)).toHaveLength(4);
    await expect(readAll(csvSource(join(inbox, '*.xml')))).rejects.toMatchObject({ code: 'no-source-files' });
  });
});

describe('every source, read by a consumer that waits on I/O between batches', () => {
  // A consumer that commits each batch (an fsync, a database round trip) lets the event loop run
  // between batches: the stream can end, or buffer more, while nobody listens.
  const count = 20_000;
  const lines = Array.from({ length: count }, (_, i) => ({ n: i + 1 }));
  const files = {
    csv: ['n', ...lines.map((l) => String(l.n))].join('\n'),
    jsonl: lines.map((l) => JSON.stringify(l)).join('\n'),
    json: JSON.stringify(lines),
  };
  const sources = {
    csv: (path: string) => csvSource(path, { schema: z.object({ n: z.coerce.number() }) }),
    jsonl: (path: string) => jsonLinesSource(path),
    json: (path: string) => jsonArraySource(path),
  };
  for (const format of ['csv', 'jsonl', 'json'] as const) {
    it(`reads every ${format} record to the end`, async () => {
      const path = join(dir.path, `slow-consumer.${format}`);
      writeFileSync(path, files[format]);
      const source = sources[format](path);
      let read = 0;
      let last = 0;
      for await (const batch of source.batches()) {
        read += batch.length;
        last = (batch.at(-1) as { n: number }).n;
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
      expect({ read, last }).toEqual({ read: count, last: count });
    }, 15_000);
  }
});

describe('jsonLinesSource', () => {
  it('reads one value per line across chunk boundaries, reporting bad lines', async () => {
    const text =
      '{"sku":"kaffee-ö","qty":1}\n\n{"sku":"tee","qty":2}\r\n{broken\n{"sku":"x","qty":"many"}\n{"sku":"last","qty":3}';
    const source = jsonLinesSource(() => chunks(text, 3), {
      schema: z.object({ sku: z.string(), qty: z.number() }),
    });
    expect(await readAll(source)).toEqual([
      { sku: 'kaffee-ö', qty: 1 },
      { sku: 'tee', qty: 2 },
      { sku: 'last', qty: 3 },
    ]);
    const report = source.report();
    expect(report).toMatchObject({ read: 5, valid: 3, invalid: 2 });
    expect(report.errors.map((e) => [e.line, e.reason.split(':')[0]])).toEqual([
      [4, 'invalid JSON'],
      [5, 'qty'],
    ]);
  });
});

describe('jsonArraySource', () => {
  const text = `[
  {"id": 1, "tags": ["a", "b]"], "note": "comma, \\"quoted\\" and } brace"},
  {"id": 2,
   "nested": {"deep": [1, {"x": "]"}]}},
  {"id": oops},
  "not an object",
  {"id": 5}
]
`;

  it('streams elements one by one with the line each starts on, whatever the chunk size', async () => {
    for (const size of [1, 5, 64, 4096]) {
      const source = jsonArraySource(chunks(text, size), {
        schema: z.object({ id: z.number() }).passthrough(),
      });
      const records = await readAll(source);
      expect(records.map((r) => r.id)).toEqual([1, 2, 5]);
      expect(records[0]).toMatchObject({ tags: ['a', 'b]'], note: 'comma, "quoted" and } brace' });
      expect(records[1]).toMatchObject({ nested: { deep: [1, { x: ']' }] } });
      const report = source.report();
      expect(report).toMatchObject({ read: 5, valid: 3, invalid: 2 });
      expect(report.errors.map((e) => e.line)).toEqual([5, 6]);
      expect(report.errors[0]!.reason).toMatch(/^invalid JSON/);
    }
  });

  it('reads an empty array and refuses what is not an array or is cut off', async () => {
    expect(await readAll(jsonArraySource(Buffer.from(' [ ] ')))).toEqual([]);
    await expect(readAll(jsonArraySource(Buffer.from('{"a":1}')))).rejects.toThrow(/not a JSON array/);
    await expect(readAll(jsonArraySource(Buffer.from('[{"a":1}, {"b"')))).rejects.toThrow(/not closed/);
  });
});

describe('globRegex', () => {
  it('matches * within a segment and ** across segments', () => {
    expect(globRegex('orders-*.csv').test('orders-1.csv')).toBe(true);
    expect(globRegex('orders-*.csv').test('old/orders-1.csv')).toBe(false);
    expect(globRegex('**/*.csv').test('a.csv')).toBe(true);
    expect(globRegex('**/*.csv').test('x/y/a.csv')).toBe(true);
    expect(globRegex('day-?.jsonl').test('day-12.jsonl')).toBe(false);
  });
});
