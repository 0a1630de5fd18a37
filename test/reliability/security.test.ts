/**
 * Security checks through a real listening server: the management API and the console refuse
 * without the admin token, trigger auth cannot be bypassed by method override, path tricks, case,
 * encoding or duplicated headers, no secret reaches the logs, the database or the activity stream,
 * and the size and backpressure limits hold.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { httpConnection } from '../../src/connections/http.js';
import { secret } from '../../src/connections/secret.js';
import { defineIntegration } from '../../src/define/integration.js';
import { CONSOLE_DIST } from '../../src/server/console.js';
import { ConsoleSessions, SESSION_HOURS } from '../../src/server/console-session.js';
import type { SqliteStore } from '../../src/store/sqlite/store.js';
import { appServer, json } from '../support/app-server.js';
import { waitForStatus } from '../support/engine.js';
import { rawRequest } from '../support/raw-http.js';
import { type TestServer, testServer } from '../support/server.js';

const ADMIN_TOKEN = `admin-${'7c1f'.repeat(6)}`;
const ORDER_KEY = `order-key-${'9b2e'.repeat(5)}`;
const OTHER_KEY = `other-key-${'41d0'.repeat(5)}`;
const TRACKED = 'ORDER-TRACKED-5521';

const orders = defineIntegration({
  id: 'orders',
  mode: 'async',
  route: 'POST /orders',
  auth: { type: 'api-key', keys: [ORDER_KEY] },
  input: z.object({ orderId: z.string() }),
  track: { orderId: 'orderId' },
  handler: () => 'ok',
});
const lookup = defineIntegration({
  id: 'lookup',
  mode: 'sync',
  route: 'GET /lookup/:id',
  auth: { type: 'api-key', header: 'x-lookup-key', keys: [OTHER_KEY] },
  handler: (ctx) => ({ id: ctx.params.id }),
});

let server: TestServer | null = null;
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  await server?.close();
  server = null;
  for (const close of closers.splice(0)) await close();
});

async function start(
  options: Parameters<typeof testServer>[1] = {},
  engine: Parameters<typeof testServer>[2] = {},
) {
  server = await testServer(
    [orders, lookup],
    { adminToken: ADMIN_TOKEN, ...options },
    { worker: false, ...engine },
  );
  return server;
}

const raw = (path: string, method = 'POST', headers: string[] = [], body = '{"orderId":"X-1"}') =>
  rawRequest(
    server!.port,
    `${method} ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n${headers.map((h) => `${h}\r\n`).join('')}` +
      (method === 'GET' || method === 'HEAD'
        ? '\r\n'
        : `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`),
  );

describe('trigger auth cannot be bypassed', () => {
  it('refuses every path, method, case, encoding and header trick without the key, storing nothing', async () => {
    await start();
    const before = server!.counts();
    const attempts: [string, string, string[]][] = [
      ['//orders', 'POST', []],
      ['/ORDERS', 'POST', []],
      ['/Orders', 'POST', []],
      ['/orders/', 'POST', []],
      ['/%6Frders', 'POST', []],
      ['/%6frders', 'POST', []],
      ['/orders%2F', 'POST', []],
      ['/orders;x', 'POST', []],
      [`/orders;x-api-key=${ORDER_KEY}`, 'POST', []],
      ['/orders?', 'POST', []],
      [`/orders?x-api-key=${ORDER_KEY}`, 'POST', []],
      [`/orders?api_key=${ORDER_KEY}`, 'POST', []],
      ['/./orders', 'POST', []],
      ['/api/../orders', 'POST', []],
      ['/api/%2E%2E/orders', 'POST', []],
      ['/orders/.', 'POST', []],
      ['/orders%00', 'POST', []],
      ['/orders%20', 'POST', []],
      ['/orders#frag', 'POST', []],
      ['http://127.0.0.1/orders', 'POST', []],
      ['/orders', 'GET', ['X-HTTP-Method-Override: POST']],
      ['/orders', 'PUT', ['X-HTTP-Method-Override: POST']],
      ['/orders', 'POST', ['X-HTTP-Method-Override: GET']],
      ['/orders', 'POST', ['X-HTTP-Method: OPTIONS', 'X-Method-Override: OPTIONS']],
      ['/orders', 'OPTIONS', []],
      ['/orders', 'HEAD', []],
      ['/orders', 'post', []],
      ['/orders', 'POST', ['X-API-KEY: wrong']],
      ['/orders', 'POST', ['x-api-key:']],
      ['/orders', 'POST', [`x-api-key: ${ORDER_KEY.toUpperCase()}`]],
      ['/orders', 'POST', [`x-api-key: ${ORDER_KEY.slice(0, -1)}`]],
      ['/orders', 'POST', ['x-api-key: wrong', `x-api-key: ${ORDER_KEY}`]],
      ['/orders', 'POST', [`x-api-key: ${ORDER_KEY}`, `x-api-key: ${ORDER_KEY}`]],
      ['/orders', 'POST', [`x_api_key: ${ORDER_KEY}`]],
      ['/orders', 'POST', [`x-api-key : ${ORDER_KEY}`]],
      ['/orders', 'POST', [`authorization: Bearer ${ORDER_KEY}`]],
      ['/orders', 'POST', [`authorization: Bearer ${ADMIN_TOKEN}`]],
      ['/orders', 'POST', [`x-api-key: ${ADMIN_TOKEN}`]],
      ['/orders', 'POST', [`x-api-key: ${OTHER_KEY}`]],
      ['/orders', 'POST', [`x-api-key: ${encodeURIComponent(ORDER_KEY).replace('-', '%2D')}`]],
      ['/lookup/1', 'GET', [`x-api-key: ${OTHER_KEY}`]],
      ['/lookup/1', 'GET', [`x-lookup-key: ${ORDER_KEY}`]],
      ['/LOOKUP/1', 'GET', [`x-api-key: ${ORDER_KEY}`]],
    ];
    const refused: Record<string, number> = {};
    for (const [path, method, headers] of attempts) {
      const answer = await raw(path, method, headers);
      const what = `${method} ${path} ${headers.join(' | ')}`;
      expect(answer.status, what).toBeGreaterThanOrEqual(400);
      expect(answer.status, what).toBeLessThan(500);
      if (method !== 'HEAD') expect(answer.head, what).toMatch(/content-type: application\/problem\+json/i);
      refused[answer.status] = (refused[answer.status] ?? 0) + 1;
    }
    expect(server!.counts()).toEqual(before);
    // The same requests with the key are let in: the refusals above are not an accident of framing.
    expect((await raw('/orders', 'POST', [`X-Api-Key: ${ORDER_KEY}`])).status).toBe(202);
    expect((await raw('/lookup/1', 'GET', [`X-LOOKUP-KEY: ${OTHER_KEY}`])).status).toBe(200);
    if (process.env.TANDEM_FIGURES)
      console.log(`figures trigger-bypass ${JSON.stringify({ attempts: attempts.length, refused })}`);
  });
});

describe('/api and /console without the admin token', () => {
  it('refuses /api in every spelling, and the console serves no data without the token', async () => {
    await start();
    const accepted = await server!.request('/orders', {
      method: 'POST',
      json: { orderId: TRACKED },
      headers: { 'x-api-key': ORDER_KEY },
    });
    expect(accepted.status).toBe(202);
    const id = accepted.json.instanceId as string;
    const reads = [
      '/api/instances',
      `/api/instances/${id}`,
      `/api/instances?tracking=${TRACKED}`,
      '/api/integrations',
      '/api/activity',
      '/API/instances',
      '//api/instances',
      '/api//instances',
      '/api/./instances',
      '/%61pi/instances',
      '/api%2Finstances',
      '/api/instances/',
      `/api/instances/${id}/`,
      `/api/instances?token=${ADMIN_TOKEN}`,
      `/api/instances?access_token=${ADMIN_TOKEN}`,
      '/orders/../api/instances',
    ];
    const variants: [string, string[]][] = [
      ['none', []],
      ['wrong', ['Authorization: Bearer wrong-token']],
      ['trigger key', [`Authorization: Bearer ${ORDER_KEY}`]],
      ['basic', [`Authorization: Basic ${Buffer.from(`admin:${ADMIN_TOKEN}`).toString('base64')}`]],
      ['as api key', [`x-api-key: ${ADMIN_TOKEN}`]],
      ['token prefix', [`Authorization: Bearer ${ADMIN_TOKEN.slice(0, -2)}`]],
      ['two headers', ['Authorization: Bearer wrong-token', `Authorization: Bearer ${ADMIN_TOKEN}`]],
    ];
    for (const path of reads) {
      for (const [name, headers] of variants) {
        const answer = await raw(path, 'GET', headers);
        const what = `GET ${path} (${name})`;
        expect([401, 403, 404, 400], what).toContain(answer.status);
        expect(answer.body, what).not.toContain(TRACKED);
        expect(answer.body, what).not.toContain(id);
      }
    }
    for (const [method, path] of [
      ['POST', `/api/instances/${id}/cancel`],
      ['POST', '/api/instances/rerun'],
      ['POST', '/api/integrations/orders/run'],
      ['GET', `/api/instances/${id}/cancel`],
    ] as const) {
      for (const [name, headers] of variants) {
        const answer = await raw(path, method, [...headers, 'X-HTTP-Method-Override: GET'], '{}');
        expect([401, 403, 404, 405], `${method} ${path} (${name})`).toContain(answer.status);
      }
    }
    expect((await server!.store.getInstance(id))?.status).toBe('queued'); // nothing was cancelled
    // With the token the same read works: the refusals are the guard's.
    const ok = await raw(`/api/instances/${id}`, 'GET', [`Authorization: Bearer ${ADMIN_TOKEN}`]);
    expect(ok.status).toBe(200);
    expect(ok.body).toContain(TRACKED);
  });
});

describe('the console behind the admin token', () => {
  const asset = readdirSync(join(CONSOLE_DIST, 'assets')).find((name) => name.endsWith('.js'))!;
  const consolePaths = [
    '/console/',
    '/console/index.html',
    `/console/assets/${asset}`,
    '/console/assets/no-such-file.js',
    '/console/../console/index.html',
    '/console/%2e%2e/console/index.html',
    '/console//index.html',
    '/console/session',
  ];
  const cookie = (value: string) => `Cookie: tandem_console=${value}`;
  const signIn = (body: string, headers: string[] = [], type = 'application/json') =>
    rawRequest(
      server!.port,
      `POST /console/sign-in HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n${headers.map((h) => `${h}\r\n`).join('')}` +
        `Content-Type: ${type}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );

  it('serves none of its files without a session, and no forged or expired cookie opens it', async () => {
    await start();
    const other = new ConsoleSessions('another-admin-token');
    const stale = new ConsoleSessions(ADMIN_TOKEN).issue(Date.now() - (SESSION_HOURS + 1) * 3600_000);
    const forgeries: [string, string[]][] = [
      ['none', []],
      ['bearer wrong', ['Authorization: Bearer wrong-token']],
      ['trigger key', [`Authorization: Bearer ${ORDER_KEY}`]],
      ['token as cookie', [cookie(ADMIN_TOKEN)]],
      ['made with another token', [cookie(other.issue().value)]],
      ['expired', [cookie(stale.value)]],
      ['expiry pushed forward', [cookie(`9${stale.value.slice(1)}`)]],
      ['zero MAC', [cookie(`9999999999.${'A'.repeat(43)}`)]],
      ['empty', [cookie('')]],
    ];
    const jsSource = readFileSync(join(CONSOLE_DIST, 'assets', asset), 'utf8').slice(0, 200);
    for (const path of consolePaths) {
      for (const [name, headers] of forgeries) {
        const what = `GET ${path} (${name})`;
        const page = await raw(path, 'GET', [...headers, 'Accept: text/html']);
        const program = await raw(path, 'GET', headers);
        if (path.includes('..') || path.includes('%2e')) {
          // Normalised away or refused, but never served.
          expect([400, 401, 404], what).toContain(page.status);
        } else {
          expect(page.status, what).toBe(401);
          expect(program.status, what).toBe(401);
          expect(program.head, what).toMatch(/content-type: application\/problem\+json/i);
        }
        if (page.status === 401 && path !== '/console/session')
          expect(page.body, what).toContain('Token (admin, operator or viewer)');
        for (const answer of [page, program]) {
          expect(answer.body, what).not.toContain(jsSource);
          expect(answer.body, what).not.toContain('<script');
          expect(answer.head, what).not.toMatch(/set-cookie/i);
        }
      }
    }
    // Nor do the forged cookies open the API.
    for (const [name, headers] of forgeries) {
      const answer = await raw('/api/instances', 'GET', headers);
      // A trigger key is a credential the server knows, which does not grant /api: 403.
      expect(answer.status, name).toBe(name === 'trigger key' ? 403 : 401);
    }
  });

  it('signs in only with the admin token and from its own origin; the cookie works only from there', async () => {
    await start();
    const accepted = await server!.request('/orders', {
      method: 'POST',
      json: { orderId: TRACKED },
      headers: { 'x-api-key': ORDER_KEY },
    });
    const id = accepted.json.instanceId as string;
    for (const [name, answer] of [
      ['wrong token', await signIn(JSON.stringify({ token: 'wrong' }))],
      ['trigger key', await signIn(JSON.stringify({ token: ORDER_KEY }))],
      ['token prefix', await signIn(JSON.stringify({ token: ADMIN_TOKEN.slice(0, -1) }))],
      [
        'form, wrong',
        await signIn('token=wrong', ['Accept: text/html'], 'application/x-www-form-urlencoded'),
      ],
      ['other site', await signIn(JSON.stringify({ token: ADMIN_TOKEN }), ['Origin: http://evil.example'])],
      ['other site', await signIn(JSON.stringify({ token: ADMIN_TOKEN }), ['Sec-Fetch-Site: cross-site'])],
      ['other port', await signIn(JSON.stringify({ token: ADMIN_TOKEN }), ['Origin: http://127.0.0.1:1'])],
    ] as const) {
      expect([401, 403], name).toContain(answer.status);
      expect(answer.head, name).not.toMatch(/set-cookie/i);
    }
    // Hostile bodies: refused with a problem document, the server stays up.
    for (const [body, type] of [
      ['{"token":1}', 'application/json'],
      ['{"token":["x"]}', 'application/json'],
      ['{"token":{"__proto__":{"admin":true}}}', 'application/json'],
      ['{"__proto__":{"token":"x"}}', 'application/json'],
      ['{"token":', 'application/json'],
      [`token=${'x'.repeat(5000)}`, 'application/x-www-form-urlencoded'],
      ['token=%E0%A4%A', 'application/x-www-form-urlencoded'],
      [`token=${ADMIN_TOKEN}`, 'text/plain'],
      ['', 'application/x-www-form-urlencoded'],
    ] as const) {
      const answer = await signIn(body, [], type);
      expect([400, 401, 413, 415], body.slice(0, 40)).toContain(answer.status);
      expect(answer.head, body.slice(0, 40)).toMatch(/content-type: application\/problem\+json/i);
      expect(answer.head).not.toMatch(/set-cookie/i);
    }

    const form = await signIn(
      `token=${encodeURIComponent(ADMIN_TOKEN)}`,
      ['Accept: text/html', 'Origin: http://127.0.0.1'],
      'application/x-www-form-urlencoded',
    );
    expect(form.status).toBe(303);
    const setCookie = /^set-cookie: (.*)$/im.exec(form.head)?.[1] ?? '';
    expect(setCookie).toMatch(
      // Expiry, the token's name (base64url of "admin") and the MAC.
      /^tandem_console=\d+\.YWRtaW4\.[\w-]{43}; Path=\/; Max-Age=43200; HttpOnly; SameSite=Strict/,
    );
    expect(setCookie).not.toContain(ADMIN_TOKEN);
    const session = cookie(/^tandem_console=([^;]+)/.exec(setCookie)![1]!);

    // With the cookie: the console's files and the API, from the console's own pages.
    const index = await raw('/console/', 'GET', [session, 'Accept: text/html', 'Sec-Fetch-Site: none']);
    expect(index.status).toBe(200);
    expect(index.body).toContain('<script');
    expect(
      (await raw(`/console/assets/${asset}`, 'GET', [session, 'Sec-Fetch-Site: same-origin'])).status,
    ).toBe(200);
    const read = await raw(`/api/instances/${id}`, 'GET', [session, 'Sec-Fetch-Site: same-origin']);
    expect(read.status).toBe(200);
    expect(read.body).toContain(TRACKED);
    // The same cookie sent by a page of another site (or another port) does nothing.
    for (const foreign of [
      ['Origin: http://evil.example'],
      ['Origin: http://127.0.0.1:1'],
      ['Origin: null'],
      ['Sec-Fetch-Site: cross-site'],
      ['Sec-Fetch-Site: same-site'],
    ]) {
      const cancel = await raw(`/api/instances/${id}/cancel`, 'POST', [session, ...foreign], '{}');
      expect(cancel.status, foreign[0]).toBe(403);
      const peek = await raw(`/api/instances/${id}`, 'GET', [session, ...foreign]);
      expect(peek.status, foreign[0]).toBe(403);
      expect(peek.body).not.toContain(TRACKED);
    }
    expect((await server!.store.getInstance(id))?.status).toBe('queued');
    // Signing out clears the cookie in the browser.
    const out = await raw('/console/sign-out', 'POST', [session, 'Accept: text/html'], '{}');
    expect(out.status).toBe(303);
    expect(out.head).toMatch(/set-cookie: tandem_console=; Path=\/; Max-Age=0; HttpOnly; SameSite=Strict/i);
  });
});

describe('limits', () => {
  it('refuses a body over 1 MiB with 413 on triggers and /api, storing nothing; just under it is accepted', async () => {
    await start();
    const before = server!.counts();
    const big = JSON.stringify({ orderId: 'x'.repeat(1024 * 1024) });
    for (const [path, headers] of [
      ['/orders', { 'x-api-key': ORDER_KEY }],
      ['/api/integrations/orders/run', { authorization: `Bearer ${ADMIN_TOKEN}` }],
    ] as const) {
      const answer = await server!.request(path, {
        method: 'POST',
        body: big,
        headers: { ...headers, 'content-type': 'application/json' },
      });
      expect(answer.status, path).toBe(413);
      expect(answer.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    }
    expect(server!.counts()).toEqual(before);
    const fits = await server!.request('/orders', {
      method: 'POST',
      body: JSON.stringify({ orderId: 'x'.repeat(1024 * 1024 - 100) }),
      headers: { 'x-api-key': ORDER_KEY, 'content-type': 'application/json' },
    });
    expect(fits.status).toBe(202);
  });

  it('answers 429 with Retry-After above the queue depth, storing only what it acknowledged', async () => {
    await start({ maxQueueDepth: 40, queueDepthRefreshMs: 50, retryAfterSeconds: 3 });
    const answers = await Promise.all(
      Array.from({ length: 120 }, (_, i) =>
        server!.request('/orders', {
          method: 'POST',
          json: { orderId: `Q-${i}` },
          headers: { 'x-api-key': ORDER_KEY },
        }),
      ),
    );
    const accepted = answers.filter((a) => a.status === 202);
    const limited = answers.filter((a) => a.status === 429);
    expect(accepted.length + limited.length).toBe(120);
    expect(accepted.length).toBeGreaterThanOrEqual(40);
    expect(accepted.length).toBeLessThan(120);
    for (const answer of limited) {
      expect(answer.headers.get('retry-after')).toBe('3');
      expect(answer.json.type).toBe('urn:tandem:error:queue-full');
    }
    expect(await server!.store.countInstances({ integrationId: 'orders' })).toBe(accepted.length);
  });
});

describe('secrets through the server', () => {
  it('no admin token, trigger key or connection secret in the logs, the database file or the activity stream', async () => {
    const canary = `conn-canary-${Math.random().toString(36).slice(2)}`;
    process.env.TEST_SECURITY_CANARY = canary;
    const app = await appServer((req, res) =>
      req.headers.authorization === `Bearer ${canary}` ? json(res, 200, { ok: true }) : json(res, 401, {}),
    );
    closers.push(() => app.close());
    const target = httpConnection('target', {
      baseUrl: app.url,
      auth: { type: 'bearer', token: secret('TEST_SECURITY_CANARY') },
    });
    const forward = defineIntegration({
      id: 'forward',
      mode: 'async',
      route: 'POST /forward',
      auth: { type: 'api-key', keys: [ORDER_KEY] },
      input: z.object({ n: z.number() }),
      retry: { maxAttempts: 2, initialDelayMs: 10 },
      handler: async (ctx) => {
        await ctx.step('send', () =>
          ctx.call(target, 'POST', ctx.input.n < 0 ? '/refused' : '/ok', { json: ctx.input }),
        );
      },
    });
    const quote = defineIntegration({
      id: 'quote',
      mode: 'sync',
      route: 'POST /quote',
      auth: { type: 'api-key', header: 'x-quote-key', keys: [OTHER_KEY] },
      handler: async (ctx) => ctx.call(target, 'GET', '/price'),
    });
    let logs = '';
    const logger = pino(
      { level: 'trace' },
      new Writable({
        write(chunk, _e, done) {
          logs += chunk.toString();
          done();
        },
      }),
    );
    server = await testServer(
      [forward, quote],
      { adminToken: ADMIN_TOKEN, logger },
      { connections: [target], logger },
    );
    const ids: string[] = [];
    for (const n of [1, 2, -1]) {
      const answer = await server.request('/forward', {
        method: 'POST',
        json: { n },
        headers: { 'x-api-key': ORDER_KEY },
      });
      ids.push(answer.json.instanceId);
    }
    await server.request('/forward', {
      method: 'POST',
      json: { n: 'bad' },
      headers: { 'x-api-key': ORDER_KEY },
    });
    await server.request('/forward', {
      method: 'POST',
      json: { n: 1 },
      headers: { 'x-api-key': `${ORDER_KEY}x` },
    });
    await server.request('/quote', {
      method: 'POST',
      json: {},
      headers: { 'x-quote-key': OTHER_KEY, authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    await server.request(`/api/instances?tracking=${ADMIN_TOKEN}`, {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    await server.request('/api/instances', { headers: { authorization: `Bearer ${ADMIN_TOKEN}x` } });
    for (const id of ids) await waitForStatus(server.engine, id);
    expect(app.seen.some((r) => r.headers.authorization === `Bearer ${canary}`)).toBe(true); // the secret was used
    const api = JSON.stringify(
      await Promise.all(
        ids.map((id) =>
          server!
            .request(`/api/instances/${id}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })
            .then((r) => r.json),
        ),
      ),
    );
    expect(api).toContain('connection'); // the calls are in the activity stream
    const events = JSON.stringify(await server.store.getEvents({ limit: 10_000 }));
    await server.app.close();
    await server.engine.stop();
    const db = (server.store as SqliteStore).db;
    db.pragma('wal_checkpoint(FULL)');
    const bytes = readFileSync(db.name).toString('latin1');
    expect(logs.length).toBeGreaterThan(0);
    for (const [where, text] of [
      ['logs', logs],
      ['database', bytes],
      ['activity', events],
      ['api', api],
    ] as const) {
      for (const value of [canary, ADMIN_TOKEN, ORDER_KEY, OTHER_KEY])
        expect(text, `${where} holds a secret`).not.toContain(value);
    }
  });
});
