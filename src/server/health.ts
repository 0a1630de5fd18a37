import type { FastifyInstance } from 'fastify';
import { TandemError } from '../errors.js';
import type { ServerContext } from './context.js';

const PING_TIMEOUT_MS = 2_000;

/** GET /healthz: 200 when the store answers a ping in time, else 503 problem+json. */
export function healthRoutes(app: FastifyInstance, context: Pick<ServerContext, 'engine'>): void {
  app.get('/healthz', async () => {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        context.engine.ping(),
        new Promise((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`no answer within ${PING_TIMEOUT_MS} ms`)),
            PING_TIMEOUT_MS,
          );
        }),
      ]);
    } catch (error) {
      throw new TandemError('store-unreachable', `The store did not answer: ${(error as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
    return { status: 'ok' };
  });
}
