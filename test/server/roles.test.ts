/**
 * Roles on the management API: every route of the route table tried without a token, with a
 * trigger key and with a token of each role (the list comes from the table, so a new route cannot
 * be missed), the bodies a viewer does not see, the actor recorded in the events a change writes
 * (on both stores), the console session in a token's role, and the configuration of tokens.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineConfig } from '../../src/define/config.js';
import { defineIntegration } from '../../src/define/integration.js';
import type { Role } from '../../src/model.js';
import { BODY_HIDDEN } from '../../src/server/api/access.js';
import { API_ROUTES } from '../../src/server/api/routes.js';
import { buildApp } from '../../src/server/app.js';
import { managementTokens } from '../../src/server/tokens.js';
import { STORE_KINDS, testEngine, waitForStatus } from '../support/engine.js';
import { type TestServer, testServer } from '../support/server.js';

const ADMIN = 'admin-token-roles-5b8e2d71c4';
const OPERATOR = 'operator-token-roles-9f1a3c';
const VIEWER = 'viewer-token-roles-2e7d4b10';
const VIEWER_BODIES = 'viewer-bodies-token-6c3f8a2e';
const TRIGGER_KEY = 'trigger-key-roles-0d9e8f7a6b';

const TOKENS = [
  { name: 'ops-alice', role: 'operator' as const, token: OPERATOR },
  { name: 'audit-bob', role: 'viewer' as const, token: VIEWER },
  { name: 'audit-carol', role: 'viewer' as const, token: VIEWER_BODIES, bodies: true },
];

const orders = defineIntegration({
  id: 'orders',
  mode: 'async',
  route: 'POST /orders',
  auth: { type: 'api-key', keys: [TRIGGER_KEY] },
  input: z.object({ orderId: z.string(), secretNote: z.string().optional() }),
  retry: { maxAttempts: 1 },
  handler: async (ctx) => {
    await ctx.step('book', () => ({ booked: ctx.input.orderId }));
    throw new Error('the warehouse said no');
  },
});
const lookup = defineIntegration({
  id: 'lookup',
  mode: 'sync',
  route: 'GET /lookup',
  handler: () => ({ found: true }),
});

let server: TestServer | null = null;
afterEach(async () => {
  await server?.close();
  server = null;
});

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };
const CREDENTIALS = [
  ['none', null, null],
  ['trigger key', TRIGGER_KEY, null],
  ['viewer', VIEWER, 'viewer'],
  ['operator', OPERATOR, 'operator'],
  ['admin', ADMIN, 'admin'],
] as const;

type RouteName = keyof typeof API_ROUTES;

/**
 * A request for each route: a `Record` over the table's names, so that a route added to the table
 * without one here does not compile. `{id}` is an instance or integration id filled in per test.
 */
const SAMPLES: Record<RouteName, { path: string; body?: unknown }> = {
  listIntegrations: { path: '/integrations' },
  getIntegrationPicture: { path: '/integrations/orders/picture' },
  runIntegration: { path: '/integrations/orders/run', body: { orderId: 'run-now' } },
  getIntegrationInput: { path: '/integrations/orders/input' },
  callIntegration: { path: '/integrations/lookup/call', body: {} },
  getOverview: { path: '/overview' },
  listInstances: { path: '/instances' },
  rerunInstances: { path: '/instances/rerun', body: { ids: ['{id}'] } },
  getInstance: { path: '/instances/{id}' },
  rerunInstance: { path: '/instances/{id}/rerun', body: {} },
  cancelInstance: { path: '/instances/{id}/cancel' },
  sendEvent: { path: '/events', body: { name: 'roles.test', payload: { x: 1 } } },
  followActivity: { path: '/activity?after=start' },
  decidePattern: {
    path: '/advisor/decide',
    body: { immediateResponse: true, finishesInSeconds: true, needsRerun: false },
  },
  listConnections: { path: '/connections' },
  listSchedules: { path: '/schedules' },
  listErrorGroups: { path: '/errors' },
  acknowledgeErrors: { path: '/errors/acknowledge', body: { ids: ['{id}'] } },
  acknowledgeInstance: { path: '/instances/{id}/acknowledge', body: {} },
  unacknowledgeInstance: { path: '/instances/{id}/unacknowledge' },
};

function start(storeKind: (typeof STORE_KINDS)[number] = 'sqlite') {
  return testServer([orders, lookup], { adminToken: ADMIN, tokens: TOKENS }, { storeKind });
}

/** Sends one route's sample; an event stream is ended as soon as its head arrives. */
async function call(name: RouteName, token: string | null, id: string, extra: Record<string, string> = {}) {
  const route = API_ROUTES[name];
  const sample = SAMPLES[name];
  const headers: Record<string, string> = { ...extra };
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let body: string | undefined;
  if (sample.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(sample.body).replaceAll('{id}', id);
  }
  const abort = new AbortController();
  const response = await fetch(`${server!.url}/api${sample.path.replace('{id}', id)}`, {
    method: route.method,
    headers,
    ...(body === undefined ? {} : { body }),
    signal: abort.signal,
  });
  const stream = response.headers.get('content-type')?.startsWith('text/event-stream') ?? false;
  const text = stream ? '' : await response.text();
  abort.abort();
  return { status: response.status, json: text === '' ? undefined : JSON.parse(text) };
}

async function failedInstance(): Promise<string> {
  const accepted = await server!.request('/orders', {
    method: 'POST',
    json: { orderId: 'A-1', secretNote: 'the customer is a VIP' },
    headers: { 'x-api-key': TRIGGER_KEY },
  });
  expect(accepted.status).toBe(202);
  const id: string = accepted.json.instanceId;
  await waitForStatus(server!.engine, id, ['failed']);
  return id;
}

describe('every /api route with each role and with none', () => {
  it('is refused without a token (401), with a trigger key (403) and with a lesser role (403, nothing stored); the role it needs and above pass the guard', async () => {
    // No worker: the store changes only by the requests (a refused one must leave it as it was).
    server = await testServer([orders, lookup], { adminToken: ADMIN, tokens: TOKENS }, { worker: false });
    const accepted = await server.request('/orders', {
      method: 'POST',
      json: { orderId: 'A-1' },
      headers: { 'x-api-key': TRIGGER_KEY },
    });
    const id: string = accepted.json.instanceId;
    const names = Object.keys(API_ROUTES) as RouteName[];
    expect(names.length).toBeGreaterThanOrEqual(20);
    for (const name of names) {
      const needed = API_ROUTES[name].role;
      for (const [who, token, role] of CREDENTIALS) {
        const what = `${API_ROUTES[name].method} ${API_ROUTES[name].url} as ${who} (needs ${needed})`;
        const before = server.counts();
        const answer = await call(name, token, id);
        if (role === null) {
          expect(answer.status, what).toBe(token === null ? 401 : 403);
          expect(server.counts(), what).toEqual(before);
        } else if (RANK[role] < RANK[needed]) {
          expect(answer.status, what).toBe(403);
          expect(answer.json.type, what).toBe('urn:tandem:error:forbidden');
          expect(answer.json.detail, what).toContain(`needs the ${needed} role`);
          expect(server.counts(), what).toEqual(before);
        } else {
          expect([401, 403], what).not.toContain(answer.status);
          if (API_ROUTES[name].method === 'GET') expect(answer.status, what).toBe(200);
        }
      }
    }
  });

  it('names in the route table a role for every route, and the OpenAPI document says it per operation', async () => {
    server = await start();
    const doc = (await server.request('/openapi.json')).json;
    for (const [name, route] of Object.entries(API_ROUTES)) {
      expect(['viewer', 'operator', 'admin'], name).toContain(route.role);
      const path = `/api${route.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}')}`;
      const operation = doc.paths[path][route.method.toLowerCase()];
      expect(operation.operationId).toBe(name);
      expect(operation['x-tandem-role'], name).toBe(route.role);
      expect(operation.security, name).toEqual([{ adminToken: [route.role] }]);
      expect(operation.description, name).toContain(`Needs the ${route.role} role`);
    }
    expect(API_ROUTES.sendEvent.role).toBe('admin');
    expect(API_ROUTES.cancelInstance.role).toBe('operator');
    expect(API_ROUTES.getInstance.role).toBe('viewer');
  });

  it('guards unknown /api paths for any role, and refuses a corrected input to an operator', async () => {
    server = await start();
    const id = await failedInstance();
    expect((await server.request('/api/no-such-route')).status).toBe(401);
    const unknown = await server.request('/api/no-such-route', {
      headers: { authorization: `Bearer ${VIEWER}` },
    });
    expect(unknown.status).toBe(404);
    const before = server.counts();
    const edited = await server.request(`/api/instances/${id}/rerun`, {
      method: 'POST',
      json: { input: { orderId: 'A-2' } },
      headers: { authorization: `Bearer ${OPERATOR}` },
    });
    expect(edited.status).toBe(403);
    expect(edited.json.detail).toContain('needs the admin role');
    expect(server.counts()).toEqual(before);
  });
});

describe('bodies', () => {
  it('are hidden from a viewer, shown to a viewer allowed them, to an operator and to an admin', async () => {
    server = await start();
    const id = await failedInstance();
    const as = (token: string, path: string) =>
      server!.request(path, { headers: { authorization: `Bearer ${token}` } });
    const hidden = await as(VIEWER, `/api/instances/${id}`);
    expect(hidden.status).toBe(200);
    expect(hidden.json.instance.input).toBe(BODY_HIDDEN);
    expect(hidden.json.runs.every((run: { input: unknown }) => run.input === BODY_HIDDEN)).toBe(true);
    expect(hidden.json.steps.length).toBeGreaterThan(0);
    expect(hidden.json.steps.every((step: { output: unknown }) => step.output === BODY_HIDDEN)).toBe(true);
    expect(hidden.text).not.toContain('VIP');
    expect(hidden.text).not.toContain('A-1"');
    // The state of the work stays readable: status, error, tracking.
    expect(hidden.json.instance.status).toBe('failed');
    expect(hidden.json.instance.error.message).toContain('the warehouse said no');
    const listed = await as(VIEWER, '/api/instances');
    expect(listed.json.items[0].input).toBe(BODY_HIDDEN);
    expect(listed.text).not.toContain('VIP');
    for (const token of [VIEWER_BODIES, OPERATOR, ADMIN]) {
      const shown = await as(token, `/api/instances/${id}`);
      expect(shown.json.instance.input).toEqual({ orderId: 'A-1', secretNote: 'the customer is a VIP' });
      expect(shown.json.steps[0].output).toEqual({ booked: 'A-1' });
    }
  });
});

describe.each(STORE_KINDS)('the actor of a change, on %s', (storeKind) => {
  it('is recorded with role and token name in the events of rerun, cancel, acknowledge, run and call', async () => {
    server = await start(storeKind);
    const id = await failedInstance();
    const post = (path: string, token: string, json: unknown = {}) =>
      server!.request(`/api${path}`, { method: 'POST', json, headers: { authorization: `Bearer ${token}` } });
    expect((await post(`/instances/${id}/acknowledge`, OPERATOR, { note: 'looked at it' })).status).toBe(200);
    expect((await post(`/instances/${id}/unacknowledge`, ADMIN)).status).toBe(200);
    expect((await post(`/instances/${id}/rerun`, OPERATOR)).status).toBe(200);
    expect((await post(`/instances/${id}/cancel`, OPERATOR)).status).toBe(200);
    expect((await post('/instances/rerun', ADMIN, { ids: [id], from: 'start' })).status).toBe(200);
    const events = (await server.engine.getDetail(id)).events;
    const data = (type: string) => events.filter((e) => e.type === type).map((e) => e.data.actor);
    const alice = { role: 'operator', tokenName: 'ops-alice' };
    const admin = { role: 'admin', tokenName: 'admin' };
    expect(data('acknowledged')).toEqual([alice]);
    expect(data('unacknowledged')).toEqual([admin]);
    expect(data('rerun')).toEqual([alice, admin]);
    expect(data('cancelled')).toEqual([alice]);
    // A trigger's accept names no actor.
    expect(data('accepted')).toEqual([undefined]);
    // As the API shows them: the token's name is not masked as a secret would be.
    const shown = await server.request(`/api/instances/${id}`, {
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    expect(
      (shown.json.events as { type: string; data: { actor?: unknown } }[])
        .filter((e) => e.type === 'rerun')
        .map((e) => e.data.actor),
    ).toEqual([alice, admin]);

    const run = await post('/integrations/orders/run?source=console', OPERATOR, { orderId: 'B-1' });
    expect(run.status).toBe(202);
    const runEvents = (await server.engine.getDetail(run.json.instanceId)).events;
    expect(runEvents.find((e) => e.type === 'accepted')?.data).toEqual({ source: 'console', actor: alice });

    const called = await post('/integrations/lookup/call', ADMIN, {});
    expect(called.status).toBe(200);
    const callEvents = (await server.engine.getDetail(called.json.instanceId)).events;
    expect(callEvents.find((e) => e.type === 'accepted')?.data).toEqual({ actor: admin });
  });
});

describe('the console session', () => {
  it('signs in with any role token and has its role on /api and in /console/session', async () => {
    server = await start();
    const id = await failedInstance();
    const signIn = await server.request('/console/sign-in', {
      method: 'POST',
      json: { token: VIEWER },
      headers: { 'sec-fetch-site': 'same-origin' },
    });
    expect(signIn.status).toBe(204);
    const cookie = signIn.headers.get('set-cookie')!.split(';')[0]!;
    expect(cookie).not.toContain(VIEWER);
    const headers = { cookie, 'sec-fetch-site': 'same-origin' };
    const session = await server.request('/console/session', { headers });
    expect(session.json).toEqual({
      signedIn: true,
      signInRequired: true,
      role: 'viewer',
      token: 'audit-bob',
      bodies: false,
    });
    expect((await server.request(`/api/instances/${id}`, { headers })).json.instance.input).toBe(BODY_HIDDEN);
    const before = server.counts();
    const refused = await server.request(`/api/instances/${id}/cancel`, { method: 'POST', headers });
    expect(refused.status).toBe(403);
    expect(server.counts()).toEqual(before);

    const operator = await server.request('/console/sign-in', {
      method: 'POST',
      json: { token: OPERATOR },
      headers: { 'sec-fetch-site': 'same-origin' },
    });
    const operatorCookie = operator.headers.get('set-cookie')!.split(';')[0]!;
    const asOperator = { cookie: operatorCookie, 'sec-fetch-site': 'same-origin' };
    expect((await server.request('/console/session', { headers: asOperator })).json.role).toBe('operator');
    const cancelled = await server.request(`/api/instances/${id}/cancel`, {
      method: 'POST',
      headers: asOperator,
    });
    expect(cancelled.status).toBe(200);
    const events = (await server.engine.getDetail(id)).events;
    expect(events.find((e) => e.type === 'cancelled')?.data.actor).toEqual({
      role: 'operator',
      tokenName: 'ops-alice',
    });
    // A cookie whose name was changed to another token's is refused (its MAC is keyed by the token).
    const [expires, , mac] = operatorCookie.split('=')[1]!.split('.');
    const renamed = `tandem_console=${expires}.${Buffer.from('admin').toString('base64url')}.${mac}`;
    const forged = await server.request('/api/events', {
      method: 'POST',
      json: { name: 'x' },
      headers: { cookie: renamed, 'sec-fetch-site': 'same-origin' },
    });
    expect(forged.status).toBe(401);
    // A trigger key is no sign-in.
    const key = await server.request('/console/sign-in', {
      method: 'POST',
      json: { token: TRIGGER_KEY },
      headers: { 'sec-fetch-site': 'same-origin' },
    });
    expect(key.status).toBe(401);
  });

  it('says the local server is an admin without a sign-in', async () => {
    server = await testServer([lookup], { adminToken: null });
    const session = await server.request('/console/session');
    expect(session.json).toEqual({
      signedIn: false,
      signInRequired: false,
      role: 'admin',
      token: null,
      bodies: true,
    });
  });
});

describe('configuring tokens', () => {
  it('takes tokens from the config, else TANDEM_OPERATOR_TOKEN and TANDEM_VIEWER_TOKEN', () => {
    const env = {
      TANDEM_OPERATOR_TOKEN: 'operator-from-env-123456',
      TANDEM_VIEWER_TOKEN: 'viewer-from-env-1234567',
    };
    expect(managementTokens({ adminToken: null }, env)).toEqual([
      { name: 'operator', role: 'operator', secret: 'operator-from-env-123456', bodies: true },
      { name: 'viewer', role: 'viewer', secret: 'viewer-from-env-1234567', bodies: false },
    ]);
    expect(managementTokens({ adminToken: ADMIN, tokens: TOKENS }, env).map((t) => t.name)).toEqual([
      'admin',
      'ops-alice',
      'audit-bob',
      'audit-carol',
    ]);
  });

  it('refuses two tokens with one name or one secret, a token that is a trigger key, and bad options', async () => {
    expect(() =>
      managementTokens({ adminToken: ADMIN, tokens: [{ name: 'admin', role: 'viewer', token: VIEWER }] }),
    ).toThrow(/Two management tokens are named "admin"/);
    expect(() =>
      managementTokens({
        adminToken: null,
        tokens: [
          { name: 'a', role: 'viewer', token: VIEWER },
          { name: 'b', role: 'operator', token: VIEWER },
        ],
      }),
    ).toThrow(/"a" and "b" have the same secret/);
    const t = await testEngine([orders], { worker: false });
    try {
      await expect(
        buildApp({
          engine: t.engine,
          adminToken: null,
          tokens: [{ name: 'ci', role: 'operator', token: TRIGGER_KEY }],
        }),
      ).rejects.toThrow(/The operator token "ci" is also an API key of "orders"/);
    } finally {
      await t.close();
    }
    const config = (server: unknown) => () => defineConfig({ integrations: [], server: server as never });
    expect(config({ tokens: [{ name: 'x', role: 'root', token: VIEWER }] })).toThrow(
      /server\.tokens\.0\.role/,
    );
    expect(config({ tokens: [{ name: 'x y', role: 'viewer', token: VIEWER }] })).toThrow(
      /server\.tokens\.0\.name/,
    );
    expect(config({ tokens: [{ name: 'x', role: 'viewer', token: 'short' }] })).toThrow(
      /at least 16 characters/,
    );
    expect(config({ tokens: [{ name: 'x', role: 'viewer', token: undefined }] })).toThrow(
      /server\.tokens\.0\.token/,
    );
    expect(config({ tokens: [{ name: 'x', role: 'viewer', token: VIEWER, bodies: true }] })).not.toThrow();
  });
});
