import { afterEach, describe, expect, it } from 'vitest';
import { httpConnection } from '../../src/connections/http.js';
import { defineIntegration } from '../../src/define/integration.js';
import { Engine } from '../../src/engine/engine.js';
import { appServer, json } from '../support/app-server.js';
import { quietLogger, STORE_KINDS, testEngine, waitForStatus } from '../support/engine.js';
import { waitFor } from '../support/wait.js';

let close: (() => Promise<void>) | undefined;
afterEach(async () => {
  await close?.();
  close = undefined;
});

/** An application that answers only when told to, so that a call is in flight while the instance is cancelled. */
async function stalledApp() {
  const app = await appServer(async (_req, res) => {
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    json(res, 200, { ok: true });
  });
  return app;
}

describe.each(STORE_KINDS)('cancelling a running instance (%s)', (storeKind) => {
  it('aborts it with the code cancelled: the signal, the call event and the API say so', async () => {
    const app = await stalledApp();
    const slow = httpConnection('slow-app', { baseUrl: app.url, circuit: false });
    const reasons: unknown[] = [];
    const waits = defineIntegration({
      id: 'waits-on-app',
      mode: 'async',
      async handler(ctx) {
        ctx.signal.addEventListener('abort', () => reasons.push(ctx.signal.reason));
        await ctx.step('call', () => ctx.call(slow, 'GET', '/slow'));
      },
    });
    const t = await testEngine([waits], { storeKind, connections: [slow] });
    close = async () => {
      await t.close();
      await slow.close();
      await app.close();
    };
    const { instanceId } = await t.engine.accept('waits-on-app', {});
    await waitFor(() => app.seen.length === 1, 'the call to reach the application');
    await t.engine.cancel(instanceId);
    await waitFor(async () => {
      const events = await t.store.getEvents({ instanceId, limit: 100 });
      return events.find((e) => e.type === 'connection.call');
    }, 'the aborted call to be recorded');
    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toMatchObject({ code: 'cancelled' });
    const { instance, events } = await t.engine.getDetail(instanceId);
    expect(instance.status).toBe('cancelled');
    const call = events.find((e) => e.type === 'connection.call')!;
    expect(call.data).toMatchObject({ status: null, error: 'cancelled' });
    expect(JSON.stringify(events)).not.toContain('lease-lost');
    expect(JSON.stringify(instance)).not.toContain('lease-lost');
  });

  it('says cancelled in the worker when another process cancelled the instance', async () => {
    const reasons: unknown[] = [];
    const waits = defineIntegration({
      id: 'waits-for-signal',
      mode: 'async',
      async handler(ctx) {
        await new Promise<void>((resolve) => {
          ctx.signal.addEventListener('abort', () => {
            reasons.push(ctx.signal.reason);
            resolve();
          });
        });
      },
    });
    const t = await testEngine([waits], { storeKind, leaseMs: 300 });
    const api = await Engine.create({
      integrations: [waits],
      store: t.store,
      logger: quietLogger,
      worker: false,
    });
    close = async () => {
      await api.stop(0);
      await t.close();
    };
    const { instanceId } = await t.engine.accept('waits-for-signal', {});
    await waitForStatus(t.engine, instanceId, ['running']);
    await api.cancel(instanceId);
    await waitFor(() => reasons.length === 1, 'the worker to see the cancel');
    expect(reasons[0]).toMatchObject({ code: 'cancelled' });
    expect((await t.engine.getInstance(instanceId)).status).toBe('cancelled');
  });
});
