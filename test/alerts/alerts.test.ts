/**
 * Alerts end to end on both stores: an outage that fails 200 instances is one grouped message,
 * delivered by the alerts integration to a real webhook receiver on 127.0.0.1 that is down first
 * (the message is retried, not lost) and signed so that the Standard Webhooks reference library
 * accepts it. Circuits and CloudEvents, missed schedule slots and the backlog raise their own
 * entries; the signing secret never reaches the store.
 */
import { readFileSync } from 'node:fs';
import { HTTP } from 'cloudevents';
import { Webhook } from 'standardwebhooks';
import { afterEach, describe, expect, it } from 'vitest';
import { ALERTS_INTEGRATION } from '../../src/alerts/alerts.js';
import type { AlertMessage } from '../../src/alerts/message.js';
import type { AlertsOptions } from '../../src/alerts/options.js';
import { engineOptionsOf } from '../../src/cli/load-config.js';
import { httpConnection } from '../../src/connections/http.js';
import { secret } from '../../src/connections/secret.js';
import { smtpConnection } from '../../src/connections/smtp.js';
import { defineConfig } from '../../src/define/config.js';
import { defineIntegration } from '../../src/define/integration.js';
import { Engine } from '../../src/engine/engine.js';
import type { Instance } from '../../src/model.js';
import { appServer, json, type SeenRequest, webhookReceiver } from '../support/app-server.js';
import { quietLogger, STORE_KINDS, testEngine, testStore, waitForStatus } from '../support/engine.js';
import { smtpServer } from '../support/smtp.js';
import { tempDir } from '../support/tmp.js';
import { waitFor } from '../support/wait.js';

const SECRET = `whsec_${Buffer.from('alert-signing-key-canary-7f3a91').toString('base64')}`;
const cleanups: (() => Promise<void>)[] = [];

function manualClock(start: number) {
  let now = start;
  return {
    now: () => now,
    set(time: number) {
      now = time;
    },
  };
}
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A burst's fallback instance (stored when the burst opens), not a message. */
const isFallback = (instance: Instance) => instance.idempotencyKey?.startsWith('fallback:') === true;

const messagesOf = (seen: SeenRequest[]) => seen.map((request) => JSON.parse(request.body) as AlertMessage);

describe.each(STORE_KINDS)('alerts (%s)', (storeKind) => {
  it('an outage failing 200 instances sends one grouped, signed alert, retried while the receiver is down', async () => {
    const hook = await webhookReceiver(cleanups);
    await hook.down(); // the receiver is down when the alert is first sent
    const shop = await appServer((_request, response) => json(response, 200, {}));
    cleanups.push(() => shop.close());
    await shop.down(); // the outage
    const shopConnection = httpConnection('shop', { baseUrl: shop.url, circuit: false });
    const postOrder = defineIntegration({
      id: 'post-order',
      mode: 'async',
      retry: { maxAttempts: 1 },
      async handler(ctx) {
        await ctx.step('post', () => ctx.call(shopConnection, 'POST', '/orders', { json: ctx.input }));
      },
    });
    const alerts: AlertsOptions = {
      webhook: { url: `${hook.url}/hooks/ops?channel=ops`, secret: SECRET },
      groupMs: 4_000,
      retry: { initialDelayMs: 100, maxDelayMs: 300 },
    };
    const { engine, close } = await testEngine([postOrder], {
      storeKind,
      connections: [shopConnection],
      alerts,
      publicUrl: 'https://tandem.example.com',
    });
    cleanups.push(close);

    await Promise.all(Array.from({ length: 200 }, (_, n) => engine.accept('post-order', { n })));
    await waitFor(
      async () => (await engine.countInstances({ integrationId: 'post-order', status: 'failed' })) === 200,
      '200 failed instances',
    );
    // The alert instance is stored and tried while the receiver is down.
    const alert = await waitFor(async () => {
      const [instance] = (await engine.listInstances({ integrationId: ALERTS_INTEGRATION, limit: 5 })).items;
      return instance && instance.attempt >= 2 ? instance : null;
    }, 'the alert to be retried');
    expect(alert.status).not.toBe('failed');
    expect(hook.seen).toHaveLength(0);

    await hook.up();
    const done = await waitForStatus(engine, alert.id);
    expect(done.status).toBe('succeeded');
    expect(hook.seen).toHaveLength(1);
    const [request] = hook.seen;
    expect(request!.url).toBe('/hooks/ops?channel=ops');
    expect(request!.headers['content-type']).toBe('application/json');
    expect(request!.headers['webhook-id']).toBe(alert.id);
    // The reference implementation accepts the signature.
    expect(new Webhook(SECRET).verify(request!.body, request!.headers as Record<string, string>)).toEqual(
      JSON.parse(request!.body),
    );
    const [message] = messagesOf(hook.seen);
    expect(message!.failures).toHaveLength(1);
    expect(message!.failures[0]).toMatchObject({
      integrationId: 'post-order',
      code: 'connection-failed',
      step: 'post',
      connection: 'shop',
      count: 200,
    });
    expect(message!.failures[0]!.examples[0]!.message).toMatch(/ECONNREFUSED|refused/);
    expect(message!.failures[0]!.link).toBe(
      `https://tandem.example.com/console/#/errors?group=${encodeURIComponent(
        JSON.stringify(['post-order', 'connection-failed', 'post', 'shop']),
      )}`,
    );
    expect(message!.title).toBe(
      'Tandem: 200 instances failed in post-order at step post (connection-failed)',
    );
    expect(message!.console).toBe('https://tandem.example.com/console/#/errors');
    // The tries are on the alert's own timeline: calls refused, then the one delivered.
    const detail = await engine.getDetail(alert.id);
    const calls = detail.events.filter((event) => event.type === 'connection.call');
    expect(calls.length).toBe(done.attempt);
    expect(calls.at(-1)!.data).toMatchObject({ status: 204 });
    expect(calls[0]!.data).toMatchObject({ status: null });
    // One message for the burst, and no other one after it (besides the burst's fallback, not due yet).
    const stored = (await engine.listInstances({ integrationId: ALERTS_INTEGRATION, limit: 10 })).items;
    expect(stored.filter((instance) => !isFallback(instance))).toHaveLength(1);
    expect(stored.filter(isFallback).map((instance) => instance.status)).toEqual(['queued']);
  });
});

describe('alert kinds', () => {
  it('circuits opening and closing are alerted, as CloudEvents when asked', async () => {
    const hook = await webhookReceiver(cleanups);
    const crm = await appServer((_request, response) => json(response, 200, { ok: true }));
    cleanups.push(() => crm.close());
    await crm.down();
    const crmConnection = httpConnection('crm', {
      baseUrl: crm.url,
      circuit: { failures: 2, reprobeMs: 300 },
    });
    const sync = defineIntegration({
      id: 'sync-customer',
      mode: 'async',
      retry: { maxAttempts: 50, initialDelayMs: 50, maxDelayMs: 100 },
      async handler(ctx) {
        await ctx.step('push', () => ctx.call(crmConnection, 'POST', '/customers', { json: {} }));
      },
    });
    const { engine, close } = await testEngine([sync], {
      connections: [crmConnection],
      alerts: { webhook: { url: hook.url, secret: SECRET, format: 'cloudevents' }, groupMs: 500 },
    });
    cleanups.push(close);
    const { instanceId } = await engine.accept('sync-customer', {});
    await waitFor(() => crmConnection.circuitState() !== 'closed', 'the circuit to open');
    await crm.up();
    expect((await waitForStatus(engine, instanceId)).status).toBe('succeeded');
    const events = await waitFor(() => {
      const received = hook.seen.map((request) =>
        HTTP.toEvent({ headers: request.headers, body: request.body }),
      ) as { type: string; id: string; data: AlertMessage }[];
      const states = received.flatMap((event) => event.data.circuits.map((change) => change.state));
      return states.includes('open') && states.includes('closed') ? received : null;
    }, 'alerts of the circuit opening and closing');
    for (const [index, event] of events.entries()) {
      expect(event.type).toBe('dev.tandem.alert');
      expect(event.id).toBe(hook.seen[index]!.headers['webhook-id']);
      expect(hook.seen[index]!.headers['content-type']).toMatch(/^application\/cloudevents\+json/);
      new Webhook(SECRET).verify(hook.seen[index]!.body, hook.seen[index]!.headers as Record<string, string>);
    }
    const changes = events.flatMap((event) => event.data.circuits);
    expect(changes.map((change) => [change.connection, change.state])).toEqual([
      ['crm', 'open'],
      ['crm', 'closed'],
    ]);
    // The alert receiver's own connection is not watched: no alert speaks of it.
    expect(JSON.stringify(events)).not.toContain(`${ALERTS_INTEGRATION}-webhook`);
  });

  it('slots missed while no scheduler ran, and passed over by a late one, are alerted', async () => {
    const hook = await webhookReceiver(cleanups);
    const { store, cleanup } = await testStore('sqlite');
    cleanups.push(cleanup);
    const T0 = Date.parse('2026-01-10T00:00:00.500Z');
    const clock = manualClock(T0);
    const report = defineIntegration({
      id: 'report',
      mode: 'scheduled',
      cron: '* * * * * *',
      handler: () => {},
    });
    const alerts: AlertsOptions = { webhook: { url: hook.url, secret: SECRET }, groupMs: 200 };
    const start = async () => {
      const engine = await Engine.create({
        integrations: [report],
        store,
        clock,
        logger: quietLogger,
        pollIntervalMs: 50,
        alerts,
      });
      engine.start();
      return engine;
    };
    const first = await start();
    clock.set(T0 + 500);
    await first.fireDueSlots();
    await first.stop(1_000);
    expect(hook.seen).toHaveLength(0); // nothing missed yet

    clock.set(T0 + 4_900); // slots 2…5 pass while stopped
    const second = await start();
    await second.fireDueSlots();
    const [restart] = messagesOf(await waitFor(() => (hook.seen.length >= 1 ? hook.seen : null), 'an alert'));
    expect(restart!.schedules).toEqual([
      expect.objectContaining({
        integrationId: 'report',
        reason: 'not-fired',
        slotAt: '2026-01-10T00:00:02.000Z',
        untilAt: '2026-01-10T00:00:05.000Z',
      }),
    ]);

    clock.set(T0 + 5_500);
    await second.fireDueSlots();
    clock.set(T0 + 8_500); // late: 7 and 8 are passed over, 9 fires
    await second.fireDueSlots();
    const late = await waitFor(
      () =>
        messagesOf(hook.seen).find((message) => message.schedules.some((s) => s.slotAt.endsWith(':07.000Z'))),
      'an alert of the slots passed over',
    );
    // Slot 9 may also be skipped (slot 6's instance still running): only the passed-over ones are asserted.
    expect(late.schedules.filter((slot) => slot.reason === 'not-fired')).toEqual([
      expect.objectContaining({
        reason: 'not-fired',
        slotAt: '2026-01-10T00:00:07.000Z',
        untilAt: '2026-01-10T00:00:08.000Z',
      }),
    ]);
    await second.stop(1_000);
  });

  it('the backlog passing its threshold is alerted at once (ahead of the backlog), and again when it is back under', async () => {
    let finished = 0;
    let finishedAtAlert: number | null = null;
    const hook = await appServer((request, response) => {
      const message = JSON.parse(request.body) as AlertMessage;
      if (message.backlog.some((change) => change.state === 'above')) finishedAtAlert ??= finished;
      response.writeHead(204).end();
    });
    cleanups.push(() => hook.close());
    const slow = defineIntegration({
      id: 'slow',
      mode: 'async',
      handler: async () => {
        await new Promise((resolve) => setTimeout(resolve, 250));
        finished++;
      },
    });
    const { engine, close } = await testEngine([slow], {
      concurrency: 1,
      alerts: {
        webhook: { url: hook.url, secret: SECRET },
        groupMs: 200,
        backlog: { above: 5, checkEveryMs: 50 },
      },
    });
    cleanups.push(close);
    await Promise.all(Array.from({ length: 12 }, (_, n) => engine.accept('slow', { n })));
    const below = await waitFor(
      () =>
        messagesOf(hook.seen).find((message) => message.backlog.some((change) => change.state === 'below')),
      'the backlog back under',
    );
    expect(below.backlog).toEqual([expect.objectContaining({ state: 'below', threshold: 5 })]);
    const all = messagesOf(hook.seen).flatMap((message) => message.backlog);
    expect(all.map((change) => change.state)).toEqual(['above', 'below']);
    expect(all[0]!.depth).toBeGreaterThanOrEqual(5);
    // The alert was claimed before the instances queued ahead of it: delivered while most still waited.
    expect(finishedAtAlert).not.toBeNull();
    expect(finishedAtAlert!).toBeLessThan(6);
  });

  it('sends the same grouped alert by e-mail and to the webhook, each step delivered once', async () => {
    const hook = await webhookReceiver(cleanups);
    const smtp = await smtpServer();
    cleanups.push(() => smtp.close());
    const mail = smtpConnection('ops-mail', {
      host: smtp.host,
      port: smtp.port,
      from: 'tandem@shop.example',
    });
    const failing = defineIntegration({
      id: 'sync-stock',
      mode: 'async',
      retry: { maxAttempts: 1 },
      handler: (ctx) =>
        ctx.step('read', () => {
          throw new Error(`stock file ${String((ctx.input as { n: number }).n)} is empty`);
        }),
    });
    const { engine, close } = await testEngine([failing], {
      alerts: {
        webhook: { url: hook.url, secret: SECRET },
        email: { connection: mail, to: ['ops@shop.example', 'oncall@shop.example'] },
        groupMs: 1_000,
      },
      publicUrl: 'https://tandem.example.com',
    });
    cleanups.push(close);
    smtp.replyNext(451, 'Greylisted'); // the first e-mail is refused for now: only that step is tried again
    for (let n = 1; n <= 3; n++) await engine.accept('sync-stock', { n });
    const alert = await waitFor(async () => {
      const [instance] = (await engine.listInstances({ integrationId: ALERTS_INTEGRATION, limit: 5 })).items;
      return instance?.status === 'succeeded' ? instance : null;
    }, 'the alert to be delivered');
    expect(alert.attempt).toBe(2);
    expect(hook.seen).toHaveLength(1);
    expect(smtp.received).toHaveLength(1);
    const [received] = smtp.received;
    expect(received!.to).toEqual(['ops@shop.example', 'oncall@shop.example']);
    expect(received!.subject).toBe('Tandem: 3 instances failed in sync-stock at step read (error)');
    expect(received!.messageId).toBe(`<${alert.id}%3Aemail%3A0@shop.example>`);
    // The text part is quoted-printable: soft line breaks joined, =XX bytes decoded.
    const text = Buffer.from(
      received!.raw
        .replace(/=\r?\n/g, '')
        .replace(/=([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(Number.parseInt(hex, 16))),
      'latin1',
    ).toString('utf8');
    expect(text).toContain('"stock file 1 is empty" ×3');
    expect(text).toContain(
      `https://tandem.example.com/console/#/errors?group=${encodeURIComponent(JSON.stringify(['sync-stock', null, 'read', null]))}`,
    );
    expect(messagesOf(hook.seen)[0]!.failures[0]!.count).toBe(3);
  });

  it('a burst still open at a graceful stop is stored then, and delivered by the next start', async () => {
    const hook = await webhookReceiver(cleanups);
    await hook.down();
    const { store, cleanup } = await testStore('sqlite');
    cleanups.push(cleanup);
    const failing = defineIntegration({
      id: 'failing',
      mode: 'async',
      retry: { maxAttempts: 1 },
      handler: () => {
        throw new Error('boom');
      },
    });
    const start = async () => {
      const engine = await Engine.create({
        integrations: [failing],
        store,
        logger: quietLogger,
        pollIntervalMs: 50,
        // A burst that would stay open for an hour: only the stop closes it.
        alerts: { webhook: { url: hook.url, secret: SECRET }, groupMs: 3_600_000 },
      });
      engine.start();
      return engine;
    };
    const first = await start();
    const { instanceId } = await first.accept('failing', {});
    await waitForStatus(first, instanceId);
    // Only the burst's fallback is stored while the burst is open.
    const open = (await first.listInstances({ integrationId: ALERTS_INTEGRATION, limit: 5 })).items;
    expect(open.map(isFallback)).toEqual([true]);
    await first.stop(1_000);

    const stored = (await store.listInstances({ integrationId: ALERTS_INTEGRATION, limit: 5 })).items.filter(
      (instance) => !isFallback(instance),
    );
    expect(stored).toHaveLength(1);
    expect((stored[0]!.input as unknown as AlertMessage).failures[0]).toMatchObject({
      integrationId: 'failing',
      count: 1,
    });
    await hook.up();
    const second = await start();
    cleanups.push(() => second.stop(1_000));
    expect((await waitForStatus(second, stored[0]!.id)).status).toBe('succeeded');
    expect(messagesOf(hook.seen).map((message) => message.title)).toEqual([
      'Tandem: 1 instance failed in failing (error)',
    ]);
  });

  it('never stores the signing secret: a secret() is read when sending, and no byte of it is in the store', async () => {
    const hook = await webhookReceiver(cleanups);
    const dir = tempDir('tandem-alerts-');
    cleanups.push(async () => dir.cleanup());
    const env = { ALERT_SECRET: SECRET };
    const failing = defineIntegration({
      id: 'failing',
      mode: 'async',
      retry: { maxAttempts: 1 },
      handler: () => {
        throw new Error('boom');
      },
    });
    const path = `${dir.path}/tandem.db`;
    const engine = await Engine.create({
      integrations: [failing],
      store: `sqlite:${path}`,
      logger: quietLogger,
      pollIntervalMs: 50,
      alerts: { webhook: { url: hook.url, secret: secret('ALERT_SECRET', env) }, groupMs: 100 },
    });
    engine.start();
    cleanups.push(() => engine.stop(1_000));
    await engine.accept('failing', {});
    await waitFor(() => hook.seen.length === 1, 'the alert');
    new Webhook(SECRET).verify(hook.seen[0]!.body, hook.seen[0]!.headers as Record<string, string>);
    await engine.stop(1_000);
    const key = SECRET.slice('whsec_'.length);
    for (const file of [path, `${path}-wal`]) {
      let bytes: Buffer;
      try {
        bytes = readFileSync(file);
      } catch {
        continue;
      }
      expect(bytes.includes(key)).toBe(false);
      expect(bytes.includes(Buffer.from(key, 'base64'))).toBe(false);
    }
  });

  it('refuses wrong alert options at definition, naming them and never showing the secret', async () => {
    const config = (alerts: unknown) => () =>
      defineConfig({ integrations: [], alerts: alerts as AlertsOptions });
    expect(config({ webhook: { url: 'ftp://example.com/x', secret: SECRET } })).toThrow(
      /alerts\.webhook\.url must be an http: or https: URL/,
    );
    expect(config({ webhook: { url: 'https://example.com/x', secret: 'not base64!' } })).toThrow(
      /alerts\.webhook\.secret must be a Standard Webhooks secret/,
    );
    expect(config({})).toThrow(/alerts needs a destination/);
    const alerts: AlertsOptions = { webhook: { url: 'https://example.com/x', secret: SECRET } };
    expect(engineOptionsOf(defineConfig({ integrations: [], alerts })).alerts).toBe(alerts);
    expect(config({ webhook: { url: 'https://example.com/x', secret: SECRET }, groupMs: -1 })).toThrow(
      /alerts\.groupMs must be/,
    );
    expect(
      config({ webhook: { url: 'https://example.com/x', secret: SECRET }, backlog: { above: 0 } }),
    ).toThrow(/alerts\.backlog\.above must be an integer/);
    expect(config({ webhook: { url: 'https://example.com/x', secret: SECRET }, falied: true })).toThrow(
      /unknown option "alerts\.falied" \(did you mean "alerts\.failed"\?\)/,
    );
    try {
      config({ webhook: { url: 'https://example.com/x', secret: 'whsec_%%%' } })();
    } catch (error) {
      expect((error as Error).message).not.toContain('%%%');
    }
    expect(() =>
      defineIntegration({ id: ALERTS_INTEGRATION, mode: 'async', handler: () => {} }),
    ).not.toThrow(); // the id is valid; taken only when alerts are configured:
    await expect(
      Engine.create({
        integrations: [defineIntegration({ id: ALERTS_INTEGRATION, mode: 'async', handler: () => {} })],
        store: 'sqlite::memory:',
        logger: quietLogger,
        alerts: { webhook: { url: 'https://example.com/x', secret: SECRET } },
      }),
    ).rejects.toThrow(/"tandem\.alerts" is defined twice/);
  });
});
