/**
 * A body over the limit is answered 413, and a client that keeps sending its body (as HTTP clients
 * do) reads that answer: the server reads and discards the rest of the request, within bounds,
 * before closing, instead of closing on unread bytes (which resets the connection and loses the
 * answer). A client that sends on and on is cut off at the bound.
 */
import { execFile } from 'node:child_process';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { defineIntegration } from '../../src/define/integration.js';
import { LINGER_IDLE_MS, LINGER_MAX_BYTES } from '../../src/server/linger.js';
import { type TestServer, testServer } from '../support/server.js';
import { waitFor } from '../support/wait.js';

const order = z.object({ orderId: z.string() });
const intake = defineIntegration({
  id: 'intake',
  mode: 'async',
  route: 'POST /intake',
  input: order,
  handler: () => null,
});
const quote = defineIntegration({
  id: 'quote',
  mode: 'sync',
  route: 'POST /quote',
  input: order,
  handler: (ctx) => ({ orderId: ctx.input.orderId }),
});

let server: TestServer;
beforeAll(async () => {
  server = await testServer([intake, quote], {}, { worker: false });
});
afterAll(async () => {
  await server.close();
});

/**
 * The client, in a process of its own (in the server's process the two would take turns on one
 * event loop, which hides the race): the platform's fetch (undici) posts each size of JSON, sending
 * the whole body before it reads the answer, and prints what it read of each answer.
 */
const CLIENT = `
const [url, ...sizes] = process.argv.slice(1);
const outcomes = [];
for (const size of sizes.map(Number)) {
  const body = Buffer.alloc(size, 'x');
  body.write('{"orderId":"');
  body.write('"}', size - 2);
  try {
    const res = await fetch(url, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
    const text = await res.text();
    const problem = /^application\\/problem\\+json/.test(res.headers.get('content-type') ?? '');
    outcomes.push({ size, status: res.status, type: problem ? JSON.parse(text).type : null });
  } catch (error) {
    outcomes.push({ size, status: 0, error: error.cause?.code ?? String(error) });
  }
}
console.log(JSON.stringify(outcomes));
`;

function postLarge(url: string, sizes: number[]): Promise<{ size: number; status: number; type?: string }[]> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--input-type=module', '-e', CLIENT, url, ...sizes.map(String)],
      { encoding: 'utf8' },
      (error, stdout) => (error ? reject(error) : resolve(JSON.parse(stdout))),
    );
  });
}

describe('a body over the limit', () => {
  it('is answered with the 413 problem, read by a client that sends 5–10 MB, 20 of 20 times on each route', async () => {
    const sizes = Array.from({ length: 20 }, (_, i) => (5 + (i % 6)) * 1024 * 1024 + i * 1000);
    const failures: unknown[] = [];
    for (const path of ['/intake', '/quote']) {
      const outcomes = await postLarge(server.url + path, sizes);
      expect(outcomes).toHaveLength(20);
      for (const outcome of outcomes) {
        if (outcome.status !== 413 || outcome.type !== 'urn:tandem:error:payload-too-large')
          failures.push({ path, ...outcome });
      }
    }
    expect(failures).toEqual([]);
    expect(await server.store.countInstances({})).toBe(0);
  });

  it('cuts off a client that sends on and on, after at most the bound of discarded bytes', async () => {
    // Half-open allowed: this client ignores the server's end of the connection and sends on.
    const socket = connect({ host: '127.0.0.1', port: server.port, allowHalfOpen: true });
    await new Promise((resolve) => socket.once('connect', resolve));
    let answer = '';
    socket.on('data', (chunk) => {
      answer += chunk.toString('latin1');
    });
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.on('error', () => {});
    socket.write(
      'POST /intake HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n',
    );
    const chunk = Buffer.alloc(256 * 1024, 'x');
    const frame = Buffer.concat([
      Buffer.from(`${chunk.length.toString(16)}\r\n`),
      chunk,
      Buffer.from('\r\n'),
    ]);
    let sent = 0;
    let open = true;
    void closed.then(() => {
      open = false;
    });
    while (open && sent < 4 * LINGER_MAX_BYTES) {
      if (!socket.write(frame)) {
        await Promise.race([new Promise((resolve) => socket.once('drain', resolve)), closed]);
      }
      sent += frame.length;
    }
    await closed;
    expect(answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(sent).toBeLessThan(4 * LINGER_MAX_BYTES);
  });

  it('answers a client that declared a large body and waits, and closes once it stays quiet', async () => {
    const socket = connect({ host: '127.0.0.1', port: server.port, allowHalfOpen: true });
    let answer = '';
    socket.on('data', (chunk) => {
      answer += chunk.toString('latin1');
    });
    const ended = new Promise((resolve) => socket.once('end', resolve));
    socket.write(
      'POST /quote HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000000\r\n\r\n{"orderId":',
    );
    // The server ends its side after the answer, then closes the connection for good once the
    // client has stayed quiet (this client keeps its own side open).
    await ended;
    const connections = () =>
      new Promise<number>((resolve) => server.app.server.getConnections((_e, n) => resolve(n)));
    await waitFor(async () => (await connections()) === 0, 'the connection to close', 2 * LINGER_IDLE_MS);
    socket.destroy();
    expect(answer).toMatch(/^HTTP\/1\.1 413 /);
    expect(answer.toLowerCase()).toContain('\r\nconnection: close\r\n');
    expect(answer).toContain('urn:tandem:error:payload-too-large');
  });
});
