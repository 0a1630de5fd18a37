/**
 * HTTP fuzzing from the OpenAPI document: a live server with user triggers publishes
 * `/openapi.json`; for every path and method, requests are generated from its JSON schemas (valid
 * bodies, parameters and queries) and from mutations of them (wrong types, random JSON, malformed
 * text, wrong content types, odd parameter strings). Every answer must be either documented or a
 * 4xx, every error is problem+json, the server stays up, and a refused request changes nothing
 * stored.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineIntegration } from '../../src/define/integration.js';
import { type TestServer, testServer } from '../support/server.js';

const ADMIN = 'fuzz-admin-token-0123456789';
const KEY = 'fuzz-trigger-key-0123456789';

const placeOrder = defineIntegration({
  id: 'place-order',
  mode: 'sync',
  route: 'POST /shops/:shopId/orders',
  params: z.object({ shopId: z.string().regex(/^[a-z]{1,12}$/) }),
  query: z.object({
    dryRun: z.enum(['true', 'false']).optional(),
    page: z.coerce.number().int().min(1).optional(),
  }),
  input: z.object({
    orderId: z.string().min(1).max(40),
    lines: z.array(z.object({ sku: z.string(), qty: z.number().int().positive() })).max(20),
    note: z.string().optional(),
  }),
  handler: async (ctx) => {
    ctx.start('ship', { orderId: ctx.input.orderId, parcels: ctx.input.lines.length });
    return { ok: true };
  },
});
const ship = defineIntegration({
  id: 'ship',
  mode: 'async',
  route: 'POST /shipments',
  input: z.object({
    orderId: z.string(),
    parcels: z.number().int().min(0).max(1_000),
    express: z.boolean().optional(),
  }),
  track: { orderId: 'orderId' },
  handler: () => 'shipped',
});
const keyed = defineIntegration({
  id: 'keyed',
  mode: 'async',
  route: 'PUT /customers',
  auth: { type: 'api-key', keys: [KEY] },
  input: z.object({
    name: z.string(),
    tier: z.enum(['gold', 'silver']),
    tags: z.array(z.string()).optional(),
  }),
  handler: () => 'ok',
});
const lookup = defineIntegration({
  id: 'lookup',
  mode: 'sync',
  route: 'GET /stock/:sku',
  query: z.object({ warehouse: z.string().optional() }),
  handler: (ctx) => ({ sku: ctx.params.sku, qty: 3 }),
});
const nightly = defineIntegration({
  id: 'nightly',
  mode: 'scheduled',
  cron: '0 3 * * *',
  handler: () => 'done',
});

let server: TestServer;
let doc: any;
beforeAll(async () => {
  server = await testServer(
    [placeOrder, ship, keyed, lookup, nightly],
    { adminToken: ADMIN },
    { worker: false },
  );
  doc = (await server.request('/openapi.json')).json;
});
afterAll(async () => {
  await server.close();
});

function resolve(schema: any): any {
  let node = schema;
  for (let depth = 0; node?.$ref && depth < 10; depth++) {
    node = node.$ref
      .slice(2)
      .split('/')
      .reduce((at: any, part: string) => at?.[part.replace(/~1/g, '/').replace(/~0/g, '~')], doc);
  }
  return node ?? {};
}

/** Values that a JSON schema accepts (the common keywords; anything else falls back to any JSON). */
function fromSchema(input: any, depth = 0): fc.Arbitrary<unknown> {
  const schema = resolve(input);
  if (depth > 4) return fc.constant(null);
  if (schema.const !== undefined) return fc.constant(schema.const);
  if (Array.isArray(schema.enum)) return fc.constantFrom(...schema.enum);
  for (const key of ['anyOf', 'oneOf'] as const) {
    if (Array.isArray(schema[key])) return fc.oneof(...schema[key].map((s: any) => fromSchema(s, depth + 1)));
  }
  if (Array.isArray(schema.allOf) && schema.allOf.length === 1) return fromSchema(schema.allOf[0], depth + 1);
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  switch (type) {
    case 'string':
      if (schema.pattern) return fc.stringMatching(new RegExp(schema.pattern));
      if (schema.format === 'date-time') return fc.date({ noInvalidDate: true }).map((d) => d.toISOString());
      return fc.string({ minLength: schema.minLength ?? 0, maxLength: Math.min(schema.maxLength ?? 30, 30) });
    case 'integer':
      return fc.integer({
        min: Math.ceil(schema.minimum ?? (schema.exclusiveMinimum ?? -1e6 - 1) + 1),
        max: Math.floor(schema.maximum ?? (schema.exclusiveMaximum ?? 1e6 + 1) - 1),
      });
    case 'number':
      return fc.double({
        min: schema.minimum ?? -1e6,
        max: schema.maximum ?? 1e6,
        noNaN: true,
        noDefaultInfinity: true,
      });
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    case 'array':
      return fc.array(fromSchema(schema.items ?? {}, depth + 1), {
        minLength: schema.minItems ?? 0,
        maxLength: Math.min(schema.maxItems ?? 4, 4),
      });
    case 'object': {
      const properties = Object.entries<any>(schema.properties ?? {});
      const required = new Set<string>(schema.required ?? []);
      return fc.record(
        Object.fromEntries(properties.map(([key, value]) => [key, fromSchema(value, depth + 1)])),
        { requiredKeys: properties.map(([key]) => key).filter((key) => required.has(key)) },
      );
    }
    default:
      return fc.jsonValue({ maxDepth: 2 });
  }
}

const oddStrings = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.constantFrom(
    '..',
    '%2e%2e',
    '%00',
    '%',
    '%ZZ',
    'a/b',
    '__proto__',
    'constructor',
    ' ',
    '☃',
    '\u202e',
    'x'.repeat(3000),
  ),
);

interface Operation {
  method: string;
  path: string;
  op: any;
}

function requestFor({ method, path, op }: Operation) {
  const parameters: any[] = op.parameters ?? [];
  const pathParams = parameters.filter((p) => p.in === 'path');
  const queryParams = parameters.filter((p) => p.in === 'query');
  const bodySchema = op.requestBody?.content?.['application/json']?.schema;
  const valid = fc.boolean();
  const params = fc.tuple(
    ...pathParams.map((p) =>
      fc.oneof(fromSchema(p.schema ?? {}).map(String), oddStrings, fc.constantFrom(...knownIds())),
    ),
  );
  const query = fc.tuple(
    ...queryParams.map((p) =>
      fc.option(
        fc.oneof(
          fromSchema(p.schema ?? {}).map((v) => (typeof v === 'string' ? v : JSON.stringify(v))),
          oddStrings,
        ),
        {
          nil: undefined,
        },
      ),
    ),
  );
  const extraQuery = fc.option(fc.tuple(oddStrings, oddStrings), { nil: undefined });
  const body = bodySchema
    ? fc.oneof(
        {
          weight: 4,
          arbitrary: fromSchema(bodySchema).map((v) => ({
            text: JSON.stringify(v),
            type: 'application/json',
          })),
        },
        {
          weight: 2,
          arbitrary: fc
            .jsonValue({ maxDepth: 3 })
            .map((v) => ({ text: JSON.stringify(v), type: 'application/json' })),
        },
        {
          weight: 1,
          arbitrary: fc.string({ maxLength: 40 }).map((text) => ({ text, type: 'application/json' })),
        },
        {
          weight: 1,
          arbitrary: fc
            .tuple(
              fc.constantFrom('text/plain', 'application/xml', 'application/x-www-form-urlencoded', ''),
              fc.string(),
            )
            .map(([type, text]) => ({ text, type })),
        },
      )
    : fc.option(
        fc.jsonValue({ maxDepth: 2 }).map((v) => ({ text: JSON.stringify(v), type: 'application/json' })),
        {
          nil: undefined,
        },
      );
  const auth = fc.constantFrom('admin', 'admin', 'admin', 'key', 'none', 'wrong');
  return fc.record({ valid, params, query, extraQuery, body, auth }).map((r) => {
    let url = path.replace(/\{(\w+)\}/g, (_, name) => {
      const index = pathParams.findIndex((p) => p.name === name);
      return encodeURIComponent(String(r.params[index] ?? 'x'));
    });
    const search = new URLSearchParams();
    queryParams.forEach((p, i) => {
      const value = r.query[i];
      if (value !== undefined) search.append(p.name, value);
    });
    if (r.extraQuery) search.append(r.extraQuery[0], r.extraQuery[1]);
    if ([...search].length > 0) url += `?${search}`;
    const headers: Record<string, string> = {};
    if (r.auth === 'admin') headers.authorization = `Bearer ${ADMIN}`;
    if (r.auth === 'key') headers['x-api-key'] = KEY;
    if (r.auth === 'wrong') headers.authorization = 'Bearer nope';
    if (r.body && method !== 'GET') {
      if (r.body.type) headers['content-type'] = r.body.type;
      return { method, url, headers, body: r.body.text as string | undefined, op };
    }
    return { method, url, headers, body: undefined, op };
  });
}

const ids: string[] = [];
const knownIds = () => (ids.length > 0 ? ids.slice(-5) : ['none-yet']);

async function storedState(): Promise<string> {
  const counts = await Promise.all(
    (['queued', 'running', 'retrying', 'succeeded', 'failed', 'cancelled'] as const).map((status) =>
      server.store.countInstances({ integrationId: ['ship', 'keyed', 'nightly'], status }),
    ),
  );
  return counts.join(',');
}

describe('HTTP fuzzing from /openapi.json', () => {
  it('every route and method: documented answers or 4xx, problem+json errors, nothing stored when refused', async () => {
    const operations: Operation[] = Object.entries<any>(doc.paths).flatMap(([path, methods]) =>
      Object.entries<any>(methods).map(([method, op]) => ({ method: method.toUpperCase(), path, op })),
    );
    expect(operations.length).toBeGreaterThanOrEqual(15);
    const statuses: Record<string, number> = {};
    const seenOperations = new Set<string>();
    let sent = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...operations).chain((operation) => requestFor(operation)),
        async (request) => {
          const before = await storedState();
          const response = await fetch(server.url + request.url, {
            method: request.method,
            headers: request.headers,
            body: request.body ?? null,
          });
          sent++;
          seenOperations.add(`${request.method} ${request.op.operationId}`);
          const type = response.headers.get('content-type') ?? '';
          const what = `${request.method} ${request.url} → ${response.status}`;
          if (type.startsWith('text/event-stream')) {
            await response.body?.cancel();
          } else {
            const text = await response.text();
            if (response.status >= 400) {
              expect(type, what).toMatch(/^application\/problem\+json/);
              const problem = JSON.parse(text);
              expect(problem.status, what).toBe(response.status);
              expect(problem.type, what).toMatch(/^urn:tandem:error:/);
            }
            if (response.status === 202) ids.push(JSON.parse(text).instanceId);
          }
          statuses[response.status] = (statuses[response.status] ?? 0) + 1;
          if (response.status >= 500) {
            expect(Object.keys(request.op.responses ?? {}), `${what}: an undocumented 5xx`).toContain(
              String(response.status),
            );
            expect(request.op.tags, `${what}: 5xx only from sync deadlines and downstreams`).toContain(
              'sync triggers',
            );
          }
          if (response.status >= 400)
            expect(await storedState(), `${what} changed what is stored`).toBe(before);
        },
      ),
      { numRuns: 2_500, interruptAfterTimeLimit: 20_000, markInterruptAsFailure: false },
    );
    expect(sent).toBeGreaterThan(200);
    // Every operation was exercised, and both acceptances and refusals were seen.
    expect(seenOperations.size).toBe(operations.length);
    expect(Object.keys(statuses).some((s) => s.startsWith('2'))).toBe(true);
    expect(Object.keys(statuses).some((s) => s.startsWith('4'))).toBe(true);
    expect((await server.request('/healthz')).status).toBe(200);
    if (process.env.TANDEM_FIGURES) {
      console.log(
        `figures openapi-fuzz ${JSON.stringify({ operations: operations.length, sent, statuses })}`,
      );
    }
  }, 60_000);
});
