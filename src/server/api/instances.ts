import type { FastifyInstance } from 'fastify';
import type { InputIssue } from '../../errors.js';
import type { ServerContext } from '../context.js';
import { assertValid, inPart, validatePart } from '../input.js';
import { redactDetail, redactInstance } from './redact.js';
import {
  bulkRerunBody,
  instanceIdParams,
  listInstancesQuery,
  rerunBody,
  toInstanceFilter,
} from './schemas.js';

/** Listing, detail, rerun (one and bulk) and cancel of instances. */
export function instanceRoutes(app: FastifyInstance, context: ServerContext): void {
  const { engine } = context;
  const integrationOf = (id: string) => engine.listIntegrations().find((i) => i.id === id);

  app.get('/instances', async (request) => {
    const issues: InputIssue[] = [];
    const query = validatePart(listInstancesQuery, request.query, 'query', issues) as ReturnType<
      typeof listInstancesQuery.parse
    >;
    assertValid(issues);
    const page = await engine.listInstances({
      ...toInstanceFilter(query),
      limit: query.limit,
      cursor: query.cursor ?? null,
    });
    return { ...page, items: page.items.map((i) => redactInstance(i, integrationOf(i.integrationId))) };
  });

  app.get('/instances/:id', async (request) => {
    const { id } = idOf(request.params);
    const detail = await engine.getDetail(id);
    const { instance } = detail;
    if (instance.mode !== 'sync') {
      context.polls.noteRead(instance.integrationId, id, engine.clock.now() - instance.createdAt);
    }
    return redactDetail(detail, integrationOf(instance.integrationId));
  });

  app.post('/instances/:id/rerun', async (request) => {
    const { id } = idOf(request.params);
    const issues: InputIssue[] = [];
    const body = validatePart(rerunBody, request.body ?? {}, 'body', issues) as ReturnType<
      typeof rerunBody.parse
    >;
    assertValid(issues);
    try {
      const done = await engine.rerun(id, body.input === undefined ? { from: body.from } : body);
      return { instanceId: done.instanceId, run: done.run, status: 'queued' };
    } catch (error) {
      throw inPart(error, 'body', 'input');
    }
  });

  app.post('/instances/rerun', async (request) => {
    const issues: InputIssue[] = [];
    const body = validatePart(bulkRerunBody, request.body, 'body', issues) as ReturnType<
      typeof bulkRerunBody.parse
    >;
    assertValid(issues);
    return engine.rerunMany(toInstanceFilter(body.filter), { from: body.from });
  });

  app.post('/instances/:id/cancel', async (request) => {
    const { id } = idOf(request.params);
    await engine.cancel(id);
    return { instanceId: id, status: 'cancelled' };
  });
}

function idOf(params: unknown): { id: string } {
  const issues: InputIssue[] = [];
  const parsed = validatePart(instanceIdParams, params, 'params', issues) as { id: string };
  assertValid(issues);
  return parsed;
}
