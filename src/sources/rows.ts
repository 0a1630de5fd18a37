/**
 * A record source over rows that arrive already parsed (a database query's), validated and counted
 * like the records of a file: the `line` of an invalid record is its row number.
 */
import type { z } from 'zod';
import type { RawRecord, RecordOf, RecordSource, SourceOptions } from './source.js';
import { RecordSource as Source } from './source.js';

/**
 * A record source reading `open()`'s batches of rows when it is iterated (not before: a query runs
 * only when the fan-out reads it, and is read once).
 */
export function rowSource<S extends z.ZodType | undefined = undefined>(
  open: () => AsyncIterable<readonly unknown[]>,
  options: SourceOptions<S> = {},
): RecordSource<RecordOf<S>> {
  // No bytes to open: one empty "file" whose reader is the rows themselves.
  return new Source([], () => numbered(open()), options.schema, options.maxReported);
}

async function* numbered(batches: AsyncIterable<readonly unknown[]>): AsyncGenerator<RawRecord[]> {
  let row = 0;
  for await (const batch of batches) {
    const records: RawRecord[] = new Array(batch.length);
    for (let i = 0; i < batch.length; i++) records[i] = { value: batch[i], line: ++row };
    yield records;
  }
}
