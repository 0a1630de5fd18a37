import type { FastifyInstance } from 'fastify';
import type { z } from 'zod';
import { DUE } from '../../lifecycle/statuses.js';
import { TRANSITIONS } from '../../lifecycle/transitions.js';
import type { InstanceFilter } from '../../store/store.js';
import { cloudEventFilterOf } from '../cloudevents.js';
import type { ServerContext } from '../context.js';
import { inPart } from '../input.js';
import { actorIn, detailWithoutBodies, instanceWithoutBodies, requireRole, showsBodies } from './access.js';
import { redactDetail, redactInstance } from './redact.js';
import { API_ROUTES } from './routes.js';
import type { instanceFilterSchema } from './schemas.js';
import { serve } from './serve.js';
import { deriveTimeline, waitingFor } from './timeline.js';

/** Listing, detail, rerun (one and bulk) and cancel of instances. */
export function instanceRoutes(app: FastifyInstance, context: ServerContext): void {
  const { engine } = context;
  const integrationOf = (id: string) => engine.listIntegrations().find((i) => i.id === id);

  serve(app, API_ROUTES.listInstances, async (request) => {
    const { query } = request;
    const page = await engine.listInstances({
      ...toInstanceFilter(query),
      limit: query.limit,
      cursor: query.cursor ?? null,
    });
    const bodies = showsBodies(request);
    return {
      ...page,
      items: page.items.map((i) => {
        const shown = redactInstance(i, integrationOf(i.integrationId));
        return bodies ? shown : instanceWithoutBodies(shown);
      }),
    };
  });

  serve(app, API_ROUTES.getInstance, async (request) => {
    const { id } = request.params;
    const { instance, ...detail } = await engine.getDetail(id);
    const now = engine.clock.now();
    if (instance.mode !== 'sync')
      context.polls.noteRead(instance.integrationId, id, now - instance.createdAt);
    // Two small reads for "why": who holds its ordering key (only while it is due), and its children.
    const [holder, children] = await Promise.all([
      instance.orderingKey !== null && DUE.includes(instance.status) && instance.runAt <= now
        ? engine.orderingHolder(instance.orderingKey, instance.seq)
        : null,
      instance.mode === 'sync' ? null : engine.countChildren(id),
    ]);
    const redacted = redactDetail({ instance, ...detail }, integrationOf(instance.integrationId));
    const shown = showsBodies(request) ? redacted : detailWithoutBodies(redacted);
    const childCounts = children && children.total > 0 ? children : null;
    const waiting = waitingFor(shown, { now, holder, children: childCounts });
    return {
      ...shown,
      timeline: deriveTimeline(shown, now, waiting),
      waitingFor: waiting,
      children: childCounts,
    };
  });

  serve(app, API_ROUTES.rerunInstance, async (request) => {
    const { id } = request.params;
    const { body } = request;
    // Replacing an input is editing business data: an admin's, not an operator's.
    if (body.input !== undefined) requireRole(request, 'admin');
    const actor = actorIn(request);
    try {
      const done = await engine.rerun(
        id,
        body.input === undefined ? { from: body.from, actor } : { ...body, actor },
      );
      return { instanceId: done.instanceId, run: done.run, status: TRANSITIONS.rerun.to };
    } catch (error) {
      throw inPart(error, 'body', 'input');
    }
  });

  serve(app, API_ROUTES.rerunInstances, async (request) => {
    const { body } = request;
    const actor = actorIn(request);
    if (body.ids) return engine.rerunIds(body.ids, { from: body.from, actor });
    return engine.rerunMany(toInstanceFilter(body.filter ?? {}), { from: body.from, actor });
  });

  serve(app, API_ROUTES.cancelInstance, async (request) => {
    const { id } = request.params;
    await engine.cancel(id, actorIn(request));
    return { instanceId: id, status: TRANSITIONS.cancel.to };
  });
}

function toInstanceFilter(query: z.output<typeof instanceFilterSchema>): InstanceFilter {
  const filter: InstanceFilter = {};
  if (query.integration !== undefined) filter.integrationId = query.integration;
  if (query.status !== undefined) filter.status = query.status;
  if (query.tracking !== undefined) filter.tracking = query.tracking;
  if (query.cloudEvent !== undefined) filter.cloudEvent = cloudEventFilterOf(query.cloudEvent);
  if (query.parent !== undefined) filter.parentId = query.parent;
  if (query.from !== undefined) filter.createdAfter = query.from;
  if (query.to !== undefined) filter.createdBefore = query.to;
  if (query.rerunSince !== undefined) filter.runStartedAfter = query.rerunSince;
  return filter;
}
