/**
 * The management API is served and documented from one route table (src/server/api/routes.ts),
 * and a route registered from it refuses bad requests exactly as the hand-written routes did.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineIntegration } from '../../src/define/integration.js';
import { API_ROUTES } from '../../src/server/api/routes.js';
import { type TestServer, testServer } from '../support/server.js';

const ship = defineIntegration({
  id: 'ship',
  mode: 'async',
  input: z.object({ orderId: z.string() }),
  handler: () => 'shipped',
});

let server: TestServer;
let doc: any;
beforeAll(async () => {
  server = await testServer([ship], {}, { worker: false });
  doc = (await server.request('/openapi.json')).json;
});
afterAll(async () => {
  await server.close();
});

const json = { 'content-type': 'application/json' };

describe('the /api route table', () => {
  it('is what the server serves and what the document describes, route for route', async () => {
    const documented = Object.entries<any>(doc.paths)
      .filter(([path]) => path.startsWith('/api/'))
      .flatMap(([path, methods]) => Object.keys(methods).map((method) => `${method.toUpperCase()} ${path}`));
    const declared = Object.values(API_ROUTES).map(
      (route) => `${route.method} /api${route.url.replace(/:(\w+)/g, '{$1}')}`,
    );
    expect(documented.sort()).toEqual(declared.sort());
    for (const [operationId, route] of Object.entries(API_ROUTES)) {
      const path = `/api${route.url.replace(/:(\w+)/g, '{$1}')}`;
      expect(doc.paths[path][route.method.toLowerCase()].operationId).toBe(operationId);
      // Served: neither "no route" (404 route-not-found) nor "wrong method" (405).
      const url = `/api${route.url.replace(/:(\w+)/g, 'none')}`;
      const res = await server.request(route.url === '/activity' ? `${url}?status=nope` : url, {
        method: route.method,
      });
      expect(res.status, `${route.method} ${url}`).not.toBe(405);
      expect(res.json?.type ?? '', `${route.method} ${url}`).not.toBe('urn:tandem:error:route-not-found');
    }
  });

  it('tells a missing body from a JSON null, and reads both as {} where the body is optional', async () => {
    const missing = await server.request('/api/instances/rerun', { method: 'POST' });
    expect(missing.status).toBe(400);
    expect(missing.json.errors).toEqual([
      { in: 'body', path: '', message: 'Invalid input: expected object, received undefined' },
    ]);
    const nullBody = await server.request('/api/instances/rerun', {
      method: 'POST',
      headers: json,
      body: 'null',
    });
    expect(nullBody.status).toBe(400);
    expect(nullBody.json.errors).toEqual([
      { in: 'body', path: '', message: 'Invalid input: expected object, received null' },
    ]);
    // The rerun of one instance takes its options from an optional body: the instance is looked up.
    for (const init of [{ method: 'POST' }, { method: 'POST', headers: json, body: 'null' }]) {
      const res = await server.request('/api/instances/none/rerun', init);
      expect(res.status).toBe(404);
      expect(res.json.type).toBe('urn:tandem:error:instance-not-found');
    }
  });

  it('names every failing field of a part in one 400, with its place, and validates params before the body', async () => {
    const query = await server.request('/api/instances?limit=0&status=nope&zz=1');
    expect(query.status).toBe(400);
    expect(query.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(query.json.errors).toEqual([
      { in: 'query', path: 'status', message: 'Invalid input' },
      { in: 'query', path: 'limit', message: 'Too small: expected number to be >=1' },
      { in: 'query', path: '', message: 'Unrecognized key: "zz"' },
    ]);
    const both = await server.request('/api/instances//rerun', {
      method: 'POST',
      json: { from: 'nowhere' },
    });
    expect(both.status).toBe(400);
    expect(both.json.errors).toEqual([
      { in: 'params', path: 'id', message: 'Too small: expected string to have >=1 characters' },
    ]);
    const run = await server.request('/api/integrations/ship/run', { method: 'POST', json: { orderId: 1 } });
    expect(run.json.errors).toEqual([
      { in: 'body', path: 'orderId', message: 'Invalid input: expected string, received number' },
    ]);
    expect(server.counts().instances).toBe(0);
  });
});
