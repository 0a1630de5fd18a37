import type { AnyIntegration } from '../../src/define/integration.js';
import { type AppOptions, buildApp } from '../../src/server/app.js';
import type { SqliteStore } from '../../src/store/sqlite/store.js';
import { testEngine } from './engine.js';

export interface JsonResponse {
  status: number;
  headers: Headers;
  text: string;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: any;
}

/**
 * A real listening server (127.0.0.1, a free port) on a fresh SQLite store. `request` sends a
 * request with the platform's fetch (undici) and reads the whole answer.
 */
export async function testServer(
  integrations: AnyIntegration[],
  appOptions: Partial<AppOptions> = {},
  engineOptions: Parameters<typeof testEngine>[1] = {},
) {
  const base = await testEngine(integrations, engineOptions);
  const app = await buildApp({ engine: base.engine, adminToken: null, ...appOptions });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const address = app.server.address();
  if (address === null || typeof address === 'string') throw new Error('server has no port');
  const url = `http://127.0.0.1:${address.port}`;

  async function request(path: string, init: RequestInit & { json?: unknown } = {}): Promise<JsonResponse> {
    const { json, ...rest } = init;
    const headers = new Headers(rest.headers);
    let body = rest.body;
    if (json !== undefined) {
      body = JSON.stringify(json);
      if (!headers.has('content-type')) headers.set('content-type', 'application/json');
    }
    const response = await fetch(url + path, { ...rest, headers, body: body ?? null });
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    return { status: response.status, headers: response.headers, text, json: parsed };
  }

  /** Rows per table: a request that must change nothing leaves these equal. */
  function counts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const table of ['instances', 'runs', 'steps', 'events']) {
      out[table] = (
        (base.store as SqliteStore).db.prepare(`SELECT count(*) AS n FROM ${table}`).get() as { n: number }
      ).n;
    }
    return out;
  }

  return {
    ...base,
    app,
    url,
    port: address.port,
    request,
    counts,
    async close() {
      await app.close();
      await base.close();
    },
  };
}

export type TestServer = Awaited<ReturnType<typeof testServer>>;
