/**
 * A record source: records read from bytes (CSV, JSON Lines, a JSON array) and validated one by
 * one. Invalid records never stop the batch: they are counted, and the first N are kept with
 * their line and reason in {@link RecordSource.report}.
 */
import type { z } from 'zod';
import { SourceConsumedError } from '../errors.js';
import { type ByteFile, type ByteInput, type FileSet, isFileSet, openBytes } from './bytes.js';
import type { InvalidRecord, RecordReport } from './report.js';

/** A record as a format reader produced it: a value, or the reason it could not be read. */
export interface RawRecord {
  value: unknown;
  /** 1-based line where the record starts. */
  line: number;
  error?: string;
}

/** Reads one file's bytes into batches of raw records (a batch per chunk keeps per-record overhead low). */
export type FormatReader = (file: ByteFile) => AsyncIterable<RawRecord[]>;

export interface SourceOptions<S extends z.ZodType | undefined> {
  /** Validates (and may transform) each record; records that fail go to the report. */
  schema?: S;
  /** How many invalid records the report keeps in detail. Default 100. */
  maxReported?: number;
}

export type RecordOf<S> = S extends z.ZodType ? z.output<S> : Record<string, unknown>;

const BRAND = Symbol.for('tandem.recordSource');

export class RecordSource<T> implements AsyncIterable<T> {
  readonly [BRAND] = true;
  private used = false;
  private read = 0;
  private valid = 0;
  private invalid = 0;
  private readonly errors: InvalidRecord[] = [];
  private readonly maxReported: number;

  constructor(
    private readonly input: ByteInput,
    private readonly reader: FormatReader,
    private readonly schema: z.ZodType | undefined,
    maxReported = 100,
  ) {
    this.maxReported = Math.max(0, maxReported);
  }

  /** Valid records in batches (one per chunk read), for consumers that commit in bulk. */
  async *batches(): AsyncGenerator<T[]> {
    if (this.used) throw new SourceConsumedError();
    this.used = true;
    for await (const file of openBytes(this.input)) {
      for await (const raw of this.reader(file)) {
        const batch: T[] = [];
        for (const record of raw) {
          this.read++;
          if (record.error !== undefined) {
            this.reject(file.file, record.line, record.error);
            continue;
          }
          if (!this.schema) {
            this.valid++;
            batch.push(record.value as T);
            continue;
          }
          const result = this.schema.safeParse(record.value);
          if (result.success) {
            this.valid++;
            batch.push(result.data as T);
          } else this.reject(file.file, record.line, formatIssues(result.error.issues));
        }
        if (batch.length > 0) yield batch;
      }
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for await (const batch of this.batches()) yield* batch;
  }

  /** The files behind this source when a connection lists them (see {@link FileSet}). */
  fileSet(): FileSet | undefined {
    return isFileSet(this.input) ? this.input : undefined;
  }

  /** True when every record this source yields has already been parsed by `schema`. */
  validatedBy(schema: unknown): boolean {
    return this.schema !== undefined && this.schema === schema;
  }

  /** What was read so far (complete once iteration has finished). */
  report(): RecordReport {
    return {
      read: this.read,
      valid: this.valid,
      invalid: this.invalid,
      errors: this.errors.map((error) => ({ ...error })),
      truncated: this.invalid > this.errors.length,
    };
  }

  private reject(file: string | undefined, line: number, reason: string): void {
    this.invalid++;
    if (this.errors.length < this.maxReported) {
      this.errors.push(file === undefined ? { line, reason } : { line, file, reason });
    }
  }
}

export function isRecordSource(value: unknown): value is RecordSource<unknown> {
  return typeof value === 'object' && value !== null && (value as { [BRAND]?: unknown })[BRAND] === true;
}

function formatIssues(issues: readonly { path: readonly PropertyKey[]; message: string }[]): string {
  return issues
    .map((issue) => `${issue.path.length > 0 ? `${issue.path.map(String).join('.')}: ` : ''}${issue.message}`)
    .join('; ');
}
