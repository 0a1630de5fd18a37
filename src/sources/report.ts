/** One record a source could not use, with where it was and why. */
export interface InvalidRecord {
  /** 1-based line (of the file, for CSV the line where the record starts). */
  line: number;
  /** The file the record came from, when the source read files. */
  file?: string;
  /** Why: a parse error or the schema's messages, `path: message; …`. */
  reason: string;
}

/** What a record source saw: every record read, and the invalid ones (the first N in detail). */
export interface RecordReport {
  /** Records read (valid and invalid). */
  read: number;
  valid: number;
  invalid: number;
  /** The first invalid records, up to the source's `maxReported`. */
  errors: InvalidRecord[];
  /** True when there were more invalid records than `errors` holds. */
  truncated: boolean;
}
