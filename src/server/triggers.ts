/**
 * User trigger routes, one per integration with a `route`: sync routes run the handler inline,
 * async routes answer 202 once the instance is committed.
 */
import type {
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  onRequestHookHandler,
  preValidationHookHandler,
} from 'fastify';
import type { AnyIntegration } from '../define/integration.js';
import { parseRoute } from '../define/route.js';
import type { SyncIntegration } from '../engine/sync.js';
import { type InputIssue, InvalidDefinitionError } from '../errors.js';
import { incomingTraceparent } from '../tracing/traceparent.js';
import { sendAccepted } from './accepted.js';
import { receivedCloudEvent } from './cloudevents.js';
import type { ServerContext } from './context.js';
import { assertValid, idempotencyKeyOf, inPart, validatePart } from './input.js';
import { checkTriggerPath } from './route-table.js';
import { checkAnswer, sendSyncResult, syncResultOf } from './sync-response.js';
import { apiKeyGuard, apiKeyHeaderOf, makeJwtVerifier, makeWebhookVerifier } from './trigger-auth.js';

/** Registers every trigger route; refuses reserved paths, duplicates and over-long deadlines first. */
export function registerTriggers(app: FastifyInstance, context: ServerContext): void {
  const seen = new Map<string, string>();
  const triggered = context.engine.listIntegrations().filter((i) => i.route !== undefined);
  for (const integration of triggered) {
    const route = parseRoute(integration.route!, `Integration "${integration.id}"`);
    checkTriggerPath(integration.id, route.path);
    const key = `${route.method} ${route.path.replace(/:[^/]+/g, ':')}`;
    const other = seen.get(key);
    if (other) {
      throw new InvalidDefinitionError(
        `Integrations "${other}" and "${integration.id}" both use the route ${route.method} ${route.path}`,
      );
    }
    seen.set(key, integration.id);
    if (integration.mode === 'sync') context.runner.deadlineOf(integration as SyncIntegration);
  }
  for (const integration of triggered) registerTrigger(app, context, integration);
}

function registerTrigger(app: FastifyInstance, context: ServerContext, integration: AnyIntegration): void {
  const route = parseRoute(integration.route!);
  const onRequest: onRequestHookHandler[] = [];
  const preValidation: preValidationHookHandler[] = [];
  const config: { integrationId: string; verifyBody?: (request: FastifyRequest, raw: Buffer) => void } = {
    integrationId: integration.id,
  };
  let credentialHeader: string | null = null;
  const auth = integration.auth;
  if (auth?.type === 'api-key') {
    onRequest.push(apiKeyGuard(integration, auth, context.ring));
    credentialHeader = apiKeyHeaderOf(auth);
  } else if (auth?.type === 'standard-webhooks') {
    const verify = makeWebhookVerifier(auth, () => context.engine.clock.now());
    const verified = new WeakSet<FastifyRequest>();
    // The signature covers the raw body, so it is checked by the body parser before JSON parsing;
    // a request without a body is checked here.
    config.verifyBody = (request, raw) => {
      verify(request.headers, raw);
      verified.add(request);
    };
    preValidation.push(async (request) => {
      if (!verified.has(request)) {
        verify(request.headers, '');
        verified.add(request);
      }
    });
  } else if (auth?.type === 'jwt') {
    // Checked before the body is read, as an API key is; the token is hidden from a sync handler.
    const verify = makeJwtVerifier(auth, () => context.engine.clock.now());
    onRequest.push(async (request) => {
      await verify(request.headers);
    });
    credentialHeader = 'authorization';
  }
  const handler =
    integration.mode === 'sync'
      ? syncHandler(context, integration as SyncIntegration, credentialHeader)
      : asyncHandler(context, integration);
  app.route({ method: route.method, url: route.path, config, onRequest, preValidation, handler });
}

function syncHandler(context: ServerContext, integration: SyncIntegration, credentialHeader: string | null) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const issues: InputIssue[] = [];
    const params = validatePart(integration.params, request.params, 'params', issues);
    const query = validatePart(integration.query, request.query, 'query', issues);
    const input = validatePart(integration.input, request.body, 'body', issues);
    assertValid(issues);
    let headers = request.headers;
    // The caller's trace, when it sends a valid W3C traceparent: the call's span continues it.
    const traceparent = incomingTraceparent(headers);
    if (credentialHeader) {
      headers = { ...headers };
      delete headers[credentialHeader];
    }
    const outcome = await context.runner.run(
      integration,
      {
        input,
        params: params as Record<string, unknown>,
        query: query as Record<string, unknown>,
        headers,
        ...(traceparent === undefined ? {} : { traceparent }),
      },
      checkAnswer,
    );
    return sendSyncResult(reply, syncResultOf(outcome));
  };
}

function asyncHandler(context: ServerContext, integration: AnyIntegration) {
  return async (request: FastifyRequest, reply: FastifyReply) => {
    let idempotencyKey = idempotencyKeyOf(request.headers['idempotency-key']);
    // A CloudEvent's data is the input; its source and id are the key (a redelivery finds the first).
    const cloudEvent = await receivedCloudEvent(request.headers, request.body);
    if (idempotencyKey === undefined && cloudEvent !== null) idempotencyKey = cloudEvent.idempotencyKey;
    if (idempotencyKey === undefined && integration.auth?.type === 'standard-webhooks') {
      // A redelivered webhook carries the same webhook-id: it returns the first delivery's instance.
      idempotencyKey = `webhook:${request.headers['webhook-id']}`;
    }
    let row: ReturnType<typeof context.engine.prepare>;
    // The caller's trace, when it sends a valid W3C traceparent: the instance's spans continue it.
    const traceparent = incomingTraceparent(request.headers);
    try {
      row = context.engine.prepare(integration, cloudEvent === null ? request.body : cloudEvent.data, {
        ...(idempotencyKey === undefined ? {} : { idempotencyKey }),
        ...(traceparent === undefined ? {} : { traceparent }),
      });
    } catch (error) {
      throw inPart(error, 'body', cloudEvent?.mode === 'structured' ? 'data' : '');
    }
    if (cloudEvent !== null) row.cloudEvent = cloudEvent.attributes;
    context.gauge.admit();
    const [accepted] = await context.engine.acceptPrepared([row]);
    if (accepted!.created) context.gauge.noteAccepted(1);
    return sendAccepted(reply, accepted!);
  };
}
