import { StringDecoder } from 'node:string_decoder';
import type { z } from 'zod';
import type { ByteFile, ByteInput } from './bytes.js';
import { type RawRecord, type RecordOf, RecordSource, type SourceOptions } from './source.js';

/**
 * Records of JSON Lines files (one JSON value per line), streamed. A line that is not JSON is
 * reported as invalid with its line number; blank lines are skipped.
 *
 * @example
 * const events = jsonLinesSource(download, { schema: StockMovement });
 */
export function jsonLinesSource<S extends z.ZodType | undefined = undefined>(
  input: ByteInput,
  options: SourceOptions<S> = {},
): RecordSource<RecordOf<S>> {
  return new RecordSource(input, readJsonLines, options.schema, options.maxReported);
}

async function* readJsonLines(file: ByteFile): AsyncGenerator<RawRecord[]> {
  const decoder = new StringDecoder('utf8');
  let carry = '';
  let line = 0;
  const parseLine = (text: string, batch: RawRecord[]) => {
    line++;
    if (text.trim() === '') return;
    try {
      batch.push({ value: JSON.parse(text), line });
    } catch (error) {
      batch.push({ value: undefined, line, error: `invalid JSON: ${(error as Error).message}` });
    }
  };
  for await (const chunk of file.chunks) {
    const text = carry + (typeof chunk === 'string' ? chunk : decoder.write(chunk));
    const batch: RawRecord[] = [];
    let start = 0;
    for (let end = text.indexOf('\n'); end >= 0; end = text.indexOf('\n', start)) {
      parseLine(text.slice(start, end), batch);
      start = end + 1;
    }
    carry = text.slice(start);
    if (batch.length > 0) yield batch;
  }
  const rest = carry + decoder.end();
  if (rest.trim() !== '') {
    const batch: RawRecord[] = [];
    parseLine(rest, batch);
    yield batch;
  }
}
