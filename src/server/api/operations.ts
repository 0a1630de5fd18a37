import type { FastifyInstance } from 'fastify';
import { makeCron } from '../../define/schedule.js';
import type { Engine } from '../../engine/engine.js';
import { nextSlotAfter } from '../../engine/scheduler.js';
import { InstanceNotFoundError, TandemError } from '../../errors.js';
import type { Actor } from '../../model.js';
import { Redactor } from '../../redaction.js';
import type { ServerContext } from '../context.js';
import { actorIn } from './access.js';
import { groupFailures, scanFailures } from './error-groups.js';
import { redactInstance } from './redact.js';
import { API_ROUTES } from './routes.js';
import { serve } from './serve.js';

/** Upcoming firings listed per schedule. */
const NEXT_SLOTS = 5;
/** Failed instances read at most for GET /api/errors. */
const ERROR_SCAN_LIMIT = 1000;
/** Failed instances read at most to find the members of groups to acknowledge. */
const GROUP_SCAN_LIMIT = 10_000;

/**
 * GET /api/connections, /api/schedules and /api/errors: what an operator watches; and the
 * acknowledgement of failures, one or by group.
 */
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

  const integrationOf = (id: string) => engine.listIntegrations().find((i) => i.id === id);

  serve(app, API_ROUTES.listErrorGroups, async (request) => {
    const { query } = request;
    const scan = await scanFailures(engine, {
      integration: query.integration,
      acknowledged: ACKNOWLEDGED_FILTER[query.acknowledged],
      limit: ERROR_SCAN_LIMIT,
    });
    return {
      groups: groupFailures(scan.instances, scan.steps, integrationOf),
      scanned: scan.instances.length,
      truncated: scan.truncated,
    };
  });

  serve(app, API_ROUTES.acknowledgeErrors, async (request) => {
    const { body } = request;
    let ids = body.ids ?? [];
    if (body.keys) {
      // The groups as they stand now: the failures that are (or, to take back, were) acknowledged.
      const wanted = new Set(body.keys);
      const scan = await scanFailures(engine, {
        integration: undefined,
        acknowledged: !body.acknowledged,
        limit: GROUP_SCAN_LIMIT,
      });
      ids = groupFailures(scan.instances, scan.steps, integrationOf)
        .filter((group) => wanted.has(group.key))
        .flatMap((group) => group.instanceIds);
    }
    const outcome = await engine.acknowledge(ids, {
      acknowledged: body.acknowledged,
      note: body.note ?? null,
      actor: actorIn(request),
    });
    return { count: outcome.done.length, refused: outcome.refused };
  });

  serve(app, API_ROUTES.acknowledgeInstance, async (request) => {
    const { id } = request.params;
    await expectAcknowledged(engine, id, true, request.body.note ?? null, actorIn(request));
    const instance = await engine.getInstance(id);
    return {
      instanceId: id,
      acknowledgedAt: instance.acknowledgedAt,
      acknowledgedNote: redactInstance(instance, integrationOf(instance.integrationId)).acknowledgedNote,
    };
  });

  serve(app, API_ROUTES.unacknowledgeInstance, async (request) => {
    const { id } = request.params;
    await expectAcknowledged(engine, id, false, null, actorIn(request));
    return { instanceId: id, acknowledgedAt: null, acknowledgedNote: null };
  });
}

/** The `acknowledged` switch of GET /api/errors as a store filter (show: no filter). */
const ACKNOWLEDGED_FILTER = { hide: false, show: undefined, only: true } as const;

/** Acknowledges one instance, or takes it back; a refusal is its problem (404 or 409). */
async function expectAcknowledged(
  engine: Engine,
  id: string,
  acknowledged: boolean,
  note: string | null,
  actor: Actor,
) {
  const { refused } = await engine.acknowledge([id], { acknowledged, note, actor });
  const refusal = refused[0];
  if (!refusal) return;
  if (refusal.code === 'instance-not-found') throw new InstanceNotFoundError(id);
  throw new TandemError(
    'invalid-state',
    `Cannot ${acknowledged ? 'acknowledge' : 'unacknowledge'} instance "${id}": ${refusal.reason}`,
    {
      instanceId: id,
      status: refusal.status,
      action: acknowledged ? 'acknowledge' : 'unacknowledge',
    },
  );
}
