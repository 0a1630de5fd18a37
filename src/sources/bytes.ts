/**
 * Where a record source reads its bytes: a local file, a glob of files, or any stream or async
 * iterable of bytes (e.g. a download through a connection). Each input is one "file" with its own
 * line numbers.
 */
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import type { BindableConnection } from '../connections/connection.js';
import { NoSourceFilesError } from '../errors.js';
import type { Store } from '../store/store.js';
import { expandGlob, isGlob } from './glob.js';

export type ByteChunk = Uint8Array | string;

/**
 * A path or glob, a Readable, an (async) iterable of chunks, or a function returning one of these
 * (called when reading starts, so a download begins only when the records are read).
 */
export type ByteInput =
  | string
  | FileSet
  | Uint8Array
  | Readable
  | AsyncIterable<ByteChunk>
  | Iterable<ByteChunk>
  | (() => ByteInput | Promise<ByteInput>);

export interface ByteFile {
  /** The path, for files; undefined for streams. */
  file: string | undefined;
  chunks: AsyncIterable<ByteChunk> | Iterable<ByteChunk>;
}

const FILE_SET = Symbol.for('tandem.fileSet');

/**
 * Files a source lists and opens itself: a connection's files (SFTP). `ctx.startMany` attaches the
 * instance that reads them before reading (so that each file can be claimed for it in the store)
 * and tells the set once the fan-out is committed (so that the files can be archived).
 */
export interface FileSet {
  readonly [FILE_SET]: true;
  files(): AsyncIterable<ByteFile>;
  attach(reader: FileReader): void;
  committed(reader: FileReader): Promise<void>;
}

/** What a file set learns of the instance reading it. */
export interface FileReader {
  instanceId: string;
  /** The connection's client, bound to the reading instance (`ctx.use`). */
  use<Client>(connection: BindableConnection<Client>): Client;
  claims: FileClaims;
  now(): number;
}

export type FileClaims = Pick<Store, 'claimFiles' | 'heldFiles' | 'finishFile'>;

export function isFileSet(value: unknown): value is FileSet {
  return (
    typeof value === 'object' && value !== null && (value as { [FILE_SET]?: unknown })[FILE_SET] === true
  );
}

export const fileSetBrand: typeof FILE_SET = FILE_SET;

const READ_CHUNK = 256 * 1024;

export async function* openBytes(input: ByteInput): AsyncGenerator<ByteFile> {
  if (typeof input === 'function') {
    yield* openBytes(await input());
    return;
  }
  if (isFileSet(input)) {
    yield* input.files();
    return;
  }
  if (typeof input === 'string') {
    const paths = isGlob(input) ? await expandGlob(input) : [input];
    if (paths.length === 0) throw new NoSourceFilesError(input);
    for (const path of paths) {
      yield { file: path, chunks: createReadStream(path, { highWaterMark: READ_CHUNK }) };
    }
    return;
  }
  // A Buffer is iterable too, but byte by byte: read it as one chunk.
  if (input instanceof Uint8Array) yield { file: undefined, chunks: [input] };
  else yield { file: undefined, chunks: input as AsyncIterable<ByteChunk> };
}
