/**
 * What a failure of a downstream application looks like from a handler: connections report the
 * application's HTTP status on their errors, so the statuses are read here, beside the connections,
 * and the rest of the code speaks of a downstream fault instead.
 */
import { TandemError } from '../errors.js';

export type DownstreamFault = 'failed' | 'unavailable';

/** The status each fault carries; the server's answer for it (502, 503) comes from the catalogue. */
const FAULT_STATUS: Record<DownstreamFault, number> = { failed: 502, unavailable: 503 };

/**
 * `'unavailable'` when the application says to come back later (its 503, an open circuit breaker,
 * a handler's `RetryAfterError`), `'failed'` for any other fault of it, null when the error is not
 * a downstream fault. A downstream fault is an error that carries status 502 or 503 or that is
 * marked as coming from a connection (`connection` or `details.connection` set). The engine's own
 * refusals (shutting down, store closed) also carry 503 but are not downstream faults.
 */
export function downstreamFault(error: Error): DownstreamFault | null {
  if (error instanceof TandemError && (error.code === 'shutting-down' || error.code === 'store-closed')) {
    return null;
  }
  const status = (error as { status?: unknown }).status;
  if (status === FAULT_STATUS.unavailable) return 'unavailable';
  if (status === FAULT_STATUS.failed) return 'failed';
  const marked = error as { connection?: unknown; details?: { connection?: unknown } };
  if (marked.connection !== undefined || marked.details?.connection !== undefined) return 'failed';
  return null;
}

/**
 * True when the error is a catalogue error that already names the fault (a connection's
 * `http-error`, `circuit-open`, a `RetryAfterError`): the caller is told it as it is, rather than
 * a generic `downstream-failed`.
 */
export function namesFault(error: Error, fault: DownstreamFault): error is TandemError {
  return error instanceof TandemError && error.status === FAULT_STATUS[fault];
}
