/**
 * The connection to PostgreSQL that the store's parts share: the pool, the schema that qualifies
 * every statement, migrations, transactions, prepared statements and the NOTIFY/LISTEN wake-ups.
 */
import pg from 'pg';
import { StoreClosedError } from '../../errors.js';
import { POSTGRES_MIGRATIONS } from './migrations.js';

export interface PostgresStoreOptions {
  /** `postgres://user:pass@host:port/db` */
  url: string;
  /** Schema holding Tandem's tables (created if missing). Default `tandem`. */
  schema?: string;
  /** Pool size. Default 10. */
  poolSize?: number;
  /** Called with errors of idle connections and of the wake-up listener (logged by the engine). */
  onError?: (error: Error) => void;
}

export type Queryable = pg.Pool | pg.PoolClient;

const WAKE_CHANNEL = 'tandem_wake';
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

export class PgConnection {
  readonly pool: pg.Pool;
  readonly schema: string;
  private closed = false;
  private listener: pg.Client | null = null;
  private listenerRetry: NodeJS.Timeout | null = null;
  private readonly wakeListeners = new Set<() => void>();
  private readonly t: (sql: string) => string;

  constructor(private readonly options: PostgresStoreOptions) {
    this.schema = options.schema ?? 'tandem';
    if (!SCHEMA_NAME.test(this.schema)) throw new Error(`Invalid schema name "${this.schema}"`);
    this.pool = new pg.Pool({ connectionString: options.url, max: options.poolSize ?? 10 });
    // An idle connection that the server drops (restart) must not crash the process.
    this.pool.on('error', (error) => this.options.onError?.(error));
    // The pool listens for errors of idle clients only. A client that loses its connection while
    // checked out (a pool.query or a transaction when the server restarts) emits 'error' too;
    // unheard, it would end the process. Its pending or next query fails, and the caller retries.
    this.pool.on('connect', (client) => client.on('error', (error) => this.options.onError?.(error)));
    // Quoted, so that a schema named like a keyword (`full`, `user`) works too.
    const schema = `"${this.schema}"`;
    this.t = (sql) => sql.replaceAll('{{schema}}', schema);
  }

  /** Connects and applies pending migrations (serialised across processes by an advisory lock). */
  async migrate(): Promise<void> {
    const { client, release } = await this.checkout();
    try {
      await client.query('SELECT pg_advisory_lock(hashtext($1))', [`tandem-migrate:${this.schema}`]);
      await client.query(this.t('CREATE SCHEMA IF NOT EXISTS {{schema}}'));
      await client.query(
        this.t(
          'CREATE TABLE IF NOT EXISTS {{schema}}.schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)',
        ),
      );
      const { rows } = await client.query(this.t('SELECT version FROM {{schema}}.schema_migrations'));
      const applied = new Set(rows.map((r: { version: number }) => r.version));
      for (const migration of POSTGRES_MIGRATIONS) {
        if (applied.has(migration.version)) continue;
        await client.query('BEGIN');
        try {
          await client.query(this.t(migration.sql));
          await client.query(
            this.t(
              'INSERT INTO {{schema}}.schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)',
            ),
            [migration.version, migration.name, Date.now()],
          );
          await client.query('COMMIT');
        } catch (error) {
          await client.query('ROLLBACK');
          throw error;
        }
      }
    } finally {
      await client
        .query('SELECT pg_advisory_unlock(hashtext($1))', [`tandem-migrate:${this.schema}`])
        .catch(() => {});
      release();
    }
  }

  /** Refuses work once the store is closed. */
  assertOpen(): void {
    if (this.closed) throw new StoreClosedError();
  }

  /** Runs `fn` in a transaction on one pooled connection. */
  async tx<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    this.assertOpen();
    const { client, release } = await this.checkout();
    try {
      await client.query('BEGIN');
      const result = await fn(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      release();
    }
  }

  /**
   * A pooled connection with an error listener while it is checked out: the pool listens only to
   * idle connections, so a database restart between two queries of a transaction would otherwise
   * be an uncaught 'error' event that ends the process. A lost connection is discarded on release.
   */
  private async checkout(): Promise<{ client: pg.PoolClient; release: () => void }> {
    const client = await this.pool.connect();
    let lost: Error | undefined;
    // Reported by the listener every client gets at connect; here only remembered.
    const onError = (error: Error) => {
      lost = error;
    };
    client.on('error', onError);
    return {
      client,
      release() {
        client.removeListener('error', onError);
        client.release(lost);
      },
    };
  }

  q(db: Queryable, sql: string, params: unknown[] = []) {
    return db.query(this.t(sql), params);
  }

  /**
   * A hot-path statement, prepared once per connection (planning a claim costs as much as running it),
   * on the pool or on a transaction's connection.
   */
  prepared(name: string, sql: string, params: unknown[], on: Queryable = this.pool) {
    let text = this.preparedText.get(name);
    if (text === undefined) {
      text = this.t(sql);
      this.preparedText.set(name, text);
    }
    return on.query({ name: `${this.schema}_${name}`, text, values: params });
  }

  /** Each prepared statement's text with the schema filled in, made once. */
  private readonly preparedText = new Map<string, string>();

  notify(db: Queryable): Promise<unknown> {
    return db.query('SELECT pg_notify($1, $2)', [WAKE_CHANNEL, this.schema]);
  }

  /** The channel and payload of `notify`, for a statement that sends it itself (one round trip less). */
  wakeNotice(): [string, string] {
    return [WAKE_CHANNEL, this.schema];
  }

  onWake(listener: () => void): () => void {
    this.wakeListeners.add(listener);
    if (!this.listener && !this.listenerRetry) void this.listen();
    return () => {
      this.wakeListeners.delete(listener);
    };
  }

  /** A dedicated connection for LISTEN; reconnects after the server restarts. */
  private async listen(): Promise<void> {
    if (this.closed || this.wakeListeners.size === 0) return;
    const client = new pg.Client({ connectionString: this.options.url });
    const retry = (error?: Error) => {
      if (error) this.options.onError?.(error);
      if (this.listener === client) this.listener = null;
      client.removeAllListeners('error');
      client.on('error', () => {});
      client.end().catch(() => {});
      if (this.closed || this.listenerRetry) return;
      this.listenerRetry = setTimeout(() => {
        this.listenerRetry = null;
        void this.listen();
      }, 1_000);
      this.listenerRetry.unref();
      // Work may have arrived while we were not listening.
      for (const wake of this.wakeListeners) wake();
    };
    client.on('error', retry);
    client.on('end', () => {
      if (!this.closed) retry();
    });
    client.on('notification', (message) => {
      if (message.channel === WAKE_CHANNEL && message.payload === this.schema) {
        for (const wake of this.wakeListeners) wake();
      }
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${WAKE_CHANNEL}`);
      this.listener = client;
    } catch (error) {
      retry(error as Error);
    }
  }

  /** Cheap reachability check. */
  async ping(): Promise<void> {
    this.assertOpen();
    await this.pool.query('SELECT 1');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.listenerRetry) clearTimeout(this.listenerRetry);
    const listener = this.listener;
    this.listener = null;
    if (listener) {
      listener.removeAllListeners('end');
      await listener.end().catch(() => {});
    }
    await this.pool.end();
  }
}
