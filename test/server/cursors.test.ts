/**
 * A paging cursor that Tandem did not issue is refused with a 400 problem naming it, on every paged
 * endpoint: the instance list (`cursor`) and the activity stream (`after`, `Last-Event-ID`). Read as
 * something else (an empty page, the first page, the stream from its start), it would hide the
 * client's mistake.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { defineIntegration } from '../../src/define/integration.js';
import { STORE_KINDS } from '../support/engine.js';
import { rawRequest } from '../support/raw-http.js';
import { type TestServer, testServer } from '../support/server.js';

const order = defineIntegration({ id: 'order', mode: 'async', route: 'POST /orders', handler: () => null });

let server: TestServer | null = null;
afterEach(async () => {
  await server?.close();
  server = null;
});

const NOT_ISSUED = [
  'abc',
  '%%%%',
  '%00',
  '1e999',
  '1e3',
  '-1',
  '0x10',
  '1.5',
  '%201',
  '99999999999999999999999',
  '1%3A2%3A3',
  '%E2%91%A0',
];

/** Status and problem type of a GET, sent raw so that the query arrives exactly as written. */
async function get(path: string, headers = '', timeoutMs = 2_000) {
  const res = await rawRequest(
    server!.port,
    `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n${headers}\r\n`,
    timeoutMs,
  );
  let type: string | undefined;
  let paths: string[] | undefined;
  if (/content-type: application\/problem\+json/i.test(res.head)) {
    const problem = JSON.parse(res.body);
    type = problem.type;
    paths = problem.errors?.map((e: { in?: string; path: string }) => `${e.in}:${e.path}`);
  }
  return { status: res.status, type, paths, head: res.head };
}

describe.each(STORE_KINDS)('paging cursors (%s store)', (storeKind) => {
  it('refuses a cursor it did not issue on /api/instances; the ones it issued page through', async () => {
    server = await testServer([order], {}, { storeKind, worker: false });
    for (let i = 0; i < 5; i++) await server.request('/orders', { method: 'POST', json: { i } });
    const answers = [];
    for (const cursor of NOT_ISSUED)
      answers.push({ cursor, ...(await get(`/api/instances?cursor=${cursor}`)) });
    expect(answers.map(({ head: _, ...a }) => a)).toEqual(
      NOT_ISSUED.map((cursor) => ({
        cursor,
        status: 400,
        type: 'urn:tandem:error:invalid-input',
        paths: ['query:cursor'],
      })),
    );
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page = await server.request(`/api/instances?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(page.status).toBe(200);
      seen.push(...page.json.items.map((i: { id: string }) => i.id));
      cursor = page.json.nextCursor;
    } while (cursor);
    expect(new Set(seen).size).toBe(5);
  });

  it('refuses a stream position it did not issue on /api/activity, as `after` or Last-Event-ID', async () => {
    server = await testServer([order], {}, { storeKind, worker: false });
    await server.request('/orders', { method: 'POST', json: {} });
    // The other store's form of cursor is not one this store issued either.
    const foreign = storeKind === 'sqlite' ? '5%3A3' : '5';
    const answers = [];
    for (const after of [...NOT_ISSUED, foreign]) {
      answers.push({ after, ...(await get(`/api/activity?after=${after}`)) });
      // As a header, the text as written (percent signs and all).
      answers.push({ after, ...(await get('/api/activity', `Last-Event-ID: ${after}\r\n`)) });
    }
    const refused = answers.filter((a) => a.status === 400 && a.type === 'urn:tandem:error:invalid-input');
    expect(answers.filter((a) => !refused.includes(a)).map(({ head: _, ...a }) => a)).toEqual([]);
    expect(new Set(refused.flatMap((a) => a.paths))).toEqual(
      new Set(['query:after', 'header:last-event-id']),
    );
    // Positions it issued, and `start`, open the stream.
    const head = await server.store.eventStreamHead();
    for (const [path, headers] of [
      [`/api/activity?after=${encodeURIComponent(head)}`, ''],
      ['/api/activity', `Last-Event-ID: ${head}\r\n`],
      ['/api/activity?after=start', ''],
      ['/api/activity', ''],
    ] as const) {
      // A stream stays open: what arrived in half a second is enough.
      const res = await get(path, headers, 500);
      expect([path, headers, res.status]).toEqual([path, headers, 200]);
      expect(res.head).toMatch(/content-type: text\/event-stream/i);
    }
  });
});
