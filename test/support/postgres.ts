/**
 * A real, throwaway PostgreSQL server for tests and benchmarks.
 *
 * `startPostgres()` runs `initdb` in a fresh temporary directory and starts the server with
 * `pg_ctl` on a free TCP port on 127.0.0.1 (and a Unix socket inside that directory). Clients
 * connect as user `postgres` without a password (`trust`). `stop()` shuts it down and deletes the
 * directory.
 *
 * As root (CI), `initdb` refuses to run, so `initdb` and `pg_ctl` run as the `postgres` system
 * user (`runuser -u postgres --`) on a directory that user owns. As any other user they run
 * directly.
 *
 * The binaries are found with `pg_config --bindir` (Debian: /usr/lib/postgresql/15/bin).
 *
 * A server that is still running when the process exits is shut down (immediately) and its
 * directory removed, so a test that forgets `stop()` does not leave a postgres behind.
 */
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

export interface PostgresServer {
  /** `postgres://postgres@127.0.0.1:<port>/postgres` */
  url: string;
  /** Always `127.0.0.1`. */
  host: string;
  port: number;
  /** The cluster's data directory (inside the temporary directory that `stop()` removes). */
  dataDir: string;
  /** Fast shutdown (`pg_ctl stop -m fast`), then removes the temporary directory. Idempotent. */
  stop(): Promise<void>;
  /** Fast shutdown and start again on the same port: clients see their connections dropped. */
  restart(): Promise<void>;
  /** Immediate shutdown (`pg_ctl stop -m immediate`), as a crash: recovery runs at the next `start()`. */
  kill(): Promise<void>;
  /** Starts the server after `kill()` (or a shutdown); does nothing if it is running. */
  start(): Promise<void>;
  /** Creates an empty database and returns its URL. */
  createDatabase(name: string): Promise<string>;
}

export interface StartPostgresOptions {
  /**
   * Trade durability for speed: `fsync=off`, `synchronous_commit=off`, `full_page_writes=off`.
   * Default `false`: durable settings, which crash tests (`kill()`) rely on.
   */
  fast?: boolean;
}

const HOST = '127.0.0.1';
const PG_CTL_TIMEOUT_S = 60;

/** Starts a throwaway server; see the module comment. */
export async function startPostgres(opts: StartPostgresOptions = {}): Promise<PostgresServer> {
  const bin = binDir();
  const root = mkdtempSync(join(tmpdir(), 'tandem-pg-'));
  try {
    return await initAndStart(bin, root, opts);
  } catch (error) {
    // Nothing must survive a failed start: no server, no directory.
    stopSync(bin, root, join(root, 'data'));
    rmSync(root, { recursive: true, force: true });
    throw error;
  }
}

async function initAndStart(bin: string, root: string, opts: StartPostgresOptions): Promise<PostgresServer> {
  const dataDir = join(root, 'data');
  const socketDir = join(root, 'socket');
  const logFile = join(root, 'server.log');
  mkdirSync(socketDir);
  chmodSync(root, 0o700);
  if (isRoot()) {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
    chownSync(root, uid, gid);
    chownSync(socketDir, uid, gid);
  }

  /** The server log from character `from` on (at most its last 8,000 characters). */
  const readLog = (from = 0) => {
    try {
      return readFileSync(logFile, 'utf8').slice(from).slice(-8_000);
    } catch {
      return '';
    }
  };
  const pgCtl = (args: string[]) => run(bin, root, 'pg_ctl', ['-D', dataDir, ...args]);
  /** Whether a postmaster runs on the data directory (`pg_ctl status` exits with 3 if not). */
  const running = async () => (await pgCtl(['status'])).code === 0;

  const initdbArgs = ['-D', dataDir, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8'];
  const init = await run(bin, root, 'initdb', [...initdbArgs, '--locale=C']);
  if (init.code !== 0) {
    const hint = isRoot()
      ? ' (as root: the postgres user must be able to reach os.tmpdir(); set TMPDIR?)'
      : '';
    throw new Error(`initdb failed (exit ${init.code}) in ${root}${hint}:\n${init.output}`);
  }

  const startOn = async (port: number) => {
    const settings = [
      `-p ${port}`,
      `-c listen_addresses=${HOST}`,
      `-c unix_socket_directories='${socketDir}'`,
      '-c max_connections=200',
      ...(opts.fast ? ['-c fsync=off', '-c synchronous_commit=off', '-c full_page_writes=off'] : []),
    ].join(' ');
    const logStart = existsSync(logFile) ? readFileSync(logFile, 'utf8').length : 0;
    const started = await pgCtl([
      '-o',
      settings,
      '-l',
      logFile,
      '-w',
      '-t',
      String(PG_CTL_TIMEOUT_S),
      'start',
    ]);
    if (started.code !== 0) {
      // pg_ctl may give up while a postmaster still starts: make sure none is left.
      await pgCtl(['-m', 'immediate', '-w', 'stop']);
      const log = readLog(logStart);
      throw new StartError(
        `PostgreSQL did not start on ${HOST}:${port} (pg_ctl exit ${started.code}):\n${started.output}\n` +
          `--- server log ${logFile} (this start) ---\n${log || '(empty)'}`,
        /could not bind|address already in use/i.test(log),
      );
    }
    const url = serverUrl(port, 'postgres');
    try {
      await waitForConnection(url);
    } catch (error) {
      await pgCtl(['-m', 'immediate', '-w', 'stop']);
      throw new Error(
        `PostgreSQL started on ${HOST}:${port} but refuses connections: ${String(error)}\n` +
          `--- server log ${logFile} (this start) ---\n${readLog(logStart) || '(empty)'}`,
      );
    }
  };

  // The free port can be taken by someone else before the server binds it: try another one.
  let port = 0;
  for (let attempt = 1; ; attempt++) {
    port = await freePort();
    try {
      await startOn(port);
      break;
    } catch (error) {
      if (!(error instanceof StartError && error.portTaken && attempt < 5)) throw error;
    }
  }

  let removed = false;
  live.set(root, { bin, dataDir });
  const assertNotRemoved = () => {
    if (removed) throw new Error(`PostgreSQL server ${HOST}:${port} was stopped and removed`);
  };
  const shutdown = async (mode: 'fast' | 'immediate') => {
    const pid = postmasterPid(dataDir);
    const result = await pgCtl(['-m', mode, '-w', '-t', String(PG_CTL_TIMEOUT_S), 'stop']);
    if (result.code !== 0 && (await running())) {
      throw new Error(`pg_ctl stop -m ${mode} failed (exit ${result.code}):\n${result.output}`);
    }
    // pg_ctl returns once postmaster.pid is gone, a moment before the process itself has exited.
    if (pid) await waitForExit(pid);
  };

  return {
    url: serverUrl(port, 'postgres'),
    host: HOST,
    port,
    dataDir,
    async start() {
      assertNotRemoved();
      if (!(await running())) await startOn(port);
    },
    async restart() {
      assertNotRemoved();
      await shutdown('fast');
      await startOn(port);
    },
    async kill() {
      assertNotRemoved();
      await shutdown('immediate');
    },
    async createDatabase(name) {
      assertNotRemoved();
      const client = new pg.Client({ connectionString: serverUrl(port, 'postgres') });
      await client.connect();
      try {
        await client.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
      } finally {
        await client.end();
      }
      return serverUrl(port, name);
    },
    async stop() {
      if (removed) return;
      removed = true;
      try {
        await shutdown('fast').catch(() => shutdown('immediate'));
      } finally {
        live.delete(root);
        rmSync(root, { recursive: true, force: true });
      }
    },
  };
}

class StartError extends Error {
  constructor(
    message: string,
    readonly portTaken: boolean,
  ) {
    super(message);
  }
}

const serverUrl = (port: number, database: string) =>
  `postgres://postgres@${HOST}:${port}/${encodeURIComponent(database)}`;

const isRoot = () => process.getuid?.() === 0;

let cachedBinDir: string | undefined;
function binDir(): string {
  if (cachedBinDir) return cachedBinDir;
  let dir = '';
  try {
    dir = execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
  } catch {}
  // pg_config can be missing, or come from libpq-dev of another version than the server: fall back
  // to the newest server Debian installed under /usr/lib/postgresql/<major>/bin.
  if (!existsSync(join(dir, 'initdb'))) {
    const majors = existsSync('/usr/lib/postgresql')
      ? readdirSync('/usr/lib/postgresql')
          .filter((v) => existsSync(join('/usr/lib/postgresql', v, 'bin', 'initdb')))
          .sort((a, b) => Number(b) - Number(a))
      : [];
    if (majors[0]) dir = join('/usr/lib/postgresql', majors[0], 'bin');
  }
  if (!existsSync(join(dir, 'initdb'))) {
    throw new Error(
      'PostgreSQL server binaries not found (pg_config --bindir has no initdb). ' +
        'Debian: apt-get install postgresql',
    );
  }
  cachedBinDir = dir;
  return dir;
}

/** Runs a PostgreSQL binary, as the `postgres` user when we are root; never rejects. */
function run(
  bin: string,
  cwd: string,
  command: string,
  args: string[],
): Promise<{ code: number; output: string }> {
  const [file, argv] = isRoot()
    ? ['runuser', ['-u', 'postgres', '--', join(bin, command), ...args]]
    : [join(bin, command), args];
  return new Promise((resolve) => {
    // cwd: the postgres user may not be allowed into ours (e.g. /root).
    execFile(file, argv, { cwd, encoding: 'utf8' }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ code, output: `${stdout}${stderr}`.trim() || String(error ?? '') });
    });
  });
}

/** Synchronous immediate shutdown, for a failed start and for process exit. */
function stopSync(bin: string, root: string, dataDir: string): void {
  if (!existsSync(join(dataDir, 'postmaster.pid'))) return;
  const args = ['-D', dataDir, '-m', 'immediate', '-w', 'stop'];
  const [file, argv] = isRoot()
    ? ['runuser', ['-u', 'postgres', '--', join(bin, 'pg_ctl'), ...args]]
    : [join(bin, 'pg_ctl'), args];
  spawnSync(file, argv, { cwd: root, stdio: 'ignore' });
}

/**
 * Servers started and not yet stopped, by temporary directory: shut down at process exit. Kept on
 * `globalThis` so that one exit hook serves every copy of this module (vitest may load it per file).
 */
type LiveServers = Map<string, { bin: string; dataDir: string }>;
const LIVE = Symbol.for('tandem.test.postgres.live');
const globals = globalThis as { [LIVE]?: LiveServers };
const live: LiveServers = globals[LIVE] ?? registerLiveServers();

function registerLiveServers(): LiveServers {
  const servers: LiveServers = new Map();
  globals[LIVE] = servers;
  process.once('exit', () => {
    for (const [root, { bin, dataDir }] of servers) {
      stopSync(bin, root, dataDir);
      rmSync(root, { recursive: true, force: true });
    }
  });
  return servers;
}

/** The postmaster's pid from the first line of postmaster.pid, if there is one. */
function postmasterPid(dataDir: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
    return pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Waits (at most 10 s) until the process has exited; a zombie waiting to be reaped counts as exited. */
async function waitForExit(pid: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    try {
      process.kill(pid, 0);
    } catch {
      return; // ESRCH: gone
    }
    try {
      // Linux: field 3 of /proc/<pid>/stat is the state; Z is a zombie.
      if (/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))) return;
    } catch {
      if (process.platform === 'linux') return; // gone meanwhile
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      server.close(() =>
        typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no free port')),
      );
    });
  });
}

/** `pg_ctl -w` saw the server accept connections; this checks a real query works for our client. */
async function waitForConnection(url: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
    try {
      await client.connect();
      await client.query('SELECT 1');
      await client.end();
      return;
    } catch (error) {
      await client.end().catch(() => {});
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}
