/**
 * Sends an alert to a webhook, signed per Standard Webhooks (https://www.standardwebhooks.com):
 * `webhook-id` is the alert instance's id, the same on every attempt so that a receiver drops a
 * repeat; `webhook-timestamp` and `webhook-signature` (HMAC-SHA256 of `id.timestamp.body` with the
 * secret's key) are made per attempt, so that a retry hours later is not refused as stale. The body
 * is the message as JSON, or a structured-mode CloudEvent carrying it (the cloudevents SDK, loaded
 * only for that format).
 */
import { createHmac } from 'node:crypto';
import type { HttpConnection } from '../connections/http.js';
import { reveal } from '../connections/secret.js';
import type { AsyncContext } from '../define/integration.js';
import { webhookSecretBytes } from '../define/trigger-auth.js';
import { NonRetryableError } from '../errors.js';
import type { AlertMessage } from './message.js';
import type { AlertWebhook } from './options.js';

/** The CloudEvents type of an alert. */
const ALERT_EVENT_TYPE = 'dev.tandem.alert';

/** The `webhook-signature` header of a body: `v1,<base64 HMAC-SHA256>`. */
function signWebhook(key: Buffer, id: string, timestampSeconds: number, body: string): string {
  const digest = createHmac('sha256', key).update(`${id}.${timestampSeconds}.${body}`, 'utf8').digest();
  return `v1,${digest.toString('base64')}`;
}

/** The connection alerts are POSTed through (timeout, circuit breaker, a recorded call) and the path on it. */
export function webhookTarget(
  webhook: AlertWebhook,
  connect: (baseUrl: string, timeout: number | undefined) => HttpConnection,
): { connection: HttpConnection; path: string } {
  const url = new URL(webhook.url);
  return {
    connection: connect(`${url.origin}/`, webhook.timeout),
    path: url.pathname.slice(1) + url.search,
  };
}

/** The body and content type of an alert in the webhook's format. */
async function bodyOf(
  message: AlertMessage,
  id: string,
  format: AlertWebhook['format'],
): Promise<{ body: string; contentType: string }> {
  if (format !== 'cloudevents') return { body: JSON.stringify(message), contentType: 'application/json' };
  const { CloudEvent, HTTP } = await import('cloudevents');
  const event = new CloudEvent({
    id,
    // The deployment's console: a URI that names where the alert comes from.
    source: message.console.replace(/#.*$/, ''),
    type: ALERT_EVENT_TYPE,
    subject: message.title,
    // The burst's close: the same on every attempt, so every attempt sends the same event.
    time: message.to,
    datacontenttype: 'application/json',
    data: message,
  });
  const structured = HTTP.structured(event);
  return {
    body: structured.body as string,
    contentType: String(structured.headers['content-type'] ?? 'application/cloudevents+json'),
  };
}

/** POSTs one alert; the call is recorded in the alert instance's timeline like any `ctx.call`. */
export async function sendWebhook(
  ctx: AsyncContext<unknown>,
  message: AlertMessage,
  webhook: AlertWebhook,
  target: { connection: HttpConnection; path: string },
): Promise<{ delivered: true }> {
  const key = webhookSecretBytes(reveal(webhook.secret));
  if (key.length === 0) {
    // A secret from the environment that is not a Standard Webhooks secret: no retry mends it.
    throw new NonRetryableError('alerts.webhook.secret is not a Standard Webhooks secret "whsec_<base64>"');
  }
  const id = ctx.instanceId;
  const { body, contentType } = await bodyOf(message, id, webhook.format);
  const timestamp = Math.floor(Date.now() / 1000);
  await ctx.call(target.connection, 'POST', target.path, {
    body,
    headers: {
      'content-type': contentType,
      'webhook-id': id,
      'webhook-timestamp': String(timestamp),
      'webhook-signature': signWebhook(key, id, timestamp, body),
    },
  });
  return { delivered: true };
}
