/**
 * The configuration of a Tandem process, checked as a whole when it is defined (and again when the
 * CLI loads it), so that a wrong option fails at start with `invalid-definition`.
 */
import type { TracerProvider } from '@opentelemetry/api';
import { z } from 'zod';
import { type AlertsOptions, alertsSchema, checkAlerts } from '../alerts/options.js';
import { type Connection, isConnection } from '../connections/connection.js';
import type { SecretValue } from '../connections/secret.js';
import { InvalidDefinitionError } from '../errors.js';
import type { ActivityWebhookOptions } from '../feeds/activity-webhook.js';
import { ACTIVITY_TYPES } from '../lifecycle/index.js';
import { ROLES, type Role } from '../model.js';
import type { TracingOptions } from '../tracing/tracing.js';
import { type AnyIntegration, isIntegration } from './integration.js';
import { checkOptions, delayMs, integer, nonEmptyText, oneOf, options, timerMs } from './options.js';

/**
 * How long instances in a final state are kept. Succeeded and cancelled instances, and failed sync
 * records (monitoring only: a sync call is never rerun), are deleted after a period. A failed async
 * or scheduled instance is work waiting for a rerun or a cancel: it is kept until resolved, unless
 * `failedKeepMs` is set, and one with an ordering key is always kept (it holds its key).
 */
export interface RetentionOptions {
  /** Succeeded and cancelled instances of every mode. Default 30 days. */
  keepMs?: number;
  /** Failed sync records. Default: as `keepMs`. */
  failedSyncKeepMs?: number;
  /** Failed async and scheduled instances without an ordering key. Default: kept until rerun or cancelled. */
  failedKeepMs?: number;
  /** How often the purge runs. Default 1 hour. */
  intervalMs?: number;
}

/**
 * A token of the management API and the console, with its role (docs/http-api.md, "Roles"). Its
 * name is recorded with every change it makes; the secret never is.
 */
export interface ApiToken {
  /** Shown in the activity stream with what the token changed: letters, digits, `.`, `_`, `-`. */
  name: string;
  /** `admin` (everything), `operator` (rerun, cancel, acknowledge, run now, read) or `viewer` (read). */
  role: Role;
  /** The secret sent as `Authorization: Bearer <token>`; at least 16 characters. */
  token: string;
  /** A viewer sees input and output bodies too. Default false (operators and admins always do). */
  bodies?: boolean;
}

/** Settings of the HTTP server (`tandem start`). */
export interface ServerOptions {
  /**
   * Guards /api with `Authorization: Bearer <token>`: the token of the `admin` role, named "admin".
   * Default `TANDEM_ADMIN_TOKEN`; null for none.
   */
  adminToken?: string | null;
  /**
   * More tokens, each with a name and a role. Default: `TANDEM_OPERATOR_TOKEN` (named "operator")
   * and `TANDEM_VIEWER_TOKEN` (named "viewer") when set.
   */
  tokens?: ApiToken[];
  /** Largest request body in bytes. Default 1 MiB. */
  bodyLimit?: number;
  /** Deepest nesting of a JSON body. Default 64. */
  maxBodyDepth?: number;
  /** Above this many queued or retrying instances, async triggers answer 429. Default 100,000. */
  maxQueueDepth?: number;
  /** How often the queue depth is counted, in ms. Default 1 s. */
  queueDepthRefreshMs?: number;
  /** `Retry-After` of a 429, in seconds. Default 5. */
  retryAfterSeconds?: number;
  /** Longest deadline a sync integration may declare, in ms. Default 60 s. */
  maxDeadlineMs?: number;
  /**
   * The address partners reach this deployment at (`https://tandem.example.com`): the callback URLs
   * of `ctx.callback()` begin with it. Default `TANDEM_PUBLIC_URL`, else where the server listens
   * (`http://<host>:<port>`). Set it behind a proxy, and for `--role worker` processes.
   */
  publicUrl?: string;
}

/** Everything a Tandem process needs to know; usually the default export of `tandem.config.ts`. */
export interface TandemConfig {
  integrations: AnyIntegration[];
  /** Connections to applications, for `ctx.call()`. */
  connections?: Connection[];
  /** Store URL: `sqlite:./path.db` (default `sqlite:./.tandem/tandem.db`) or `postgres://…`. */
  store?: string;
  /** Instances run at the same time by this process. Default 50. */
  concurrency?: number;
  /** Lease length in ms; renewed at a third of it. Default 30 s. */
  leaseMs?: number;
  /** Safety-net poll for due work in ms. Default 1 s. */
  pollIntervalMs?: number;
  /**
   * How long finished instances are kept, per outcome (`keepMs`, `failedSyncKeepMs`,
   * `failedKeepMs`), and how often the purge runs (`intervalMs`); `false` keeps everything.
   */
  retention?: RetentionOptions | false;
  /** Business events for `ctx.waitForEvent` (docs/semantics.md, "Waits"). */
  events?: {
    /** A wait also takes a matching event received this long before it began; events are kept this long. Default 1 h. */
    lookBackMs?: number;
  };
  /** The HTTP server. */
  server?: ServerOptions;
  /**
   * Alerts when instances fail for good, circuits open or close, schedules miss slots or the
   * backlog passes a threshold: to a signed webhook, grouped per burst (docs/alerts.md).
   */
  alerts?: AlertsOptions;
  /**
   * Sends the activity stream to a URL as CloudEvents, in order, at least once, from a cursor kept
   * in the store (docs/configuration.md, "Activity webhook").
   */
  activityWebhook?: ActivityWebhookOptions;
  /**
   * OpenTelemetry traces (docs/tracing.md): `{ endpoint, headers, serviceName }` for Tandem's own
   * OTLP/HTTP exporter, or `{ tracerProvider }` of your own SDK; `false` turns them off. Default: on
   * when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set.
   */
  tracing?: TracingOptions | false;
}

const TOKEN_NAME = /^[A-Za-z0-9._-]{1,64}$/;

const serverSchema = options({
  adminToken: z.string({ error: 'must be a string or null' }).nullable().optional(),
  tokens: z
    .array(
      options({
        name: z
          .string({ error: 'must be a string' })
          .regex(TOKEN_NAME, { error: 'must be 1 to 64 letters, digits, ".", "_" or "-"' }),
        role: oneOf(ROLES),
        token: z
          .string({ error: 'must be a string (an unset environment variable?)' })
          .min(16, { error: 'must be at least 16 characters' }),
        bodies: z.boolean({ error: 'must be true or false' }).optional(),
      } satisfies Record<keyof ApiToken, unknown>),
      { error: 'must be a list of { name, role, token }' },
    )
    .optional(),
  bodyLimit: integer(1, 1_073_741_824).optional(),
  maxBodyDepth: integer(1, 10_000).optional(),
  maxQueueDepth: integer(1, Number.MAX_SAFE_INTEGER).optional(),
  queueDepthRefreshMs: timerMs.optional(),
  retryAfterSeconds: integer(0, 86_400).optional(),
  maxDeadlineMs: timerMs.optional(),
  publicUrl: z
    .string({ error: 'must be a string' })
    .refine(isPublicUrl, { error: 'must be an http:// or https:// URL without a query or fragment' })
    .optional(),
} satisfies Record<keyof ServerOptions, unknown>);

/** An absolute http(s) URL. */
function isHttpUrl(value: unknown): boolean {
  if (typeof value !== 'string' || !URL.canParse(value)) return false;
  const { protocol } = new URL(value);
  return protocol === 'http:' || protocol === 'https:';
}

/** An absolute http(s) URL that a path can be appended to (`/callbacks/…`). */
function isPublicUrl(value: string): boolean {
  if (!URL.canParse(value)) return false;
  const url = new URL(value);
  return (
    (url.protocol === 'http:' || url.protocol === 'https:') &&
    url.search === '' &&
    url.hash === '' &&
    !value.includes('?') &&
    !value.includes('#')
  );
}

/**
 * The public URL a process names: the configured one, else `TANDEM_PUBLIC_URL`; undefined when
 * neither is set. A wrong environment value is refused at start, as a wrong option is.
 */
export function publicUrlOf(
  server: ServerOptions | undefined,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  const [value, where] =
    server?.publicUrl !== undefined
      ? [server.publicUrl, 'server.publicUrl']
      : [env.TANDEM_PUBLIC_URL || undefined, 'TANDEM_PUBLIC_URL'];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !isPublicUrl(value)) {
    throw new InvalidDefinitionError(
      `${where} "${String(value)}" is not an http:// or https:// URL without a query or fragment`,
    );
  }
  return value;
}

const retentionSchema = z.union(
  [
    z.literal(false),
    options({
      keepMs: delayMs(Number.MAX_SAFE_INTEGER).optional(),
      failedSyncKeepMs: delayMs(Number.MAX_SAFE_INTEGER).optional(),
      failedKeepMs: delayMs(Number.MAX_SAFE_INTEGER).optional(),
      intervalMs: timerMs.optional(),
    } satisfies Record<keyof Exclude<TandemConfig['retention'], false | undefined>, unknown>),
  ],
  { error: 'must be false or { keepMs, failedSyncKeepMs, failedKeepMs, intervalMs }' },
);

const configSchema = options({
  integrations: z.array(z.unknown(), { error: 'must be a list of integrations' }),
  connections: z
    .array(
      z.custom<Connection>(isConnection, {
        error:
          'must be created with httpConnection(), sftpConnection(), postgresConnection() or smtpConnection()',
      }),
      {
        error: 'must be a list of connections',
      },
    )
    .optional(),
  store: nonEmptyText.optional(),
  concurrency: integer(1, 100_000).optional(),
  leaseMs: timerMs.optional(),
  pollIntervalMs: timerMs.optional(),
  retention: retentionSchema.optional(),
  events: options({
    lookBackMs: delayMs(Number.MAX_SAFE_INTEGER).optional(),
  } satisfies Record<keyof NonNullable<TandemConfig['events']>, unknown>).optional(),
  server: serverSchema.optional(),
  alerts: alertsSchema.optional(),
  activityWebhook: options({
    url: z.custom<string>(isHttpUrl, { error: 'must be an http:// or https:// URL' }),
    types: z.array(oneOf(ACTIVITY_TYPES)).min(1).optional(),
    mode: oneOf(['structured', 'binary', 'batch']).optional(),
    source: nonEmptyText.optional(),
    headers: z
      .record(
        z.string(),
        z.custom<SecretValue>(
          (v) => typeof v === 'string' || (v as { kind?: unknown } | null)?.kind === 'tandem.secret',
          { error: "must be a string or secret('NAME')" },
        ),
      )
      .optional(),
    batchSize: integer(1, 10_000).optional(),
    timeoutMs: timerMs.optional(),
    pollIntervalMs: timerMs.optional(),
    retry: options({ minMs: timerMs.optional(), maxMs: timerMs.optional() }).optional(),
  } satisfies Record<keyof ActivityWebhookOptions, unknown>).optional(),
  tracing: z
    .union(
      [
        z.literal(false),
        options({
          endpoint: z
            .string({ error: 'must be a string' })
            .refine((value) => /^https?:\/\/[^?#]+$/.test(value) && URL.canParse(value), {
              error: 'must be an http:// or https:// URL',
            })
            .optional(),
          headers: z
            .record(z.string(), z.string(), { error: 'must be an object of header values' })
            .optional(),
          serviceName: nonEmptyText.optional(),
          tracerProvider: z
            .custom<TracerProvider>(
              (value) =>
                typeof value === 'object' &&
                value !== null &&
                typeof (value as { getTracer?: unknown }).getTracer === 'function',
              { error: 'must be an OpenTelemetry TracerProvider' },
            )
            .optional(),
        } satisfies Record<keyof TracingOptions, unknown>),
      ],
      { error: 'must be false or { endpoint, headers, serviceName, tracerProvider }' },
    )
    .optional(),
} satisfies Record<keyof TandemConfig, unknown>);

/**
 * Checks and returns a configuration: unknown options and wrong values throw `invalid-definition`
 * naming the option (`server.bodyLimit`).
 *
 * @example
 * export default defineConfig({ integrations: [placeOrder, fulfilOrder] });
 */
export function defineConfig(config: TandemConfig): TandemConfig {
  if (!config || !Array.isArray(config.integrations)) {
    throw new InvalidDefinitionError('defineConfig needs { integrations: [...] }');
  }
  checkOptions(configSchema, config, 'Config');
  if (config.alerts !== undefined) checkAlerts(config.alerts, 'Config: alerts');
  checkIntegrations(config.integrations);
  return config;
}

/** Every entry is a defined integration and no id is used twice. */
export function checkIntegrations(
  integrations: readonly unknown[],
): asserts integrations is AnyIntegration[] {
  const seen = new Set<string>();
  for (const integration of integrations) {
    if (!isIntegration(integration)) {
      throw new InvalidDefinitionError('Every integration must be created with defineIntegration()');
    }
    if (seen.has(integration.id)) {
      throw new InvalidDefinitionError(`Integration id "${integration.id}" is defined twice`);
    }
    seen.add(integration.id);
  }
}
