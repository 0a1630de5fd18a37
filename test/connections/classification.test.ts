import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { httpConnection } from '../../src/connections/http.js';
import { secret } from '../../src/connections/secret.js';
import { defineIntegration } from '../../src/define/integration.js';
import type { SqliteStore } from '../../src/store/sqlite/store.js';
import { appServer, json } from '../support/app-server.js';
import { testEngine, waitForStatus } from '../support/engine.js';
import { waitFor } from '../support/wait.js';

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

const retry = { maxAttempts: 3, initialDelayMs: 10, maxDelayMs: 20, jitter: 0 };

/** An async integration that makes one call in one step and returns its answer. */
function caller(id: string, connection: string, path: string) {
  return defineIntegration({
    id,
    mode: 'async',
    retry,
    async handler(ctx) {
      return ctx.step('call', () => ctx.call(connection, 'GET', path));
    },
  });
}

describe('connection failures end as classified', () => {
  it('down, slow, 500 then OK, 429 with Retry-After, and 400', async () => {
    let fiveHundreds = 0;
    let throttled = 0;
    const app = await appServer(async (req, res) => {
      if (req.url === '/slow') await new Promise((resolve) => setTimeout(resolve, 300));
      if (req.url === '/flaky' && fiveHundreds++ === 0) return json(res, 500, { error: 'database locked' });
      if (req.url === '/busy' && throttled++ === 0)
        return json(res, 429, { error: 'slow down' }, { 'retry-after': '1' });
      if (req.url === '/bad') return json(res, 400, { error: 'sku missing' });
      json(res, 200, { ok: req.url });
    });
    closers.push(() => app.close());
    const closed = await appServer(() => {});
    await closed.down(); // a port with nothing listening
    // Only /slow is called with a short time limit: on a loaded machine a 100 ms limit could cut off
    // the 429 as well, and its retry would then follow the backoff instead of Retry-After.
    const target = httpConnection('target', { baseUrl: app.url, timeout: 5_000, circuit: false });
    const short = httpConnection('short', { baseUrl: app.url, timeout: 100, circuit: false });
    const dead = httpConnection('dead', { baseUrl: closed.url, circuit: false });
    const t = await testEngine(
      [
        caller('down', 'dead', '/x'),
        caller('slow', 'short', '/slow'),
        caller('flaky', 'target', '/flaky'),
        caller('busy', 'target', '/busy'),
        caller('bad', 'target', '/bad'),
      ],
      { connections: [target, short, dead] },
    );
    closers.push(() => t.close());
    const ids = Object.fromEntries(
      await Promise.all(
        ['down', 'slow', 'flaky', 'busy', 'bad'].map(async (id) => [
          id,
          (await t.engine.accept(id, {})).instanceId,
        ]),
      ),
    );
    const down = await waitForStatus(t.engine, ids.down!);
    expect(down).toMatchObject({ status: 'failed', attempt: 3, error: { code: 'connection-failed' } });
    const slow = await waitForStatus(t.engine, ids.slow!);
    expect(slow).toMatchObject({ status: 'failed', attempt: 3, error: { code: 'connection-timeout' } });
    const flaky = await waitForStatus(t.engine, ids.flaky!);
    expect(flaky).toMatchObject({ status: 'succeeded', attempt: 2, output: { ok: '/flaky' } });
    const busy = await waitForStatus(t.engine, ids.busy!);
    expect(busy).toMatchObject({ status: 'succeeded', attempt: 2 });
    const busyCalls = app.seen.filter((r) => r.url === '/busy');
    expect(busyCalls[1]!.at - busyCalls[0]!.at).toBeGreaterThanOrEqual(950); // honoured Retry-After: 1
    const bad = await waitForStatus(t.engine, ids.bad!);
    expect(bad).toMatchObject({
      status: 'failed',
      attempt: 1,
      error: { name: 'HttpError', code: 'http-error' },
    });
    expect(bad.error?.details).toMatchObject({
      status: 400,
      body: '{"error":"sku missing"}',
      connection: 'target',
    });
    expect(app.seen.filter((r) => r.url === '/bad')).toHaveLength(1);
    // Every call is in the activity stream, with its status.
    const events = (await t.engine.getDetail(ids.flaky!)).events.filter((e) => e.type === 'connection.call');
    expect(events.map((e) => e.data.status)).toEqual([500, 200]);
    // Each call names the step and the attempt that made it (the timeline draws it there).
    expect(events.map((e) => [e.data.step, e.data.attempt])).toEqual([
      ['call', 1],
      ['call', 2],
    ]);
    expect(events[0]!.data).toMatchObject({
      connection: 'target',
      method: 'GET',
      url: `${app.url}/flaky`,
      attempt: 1,
    });
  });

  it('refreshes an OAuth client-credentials token before expiry and once on 401', async () => {
    let issued = 0;
    const valid = new Set<string>();
    const app = await appServer((req, res) => {
      if (req.url === '/token') {
        const form = new URLSearchParams(req.body);
        if (form.get('client_secret') !== 'oauth-secret') return json(res, 401, { error: 'invalid_client' });
        const token = `t${++issued}`;
        valid.add(token);
        return json(res, 200, { access_token: token, expires_in: 3600, token_type: 'Bearer' });
      }
      const token = req.headers.authorization?.replace('Bearer ', '') ?? '';
      if (!valid.has(token)) return json(res, 401, { error: 'expired' });
      // Named so that the answer is not a secret field (those are masked in stored outputs).
      json(res, 200, { bearerSeen: token });
    });
    closers.push(() => app.close());
    process.env.TEST_OAUTH_SECRET = 'oauth-secret';
    const crm = httpConnection('crm', {
      baseUrl: app.url,
      auth: {
        type: 'oauth2-client-credentials',
        tokenUrl: `${app.url}/token`,
        clientId: 'tandem',
        clientSecret: secret('TEST_OAUTH_SECRET'),
      },
    });
    const t = await testEngine([caller('crm-read', 'crm', '/customers')], { connections: [crm] });
    closers.push(() => t.close());
    const first = await waitForStatus(t.engine, (await t.engine.accept('crm-read', {})).instanceId);
    expect(first.output).toEqual({ bearerSeen: 't1' });
    valid.clear(); // the token expires mid-test (revoked early): the next call gets 401
    const second = await waitForStatus(t.engine, (await t.engine.accept('crm-read', {})).instanceId);
    expect(second).toMatchObject({ status: 'succeeded', attempt: 1, output: { bearerSeen: 't2' } });
    expect(issued).toBe(2);
  });
});

describe('limits', () => {
  it('never exceeds maxConcurrency', async () => {
    // The application holds every call until 4 are in flight (and a while longer), so that the
    // limit is reached however slowly a busy machine accepts and claims.
    let open = () => {};
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    const app = await appServer(async (_req, res) => {
      await gate;
      await new Promise((resolve) => setTimeout(resolve, 20));
      json(res, 200, {});
    });
    closers.push(() => app.close());
    const inventory = httpConnection('inventory', { baseUrl: app.url, maxConcurrency: 4 });
    const t = await testEngine([caller('read', 'inventory', '/stock')], {
      connections: [inventory],
      concurrency: 50,
    });
    closers.push(() => t.close());
    for (let i = 0; i < 60; i++) await t.engine.accept('read', {});
    await waitFor(async () => app.peakInFlight === 4, '4 calls in flight');
    await new Promise((resolve) => setTimeout(resolve, 200)); // 46 more instances are waiting to call
    open();
    await waitFor(async () => (await t.store.countInstances({ status: 'succeeded' })) === 60, 'all calls');
    expect(app.seen).toHaveLength(60);
    expect(app.peakInFlight).toBe(4);
  });

  it('holds ratePerSecond within 10% over 10 s', async () => {
    const app = await appServer((_req, res) => json(res, 200, {}));
    closers.push(() => app.close());
    const bank = httpConnection('bank', { baseUrl: app.url, ratePerSecond: 20 });
    const t = await testEngine([caller('poll', 'bank', '/rates')], { connections: [bank], concurrency: 50 });
    closers.push(() => t.close());
    for (let i = 0; i < 260; i++) await t.engine.accept('poll', {});
    await waitFor(() => app.seen.length >= 240, 'calls for 12 s', 30_000);
    const start = app.seen[0]!.at;
    const inTenSeconds = app.seen.filter((r) => r.at - start < 10_000).length;
    expect(inTenSeconds).toBeGreaterThanOrEqual(180);
    expect(inTenSeconds).toBeLessThanOrEqual(220);
  }, 40_000);
});

describe('secrets', () => {
  it('never writes a canary secret to the database file, the logs or the activity stream', async () => {
    const canary = `canary-${Math.random().toString(36).slice(2)}-secret`;
    process.env.TEST_CANARY_TOKEN = canary;
    process.env.TEST_CANARY_KEY = `${canary}-key`;
    const app = await appServer((req, res) =>
      req.headers.authorization === `Bearer ${canary}` ? json(res, 200, { fine: true }) : json(res, 401, {}),
    );
    closers.push(() => app.close());
    const bearer = httpConnection('vault', {
      baseUrl: app.url,
      auth: { type: 'bearer', token: secret('TEST_CANARY_TOKEN') },
    });
    const keyed = httpConnection('keyed', {
      baseUrl: app.url,
      auth: { type: 'api-key', in: 'query', name: 'key', value: secret('TEST_CANARY_KEY') },
    });
    let logs = '';
    const logger = pino(
      { level: 'trace' },
      new Writable({
        write(chunk, _encoding, done) {
          logs += chunk.toString();
          done();
        },
      }),
    );
    const t = await testEngine(
      [
        caller('ok', 'vault', '/v'),
        caller('refused', 'keyed', '/k'), // the app refuses it: an error that names the URL
        defineIntegration({
          id: 'input-free',
          mode: 'async',
          input: z.object({ n: z.number() }),
          handler: (ctx) => ctx.step('s', () => ctx.call(bearer, 'POST', '/x', { json: ctx.input })),
        }),
      ],
      { connections: [bearer, keyed], logger },
    );
    closers.push(() => t.close());
    const ids = [
      (await t.engine.accept('ok', {})).instanceId,
      (await t.engine.accept('refused', {})).instanceId,
      (await t.engine.accept('input-free', { n: 1 })).instanceId,
    ];
    for (const id of ids) await waitForStatus(t.engine, id);
    expect(app.seen.some((r) => r.url.includes(encodeURIComponent(`${canary}-key`)))).toBe(true); // it was sent
    const events = JSON.stringify(await t.store.getEvents({ limit: 1_000 }));
    const details = JSON.stringify(await Promise.all(ids.map((id) => t.engine.getDetail(id))));
    await t.engine.stop();
    const db = (t.store as SqliteStore).db;
    db.pragma('wal_checkpoint(FULL)');
    const file = db.name;
    const bytes =
      readFileSync(file).toString('latin1') + readFileSync(`${file}-wal`, { flag: 'r' }).toString('latin1');
    for (const [where, text] of [
      ['database', bytes],
      ['logs', logs],
      ['events', events],
      ['instances', details],
    ] as const) {
      expect(text.includes(canary), `canary in ${where}`).toBe(false);
    }
    expect(events).toContain('connection.call');
  });
});
