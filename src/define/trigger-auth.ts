/**
 * Who may call an HTTP trigger (a definition's `auth`): the options and their check. The server
 * verifies requests against them (src/server/trigger-auth.ts); the secret's key bytes and a JWT
 * trigger's public keys are read in one place for both, so a bad key fails the definition, not
 * the first request.
 */
import { createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { z } from 'zod';
import { between, options } from './options.js';

/** Who may call an HTTP trigger. Without `auth`, anyone who reaches the route may. */
export type TriggerAuth = ApiKeyAuth | StandardWebhooksAuth | JwtAuth;

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

/**
 * The signature algorithms a JWT trigger may accept: asymmetric ones only. `none` and the HMAC
 * family (HS256…) are never accepted, so a token "signed" with the public key as an HMAC secret
 * cannot pass.
 */
export const JWT_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
] as const;
export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];

/** A claim value a JWT trigger may require. */
export type JwtClaimValue = string | number | boolean;

/**
 * A bearer JWT (`Authorization: Bearer <token>`) as identity providers issue them: its signature
 * (keys from a JWKS URL or given), expiry, not-before, issuer, audience and algorithm are checked.
 *
 * @example
 * auth: {
 *   type: 'jwt',
 *   issuer: 'https://login.example.com/',
 *   audience: 'api://orders',
 *   jwksUrl: 'https://login.example.com/.well-known/jwks.json',
 *   claims: { scope: 'orders:write' },
 * }
 */
export interface JwtAuth {
  type: 'jwt';
  /** Accepted `iss` claim(s). */
  issuer: string | string[];
  /** Accepted `aud` value(s): the token must name one of them. */
  audience: string | string[];
  /** Where the issuer publishes its keys (https; http for a loopback address only). Or `publicKey`. */
  jwksUrl?: string;
  /** The issuer's public key(s), as PEM (SPKI) text or a public JWK; several during a rotation. Or `jwksUrl`. */
  publicKey?: string | JsonWebKey | (string | JsonWebKey)[];
  /** Accepted signature algorithms; default all of {@link JWT_ALGORITHMS} (asymmetric ones only). */
  algorithms?: JwtAlgorithm[];
  /**
   * Claims the token must carry: a value must equal the claim, or be one of its items when the
   * claim is a list (or the space-separated `scope` / `scp`); a list of values needs every one.
   */
  claims?: Record<string, JwtClaimValue | JwtClaimValue[]>;
  /** Clock difference allowed when checking `exp` and `nbf`, in seconds. Default 30. */
  clockToleranceSeconds?: number;
  /** How long keys fetched from `jwksUrl` are used before they are fetched again, in seconds. Default 600. */
  jwksCacheSeconds?: number;
  /**
   * After a fetch, how long a token with an unknown key id is refused without fetching again, in
   * seconds (a flood of made-up key ids cannot hammer the issuer). Default 30.
   */
  jwksCooldownSeconds?: number;
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

const unsetHint = ' (is an environment variable unset?)';
const someText = (what: string) =>
  z.custom<string | string[]>(
    (v) =>
      (typeof v === 'string' && v !== '') ||
      (Array.isArray(v) && v.length > 0 && v.every((s) => typeof s === 'string' && s !== '')),
    { error: `must be ${what}, or a non-empty list of them${unsetHint}` },
  );
const claimValue = (v: unknown) =>
  (typeof v === 'string' && v !== '') ||
  typeof v === 'boolean' ||
  (typeof v === 'number' && Number.isFinite(v));
const jwtAuth = options({
  type: z.literal('jwt'),
  issuer: someText('a non-empty string'),
  audience: someText('a non-empty string'),
  jwksUrl: z
    .custom<string>((v) => typeof v === 'string' && jwksUrlProblem(v) === null, {
      error: (issue) =>
        typeof issue.input === 'string'
          ? `must be ${jwksUrlProblem(issue.input)}`
          : `must be an https URL${unsetHint}`,
    })
    .optional(),
  publicKey: z
    .custom<JwtAuth['publicKey']>(
      (v) => {
        const keys = Array.isArray(v) ? v : [v];
        return keys.length > 0 && keys.every((k) => publicKeyProblem(k) === null);
      },
      {
        error: (issue) => {
          const keys = Array.isArray(issue.input) ? issue.input : [issue.input];
          const problem = keys.map(publicKeyProblem).find((p) => p !== null);
          return `must be a public key (PEM text or a public JWK), or a list of them: ${problem ?? 'the list is empty'}`;
        },
      },
    )
    .optional(),
  algorithms: z
    .custom<JwtAlgorithm[]>(
      (v) =>
        Array.isArray(v) &&
        v.length > 0 &&
        v.every((a) => (JWT_ALGORITHMS as readonly unknown[]).includes(a)),
      { error: `must be a non-empty list of ${JWT_ALGORITHMS.join(', ')} (asymmetric algorithms only)` },
    )
    .optional(),
  claims: z
    .custom<JwtAuth['claims']>(
      (v) =>
        typeof v === 'object' &&
        v !== null &&
        !Array.isArray(v) &&
        Object.values(v).every((c) =>
          Array.isArray(c) ? c.length > 0 && c.every(claimValue) : claimValue(c),
        ),
      { error: 'must be an object of claim names to a string, number or boolean, or a list of them' },
    )
    .optional(),
  clockToleranceSeconds: between(0, 3_600).optional(),
  jwksCacheSeconds: between(0, 86_400).optional(),
  jwksCooldownSeconds: between(0, 3_600).optional(),
} satisfies Record<keyof JwtAuth, unknown>).superRefine((auth, ctx) => {
  if ((auth.jwksUrl === undefined) === (auth.publicKey === undefined)) {
    ctx.addIssue({
      code: 'custom',
      path: ['jwksUrl'],
      message:
        auth.jwksUrl === undefined
          ? `must be given, or publicKey${unsetHint}`
          : 'must be given, or publicKey, but not both',
      input: auth.jwksUrl,
    });
  }
});

export const triggerAuth = z.discriminatedUnion('type', [apiKeyAuth, standardWebhooksAuth, jwtAuth], {
  error: (issue) =>
    issue.path?.at(-1) === 'type'
      ? 'must be "api-key", "standard-webhooks" or "jwt"'
      : 'must be { type: "api-key", keys }, { type: "standard-webhooks", secret } or { type: "jwt", issuer, audience, jwksUrl | publicKey }',
});

/** Why a JWKS URL is refused, or null: keys fetched in the clear could be swapped on the way. */
function jwksUrlProblem(value: string): string | null {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'an https URL';
  }
  if (url.protocol === 'https:') return null;
  const loopback = ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
  return url.protocol === 'http:' && loopback ? null : 'an https URL (http only for localhost)';
}

/** Why a configured public key is refused, or null. */
function publicKeyProblem(value: unknown): string | null {
  try {
    publicKeyOf(value as string | JsonWebKey);
    return null;
  } catch (error) {
    return (error as Error).message;
  }
}

/**
 * The key object of a configured public key. A private key or a shared secret is refused rather
 * than used: it does not belong in a definition that any reader of the config sees.
 */
export function publicKeyOf(value: string | JsonWebKey): KeyObject {
  if (typeof value === 'string') {
    if (/PRIVATE KEY/.test(value)) throw new Error('a private key was given; give the public key');
    if (!value.includes('-----BEGIN')) throw new Error('a string that is not PEM');
    let key: KeyObject;
    try {
      key = createPublicKey(value);
    } catch {
      throw new Error('PEM text that is not a public key');
    }
    return key;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error(`a ${value === null ? 'null' : typeof value} value`);
  }
  if ('d' in value || value.kty === 'oct') throw new Error('a private or secret JWK was given');
  try {
    return createPublicKey({ key: value, format: 'jwk' });
  } catch {
    throw new Error('a JWK that is not a public key');
  }
}

/** The key bytes of a Standard Webhooks secret (`whsec_` prefix optional, base64 body). */
export function webhookSecretBytes(secret: string): Buffer {
  const body = secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : secret;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(body)) return Buffer.alloc(0);
  return Buffer.from(body, 'base64');
}
