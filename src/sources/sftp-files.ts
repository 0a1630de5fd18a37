/**
 * A partner's files on an SFTP server as the input of a record source:
 * `csvSource(sftpFiles(partner, '/outbox/orders-*.csv', { archive: '/outbox/done' }), …)`, read
 * by `ctx.startMany`. Each file version is claimed in the store for the instance that reads it, so
 * that no file is read by two instances (two processes, or tomorrow's run meeting a file today's
 * run still works on); a retry of the same fan-out reads exactly the files it claimed, in the same
 * order (its children's keys depend on it). A file is archived (or deleted) only once the fan-out
 * that read it is committed, and then its claim is done. A file still being written is skipped:
 * its size and time must stay the same over `stableMs`, or a marker file must sit beside it.
 */
import { posix } from 'node:path';
import type { Sftp, SftpConnection, SftpEntry } from '../connections/sftp.js';
import { TandemError } from '../errors.js';
import type { FileClaim, FileKey } from '../store/store.js';
import { type ByteFile, type FileReader, type FileSet, fileSetBrand } from './bytes.js';

export interface SftpFilesOptions {
  /** After the fan-out: move each file into this directory (a file of the same name there is replaced). */
  archive?: string;
  /** After the fan-out: delete each file instead. One of `archive` and `delete` is required. */
  delete?: boolean;
  /**
   * A file counts as complete when its size and modification time stayed the same for this many ms
   * (two listings that far apart). Default 2,000; 0 trusts the first listing.
   */
  stableMs?: number;
  /**
   * A file counts as complete once a marker file of its name plus this suffix exists (`.done`:
   * `orders-1.csv.done`); the marker is archived or deleted with it. Replaces `stableMs`.
   */
  marker?: string;
}

const DEFAULT_STABLE_MS = 2_000;

/**
 * The files matching `pattern` (a directory and a glob over names: `/outbox/orders-*.csv`) on an
 * SFTP connection, for csvSource, jsonLinesSource or jsonArraySource, read through `ctx.startMany`.
 *
 * @example
 * const orders = csvSource(sftpFiles(partner, '/outbox/orders-*.csv', { archive: '/outbox/done' }), {
 *   headers: { 'Order No': 'orderId' },
 *   schema: Order,
 * });
 * return ctx.startMany(postOrder, orders);
 */
export function sftpFiles(connection: SftpConnection, pattern: string, options: SftpFilesOptions): FileSet {
  if (typeof pattern !== 'string' || !pattern.startsWith('/') || pattern.endsWith('/')) {
    throw new TandemError(
      'invalid-definition',
      `sftpFiles: the pattern must be an absolute path of files, e.g. /outbox/orders-*.csv (got ${JSON.stringify(pattern)})`,
    );
  }
  if (posix.dirname(pattern).match(/[*?[]/)) {
    throw new TandemError('invalid-definition', `sftpFiles: only the file name may hold a glob (${pattern})`);
  }
  if ((options.archive === undefined) === (options.delete !== true)) {
    throw new TandemError(
      'invalid-definition',
      'sftpFiles: say what becomes of a file once read: { archive: "/a/directory" } or { delete: true }',
    );
  }
  if (options.stableMs !== undefined && !(Number.isFinite(options.stableMs) && options.stableMs >= 0)) {
    throw new TandemError('invalid-definition', 'sftpFiles: stableMs must be a number of ms, 0 or more');
  }
  return new SftpFiles(connection, pattern, options);
}

class SftpFiles implements FileSet {
  readonly [fileSetBrand] = true as const;
  private reader: FileReader | undefined;
  private readonly directory: string;
  private readonly name: string;

  constructor(
    private readonly connection: SftpConnection,
    pattern: string,
    private readonly options: SftpFilesOptions,
  ) {
    this.directory = posix.dirname(pattern);
    this.name = posix.basename(pattern);
  }

  attach(reader: FileReader): void {
    this.reader = reader;
  }

  async *files(): AsyncGenerator<ByteFile> {
    const reader = this.reader;
    if (!reader) {
      throw new TandemError(
        'invalid-definition',
        'sftpFiles: read the source with ctx.startMany, which claims its files for the instance and archives them once committed',
      );
    }
    const sftp = reader.use(this.connection);
    const connection = this.connection.id;
    // A retry of a fan-out cut short reads what it claimed before, and nothing new.
    let mine: FileKey[] = await reader.claims.heldFiles(connection, reader.instanceId);
    if (mine.length === 0) {
      const ready = await this.readyFiles(sftp);
      const claims = await reader.claims.claimFiles({
        connection,
        instanceId: reader.instanceId,
        files: ready.map((entry) => ({ path: entry.path, version: versionOf(entry) })),
        now: reader.now(),
      });
      mine = claims.filter((claim) => claim.instanceId === reader.instanceId && !claim.done);
    }
    for (const file of mine) yield* this.open(sftp, file.path);
  }

  /** Archives (or deletes) every file this instance read, then marks its claim done. */
  async committed(reader: FileReader): Promise<void> {
    const connection = this.connection.id;
    const held: FileClaim[] = await reader.claims.heldFiles(connection, reader.instanceId);
    if (held.length === 0) return;
    const sftp = reader.use(this.connection);
    const { archive, marker } = this.options;
    if (archive !== undefined) await sftp.mkdir(archive);
    for (const claim of held) {
      const paths = marker === undefined ? [claim.path] : [claim.path, claim.path + marker];
      for (const path of paths) {
        try {
          if (archive !== undefined) await sftp.rename(path, posix.join(archive, posix.basename(path)));
          else await sftp.delete(path);
        } catch (error) {
          // Gone already: moved or deleted by an earlier try that did not get to mark the claim done.
          if ((error as { code?: unknown }).code !== 'no-such-file') throw error;
        }
      }
      await reader.claims.finishFile(connection, claim, reader.now());
    }
  }

  /** The matching files that are complete: stable over `stableMs`, or with their marker. */
  private async readyFiles(sftp: Sftp): Promise<SftpEntry[]> {
    const { marker } = this.options;
    const listed = await sftp.list(this.directory, this.name);
    if (marker !== undefined) {
      const all = new Set((await sftp.list(this.directory)).map((entry) => entry.name));
      return listed.filter((entry) => !entry.name.endsWith(marker) && all.has(entry.name + marker));
    }
    const stableMs = this.options.stableMs ?? DEFAULT_STABLE_MS;
    if (stableMs === 0 || listed.length === 0) return listed;
    await new Promise((resolve) => setTimeout(resolve, stableMs));
    const again = new Map((await sftp.list(this.directory, this.name)).map((entry) => [entry.path, entry]));
    return listed.filter((entry) => {
      const later = again.get(entry.path);
      return later !== undefined && versionOf(later) === versionOf(entry);
    });
  }

  /**
   * One file as the format reader's chunks: the read is one guarded operation, open until the
   * reader has had every chunk. A failure mid-file reaches the reader as the connection's error.
   */
  private async *open(sftp: Sftp, path: string): AsyncGenerator<ByteFile> {
    let handOut!: (chunks: AsyncIterable<Buffer>) => void;
    const handedOut = new Promise<AsyncIterable<Buffer>>((resolve) => {
      handOut = resolve;
    });
    let finish!: (error?: unknown) => void;
    const finished = new Promise<void>((resolve, reject) => {
      finish = (error) => (error === undefined ? resolve() : reject(error));
    });
    const reading = sftp.read(path, (chunks) => {
      handOut(chunks);
      return finished;
    });
    reading.catch(() => undefined);
    const chunks = await Promise.race([handedOut, reading.then(() => undefined)]);
    if (chunks === undefined) return;
    async function* guarded(): AsyncGenerator<Buffer> {
      try {
        for await (const chunk of chunks!) yield chunk;
      } catch (error) {
        finish(error);
        // The guard's verdict (a ConnectionError saying whether to retry), not the stream's raw error.
        await reading;
        throw error;
      }
      finish();
      await reading;
    }
    try {
      yield { file: path, chunks: guarded() };
    } finally {
      // The reader stopped early (its own failure): end the read.
      finish();
    }
  }
}

/** A file's version: its size and modification time (a new file of the same name is another file). */
function versionOf(entry: SftpEntry): string {
  return `${entry.size}:${entry.modifiedAt}`;
}
