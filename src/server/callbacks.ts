/**
 * POST /callbacks/:token: a partner answers the URL that `ctx.callback()` handed out, and the
 * waiting instance resumes with the body. Outside /api and its admin token: the token in the URL
 * is the credential (single use, compared with a stored hash in constant time by the engine).
 *
 * The URL's secret part must never reach a log. Requests are not logged by the server (see
 * `buildApp`), failures are logged with the route pattern, and the line this route writes for
 * each answer names the callback by its id only.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Json } from '../model.js';
import { CALLBACK_ROUTE } from './api/routes.js';
import { serve } from './api/serve.js';
import type { ServerContext } from './context.js';

/** The path of a callback request as it may be logged: the token's id, its secret masked. */
function loggedCallbackPath(url: string): string {
  const path = url.split('?', 1)[0] ?? '';
  const token = path.slice(path.lastIndexOf('/') + 1);
  const dot = token.indexOf('.');
  // Anything after the id (or a token without one) may be a secret: only a plain id is kept.
  const id = dot > 0 ? token.slice(0, dot) : '';
  return `/callbacks/${/^[A-Za-z0-9_-]{1,64}$/.test(id) ? id : ''}.***`;
}

export function callbackRoutes(app: FastifyInstance, context: ServerContext): void {
  const { engine } = context;
  const log = (request: FastifyRequest, status: number, instanceId: string | null) =>
    request.log.info(
      { method: request.method, path: loggedCallbackPath(request.url), status, instanceId },
      'callback answered',
    );

  serve(app, CALLBACK_ROUTE, async (request, reply) => {
    const body = (request.body ?? null) as Json;
    try {
      const { instanceId } = await engine.answerCallback(request.params.token, body);
      log(request, 202, instanceId);
      return reply.code(202).send({ status: 'resumed' as const, instanceId });
    } catch (error) {
      const status = (error as { status?: unknown }).status;
      log(request, typeof status === 'number' ? status : 500, null);
      throw error;
    }
  });
}
