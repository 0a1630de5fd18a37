/**
 * The OpenAPI 3.1 document of the server: one operation per trigger route (schemas from the
 * integration's zod `input`, `params` and `query`), the management API (from its route table,
 * `api/routes.ts`) and Tandem's own paths. Built once at start; served at GET /openapi.json.
 */
import { z } from 'zod';
import type { AnyIntegration } from '../define/integration.js';
import { parseRoute } from '../define/route.js';
import { API_ROUTES, type ApiRoute, CALLBACK_ROUTE, type ManagementRoute } from './api/routes.js';
import * as api from './api/schemas.js';
import { apiKeyHeaderOf } from './trigger-auth.js';

type JsonObject = Record<string, any>;

export interface OpenApiOptions {
  title?: string;
  version?: string;
  /** Whether the server has management tokens (the management API then asks for one). */
  adminToken: boolean;
}

/** What each role may do, for the document's description of the token scheme. */
const ROLE_NOTE =
  'A management token with its role: `viewer` reads (without input and output bodies unless its token allows them), ' +
  '`operator` also reruns, cancels, acknowledges and runs now, `admin` does everything. Each operation names the role ' +
  'it needs in its security requirement and in `x-tandem-role`; a token of a lesser role gets 403.';

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
      description: `The admin token (TANDEM_ADMIN_TOKEN), or a token of server.tokens. ${ROLE_NOTE}`,
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
    } else if (integration.auth?.type === 'jwt') {
      const scheme = `${integration.id}.jwt`;
      components.securitySchemes[scheme] = { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' };
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
  addOperationsPaths(doc, schema, problem);
  return doc;
}

type SchemaOf = (s: z.ZodType, io: 'input' | 'output', prefix: string) => JsonObject;

/** The operations of the management API, each from its entry in the route table. */
function addApiPaths(
  doc: JsonObject,
  schema: SchemaOf,
  problem: (d: string) => JsonObject,
  guarded: boolean,
) {
  const errors = {
    '400': problem('Invalid request'),
    ...(guarded
      ? {
          '401': problem('Missing or invalid token'),
          '403': problem('A token whose role lacks the one this operation needs, or a trigger key'),
        }
      : {}),
  };
  for (const [operationId, route] of Object.entries<ManagementRoute>(API_ROUTES)) {
    const path = `/api${route.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}')}`;
    const operation = operationOf(operationId, route, schema, problem, errors);
    doc.paths[path] = {
      ...(doc.paths[path] ?? {}),
      [route.method.toLowerCase()]: {
        // OpenAPI 3.1: for a scheme other than OAuth2 the list names the roles the operation needs.
        ...(guarded ? { security: [{ adminToken: [route.role] }] } : {}),
        tags: ['management'],
        ...operation,
        description: `Needs the ${route.role} role${ROLE_REACH[route.role]}.`,
        'x-tandem-role': route.role,
      },
    };
  }
  // The callback URL handed to partners: its token is the credential, the admin token is not asked.
  const callback = CALLBACK_ROUTE;
  doc.paths[callback.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}')] = {
    [callback.method.toLowerCase()]: {
      tags: ['callbacks'],
      security: [],
      description:
        'The token (`<id>.<secret>`, the last segment of the URL) is single-use and is the only credential; it is stored as a hash and never logged.',
      ...operationOf('answerCallback', callback, schema, problem, { '400': problem('Invalid request') }),
    },
  };
}

/** Who else holds a role's rights: each role includes the ones before it. */
const ROLE_REACH = { viewer: ' (or operator, or admin)', operator: ' (or admin)', admin: '' } as const;

/** One operation of a route-table entry: parameters, request body and answers. */
function operationOf(
  operationId: string,
  route: ApiRoute,
  schema: SchemaOf,
  problem: (d: string) => JsonObject,
  errors: JsonObject,
): JsonObject {
  const name = operationId[0]!.toUpperCase() + operationId.slice(1);
  const parameters: JsonObject[] = [];
  // Each property of a params or query schema is one parameter.
  const each = (s: z.ZodType | undefined, part: string) =>
    Object.entries<JsonObject>(s ? (schema(s, 'input', `${name}.${part}`).properties ?? {}) : {});
  for (const [key, value] of each(route.params, 'params')) {
    parameters.push({ name: key, in: 'path', required: true, schema: value });
  }
  for (const [key, value] of each(route.query, 'query')) {
    parameters.push({
      name: key,
      in: 'query',
      required: false,
      schema: value,
      ...(value.description ? { description: value.description } : {}),
    });
  }
  for (const [key, value] of Object.entries(route.headers ?? {})) {
    parameters.push({ name: key, in: 'header', required: false, schema: schema(value, 'input', name) });
  }
  const { answer } = route;
  return {
    operationId,
    summary: route.summary,
    ...(parameters.length > 0 ? { parameters } : {}),
    ...(route.body
      ? {
          requestBody: {
            required: route.emptyBody === undefined,
            content: { 'application/json': { schema: schema(route.body, 'input', `${name}.body`) } },
          },
        }
      : route.anyBody
        ? { requestBody: { required: false, content: { 'application/json': { schema: {} } } } }
        : {}),
    responses: {
      [answer.status]: {
        description: answer.description ?? 'OK',
        content: {
          [answer.contentType ?? 'application/json']: {
            schema: answer.component
              ? { $ref: `#/components/schemas/${answer.component}` }
              : schema(answer.schema, 'output', `${name}.answer`),
          },
        },
      },
      ...errors,
      ...Object.fromEntries(Object.entries(route.errors ?? {}).map(([status, d]) => [status, problem(d)])),
    },
  };
}

/** Tandem's own paths outside /api. */
function addOperationsPaths(doc: JsonObject, schema: SchemaOf, problem: (d: string) => JsonObject) {
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
      responses: {
        '200': {
          description: 'OK',
          content: { 'application/json': { schema: schema(api.healthSchema, 'output', 'Health') } },
        },
        '503': problem('The store is not reachable'),
      },
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
