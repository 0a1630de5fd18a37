/**
 * `tandem start`: its options (role, workers, ports, logging; each flag over its environment
 * variable) and the process's life, from loading the config to a graceful exit on SIGTERM. With
 * `--workers N` (and no role) the command supervises an api process and N worker processes
 * (./supervise.ts), each of them this file again with its role.
 */
import { parseArgs } from 'node:util';
import type { FastifyInstance } from 'fastify';
import { Engine } from '../engine/engine.js';
import { DEFAULT_MAX_DEADLINE_MS } from '../engine/sync.js';
import { checkLogFormat, checkLogLevel, createLogger, type LogFormat, type LogLevel } from '../logging.js';
import { buildApp } from '../server/app.js';
import { buildHealthApp } from '../server/health-app.js';
import { UsageError } from './exit.js';
import { engineOptionsOf, loadConfig } from './load-config.js';

/**
 * What a process does. `all`: HTTP and work. `api`: triggers and the management API; accepts, but
 * claims nothing and fires no cron slot. `worker`: runs instances and fires cron slots, with no
 * HTTP but health and metrics.
 */
const ROLES = ['all', 'api', 'worker'] as const;
type Role = (typeof ROLES)[number];

export interface StartOptions {
  port: number;
  host: string;
  config?: string;
  /** Default `all`. */
  role?: Role;
  /**
   * Worker processes beside one api process, supervised by this one (./supervise.ts); 0 (or
   * absent): this process does the role itself. Only without an explicit role.
   */
  workers?: number;
  /** A worker's /healthz and /metrics port; default `port`. */
  healthPort?: number;
  /** Default `info`. */
  logLevel?: LogLevel;
  /** Default `json`. */
  logFormat?: LogFormat;
}

/** The options of `tandem start` (and `tandem dev`, which passes them on). */
const START_ARGS = {
  port: { type: 'string' },
  host: { type: 'string' },
  config: { type: 'string' },
  role: { type: 'string' },
  workers: { type: 'string' },
  'health-port': { type: 'string' },
  'log-level': { type: 'string' },
  'log-format': { type: 'string' },
} as const;

/**
 * Worker processes `tandem start` runs beside an api process when neither a role nor a number is
 * given: none, one process doing both. On SQLite the split layout measured slower (the processes
 * wait for each other's write lock, and each claim is a transaction of its own; docs/deploy.md).
 */
const DEFAULT_WORKERS = 0;

/** Reads `tandem start`'s options, each flag over its environment variable; a wrong value throws. */
export function parseStartArgs(args: string[], env: NodeJS.ProcessEnv = process.env): StartOptions {
  const { values } = parseArgs({ args, options: START_ARGS, strict: true });
  const explicitRole = values.role ?? env.TANDEM_ROLE;
  if (values.workers !== undefined && explicitRole !== undefined) {
    throw new UsageError(
      `--workers is for a supervised start: with --role ${explicitRole}, this process is that one role`,
    );
  }
  const workersText = explicitRole === undefined ? (values.workers ?? env.TANDEM_WORKERS) : undefined;
  const workers = workersText === undefined ? DEFAULT_WORKERS : countOf(workersText, '--workers');
  const roleText = explicitRole ?? 'all';
  if (!(ROLES as readonly string[]).includes(roleText)) {
    throw new UsageError(`--role ${roleText} is not a role: use all, api or worker`);
  }
  const role = roleText as Role;
  if (values['health-port'] !== undefined && role !== 'worker') {
    throw new UsageError(
      `--health-port is for --role worker: with --role ${role}, /healthz and /metrics answer on --port`,
    );
  }
  const healthText = values['health-port'] ?? (role === 'worker' ? env.TANDEM_HEALTH_PORT : undefined);
  return {
    port: portOf(values.port ?? env.TANDEM_PORT ?? '3000', '--port'),
    host: values.host ?? env.TANDEM_HOST ?? '0.0.0.0',
    ...(values.config === undefined ? {} : { config: values.config }),
    role,
    ...(explicitRole === undefined && workers > 0 ? { workers } : {}),
    ...(healthText === undefined ? {} : { healthPort: portOf(healthText, '--health-port') }),
    logLevel: asUsage(() =>
      checkLogLevel(values['log-level'] ?? env.TANDEM_LOG_LEVEL ?? 'info', '--log-level'),
    ),
    logFormat: asUsage(() =>
      checkLogFormat(values['log-format'] ?? env.TANDEM_LOG_FORMAT ?? 'json', '--log-format'),
    ),
  };
}

/** A value a person typed that does not fit is a usage error (exit code 2). */
function asUsage<T>(check: () => T): T {
  try {
    return check();
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

function countOf(text: string, flag: string): number {
  if (!/^\d{1,3}$/.test(text)) throw new UsageError(`${flag} ${text} is not a number of processes`);
  return Number(text);
}

function portOf(text: string, flag: string): number {
  const port = Number(text);
  if (!/^\d{1,5}$/.test(text) || port > 65_535) throw new UsageError(`${flag} ${text} is not a port number`);
  return port;
}

/** A PostgreSQL store: made to be shared by processes. */
function sharedStore(store: string | undefined = process.env.TANDEM_STORE_URL): boolean {
  return store !== undefined && /^postgres(ql)?:\/\//.test(store);
}

/** How long an engine's running attempts get to finish at shutdown before their leases are released. */
const ENGINE_GRACE_MS = 10_000;

/**
 * `tandem start`: the engine and the HTTP server in one process, or one of them (`--role`).
 * SIGTERM (or SIGINT) stops claiming work, ends activity streams, stops accepting connections,
 * lets in-flight requests finish (each sync request is bounded by its deadline), writes pending
 * sync records, lets running attempts finish within a grace period and releases the leases of the
 * rest, so that another process takes them over at once.
 */
export async function start(options: StartOptions): Promise<void> {
  const supervisor = supervisorChannel();
  const config = await loadConfig(options.config);
  // A store only this process can open (SQLite in memory) cannot be split: the api does all.
  const unshared = (config.store ?? process.env.TANDEM_STORE_URL) === 'sqlite::memory:';
  const role = supervisor && unshared && options.role === 'api' ? 'all' : (options.role ?? 'all');
  const base = createLogger({ level: options.logLevel ?? 'info', format: options.logFormat ?? 'json' });
  // Under a supervisor the lines of every process go out merged: each says whose it is.
  const logger = supervisor ? base.child({ role }) : base;
  const engine = await Engine.create({
    ...engineOptionsOf(config),
    ...(role === 'api' ? { worker: false, scheduler: false } : {}),
    // Connection limits hold for all processes of a PostgreSQL store, and of a SQLite file when
    // the work is split into processes (a role each).
    ...(role !== 'all' || sharedStore(config.store) ? { sharedLimits: true } : {}),
    shutdownGraceMs: ENGINE_GRACE_MS,
    logger,
  });
  let app: FastifyInstance;
  const port = role === 'worker' ? (options.healthPort ?? options.port) : options.port;
  try {
    app = role === 'worker' ? await buildHealthApp({ engine }) : await buildApp({ engine, ...config.server });
    engine.start();
    await app.listen({ port, host: options.host });
  } catch (error) {
    await engine.stop(0);
    throw error;
  }
  const address = app.server.address();
  const bound = typeof address === 'object' && address ? address.port : port;
  logger.info(
    {
      ...(supervisor ? {} : { role }),
      port: bound,
      host: options.host,
      integrations: config.integrations.length,
    },
    'tandem listening',
  );
  if (role === 'worker') {
    process.stdout.write(`Tandem worker: health and metrics on http://${options.host}:${bound}/healthz\n`);
  } else {
    process.stdout.write(`Tandem listening on http://${options.host}:${bound}\n`);
    process.stdout.write(`Console: http://${consoleHost(options.host)}:${bound}/console/\n`);
  }

  let stopping = false;
  const stop = async (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'stopping: no new connections, finishing in-flight requests');
    const limit = (config.server?.maxDeadlineMs ?? DEFAULT_MAX_DEADLINE_MS) + ENGINE_GRACE_MS + 5_000;
    const watchdog = setTimeout(() => {
      logger.error({ limitMs: limit }, 'shutdown took too long; exiting');
      process.exit(1);
    }, limit);
    watchdog.unref();
    try {
      // Claim nothing more first: work due now is left to other processes (or the next start),
      // while requests in flight still commit what they hand off.
      await engine.stopClaiming();
      await app.close();
      await engine.stop();
      logger.info('stopped');
      process.exit(0);
    } catch (error) {
      logger.error({ err: error }, 'shutdown failed');
      process.exit(1);
    }
  };
  process.once('SIGTERM', (signal) => void stop(signal));
  process.once('SIGINT', (signal) => void stop(signal));
  if (supervisor) {
    // A supervisor that is gone (SIGKILLed) leaves no orphan: stop at once, as a crash would,
    // releasing the leases held (the store recovers any that are not) and exiting non-zero.
    process.once('disconnect', () => {
      setTimeout(() => process.exit(1), 2_000).unref();
      process.stdout.on('error', () => {});
      process.stderr.on('error', () => {});
      void engine
        .stop(0)
        .catch(() => {})
        .finally(() => process.exit(1));
    });
    supervisor({ type: 'tandem:ready', role, pid: process.pid, port: bound, shared: !unshared });
  }
}

/** What a child of a supervised `tandem start` tells its supervisor once it listens. */
export interface ReadyMessage {
  type: 'tandem:ready';
  role: Role;
  pid: number;
  port: number;
  /** False when the store cannot be shared between processes: the api process does all. */
  shared: boolean;
}

/** The channel to a supervising `tandem start` (./supervise.ts), when this process has one. */
function supervisorChannel(): ((message: ReadyMessage) => void) | null {
  if (process.env.TANDEM_SUPERVISED !== '1' || !process.send || !process.connected) return null;
  const send = process.send.bind(process);
  return (message) => {
    if (process.connected) send(message, () => {});
  };
}

/** Where a browser on this machine reaches a server listening on every address. */
function consoleHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return 'localhost';
  return host.includes(':') ? `[${host}]` : host;
}
