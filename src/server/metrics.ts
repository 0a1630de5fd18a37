import type { FastifyInstance } from 'fastify';
import { createMetrics } from '../metrics.js';
import type { ServerContext } from './context.js';

/** GET /metrics in the Prometheus text format. */
export function metricsRoutes(app: FastifyInstance, context: Pick<ServerContext, 'engine'>): void {
  const metrics = createMetrics(context.engine);
  app.get('/metrics', async (_request, reply) =>
    reply.type(metrics.contentType).send(await metrics.render()),
  );
}
