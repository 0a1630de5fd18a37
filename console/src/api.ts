/**
 * The management API as the console uses it. With an admin token configured, the server's sign-in
 * page has set an HttpOnly session cookie that the browser sends with every same-origin request;
 * the page itself never sees the token.
 */

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
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

/** Server time minus browser time, from the Date header of the last answer. */
let clockOffset = 0;
/** Now by the server's clock (to the second), for filters on times the server recorded. */
export const serverNow = () => Date.now() + clockOffset;

export async function api<T>(path: string, init: { method?: string; body?: unknown } = {}): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`/api${path}`, {
    method: init.method ?? 'GET',
    headers,
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
  });
  const date = Date.parse(response.headers.get('date') ?? '');
  if (Number.isFinite(date)) clockOffset = date - Date.now();
  const body = response.headers.get('content-type')?.includes('json') ? await response.json() : null;
  if (response.status === 401) for (const listener of unauthorisedListeners) listener();
  if (!response.ok) {
    throw new ApiError(
      response.status,
      body?.detail ?? body?.title ?? `${response.status} ${response.statusText}`,
    );
  }
  return body as T;
}

/** Whether this console runs behind a sign-in (an admin token is configured and the session is valid). */
export async function signedIn(): Promise<boolean> {
  const response = await fetch('/console/session', { headers: { accept: 'application/json' } });
  if (!response.ok) return false;
  return ((await response.json()) as { signedIn: boolean }).signedIn;
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

const ACTIVITY_TYPES = [
  'accepted',
  'started',
  'step.started',
  'step.succeeded',
  'step.failed',
  'connection.call',
  'retry.scheduled',
  'lease.expired',
  'succeeded',
  'failed',
  'rerun',
  'cancelled',
  'progress',
];

export type Status = 'queued' | 'running' | 'retrying' | 'succeeded' | 'failed' | 'cancelled';
export const STATUSES: Status[] = ['queued', 'running', 'retrying', 'succeeded', 'failed', 'cancelled'];

export interface ErrorInfo {
  name: string;
  message: string;
  code?: string;
  stack?: string;
  details?: Record<string, unknown>;
}

export interface Instance {
  id: string;
  integrationId: string;
  mode: 'sync' | 'async' | 'scheduled';
  status: Status;
  input: unknown;
  output: unknown;
  error: ErrorInfo | null;
  run: number;
  attempt: number;
  tracking: Record<string, string>;
  parentId: string | null;
  createdAt: number;
  updatedAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  durationMs: number | null;
}

export interface Run {
  run: number;
  from: 'failed-step' | 'start' | null;
  status: string;
  input: unknown;
  startedAt: number;
  finishedAt: number | null;
  error: ErrorInfo | null;
}

export interface Step {
  run: number;
  name: string;
  position: number;
  status: 'succeeded' | 'failed';
  output: unknown;
  error: ErrorInfo | null;
  attempt: number;
  startedAt: number;
  finishedAt: number;
  seeded: boolean;
}

export interface ActivityEvent {
  id: number;
  instanceId: string;
  integrationId: string;
  run: number;
  type: string;
  at: number;
  data: Record<string, unknown>;
}

export interface InstanceDetail {
  instance: Instance;
  runs: Run[];
  steps: Step[];
  events: ActivityEvent[];
}

export interface WindowFigures {
  total: number;
  succeeded: number;
  failed: number;
  failureRate: number | null;
  p50: number | null;
  p95: number | null;
  p99: number | null;
  retriesPerInstance: number;
}

export interface Advice {
  kind: string;
  message: string;
  figures: Record<string, number | string>;
}

export interface IntegrationSummary {
  id: string;
  mode: 'sync' | 'async' | 'scheduled';
  description: string | null;
  triggers: (
    | { type: 'http'; method: string; path: string }
    | { type: 'cron'; cron: string }
    | { type: 'api' }
  )[];
  counts: Record<Status, number>;
  stats: { total: number; errorRate: number | null; windows: Record<'1h' | '24h' | '7d', WindowFigures> };
  advice: Advice[];
}

export interface ConnectionSummary {
  id: string;
  baseUrl: string;
  circuit: 'closed' | 'half-open' | 'open';
  calls: number;
  failures: number;
  failureRate: number | null;
  p50: number | null;
  p95: number | null;
  p99: number | null;
  lastStatus: number | null;
  lastCallAt: number | null;
}

export interface Schedule {
  integrationId: string;
  cron: string;
  timezone: string;
  overlap: string;
  parameters: Record<string, unknown>;
  nextSlotAt: number | null;
  nextSlots: number[];
  lastSlotAt: number | null;
  recentSlots: { slotAt: number; outcome: 'fired' | 'skipped'; instanceId: string | null }[];
}

export interface ErrorGroup {
  integrationId: string;
  name: string;
  message: string;
  code: string | null;
  count: number;
  latestAt: number;
  instanceIds: string[];
}
