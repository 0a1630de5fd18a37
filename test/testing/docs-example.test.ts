/** The first test of docs/testing.md, as written there (imports by path), on both stores. */
import '../support/provided.js';
import { describe, expect, inject, it } from 'vitest';
import { z } from 'zod';
import { defineIntegration, httpConnection } from '../../src/index.js';
import { createTestEngine, fakeApplication } from '../../src/testing/index.js';

describe.each(['sqlite', 'postgres'] as const)('docs/testing.md on %s', (kind) => {
  const store = () => (kind === 'postgres' ? inject('postgresUrl') : undefined);

  it('reserves stock, retrying while the inventory is in maintenance', async () => {
    await using inventory = await fakeApplication({
      routes: { 'POST /reservations': { status: 201, body: { reservationId: 'R-1' } } },
    });
    inventory.failNext(3); // 503 three times, then the route's answer

    const connection = httpConnection('inventory', { baseUrl: inventory.url });
    const reserve = defineIntegration({
      id: 'reserve',
      mode: 'async',
      input: z.object({ sku: z.string(), qty: z.number() }),
      retry: { maxAttempts: 8, initialDelayMs: 60_000, factor: 1 },
      handler: (ctx) =>
        ctx.step('reserve', () => ctx.call(connection, 'POST', '/reservations', { json: ctx.input })),
    });

    await using t = await createTestEngine({
      integrations: [reserve],
      connections: [connection],
      store: store(),
    });
    const { instanceId } = await t.trigger(reserve, { sku: 'KB-42', qty: 1 });
    await t.advance(10 * 60_000); // ten minutes of retries, now

    const result = await t.result(instanceId);
    expect(result.status).toBe('succeeded');
    expect(result.output).toEqual({ reservationId: 'R-1' });
    expect(inventory.count('POST /reservations')).toBe(4);
    // Every attempt of the step sent the same Idempotency-Key.
    expect(new Set(inventory.requests.map((r) => r.idempotencyKey)).size).toBe(1);
    expect(inventory.requests[0]!.idempotencyKey).toBe(`${instanceId}:reserve:0`);
  });
});
