/**
 * A real, throwaway PostgreSQL server for a test run: `initdb` in a temporary directory, started
 * with `pg_ctl` on a free port on 127.0.0.1. As root (CI), initdb refuses to run, so the server
 * runs as the `postgres` system user on a directory that user owns.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

export interface PostgresServer {
  /** `postgres://postgres@127.0.0.1:<port>/postgres` */
  url: string;
  host: string;
  port: number;
  dataDir: string;
  /** Stops the server (fast shutdown) and removes its directory. */
  stop(): Promise<void>;
  /** Starts a stopped server again. */
  start(): Promise<void>;
  /** Stops (fast) and starts the server: clients see their connections dropped. */
  restart(): Promise<void>;
  /** Immediate shutdown, as a crash would (recovery runs at the next start). */
  kill(): Promise<void>;
  /** Creates a database and returns its URL. */
  createDatabase(name: string): Promise<string>;
}

function binDir(): string {
  try {
    return execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(
      'PostgreSQL is not installed: pg_config was not found (Debian: apt-get install postgresql)',
    );
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port')),
      );
    });
  });
}

/** Starts a server. `fast` turns off fsync (for benchmarks that measure the engine, not the disk). */
export async function startPostgres(options: { fast?: boolean } = {}): Promise<PostgresServer> {
  const bin = binDir();
  const root = mkdtempSync(join(tmpdir(), 'tandem-pg-'));
  const dataDir = join(root, 'data');
  const socketDir = join(root, 'socket');
  mkdirSync(socketDir);
  const asRoot = process.getuid?.() === 0;
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    chmodSync(root, 0o755);
    chownSync(root, uid, gid);
    chownSync(socketDir, uid, gid);
  }
  const runAsOwner = (command: string, args: string[]) => {
    const [file, argv] = asRoot
      ? ['runuser', ['-u', 'postgres', '--', join(bin, command), ...args]]
      : [join(bin, command), args];
    const result = spawnSync(file, argv, { encoding: 'utf8' });
    if (result.status !== 0) {
      let log = '';
      try {
        log = readFileSync(join(root, 'server.log'), 'utf8').slice(-4_000);
      } catch {}
      throw new Error(`${command} failed (${result.status}): ${result.stderr || result.stdout}\n${log}`);
    }
  };
  runAsOwner('initdb', ['-D', dataDir, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8']);
  const port = await freePort();
  const settings = [
    `-p ${port}`,
    '-c listen_addresses=127.0.0.1',
    `-c unix_socket_directories=${socketDir}`,
    '-c max_connections=200',
    ...(options.fast ? ['-c fsync=off', '-c synchronous_commit=off', '-c full_page_writes=off'] : []),
  ].join(' ');
  const logFile = join(root, 'server.log');
  const start = async () => {
    runAsOwner('pg_ctl', ['-D', dataDir, '-o', settings, '-l', logFile, '-w', '-t', '60', 'start']);
    await waitUntilReady(url);
  };
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  await start();
  let stopped = false;
  return {
    url,
    host: '127.0.0.1',
    port,
    dataDir,
    start,
    async restart() {
      runAsOwner('pg_ctl', ['-D', dataDir, '-m', 'fast', '-w', 'stop']);
      await start();
    },
    async kill() {
      runAsOwner('pg_ctl', ['-D', dataDir, '-m', 'immediate', '-w', 'stop']);
    },
    async createDatabase(name) {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
      } finally {
        await client.end();
      }
      return `postgres://postgres@127.0.0.1:${port}/${encodeURIComponent(name)}`;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      spawnSync(asRoot ? 'runuser' : join(bin, 'pg_ctl'), [
        ...(asRoot ? ['-u', 'postgres', '--', join(bin, 'pg_ctl')] : []),
        '-D',
        dataDir,
        '-m',
        'fast',
        '-w',
        'stop',
      ]);
      rmSync(root, { recursive: true, force: true });
    },
  };
}

async function waitUntilReady(url: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const client = new pg.Client({ connectionString: url });
    try {
      await client.connect();
      await client.query('SELECT 1');
      await client.end();
      return;
    } catch (error) {
      await client.end().catch(() => {});
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
