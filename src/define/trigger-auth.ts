/**
 * Who may call an HTTP trigger (a definition's `auth`): the options and their check. The server
 * verifies requests against them (src/server/trigger-auth.ts); the secret's key bytes are read in
 * one place for both.
 */
import { z } from 'zod';
import { between, options } from './options.js';

/** Who may call an HTTP trigger. Without `auth`, anyone who reaches the route may. */
export type TriggerAuth = ApiKeyAuth | StandardWebhooksAuth;

/**
 * A shared key in a header.
 *
 * @example
 * auth: { type: 'api-key', header: 'x-api-key', keys: [process.env.SHOP_API_KEY!] }
 */
export interface ApiKeyAuth {
  type: 'api-key';
  /** Header carrying the key. Default `x-api-key`. */
  header?: string;
  /** Accepted keys; more than one lets a key be rotated without downtime. */
  keys: string[];
}

/**
 * An HMAC-SHA256 signature as specified by Standard Webhooks (`webhook-id`, `webhook-timestamp`,
 * `webhook-signature` headers). On an async trigger the `webhook-id` doubles as idempotency key,
 * so a redelivered webhook returns the instance of the first delivery.
 *
 * @example
 * auth: { type: 'standard-webhooks', secret: process.env.PAYMENTS_WEBHOOK_SECRET! }
 */
export interface StandardWebhooksAuth {
  type: 'standard-webhooks';
  /** Signing secret(s) as `whsec_<base64>` (or bare base64); several during a rotation. */
  secret: string | string[];
  /** Accepted distance of `webhook-timestamp` from now, in seconds. Default 300. */
  toleranceSeconds?: number;
}

const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$/;

const apiKeyAuth = options({
  type: z.literal('api-key'),
  header: z
    .string({ error: 'must be a header name' })
    .regex(HEADER_NAME, { error: 'must be a header name' })
    .optional(),
  keys: z.custom<string[]>(
    (v) => Array.isArray(v) && v.length > 0 && v.every((k) => typeof k === 'string' && k !== ''),
    { error: 'must be a non-empty list of non-empty strings (is an environment variable unset?)' },
  ),
} satisfies Record<keyof ApiKeyAuth, unknown>);

const webhookSecret = (v: unknown) => typeof v === 'string' && webhookSecretBytes(v).length > 0;
const standardWebhooksAuth = options({
  type: z.literal('standard-webhooks'),
  secret: z.custom<string | string[]>(
    (v) => (Array.isArray(v) ? v.length > 0 && v.every(webhookSecret) : webhookSecret(v)),
    {
      error:
        'must be a Standard Webhooks secret "whsec_<base64>", or a list of them (is an environment variable unset?)',
    },
  ),
  toleranceSeconds: between(0, 86_400, true).optional(),
} satisfies Record<keyof StandardWebhooksAuth, unknown>);

export const triggerAuth = z.discriminatedUnion('type', [apiKeyAuth, standardWebhooksAuth], {
  error: (issue) =>
    issue.path?.at(-1) === 'type'
      ? 'must be "api-key" or "standard-webhooks"'
      : 'must be { type: "api-key", keys } or { type: "standard-webhooks", secret }',
});

/** The key bytes of a Standard Webhooks secret (`whsec_` prefix optional, base64 body). */
export function webhookSecretBytes(secret: string): Buffer {
  const body = secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : secret;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(body)) return Buffer.alloc(0);
  return Buffer.from(body, 'base64');
}
