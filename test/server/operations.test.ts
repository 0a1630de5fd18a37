/**
 * The management API's operations views (connections, schedules, grouped errors), redaction of
 * secrets, the activity stream's access_token, and the console's files.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { httpConnection } from '../../src/connections/http.js';
import { defineIntegration } from '../../src/define/integration.js';
import { NonRetryableError } from '../../src/errors.js';
import { appServer } from '../support/app-server.js';
import { waitForStatus } from '../support/engine.js';
import { type TestServer, testServer } from '../support/server.js';

const ADMIN_TOKEN = 'admin-token-5c2e9b71aa0d4f36';

let target: Awaited<ReturnType<typeof appServer>>;
let server: TestServer;

beforeAll(async () => {
  target = await appServer((request, response) => {
    const status = request.url.startsWith('/missing') ? 404 : 200;
    response.writeHead(status, { 'content-type': 'application/json' }).end('{"ok":true}');
  });
  const crm = httpConnection('crm', { baseUrl: target.url });
  const lookup = defineIntegration({
    id: 'lookup',
    mode: 'async',
    input: z.object({
      path: z.string(),
      password: z.string().optional(),
      card: z.object({ number: z.string() }).optional(),
    }),
    redact: ['card.number'],
    track: { path: 'path' },
    handler: (ctx) => ctx.step('call', () => ctx.call(crm, 'GET', ctx.input.path)),
  });
  const refuse = defineIntegration({
    id: 'refuse',
    mode: 'async',
    input: z.object({ reason: z.string() }),
    handler: (ctx) => {
      throw new NonRetryableError(ctx.input.reason);
    },
  });
  const nightly = defineIntegration({
    id: 'nightly',
    mode: 'scheduled',
    cron: '0 0 2 * * *',
    parameters: { file: 'orders.csv' },
    handler: () => 'done',
  });
  server = await testServer([lookup, refuse, nightly], { adminToken: ADMIN_TOKEN }, { connections: [crm] });
});

afterAll(async () => {
  await server?.close();
  await target?.close();
});

const auth = { authorization: `Bearer ${ADMIN_TOKEN}` };
const get = (path: string) => server.request(path, { headers: auth });
const run = async (integration: string, input: unknown) => {
  const accepted = await server.request(`/api/integrations/${integration}/run`, {
    method: 'POST',
    headers: auth,
    json: input,
  });
  expect(accepted.status).toBe(202);
  return waitForStatus(server.engine, accepted.json.instanceId);
};

describe('GET /api/connections', () => {
  it('counts calls and failures per connection and tells its circuit state', async () => {
    await run('lookup', { path: '/customers/1' });
    await run('lookup', { path: '/missing/2' });
    const { status, json } = await get('/api/connections');
    expect(status).toBe(200);
    const crm = json.items.find((c: any) => c.id === 'crm');
    expect(crm).toMatchObject({
      baseUrl: target.url,
      circuit: 'closed',
      calls: 2,
      failures: 1,
      failureRate: 0.5,
      lastStatus: 404,
    });
    expect(crm.p50).toBeGreaterThanOrEqual(0);
  });
});

describe('GET /api/schedules', () => {
  it('gives each schedule its cron, parameters and next firing', async () => {
    const { status, json } = await get('/api/schedules');
    expect(status).toBe(200);
    expect(json.items).toHaveLength(1);
    expect(json.items[0]).toMatchObject({
      integrationId: 'nightly',
      cron: '0 0 2 * * *',
      parameters: { file: 'orders.csv' },
    });
    const { nextSlotAt, nextSlots } = json.items[0];
    expect(nextSlotAt).toBeGreaterThan(Date.now());
    expect(nextSlots).toHaveLength(5);
    expect(nextSlots[0]).toBe(nextSlotAt);
    for (let i = 1; i < 5; i++) expect(nextSlots[i] - nextSlots[i - 1]).toBe(86_400_000);
  });
});

describe('GET /api/errors', () => {
  it('groups failed instances by integration and error code, with the messages as examples', async () => {
    const a = await run('refuse', { reason: 'no such customer' });
    await run('refuse', { reason: 'no such customer' });
    await run('refuse', { reason: 'card declined' });
    const { status, json } = await get('/api/errors?integration=refuse');
    expect(status).toBe(200);
    expect(json.groups.map((g: any) => [g.code, g.count])).toEqual([['non-retryable', 3]]);
    expect(json.groups[0].examples.map((e: any) => [e.message, e.count])).toEqual([
      ['no such customer', 2],
      ['card declined', 1],
    ]);
    expect(json.groups[0].instanceIds).toContain(a.id);
    expect(json).toMatchObject({ scanned: 3, truncated: false });
    expect((await get('/api/errors?unknown=1')).status).toBe(400);
  });
});

describe('redaction', () => {
  it('masks the redact paths and secret-named fields in instances, runs and lists', async () => {
    const done = await run('lookup', { path: '/customers/3', password: 'hunter2', card: { number: '4111' } });
    const detail = await get(`/api/instances/${done.id}`);
    expect(detail.json.instance.input).toEqual({
      path: '/customers/3',
      password: '[redacted]',
      card: { number: '[redacted]' },
    });
    expect(detail.json.runs[0].input.card.number).toBe('[redacted]');
    const list = await get('/api/instances?integration=lookup&tracking=/customers/3');
    expect(list.json.items[0].input.password).toBe('[redacted]');
    expect(detail.text).not.toContain('hunter2');
    expect(detail.text).not.toContain('4111');
  });
});

describe('the activity stream with ?access_token=', () => {
  async function status(path: string, headers: Record<string, string> = {}) {
    const controller = new AbortController();
    const response = await fetch(server.url + path, { headers, signal: controller.signal });
    controller.abort();
    return response.status;
  }

  it('is accepted on /api/activity only, and only with the admin token', async () => {
    expect(await status(`/api/activity?access_token=${ADMIN_TOKEN}`)).toBe(200);
    expect(await status('/api/activity?access_token=wrong')).toBe(401);
    expect(await status('/api/activity')).toBe(401);
    expect(await status(`/api/integrations?access_token=${ADMIN_TOKEN}`)).toBe(401);
  });
});

describe('/console', () => {
  it('serves the built page after a sign-in, its assets with long caching, and redirects /console to /console/', async () => {
    expect((await fetch(`${server.url}/console/`)).status).toBe(401);
    const signIn = await fetch(`${server.url}/console/sign-in`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token: ADMIN_TOKEN }),
    });
    expect(signIn.status).toBe(204);
    const cookie = signIn.headers.get('set-cookie')!.split(';', 1)[0]!;
    const page = await fetch(`${server.url}/console/`, { headers: { cookie } });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/text\/html/);
    const html = await page.text();
    const script = /<script[^>]*src="([^"]+)"/.exec(html)?.[1];
    const asset = await fetch(server.url + script, { headers: { cookie } });
    expect(asset.status).toBe(200);
    expect(asset.headers.get('cache-control')).toContain('immutable');
    expect((await fetch(`${server.url}/console/assets/none.js`, { headers: { cookie } })).status).toBe(404);
    // The session cookie also opens the management API.
    expect((await fetch(`${server.url}/api/integrations`, { headers: { cookie } })).status).toBe(200);
    const bare = await fetch(`${server.url}/console`, { redirect: 'manual' });
    expect(bare.status).toBe(308);
    expect(bare.headers.get('location')).toBe('/console/');
  });

  it('answers a problem saying how to build it when it is not built', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'tandem-no-console-'));
    const bare = await testServer([], { consoleRoot: empty });
    try {
      const response = await bare.request('/console/');
      expect(response.status).toBe(404);
      expect(response.headers.get('content-type')).toMatch(/application\/problem\+json/);
      expect(response.json.detail).toContain('npm run build:console');
      expect((await bare.request('/healthz')).status).toBe(200);
    } finally {
      await bare.close();
      rmSync(empty, { recursive: true, force: true });
    }
  });
});
