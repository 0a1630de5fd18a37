import type { FastifyInstance } from 'fastify';
import type { z } from 'zod';
import { decide } from '../../advisor/decide.js';
import type { InputIssue } from '../../errors.js';
import { assertValid, validatePart } from '../input.js';
import { decideBody } from './schemas.js';

/** POST /api/advisor/decide: the decision table as a service. */
export function advisorRoutes(app: FastifyInstance): void {
  app.post('/advisor/decide', async (request) => {
    const issues: InputIssue[] = [];
    const body = validatePart(decideBody, request.body, 'body', issues) as z.infer<typeof decideBody>;
    assertValid(issues);
    return decide(body);
  });
}
