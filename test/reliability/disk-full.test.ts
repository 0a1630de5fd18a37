/**
 * The store's disk full: accepts answer 503 problem+json with Retry-After, nothing of a refused
 * request is stored, work that was acknowledged is never lost, and service resumes by itself
 * when space returns. The disk is a real size-limited file system (tmpfs) filled by a ballast
 * file where this machine allows mounts (root in CI); the SQLite case also runs everywhere with
 * SQLite's own page limit (`PRAGMA max_page_count`), which makes the real engine answer
 * SQLITE_FULL. PostgreSQL's tables live in a tablespace on the small file system, so a full disk
 * fails statements with `53100 disk_full` while its WAL (on the main disk) keeps the server up.
 */
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { PostgresStore } from '../../src/store/postgres/store.js';
import { SqliteStore } from '../../src/store/sqlite/store.js';
import type { Store } from '../../src/store/store.js';
import { type PostgresServer, startPostgres } from '../support/postgres.js';
import { tempDir } from '../support/tmp.js';
import { waitFor } from '../support/wait.js';
import { type Answer, type Effects, orderIntegrations, send, serverOn, smallFileSystem } from './support.js';

/** Fills the file system at `dir` with a ballast file, and frees it again. */
function ballastOn(dir: string) {
  const ballast = join(dir, 'ballast');
  return {
    async fill() {
      fillWithBallast(ballast);
    },
    async free() {
      rmSync(ballast);
    },
  };
}

/** Fills the file system holding `path` with a ballast file, down to the last block. */
function fillWithBallast(path: string): void {
  const fd = openSync(path, 'w');
  try {
    for (const size of [1 << 20, 64 << 10, 4 << 10, 512]) {
      const chunk = Buffer.alloc(size, 7);
      try {
        for (;;) writeSync(fd, chunk);
      } catch (error) {
        if ((error as { code?: string }).code !== 'ENOSPC') throw error;
      }
    }
  } finally {
    closeSync(fd);
  }
}

interface Disk {
  fill(): Promise<void>;
  free(): Promise<void>;
}

const CONCURRENCY = 8;

/**
 * Warm-up, then mixed async and sync (hand-off) requests against a full disk, then space returns.
 * Returns the figures for docs/reliability.md.
 */
async function diskFullScenario(store: Store, disk: Disk, integrity: () => Promise<void>) {
  const effects: Effects = new Map();
  const integrations = orderIntegrations(effects);
  const server = await serverOn(store, [...integrations], { concurrency: CONCURRENCY, leaseMs: 2_000 });
  const acknowledged: string[] = [];
  const refused: string[] = [];
  let n = 0;
  const fire = async (count: number) => {
    const answers = await Promise.all(
      Array.from({ length: count }, async (_, i) => {
        const orderId = `D-${++n}`;
        const sync = i % 3 === 0;
        const answer = await send(`${server.url}${sync ? '/quotes' : '/orders'}`, 'POST', {
          orderId,
          pad: 'x'.repeat(3_000),
        });
        return { orderId, answer };
      }),
    );
    for (const { orderId, answer } of answers) {
      if (answer.status === 202 || answer.status === 200) acknowledged.push(orderId);
      else refused.push(orderId);
    }
    return answers.map((a) => a.answer);
  };
  try {
    const warm = await fire(30);
    expect(warm.map((a) => a.status).filter((s) => s !== 200 && s !== 202)).toEqual([]);

    await disk.fill();
    const duringFull: Answer[] = [];
    for (let round = 0; round < 5; round++) duringFull.push(...(await fire(30)));
    const statuses = new Set(duringFull.map((a) => a.status));
    for (const status of statuses) expect([200, 202, 503]).toContain(status);
    const refusals = duringFull.filter((a) => a.status === 503);
    expect(refusals.length).toBeGreaterThan(duringFull.length / 2);
    for (const refusal of refusals) {
      expect(refusal.contentType).toMatch(/^application\/problem\+json/);
      expect(refusal.json.type).toBe('urn:tandem:error:store-full');
      expect(Number(refusal.retryAfter)).toBeGreaterThan(0);
    }
    const health = await send(`${server.url}/healthz`, 'GET');
    expect(health.status).toBe(200); // reads still work: the process is up, only writes are refused

    await new Promise((resolve) => setTimeout(resolve, 500));
    await disk.free();
    const after = await fire(30);
    expect(after.map((a) => a.status).filter((s) => s !== 200 && s !== 202)).toEqual([]);

    // Every acknowledged order runs to the end; no refused order left anything behind.
    await waitFor(
      async () =>
        (await store.countInstances({ integrationId: 'ship', status: 'succeeded' })) >= acknowledged.length,
      'acknowledged instances to succeed',
      60_000,
    );
    for (const orderId of acknowledged) {
      const page = await store.listInstances({ tracking: orderId, limit: 5 });
      expect(page.items.map((i) => i.status)).toEqual(['succeeded']);
    }
    for (const orderId of refused) {
      expect(await store.countInstances({ tracking: orderId })).toBe(0);
    }
    // (Sync instances are monitoring records, written off the response path: not counted here.)
    expect(await store.countInstances({ integrationId: 'ship' })).toBe(acknowledged.length);
    await integrity();
    // Steps ran at least once each; only steps in flight when writes failed ran again.
    const instances = await store.listInstances({ integrationId: 'ship', limit: 10_000 });
    for (const instance of instances.items) {
      expect(effects.get(`${instance.id} reserve`), instance.id).toBeGreaterThanOrEqual(1);
      expect(effects.get(`${instance.id} ship`), instance.id).toBeGreaterThanOrEqual(1);
    }
    const duplicates = [...effects.values()].filter((count) => count > 1).length;
    expect(duplicates).toBeLessThanOrEqual(CONCURRENCY * 2);
    return { sent: n, acknowledged: acknowledged.length, refused: refused.length, duplicates };
  } finally {
    await server.close();
  }
}

const figures: Record<string, unknown> = {};
afterAll(() => {
  if (process.env.TANDEM_FIGURES) console.log(`figures disk-full ${JSON.stringify(figures)}`);
});

describe('disk full', () => {
  it('SQLite at its page limit: 503 store-full with Retry-After, nothing half-written, resumes', async () => {
    const dir = tempDir('tandem-full-');
    const store = new SqliteStore({ path: join(dir.path, 'tandem.db') });
    try {
      figures.sqlitePageLimit = await diskFullScenario(
        store,
        {
          async fill() {
            const pages = store.db.pragma('page_count', { simple: true }) as number;
            store.db.pragma(`max_page_count = ${pages}`);
          },
          async free() {
            store.db.pragma('max_page_count = 1073741823');
          },
        },
        async () => expect(store.db.pragma('integrity_check', { simple: true })).toBe('ok'),
      );
    } finally {
      await store.close();
      dir.cleanup();
    }
  });

  it('SQLite on a full file system (tmpfs filled by a ballast file)', async (context) => {
    const fs = smallFileSystem(8 << 20);
    if (!fs) return context.skip('this machine does not allow mounting a tmpfs (needs root)');
    const store = new SqliteStore({ path: join(fs.path, 'tandem.db') });
    try {
      figures.sqliteTmpfs = await diskFullScenario(store, ballastOn(fs.path), async () =>
        expect(store.db.pragma('integrity_check', { simple: true })).toBe('ok'),
      );
    } finally {
      await store.close();
      fs.remove();
    }
  });

  it('PostgreSQL with its tables in a tablespace on a full file system', async (context) => {
    const fs = smallFileSystem(16 << 20, 'postgres');
    if (!fs) return context.skip('this machine does not allow mounting a tmpfs (needs root)');
    let server: PostgresServer | null = null;
    let store: PostgresStore | null = null;
    try {
      server = await startPostgres({ fast: true });
      const admin = new pg.Client({ connectionString: server.url });
      await admin.connect();
      try {
        const space = join(fs.path, 'space');
        const { execFileSync } = await import('node:child_process');
        execFileSync('runuser', ['-u', 'postgres', '--', 'mkdir', space]);
        await admin.query(`CREATE TABLESPACE small LOCATION '${space}'`);
        await admin.query('ALTER DATABASE postgres SET default_tablespace = small');
      } finally {
        await admin.end();
      }
      store = await PostgresStore.open({ url: server.url, schema: 'diskfull' });
      const opened = store;
      figures.postgresTablespace = await diskFullScenario(opened, ballastOn(fs.path), async () => {
        // Every stored instance is whole: its accepted event and its run exist.
        for (const instance of (await opened.listInstances({ limit: 10_000 })).items) {
          expect((await opened.getRuns(instance.id)).length).toBeGreaterThanOrEqual(1);
        }
      });
    } finally {
      await store?.close();
      await server?.stop();
      fs.remove();
    }
  });
});
