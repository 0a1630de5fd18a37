/**
 * Secure by default: without an admin token the management API and the console answer this
 * machine only, and tell anyone else (403) how to set a token; trigger routes stay as configured.
 * With a token nothing changes. The server listens on every address and is reached through this
 * machine's own non-loopback address, so the refusal is the server's, not the network's.
 */
import { networkInterfaces } from 'node:os';
import { afterEach, describe, expect, it } from 'vitest';
import { defineIntegration } from '../../src/define/integration.js';
import { isLoopback } from '../../src/server/admin-auth.js';
import { buildApp } from '../../src/server/app.js';
import { testEngine } from '../support/engine.js';

const order = defineIntegration({ id: 'order', mode: 'async', route: 'POST /orders', handler: () => null });
const TOKEN = `admin-${'5e1a'.repeat(6)}`;

/** A non-loopback IPv4 address of this machine, if it has one. */
const external = Object.values(networkInterfaces())
  .flat()
  .find((i) => i !== undefined && !i.internal && i.family === 'IPv4')?.address;

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

async function serve(adminToken: string | null) {
  const t = await testEngine([order], { worker: false });
  closers.push(t.close);
  const app = await buildApp({ engine: t.engine, adminToken });
  await app.listen({ port: 0, host: '0.0.0.0' });
  closers.push(() => app.close());
  const { port } = app.server.address() as { port: number };
  return async (host: string, path: string, init: RequestInit = {}) => {
    const res = await fetch(`http://${host}:${port}${path}`, init);
    const text = await res.text();
    return { status: res.status, type: res.headers.get('content-type'), text };
  };
}

describe('the management API without an admin token', () => {
  it('counts only this machine as local', () => {
    for (const address of ['127.0.0.1', '127.8.9.10', '::1', '::ffff:127.0.0.1'])
      expect(isLoopback(address), address).toBe(true);
    for (const address of [
      '192.0.2.2',
      '10.0.0.1',
      '::ffff:10.0.0.1',
      'fe80::1',
      '::',
      '0.0.0.0',
      '128.0.0.1',
      '127.example.com',
      '',
      undefined,
    ])
      expect(isLoopback(address), String(address)).toBe(false);
  });

  it.runIf(external)(
    'refuses /api and the console from another address, saying how to set a token',
    async () => {
      const request = await serve(null);
      for (const path of ['/api/instances', '/api/activity', '/api/nowhere', '/console/']) {
        const refused = await request(external!, path);
        expect([path, refused.status]).toEqual([path, 403]);
        expect(refused.type).toMatch(/^application\/problem\+json/);
        expect(JSON.parse(refused.text).detail).toContain('TANDEM_ADMIN_TOKEN');
      }
      const run = await request(external!, '/api/integrations/order/run', {
        method: 'POST',
        body: '{}',
        headers: { 'content-type': 'application/json' },
      });
      expect(run.status).toBe(403);
      // Trigger routes and health stay open; from this machine the API answers.
      const accepted = await request(external!, '/orders', {
        method: 'POST',
        body: '{}',
        headers: { 'content-type': 'application/json' },
      });
      expect(accepted.status).toBe(202);
      expect((await request(external!, '/healthz')).status).toBe(200);
      const local = await request('127.0.0.1', '/api/instances');
      expect([local.status, JSON.parse(local.text).items.length]).toEqual([200, 1]);
    },
  );

  it('answers /api from this machine (the console and the CLI run here)', async () => {
    const request = await serve(null);
    expect((await request('127.0.0.1', '/api/integrations')).status).toBe(200);
  });

  it.runIf(external)('with a token, answers any address that sends it, as before', async () => {
    const request = await serve(TOKEN);
    expect((await request(external!, '/api/instances')).status).toBe(401);
    const allowed = await request(external!, '/api/instances', {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    expect(allowed.status).toBe(200);
  });
});
