import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import pino from 'pino';
import { Webhook } from 'standardwebhooks';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineIntegration } from '../../src/define/integration.js';
import { buildApp } from '../../src/server/app.js';
import { testEngine } from '../support/engine.js';
import { type TestServer, testServer } from '../support/server.js';

const ADMIN_TOKEN = 'admin-token-3f9a7c21d0e84b56';
const SHOP_KEY = 'shop-key-8e1d2c3b4a596877';
const CRM_KEY = 'crm-key-11aa22bb33cc44dd';
const WEBHOOK_SECRET = `whsec_${randomBytes(24).toString('base64')}`;
const OLD_WEBHOOK_SECRET = `whsec_${randomBytes(24).toString('base64')}`;

const shopOrder = defineIntegration({
  id: 'shop-order',
  mode: 'async',
  route: 'POST /shop/orders',
  auth: { type: 'api-key', keys: [SHOP_KEY] },
  input: z.object({ orderId: z.string() }),
  handler: () => 'ok',
});
const crmLookup = defineIntegration({
  id: 'crm-lookup',
  mode: 'sync',
  route: 'GET /crm/customer',
  auth: { type: 'api-key', header: 'x-crm-key', keys: [CRM_KEY] },
  handler: (ctx) => ({ headers: Object.keys(ctx.headers).sort() }),
});
const payment = defineIntegration({
  id: 'payment-received',
  mode: 'async',
  route: 'POST /webhooks/payments',
  auth: { type: 'standard-webhooks', secret: [WEBHOOK_SECRET, OLD_WEBHOOK_SECRET] },
  input: z.object({ paymentId: z.string(), amount: z.number() }),
  handler: () => 'booked',
});
const open = defineIntegration({ id: 'open', mode: 'sync', route: 'GET /open', handler: () => 'open' });

let server: TestServer | null = null;
afterEach(async () => {
  await server?.close();
  server = null;
});

function start(options: Parameters<typeof testServer>[1] = {}) {
  return testServer(
    [shopOrder, crmLookup, payment, open],
    { adminToken: ADMIN_TOKEN, ...options },
    { worker: false },
  );
}

/** Headers of a delivery signed as a Standard Webhooks sender signs it. */
function signed(payload: string, { secret = WEBHOOK_SECRET, id = 'msg_1', at = new Date() } = {}) {
  const signature = new Webhook(secret).sign(id, at, payload);
  return {
    'content-type': 'application/json',
    'webhook-id': id,
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': signature,
  };
}

describe('admin token on /api', () => {
  it('answers 401 without or with an unknown token, 403 for a trigger key, and 200 for the admin token', async () => {
    server = await start();
    const none = await server.request('/api/instances');
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer realm="tandem"/);
    expect(none.json.type).toBe('urn:tandem:error:unauthenticated');
    const basic = await server.request('/api/instances', {
      headers: { authorization: 'Basic YWRtaW46YWRtaW4=' },
    });
    expect(basic.status).toBe(401);
    const wrong = await server.request('/api/instances', { headers: { authorization: 'Bearer nope' } });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('www-authenticate')).toContain('invalid_token');
    const prefix = await server.request('/api/instances', {
      headers: { authorization: `Bearer ${ADMIN_TOKEN.slice(0, -1)}` },
    });
    expect(prefix.status).toBe(401);
    const triggerKey = await server.request('/api/instances', {
      headers: { authorization: `Bearer ${SHOP_KEY}` },
    });
    expect([triggerKey.status, triggerKey.json.type]).toEqual([403, 'urn:tandem:error:forbidden']);
    const ok = await server.request('/api/instances', {
      headers: { authorization: `bearer ${ADMIN_TOKEN}` },
    });
    expect(ok.status).toBe(200);
    const run = await server.request('/api/integrations/shop-order/run', {
      method: 'POST',
      json: { orderId: 'X' },
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(run.status).toBe(202);
  });

  it('guards unknown /api paths too, and leaves /healthz, /openapi.json and open triggers alone', async () => {
    server = await start();
    expect((await server.request('/api/secret-route')).status).toBe(401);
    const known = await server.request('/api/secret-route', {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(known.status).toBe(404);
    expect((await server.request('/healthz')).status).toBe(200);
    expect((await server.request('/openapi.json')).status).toBe(200);
    expect((await server.request('/open')).status).toBe(200);
  });

  it('reads TANDEM_ADMIN_TOKEN when no token is given', async () => {
    process.env.TANDEM_ADMIN_TOKEN = 'from-the-environment-123';
    try {
      server = await testServer([open], { adminToken: undefined });
    } finally {
      delete process.env.TANDEM_ADMIN_TOKEN;
    }
    expect((await server.request('/api/instances')).status).toBe(401);
    const ok = await server.request('/api/instances', {
      headers: { authorization: 'Bearer from-the-environment-123' },
    });
    expect(ok.status).toBe(200);
  });
});

describe('API key triggers', () => {
  it('answers 401 without or with an unknown key, 403 for a key of another trigger, and runs with the right key', async () => {
    server = await start();
    const before = server.counts();
    const none = await server.request('/shop/orders', { method: 'POST', json: { orderId: 'A' } });
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('ApiKey header="x-api-key"');
    const wrong = await server.request('/shop/orders', {
      method: 'POST',
      json: { orderId: 'A' },
      headers: { 'x-api-key': 'guess' },
    });
    expect(wrong.status).toBe(401);
    const otherKey = await server.request('/shop/orders', {
      method: 'POST',
      json: { orderId: 'A' },
      headers: { 'x-api-key': CRM_KEY },
    });
    expect(otherKey.status).toBe(403);
    const adminAsKey = await server.request('/shop/orders', {
      method: 'POST',
      json: { orderId: 'A' },
      headers: { 'x-api-key': ADMIN_TOKEN },
    });
    expect(adminAsKey.status).toBe(403);
    expect(server.counts()).toEqual(before);
    const ok = await server.request('/shop/orders', {
      method: 'POST',
      json: { orderId: 'A' },
      headers: { 'x-api-key': SHOP_KEY },
    });
    expect(ok.status).toBe(202);
  });

  it('accepts one key on every trigger it is configured on, and still refuses it elsewhere', async () => {
    const PARTNER_KEY = 'partner-key-5c6d7e8f90a1b2c3';
    const returns = defineIntegration({
      id: 'partner-returns',
      mode: 'async',
      route: 'POST /partner/returns',
      auth: { type: 'api-key', keys: [PARTNER_KEY] },
      handler: () => 'ok',
    });
    const stock = defineIntegration({
      id: 'partner-stock',
      mode: 'sync',
      route: 'GET /partner/stock',
      auth: { type: 'api-key', header: 'x-partner-key', keys: ['rotated-key-0a1b2c3d4e5f', PARTNER_KEY] },
      handler: () => ({ units: 3 }),
    });
    server = await testServer([shopOrder, returns, stock], { adminToken: ADMIN_TOKEN }, { worker: false });
    const returned = await server.request('/partner/returns', {
      method: 'POST',
      json: { sku: 'A' },
      headers: { 'x-api-key': PARTNER_KEY },
    });
    expect(returned.status).toBe(202);
    const counted = await server.request('/partner/stock', { headers: { 'x-partner-key': PARTNER_KEY } });
    expect(counted.status).toBe(200);
    expect(counted.json).toEqual({ units: 3 });
    const before = server.counts();
    const elsewhere = await server.request('/shop/orders', {
      method: 'POST',
      json: { orderId: 'A' },
      headers: { 'x-api-key': PARTNER_KEY },
    });
    expect(elsewhere.status).toBe(403);
    const admin = await server.request('/api/instances', {
      headers: { authorization: `Bearer ${PARTNER_KEY}` },
    });
    expect(admin.status).toBe(403);
    expect(server.counts()).toEqual(before);
  });

  it('refuses an admin token that is also a trigger key, at start', async () => {
    const t = await testEngine([shopOrder], { worker: false });
    try {
      await expect(buildApp({ engine: t.engine, adminToken: SHOP_KEY })).rejects.toThrow(
        /admin token is also an API key of "shop-order"/,
      );
    } finally {
      await t.close();
    }
  });

  it('checks the key before reading the body, and hides the key from the sync handler', async () => {
    server = await start();
    const malformed = await server.request('/shop/orders', {
      method: 'POST',
      body: '{not json',
      headers: { 'content-type': 'application/json' },
    });
    expect(malformed.status).toBe(401);
    const res = await server.request('/crm/customer', { headers: { 'x-crm-key': CRM_KEY, 'x-trace': '1' } });
    expect(res.status).toBe(200);
    expect(res.json.headers).toContain('x-trace');
    expect(res.json.headers).not.toContain('x-crm-key');
  });
});

describe('Standard Webhooks triggers', () => {
  it('accepts a delivery signed by the standardwebhooks package, and returns the first instance for a redelivery', async () => {
    server = await start();
    const payload = JSON.stringify({ paymentId: 'pay_1', amount: 99.5 });
    const first = await server.request('/webhooks/payments', {
      method: 'POST',
      body: payload,
      headers: signed(payload),
    });
    expect(first.status).toBe(202);
    const again = await server.request('/webhooks/payments', {
      method: 'POST',
      body: payload,
      headers: signed(payload),
    });
    expect(again.status).toBe(202);
    expect(again.json.instanceId).toBe(first.json.instanceId);
    const rotated = await server.request('/webhooks/payments', {
      method: 'POST',
      body: payload,
      headers: signed(payload, { secret: OLD_WEBHOOK_SECRET, id: 'msg_2' }),
    });
    expect(rotated.status).toBe(202);
    expect(await server.store.countInstances({ integrationId: 'payment-received' })).toBe(2);
  });

  it('answers 401 for a missing, wrong, tampered or stale signature, before parsing the body', async () => {
    server = await start();
    const before = server.counts();
    const payload = JSON.stringify({ paymentId: 'pay_2', amount: 10 });
    const cases: [string, string, Record<string, string>][] = [
      ['unsigned', payload, { 'content-type': 'application/json' }],
      ['other secret', payload, signed(payload, { secret: `whsec_${randomBytes(24).toString('base64')}` })],
      ['tampered body', payload.replace('10', '1000'), signed(payload)],
      ['stale', payload, signed(payload, { at: new Date(Date.now() - 10 * 60_000) })],
      ['future', payload, signed(payload, { at: new Date(Date.now() + 10 * 60_000) })],
      ['malformed json, unsigned', '{"paymentId":', { 'content-type': 'application/json' }],
      ['bad signature format', payload, { ...signed(payload), 'webhook-signature': 'v1,@@@' }],
      ['other id', payload, { ...signed(payload), 'webhook-id': 'msg_other' }],
    ];
    for (const [name, body, headers] of cases) {
      const res = await server.request('/webhooks/payments', { method: 'POST', body, headers });
      expect(res.status, name).toBe(401);
      expect(res.json.type, name).toBe('urn:tandem:error:unauthenticated');
    }
    expect(server.counts()).toEqual(before);
  });
});

describe('secrets', () => {
  it('never appear in the logs, whatever requests arrive', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const failing = defineIntegration({
      id: 'failing',
      mode: 'sync',
      route: 'POST /failing',
      auth: { type: 'api-key', keys: [SHOP_KEY.replace('shop', 'fail')] },
      handler: () => {
        throw new Error('boom');
      },
    });
    server = await testServer(
      [shopOrder, crmLookup, payment, failing],
      { adminToken: ADMIN_TOKEN, logger: pino({ level: 'trace' }, sink) },
      { worker: false },
    );
    const payload = JSON.stringify({ paymentId: 'p', amount: 1 });
    await server.request('/api/instances', { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    await server.request('/api/nothing?token=x', { headers: { authorization: `Bearer ${ADMIN_TOKEN}x` } });
    await server.request('/shop/orders', {
      method: 'POST',
      json: { orderId: 1 },
      headers: { 'x-api-key': SHOP_KEY },
    });
    await server.request('/webhooks/payments', { method: 'POST', body: payload, headers: signed(payload) });
    await server.request('/webhooks/payments', {
      method: 'POST',
      body: `${payload} `,
      headers: signed(payload),
    });
    await server.request('/failing', {
      method: 'POST',
      headers: { 'x-api-key': SHOP_KEY.replace('shop', 'fail'), authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    await server.app.close();
    const log = lines.join('');
    expect(log).toContain('sync instance failed'); // the failing handler was logged, so logging was on
    for (const secret of [ADMIN_TOKEN, SHOP_KEY, CRM_KEY, WEBHOOK_SECRET, WEBHOOK_SECRET.slice(6)]) {
      expect(log).not.toContain(secret);
    }
  });
});
