import type { FastifyInstance } from 'fastify';
import type { z } from 'zod';
import { makeCron } from '../../define/schedule.js';
import { nextSlotAfter } from '../../engine/scheduler.js';
import { Redactor } from '../../redaction.js';
import type { ServerContext } from '../context.js';
import type { errorGroupsSchema } from './operation-schemas.js';
import { redactInstance } from './redact.js';
import { API_ROUTES } from './routes.js';
import { serve } from './serve.js';

type ErrorGroup = z.infer<typeof errorGroupsSchema>['groups'][number];

/** Upcoming firings listed per schedule. */
const NEXT_SLOTS = 5;
/** Failed instances read at most for GET /api/errors. */
const ERROR_SCAN_LIMIT = 1000;

/** GET /api/connections, /api/schedules and /api/errors: what an operator watches. */
export function operationRoutes(app: FastifyInstance, context: ServerContext): void {
  const { engine } = context;

  serve(app, API_ROUTES.listConnections, async () => ({ items: context.connections.list() }));

  serve(app, API_ROUTES.listSchedules, async () => {
    const scheduled = engine.listIntegrations().filter((i) => i.mode === 'scheduled');
    const items = await Promise.all(
      scheduled.map(async (integration) => {
        const [schedule, newest] = await Promise.all([
          engine.getSchedule(integration.id),
          engine.listInstances({ integrationId: integration.id, limit: 1 }),
        ]);
        const cron = makeCron(schedule.cron, integration.timezone);
        const nextSlots: number[] = [];
        for (let at = schedule.nextSlotAt; at !== null && nextSlots.length < NEXT_SLOTS; ) {
          nextSlots.push(at);
          at = nextSlotAfter(cron, at);
        }
        // Parameters are the input of a scheduled instance: masked by the same rule.
        const redactor = Redactor.of(integration.redact, { parameters: schedule.parameters });
        const shown = (parameters: typeof schedule.parameters) => redactor.shown({ parameters }).parameters;
        // A run-now fires no cron slot: the last firing is the newest instance, however started.
        const last = newest.items[0];
        const lastFiring = last
          ? {
              at: last.createdAt,
              instanceId: last.id,
              // A skipped slot names the active instance that caused the skip: only a fired one counts.
              by: schedule.recentSlots.some((slot) => slot.outcome === 'fired' && slot.instanceId === last.id)
                ? ('schedule' as const)
                : ('run-now' as const),
            }
          : null;
        return {
          ...schedule,
          lastFiring,
          parameters: shown(schedule.parameters),
          storedParameters: shown(schedule.storedParameters),
          nextSlots,
        };
      }),
    );
    return { items };
  });

  serve(app, API_ROUTES.listErrorGroups, async (request) => {
    const { query } = request;
    const page = await engine.listInstances({
      status: 'failed',
      ...(query.integration ? { integrationId: query.integration } : {}),
      limit: ERROR_SCAN_LIMIT,
    });
    const groups = new Map<string, ErrorGroup>();
    const integrationOf = (id: string) => engine.listIntegrations().find((i) => i.id === id);
    for (const stored of page.items) {
      const instance = redactInstance(stored, integrationOf(stored.integrationId));
      const name = instance.error?.name ?? 'Error';
      const message = instance.error?.message ?? '(no message)';
      const key = JSON.stringify([instance.integrationId, name, message]);
      let group = groups.get(key);
      if (!group) {
        group = {
          integrationId: instance.integrationId,
          name,
          message,
          code: instance.error?.code ?? null,
          count: 0,
          latestAt: instance.updatedAt,
          instanceIds: [],
        };
        groups.set(key, group);
      }
      group.count++;
      group.latestAt = Math.max(group.latestAt, instance.updatedAt);
      group.instanceIds.push(instance.id);
    }
    return {
      groups: [...groups.values()].sort((a, b) => b.count - a.count || b.latestAt - a.latestAt),
      scanned: page.items.length,
      truncated: page.nextCursor !== null,
    };
  });
}
