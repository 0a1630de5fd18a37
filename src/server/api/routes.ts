/**
 * The management API (`/api`), each route declared once: its method and path, its request schemas
 * (params, query, body) and its answers. `serve.ts` registers a route from its entry here (Fastify
 * validates the request with these schemas and types the handler by them), `openapi.ts` documents
 * it from the same entry, and the console takes its response types from here (`ApiResponse`).
 * Like `schemas.ts`, this file imports only zod and the shapes, so that the console can import it.
 */
import type { z } from 'zod';
import type { Role } from '../../model.js';
import * as operations from './operation-schemas.js';
import { pictureSchema } from './picture-schemas.js';
import * as api from './schemas.js';

/** A success answer: its status and schema; `contentType` for an answer that is not JSON. */
interface ApiAnswer {
  status: 200 | 202;
  schema: z.ZodType;
  description?: string;
  /** A reusable schema of the document's components (`#/components/schemas/<name>`). */
  component?: string;
  contentType?: string;
}

export interface ApiRoute {
  method: 'GET' | 'POST';
  /**
   * The role a token needs (docs/http-api.md, "Roles"): `viewer` reads, `operator` reruns, cancels,
   * acknowledges and runs now, `admin` does the rest. The guard refuses a lesser role with 403.
   * Every route under /api names one (`ManagementRoute`); the callback route has none.
   */
  role?: Role;
  /** Under /api, in Fastify's syntax (`:id`). */
  url: string;
  summary: string;
  params?: z.ZodType;
  query?: z.ZodType;
  body?: z.ZodType;
  /** What an absent or `null` body reads as; the body is then optional. */
  emptyBody?: unknown;
  /** A body of any JSON that the handler validates itself (an integration's input). */
  anyBody?: true;
  /** Request headers the handler reads (and checks), as documented. */
  headers?: Record<string, z.ZodType>;
  answer: ApiAnswer;
  /** The answers besides 400 (and 401/403 when guarded), as problem+json, by status. */
  errors?: Partial<Record<404 | 409 | 410 | 422 | 429, string>>;
}

/** The body of a route's success answer. */
export type ApiResponse<K extends keyof typeof API_ROUTES> = z.output<
  (typeof API_ROUTES)[K]['answer']['schema']
>;

/** A route under /api: it always names the role it needs, so that none is open by omission. */
export type ManagementRoute = ApiRoute & { role: Role };

const table = <T extends Record<string, ManagementRoute>>(routes: T) => routes;

/** Every route under /api, by operation id, in the order the document lists them. */
export const API_ROUTES = table({
  listIntegrations: {
    method: 'GET',
    role: 'viewer',
    url: '/integrations',
    summary: 'Each integration: mode, triggers, counts and statistics',
    answer: { status: 200, schema: api.integrationListSchema },
  },
  getIntegrationPicture: {
    method: 'GET',
    role: 'viewer',
    url: '/integrations/:id/picture',
    summary:
      'An integration as a picture: triggers, pattern, steps in order with the connections each calls, per-step figures over its 50 newest instances, advice',
    params: api.integrationIdParams,
    answer: { status: 200, schema: pictureSchema },
    errors: { 404: 'Unknown integration' },
  },
  runIntegration: {
    method: 'POST',
    role: 'operator',
    url: '/integrations/:id/run',
    summary: 'Start an async or scheduled integration now; the body is the input',
    params: api.integrationIdParams,
    query: operations.sourceQuery,
    headers: { 'Idempotency-Key': api.idempotencyKeyHeader },
    anyBody: true,
    answer: { status: 202, schema: api.acceptedSchema, description: 'Accepted', component: 'Accepted' },
    errors: {
      404: 'Unknown integration',
      409: 'A sync integration cannot be started as durable work',
      422: 'Idempotency-Key reused with a different body',
      429: 'Too much work is waiting',
    },
  },
  getIntegrationInput: {
    method: 'GET',
    role: 'viewer',
    url: '/integrations/:id/input',
    summary: "An integration's input as JSON Schema, and the body it is run with from the console",
    params: api.integrationIdParams,
    answer: { status: 200, schema: operations.integrationInputSchema },
    errors: { 404: 'Unknown integration' },
  },
  callIntegration: {
    method: 'POST',
    role: 'operator',
    url: '/integrations/:id/call',
    summary:
      'Call a sync integration as its route would, under its deadline; answers the status, body and instance id',
    params: api.integrationIdParams,
    query: operations.sourceQuery,
    body: operations.syncCallBody,
    emptyBody: {},
    answer: { status: 200, schema: operations.syncCallResultSchema },
    errors: { 404: 'Unknown integration', 409: 'The integration is not a sync integration' },
  },
  getOverview: {
    method: 'GET',
    role: 'viewer',
    url: '/overview',
    summary:
      'Stored figures per minute (last hour) or per hour (last day): accepted, succeeded, failed, p95; and the unfinished work',
    query: operations.overviewQuery,
    answer: { status: 200, schema: operations.overviewSchema },
  },
  listInstances: {
    method: 'GET',
    role: 'viewer',
    url: '/instances',
    summary: 'Instances, newest first, filtered, with cursor paging',
    query: api.listInstancesQuery,
    answer: { status: 200, schema: api.instancePageSchema },
  },
  rerunInstances: {
    method: 'POST',
    role: 'operator',
    url: '/instances/rerun',
    summary:
      'Rerun every finished instance that matches a filter, or the listed ones; each refusal with its reason',
    body: api.bulkRerunBody,
    answer: { status: 200, schema: api.bulkRerunResultSchema },
  },
  getInstance: {
    method: 'GET',
    role: 'viewer',
    url: '/instances/:id',
    summary: 'An instance with its runs, steps and activity events',
    params: api.instanceIdParams,
    answer: { status: 200, schema: api.instanceDetailSchema },
    errors: { 404: 'Unknown instance' },
  },
  rerunInstance: {
    method: 'POST',
    role: 'operator',
    url: '/instances/:id/rerun',
    summary:
      'Rerun an instance from the failed step or from the start, optionally with corrected input (a corrected input needs the admin role)',
    params: api.instanceIdParams,
    body: api.rerunBody,
    emptyBody: {},
    answer: { status: 200, schema: api.rerunResultSchema },
    errors: {
      404: 'Unknown instance',
      409: 'The instance is not in a final state, or is a sync instance',
    },
  },
  cancelInstance: {
    method: 'POST',
    role: 'operator',
    url: '/instances/:id/cancel',
    summary: 'Cancel an instance that has not finished',
    params: api.instanceIdParams,
    answer: { status: 200, schema: api.cancelResultSchema },
    errors: { 404: 'Unknown instance', 409: 'The instance has already finished' },
  },
  sendEvent: {
    method: 'POST',
    role: 'admin',
    url: '/events',
    summary: 'Send a business event: instances waiting for it (ctx.waitForEvent, by name and match) resume',
    body: api.sendEventBody,
    answer: {
      status: 202,
      schema: api.sentEventSchema,
      description: 'Stored (or a duplicate id, stored before); the instances it resumed',
    },
  },
  followActivity: {
    method: 'GET',
    role: 'viewer',
    url: '/activity',
    summary: 'The activity stream as Server-Sent Events; resume with Last-Event-ID',
    query: api.activityQuery,
    headers: { 'Last-Event-ID': api.lastEventIdHeader },
    answer: {
      status: 200,
      schema: api.streamSchema,
      description: 'An event stream',
      contentType: 'text/event-stream',
    },
  },
  decidePattern: {
    method: 'POST',
    role: 'viewer',
    url: '/advisor/decide',
    summary: 'The pattern for the three questions of the decision table, with its reasons',
    body: api.decideBody,
    answer: { status: 200, schema: api.decisionSchema },
  },
  listConnections: {
    method: 'GET',
    role: 'viewer',
    url: '/connections',
    summary: 'Each connection: circuit state and call statistics since the server started',
    answer: { status: 200, schema: operations.connectionListSchema },
  },
  listSchedules: {
    method: 'GET',
    role: 'viewer',
    url: '/schedules',
    summary: 'Each scheduled integration: cron, parameters, next and recent firings',
    answer: { status: 200, schema: operations.scheduleListSchema },
  },
  listErrorGroups: {
    method: 'GET',
    role: 'viewer',
    url: '/errors',
    summary:
      'Failed instances grouped by integration, error code, step and connection, with example messages and whether each group can be rerun',
    query: operations.errorGroupsQuery,
    answer: { status: 200, schema: operations.errorGroupsSchema },
  },
  acknowledgeErrors: {
    method: 'POST',
    role: 'operator',
    url: '/errors/acknowledge',
    summary: 'Acknowledge (or take back) every failure of the named groups, or the listed instances',
    body: operations.acknowledgeGroupsBody,
    answer: { status: 200, schema: operations.acknowledgeGroupsResultSchema },
  },
  acknowledgeInstance: {
    method: 'POST',
    role: 'operator',
    url: '/instances/:id/acknowledge',
    summary: 'Acknowledge a failed instance (sync or async): it leaves the default errors view',
    params: api.instanceIdParams,
    body: api.acknowledgeBody,
    emptyBody: {},
    answer: { status: 200, schema: api.acknowledgeResultSchema },
    errors: { 404: 'Unknown instance', 409: 'The instance has not failed' },
  },
  unacknowledgeInstance: {
    method: 'POST',
    role: 'operator',
    url: '/instances/:id/unacknowledge',
    summary: 'Take back the acknowledgement of a failed instance: it shows in the errors view again',
    params: api.instanceIdParams,
    answer: { status: 200, schema: api.acknowledgeResultSchema },
    errors: { 404: 'Unknown instance', 409: 'The instance has not failed' },
  },
});

/**
 * `POST /callbacks/:token`, outside /api and its admin token: the URL `ctx.callback()` hands to a
 * partner, whose token is the credential. Registered by `callbacks.ts`, documented beside the API.
 */
export const CALLBACK_ROUTE = {
  method: 'POST',
  url: '/callbacks/:token',
  summary:
    "A partner's answer to a callback URL handed out by ctx.callback(): resumes the waiting instance once, with the body (any JSON; none: null) as the result",
  params: api.callbackParams,
  anyBody: true,
  emptyBody: null,
  answer: { status: 202, schema: api.callbackResultSchema, description: 'The instance resumes' },
  errors: {
    404: 'No callback has this URL',
    409: 'The callback was already answered',
    410: 'The callback expired: its timeout passed, or its instance finished or was rerun',
  },
} satisfies ApiRoute;
