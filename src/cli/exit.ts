/**
 * The CLI's exit codes, one meaning each, so that a script can tell "you typed it wrong" from "the
 * server is not there" from "the work failed" (docs/cli.md lists them).
 */
export const EXIT = {
  /** Done as asked. */
  ok: 0,
  /** The command ran and what it did failed: an instance failed, the server refused, a config did not load. */
  failure: 1,
  /** Not a valid command line: unknown command or option, missing or malformed argument. */
  usage: 2,
  /** No server (or demo directory) answers at the URL. */
  unreachable: 3,
  /** Stopped with Ctrl-C (SIGINT) before the end. */
  interrupted: 130,
} as const;

/** A command line the CLI cannot run: exit 2, with the command's usage. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** Nothing answers at the URL: exit 3. */
export class UnreachableError extends Error {
  override readonly name = 'UnreachableError';
}

/** Network failures that mean nothing listens there (as opposed to an answer that went wrong). */
const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH']);

/** True when a fetch failed because nothing answered at the address. */
export function isUnreachable(error: unknown): boolean {
  let cause: unknown = error;
  // fetch wraps the socket's error (sometimes an AggregateError of both address families).
  for (let depth = 0; depth < 4 && cause; depth++) {
    const code = (cause as { code?: unknown }).code;
    if (typeof code === 'string' && UNREACHABLE.has(code)) return true;
    const inner = (cause as { errors?: unknown[] }).errors;
    if (Array.isArray(inner) && inner.some(isUnreachable)) return true;
    cause = (cause as { cause?: unknown }).cause;
  }
  return false;
}
