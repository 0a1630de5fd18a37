/**
 * Every error the server sends is a problem document, including the ones HTTP itself calls for
 * before any route is found: an HTTP/1.1 request without a Host header or with two (RFC 9112
 * §3.2), an expectation the server does not meet, CONNECT. Sent over raw sockets: no client
 * library would produce these.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineIntegration } from '../../src/define/integration.js';
import { rawRequest } from '../support/raw-http.js';
import { type TestServer, testServer } from '../support/server.js';

const lookup = defineIntegration({
  id: 'lookup',
  mode: 'sync',
  route: 'GET /lookup',
  handler: () => 'found',
});
const intake = defineIntegration({
  id: 'intake',
  mode: 'async',
  route: 'POST /intake',
  input: z.object({ name: z.string() }),
  handler: () => null,
});

let server: TestServer | null = null;
afterEach(async () => {
  await server?.close();
  server = null;
});

function problemOf(res: { status: number; head: string; body: string }) {
  const problem = /\r\ncontent-type: application\/problem\+json/i.test(res.head);
  return { status: res.status, type: problem ? JSON.parse(res.body).type : null };
}

describe('HTTP framing errors', () => {
  it('answers a missing or repeated Host header with a 400 problem, before anything else', async () => {
    server = await testServer([lookup, intake], {}, { worker: false });
    const before = await server.store.countInstances({});
    const body = '{"name":"x"}';
    const post = (hosts: string) =>
      `POST /intake HTTP/1.1\r\n${hosts}Content-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`;
    const cases = [
      ['no Host', 'GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n'],
      ['two Host headers', 'GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n'],
      ['the same Host twice', 'GET /healthz HTTP/1.1\r\nHost: a\r\nhost: a\r\nConnection: close\r\n\r\n'],
      ['no Host on a trigger', post('')],
      ['two Host headers on a trigger', post('Host: a\r\nHost: b\r\n')],
      ['no Host on /api', 'GET /api/instances HTTP/1.1\r\nConnection: close\r\n\r\n'],
    ];
    const answers = [];
    for (const [name, request] of cases)
      answers.push([name, problemOf(await rawRequest(server.port, request!))]);
    expect(answers).toEqual(
      cases.map(([name]) => [name, { status: 400, type: 'urn:tandem:error:bad-request' }]),
    );
    expect(await server.store.countInstances({})).toBe(before);
    // One Host is fine, and HTTP/1.0 does not require one.
    expect(
      (await rawRequest(server.port, 'GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n')).status,
    ).toBe(200);
    expect((await rawRequest(server.port, 'GET /healthz HTTP/1.0\r\n\r\n')).status).toBe(200);
  });

  it('answers an unmet expectation and CONNECT with problems', async () => {
    server = await testServer([lookup, intake], {}, { worker: false });
    const expectation = await rawRequest(
      server.port,
      'GET /healthz HTTP/1.1\r\nHost: a\r\nExpect: something-else\r\nConnection: close\r\n\r\n',
    );
    expect(problemOf(expectation)).toEqual({ status: 417, type: 'urn:tandem:error:expectation-failed' });
    const tunnel = await rawRequest(
      server.port,
      'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n',
    );
    expect(problemOf(tunnel)).toEqual({ status: 405, type: 'urn:tandem:error:method-not-allowed' });
  });
});
