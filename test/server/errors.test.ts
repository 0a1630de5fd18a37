import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineIntegration } from '../../src/define/integration.js';
import { type TestServer, testServer } from '../support/server.js';

const intake = defineIntegration({
  id: 'intake',
  mode: 'async',
  route: 'POST /intake',
  input: z.object({ name: z.string() }).passthrough(),
  handler: () => 'ok',
});
const echo = defineIntegration({
  id: 'echo',
  mode: 'sync',
  route: 'PUT /echo/:id',
  handler: (ctx) => ({ body: { id: ctx.params.id, input: ctx.input } }),
});

let server: TestServer;
beforeAll(async () => {
  server = await testServer([intake, echo], {}, { worker: false });
});
afterAll(async () => {
  await server.close();
});

function expectProblem(res: { status: number; headers: Headers; json: any }, status: number, code: string) {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toBe('application/problem+json; charset=utf-8');
  expect(res.json).toMatchObject({ type: `urn:tandem:error:${code}`, status });
  expect(res.json.title).toBeTypeOf('string');
}

const post = (body: string, contentType = 'application/json') =>
  server.request('/intake', { method: 'POST', body, headers: { 'content-type': contentType } });

describe('problem+json for every refusal', () => {
  it('404 for an unknown path, 405 with Allow for a wrong method', async () => {
    expectProblem(await server.request('/nowhere'), 404, 'route-not-found');
    const wrong = await server.request('/intake', { method: 'GET' });
    expectProblem(wrong, 405, 'method-not-allowed');
    expect(wrong.headers.get('allow')).toBe('POST');
    const param = await server.request('/echo/42', { method: 'POST', body: '{}' });
    expectProblem(param, 405, 'method-not-allowed');
    expect(param.headers.get('allow')).toBe('PUT');
    expectProblem(await server.request('/api/instances', { method: 'DELETE' }), 405, 'method-not-allowed');
  });

  it('413 above the default body limit of 1 MiB, and below it a normal answer', async () => {
    const fits = JSON.stringify({ name: 'x'.repeat(1024 * 1024 - 20) });
    expect(Buffer.byteLength(fits)).toBeLessThanOrEqual(1024 * 1024);
    const ok = await server.request('/echo/1', {
      method: 'PUT',
      body: fits,
      headers: { 'content-type': 'application/json' },
    });
    expect(ok.status).toBe(200);
    expectProblem(await post(JSON.stringify({ name: 'x'.repeat(1024 * 1024) })), 413, 'payload-too-large');
  });

  it('413 above a configured body limit', async () => {
    const small = await testServer([intake], { bodyLimit: 100 }, { worker: false });
    try {
      const res = await small.request('/intake', { method: 'POST', json: { name: 'x'.repeat(200) } });
      expectProblem(res, 413, 'payload-too-large');
    } finally {
      await small.close();
    }
  });

  it('415 for a body that is not JSON, or JSON in another charset', async () => {
    expectProblem(await post('name=x', 'application/x-www-form-urlencoded'), 415, 'unsupported-media-type');
    expectProblem(await post('{"name":"x"}', 'text/plain'), 415, 'unsupported-media-type');
    expectProblem(
      await post('{"name":"x"}', 'application/json; charset=latin1'),
      415,
      'unsupported-media-type',
    );
    expect((await post('{"name":"x"}', 'application/json; charset=UTF-8')).status).toBe(202);
    expect((await post('{"name":"x"}', 'application/vnd.shop.order+json')).status).toBe(202);
    // On an async trigger, this +json type says the body is a CloudEvent: one without its attributes is refused.
    expectProblem(await post('{"name":"x"}', 'application/cloudevents+json'), 400, 'invalid-cloudevent');
  });

  it('400 for malformed or empty JSON', async () => {
    expectProblem(await post('{"name": "x",}'), 400, 'malformed-json');
    expectProblem(await post(''), 400, 'malformed-json');
    expectProblem(await post('   '), 400, 'malformed-json');
  });

  it('400 for __proto__ and constructor.prototype keys, which never reach an object prototype', async () => {
    const proto = await post('{"name":"x","__proto__":{"polluted":true}}');
    expectProblem(proto, 400, 'forbidden-key');
    expect(proto.json.errors).toEqual([expect.objectContaining({ in: 'body', path: '__proto__' })]);
    const escaped = await post('{"name":"x","a":{"\\u005f_proto__":{"polluted":true}}}');
    expectProblem(escaped, 400, 'forbidden-key');
    expect(escaped.json.errors[0].path).toBe('a.__proto__');
    expectProblem(
      await post('{"name":"x","constructor":{"prototype":{"polluted":true}}}'),
      400,
      'forbidden-key',
    );
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    // A key named constructor is ordinary data.
    expect((await post('{"name":"x","constructor":"Ada"}')).status).toBe(202);
  });

  it('400 for a body nested deeper than the limit', async () => {
    const deep = (levels: number) => `{"name":"x","n":${'['.repeat(levels)}${']'.repeat(levels)}}`;
    expect((await post(deep(60))).status).toBe(202);
    const res = await post(deep(100));
    expectProblem(res, 400, 'body-too-deep');
    expect(res.json.maxDepth).toBe(64);
    // Brackets inside strings are not nesting.
    expect((await post(JSON.stringify({ name: '['.repeat(500) }))).status).toBe(202);
  });
});
