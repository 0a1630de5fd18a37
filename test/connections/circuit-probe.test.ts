import { afterEach, describe, expect, it } from 'vitest';
import { makeCaller } from '../../src/connections/caller.js';
import { type HttpConnection, httpConnection } from '../../src/connections/http.js';
import { defineIntegration } from '../../src/define/integration.js';
import { appServer, json } from '../support/app-server.js';
import { STORE_KINDS, testEngine, waitForStatus } from '../support/engine.js';
import { testServer } from '../support/server.js';

const REPROBE_MS = 250;
let close: (() => Promise<void>) | undefined;
afterEach(async () => {
  await close?.();
  close = undefined;
});

/** An application that fails, stalls (answers after 5 s) or answers, as the test says. */
async function moodyApp() {
  const state = { mode: 'fail' as 'fail' | 'stall' | 'ok' };
  const app = await appServer(async (_req, res) => {
    if (state.mode === 'fail') return json(res, 500, { error: 'down' });
    if (state.mode === 'stall') await new Promise((resolve) => setTimeout(resolve, 5_000));
    json(res, 200, { ok: true });
  });
  return { app, state };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Opens the circuit with one 500 and waits until it is half-open. */
async function openThenHalfOpen(connection: HttpConnection, call: () => Promise<unknown>) {
  await expect(call()).rejects.toMatchObject({ name: 'HttpError', status: 500 });
  expect(connection.circuitState()).toBe('open');
  await sleep(REPROBE_MS + 20);
  expect(connection.circuitState()).toBe('half-open');
}

function caller(connection: HttpConnection, signal: AbortSignal) {
  const { call } = makeCaller({
    instanceId: '01a2b3c4-0000-7000-8000-000000000002',
    attempt: 1,
    signal,
    connections: new Map([[connection.id, connection]]),
  });
  return (options?: { signal?: AbortSignal }) => call(connection, 'GET', '/x', options);
}

describe('an aborted probe of a half-open circuit', () => {
  for (const [name, abortProbe] of [
    ['its instance is cancelled (the context signal)', 'context'],
    ['the call is aborted (the call option signal)', 'option'],
    ['its deadline passes (a timeout signal)', 'deadline'],
  ] as const) {
    it(`frees the probe slot when ${name}: the next call probes and closes the circuit`, async () => {
      const { app, state } = await moodyApp();
      const conn = httpConnection('moody', {
        baseUrl: app.url,
        circuit: { failures: 1, reprobeMs: REPROBE_MS },
      });
      close = async () => {
        await conn.close();
        await app.close();
      };
      await openThenHalfOpen(conn, caller(conn, new AbortController().signal));

      state.mode = 'stall';
      const controller = new AbortController();
      const probe =
        abortProbe === 'context'
          ? caller(conn, controller.signal)()
          : abortProbe === 'option'
            ? caller(conn, new AbortController().signal)({ signal: controller.signal })
            : caller(conn, AbortSignal.timeout(300))();
      await sleep(20);
      // While the probe is in flight, other calls wait for it.
      await expect(caller(conn, new AbortController().signal)()).rejects.toMatchObject({
        code: 'circuit-open',
      });
      controller.abort(new Error('gone'));
      await expect(probe).rejects.toBeDefined();
      expect(app.seen).toHaveLength(2);

      state.mode = 'ok';
      await expect(caller(conn, new AbortController().signal)()).resolves.toEqual({ ok: true });
      expect(conn.circuitState()).toBe('closed');
      expect(app.seen).toHaveLength(3);
    });
  }

  it('frees the probe slot when the probe is aborted before it is sent (waiting for the rate limit)', async () => {
    const { app, state } = await moodyApp();
    const conn = httpConnection('paced', {
      baseUrl: app.url,
      ratePerSecond: 1,
      circuit: { failures: 1, reprobeMs: REPROBE_MS },
    });
    close = async () => {
      await conn.close();
      await app.close();
    };
    await openThenHalfOpen(conn, caller(conn, new AbortController().signal));
    state.mode = 'ok';
    const controller = new AbortController();
    const probe = caller(conn, controller.signal)(); // waits for its turn (1 call a second)
    await sleep(20);
    controller.abort(new Error('gone'));
    await expect(probe).rejects.toThrow('gone');
    expect(app.seen).toHaveLength(1);
    await expect(caller(conn, new AbortController().signal)()).resolves.toEqual({ ok: true });
    expect(conn.circuitState()).toBe('closed');
  });
});

describe.each(STORE_KINDS)('a probe aborted by the attempt timeout (%s)', (storeKind) => {
  it('does not leave the circuit half-open: a later attempt probes and the instance succeeds', async () => {
    const { app, state } = await moodyApp();
    const conn = httpConnection('moody-async', {
      baseUrl: app.url,
      circuit: { failures: 1, reprobeMs: REPROBE_MS },
    });
    let attempts = 0;
    const calls = defineIntegration({
      id: 'calls-moody',
      mode: 'async',
      timeout: 150,
      retry: { maxAttempts: 3, initialDelayMs: 50, maxDelayMs: 50, jitter: 0 },
      async handler(ctx) {
        attempts++;
        if (attempts === 2) state.mode = 'ok';
        return ctx.step('call', () => ctx.call(conn, 'GET', '/x'));
      },
    });
    const t = await testEngine([calls], { storeKind, connections: [conn] });
    close = async () => {
      await t.close();
      await conn.close();
      await app.close();
    };
    await openThenHalfOpen(conn, caller(conn, new AbortController().signal));
    state.mode = 'stall';
    const { instanceId } = await t.engine.accept('calls-moody', {});
    const done = await waitForStatus(t.engine, instanceId, ['succeeded', 'failed'], 10_000);
    expect(done).toMatchObject({ status: 'succeeded', output: { ok: true }, attempt: 2 });
    expect(conn.circuitState()).toBe('closed');
  });
});

describe('a sync call whose deadline aborts the probe', () => {
  it('lets the next request probe: 200 once the application is back', async () => {
    const { app, state } = await moodyApp();
    const conn = httpConnection('moody-sync', {
      baseUrl: app.url,
      circuit: { failures: 1, reprobeMs: REPROBE_MS },
    });
    const lookup = defineIntegration({
      id: 'lookup',
      mode: 'sync',
      route: 'GET /lookup',
      deadline: 100,
      async handler(ctx) {
        return { body: await ctx.call(conn, 'GET', '/x') };
      },
    });
    const t = await testServer([lookup], {}, { connections: [conn] });
    close = async () => {
      await t.close();
      await conn.close();
      await app.close();
    };
    expect((await t.request('/lookup')).status).toBe(502);
    await sleep(REPROBE_MS + 20);
    state.mode = 'stall';
    expect((await t.request('/lookup')).status).toBe(504);
    state.mode = 'ok';
    const back = await t.request('/lookup');
    expect(back.status).toBe(200);
    expect(back.json).toEqual({ ok: true });
    expect(conn.circuitState()).toBe('closed');
  });
});
