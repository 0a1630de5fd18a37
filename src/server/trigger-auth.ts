/**
 * Per-integration trigger auth: an API key in a header, or a Standard Webhooks signature
 * (HMAC-SHA256 over `<webhook-id>.<webhook-timestamp>.<raw body>`, checked against every secret in
 * constant time, with a bounded timestamp to refuse replays of old deliveries).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { AnyIntegration } from '../define/integration.js';
import { type ApiKeyAuth, type StandardWebhooksAuth, webhookSecretBytes } from '../define/trigger-auth.js';
import { forbidden, unauthenticated } from './auth-error.js';
import type { CredentialRing } from './credentials.js';

const DEFAULT_API_KEY_HEADER = 'x-api-key';
const DEFAULT_WEBHOOK_TOLERANCE_SECONDS = 300;

export function apiKeyHeaderOf(auth: ApiKeyAuth): string {
  return (auth.header ?? DEFAULT_API_KEY_HEADER).toLowerCase();
}

/** An `onRequest` hook: runs before the body is read, so an unauthenticated caller costs no parsing. */
export function apiKeyGuard(integration: AnyIntegration, auth: ApiKeyAuth, ring: CredentialRing) {
  const header = apiKeyHeaderOf(auth);
  const challenge = `ApiKey header="${header}"`;
  return async (request: FastifyRequest): Promise<void> => {
    const presented = request.headers[header];
    if (typeof presented !== 'string' || presented === '') {
      throw unauthenticated(`This trigger needs an API key in the "${header}" header`, challenge);
    }
    const grant = ring.identify(presented);
    if (grant === null) throw unauthenticated('The API key is not valid', challenge);
    if (grant.kind !== 'trigger' || !grant.integrationIds.has(integration.id)) {
      throw forbidden(`This credential does not grant the trigger of "${integration.id}"`);
    }
  };
}

const CHALLENGE = 'Signature scheme="standard-webhooks"';

/** Verifies a Standard Webhooks delivery; returns its `webhook-id`. Throws 401 otherwise. */
export function makeWebhookVerifier(auth: StandardWebhooksAuth, now: () => number = Date.now) {
  const keys = (Array.isArray(auth.secret) ? auth.secret : [auth.secret]).map(webhookSecretBytes);
  const tolerance = auth.toleranceSeconds ?? DEFAULT_WEBHOOK_TOLERANCE_SECONDS;
  return (headers: FastifyRequest['headers'], rawBody: Buffer | string): string => {
    const id = headers['webhook-id'];
    const timestamp = headers['webhook-timestamp'];
    const signature = headers['webhook-signature'];
    if (typeof id !== 'string' || typeof timestamp !== 'string' || typeof signature !== 'string') {
      throw unauthenticated(
        'This trigger needs a signed delivery: webhook-id, webhook-timestamp and webhook-signature headers',
        CHALLENGE,
      );
    }
    if (id === '' || id.length > 256) throw unauthenticated('The webhook-id header is not valid', CHALLENGE);
    if (!/^\d{1,15}$/.test(timestamp)) {
      throw unauthenticated('The webhook-timestamp header is not a Unix time in seconds', CHALLENGE);
    }
    const skew = Math.abs(now() / 1000 - Number(timestamp));
    if (skew > tolerance) {
      throw unauthenticated(
        `The webhook-timestamp is ${Math.round(skew)} s away from the server's clock (tolerance ${tolerance} s)`,
        CHALLENGE,
      );
    }
    // Over the body's bytes as sent: the signature is checked before the body is decoded.
    const prefix = `${id}.${timestamp}.`;
    const presented = signature
      .split(' ')
      .filter((part) => part.startsWith('v1,'))
      .map((part) => Buffer.from(part.slice(3), 'base64'));
    let valid = false;
    for (const key of keys) {
      const expected = createHmac('sha256', key).update(prefix, 'utf8').update(rawBody).digest();
      for (const candidate of presented) {
        if (candidate.length === expected.length && timingSafeEqual(candidate, expected)) valid = true;
      }
    }
    if (!valid) throw unauthenticated('The webhook signature does not match the body', CHALLENGE);
    return id;
  };
}
