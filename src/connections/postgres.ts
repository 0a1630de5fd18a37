/**
 * PostgreSQL databases as connections, on `pg`'s pool: statements with parameters only (never values
 * pasted into the SQL text), one `connection.call` event per statement (command, row count, duration:
 * no values), failures classified by SQLSTATE into retried and not, the connection's limits and
 * circuit breaker through {@link ConnectionGuard}, and a query's rows streamed with a cursor into a
 * record source. Its options and their check are in postgres-options.ts.
 */
import pg from 'pg';
import type { z } from 'zod';
import { InvalidDefinitionError } from '../errors.js';
import type { Json } from '../model.js';
import { rowSource } from '../sources/rows.js';
import type { RecordOf, RecordSource, SourceOptions } from '../sources/source.js';
import type { LimitStore } from '../store/store.js';
import type { CircuitState } from './circuit.js';
import {
  type BindableConnection,
  type CallContext,
  type CallOutcome,
  CONNECTION,
  ConnectionError,
} from './connection.js';
import { ConnectionGuard, type Failure } from './guard.js';
import { readCursor } from './postgres-cursor.js';
import { checkPostgresConnection, type PostgresConnectionOptions } from './postgres-options.js';
import { reveal } from './secret.js';
import { checkParameters } from './sql-text.js';
import { classifySqlFailure } from './sqlstate.js';

export type { PostgresConnectionOptions } from './postgres-options.js';

/** What a statement returned. */
export interface SqlResult<R = Record<string, unknown>> {
  rows: R[];
  /** Rows returned, or touched by an INSERT, UPDATE, DELETE, MERGE or COPY. */
  rowCount: number;
  /** The statement's command tag: `SELECT`, `INSERT`, `UPDATE`, … */
  command: string;
}

export interface QuerySourceOptions<S extends z.ZodType | undefined> extends SourceOptions<S> {
  /** Rows fetched from the server at a time. Default 1,000. */
  batchSize?: number;
}

/** What a handler gets from `ctx.use(database)`: statements made in its step, recorded with it. */
export interface PostgresClient {
  /**
   * Runs one statement. Values go in `params`, referred to as `$1`, `$2`, … in the SQL text; a text
   * with placeholders and no matching parameters is refused before anything is sent.
   *
   * @example
   * const { rows } = await ctx.use(inventory).query('SELECT quantity FROM stock WHERE sku = $1', [sku]);
   */
  query<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<SqlResult<R>>;
  /**
   * The rows of a query as a record source for `ctx.startMany`, read through a cursor one batch at
   * a time. Give the query an ORDER BY: a retried fan-out reads it again and matches children by
   * position.
   */
  querySource<S extends z.ZodType | undefined = undefined>(
    sql: string,
    params?: readonly unknown[],
    options?: QuerySourceOptions<S>,
  ): RecordSource<RecordOf<S>>;
}

/** The longest SQL excerpt an event or error carries. */
const SQL_EXCERPT = 200;
const DEFAULT_POOL_SIZE = 10;
const DEFAULT_STATEMENT_TIMEOUT_MS = 30_000;
const DEFAULT_BATCH_SIZE = 1_000;

/** A call made outside any instance (a record source built in a scheduled handler, an alert): recorded nowhere. */
const NO_CONTEXT: CallContext = {
  instanceId: '',
  attempt: 0,
  signal: new AbortController().signal,
  idempotencyKey: '',
  traceparent: '',
  step: null,
};

export class PostgresConnection implements BindableConnection<PostgresClient> {
  readonly [CONNECTION] = true;
  readonly type = 'postgres' as const;
  /** Where it connects to, without credentials: `postgres://host:port/database`. */
  readonly target: string;
  private readonly guard: ConnectionGuard;
  private pool: pg.Pool | null = null;
  private closed = false;

  constructor(
    readonly id: string,
    readonly options: PostgresConnectionOptions,
  ) {
    const poolSize = options.poolSize ?? DEFAULT_POOL_SIZE;
    this.target = targetOf(options);
    this.guard = new ConnectionGuard(
      id,
      'postgres',
      {
        ...(options.maxConcurrency === undefined ? {} : { maxConcurrency: options.maxConcurrency }),
        ...(options.ratePerSecond === undefined ? {} : { ratePerSecond: options.ratePerSecond }),
        ...(options.circuit === undefined ? {} : { circuit: options.circuit }),
      },
      poolSize,
    );
  }

  watch(listener: (call: CallOutcome) => void): () => void {
    return this.guard.watch(listener);
  }

  circuitState(now?: number): CircuitState {
    return this.guard.circuitState(now);
  }

  /** Limits and circuit held for all processes of the store (see Connection.shareLimits). */
  shareLimits(store: LimitStore, onError: (error: unknown) => void): () => Promise<void> {
    return this.guard.shareLimits(store, onError);
  }

  /** The client of `ctx.use(database)`: each statement, and each query source, is one recorded call. */
  bind(next: () => CallContext): PostgresClient {
    return {
      query: (sql, params) => this.run(next(), sql, params),
      querySource: (sql, params, options) => this.source(next(), sql, params, options),
    };
  }

  /** A statement outside any handler (not recorded with an instance); in a step use `ctx.query`. */
  query<R = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<SqlResult<R>> {
    return this.run(NO_CONTEXT, sql, params);
  }

  /** A query's rows as a record source, outside any handler's step; see {@link PostgresClient.querySource}. */
  querySource<S extends z.ZodType | undefined = undefined>(
    sql: string,
    params?: readonly unknown[],
    options?: QuerySourceOptions<S>,
  ): RecordSource<RecordOf<S>> {
    return this.source(NO_CONTEXT, sql, params, options);
  }

  async close(): Promise<void> {
    this.closed = true;
    const pool = this.pool;
    this.pool = null;
    await pool?.end();
  }

  private async run<R>(
    context: CallContext,
    sql: string,
    params: readonly unknown[] | undefined,
  ): Promise<SqlResult<R>> {
    const values = checkParameters(this.id, sql, params);
    return this.guard.run(
      context,
      { operation: 'query', sql: excerpt(sql) },
      async (signal) => {
        const result = await this.execute(sql, values, signal);
        return { rows: result.rows as R[], rowCount: result.rowCount ?? 0, command: result.command };
      },
      (thrown) => this.failure(thrown, sql),
      (result) => ({ command: result.command, rowCount: result.rowCount }),
    );
  }

  private source<S extends z.ZodType | undefined>(
    context: CallContext,
    sql: string,
    params: readonly unknown[] | undefined,
    options: QuerySourceOptions<S> = {},
  ): RecordSource<RecordOf<S>> {
    const values = checkParameters(this.id, sql, params);
    const batchSize = options.batchSize ?? DEFAULT_BATCH_SIZE;
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 1_000_000) {
      throw new InvalidDefinitionError(
        `The batchSize of a query source on ${this.id} must be an integer from 1 to 1000000`,
      );
    }
    return rowSource(() => this.stream(context, sql, values, batchSize), options);
  }

  /**
   * The rows of a query, as one guarded call: the concurrency slot and the database connection are
   * held until the reader is done, and one event records the whole read (rows, duration). The read
   * runs inside the guard and hands each batch over when the reader asks for the next one, so at
   * most one batch waits beside the one being used.
   */
  private async *stream(
    context: CallContext,
    sql: string,
    values: readonly unknown[],
    batchSize: number,
  ): AsyncGenerator<Record<string, unknown>[]> {
    const handoff = new Handoff<Record<string, unknown>[]>();
    const call = this.guard.run(
      context,
      { operation: 'stream', sql: excerpt(sql) },
      async (signal) => {
        let rows = 0;
        for await (const batch of readCursor(this.connect(), sql, values, batchSize, signal)) {
          rows += batch.length;
          if (!(await handoff.put(batch))) break; // the reader stopped early
        }
        return rows;
      },
      (thrown) => this.failure(thrown, sql),
      (rows) => ({ command: 'SELECT', rowCount: rows }),
    );
    call.then(
      () => handoff.end(),
      (error: unknown) => handoff.fail(error),
    );
    try {
      for (;;) {
        const batch = await handoff.take();
        if (batch === null) break;
        yield batch;
      }
    } finally {
      handoff.stop();
      await call.catch(() => {});
    }
  }

  private async execute(
    sql: string,
    values: readonly unknown[],
    signal: AbortSignal,
  ): Promise<pg.QueryResult> {
    const client = await this.connect().connect();
    const ignore = () => {};
    client.on('error', ignore); // reported by the query it breaks; see postgres-cursor.ts
    let released = false;
    // An abort (cancel, attempt timeout, shutdown) ends the database connection, so the call stops
    // waiting at once; the server, which would run the statement on until its timeout without
    // noticing, is asked to cancel it.
    const abort = () => {
      released = true;
      const backend = (client as { processID?: unknown }).processID;
      client.release(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
      if (typeof backend === 'number')
        this.pool?.query('SELECT pg_cancel_backend($1)', [backend]).catch(() => {});
    };
    let failure: Error | undefined;
    try {
      // Aborted while waiting for a database connection: nothing was sent.
      signal.throwIfAborted();
      signal.addEventListener('abort', abort, { once: true });
      // The extended protocol even without parameters: one statement per call, so that text pasted
      // into the SQL cannot append a second one (`; DROP TABLE …`).
      return await client.query({
        text: sql,
        values: values as unknown[],
        queryMode: 'extended',
      } as pg.QueryConfig);
    } catch (error) {
      // Aborted: the statement failed because its connection was ended; the abort is what happened.
      if (signal.aborted) throw signal.reason;
      failure = error instanceof Error ? error : new Error(String(error));
      throw error;
    } finally {
      signal.removeEventListener('abort', abort);
      client.removeListener('error', ignore);
      // A connection the failure broke or left in doubt is closed rather than handed to the next
      // statement.
      if (!released) client.release(isBroken(failure));
    }
  }

  /** The pool, made at the first call (a `url` secret is read then). */
  private connect(): pg.Pool {
    if (this.pool) return this.pool;
    if (this.closed)
      throw new ConnectionError(
        `Connection ${this.id} is closed`,
        this.id,
        'postgres',
        'connection-closed',
        false,
        {},
      );
    const o = this.options;
    const password = o.password;
    const statementTimeout = o.statementTimeout ?? DEFAULT_STATEMENT_TIMEOUT_MS;
    const pool = new pg.Pool({
      ...(o.url !== undefined
        ? { connectionString: reveal(o.url) }
        : {
            host: o.host,
            port: o.port ?? 5432,
            ...(o.database === undefined ? {} : { database: o.database }),
            ...(o.user === undefined ? {} : { user: o.user }),
            ...(password === undefined ? {} : { password: () => reveal(password) }),
          }),
      ...(o.ssl === undefined ? {} : { ssl: o.ssl }),
      max: o.poolSize ?? DEFAULT_POOL_SIZE,
      connectionTimeoutMillis: o.connectTimeout ?? 10_000,
      idleTimeoutMillis: o.idleTimeout ?? 10_000,
      // Idle database connections do not keep a process alive that has nothing else to do (the
      // engine does not close connections when it stops).
      allowExitOnIdle: true,
      statement_timeout: statementTimeout,
      // The server's timeout answers first; this one catches a server that stopped answering at all.
      query_timeout: statementTimeout + 5_000,
      application_name: `tandem:${this.id}`.slice(0, 63),
    });
    // A connection resting in the pool that the server drops reports here; the next call makes a
    // new one. Without a listener the process would end.
    pool.on('error', () => {});
    this.pool = pool;
    return pool;
  }

  /** The failure of a call: its class, and the error the handler sees. */
  private failure(thrown: unknown, sql: string): Failure {
    if (thrown instanceof ConnectionError) {
      return { error: thrown, retryable: thrown.retryable, notSent: true, reason: thrown.code };
    }
    const kind = classifySqlFailure(thrown);
    const raw = thrown as Partial<pg.DatabaseError> | null;
    const message = raw instanceof Error ? raw.message : String(thrown);
    const details: Record<string, Json> = { connection: this.id, sql: excerpt(sql), reason: kind.code };
    if (kind.sqlstate !== null) details.sqlstate = kind.sqlstate;
    // Names of what the statement broke, never the values (`detail` quotes the row: it is left out).
    for (const key of ['constraint', 'table', 'column', 'schema'] as const) {
      const value = raw?.[key];
      if (typeof value === 'string') details[key] = value;
    }
    const error = new ConnectionError(
      `${this.id}: ${message}${kind.sqlstate === null ? '' : ` (SQLSTATE ${kind.sqlstate})`}`,
      this.id,
      'postgres',
      kind.code,
      kind.retryable,
      details,
      { cause: thrown },
    );
    return { error, retryable: kind.retryable, notSent: kind.notSent, reason: kind.code };
  }
}

/** The failure, when the database connection must not go back to the pool after it (its state is unknown). */
function isBroken(failure: Error | undefined): Error | undefined {
  if (failure === undefined) return undefined;
  const { code, sqlstate } = classifySqlFailure(failure);
  // A socket error or client timeout (no SQLSTATE), or the server ending the session (class 08,
  // 57P01-03: it closes the socket right after saying so, a moment before the client notices).
  const broken =
    sqlstate === null ||
    code === 'connection-failed' ||
    code === 'connection-timeout' ||
    code === 'server-unavailable';
  return broken ? failure : undefined;
}

/** The connection's target without credentials; a URL kept secret is named, not read. */
function targetOf(options: PostgresConnectionOptions): string {
  const { url } = options;
  if (url === undefined)
    return `postgres://${options.host}:${options.port ?? 5432}/${options.database ?? ''}`;
  if (typeof url !== 'string') return `postgres://[secret ${url.name}]`;
  const parsed = new URL(url);
  return `postgres://${parsed.host}${parsed.pathname}`;
}

function excerpt(sql: string): string {
  const flat = sql.replace(/\s+/g, ' ').trim();
  return flat.length > SQL_EXCERPT ? `${flat.slice(0, SQL_EXCERPT - 1)}…` : flat;
}

/**
 * One batch at a time from a producer to a reader: `put` resolves when the reader took the batch
 * (true) or stopped reading (false); `take` resolves with the next batch, null at the end, or rejects
 * with the producer's failure.
 */
class Handoff<T> {
  private offered: { value: T; taken: (more: boolean) => void } | null = null;
  private waiting: { resolve: (value: T | null) => void; reject: (error: unknown) => void } | null = null;
  private outcome: { error: unknown } | 'end' | null = null;
  private stopped = false;

  put(value: T): Promise<boolean> {
    if (this.stopped) return Promise.resolve(false);
    return new Promise((taken) => {
      if (this.waiting) {
        const waiting = this.waiting;
        this.waiting = null;
        waiting.resolve(value);
        taken(true);
      } else this.offered = { value, taken };
    });
  }

  take(): Promise<T | null> {
    if (this.offered) {
      const { value, taken } = this.offered;
      this.offered = null;
      taken(true);
      return Promise.resolve(value);
    }
    if (this.outcome === 'end') return Promise.resolve(null);
    if (this.outcome) return Promise.reject(this.outcome.error);
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
    });
  }

  end(): void {
    this.settle('end');
  }

  fail(error: unknown): void {
    this.settle({ error });
  }

  /** The reader is done: a batch on offer, and any later one, is refused. */
  stop(): void {
    this.stopped = true;
    this.offered?.taken(false);
    this.offered = null;
  }

  private settle(outcome: { error: unknown } | 'end'): void {
    this.outcome = outcome;
    const waiting = this.waiting;
    this.waiting = null;
    if (!waiting) return;
    if (outcome === 'end') waiting.resolve(null);
    else waiting.reject(outcome.error);
  }
}

/**
 * Defines a PostgreSQL connection.
 *
 * @example
 * export const inventory = postgresConnection('inventory', {
 *   host: 'db.internal',
 *   database: 'inventory',
 *   user: 'tandem',
 *   password: secret('INVENTORY_DB_PASSWORD'),
 *   poolSize: 10,
 *   statementTimeout: 5_000,
 * });
 */
export function postgresConnection(id: string, options: PostgresConnectionOptions): PostgresConnection {
  checkPostgresConnection(id, options);
  return new PostgresConnection(id, options);
}
