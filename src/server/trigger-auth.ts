/**
 * Per-integration trigger auth: an API key in a header, a Standard Webhooks signature
 * (HMAC-SHA256 over `<webhook-id>.<webhook-timestamp>.<raw body>`, checked against every secret in
 * constant time, with a bounded timestamp to refuse replays of old deliveries), or a bearer JWT
 * verified with jose (signature, expiry, not-before, issuer, audience, an allow-list of asymmetric
 * algorithms; the issuer's JWKS cached and fetched again for an unknown key id).
 */
import { createHmac, timingSafeEqual, type webcrypto } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  type JSONWebKeySet,
  type JWK,
  type JWTPayload,
  type JWTVerifyGetKey,
  type JWTVerifyOptions,
  jwtVerify,
} from 'jose';
import type { AnyIntegration } from '../define/integration.js';
import {
  type ApiKeyAuth,
  JWT_ALGORITHMS,
  type JwtAuth,
  type JwtClaimValue,
  publicKeyOf,
  type StandardWebhooksAuth,
  webhookSecretBytes,
} from '../define/trigger-auth.js';
import { TandemError } from '../errors.js';
import { forbidden, unauthenticated, withHeaders } from './auth-error.js';
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

const DEFAULT_CLOCK_TOLERANCE_SECONDS = 30;
const DEFAULT_JWKS_CACHE_SECONDS = 600;
const DEFAULT_JWKS_COOLDOWN_SECONDS = 30;
const JWKS_TIMEOUT_MS = 5_000;
/** Seconds a caller is asked to wait while the issuer's keys cannot be fetched. */
const JWKS_RETRY_AFTER_SECONDS = 10;

/** The issuer's keys could not be fetched: not the caller's fault, so 503 rather than 401. */
class KeysUnavailable extends Error {}

/**
 * Verifies a bearer JWT as `auth` says; returns its claims. Throws 401 (`invalid_token`) for a
 * missing, malformed, unsigned, badly signed, expired, not-yet-valid or foreign token, 403
 * (`insufficient_scope`) when a required claim is missing, and 503 `jwks-unavailable` while the
 * issuer's keys cannot be fetched. `now` is the server's clock.
 */
export function makeJwtVerifier(auth: JwtAuth, now: () => number = Date.now) {
  const getKey = auth.jwksUrl !== undefined ? remoteKeys(auth) : localKeys(auth);
  const options: JWTVerifyOptions = {
    issuer: auth.issuer,
    audience: auth.audience,
    algorithms: [...(auth.algorithms ?? JWT_ALGORITHMS)],
    clockTolerance: auth.clockToleranceSeconds ?? DEFAULT_CLOCK_TOLERANCE_SECONDS,
    // A token without an expiry would open the trigger for ever to whoever once held it.
    requiredClaims: ['exp'],
  };
  const required = Object.entries(auth.claims ?? {});
  return async (headers: FastifyRequest['headers']): Promise<JWTPayload> => {
    const presented = headers.authorization;
    const match = typeof presented === 'string' ? /^Bearer +([^ ]+) *$/i.exec(presented) : null;
    if (match === null) {
      throw unauthenticated(
        'This trigger needs a JWT in an "Authorization: Bearer <token>" header',
        'Bearer',
      );
    }
    let payload: JWTPayload;
    try {
      payload = await verifyToken(match[1]!, getKey, { ...options, currentDate: new Date(now()) });
    } catch (error) {
      if (error instanceof KeysUnavailable) {
        throw withHeaders(
          new TandemError('jwks-unavailable', "The issuer's keys cannot be fetched to verify the token"),
          { 'retry-after': String(JWKS_RETRY_AFTER_SECONDS) },
        );
      }
      const reason = refusalOf(error);
      throw unauthenticated(reason, `Bearer error="invalid_token", error_description="${reason}"`);
    }
    for (const [claim, wanted] of required) {
      const all = Array.isArray(wanted) ? wanted : [wanted];
      if (!all.every((value) => claimHolds(claim, payload[claim], value))) {
        throw withHeaders(forbidden(`The token's "${claim}" claim does not grant this trigger`), {
          'www-authenticate': 'Bearer error="insufficient_scope"',
        });
      }
    }
    return payload;
  };
}

/** jwtVerify, trying each key when several of a key set fit a token without a key id. */
async function verifyToken(token: string, getKey: JWTVerifyGetKey, options: JWTVerifyOptions) {
  try {
    return (await jwtVerify(token, getKey, options)).payload;
  } catch (error) {
    if ((error as { code?: unknown }).code !== 'ERR_JWKS_MULTIPLE_MATCHING_KEYS') throw error;
    for await (const key of error as AsyncIterable<webcrypto.CryptoKey>) {
      try {
        return (await jwtVerify(token, key, options)).payload;
      } catch (inner) {
        if ((inner as { code?: unknown }).code !== 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED') throw inner;
      }
    }
    throw Object.assign(new Error('no key verifies the signature'), {
      code: 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED',
    });
  }
}

/** The configured public keys as a key set, so that a token's `kid` picks among them. */
function localKeys(auth: JwtAuth): JWTVerifyGetKey {
  const given = Array.isArray(auth.publicKey) ? auth.publicKey : [auth.publicKey!];
  const keys = given.map((key) => {
    const jwk = publicKeyOf(key).export({ format: 'jwk' }) as JWK;
    if (typeof key === 'object' && typeof key.kid === 'string') jwk.kid = key.kid;
    if (typeof key === 'object' && typeof key.alg === 'string') jwk.alg = key.alg;
    return jwk;
  });
  return createLocalJWKSet({ keys } satisfies JSONWebKeySet);
}

/**
 * The issuer's JWKS, cached by jose for `jwksCacheSeconds` and fetched again when a token names an
 * unknown key id (at most once per `jwksCooldownSeconds`). A fetch that fails becomes
 * KeysUnavailable; a key id still unknown after the fetch stays the token's fault.
 */
function remoteKeys(auth: JwtAuth): JWTVerifyGetKey {
  const remote = createRemoteJWKSet(new URL(auth.jwksUrl!), {
    timeoutDuration: JWKS_TIMEOUT_MS,
    cacheMaxAge: (auth.jwksCacheSeconds ?? DEFAULT_JWKS_CACHE_SECONDS) * 1000,
    cooldownDuration: (auth.jwksCooldownSeconds ?? DEFAULT_JWKS_COOLDOWN_SECONDS) * 1000,
  });
  return async (header, token) => {
    try {
      return await remote(header, token);
    } catch (error) {
      const code = (error as { code?: unknown }).code;
      if (
        code === 'ERR_JWKS_NO_MATCHING_KEY' ||
        code === 'ERR_JWKS_MULTIPLE_MATCHING_KEYS' ||
        code === 'ERR_JOSE_NOT_SUPPORTED'
      ) {
        throw error;
      }
      throw new KeysUnavailable('JWKS fetch failed', { cause: error });
    }
  };
}

/** What a caller is told about a refused token: the check that failed, never the token. */
function refusalOf(error: unknown): string {
  const { code, claim } = error as { code?: unknown; claim?: unknown };
  switch (code) {
    case 'ERR_JWT_EXPIRED':
      return 'The token has expired';
    case 'ERR_JOSE_ALG_NOT_ALLOWED':
      return "The token's signature algorithm is not accepted";
    case 'ERR_JWKS_NO_MATCHING_KEY':
      return "No key of the issuer matches the token's key id";
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED':
      return "The token's signature does not verify";
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      if (claim === 'nbf') return 'The token is not valid yet';
      if (claim === 'iss') return "The token's issuer is not accepted";
      if (claim === 'aud') return 'The token is not meant for this trigger (audience)';
      if (claim === 'exp') return 'The token has no valid expiry (exp)';
      return "The token's claims are not valid";
    default:
      return 'The token is not a valid signed JWT';
  }
}

/** Whether a token's claim holds a required value (an item of a list, a word of a scope). */
function claimHolds(name: string, actual: unknown, wanted: JwtClaimValue): boolean {
  if (Array.isArray(actual)) return actual.includes(wanted);
  if ((name === 'scope' || name === 'scp') && typeof actual === 'string' && typeof wanted === 'string') {
    return actual.split(' ').includes(wanted);
  }
  return actual === wanted;
}
