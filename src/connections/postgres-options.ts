/**
 * What a PostgreSQL connection is defined with, and the check `postgresConnection()` runs on it so
 * that a wrong option fails at start. Apart from the client (postgres.ts), which only reads options
 * that passed it.
 */
import { z } from 'zod';
import {
  between,
  checkOptions,
  integer,
  nonEmptyText,
  options as optionsOf,
  timerMs,
} from '../define/options.js';
import { InvalidDefinitionError } from '../errors.js';
import type { CircuitOptions } from './circuit.js';
import { checkConnectionId, circuitOption, secretValue } from './definition.js';
import type { SecretValue } from './secret.js';

export interface PostgresConnectionOptions {
  /**
   * `postgres://user[:password]@host:port/database[?sslmode=…]`. When it carries the password, make
   * it a `secret('NAME')`: it is read when the first connection is made. Either `url` or `host`.
   */
  url?: SecretValue;
  host?: string;
  /** Default 5432. */
  port?: number;
  database?: string;
  user?: string;
  /** Read when each new database connection is made (a rotated value is picked up). Not with `url`. */
  password?: SecretValue;
  /** TLS: `true` verifies the server's certificate against the system's CAs; or `{ ca, rejectUnauthorized }`. */
  ssl?: boolean | { ca?: string; rejectUnauthorized?: boolean; servername?: string };
  /** Database connections kept open at most (per process). Default 10. */
  poolSize?: number;
  /** The server cancels a statement running longer than this (SQLSTATE 57014, retried). Default 30 s. */
  statementTimeout?: number;
  /** Waiting for a new database connection. Default 10 s. */
  connectTimeout?: number;
  /** An unused database connection is closed after this. Default 10 s. */
  idleTimeout?: number;
  /** Statements in flight at once (per process). Default `poolSize`. */
  maxConcurrency?: number;
  /** Statements started per second at most (per process). Default unlimited. */
  ratePerSecond?: number;
  /** Circuit breaker; `false` turns it off. */
  circuit?: CircuitOptions | false;
}

const postgresUrl = z.custom<SecretValue>(
  (v) => {
    if (typeof v === 'object' && v !== null) return (v as { kind?: unknown }).kind === 'tandem.secret';
    if (typeof v !== 'string') return false;
    try {
      return ['postgres:', 'postgresql:'].includes(new URL(v).protocol);
    } catch {
      return false;
    }
  },
  { error: "must be a postgres:// URL or secret('NAME')" },
);

const schema = optionsOf({
  url: postgresUrl.optional(),
  host: nonEmptyText.optional(),
  port: integer(1, 65_535).optional(),
  database: nonEmptyText.optional(),
  user: nonEmptyText.optional(),
  password: secretValue.optional(),
  ssl: z
    .union(
      [
        z.boolean(),
        optionsOf({
          ca: z.string().optional(),
          rejectUnauthorized: z.boolean().optional(),
          servername: z.string().optional(),
        }),
      ],
      {
        error: 'must be true, false or { ca, rejectUnauthorized, servername }',
      },
    )
    .optional(),
  poolSize: integer(1, 1_000).optional(),
  statementTimeout: timerMs.optional(),
  connectTimeout: timerMs.optional(),
  idleTimeout: timerMs.optional(),
  maxConcurrency: integer(1, 100_000).optional(),
  ratePerSecond: between(0, 1_000_000, true).optional(),
  circuit: circuitOption,
} satisfies Record<keyof PostgresConnectionOptions, unknown>);

/** Checks a PostgreSQL connection's id and options: a wrong one throws `invalid-definition` naming it. */
export function checkPostgresConnection(id: string, options: PostgresConnectionOptions): void {
  checkConnectionId(id);
  const where = `Connection "${id}"`;
  checkOptions(schema, options, where);
  const hasUrl = options.url !== undefined;
  if (hasUrl === (options.host !== undefined)) {
    throw new InvalidDefinitionError(`${where}: give either url or host`);
  }
  if (hasUrl) {
    const extra = (['port', 'database', 'user', 'password'] as const).filter((k) => options[k] !== undefined);
    if (extra.length > 0) {
      throw new InvalidDefinitionError(
        `${where}: ${extra.join(', ')} cannot be given with url (put ${extra.length === 1 ? 'it' : 'them'} in the URL, or use host)`,
      );
    }
  }
}
