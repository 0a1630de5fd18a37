/**
 * Property-based test of the store contract beyond the state machine (which
 * state-machine.property.test.ts covers): random batches of accepts with colliding idempotency
 * keys, then random filters and page sizes. Both stores must agree with a small model: the first
 * accept of a key wins and later ones return it; filtered counts match; cursor paging returns every
 * matching instance exactly once, newest first.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { InstanceFilter, NewInstance } from '../../src/store/store.js';
import { STORE_KINDS, testStore } from '../support/engine.js';
import { newRow } from './contract.js';

interface Spec {
  integrationId: 'orders' | 'invoices';
  key: string | null;
  tracked: string | null;
  input: number;
}

const spec = fc.record<Spec>({
  integrationId: fc.constantFrom('orders', 'invoices'),
  key: fc.option(fc.constantFrom('k1', 'k2', 'k3'), { nil: null }),
  tracked: fc.option(fc.constantFrom('A-1', 'A-2', 'B-1'), { nil: null }),
  input: fc.integer({ min: 0, max: 2 }),
});

const filter = fc.record(
  {
    integrationId: fc.constantFrom('orders', 'invoices'),
    tracking: fc.constantFrom('A-1', 'A-2', 'B-1', 'orderId=A-1', 'orderId=Z'),
    createdAfter: fc.integer({ min: 0, max: 40 }),
    createdBefore: fc.integer({ min: 0, max: 40 }),
  },
  { requiredKeys: [] },
);

describe.each(STORE_KINDS)('store contract properties (%s store)', (storeKind) => {
  it('idempotent accepts, filtered counts and cursor paging agree with the model', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(spec, { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 6 }),
        fc.array(fc.tuple(filter, fc.integer({ min: 1, max: 7 })), { minLength: 1, maxLength: 4 }),
        async (batches, queries) => {
          const { store, cleanup } = await testStore(storeKind);
          try {
            const kept: (NewInstance & { offset: number })[] = [];
            const byKey = new Map<string, NewInstance>();
            let offset = 0;
            const base = newRow().createdAt;
            for (const batch of batches) {
              const rows = batch.map((s) => {
                offset++;
                return {
                  ...newRow({
                    integrationId: s.integrationId,
                    idempotencyKey: s.key,
                    inputJson: JSON.stringify({ n: s.input }),
                    inputHash: String(s.input),
                    tracking: s.tracked === null ? {} : { orderId: s.tracked },
                    createdAt: base + offset,
                  }),
                  offset,
                };
              });
              const outcomes = await store.insertInstances(rows);
              rows.forEach((row, i) => {
                const outcome = outcomes[i]!;
                const mapKey =
                  row.idempotencyKey === null ? null : `${row.integrationId}/${row.idempotencyKey}`;
                const first = mapKey === null ? undefined : byKey.get(mapKey);
                if (first) {
                  expect(outcome).toEqual({
                    id: first.id,
                    created: false,
                    status: 'queued',
                    inputHash: first.inputHash,
                  });
                } else {
                  expect(outcome).toEqual({
                    id: row.id,
                    created: true,
                    status: 'queued',
                    inputHash: row.inputHash,
                  });
                  if (mapKey !== null) byKey.set(mapKey, row);
                  kept.push(row);
                }
              });
            }
            for (const [f, pageSize] of queries) {
              const query: InstanceFilter = {
                ...(f.integrationId ? { integrationId: f.integrationId } : {}),
                ...(f.tracking ? { tracking: f.tracking } : {}),
                ...(f.createdAfter !== undefined ? { createdAfter: base + f.createdAfter } : {}),
                ...(f.createdBefore !== undefined ? { createdBefore: base + f.createdBefore } : {}),
              };
              const expected = kept
                .filter((row) => {
                  if (f.integrationId && row.integrationId !== f.integrationId) return false;
                  if (f.tracking) {
                    const [name, value] = f.tracking.includes('=')
                      ? f.tracking.split('=')
                      : [null, f.tracking];
                    const tracked = (row.tracking as Record<string, string>).orderId;
                    if (tracked !== value || (name !== null && name !== 'orderId')) return false;
                  }
                  if (f.createdAfter !== undefined && row.createdAt < base + f.createdAfter) return false;
                  if (f.createdBefore !== undefined && row.createdAt >= base + f.createdBefore) return false;
                  return true;
                })
                .sort((a, b) => b.offset - a.offset)
                .map((row) => row.id);
              expect(await store.countInstances(query), JSON.stringify(query)).toBe(expected.length);
              const paged: string[] = [];
              let cursor: string | null = null;
              for (let pages = 0; pages < 100; pages++) {
                const page = await store.listInstances({ ...query, limit: pageSize, cursor });
                expect(page.items.length).toBeLessThanOrEqual(pageSize);
                paged.push(...page.items.map((i) => i.id));
                cursor = page.nextCursor;
                if (cursor === null) break;
              }
              expect(paged, JSON.stringify(query)).toEqual(expected);
            }
          } finally {
            await cleanup();
          }
        },
      ),
      { numRuns: storeKind === 'sqlite' ? 60 : 20 },
    );
  }, 120_000);
});
