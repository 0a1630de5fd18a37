/** Streamed record sources for batch integrations: CSV, JSON Lines and JSON arrays. */
export type { ByteChunk, ByteInput } from './bytes.js';
export { type CsvSourceOptions, csvSource } from './csv.js';
export { jsonArraySource } from './json-array.js';
export { jsonLinesSource } from './json-lines.js';
export type { InvalidRecord, RecordReport } from './report.js';
export { type SftpFilesOptions, sftpFiles } from './sftp-files.js';
export { isRecordSource, RecordSource, type SourceOptions } from './source.js';
