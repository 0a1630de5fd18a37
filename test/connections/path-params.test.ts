/**
 * `ctx.call(connection, method, '/accounts/:account', { params })`: each value is one encoded path
 * segment, whatever the caller's input holds, and a template without its values is refused before
 * anything is sent.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { httpConnection } from '../../src/connections/http.js';
import { expandPath } from '../../src/connections/path.js';
import { defineIntegration } from '../../src/define/integration.js';
import { appServer, json } from '../support/app-server.js';
import { STORE_KINDS, testEngine, waitForStatus } from '../support/engine.js';

describe('expandPath', () => {
  it('encodes each value as one segment', () => {
    expect(expandPath('/accounts/:account/balance', { account: '../../_status' })).toBe(
      '/accounts/..%2F..%2F_status/balance',
    );
    expect(expandPath('/a/:x/b/:y', { x: 'q?debug=1#top', y: 42 })).toBe('/a/q%3Fdebug%3D1%23top/b/42');
    expect(expandPath('/files/:name.json', { name: 'ä b' })).toBe('/files/%C3%A4%20b.json');
    // Only a segment that starts with ":" is a parameter.
    expect(expandPath('/v1/items:batchGet', {})).toBe('/v1/items:batchGet');
    expect(expandPath('/plain', undefined)).toBe('/plain');
  });

  it('refuses a parameter without a value, and a value that is not used', () => {
    expect(() => expandPath('/accounts/:account', {})).toThrow(
      expect.objectContaining({ code: 'invalid-definition', message: expect.stringContaining(':account') }),
    );
    expect(() => expandPath('/accounts/:account', undefined)).toThrow(/":account" has no value/);
    expect(() => expandPath('/accounts/:account', { account: 'A', acount: 'B' })).toThrow(
      /params\.acount is not a ":acount" of the path/,
    );
  });

  it('refuses a value that would leave its segment: empty, "." or ".."', () => {
    for (const value of ['', '.', '..']) {
      expect(() => expandPath('/accounts/:account/balance', { account: value })).toThrow(
        expect.objectContaining({ code: 'invalid-input' }),
      );
    }
    // Dots within a value are harmless once it is one segment.
    expect(expandPath('/accounts/:account', { account: '...' })).toBe('/accounts/...');
  });
});

describe.each(STORE_KINDS)('ctx.call with path parameters (%s store)', (storeKind) => {
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
  });

  it('sends the encoded path, records template and real path, and refuses a bad value unsent', async () => {
    const app = await appServer((req, res) => json(res, 200, { url: req.url }));
    closers.push(() => app.close());
    const bank = httpConnection('bank', { baseUrl: `${app.url}/api`, circuit: false });
    const balance = defineIntegration({
      id: 'balance',
      mode: 'async',
      retry: { maxAttempts: 3, initialDelayMs: 10 },
      handler: (ctx) =>
        ctx.step('read', () =>
          ctx.call(bank, 'GET', '/accounts/:account', {
            params: { account: (ctx.input as { account: string }).account },
          }),
        ),
    });
    const forgetful = defineIntegration({
      id: 'forgetful',
      mode: 'async',
      retry: { maxAttempts: 3, initialDelayMs: 10 },
      handler: (ctx) => ctx.call(bank, 'GET', '/accounts/:account'),
    });
    const t = await testEngine([balance, forgetful], { storeKind, connections: [bank] });
    closers.push(() => t.close());

    const sneaky = await t.engine.accept('balance', { account: '../../_status?all=1' });
    expect(await waitForStatus(t.engine, sneaky.instanceId)).toMatchObject({
      status: 'succeeded',
      output: { url: '/api/accounts/..%2F..%2F_status%3Fall%3D1' },
    });
    const { events } = await t.engine.getDetail(sneaky.instanceId);
    expect(events.find((e) => e.type === 'connection.call')?.data).toMatchObject({
      template: '/accounts/:account',
      url: `${app.url}/api/accounts/..%2F..%2F_status%3Fall%3D1`,
      status: 200,
    });

    // Refused before sending, and not retried: no attempt can mend it.
    const up = await t.engine.accept('balance', { account: '..' });
    expect(await waitForStatus(t.engine, up.instanceId)).toMatchObject({
      status: 'failed',
      attempt: 1,
      error: { code: 'invalid-input' },
    });
    const missing = await t.engine.accept('forgetful', {});
    expect(await waitForStatus(t.engine, missing.instanceId)).toMatchObject({
      status: 'failed',
      attempt: 1,
      error: { code: 'invalid-definition' },
    });
    expect(app.seen.map((r) => r.url)).toEqual(['/api/accounts/..%2F..%2F_status%3Fall%3D1']);
  });
});
