/**
 * The management API as the console uses it. With tokens configured, the server's sign-in page
 * has set an HttpOnly session cookie that the browser sends with every same-origin request;
 * the page itself never sees the token.
 *
 * The shapes are the server's, never restated here: the vocabulary's types come from `model.ts`,
 * the answers' types from the route table (`import type`: nothing of them reaches the bundle), and
 * the lists of statuses and event types from the lifecycle (a few strings, bundled).
 */
import { ACTIVITY_TYPES } from '../../src/lifecycle/names.js';
import type { ActivityEvent } from '../../src/model.js';
import type { ApiResponse } from '../../src/server/api/routes.js';

export { INSTANCE_STATUSES } from '../../src/lifecycle/names.js';
export { ACTIVE, NEVER } from '../../src/lifecycle/statuses.js';
export type { ActivityEvent, Instance, InstanceStatus, Wait } from '../../src/model.js';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    /** The problem+json document of the refusal, when the server sent one. */
    readonly problem: unknown = null,
  ) {
    super(message);
  }
}

type Listener = () => void;
const unauthorisedListeners = new Set<Listener>();
/** Told when the API answers 401 (the session ended): the console then goes to the sign-in page. */
export function onUnauthorised(listener: Listener): () => void {
  unauthorisedListeners.add(listener);
  return () => unauthorisedListeners.delete(listener);
}

export async function api<T>(path: string, init: { method?: string; body?: unknown } = {}): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`/api${path}`, {
    method: init.method ?? 'GET',
    headers,
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
  });
  const body = response.headers.get('content-type')?.includes('json') ? await response.json() : null;
  if (response.status === 401) for (const listener of unauthorisedListeners) listener();
  if (!response.ok) {
    throw new ApiError(
      response.status,
      body?.detail ?? body?.title ?? `${response.status} ${response.statusText}`,
      body,
    );
  }
  return body as T;
}

export const post = <T>(path: string, body: unknown = {}) => api<T>(path, { method: 'POST', body });

/** Follows the activity stream; returns a function that stops it. */
export function followActivity(
  query: Record<string, string>,
  onEvent: (event: ActivityEvent) => void,
  onOpen?: () => void,
): () => void {
  const params = new URLSearchParams(query);
  const source = new EventSource(`/api/activity?${params}`);
  if (onOpen) source.onopen = onOpen;
  const listener = (message: MessageEvent<string>) => onEvent(JSON.parse(message.data) as ActivityEvent);
  for (const type of ACTIVITY_TYPES) source.addEventListener(type, listener);
  return () => source.close();
}

export type InstanceDetail = ApiResponse<'getInstance'>;
export type IntegrationSummary = ApiResponse<'listIntegrations'>['items'][number];
export type ConnectionSummary = ApiResponse<'listConnections'>['items'][number];
export type Schedule = ApiResponse<'listSchedules'>['items'][number];
export type ErrorGroups = ApiResponse<'listErrorGroups'>;
export type ErrorGroup = ErrorGroups['groups'][number];
export type BulkRerunResult = ApiResponse<'rerunInstances'>;
export type AcknowledgeResult = ApiResponse<'acknowledgeErrors'>;
export type Overview = ApiResponse<'getOverview'>;
export type IntegrationInput = ApiResponse<'getIntegrationInput'>;
export type SyncCallResult = ApiResponse<'callIntegration'>;
