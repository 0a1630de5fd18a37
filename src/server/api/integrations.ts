import type { FastifyInstance } from 'fastify';
import { advise } from '../../advisor/advice.js';
import type { AnyIntegration } from '../../define/integration.js';
import { parseRoute } from '../../define/route.js';
import { DEFAULT_TIMEOUT_MS } from '../../engine/executor.js';
import { DEFAULT_DEADLINE_MS } from '../../engine/sync.js';
import { INSTANCE_STATUSES, type InstanceStatus } from '../../model.js';
import type { IntegrationStats } from '../../store/store.js';
import { sendAccepted } from '../accepted.js';
import type { ServerContext } from '../context.js';
import { idempotencyKeyOf, inPart } from '../input.js';
import { actorIn } from './access.js';
import { API_ROUTES } from './routes.js';
import { serve } from './serve.js';

/** GET /api/integrations and POST /api/integrations/:id/run. */
export function integrationRoutes(app: FastifyInstance, context: ServerContext): void {
  const { engine } = context;

  serve(app, API_ROUTES.listIntegrations, async () => {
    const now = engine.clock.now();
    const windows = await Promise.all(
      STATS_WINDOWS.map(async ([name, ms]) => {
        const stats = await engine.integrationStats({ since: now - ms, until: now + 1 });
        return [name, new Map(stats.map((s) => [s.integrationId, s]))] as const;
      }),
    );
    const items = await Promise.all(engine.listIntegrations().map((i) => summarise(context, i, windows)));
    return { items };
  });

  serve(app, API_ROUTES.runIntegration, async (request, reply) => {
    const { params } = request;
    const idempotencyKey = idempotencyKeyOf(request.headers['idempotency-key']);
    let row: ReturnType<typeof engine.prepare>;
    try {
      row = engine.prepare(params.id, request.body, idempotencyKey === undefined ? {} : { idempotencyKey });
    } catch (error) {
      throw inPart(error, 'body');
    }
    if (request.query.source) row.source = request.query.source;
    row.actor = actorIn(request);
    context.gauge.admit();
    const [accepted] = await engine.acceptPrepared([row]);
    if (accepted!.created) context.gauge.noteAccepted(1);
    return sendAccepted(reply, accepted!);
  });
}

/** Statistics windows shown per integration; advice reads the 24 h one. */
const STATS_WINDOWS = [
  ['1h', 3_600_000],
  ['24h', 86_400_000],
  ['7d', 7 * 86_400_000],
] as const;

type WindowName = (typeof STATS_WINDOWS)[number][0];
type Windows = (readonly [WindowName, Map<string, IntegrationStats>])[];

function windowFigures(stats: IntegrationStats | undefined) {
  if (!stats)
    return {
      total: 0,
      succeeded: 0,
      failed: 0,
      successRate: null,
      failureRate: null,
      p50: null,
      p95: null,
      p99: null,
      retriesPerInstance: 0,
    };
  const finished = stats.succeeded + stats.failed;
  return {
    total: stats.total,
    succeeded: stats.succeeded,
    failed: stats.failed,
    successRate: finished === 0 ? null : stats.succeeded / finished,
    failureRate: finished === 0 ? null : stats.failed / finished,
    p50: stats.p50,
    p95: stats.p95,
    p99: stats.p99,
    retriesPerInstance: stats.retriesPerInstance,
  };
}

async function summarise(context: ServerContext, integration: AnyIntegration, windows: Windows) {
  const day = windows.find(([name]) => name === '24h')?.[1].get(integration.id);
  const counts = {} as Record<InstanceStatus, number>;
  await Promise.all(
    INSTANCE_STATUSES.map(async (status) => {
      counts[status] = await context.engine.countInstances({ integrationId: integration.id, status });
    }),
  );
  const finished = counts.succeeded + counts.failed;
  return {
    id: integration.id,
    mode: integration.mode,
    description: integration.description ?? null,
    triggers: triggersOf(integration),
    deadlineMs: integration.mode === 'sync' ? (integration.deadline ?? DEFAULT_DEADLINE_MS) : null,
    timeoutMs: integration.mode === 'sync' ? null : (integration.timeout ?? DEFAULT_TIMEOUT_MS),
    counts,
    stats: {
      total: Object.values(counts).reduce((a, b) => a + b, 0),
      errorRate: finished === 0 ? null : counts.failed / finished,
      windows: Object.fromEntries(
        windows.map(([name, byId]) => [name, windowFigures(byId.get(integration.id))]),
      ) as Record<WindowName, ReturnType<typeof windowFigures>>,
    },
    advice: adviceOf(context, integration, day),
  };
}

function adviceOf(context: ServerContext, integration: AnyIntegration, day: IntegrationStats | undefined) {
  return advise({
    integration,
    stats: day,
    window: 'in the last 24 h',
    immediatePollShare: context.polls.share(integration.id),
    ...(day ? { failuresByConnection: day.failuresByConnection } : {}),
  });
}

/** The advice for one integration, from its figures of the last 24 h (as the list shows it). */
export async function adviceFor(context: ServerContext, integration: AnyIntegration) {
  const now = context.engine.clock.now();
  const since = now - STATS_WINDOWS.find(([name]) => name === '24h')![1];
  const stats = await context.engine.integrationStats({ since, until: now + 1 });
  return adviceOf(
    context,
    integration,
    stats.find((s) => s.integrationId === integration.id),
  );
}

export function triggersOf(integration: AnyIntegration) {
  const triggers: (
    | { type: 'http'; method: string; path: string; auth: 'api-key' | 'standard-webhooks' | 'jwt' | null }
    | { type: 'cron'; cron: string; timezone: string | null }
    | { type: 'api' }
  )[] = [];
  if (integration.route !== undefined) {
    const route = parseRoute(integration.route);
    triggers.push({
      type: 'http',
      method: route.method,
      path: route.path,
      auth: integration.auth?.type ?? null,
    });
  }
  if (integration.mode === 'scheduled') {
    triggers.push({ type: 'cron', cron: integration.cron, timezone: integration.timezone ?? null });
  }
  if (integration.mode !== 'sync') triggers.push({ type: 'api' });
  return triggers;
}
