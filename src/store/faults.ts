/**
 * Store faults in the catalogue's words. A full disk and an unreachable database are not bugs of
 * the request that met them: the caller is told 503 with `Retry-After`, and since every write is one
 * transaction, nothing of the refused request was kept. Text the database refuses is the request's
 * fault: 400.
 */
import { InvalidInputError, TandemError } from '../errors.js';

/** Seconds announced in `Retry-After` when the store refuses a write. */
const STORE_FAULT_RETRY_AFTER_SECONDS = 5;

/** SQLite's `SQLITE_FULL`, the file system's `ENOSPC`, PostgreSQL's `53100 disk_full`. */
const FULL_CODES = new Set(['SQLITE_FULL', 'ENOSPC', '53100']);

/**
 * Connection refused or cut, and PostgreSQL's shutdown codes (`57P01` admin_shutdown, `57P02`
 * crash_shutdown, `57P03` cannot_connect_now) and connection exceptions (class `08`).
 */
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  '57P01',
  '57P02',
  '57P03',
  '08000',
  '08001',
  '08003',
  '08004',
  '08006',
]);
const UNREACHABLE_MESSAGE = /^Connection terminated|^Client has encountered a connection error/;

/**
 * A value no store can hold as text (a NUL character, half of a surrogate pair) where text is
 * stored: a tracking value, an ordering or idempotency key. It came with the request, so wherever it
 * is met (an accept, a sync handler's hand-off, the database itself) it is the request's fault: a
 * 400 naming the field, never a handler's or the server's failure.
 */
export class UnstorableTextError extends InvalidInputError {}

/**
 * PostgreSQL refusing text of the request: `22021` (a NUL character in a text parameter) and
 * `22P05` (`\u0000` in JSON). Accepts are checked before they reach the store; this covers what is
 * only looked up (an id, a filter), which PostgreSQL refuses where SQLite finds nothing.
 */
const UNSTORABLE_TEXT_CODES = new Set(['22021', '22P05']);

class StoreFullError extends TandemError {
  constructor(options?: ErrorOptions) {
    super(
      'store-full',
      "The store's disk is full: nothing of this request was stored; retry later",
      { retryAfterSeconds: STORE_FAULT_RETRY_AFTER_SECONDS },
      options,
    );
  }
}

/** The typed error for a store error, or null when the error is not a known store fault. */
export function storeFault(error: unknown): TandemError | null {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && FULL_CODES.has(code)) return new StoreFullError({ cause: error });
  if (typeof code === 'string' && UNSTORABLE_TEXT_CODES.has(code)) {
    return new UnstorableTextError([
      { path: '', message: 'The request holds a NUL character, which the store cannot hold as text' },
    ]);
  }
  const message = (error as { message?: unknown } | null)?.message;
  if (
    (typeof code === 'string' && UNREACHABLE_CODES.has(code)) ||
    (typeof message === 'string' && UNREACHABLE_MESSAGE.test(message))
  ) {
    return new TandemError(
      'store-unreachable',
      'The store is not reachable: nothing of this request was stored; retry later',
      { retryAfterSeconds: STORE_FAULT_RETRY_AFTER_SECONDS },
      { cause: error },
    );
  }
  return null;
}
