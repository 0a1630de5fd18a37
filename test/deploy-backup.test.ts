/**
 * The backups docs/deploy.md prescribes, run as documented while an engine writes: SQLite's online
 * `.backup` and pg_dump / pg_restore of the schema. Each copy opens as a store with what was there.
 */
import './support/provided.js';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { defineIntegration } from '../src/define/integration.js';
import { Engine } from '../src/engine/engine.js';
import { PostgresStore } from '../src/store/postgres/store.js';
import { SqliteStore } from '../src/store/sqlite/store.js';
import type { Store } from '../src/store/store.js';
import { quietLogger } from './support/engine.js';
import { tempDir } from './support/tmp.js';

const run = promisify(execFile);
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const work = defineIntegration({ id: 'work', mode: 'async', handler: async () => 'done' });

/** An engine on `store` that keeps accepting until the returned stop is called. */
async function busyEngine(store: Store) {
  const engine = await Engine.create({
    integrations: [work],
    store,
    logger: quietLogger,
    pollIntervalMs: 50,
  });
  engine.start();
  let going = true;
  let accepted = 0;
  const loop = (async () => {
    while (going) {
      await Promise.all(Array.from({ length: 20 }, (_, n) => engine.accept('work', { n })));
      accepted += 20;
    }
  })();
  return {
    accepted: () => accepted,
    async stop() {
      going = false;
      await loop;
      await engine.stop(1_000);
    },
  };
}

describe('backups as docs/deploy.md prescribes them', () => {
  it('SQLite: sqlite3 .backup copies the store while it is written; the copy is whole and opens', async () => {
    const dir = tempDir('tandem-backup-');
    cleanups.push(dir.cleanup);
    const path = join(dir.path, 'tandem.db');
    const store = new SqliteStore({ path });
    const busy = await busyEngine(store);
    cleanups.push(() => store.close());
    while (busy.accepted() < 200) await new Promise((resolve) => setTimeout(resolve, 20));
    const copy = join(dir.path, 'backup.db');
    await run('sqlite3', [path, `.backup '${copy}'`]);
    const during = busy.accepted();
    await busy.stop();
    const { stdout } = await run('sqlite3', [copy, 'PRAGMA integrity_check;']);
    expect(stdout.trim()).toBe('ok');
    const restored = new SqliteStore({ path: copy });
    try {
      const count = await restored.countInstances({});
      expect(count).toBeGreaterThanOrEqual(200);
      expect(count).toBeLessThanOrEqual(during + 20);
    } finally {
      await restored.close();
    }
  }, 60_000);

  it('PostgreSQL: pg_dump of the schema while it is written, pg_restore into an empty database', async () => {
    const url = inject('postgresUrl');
    const schema = `backup_${process.pid}`;
    const store = await PostgresStore.open({ url, schema });
    cleanups.push(() => store.close());
    const busy = await busyEngine(store);
    while (busy.accepted() < 200) await new Promise((resolve) => setTimeout(resolve, 20));
    const dir = tempDir('tandem-pgdump-');
    cleanups.push(dir.cleanup);
    const dump = join(dir.path, 'tandem.dump');
    await run('pg_dump', ['--format=custom', `--schema=${schema}`, `--file=${dump}`, url]);
    await busy.stop();

    const database = `restored_${process.pid}`;
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS ${database}`);
    await admin.query(`CREATE DATABASE ${database}`);
    cleanups.push(async () => {
      await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
      await admin.end();
    });
    const target = new URL(url);
    target.pathname = `/${database}`;
    await run('pg_restore', ['--no-owner', `--dbname=${target}`, dump]);
    const restored = await PostgresStore.open({ url: target.toString(), schema });
    try {
      expect(await restored.countInstances({})).toBeGreaterThanOrEqual(200);
    } finally {
      await restored.close();
    }
  }, 60_000);
});
