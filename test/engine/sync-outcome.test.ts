import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineIntegration } from '../../src/define/integration.js';
import { InvalidAnswerError, type SyncFailed, SyncRunner } from '../../src/engine/sync.js';
import { RetryAfterError } from '../../src/errors.js';
import { STORE_KINDS, testEngine } from '../support/engine.js';

// The sync runner answers in the domain's words; the HTTP answer is the server's (test/server/sync.test.ts).

let close: (() => Promise<void>) | undefined;
afterEach(async () => {
  await close?.();
  close = undefined;
});

const fulfil = defineIntegration({
  id: 'fulfil',
  mode: 'async',
  input: z.object({ orderId: z.string() }),
  handler: () => null,
});

describe.each(STORE_KINDS)('sync outcomes (%s store)', (storeKind) => {
  async function runnerFor(integrations: Parameters<typeof testEngine>[0]) {
    const t = await testEngine([fulfil, ...integrations], { storeKind, worker: false });
    const runner = new SyncRunner(t.engine, { recorder: { flushMs: 10 } });
    close = async () => {
      await runner.flush();
      await t.close();
    };
    const children = async () =>
      (await t.store.listInstances({ limit: 10 })).items.filter((i) => i.mode === 'async');
    return { t, runner, children };
  }

  it('answers with what the handler declared, its body serialised, after committing its hand-off', async () => {
    const place = defineIntegration({
      id: 'place',
      mode: 'sync',
      input: z.object({ orderId: z.string() }),
      handler: async (ctx) => {
        const { instanceId } = await ctx.start(fulfil, { orderId: ctx.input.orderId });
        return { status: 201, headers: { Location: `/orders/${instanceId}` }, body: { instanceId } };
      },
    });
    const value = defineIntegration({ id: 'value', mode: 'sync', handler: () => [1, null] });
    const text = defineIntegration({ id: 'text', mode: 'sync', handler: () => ({ body: 'ok' }) });
    const none = defineIntegration({ id: 'none', mode: 'sync', handler: () => undefined });
    const { runner, children } = await runnerFor([place, value, text, none]);

    const placed = await runner.run(place, { input: { orderId: 'A-1' } });
    const [child] = await children();
    expect(placed).toEqual({
      ok: true,
      instanceId: expect.any(String),
      status: 201,
      headers: { Location: `/orders/${child!.id}` },
      body: JSON.stringify({ instanceId: child!.id }),
      json: true,
      started: 1,
    });
    // No status is made up where the handler declared none: that is for the caller's side.
    expect(await runner.run(value, { input: null })).toMatchObject({
      status: undefined,
      body: '[1,null]',
      json: true,
    });
    expect(await runner.run(text, { input: null })).toMatchObject({
      status: undefined,
      body: 'ok',
      json: false,
    });
    expect(await runner.run(none, { input: null })).toMatchObject({
      body: undefined,
      json: false,
      started: 0,
    });
  });

  it("leaves the declared status and headers to the caller's check, which can refuse them before the hand-off", async () => {
    const odd = defineIntegration({
      id: 'odd',
      mode: 'sync',
      handler: async (ctx) => {
        await ctx.start(fulfil, { orderId: 'B-1' });
        const headers: Record<string, string> = { 'x-step': 'answered' };
        // Work the handler left running changes its object while the hand-off commits.
        setImmediate(() => {
          headers['x-step'] = 'changed later';
        });
        return { status: 999, headers, body: 'odd' };
      },
    });
    const { runner, children } = await runnerFor([odd]);

    const unchecked = await runner.run(odd, { input: null });
    expect(unchecked).toMatchObject({ ok: true, status: 999, headers: { 'x-step': 'answered' }, started: 1 });

    const seen: unknown[] = [];
    const refused = await runner.run(odd, { input: null }, (response) => {
      seen.push(response.status);
      throw new InvalidAnswerError('status 999 cannot be sent');
    });
    expect(seen).toEqual([999]);
    expect(refused).toMatchObject({ ok: false, kind: 'bad-answer', error: { code: 'handler-failed' } });
    expect((refused as SyncFailed).error.message).toBe('status 999 cannot be sent');
    expect(await children()).toHaveLength(1); // the refused answer's start was not committed

    const kept = await runner.run(odd, { input: null }, (response) => ({ ...response.headers }));
    expect(kept).toMatchObject({ ok: true, headers: { 'x-step': 'answered' } });
  });

  it('names why a call failed, with the catalogue error the caller is told', async () => {
    const slow = defineIntegration({
      id: 'slow',
      mode: 'sync',
      deadline: 50,
      handler: (ctx) =>
        new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason))),
    });
    const broken = defineIntegration({
      id: 'broken',
      mode: 'sync',
      handler: () => {
        throw new Error('bug');
      },
    });
    const down = defineIntegration({
      id: 'down',
      mode: 'sync',
      handler: () => {
        throw Object.assign(new Error('ECONNREFUSED'), { connection: 'crm' });
      },
    });
    const later = defineIntegration({
      id: 'later',
      mode: 'sync',
      handler: () => {
        throw new RetryAfterError(30_000, 'bank circuit open');
      },
    });
    const conflicting = defineIntegration({
      id: 'conflicting',
      mode: 'sync',
      handler: async (ctx) => {
        await ctx.start(fulfil, { orderId: 'other' }, { idempotencyKey: 'K-1' });
        return 'never confirmed';
      },
    });
    const { t, runner } = await runnerFor([slow, broken, down, later, conflicting]);
    await t.engine.accept(fulfil, { orderId: 'first' }, { idempotencyKey: 'K-1' });

    const failures = await Promise.all(
      [slow, broken, down, later, conflicting].map((i) => runner.run(i, { input: null })),
    );
    expect(failures.map((f) => (f.ok ? 'answered' : [f.kind, f.error.code, f.retryAfterMs ?? null]))).toEqual(
      [
        ['deadline', 'deadline-exceeded', null],
        ['handler', 'handler-failed', null],
        ['downstream', 'downstream-failed', null],
        ['unavailable', 'retry-after', 30_000],
        ['refused', 'idempotency-conflict', null],
      ],
    );
  });
});

it('the engine knows no HTTP: nothing under src/engine imports node:http or fastify', () => {
  const dir = join(import.meta.dirname, '../../src/engine');
  for (const file of readdirSync(dir)) {
    const source = readFileSync(join(dir, file), 'utf8');
    expect([file, source]).not.toEqual([file, expect.stringMatching(/from '(node:)?https?'|from 'fastify/)]);
  }
});
