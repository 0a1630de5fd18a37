import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { makeCaller } from '../../src/connections/caller.js';
import { httpConnection } from '../../src/connections/http.js';
import { defineIntegration } from '../../src/define/integration.js';
import { appServer, json } from '../support/app-server.js';
import { testEngine } from '../support/engine.js';
import { waitFor } from '../support/wait.js';

describe('target down', () => {
  it('200 instances wait out a 30 s outage without using up attempts, then each takes effect exactly once', async () => {
    const effects = new Map<string, number>();
    const app = await appServer((req, res) => {
      const key = String(req.headers['idempotency-key']);
      // A well-behaved application: a repeated key gets the first answer and changes nothing.
      if (!effects.has(key)) effects.set(key, JSON.parse(req.body).n);
      json(res, 201, { reserved: effects.get(key) });
    });
    await app.down();
    const inventory = httpConnection('inventory', {
      baseUrl: app.url,
      timeout: 500,
      circuit: { failures: 5, reprobeMs: 1_000 },
    });
    const reserve = defineIntegration({
      id: 'reserve-stock',
      mode: 'async',
      input: z.object({ n: z.number() }),
      retry: { maxAttempts: 3, initialDelayMs: 100, maxDelayMs: 500 },
      async handler(ctx) {
        return ctx.step('reserve', () => ctx.call(inventory, 'POST', '/reservations', { json: ctx.input }));
      },
    });
    const t = await testEngine([reserve], { connections: [inventory], concurrency: 50 });
    try {
      for (let n = 0; n < 200; n++) await t.engine.accept('reserve-stock', { n });
      await waitFor(
        async () => (await t.store.countInstances({ status: 'retrying' })) === 200,
        'all 200 to retry',
      );
      expect(inventory.circuitState()).not.toBe('closed');
      const outageEnds = Date.now() + 30_000;
      while (Date.now() < outageEnds) {
        expect(await t.store.countInstances({ status: 'failed' })).toBe(0);
        await new Promise((resolve) => setTimeout(resolve, 1_000));
      }
      await app.up();
      await waitFor(
        async () => (await t.store.countInstances({ status: 'succeeded' })) === 200,
        'all 200 to succeed after the target returns',
        60_000,
      );
      expect(effects.size).toBe(200);
      expect([...effects.values()].sort((a, b) => a - b)).toEqual(Array.from({ length: 200 }, (_, n) => n));
      // Each step's request reached the application at most once per attempt.
      const byKey = new Map<string, number>();
      for (const r of app.seen)
        byKey.set(
          String(r.headers['idempotency-key']),
          (byKey.get(String(r.headers['idempotency-key'])) ?? 0) + 1,
        );
      const page = await t.engine.listInstances({ limit: 1_000 });
      for (const instance of page.items) {
        expect(byKey.get(`${instance.id}:reserve:0`) ?? 0).toBeLessThanOrEqual(instance.attempt);
        expect(instance.attempt).toBeLessThanOrEqual(3);
      }
    } finally {
      await t.close();
      await app.close();
    }
  }, 120_000);

  it('the failure that opens the circuit is free only when the request was never sent', async () => {
    const app = await appServer(async (_req, res) => {
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      json(res, 200, { ok: true });
    });
    const closed = await appServer(() => {});
    await closed.down();
    const circuit = { failures: 1, reprobeMs: 60_000 };
    // The timeout leaves a loaded machine time to deliver the request before the call gives up.
    const slow = httpConnection('slow', { baseUrl: app.url, timeout: 500, circuit });
    const dead = httpConnection('dead', { baseUrl: closed.url, circuit });
    const { call } = makeCaller({
      instanceId: '01a2b3c4-0000-7000-8000-000000000001',
      attempt: 1,
      signal: new AbortController().signal,
      connections: new Map([
        ['slow', slow],
        ['dead', dead],
      ]),
    });
    try {
      // The request reached the application and timed out: that attempt counts, though it opened the circuit.
      await expect(call('slow', 'GET', '/x')).rejects.toMatchObject({
        name: 'HttpError',
        code: 'connection-timeout',
      });
      expect(slow.circuitState()).toBe('open');
      await expect(call('slow', 'GET', '/x')).rejects.toMatchObject({
        code: 'circuit-open',
        consumesAttempt: false,
      });
      expect(app.seen).toHaveLength(1);
      // Refused: nothing was sent, so the instance waits for the probe without using up the attempt.
      await expect(call('dead', 'GET', '/x')).rejects.toMatchObject({
        code: 'circuit-open',
        consumesAttempt: false,
      });
      expect(dead.circuitState()).toBe('open');
    } finally {
      await slow.close();
      await dead.close();
      await app.close();
    }
  });
});
