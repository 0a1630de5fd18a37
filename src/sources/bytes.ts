/**
 * Where a record source reads its bytes: a local file, a glob of files, or any stream or async
 * iterable of bytes (e.g. a download through a connection). Each input is one "file" with its own
 * line numbers.
 */
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { NoSourceFilesError } from '../errors.js';
import { expandGlob, isGlob } from './glob.js';

export type ByteChunk = Uint8Array | string;

/**
 * A path or glob, a Readable, an (async) iterable of chunks, or a function returning one of these
 * (called when reading starts, so a download begins only when the records are read).
 */
export type ByteInput =
  | string
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

const READ_CHUNK = 256 * 1024;

export async function* openBytes(input: ByteInput): AsyncGenerator<ByteFile> {
  if (typeof input === 'function') {
    yield* openBytes(await input());
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
