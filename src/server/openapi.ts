/**
 * The OpenAPI 3.1 document of the server: one operation per trigger route (schemas from the
 * integration's zod `input`, `params` and `query`) and the management API (schemas from
 * `api/schemas.ts`). Built once at start; served at GET /openapi.json.
 */
import { z } from 'zod';
import type { AnyIntegration } from '../define/integration.js';
import { parseRoute } from '../define/route.js';
import * as operations from './api/operation-schemas.js';
import * as api from './api/schemas.js';
import { apiKeyHeaderOf } from './trigger-auth.js';

type JsonObject = Record<string, any>;

export interface OpenApiOptions {
  title?: string;
  version?: string;
  adminToken: boolean;
}

export function buildOpenApi(integrations: AnyIntegration[], options: OpenApiOptions): JsonObject {
  const components: JsonObject = {
    schemas: {} as JsonObject,
    responses: {} as JsonObject,
    securitySchemes: {} as JsonObject,
  };
  const doc: JsonObject = {
    openapi: '3.1.0',
    info: {
      title: options.title ?? 'Tandem',
      version: options.version ?? '0.0.0',
      description: 'Trigger routes of the integrations, and the Tandem management API.',
    },
    paths: {} as JsonObject,
    components,
  };
  const schema = (s: z.ZodType, io: 'input' | 'output', prefix: string) =>
    toSchema(s, io, prefix, components);
  for (const [name, s] of Object.entries({
    Problem: api.problemSchema,
    Accepted: api.acceptedSchema,
    Instance: api.instanceSchema,
  })) {
    components.schemas[name] = schema(s, 'output', name);
  }
  const problem = (description: string) => ({
    description,
    content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
  });
  if (options.adminToken) {
    components.securitySchemes.adminToken = {
      type: 'http',
      scheme: 'bearer',
      description: 'The admin token (TANDEM_ADMIN_TOKEN)',
    };
  }

  for (const integration of integrations) {
    if (integration.route === undefined) continue;
    const route = parseRoute(integration.route);
    const path = route.path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
    const parameters: JsonObject[] = [];
    const paramsSchema =
      integration.mode === 'sync' && integration.params
        ? schema(integration.params, 'input', `${integration.id}.params`)
        : null;
    for (const name of route.params) {
      parameters.push({
        name,
        in: 'path',
        required: true,
        schema: paramsSchema?.properties?.[name] ?? { type: 'string' },
      });
    }
    if (integration.mode === 'sync' && integration.query) {
      const query = schema(integration.query, 'input', `${integration.id}.query`);
      const required = new Set<string>(query.required ?? []);
      for (const [name, s] of Object.entries<JsonObject>(query.properties ?? {})) {
        parameters.push({ name, in: 'query', required: required.has(name), schema: s });
      }
    }
    const security: JsonObject[] = [];
    if (integration.auth?.type === 'api-key') {
      const scheme = `${integration.id}.apiKey`;
      components.securitySchemes[scheme] = {
        type: 'apiKey',
        in: 'header',
        name: apiKeyHeaderOf(integration.auth),
      };
      security.push({ [scheme]: [] });
    } else if (integration.auth?.type === 'standard-webhooks') {
      for (const name of ['webhook-id', 'webhook-timestamp', 'webhook-signature']) {
        parameters.push({
          name,
          in: 'header',
          required: true,
          description: 'Standard Webhooks signature header',
          schema: { type: 'string' },
        });
      }
    }
    const operation: JsonObject = {
      operationId: integration.id,
      summary: integration.description ?? `${integration.mode} integration ${integration.id}`,
      tags: [integration.mode === 'sync' ? 'sync triggers' : 'async triggers'],
      parameters,
      responses: {} as JsonObject,
    };
    if (security.length > 0) operation.security = security;
    if (route.method !== 'GET' && route.method !== 'DELETE') {
      operation.requestBody = {
        required: integration.input !== undefined,
        content: {
          'application/json': {
            schema: integration.input ? schema(integration.input, 'input', `${integration.id}.input`) : {},
          },
        },
      };
    } else if (integration.mode !== 'sync' && integration.input) {
      operation.requestBody = {
        content: {
          'application/json': { schema: schema(integration.input, 'input', `${integration.id}.input`) },
        },
      };
    }
    const responses = operation.responses;
    if (integration.mode === 'sync') {
      responses['200'] = { description: "The handler's answer" };
      responses['500'] = problem('The handler failed');
      responses['502'] = problem('A downstream application failed');
      responses['503'] = problem('A downstream application is unavailable');
      responses['504'] = problem('The deadline passed');
    } else {
      responses['202'] = {
        description: 'Accepted: the instance is stored and will run',
        headers: { Location: { schema: { type: 'string' }, description: 'The status URL' } },
        content: { 'application/json': { schema: { $ref: '#/components/schemas/Accepted' } } },
      };
      responses['422'] = problem('Idempotency-Key reused with a different body');
      responses['429'] = problem('Too much work is waiting; see Retry-After');
    }
    responses['400'] = problem('Malformed request or schema violation (each failing field in errors)');
    if (integration.auth) {
      responses['401'] = problem('Missing or unknown credentials');
      responses['403'] = problem('Credentials that do not grant this trigger');
    }
    doc.paths[path] = { ...(doc.paths[path] ?? {}), [route.method.toLowerCase()]: operation };
  }

  addApiPaths(doc, schema, problem, options.adminToken);
  return doc;
}

type SchemaOf = (s: z.ZodType, io: 'input' | 'output', prefix: string) => JsonObject;

function addApiPaths(
  doc: JsonObject,
  schema: SchemaOf,
  problem: (d: string) => JsonObject,
  guarded: boolean,
) {
  const security = guarded ? [{ adminToken: [] }] : undefined;
  const ok = (s: z.ZodType, name: string, description = 'OK') => ({
    description,
    content: { 'application/json': { schema: schema(s, 'output', name) } },
  });
  const common = {
    ...(security ? { security } : {}),
    tags: ['management'],
  };
  const errors = {
    '400': problem('Invalid request'),
    ...(guarded
      ? { '401': problem('Missing or invalid admin token'), '403': problem('Not the admin token') }
      : {}),
  };
  const body = (s: z.ZodType, name: string) => ({
    required: true,
    content: { 'application/json': { schema: schema(s, 'input', name) } },
  });
  const idParam = [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }];
  const queryParams = (s: z.ZodObject<any>, name: string) => {
    const js = schema(s, 'input', name);
    return Object.entries<JsonObject>(js.properties ?? {}).map(([key, value]) => ({
      name: key,
      in: 'query',
      required: false,
      schema: value,
      ...(value.description ? { description: value.description } : {}),
    }));
  };
  doc.paths['/api/integrations'] = {
    get: {
      ...common,
      operationId: 'listIntegrations',
      summary: 'Each integration: mode, triggers, counts and statistics',
      responses: { '200': ok(api.integrationListSchema, 'IntegrationList'), ...errors },
    },
  };
  doc.paths['/api/integrations/{id}/run'] = {
    post: {
      ...common,
      operationId: 'runIntegration',
      summary: 'Start an async or scheduled integration now; the body is the input',
      parameters: [
        ...idParam,
        {
          name: 'Idempotency-Key',
          in: 'header',
          required: false,
          schema: { type: 'string', maxLength: 255 },
        },
      ],
      requestBody: { required: false, content: { 'application/json': { schema: {} } } },
      responses: {
        '202': {
          description: 'Accepted',
          content: { 'application/json': { schema: { $ref: '#/components/schemas/Accepted' } } },
        },
        ...errors,
        '404': problem('Unknown integration'),
        '409': problem('A sync integration cannot be started as durable work'),
        '422': problem('Idempotency-Key reused with a different body'),
        '429': problem('Too much work is waiting'),
      },
    },
  };
  doc.paths['/api/instances'] = {
    get: {
      ...common,
      operationId: 'listInstances',
      summary: 'Instances, newest first, filtered, with cursor paging',
      parameters: queryParams(api.listInstancesQuery, 'ListInstancesQuery'),
      responses: { '200': ok(api.instancePageSchema, 'InstancePage'), ...errors },
    },
  };
  doc.paths['/api/instances/rerun'] = {
    post: {
      ...common,
      operationId: 'rerunInstances',
      summary: 'Rerun every finished instance that matches a filter',
      requestBody: body(api.bulkRerunBody, 'BulkRerun'),
      responses: { '200': ok(api.bulkRerunResultSchema, 'BulkRerunResult'), ...errors },
    },
  };
  doc.paths['/api/instances/{id}'] = {
    get: {
      ...common,
      operationId: 'getInstance',
      summary: 'An instance with its runs, steps and activity events',
      parameters: idParam,
      responses: {
        '200': ok(api.instanceDetailSchema, 'InstanceDetail'),
        ...errors,
        '404': problem('Unknown instance'),
      },
    },
  };
  doc.paths['/api/instances/{id}/rerun'] = {
    post: {
      ...common,
      operationId: 'rerunInstance',
      summary: 'Rerun an instance from the failed step or from the start, optionally with corrected input',
      parameters: idParam,
      requestBody: body(api.rerunBody, 'Rerun'),
      responses: {
        '200': ok(api.rerunResultSchema, 'RerunResult'),
        ...errors,
        '404': problem('Unknown instance'),
        '409': problem('The instance is not in a final state, or is a sync instance'),
      },
    },
  };
  doc.paths['/api/instances/{id}/cancel'] = {
    post: {
      ...common,
      operationId: 'cancelInstance',
      summary: 'Cancel an instance that has not finished',
      parameters: idParam,
      responses: {
        '200': ok(api.cancelResultSchema, 'CancelResult'),
        ...errors,
        '404': problem('Unknown instance'),
        '409': problem('The instance has already finished'),
      },
    },
  };
  doc.paths['/api/activity'] = {
    get: {
      ...common,
      operationId: 'followActivity',
      summary: 'The activity stream as Server-Sent Events; resume with Last-Event-ID',
      parameters: [
        ...queryParams(api.activityQuery, 'ActivityQuery'),
        { name: 'Last-Event-ID', in: 'header', required: false, schema: { type: 'string' } },
      ],
      responses: {
        '200': {
          description: 'An event stream',
          content: { 'text/event-stream': { schema: { type: 'string' } } },
        },
        ...errors,
      },
    },
  };
  doc.paths['/api/advisor/decide'] = {
    post: {
      ...common,
      operationId: 'decidePattern',
      summary: 'The pattern for the three questions of the decision table, with its reasons',
      requestBody: body(api.decideBody, 'DecideQuestions'),
      responses: { '200': ok(api.decisionSchema, 'Decision'), ...errors },
    },
  };
  doc.paths['/api/connections'] = {
    get: {
      ...common,
      operationId: 'listConnections',
      summary: 'Each connection: circuit state and call statistics since the server started',
      responses: { '200': ok(operations.connectionListSchema, 'ConnectionList'), ...errors },
    },
  };
  doc.paths['/api/schedules'] = {
    get: {
      ...common,
      operationId: 'listSchedules',
      summary: 'Each scheduled integration: cron, parameters, next and recent firings',
      responses: { '200': ok(operations.scheduleListSchema, 'ScheduleList'), ...errors },
    },
  };
  doc.paths['/api/errors'] = {
    get: {
      ...common,
      operationId: 'listErrorGroups',
      summary: 'Failed instances grouped by integration and error',
      parameters: queryParams(operations.errorGroupsQuery, 'ErrorGroupsQuery'),
      responses: { '200': ok(operations.errorGroupsSchema, 'ErrorGroups'), ...errors },
    },
  };
  doc.paths['/metrics'] = {
    get: {
      tags: ['operations'],
      operationId: 'metrics',
      summary: 'Prometheus metrics in the text exposition format',
      responses: {
        '200': { description: 'Metrics', content: { 'text/plain': { schema: { type: 'string' } } } },
      },
    },
  };
  doc.paths['/healthz'] = {
    get: {
      tags: ['operations'],
      operationId: 'health',
      summary: 'Liveness and readiness: the store answers',
      responses: { '200': ok(api.healthSchema, 'Health'), '503': problem('The store is not reachable') },
    },
  };
  doc.paths['/console/'] = {
    get: {
      tags: ['operations'],
      operationId: 'console',
      summary: 'The web console; its data comes from the management API',
      responses: {
        '200': { description: 'The console page', content: { 'text/html': { schema: { type: 'string' } } } },
        '404': problem('The console is not built'),
      },
    },
  };
  doc.paths['/openapi.json'] = {
    get: {
      tags: ['operations'],
      operationId: 'openapi',
      summary: 'This document',
      responses: {
        '200': { description: 'OpenAPI 3.1 document', content: { 'application/json': { schema: {} } } },
      },
    },
  };
}

/**
 * A zod schema as an OpenAPI 3.1 schema object (JSON Schema 2020-12). Shared definitions that zod
 * emits under `$defs` (recursive schemas) move to `components.schemas` so their `$ref`s resolve.
 */
function toSchema(s: z.ZodType, io: 'input' | 'output', prefix: string, components: JsonObject): JsonObject {
  const converted = z.toJSONSchema(s, { io, unrepresentable: 'any', target: 'draft-2020-12' }) as JsonObject;
  delete converted.$schema;
  const defs = (converted.$defs ?? {}) as JsonObject;
  delete converted.$defs;
  const selfReferring = JSON.stringify(converted).includes('"$ref":"#"');
  if (Object.keys(defs).length === 0 && !selfReferring) return converted;
  const rename = (name: string) => `${prefix}.${name}`.replace(/[^A-Za-z0-9._-]/g, '_');
  const rewrite = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(rewrite);
    if (node === null || typeof node !== 'object') return node;
    const out: JsonObject = {};
    for (const [key, value] of Object.entries(node)) {
      out[key] =
        key === '$ref' && typeof value === 'string' && value.startsWith('#/$defs/')
          ? `#/components/schemas/${rename(value.slice('#/$defs/'.length))}`
          : key === '$ref' && value === '#'
            ? `#/components/schemas/${rename('root')}`
            : rewrite(value);
    }
    return out;
  };
  for (const [name, def] of Object.entries(defs)) components.schemas[rename(name)] = rewrite(def);
  const root = rewrite(converted) as JsonObject;
  // A schema that refers to itself ("#") needs to be addressable as a component too.
  if (JSON.stringify(root).includes(`#/components/schemas/${rename('root')}`)) {
    components.schemas[rename('root')] = root;
  }
  return root;
}
