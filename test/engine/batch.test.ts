/**
 * Acceptance: the nightly order file. 100,000 CSV records with 1% invalid rows are fanned out to
 * child instances by a scheduled integration started with run-now; the target goes down for a
 * while, and the parent's failed children are rerun in bulk by parent id.
 */

import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { writeFile as writeFileAsync } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineIntegration } from '../../src/define/integration.js';
import { csvSource } from '../../src/sources/csv.js';
import { testEngine, waitForStatus } from '../support/engine.js';
import { tempDir } from '../support/tmp.js';
import { waitFor } from '../support/wait.js';

const RECORDS = 100_000;
const dir = tempDir('tandem-batch-');
afterAll(() => dir.cleanup());

/** Every 100th row is invalid, in one of three ways; returns the invalid rows' line numbers. */
async function writeOrders(path: string): Promise<number[]> {
  const out = createWriteStream(path);
  const invalidLines: number[] = [];
  out.write('Order No,SKU,Qty,Customer Email\n');
  let buffer = '';
  for (let i = 0; i < RECORDS; i++) {
    const line = i + 2;
    if (i % 100 === 99) {
      invalidLines.push(line);
      const kind = ((i / 100) % 3) | 0;
      buffer +=
        kind === 0
          ? `O-${i},SKU-${i % 50},none,c${i}@example.com\n` // quantity not a number
          : kind === 1
            ? `O-${i},SKU-${i % 50},2,not-an-email\n` // bad email
            : `O-${i},SKU-${i % 50}\n`; // too few fields
    } else buffer += `O-${i},SKU-${i % 50},${(i % 9) + 1},c${i}@example.com\n`;
    if (buffer.length > 64_000) {
      if (!out.write(buffer)) await once(out, 'drain');
      buffer = '';
    }
  }
  out.end(buffer);
  await once(out, 'finish');
  return invalidLines;
}

const Order = z.object({
  orderId: z.string().min(1),
  sku: z.string().min(1),
  quantity: z.coerce.number().int().positive(),
  email: z.email(),
});

describe('batch: 100,000 CSV records', () => {
  it('fans out the valid records, reports the invalid ones by line, and reruns children failed in an outage', async () => {
    const file = join(dir.path, 'orders.csv');
    const invalidLines = await writeOrders(file);

    // The order system: down while the 10,000th to 12,000th orders arrive.
    let posted = 0;
    let calls = 0;
    const postOrder = defineIntegration({
      id: 'post-order',
      mode: 'async',
      input: Order,
      track: { orderId: 'orderId' },
      retry: { maxAttempts: 1 },
      async handler(ctx) {
        await ctx.step('post', () => {
          calls++;
          if (calls > 10_000 && calls <= 12_000) throw new Error('order system unavailable');
          posted++;
          return { ok: true };
        });
      },
    });
    const nightly = defineIntegration({
      id: 'nightly-orders',
      mode: 'scheduled',
      cron: '0 0 2 * * *',
      timezone: 'Europe/Berlin',
      parameters: { file: '' },
      timeout: 120_000,
      async handler(ctx) {
        const orders = csvSource(ctx.parameters.file, {
          headers: { 'Order No': 'orderId', SKU: 'sku', Qty: 'quantity', 'Customer Email': 'email' },
          schema: Order,
          maxReported: 1_000,
        });
        return ctx.startMany(postOrder, orders, { chunkSize: 1_000, await: 'children', checkEveryMs: 250 });
      },
    });
    const t = await testEngine([nightly, postOrder], { concurrency: 200 });
    try {
      const { instanceId } = await t.engine.runNow('nightly-orders', { parameters: { file } });
      const parent = await waitForStatus(t.engine, instanceId, ['succeeded', 'failed'], 170_000);
      expect(parent.status).toBe('succeeded');
      const output = parent.output as {
        count: number;
        invalid: { read: number; invalid: number; errors: { line: number; reason: string }[] };
        children: { total: number; succeeded: number; failed: number };
      };
      expect(output.count).toBe(99_000);
      expect(output.invalid.read).toBe(RECORDS);
      expect(output.invalid.invalid).toBe(1_000);
      expect(output.invalid.errors.map((e) => e.line)).toEqual(invalidLines);
      expect(output.invalid.errors[0]!.reason).toMatch(/^quantity/);
      expect(output.invalid.errors[1]!.reason).toMatch(/^email/);
      expect(output.invalid.errors[2]!.reason).toMatch(/length/i);
      expect(output.children).toMatchObject({ total: 99_000, succeeded: 97_000, failed: 2_000 });
      expect(await t.store.countInstances({ parentId: instanceId, status: 'failed' })).toBe(2_000);

      // The order system is back: rerun the parent's failed children in bulk.
      const { count } = await t.engine.rerunMany({ parentId: instanceId, status: 'failed' });
      expect(count).toBe(2_000);
      await waitFor(
        async () => (await t.store.countChildren(instanceId)).succeeded === 99_000,
        'every child to succeed after the rerun',
        120_000,
      );
      expect(posted).toBe(99_000);
      const progress = await t.engine.getProgress(instanceId);
      expect(progress.children).toMatchObject({ total: 99_000, succeeded: 99_000, failed: 0 });
    } finally {
      await t.close();
    }
  }, 300_000);
});

describe('batch: a source that shares its schema with the child', () => {
  it('hands each child the record as the schema made it, without parsing it a second time', async () => {
    const file = join(dir.path, 'cents.csv');
    await writeFileAsync(file, 'sku,price\nA-1,12.50\nB-2,0.99\nC-3,free\n');
    // Not idempotent: a second parse would see a number where the schema expects a string.
    const Line = z.object({
      sku: z.string(),
      price: z
        .string()
        .regex(/^\d+\.\d\d$/)
        .transform((p) => Math.round(Number(p) * 100)),
    });
    const seen: unknown[] = [];
    const priceLine = defineIntegration({
      id: 'price-line',
      mode: 'async',
      input: Line,
      handler: (ctx) => {
        seen.push(ctx.input);
      },
    });
    const importPrices = defineIntegration({
      id: 'import-prices',
      mode: 'async',
      handler: (ctx) =>
        ctx.startMany(priceLine, csvSource(file, { schema: Line }), { await: 'children', checkEveryMs: 50 }),
    });
    const t = await testEngine([importPrices, priceLine]);
    try {
      const { instanceId } = await t.engine.accept('import-prices', {});
      const parent = await waitForStatus(t.engine, instanceId, ['succeeded', 'failed'], 20_000);
      expect(parent.status).toBe('succeeded');
      expect(parent.output).toMatchObject({ count: 2, invalid: { invalid: 1 }, children: { succeeded: 2 } });
      expect(seen).toEqual(
        expect.arrayContaining([
          { sku: 'A-1', price: 1250 },
          { sku: 'B-2', price: 99 },
        ]),
      );
      expect(seen).toHaveLength(2);
    } finally {
      await t.close();
    }
  }, 60_000);
});
