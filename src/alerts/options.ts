/**
 * What `alerts` in the config is made of, and its check: where alerts go (a signed webhook, e-mail),
 * what raises one, and how long a burst is gathered into one message. Apart from the code that
 * collects and sends them, so that the config can check them without loading that code.
 */
import { z } from 'zod';
import { isConnection } from '../connections/connection.js';
import type { SecretValue } from '../connections/secret.js';
import type { SmtpConnection } from '../connections/smtp.js';
import { checkOptions, integer, oneOf, options, timerMs } from '../define/options.js';
import { type RetryPolicy, retryPolicySchema } from '../define/retry.js';
import { webhookSecretBytes } from '../define/trigger-auth.js';
import { InvalidDefinitionError } from '../errors.js';

/** A receiver of alerts over HTTP, signed per Standard Webhooks. */
export interface AlertWebhook {
  /** Where alerts are POSTed (http or https). */
  url: string;
  /**
   * The Standard Webhooks signing secret, `whsec_<base64>`; `secret('NAME')` reads it from the
   * environment when an alert is sent, so it is never stored.
   */
  secret: SecretValue;
  /**
   * `json` (default): the alert as a JSON object. `cloudevents`: a structured-mode CloudEvent
   * (`application/cloudevents+json`) of type `dev.tandem.alert` whose `data` is that object.
   */
  format?: 'json' | 'cloudevents';
  /** Per request, in ms. Default 10 s. */
  timeout?: number;
}

/** A recipient list for alerts by e-mail, sent through an SMTP connection. */
export interface AlertEmail {
  /** Made with `smtpConnection()`; list it in `connections` too to see it on the console. */
  connection: SmtpConnection;
  to: string | string[];
  /** Default: the connection's `from`. */
  from?: string;
}

/** When the backlog (instances queued or retrying, waiting for a worker) raises an alert. */
export interface BacklogAlert {
  /** An alert when the backlog passes this many, and another when it is back under it. */
  above: number;
  /** How often a worker counts it, in ms. Default 60 s. */
  checkEveryMs?: number;
}

/**
 * Alerts: when an instance fails for good, a connection's circuit opens or closes, a schedule
 * misses a slot, or the backlog passes a threshold, a message goes to a webhook and/or by e-mail.
 * Everything that happens within `groupMs` of a burst's first event is one message. Each message is
 * an instance of the internal async integration `tandem.alerts`, retried until it is delivered.
 *
 * @example
 * alerts: {
 *   webhook: { url: 'https://chat.example.com/hooks/ops', secret: secret('ALERT_WEBHOOK_SECRET') },
 *   backlog: { above: 10_000 },
 * }
 */
export interface AlertsOptions {
  webhook?: AlertWebhook;
  /** Alerts by e-mail (plain text, the title as subject); with `webhook`, both are sent. */
  email?: AlertEmail;
  /** Alert on instances failing for good. Default true. */
  failed?: boolean;
  /** Alert on circuits opening and closing. Default true. */
  circuits?: boolean;
  /** Alert on schedules missing a slot (skipped by overlap, not fired while no scheduler ran, firing failed). Default true. */
  schedules?: boolean;
  /** Alert on the backlog passing a threshold. Default: no backlog alert. */
  backlog?: BacklogAlert;
  /** Events within this long of a burst's first are sent as one message, in ms. Default 60 s. */
  groupMs?: number;
  /** How the alert instances are retried. Default: up to 10,000 attempts, at most 5 min apart (about 35 days). */
  retry?: RetryPolicy;
}

/** The id of the internal integration whose instances deliver alerts. */
export const ALERTS_INTEGRATION = 'tandem.alerts';

const isHttpUrl = (value: unknown) =>
  typeof value === 'string' &&
  URL.canParse(value) &&
  ['http:', 'https:'].includes(new URL(value).protocol) &&
  !value.includes('#');

const signingSecret = z.custom<SecretValue>(
  (v) =>
    (typeof v === 'string' && webhookSecretBytes(v).length > 0) ||
    (typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === 'tandem.secret'),
  {
    error:
      'must be a Standard Webhooks secret "whsec_<base64>" or secret(\'NAME\') (is an environment variable unset?)',
  },
);

const webhookSchema = options({
  url: z.custom<string>(isHttpUrl, { error: 'must be an http: or https: URL without a fragment' }),
  secret: signingSecret,
  format: oneOf(['json', 'cloudevents']).optional(),
  timeout: timerMs.optional(),
} satisfies Record<keyof AlertWebhook, unknown>);

const address = z
  .string({ error: 'must be an e-mail address' })
  .regex(/@/, { error: 'must be an e-mail address' });
const emailSchema = options({
  connection: z.custom<SmtpConnection>((v) => isConnection(v) && v.type === 'smtp', {
    error: 'must be created with smtpConnection()',
  }),
  to: z.union([address, z.array(address).min(1)], {
    error: 'must be an address or a non-empty list of them',
  }),
  from: address.optional(),
} satisfies Record<keyof AlertEmail, unknown>);

const flag = z.boolean({ error: 'must be true or false' });

export const alertsSchema = options({
  webhook: webhookSchema.optional(),
  email: emailSchema.optional(),
  failed: flag.optional(),
  circuits: flag.optional(),
  schedules: flag.optional(),
  backlog: options({
    above: integer(1, Number.MAX_SAFE_INTEGER),
    checkEveryMs: timerMs.optional(),
  } satisfies Record<keyof BacklogAlert, unknown>).optional(),
  groupMs: timerMs.optional(),
  retry: retryPolicySchema.optional(),
} satisfies Record<keyof AlertsOptions, unknown>);

/** Checks alert options on their own (the config checks them as `alerts`): at least one destination. */
export function checkAlerts(alerts: AlertsOptions, where = 'alerts'): void {
  checkOptions(alertsSchema, alerts, where);
  if (alerts.webhook === undefined && alerts.email === undefined) {
    throw new InvalidDefinitionError(`${where} needs a destination: webhook or email`);
  }
}
