/**
 * Limits and circuits shared through the store: three processes on one store, each with its own
 * copy of the same connections, against one application that counts what reaches it. Concurrency
 * never above the limit, the rate within ±10 % over 10 s, and one process's opened circuit parks
 * the others' calls.
 */
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { httpConnection } from '../../src/connections/http.js';
import { defineIntegration } from '../../src/define/integration.js';
import { Engine } from '../../src/engine/engine.js';
import { PostgresStore } from '../../src/store/postgres/store.js';
import { SqliteStore } from '../../src/store/sqlite/store.js';
import { quietLogger, STORE_KINDS, testStore, waitForStatus } from '../support/engine.js';
import { tempDir } from '../support/tmp.js';
import { waitFor } from '../support/wait.js';
import { startScript } from '../support/worker-process.js';

const WORKER = join(import.meta.dirname, '../fixtures/limits-worker.ts');

/** The application: /slow takes 40 ms and counts calls in flight, /paced notes arrival times, /down answers 503. */
function application() {
  const state = {
    inFlight: 0,
    maxInFlight: 0,
    slow: 0,
    paced: [] as { at: number; proc: string }[],
    down: {} as Record<string, number>,
  };
  const server = createServer((request, response) => {
    const proc = String(request.headers['x-proc']);
    if (request.url === '/slow') {
      state.slow++;
      state.inFlight++;
      state.maxInFlight = Math.max(state.maxInFlight, state.inFlight);
      setTimeout(() => {
        state.inFlight--;
        response.end('ok');
      }, 40);
    } else if (request.url === '/paced') {
      state.paced.push({ at: performance.now(), proc });
      response.end('ok');
    } else {
      state.down[proc] = (state.down[proc] ?? 0) + 1;
      response.writeHead(503).end('down');
    }
  });
  return { server, state };
}

async function listen(server: Server): Promise<string> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

let schemas = 0;
/** A fresh schema on the test run's PostgreSQL server (migrated), as a store URL for the children. */
async function postgresUrl(): Promise<string> {
  const schema = `limits_${process.pid}_${++schemas}`;
  const store = await PostgresStore.open({ url: inject('postgresUrl'), schema, onError: () => {} });
  await store.close();
  const url = new URL(inject('postgresUrl'));
  url.searchParams.set('schema', schema);
  return url.toString();
}

function lastJson(lines: string[]): Record<string, number> {
  return JSON.parse(lines.findLast((line) => line.startsWith('{')) ?? '{}') as Record<string, number>;
}

const dirs: { cleanup(): void }[] = [];
afterAll(() => {
  for (const dir of dirs) dir.cleanup();
});

async function threeProcessLoad(storeUrl: string, shared: boolean) {
  const { server, state } = application();
  const base = await listen(server);
  const dir = tempDir('tandem-limits-');
  dirs.push(dir);
  const go = join(dir.path, 'go');
  try {
    const workers = ['p1', 'p2', 'p3'].map((name) =>
      startScript(WORKER, [storeUrl, base, name, 'load', go, '12000', shared ? '1' : '0']),
    );
    await waitFor(
      () => workers.every((worker) => worker.lines.includes('ready')),
      'three ready processes',
      60_000,
    );
    writeFileSync(go, '');
    await Promise.all(workers.map((worker) => worker.exited));
    return { state, results: workers.map((worker) => lastJson(worker.lines)) };
  } finally {
    server.close();
  }
}

/** Arrivals at /paced in the 10 s from one second after the first. */
function tenSeconds(paced: { at: number; proc: string }[]) {
  const start = paced[0]!.at + 1_000;
  return paced.filter((call) => call.at >= start && call.at < start + 10_000);
}

/** A fresh SQLite file (migrated before the children open it), as a store URL. */
function sqliteUrl(): string {
  const dir = tempDir('tandem-limits-db-');
  dirs.push(dir);
  const path = join(dir.path, 'tandem.db');
  new SqliteStore({ path }).close();
  return `sqlite:${path}`;
}

describe.each(STORE_KINDS)('limits shared by three processes on %s', (kind) => {
  let storeUrl: string;
  beforeAll(async () => {
    storeUrl = kind === 'postgres' ? await postgresUrl() : sqliteUrl();
  });

  it('keeps concurrency at the limit and the rate within 10 % over 10 s for all three together', async () => {
    const { state, results } = await threeProcessLoad(storeUrl, true);
    // Every process got calls through on both connections, and none failed.
    for (const result of results) {
      expect(result['capped.ok']).toBeGreaterThan(0);
      expect(result['paced.ok']).toBeGreaterThan(0);
      expect(Object.keys(result).filter((key) => !key.endsWith('.ok'))).toEqual([]);
    }
    expect(state.maxInFlight).toBeLessThanOrEqual(4);
    expect(state.maxInFlight).toBeGreaterThanOrEqual(2);
    const window = tenSeconds(state.paced);
    // 30 per second for all three: 300 in 10 s, ±10 %; each process had its share of them.
    expect(window.length).toBeGreaterThanOrEqual(270);
    expect(window.length).toBeLessThanOrEqual(330);
    for (const proc of ['p1', 'p2', 'p3']) expect(window.some((call) => call.proc === proc)).toBe(true);
  }, 120_000);

  it("parks the other processes' calls once one process opened the circuit", async () => {
    const { server, state } = application();
    const base = await listen(server);
    try {
      const opener = startScript(WORKER, [storeUrl, base, 'opener', 'open']);
      await opener.exited;
      // Three 503s opened the opener's circuit (no CircuitOpenError: a 503 may have been handled).
      expect(lastJson(opener.lines)).toEqual({ 'http-error': 3 });
      expect(state.down).toEqual({ opener: 3 });
      const followers = ['f1', 'f2'].map((name) => startScript(WORKER, [storeUrl, base, name, 'follow']));
      await Promise.all(followers.map((follower) => follower.exited));
      // Neither follower reached the application: every call was parked by the shared circuit.
      for (const follower of followers) expect(lastJson(follower.lines)).toEqual({ 'circuit-open': 20 });
      expect(state.down).toEqual({ opener: 3 });
    } finally {
      server.close();
    }
  }, 120_000);
});

describe.each(STORE_KINDS)('an engine with sharedLimits (%s)', (storeKind) => {
  it('holds maxConcurrency across two engines on one store, and gives its slots back at stop', async () => {
    const { server, state } = application();
    const base = await listen(server);
    const { store, cleanup } = await testStore(storeKind);
    // Two engines on one store, each with its own copy of the connection, as two processes have.
    const engines = await Promise.all(
      ['e1', 'e2'].map(async (name) => {
        const conn = httpConnection('capped-engine', {
          baseUrl: base,
          headers: { 'x-proc': name },
          maxConcurrency: 2,
        });
        const calls = defineIntegration({
          id: 'calls-slow',
          mode: 'async',
          async handler(ctx) {
            return ctx.step('call', () => ctx.call(conn, 'GET', '/slow'));
          },
        });
        const engine = await Engine.create({
          integrations: [calls],
          connections: [conn],
          store,
          logger: quietLogger,
          pollIntervalMs: 50,
          concurrency: 4,
          prefetch: 0,
          sharedLimits: true,
        });
        engine.start();
        return { engine, conn };
      }),
    );
    try {
      const accepted = await Promise.all(
        Array.from({ length: 40 }, () => engines[0]!.engine.accept('calls-slow', {})),
      );
      for (const { instanceId } of accepted)
        expect(
          await waitForStatus(engines[0]!.engine, instanceId, ['succeeded', 'failed'], 60_000),
        ).toMatchObject({
          status: 'succeeded',
        });
      expect(state.slow).toBe(40);
      expect(state.maxInFlight).toBeLessThanOrEqual(2);
    } finally {
      for (const { engine, conn } of engines) {
        await engine.stop(1_000);
        await conn.close();
      }
      server.close();
    }
    // Stopped, the engines gave their slots back: both are free at once, not after the 15 s lease.
    expect(await store.limits!().leaseSlots('capped-engine', 'check', 2, 2, 1_000)).toHaveLength(2);
    await cleanup();
  }, 120_000);
});
