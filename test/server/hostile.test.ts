/**
 * A corpus of malformed and hostile requests. Each must be refused with a 4xx, the server must stay
 * up, and the store must be exactly as before: not one instance, run, step or event more.
 */
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineIntegration } from '../../src/define/integration.js';
import { rawRequest } from '../support/raw-http.js';
import { type TestServer, testServer } from '../support/server.js';

const ADMIN = 'hostile-admin-token-0123456789';
const KEY = 'hostile-trigger-key-0123456789';
const OTHER_KEY = 'hostile-other-key-0123456789';
const SECRET = `whsec_${Buffer.from('hostile-webhook-secret-0123456789').toString('base64')}`;

let calls = 0;
const intake = defineIntegration({
  id: 'intake',
  mode: 'async',
  route: 'POST /intake',
  input: z.object({ name: z.string().max(100), tags: z.array(z.string()).max(10).optional() }),
  handler: () => {
    calls++;
  },
});
const keyed = defineIntegration({
  id: 'keyed',
  mode: 'async',
  route: 'POST /keyed',
  auth: { type: 'api-key', keys: [KEY] },
  handler: () => {
    calls++;
  },
});
const other = defineIntegration({
  id: 'other',
  mode: 'async',
  route: 'POST /other',
  auth: { type: 'api-key', keys: [OTHER_KEY] },
  handler: () => {
    calls++;
  },
});
const hook = defineIntegration({
  id: 'hook',
  mode: 'async',
  route: 'POST /hook',
  auth: { type: 'standard-webhooks', secret: SECRET },
  handler: () => {
    calls++;
  },
});
const lookup = defineIntegration({
  id: 'lookup',
  mode: 'sync',
  route: 'GET /lookup/:sku',
  params: z.object({ sku: z.string().regex(/^[A-Z0-9-]{1,20}$/) }),
  query: z.object({ limit: z.coerce.number().int().max(50).optional() }),
  handler: () => {
    calls++;
    return 'found';
  },
});

let server: TestServer;
beforeAll(async () => {
  server = await testServer([intake, keyed, other, hook, lookup], { adminToken: ADMIN }, { worker: false });
});
afterAll(async () => {
  await server.close();
});

type Sent = { status: number; problem: boolean };
interface Case {
  name: string;
  send: () => Promise<Sent>;
  expect: number | number[];
}

const json = 'application/json';

function http(path: string, init: RequestInit = {}): () => Promise<Sent> {
  return async () => {
    const res = await server.request(path, init);
    return {
      status: res.status,
      problem: res.headers.get('content-type')?.includes('problem+json') ?? false,
    };
  };
}
const postJson = (path: string, body: string, headers: Record<string, string> = {}) =>
  http(path, { method: 'POST', body, headers: { 'content-type': json, ...headers } });
const admin = { authorization: `Bearer ${ADMIN}` };

function raw(text: string | Buffer): () => Promise<Sent> {
  return async () => {
    const res = await rawRequest(server.port, text);
    return { status: res.status, problem: res.head.toLowerCase().includes('application/problem+json') };
  };
}
const rawPost = (path: string, headers: string, body: string) =>
  raw(`POST ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${headers}\r\n${body}`);

function signedHeaders(body: string, secret = SECRET, at = new Date()) {
  return {
    'webhook-id': 'msg_hostile',
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': new Webhook(secret).sign('msg_hostile', at, body),
  };
}

const corpus: Case[] = [
  // Malformed JSON
  { name: 'unterminated object', send: postJson('/intake', '{'), expect: 400 },
  { name: 'truncated string', send: postJson('/intake', '{"name":"x'), expect: 400 },
  { name: 'trailing garbage', send: postJson('/intake', '{"name":"x"} trailing'), expect: 400 },
  { name: 'NaN literal', send: postJson('/intake', '{"name":NaN}'), expect: 400 },
  { name: 'single quotes', send: postJson('/intake', "{'name':'x'}"), expect: 400 },
  { name: 'comment', send: postJson('/intake', '{"name":"x" /* hi */}'), expect: 400 },
  { name: 'empty body', send: postJson('/intake', ''), expect: 400 },
  { name: 'only whitespace', send: postJson('/intake', ' \n\t '), expect: 400 },
  { name: 'lone surrogate escapes', send: postJson('/intake', '{"name":"\\ud800'), expect: 400 },
  // Schema violations
  { name: 'null body', send: postJson('/intake', 'null'), expect: 400 },
  { name: 'array body', send: postJson('/intake', '[{"name":"x"}]'), expect: 400 },
  { name: 'wrong type', send: postJson('/intake', '{"name":5}'), expect: 400 },
  {
    name: 'string too long',
    send: postJson('/intake', JSON.stringify({ name: 'x'.repeat(101) })),
    expect: 400,
  },
  {
    name: 'array too long',
    send: postJson('/intake', JSON.stringify({ name: 'x', tags: Array(11).fill('t') })),
    expect: 400,
  },
  { name: 'huge number', send: postJson('/intake', '{"name":1e999}'), expect: 400 },
  // Prototype pollution and nesting
  {
    name: '__proto__ at top',
    send: postJson('/intake', '{"name":"x","__proto__":{"admin":true}}'),
    expect: 400,
  },
  {
    name: '__proto__ in array',
    send: postJson('/intake', '{"name":"x","tags":[{"__proto__":{"a":1}}]}'),
    expect: 400,
  },
  {
    name: 'escaped __proto__',
    send: postJson('/intake', '{"name":"x","\\u005f\\u005fproto\\u005f\\u005f":{"a":1}}'),
    expect: 400,
  },
  {
    name: 'constructor.prototype',
    send: postJson('/intake', '{"name":"x","constructor":{"prototype":{"a":1}}}'),
    expect: 400,
  },
  {
    name: 'arrays 100k deep',
    send: postJson('/intake', `${'['.repeat(100_000)}${']'.repeat(100_000)}`),
    expect: 400,
  },
  {
    name: 'objects 200 deep',
    send: postJson('/intake', `${'{"a":'.repeat(200)}1${'}'.repeat(200)}`),
    expect: 400,
  },
  // Size and media type
  {
    name: '2 MiB body',
    send: postJson('/intake', JSON.stringify({ name: 'x'.repeat(2 * 1024 * 1024) })),
    expect: 413,
  },
  {
    name: 'text/plain',
    send: postJson('/intake', '{"name":"x"}', { 'content-type': 'text/plain' }),
    expect: 415,
  },
  {
    name: 'form encoded',
    send: postJson('/intake', 'name=x', { 'content-type': 'application/x-www-form-urlencoded' }),
    expect: 415,
  },
  {
    name: 'multipart',
    send: postJson('/intake', '--b\r\n\r\nx\r\n--b--', { 'content-type': 'multipart/form-data; boundary=b' }),
    expect: 415,
  },
  {
    name: 'utf-16 charset',
    send: postJson('/intake', '{"name":"x"}', { 'content-type': 'application/json; charset=utf-16' }),
    expect: 415,
  },
  {
    name: 'body without content type',
    send: rawPost('/intake', 'Content-Length: 12\r\n', '{"name":"x"}'),
    expect: 415,
  },
  {
    name: 'content-length larger than limit',
    send: rawPost('/intake', 'Content-Type: application/json\r\nContent-Length: 5000000\r\n', '{}'),
    expect: 413,
  },
  // Routing
  { name: 'unknown path', send: http('/admin.php'), expect: 404 },
  { name: 'wrong method', send: http('/intake', { method: 'GET' }), expect: 405 },
  { name: 'HEAD on a POST route', send: http('/intake', { method: 'HEAD' }), expect: 405 },
  { name: 'OPTIONS', send: http('/intake', { method: 'OPTIONS' }), expect: 405 },
  {
    name: 'path traversal',
    send: raw('GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'),
    expect: [400, 404],
  },
  {
    name: 'bad percent encoding',
    send: raw('GET /lookup/%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'),
    expect: 400,
  },
  { name: 'encoded NUL in param', send: http('/lookup/AB%00CD'), expect: 400 },
  { name: 'param violating schema', send: http('/lookup/%3Cscript%3E'), expect: 400 },
  { name: 'query violating schema', send: http('/lookup/AB-1?limit=9999999'), expect: 400 },
  {
    name: 'very long URL',
    send: raw(`GET /lookup/${'A'.repeat(100_000)} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`),
    expect: [400, 414, 431],
  },
  // Broken HTTP
  {
    name: 'huge header',
    send: raw(
      `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(40_000)}\r\nConnection: close\r\n\r\n`,
    ),
    expect: 431,
  },
  {
    name: 'invalid header name',
    send: raw('GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\nConnection: close\r\n\r\n'),
    expect: 400,
  },
  {
    name: 'CL and TE together (smuggling)',
    send: rawPost(
      '/intake',
      'Content-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n',
      '0\r\n\r\nGET /x HTTP/1.1\r\n\r\n',
    ),
    expect: 400,
  },
  {
    name: 'negative content length',
    send: rawPost('/intake', 'Content-Type: application/json\r\nContent-Length: -1\r\n', '{}'),
    expect: 400,
  },
  {
    name: 'broken chunked encoding',
    send: rawPost(
      '/intake',
      'Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n',
      'zz\r\n{}\r\n0\r\n\r\n',
    ),
    expect: 400,
  },
  {
    name: 'garbage bytes',
    send: raw(Buffer.from([0x16, 0x03, 0x01, 0x00, 0xff, 0x00, 0x0d, 0x0a, 0x0d, 0x0a])),
    expect: 400,
  },
  { name: 'HTTP/0.9 request line', send: raw('GET /\r\n\r\n'), expect: [400, 404] },
  // Idempotency keys
  {
    name: 'idempotency key too long',
    send: postJson('/intake', '{"name":"x"}', { 'idempotency-key': 'k'.repeat(300) }),
    expect: 400,
  },
  {
    name: 'idempotency key with control char',
    send: rawPost(
      '/intake',
      'Content-Type: application/json\r\nIdempotency-Key: a\tb\r\nContent-Length: 12\r\n',
      '{"name":"x"}',
    ),
    expect: 400,
  },
  // Auth
  { name: 'api key missing', send: postJson('/keyed', '{}'), expect: 401 },
  { name: 'api key wrong', send: postJson('/keyed', '{}', { 'x-api-key': 'guess' }), expect: 401 },
  {
    name: 'api key of another trigger',
    send: postJson('/keyed', '{}', { 'x-api-key': OTHER_KEY }),
    expect: 403,
  },
  { name: 'admin token as api key', send: postJson('/keyed', '{}', { 'x-api-key': ADMIN }), expect: 403 },
  { name: 'webhook unsigned', send: postJson('/hook', '{"a":1}'), expect: 401 },
  {
    name: 'webhook wrong secret',
    send: postJson(
      '/hook',
      '{"a":1}',
      signedHeaders('{"a":1}', `whsec_${Buffer.from('nope').toString('base64')}`),
    ),
    expect: 401,
  },
  { name: 'webhook body swapped', send: postJson('/hook', '{"a":2}', signedHeaders('{"a":1}')), expect: 401 },
  {
    name: 'webhook replayed after an hour',
    send: postJson('/hook', '{"a":1}', signedHeaders('{"a":1}', SECRET, new Date(Date.now() - 3_600_000))),
    expect: 401,
  },
  {
    name: 'webhook timestamp not a number',
    send: postJson('/hook', '{"a":1}', { ...signedHeaders('{"a":1}'), 'webhook-timestamp': '1e10' }),
    expect: 401,
  },
  { name: 'api without token', send: http('/api/instances'), expect: 401 },
  {
    name: 'api with wrong token',
    send: http('/api/instances', { headers: { authorization: 'Bearer x' } }),
    expect: 401,
  },
  {
    name: 'api with trigger key',
    send: http('/api/instances', { headers: { authorization: `Bearer ${KEY}` } }),
    expect: 403,
  },
  // Management API abuse (authenticated)
  {
    name: 'bulk rerun without filter',
    send: postJson('/api/instances/rerun', '{"filter":{},"from":"start"}', admin),
    expect: 400,
  },
  {
    name: 'bulk rerun with unknown filter field',
    send: postJson('/api/instances/rerun', '{"filter":{"sql":"1=1"},"from":"start"}', admin),
    expect: 400,
  },
  {
    name: 'rerun of an unknown instance',
    send: postJson("/api/instances/x'%20OR%201=1--/rerun", '{}', admin),
    expect: 404,
  },
  {
    name: 'cancel of an unknown instance',
    send: http('/api/instances/nope/cancel', { method: 'POST', headers: admin }),
    expect: 404,
  },
  {
    name: 'run of an unknown integration',
    send: postJson('/api/integrations/__proto__/run', '{}', admin),
    expect: 404,
  },
  {
    name: 'run of a sync integration',
    send: postJson('/api/integrations/lookup/run', '{}', admin),
    expect: 409,
  },
  {
    name: 'limit out of range',
    send: http('/api/instances?limit=1000000000', { headers: admin }),
    expect: 400,
  },
  {
    name: 'query prototype keys',
    send: http('/api/instances?__proto__[x]=1&constructor[prototype][y]=2', { headers: admin }),
    expect: 400,
  },
  {
    name: 'status repeated 1000 times',
    send: http(`/api/instances?${'status=failed&'.repeat(1000)}`, { headers: admin }),
    expect: 400,
  },
  {
    name: 'time that is not a time',
    send: http('/api/instances?from=yesterday', { headers: admin }),
    expect: 400,
  },
];

describe('hostile requests', () => {
  it(`refuses all ${corpus.length} of them with a 4xx, stays up and leaves the store unchanged`, async () => {
    expect(corpus.length).toBeGreaterThanOrEqual(40);
    const before = server.counts();
    const failures: string[] = [];
    for (const entry of corpus) {
      const sent = await entry.send();
      const allowed = Array.isArray(entry.expect) ? entry.expect : [entry.expect];
      if (!allowed.includes(sent.status))
        failures.push(`${entry.name}: got ${sent.status}, want ${allowed.join('|')}`);
      // HEAD answers carry no body; everything else is a problem document.
      else if (!sent.problem && entry.name !== 'HEAD on a POST route')
        failures.push(`${entry.name}: not problem+json`);
    }
    expect(failures).toEqual([]);
    expect((await server.request('/healthz')).status).toBe(200);
    const query = await server.request('/api/instances?tracking=%27%20OR%201%3D1%20--', { headers: admin });
    expect(query.json.items).toEqual([]);
    // Closing the app flushes pending sync records, so the comparison sees everything written.
    await server.app.close();
    expect(server.counts()).toEqual(before);
    expect(calls).toBe(0);
    expect(({} as Record<string, unknown>).admin).toBeUndefined();
  });
});
