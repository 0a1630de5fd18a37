/**
 * The HTTP app: user trigger routes beside the management API, health and OpenAPI, with
 * problem+json errors everywhere. Built apart from the code that listens, so that tests create as
 * many isolated servers as they want and the CLI only adds `listen` and signal handling.
 */
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from 'fastify';
import type { Logger } from 'pino';
import { publicUrlOf, type ServerOptions } from '../define/config.js';
import type { Engine } from '../engine/engine.js';
import { SyncRunner } from '../engine/sync.js';
import type { SyncRecorderOptions } from '../engine/sync-recorder.js';
import { TandemError } from '../errors.js';
import { accessGuard } from './admin-auth.js';
import { activityRoutes } from './api/activity.js';
import { advisorRoutes } from './api/advisor.js';
import { eventRoutes } from './api/events.js';
import { instanceRoutes } from './api/instances.js';
import { integrationRoutes } from './api/integrations.js';
import { operationRoutes } from './api/operations.js';
import { overviewRoutes } from './api/overview.js';
import { pictureRoutes } from './api/picture.js';
import { runRoutes } from './api/run.js';
import { PROBLEM_HEADERS, type WithHeaders } from './auth-error.js';
import { callbackRoutes } from './callbacks.js';
import { ConnectionStats } from './connection-stats.js';
import { consoleRoutes } from './console.js';
import { ConsoleSessions } from './console-session.js';
import { ImmediatePolls, type ServerContext } from './context.js';
import { CredentialRing } from './credentials.js';
import { answerClientError, answerFramingErrors, headerFault } from './framing.js';
import { healthRoutes } from './health.js';
import { DEFAULT_MAX_DEPTH, decodeJsonBody, parseJsonBody } from './json-body.js';
import { bodyUnread, LingeringCloses } from './linger.js';
import { metricsRoutes } from './metrics.js';
import { buildOpenApi } from './openapi.js';
import { sendProblem, toTandemError } from './problem.js';
import { DEFAULT_MAX_QUEUE_DEPTH, QueueDepthGauge } from './queue-depth.js';
import { RouteTable } from './route-table.js';
import { managementTokens } from './tokens.js';
import { registerTriggers } from './triggers.js';

export interface AppOptions extends ServerOptions {
  engine: Engine;
  /** Batching of sync monitoring records. */
  syncRecorder?: SyncRecorderOptions;
  /** Default: the engine's logger. */
  logger?: Logger;
  /** `info` of the OpenAPI document. */
  openapi?: { title?: string; version?: string };
  /** The built console's directory; default console/dist of the package. */
  consoleRoot?: string;
  /** Runs the sync routes; default one made here (the test kit passes its own to flush its records). */
  runner?: SyncRunner;
}

const DEFAULT_BODY_LIMIT = 1024 * 1024;

/** JSON and `+json` media types (CloudEvents, merge-patch …), with or without parameters. */
const JSON_MEDIA_TYPE = /^application\/(?:[\w.-]+\+)?json(?:\s*;.*)?$/i;
const CHARSET = /;\s*charset\s*=\s*"?([^";\s]+)"?/i;

/**
 * Builds the app; call `listen()` on it (or `inject()` in a test). Refuses at once a trigger
 * route under Tandem's own paths, two integrations on one route, or a deadline above the cap.
 *
 * @example
 * const app = await buildApp({ engine });
 * await app.listen({ port: 3000, host: '0.0.0.0' });
 */
export async function buildApp(options: AppOptions): Promise<FastifyInstance> {
  const { engine } = options;
  const tokens = managementTokens(options);
  const logger = (options.logger ?? engine.logger).child({ component: 'http' });
  const maxDepth = options.maxBodyDepth ?? DEFAULT_MAX_DEPTH;
  const runner =
    options.runner ??
    new SyncRunner(engine, {
      logger,
      ...(options.maxDeadlineMs === undefined ? {} : { maxDeadlineMs: options.maxDeadlineMs }),
      ...(options.syncRecorder === undefined ? {} : { recorder: options.syncRecorder }),
    });
  const asyncIds = engine
    .listIntegrations()
    .filter((i) => i.mode !== 'sync')
    .map((i) => i.id);
  const gauge = new QueueDepthGauge(
    engine,
    asyncIds,
    {
      maxDepth: options.maxQueueDepth ?? DEFAULT_MAX_QUEUE_DEPTH,
      ...(options.queueDepthRefreshMs === undefined ? {} : { refreshMs: options.queueDepthRefreshMs }),
      ...(options.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: options.retryAfterSeconds }),
    },
    logger,
  );
  // Callback URLs begin with the public URL: the one named, else where this server listens.
  const publicUrl = publicUrlOf(options);
  if (publicUrl !== undefined) engine.setPublicUrl(publicUrl);
  const ring = CredentialRing.fromIntegrations(engine.listIntegrations(), tokens);
  const polls = new ImmediatePolls();
  engine.observe({ accepted: (id, mode, count) => mode !== 'sync' && polls.noteAccepted(id, count) });
  const connections = new ConnectionStats(engine);
  const context: ServerContext = { engine, runner, gauge, ring, polls, connections };
  const routes = new RouteTable();

  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    // Request logs would carry URLs and cost throughput; failures are logged by the error handler.
    logController: new LogController({ disableRequestLogging: true }),
    // One logger for all requests rather than a child per request: errors are logged with their
    // method, route and instance id instead of a request id.
    childLoggerFactory: (parent) => parent,
    bodyLimit: options.bodyLimit ?? DEFAULT_BODY_LIMIT,
    requestIdHeader: false,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    frameworkErrors: (error, _request, reply) => sendProblem(reply, toTandemError(error).error),
    clientErrorHandler: answerClientError,
    // Node would answer a missing Host with a bare 400; the hook below answers with a problem.
    http: { requireHostHeader: false },
  });
  answerFramingErrors(app.server);

  // First of all hooks: a request without one Host is refused before auth or routing.
  app.addHook('onRequest', (request, _reply, done) => {
    done(headerFault(request.raw) ?? undefined);
  });

  app.addHook('onRoute', (route) => routes.add(route.method, route.url));
  app.removeAllContentTypeParsers();
  // Read as bytes: decoding to a string first would replace bytes that are not UTF-8 with U+FFFD.
  app.addContentTypeParser(JSON_MEDIA_TYPE, { parseAs: 'buffer' }, (request, body, done) => {
    try {
      const type = request.headers['content-type'] ?? '';
      // Parameters follow a semicolon; most clients send none.
      const charset = type.includes(';') ? CHARSET.exec(type)?.[1]?.toLowerCase() : undefined;
      if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
        throw new TandemError('unsupported-media-type', `Charset ${charset} is not supported; send UTF-8`);
      }
      // Read once: Fastify builds a new routeOptions object on every read.
      const { config } = request.routeOptions;
      config.verifyBody?.(request, body as Buffer);
      if ((body as Buffer).length === 0 && config.emptyBodyAllowed) {
        done(null, undefined);
        return;
      }
      done(null, parseJsonBody(decodeJsonBody(body as Buffer), maxDepth));
    } catch (error) {
      done(error as Error, undefined);
    }
  });

  app.setErrorHandler((error, request, reply) => {
    const { error: tandem, unexpected } = toTandemError(error);
    const { integrationId } = request.routeOptions.config;
    // Not a 429: under back-pressure, a line per refused request would add to the load.
    if (integrationId !== undefined && tandem.status < 500 && tandem.status !== 429) {
      engine.observer.refused(integrationId, tandem);
    }
    if (unexpected || tandem.status >= 500) {
      // The route pattern, not the URL: a query string may carry what must not be logged.
      request.log.error(
        { err: error, method: request.method, route: request.routeOptions.url },
        'request failed',
      );
    }
    return sendProblem(reply, tandem, (error as WithHeaders)[PROBLEM_HEADERS] ?? {});
  });

  const sessions = tokens.length === 0 ? null : new ConsoleSessions(tokens);
  const guard = accessGuard(tokens, ring, sessions);
  app.decorateRequest('access', null);
  app.setNotFoundHandler(async (request: FastifyRequest, reply: FastifyReply) => {
    const path = (request.url.split('?', 1)[0] ?? '').slice(0, 200);
    // Unknown /api paths are guarded too, so the API's shape is not probed without the token.
    if (path === '/api' || path.startsWith('/api/')) await guard(request);
    const allowed = routes.allowedMethods(path);
    // A route that takes this method but found nothing (a file under /console/) is a 404.
    if (allowed.length > 0 && !allowed.includes(request.method)) {
      return sendProblem(
        reply,
        new TandemError(
          'method-not-allowed',
          `${request.method} is not allowed on ${path}; allowed: ${allowed.join(', ')}`,
          {
            allowed,
          },
        ),
        { allow: allowed.join(', ') },
      );
    }
    return sendProblem(reply, new TandemError('route-not-found', `No route for ${request.method} ${path}`));
  });

  registerTriggers(app, context);
  await app.register(
    async (scope) => {
      scope.addHook('onRequest', guard);
      integrationRoutes(scope, context);
      instanceRoutes(scope, context);
      activityRoutes(scope, context);
      advisorRoutes(scope);
      operationRoutes(scope, context);
      eventRoutes(scope, context);
      overviewRoutes(scope, context);
      runRoutes(scope, context);
      pictureRoutes(scope, context);
    },
    { prefix: '/api' },
  );
  callbackRoutes(app, context);
  healthRoutes(app, context);
  await consoleRoutes(app, options.consoleRoot, sessions && { sessions, ring });
  metricsRoutes(app, context);
  const openapi = JSON.stringify(
    buildOpenApi(engine.listIntegrations(), { ...options.openapi, adminToken: tokens.length > 0 }),
  );
  app.get('/openapi.json', (_request, reply) => reply.type('application/json; charset=utf-8').send(openapi));

  // While closing, every answer ends its connection: a client's keep-alive connection would
  // otherwise hold the close open until its idle timeout.
  let closing = false;
  const lingering = new LingeringCloses();
  app.addHook('preClose', async () => {
    closing = true;
    lingering.closeAll();
  });
  app.addHook('onSend', (request, reply, payload, done) => {
    if (closing) reply.header('connection', 'close');
    // An answer before the whole body (a 413, a refused credential) ends the connection, after
    // reading what the client still sends within bounds, so that the client gets to read it.
    if (bodyUnread(request.raw)) {
      reply.header('connection', 'close');
      lingering.hold(request.raw);
    }
    done(null, payload);
  });
  app.addHook('onReady', () => gauge.start());
  if (publicUrl === undefined) {
    app.addHook('onListen', (done) => {
      const address = app.server.address();
      if (address !== null && typeof address === 'object') {
        engine.setPublicUrl(`http://${urlHost(address.address)}:${address.port}`, { fallback: true });
      }
      done();
    });
  }
  app.addHook('onClose', async () => {
    gauge.stop();
    await runner.flush();
  });
  if (tokens.length === 0) {
    logger.warn(
      'no admin token configured (TANDEM_ADMIN_TOKEN, server.tokens): the management API at /api and the console answer this machine only',
    );
  }
  return app;
}

/** A listening address as a URL's host: every address is reached as localhost, IPv6 in brackets. */
function urlHost(address: string): string {
  if (address === '0.0.0.0' || address === '::') return 'localhost';
  return address.includes(':') ? `[${address}]` : address;
}
