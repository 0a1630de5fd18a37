import { pipeline, Readable } from 'node:stream';
import { type Options as CsvOptions, Parser } from 'csv-parse';
import type { z } from 'zod';
import type { ByteFile, ByteInput } from './bytes.js';
import { type RawRecord, type RecordOf, RecordSource, type SourceOptions } from './source.js';

export interface CsvSourceOptions<S extends z.ZodType | undefined> extends SourceOptions<S> {
  /**
   * Renames columns of the header row to record fields (`{ 'Order No': 'orderId' }`), or maps each
   * header with a function. Unmapped headers keep their name.
   */
  headers?: Record<string, string> | ((header: string) => string);
  /** Field names for a file without a header row (its first line is then a record). */
  columns?: string[];
  /** Default `,`. */
  delimiter?: string;
  /** Trim spaces around values. Default false. */
  trim?: boolean;
}

/**
 * Records of CSV files, streamed with csv-parse: the header row names the fields (renamed by
 * `headers`), values are strings (use `z.coerce.number()` for numbers). A record with the wrong
 * number of fields or broken quoting is reported as invalid with its line, and reading goes on.
 *
 * @example
 * const orders = csvSource('./inbox/orders-*.csv', {
 *   headers: { 'Order No': 'orderId', Qty: 'quantity' },
 *   schema: z.object({ orderId: z.string().min(1), quantity: z.coerce.number().int().positive() }),
 * });
 */
export function csvSource<S extends z.ZodType | undefined = undefined>(
  input: ByteInput,
  options: CsvSourceOptions<S> = {},
): RecordSource<RecordOf<S>> {
  return new RecordSource(input, (file) => readCsv(file, options), options.schema, options.maxReported);
}

interface Parsed {
  value: Record<string, unknown>;
  line: number;
}

async function* readCsv(
  file: ByteFile,
  options: CsvSourceOptions<z.ZodType | undefined>,
): AsyncGenerator<RawRecord[]> {
  const skipped: RawRecord[] = [];
  const { headers } = options;
  const rename = typeof headers === 'function' ? headers : (h: string) => headers?.[h] ?? h;
  const csvOptions: CsvOptions = {
    bom: true,
    delimiter: options.delimiter ?? ',',
    trim: options.trim ?? false,
    skip_empty_lines: true,
    // A malformed record is reported and skipped rather than ending the batch.
    skip_records_with_error: true,
    columns: options.columns ?? ((header: string[]) => header.map((h) => rename(h.trim()))),
    on_skip: (error) => {
      const line = (error as { lines?: number } | undefined)?.lines ?? 0;
      skipped.push({ value: undefined, line, error: error?.message ?? 'unreadable record' });
      return undefined;
    },
  };
  const parser = new LineParser(csvOptions);
  const bytes = file.chunks instanceof Readable ? file.chunks : Readable.from(file.chunks);
  // pipeline forwards a read error of the file into the parser, where the loop below sees it.
  pipeline(bytes, parser, () => {});
  yield* drain(parser, skipped);
}

/**
 * csv-parse's stream, handing out each record with its line. The parser pushes a record as soon
 * as it is complete, so `info.lines` is then the line where the record ends (a quoted value may
 * span lines). An `on_record` hook would say the same, but csv-parse builds a full info object
 * for every call of it.
 */
class LineParser extends Parser {
  override push(record: unknown, encoding?: BufferEncoding): boolean {
    if (record === null) return super.push(null, encoding);
    const value = record as Record<string, unknown>;
    let spanned = 0;
    for (const key in value) {
      const field = value[key];
      if (typeof field === 'string' && field.includes('\n')) spanned += field.split('\n').length - 1;
    }
    return super.push({ value, line: this.info.lines - spanned } satisfies Parsed);
  }
}

/** Reads everything the parser has buffered per wake-up, as one batch. */
async function* drain(stream: Readable, skipped: RawRecord[]): AsyncGenerator<RawRecord[]> {
  for (;;) {
    const batch: RawRecord[] = [];
    let hadSkips = false;
    let item: Parsed | null;
    for (;;) {
      item = stream.read() as Parsed | null;
      if (item === null) break;
      if (skipped.length > 0) {
        hadSkips = true;
        batch.push(...skipped.splice(0));
      }
      batch.push(item);
    }
    // A skipped record is reported from a callback while the records around it wait in the
    // parser's buffer: restore file order.
    if (hadSkips) batch.sort((a, b) => a.line - b.line);
    if (stream.readableEnded || stream.destroyed) {
      if (stream.errored) throw stream.errored;
      if (skipped.length > 0) batch.push(...skipped.splice(0));
      if (batch.length > 0) yield batch;
      return;
    }
    if (batch.length > 0) yield batch;
    // While the batch was consumed the event loop ran: the parser may have buffered more records
    // (its 'readable' then went unheard) or ended. Wait only when neither happened.
    if (stream.readableLength === 0 && !stream.readableEnded && !stream.destroyed) await readable(stream);
  }
}

function readable(stream: Readable): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = () => {
      cleanup();
      resolve();
    };
    const fail = (error: Error) => {
      cleanup();
      reject(error);
    };
    const cleanup = () => {
      stream.off('readable', done);
      stream.off('end', done);
      stream.off('close', done);
      stream.off('error', fail);
    };
    stream.on('readable', done);
    stream.on('end', done);
    stream.on('close', done);
    stream.on('error', fail);
  });
}
