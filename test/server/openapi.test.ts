import { Validator } from '@seriousme/openapi-schema-validator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineIntegration } from '../../src/define/integration.js';
import { type TestServer, testServer } from '../support/server.js';

interface Category {
  name: string;
  children: Category[];
}
const category: z.ZodType<Category> = z.object({
  name: z.string(),
  get children() {
    return z.array(category);
  },
});

const placeOrder = defineIntegration({
  id: 'place-order',
  mode: 'sync',
  description: 'Confirm an order and hand fulfilment off',
  route: 'POST /shops/:shopId/orders',
  params: z.object({ shopId: z.string().regex(/^[a-z]+$/) }),
  query: z.object({ dryRun: z.enum(['true', 'false']).optional() }),
  input: z.object({
    orderId: z.string(),
    lines: z.array(z.object({ sku: z.string(), qty: z.number().int() })),
  }),
  handler: () => 'ok',
});
const syncCatalogue = defineIntegration({
  id: 'sync-catalogue',
  mode: 'async',
  route: 'POST /catalogue',
  auth: { type: 'api-key', header: 'x-shop-key', keys: ['k'] },
  input: category,
  handler: () => 'ok',
});
const paid = defineIntegration({
  id: 'paid',
  mode: 'async',
  route: 'POST /webhooks/paid',
  auth: { type: 'standard-webhooks', secret: `whsec_${Buffer.from('s3cret').toString('base64')}` },
  handler: () => 'ok',
});

let server: TestServer;
let doc: any;
beforeAll(async () => {
  server = await testServer([placeOrder, syncCatalogue, paid], { adminToken: 'tok' }, { worker: false });
  const res = await server.request('/openapi.json');
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^application\/json/);
  doc = res.json;
});
afterAll(async () => {
  await server.close();
});

function refsIn(node: unknown, found: string[] = []): string[] {
  if (Array.isArray(node)) for (const item of node) refsIn(item, found);
  else if (node && typeof node === 'object') {
    for (const [key, value] of Object.entries(node)) {
      if (key === '$ref' && typeof value === 'string') found.push(value);
      else refsIn(value, found);
    }
  }
  return found;
}

describe('/openapi.json', () => {
  it('is a valid OpenAPI 3.1 document whose references all resolve', async () => {
    const validator = new Validator();
    const result = await validator.validate(doc);
    expect(result.errors).toBeUndefined();
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
    const refs = refsIn(doc);
    expect(refs.length).toBeGreaterThan(0);
    for (const ref of refs) {
      expect(ref).toMatch(/^#\/components\/(schemas|responses)\//);
      const [, ...path] = ref.split('/');
      const target = path.reduce((node: any, part) => node?.[part], doc);
      expect(target, ref).toBeDefined();
    }
  });

  it('is checked by a validator that does refuse a broken document', async () => {
    const broken = structuredClone(doc);
    broken.paths['/catalogue'].post.responses = 'none';
    expect((await new Validator().validate(broken)).valid).toBe(false);
  });

  it('moves a recursive input schema into components so that its self-reference resolves', () => {
    const schema = doc.paths['/catalogue'].post.requestBody.content['application/json'].schema;
    expect(schema.properties.children.items).toEqual({
      $ref: '#/components/schemas/sync-catalogue.input.root',
    });
    expect(doc.components.schemas['sync-catalogue.input.root'].properties.name).toEqual({ type: 'string' });
  });

  it('describes each trigger from its zod schemas', () => {
    const op = doc.paths['/shops/{shopId}/orders'].post;
    expect(op.operationId).toBe('place-order');
    expect(op.summary).toBe('Confirm an order and hand fulfilment off');
    expect(op.parameters).toEqual([
      { name: 'shopId', in: 'path', required: true, schema: { type: 'string', pattern: '^[a-z]+$' } },
      { name: 'dryRun', in: 'query', required: false, schema: { type: 'string', enum: ['true', 'false'] } },
    ]);
    const body = op.requestBody.content['application/json'].schema;
    expect(body.required).toEqual(['orderId', 'lines']);
    expect(body.properties.lines.items.properties.qty.type).toBe('integer');
    expect(Object.keys(op.responses)).toEqual(
      expect.arrayContaining(['200', '400', '500', '502', '503', '504']),
    );

    const async = doc.paths['/catalogue'].post;
    expect(Object.keys(async.responses)).toEqual(
      expect.arrayContaining(['202', '400', '401', '403', '422', '429']),
    );
    expect(async.security).toEqual([{ 'sync-catalogue.apiKey': [] }]);
    expect(doc.components.securitySchemes['sync-catalogue.apiKey']).toEqual({
      type: 'apiKey',
      in: 'header',
      name: 'x-shop-key',
    });
    const signed = doc.paths['/webhooks/paid'].post.parameters.map((p: { name: string }) => p.name);
    expect(signed).toEqual(['webhook-id', 'webhook-timestamp', 'webhook-signature']);
  });

  it('describes the management API, guarded by the admin token', () => {
    for (const [path, method] of [
      ['/api/integrations', 'get'],
      ['/api/integrations/{id}/run', 'post'],
      ['/api/instances', 'get'],
      ['/api/instances/{id}', 'get'],
      ['/api/instances/{id}/rerun', 'post'],
      ['/api/instances/rerun', 'post'],
      ['/api/instances/{id}/cancel', 'post'],
      ['/healthz', 'get'],
    ] as const) {
      expect(doc.paths[path]?.[method], `${method} ${path}`).toBeDefined();
    }
    expect(doc.paths['/api/instances'].get.security).toEqual([{ adminToken: ['viewer'] }]);
    const filters = doc.paths['/api/instances'].get.parameters.map((p: { name: string }) => p.name);
    expect(filters).toEqual([
      'integration',
      'status',
      'tracking',
      'cloudEvent',
      'parent',
      'from',
      'to',
      'rerunSince',
      'limit',
      'cursor',
    ]);
    expect(doc.components.securitySchemes.adminToken).toMatchObject({ type: 'http', scheme: 'bearer' });
  });
});
