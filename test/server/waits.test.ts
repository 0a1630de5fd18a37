/**
 * Durable waits over HTTP, on both stores: POST /api/events resumes the instances waiting for an
 * event (behind the admin token; bad input stores nothing), POST /callbacks/:token resumes the
 * instance that handed the URL out (no admin token: the token is the credential; once; 404, 409,
 * 410), its secret never reaches a log, the detail shows the waits and the version, and the
 * OpenAPI document describes both routes.
 */
import { Validator } from '@seriousme/openapi-schema-validator';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineConfig } from '../../src/define/config.js';
import { defineIntegration } from '../../src/define/integration.js';
import { InvalidDefinitionError } from '../../src/errors.js';
import { instanceDetailSchema } from '../../src/server/api/schemas.js';
import { buildApp } from '../../src/server/app.js';
import type { PostgresStore } from '../../src/store/postgres/store.js';
import type { SqliteStore } from '../../src/store/sqlite/store.js';
import type { Store } from '../../src/store/store.js';
import { STORE_KINDS, testEngine, waitForStatus } from '../support/engine.js';
import { type TestServer, testServer } from '../support/server.js';
import { waitFor } from '../support/wait.js';

const ADMIN_TOKEN = 'waits-admin-token-5c1f0e';
const admin = { authorization: `Bearer ${ADMIN_TOKEN}` };

let server: TestServer | null = null;
afterEach(async () => {
  await server?.close();
  server = null;
});

/** Waits for an `e` event whose payload's `k` is the input's. */
const waiter = defineIntegration({
  id: 'waiter',
  mode: 'async',
  version: '2',
  input: z.object({ k: z.string() }),
  track: { k: 'k' },
  async handler(ctx) {
    await ctx.step('before', () => 'ready');
    return ctx.waitForEvent('w', { event: 'e', match: { k: ctx.input.k } });
  },
});

/** Hands out a callback URL (kept here, as a partner would get it) and waits for the answer. */
function partnerCall(timeout?: number) {
  const urls = new Map<string, string>();
  const integration = defineIntegration({
    id: 'partner-call',
    mode: 'async',
    input: z.object({ k: z.string() }),
    async handler(ctx) {
      const shipped = await ctx.callback('shipment', timeout === undefined ? {} : { timeout });
      await ctx.step('hand-out', () => {
        urls.set(ctx.input.k, shipped.url);
        return null;
      });
      return { answer: await shipped.wait() };
    },
  });
  const urlOf = (k: string) => waitFor(async () => urls.get(k) ?? null, `the callback URL of ${k}`);
  return { integration, urlOf };
}

/** Business events stored, read by store kind. */
async function storedEvents(store: Store): Promise<number> {
  if ('pool' in store) {
    const { pool, schema } = store as PostgresStore;
    return Number((await pool.query(`SELECT count(*) AS n FROM "${schema}".business_events`)).rows[0].n);
  }
  return (
    (store as SqliteStore).db.prepare('SELECT count(*) AS n FROM business_events').get() as { n: number }
  ).n;
}

const pathOf = (url: string) => new URL(url).pathname;

describe.each(STORE_KINDS)('waits over HTTP (%s)', (storeKind) => {
  it('POST /api/events answers 202 with the instances it resumed; they finish with the payload', async () => {
    server = await testServer([waiter], { adminToken: ADMIN_TOKEN }, { storeKind });
    const s = server;
    const a = await s.engine.accept('waiter', { k: 'A' });
    const b = await s.engine.accept('waiter', { k: 'B' });
    await waitForStatus(s.engine, a.instanceId, ['waiting']);
    await waitForStatus(s.engine, b.instanceId, ['waiting']);

    const listed = await s.request('/api/instances?status=waiting', { headers: admin });
    expect(listed.json.items.map((i: { id: string }) => i.id).sort()).toEqual(
      [a.instanceId, b.instanceId].sort(),
    );
    const counts = await s.request('/api/integrations', { headers: admin });
    expect(counts.json.items[0].counts).toMatchObject({ waiting: 2 });

    const sent = await s.request('/api/events', {
      method: 'POST',
      headers: admin,
      json: { name: 'e', payload: { k: 'A', parcel: 7 }, id: 'evt-1' },
    });
    expect(sent.status).toBe(202);
    expect(sent.json).toEqual({ eventId: 'evt-1', duplicate: false, resumed: [a.instanceId] });
    const done = await waitForStatus(s.engine, a.instanceId);
    expect(done).toMatchObject({ status: 'succeeded', output: { k: 'A', parcel: 7 } });
    expect((await s.engine.getInstance(b.instanceId)).status).toBe('waiting');

    // The same id again: stored before, resumes nothing (not even B, whose key it now names).
    const again = await s.request('/api/events', {
      method: 'POST',
      headers: admin,
      json: { name: 'e', payload: { k: 'B' }, id: 'evt-1' },
    });
    expect(again.status).toBe(202);
    expect(again.json).toEqual({ eventId: 'evt-1', duplicate: true, resumed: [] });
    // Without an id, the store's sequence number names it.
    const anonymous = await s.request('/api/events', {
      method: 'POST',
      headers: admin,
      json: { name: 'other' },
    });
    expect(anonymous.status).toBe(202);
    expect(anonymous.json).toMatchObject({ duplicate: false, resumed: [] });
    expect(anonymous.json.eventId).toMatch(/^\d+$/);
    expect((await s.engine.getInstance(b.instanceId)).status).toBe('waiting');
  });

  it('refuses a bad event with problem+json 400, storing nothing and resuming no one', async () => {
    server = await testServer([waiter], { adminToken: ADMIN_TOKEN }, { storeKind });
    const s = server;
    const { instanceId } = await s.engine.accept('waiter', { k: 'A' });
    await waitForStatus(s.engine, instanceId, ['waiting']);
    const before = await storedEvents(s.store);
    const bad: [unknown, string][] = [
      [{ payload: { k: 'A' } }, 'name'],
      [{ name: 7, payload: { k: 'A' } }, 'name'],
      [{ name: '', payload: { k: 'A' } }, 'name'],
      [{ name: 'e', payload: { k: 'A' }, id: '' }, 'id'],
      [{ name: 'e', payload: { k: 'A' }, id: 'x'.repeat(201) }, 'id'],
      [{ name: 'e', payload: { k: 'A' }, extra: true }, ''],
      // Text no store can hold: refused by the engine, named as a body field.
      [{ name: 'e\u0000', payload: { k: 'A' } }, 'name'],
      [[{ name: 'e' }], ''],
    ];
    for (const [json, path] of bad) {
      const res = await s.request('/api/events', { method: 'POST', headers: admin, json });
      expect(res.status, JSON.stringify(json)).toBe(400);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(res.json.errors, JSON.stringify(json)).toContainEqual(
        expect.objectContaining({ in: 'body', path }),
      );
    }
    for (const body of [
      '{"name": "e", "payload": {"k": "A"}',
      '',
      `{"name":"e","payload":${'['.repeat(100)}]}`,
    ]) {
      const res = await s.request('/api/events', {
        method: 'POST',
        headers: { ...admin, 'content-type': 'application/json' },
        body,
      });
      expect(res.status).toBe(400);
      expect(res.json.type).toMatch(/^urn:tandem:error:(malformed-json|body-too-deep)$/);
    }
    expect(await storedEvents(s.store)).toBe(before);
    expect((await s.engine.getInstance(instanceId)).status).toBe('waiting');
  });

  it('POST /api/events needs the admin token', async () => {
    server = await testServer([waiter], { adminToken: ADMIN_TOKEN }, { storeKind });
    const s = server;
    const { instanceId } = await s.engine.accept('waiter', { k: 'A' });
    await waitForStatus(s.engine, instanceId, ['waiting']);
    const before = await storedEvents(s.store);
    const json = { name: 'e', payload: { k: 'A' } };
    const none = await s.request('/api/events', { method: 'POST', json });
    expect(none.status).toBe(401);
    expect(none.json.type).toBe('urn:tandem:error:unauthenticated');
    const wrong = await s.request('/api/events', {
      method: 'POST',
      json,
      headers: { authorization: `Bearer ${ADMIN_TOKEN}x` },
    });
    expect(wrong.status).toBe(401);
    expect(await storedEvents(s.store)).toBe(before);
    expect((await s.engine.getInstance(instanceId)).status).toBe('waiting');
  });

  it('a callback URL resumes its instance once with the body, without the admin token; then 409', async () => {
    const { integration, urlOf } = partnerCall();
    server = await testServer([integration], { adminToken: ADMIN_TOKEN }, { storeKind });
    const s = server;
    const { instanceId } = await s.engine.accept('partner-call', { k: 'A' });
    const url = await urlOf('A');
    // Where the server listens names the URL (no publicUrl configured).
    expect(url.startsWith(`${s.url}/callbacks/`)).toBe(true);
    await waitForStatus(s.engine, instanceId, ['waiting']);

    const first = await s.request(pathOf(url), {
      method: 'POST',
      json: { shipped: true, tracking: 'TRK-1' },
    });
    expect(first.status).toBe(202);
    expect(first.json).toEqual({ status: 'resumed', instanceId });
    const done = await waitForStatus(s.engine, instanceId);
    expect(done).toMatchObject({
      status: 'succeeded',
      output: { answer: { shipped: true, tracking: 'TRK-1' } },
    });

    const second = await s.request(pathOf(url), { method: 'POST', json: { shipped: false } });
    expect(second.status).toBe(409);
    expect(second.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(second.json).toMatchObject({ type: 'urn:tandem:error:callback-used', status: 409 });
    // The second call changed nothing.
    expect((await s.engine.getInstance(instanceId)).output).toEqual({
      answer: { shipped: true, tracking: 'TRK-1' },
    });
    const { waits } = (await s.request(`/api/instances/${instanceId}`, { headers: admin })).json;
    expect(waits).toEqual([
      expect.objectContaining({ name: 'shipment', kind: 'callback', resolution: 'callback' }),
    ]);
  });

  it('answers 404 for an unknown callback, 410 for an expired one; no body reads as null', async () => {
    const expiring = partnerCall(300);
    const lasting = partnerCall();
    server = await testServer(
      [expiring.integration, { ...lasting.integration, id: 'lasting' }],
      { adminToken: ADMIN_TOKEN },
      { storeKind },
    );
    const s = server;
    const late = await s.engine.accept('partner-call', { k: 'late' });
    const url = await expiring.urlOf('late');
    // The timeout passes: the instance goes on without the answer.
    expect(await waitForStatus(s.engine, late.instanceId)).toMatchObject({
      status: 'succeeded',
      output: { answer: null },
    });
    const expired = await s.request(pathOf(url), { method: 'POST', json: { shipped: true } });
    expect(expired.status).toBe(410);
    expect(expired.json).toMatchObject({ type: 'urn:tandem:error:callback-expired', status: 410 });
    expect(typeof expired.json.expiredAt).toBe('string');

    const token = pathOf(url).slice('/callbacks/'.length);
    const [id, secret] = token.split('.') as [string, string];
    for (const unknown of [
      `${id}.${secret.slice(0, -2)}xx`,
      `${id}x.${secret}`,
      id,
      'not-a-token',
      `${id}.${secret}.more`,
    ]) {
      const res = await s.request(`/callbacks/${encodeURIComponent(unknown)}`, { method: 'POST', json: {} });
      expect(res.status, unknown).toBe(404);
      expect(res.json.type).toBe('urn:tandem:error:callback-not-found');
    }

    const { instanceId } = await s.engine.accept('lasting', { k: 'empty' });
    const emptyUrl = await lasting.urlOf('empty');
    await waitForStatus(s.engine, instanceId, ['waiting']);
    // A malformed body is refused before it reaches the callback, which stays unused.
    const malformed = await s.request(pathOf(emptyUrl), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"shipped":',
    });
    expect(malformed.status).toBe(400);
    expect(malformed.json.type).toBe('urn:tandem:error:malformed-json');
    expect((await s.engine.getInstance(instanceId)).status).toBe('waiting');
    const empty = await s.request(pathOf(emptyUrl), { method: 'POST' });
    expect(empty.status).toBe(202);
    expect(await waitForStatus(s.engine, instanceId)).toMatchObject({
      status: 'succeeded',
      output: { answer: null },
    });
    // A JSON content type without a body reads as null too (a partner's bare notification).
    const bare = await s.engine.accept('lasting', { k: 'bare' });
    const bareUrl = await lasting.urlOf('bare');
    await waitForStatus(s.engine, bare.instanceId, ['waiting']);
    const noBytes = await s.request(pathOf(bareUrl), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '',
    });
    expect(noBytes.status).toBe(202);
    expect(await waitForStatus(s.engine, bare.instanceId)).toMatchObject({ output: { answer: null } });
  });
});

describe('waits over HTTP', () => {
  it('never logs the secret of a callback URL; the line names the callback by its id', async () => {
    const lines: string[] = [];
    const sink = { write: (line: string) => lines.push(line) };
    const logger = pino({ level: 'trace' }, sink);
    const { integration, urlOf } = partnerCall();
    server = await testServer([integration], { adminToken: ADMIN_TOKEN, logger }, { logger });
    const s = server;
    const { instanceId } = await s.engine.accept('partner-call', { k: 'A' });
    const url = await urlOf('A');
    await waitForStatus(s.engine, instanceId, ['waiting']);
    const [id, secret] = pathOf(url).slice('/callbacks/'.length).split('.') as [string, string];
    expect(secret.length).toBeGreaterThan(20);
    expect((await s.request(`${pathOf(url)}?x=1`, { method: 'POST', json: { ok: 1 } })).status).toBe(202);
    expect((await s.request(pathOf(url), { method: 'POST', json: { ok: 2 } })).status).toBe(409);
    expect((await s.request(`/callbacks/${id}.${secret}x`, { method: 'POST', json: {} })).status).toBe(404);
    expect((await s.request(`/callbacks/${id}.${secret}`, { method: 'POST', body: 'nope' })).status).toBe(
      415,
    );
    await waitForStatus(s.engine, instanceId);
    await s.app.close();
    const log = lines.join('');
    // Logging was on, and named each answer by the callback's id.
    expect(log).toContain('callback answered');
    expect(lines.filter((l) => l.includes(`/callbacks/${id}.***`)).length).toBeGreaterThanOrEqual(3);
    expect(log).toContain('"status":409');
    expect(log).not.toContain(secret);
    expect(log).not.toContain(secret.slice(0, 16));
  });

  it('the detail shows the waits and the version; the instance lists show the version', async () => {
    server = await testServer([waiter], { adminToken: ADMIN_TOKEN });
    const s = server;
    const { instanceId } = await s.engine.accept('waiter', { k: 'D' });
    const waiting = await waitForStatus(s.engine, instanceId, ['waiting']);
    const res = await s.request(`/api/instances/${instanceId}`, { headers: admin });
    expect(res.status).toBe(200);
    expect(instanceDetailSchema.safeParse(res.json).success).toBe(true);
    expect(res.json.instance).toMatchObject({ status: 'waiting', version: '2', runAt: waiting.runAt });
    expect(res.json.waits).toEqual([
      {
        run: 1,
        name: 'w',
        kind: 'event',
        event: 'e',
        match: { k: 'D' },
        createdAt: expect.any(Number),
        until: null,
        resolvedAt: null,
        resolution: null,
        eventId: null,
      },
    ]);
    const list = await s.request('/api/instances', { headers: admin });
    expect(list.json.items[0]).toMatchObject({ id: instanceId, version: '2', status: 'waiting' });
    await s.request('/api/events', {
      method: 'POST',
      headers: admin,
      json: { name: 'e', payload: { k: 'D' }, id: 'd-1' },
    });
    await waitForStatus(s.engine, instanceId);
    const after = await s.request(`/api/instances/${instanceId}`, { headers: admin });
    expect(after.json.waits[0]).toMatchObject({
      resolution: 'event',
      eventId: 'd-1',
      resolvedAt: expect.any(Number),
    });
  });

  it("masks a redacted field's value in a wait's match", async () => {
    const secretive = defineIntegration({
      id: 'secretive',
      mode: 'async',
      input: z.object({ iban: z.string() }),
      redact: ['iban'],
      async handler(ctx) {
        return ctx.waitForEvent('booked', { event: 'payment.booked', match: { iban: ctx.input.iban } });
      },
    });
    server = await testServer([secretive], { adminToken: ADMIN_TOKEN });
    const s = server;
    const { instanceId } = await s.engine.accept('secretive', { iban: 'DE89370400440532013000' });
    await waitForStatus(s.engine, instanceId, ['waiting']);
    const res = await s.request(`/api/instances/${instanceId}`, { headers: admin });
    expect(res.json.waits[0].match).toEqual({ iban: '[redacted]' });
    expect(res.text).not.toContain('DE89370400440532013000');
  });

  it('does not count waiting instances as queue depth: they hold back no trigger', async () => {
    const intake = defineIntegration({
      id: 'intake',
      mode: 'async',
      route: 'POST /intake',
      handler: () => 'ok',
    });
    server = await testServer([waiter, intake], {
      adminToken: ADMIN_TOKEN,
      maxQueueDepth: 2,
      queueDepthRefreshMs: 20,
    });
    const s = server;
    for (const k of ['A', 'B', 'C']) {
      const { instanceId } = await s.engine.accept('waiter', { k });
      await waitForStatus(s.engine, instanceId, ['waiting']);
    }
    // Past a refresh of the gauge, the three waiting instances are still no backlog.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const res = await s.request('/intake', { method: 'POST', json: {} });
    expect(res.status).toBe(202);
  });

  it('cancels a waiting instance through the API', async () => {
    server = await testServer([waiter], { adminToken: ADMIN_TOKEN });
    const s = server;
    const { instanceId } = await s.engine.accept('waiter', { k: 'C' });
    await waitForStatus(s.engine, instanceId, ['waiting']);
    const res = await s.request(`/api/instances/${instanceId}/cancel`, { method: 'POST', headers: admin });
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ instanceId, status: 'cancelled' });
    expect((await s.engine.getInstance(instanceId)).status).toBe('cancelled');
  });

  it('the OpenAPI document describes POST /api/events and POST /callbacks/{token}', async () => {
    server = await testServer([waiter], { adminToken: ADMIN_TOKEN }, { worker: false });
    const doc = (await server.request('/openapi.json')).json;
    const validator = new Validator();
    const result = await validator.validate(doc);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    const events = doc.paths['/api/events'].post;
    expect(events.security).toEqual([{ adminToken: ['admin'] }]);
    expect(Object.keys(events.responses).sort()).toEqual(['202', '400', '401', '403']);
    expect(events.requestBody.content['application/json'].schema.required).toEqual(['name']);
    const callback = doc.paths['/callbacks/{token}'].post;
    expect(callback.security).toEqual([]);
    expect(callback.parameters).toEqual([expect.objectContaining({ name: 'token', in: 'path' })]);
    expect(Object.keys(callback.responses).sort()).toEqual(['202', '400', '404', '409', '410']);
    const detail = doc.paths['/api/instances/{id}'].get.responses['200'].content['application/json'].schema;
    expect(Object.keys(detail.properties)).toContain('waits');
  });

  it('callback URLs begin with the configured public URL, or TANDEM_PUBLIC_URL', async () => {
    const base = await testEngine([waiter], { worker: false });
    try {
      const app = await buildApp({
        engine: base.engine,
        adminToken: null,
        publicUrl: 'https://tandem.example.com/',
      });
      await app.listen({ port: 0, host: '127.0.0.1' });
      // Named: where it listens does not replace it.
      expect(base.engine.publicUrl).toBe('https://tandem.example.com');
      await app.close();
      process.env.TANDEM_PUBLIC_URL = 'https://env.example.com/tandem';
      try {
        const fromEnv = await buildApp({ engine: base.engine, adminToken: null });
        expect(base.engine.publicUrl).toBe('https://env.example.com/tandem');
        await fromEnv.close();
        process.env.TANDEM_PUBLIC_URL = 'ftp://nope';
        await expect(buildApp({ engine: base.engine, adminToken: null })).rejects.toThrow(
          /TANDEM_PUBLIC_URL/,
        );
      } finally {
        delete process.env.TANDEM_PUBLIC_URL;
      }
    } finally {
      await base.close();
    }
    expect(() => defineConfig({ integrations: [], server: { publicUrl: 'tandem.example.com' } })).toThrow(
      InvalidDefinitionError,
    );
    expect(() => defineConfig({ integrations: [], server: { publicUrl: 'https://x.example/?a=1' } })).toThrow(
      /server\.publicUrl/,
    );
    expect(
      defineConfig({ integrations: [], server: { publicUrl: 'https://x.example/t' } }).server?.publicUrl,
    ).toBe('https://x.example/t');
  });

  it('refuses a trigger route under /callbacks', async () => {
    const clash = defineIntegration({
      id: 'clash',
      mode: 'sync',
      route: 'POST /callbacks/x',
      handler: () => 1,
    });
    const base = await testEngine([clash], { worker: false });
    try {
      await expect(buildApp({ engine: base.engine, adminToken: null })).rejects.toThrow(/\/callbacks/);
    } finally {
      await base.close();
    }
  });
});
