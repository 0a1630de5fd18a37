/**
 * SFTP connections (on ssh2-sftp-client and ssh2's pure-JS SSH): a partner's server that Tandem
 * reads files from (`sftpFiles`, a record source) and writes files to (`put`, to a temporary name
 * then renamed, so the partner never sees half a file). The server's host key is pinned: a changed
 * key refuses the connection instead of sending the credentials to whoever answers.
 *
 * Every operation runs through the connection's guard (limits, circuit breaker, one
 * `connection.call` event with the operation and path, never a credential). SSH sessions are
 * reused: a small pool, at most `maxConcurrency`, each with one SFTP channel and one operation at
 * a time; a session whose connection failed is dropped.
 */
import { createHash, randomBytes } from 'node:crypto';
import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import SftpClient from 'ssh2-sftp-client';
import { z } from 'zod';
import {
  between,
  checkOptions,
  integer,
  nonEmptyText,
  options as optionsOf,
  timerMs,
} from '../define/options.js';
import { TandemError } from '../errors.js';
import type { Json } from '../model.js';
import type { LimitStore } from '../store/store.js';
import type { CircuitOptions } from './circuit.js';
import {
  type BindableConnection,
  type CallContext,
  type CallOutcome,
  CONNECTION,
  ConnectionError,
} from './connection.js';
import { checkConnectionId, circuitOption, secretValue } from './definition.js';
import { ConnectionGuard, type Failure } from './guard.js';
import { reveal, type SecretValue } from './secret.js';

export interface SftpConnectionOptions {
  host: string;
  /** Default 22. */
  port?: number;
  username: SecretValue;
  /** Password authentication (`secret('NAME')` keeps it out of the configuration). */
  password?: SecretValue;
  /** A private key in OpenSSH or PEM format (its text, or `secret('NAME')`). */
  privateKey?: SecretValue;
  /** The private key's passphrase, if it has one. */
  passphrase?: SecretValue;
  /**
   * The server's host key fingerprint as `ssh-keygen -l -f <key>.pub` prints it (`SHA256:…`), or
   * several (a server that is about to change its key). Any other key refuses the connection.
   */
  hostKey: string | string[];
  /**
   * Ms: to connect (SSH handshake and authentication), for one operation, and of silence while a
   * file streams. Default 30 s.
   */
  timeout?: number;
  /** Operations in flight at once, each on its own SSH session (per process). Default 4. */
  maxConcurrency?: number;
  /** Operations started per second at most (per process). Default unlimited. */
  ratePerSecond?: number;
  /** Circuit breaker; `false` turns it off. */
  circuit?: CircuitOptions | false;
}

/** A file in a directory listing. */
export interface SftpEntry {
  /** Absolute path (the directory joined with the name). */
  path: string;
  name: string;
  size: number;
  /** Modification time, ms since the epoch (the server keeps seconds). */
  modifiedAt: number;
}

/** What a handler gets from `ctx.use(sftp)`: each method is one recorded, guarded operation. */
export interface Sftp {
  /** Regular files in a directory, by name; a glob (`orders-*.csv`) keeps the matching ones. */
  list(directory: string, pattern?: string): Promise<SftpEntry[]>;
  /** A whole file's bytes (for small files; record sources stream). */
  get(path: string): Promise<Buffer>;
  /**
   * Writes a file: to a temporary name beside it, then renamed over `path` (atomically where the
   * server has OpenSSH's posix-rename), so that a reader never sees half a file.
   */
  put(path: string, content: string | Uint8Array | Readable): Promise<{ path: string; bytes: number }>;
  /** Renames a file (replacing `to` where the server can). */
  rename(from: string, to: string): Promise<void>;
  delete(path: string): Promise<void>;
  /** Creates a directory and its parents; an existing one is fine. */
  mkdir(path: string): Promise<void>;
  /**
   * Streams a file to `consume`, as one operation that lasts until `consume` settles; waiting
   * longer than `timeout` for the next chunk fails it.
   */
  read<T>(path: string, consume: (chunks: AsyncIterable<Buffer>) => Promise<T>): Promise<T>;
}

const SFTP_NO_SUCH_FILE = 2;
const SFTP_PERMISSION_DENIED = 3;
/** Connection-level failures: the server could not be reached, or the session broke. */
const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'EAI_AGAIN',
  'ENOTFOUND',
  'ERR_NOT_CONNECTED',
  'ERR_GENERIC_CLIENT',
]);

/** A host key other than the pinned one: never retried, never sent credentials. */
class HostKeyMismatch extends Error {
  constructor(readonly presented: string) {
    super('host key mismatch');
  }
}

/** A session's operation ran past `timeout` (or a streamed file fell silent for that long). */
class OperationTimeout extends Error {
  constructor(ms: number) {
    super(`no answer within ${ms} ms`);
  }
}

/** Thrown while connecting: nothing of the operation reached the server. */
class ConnectFailed extends Error {
  constructor(override readonly cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause));
  }
}

const hostKey = z.string().regex(/^(SHA256:)?[A-Za-z0-9+/]{43}=?$/, {
  error: 'must be a SHA-256 fingerprint as ssh-keygen -l prints it (SHA256:…)',
});
const sftpSchema = optionsOf({
  host: nonEmptyText,
  port: integer(1, 65_535).optional(),
  username: secretValue,
  password: secretValue.optional(),
  privateKey: secretValue.optional(),
  passphrase: secretValue.optional(),
  hostKey: z.union([hostKey, z.array(hostKey).min(1)], {
    error: 'must be a SHA256:… fingerprint or a list of them',
  }),
  timeout: timerMs.optional(),
  maxConcurrency: integer(1, 1_000).optional(),
  ratePerSecond: between(0, 1_000_000, true).optional(),
  circuit: circuitOption,
} satisfies Record<keyof SftpConnectionOptions, unknown>);

/**
 * An SFTP server, used in a step through `ctx.use(connection)` and read by `sftpFiles`.
 *
 * @example
 * const partner = sftpConnection('partner', {
 *   host: 'sftp.partner.example',
 *   username: 'acme',
 *   privateKey: secret('PARTNER_SFTP_KEY'),
 *   hostKey: 'SHA256:fuw9bkabyykeeQi7BcOu9RkSETNkjFNdlVxCAD72tQs',
 * });
 * await ctx.step('send-invoice', () => ctx.use(partner).put(`/inbox/invoice-${id}.xml`, xml));
 */
export function sftpConnection(id: string, options: SftpConnectionOptions): SftpConnection {
  checkConnectionId(id);
  checkOptions(sftpSchema, options, `Connection "${id}"`);
  if (options.password === undefined && options.privateKey === undefined) {
    throw new TandemError('invalid-definition', `Connection "${id}": needs a password or a privateKey`);
  }
  return new SftpConnection(id, options);
}

export class SftpConnection implements BindableConnection<Sftp> {
  readonly [CONNECTION] = true;
  readonly type = 'sftp' as const;
  readonly target: string;
  private readonly guard: ConnectionGuard;
  private readonly idle: SftpClient[] = [];
  private readonly open = new Set<SftpClient>();
  private readonly pinned: Set<string>;
  private readonly timeout: number;
  private closed = false;

  constructor(
    readonly id: string,
    private readonly options: SftpConnectionOptions,
  ) {
    const { maxConcurrency, ratePerSecond, circuit } = options;
    this.guard = new ConnectionGuard(
      id,
      'sftp',
      {
        ...(maxConcurrency === undefined ? {} : { maxConcurrency }),
        ...(ratePerSecond === undefined ? {} : { ratePerSecond }),
        ...(circuit === undefined ? {} : { circuit }),
      },
      4,
    );
    const keys = Array.isArray(options.hostKey) ? options.hostKey : [options.hostKey];
    this.pinned = new Set(keys.map((key) => key.replace(/^SHA256:/, '').replace(/=$/, '')));
    this.timeout = options.timeout ?? 30_000;
    this.target = `sftp://${options.host}:${options.port ?? 22}`;
  }

  watch(listener: (call: CallOutcome) => void): () => void {
    return this.guard.watch(listener);
  }

  circuitState(now?: number) {
    return this.guard.circuitState(now);
  }

  /** Limits and circuit held for all processes of the store (see Connection.shareLimits). */
  shareLimits(store: LimitStore, onError: (error: unknown) => void): () => Promise<void> {
    return this.guard.shareLimits(store, onError);
  }

  bind(next: () => CallContext): Sftp {
    return {
      list: (directory, pattern) =>
        this.run(
          next(),
          'list',
          { path: directory, ...(pattern === undefined ? {} : { pattern }) },
          (client) => listFiles(client, directory, pattern),
          (entries) => ({ files: entries.length }),
        ),
      get: (path) =>
        this.run(
          next(),
          'get',
          { path },
          (client) => client.get(path) as Promise<Buffer>,
          (bytes) => ({ bytes: bytes.length }),
        ),
      put: (path, content) =>
        this.run(
          next(),
          'put',
          { path },
          (client) => putFile(client, path, content),
          (written) => ({ bytes: written.bytes }),
        ),
      rename: (from, to) =>
        this.run(next(), 'rename', { path: from, to }, (client) => renameFile(client, from, to)),
      delete: (path) =>
        this.run(next(), 'delete', { path }, (client) => client.delete(path).then(() => undefined)),
      mkdir: (path) =>
        this.run(next(), 'mkdir', { path }, (client) => client.mkdir(path, true).then(() => undefined)),
      read: (path, consume) =>
        this.run(
          next(),
          'read',
          { path },
          (client, deadline) => consume(readChunks(client, path, deadline)),
          undefined,
          false,
        ),
    };
  }

  /** Ends every session. */
  async close(): Promise<void> {
    this.closed = true;
    const sessions = [...this.open];
    this.open.clear();
    this.idle.length = 0;
    await Promise.all(sessions.map((client) => client.end().catch(() => undefined)));
  }

  /** The connection without credentials, should it be logged. */
  toJSON(): Record<string, Json> {
    return { id: this.id, type: this.type, target: this.target };
  }

  /**
   * One guarded operation on a session from the pool. A timed operation fails after `timeout`; a
   * streamed read times only its waits for the next chunk (through the `deadline` it is given), so
   * that a slow consumer is not mistaken for a silent server. Either ends the session.
   */
  private run<T>(
    context: CallContext,
    operation: string,
    event: Record<string, Json>,
    work: (client: SftpClient, deadline: <V>(waiting: Promise<V>) => Promise<V>) => Promise<T>,
    describe?: (value: T) => Record<string, Json>,
    timed = true,
  ): Promise<T> {
    return this.guard.run(
      context,
      { operation, ...event },
      async (signal) => {
        if (this.closed) throw new ConnectFailed(new Error('the connection is closed'));
        const client = await this.acquire(signal);
        let failed: Error | undefined;
        let fail!: (error: Error) => void;
        const broken = new Promise<never>((_, reject) => {
          fail = (error) => {
            if (failed) return;
            failed = error;
            // Ending the session makes the operation's own promise settle too (with a close error).
            void client.end().catch(() => undefined);
            reject(error);
          };
        });
        broken.catch(() => undefined);
        const onAbort = () => fail(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
        if (signal.aborted) onAbort();
        else signal.addEventListener('abort', onAbort, { once: true });
        const timer = timed
          ? setTimeout(() => fail(new OperationTimeout(this.timeout)), this.timeout)
          : undefined;
        const deadline = <V>(waiting: Promise<V>): Promise<V> => {
          let wait: NodeJS.Timeout | undefined;
          const timeout = new Promise<never>((_, reject) => {
            wait = setTimeout(() => {
              const error = new OperationTimeout(this.timeout);
              fail(error);
              reject(error);
            }, this.timeout);
          });
          timeout.catch(() => undefined);
          return Promise.race([waiting, timeout, broken]).finally(() => clearTimeout(wait));
        };
        try {
          const value = await Promise.race([work(client, deadline), broken]);
          this.release(client, false);
          return value;
        } catch (thrown) {
          this.release(client, failed !== undefined || isConnectionFailure(thrown));
          throw failed ?? thrown;
        } finally {
          clearTimeout(timer);
          signal.removeEventListener('abort', onAbort);
        }
      },
      (thrown) => this.classify(thrown, context.signal),
      describe,
    );
  }

  private async acquire(signal: AbortSignal): Promise<SftpClient> {
    const reused = this.idle.pop();
    if (reused) return reused;
    // The library's default listeners print to the console; a session that ends leaves the pool.
    const forget = () => {
      this.open.delete(client);
      const at = this.idle.indexOf(client);
      if (at >= 0) this.idle.splice(at, 1);
    };
    const client: SftpClient = new SftpClient(this.id, { error: forget, end: forget, close: forget });
    let presented: string | undefined;
    const options = this.options;
    try {
      const password = options.password === undefined ? undefined : reveal(options.password);
      const privateKey = options.privateKey === undefined ? undefined : reveal(options.privateKey);
      const passphrase = options.passphrase === undefined ? undefined : reveal(options.passphrase);
      const connecting = client.connect({
        host: options.host,
        port: options.port ?? 22,
        username: reveal(options.username),
        ...(password === undefined ? {} : { password }),
        ...(privateKey === undefined ? {} : { privateKey }),
        ...(passphrase === undefined ? {} : { passphrase }),
        readyTimeout: this.timeout,
        hostVerifier: (key: Buffer) => {
          const fingerprint = createHash('sha256').update(key).digest('base64').replace(/=+$/, '');
          if (this.pinned.has(fingerprint)) return true;
          presented = fingerprint;
          return false;
        },
      });
      const aborted = new Promise<never>((_, reject) => {
        if (signal.aborted) reject(signal.reason);
        signal.addEventListener('abort', () => reject(signal.reason), { once: true });
      });
      aborted.catch(() => undefined);
      await Promise.race([connecting, aborted]);
    } catch (error) {
      void client.end().catch(() => undefined);
      throw new ConnectFailed(presented === undefined ? error : new HostKeyMismatch(presented));
    }
    this.open.add(client);
    return client;
  }

  private release(client: SftpClient, broken: boolean): void {
    if (broken || this.closed) {
      this.open.delete(client);
      void client.end().catch(() => undefined);
      return;
    }
    this.idle.push(client);
  }

  /** Which failures another attempt may fix (the network, the server's availability), and which not. */
  private classify(thrown: unknown, signal: AbortSignal): Failure {
    const { id, options } = this;
    const where = `${options.host}:${options.port ?? 22}`;
    const notSent = thrown instanceof ConnectFailed;
    const cause = thrown instanceof ConnectFailed ? thrown.cause : thrown;
    const fail = (code: string, message: string, retryable: boolean, details: Record<string, Json> = {}) => ({
      error: new ConnectionError(
        message,
        id,
        'sftp',
        code,
        retryable,
        { host: where, ...details },
        { cause },
      ),
      retryable,
      notSent,
      reason: code,
    });
    if (signal.aborted && !(cause instanceof OperationTimeout)) {
      const code = (signal.reason as { code?: unknown } | undefined)?.code;
      const reason = typeof code === 'string' ? code : 'aborted';
      const error = signal.reason instanceof Error ? signal.reason : new Error(reason);
      return { error, retryable: true, notSent, reason };
    }
    if (cause instanceof HostKeyMismatch) {
      return fail(
        'host-key-mismatch',
        `SFTP ${where} (connection "${id}") presented host key SHA256:${cause.presented}, which is not the pinned hostKey: connection refused. If the server's key was really replaced, pin the new fingerprint.`,
        false,
        { presented: `SHA256:${cause.presented}` },
      );
    }
    if (cause instanceof OperationTimeout) {
      return fail('connection-timeout', `SFTP ${where} (connection "${id}"): ${cause.message}`, true);
    }
    const error = cause as { code?: unknown; level?: unknown; message?: unknown };
    const message = typeof error?.message === 'string' ? error.message : String(cause);
    if (error?.level === 'client-authentication' || /authentication methods failed/.test(message)) {
      return fail(
        'authentication-failed',
        `SFTP ${where} (connection "${id}"): authentication failed`,
        false,
      );
    }
    if (error?.level === 'client-timeout' || /Timed out while waiting for handshake/.test(message)) {
      return fail('connection-timeout', `SFTP ${where} (connection "${id}"): ${message}`, true);
    }
    if (error?.code === SFTP_NO_SUCH_FILE || error?.code === 'ENOENT') {
      return fail('no-such-file', `SFTP ${where} (connection "${id}"): ${message}`, false);
    }
    if (error?.code === SFTP_PERMISSION_DENIED || error?.code === 'EACCES') {
      return fail('permission-denied', `SFTP ${where} (connection "${id}"): ${message}`, false);
    }
    if (
      notSent ||
      CONNECTION_CODES.has(String(error?.code)) ||
      /Unexpected (end|close)|No SFTP connection|No response from server|Not connected/.test(message)
    ) {
      return fail('connection-failed', `SFTP ${where} (connection "${id}"): ${message}`, true);
    }
    // Any other status the server answered (SSH_FX_FAILURE: e.g. a full disk, a rename it refused).
    return fail('sftp-failure', `SFTP ${where} (connection "${id}"): ${message}`, false);
  }
}

function isConnectionFailure(thrown: unknown): boolean {
  const code = (thrown as { code?: unknown } | undefined)?.code;
  if (typeof code === 'number') return false; // an SFTP status: the session is fine
  return true;
}

async function listFiles(
  client: SftpClient,
  directory: string,
  pattern: string | undefined,
): Promise<SftpEntry[]> {
  const match = pattern === undefined ? undefined : globOfName(pattern);
  const entries = await client.list(directory);
  return entries
    .filter((entry) => entry.type === '-' && (match === undefined || match.test(entry.name)))
    .map((entry) => ({
      path: posix.join(directory, entry.name),
      name: entry.name,
      size: entry.size,
      modifiedAt: entry.modifyTime,
    }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** A glob over one file name: `*` and `?` do not cross `/`. */
function globOfName(pattern: string): RegExp {
  let source = '';
  for (const char of pattern) {
    if (char === '*') source += '[^/]*';
    else if (char === '?') source += '[^/]';
    else source += char.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${source}$`);
}

async function putFile(
  client: SftpClient,
  path: string,
  content: string | Uint8Array | Readable,
): Promise<{ path: string; bytes: number }> {
  const temporary = posix.join(
    posix.dirname(path),
    `.${posix.basename(path)}.${randomBytes(6).toString('hex')}.part`,
  );
  let bytes = 0;
  const source =
    typeof content === 'string'
      ? Buffer.from(content)
      : content instanceof Uint8Array
        ? Buffer.from(content)
        : content;
  if (Buffer.isBuffer(source)) bytes = source.length;
  else source.on('data', (chunk: Buffer | string) => (bytes += chunk.length));
  try {
    await client.put(source, temporary);
    await renameFile(client, temporary, path);
  } catch (error) {
    await client.delete(temporary, true).catch(() => undefined);
    throw error;
  }
  return { path, bytes };
}

/** OpenSSH's posix-rename replaces the target atomically; plain SFTP rename refuses an existing one. */
async function renameFile(client: SftpClient, from: string, to: string): Promise<void> {
  try {
    await client.posixRename(from, to);
  } catch (error) {
    if (!/does not support|not supported/i.test(String((error as Error).message))) throw error;
    await client.rename(from, to);
  }
}

/** A file's chunks, each wait for the next one under the operation's deadline. */
async function* readChunks(
  client: SftpClient,
  path: string,
  deadline: <V>(waiting: Promise<V>) => Promise<V>,
): AsyncGenerator<Buffer> {
  const stream = client.createReadStream(path, { highWaterMark: 256 * 1024 }) as unknown as Readable;
  const chunks = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  try {
    for (;;) {
      const next = await deadline(chunks.next());
      if (next.done) return;
      yield next.value;
    }
  } finally {
    stream.destroy();
  }
}
