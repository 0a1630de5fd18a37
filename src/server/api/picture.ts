/**
 * GET /api/integrations/:id/picture: gathers what the picture is drawn from (the definition, the
 * newest instances with their events, their parents and children, the advice) and hands it to the
 * pure `drawPicture`. A management read: a few small reads per recent instance, none on a hot path.
 */
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.js';
import { drawPicture, type PictureSample } from '../picture.js';
import { adviceFor, triggersOf } from './integrations.js';
import { API_ROUTES } from './routes.js';
import { serve } from './serve.js';

/** The picture's figures come from this many of the newest instances (every run of each). */
const PICTURE_RECENT = 50;
/** Activity events read per recent instance (as its detail reads them). */
const EVENTS_READ = 10_000;
/** Children read per recent instance (their integrations name the hand-off or fan-out). */
const CHILDREN_READ = 100;

export function pictureRoutes(app: FastifyInstance, context: ServerContext): void {
  const { engine } = context;

  serve(app, API_ROUTES.getIntegrationPicture, async (request) => {
    const integration = engine.integration(request.params.id);
    const { items } = await engine.listInstances({ integrationId: integration.id, limit: PICTURE_RECENT });
    const samples: PictureSample[] = await Promise.all(
      items.map(async (instance) => ({ instance, events: await engine.getEvents(instance.id, EVENTS_READ) })),
    );
    const parentIds = [...new Set(items.flatMap((i) => (i.parentId === null ? [] : [i.parentId])))];
    const parentIntegration = new Map<string, string>();
    await Promise.all(
      parentIds.map(async (id) => {
        const parent = await engine.getInstance(id).catch(() => null);
        if (parent) parentIntegration.set(id, parent.integrationId);
      }),
    );
    const children = new Map(
      await Promise.all(
        items.map(
          async (instance) =>
            [
              instance.id,
              (await engine.listInstances({ parentId: instance.id, limit: CHILDREN_READ })).items,
            ] as const,
        ),
      ),
    );
    const defined = new Map(engine.listIntegrations().map((i) => [i.id, i.mode]));
    return drawPicture({
      integration: {
        id: integration.id,
        mode: integration.mode,
        description: integration.description ?? null,
      },
      triggers: triggersOf(integration),
      samples,
      limit: PICTURE_RECENT,
      span: { from: items.at(-1)?.createdAt ?? null, to: items[0]?.createdAt ?? null },
      parentIntegration,
      children,
      modeOf: (id) => defined.get(id) ?? null,
      advice: await adviceFor(context, integration),
    });
  });
}
