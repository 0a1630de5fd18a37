/**
 * JSON bodies are UTF-8: a body with bytes that are not UTF-8 is refused with a 400 problem on every
 * route that takes one, before any handler runs, and nothing is stored (a lenient decoder would store
 * U+FFFD in their place). Well-formed multi-byte text passes unchanged.
 */
import { createHmac } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineIntegration } from '../../src/define/integration.js';
import { STORE_KINDS } from '../support/engine.js';
import { type TestServer, testServer } from '../support/server.js';

let handled = 0;
const sku = z.object({ sku: z.string() });
const stock = defineIntegration({
  id: 'stock',
  mode: 'async',
  route: 'POST /stock',
  input: sku,
  handler: () => {
    handled++;
  },
});
const price = defineIntegration({
  id: 'price',
  mode: 'sync',
  route: 'POST /price',
  input: sku,
  handler: (ctx) => {
    handled++;
    return { sku: ctx.input.sku };
  },
});

const SECRET_BYTES = Buffer.from('utf8-webhook-secret-0123456789');
const hook = defineIntegration({
  id: 'hook',
  mode: 'async',
  route: 'POST /hook',
  auth: { type: 'standard-webhooks', secret: `whsec_${SECRET_BYTES.toString('base64')}` },
  handler: () => {
    handled++;
  },
});

/** Standard Webhooks headers signing these exact bytes. */
function signed(body: Buffer) {
  const timestamp = String(Math.floor(Date.now() / 1000));
  const mac = createHmac('sha256', SECRET_BYTES).update(`msg_1.${timestamp}.`).update(body).digest('base64');
  return { 'webhook-id': 'msg_1', 'webhook-timestamp': timestamp, 'webhook-signature': `v1,${mac}` };
}

/** `{"sku":"<bytes>"}` with the bytes as given. */
const bodyWith = (bytes: number[]) =>
  Buffer.concat([Buffer.from('{"sku":"'), Buffer.from(bytes), Buffer.from('"}')]);

const NOT_UTF8: [string, number[]][] = [
  ['bytes that never occur in UTF-8', [0xff, 0xfe]],
  ['an overlong "/" in two bytes', [0xc0, 0xaf]],
  ['an overlong "/" in three bytes', [0xe0, 0x80, 0xaf]],
  ['an encoded surrogate (U+D800)', [0xed, 0xa0, 0x80]],
  ['an encoded low surrogate (U+DC00)', [0xed, 0xb0, 0x80]],
  ['a truncated three-byte sequence', [0x41, 0xe2, 0x82]],
  ['a lone continuation byte', [0x80, 0x41]],
  ['Latin-1 "café"', [0x63, 0x61, 0x66, 0xe9]],
  ['a code point above U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
];

let server: TestServer | null = null;
afterEach(async () => {
  await server?.close();
  server = null;
});

describe.each(STORE_KINDS)('a JSON body that is not UTF-8 (%s store)', (storeKind) => {
  it('is refused with a 400 problem on async triggers, sync routes and the run route; nothing stored', async () => {
    server = await testServer([stock, price, hook], {}, { storeKind, worker: false });
    handled = 0;
    const routes = ['/stock', '/price', '/api/integrations/stock/run'];
    const failures: string[] = [];
    for (const path of routes) {
      for (const [name, bytes] of NOT_UTF8) {
        const res = await server.request(path, {
          method: 'POST',
          body: bodyWith(bytes),
          headers: { 'content-type': 'application/json' },
        });
        const problem = res.headers.get('content-type')?.startsWith('application/problem+json');
        if (res.status !== 400 || !problem || res.json?.type !== 'urn:tandem:error:malformed-json')
          failures.push(`${path}, ${name}: ${res.status} ${res.text.slice(0, 100)}`);
      }
    }
    expect(failures).toEqual([]);
    // A webhook's signature covers the bytes as sent and is checked first: unsigned is a 401,
    // signed but not UTF-8 a 400.
    const latin1 = bodyWith([0x63, 0x61, 0x66, 0xe9]);
    const post = (headers: Record<string, string>) =>
      server!.request('/hook', {
        method: 'POST',
        body: latin1,
        headers: { 'content-type': 'application/json', ...headers },
      });
    expect((await post({})).status).toBe(401);
    const refused = await post(signed(latin1));
    expect([refused.status, refused.json?.type]).toEqual([400, 'urn:tandem:error:malformed-json']);
    const fine = Buffer.from(JSON.stringify({ sku: 'café' }));
    const hooked = await server.request('/hook', {
      method: 'POST',
      body: fine,
      headers: { 'content-type': 'application/json', ...signed(fine) },
    });
    expect(hooked.status).toBe(202);
    // Well-formed text of one to four bytes per character passes unchanged.
    const text = 'café – ☃ 📦';
    const accepted = await server.request('/stock', { method: 'POST', json: { sku: text } });
    expect(accepted.status).toBe(202);
    const answered = await server.request('/price', { method: 'POST', json: { sku: text } });
    expect([answered.status, answered.json]).toEqual([200, { sku: text }]);
    // Closing the app writes the sync records still pending.
    await server.app.close();
    expect(handled).toBe(1);
    const stored = (await server.store.listInstances({ limit: 100 })).items;
    expect(stored.map((i) => [i.integrationId, i.input])).toEqual(
      expect.arrayContaining([
        ['stock', { sku: text }],
        ['price', { sku: text }],
        ['hook', { sku: 'café' }],
      ]),
    );
    expect(stored).toHaveLength(3);
  });
});
