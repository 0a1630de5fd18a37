/**
 * The only HTTP a worker process serves (`tandem start --role worker`): /healthz for the process
 * manager or load balancer and /metrics for Prometheus, on a port of their own. No trigger route and
 * no management API: a worker is not meant to be reachable by callers.
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import type { Engine } from '../engine/engine.js';
import { TandemError } from '../errors.js';
import { healthRoutes } from './health.js';
import { metricsRoutes } from './metrics.js';
import { sendProblem, toTandemError } from './problem.js';

export async function buildHealthApp(options: { engine: Engine }): Promise<FastifyInstance> {
  const { engine } = options;
  const logger = engine.logger.child({ component: 'health' });
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    requestIdHeader: false,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    frameworkErrors: (error, _request, reply) => sendProblem(reply, toTandemError(error).error),
  });
  app.setErrorHandler((error, request, reply) => {
    const { error: tandem, unexpected } = toTandemError(error);
    if (unexpected) request.log.error({ err: error, route: request.routeOptions.url }, 'request failed');
    return sendProblem(reply, tandem);
  });
  app.setNotFoundHandler((request, reply) => {
    const path = (request.url.split('?', 1)[0] ?? '').slice(0, 200);
    return sendProblem(
      reply,
      new TandemError(
        'route-not-found',
        `No route for ${request.method} ${path}: a worker answers GET /healthz and GET /metrics only`,
      ),
    );
  });
  healthRoutes(app, { engine });
  metricsRoutes(app, { engine });
  return app;
}
