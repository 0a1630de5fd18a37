import type { FastifyInstance } from 'fastify';
import { decide } from '../../advisor/decide.js';
import { API_ROUTES } from './routes.js';
import { serve } from './serve.js';

/** POST /api/advisor/decide: the decision table as a service. */
export function advisorRoutes(app: FastifyInstance): void {
  serve(app, API_ROUTES.decidePattern, async (request) => decide(request.body));
}
