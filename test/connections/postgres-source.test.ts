/**
 * The query record source: a query's rows streamed through a server-side cursor into the fan-out.
 * Its memory stays flat however many rows the query returns (shown at a million rows by the heap
 * after garbage collection and the peak RSS, not by time).
 */
import '../support/provided.js';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { z } from 'zod';
import { postgresConnection } from '../../src/connections/postgres.js';
import { readCursor } from '../../src/connections/postgres-cursor.js';
import { rowSource } from '../../src/sources/rows.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

let pool: pg.Pool;
beforeAll(() => {
  pool = new pg.Pool({ connectionString: inject('postgresUrl'), max: 2 });
});
afterAll(async () => {
  await pool.end();
});

const MB = 1024 * 1024;

describe('query record source', () => {
  it('streams a million rows with flat memory: heap after GC and peak RSS stay far below the rows read', async () => {
    const ROWS = 1_000_000;
    // About 250 bytes of text per row: holding the rows would take several hundred MB.
    const sql = `SELECT g AS id, repeat('x', 240) || g::text AS payload FROM generate_series(1, $1::int) g`;
    // Through the connection: its guard, and the hand-over of each batch from the cursor's reader.
    const bulk = postgresConnection('bulk', { url: inject('postgresUrl'), poolSize: 1 });
    const source = bulk.querySource(sql, [ROWS], { batchSize: 1_000 });
    gc();
    const heapBefore = process.memoryUsage().heapUsed;
    const rssPeakBefore = process.resourceUsage().maxRSS * 1024;
    let read = 0;
    let bytes = 0;
    let outOfOrder = 0;
    const heapAfterGc: number[] = [];
    for await (const batch of source.batches()) {
      for (const row of batch as { id: number; payload: string }[]) {
        read++;
        bytes += row.payload.length;
        if (row.id !== read) outOfOrder++; // in order, none skipped
      }
      if (read % 100_000 === 0) {
        gc();
        heapAfterGc.push(process.memoryUsage().heapUsed - heapBefore);
      }
    }
    gc();
    const heapGrowth = Math.max(...heapAfterGc, process.memoryUsage().heapUsed - heapBefore);
    const rssPeakGrowth = process.resourceUsage().maxRSS * 1024 - rssPeakBefore;
    expect(read).toBe(ROWS);
    expect(outOfOrder).toBe(0);
    expect(source.report()).toMatchObject({ read: ROWS, valid: ROWS, invalid: 0 });
    expect(bytes).toBeGreaterThan(230 * MB);
    // One batch is about 0.3 MB; the bounds leave room for the runtime, not for the rows.
    expect(heapGrowth, `heap growth after GC ${Math.round(heapGrowth / MB)} MB`).toBeLessThan(16 * MB);
    expect(rssPeakGrowth, `peak RSS growth ${Math.round(rssPeakGrowth / MB)} MB`).toBeLessThan(96 * MB);
    // The one database connection went back to the pool: the next statement gets it.
    expect((await bulk.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    await bulk.close();
  });

  it('validates rows with a schema and reports the invalid ones by row number', async () => {
    const Row = z.object({ sku: z.string(), quantity: z.number().int().nonnegative() });
    const source = rowSource(
      () =>
        readCursor(
          pool,
          `SELECT 'S-' || g AS sku, CASE WHEN g % 4 = 0 THEN -g ELSE g END AS quantity
             FROM generate_series(1, 10) g ORDER BY g`,
          [],
          3,
        ),
      { schema: Row },
    );
    const records: { sku: string; quantity: number }[] = [];
    for await (const record of source) records.push(record);
    expect(records.map((r) => r.sku)).toEqual(['S-1', 'S-2', 'S-3', 'S-5', 'S-6', 'S-7', 'S-9', 'S-10']);
    const report = source.report();
    expect(report).toMatchObject({ read: 10, valid: 8, invalid: 2, truncated: false });
    expect(report.errors.map((e) => e.line)).toEqual([4, 8]);
    expect(report.errors[0]!.reason).toMatch(/quantity/);
  });

  it('gives the connection back when the reader stops early, and the next query runs on it', async () => {
    const stopping = new pg.Pool({ connectionString: inject('postgresUrl'), max: 1 });
    try {
      const source = rowSource(() =>
        readCursor(stopping, 'SELECT g FROM generate_series(1, 100000) g', [], 100),
      );
      let seen = 0;
      for await (const _ of source) if (++seen === 250) break;
      expect(stopping.totalCount).toBe(1);
      expect(stopping.idleCount).toBe(1);
      // Pool of one: this waits forever if the connection was kept, fails if its portal was left open.
      const { rows } = await stopping.query('SELECT 1 AS one');
      expect(rows).toEqual([{ one: 1 }]);
    } finally {
      await stopping.end();
    }
  });

  it('fails the read with the SQLSTATE when the query fails midway, and discards the connection', async () => {
    const source = rowSource(() =>
      // Row 2,500 divides by zero: after two batches were handed out.
      readCursor(pool, 'SELECT 1 / (2500 - g) AS v FROM generate_series(1, 5000) g', [], 1_000),
    );
    let seen = 0;
    const failure = await (async () => {
      for await (const _ of source) seen++;
    })().catch((error: unknown) => error);
    expect((failure as { code?: string }).code).toBe('22012');
    expect(seen).toBe(2_000);
    expect(pool.idleCount).toBe(pool.totalCount);
    const { rows } = await pool.query('SELECT 2 AS two');
    expect(rows).toEqual([{ two: 2 }]);
  });

  it('stops at once when its signal is aborted while rows are read', async () => {
    const controller = new AbortController();
    let seen = 0;
    const failure = await (async () => {
      for await (const batch of readCursor(
        pool,
        'SELECT g FROM generate_series(1, 100000) g',
        [],
        100,
        controller.signal,
      )) {
        seen += batch.length;
        if (seen === 300) controller.abort(new Error('cancelled by the test'));
      }
    })().catch((error: unknown) => error);
    expect(String(failure)).toMatch(/cancelled by the test|Connection terminated/);
    expect(seen).toBe(300);
    const { rows } = await pool.query('SELECT 3 AS three');
    expect(rows).toEqual([{ three: 3 }]);
  });
});
