// Proves test/support/postgres.ts: a real server starts, serves several databases, survives a
// restart and a crash, and leaves no process, directory or listening port behind once stopped.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, inject, it } from 'vitest';
import './provided.js';
import { type PostgresServer, startPostgres } from './postgres.js';

async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

/** Resolves with the connection error code (`ECONNREFUSED`) or `connected`. */
function tcpConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? String(error)));
  });
}

/** Processes whose parent is `pid` (Linux /proc). */
function childrenOf(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const status = readFileSync(`/proc/${entry}/status`, 'utf8');
      if (Number(/^PPid:\s+(\d+)/m.exec(status)?.[1]) === pid) children.push(Number(entry));
    } catch {} // exited meanwhile
  }
  return children;
}

/** Whether the process exists and is not a zombie (an exited process its parent has yet to reap). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** The postmaster's pid, from the first line of postmaster.pid. */
const postmasterPid = (server: PostgresServer) =>
  Number(readFileSync(join(server.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);

describe('startPostgres', () => {
  const started: PostgresServer[] = [];
  afterAll(async () => {
    for (const server of started) await server.stop();
  });

  it('starts a durable server, serves databases, survives restart and crash, and stops without a trace', async () => {
    const childrenBefore = childrenOf(process.pid);
    const t0 = performance.now();
    const server = await startPostgres();
    started.push(server);
    const startMs = performance.now() - t0;
    console.log(`startPostgres() took ${Math.round(startMs)} ms (initdb + pg_ctl start + first query)`);

    expect(server.host).toBe('127.0.0.1');
    expect(server.url).toBe(`postgres://postgres@127.0.0.1:${server.port}/postgres`);
    expect(existsSync(join(server.dataDir, 'PG_VERSION'))).toBe(true);
    expect(readFileSync(join(server.dataDir, 'PG_VERSION'), 'utf8').trim()).toBe('15');

    // Default settings are the durable ones; max_connections is raised for parallel tests.
    const [settings] = await query<Record<string, string>>(
      server.url,
      `select current_setting('fsync') as fsync, current_setting('synchronous_commit') as sync,
              current_setting('full_page_writes') as fpw, current_setting('max_connections') as max,
              current_setting('listen_addresses') as listen, current_user as "user"`,
    );
    expect(settings).toEqual({
      fsync: 'on',
      sync: 'on',
      fpw: 'on',
      max: '200',
      listen: '127.0.0.1',
      user: 'postgres',
    });

    // Two fresh databases, each answering `select 1`.
    const urlA = await server.createDatabase('selftest_a');
    const urlB = await server.createDatabase('Self Test "B"'); // a name that needs quoting
    expect(urlA).toBe(`postgres://postgres@127.0.0.1:${server.port}/selftest_a`);
    for (const [url, name] of [
      [urlA, 'selftest_a'],
      [urlB, 'Self Test "B"'],
    ] as const) {
      expect(await query(url, 'select 1 as one, current_database() as db')).toEqual([{ one: 1, db: name }]);
    }
    await query(urlA, 'create table kept (id int primary key); insert into kept values (1)');

    // Restart: an open connection is dropped, a new one works, committed data is still there.
    const open = new pg.Client({ connectionString: urlA });
    open.on('error', () => {}); // the server terminates it during the restart
    await open.connect();
    const pidBefore = postmasterPid(server);
    await server.restart();
    expect(postmasterPid(server)).not.toBe(pidBefore);
    expect(alive(pidBefore)).toBe(false);
    await expect(open.query('select 1')).rejects.toThrow();
    await open.end().catch(() => {});
    expect(await query(urlA, 'select id from kept')).toEqual([{ id: 1 }]);
    expect(await query(urlB, 'select 1 as one')).toEqual([{ one: 1 }]);

    // Crash (immediate shutdown) and start: recovery keeps the committed row.
    await query(urlA, 'insert into kept values (2)');
    await server.kill();
    expect(await tcpConnect(server.port)).toBe('ECONNREFUSED');
    await server.start();
    await server.start(); // does nothing while running
    expect(await query(urlA, 'select id from kept order by id')).toEqual([{ id: 1 }, { id: 2 }]);
    expect(readFileSync(join(dirname(server.dataDir), 'server.log'), 'utf8')).toMatch(
      /database system was interrupted|not properly shut down/,
    );

    // Stop: no server process, no directory, no listener, nothing left to our process.
    const postmaster = postmasterPid(server);
    const backends = childrenOf(postmaster);
    expect(backends.length).toBeGreaterThan(0); // checkpointer, walwriter, ...
    await server.stop();
    await server.stop(); // idempotent
    expect(alive(postmaster)).toBe(false);
    expect(backends.filter(alive)).toEqual([]);
    expect(existsSync(server.dataDir)).toBe(false);
    expect(existsSync(dirname(server.dataDir))).toBe(false);
    expect(await tcpConnect(server.port)).toBe('ECONNREFUSED');
    await expect(query(server.url, 'select 1')).rejects.toThrow(/ECONNREFUSED/);
    await expect(server.start()).rejects.toThrow(/stopped and removed/);
    expect(childrenOf(process.pid).filter((pid) => !childrenBefore.includes(pid))).toEqual([]);
  });

  it('with { fast: true } turns off fsync, synchronous_commit and full_page_writes', async () => {
    const server = await startPostgres({ fast: true });
    started.push(server);
    expect(
      await query(
        server.url,
        `select current_setting('fsync') as fsync, current_setting('synchronous_commit') as sync,
                current_setting('full_page_writes') as fpw`,
      ),
    ).toEqual([{ fsync: 'off', sync: 'off', fpw: 'off' }]);
    await server.stop();
    expect(existsSync(dirname(server.dataDir))).toBe(false);
  });

  it('two servers at once get different ports and directories', async () => {
    const [a, b] = await Promise.all([startPostgres({ fast: true }), startPostgres({ fast: true })]);
    started.push(a, b);
    expect(a.port).not.toBe(b.port);
    expect(a.dataDir).not.toBe(b.dataDir);
    expect(await query(a.url, 'select 1 as one')).toEqual([{ one: 1 }]);
    expect(await query(b.url, 'select 1 as one')).toEqual([{ one: 1 }]);
    await Promise.all([a.stop(), b.stop()]);
  });

  // The shared server of the global setup, when the vitest config runs it (vitest.config.ts does).
  it.skipIf(!inject('postgresUrl'))('the global setup provides a working postgresUrl', async () => {
    expect(await query(inject('postgresUrl'), 'select 1 as one')).toEqual([{ one: 1 }]);
  });
});
