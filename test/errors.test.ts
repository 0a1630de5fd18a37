/**
 * The public error classes are the errors Tandem raises: a class that says one thing while the
 * engine raises another under the same code would mislead whoever catches it.
 */
import { describe, expect, it } from 'vitest';
import { defineIntegration } from '../src/define/integration.js';
import { IdempotencyConflictError } from '../src/errors.js';
import { STORE_KINDS, testEngine } from './support/engine.js';

const order = defineIntegration({ id: 'order', mode: 'async', handler: () => {} });

describe.each(STORE_KINDS)('error classes on %s', (storeKind) => {
  it('IdempotencyConflictError is the error a reused idempotency key raises: same code, message and details', async () => {
    const t = await testEngine([order], { storeKind });
    try {
      const first = await t.engine.accept('order', { n: 1 }, { idempotencyKey: 'k-1' });
      const raised = await t.engine.accept('order', { n: 2 }, { idempotencyKey: 'k-1' }).then(
        () => expect.unreachable('a different input under the same key is refused'),
        (error: unknown) => error,
      );
      const expected = new IdempotencyConflictError('k-1', first.instanceId);
      expect(raised).toMatchObject({
        code: expected.code,
        status: expected.status,
        message: expected.message,
        details: expected.details,
      });
    } finally {
      await t.close();
    }
  });
});
