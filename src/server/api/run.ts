/**
 * Running an integration from the console: its input as JSON Schema (the console builds its form,
 * and a sample input, from it) and a sync call made as its route would make it. Async and scheduled
 * integrations are started with `runIntegration` (integrations.ts); a sync one has no durable form,
 * so the console calls its handler here, under its deadline, and shows what its caller would get.
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { AnyIntegration } from '../../define/integration.js';
import { parseRoute } from '../../define/route.js';
import type { SyncIntegration } from '../../engine/sync.js';
import { type InputIssue, WrongModeError } from '../../errors.js';
import type { ServerContext } from '../context.js';
import { assertValid, validatePart } from '../input.js';
import { PROBLEM_CONTENT_TYPE, problemOf } from '../problem.js';
import { checkAnswer, syncResultOf } from '../sync-response.js';
import { actorIn } from './access.js';
import { API_ROUTES } from './routes.js';
import { serve } from './serve.js';

type JsonSchema = Record<string, unknown>;

/** GET /api/integrations/:id/input and POST /api/integrations/:id/call. */
export function runRoutes(app: FastifyInstance, context: ServerContext): void {
  const { engine } = context;

  serve(app, API_ROUTES.getIntegrationInput, async (request) => {
    const integration = engine.integration(request.params.id);
    const input = integration.input ? jsonSchemaOf(integration.input) : null;
    return {
      integrationId: integration.id,
      mode: integration.mode,
      input,
      body: bodySchemaOf(integration, input),
    };
  });

  serve(app, API_ROUTES.callIntegration, async (request) => {
    const integration = engine.integration(request.params.id);
    if (integration.mode !== 'sync')
      throw new WrongModeError(integration.id, integration.mode, 'be called inline');
    const sync = integration as SyncIntegration;
    const { body } = request;
    // Each part is checked by its schema as the route checks it; a refusal runs and stores nothing.
    const issues: InputIssue[] = [];
    const within = (part: string, from: number) =>
      issues.slice(from).forEach((issue) => {
        issue.in = 'body';
        issue.path = issue.path === '' ? part : `${part}.${issue.path}`;
      });
    let mark = issues.length;
    const params = validatePart(sync.params, body.params ?? {}, 'body', issues);
    within('params', mark);
    mark = issues.length;
    const query = validatePart(sync.query, body.query ?? {}, 'body', issues);
    within('query', mark);
    mark = issues.length;
    const input = validatePart(sync.input, body.input, 'body', issues);
    within('input', mark);
    assertValid(issues);
    const outcome = await context.runner.run(
      sync,
      {
        input,
        params: params as Record<string, unknown>,
        query: query as Record<string, unknown>,
        headers: {},
        ...(request.query.source ? { source: request.query.source } : {}),
        actor: actorIn(request),
      },
      checkAnswer,
    );
    const result = syncResultOf(outcome);
    // The record is written off the response path; written now, the instance link works at once.
    await context.runner.flush();
    if (!result.ok) {
      return {
        instanceId: result.instanceId,
        status: result.error.status,
        contentType: PROBLEM_CONTENT_TYPE,
        headers: {},
        body: problemOf(result.error, { instanceId: result.instanceId }),
      };
    }
    const payload = result.payload;
    const text =
      payload === undefined ? null : typeof payload === 'string' ? payload : payload.toString('utf8');
    return {
      instanceId: result.instanceId,
      status: result.status,
      contentType:
        result.headers['content-type'] ??
        (payload === undefined
          ? null
          : result.json
            ? 'application/json'
            : typeof payload === 'string'
              ? 'text/plain'
              : 'application/octet-stream'),
      headers: result.headers,
      body: text !== null && result.json ? JSON.parse(text) : text,
    };
  });
}

/** A zod schema as JSON Schema of what a caller sends; `{}` (any) for one JSON Schema cannot express. */
function jsonSchemaOf(schema: z.ZodType): JsonSchema {
  try {
    const converted = z.toJSONSchema(schema, {
      io: 'input',
      unrepresentable: 'any',
      target: 'draft-2020-12',
    });
    delete (converted as JsonSchema).$schema;
    return converted as JsonSchema;
  } catch {
    return {};
  }
}

const object = (properties: Record<string, JsonSchema>, required: string[] = []): JsonSchema => ({
  type: 'object',
  properties,
  ...(required.length > 0 ? { required } : {}),
  additionalProperties: false,
});

/** The body the console runs an integration with (see `integrationInputSchema`). */
function bodySchemaOf(integration: AnyIntegration, input: JsonSchema | null): JsonSchema {
  if (integration.mode === 'async') return input ?? {};
  if (integration.mode === 'scheduled') {
    const parameters: Record<string, JsonSchema> = {};
    for (const [name, value] of Object.entries(integration.parameters ?? {})) {
      parameters[name] = value === null ? { default: null } : { type: typeof value, default: value };
    }
    return object({ parameters: object(parameters) });
  }
  const sync = integration as SyncIntegration;
  const names = integration.route === undefined ? [] : parseRoute(integration.route).params;
  const properties: Record<string, JsonSchema> = {};
  if (names.length > 0 || sync.params) {
    properties.params = sync.params
      ? jsonSchemaOf(sync.params)
      : object(Object.fromEntries(names.map((name) => [name, { type: 'string' }])), names);
  }
  if (sync.query) properties.query = jsonSchemaOf(sync.query);
  if (input) properties.input = input;
  return object(properties, names.length > 0 ? ['params'] : []);
}
