import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineConfig } from '../../src/define/config.js';
import { defineIntegration } from '../../src/define/integration.js';
import { Engine } from '../../src/engine/engine.js';
import {
  InvalidDefinitionError,
  InvalidInputError,
  NotSerializableError,
  UnknownIntegrationError,
  WrongModeError,
} from '../../src/errors.js';
import { SqliteStore } from '../../src/store/sqlite/store.js';
import { quietLogger, testEngine } from '../support/engine.js';

const order = defineIntegration({
  id: 'order',
  mode: 'async',
  input: z.object({
    orderId: z.string().min(1),
    lines: z.array(z.object({ sku: z.string(), qty: z.number().int() })),
  }),
  handler: () => {},
});
const balance = defineIntegration({ id: 'balance', mode: 'sync', handler: () => ({ body: 1 }) });

describe('bad input to the public API', () => {
  it('raises typed errors and stores nothing', async () => {
    const t = await testEngine([order, balance]);
    try {
      await expect(t.engine.accept('nope', {})).rejects.toBeInstanceOf(UnknownIntegrationError);
      const invalid = await t.engine
        .accept('order', { orderId: '', lines: [{ sku: 1, qty: 1.5 }] })
        .catch((error: unknown) => error);
      expect(invalid).toBeInstanceOf(InvalidInputError);
      expect((invalid as InvalidInputError).issues.map((i) => i.path).sort()).toEqual([
        'lines.0.qty',
        'lines.0.sku',
        'orderId',
      ]);
      expect((invalid as InvalidInputError).status).toBe(400);
      await expect(t.engine.accept('balance', {})).rejects.toBeInstanceOf(WrongModeError);
      const loose = defineIntegration({ id: 'loose', mode: 'async', handler: () => {} });
      const t2 = await testEngine([loose]);
      try {
        await expect(t2.engine.accept('loose', { big: 10n })).rejects.toBeInstanceOf(NotSerializableError);
        await expect(t2.engine.accept('loose', { when: new Set([1]) })).rejects.toBeInstanceOf(
          NotSerializableError,
        );
        const cyclic: Record<string, unknown> = {};
        cyclic.self = cyclic;
        await expect(t2.engine.accept('loose', cyclic)).rejects.toThrow(/circular/);
        expect(await t2.store.countInstances({})).toBe(0);
      } finally {
        await t2.close();
      }
      await expect(t.engine.getInstance('missing')).rejects.toMatchObject({ code: 'instance-not-found' });
      await expect(t.engine.rerun('missing')).rejects.toMatchObject({ code: 'instance-not-found' });
      expect(await t.store.countInstances({})).toBe(0);
      expect(await t.store.getEvents({ limit: 10 })).toEqual([]);
    } finally {
      await t.close();
    }
  });

  it('refuses duplicate ids, bad ids and bad definitions', async () => {
    const again = defineIntegration({ id: 'order', mode: 'async', handler: () => {} });
    expect(() => defineConfig({ integrations: [order, again] })).toThrow(InvalidDefinitionError);
    const store = new SqliteStore({ path: ':memory:' });
    await expect(Engine.create({ integrations: [order, again], store, logger: quietLogger })).rejects.toThrow(
      /defined twice/,
    );
    await store.close();
    expect(() => defineIntegration({ id: 'Bad Id', mode: 'async', handler: () => {} })).toThrow(
      InvalidDefinitionError,
    );
    expect(() =>
      defineIntegration({
        id: 'many-tracks',
        mode: 'async',
        track: { a: 'a', b: 'b', c: 'c', d: 'd' },
        handler: () => {},
      }),
    ).toThrow(/at most 3 tracking fields/);
    expect(() =>
      defineIntegration({ id: 'x', mode: 'async', retry: { maxAttempts: 0 }, handler: () => {} }),
    ).toThrow(/maxAttempts/);
    expect(() => defineIntegration({ id: 'x', mode: 'sync', deadline: -1, handler: () => {} })).toThrow(
      /deadline/,
    );
    expect(() => defineConfig({ integrations: [{ id: 'plain', mode: 'async' } as never] })).toThrow(
      /defineIntegration/,
    );
  });

  it('rejects a repeated idempotency key with a different input and returns the original for the same input', async () => {
    const t = await testEngine([order]);
    try {
      const input = { orderId: 'A-1', lines: [] };
      const first = await t.engine.accept('order', input, { idempotencyKey: 'k-1' });
      const replay = await t.engine.accept('order', input, { idempotencyKey: 'k-1' });
      expect(replay).toMatchObject({ instanceId: first.instanceId, created: false });
      await expect(
        t.engine.accept('order', { orderId: 'A-2', lines: [] }, { idempotencyKey: 'k-1' }),
      ).rejects.toMatchObject({ code: 'idempotency-conflict', status: 422 });
      expect(await t.store.countInstances({})).toBe(1);
    } finally {
      await t.close();
    }
  });
});
