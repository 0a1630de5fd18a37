/**
 * What an HTTP connection is defined with: its options, and the check `httpConnection()` runs on
 * them so that a wrong option fails at start. Apart from the client (http.ts), which only reads
 * options that passed it.
 */
import { z } from 'zod';
import {
  between,
  checkOptions,
  fn,
  integer,
  nonEmptyText,
  oneOf,
  options as optionsOf,
  text,
  timerMs,
} from '../define/options.js';
import { TandemError } from '../errors.js';
import type { CircuitOptions } from './circuit.js';
import type { SecretValue } from './secret.js';

export type ConnectionAuth =
  | { type: 'basic'; username: SecretValue; password: SecretValue }
  | { type: 'bearer'; token: SecretValue }
  | { type: 'api-key'; in: 'header' | 'query'; name: string; value: SecretValue }
  | {
      type: 'oauth2-client-credentials';
      tokenUrl: string;
      clientId: SecretValue;
      clientSecret: SecretValue;
      scope?: string;
    };

/** What went wrong with a call, for `retryOn`. */
export interface CallFailure {
  /** The response status, or null when there was no response. */
  status: number | null;
  code: 'http-error' | 'connection-failed' | 'connection-timeout';
}

export interface HttpConnectionOptions {
  baseUrl: string;
  auth?: ConnectionAuth;
  /** Headers sent with every call. */
  headers?: Record<string, string>;
  /** Per call, in ms. Default 10 s. */
  timeout?: number;
  /** Calls in flight at once (per process). Default 64. */
  maxConcurrency?: number;
  /** Calls started per second at most (per process). Default unlimited. */
  ratePerSecond?: number;
  /** Circuit breaker; `false` turns it off. */
  circuit?: CircuitOptions | false;
  /** Overrides the classification: return true to retry, false to fail at once, undefined for the default. */
  retryOn?: (failure: CallFailure) => boolean | undefined;
}

const httpUrl = (v: unknown) => {
  if (typeof v !== 'string') return false;
  try {
    return ['http:', 'https:'].includes(new URL(v).protocol);
  } catch {
    return false;
  }
};
const url = z.custom<string>(httpUrl, { error: 'must be an http: or https: URL' });
/** A credential: text, or `secret('NAME')` read from the environment at call time. */
export const secretValue = z.custom<SecretValue>(
  (v) =>
    (typeof v === 'string' && v !== '') ||
    (typeof v === 'object' && v !== null && (v as { kind?: unknown }).kind === 'tandem.secret'),
  { error: "must be a non-empty string or secret('NAME')" },
);
const connectionAuth = z.discriminatedUnion(
  'type',
  [
    optionsOf({ type: z.literal('basic'), username: secretValue, password: secretValue }),
    optionsOf({ type: z.literal('bearer'), token: secretValue }),
    optionsOf({
      type: z.literal('api-key'),
      in: oneOf(['header', 'query']),
      name: nonEmptyText,
      value: secretValue,
    }),
    optionsOf({
      type: z.literal('oauth2-client-credentials'),
      tokenUrl: url,
      clientId: secretValue,
      clientSecret: secretValue,
      scope: text.optional(),
    }),
  ],
  {
    error: (issue) =>
      issue.path?.at(-1) === 'type'
        ? 'must be "basic", "bearer", "api-key" or "oauth2-client-credentials"'
        : 'must be an object with a type',
  },
);
/** The `circuit` option every kind of connection has. */
export const circuitOption = z
  .union(
    [
      z.literal(false),
      optionsOf({
        failures: integer(1, 1_000_000).optional(),
        reprobeMs: timerMs.optional(),
      } satisfies Record<keyof CircuitOptions, unknown>),
    ],
    { error: 'must be false or { failures, reprobeMs }' },
  )
  .optional();

const connectionSchema = optionsOf({
  baseUrl: url,
  auth: connectionAuth.optional(),
  headers: z.record(z.string(), text, { error: 'must be an object of header: value' }).optional(),
  timeout: timerMs.optional(),
  maxConcurrency: integer(1, 100_000).optional(),
  ratePerSecond: between(0, 1_000_000, true).optional(),
  circuit: circuitOption,
  retryOn: fn().optional(),
} satisfies Record<keyof HttpConnectionOptions, unknown>);

/** Checks a connection's id and options: a wrong one throws `invalid-definition` naming it. */
export function checkConnection(id: string, options: HttpConnectionOptions): void {
  checkConnectionId(id);
  checkOptions(connectionSchema, options, `Connection "${id}"`);
}

/** A connection id: lower-case letters, digits, `.`, `_` and `-`; else `invalid-definition`. */
export function checkConnectionId(id: string): void {
  if (typeof id !== 'string' || !/^[a-z0-9][a-z0-9._-]{0,99}$/.test(id)) {
    throw new TandemError('invalid-definition', `Connection id ${JSON.stringify(id)} is invalid`);
  }
}
