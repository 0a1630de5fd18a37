/**
 * POST /api/events: a business event from another application (an employee created, a payment
 * booked), which resumes the instances waiting for it (`ctx.waitForEvent`). The matching and the
 * no-lost-wake-up guarantee are the engine's and the store's; this route only reads the request.
 */
import type { FastifyInstance } from 'fastify';
import type { SendEvent } from '../../engine/waits.js';
import type { ServerContext } from '../context.js';
import { inPart } from '../input.js';
import { actorIn } from './access.js';
import { API_ROUTES } from './routes.js';
import { serve } from './serve.js';

export function eventRoutes(app: FastifyInstance, context: ServerContext): void {
  const { engine } = context;

  serve(app, API_ROUTES.sendEvent, async (request, reply) => {
    const { name, payload, id } = request.body;
    const event: SendEvent = { name };
    if (payload !== undefined) event.payload = payload;
    if (id !== undefined) event.id = id;
    try {
      const sent = await engine.sendEvent(event, actorIn(request));
      return reply.code(202).send(sent);
    } catch (error) {
      throw inPart(error, 'body');
    }
  });
}
