import pino from 'pino';
import { Engine } from '../engine/engine.js';
import { DEFAULT_MAX_DEADLINE_MS } from '../engine/sync.js';
import { buildApp } from '../server/app.js';
import { engineOptionsOf, loadConfig } from './load-config.js';

export interface StartOptions {
  port: number;
  host: string;
  config?: string;
}

/** How long an engine's running attempts get to finish at shutdown before their leases are released. */
const ENGINE_GRACE_MS = 10_000;

/**
 * `tandem start`: the engine and the HTTP server in one process. SIGTERM (or SIGINT) stops
 * claiming work, ends activity streams, stops accepting connections, lets in-flight requests
 * finish (each sync request is bounded by its deadline), writes pending sync records, lets running attempts finish within a grace period and
 * releases the leases of the rest, so that another process takes them over at once.
 */
export async function start(options: StartOptions): Promise<void> {
  const logger = pino({ level: process.env.TANDEM_LOG_LEVEL ?? 'info' });
  const config = await loadConfig(options.config);
  const engine = await Engine.create({
    ...engineOptionsOf(config),
    shutdownGraceMs: ENGINE_GRACE_MS,
    logger,
  });
  let app: Awaited<ReturnType<typeof buildApp>>;
  try {
    app = await buildApp({ engine, ...config.server });
    engine.start();
    await app.listen({ port: options.port, host: options.host });
  } catch (error) {
    await engine.stop(0);
    throw error;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  logger.info({ port, host: options.host, integrations: config.integrations.length }, 'tandem listening');
  process.stdout.write(`Tandem listening on http://${options.host}:${port}\n`);
  process.stdout.write(`Console: http://${consoleHost(options.host)}:${port}/console/\n`);

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
}

/** Where a browser on this machine reaches a server listening on every address. */
function consoleHost(host: string): string {
  if (host === '0.0.0.0' || host === '::') return 'localhost';
  return host.includes(':') ? `[${host}]` : host;
}
