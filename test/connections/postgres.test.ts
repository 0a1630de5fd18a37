/**
 * PostgreSQL connections on the test run's PostgreSQL server: `ctx.query` in a step and what its
 * call records, failures classified by SQLSTATE (retried or failed at once), the circuit breaker
 * and concurrency limit, a cancelled instance's statement cancelled on the server, the query
 * record source feeding `ctx.startMany` on both stores, and a canary password that reaches no
 * stored byte, log line or event.
 */
import '../support/provided.js';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { z } from 'zod';
import { type BindableConnection, CONNECTION, ConnectionError } from '../../src/connections/connection.js';
import { httpConnection } from '../../src/connections/http.js';
import { type PostgresConnection, postgresConnection } from '../../src/connections/postgres.js';
import { secret } from '../../src/connections/secret.js';
import { defineIntegration } from '../../src/define/integration.js';
import { CircuitOpenError } from '../../src/errors.js';
import type { SqliteStore } from '../../src/store/sqlite/store.js';
import { STORE_KINDS, testEngine, waitForStatus } from '../support/engine.js';
import { testServer } from '../support/server.js';
import { waitFor } from '../support/wait.js';

const retry = { maxAttempts: 3, initialDelayMs: 10, maxDelayMs: 20, jitter: 0 };
const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

/** A database of this file's own on the shared server, with a table to work on. */
const database = `tandem_sql_${process.pid}`;
let admin: pg.Pool;
let dbUrl: string;
beforeAll(async () => {
  const server = inject('postgresUrl');
  const root = new pg.Client({ connectionString: server });
  await root.connect();
  await root.query(`CREATE DATABASE ${database}`);
  await root.end();
  dbUrl = server.replace(/\/[^/]*$/, `/${database}`);
  admin = new pg.Pool({ connectionString: dbUrl, max: 4 });
  await admin.query(`
    CREATE TABLE stock (sku text PRIMARY KEY, quantity int NOT NULL CHECK (quantity >= 0));
    INSERT INTO stock SELECT 'S-' || g, 10 FROM generate_series(1, 5) g;
    CREATE ROLE tandem_sql_reader LOGIN;
  `);
});
afterAll(async () => {
  await admin?.end();
  const root = new pg.Client({ connectionString: inject('postgresUrl') });
  await root.connect();
  await root.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
  await root.query('DROP ROLE IF EXISTS tandem_sql_reader');
  await root.end();
});

function connection(id: string, options: Partial<Parameters<typeof postgresConnection>[1]> = {}) {
  const db = postgresConnection(id, { url: dbUrl, ...options });
  closers.push(() => db.close());
  return db;
}

/** What a rejected promise rejected with. */
async function failureOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a failure');
    },
    (error: unknown) => error,
  );
}

describe.each(STORE_KINDS)('ctx.query in a step (%s store)', (storeKind) => {
  it('runs the statement with its parameters and records command, row count and duration, no values', async () => {
    const inventory = connection('inventory');
    const reserve = defineIntegration({
      id: 'reserve',
      mode: 'async',
      retry,
      input: z.object({ sku: z.string(), quantity: z.number().int() }),
      async handler(ctx) {
        return ctx.step('reserve', async () => {
          const { rows, rowCount, command } = await ctx.query<{ quantity: number }>(
            inventory,
            'UPDATE stock SET quantity = quantity - $1 WHERE sku = $2 RETURNING quantity',
            [ctx.input.quantity, ctx.input.sku],
          );
          return { left: rows[0]?.quantity ?? null, rowCount, command };
        });
      },
    });
    const t = await testEngine([reserve], { connections: [inventory], storeKind });
    closers.push(() => t.close());
    const sku = storeKind === 'sqlite' ? 'S-1' : 'S-2';
    const { instanceId } = await t.engine.accept('reserve', { sku, quantity: 3 });
    const done = await waitForStatus(t.engine, instanceId);
    expect(done).toMatchObject({ status: 'succeeded', output: { left: 7, rowCount: 1, command: 'UPDATE' } });
    const calls = (await t.engine.getDetail(instanceId)).events.filter((e) => e.type === 'connection.call');
    expect(calls).toHaveLength(1);
    expect(calls[0]!.data).toMatchObject({
      connection: 'inventory',
      type: 'postgres',
      operation: 'query',
      sql: 'UPDATE stock SET quantity = quantity - $1 WHERE sku = $2 RETURNING quantity',
      command: 'UPDATE',
      rowCount: 1,
      step: 'reserve',
      attempt: 1,
    });
    expect(typeof calls[0]!.data.durationMs).toBe('number');
    // Neither the parameters nor the rows are recorded.
    expect(JSON.stringify(calls[0]!.data)).not.toContain(sku);
    expect(Object.values(calls[0]!.data)).not.toContain(7);
  });

  it('fails at once on a constraint violation and on a query with placeholders but no parameters', async () => {
    const inventory = connection('inventory');
    let attempts = 0;
    const overdraw = defineIntegration({
      id: 'overdraw',
      mode: 'async',
      retry,
      async handler(ctx) {
        attempts++;
        await ctx.step('take', () =>
          ctx.query(inventory, 'UPDATE stock SET quantity = -1 WHERE sku = $1', ['S-3']),
        );
      },
    });
    const pasted = defineIntegration({
      id: 'pasted',
      mode: 'async',
      retry,
      async handler(ctx) {
        await ctx.step('read', () => ctx.query(inventory, 'SELECT * FROM stock WHERE sku = $1'));
      },
    });
    const t = await testEngine([overdraw, pasted], { connections: [inventory], storeKind });
    closers.push(() => t.close());
    const a = await waitForStatus(t.engine, (await t.engine.accept('overdraw', {})).instanceId);
    expect(a).toMatchObject({ status: 'failed', attempt: 1, error: { code: 'constraint-violation' } });
    expect(a.error?.details).toMatchObject({
      sqlstate: '23514',
      constraint: 'stock_quantity_check',
      table: 'stock',
    });
    expect(attempts).toBe(1);
    const b = await waitForStatus(t.engine, (await t.engine.accept('pasted', {})).instanceId);
    expect(b).toMatchObject({ status: 'failed', attempt: 1, error: { code: 'invalid-definition' } });
    expect(b.error?.message).toMatch(/never paste them into the SQL text/);
    // Refused before anything was sent: no call recorded.
    const events = (await t.engine.getDetail(b.id)).events;
    expect(events.some((e) => e.type === 'connection.call')).toBe(false);
  });

  it('retries a deadlock victim and succeeds on the next attempt', async () => {
    const inventory = connection('inventory');
    let attempt = 0;
    const racer = defineIntegration({
      id: 'racer',
      mode: 'async',
      retry,
      async handler(ctx) {
        attempt++;
        return ctx.step('lock', () =>
          // The first attempt is told it lost a deadlock, as the server tells its victim.
          ctx.query(
            inventory,
            attempt === 1
              ? "DO $$ BEGIN RAISE EXCEPTION 'deadlock detected' USING ERRCODE = '40P01'; END $$"
              : 'SELECT 1 AS won',
          ),
        );
      },
    });
    const t = await testEngine([racer], { connections: [inventory], storeKind });
    closers.push(() => t.close());
    const done = await waitForStatus(t.engine, (await t.engine.accept('racer', {})).instanceId);
    expect(done).toMatchObject({ status: 'succeeded', attempt: 2, output: { rows: [{ won: 1 }] } });
    const calls = (await t.engine.getDetail(done.id)).events.filter((e) => e.type === 'connection.call');
    expect(calls.map((e) => e.data.error ?? 'ok')).toEqual(['transaction-rollback', 'ok']);
  });
});

describe('how handlers reach it', () => {
  it('answers from the database through ctx.use(db).query; a value meant as SQL stays a value', async () => {
    const inventory = connection('inventory');
    const stock = defineIntegration({
      id: 'stock',
      mode: 'sync',
      route: 'GET /stock/:sku',
      async handler(ctx) {
        const { rows } = await ctx
          .use(inventory)
          .query<{ quantity: number }>('SELECT quantity FROM stock WHERE sku = $1', [ctx.params.sku]);
        return rows[0] ? { body: rows[0] } : { status: 404, body: { error: 'unknown sku' } };
      },
    });
    const t = await testServer([stock], {}, { connections: [inventory] });
    try {
      const found = await t.request('/stock/S-4');
      expect(found.status).toBe(200);
      expect(found.json).toEqual({ quantity: 10 });
      const injected = await t.request(`/stock/${encodeURIComponent("S-4' OR '1'='1")}`);
      expect(injected.status).toBe(404);
    } finally {
      await t.close();
    }
  });

  it('ctx.query refuses a connection that is not a SQL one, before anything is sent', async () => {
    const bank = httpConnection('bank', { baseUrl: 'http://127.0.0.1:9' });
    // A kind with a client of its own (as SFTP's), without `query`.
    const files: BindableConnection<{ put(): void }> = {
      [CONNECTION]: true,
      id: 'files',
      type: 'sftp',
      target: 'sftp://files:22',
      watch: () => () => {},
      circuitState: () => 'closed',
      close: async () => {},
      bind: () => ({ put() {} }),
    } as BindableConnection<{ put(): void }>;
    const wrong = (id: string, connection: string) =>
      defineIntegration({
        id,
        mode: 'async',
        retry,
        handler: (ctx) => ctx.step('read', () => ctx.query(connection, 'SELECT 1')),
      });
    const t = await testEngine([wrong('to-http', 'bank'), wrong('to-sftp', 'files')], {
      connections: [bank, files],
    });
    closers.push(() => t.close());
    const http = await waitForStatus(t.engine, (await t.engine.accept('to-http', {})).instanceId);
    expect(http).toMatchObject({ status: 'failed', attempt: 1, error: { code: 'invalid-definition' } });
    expect(http.error?.message).toMatch(/"bank" \(type http\) is an HTTP connection/);
    const sftp = await waitForStatus(t.engine, (await t.engine.accept('to-sftp', {})).instanceId);
    expect(sftp).toMatchObject({ status: 'failed', attempt: 1, error: { code: 'invalid-definition' } });
    expect(sftp.error?.message).toMatch(
      /"files" is not a SQL connection: ctx.query needs a postgresConnection/,
    );
  });
});

describe('process lifetime', () => {
  it('idle database connections do not keep a process alive that has finished its work', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tandem-pg-exit-'));
    try {
      const script = join(dir, 'query-once.mts');
      const source = pathToFileURL(join(import.meta.dirname, '../../src/connections/postgres.ts')).href;
      // A minute of idle timeout: a pool that held the process would outlive the spawn's timeout.
      writeFileSync(
        script,
        `import { postgresConnection } from ${JSON.stringify(source)};
const db = postgresConnection('once', { url: process.argv[2], idleTimeout: 60_000 });
const { rows } = await db.query('SELECT 41 + 1 AS answer');
console.log(JSON.stringify(rows));`,
      );
      const run = spawnSync(process.execPath, ['--import', 'tsx', script, dbUrl], {
        encoding: 'utf8',
        timeout: 30_000,
        cwd: join(import.meta.dirname, '../..'),
      });
      expect(run.signal, run.stderr).toBeNull(); // not killed by the timeout
      expect(run.status, run.stderr).toBe(0);
      expect(run.stdout.trim()).toBe('[{"answer":42}]');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 40_000);
});

describe('failures classified by SQLSTATE', () => {
  it.each([
    ['40001', 'transaction-rollback', true],
    ['40P01', 'transaction-rollback', true],
    ['57P01', 'server-unavailable', true],
    ['57P03', 'server-unavailable', true],
    ['53300', 'insufficient-resources', true],
    ['53100', 'insufficient-resources', true],
    ['08006', 'connection-failed', true],
    ['23505', 'constraint-violation', false],
    ['42P01', 'syntax-or-permission', false],
    ['22012', 'query-failed', false],
  ])('SQLSTATE %s: %s, retryable %s', async (sqlstate, code, retryable) => {
    const db = connection('raised', { circuit: false });
    const error = await failureOf(
      db.query(`DO $$ BEGIN RAISE EXCEPTION 'raised by the test' USING ERRCODE = '${sqlstate}'; END $$`),
    );
    expect(error).toBeInstanceOf(ConnectionError);
    expect(error).toMatchObject({ connection: 'raised', type: 'postgres', code, retryable });
    expect((error as ConnectionError).details).toMatchObject({ sqlstate });
  });

  it('real server answers: syntax, unique key, permission, statement timeout, terminated backend', async () => {
    const db = connection('real', { circuit: false, statementTimeout: 300 });
    const syntax = await failureOf(db.query('SELEC 1'));
    expect(syntax).toMatchObject({
      code: 'syntax-or-permission',
      retryable: false,
      details: { sqlstate: '42601' },
    });
    const unique = await failureOf(db.query('INSERT INTO stock VALUES ($1, $2)', ['S-1', 1]));
    expect(unique).toMatchObject({
      code: 'constraint-violation',
      retryable: false,
      details: { sqlstate: '23505', constraint: 'stock_pkey', table: 'stock' },
    });
    // The row's values (in the server's `detail`) are not carried by the error.
    expect(JSON.stringify((unique as ConnectionError).details)).not.toContain('S-1');
    const reader = connection('reader', {
      url: dbUrl.replace('postgres@', 'tandem_sql_reader@'),
      circuit: false,
    });
    const denied = await failureOf(reader.query('SELECT * FROM stock'));
    expect(denied).toMatchObject({
      code: 'syntax-or-permission',
      retryable: false,
      details: { sqlstate: '42501' },
    });
    const slow = await failureOf(db.query('SELECT pg_sleep(5)'));
    expect(slow).toMatchObject({
      code: 'statement-timeout',
      retryable: true,
      details: { sqlstate: '57014' },
    });
    const sleeper = connection('sleeper', { circuit: false });
    const sleeping = failureOf(sleeper.query('SELECT pg_sleep(30)'));
    await waitFor(
      async () =>
        (
          await admin.query(
            "SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity WHERE application_name = 'tandem:sleeper' AND query LIKE '%pg_sleep%'",
          )
        ).rowCount === 1,
      'the sleeping statement',
    );
    expect(await sleeping).toMatchObject({
      code: 'server-unavailable',
      retryable: true,
      details: { sqlstate: '57P01' },
    });
    // The pool made a new connection for the next statement.
    expect((await sleeper.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  });

  it('a server that refuses connections: retried, and the circuit opens without using attempts', async () => {
    const closedPort = await new Promise<number>((resolve) => {
      const server = createServer();
      server.listen(0, '127.0.0.1', () => {
        const { port } = server.address() as { port: number };
        server.close(() => resolve(port)); // nothing listens on it any more
      });
    });
    const db = postgresConnection('gone', {
      host: '127.0.0.1',
      port: closedPort,
      user: 'postgres',
      circuit: { failures: 2, reprobeMs: 60_000 },
    });
    closers.push(() => db.close());
    const first = await failureOf(db.query('SELECT 1'));
    expect(first).toMatchObject({ code: 'connection-failed', retryable: true });
    const second = await failureOf(db.query('SELECT 1'));
    // The second failure opens the circuit; nothing was sent, so the caller waits for the probe.
    expect(second).toBeInstanceOf(CircuitOpenError);
    expect(db.circuitState()).toBe('open');
    expect(await failureOf(db.query('SELECT 1'))).toBeInstanceOf(CircuitOpenError);
  });
});

describe('limits and cancellation', () => {
  it('runs at most maxConcurrency statements at once', async () => {
    const db = connection('narrow', { maxConcurrency: 2, poolSize: 5 });
    let inFlight = 0;
    let peak = 0;
    const sampler = setInterval(async () => {
      const { rows } = await admin.query<{ n: string }>(
        "SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'tandem:narrow' AND state = 'active'",
      );
      inFlight = Number(rows[0]!.n);
      peak = Math.max(peak, inFlight);
    }, 20);
    try {
      await Promise.all(Array.from({ length: 6 }, () => db.query('SELECT pg_sleep(0.2)')));
    } finally {
      clearInterval(sampler);
    }
    expect(peak).toBe(2);
  });

  it('cancels the statement on the server when its instance is cancelled', async () => {
    const db = connection('cancelled');
    const slow = defineIntegration({
      id: 'slow',
      mode: 'async',
      retry,
      async handler(ctx) {
        await ctx.step('sleep', () => ctx.query(db, 'SELECT pg_sleep(60)'));
      },
    });
    const t = await testEngine([slow], { connections: [db] });
    closers.push(() => t.close());
    const { instanceId } = await t.engine.accept('slow', {});
    const running =
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'tandem:cancelled' AND state = 'active' AND query LIKE '%pg_sleep(60)%'";
    await waitFor(async () => (await admin.query(running)).rows[0].n === 1, 'the statement to run');
    await t.engine.cancel(instanceId);
    expect(await waitForStatus(t.engine, instanceId)).toMatchObject({ status: 'cancelled' });
    await waitFor(
      async () => (await admin.query(running)).rows[0].n === 0,
      'the statement to be cancelled',
      5_000,
    );
  });
});

describe.each(STORE_KINDS)('query record source into ctx.startMany (%s store)', (storeKind) => {
  it('starts one child per valid row and reports the invalid ones by row number', async () => {
    const inventory = connection('inventory');
    const Row = z.object({ sku: z.string(), quantity: z.number().int().nonnegative() });
    const seen: string[] = [];
    const child = defineIntegration({
      id: 'sync-item',
      mode: 'async',
      input: Row,
      handler(ctx) {
        seen.push(ctx.input.sku);
      },
    });
    const nightly = defineIntegration({
      id: 'nightly',
      mode: 'async',
      async handler(ctx) {
        const rows = ctx.use(inventory).querySource(
          `SELECT 'I-' || g AS sku, CASE WHEN g % 500 = 0 THEN -1 ELSE g END AS quantity
               FROM generate_series(1, $1::int) g ORDER BY g`,
          [2_500],
          { schema: Row, batchSize: 400 },
        );
        return ctx.startMany(child, rows, { await: 'children', checkEveryMs: 50 });
      },
    });
    const t = await testEngine([nightly, child], { connections: [inventory], storeKind, concurrency: 20 });
    closers.push(() => t.close());
    const done = await waitForStatus(
      t.engine,
      (await t.engine.accept('nightly', {})).instanceId,
      undefined,
      60_000,
    );
    expect(done.status).toBe('succeeded');
    expect(done.output).toMatchObject({
      count: 2_495,
      created: 2_495,
      invalid: { read: 2_500, valid: 2_495, invalid: 5 },
      children: { succeeded: 2_495 },
    });
    expect(
      (done.output as { invalid: { errors: { line: number }[] } }).invalid.errors.map((e) => e.line),
    ).toEqual([500, 1_000, 1_500, 2_000, 2_500]);
    expect(new Set(seen).size).toBe(2_495);
    // One event for the whole read: the rows it streamed.
    const calls = (await t.engine.getDetail(done.id)).events.filter((e) => e.type === 'connection.call');
    expect(calls).toHaveLength(1);
    expect(calls[0]!.data).toMatchObject({ connection: 'inventory', operation: 'stream', rowCount: 2_500 });
  }, 90_000);
});

describe('secrets', () => {
  it('never writes a canary password to the database file, the logs or the activity stream', async () => {
    const canary = `canary-${Math.random().toString(36).slice(2)}-pw`;
    const role = `tandem_canary_${process.pid}`;
    // Password authentication for this one role (the server trusts every other): a rule of its own
    // at the top of pg_hba.conf, removed afterwards.
    const hbaFile = (await admin.query<{ hba_file: string }>('SHOW hba_file')).rows[0]!.hba_file;
    const hba = readFileSync(hbaFile, 'utf8');
    await admin.query(`CREATE ROLE ${role} LOGIN PASSWORD '${canary}'`);
    await admin.query(`GRANT SELECT, UPDATE ON stock TO ${role}`);
    writeFileSync(hbaFile, `host all ${role} 127.0.0.1/32 scram-sha-256\n${hba}`);
    await admin.query('SELECT pg_reload_conf()');
    closers.push(async () => {
      writeFileSync(hbaFile, hba);
      await admin.query('SELECT pg_reload_conf()');
      await admin.query(`DROP OWNED BY ${role}; DROP ROLE IF EXISTS ${role}`);
    });
    process.env.TEST_PG_CANARY = canary;
    process.env.TEST_PG_WRONG = `${canary}-wrong`;
    const { port } = new URL(dbUrl);
    const base = { host: '127.0.0.1', port: Number(port), database, user: role };
    const good = postgresConnection('vault', { ...base, password: secret('TEST_PG_CANARY') });
    const wrong = postgresConnection('wrong', { ...base, password: secret('TEST_PG_WRONG'), circuit: false });
    closers.push(
      () => good.close(),
      () => wrong.close(),
    );
    let logs = '';
    const logger = pino(
      { level: 'trace' },
      new Writable({
        write(chunk, _encoding, done) {
          logs += chunk.toString();
          done();
        },
      }),
    );
    const reader = (id: string, db: PostgresConnection, sql: string) =>
      defineIntegration({
        id,
        mode: 'async',
        retry: { ...retry, maxAttempts: 1 },
        handler: (ctx) => ctx.step('read', () => ctx.query(db, sql)),
      });
    const t = await testEngine(
      [
        reader('ok', good, 'SELECT sku FROM stock ORDER BY sku LIMIT 1'),
        reader('broken', good, 'SELECT nope FROM stock'),
        reader('refused', wrong, 'SELECT 1'),
      ],
      { connections: [good, wrong], logger },
    );
    closers.push(() => t.close());
    const ids = await Promise.all(
      ['ok', 'broken', 'refused'].map(async (id) => (await t.engine.accept(id, {})).instanceId),
    );
    const [ok, broken, refused] = await Promise.all(ids.map((id) => waitForStatus(t.engine, id)));
    expect(ok).toMatchObject({ status: 'succeeded', output: { rows: [{ sku: 'S-1' }] } });
    expect(broken).toMatchObject({ status: 'failed', error: { code: 'syntax-or-permission' } });
    expect(refused).toMatchObject({ status: 'failed', error: { code: 'authentication-failed' } });
    const events = JSON.stringify(await t.store.getEvents({ limit: 1_000 }));
    const details = JSON.stringify(await Promise.all(ids.map((id) => t.engine.getDetail(id))));
    await t.engine.stop();
    const db = (t.store as SqliteStore).db;
    db.pragma('wal_checkpoint(FULL)');
    const file = db.name;
    const bytes =
      readFileSync(file).toString('latin1') + readFileSync(`${file}-wal`, { flag: 'r' }).toString('latin1');
    for (const [where, text] of [
      ['database', bytes],
      ['logs', logs],
      ['events', events],
      ['instances', details],
    ] as const) {
      expect(text.includes(canary), `canary in ${where}`).toBe(false);
    }
    expect(events).toContain('connection.call');
  });
});
